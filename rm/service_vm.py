"""The RM service's VM-management handlers: thin shims from decoded requests to ``VmTable``.

Each handler checks what the table does not, calls the table, and turns its ``Result`` into an
``Answer`` with the EL2 work the call needs:

- VM_CONFIG_IMAGE is answered at once: the table's checks, then the image parcel's
  (``MemparcelTable.check_image_parcel``) as the outcome (INIT_FAILED if they fail).
- VM_INIT asks for ``CreateVmObjects`` and its reply waits for ``complete(vmid, Step.INIT)``.
- VM_START accepts the VM's parcels (``auto_accept_for_start``), asks for the memory operations
  and ``PowerOnVm``, and its reply waits for ``complete(vmid, Step.START)``.
- VM_RESET replies at once (RESETTING), releases what the VM accepted and asks for
  ``TeardownVm``; ``complete(vmid, Step.RESET)`` then enters RESET.
- VM_EXIT and a forced VM_STOP ask for ``StopVm`` and then release every parcel the VM
  accepted (MEM_RELEASED to each owner, the unmaps after the stop): the owner reclaims its
  memory after VM_EXITED and before VM_RESET (gunyah-abi.md 3.7 teardown), as a halted VM's
  owner does (``RmService.vm_halted``).
- VM_GET_HYP_RESOURCES replies with what the runtime reported at ``Step.INIT`` (empty before).

A lifecycle call for a VM whose earlier step is still pending is answered BUSY.
"""

from __future__ import annotations

from typing import Any

from gunyah_net.abi.rm import RmCall, RmError, VmStopFlag

from .service_answer import (
    Answer,
    CreateVmObjects,
    Handler,
    PowerOnVm,
    ServiceOp,
    ServiceState,
    Step,
    StopVm,
    TeardownVm,
)
from .vm_payloads import (
    VmConfigImage,
    VmGetHypResourcesReply,
    VmGetState,
    VmHostGetTypeReply,
    VmInit,
    VmStart,
)
from .vm_query_payloads import VmGetOwnerReply, VmGetPeersReply
from .vm_record import Result


def answer_of(result: Result, *ops: ServiceOp) -> Answer:
    """Turns a VM table result into an answer; ``ops`` are asked for only if it succeeded."""
    return Answer(result.error, result.reply, result.notifications, ops if result.ok else ())


def _alloc_vmid(state: ServiceState, caller: int, request: Any) -> Answer:
    return answer_of(state.vms.alloc_vmid(caller, request))


def _dealloc_vmid(state: ServiceState, caller: int, request: Any) -> Answer:
    if state.busy(request.vmid):
        return Answer(RmError.BUSY)
    result = state.vms.dealloc_vmid(caller, request)
    if result.ok:
        forget_vm(state, request.vmid)
        state.parcels.forget_memory(request.vmid)
    return answer_of(result)


def forget_vm(state: ServiceState, vmid: int) -> None:
    """Drops what the service keeps about ``vmid`` besides its record (reset, dealloc)."""
    state.consoles -= {pair for pair in state.consoles if vmid in pair}
    state.resources.pop(vmid, None)
    state.image_base.pop(vmid, None)


def _get_vmid(state: ServiceState, caller: int, request: Any) -> Answer:
    return answer_of(state.vms.get_vmid(caller))


def _get_state(state: ServiceState, caller: int, request: Any) -> Answer:
    return answer_of(state.vms.get_state(caller, request))


def _get_owner(state: ServiceState, caller: int, request: Any) -> Answer:
    record = state.vms.get(caller)
    if record is None:
        return Answer(RmError.VMID_INVALID)
    return Answer(reply=VmGetOwnerReply(record.owner))


def _get_peers(state: ServiceState, caller: int, request: Any) -> Answer:
    record = state.vms.get(caller)
    if record is None:
        return Answer(RmError.VMID_INVALID)
    return Answer(reply=VmGetPeersReply(tuple(sorted(record.peers))))


def _host_get_type(state: ServiceState, caller: int, request: Any) -> Answer:
    return Answer(reply=VmHostGetTypeReply())


def _set_status(state: ServiceState, caller: int, request: Any) -> Answer:
    return answer_of(state.vms.set_status(caller, request))


def _exit(state: ServiceState, caller: int, request: Any) -> Answer:
    return _exited(state, caller, state.vms.vm_exit(caller, request))


def _stop(state: ServiceState, caller: int, request: Any) -> Answer:
    result = state.vms.stop(caller, request)
    if not request.flags & VmStopFlag.FORCE:
        return answer_of(result)
    return _exited(state, request.vmid, result)


def _exited(state: ServiceState, vmid: int, result: Result) -> Answer:
    """The VM exited (if ``result`` is ok): stop it, then release what it accepted."""
    if not result.ok:
        return answer_of(result)
    released = state.parcels.release_all_accepted(vmid)
    return Answer(result.error, result.reply, result.notifications + released.notifications,
                  (StopVm(vmid), *released.el2_ops))


def _reset(state: ServiceState, caller: int, request: Any) -> Answer:
    if state.busy(request.vmid):
        return Answer(RmError.BUSY)
    result = state.vms.reset(caller, request)
    if not result.ok:
        return answer_of(result)
    released = state.parcels.release_all_accepted(request.vmid)
    return Answer(notifications=result.notifications + released.notifications,
                  el2_ops=released.el2_ops + (TeardownVm(request.vmid),),
                  defer=Step.RESET, vmid=request.vmid)


def _config_image(state: ServiceState, caller: int, request: VmConfigImage) -> Answer:
    error = state.vms.check_config_image(caller, request.vmid)
    if error is not RmError.OK:
        return Answer(error)
    outcome = state.parcels.check_image_parcel(request.vmid, request.mem_handle,
                                               request.image_offset, request.image_size,
                                               request.dtb_offset, request.dtb_size)
    return answer_of(state.vms.config_image(caller, request, outcome))


def _init(state: ServiceState, caller: int, request: VmInit) -> Answer:
    error = state.vms.check_init(caller, request.vmid)
    if error is RmError.OK and state.busy(request.vmid):
        error = RmError.BUSY
    if error is not RmError.OK:
        return Answer(error)
    record = state.vms.get(request.vmid)
    image = record.image if record else None
    return Answer(el2_ops=(CreateVmObjects(request.vmid, image),), defer=Step.INIT,
                  vmid=request.vmid)


def _start(state: ServiceState, caller: int, request: VmStart) -> Answer:
    error = state.vms.check_start(caller, request.vmid)
    if error is RmError.OK and state.busy(request.vmid):
        error = RmError.BUSY
    record = state.vms.get(request.vmid)
    if error is not RmError.OK or record is None:
        return Answer(error)
    base = state.image_base.get(request.vmid)
    image = (record.image.mem_handle, base) if record.image and base is not None else None
    accepted = state.parcels.auto_accept_for_start(request.vmid, image)
    if not accepted.ok:
        failed = state.vms.start(caller, request, accepted.error)
        return Answer(failed.error, None, accepted.notifications + failed.notifications,
                      accepted.el2_ops)
    return Answer(notifications=accepted.notifications,
                  el2_ops=accepted.el2_ops + (PowerOnVm(request.vmid, record.boot_context),),
                  defer=Step.START, vmid=request.vmid)


def _set_boot_context(state: ServiceState, caller: int, request: Any) -> Answer:
    return answer_of(state.vms.set_boot_context(caller, request))


def _set_firmware_mem(state: ServiceState, caller: int, request: Any) -> Answer:
    outcome = state.parcels.check_image_parcel(request.vmid, request.mem_handle,
                                               request.fw_offset, request.fw_size, 0, 0)
    return answer_of(state.vms.set_firmware_mem(caller, request, outcome))


def _get_hyp_resources(state: ServiceState, caller: int, request: Any) -> Answer:
    checked = state.vms.get_state(caller, VmGetState(request.vmid))
    if not checked.ok:
        return Answer(checked.error)
    return Answer(reply=VmGetHypResourcesReply(state.resources.get(request.vmid or caller, ())))


VM_HANDLERS: dict[int, Handler] = {
    RmCall.VM_ALLOC_VMID: _alloc_vmid,
    RmCall.VM_DEALLOC_VMID: _dealloc_vmid,
    RmCall.VM_GET_VMID: _get_vmid,
    RmCall.VM_GET_STATE: _get_state,
    RmCall.VM_GET_OWNER: _get_owner,
    RmCall.VM_GET_PEERS: _get_peers,
    RmCall.VM_HOST_GET_TYPE: _host_get_type,
    RmCall.VM_SET_STATUS: _set_status,
    RmCall.VM_EXIT: _exit,
    RmCall.VM_STOP: _stop,
    RmCall.VM_RESET: _reset,
    RmCall.VM_CONFIG_IMAGE: _config_image,
    RmCall.VM_INIT: _init,
    RmCall.VM_START: _start,
    RmCall.VM_SET_BOOT_CONTEXT: _set_boot_context,
    RmCall.VM_SET_FIRMWARE_MEM: _set_firmware_mem,
    RmCall.VM_GET_HYP_RESOURCES: _get_hyp_resources,
}
"""The VM-management calls the service implements, by message ID."""
