"""The RM service's console handlers: VM_CONSOLE_OPEN / CLOSE / WRITE / FLUSH.

Each VM has one RM console. A target ``vmid`` of 0 names the caller's own console; besides the VM
itself only its owner may open it (gunyah-net's reading of RM ``vm_console.c``; gunyah-abi.md 3.5
gives only the layouts). The service keeps which (opener, target) pairs are open:

- OPEN of an unknown VM is VMID_INVALID, by anyone else than the VM or its owner DENIED, and of a
  console the caller already has open BUSY.
- CLOSE, WRITE and FLUSH of a console the caller has not opened are DENIED.
- WRITE by the VM to its own console is console output: the text goes to ``Output.console`` for
  the runtime to log and, if the owner has the console open, to the owner as VM_CONSOLE_CHARS
  (from_vmid = the VM), as the RM forwards a guest's console to the host.
- WRITE by the owner to the VM's console is input for the guest: VM_CONSOLE_CHARS (from_vmid =
  the owner) goes to the VM if the VM has its own console open; otherwise it is dropped.
- FLUSH succeeds at once: the service buffers nothing.
"""

from __future__ import annotations

from typing import Any

from gunyah_net.abi.rm import RmCall, RmError

from .console_payloads import VmConsoleCharsNotify, VmConsoleWrite
from .service_answer import Answer, Handler, ServiceState
from .vm_record import Notify


def _target(state: ServiceState, caller: int, vmid: int) -> tuple[int, RmError]:
    """Returns the console's VM and RM_OK, or the error for a caller that may not use it."""
    target = vmid or caller
    record = state.vms.get(target)
    if record is None:
        return target, RmError.VMID_INVALID
    if caller not in (target, record.owner):
        return target, RmError.DENIED
    return target, RmError.OK


def _open(state: ServiceState, caller: int, request: Any) -> Answer:
    target, error = _target(state, caller, request.vmid)
    if error is RmError.OK and (caller, target) in state.consoles:
        error = RmError.BUSY
    if error is RmError.OK:
        state.consoles.add((caller, target))
    return Answer(error)


def _opened(state: ServiceState, caller: int, vmid: int) -> tuple[int, RmError]:
    target, error = _target(state, caller, vmid)
    if error is RmError.OK and (caller, target) not in state.consoles:
        error = RmError.DENIED
    return target, error


def _close(state: ServiceState, caller: int, request: Any) -> Answer:
    target, error = _opened(state, caller, request.vmid)
    if error is RmError.OK:
        state.consoles.discard((caller, target))
    return Answer(error)


def _flush(state: ServiceState, caller: int, request: Any) -> Answer:
    return Answer(_opened(state, caller, request.vmid)[1])


def _write(state: ServiceState, caller: int, request: VmConsoleWrite) -> Answer:
    target, error = _opened(state, caller, request.vmid)
    if error is not RmError.OK:
        return Answer(error)
    record = state.vms.get(target)
    assert record is not None, "_opened found the VM"
    if caller == target:
        chars = VmConsoleCharsNotify(target, request.data)
        notes = ((_notify(record.owner, chars),)
                 if (record.owner, target) in state.consoles else ())
        return Answer(notifications=notes, console=((target, request.data),))
    if (target, target) in state.consoles:
        return Answer(notifications=(_notify(target, VmConsoleCharsNotify(caller, request.data)),))
    return Answer()


def _notify(vmid: int, chars: VmConsoleCharsNotify) -> Notify:
    return Notify(vmid, chars)


CONSOLE_HANDLERS: dict[int, Handler] = {
    RmCall.VM_CONSOLE_OPEN: _open,
    RmCall.VM_CONSOLE_CLOSE: _close,
    RmCall.VM_CONSOLE_WRITE: _write,
    RmCall.VM_CONSOLE_FLUSH: _flush,
}
"""The console calls the service implements, by message ID."""
