"""The RM VM's platform calls: VM_CREATE, VM_POWERON, VM_STOP and VM_DESTROY (abi/rm_platform.py).

They arrive as ``Hvc`` frames on the RM VM's link and are answered with X0 = a Gunyah error:

- from any VM but 0xFF: ERROR_DENIED; the wrong number of arguments, or data on VM_STOP or
  VM_DESTROY: ERROR_ARGUMENT_INVALID.
- ``VM_CREATE(vmid, vcpus)`` + msgpack data ``{"name", "rm_virqs": [vm_tx, vm_rx],
  "doorbells": [{"sender", "receiver", "virq", "label", "source_can_clear", "edge"}],
  "msgqueues": [{"sender", "receiver", "depth", "size", "tx_virq", "rx_virq", "label"}]}``
  creates the VM in El2 (cspace, VIC, address space and owned extent with caps in the RM's
  cspace), its RM queue pair (rm_queues.py) and its doorbells and queues, each of which must have
  the new VM at one end and an existing VM at the other. It answers msgpack data
  ``{"addrspace", "memextent", "rm": {"vm_tx_cap", "vm_rx_cap", "rm_tx_cap", "rm_rx_cap",
  "rm_tx_virq", "rm_rx_virq"}, "doorbells": [{"tx_cap", "rx_cap"}], "msgqueues": [...]}``.
  A vmid that exists (or is 0, 0xFF, above 0xFFFF), a vCPU count outside 1..8 or malformed data:
  ERROR_ARGUMENT_INVALID; an object EL2 refuses: its error (a virq in use: ERROR_BUSY), with
  everything made for the VM removed again.
- ``VM_POWERON(vmid, entry, context)`` + optional msgpack data ``{"x": [[index, value]],
  "sp_el0", "sp_el1"}`` (platform_request.py): starts the VM's worker (``VmHost.launch``) and
  returns at once. A topology VM boots its image; a created VM boots from its stage-2 view (as
  it is when its Welcome is sent) at ``entry`` with X0 = ``context`` and the data's X1..X30,
  SP_EL0 and SP_EL1 (``Welcome.boot_regs``). Malformed data, or any register for a topology VM
  (which boots at its ELF entry): ERROR_ARGUMENT_INVALID. Powered on before: ERROR_BUSY (it is
  destroyed and created again to rerun).
- ``VM_STOP(vmid)``: stops its worker with no ``VmHalted`` (``VmHost.halt``); a VM that was never
  powered on: ERROR_OBJECT_STATE.
- ``VM_DESTROY(vmid)``: a created VM only (a topology VM: ERROR_DENIED): ends its worker if it
  still runs, drops its row and console (``VmHost.forget``) and its EL2 objects.
- an unknown vmid, or the RM's own: ERROR_ARGUMENT_INVALID.

Every input is checked before anything changes; the only exception that leaves ``answer`` is a
bug, which ``answer`` logs and reports as the RM VM's failure (``VmHost.fail``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import msgpack

from gunyah_net.abi.errors import Error, HypError, to_x0
from gunyah_net.abi.rm_platform import RM_VMID, PlatformCall
from gunyah_net.config.model import MAX_VCPUS
from gunyah_net.hyp.el2 import El2
from gunyah_net.hyp.effects import Effect
from gunyah_net.wire.messages import Hvc, HvcReturn
from gunyah_net.wire.resources import Resource

from .handshake import VmBoot
from .platform_request import (BootRegs, CreateRequest, PlatformError, decode_boot_regs,
                               decode_create)
from .provision import cap_resources
from .rm_queues import RmQueuePair, RmVirqPool, provision_rm_pair
from .vmtable import RM_NAME, dynamic_vm_name

log = logging.getLogger(__name__)

PLATFORM_NUMBERS = frozenset(int(call) for call in PlatformCall)
ARG_COUNTS = {PlatformCall.VM_CREATE: 2, PlatformCall.VM_POWERON: 3, PlatformCall.VM_STOP: 1,
              PlatformCall.VM_DESTROY: 1}
TAKES_DATA = frozenset({PlatformCall.VM_CREATE, PlatformCall.VM_POWERON})


def is_platform_call(number: int) -> bool:
    """True if ``number`` is one of the RM VM's platform calls."""
    return number in PLATFORM_NUMBERS


class VmHost(Protocol):
    """What the platform calls need from the coordinator: VM processes, rows and consoles."""

    def launch(self, name: str, vmid: int, boot: VmBoot | None) -> None:
        """Starts VM ``name``'s worker; ``boot`` None: a topology VM (its boot is known)."""

    def has_vm(self, name: str) -> bool:
        """True if the VM table has a row named ``name``."""

    def halt(self, name: str) -> None:
        """Stops VM ``name``'s worker (Stop, SIGKILL after the grace period); no VmHalted."""

    def forget(self, name: str) -> None:
        """Ends VM ``name``'s worker if it runs (no VmHalted), drops its row and console."""

    def vm_added(self, vmid: int, name: str) -> None:
        """VM ``vmid`` exists in EL2 now: virq effects for it are held until its worker runs."""

    def vm_removed(self, vmid: int, effects: Sequence[Effect]) -> None:
        """VM ``vmid`` is gone from EL2; ``effects`` (on its peers' virqs) are to be carried out."""

    def fail(self, name: str, reason: str) -> None:
        """Marks VM ``name`` crashed and kills its worker."""


@dataclass
class CreatedVm:
    """A VM that VM_CREATE made: its vCPUs, its RM queue pair, whether it was powered on."""

    vmid: int
    vcpus: int
    pair: RmQueuePair
    powered: bool = False


@dataclass
class _Built:
    """What VM_CREATE made so far, to answer with or to undo."""

    pair: RmQueuePair | None = None
    doorbells: list[dict[str, int]] = field(default_factory=list)
    msgqueues: list[dict[str, int]] = field(default_factory=list)


class Platform:
    """Executes the RM VM's platform calls on ``el2`` and the coordinator (``host``)."""

    def __init__(self, el2: El2, rm_virqs: RmVirqPool, host: VmHost,
                 static_vms: Mapping[int, str]) -> None:
        """``static_vms`` maps the vmid of every topology VM to its name."""
        self._el2 = el2
        self._rm_virqs = rm_virqs
        self._host = host
        self._static = dict(static_vms)
        self._powered: set[int] = set()
        """The topology VMs that VM_POWERON started."""
        self.created: dict[int, CreatedVm] = {}
        """The VMs VM_CREATE made and VM_DESTROY has not removed, by vmid."""

    def answer(self, caller: int, call: Hvc) -> HvcReturn | None:
        """Executes platform call ``call`` for VM ``caller``; returns its reply (None: a bug
        failed the RM VM)."""
        try:
            regs, data = self._execute(caller, call)
        except Exception as exc:  # A bug here must not take the coordinator down.
            log.exception("platform call %#x failed", call.number)
            self._host.fail(RM_NAME, f"internal error in EL2 executing platform call "
                                     f"{call.number:#x}: {exc!r}")
            return None
        return HvcReturn(call.seq, regs, data)

    def _execute(self, caller: int, call: Hvc) -> tuple[list[int], bytes]:
        number = PlatformCall(call.number)
        try:
            if caller != RM_VMID:
                raise PlatformError(Error.DENIED, f"vm {caller:#x} is not the RM VM")
            if len(call.args) != ARG_COUNTS[number]:
                raise PlatformError(Error.ARGUMENT_INVALID, f"{len(call.args)} arguments, "
                                    f"{number.name} takes {ARG_COUNTS[number]}")
            if call.data and number not in TAKES_DATA:
                raise PlatformError(Error.ARGUMENT_INVALID, f"{number.name} takes no data")
            data = self._dispatch(number, call.args, call.data)
        except PlatformError as exc:
            log.info("%s%s refused: %s: %s", number.name, tuple(call.args), exc.code.name,
                     exc.detail)
            return [to_x0(exc.code)], b""
        return [0], data

    def _dispatch(self, number: PlatformCall, args: list[int], data: bytes) -> bytes:
        match number:
            case PlatformCall.VM_CREATE:
                return self._create(decode_create(args, data, MAX_VCPUS))
            case PlatformCall.VM_POWERON:
                self._power_on(*args, decode_boot_regs(data))
            case PlatformCall.VM_STOP:
                self._stop(args[0])
            case PlatformCall.VM_DESTROY:
                self._destroy(args[0])
        return b""

    # -- VM_CREATE --------------------------------------------------------------------------

    def _create(self, request: CreateRequest) -> bytes:
        vmid = request.vmid
        if vmid == RM_VMID or self._exists(vmid):
            raise PlatformError(Error.ARGUMENT_INVALID, f"vmid {vmid:#x} exists")
        for peer in request.peers():
            if not self._exists(peer):
                raise PlatformError(Error.ARGUMENT_INVALID, f"no VM with vmid {peer:#x}")
        self._el2.add_vm(vmid, request.name, vcpus=request.vcpus)
        built = _Built()
        try:
            memory = self._el2.vm_memory_caps(vmid)
            self._build(request, built)
        except HypError as exc:
            self._undo(vmid, built)
            raise PlatformError(exc.code, f"EL2 refused an object of vm {vmid:#x}: "
                                          f"{exc.detail}") from exc
        assert built.pair is not None
        self.created[vmid] = CreatedVm(vmid, request.vcpus, built.pair)
        self._host.vm_added(vmid, dynamic_vm_name(vmid))
        return msgpack.packb({**memory, "rm": {**built.pair.vm_side(), **built.pair.rm_side()},
                              "doorbells": built.doorbells, "msgqueues": built.msgqueues})

    def _build(self, request: CreateRequest, built: _Built) -> None:
        """Creates the RM pair, then every doorbell and queue, recording each in ``built``."""
        el2 = self._el2
        built.pair = provision_rm_pair(el2, request.vmid, *request.rm_virqs, self._rm_virqs)
        for bell in request.doorbells:
            tx, rx = el2.provision_doorbell(bell.sender, bell.receiver, bell.virq, bell.edge,
                                            label=bell.label,
                                            source_can_clear=bell.source_can_clear)
            built.doorbells.append({"tx_cap": tx, "rx_cap": rx})
        for queue in request.msgqueues:
            tx, rx = el2.provision_msgqueue(queue.sender, queue.receiver, queue.depth,
                                            queue.size, queue.tx_virq, queue.rx_virq,
                                            label=queue.label)
            built.msgqueues.append({"tx_cap": tx, "rx_cap": rx})

    def _undo(self, vmid: int, built: _Built) -> None:
        """Removes a VM whose creation failed halfway, with everything made for it."""
        effects = self._el2.remove_vm(vmid)
        if built.pair is not None:
            self._rm_virqs.release(built.pair.rm_rx_virq, built.pair.rm_tx_virq)
        self._host.vm_removed(vmid, effects)

    def _exists(self, vmid: int) -> bool:
        try:
            self._el2.vm(vmid)
        except ValueError:
            return False
        return True

    # -- VM_POWERON, VM_STOP, VM_DESTROY ----------------------------------------------------

    def _power_on(self, vmid: int, entry: int, context: int, regs: BootRegs) -> None:
        if vmid in self._static:
            if regs.triples():
                raise PlatformError(Error.ARGUMENT_INVALID, f"vm {vmid:#x} is a topology VM, "
                                    "which boots at its ELF entry: no boot registers")
            if vmid in self._powered:
                raise PlatformError(Error.BUSY, f"vm {vmid:#x} was powered on already")
            self._powered.add(vmid)
            self._host.launch(self._static[vmid], vmid, None)
            return
        created = self._created(vmid)
        if created.powered:
            raise PlatformError(Error.BUSY, f"vm {vmid:#x} was powered on already")
        name = dynamic_vm_name(vmid)
        if self._host.has_vm(name):
            raise PlatformError(Error.BUSY, f"vm {vmid:#x}: a VM named {name!r} exists already")
        created.powered = True
        boot = VmBoot(name, None, created.vcpus, 0, "", None, resources=self.resources(vmid),
                      entry=entry, context=context,
                      boot_regs=regs.triples())  # Its regions: at its Welcome.
        self._host.launch(name, vmid, boot)

    def _stop(self, vmid: int) -> None:
        if vmid in self._static:
            powered, name = vmid in self._powered, self._static[vmid]
        else:
            powered, name = self._created(vmid).powered, dynamic_vm_name(vmid)
        if not powered:
            raise PlatformError(Error.OBJECT_STATE, f"vm {vmid:#x} was never powered on")
        self._host.halt(name)

    def _destroy(self, vmid: int) -> None:
        if vmid in self._static:
            raise PlatformError(Error.DENIED, f"vm {vmid:#x} is a topology VM; only VMs made "
                                              "by VM_CREATE can be destroyed")
        created = self._created(vmid)
        if created.powered:
            self._host.forget(dynamic_vm_name(vmid))
        del self.created[vmid]
        self._undo(vmid, _Built(created.pair))

    def _created(self, vmid: int) -> CreatedVm:
        created = self.created.get(vmid)
        if created is None:
            raise PlatformError(Error.ARGUMENT_INVALID, f"no VM with vmid {vmid:#x}")
        return created

    def resources(self, vmid: int) -> tuple[Resource, ...]:
        """Returns a created VM's Welcome resources: its doorbell and queue caps, its RM pair."""
        return (*cap_resources(self._el2, vmid), self.created[vmid].pair.resource())
