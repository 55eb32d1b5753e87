"""The EL2 façade the coordinator calls: VMs, RM-style provisioning and the one dispatcher.

``El2`` owns a root partition and a root cspace that hold the master cap of every object (the
role the RM's cspace plays in Gunyah). Each VM gets its own cspace (IDs ``vmid << 16 | index``)
holding derived caps: a cap to its own VIC (BindSource, so guests can bind and unbind virqs) and
the doorbell / msgqueue caps provisioned into it.

Memory (``memory``: the partition's ``hyp.memory.Memory``) is the RM's business, as in Gunyah:
adding vmid 0xFF (``RM_VMID``) makes the RM VM, which also gets an (empty) address space, the
DDR extent, a partition cap (ObjectCreate, Donate) and a cap to its own cspace (CapCreate,
CapDelete, CapCopy): ``rm_caps``. ``grant_ram`` and ``grant_shm`` give VMs their RAM and
shared regions with every memory master cap in the RM's cspace, and ``vm_memory_caps`` names a
VM's address space and owned extent there. Backing files are named by their paths: the
coordinator carries memory effects out on the file a ``backing`` key names.

``hypercall`` is the single dispatcher: it looks the call up in the ABI table, rejects non-zero
reserved registers (and "must be -1" registers that are not all ones) with
ERROR_ARGUMENT_INVALID before any lookup, as HYP's native wrappers do, runs the shim and turns a
``HypError`` into X0 with ``to_x0``. Result registers: one per declared output, unused ones 0.
Calls without a shim return ERROR_UNIMPLEMENTED.
"""

from __future__ import annotations

import logging
from collections import ChainMap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gunyah_net.abi.errors import Error, HypError, to_x0
from gunyah_net.abi.hypercalls import ArgKind, HypercallSpec, lookup
from gunyah_net.abi.platform import RAM_BASE
from gunyah_net.abi.rights import (CspaceRights, DoorbellRights, MsgqueueRights, PartitionRights,
                                   VicRights)
from gunyah_net.abi.rm_platform import RM_VMID
from gunyah_net.hyp.cspace import MAX_CAPS_SUPPORTED, VM_MAX_CAPS, Cspace
from gunyah_net.hyp.doorbell import Doorbell
from gunyah_net.hyp.effects import Effect, Effects
from gunyah_net.hyp.hypercalls import SHIMS, Call, Outcome, Shim
from gunyah_net.hyp.mem_effects import Access, MemEffects
from gunyah_net.hyp.mem_hypercalls import MEM_SHIMS
from gunyah_net.hyp.memory import Memory, RamGrant, ShmGrant
from gunyah_net.hyp.msgqueue import MsgQueue, create_info
from gunyah_net.hyp.object import KernelObject
from gunyah_net.hyp.partition import Partition
from gunyah_net.hyp.vic import GIC_SPI_NUM
from gunyah_net.hyp.vm import GuestResource, Vm

log = logging.getLogger(__name__)

_U64 = 0xFFFF_FFFF_FFFF_FFFF
RESERVED_MINUS_ONE = "reserved_minus_one"
"""Table argument name of a register that must be -1 (HYP ``res1`` inputs)."""

ALL_SHIMS: Mapping[str, Shim] = ChainMap(SHIMS, MEM_SHIMS)
"""Every call El2 executes, by hypercall name: objects, doorbells, queues and memory (a live
view of both tables)."""

_RM_PARTITION_RIGHTS = PartitionRights.OBJECT_CREATE | PartitionRights.DONATE
_RM_CSPACE_RIGHTS = CspaceRights.CAP_CREATE | CspaceRights.CAP_DELETE | CspaceRights.CAP_COPY


@dataclass(frozen=True)
class HvcResult:
    """The answer to one forwarded hypercall: X0.. (unsigned 64-bit), output bytes, and the
    effects to carry out before it: ``effects`` on virqs, ``memory`` on stage 2 and files."""

    regs: list[int]
    data: bytes = b""
    effects: Effects = ()
    memory: MemEffects = ()


def _result_regs(spec: HypercallSpec | None, error: Error, values: Sequence[int] = ()) -> list[int]:
    """Returns X0 = ``error`` then ``values``, zero-padded to the call's declared outputs."""
    count = max(1, len(spec.outputs)) if spec else 1
    regs = [to_x0(error)] + [to_x0(int(v)) for v in values]
    return regs + [0] * (count - len(regs))


def _check_reserved(spec: HypercallSpec, args: Sequence[int]) -> None:
    """Rejects reserved-zero registers that are not 0 and res1 registers that are not -1."""
    for arg, value in zip(spec.inputs, args):
        if arg.kind is ArgKind.RESERVED and value != 0:
            raise HypError(Error.ARGUMENT_INVALID, f"{spec.name}: reserved register {value:#x}")
        if arg.name == RESERVED_MINUS_ONE and value != _U64:
            raise HypError(Error.ARGUMENT_INVALID, f"{spec.name}: register must be -1")


class El2:
    """The EL2 object model of one topology: VMs, their caps and objects, and the dispatcher."""

    def __init__(self) -> None:
        self.partition = Partition("root")
        self.partition.activate()
        self.root = Cspace(id_base=0, max_caps=MAX_CAPS_SUPPORTED, name="root")
        self.root.activate()
        self._vms: dict[int, Vm] = {}
        self._masters: dict[int, int] = {}
        """id(object) -> its master cap ID in the root cspace."""
        self.memory = Memory(self.partition)
        """Physical memory, ownership and address spaces (what the memory hypercalls act on)."""
        self._rm_caps: dict[str, int] | None = None

    # -- VMs ------------------------------------------------------------------------------

    def add_vm(self, vmid: int, name: str, *, vcpus: int = 1) -> None:
        """Creates VM ``vmid``'s cspace (1024 caps) and VIC, and gives it a cap to its VIC."""
        if not 0 < vmid <= 0xFFFF:
            raise ValueError(f"vmid {vmid:#x} must be 1..0xffff (0 is the hypervisor)")
        if vmid in self._vms:
            raise ValueError(f"vmid {vmid:#x} already exists ({self._vms[vmid].name})")
        cspace, cspace_master = self.partition.create_cspace(self.root, id_base=vmid << 16,
                                                             name=f"cspace of {name}")
        cspace.configure(VM_MAX_CAPS)
        cspace.activate()
        vic, vic_master = self.partition.create_vic(self.root, vmid)
        vic.configure(vcpus, GIC_SPI_NUM)
        vic.activate()
        self._masters[id(cspace)] = cspace_master
        self._masters[id(vic)] = vic_master
        vic_cap = cspace.copy_cap_from(self.root, vic_master, VicRights.BIND_SOURCE)
        self._vms[vmid] = Vm(vmid, name, cspace, vic, vic_cap)
        if vmid == RM_VMID:
            self._rm_caps = self._equip_rm(cspace, cspace_master)

    def _equip_rm(self, cspace: Cspace, cspace_master: int) -> dict[str, int]:
        """Gives the RM VM its address space, the DDR extent, a partition cap and a cap to its
        own cspace; returns those caps (all in ``cspace``) by name."""
        _, addrspace_cap = self.memory.vm_addrspace(RM_VMID, cspace)
        _, ddr_cap = self.memory.ddr_extent(cspace)
        if id(self.partition) not in self._masters:
            self._masters[id(self.partition)] = self.root.create_master_cap(self.partition)
        partition_cap = cspace.copy_cap_from(self.root, self._masters[id(self.partition)],
                                             _RM_PARTITION_RIGHTS)
        cspace_cap = cspace.copy_cap_from(self.root, cspace_master, _RM_CSPACE_RIGHTS)
        return {"partition": partition_cap, "ddr": ddr_cap, "addrspace": addrspace_cap,
                "cspace": cspace_cap}

    def vm(self, vmid: int) -> Vm:
        """Returns VM ``vmid``'s EL2 context; ValueError if there is none."""
        try:
            return self._vms[vmid]
        except KeyError:
            raise ValueError(f"no VM with vmid {vmid:#x}") from None

    def vic_cap(self, vmid: int) -> int:
        """Returns the cap ID, in VM ``vmid``'s cspace, of its own VIC (BindSource)."""
        return self.vm(vmid).vic_cap

    def guest_resources(self, vmid: int) -> list[dict[str, object]]:
        """Returns every provisioned doorbell / msgqueue cap VM ``vmid`` still holds."""
        vm = self.vm(vmid)
        live = {cap_id: cap.obj for cap_id, cap in vm.cspace.valid_caps()}
        return [r.as_dict() for r in vm.resources if live.get(r.cap) is r.obj]

    # -- memory (what the RM's platform code sets up) --------------------------------------

    def rm_caps(self) -> dict[str, int]:
        """Returns the RM VM's own caps, in its cspace: "partition" (ObjectCreate, Donate),
        "ddr" (the DDR extent's master), "addrspace" (its own) and "cspace" (CapCreate,
        CapDelete, CapCopy on itself). ValueError before the RM VM exists."""
        if self._rm_caps is None:
            raise ValueError(f"there is no RM VM (vmid {RM_VMID:#x}) yet")
        return dict(self._rm_caps)

    def _rm_cspace(self) -> Cspace:
        if self._rm_caps is None:
            raise ValueError(f"memory needs the RM VM (vmid {RM_VMID:#x}); add it first")
        return self._vms[RM_VMID].cspace

    def vm_memory_caps(self, vmid: int) -> dict[str, int]:
        """Returns the RM-cspace master caps of VM ``vmid``'s "addrspace" and owned extent
        ("memextent"), creating both (empty) the first time. ValueError for an unknown VM."""
        self.vm(vmid)
        addrspace_cap, extent_cap = self.memory.vm_objects(vmid, self._rm_cspace())
        return {"addrspace": addrspace_cap, "memextent": extent_cap}

    def grant_ram(self, vmid: int, backing: str, size: int, ipa: int = RAM_BASE) -> RamGrant:
        """Gives VM ``vmid`` ``size`` bytes of RAM from file ``backing`` (a path) mapped RWX
        at ``ipa`` and owned by the VM's owned extent; master caps in the RM's cspace."""
        self.vm(vmid)
        return self.memory.initial_ram(vmid, backing, ipa, size, self._rm_cspace())

    def grant_shm(self, backing: str, size: int, mappings: Sequence[tuple[int, int]],
                  rights: Access = Access.RWX) -> ShmGrant:
        """Maps ``size`` bytes of file ``backing`` (a path) at (vmid, ipa) of each mapping,
        owned by a new extent whose master cap is in the RM's cspace (at most 4 VMs)."""
        for vmid, _ in mappings:
            self.vm(vmid)
            self.memory.vm_objects(vmid, self._rm_cspace())
        return self.memory.initial_shm(backing, size, mappings, self._rm_cspace(), rights)

    # -- provisioning (what the RM does at VM_INIT) ---------------------------------------

    def provision_doorbell(self, sender_vmid: int, receiver_vmid: int, virq: int | None,
                           edge: bool = False, *, label: int | str = "",
                           source_can_clear: bool = False) -> tuple[int, int]:
        """Creates an active doorbell bound to ``virq`` of the receiver (None: unbound, the
        receiver binds it itself); returns the sender's cap (Send, plus Receive if
        ``source_can_clear``) and the receiver's (Receive, Bind)."""
        sender, receiver = self.vm(sender_vmid), self.vm(receiver_vmid)
        doorbell, master = self.partition.create_doorbell(self.root, str(label))
        doorbell.activate()
        try:
            if virq is not None:
                doorbell.bind_virq(receiver.vic, virq, edge=edge)
        except HypError:
            self._discard(doorbell, master)
            raise
        self._masters[id(doorbell)] = master
        send_rights = DoorbellRights.SEND | (DoorbellRights.RECEIVE if source_can_clear else 0)
        tx_cap = sender.cspace.copy_cap_from(self.root, master, send_rights)
        rx_cap = receiver.cspace.copy_cap_from(self.root, master,
                                               DoorbellRights.RECEIVE | DoorbellRights.BIND)
        sender.resources.append(GuestResource("doorbell-source", tx_cap, label, receiver_vmid,
                                              obj=doorbell))
        receiver.resources.append(GuestResource("doorbell", rx_cap, label, sender_vmid,
                                                virq=virq, edge=edge, obj=doorbell))
        return tx_cap, rx_cap

    def provision_msgqueue(self, sender_vmid: int, receiver_vmid: int, depth: int,
                           msg_size: int, tx_virq: int | None, rx_virq: int | None, *,
                           label: int | str = "") -> tuple[int, int]:
        """Creates an active queue; binds not-full to ``tx_virq`` of the sender and not-empty to
        ``rx_virq`` of the receiver (None: unbound); returns the sender's cap (Send, BindSend)
        and the receiver's (Receive, BindReceive)."""
        sender, receiver = self.vm(sender_vmid), self.vm(receiver_vmid)
        if not (0 < depth <= 0xFFFF and 0 < msg_size <= 0xFFFF):
            raise HypError(Error.ARGUMENT_INVALID, f"depth {depth} / message size {msg_size}")
        msgqueue, master = self.partition.create_msgqueue(self.root, str(label))
        try:
            msgqueue.configure(create_info(depth, msg_size))
            msgqueue.activate()
            if tx_virq is not None:
                msgqueue.bind_send_virq(sender.vic, tx_virq)
            if rx_virq is not None:
                msgqueue.bind_receive_virq(receiver.vic, rx_virq)
        except HypError:
            if msgqueue.send_source.bound:
                msgqueue.unbind_send_virq()
            self._discard(msgqueue, master)
            raise
        self._masters[id(msgqueue)] = master
        tx_cap = sender.cspace.copy_cap_from(self.root, master,
                                             MsgqueueRights.SEND | MsgqueueRights.BIND_SEND)
        rx_cap = receiver.cspace.copy_cap_from(
            self.root, master, MsgqueueRights.RECEIVE | MsgqueueRights.BIND_RECEIVE)
        sender.resources.append(GuestResource("msgqueue-tx", tx_cap, label, receiver_vmid,
                                              tx_virq, True, depth, msg_size, msgqueue))
        receiver.resources.append(GuestResource("msgqueue-rx", rx_cap, label, sender_vmid,
                                                rx_virq, True, depth, msg_size, msgqueue))
        return tx_cap, rx_cap

    # -- removal (the RM's VM_DESTROY) ---------------------------------------------------

    def remove_vm(self, vmid: int) -> Effects:
        """Destroys VM ``vmid``'s EL2 objects: every doorbell and message queue it is an end of
        (virqs unbound; every cap to them deleted, in the peers' cspaces too), its address space
        and owned extent (``Memory.remove_vm``), its VIC and its cspace. Returns the virq effects
        on the peers. ValueError for an unknown VM or the RM VM."""
        vm = self.vm(vmid)
        if vmid == RM_VMID:
            raise ValueError("the RM VM cannot be removed")
        effects: list[Effect] = []
        for obj in {id(r.obj): r.obj for r in vm.resources if r.obj is not None}.values():
            effects += self._destroy_object(obj)
        self.memory.remove_vm(vmid, self._rm_cspace())
        for cap_id, _ in vm.cspace.valid_caps():
            vm.cspace.delete_cap(cap_id)
        for obj in (vm.vic, vm.cspace):
            self._forget_object(obj)
        del self._vms[vmid]
        return tuple(effects)

    def _destroy_object(self, obj: object) -> list[Effect]:
        """Unbinds a doorbell's or queue's virqs, deletes every cap naming it, forgets it."""
        effects: list[Effect] = []
        match obj:
            case Doorbell():
                effects += obj.unbind_virq()
            case MsgQueue():
                effects += obj.unbind_send_virq()
                effects += obj.unbind_receive_virq()
        for vm in self._vms.values():
            vm.resources[:] = [r for r in vm.resources if r.obj is not obj]
            for cap_id, cap in vm.cspace.valid_caps():
                if cap.obj is obj:
                    vm.cspace.delete_cap(cap_id)
        if isinstance(obj, KernelObject):
            self._forget_object(obj)
        return effects

    def _forget_object(self, obj: KernelObject) -> None:
        """Revokes and deletes the root master cap of an object El2 made; drops the object."""
        master = self._masters.pop(id(obj))
        self.root.revoke_caps(master)
        self.root.delete_cap(master)
        if obj in self.partition.objects:
            self.partition.objects.remove(obj)

    # -- the dispatcher -------------------------------------------------------------------

    def hypercall(self, vmid: int, vcpu: int, number: int, args: Sequence[int],
                  data: bytes = b"") -> HvcResult:
        """Executes hypercall ``number`` for ``vcpu`` of VM ``vmid`` with the input registers
        ``args`` (table order) and input bytes ``data``; returns registers, bytes, effects."""
        vm = self.vm(vmid)
        spec = lookup(number)
        shim = (SHIMS.get(spec.name) or MEM_SHIMS.get(spec.name)) if spec else None
        if spec is None or shim is None:
            return HvcResult(_result_regs(spec, Error.UNIMPLEMENTED))
        if len(args) != len(spec.inputs):
            raise ValueError(f"{spec.name} takes {len(spec.inputs)} registers, got {len(args)}")
        regs = [value & _U64 for value in args]
        try:
            _check_reserved(spec, regs)
            call = Call(vm, {arg.name: value for arg, value in zip(spec.inputs, regs)}, data)
            outcome: Outcome = shim(call)
        except HypError as err:
            log.debug("vm %#x vcpu %d %s -> %s", vmid, vcpu, spec.name, err)
            return HvcResult(_result_regs(spec, err.code))
        return HvcResult(_result_regs(spec, Error.OK, outcome.values), outcome.data,
                         outcome.effects, outcome.memory)

    def _discard(self, obj: KernelObject, master: int) -> None:
        """Forgets an object whose provisioning failed: its master cap and partition entry."""
        self.root.delete_cap(master)
        self.partition.objects.remove(obj)

    def master_cap(self, obj: object) -> int:
        """Returns the root-cspace master cap of an object El2 created (for revocation)."""
        return self._masters[id(obj)]
