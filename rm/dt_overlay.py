"""Writes the RM's ``/hypervisor`` overlay into a VM's DTB, in place, within its totalsize.

What the RM adds (gunyah-abi.md 5.2; RM ``vm_creation.c`` create_dt_nodes, ``dto_construct.c``,
``vm_dt.c``), with the layout of ``gunyah_net.dt.hypervisor``:

- ``/hypervisor``: ``#address-cells = 2``, ``#size-cells = 0``, compatible "gunyah-hypervisor",
  "qcom,gunyah-hypervisor-1.0", "qcom,gunyah-hypervisor", "simple-bus" (the HLOS's list lacks
  the first);
- ``/hypervisor/qcom,gunyah-vm``: ``qcom,vmid``, ``qcom,owner-vmid``, ``qcom,vendor``,
  ``qcom,image-name``, optional ``qcom,vm-uri``, ``qcom,vm-guid``, ``qcom,peers``;
- the RM RPC node ``<generate>@<rx cap>`` (default ``/hypervisor/gunyah-resource-mgr``);
- one node ``<generate>@<cap>`` per doorbell and message queue, ``<generate>@<rx cap>`` per
  message-queue pair, with ``reg`` caps, ``interrupts`` and labels;
- ``qcom,gunyah-capability = <u64 cap>`` on each cpu node.

The tree is parsed, extended and written back with its memory reservations and boot CPU; the
original nodes and properties are unchanged, and the blob keeps its totalsize. The RM refuses a
DT that already has ``/hypervisor``, names a missing cpu node or INTID, or whose result does not
fit in the blob: ``OverlayError``, which the RM reports as the VM's start failure.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from gunyah_net.abi.rm import RPC_MESSAGE_SIZE, RPC_QUEUE_DEPTH
from gunyah_net.dt.fdt import (
    FDT_HEADER_SIZE,
    FDT_LAST_COMP_VERSION,
    FDT_MAGIC,
    FDT_RSVMAP_ENTRY_SIZE,
    FDT_VERSION,
    FdtError,
    Node,
)
from gunyah_net.dt.hypervisor import (
    MSGQ_COMPATIBLE,
    RM_FREE_IRQ_START,
    RM_NODE_PATH,
    add_cap_node,
    add_hypervisor_node,
    add_msgq_pair_node,
    add_rm_rpc_node,
    add_vm_id_node,
    interrupt_cells,
)
from gunyah_net.dt.reader import Dtb, read_dtb, read_header

from .dt_props import Irq

__all__ = ["DoorbellNode", "HypervisorOverlay", "MsgQueueNode", "MsgQueuePairNode",
           "OverlayError", "RmRpcNode", "VcpuCap", "apply_overlay", "write_overlay"]


class OverlayError(ValueError):
    """The overlay cannot be written into this DTB; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RmRpcNode:
    """The VM's RM message-queue pair: TX (VM to RM) and RX caps and VIRQs."""

    tx_cap: int
    rx_cap: int
    tx_virq: int
    rx_virq: int
    generate: str = RM_NODE_PATH
    message_size: int = RPC_MESSAGE_SIZE
    queue_depth: int = RPC_QUEUE_DEPTH
    free_irq_start: int = RM_FREE_IRQ_START
    push_compatible: tuple[str, ...] = ()
    vdevice_handle: int | None = None
    console_dev: bool = False


@dataclass(frozen=True)
class DoorbellNode:
    """A doorbell cap: the VM receives (``irq`` set) or, with ``source``, rings it."""

    generate: str
    cap: int
    label: int
    source: bool = False
    irq: Irq | None = None


@dataclass(frozen=True)
class MsgQueueNode:
    """One message-queue cap; ``irq`` is not-full for a sender, not-empty for a receiver."""

    generate: str
    cap: int
    label: int
    is_sender: bool
    irq: Irq
    message_size: int = 240
    queue_depth: int = 8


@dataclass(frozen=True)
class MsgQueuePairNode:
    """A message-queue pair to a peer: TX and RX caps and VIRQs."""

    generate: str
    tx_cap: int
    rx_cap: int
    tx_irq: Irq
    rx_irq: Irq
    label: int
    message_size: int = 240
    queue_depth: int = 8
    peer_vmid: int | None = None
    peer: str | None = None


@dataclass(frozen=True)
class VcpuCap:
    """The cap of the vCPU whose cpu node is at ``path``."""

    path: str
    cap: int


VdeviceNode = DoorbellNode | MsgQueueNode | MsgQueuePairNode


@dataclass(frozen=True)
class HypervisorOverlay:
    """Everything the RM writes into one VM's DT."""

    vmid: int
    owner_vmid: int | None
    image_name: str | None
    rm_rpc: RmRpcNode | None
    hlos: bool = False
    vm_uri: str | None = None
    vm_guid: str | None = None
    peers: tuple[str, ...] = ()
    vdevices: tuple[VdeviceNode, ...] = ()
    vcpus: tuple[VcpuCap, ...] = ()


def apply_overlay(dtb: bytes, overlay: HypervisorOverlay) -> bytes:
    """Returns a copy of ``dtb`` (its totalsize bytes) with the overlay written in."""
    buffer = bytearray(dtb)
    write_overlay(buffer, overlay)
    return bytes(buffer[:read_header(buffer).totalsize])


def write_overlay(buffer: bytearray, overlay: HypervisorOverlay) -> int:
    """Writes the overlay into the DTB at the start of ``buffer``, within its totalsize.

    Returns the bytes the new tree uses; the rest of totalsize is zeroed. ``buffer`` is left
    untouched when the overlay is refused.
    """
    try:
        dtb = read_dtb(buffer)
    except FdtError as exc:
        raise OverlayError(f"the VM DTB is malformed: {exc}") from exc
    if dtb.root.find("/hypervisor") is not None:
        raise OverlayError("the VM DT already has a /hypervisor node")
    try:
        _add_nodes(dtb.root, overlay)
    except FdtError as exc:
        raise OverlayError(f"cannot build the overlay: {exc}") from exc
    blob = _serialise(dtb)
    totalsize = dtb.header.totalsize
    if len(blob) > totalsize:
        raise OverlayError(f"the DT with its overlay needs {len(blob)} bytes; the blob's "
                           f"totalsize is {totalsize}")
    buffer[:totalsize] = blob + bytes(totalsize - len(blob))
    return len(blob)


def _add_nodes(root: Node, overlay: HypervisorOverlay) -> None:
    hyp = add_hypervisor_node(root, hlos=overlay.hlos)
    add_vm_id_node(hyp, vmid=overlay.vmid, owner_vmid=overlay.owner_vmid,
                   image_name=overlay.image_name, vm_uri=overlay.vm_uri,
                   vm_guid=overlay.vm_guid, peers=overlay.peers)
    if overlay.rm_rpc is not None:
        rpc = overlay.rm_rpc
        parent, name = _parent(root, rpc.generate)
        add_rm_rpc_node(parent, name, tx_cap=rpc.tx_cap, rx_cap=rpc.rx_cap,
                        tx_virq=rpc.tx_virq, rx_virq=rpc.rx_virq,
                        message_size=rpc.message_size, queue_depth=rpc.queue_depth,
                        free_irq_start=rpc.free_irq_start, push_compatible=rpc.push_compatible,
                        vdevice_handle=rpc.vdevice_handle, console_dev=rpc.console_dev)
    for vdevice in overlay.vdevices:
        _add_vdevice(root, vdevice)
    for vcpu in overlay.vcpus:
        cpu = root.find(vcpu.path)
        if cpu is None or vcpu.path in ("", "/"):
            raise FdtError(f"no cpu node {vcpu.path} for vCPU cap {vcpu.cap:#x}")
        cpu.add_u64("qcom,gunyah-capability", vcpu.cap)


def _add_vdevice(root: Node, vdevice: VdeviceNode) -> None:
    parent, name = _parent(root, vdevice.generate)
    match vdevice:
        case DoorbellNode(source=True):
            add_cap_node(parent, name, vdevice.cap, "qcom,gunyah-doorbell-source", vdevice.label)
        case DoorbellNode():
            node = add_cap_node(parent, name, vdevice.cap, "qcom,gunyah-doorbell",
                                vdevice.label)
            if vdevice.irq is not None:
                node.add_cells("interrupts", _cells(vdevice.irq))
        case MsgQueueNode():
            node = add_cap_node(parent, name, vdevice.cap, MSGQ_COMPATIBLE[0], vdevice.label)
            node.add_empty("is-sender" if vdevice.is_sender else "is-receiver")
            node.add_u32("tx_message_size", vdevice.message_size)
            node.add_u32("tx_queue_depth", vdevice.queue_depth)
            node.add_cells("interrupts", _cells(vdevice.irq))
        case MsgQueuePairNode():
            _add_pair(parent, name, vdevice)


def _add_pair(parent: Node, name: str, pair: MsgQueuePairNode) -> None:
    node = add_msgq_pair_node(parent, name, tx_cap=pair.tx_cap, rx_cap=pair.rx_cap,
                              tx_irq=(pair.tx_irq.intid, pair.tx_irq.edge),
                              rx_irq=(pair.rx_irq.intid, pair.rx_irq.edge),
                              message_size=pair.message_size, queue_depth=pair.queue_depth)
    if pair.peer_vmid is not None:
        node.add_u32("qcom,peer-vmid", pair.peer_vmid)
    if pair.peer is not None:
        node.add_string("peer", pair.peer)
    node.add_u32("qcom,label", pair.label).add_u32("label", pair.label)


def _cells(irq: Irq) -> tuple[int, int, int]:
    return interrupt_cells(irq.intid, irq.edge)


def _parent(root: Node, generate: str) -> tuple[Node, str]:
    """Returns the parent node of ``generate`` (created if missing) and the node's base name."""
    parts = [p for p in generate.split("/") if p]
    if not generate.startswith("/") or not parts:
        raise FdtError(f"generate path {generate!r} is not an absolute node path")
    node = root
    for part in parts[:-1]:
        node = node.child(part) or node.add_node(part)
    return node, parts[-1]


def _serialise(dtb: Dtb) -> bytes:
    """Serialises the tree with the original reservations and boot CPU, without padding."""
    body = dtb.root.to_dtb()
    fresh = read_header(body)
    dt_struct = body[fresh.off_dt_struct:fresh.off_dt_struct + fresh.size_dt_struct]
    dt_strings = body[fresh.off_dt_strings:fresh.off_dt_strings + fresh.size_dt_strings]
    rsvmap = b"".join(struct.pack(">QQ", r.address, r.size) for r in dtb.reservations)
    rsvmap += bytes(FDT_RSVMAP_ENTRY_SIZE)
    off_rsvmap = FDT_HEADER_SIZE
    off_struct = off_rsvmap + len(rsvmap)
    off_strings = off_struct + len(dt_struct)
    used = off_strings + len(dt_strings)
    header = struct.pack(">10I", FDT_MAGIC, dtb.header.totalsize, off_struct, off_strings,
                         off_rsvmap, FDT_VERSION, FDT_LAST_COMP_VERSION,
                         dtb.header.boot_cpuid_phys, len(dt_strings), len(dt_struct))
    return header + rsvmap + dt_struct + dt_strings + bytes(-used % 8)

