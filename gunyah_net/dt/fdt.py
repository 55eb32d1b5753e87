"""Flattened device tree model and writer: nodes with ordered properties, serialised to a DTB.

The format is the Devicetree Specification's flattened form, version 17 (last compatible
version 16), big-endian: a 40-byte header, the memory reservation block (here always just its
terminator), the structure block and the strings block, each starting 8-byte aligned.

Property values are raw bytes; the ``add_*`` helpers encode the common types and the
:class:`Property` ``as_*`` methods decode them. A DTB carries no types, so two trees are equal
exactly when their names, property bytes and child order are equal.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum

FDT_MAGIC = 0xD00DFEED
FDT_VERSION = 17
FDT_LAST_COMP_VERSION = 16
FDT_HEADER_SIZE = 40
FDT_RSVMAP_ENTRY_SIZE = 16



class FdtToken(IntEnum):
    """Structure block tokens (Devicetree Specification 5.4.1)."""

    BEGIN_NODE = 0x1
    END_NODE = 0x2
    PROP = 0x3
    NOP = 0x4
    END = 0x9


U32_MAX = 0xFFFF_FFFF
U64_MAX = 0xFFFF_FFFF_FFFF_FFFF

# Devicetree Specification 2.2.1 (node names) and 2.2.4 (property names).
_NODE_NAME_CHARS = r"[0-9A-Za-z,._+\-]"
_NODE_NAME = re.compile(rf"{_NODE_NAME_CHARS}+(?:@{_NODE_NAME_CHARS}+)?")
_PROPERTY_NAME = re.compile(r"[0-9A-Za-z,._+?#\-]+")


class FdtError(ValueError):
    """A device tree, a property value or a DTB breaks the flattened-device-tree rules."""


def check_node_name(name: str) -> None:
    """Raises FdtError unless `name` is a valid non-root node name (`node-name[@unit-address]`)."""
    if not isinstance(name, str):
        raise FdtError(f"node name must be a str, got {type(name).__name__}")
    if not _NODE_NAME.fullmatch(name):
        raise FdtError(
            f"bad node name {name!r}: expected node-name[@unit-address] using only "
            "0-9 a-z A-Z , . _ + - (one '@', both parts non-empty)"
        )


def check_property_name(name: str) -> None:
    """Raises FdtError unless `name` is a valid property name."""
    if not isinstance(name, str):
        raise FdtError(f"property name must be a str, got {type(name).__name__}")
    if not _PROPERTY_NAME.fullmatch(name):
        raise FdtError(f"bad property name {name!r}: use only 0-9 a-z A-Z , . _ + ? # -")


# --- value encoders ----------------------------------------------------------------------------


def _check_int(value: int, limit: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FdtError(f"{what} must be an int, got {type(value).__name__}")
    if not 0 <= value <= limit:
        raise FdtError(f"{what} {value:#x} is outside 0..{limit:#x}")
    return value


def encode_u32(value: int) -> bytes:
    """Encodes one big-endian 32-bit cell."""
    return struct.pack(">I", _check_int(value, U32_MAX, "u32 value"))


def encode_u64(value: int) -> bytes:
    """Encodes a 64-bit value as two big-endian cells, high cell first."""
    return struct.pack(">Q", _check_int(value, U64_MAX, "u64 value"))


def encode_cells(cells: Iterable[int]) -> bytes:
    """Encodes a list of 32-bit cells (`<a b c>` in DTS)."""
    return b"".join(encode_u32(cell) for cell in cells)


def encode_string(text: str) -> bytes:
    """Encodes one NUL-terminated UTF-8 string; rejects embedded NULs."""
    if not isinstance(text, str):
        raise FdtError(f"string value must be a str, got {type(text).__name__}")
    if "\0" in text:
        raise FdtError(f"string value {text!r} contains a NUL character")
    return text.encode("utf-8") + b"\0"


def encode_strings(texts: Iterable[str]) -> bytes:
    """Encodes a string list (`"a", "b"` in DTS): each string NUL-terminated, back to back."""
    if isinstance(texts, str):
        raise FdtError("string list must be a sequence of str, not a single str")
    encoded = [encode_string(text) for text in texts]
    if not encoded:
        raise FdtError("string list must hold at least one string")
    return b"".join(encoded)


# --- properties --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Property:
    """One named property; `value` holds its raw big-endian bytes."""

    name: str
    value: bytes

    def __post_init__(self) -> None:
        check_property_name(self.name)
        if not isinstance(self.value, bytes):
            raise FdtError(f"property {self.name!r}: value must be bytes")

    def _need_cells(self, count: int | None = None) -> None:
        size = len(self.value)
        if size % 4 or (count is not None and size != 4 * count):
            want = "a multiple of 4" if count is None else str(4 * count)
            raise FdtError(f"property {self.name!r} is {size} bytes, expected {want}")

    def as_u32(self) -> int:
        """Decodes a single 32-bit cell."""
        self._need_cells(1)
        return struct.unpack(">I", self.value)[0]

    def as_u64(self) -> int:
        """Decodes a 64-bit value held in two cells."""
        self._need_cells(2)
        return struct.unpack(">Q", self.value)[0]

    def as_cells(self) -> tuple[int, ...]:
        """Decodes a list of 32-bit cells."""
        self._need_cells()
        return struct.unpack(f">{len(self.value) // 4}I", self.value)

    def as_strings(self) -> tuple[str, ...]:
        """Decodes a list of NUL-terminated UTF-8 strings."""
        if not self.value.endswith(b"\0"):
            raise FdtError(f"property {self.name!r} is not a NUL-terminated string list")
        try:
            return tuple(self.value[:-1].decode("utf-8").split("\0"))
        except UnicodeDecodeError as exc:
            raise FdtError(f"property {self.name!r} is not valid UTF-8") from exc

    def as_string(self) -> str:
        """Decodes exactly one NUL-terminated UTF-8 string."""
        texts = self.as_strings()
        if len(texts) != 1:
            raise FdtError(f"property {self.name!r} holds {len(texts)} strings, expected 1")
        return texts[0]


def _as_bytes(name: str, value: bytes | bytearray) -> bytes:
    if not isinstance(value, (bytes, bytearray)):
        raise FdtError(f"property {name!r}: value must be bytes, got {type(value).__name__}")
    return bytes(value)


# --- nodes -------------------------------------------------------------------------------------


class Node:
    """A device tree node: a name, properties and children, both kept in insertion order.

    The root node has the empty name. Builder methods return the node so calls can chain;
    `add_node` returns the new child.
    """

    __slots__ = ("_name", "_props", "_children")
    __hash__ = None  # type: ignore[assignment]  # mutable

    def __init__(self, name: str = "") -> None:
        if name != "":
            check_node_name(name)
        self._name = name
        self._props: dict[str, Property] = {}
        self._children: dict[str, Node] = {}

    @property
    def name(self) -> str:
        return self._name

    @property
    def properties(self) -> tuple[Property, ...]:
        return tuple(self._props.values())

    @property
    def children(self) -> tuple[Node, ...]:
        return tuple(self._children.values())

    def prop(self, name: str) -> Property | None:
        """Returns the property called `name`, or None."""
        return self._props.get(name)

    def child(self, name: str) -> Node | None:
        """Returns the direct child called `name` (including any `@unit-address`), or None."""
        return self._children.get(name)

    def find(self, path: str) -> Node | None:
        """Returns the node at `path` ("/a/b" from the root, or "a/b" relative), or None."""
        node: Node | None = self
        for part in filter(None, path.split("/")):
            node = node._children.get(part)
            if node is None:
                return None
        return node

    def walk(self, path: str = "/") -> Iterator[tuple[str, Node]]:
        """Yields (path, node) for this node and every descendant, depth first, in order."""
        yield path, self
        for child in self._children.values():
            yield from child.walk(f"{path.rstrip('/')}/{child.name}")

    def add_node(self, name: str) -> Node:
        """Creates a child called `name` and returns it; rejects a duplicate name."""
        check_node_name(name)
        return self.add_child(Node(name))

    def add_child(self, child: Node) -> Node:
        """Appends an existing node as a child and returns it; rejects duplicates and roots."""
        if not isinstance(child, Node):
            raise FdtError(f"child must be a Node, got {type(child).__name__}")
        if child.name == "":
            raise FdtError(f"cannot add a root node (empty name) under {self._label()}")
        if child.name in self._children:
            raise FdtError(f"duplicate node {child.name!r} under {self._label()}")
        if child.name in self._props:
            raise FdtError(f"node {child.name!r} clashes with a property of {self._label()}")
        self._children[child.name] = child
        return child

    def add_property(self, name: str, value: bytes) -> Node:
        """Appends a property with raw bytes; rejects a duplicate name."""
        if name in self._props:
            raise FdtError(f"duplicate property {name!r} in {self._label()}")
        if name in self._children:
            raise FdtError(f"property {name!r} clashes with a child node of {self._label()}")
        self._props[name] = Property(name, _as_bytes(name, value))
        return self

    def replace_property(self, name: str, value: bytes) -> Node:
        """Replaces the value of an existing property, keeping its position."""
        if name not in self._props:
            raise FdtError(f"no property {name!r} in {self._label()} to replace")
        self._props[name] = Property(name, _as_bytes(name, value))
        return self

    def remove_property(self, name: str) -> Property:
        """Removes and returns the property called `name`."""
        if name not in self._props:
            raise FdtError(f"no property {name!r} in {self._label()} to remove")
        return self._props.pop(name)

    def add_u32(self, name: str, value: int) -> Node:
        """Adds a one-cell property."""
        return self.add_property(name, encode_u32(value))

    def add_u64(self, name: str, value: int) -> Node:
        """Adds a 64-bit property (two cells)."""
        return self.add_property(name, encode_u64(value))

    def add_cells(self, name: str, cells: Iterable[int]) -> Node:
        """Adds a list of 32-bit cells."""
        return self.add_property(name, encode_cells(cells))

    def add_string(self, name: str, text: str) -> Node:
        """Adds a single-string property."""
        return self.add_property(name, encode_string(text))

    def add_strings(self, name: str, texts: Iterable[str]) -> Node:
        """Adds a string-list property."""
        return self.add_property(name, encode_strings(texts))

    def add_bytes(self, name: str, data: bytes) -> Node:
        """Adds a property holding arbitrary bytes (`[..]` in DTS)."""
        return self.add_property(name, data)

    def add_empty(self, name: str) -> Node:
        """Adds a valueless (boolean) property."""
        return self.add_property(name, b"")

    def to_dtb(self, min_size: int = 0) -> bytes:
        """Serialises this root node to a DTB whose totalsize is at least `min_size`.

        The padding is zero bytes inside totalsize, free room for an overlay applied in place.
        """
        return _serialise(self, min_size)

    def _label(self) -> str:
        return repr(self._name) if self._name else "the root node"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Node):
            return NotImplemented
        return (
            self._name == other._name
            and list(self._props.values()) == list(other._props.values())
            and list(self._children.values()) == list(other._children.values())
        )

    def __repr__(self) -> str:
        return (
            f"Node({self._name!r}, props={[p.name for p in self._props.values()]}, "
            f"children={list(self._children)})"
        )


# --- serialisation -----------------------------------------------------------------------------


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) & -alignment


class _StringTable:
    """The strings block: each property name stored once, referenced by offset."""

    def __init__(self) -> None:
        self._offsets: dict[str, int] = {}
        self._data = bytearray()

    def offset(self, name: str) -> int:
        if name not in self._offsets:
            self._offsets[name] = len(self._data)
            self._data += name.encode("ascii") + b"\0"
        return self._offsets[name]

    def data(self) -> bytes:
        return bytes(self._data)


def _emit_node(node: Node, out: bytearray, strings: _StringTable) -> None:
    name = node.name.encode("ascii") + b"\0"
    out += struct.pack(">I", FdtToken.BEGIN_NODE) + name.ljust(_align(len(name), 4), b"\0")
    for prop in node.properties:
        out += struct.pack(">III", FdtToken.PROP, len(prop.value), strings.offset(prop.name))
        out += prop.value.ljust(_align(len(prop.value), 4), b"\0")
    for child in node.children:
        _emit_node(child, out, strings)
    out += struct.pack(">I", FdtToken.END_NODE)


def _serialise(root: Node, min_size: int) -> bytes:
    if root.name != "":
        raise FdtError(f"to_dtb needs the root node (empty name), got node {root.name!r}")
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 0:
        raise FdtError(f"min_size must be a non-negative int, got {min_size!r}")
    strings = _StringTable()
    dt_struct = bytearray()
    _emit_node(root, dt_struct, strings)
    dt_struct += struct.pack(">I", FdtToken.END)
    dt_strings = strings.data()

    off_rsvmap = _align(FDT_HEADER_SIZE, 8)
    off_struct = off_rsvmap + FDT_RSVMAP_ENTRY_SIZE
    off_strings = _align(off_struct + len(dt_struct), 8)
    used = off_strings + len(dt_strings)
    totalsize = max(_align(used, 8), min_size)
    if totalsize > U32_MAX:
        raise FdtError(f"DTB of {totalsize} bytes does not fit the 32-bit totalsize field")

    header = struct.pack(
        ">10I", FDT_MAGIC, totalsize, off_struct, off_strings, off_rsvmap,
        FDT_VERSION, FDT_LAST_COMP_VERSION, 0, len(dt_strings), len(dt_struct),
    )  # fmt: skip
    blob = bytearray(totalsize)
    blob[0 : len(header)] = header
    blob[off_rsvmap : off_rsvmap + FDT_RSVMAP_ENTRY_SIZE] = bytes(FDT_RSVMAP_ENTRY_SIZE)
    blob[off_struct : off_struct + len(dt_struct)] = dt_struct
    blob[off_strings:used] = dt_strings
    return bytes(blob)


# --- phandles ----------------------------------------------------------------------------------


class PhandleAllocator:
    """Hands out phandles that no node of a tree uses yet, counting up from the highest in use."""

    def __init__(self, root: Node | None = None) -> None:
        highest = 0
        for path, node in root.walk() if root is not None else ():
            for name in ("phandle", "linux,phandle"):
                prop = node.prop(name)
                if prop is not None:
                    try:
                        highest = max(highest, prop.as_u32())
                    except FdtError as exc:
                        raise FdtError(f"{path}: malformed {name}: {exc}") from exc
        self._next = highest + 1

    def phandle(self, node: Node) -> int:
        """Returns the node's phandle, first giving it a fresh one if it has none."""
        existing = node.prop("phandle")
        if existing is not None:
            return existing.as_u32()
        if self._next >= U32_MAX:  # 0xFFFFFFFF is reserved (-1)
            raise FdtError("no phandles left: all of 1..0xfffffffe are used")
        value = self._next
        self._next += 1
        node.add_u32("phandle", value)
        return value
