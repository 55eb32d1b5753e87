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

The builders ``add_hypervisor_node``, ``add_vm_id_node``, ``add_cap_node``,
``add_msgq_pair_node`` and ``add_rm_rpc_node`` are shared with the RM's in-place overlay
(``rm.dt_overlay``), so statically configured VMs and RM-created VMs see one layout. The RM RPC
node is ``<generate>@<rx cap>`` (the HLOS's ``/hypervisor/gunyah-resource-mgr@<rx cap>``) with
``reg = <tx_cap rx_cap>`` as two u64, ``interrupts = <tx>, <rx>``, ``qcom,is-full-duplex``,
message sizes, queue depths and ``qcom,free-irq-start``. ``interrupt_cells`` encodes an INTID as
an "arm,gic-v3" specifier: SPI (class 0, INTID - 32), PPI (1, INTID - 16), extended SPI
(2, INTID - 4096), extended PPI (3, INTID - 1056), flags 1 edge or 4 level (RM ``dt_overlay.c``).

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..abi.rm import RPC_MESSAGE_SIZE, RPC_QUEUE_DEPTH
from ..wire.resources import (DoorbellResource, MsgqueueResource, Resource, RmRpcResource,
                              ShmResource)
from .fdt import FdtError, Node

HYPERVISOR_COMPATIBLE = ("gunyah-hypervisor", "qcom,gunyah-hypervisor-1.0",
                         "qcom,gunyah-hypervisor", "simple-bus")
HLOS_HYPERVISOR_COMPATIBLE = HYPERVISOR_COMPATIBLE[1:]
"""The HLOS's /hypervisor lacks "gunyah-hypervisor" (RM ``vm_dt.c``)."""
VM_ID_COMPATIBLE = ("qcom,gunyah-vm-id-1.0", "qcom,gunyah-vm-id")
MSGQ_COMPATIBLE = ("qcom,gunyah-message-queue", "qcom,gunyah-capability")
RM_COMPATIBLE = ("gunyah-resource-manager", "qcom,resource-manager-1-0",
                 "qcom,resource-manager", *MSGQ_COMPATIBLE)
RM_NODE_PATH = "/hypervisor/gunyah-resource-mgr"
RM_FREE_IRQ_START = 960
"""RM-allocated VIRQs of non-RM VMs start at INTID 960 (RM ``irq_manager.c``)."""
_CAPABILITY = "qcom,gunyah-capability"
GIC_SPI = 0
IRQ_TYPE_EDGE_RISING = 1
IRQ_TYPE_LEVEL_HIGH = 4
IRQ_CLASSES = ((0, 32, 1020), (1, 16, 32), (2, 4096, 5120), (3, 1056, 1120))
"""(specifier class, first INTID, end INTID): SPI, PPI, extended SPI, extended PPI."""
OWNER_VMID_NONE = 0xFFFF
"""gunyah-net's statically configured VMs have no owner VM."""
HLOS_VMID = 3
"""The host VM (HLOS): its ``/hypervisor`` lacks "gunyah-hypervisor" in ``compatible``."""


def interrupt_cells(intid: int, edge: bool) -> tuple[int, int, int]:
    """Returns the "arm,gic-v3" specifier <class number flags> of ``intid``."""
    for kind, first, end in IRQ_CLASSES:
        if first <= intid < end:
            return kind, intid - first, IRQ_TYPE_EDGE_RISING if edge else IRQ_TYPE_LEVEL_HIGH
    raise FdtError(f"INTID {intid} is no SPI, PPI, extended SPI or extended PPI")


def add_hypervisor_node(root: Node, *, hlos: bool = False) -> Node:
    """Adds and returns ``/hypervisor`` with its cell sizes and compatible list."""
    hyp = root.add_node("hypervisor")
    hyp.add_u32("#address-cells", 2).add_u32("#size-cells", 0)
    hyp.add_strings("compatible", HLOS_HYPERVISOR_COMPATIBLE if hlos else HYPERVISOR_COMPATIBLE)
    return hyp


def add_vm_id_node(hyp: Node, *, vmid: int, owner_vmid: int | None, image_name: str | None,
                   vm_uri: str | None = None, vm_guid: str | None = None,
                   peers: Sequence[str] = ()) -> Node:
    """Adds ``qcom,gunyah-vm``: the VM's identity as the RM writes it."""
    vm = hyp.add_node("qcom,gunyah-vm").add_strings("compatible", VM_ID_COMPATIBLE)
    vm.add_u32("qcom,vmid", vmid)
    if owner_vmid is not None:
        vm.add_u32("qcom,owner-vmid", owner_vmid)
    vm.add_string("qcom,vendor", "Qualcomm")
    for name, text in (("qcom,image-name", image_name), ("qcom,vm-uri", vm_uri),
                       ("qcom,vm-guid", vm_guid)):
        if text is not None:
            vm.add_string(name, text)
    if peers:
        vm.add_strings("qcom,peers", peers)
    return vm


def add_msgq_pair_node(parent: Node, name: str, *, tx_cap: int, rx_cap: int,
                       tx_irq: tuple[int, bool], rx_irq: tuple[int, bool], message_size: int,
                       queue_depth: int, compatible: Sequence[str] = MSGQ_COMPATIBLE,
                       free_irq_start: int = 0, vdevice_handle: int | None = None,
                       console_dev: bool = False) -> Node:
    """Adds ``<name>@<rx cap>``: a full-duplex message-queue pair; irqs are (INTID, edge)."""
    node = parent.add_node(f"{name}@{rx_cap:x}").add_strings("compatible", compatible)
    node.add_bytes("reg", tx_cap.to_bytes(8, "big") + rx_cap.to_bytes(8, "big"))
    node.add_cells("interrupts", interrupt_cells(*tx_irq) + interrupt_cells(*rx_irq))
    if console_dev:
        node.add_empty("qcom,console-dev")
    node.add_u32("qcom,free-irq-start", free_irq_start).add_empty("qcom,is-full-duplex")
    for prop in ("tx-message-size", "rx-message-size"):
        node.add_u32(f"qcom,{prop}", message_size)
    for prop in ("tx-queue-depth", "rx-queue-depth"):
        node.add_u32(f"qcom,{prop}", queue_depth)
    if vdevice_handle is not None:
        node.add_u32("qcom,vdevice-handle", vdevice_handle)
    return node


def add_rm_rpc_node(parent: Node, name: str = "gunyah-resource-mgr", *, tx_cap: int,
                    rx_cap: int, tx_virq: int, rx_virq: int,
                    message_size: int = RPC_MESSAGE_SIZE, queue_depth: int = RPC_QUEUE_DEPTH,
                    free_irq_start: int = RM_FREE_IRQ_START,
                    push_compatible: Sequence[str] = (), vdevice_handle: int | None = None,
                    console_dev: bool = False) -> Node:
    """Adds the ``gunyah-resource-manager`` node: the VM's RM RPC queues (TX is VM to RM)."""
    return add_msgq_pair_node(
        parent, name, tx_cap=tx_cap, rx_cap=rx_cap, tx_irq=(tx_virq, True),
        rx_irq=(rx_virq, True), message_size=message_size, queue_depth=queue_depth,
        compatible=(*push_compatible, *RM_COMPATIBLE), free_irq_start=free_irq_start,
        vdevice_handle=vdevice_handle, console_dev=console_dev)


def add_hypervisor_nodes(root: Node, *, vmid: int, name: str,
                         resources: Sequence[Resource]) -> Node:
    """Adds ``/hypervisor`` (and ``/reserved-memory`` for shm) to ``root``; returns /hypervisor.

    The host VM (vmid 3) gets the HLOS compatible list. The RM RPC node comes first, right after
    ``qcom,gunyah-vm``, as in the RM's overlay."""
    hyp = add_hypervisor_node(root, hlos=vmid == HLOS_VMID)
    add_vm_id_node(hyp, vmid=vmid, owner_vmid=OWNER_VMID_NONE, image_name=name)
    for resource in resources:
        if isinstance(resource, RmRpcResource):
            add_rm_rpc_node(hyp, tx_cap=resource.tx_cap, rx_cap=resource.rx_cap,
                            tx_virq=resource.tx_virq, rx_virq=resource.rx_virq)
    shms = []
    for resource in resources:
        match resource:
            case DoorbellResource():
                _doorbell_node(hyp, resource)
            case MsgqueueResource():
                _msgqueue_node(hyp, resource)
            case ShmResource():
                shms.append(resource)
            case RmRpcResource():
                pass  # added above
    if shms:
        _reserved_memory(root, shms)
    return hyp


def add_cap_node(parent: Node, node_name: str, cap: int, compatible: str, label: int) -> Node:
    """Adds ``<node_name>@<cap>``: one capability, ``reg`` = the 64-bit cap, and its label."""
    node = parent.add_node(f"{node_name}@{cap:x}")
    node.add_strings("compatible", (compatible, _CAPABILITY))
    node.add_cells("reg", (cap >> 32, cap & 0xFFFF_FFFF))
    node.add_u32("qcom,label", label).add_u32("label", label)
    return node


def _interrupts(node: Node, virq: int | None, edge: bool) -> None:
    if virq is not None:
        node.add_cells("interrupts", interrupt_cells(virq, edge))


def _doorbell_node(hyp: Node, db: DoorbellResource) -> None:
    if db.kind == "doorbell":
        node = add_cap_node(hyp, "doorbell", db.cap, "qcom,gunyah-doorbell", db.label)
        _interrupts(node, db.virq, db.edge)
    else:
        node = add_cap_node(hyp, "doorbell-source", db.cap, "qcom,gunyah-doorbell-source",
                         db.label)
    node.add_u32("qcom,peer-vmid", db.peer)


def _msgqueue_node(hyp: Node, mq: MsgqueueResource) -> None:
    name = "message-queue-tx" if mq.kind == "msgqueue-tx" else "message-queue-rx"
    node = add_cap_node(hyp, name, mq.cap, "qcom,gunyah-message-queue", mq.label)
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
