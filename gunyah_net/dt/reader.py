"""Strict DTB parser: turns a flattened device tree blob back into a `Node` tree.

Every malformation (bad magic or version, a block outside totalsize, an unterminated name,
an unknown token, a duplicate property, ...) raises `FdtError` with the reason and, where it
applies, the byte offset. No other exception escapes for any input bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from gunyah_net.dt.fdt import (
    FDT_HEADER_SIZE,
    FDT_MAGIC,
    FDT_RSVMAP_ENTRY_SIZE,
    FdtError,
    FdtToken,
    Node,
)

__all__ = ["Dtb", "FdtError", "FdtHeader", "MemReservation", "parse_dtb", "read_dtb", "read_header"]

# Deeper nesting than this is treated as malformed; real trees stay under ten levels.
MAX_DEPTH = 64
# Oldest layout we accept: version 17 is the first with size_dt_struct.
_MIN_VERSION = 17


@dataclass(frozen=True)
class FdtHeader:
    """The validated 40-byte DTB header."""

    totalsize: int
    off_dt_struct: int
    off_dt_strings: int
    off_mem_rsvmap: int
    version: int
    last_comp_version: int
    boot_cpuid_phys: int
    size_dt_strings: int
    size_dt_struct: int


@dataclass(frozen=True)
class MemReservation:
    """One memory reservation block entry: `size` bytes from physical `address`."""

    address: int
    size: int


@dataclass(frozen=True)
class Dtb:
    """A parsed DTB: its header, memory reservations and the root node."""

    header: FdtHeader
    reservations: tuple[MemReservation, ...]
    root: Node


def read_header(blob: bytes) -> FdtHeader:
    """Parses and checks the header: magic, version and every block inside totalsize."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise FdtError(f"DTB must be bytes, got {type(blob).__name__}")
    if len(blob) < FDT_HEADER_SIZE:
        raise FdtError(f"DTB is {len(blob)} bytes, shorter than the {FDT_HEADER_SIZE}-byte header")
    magic, *fields = struct.unpack_from(">10I", blob, 0)
    if magic != FDT_MAGIC:
        raise FdtError(f"bad magic {magic:#010x}, expected {FDT_MAGIC:#010x}")
    header = FdtHeader(*fields)
    if header.version < _MIN_VERSION or header.last_comp_version > _MIN_VERSION:
        raise FdtError(
            f"unsupported DTB version {header.version} (last compatible "
            f"{header.last_comp_version}); need version >= 17 compatible with 17"
        )
    if not FDT_HEADER_SIZE <= header.totalsize <= len(blob):
        raise FdtError(
            f"totalsize {header.totalsize} is outside {FDT_HEADER_SIZE}..{len(blob)} "
            "(the header up to the blob length)"
        )
    _check_block(header, "memory reservation block", header.off_mem_rsvmap, 0, 8)
    _check_block(header, "structure block", header.off_dt_struct, header.size_dt_struct, 4)
    _check_block(header, "strings block", header.off_dt_strings, header.size_dt_strings, 1)
    if header.size_dt_struct % 4:
        raise FdtError(f"size_dt_struct {header.size_dt_struct} is not a multiple of 4")
    return header


def _check_block(header: FdtHeader, what: str, offset: int, size: int, alignment: int) -> None:
    if offset % alignment:
        raise FdtError(f"{what} offset {offset:#x} is not {alignment}-byte aligned")
    if offset < FDT_HEADER_SIZE or offset + size > header.totalsize:
        raise FdtError(
            f"{what} [{offset:#x}, {offset + size:#x}) lies outside "
            f"[{FDT_HEADER_SIZE:#x}, totalsize {header.totalsize:#x})"
        )


def _read_reservations(blob: bytes, header: FdtHeader) -> tuple[MemReservation, ...]:
    entries: list[MemReservation] = []
    offset = header.off_mem_rsvmap
    while True:
        if offset + FDT_RSVMAP_ENTRY_SIZE > header.totalsize:
            raise FdtError(
                f"memory reservation block starting at {header.off_mem_rsvmap:#x} "
                "has no terminating zero entry before totalsize"
            )
        address, size = struct.unpack_from(">QQ", blob, offset)
        if address == 0 and size == 0:
            return tuple(entries)
        entries.append(MemReservation(address, size))
        offset += FDT_RSVMAP_ENTRY_SIZE


class _StructReader:
    """A bounds-checked cursor over the structure block plus the strings block."""

    def __init__(self, blob: bytes, header: FdtHeader) -> None:
        self._blob = blob
        self._end = header.off_dt_struct + header.size_dt_struct
        self._strings = blob[header.off_dt_strings : header.off_dt_strings + header.size_dt_strings]
        self.pos = header.off_dt_struct

    def u32(self) -> int:
        if self.pos + 4 > self._end:
            raise FdtError(f"offset {self.pos:#x}: structure block ends inside a token")
        (value,) = struct.unpack_from(">I", self._blob, self.pos)
        self.pos += 4
        return value

    def take(self, size: int) -> bytes:
        if self.pos + size > self._end:
            raise FdtError(
                f"offset {self.pos:#x}: {size}-byte value runs past the structure block "
                f"end {self._end:#x}"
            )
        data = self._blob[self.pos : self.pos + size]
        self.pos = (self.pos + size + 3) & ~3
        return data

    def node_name(self) -> str:
        start = self.pos
        nul = self._blob.find(b"\0", start, self._end)
        if nul < 0:
            raise FdtError(f"offset {start:#x}: node name has no NUL before the block end")
        raw = self.take(nul + 1 - start)[:-1]
        return _ascii(raw, f"offset {start:#x}: node name")

    def property_name(self, nameoff: int) -> str:
        if nameoff >= len(self._strings):
            raise FdtError(
                f"property name offset {nameoff:#x} is outside the "
                f"{len(self._strings)}-byte strings block"
            )
        end = self._strings.find(b"\0", nameoff)
        if end < 0:
            raise FdtError(f"property name at strings offset {nameoff:#x} is unterminated")
        return _ascii(self._strings[nameoff:end], f"strings offset {nameoff:#x}: property name")

    @property
    def at_end(self) -> bool:
        return self.pos >= self._end


def _ascii(raw: bytes, what: str) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise FdtError(f"{what} {raw!r} is not ASCII") from exc


def _next_token(cursor: _StructReader) -> tuple[int, int]:
    """Returns (offset, token) of the next token that is not FDT_NOP."""
    while True:
        offset = cursor.pos
        token = cursor.u32()
        if token != FdtToken.NOP:
            return offset, token


def _read_property(cursor: _StructReader, node: Node, offset: int) -> None:
    size = cursor.u32()
    nameoff = cursor.u32()
    value = cursor.take(size)
    name = cursor.property_name(nameoff)
    try:
        node.add_property(name, value)
    except FdtError as exc:
        raise FdtError(f"offset {offset:#x}: {exc}") from exc


def _open_node(cursor: _StructReader, stack: list[Node], offset: int) -> None:
    name = cursor.node_name()
    if not stack:
        if name != "":
            raise FdtError(f"offset {offset:#x}: root node must have an empty name, got {name!r}")
        stack.append(Node(""))
        return
    if len(stack) >= MAX_DEPTH:
        raise FdtError(f"offset {offset:#x}: nodes nest deeper than {MAX_DEPTH} levels")
    try:
        stack.append(stack[-1].add_node(name))
    except FdtError as exc:
        raise FdtError(f"offset {offset:#x}: {exc}") from exc


def _read_root(cursor: _StructReader) -> Node:
    offset, token = _next_token(cursor)
    if token != FdtToken.BEGIN_NODE:
        raise FdtError(f"offset {offset:#x}: structure block starts with token {token:#x}, "
                       "expected FDT_BEGIN_NODE")
    stack: list[Node] = []
    _open_node(cursor, stack, offset)
    root = stack[0]
    while stack:
        offset, token = _next_token(cursor)
        match token:
            case FdtToken.BEGIN_NODE:
                _open_node(cursor, stack, offset)
            case FdtToken.END_NODE:
                stack.pop()
            case FdtToken.PROP:
                if stack[-1].children:
                    raise FdtError(f"offset {offset:#x}: property after a child node")
                _read_property(cursor, stack[-1], offset)
            case _:
                raise FdtError(f"offset {offset:#x}: unexpected token {token:#x} inside a node")
    return root


def _read_struct(blob: bytes, header: FdtHeader) -> Node:
    cursor = _StructReader(blob, header)
    root = _read_root(cursor)
    offset, token = _next_token(cursor)
    if token != FdtToken.END:
        raise FdtError(f"offset {offset:#x}: expected FDT_END after the root node, got "
                       f"token {token:#x}")
    if not cursor.at_end:
        raise FdtError(f"offset {cursor.pos:#x}: data after FDT_END inside the structure block")
    return root


def read_dtb(blob: bytes) -> Dtb:
    """Parses a whole DTB: header, memory reservations and the node tree."""
    header = read_header(blob)
    blob = bytes(blob)
    return Dtb(header, _read_reservations(blob, header), _read_struct(blob, header))


def parse_dtb(blob: bytes) -> Node:
    """Parses a DTB and returns its root node."""
    return read_dtb(blob).root

