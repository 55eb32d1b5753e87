"""The Gunyah nodes of a VM's device tree: ``/hypervisor`` vdevices and shared-memory regions.

Follows the layout Gunyah's RM generates (gunyah-abi.md 5.2) so that guest code written for real
Gunyah finds its resources unchanged:

- ``/hypervisor``: ``compatible = "gunyah-hypervisor", "qcom,gunyah-hypervisor-1.0",
  "qcom,gunyah-hypervisor", "simple-bus"``, ``#address-cells = 2``, ``#size-cells = 0``;
- ``/hypervisor/qcom,gunyah-vm``: ``qcom,vmid``, ``qcom,owner-vmid``, ``qcom,vendor``,
  ``qcom,image-name``;
- one node per doorbell / message-queue cap, named ``<kind>@<cap in hex>``, with ``reg`` = the
  64-bit cap, ``interrupts`` = the VM's virq for that object, and ``label`` / ``qcom,label``;
- each shared-memory region as ``/reserved-memory/shm@<ipa>`` (``no-map``, ``label``,
  ``qcom,shared-memory``). Deviations from the RM's own layout are listed in docs/platform.md.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..wire.resources import DoorbellResource, MsgqueueResource, Resource, ShmResource
from .fdt import Node

HYPERVISOR_COMPATIBLE = ("gunyah-hypervisor", "qcom,gunyah-hypervisor-1.0",
                         "qcom,gunyah-hypervisor", "simple-bus")
_CAPABILITY = "qcom,gunyah-capability"
GIC_SPI = 0
IRQ_TYPE_EDGE_RISING = 1
IRQ_TYPE_LEVEL_HIGH = 4
OWNER_VMID_NONE = 0xFFFF
"""gunyah-net's statically configured VMs have no owner VM; the RM issue adds the host as owner."""


def add_hypervisor_nodes(root: Node, *, vmid: int, name: str,
                         resources: Sequence[Resource]) -> Node:
    """Adds ``/hypervisor`` (and ``/reserved-memory`` for shm) to ``root``; returns /hypervisor."""
    hyp = root.add_node("hypervisor")
    hyp.add_u32("#address-cells", 2).add_u32("#size-cells", 0)
    hyp.add_strings("compatible", HYPERVISOR_COMPATIBLE)
    vm = hyp.add_node("qcom,gunyah-vm")
    vm.add_strings("compatible", ("qcom,gunyah-vm-id-1.0", "qcom,gunyah-vm-id"))
    vm.add_u32("qcom,vmid", vmid).add_u32("qcom,owner-vmid", OWNER_VMID_NONE)
    vm.add_string("qcom,vendor", "Qualcomm").add_string("qcom,image-name", name)
    shms = []
    for resource in resources:
        match resource:
            case DoorbellResource():
                _doorbell_node(hyp, resource)
            case MsgqueueResource():
                _msgqueue_node(hyp, resource)
            case ShmResource():
                shms.append(resource)
    if shms:
        _reserved_memory(root, shms)
    return hyp


def _cap_node(parent: Node, node_name: str, cap: int, compatible: str, label: int) -> Node:
    node = parent.add_node(f"{node_name}@{cap:x}")
    node.add_strings("compatible", (compatible, _CAPABILITY))
    node.add_cells("reg", (cap >> 32, cap & 0xFFFF_FFFF))
    node.add_u32("qcom,label", label).add_u32("label", label)
    return node


def _interrupts(node: Node, virq: int | None, edge: bool) -> None:
    if virq is not None:
        trigger = IRQ_TYPE_EDGE_RISING if edge else IRQ_TYPE_LEVEL_HIGH
        node.add_cells("interrupts", (GIC_SPI, virq - 32, trigger))


def _doorbell_node(hyp: Node, db: DoorbellResource) -> None:
    if db.kind == "doorbell":
        node = _cap_node(hyp, "doorbell", db.cap, "qcom,gunyah-doorbell", db.label)
        _interrupts(node, db.virq, db.edge)
    else:
        node = _cap_node(hyp, "doorbell-source", db.cap, "qcom,gunyah-doorbell-source",
                         db.label)
    node.add_u32("qcom,peer-vmid", db.peer)


def _msgqueue_node(hyp: Node, mq: MsgqueueResource) -> None:
    name = "message-queue-tx" if mq.kind == "msgqueue-tx" else "message-queue-rx"
    node = _cap_node(hyp, name, mq.cap, "qcom,gunyah-message-queue", mq.label)
    node.add_empty("is-sender" if mq.kind == "msgqueue-tx" else "is-receiver")
    node.add_u32("tx_message_size", mq.message_size).add_u32("tx_queue_depth", mq.depth)
    node.add_u32("qcom,peer-vmid", mq.peer)
    _interrupts(node, mq.virq, mq.edge)


def _reserved_memory(root: Node, shms: Sequence[ShmResource]) -> None:
    rsv = root.child("reserved-memory") or root.add_node("reserved-memory")
    if rsv.prop("ranges") is None:
        rsv.add_u32("#address-cells", 2).add_u32("#size-cells", 2).add_empty("ranges")
    for shm in sorted(shms, key=lambda s: s.ipa):
        node = rsv.add_node(f"shm@{shm.ipa:x}")
        node.add_strings("compatible", ("qcom,shared-memory", "gunyah-net,shm"))
        node.add_cells("reg", (shm.ipa >> 32, shm.ipa & 0xFFFF_FFFF,
                               shm.size >> 32, shm.size & 0xFFFF_FFFF))
        node.add_empty("no-map")
        node.add_u32("label", shm.label).add_u32("qcom,label", shm.label)
        node.add_string("gunyah-net,name", shm.name)
