"""What `up` gives each VM: EL2 objects from the topology, virqs, caps and shared memory. Pure.

``provision(topology, vmids, shm_dir)`` plays the RM's part at VM creation:

- builds one ``El2`` holding every VM (by the vmids of the VM table);
- creates every ``[[doorbell]]`` (bound to ``virq`` of the receiver, level or edge as its
  ``trigger`` says) and every ``[[msgqueue]]`` (not-empty bound to ``rx_virq`` of the receiver,
  not-full to ``tx_virq`` of the sender; both edge: EL2 asserts them on threshold crossings only);
- places every ``[[shm]]`` region at one IPA, the same in every participant;
- creates the RM VM (vmid 0xFF) first, and every VM's RM RPC queue pair (``rm_queues.py``) last;
- describes each VM's caps and regions as ``gunyah_net.wire.resources`` values for its Welcome.

Virqs left out of the topology are allocated per VM upward from INTID 960 (Gunyah RM's
``qcom,free-irq-start``), skipping every virq the topology names explicitly in that VM, in file
order: doorbells (``virq``), then message queues (``rx_virq`` of the receiver, then ``tx_virq`` of
the sender). Shared-memory bases left out are allocated upward from the start of the shared-memory
window (1 GiB), 64 KiB aligned, at the lowest address that overlaps no region (explicit or
already placed) of any participant. A topology that has passed validation fails here only when a
VM runs out of default virqs or the window runs out of room: ``ProvisionError`` says which.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gunyah_net.abi.errors import HypError
from gunyah_net.abi.rm_platform import RM_VMID
from gunyah_net.config.model import (LAST_SPI, RESERVED_VIRQS, SHM_WINDOW_BASE, SHM_WINDOW_END,
                                     Topology, Trigger)
from gunyah_net.hyp.el2 import El2
from gunyah_net.hyp.vm import GuestResource
from gunyah_net.wire.resources import DoorbellResource, MsgqueueResource, Resource, ShmResource

from .rm_queues import RmQueuePair, RmVirqPool, provision_rm_pair, topology_rm_virqs
from .shm import shm_file_path
from .vmtable import RM_NAME

FREE_VIRQ_START = 960
"""First INTID of default allocations (Gunyah RM's qcom,free-irq-start for non-RM VMs)."""
SHM_ALIGN = 64 * 1024
"""Alignment of allocated shared-memory bases (explicit bases need only 4 KiB)."""


class ProvisionError(ValueError):
    """The validated topology cannot be provisioned: out of default virqs or shm address space."""


@dataclass(frozen=True)
class ShmRegion:
    """One ``[[shm]]`` region as placed: the file backing it and the IPA of every participant."""

    name: str
    label: int
    size: int
    ipa: int
    path: Path
    vmids: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Provisioned:
    """The outcome of provisioning: the EL2 model, each VM's resources and the shm regions."""

    el2: El2
    resources: Mapping[str, tuple[Resource, ...]]
    """Per VM name, in topology order: doorbells, then message queues, then shm regions, then
    its RM RPC pair (``rm-rpc``)."""
    shms: tuple[ShmRegion, ...]
    rm_pairs: Mapping[str, RmQueuePair] = field(default_factory=dict)
    """Per VM name: its RM RPC queue pair (rm_queues.py)."""
    rm_virqs: RmVirqPool = field(default_factory=RmVirqPool)
    """The RM VM's virqs: those of the static VMs' pairs are taken; VM_CREATE takes more."""


@dataclass(frozen=True)
class _Claim:
    """One virq a doorbell or queue needs in VM ``vm``; ``virq`` None means allocate it."""

    vm: str
    virq: int | None
    where: str


def _claims(topology: Topology) -> list[_Claim]:
    """Returns every virq claim in allocation order (doorbells, then queues: rx then tx)."""
    claims = [_Claim(bell.receiver, bell.virq, f"doorbell[{i}].virq")
              for i, bell in enumerate(topology.doorbells)]
    for i, queue in enumerate(topology.msgqueues):
        claims.append(_Claim(queue.receiver, queue.rx_virq, f"msgqueue[{i}].rx_virq"))
        claims.append(_Claim(queue.sender, queue.tx_virq, f"msgqueue[{i}].tx_virq"))
    return claims


def allocate_virqs(topology: Topology) -> list[int]:
    """Returns the virq of every claim (see ``_claims`` for the order), allocating the missing."""
    claims = _claims(topology)
    used: dict[str, set[int]] = {vm.name: set(RESERVED_VIRQS) for vm in topology.vms}
    for claim in claims:
        if claim.virq is not None:
            used[claim.vm].add(claim.virq)
    virqs = []
    for claim in claims:
        virq = claim.virq
        if virq is None:
            virq = _next_free(used[claim.vm], claim, topology.file)
            used[claim.vm].add(virq)
        virqs.append(virq)
    return virqs


def _next_free(used: set[int], claim: _Claim, file: str) -> int:
    for virq in range(FREE_VIRQ_START, LAST_SPI + 1):
        if virq not in used:
            return virq
    raise ProvisionError(
        f"{file}: {claim.where}: VM {claim.vm!r} has no free default virq left (INTIDs "
        f"{FREE_VIRQ_START}..{LAST_SPI} are all taken); give it an explicit virq below "
        f"{FREE_VIRQ_START}")


def place_shms(topology: Topology) -> list[int]:
    """Returns the IPA of every ``[[shm]]`` region, allocating the bases left out."""
    bases: list[int | None] = [shm.base for shm in topology.shms]
    for index, shm in enumerate(topology.shms):
        if shm.base is not None:
            continue
        members = set(shm.vms)
        taken = sorted((base, base + other.size) for base, other in zip(bases, topology.shms)
                       if base is not None and members & set(other.vms))
        bases[index] = _lowest_gap(taken, shm.size, f"{topology.file}: shm[{index}] "
                                                    f"{shm.name!r}")
    return [base for base in bases if base is not None]


def _lowest_gap(taken: list[tuple[int, int]], size: int, what: str) -> int:
    """Returns the lowest SHM_ALIGN-aligned base in the window where ``size`` bytes fit."""
    base = SHM_WINDOW_BASE
    for start, end in taken:
        if base + size <= start:
            break
        base = max(base, -(-end // SHM_ALIGN) * SHM_ALIGN)
    if base + size > SHM_WINDOW_END:
        raise ProvisionError(
            f"{what}: no room for {size:#x} bytes in the shared-memory window "
            f"[{SHM_WINDOW_BASE:#x}, {SHM_WINDOW_END:#x}) beside the regions its VMs already see")
    return base


def provision(topology: Topology, vmids: Mapping[str, int], shm_dir: Path) -> Provisioned:
    """Builds the EL2 model of ``topology`` and every VM's resources (shm files in ``shm_dir``)."""
    el2 = El2()
    el2.add_vm(RM_VMID, RM_NAME)  # First: it holds the caps of every VM's memory and RM queues.
    for vm in topology.vms:
        el2.add_vm(vmids[vm.name], vm.name, vcpus=vm.vcpus)
    claim_virqs = allocate_virqs(topology)
    virqs = iter(claim_virqs)
    rm_virqs = RmVirqPool()
    try:
        for bell in topology.doorbells:
            el2.provision_doorbell(vmids[bell.sender], vmids[bell.receiver], next(virqs),
                                   bell.trigger is Trigger.EDGE, label=bell.label)
        for queue in topology.msgqueues:
            rx_virq, tx_virq = next(virqs), next(virqs)
            el2.provision_msgqueue(vmids[queue.sender], vmids[queue.receiver], queue.depth,
                                   queue.message_size, tx_virq, rx_virq, label=queue.label)
        rm_pairs = _provision_rm_pairs(el2, topology, vmids, claim_virqs, rm_virqs)
    except HypError as exc:
        raise ProvisionError(f"{topology.file}: EL2 refused an object: {exc}") from exc
    shms = tuple(ShmRegion(shm.name, shm.label, shm.size, ipa, shm_file_path(shm_dir, shm.name),
                           tuple(vmids[vm] for vm in shm.vms))
                 for shm, ipa in zip(topology.shms, place_shms(topology), strict=True))
    _grant_memory(el2, topology, vmids, shm_dir, shms)
    resources = {vm.name: (*_vm_resources(el2, vmids[vm.name], shms),
                           rm_pairs[vm.name].resource()) for vm in topology.vms}
    return Provisioned(el2, resources, shms, rm_pairs, rm_virqs)


def _provision_rm_pairs(el2: El2, topology: Topology, vmids: Mapping[str, int],
                        claim_virqs: list[int], pool: RmVirqPool) -> dict[str, RmQueuePair]:
    """Creates every VM's RM RPC queue pair, its virqs after the topology's (rm_queues.py)."""
    claims = [(claim.vm, virq) for claim, virq in zip(_claims(topology), claim_virqs)]
    try:
        vm_virqs = topology_rm_virqs(topology, claims)
    except ValueError as exc:
        raise ProvisionError(str(exc)) from exc
    return {vm.name: provision_rm_pair(el2, vmids[vm.name], *vm_virqs[vm.name], pool)
            for vm in topology.vms}


def ram_file_path(shm_dir: Path, vm: str) -> Path:
    """Returns the path of VM ``vm``'s RAM file in ``shm_dir`` (as ``shm.create_ram_file``)."""
    return shm_dir / f"{vm}.ram"


def _grant_memory(el2: El2, topology: Topology, vmids: Mapping[str, int], shm_dir: Path,
                  shms: tuple[ShmRegion, ...]) -> None:
    """Gives every VM its RAM file at RAM_BASE and maps every shm file into its VMs, with the
    memory caps in the RM's cspace; backing keys are the files' paths."""
    for vm in topology.vms:
        el2.grant_ram(vmids[vm.name], str(ram_file_path(shm_dir, vm.name)), vm.memory)
    for region in shms:
        try:
            el2.grant_shm(str(region.path), region.size,
                          [(vmid, region.ipa) for vmid in region.vmids])
        except HypError as exc:
            raise ProvisionError(f"{topology.file}: shm {region.name!r}: EL2 refused it: "
                                 f"{exc}") from exc


def _vm_resources(el2: El2, vmid: int, shms: tuple[ShmRegion, ...]) -> tuple[Resource, ...]:
    regions = [ShmResource(s.label, s.name, s.ipa, s.size, str(s.path), s.vmids)
               for s in shms if vmid in s.vmids]
    return (*cap_resources(el2, vmid), *regions)


def cap_resources(el2: El2, vmid: int) -> tuple[Resource, ...]:
    """Returns VM ``vmid``'s doorbell and msgqueue caps (not its RM queues) as resources."""
    return tuple(_cap_resource(r) for r in el2.vm(vmid).resources if r.peer != RM_VMID)


def _cap_resource(resource: GuestResource) -> Resource:
    """Returns the wire description of one doorbell or msgqueue cap El2 provisioned."""
    label = int(resource.label)
    match resource.kind:
        case "doorbell" | "doorbell-source":
            return DoorbellResource(resource.kind, resource.cap, label, resource.peer,
                                    resource.virq, resource.edge)
        case "msgqueue-tx" | "msgqueue-rx":
            assert resource.depth is not None and resource.size is not None
            return MsgqueueResource(resource.kind, resource.cap, label, resource.peer,
                                    resource.depth, resource.size, resource.virq, resource.edge)
