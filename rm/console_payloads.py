"""Typed payloads of the RM console messages: VM_CONSOLE_OPEN/CLOSE/WRITE/FLUSH, VM_CONSOLE_CHARS.

A target ``vmid`` of 0 means the caller's own console; the owner names the VM it talks to. Text is
sent as a u16 count and exactly that many bytes (RM `vm_console_message.h`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from gunyah_net.abi.rm import RmCall, RmNotify

from .fields import FixedPayload, PayloadError, PayloadReader, pack_struct

_VMID_PAD = struct.Struct("<H2x")


@dataclass(frozen=True)
class VmConsoleOpen(FixedPayload):
    """VM_CONSOLE_OPEN: ``vmid`` 0 opens the caller's own console."""

    MSG_ID: ClassVar[int] = RmCall.VM_CONSOLE_OPEN
    LAYOUT: ClassVar[struct.Struct] = _VMID_PAD
    vmid: int = 0


@dataclass(frozen=True)
class VmConsoleClose(FixedPayload):
    """VM_CONSOLE_CLOSE."""

    MSG_ID: ClassVar[int] = RmCall.VM_CONSOLE_CLOSE
    LAYOUT: ClassVar[struct.Struct] = _VMID_PAD
    vmid: int = 0


@dataclass(frozen=True)
class VmConsoleFlush(FixedPayload):
    """VM_CONSOLE_FLUSH."""

    MSG_ID: ClassVar[int] = RmCall.VM_CONSOLE_FLUSH
    LAYOUT: ClassVar[struct.Struct] = _VMID_PAD
    vmid: int = 0


_VMID_COUNT = struct.Struct("<HH")


@dataclass(frozen=True)
class VmConsoleWrite:
    """VM_CONSOLE_WRITE: u16 vmid, u16 n, then exactly n bytes of text."""

    MSG_ID: ClassVar[int] = RmCall.VM_CONSOLE_WRITE
    vmid: int
    data: bytes

    def pack(self) -> bytes:
        """Returns the payload bytes."""
        return pack_struct(_VMID_COUNT, (self.vmid, len(self.data)), "VmConsoleWrite") + self.data

    @classmethod
    def unpack(cls, data: bytes) -> Self:
        """Decodes the payload; the count must match the text length exactly."""
        vmid, text = _unpack_counted(data, cls.__name__)
        return cls(vmid, text)


@dataclass(frozen=True)
class VmConsoleCharsNotify:
    """VM_CONSOLE_CHARS: u16 from_vmid, u16 n, then the n characters."""

    MSG_ID: ClassVar[int] = RmNotify.VM_CONSOLE_CHARS
    from_vmid: int
    data: bytes

    def pack(self) -> bytes:
        """Returns the payload bytes."""
        head = pack_struct(_VMID_COUNT, (self.from_vmid, len(self.data)), "VmConsoleCharsNotify")
        return head + self.data

    @classmethod
    def unpack(cls, data: bytes) -> Self:
        """Decodes the payload; the count must match the text length exactly."""
        vmid, text = _unpack_counted(data, cls.__name__)
        return cls(vmid, text)


CONSOLE_REQUESTS: dict[int, Any] = {cls.MSG_ID: cls for cls in (
    VmConsoleOpen, VmConsoleClose, VmConsoleWrite, VmConsoleFlush)}
"""Request payload class by message ID."""

CONSOLE_NOTIFICATIONS: dict[int, Any] = {VmConsoleCharsNotify.MSG_ID: VmConsoleCharsNotify}
"""Notification payload class by message ID."""


def _unpack_counted(data: bytes, what: str) -> tuple[int, bytes]:
    reader = PayloadReader(data, what)
    vmid, count = reader.take(_VMID_COUNT, "the header")
    if reader.remaining() != count:
        raise PayloadError(f"{what}: count {count}, {reader.remaining()} bytes of text present")
    return vmid, reader.take_bytes(count, "the text")
