"""VM_INIT's plan: from a VM's parsed ``/gunyah-vm-config`` to the VM_CREATE platform call, the
``/hypervisor`` overlay and the owner's VM_GET_HYP_RESOURCES entries. Pure.

``plan_vm(config, vmid, owner, peers)`` decides what the VM gets:

- its RM queue pair, always (depth 8, 240-byte messages, as the RM creates it), with the
  ``rm-rpc`` vdevice's virqs if the DT fixes them;
- one doorbell per ``doorbell`` (the VM receives; the peer rings) or ``doorbell-source`` (the VM
  rings; the peer receives) vdevice;
- one message queue per ``message-queue`` vdevice (``is-sender``: VM to peer) and two per
  ``message-queue-pair`` (VM to peer first, then peer to VM).

Every peer must be the owner (``peer-default``, or ``peer`` naming the owner): gunyah-net's RM
connects a new VM's vdevices to its owner only. VM-side virqs the DT leaves out are allocated
upward from INTID 960 (RM ``irq_manager.c``), skipping those the DT names; all must be SPIs.
Doorbell virqs the RM allocates in the VM are level-triggered, queue virqs edge-triggered.

The owner's receiving ends get a virq too, as in Gunyah's RM (``vm_config.c`` allocates the
peer's virq of every doorbell and queue it creates): the owner's virq of a doorbell the VM rings
(``doorbell-source``), the not-empty virq of a queue the VM sends on, and the not-full virq of a
queue the owner sends on. They come from the owner's free virqs (``owner_virqs``, rm/virq_pool.py;
None: the owner's ends get none), are edge-triggered (the RM's ``virq_edge``; Linux maps every
VM_GET_HYP_RESOURCES virq edge-rising) and are reported in the owner's VM_GET_HYP_RESOURCES
entries. A doorbell the owner rings has no owner virq (its entry says virq 0).
``VmPlan.owner_virqs()`` lists them for the caller to take from the owner's pool. Unknown vdevice
types are skipped (``VmPlan.skipped``); ``shm`` vdevices and anything else the RM cannot build
(an owner with no free virq left) raise ``VmCreateError`` carrying the RM error VM_INIT replies.

``created_vm(plan, reply)`` then validates VM_CREATE's reply and returns the caps, the overlay
and the owner's resources.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from gunyah_net.abi.platform import RAM_BASE
from gunyah_net.abi.rm import RPC_MESSAGE_SIZE, RPC_QUEUE_DEPTH, ResourceType, RmError
from gunyah_net.dt.hypervisor import RM_NODE_PATH

from .dt_overlay import DoorbellNode, HypervisorOverlay, MsgQueueNode, MsgQueuePairNode, RmRpcNode
from .dt_props import Irq
from .vm_config import VmDtConfig
from .vm_config_vdevices import (
    DoorbellVdevice,
    MsgQueuePairVdevice,
    MsgQueueVdevice,
    OtherVdevice,
    RmRpcVdevice,
    ShmVdevice,
)
from .virq_pool import SPI_FIRST, SPI_LAST, NoFreeVirq, VirqPool
from .vm_payloads import HypResource


class VmCreateError(Exception):
    """VM_INIT cannot create this VM; ``error`` is the RM error its reply carries."""

    def __init__(self, error: RmError, reason: str) -> None:
        super().__init__(f"{error.name}: {reason}")
        self.error = error
        self.reason = reason


@dataclass(frozen=True)
class DoorbellPlan:
    """One doorbell: who rings it, who receives it, and the receiver's virq: ``irq`` if it is
    the VM, ``owner_irq`` if it is the owner (None: unbound)."""

    vdevice: DoorbellVdevice
    sender: int
    receiver: int
    irq: Irq | None
    owner_irq: Irq | None = None

    def receiver_irq(self) -> Irq | None:
        """The virq VM_CREATE binds in the receiver."""
        return self.owner_irq if self.vdevice.source else self.irq


@dataclass(frozen=True)
class MsgqueuePlan:
    """One message queue from ``sender`` to ``receiver``; ``irq`` is the VM's end and
    ``owner_irq`` the owner's (not-full at the sender, not-empty at the receiver; None: unbound)."""

    vdevice: MsgQueueVdevice | MsgQueuePairVdevice
    sender: int
    receiver: int
    irq: Irq
    owner_irq: Irq | None = None


@dataclass(frozen=True)
class VmPlan:
    """Everything VM_INIT creates for one VM."""

    vmid: int
    owner: int
    name: str
    vcpus: int
    image_base: int
    config: VmDtConfig
    rm_rpc: RmRpcVdevice | None
    rm_irqs: tuple[Irq, Irq]
    """The VM's ends of its RM queue pair: (tx not-full, rx not-empty)."""
    doorbells: tuple[DoorbellPlan, ...] = ()
    msgqueues: tuple[MsgqueuePlan, ...] = ()
    skipped: tuple[str, ...] = ()
    """Vdevices of types the RM does not create, as "name (type)"."""

    def request(self) -> dict:
        """Returns VM_CREATE's msgpack data map (the RM VM contract)."""
        return {
            "name": self.name,
            "rm_virqs": [self.rm_irqs[0].intid, self.rm_irqs[1].intid],
            "doorbells": [_doorbell_request(d) for d in self.doorbells],
            "msgqueues": [{"sender": q.sender, "receiver": q.receiver,
                           "depth": q.vdevice.queue_depth, "size": q.vdevice.message_size,
                           "tx_virq": _intid(q.irq if q.sender == self.vmid else q.owner_irq),
                           "rx_virq": _intid(q.irq if q.receiver == self.vmid else q.owner_irq),
                           "label": q.vdevice.label} for q in self.msgqueues],
        }

    def owner_virqs(self) -> tuple[int, ...]:
        """The owner's virqs this VM's doorbells and queues take, in vdevice order."""
        irqs = [*(d.owner_irq for d in self.doorbells), *(q.owner_irq for q in self.msgqueues)]
        return tuple(irq.intid for irq in irqs if irq is not None)

    def vm_virqs(self) -> tuple[int, ...]:
        """Every virq of the VM itself: its RM queues', then its doorbells' and queues'."""
        irqs = [*self.rm_irqs, *(d.irq for d in self.doorbells), *(q.irq for q in self.msgqueues)]
        return tuple(irq.intid for irq in irqs if irq is not None)


def _intid(irq: Irq | None) -> int | None:
    return irq.intid if irq is not None else None


def _doorbell_request(bell: DoorbellPlan) -> dict:
    irq = bell.receiver_irq()
    return {"sender": bell.sender, "receiver": bell.receiver, "virq": _intid(irq),
            "label": bell.vdevice.label, "source_can_clear": bell.vdevice.source_can_clear,
            "edge": irq.edge if irq is not None else False}


def plan_vm(config: VmDtConfig, vmid: int, owner: int, peers: Mapping[str, int],
            owner_virqs: VirqPool | None = None) -> VmPlan:
    """Plans VM ``vmid``'s objects from its configuration; ``peers`` maps VM names to vmids.
    The owner's virqs are chosen from ``owner_virqs.free()``; the pool is not changed."""
    devices = config.vdevices.devices
    rpcs = [d for d in devices if isinstance(d, RmRpcVdevice)]
    if len(rpcs) > 1:
        raise VmCreateError(RmError.ARGUMENT_INVALID, "the DT has more than one rm-rpc vdevice")
    rpc = rpcs[0] if rpcs else None
    virqs = _VmVirqs(_fixed_irqs(config))
    theirs = _OwnerVirqs(owner, owner_virqs)
    rm_irqs = rpc.irqs if rpc is not None and rpc.irqs else (virqs.edge(), virqs.edge())
    doorbells: list[DoorbellPlan] = []
    queues: list[MsgqueuePlan] = []
    skipped: list[str] = []
    for device in devices:
        match device:
            case DoorbellVdevice(source=True):
                _owner_peer(device.peer, device.name, owner, peers)
                doorbells.append(DoorbellPlan(device, vmid, owner, None, theirs.edge()))
            case DoorbellVdevice():
                _owner_peer(device.peer, device.name, owner, peers)
                doorbells.append(DoorbellPlan(device, owner, vmid, device.irq or virqs.level()))
            case MsgQueueVdevice():
                _owner_peer(device.peer, device.name, owner, peers)
                ends = (vmid, owner) if device.is_sender else (owner, vmid)
                queues.append(MsgqueuePlan(device, *ends, device.irq or virqs.edge(),
                                           theirs.edge()))
            case MsgQueuePairVdevice():
                _owner_peer(device.peer, device.name, owner, peers)
                tx, rx = device.irqs or (virqs.edge(), virqs.edge())
                queues += [MsgqueuePlan(device, vmid, owner, tx, theirs.edge()),
                           MsgqueuePlan(device, owner, vmid, rx, theirs.edge())]
            case ShmVdevice():
                raise VmCreateError(RmError.ARGUMENT_INVALID, f"vdevice {device.name}: shm "
                                    "vdevices are not supported by gunyah-net's RM")
            case OtherVdevice():
                skipped.append(f"{device.name} ({device.vdevice_type})")
            case RmRpcVdevice():
                pass
    _check_spis([*rm_irqs, *(d.irq for d in doorbells if d.irq), *(q.irq for q in queues)])
    base = config.memory.base_address
    return VmPlan(vmid, owner, f"vm-{vmid:x}", len(config.vcpus.cpus),
                  RAM_BASE if base is None else base, config, rpc, (rm_irqs[0], rm_irqs[1]),
                  tuple(doorbells), tuple(queues), tuple(skipped))


def _owner_peer(peer: str | None, device: str, owner: int, peers: Mapping[str, int]) -> None:
    if peer is None:
        return
    if peer not in peers:
        raise VmCreateError(RmError.ARGUMENT_INVALID, f"vdevice {device}: peer {peer!r} is no "
                            "VM the RM knows")
    if peers[peer] != owner:
        raise VmCreateError(RmError.ARGUMENT_INVALID, f"vdevice {device}: peer {peer!r} is not "
                            f"the owner (VM {owner:#x}); gunyah-net's RM connects a new VM's "
                            "vdevices to its owner only")


def _fixed_irqs(config: VmDtConfig) -> set[int]:
    fixed: set[int] = set()
    for device in config.vdevices.devices:
        match device:
            case RmRpcVdevice(irqs=irqs) | MsgQueuePairVdevice(irqs=irqs) if irqs:
                fixed |= {irq.intid for irq in irqs}
            case DoorbellVdevice(irq=irq) | MsgQueueVdevice(irq=irq) if irq:
                fixed.add(irq.intid)
    return fixed


def _check_spis(irqs: list[Irq]) -> None:
    seen: set[int] = set()
    for irq in irqs:
        if not SPI_FIRST <= irq.intid <= SPI_LAST:
            raise VmCreateError(RmError.ARGUMENT_INVALID, f"virq {irq.intid} is not an SPI "
                                f"({SPI_FIRST}..{SPI_LAST})")
        if irq.intid in seen:
            raise VmCreateError(RmError.ARGUMENT_INVALID, f"virq {irq.intid} is used twice")
        seen.add(irq.intid)


class _VmVirqs:
    """Hands out the VM's free SPIs from 960 upward, skipping the ones its DT fixes."""

    def __init__(self, taken: set[int]) -> None:
        self._pool = VirqPool(taken=taken)

    def _next(self) -> int:
        try:
            return self._pool.take()
        except NoFreeVirq as exc:
            raise VmCreateError(RmError.NORESOURCE, str(exc)) from exc

    def edge(self) -> Irq:
        return Irq(self._next(), True)

    def level(self) -> Irq:
        return Irq(self._next(), False)


class _OwnerVirqs:
    """Hands out the owner's free virqs (edge) in order, leaving its pool as it is; none if the
    owner has no pool."""

    def __init__(self, owner: int, pool: VirqPool | None) -> None:
        self._owner = owner
        self._free: Iterator[int] | None = pool.free() if pool is not None else None

    def edge(self) -> Irq | None:
        if self._free is None:
            return None
        for intid in self._free:
            return Irq(intid, True)
        raise VmCreateError(RmError.NORESOURCE, f"the owner (VM {self._owner:#x}) has no free "
                            f"virq left for its end of a vdevice")


# --- VM_CREATE's reply ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RmQueueCaps:
    """The new VM's RM queue pair: its own caps (tx: VM to RM) and the RM's, with RM virqs."""

    vm_tx_cap: int
    vm_rx_cap: int
    rm_tx_cap: int
    rm_rx_cap: int
    rm_tx_virq: int
    rm_rx_virq: int


@dataclass(frozen=True)
class CreatedVm:
    """What VM_CREATE made: memory caps (RM cspace), RM queue caps, and per doorbell and queue
    (tx_cap, rx_cap): the sender's and the receiver's cap."""

    addrspace: int
    memextent: int
    rm: RmQueueCaps
    doorbells: tuple[tuple[int, int], ...]
    msgqueues: tuple[tuple[int, int], ...]


def parse_created(plan: VmPlan, reply: object) -> CreatedVm:
    """Validates VM_CREATE's reply data for ``plan``; raises ``VmCreateError`` if malformed."""
    if not isinstance(reply, dict):
        raise _bad_reply(f"is a {type(reply).__name__}, not a map")
    rm = reply.get("rm")
    if not isinstance(rm, dict):
        raise _bad_reply("has no 'rm' map")
    rm_caps = RmQueueCaps(*(_cap(rm, key, "rm") for key in (
        "vm_tx_cap", "vm_rx_cap", "rm_tx_cap", "rm_rx_cap", "rm_tx_virq", "rm_rx_virq")))
    return CreatedVm(_cap(reply, "addrspace", ""), _cap(reply, "memextent", ""), rm_caps,
                     _pairs(reply, "doorbells", len(plan.doorbells)),
                     _pairs(reply, "msgqueues", len(plan.msgqueues)))


def _bad_reply(what: str) -> VmCreateError:
    return VmCreateError(RmError.NORESOURCE, f"VM_CREATE's reply {what}")


def _cap(entry: dict, key: str, where: str) -> int:
    value = entry.get(key)
    if type(value) is not int or not 0 <= value < 1 << 64:
        raise _bad_reply(f"{where}.{key} is {value!r}, not a 64-bit value")
    return value


def _pairs(reply: dict, key: str, count: int) -> tuple[tuple[int, int], ...]:
    entries = reply.get(key)
    if not isinstance(entries, list) or len(entries) != count:
        raise _bad_reply(f"'{key}' is not a list of {count} entries")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise _bad_reply(f"{key}[{i}] is not a map")
    return tuple((_cap(e, "tx_cap", f"{key}[{i}]"), _cap(e, "rx_cap", f"{key}[{i}]"))
                 for i, e in enumerate(entries))


# --- what the VM and its owner see ----------------------------------------------------------------


def overlay(plan: VmPlan, created: CreatedVm) -> HypervisorOverlay:
    """Returns the ``/hypervisor`` nodes the RM writes into the new VM's DT."""
    nodes: list[DoorbellNode | MsgQueueNode | MsgQueuePairNode] = []
    for bell, (tx_cap, rx_cap) in zip(plan.doorbells, created.doorbells):
        device = bell.vdevice
        nodes.append(DoorbellNode(device.generate, tx_cap if device.source else rx_cap,
                                  device.label, source=device.source, irq=bell.irq))
    queues = iter(zip(plan.msgqueues, created.msgqueues))
    for queue, (tx_cap, rx_cap) in queues:
        match queue.vdevice:
            case MsgQueueVdevice() as device:
                nodes.append(MsgQueueNode(device.generate, tx_cap if device.is_sender else rx_cap,
                                          device.label, device.is_sender, queue.irq,
                                          device.message_size, device.queue_depth))
            case MsgQueuePairVdevice() as device:
                back, (_, back_rx_cap) = next(queues)
                nodes.append(MsgQueuePairNode(device.generate, tx_cap, back_rx_cap, queue.irq,
                                              back.irq, device.label, device.message_size,
                                              device.queue_depth, peer_vmid=plan.owner))
    config = plan.config
    return HypervisorOverlay(plan.vmid, plan.owner, config.image_name or plan.name,
                             _rpc_node(plan, created.rm), vm_uri=config.vm_uri,
                             vm_guid=config.vm_guid, vdevices=tuple(nodes))


def _rpc_node(plan: VmPlan, rm: RmQueueCaps) -> RmRpcNode:
    rpc = plan.rm_rpc
    return RmRpcNode(rm.vm_tx_cap, rm.vm_rx_cap, plan.rm_irqs[0].intid, plan.rm_irqs[1].intid,
                     generate=rpc.generate if rpc else RM_NODE_PATH,
                     message_size=RPC_MESSAGE_SIZE, queue_depth=RPC_QUEUE_DEPTH,
                     push_compatible=rpc.push_compatible if rpc else (),
                     console_dev=rpc.console_dev if rpc else False)


def owner_resources(plan: VmPlan, created: CreatedVm) -> tuple[HypResource, ...]:
    """Returns VM_GET_HYP_RESOURCES's entries for the owner: its end of every doorbell and
    queue (caps in the owner's cspace, its virq or 0), numbered from resource handle 1."""
    entries: list[HypResource] = []
    for bell, (tx_cap, rx_cap) in zip(plan.doorbells, created.doorbells):
        owner_rings = bell.sender == plan.owner
        kind = ResourceType.DOORBELL_SRC if owner_rings else ResourceType.DOORBELL
        entries.append(HypResource(kind, plan.vmid, len(entries) + 1, bell.vdevice.label,
                                   tx_cap if owner_rings else rx_cap,
                                   virq=_intid(bell.owner_irq) or 0))
    for queue, (tx_cap, rx_cap) in zip(plan.msgqueues, created.msgqueues):
        owner_sends = queue.sender == plan.owner
        kind = ResourceType.MSGQ_SEND if owner_sends else ResourceType.MSGQ_RECV
        entries.append(HypResource(kind, plan.vmid, len(entries) + 1, queue.vdevice.label,
                                   tx_cap if owner_sends else rx_cap,
                                   virq=_intid(queue.owner_irq) or 0))
    return tuple(entries)
