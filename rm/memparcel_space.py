"""IPA ranges for the memparcel table: what each VM owns, and where a borrower has room.

``VmMemory`` records, per VM and mem_type, the IPA ranges the VM owns (its RAM, its device
memory), as the RM service registers them. A parcel's regions must lie in the owner's ranges and
in none of its other parcels (RM ``vm_memory_lookup``: memory already donated to a parcel extent
is no longer the owner's), else RM_ERROR_MEM_INVALID.

``AddressSpace`` is one borrower's stage-2 view while accepting: the ranges it owns plus the
ranges where it already maps or reserved parcels. ``place`` checks a requested IPA
(RM_ERROR_NORESOURCE if taken, as the RM's address range allocator answers) and ``choose`` finds
one: the owner's IPA when it is free in the borrower, else the lowest free range from 4 GiB up,
aligned to 2 MiB for ranges of 2 MiB or more and to 4 KiB otherwise (RM ``alloc_as_range``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gunyah_net.abi.rm import RmError

from .mem_payloads import SglEntry
from .memparcel import IPA_ALLOC_BASE, IPA_LIMIT, PAGE_SIZE, SIZE_2M, require

Range = tuple[int, int]
"""[start, end) in one IPA space."""


def page_range_valid(ipa: int, size: int) -> bool:
    """True for a non-empty, page-aligned range that ends at or below the RM's 2**44 limit."""
    return (size > 0 and ipa % PAGE_SIZE == 0 and size % PAGE_SIZE == 0
            and ipa + size <= IPA_LIMIT)


def overlaps(a: Range, b: Range) -> bool:
    """True when the two ranges share a byte."""
    return a[0] < b[1] and b[0] < a[1]


def covered(span: Range, ranges: Iterable[Range]) -> bool:
    """True when every byte of ``span`` lies in ``ranges``."""
    cursor = span[0]
    for start, end in sorted(ranges):
        if start > cursor:
            break
        cursor = max(cursor, end)
        if cursor >= span[1]:
            return True
    return cursor >= span[1]


def subtract(ranges: Iterable[Range], cut: Range) -> list[Range]:
    """Returns ``ranges`` without the bytes of ``cut``."""
    kept: list[Range] = []
    for start, end in ranges:
        if not overlaps((start, end), cut):
            kept.append((start, end))
            continue
        if start < cut[0]:
            kept.append((start, cut[0]))
        if cut[1] < end:
            kept.append((cut[1], end))
    return kept


class VmMemory:
    """The IPA ranges each VM owns, by (vmid, mem_type)."""

    def __init__(self) -> None:
        self._owned: dict[tuple[int, int], list[Range]] = {}

    def register(self, vmid: int, mem_type: int, regions: Iterable[SglEntry]) -> None:
        """Adds ``regions`` to what ``vmid`` owns; each must be page-aligned and non-empty."""
        ranges = self._owned.setdefault((vmid, mem_type), [])
        for region in regions:
            if not page_range_valid(region.ipa, region.size):
                raise ValueError(f"VM {vmid:#x}: memory {region} is not a page-aligned range "
                                 f"below 2**44")
            ranges.append((region.ipa, region.ipa + region.size))

    def forget(self, vmid: int) -> None:
        """Forgets everything ``vmid`` owns."""
        for key in [k for k in self._owned if k[0] == vmid]:
            del self._owned[key]

    def owned(self, vmid: int, mem_type: int | None = None) -> list[Range]:
        """Returns the ranges ``vmid`` owns of ``mem_type`` (of every type when None)."""
        return [r for (v, t), ranges in self._owned.items()
                if v == vmid and mem_type in (None, t) for r in ranges]

    def give(self, vmid: int, mem_type: int, span: Range) -> None:
        """Makes ``span`` part of ``vmid``'s memory (a completed donation)."""
        self._owned.setdefault((vmid, mem_type), []).append(span)

    def take(self, vmid: int, mem_type: int, span: Range) -> None:
        """Removes ``span`` from ``vmid``'s memory (it donated it away)."""
        key = (vmid, mem_type)
        self._owned[key] = subtract(self._owned.get(key, []), span)


def check_owner_regions(regions: Sequence[SglEntry], owned: Sequence[Range],
                        in_parcels: Sequence[Range]) -> None:
    """Refuses regions that are malformed (ARGUMENT_INVALID), or not free owner memory
    (MEM_INVALID): outside ``owned``, in another parcel, or overlapping each other."""
    taken = list(in_parcels)
    for region in regions:
        require(page_range_valid(region.ipa, region.size), RmError.ARGUMENT_INVALID,
                f"region {region} is not page-aligned below 2**44")
        span = (region.ipa, region.ipa + region.size)
        require(covered(span, owned), RmError.MEM_INVALID, f"{region} is not the owner's memory")
        require(not any(overlaps(span, t) for t in taken), RmError.MEM_INVALID,
                f"{region} is already in a memparcel")
        taken.append(span)


class AddressSpace:
    """One borrower's occupied IPA ranges while it accepts a parcel."""

    def __init__(self, occupied: Iterable[Range]) -> None:
        self._occupied = list(occupied)

    def is_free(self, ipa: int, size: int) -> bool:
        """True when [ipa, ipa + size) is inside the RM's limit and overlaps nothing occupied."""
        return ipa + size <= IPA_LIMIT and not any(overlaps((ipa, ipa + size), r)
                                                   for r in self._occupied)

    def place(self, ipa: int, size: int) -> int:
        """Reserves a requested range: ARGUMENT_INVALID if malformed, NORESOURCE if taken."""
        require(page_range_valid(ipa, size), RmError.ARGUMENT_INVALID,
                f"IPA {ipa:#x}+{size:#x} is not page-aligned below 2**44")
        require(self.is_free(ipa, size), RmError.NORESOURCE, f"IPA {ipa:#x}+{size:#x} is in use")
        self._occupied.append((ipa, ipa + size))
        return ipa

    def choose(self, preferred: int, size: int) -> int:
        """Reserves ``preferred`` if free, else the lowest free aligned range from 4 GiB up."""
        if self.is_free(preferred, size):
            self._occupied.append((preferred, preferred + size))
            return preferred
        align = SIZE_2M if size >= SIZE_2M else PAGE_SIZE
        candidate = _align_up(IPA_ALLOC_BASE, align)
        for start, end in sorted(self._occupied):
            if end <= candidate:
                continue
            if candidate + size <= start:
                break
            candidate = _align_up(end, align)
        require(candidate + size <= IPA_LIMIT, RmError.NORESOURCE,
                f"no free {size:#x}-byte range in the borrower's address space")
        self._occupied.append((candidate, candidate + size))
        return candidate


def _align_up(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment
