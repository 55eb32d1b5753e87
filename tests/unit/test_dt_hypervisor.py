"""The /hypervisor and /reserved-memory nodes a guest finds its Gunyah resources in."""

import shutil
import subprocess

import pytest

from gunyah_net.dt.hypervisor import (HLOS_HYPERVISOR_COMPATIBLE, RM_COMPATIBLE,
                                      add_hypervisor_nodes)
from gunyah_net.dt.reader import parse_dtb
from gunyah_net.dt.vmtree import VmDtSpec, vm_dtb, vm_tree
from gunyah_net.wire.resources import (DoorbellResource, MsgqueueResource, RmRpcResource,
                                       ShmResource)

RESOURCES = [
    DoorbellResource("doorbell", cap=0x810005, label=1, peer=0x80, virq=960, edge=False),
    DoorbellResource("doorbell-source", cap=0x810006, label=2, peer=0x80),
    MsgqueueResource("msgqueue-rx", cap=0x810007, label=3, peer=0x80, depth=8,
                     message_size=240, virq=961),
    MsgqueueResource("msgqueue-tx", cap=0x810008, label=3, peer=0x80, depth=8,
                     message_size=240, virq=962),
    ShmResource(label=4, name="ring0", ipa=0x4000_0000, size=0x10000, path="/dev/shm/x",
                peers=(0x80, 0x81)),
    RmRpcResource(tx_cap=0x810009, rx_cap=0x81000A, tx_virq=963, rx_virq=964),
]


def _tree(vmid: int = 0x81):
    root = vm_tree(VmDtSpec("beta", 1, 0x8000_0000, 16 << 20, "vm=beta"))
    add_hypervisor_nodes(root, vmid=vmid, name="beta", resources=RESOURCES)
    return parse_dtb(vm_dtb(root))


def test_gunyah_compatible_and_vm_identity():
    root = _tree()
    hyp = root.find("/hypervisor")
    assert hyp.prop("compatible").as_strings()[0] == "gunyah-hypervisor"
    assert hyp.prop("#address-cells").as_u32() == 2 and hyp.prop("#size-cells").as_u32() == 0
    vm = root.find("/hypervisor/qcom,gunyah-vm")
    assert vm.prop("qcom,vmid").as_u32() == 0x81
    assert vm.prop("qcom,image-name").as_string() == "beta"


def test_caps_labels_and_interrupts():
    hyp = _tree().find("/hypervisor")
    db = hyp.child("doorbell@810005")
    assert db.prop("compatible").as_strings() == ("qcom,gunyah-doorbell",
                                                  "qcom,gunyah-capability")
    assert db.prop("reg").as_u64() == 0x810005
    assert db.prop("label").as_u32() == 1
    assert db.prop("interrupts").as_cells() == (0, 960 - 32, 4)
    src = hyp.child("doorbell-source@810006")
    assert src.prop("compatible").as_strings()[0] == "qcom,gunyah-doorbell-source"
    assert src.prop("interrupts") is None
    rx = hyp.child("message-queue-rx@810007")
    assert rx.prop("is-receiver") is not None and rx.prop("is-sender") is None
    assert rx.prop("interrupts").as_cells() == (0, 961 - 32, 1)
    assert rx.prop("tx_message_size").as_u32() == 240
    assert hyp.child("message-queue-tx@810008").prop("is-sender") is not None


def test_the_rm_rpc_pair_is_the_resource_manager_node_with_tx_then_rx():
    node = _tree().find("/hypervisor/gunyah-resource-mgr@81000a")
    assert node.prop("compatible").as_strings() == RM_COMPATIBLE
    assert node.prop("reg").value == (0x810009).to_bytes(8, "big") + \
        (0x81000A).to_bytes(8, "big")
    assert node.prop("interrupts").as_cells() == (0, 963 - 32, 1, 0, 964 - 32, 1)
    assert node.prop("qcom,is-full-duplex") is not None
    assert node.prop("qcom,free-irq-start").as_u32() == 960
    assert node.prop("qcom,tx-message-size").as_u32() == 240
    assert node.prop("qcom,rx-queue-depth").as_u32() == 8


def test_the_host_vm_gets_the_hlos_hypervisor_compatible_list():
    hlos, guest = _tree(vmid=3), _tree()
    assert hlos.find("/hypervisor").prop("compatible").as_strings() == \
        HLOS_HYPERVISOR_COMPATIBLE
    assert "gunyah-hypervisor" not in HLOS_HYPERVISOR_COMPATIBLE
    assert guest.find("/hypervisor").prop("compatible").as_strings()[0] == "gunyah-hypervisor"
    assert hlos.find("/hypervisor/gunyah-resource-mgr@81000a") is not None


def test_shared_memory_is_reserved_memory_with_its_label():
    shm = _tree().find("/reserved-memory/shm@40000000")
    assert shm.prop("reg").as_cells() == (0, 0x4000_0000, 0, 0x10000)
    assert shm.prop("no-map") is not None and shm.prop("label").as_u32() == 4


@pytest.mark.skipif(shutil.which("dtc") is None, reason="dtc not installed")
def test_dtc_accepts_it(tmp_path):
    root = vm_tree(VmDtSpec("beta", 2, 0x8000_0000, 16 << 20, "vm=beta"))
    add_hypervisor_nodes(root, vmid=0x81, name="beta", resources=RESOURCES)
    blob = tmp_path / "vm.dtb"
    blob.write_bytes(vm_dtb(root))
    out = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", str(blob)], capture_output=True,
                         text=True, check=True)
    assert "gunyah-hypervisor" in out.stdout and "doorbell@810005" in out.stdout
