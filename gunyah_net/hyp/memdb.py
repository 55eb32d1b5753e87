"""Physical memory: the backing files it is made of, and who owns each page (Gunyah's memdb).

Physical memory is a set of **backing files**: each VM's RAM file and each shared-memory file,
named by an opaque string key (the coordinator maps keys to files). ``PhysMap`` lays them out in
one synthetic physical address space, 1 GiB aligned from ``PHYS_BASE`` with at least one page of
hole between two files, below ``PHYS_LIMIT`` (2^44, the RM's ``ADDR_LIMIT``: the RM's DDR extents
span [0, 2^44)). A physical address therefore names one byte of one file, or a hole.

``MemDb`` is the ownership database (HYP ``mem/memdb``): every page of every backing file has
exactly one owner at any time, the partition that registered it or one memextent. Holes have no
owner, so nothing can ever take them (ERROR_MEMDB_NOT_OWNER). ``update`` moves a range from one
owner to another only if the old owner holds every page of it; otherwise nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from gunyah_net.abi.errors import Error, HypError
from gunyah_net.abi.platform import GiB, PAGE_SIZE
from gunyah_net.hyp.rangemap import RangeMap

PHYS_BASE = 64 * GiB
"""Where the first backing file starts: far from any IPA a guest uses, so logs never confuse
physical addresses with IPAs."""

PHYS_LIMIT = 1 << 44
"""Physical addresses are below 2^44 (RM ``vm_memory.h`` ADDR_LIMIT = 1 << (32 + PAGE_BITS))."""

PHYS_ALIGN = 1 * GiB


@dataclass(frozen=True)
class Backing:
    """One backing file placed in physical memory at [phys_base, phys_base + size)."""

    key: str
    phys_base: int
    size: int

    @property
    def phys_end(self) -> int:
        """First physical address past the file."""
        return self.phys_base + self.size


def _check_pages(base: int, size: int) -> None:
    if size <= 0 or base % PAGE_SIZE or size % PAGE_SIZE:
        raise ValueError(f"[{base:#x}, +{size:#x}) is not a non-empty run of whole pages")


class PhysMap:
    """Where each backing file lives in physical memory."""

    def __init__(self) -> None:
        self._by_key: dict[str, Backing] = {}
        self._layout: RangeMap[Backing] = RangeMap()
        self._next = PHYS_BASE

    def add(self, key: str, size: int) -> Backing:
        """Places backing file ``key`` of ``size`` bytes at the next free 1 GiB boundary."""
        if key in self._by_key:
            raise ValueError(f"backing file {key!r} is already in physical memory")
        _check_pages(self._next, size)
        base = self._next
        if base + size > PHYS_LIMIT:
            raise ValueError(f"physical memory is full: {key!r} needs {size:#x} bytes")
        backing = Backing(key, base, size)
        self._by_key[key] = backing
        self._layout.set(base, base + size, backing)
        self._next = -(-(base + size + PAGE_SIZE) // PHYS_ALIGN) * PHYS_ALIGN
        return backing

    def get(self, key: str) -> Backing | None:
        """Returns backing file ``key``, or None if it was never added."""
        return self._by_key.get(key)

    def pieces(self, start: int, end: int) -> list[tuple[int, int, Backing]]:
        """Returns the parts of [start, end) that lie in backing files (holes left out)."""
        return self._layout.runs(start, end)

    def backings(self) -> list[Backing]:
        """Returns every backing file, in physical-address order."""
        return [backing for _, _, backing in self._layout]


class MemDb:
    """Page ownership: [start, end) -> the one partition or memextent that owns it."""

    def __init__(self) -> None:
        self._owners: RangeMap[object] = RangeMap()

    def insert(self, base: int, size: int, owner: object) -> None:
        """Gives a range that nobody owns yet to ``owner`` (memdb_insert); NOT_OWNER otherwise."""
        _check_pages(base, size)
        if self._owners.runs(base, base + size):
            raise HypError(Error.MEMDB_NOT_OWNER, f"[{base:#x}, +{size:#x}) is already owned")
        self._owners.set(base, base + size, owner)

    def owner(self, addr: int) -> object | None:
        """Returns the owner of the page holding ``addr``, or None for a hole."""
        return self._owners.get(addr)

    def owns(self, owner: object, base: int, size: int) -> bool:
        """Returns True if ``owner`` owns every page of [base, base + size)."""
        cover = self._owners.cover(base, base + size)
        return all(value is owner for _, _, value in cover)

    def owned(self, owner: object, start: int, end: int) -> list[tuple[int, int]]:
        """Returns the maximal sub-ranges of [start, end) that ``owner`` owns, in order."""
        return [(s, e) for s, e, value in self._owners.runs(start, end) if value is owner]

    def runs(self, start: int, end: int) -> list[tuple[int, int, object]]:
        """Returns the owned runs meeting [start, end), clipped to it."""
        return self._owners.runs(start, end)

    def update(self, base: int, size: int, new_owner: object, prev_owner: object) -> None:
        """Moves [base, base + size) from ``prev_owner`` to ``new_owner``; ERROR_MEMDB_NOT_OWNER
        (and no change) unless ``prev_owner`` owns every page of it (memdb_update)."""
        if not self.owns(prev_owner, base, size):
            raise HypError(Error.MEMDB_NOT_OWNER,
                           f"[{base:#x}, +{size:#x}) is not wholly owned by the donor")
        self._owners.set(base, base + size, new_owner)

    def all_runs(self) -> list[tuple[int, int, object]]:
        """Returns every owned run (for invariant checks and debugging)."""
        return list(self._owners)
