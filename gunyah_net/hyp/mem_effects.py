"""Memory effects: what a VM's worker must change in its Unicorn memory map, as frozen values.

EL2 computes, for every address space an operation touches, the worker-visible view of the
touched IPA windows before and after the change (a ``Placement`` per page: which backing file,
at which file offset, with which rights), and ``diff`` turns the two views into the fewest
effects that take a worker from one to the other:

- ``UnmapRegion(vmid, ipa, size)``: the pages stop being memory (``uc.mem_unmap``). Only for
  pages that are mapped in the worker.
- ``MapRegion(vmid, ipa, size, backing, offset, rights)``: map ``size`` bytes of file ``backing``
  from ``offset`` at ``ipa`` (``mem_map_ptr`` of the file's mmap) with ``rights``. Only onto
  pages that are not mapped. ``rights`` may be ``Access.NONE``: a page whose mapping record
  exists but whose memory the extent does not own (see below) is mapped inaccessible.
- ``ProtectRegion(vmid, ipa, size, rights)``: same file pages, new rights (``uc.mem_protect``).
  ``Access.NONE`` is how lent-away pages look: an access then faults with PC on the instruction
  (unicorn-notes "Lent-away memory"), never a silent read.
- ``ZeroRegion(backing, offset, size)``: zero that part of the file (memextent_modify
  ZERO_RANGE). It names no VM: the coordinator, which holds every backing file, carries it out
  before it answers the hypercall.

Rights are the mapping's *kernel* (EL1) access, R = 4, W = 2, X = 1 (Gunyah ``pgtable_access``):
guests run at EL1 and a worker cannot tell EL0 from EL1 at stage 2; user access is recorded and
returned by addrspace_lookup but not enforced.

Order within one operation: every ``UnmapRegion``, then every ``ProtectRegion``, then every
``ZeroRegion``, then every ``MapRegion``: access is taken away before any is granted, a page is
unmapped before anything is mapped over it, and memory is zeroed before anyone can map it.
Adjacent effects of the same kind merge, so one change of a contiguous run is one effect.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import IntFlag

from gunyah_net.hyp.rangemap import RangeMap


class Access(IntFlag):
    """Gunyah ``pgtable_access``: the R/W/X rights of an extent or a mapping."""

    NONE = 0
    X = 1
    W = 2
    R = 4
    RX = 5
    RW = 6
    RWX = 7


@dataclass(frozen=True)
class MapRegion:
    """Map ``size`` bytes of file ``backing`` at file ``offset`` to ``ipa`` of VM ``vmid``."""

    vmid: int
    ipa: int
    size: int
    backing: str
    offset: int
    rights: Access


@dataclass(frozen=True)
class UnmapRegion:
    """Unmap [ipa, ipa + size) of VM ``vmid``."""

    vmid: int
    ipa: int
    size: int


@dataclass(frozen=True)
class ProtectRegion:
    """Change the rights of the (mapped) pages [ipa, ipa + size) of VM ``vmid``."""

    vmid: int
    ipa: int
    size: int
    rights: Access


@dataclass(frozen=True)
class ZeroRegion:
    """Zero ``size`` bytes of file ``backing`` from ``offset``."""

    backing: str
    offset: int
    size: int


MemEffect = MapRegion | UnmapRegion | ProtectRegion | ZeroRegion
"""Every memory effect."""

MemEffects = tuple[MemEffect, ...]


@dataclass(frozen=True)
class Placement:
    """What a worker has at an IPA page: file ``backing`` at offset ``ipa + delta``, ``rights``."""

    backing: str
    delta: int
    rights: Access


View = RangeMap[Placement]
"""A worker-visible view of (part of) one address space, keyed by IPA."""


def _segments(before: View, after: View, start: int, end: int
              ) -> list[tuple[int, int, Placement | None, Placement | None]]:
    """Splits [start, end) where either view changes value."""
    old, new = before.cover(start, end), after.cover(start, end)
    cuts = sorted({s for s, _, _ in old} | {s for s, _, _ in new} | {end})
    segments = []
    for lo, hi in zip(cuts, cuts[1:]):
        segments.append((lo, hi, before.get(lo), after.get(lo)))
    return segments


def _effects_of(vmid: int, lo: int, hi: int, old: Placement | None,
                new: Placement | None) -> list[MemEffect]:
    """The effects that change one segment from ``old`` to ``new``."""
    if old == new:
        return []
    effects: list[MemEffect] = []
    same_pages = (old is not None and new is not None
                  and (old.backing, old.delta) == (new.backing, new.delta))
    if same_pages:
        assert new is not None
        return [ProtectRegion(vmid, lo, hi - lo, new.rights)]
    if old is not None:
        effects.append(UnmapRegion(vmid, lo, hi - lo))
    if new is not None:
        effects.append(MapRegion(vmid, lo, hi - lo, new.backing, lo + new.delta, new.rights))
    return effects


def _merge(prev: MemEffect, nxt: MemEffect) -> MemEffect | None:
    """Returns ``prev`` and ``nxt`` as one effect if they are contiguous and alike, else None."""
    match prev, nxt:
        case UnmapRegion(), UnmapRegion() if (prev.vmid, prev.ipa + prev.size) == \
                (nxt.vmid, nxt.ipa):
            return replace(prev, size=prev.size + nxt.size)
        case ProtectRegion(), ProtectRegion() if (prev.vmid, prev.ipa + prev.size,
                                                  prev.rights) == (nxt.vmid, nxt.ipa, nxt.rights):
            return replace(prev, size=prev.size + nxt.size)
        case MapRegion(), MapRegion() if (
                (prev.vmid, prev.ipa + prev.size, prev.backing, prev.offset + prev.size,
                 prev.rights) == (nxt.vmid, nxt.ipa, nxt.backing, nxt.offset, nxt.rights)):
            return replace(prev, size=prev.size + nxt.size)
        case ZeroRegion(), ZeroRegion() if (prev.backing, prev.offset + prev.size) == \
                (nxt.backing, nxt.offset):
            return replace(prev, size=prev.size + nxt.size)
    return None


def _rank(effect: MemEffect) -> int:
    match effect:
        case UnmapRegion():
            return 0
        case ProtectRegion():
            return 1
        case ZeroRegion():
            return 2
        case MapRegion():
            return 3


def ordered(effects: Iterable[MemEffect]) -> MemEffects:
    """Returns ``effects`` in the contract's order (unmap, protect, zero, map), keeping their
    relative order within a kind, with adjacent alike effects merged."""
    out: list[MemEffect] = []
    for effect in sorted(effects, key=_rank):
        merged = _merge(out[-1], effect) if out else None
        if merged is None:
            out.append(effect)
        else:
            out[-1] = merged
    return tuple(out)


def diff(vmid: int, before: View, after: View,
         windows: Sequence[tuple[int, int]]) -> list[MemEffect]:
    """Returns the effects, in IPA order, that turn ``before`` into ``after`` inside the
    disjoint, sorted ``windows`` of VM ``vmid`` (not yet ``ordered``)."""
    effects: list[MemEffect] = []
    for start, end in windows:
        for lo, hi, old, new in _segments(before, after, start, end):
            effects.extend(_effects_of(vmid, lo, hi, old, new))
    return effects
