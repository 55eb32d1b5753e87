"""The values of the RM's VM table: VM records, the vm_state machine, and operation results.

``TRANSITIONS`` is the RM's state machine (RM ``vm_mgnt_state_change_valid``, gunyah-abi.md 3.6):
NONE->LOAD; LOAD|RESET->AUTH, or ->INIT for auth NONE/ANDROID_PVM; AUTH->INIT; INIT->READY;
READY|PAUSED->RUNNING; RUNNING->PAUSED; RUNNING|PAUSED->EXITED;
EXITED|READY|INIT_FAILED->RESETTING->RESET->NONE; and, on a failed step, LOAD|AUTH|RESET|INIT|READY
->INIT_FAILED.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gunyah_net.abi.rm import BootRegSet, OsState, RmCall, RmError, VmAuth, VmState

from .console_payloads import VmConsoleCharsNotify
from .mem_payloads import MemAcceptedNotify, MemRecallNotify, MemReleasedNotify, MemSharedNotify
from .vm_payloads import (
    VmAllocVmidReply,
    VmExitedNotify,
    VmGetStateReply,
    VmGetVmidReply,
    VmShutdownNotify,
    VmStatusNotify,
)

_S = VmState
TRANSITIONS: Mapping[VmState, frozenset[VmState]] = {
    _S.NONE: frozenset({_S.LOAD}),
    _S.LOAD: frozenset({_S.AUTH, _S.INIT, _S.INIT_FAILED}),
    _S.AUTH: frozenset({_S.INIT, _S.INIT_FAILED}),
    _S.INIT: frozenset({_S.READY, _S.INIT_FAILED}),
    _S.READY: frozenset({_S.RUNNING, _S.INIT_FAILED, _S.RESETTING}),
    _S.RUNNING: frozenset({_S.PAUSED, _S.EXITED}),
    _S.PAUSED: frozenset({_S.RUNNING, _S.EXITED}),
    _S.INIT_FAILED: frozenset({_S.RESETTING}),
    _S.EXITED: frozenset({_S.RESETTING}),
    _S.RESETTING: frozenset({_S.RESET}),
    _S.RESET: frozenset({_S.AUTH, _S.INIT, _S.INIT_FAILED, _S.NONE}),
}
"""Allowed vm_state changes, old state to new states (RM ``vm_mgnt_state_change_valid``)."""

HLOS_ONLY_CALLS = frozenset({RmCall.VM_ALLOC_VMID, RmCall.VM_CONFIG_IMAGE, RmCall.VM_AUTH_IMAGE,
                             RmCall.VM_INIT, RmCall.VM_START})
"""Calls only the HLOS may make. The RM refuses others with DENIED before it looks at the payload,
so the service checks this before unpacking."""


def transition_allowed(old: VmState, new: VmState) -> bool:
    """Returns whether a VM may go from vm_state ``old`` to ``new``."""
    return new in TRANSITIONS.get(old, frozenset())


@dataclass(frozen=True)
class ImageConfig:
    """What VM_CONFIG_IMAGE recorded: the parcel and where the image and DT lie in it."""

    mem_handle: int
    image_offset: int
    image_size: int
    dtb_offset: int
    dtb_size: int


@dataclass(frozen=True)
class FirmwareConfig:
    """What VM_SET_FIRMWARE_MEM recorded."""

    mem_handle: int
    offset: int
    size: int


@dataclass(frozen=True)
class VmRecord:
    """One VM as the RM knows it."""

    vmid: int
    owner: int
    vm_state: VmState = VmState.LOAD
    os_state: OsState = OsState.NONE
    app_status: int = 0
    peers: frozenset[int] = frozenset()
    auth: VmAuth | None = None
    image: ImageConfig | None = None
    firmware: FirmwareConfig | None = None
    boot_context: tuple[tuple[BootRegSet, int, int], ...] = ()
    """(reg_set, reg_index, value) per register set with VM_SET_BOOT_CONTEXT, in order."""

    def status(self) -> VmStatusNotify:
        """Returns the VM_STATUS payload describing this VM now."""
        return VmStatusNotify(self.vmid, self.vm_state, self.os_state, self.app_status)


Notification = (VmStatusNotify | VmExitedNotify | VmShutdownNotify | VmConsoleCharsNotify
                | MemSharedNotify | MemReleasedNotify | MemAcceptedNotify | MemRecallNotify)
"""Every notification the RM sends (VM lifecycle, console characters, memparcel events)."""
ReplyPayload = VmAllocVmidReply | VmGetStateReply | VmGetVmidReply


@dataclass(frozen=True)
class Notify:
    """One notification to send: ``payload`` (it has ``MSG_ID`` and ``pack()``) to VM ``vmid``."""

    vmid: int
    payload: Notification


@dataclass(frozen=True)
class Result:
    """The answer to one call: the reply's RM error and payload, and notifications to send."""

    error: RmError = RmError.OK
    reply: ReplyPayload | None = None
    notifications: tuple[Notify, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the reply's error is RM_OK."""
        return self.error is RmError.OK
