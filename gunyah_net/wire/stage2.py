"""Stage-2 operations: how the coordinator tells a worker to change its VM's memory map. Pure.

A ``MemUpdate`` frame (and a run-time VM's ``Welcome.regions``) carries a list of operations,
each a msgpack map with an ``op`` key:

- ``{"op": "map", "ipa", "size", "path", "offset", "rights"}``: map ``size`` bytes of the file
  ``path`` from ``offset`` (MAP_SHARED) at ``ipa`` with ``rights``;
- ``{"op": "unmap", "ipa", "size"}``: the pages stop being memory;
- ``{"op": "protect", "ipa", "size", "rights"}``: the mapped pages get ``rights``.

Rights are R = 4, W = 2, X = 1 (Gunyah ``pgtable_access``); 0 keeps the pages mapped but
inaccessible, so an access faults on the instruction. ``ipa``, ``size`` and ``offset`` are whole
4 KiB pages, ``size`` is not 0 and no range wraps. ``from_wire`` checks all of it and raises
``MessageError`` naming the operation and the field; the worker trusts nothing it decodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .messages import MessageError

PAGE_SIZE = 0x1000
_U64 = (1 << 64) - 1
RIGHTS_MAX = 7


class OpKind(str, Enum):
    """The ``op`` value of each operation (frozen: part of protocol v1)."""

    MAP = "map"
    UNMAP = "unmap"
    PROTECT = "protect"


@dataclass(frozen=True)
class MapOp:
    """Map ``size`` bytes of file ``path`` from ``offset`` at ``ipa`` with ``rights``."""

    ipa: int
    size: int
    path: str
    offset: int
    rights: int


@dataclass(frozen=True)
class UnmapOp:
    """Unmap [ipa, ipa + size)."""

    ipa: int
    size: int


@dataclass(frozen=True)
class ProtectOp:
    """Give the mapped pages [ipa, ipa + size) ``rights``."""

    ipa: int
    size: int
    rights: int


Stage2Op = MapOp | UnmapOp | ProtectOp

_FIELDS: dict[OpKind, tuple[type, tuple[str, ...]]] = {
    OpKind.MAP: (MapOp, ("ipa", "size", "path", "offset", "rights")),
    OpKind.UNMAP: (UnmapOp, ("ipa", "size")),
    OpKind.PROTECT: (ProtectOp, ("ipa", "size", "rights")),
}


def to_wire(op: Stage2Op) -> dict:
    """Returns the msgpack-ready map of ``op``."""
    match op:
        case MapOp():
            return {"op": OpKind.MAP.value, "ipa": op.ipa, "size": op.size, "path": op.path,
                    "offset": op.offset, "rights": op.rights}
        case UnmapOp():
            return {"op": OpKind.UNMAP.value, "ipa": op.ipa, "size": op.size}
        case ProtectOp():
            return {"op": OpKind.PROTECT.value, "ipa": op.ipa, "size": op.size,
                    "rights": op.rights}


def from_wire(obj: object) -> Stage2Op:
    """Validates one decoded operation map and returns the operation it describes."""
    if not isinstance(obj, dict):
        raise MessageError(f"stage-2 op is a {type(obj).__name__}, not a map")
    try:
        kind = OpKind(obj.get("op"))
    except ValueError:
        raise MessageError(f"unknown stage-2 op {obj.get('op')!r}") from None
    cls, names = _FIELDS[kind]
    missing = [name for name in names if name not in obj]
    extra = sorted(str(key) for key in obj if key != "op" and key not in names)
    if missing or extra:
        raise MessageError(f"{kind.value} op: missing {missing}, unknown {extra}")
    values = {name: _field(kind, name, obj[name]) for name in names}
    _check_range(kind, values)
    return cls(**values)


def ops_from_wire(objs: object) -> list[Stage2Op]:
    """Validates a list of operation maps (``MemUpdate.ops``, ``Welcome.regions``)."""
    if not isinstance(objs, list):
        raise MessageError(f"stage-2 ops are a {type(objs).__name__}, not a list")
    ops = []
    for index, obj in enumerate(objs):
        try:
            ops.append(from_wire(obj))
        except MessageError as exc:
            raise MessageError(f"op [{index}]: {exc}") from exc
    return ops


def _field(kind: OpKind, name: str, value: object) -> object:
    """Checks the type and unit of one field."""
    where = f"{kind.value} op: {name}"
    if name == "path":
        if not isinstance(value, str) or not value or "\0" in value:
            raise MessageError(f"{where}: expected a non-empty path, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _U64:
        raise MessageError(f"{where}: {value!r} is not a 64-bit unsigned integer")
    if name == "rights":
        if value > RIGHTS_MAX:
            raise MessageError(f"{where}: {value:#x} is not R=4|W=2|X=1")
    elif value % PAGE_SIZE:
        raise MessageError(f"{where}: {value:#x} is not a multiple of 4 KiB")
    return value


def _check_range(kind: OpKind, values: dict[str, object]) -> None:
    """Checks that the ranges are non-empty and do not wrap."""
    ipa, size = values["ipa"], values["size"]
    assert isinstance(ipa, int) and isinstance(size, int)
    if size == 0:
        raise MessageError(f"{kind.value} op: size is 0")
    if ipa + size - 1 > _U64:
        raise MessageError(f"{kind.value} op: [{ipa:#x}, +{size:#x}) wraps")
    offset = values.get("offset", 0)
    assert isinstance(offset, int)
    if offset + size - 1 > _U64:
        raise MessageError(f"{kind.value} op: file range [{offset:#x}, +{size:#x}) wraps")
