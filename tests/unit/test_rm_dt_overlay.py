"""The RM's /hypervisor overlay written into a VM's DTB in place: dtc accepts the result, the
original nodes are untouched, totalsize never changes, and what does not fit is refused."""

import shutil
import struct
import subprocess

import pytest

from gunyah_net.dt.fdt import Node
from gunyah_net.dt.hypervisor import add_rm_rpc_node, interrupt_cells
from gunyah_net.dt.reader import parse_dtb, read_dtb, read_header
from gunyah_net.dt.vmtree import VmDtSpec, vm_dtb, vm_tree
from rm.dt_overlay import (
    DoorbellNode,
    HypervisorOverlay,
    MsgQueueNode,
    MsgQueuePairNode,
    OverlayError,
    RmRpcNode,
    VcpuCap,
    apply_overlay,
    write_overlay,
)
from rm.dt_props import Irq
from rm.vm_config import parse_vm_config

SPEC = VmDtSpec("guest", 2, 0x8000_0000, 64 << 20, "console=ttyAMA0")
RPC = RmRpcNode(tx_cap=0x10_0000_0001, rx_cap=0x10_0000_0002, tx_virq=960, rx_virq=961)
OVERLAY = HypervisorOverlay(
    vmid=0x80, owner_vmid=3, image_name="guest", rm_rpc=RPC, peers=("svm2",),
    vm_uri="urn:guest", vdevices=(
        DoorbellNode("/hypervisor/bell-21", 0x101, 0x21, irq=Irq(32 + 0x21, False)),
        DoorbellNode("/hypervisor/ring", 0x102, 5, source=True),
        MsgQueueNode("/hypervisor/mq", 0x103, 7, is_sender=True, irq=Irq(19, True),
                     message_size=64, queue_depth=4),
        MsgQueuePairNode("/hypervisor/pair", 0x104, 0x105, Irq(4096, True), Irq(1057, False),
                         label=9, peer_vmid=0x81, peer="svm2")),
    vcpus=(VcpuCap("/cpus/cpu@0", 0x200), VcpuCap("/cpus/cpu@1", 0x201)))


def base_dtb():
    root = vm_tree(SPEC)
    root.add_node("gunyah-vm-config").add_node("interrupts").add_string("config",
                                                                        "/intc@8000000")
    return vm_dtb(root)


def test_the_overlay_lands_where_the_rm_puts_it():
    root = parse_dtb(apply_overlay(base_dtb(), OVERLAY))
    hyp = root.find("/hypervisor")
    assert hyp.prop("compatible").as_strings() == (
        "gunyah-hypervisor", "qcom,gunyah-hypervisor-1.0", "qcom,gunyah-hypervisor", "simple-bus")
    assert (hyp.prop("#address-cells").as_u32(), hyp.prop("#size-cells").as_u32()) == (2, 0)
    vm = hyp.child("qcom,gunyah-vm")
    assert vm.prop("qcom,vmid").as_u32() == 0x80 and vm.prop("qcom,owner-vmid").as_u32() == 3
    assert vm.prop("qcom,vendor").as_string() == "Qualcomm"
    assert vm.prop("qcom,image-name").as_string() == "guest"
    assert vm.prop("qcom,peers").as_strings() == ("svm2",)
    assert root.find("/cpus/cpu@1").prop("qcom,gunyah-capability").as_u64() == 0x201


def test_the_rm_node_carries_both_queues():
    rm = parse_dtb(apply_overlay(base_dtb(), OVERLAY)).find(
        "/hypervisor/gunyah-resource-mgr@1000000002")
    assert rm.prop("compatible").as_strings() == (
        "gunyah-resource-manager", "qcom,resource-manager-1-0", "qcom,resource-manager",
        "qcom,gunyah-message-queue", "qcom,gunyah-capability")
    assert struct.unpack(">QQ", rm.prop("reg").value) == (0x10_0000_0001, 0x10_0000_0002)
    assert rm.prop("interrupts").as_cells() == (0, 928, 1, 0, 929, 1)
    assert rm.prop("qcom,is-full-duplex").value == b""
    for name, value in (("qcom,tx-message-size", 240), ("qcom,rx-message-size", 240),
                        ("qcom,tx-queue-depth", 8), ("qcom,rx-queue-depth", 8),
                        ("qcom,free-irq-start", 960)):
        assert rm.prop(name).as_u32() == value, name


def test_doorbell_and_message_queue_nodes():
    hyp = parse_dtb(apply_overlay(base_dtb(), OVERLAY)).find("/hypervisor")
    bell = hyp.child("bell-21@101")
    assert bell.prop("compatible").as_strings() == ("qcom,gunyah-doorbell",
                                                    "qcom,gunyah-capability")
    assert bell.prop("reg").as_u64() == 0x101 and bell.prop("label").as_u32() == 0x21
    assert bell.prop("qcom,label").as_u32() == 0x21
    assert bell.prop("interrupts").as_cells() == (0, 0x21, 4)
    ring = hyp.child("ring@102")
    assert ring.prop("compatible").as_strings()[0] == "qcom,gunyah-doorbell-source"
    assert ring.prop("interrupts") is None
    mq = hyp.child("mq@103")
    assert mq.prop("is-sender") is not None and mq.prop("interrupts").as_cells() == (1, 3, 1)
    assert (mq.prop("tx_message_size").as_u32(), mq.prop("tx_queue_depth").as_u32()) == (64, 4)
    pair = hyp.child("pair@105")
    assert pair.prop("interrupts").as_cells() == (2, 0, 1, 3, 1, 4)
    assert pair.prop("qcom,peer-vmid").as_u32() == 0x81 and pair.prop("label").as_u32() == 9


@pytest.mark.parametrize(("intid", "cells"), [
    (32, (0, 0, 4)), (1019, (0, 987, 4)), (16, (1, 0, 4)), (31, (1, 15, 4)),
    (4096, (2, 0, 4)), (5119, (2, 1023, 4)), (1056, (3, 0, 4)), (1119, (3, 63, 4))])
def test_interrupt_cells_for_every_class(intid, cells):
    assert interrupt_cells(intid, False) == cells
    assert interrupt_cells(intid, True)[2] == 1


@pytest.mark.parametrize("intid", [0, 15, 1020, 1055, 1120, 4095, 5120])
def test_intids_outside_the_classes_are_refused(intid):
    overlay = HypervisorOverlay(0x80, 3, "g", None, vdevices=(
        DoorbellNode("/hypervisor/bell", 1, 1, irq=Irq(intid, True)),))
    with pytest.raises(OverlayError, match=f"INTID {intid}"):
        apply_overlay(base_dtb(), overlay)


def test_the_hlos_gets_its_own_compatible_list_and_rm_node_path():
    overlay = HypervisorOverlay(3, None, None, RPC, hlos=True)
    root = parse_dtb(apply_overlay(base_dtb(), overlay))
    compatible = root.find("/hypervisor").prop("compatible").as_strings()
    assert "gunyah-hypervisor" not in compatible and compatible[0] == "qcom,gunyah-hypervisor-1.0"
    assert root.find("/hypervisor/gunyah-resource-mgr@1000000002") is not None
    assert root.find("/hypervisor/qcom,gunyah-vm").prop("qcom,owner-vmid") is None


def test_original_nodes_are_untouched_and_totalsize_is_kept():
    before = base_dtb()
    buffer = bytearray(before) + b"\xa5" * 64
    used = write_overlay(buffer, OVERLAY)
    assert buffer[len(before):] == b"\xa5" * 64
    header = read_header(buffer)
    assert header.totalsize == len(before) and used < header.totalsize
    assert buffer[used:len(before)] == bytes(len(before) - used)
    old, new = parse_dtb(before), parse_dtb(bytes(buffer))
    for path, node in old.walk():
        after = new.find(path)
        extra = ("qcom,gunyah-capability",) if path.startswith("/cpus/cpu@") else ()
        assert after.properties[:len(node.properties)] == node.properties
        assert [p.name for p in after.properties[len(node.properties):]] == list(extra)
        assert [c.name for c in after.children][:len(node.children)] == [
            c.name for c in node.children]
    assert [c.name for c in new.children][-1] == "hypervisor"


def test_an_overlay_that_does_not_fit_is_refused_and_writes_nothing():
    root = vm_tree(SPEC)
    exact = root.to_dtb()
    buffer = bytearray(exact)
    with pytest.raises(OverlayError, match=r"needs \d+ bytes; the blob's totalsize is"):
        write_overlay(buffer, OVERLAY)
    assert buffer == exact


@pytest.mark.parametrize(("change", "match"), [
    (lambda r: r.add_node("hypervisor"), "already has a /hypervisor"),
    (lambda r: None, "no cpu node /cpus/cpu@7"),
], ids=["existing /hypervisor", "missing cpu node"])
def test_refusals(change, match):
    root = vm_tree(SPEC)
    change(root)
    overlay = HypervisorOverlay(0x80, 3, "g", RPC, vcpus=(VcpuCap("/cpus/cpu@7", 1),))
    with pytest.raises(OverlayError, match=match):
        apply_overlay(vm_dtb(root), overlay)


def test_bad_generate_paths_and_garbage_blobs_are_overlay_errors():
    overlay = HypervisorOverlay(0x80, 3, "g", RmRpcNode(1, 2, 960, 961, generate="rel/x"))
    with pytest.raises(OverlayError, match="not an absolute node path"):
        apply_overlay(base_dtb(), overlay)
    with pytest.raises(OverlayError, match="malformed"):
        apply_overlay(b"\0" * 64, OVERLAY)


def test_generate_paths_outside_hypervisor_get_their_parents():
    overlay = HypervisorOverlay(0x80, 3, "g", None, vdevices=(
        DoorbellNode("/soc/gunyah/bell", 0x7, 1, source=True),))
    root = parse_dtb(apply_overlay(base_dtb(), overlay))
    assert root.find("/soc/gunyah/bell@7").prop("reg").as_u64() == 7


def _with_reservations(blob, reservations, boot_cpu):
    """Rebuilds ``blob`` with memory reservations and a boot CPU, keeping its totalsize."""
    header = read_header(blob)
    dt_struct = blob[header.off_dt_struct:header.off_dt_struct + header.size_dt_struct]
    strings = blob[header.off_dt_strings:header.off_dt_strings + header.size_dt_strings]
    rsv = b"".join(struct.pack(">QQ", a, s) for a, s in reservations) + bytes(16)
    off_struct = 40 + len(rsv)
    off_strings = off_struct + len(dt_struct)
    head = struct.pack(">10I", 0xD00DFEED, header.totalsize, off_struct, off_strings, 40, 17, 16,
                       boot_cpu, len(strings), len(dt_struct))
    body = head + rsv + dt_struct + strings
    return body + bytes(header.totalsize - len(body))


def test_memory_reservations_and_the_boot_cpu_survive():
    blob = _with_reservations(base_dtb(), [(0x8000_0000, 0x1000), (0x9000_0000, 0x2000)], 1)
    result = read_dtb(apply_overlay(blob, OVERLAY))
    assert [(r.address, r.size) for r in result.reservations] == [(0x8000_0000, 0x1000),
                                                                  (0x9000_0000, 0x2000)]
    assert result.header.boot_cpuid_phys == 1 and result.header.totalsize == len(blob)


def test_the_vm_config_still_parses_after_the_overlay():
    config = parse_vm_config(apply_overlay(base_dtb(), OVERLAY))
    assert config.interrupts.path == "/intc@8000000" and len(config.vcpus.cpus) == 2


def test_static_vms_can_get_the_same_rm_node():
    hyp = Node("hypervisor")
    node = add_rm_rpc_node(hyp, tx_cap=5, rx_cap=6, tx_virq=40, rx_virq=41, console_dev=True)
    assert node.name == "gunyah-resource-mgr@6"
    assert node.prop("interrupts").as_cells() == (0, 8, 1, 0, 9, 1)
    assert node.prop("qcom,console-dev") is not None


@pytest.mark.skipif(shutil.which("dtc") is None, reason="dtc not installed")
def test_dtc_accepts_the_result(tmp_path):
    blob = _with_reservations(base_dtb(), [(0x8000_0000, 0x1000)], 0)
    path = tmp_path / "vm.dtb"
    path.write_bytes(apply_overlay(blob, OVERLAY))
    out = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", str(path)], capture_output=True,
                         text=True, check=True)
    assert "gunyah-resource-mgr@1000000002" in out.stdout
    assert "/memreserve/\t0x0000000080000000 0x0000000000001000;" in out.stdout
    assert "qcom,gunyah-capability = <0x00 0x201>;" in out.stdout
    assert "bell-21@101" in out.stdout and "pair@105" in out.stdout
    back = subprocess.run(["dtc", "-I", "dts", "-O", "dtb", "-o", str(tmp_path / "again.dtb")],
                          input=out.stdout, capture_output=True, text=True)
    assert back.returncode == 0, back.stderr
