"""The coordinator's VM table: the RM VM's row, vmids, and VMs added and removed at run time."""

from __future__ import annotations

from pathlib import Path

import pytest

from gunyah_net.config import Topology, VmConfig, VmKind
from gunyah_net.coordinator.rm_boot import boot_order
from gunyah_net.coordinator.vmtable import VmTable, dynamic_vm_name
from gunyah_net.wire.messages import VmState


def test_the_rm_vm_comes_first_the_host_is_vmid_3_and_guests_count_from_0x80():
    table = VmTable([("a", 1), ("host", 2), ("b", 1)], host="host")
    assert [(r.name, r.vmid, r.vcpus, r.state) for r in table.records()] == [
        ("rm", 0xFF, 1, "starting"), ("a", 0x80, 1, "starting"), ("host", 0x3, 2, "starting"),
        ("b", 0x81, 1, "starting")]
    assert table.by_vmid(0x3).name == "host" and table.by_vmid(0x90) is None


def test_sixty_four_guests_fit_beside_the_host_and_sixty_five_do_not():
    guests = [(f"v{i}", 1) for i in range(64)]
    assert VmTable([*guests, ("host", 1)], host="host").by_vmid(0xBF).name == "v63"
    with pytest.raises(ValueError, match="65 VMs do not fit"):
        VmTable([*guests, ("v64", 1)])
    with pytest.raises(ValueError, match="'rm' is the built-in RM VM's"):
        VmTable([("rm", 1)])


def test_a_run_time_vm_is_added_as_vm_hex_and_removed_again():
    table = VmTable([("a", 1)])
    record = table.add(dynamic_vm_name(0x82), 0x82, 2)
    assert (record.name, record.vmid, record.vcpus, record.state) == ("vm-82", 0x82, 2,
                                                                     "starting")
    assert table.records()[-1] == record and table.by_vmid(0x82) == record
    assert table.reported("vm-82", VmState("running", 0, "")).state == "running"
    with pytest.raises(ValueError, match="in the table already"):
        table.add("other", 0x82, 1)
    with pytest.raises(ValueError, match="in the table already"):
        table.add("a", 0x90, 1)
    assert table.remove("vm-82").state == "running"
    assert "vm-82" not in table and table.by_vmid(0x82) is None
    assert table.add("vm-82", 0x82, 1).state == "starting", "a new VM with the vmid starts afresh"


def test_boot_order_is_pre_host_vms_then_the_host_then_the_rest_in_file_order():
    image = Path("/img.elf")
    vms = (VmConfig("g1", image), VmConfig("p1", image, pre_host=True),
           VmConfig("host", image, kind=VmKind.HOST), VmConfig("g2", image),
           VmConfig("p2", image, pre_host=True))
    assert [vm.name for vm in boot_order(Topology("t", "t.toml", vms).vms)] == [
        "p1", "p2", "host", "g1", "g2"]
    assert [vm.name for vm in boot_order(vms[:1] + vms[3:4])] == ["g1", "g2"], "no host: in order"
