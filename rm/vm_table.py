"""The RM's table of VMs: VMID allocation, owners and peers, caller checks, the vm_state machine.

Pure: every operation takes the calling VM's vmid and a decoded request, and returns a ``Result``:
the RM error for the reply, an optional reply payload, and the notifications to send, each
addressed to one VM. Send the notifications before the reply, as the RM does. Checks run in the
RM's order, and their error codes are the RM's (RM `vm_mgnt.c`, `vm_creation.c`), including its
quirks: a caller that is not the owner gets VMID_INVALID, not DENIED, from VM_STOP and VM_RESET.

Calls whose success needs EL2 work are split in two. ``check_config_image`` / ``check_init`` /
``check_start`` answer whether the call may proceed; the service then does the work (memparcel
checks, creating objects, mapping memory, powering on the boot vCPU) and passes its error as
``outcome`` to ``config_image`` / ``vm_init`` / ``start``, which commit the state change
(INIT_FAILED on a failed outcome). ``reset`` enters RESETTING; ``reset_complete`` enters RESET
after teardown.

VM_STATUS goes to the VM itself, its owner and its peers, but only to those that are RUNNING: a VM
whose vCPUs do not run has no serviced RM link (the RM filters its peers the same way).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Concatenate, ParamSpec

from gunyah_net.abi.rm import (
    VMID_DYNAMIC_BASE,
    VMID_DYNAMIC_END,
    VMID_EXPLICIT_LIMIT,
    BootRegSet,
    ExitType,
    OsState,
    RmError,
    VmAuth,
    VmState,
    VmStopFlag,
    Vmid,
)

from .vm_payloads import (
    VmAllocVmid,
    VmAllocVmidReply,
    VmConfigImage,
    VmDeallocVmid,
    VmExit,
    VmExitedNotify,
    VmExitReason,
    VmGetState,
    VmGetStateReply,
    VmGetVmidReply,
    VmInit,
    VmReset,
    VmSetBootContext,
    VmSetFirmwareMem,
    VmSetStatus,
    VmShutdownNotify,
    VmStart,
    VmStop,
)
from .vm_record import (
    HLOS_ONLY_CALLS,
    TRANSITIONS,
    FirmwareConfig,
    ImageConfig,
    Notify,
    Result,
    VmRecord,
    transition_allowed,
)

__all__ = ["HLOS_ONLY_CALLS", "TRANSITIONS", "Notify", "Result", "VmRecord", "VmTable",
           "transition_allowed"]

_REG_INDEX_LIMIT: dict[int, int] = {BootRegSet.X: 31, BootRegSet.PC: 1, BootRegSet.SP: 2}
"""How many registers each VM_SET_BOOT_CONTEXT reg_set has: X0..X30, PC, SP_EL0 and SP_EL1."""

_OS_STATES = frozenset(OsState)


class _Refusal(Exception):
    """Aborts an operation with the RM error its reply carries."""

    def __init__(self, error: RmError) -> None:
        super().__init__(error.name)
        self.error = error


def _require(condition: bool, error: RmError) -> None:
    if not condition:
        raise _Refusal(error)


P = ParamSpec("P")


def _answers(method: Callable[Concatenate[VmTable, P], Result]
             ) -> Callable[Concatenate[VmTable, P], Result]:
    @functools.wraps(method)
    def answer(self: VmTable, *args: P.args, **kwargs: P.kwargs) -> Result:
        try:
            return method(self, *args, **kwargs)
        except _Refusal as refusal:
            return Result(refusal.error)
    return answer


def _error_of(check: Callable[..., object], *args: object) -> RmError:
    try:
        check(*args)
    except _Refusal as refusal:
        return refusal.error
    return RmError.OK


class VmTable:
    """The RM's VMs by vmid. The HLOS (vmid 3, owned by the RM) is present and RUNNING."""

    def __init__(self, explicit_vmids: Iterable[int] = range(1, VMID_EXPLICIT_LIMIT)) -> None:
        self._records: dict[int, VmRecord] = {
            Vmid.HLOS: VmRecord(Vmid.HLOS, Vmid.RM, VmState.RUNNING)}
        self._explicit = frozenset(explicit_vmids) - {Vmid.HLOS}
        bad = sorted(v for v in self._explicit if not 0 < v < VMID_EXPLICIT_LIMIT)
        if bad:
            raise ValueError(f"explicit VMIDs must be in 1..{VMID_EXPLICIT_LIMIT - 1}: {bad}")

    # --- queries ----------------------------------------------------------------------------------

    def get(self, vmid: int) -> VmRecord | None:
        """Returns the record of ``vmid``, or None if there is no such VM."""
        return self._records.get(vmid)

    def __contains__(self, vmid: object) -> bool:
        return vmid in self._records

    def records(self) -> tuple[VmRecord, ...]:
        """Returns every record, by vmid."""
        return tuple(self._records[v] for v in sorted(self._records))

    def owned_by(self, owner: int) -> tuple[VmRecord, ...]:
        """Returns the records of the VMs ``owner`` created, by vmid."""
        return tuple(r for r in self.records() if r.owner == owner)

    # --- VMIDs ------------------------------------------------------------------------------------

    def add_static(self, vmid: int) -> None:
        """Adds a static VM, RUNNING and owned by the RM like the HLOS; ``ValueError`` if taken."""
        if vmid in self._records or not 0 < vmid < Vmid.ANY or vmid == Vmid.RM:
            raise ValueError(f"{vmid:#x} cannot be a static VM's vmid: taken or reserved")
        self._records[vmid] = VmRecord(vmid, Vmid.RM, VmState.RUNNING)

    @_answers
    def alloc_vmid(self, caller: int, request: VmAllocVmid) -> Result:
        """VM_ALLOC_VMID: creates a VM in LOAD owned by the caller; replies the vmid if chosen."""
        _require(caller == Vmid.HLOS, RmError.DENIED)
        vmid = request.vmid or self._free_dynamic_vmid()
        _require(vmid != 0 and vmid not in self._records, RmError.NORESOURCE)
        _require(vmid in self._explicit or request.vmid == 0, RmError.NORESOURCE)
        self._records[vmid] = VmRecord(vmid, caller, peers=frozenset({caller}))
        self._link(caller, vmid)
        return Result(reply=VmAllocVmidReply(vmid) if request.vmid == 0 else None)

    @_answers
    def dealloc_vmid(self, caller: int, request: VmDeallocVmid) -> Result:
        """VM_DEALLOC_VMID: forgets a VM in LOAD or RESET; only its owner may."""
        record = self._owned(caller, request.vmid, RmError.DENIED)
        _require(record.vm_state in (VmState.LOAD, VmState.RESET), RmError.VM_STATE)
        for peer in record.peers:
            self._unlink(peer, record.vmid)
        del self._records[record.vmid]
        return Result()

    def _free_dynamic_vmid(self) -> int:
        free = (v for v in range(VMID_DYNAMIC_BASE, VMID_DYNAMIC_END) if v not in self._records)
        return next(free, 0)

    # --- creation ---------------------------------------------------------------------------------

    def check_config_image(self, caller: int, vmid: int) -> RmError:
        """Returns RM_OK if VM_CONFIG_IMAGE for ``vmid`` may proceed, else the error to reply."""
        return _error_of(self._may_config_image, caller, vmid)

    def _may_config_image(self, caller: int, vmid: int) -> VmRecord:
        _require(caller == Vmid.HLOS, RmError.DENIED)
        record = self._owned(caller, vmid, RmError.DENIED)
        _require(transition_allowed(record.vm_state, VmState.AUTH), RmError.VM_STATE)
        return record

    @_answers
    def config_image(self, caller: int, request: VmConfigImage,
                     outcome: RmError = RmError.OK) -> Result:
        """VM_CONFIG_IMAGE: LOAD or RESET to INIT (auth NONE, ANDROID_PVM) or AUTH (PLATFORM)."""
        record = self._may_config_image(caller, request.vmid)
        if outcome is not RmError.OK:
            return Result(outcome, notifications=self._set_state(record, VmState.INIT_FAILED))
        match request.auth:
            case VmAuth.NONE | VmAuth.ANDROID_PVM:
                new_state = VmState.INIT
            case VmAuth.PLATFORM:
                new_state = VmState.AUTH
            case _:
                notes = self._set_state(record, VmState.INIT_FAILED)
                return Result(RmError.ARGUMENT_INVALID, notifications=notes)
        image = ImageConfig(request.mem_handle, request.image_offset, request.image_size,
                            request.dtb_offset, request.dtb_size)
        return Result(notifications=self._set_state(record, new_state,
                                                    auth=VmAuth(request.auth), image=image))

    def check_init(self, caller: int, vmid: int) -> RmError:
        """Returns RM_OK if VM_INIT for ``vmid`` may proceed, else the error to reply."""
        return _error_of(self._may_init, caller, vmid)

    def _may_init(self, caller: int, vmid: int) -> VmRecord:
        _require(caller == Vmid.HLOS, RmError.DENIED)
        record = self._owned(caller, vmid, RmError.DENIED)
        _require(record.vm_state is VmState.INIT, RmError.VM_STATE)
        return record

    @_answers
    def vm_init(self, caller: int, request: VmInit, outcome: RmError = RmError.OK) -> Result:
        """VM_INIT: INIT to READY, or to INIT_FAILED with ``outcome`` if creating objects failed."""
        record = self._may_init(caller, request.vmid)
        new_state = VmState.READY if outcome is RmError.OK else VmState.INIT_FAILED
        return Result(outcome, notifications=self._set_state(record, new_state))

    def check_start(self, caller: int, vmid: int) -> RmError:
        """Returns RM_OK if VM_START for ``vmid`` may proceed, else the error to reply."""
        return _error_of(self._may_start, caller, vmid)

    def _may_start(self, caller: int, vmid: int) -> VmRecord:
        _require(caller == Vmid.HLOS, RmError.DENIED)
        record = self._owned(caller, vmid, RmError.DENIED)
        _require(record.vm_state is VmState.READY, RmError.VM_STATE)
        return record

    @_answers
    def start(self, caller: int, request: VmStart, outcome: RmError = RmError.OK) -> Result:
        """VM_START: READY to RUNNING, or to INIT_FAILED with ``outcome`` if starting failed."""
        record = self._may_start(caller, request.vmid)
        new_state = VmState.RUNNING if outcome is RmError.OK else VmState.INIT_FAILED
        return Result(outcome, notifications=self._set_state(record, new_state))

    @_answers
    def set_boot_context(self, caller: int, request: VmSetBootContext) -> Result:
        """VM_SET_BOOT_CONTEXT: records one boot register; owner only, in INIT or READY."""
        record = self._owned(caller, request.vmid, RmError.DENIED)
        _require(record.vm_state in (VmState.INIT, VmState.READY), RmError.VM_STATE)
        limit = _REG_INDEX_LIMIT.get(request.reg_set, 0)
        _require(request.reg_index < limit, RmError.ARGUMENT_INVALID)
        key = (BootRegSet(request.reg_set), request.reg_index)
        kept = tuple(r for r in record.boot_context if r[:2] != key)
        self._records[record.vmid] = replace(record, boot_context=(*kept, (*key, request.value)))
        return Result()

    @_answers
    def set_firmware_mem(self, caller: int, request: VmSetFirmwareMem,
                         outcome: RmError = RmError.OK) -> Result:
        """VM_SET_FIRMWARE_MEM: records the firmware parcel; the VM, owner or a peer, in INIT."""
        record = self._queryable(caller, request.vmid)
        _require(record.vm_state is VmState.INIT, RmError.VM_STATE)
        _require(outcome is RmError.OK, outcome)
        firmware = FirmwareConfig(request.mem_handle, request.fw_offset, request.fw_size)
        self._records[record.vmid] = replace(record, firmware=firmware)
        return Result()

    # --- running, stopping, resetting -------------------------------------------------------------

    @_answers
    def stop(self, caller: int, request: VmStop) -> Result:
        """VM_STOP: FORCE exits the VM now; otherwise the VM gets VM_SHUTDOWN(stop_reason)."""
        record = self._owned(caller, request.vmid, RmError.VMID_INVALID)
        _require(transition_allowed(record.vm_state, VmState.EXITED), RmError.VM_STATE)
        if request.flags & VmStopFlag.FORCE:
            return Result(notifications=self._exit(record, ExitType.VM_STOP_FORCED,
                                                   VmExitReason()))
        return Result(notifications=(Notify(record.vmid, VmShutdownNotify(request.stop_reason)),))

    @_answers
    def vm_exit(self, caller: int, request: VmExit) -> Result:
        """VM_EXIT from a running guest: the caller exits; its owner gets VM_EXITED(VM_EXIT)."""
        record = self._known(caller, RmError.VMID_INVALID)
        _require(transition_allowed(record.vm_state, VmState.EXITED), RmError.VM_STATE)
        reason = VmExitReason(request.exit_flags, request.exit_code)
        return Result(notifications=self._exit(record, ExitType.VM_EXIT, reason))

    @_answers
    def vm_halted(self, vmid: int, exit_type: ExitType,
                  reason: VmExitReason = VmExitReason()) -> Result:
        """The VM stopped on its own (vCPU halt, watchdog): it exits; ignored once it has exited."""
        record = self._known(vmid, RmError.VMID_INVALID)
        if record.vm_state in (VmState.EXITED, VmState.RESETTING, VmState.RESET):
            return Result()
        _require(transition_allowed(record.vm_state, VmState.EXITED), RmError.VM_STATE)
        return Result(notifications=self._exit(record, exit_type, reason))

    @_answers
    def transition(self, vmid: int, new_state: VmState) -> Result:
        """Moves ``vmid`` to ``new_state`` (e.g. PAUSED and back) if the state machine allows."""
        record = self._known(vmid, RmError.VMID_INVALID)
        _require(transition_allowed(record.vm_state, new_state), RmError.VM_STATE)
        return Result(notifications=self._set_state(record, new_state))

    @_answers
    def reset(self, caller: int, request: VmReset) -> Result:
        """VM_RESET: EXITED, READY or INIT_FAILED to RESETTING; teardown follows."""
        record = self._owned(caller, request.vmid, RmError.VMID_INVALID)
        _require(transition_allowed(record.vm_state, VmState.RESETTING), RmError.VM_STATE)
        return Result(notifications=self._set_state(record, VmState.RESETTING))

    @_answers
    def reset_complete(self, vmid: int) -> Result:
        """Teardown is done: RESETTING to RESET, configuration cleared, peers forgotten."""
        record = self._known(vmid, RmError.VMID_INVALID)
        _require(record.vm_state is VmState.RESETTING, RmError.VM_STATE)
        notes = self._set_state(record, VmState.RESET, os_state=OsState.NONE, app_status=0,
                                auth=None, image=None, firmware=None, boot_context=())
        for peer in record.peers:
            self._unlink(peer, vmid)
        self._records[vmid] = replace(self._records[vmid], peers=frozenset())
        return Result(notifications=notes)

    # --- status and peers -------------------------------------------------------------------------

    @_answers
    def get_state(self, caller: int, request: VmGetState) -> Result:
        """VM_GET_STATE of ``vmid`` (0: the caller) for the VM itself, its owner or a peer."""
        record = self._queryable(caller, request.vmid or caller)
        return Result(reply=VmGetStateReply(record.vm_state, record.os_state, record.app_status))

    def get_vmid(self, caller: int) -> Result:
        """VM_GET_VMID: the caller's own vmid."""
        return Result(reply=VmGetVmidReply(caller))

    @_answers
    def set_status(self, caller: int, request: VmSetStatus) -> Result:
        """VM_SET_STATUS from a guest: updates its os_state (0: unchanged) and app_status."""
        record = self._known(caller, RmError.NORESOURCE)
        _require(caller not in (Vmid.HLOS, Vmid.RM), RmError.DENIED)
        _require(request.os_state in _OS_STATES, RmError.ARGUMENT_INVALID)
        os_state = OsState(request.os_state) if request.os_state else record.os_state
        updated = replace(record, os_state=os_state, app_status=request.app_status)
        self._records[caller] = updated
        return Result(notifications=self._status_notifications(updated))

    def add_peers(self, vmid: int, peer: int) -> RmError:
        """Makes ``vmid`` and ``peer`` peers of each other (DT ``peer`` references, at VM_INIT)."""
        if vmid not in self._records or peer not in self._records:
            return RmError.VMID_INVALID
        self._link(vmid, peer)
        return RmError.OK

    # --- internals --------------------------------------------------------------------------------

    def _known(self, vmid: int, missing: RmError) -> VmRecord:
        record = self._records.get(vmid)
        if record is None:
            raise _Refusal(missing)
        return record

    def _owned(self, caller: int, vmid: int, not_owner: RmError) -> VmRecord:
        record = self._known(vmid, RmError.VMID_INVALID)
        _require(record.owner == caller, not_owner)
        return record

    def _queryable(self, caller: int, vmid: int) -> VmRecord:
        record = self._known(vmid, RmError.NORESOURCE)
        allowed = caller in (record.vmid, record.owner) or caller in record.peers
        _require(allowed, RmError.DENIED)
        return record

    def _set_state(self, record: VmRecord, new_state: VmState, **changes: object
                   ) -> tuple[Notify, ...]:
        if not transition_allowed(record.vm_state, new_state):
            raise AssertionError(f"VM {record.vmid:#x}: {record.vm_state.name} -> "
                                 f"{new_state.name} is not a vm_state transition")
        updated = replace(record, vm_state=new_state, **changes)  # type: ignore[arg-type]
        self._records[record.vmid] = updated
        return self._status_notifications(updated)

    def _exit(self, record: VmRecord, exit_type: ExitType, reason: VmExitReason
              ) -> tuple[Notify, ...]:
        notes = self._set_state(record, VmState.EXITED)
        exited = VmExitedNotify(record.vmid, exit_type, reason.pack())
        return (*notes, Notify(record.owner, exited))

    def _status_notifications(self, record: VmRecord) -> tuple[Notify, ...]:
        candidates = {record.vmid, record.owner} | record.peers
        recipients = sorted(v for v in candidates
                            if (r := self._records.get(v)) and r.vm_state is VmState.RUNNING)
        status = record.status()
        return tuple(Notify(v, status) for v in recipients)

    def _link(self, a: int, b: int) -> None:
        for one, other in ((a, b), (b, a)):
            record = self._records[one]
            self._records[one] = replace(record, peers=record.peers | {other})

    def _unlink(self, vmid: int, gone: int) -> None:
        record = self._records.get(vmid)
        if record is not None:
            self._records[vmid] = replace(record, peers=record.peers - {gone})
