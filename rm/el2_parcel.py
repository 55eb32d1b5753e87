"""What the memory planner knows of one memparcel: extent, owner, regions, pages, mappings. Pure.

Every DDR child extent names a page by the same offset (``phys``), so a parcel's knowledge is a
set of *runs*: owner IPA ranges with the pages behind them, as addrspace_lookup reported them
(``PhysRun``), and the mappings of the parcel's extent that the planner made (``ParcelMapping``),
including the RM's own window. ``ParcelState`` keeps them and answers the questions the planner
asks: which pages hold an owner IPA range (``slice``), where a VM sees them (``pieces``), whether
a VM has a run mapped already (``mapping``), whether the owner lost its mapping of a run
(``owner_lost``), and whether a range was looked up yet (``covers``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .mem_payloads import SglEntry
from .memparcel import RegionMap


@dataclass(frozen=True)
class PhysRun:
    """IPAs [ipa, +size) hold the pages at ``phys`` (offset in every DDR child extent); ``attrs``
    is the owner's map_attrs there, as addrspace_lookup reported them."""

    ipa: int
    phys: int
    size: int
    attrs: int


@dataclass(frozen=True)
class ParcelMapping:
    """One addrspace_map of a parcel extent: run ``phys`` / ``size`` at ``ipa`` of ``vmid``;
    ``rm_window`` marks the RM's own window (``map_into_rm``)."""

    vmid: int
    ipa: int
    phys: int
    size: int
    attrs: int
    rm_window: bool = False


@dataclass
class ParcelState:
    """What the planner knows of one parcel handle."""

    extent: int | None = None
    owner: int | None = None
    regions: list[SglEntry] = field(default_factory=list)
    """The owner IPA ranges donated into the parcel, in SGL order."""
    runs: list[PhysRun] = field(default_factory=list)
    """Owner IPA -> pages, one entry per addrspace_lookup answer."""
    owner_unmapped: list[PhysRun] = field(default_factory=list)
    """The owner mappings ``UnmapFrom`` removed, which ``RestoreOwner`` maps again."""
    mappings: list[ParcelMapping] = field(default_factory=list)

    def slice(self, ipa: int, size: int) -> list[PhysRun]:
        """Returns the runs holding owner IPAs [ipa, +size), clipped to it, in IPA order;
        ValueError if some page of it was never looked up."""
        out, cursor, end = [], ipa, ipa + size
        for run in sorted(self.runs, key=lambda r: r.ipa):
            lo, hi = max(cursor, run.ipa), min(end, run.ipa + run.size)
            if lo >= hi:
                continue
            if lo != cursor:
                break
            out.append(PhysRun(lo, run.phys + lo - run.ipa, hi - lo, run.attrs))
            cursor = hi
        if cursor != end or size <= 0:
            raise ValueError(f"owner IPAs [{ipa:#x}, +{size:#x}) are not in the parcel")
        return out

    def pieces(self, region_map: RegionMap) -> list[PhysRun]:
        """Returns the runs of ``region_map`` at the IPAs where its VM sees them."""
        shift = region_map.ipa - region_map.owner_ipa
        return [replace(run, ipa=run.ipa + shift)
                for run in self.slice(region_map.owner_ipa, region_map.size)]

    def mapping(self, vmid: int, run: PhysRun) -> ParcelMapping | None:
        """Returns the parcel mapping of exactly ``run`` in ``vmid`` (not the RM's window)."""
        return next((m for m in self.mappings if not m.rm_window and
                     (m.vmid, m.ipa, m.phys, m.size) == (vmid, run.ipa, run.phys, run.size)),
                    None)

    def owner_lost(self, run: PhysRun) -> bool:
        """True if ``UnmapFrom`` took the owner's mapping of ``run`` away."""
        return any(u.ipa <= run.ipa and run.ipa + run.size <= u.ipa + u.size
                   for u in self.owner_unmapped)

    def covers(self, ipa: int, size: int) -> bool:
        """True if every page of owner IPAs [ipa, +size) was looked up, False if none was;
        ValueError if only some were (a range that overlaps another region of the parcel)."""
        covered = sum(max(0, min(ipa + size, r.ipa + r.size) - max(ipa, r.ipa))
                      for r in self.runs)
        if 0 < covered < size:
            raise ValueError(f"owner IPAs [{ipa:#x}, +{size:#x}) overlap a region of the parcel")
        return covered == size
