"""How RM payloads are laid out: fixed little-endian structs, RM lists, and ``PayloadError``.

Every payload class in ``rm.vm_payloads``, ``rm.console_payloads`` and ``rm.mem_payloads`` is a
frozen dataclass with ``pack() -> bytes`` and ``unpack(data) -> instance``. ``unpack`` raises
``PayloadError`` when the bytes cannot be the message: too short, too long, a count that disagrees
with the length, or a reserved field the RM requires to be zero. ``PayloadError.error`` is the RM
error the RM service replies with: ``RM_ERROR_MSG_INVALID`` (0x4) in every case but one, a list of
more than 512 entries, which the RM answers with ``RM_ERROR_NORESOURCE`` (0x2)
(RM ``rm_rpc_read_list``).

An *RM list* (RM ``rm_rpc_read_list``) is a u16 entry count, a second u16 (reserved, or a field of
its own such as MEM_ACCEPT's map_vmid), then the entries, padded to 4 bytes. A list that would start
exactly at the end of the payload is absent and reads as empty, as in the RM.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Self, TypeVar

from gunyah_net.abi.rm import MEMPARCEL_MAX_LIST_ENTRIES, RmError

T = TypeVar("T")

LIST_HEADER = struct.Struct("<HH")


class PayloadError(ValueError):
    """A payload that cannot be the message it claims to be; ``error`` is the RM reply code."""

    def __init__(self, reason: str, error: RmError = RmError.MSG_INVALID) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


def field_values(item: Any) -> list[Any]:
    """Returns a dataclass instance's field values in declaration order (ClassVars excluded)."""
    return [getattr(item, f.name) for f in dataclasses.fields(item)]


def pack_struct(layout: struct.Struct, values: Sequence[Any], what: str) -> bytes:
    """Packs ``values`` with ``layout``; a value that does not fit raises ``PayloadError``."""
    try:
        return layout.pack(*values)
    except struct.error as exc:
        raise PayloadError(f"{what}: {exc} in {tuple(values)!r}") from exc


def unpack_exact(layout: struct.Struct, data: bytes, what: str) -> tuple[Any, ...]:
    """Unpacks ``data`` that must be exactly ``layout.size`` bytes long."""
    if len(data) != layout.size:
        raise PayloadError(f"{what} payload is {len(data)} bytes, expected {layout.size}")
    return layout.unpack(data)


class FixedPayload:
    """A payload that is one struct: ``LAYOUT`` packs the dataclass fields in declaration order.

    Reserved bytes the RM ignores are ``x`` pad bytes in ``LAYOUT``: written as zero, never read.
    Subclasses that must check a value override ``_from_values``.
    """

    LAYOUT: ClassVar[struct.Struct]

    def pack(self) -> bytes:
        """Returns the payload bytes."""
        return pack_struct(self.LAYOUT, field_values(self), type(self).__name__)

    @classmethod
    def unpack(cls, data: bytes) -> Self:
        """Decodes a payload of exactly ``LAYOUT.size`` bytes."""
        return cls._from_values(unpack_exact(cls.LAYOUT, bytes(data), cls.__name__))

    @classmethod
    def _from_values(cls, values: tuple[Any, ...]) -> Self:
        return cls(*values)


class EmptyPayload:
    """A request whose payload must be empty."""

    def pack(self) -> bytes:
        """Returns the (empty) payload bytes."""
        return b""

    @classmethod
    def unpack(cls, data: bytes) -> Self:
        """Decodes an empty payload."""
        if data:
            raise PayloadError(f"{cls.__name__} payload is {len(data)} bytes, expected 0")
        return cls()


class PayloadReader:
    """A cursor over one payload; every read checks the bounds and names what it read."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = bytes(data)
        self.what = what
        self.offset = 0

    def remaining(self) -> int:
        """Returns how many bytes are left."""
        return len(self.data) - self.offset

    def take(self, layout: struct.Struct, field: str) -> tuple[Any, ...]:
        """Reads one ``layout`` at the cursor."""
        if self.remaining() < layout.size:
            raise PayloadError(f"{self.what} payload ends inside {field} at offset {self.offset} "
                               f"({self.remaining()} of {layout.size} bytes)")
        values = layout.unpack_from(self.data, self.offset)
        self.offset += layout.size
        return values

    def take_bytes(self, count: int, field: str) -> bytes:
        """Reads ``count`` raw bytes."""
        if self.remaining() < count:
            raise PayloadError(f"{self.what} payload ends inside {field}: {count} bytes "
                               f"announced, {self.remaining()} present")
        chunk = self.data[self.offset:self.offset + count]
        self.offset += count
        return chunk

    def take_list(self, entry: struct.Struct, make: Callable[..., T], field: str,
                  max_entries: int = MEMPARCEL_MAX_LIST_ENTRIES) -> tuple[tuple[T, ...], int]:
        """Reads one RM list; returns its entries and the second u16 of its header."""
        if self.remaining() == 0:
            return (), 0
        count, second = self.take(LIST_HEADER, f"the {field} list header")
        if count > max_entries:
            raise PayloadError(f"{self.what}: {count} {field} entries exceed the limit of "
                               f"{max_entries}", RmError.NORESOURCE)
        size = count * entry.size
        body = self.take_bytes(size, f"the {count}-entry {field} list")
        self.take_bytes(-size % 4, f"the {field} list padding")
        return tuple(make(*entry.unpack_from(body, i * entry.size)) for i in range(count)), second

    def finish(self) -> None:
        """Checks that the whole payload was consumed."""
        if self.remaining():
            raise PayloadError(f"{self.what} payload has {self.remaining()} trailing bytes after "
                               f"offset {self.offset}")


def pack_list(entries: Sequence[Any], entry: struct.Struct, field: str, second: int = 0,
              max_entries: int = MEMPARCEL_MAX_LIST_ENTRIES) -> bytes:
    """Returns one RM list: header, entries (dataclasses or plain values) packed by ``entry``."""
    if len(entries) > max_entries:
        raise PayloadError(f"{len(entries)} {field} entries exceed the limit of {max_entries}",
                           RmError.NORESOURCE)
    parts = [pack_struct(LIST_HEADER, (len(entries), second), f"the {field} list header")]
    for item in entries:
        values = field_values(item) if dataclasses.is_dataclass(item) else [item]
        parts.append(pack_struct(entry, values, f"a {field} entry"))
    body = b"".join(parts)
    return body + bytes(-len(body) % 4)
