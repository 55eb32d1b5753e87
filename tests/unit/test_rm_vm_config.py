"""The RM's reading of a VM's /gunyah-vm-config: what a QEMU/crosvm-style DT yields, every
malformation refused with VmConfigError naming the node and property, and random corruption
of a valid DTB raising nothing else."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gunyah_net.dt.fdt import Node
from gunyah_net.dt.vmtree import VmDtSpec, vm_dtb, vm_tree
from rm.vm_config import (
    CpuConfig,
    GicConfig,
    Irq,
    MemoryConfig,
    VmConfigError,
    parse_vm_config,
    vm_config_from_tree,
)
from rm.vm_config_vdevices import (
    DoorbellVdevice,
    MsgQueuePairVdevice,
    MsgQueueVdevice,
    OtherVdevice,
    RmRpcVdevice,
    ShmVdevice,
)

SPEC = VmDtSpec("guest", 2, 0x8000_0000, 64 << 20, "console=ttyAMA0")


def _vdevices(config):
    vdev = config.add_node("vdevices").add_string("generate", "/hypervisor")
    bell = vdev.add_node("bell-21")
    bell.add_string("vdevice-type", "doorbell").add_u32("label", 0x21).add_empty("peer-default")
    bell.add_empty("source-can-clear").add_cells("interrupts", (0, 0x21, 4))
    bell.add_string("generate", "/hypervisor/bell-21")
    src = vdev.add_node("ring")
    src.add_string("vdevice-type", "doorbell-source").add_u32("qcom,label", 5)
    src.add_string("peer", "host-vm")
    mq = vdev.add_node("mq")
    mq.add_string("vdevice-type", "message-queue").add_empty("is-receiver")
    mq.add_empty("peer-default").add_u32("message-size", 64).add_cells("interrupts", (1, 3, 1))
    pair = vdev.add_node("pair")
    pair.add_string("vdevice-type", "message-queue-pair").add_string("peer", "svm2")
    pair.add_u32("queue-depth", 16).add_cells("interrupts", (2, 0, 1, 3, 1, 4))
    rpc = vdev.add_node("rm-rpc").add_string("vdevice-type", "rm-rpc").add_empty("console-dev")
    shm = vdev.add_node("shm-2").add_string("vdevice-type", "shm").add_empty("peer-default")
    shm.add_u64("dma_base", 0)
    memory = shm.add_node("memory").add_u32("#address-cells", 2).add_u32("#size-cells", 2)
    memory.add_u32("label", 2).add_u64("base", 0x9000_0000).add_empty("optional")
    vdev.add_node("virtio").add_string("vdevice-type", "virtio-mmio")
    return rpc


def good_tree(**changes):
    root = vm_tree(SPEC)
    config = root.add_node("gunyah-vm-config")
    config.add_string("image-name", "guest").add_string("os-type", "linux")
    config.add_strings("vm-attrs", ("crash-fatal", "context-dump"))
    memory = config.add_node("memory").add_u32("#address-cells", 2).add_u32("#size-cells", 2)
    memory.add_u64("base-address", 0x8010_0000).add_u64("size-max", 0x4000_0000)
    gic = root.find("/intc@8000000")
    config.add_node("interrupts").add_string("config", "/intc@8000000")
    config.add_node("vcpus").add_string("affinity", "proxy")
    _vdevices(config)
    assert gic is not None
    return root


def test_a_vmm_style_tree_parses_into_its_config():
    config = parse_vm_config(vm_dtb(good_tree()))
    assert config.node_path == "/gunyah-vm-config"
    assert config.image_name == "guest" and config.os_type == "linux"
    assert config.vm_attrs == ("crash-fatal", "context-dump")
    assert config.memory == MemoryConfig(base_address=0x8020_0000, size_max=0x4000_0000)
    assert config.interrupts == GicConfig("/intc@8000000", 0x800_0000, 0x80A_0000, 0x2_0000)
    assert config.vcpus.affinity == "proxy" and config.vcpus.config_path == "/cpus"
    assert config.vcpus.cpus == (CpuConfig("/cpus/cpu@0", True, "psci"),
                                 CpuConfig("/cpus/cpu@1", False, "psci"))


def test_every_vdevice_type_and_its_properties():
    devices = parse_vm_config(vm_dtb(good_tree())).vdevices
    assert devices.generate == "/hypervisor"
    bell, src, mq, pair, rpc, shm, virtio = devices.devices
    assert bell == DoorbellVdevice("bell-21", "/hypervisor/bell-21", False, 0x21, None, True,
                                   Irq(32 + 0x21, False))
    assert src == DoorbellVdevice("ring", "/hypervisor/ring", True, 5, "host-vm")
    assert mq == MsgQueueVdevice("mq", "/hypervisor/mq", False, 0, None, 64, 8, Irq(19, True))
    assert pair == MsgQueuePairVdevice("pair", "/hypervisor/pair", 0, "svm2", 240, 16,
                                       (Irq(4096, True), Irq(1057, False)))
    assert rpc == RmRpcVdevice("rm-rpc", "/hypervisor/rm-rpc", console_dev=True)
    assert shm == ShmVdevice("shm-2", "/hypervisor/shm-2", False, 2, 0x9000_0000, optional=True,
                             dma_base=0)
    assert virtio == OtherVdevice("virtio", "virtio-mmio")


def test_qcom_vm_config_name_phandle_config_and_root_interrupt_parent():
    root = good_tree()
    config = root.find("/gunyah-vm-config")
    phandle = root.find("/intc@8000000").prop("phandle").as_u32()
    config.child("interrupts").replace_property("config", phandle.to_bytes(4, "big"))
    assert vm_config_from_tree(root).interrupts.path == "/intc@8000000"
    config.child("interrupts").remove_property("config")
    assert vm_config_from_tree(root).interrupts.gicd_base == 0x800_0000
    renamed = Node("")
    for child in root.children:
        renamed.add_child(child if child.name != "gunyah-vm-config" else _renamed(child))
    for prop in root.properties:
        renamed.add_property(prop.name, prop.value)
    assert vm_config_from_tree(renamed).node_path == "/qcom,vm-config"


def _renamed(node):
    copy = Node("qcom,vm-config")
    for prop in node.properties:
        copy.add_property(prop.name, prop.value)
    for child in node.children:
        copy.add_child(child)
    return copy


def test_static_affinity_needs_a_map_and_cpu_status_picks_the_boot_cpus():
    root = good_tree()
    vcpus = root.find("/gunyah-vm-config/vcpus")
    vcpus.replace_property("affinity", b"pinned\0")
    with pytest.raises(VmConfigError, match="affinity-map"):
        vm_config_from_tree(root)
    vcpus.add_cells("affinity-map", (2, 3)).add_u32("sched-priority", 0xFFFF_FFFF)
    root.find("/cpus/cpu@0").add_string("status", "disabled")
    root.find("/cpus/cpu@1").add_string("status", "okay")
    parsed = vm_config_from_tree(root).vcpus
    assert parsed.affinity_map == (2, 3) and parsed.sched_priority == -1
    assert [c.boot for c in parsed.cpus] == [False, True]
    root.find("/cpus/cpu@0").replace_property("status", b"fail-sss\0")
    assert [c.path for c in vm_config_from_tree(root).vcpus.cpus] == ["/cpus/cpu@1"]


def _set(path, name, value):
    def change(root):
        node = root.find(path)
        if node.prop(name) is None:
            node.add_property(name, value)
        else:
            node.replace_property(name, value)
    return change


def _drop(path, name=None):
    def change(root):
        if name is None:
            parent, _, child = path.rpartition("/")
            node = root.find(parent or "/")
            node._children.pop(child)
        else:
            root.find(path).remove_property(name)
    return change


CFG = "/gunyah-vm-config"
VDEV = f"{CFG}/vdevices"
GIC = "/intc@8000000"
BROKEN = {
    "no config node": (_drop(CFG), "no /gunyah-vm-config"),
    "misaligned base-address": (_set(f"{CFG}/memory", "base-address",
                                     (0x8000_0800).to_bytes(8, "big")), "base-address"),
    "base-address wrong size": (_set(f"{CFG}/memory", "base-address", b"\0\0\0\1"),
                                "base-address"),
    "size-max past 2**64": (_set(f"{CFG}/memory", "size-max", (2**64 - 0x1000).to_bytes(8, "big")),
                            "size-max"),
    "bad #address-cells": (_set(f"{CFG}/memory", "#address-cells", (3).to_bytes(4, "big")),
                           "#address-cells"),
    "config path missing": (_set(f"{CFG}/interrupts", "config", b"/nope\0"), "does not exist"),
    "config phandle unknown": (_set(f"{CFG}/interrupts", "config", b"\0\0\0\x63"), "phandle"),
    "config garbage": (_set(f"{CFG}/interrupts", "config", b"xy"), "neither a path"),
    "no GIC at all": (lambda r: (_drop(f"{CFG}/interrupts")(r), _drop("/", "interrupt-parent")(r)),
                      "no interrupt controller"),
    "not GICv3": (_set(GIC, "compatible", b"arm,gic-400\0"), "arm,gic-v3"),
    "not a controller": (_drop(GIC, "interrupt-controller"), "interrupt-controller"),
    "two GICR regions": (_set(GIC, "#redistributor-regions", (2).to_bytes(4, "big")),
                         "#redistributor-regions"),
    "2-cell interrupts": (_set(GIC, "#interrupt-cells", (2).to_bytes(4, "big")),
                          "#interrupt-cells"),
    "small stride": (_set(GIC, "redistributor-stride", (0x1_0000).to_bytes(8, "big")),
                     "redistributor-stride"),
    "unaligned stride": (_set(GIC, "redistributor-stride", (0x2_8000).to_bytes(8, "big")),
                         "redistributor-stride"),
    "truncated GIC reg": (_set(GIC, "reg", bytes(16)), "reg"),
    "unknown affinity": (_set(f"{CFG}/vcpus", "affinity", b"lazy\0"), "affinity"),
    "cpus path missing": (_set(f"{CFG}/vcpus", "config", b"/cpux\0"), "does not exist"),
    "bad cpu status": (_set("/cpus/cpu@1", "status", b"sleepy\0"), "status"),
    "secondary without method": (_drop("/cpus/cpu@1", "enable-method"), "enable-method"),
    "no cpus": (lambda r: [_drop(f"/cpus/{c.name}")(r) for c in r.find("/cpus").children],
                "no usable cpu"),
    "vdevice without type": (_drop(f"{VDEV}/mq", "vdevice-type"), "vdevice-type"),
    "doorbell without peer": (_drop(f"{VDEV}/bell-21", "peer-default"), "peer"),
    "interrupt class 7": (_set(f"{VDEV}/bell-21", "interrupts", b"\0\0\0\7" + bytes(8)), "class"),
    "SPI out of range": (_set(f"{VDEV}/bell-21", "interrupts",
                              b"\0\0\0\0\0\0\x03\xe0\0\0\0\4"), "out of range"),
    "trigger 2": (_set(f"{VDEV}/bell-21", "interrupts", bytes(8) + b"\0\0\0\2"), "trigger"),
    "two irqs for a doorbell": (_set(f"{VDEV}/bell-21", "interrupts", bytes(24)), "cells"),
    "sender and receiver": (_set(f"{VDEV}/mq", "is-sender", b""), "exactly one"),
    "message too large": (_set(f"{VDEV}/mq", "message-size", (1025).to_bytes(4, "big")),
                          "message-size"),
    "zero depth": (_set(f"{VDEV}/pair", "queue-depth", bytes(4)), "queue-depth"),
    "shm without peer-default": (_drop(f"{VDEV}/shm-2", "peer-default"), "peer-default"),
    "shm memory without label": (_drop(f"{VDEV}/shm-2/memory", "label"), "label"),
    "shm base and allocate": (_set(f"{VDEV}/shm-2/memory", "allocate-base", b""),
                              "exactly one"),
    "shm misaligned": (_set(f"{VDEV}/shm-2/memory", "base", (0x10).to_bytes(8, "big")),
                       "page-aligned"),
    "relative generate": (_set(VDEV, "generate", b"hypervisor\0"), "absolute"),
    "label not a cell": (_set(f"{VDEV}/ring", "qcom,label", b"\0\1"), "qcom,label"),
    "image-name not a string": (_set(CFG, "image-name", b"\1\2"), "image-name"),
    "entry offset 3 bytes": (_set(CFG, "kernel-entry-offset", b"\0\0\1"),
                             "kernel-entry-offset"),
}


@pytest.mark.parametrize("name", BROKEN)
def test_malformed_config_is_refused_naming_the_property(name):
    change, fragment = BROKEN[name]
    root = good_tree()
    change(root)
    with pytest.raises(VmConfigError, match=fragment):
        vm_config_from_tree(root)


def test_a_blob_that_is_no_dtb_is_a_config_error():
    with pytest.raises(VmConfigError, match="malformed"):
        parse_vm_config(b"\xd0\x0d\xfe\xed" + bytes(60))


GOOD = vm_dtb(good_tree())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 255)), min_size=1,
                max_size=8))
def test_corrupted_dtbs_raise_only_config_errors(edits):
    blob = bytearray(GOOD)
    for offset, value in edits:
        blob[offset] = value
    try:
        parse_vm_config(bytes(blob))
    except VmConfigError as exc:
        assert exc.reason


PROPERTIES = [(path, prop.name) for path, node in good_tree().walk()
              if path.startswith((CFG, GIC, "/cpus")) or path == "/"
              for prop in node.properties]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PROPERTIES), st.binary(max_size=12)), min_size=1,
                max_size=4))
def test_random_property_values_raise_only_config_errors(edits):
    root = good_tree()
    for (path, name), value in edits:
        root.find(path).replace_property(name, value)
    try:
        parse_vm_config(vm_dtb(root))
    except VmConfigError as exc:
        assert exc.reason
