"""Typed payloads of the RM's VM-management messages (gunyah-abi.md 3.5).

Each class is a frozen dataclass with ``pack()`` and ``unpack(data)`` (see ``rm.fields``) and a
``MSG_ID``: the call it is the request or reply of, or the notification it is. Reserved fields are
written as zero; on input they are ignored, except where the RM rejects a non-zero value with
RM_ERROR_MSG_INVALID (VM_INIT, VM_SET_FIRMWARE_MEM, VM_EXIT), and so does ``unpack``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from gunyah_net.abi.rm import HOST_TYPE_AARCH64_GUNYAH_RM_V1, ExitCode, RmCall, RmNotify

from .fields import (
    EmptyPayload,
    FixedPayload,
    PayloadError,
    PayloadReader,
    field_values,
    pack_struct,
    unpack_exact,
)

_VMID_PAD = struct.Struct("<H2x")


# --- requests -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VmAllocVmid(FixedPayload):
    """VM_ALLOC_VMID: ``vmid`` 0 asks the RM to pick a dynamic VMID."""

    MSG_ID: ClassVar[int] = RmCall.VM_ALLOC_VMID
    LAYOUT: ClassVar[struct.Struct] = _VMID_PAD
    vmid: int = 0


@dataclass(frozen=True)
class VmDeallocVmid(FixedPayload):
    """VM_DEALLOC_VMID."""

    MSG_ID: ClassVar[int] = RmCall.VM_DEALLOC_VMID
    LAYOUT: ClassVar[struct.Struct] = _VMID_PAD
    vmid: int


@dataclass(frozen=True)
class VmStart(FixedPayload):
    """VM_START."""

    MSG_ID: ClassVar[int] = RmCall.VM_START
    LAYOUT: ClassVar[struct.Struct] = _VMID_PAD
    vmid: int


@dataclass(frozen=True)
class VmStop(FixedPayload):
    """VM_STOP: ``flags`` bit0 FORCE; without it the RM only forwards ``stop_reason``."""

    MSG_ID: ClassVar[int] = RmCall.VM_STOP
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<HBxI")
    vmid: int
    flags: int = 0
    stop_reason: int = 0


@dataclass(frozen=True)
class VmReset(FixedPayload):
    """VM_RESET."""

    MSG_ID: ClassVar[int] = RmCall.VM_RESET
    LAYOUT: ClassVar[struct.Struct] = _VMID_PAD
    vmid: int


@dataclass(frozen=True)
class VmConfigImage(FixedPayload):
    """VM_CONFIG_IMAGE (40 bytes): offsets are relative to the start of memparcel ``mem_handle``."""

    MSG_ID: ClassVar[int] = RmCall.VM_CONFIG_IMAGE
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<HHIQQQQ")
    vmid: int
    auth: int
    mem_handle: int
    image_offset: int
    image_size: int
    dtb_offset: int
    dtb_size: int


@dataclass(frozen=True)
class VmInit(FixedPayload):
    """VM_INIT: the u16 after the vmid must be zero."""

    MSG_ID: ClassVar[int] = RmCall.VM_INIT
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<H2x")
    _CHECKED: ClassVar[struct.Struct] = struct.Struct("<HH")
    vmid: int

    @classmethod
    def unpack(cls, data: bytes) -> Self:
        """Decodes the payload; a non-zero reserved u16 is an error, as in the RM."""
        vmid, res0 = unpack_exact(cls._CHECKED, data, cls.__name__)
        _require_zero(res0, "res0", cls.__name__)
        return cls(vmid)


@dataclass(frozen=True)
class VmGetState(FixedPayload):
    """VM_GET_STATE: ``vmid`` 0 means the caller."""

    MSG_ID: ClassVar[int] = RmCall.VM_GET_STATE
    LAYOUT: ClassVar[struct.Struct] = _VMID_PAD
    vmid: int = 0


@dataclass(frozen=True)
class VmGetVmid(EmptyPayload):
    """VM_GET_VMID: empty."""

    MSG_ID: ClassVar[int] = RmCall.VM_GET_VMID


@dataclass(frozen=True)
class VmHostGetType(EmptyPayload):
    """VM_HOST_GET_TYPE: empty."""

    MSG_ID: ClassVar[int] = RmCall.VM_HOST_GET_TYPE


@dataclass(frozen=True)
class VmGetHypResources(FixedPayload):
    """VM_GET_HYP_RESOURCES."""

    MSG_ID: ClassVar[int] = RmCall.VM_GET_HYP_RESOURCES
    LAYOUT: ClassVar[struct.Struct] = _VMID_PAD
    vmid: int


@dataclass(frozen=True)
class VmSetBootContext(FixedPayload):
    """VM_SET_BOOT_CONTEXT: one boot register (``reg_set`` is a ``BootRegSet``)."""

    MSG_ID: ClassVar[int] = RmCall.VM_SET_BOOT_CONTEXT
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<HBB4xQ")
    vmid: int
    reg_set: int
    reg_index: int
    value: int


@dataclass(frozen=True)
class VmSetFirmwareMem(FixedPayload):
    """VM_SET_FIRMWARE_MEM: the u16 after the vmid must be zero."""

    MSG_ID: ClassVar[int] = RmCall.VM_SET_FIRMWARE_MEM
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<H2xIQQ")
    _CHECKED: ClassVar[struct.Struct] = struct.Struct("<HHIQQ")
    vmid: int
    mem_handle: int
    fw_offset: int
    fw_size: int

    @classmethod
    def unpack(cls, data: bytes) -> Self:
        """Decodes the payload; a non-zero reserved u16 is an error, as in the RM."""
        vmid, res0, handle, offset, size = unpack_exact(cls._CHECKED, data, cls.__name__)
        _require_zero(res0, "res0", cls.__name__)
        return cls(vmid, handle, offset, size)


@dataclass(frozen=True)
class VmSetStatus(FixedPayload):
    """VM_SET_STATUS (guest to RM): ``os_state`` 0 means "unchanged"."""

    MSG_ID: ClassVar[int] = RmCall.VM_SET_STATUS
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<xBH")
    os_state: int
    app_status: int = 0


VM_EXIT_CODES = frozenset({ExitCode.NORMAL, ExitCode.SOFTWARE_ERROR, ExitCode.BUS_ERROR,
                           ExitCode.DEVICE_ERROR})
"""The exit codes a guest may pass to VM_EXIT; the RM refuses UNKNOWN_ERROR and unknown values."""


@dataclass(frozen=True)
class VmExit(FixedPayload):
    """VM_EXIT (guest to RM): the last byte must be zero and the code one of ``VM_EXIT_CODES``."""

    MSG_ID: ClassVar[int] = RmCall.VM_EXIT
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<HBx")
    _CHECKED: ClassVar[struct.Struct] = struct.Struct("<HBB")
    exit_flags: int = 0
    exit_code: int = ExitCode.NORMAL

    @classmethod
    def unpack(cls, data: bytes) -> Self:
        """Decodes the payload and applies the RM's checks (both are RM_ERROR_MSG_INVALID)."""
        flags, code, res0 = unpack_exact(cls._CHECKED, data, cls.__name__)
        _require_zero(res0, "res0", cls.__name__)
        if code not in VM_EXIT_CODES:
            raise PayloadError(f"VmExit: exit_code {code} is not one of "
                               f"{sorted(int(c) for c in VM_EXIT_CODES)}")
        return cls(flags, code)


# --- replies --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VmAllocVmidReply(FixedPayload):
    """VM_ALLOC_VMID's reply when the RM chose the VMID (otherwise a standard reply)."""

    MSG_ID: ClassVar[int] = RmCall.VM_ALLOC_VMID
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<I")
    vmid: int


@dataclass(frozen=True)
class VmGetStateReply(FixedPayload):
    """VM_GET_STATE's reply: the u32 vm_state | os_state << 8 | app_status << 16."""

    MSG_ID: ClassVar[int] = RmCall.VM_GET_STATE
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<BBH")
    vm_state: int
    os_state: int
    app_status: int = 0


@dataclass(frozen=True)
class VmGetVmidReply(FixedPayload):
    """VM_GET_VMID's reply: the caller's VMID (low 16 bits of the u32)."""

    MSG_ID: ClassVar[int] = RmCall.VM_GET_VMID
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<I")
    vmid: int


@dataclass(frozen=True)
class VmHostGetTypeReply(FixedPayload):
    """VM_HOST_GET_TYPE's reply."""

    MSG_ID: ClassVar[int] = RmCall.VM_HOST_GET_TYPE
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<I")
    host_type: int = HOST_TYPE_AARCH64_GUNYAH_RM_V1


@dataclass(frozen=True)
class HypResource:
    """One 44-byte VM_GET_HYP_RESOURCES entry (``resource_type`` is a ``ResourceType``)."""

    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<BxHIIQIIQQ")
    resource_type: int
    partner_vmid: int
    resource_handle: int
    label: int
    cap_id: int
    virq_handle: int = 0
    virq: int = 0
    base: int = 0
    size: int = 0


_COUNT = struct.Struct("<I")


@dataclass(frozen=True)
class VmGetHypResourcesReply:
    """VM_GET_HYP_RESOURCES's reply: u32 n, then n packed 44-byte entries."""

    MSG_ID: ClassVar[int] = RmCall.VM_GET_HYP_RESOURCES
    resources: tuple[HypResource, ...] = ()

    def pack(self) -> bytes:
        """Returns the payload bytes."""
        parts = [_COUNT.pack(len(self.resources))]
        parts += [pack_struct(HypResource.LAYOUT, field_values(r), "HypResource")
                  for r in self.resources]
        return b"".join(parts)

    @classmethod
    def unpack(cls, data: bytes) -> Self:
        """Decodes the payload; its length must be exactly 4 + 44 n."""
        reader = PayloadReader(data, cls.__name__)
        (count,) = reader.take(_COUNT, "the entry count")
        size = HypResource.LAYOUT.size
        if reader.remaining() != count * size:
            raise PayloadError(f"{cls.__name__}: {count} entries need {count * size} bytes, "
                               f"{reader.remaining()} present")
        return cls(tuple(HypResource(*reader.take(HypResource.LAYOUT, f"entry {i}"))
                         for i in range(count)))


# --- notifications --------------------------------------------------------------------------------


@dataclass(frozen=True)
class VmStatusNotify(FixedPayload):
    """VM_STATUS: a VM's vm_state, os_state or app_status changed."""

    MSG_ID: ClassVar[int] = RmNotify.VM_STATUS
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<H2xBBH")
    vmid: int
    vm_status: int
    os_status: int = 0
    app_status: int = 0


_REASON_WORD = struct.Struct("<I")


@dataclass(frozen=True)
class VmExitReason:
    """VM_EXITED's reason bytes: one word (flags in 15:0, code in 23:16), then extra words.

    For PSCI_SYSTEM_RESET2 the extra words are the reset type, cookie low and cookie high.
    """

    exit_flags: int = 0
    exit_code: int = ExitCode.NORMAL
    extra: tuple[int, ...] = ()

    def pack(self) -> bytes:
        """Returns the reason bytes."""
        if not (0 <= self.exit_flags <= 0xFFFF and 0 <= self.exit_code <= 0xFF):
            raise PayloadError(f"VmExitReason: flags {self.exit_flags:#x} or code "
                               f"{self.exit_code} out of range")
        words = (self.exit_flags | self.exit_code << 16, *self.extra)
        return b"".join(pack_struct(_REASON_WORD, (w,), "VmExitReason") for w in words)

    @classmethod
    def unpack(cls, data: bytes) -> Self:
        """Decodes reason bytes: a non-empty whole number of words."""
        if not data or len(data) % 4:
            raise PayloadError(f"VmExitReason of {len(data)} bytes is not a non-empty whole "
                               f"number of u32 words")
        words = [w for (w,) in _REASON_WORD.iter_unpack(data)]
        return cls(words[0] & 0xFFFF, (words[0] >> 16) & 0xFF, tuple(words[1:]))


_EXITED = struct.Struct("<HHI")


@dataclass(frozen=True)
class VmExitedNotify:
    """VM_EXITED (to the owner): u16 vmid, u16 exit_type, u32 reason_size, reason bytes."""

    MSG_ID: ClassVar[int] = RmNotify.VM_EXITED
    vmid: int
    exit_type: int
    reason: bytes = VmExitReason().pack()

    def pack(self) -> bytes:
        """Returns the payload bytes."""
        head = pack_struct(_EXITED, (self.vmid, self.exit_type, len(self.reason)), "VmExitedNotify")
        return head + self.reason

    @classmethod
    def unpack(cls, data: bytes) -> Self:
        """Decodes the payload; reason_size must match the remaining length exactly."""
        reader = PayloadReader(data, cls.__name__)
        vmid, exit_type, size = reader.take(_EXITED, "the header")
        if reader.remaining() != size:
            raise PayloadError(f"{cls.__name__}: reason_size {size}, {reader.remaining()} "
                               f"reason bytes present")
        return cls(vmid, exit_type, reader.take_bytes(size, "the reason"))

    def exit_reason(self) -> VmExitReason:
        """Decodes ``reason`` (raises ``PayloadError`` if it is not whole words)."""
        return VmExitReason.unpack(self.reason)


@dataclass(frozen=True)
class VmShutdownNotify(FixedPayload):
    """VM_SHUTDOWN (to the VM): its owner asked it to stop, for ``stop_reason``."""

    MSG_ID: ClassVar[int] = RmNotify.VM_SHUTDOWN
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<I")
    stop_reason: int = 0


VM_REQUESTS: dict[int, Any] = {cls.MSG_ID: cls for cls in (
    VmAllocVmid, VmDeallocVmid, VmStart, VmStop, VmReset, VmConfigImage, VmInit, VmGetState,
    VmGetVmid, VmHostGetType, VmGetHypResources, VmSetBootContext, VmSetFirmwareMem, VmSetStatus,
    VmExit)}
"""Request payload class by message ID."""

VM_NOTIFICATIONS: dict[int, Any] = {cls.MSG_ID: cls for cls in (
    VmStatusNotify, VmExitedNotify, VmShutdownNotify)}
"""Notification payload class by message ID."""


def _require_zero(value: int, field: str, what: str) -> None:
    if value != 0:
        raise PayloadError(f"{what}: reserved field {field} is {value:#x}, must be 0")

