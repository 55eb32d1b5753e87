"""Address spaces: a VM's stage 2, derived from mapping records and page ownership.

Model (HYP ``mem/addrspace``, ``mem/memextent_sparse``):

- An address space belongs to one VM: ``addrspace_configure(vmid)`` in INIT (vmid 1..255, else
  ERROR_ARGUMENT_INVALID; HYP ``NUM_VMIDS`` = 256), and activation claims the vmid
  (ERROR_BUSY if another active address space has it; ERROR_OBJECT_CONFIG if none was set:
  gunyah-net's reading of HYP's bitmap claim of vmid 0).
- A *mapping record* (HYP: an entry in a memextent mapping's GPT) says "physical range
  [p, q) of extent E appears at IPA p + ipa_delta of this address space with these attributes".
  Records live in the extent's mapping slots (``MapSlot``: at most 4 per extent, one address
  space each); the address space keeps the list of slots that point at it.
- Stage 2 follows from records and ownership: an IPA page is *mapped* if a record covers it
  **and the record's extent owns the physical page** (HYP maps only ranges the memdb walk says
  the extent owns, and donation moves mappings with ownership). A recorded page whose extent
  does not own it is not mapped; ``view`` shows it to workers as the same file page with
  ``Access.NONE``, so that a lender's access faults on the instruction.
- gunyah-net refuses overlapping records in one address space (ERROR_EXISTING_MAPPING): two
  records may cover the same IPA only if they name the same physical page and belong to
  different extents (a SHARE parcel's copy of the owner's mapping, a derived extent's inherited
  one). HYP's addrspace_map overwrites instead (``pgtable_vm_map`` with try_map false).
- IPAs are below 2^36 (HYP QEMU platform ``PLATFORM_VM_ADDRESS_SPACE_BITS``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gunyah_net.abi.errors import Error, HypError
from gunyah_net.abi.platform import PAGE_SIZE
from gunyah_net.abi.rights import AddrspaceRights
from gunyah_net.hyp.mem_attrs import MapAttrs
from gunyah_net.hyp.mem_effects import Access, MemEffect, Placement, View, diff
from gunyah_net.hyp.memdb import MemDb, PhysMap
from gunyah_net.hyp.object import KernelObject, ObjectType
from gunyah_net.hyp.rangemap import RangeMap

if TYPE_CHECKING:
    from gunyah_net.hyp.memextent import MemExtent

IPA_BITS = 36
IPA_LIMIT = 1 << IPA_BITS
NUM_VMIDS = 256
_U64 = (1 << 64) - 1


@dataclass(frozen=True)
class MapRecord:
    """Physical pages p map to IPA p + ``ipa_delta`` with ``attrs`` (one GPT entry)."""

    ipa_delta: int
    attrs: MapAttrs


@dataclass(eq=False)
class MapSlot:
    """One of an extent's (at most 4) mappings: its records in one address space, by phys."""

    extent: MemExtent
    addrspace: AddrSpace
    records: RangeMap[MapRecord] = field(default_factory=RangeMap)

    def ipa_windows(self, start: int, end: int) -> list[tuple[int, int]]:
        """Returns the IPA ranges of the records over physical [start, end)."""
        return [(s + r.ipa_delta, e + r.ipa_delta) for s, e, r in self.records.runs(start, end)]


@dataclass(frozen=True)
class Stage2:
    """A stage-2 run: IPA i maps physical i + ``phys_delta``; ``owned`` is False for a record
    whose extent does not own the page (not mapped in HYP's stage 2)."""

    phys_delta: int
    attrs: MapAttrs
    owned: bool


class AddrSpace(KernelObject):
    """A VM's address space: vmid, and the extent mapping slots that point at it."""

    object_type = ObjectType.ADDRSPACE
    rights_type = AddrspaceRights

    def __init__(self, memdb: MemDb, vmids: dict[int, AddrSpace], name: str = "") -> None:
        super().__init__(name)
        self.memdb = memdb
        self._vmids = vmids
        self.vmid = 0
        self.slots: list[MapSlot] = []

    def configure(self, vmid: int) -> None:
        """Sets the VM this address space translates for (addrspace_configure); INIT only."""
        self.require_init()
        if not 0 < vmid < NUM_VMIDS:
            raise HypError(Error.ARGUMENT_INVALID, f"vmid {vmid:#x} is not 1..255")
        self.vmid = vmid

    def _check_activate(self) -> None:
        """Claims the configured vmid for this address space."""
        if self.vmid == 0:
            raise HypError(Error.OBJECT_CONFIG, "addrspace has no vmid")
        if self.vmid in self._vmids:
            raise HypError(Error.BUSY, f"vmid {self.vmid:#x} already has an addrspace")
        self._vmids[self.vmid] = self

    # -- stage 2 ----------------------------------------------------------------------------------

    def stage2(self, start: int, end: int) -> RangeMap[Stage2]:
        """Returns what IPA [start, end) translates to, recorded-but-unowned pages included."""
        unowned: list[tuple[int, int, Stage2]] = []
        owned: list[tuple[int, int, Stage2]] = []
        for slot in self.slots:
            for p0, p1, rec in slot.records:
                lo, hi = max(p0, start - rec.ipa_delta), min(p1, end - rec.ipa_delta)
                if lo >= hi:
                    continue
                cursor = lo
                for o0, o1 in self.memdb.owned(slot.extent, lo, hi):
                    if o0 > cursor:
                        unowned.append((cursor, o0, rec))
                    owned.append((o0, o1, rec))
                    cursor = o1
                if cursor < hi:
                    unowned.append((cursor, hi, rec))
        result: RangeMap[Stage2] = RangeMap()
        for runs, is_owned in ((unowned, False), (owned, True)):
            for p0, p1, rec in runs:
                d = rec.ipa_delta
                result.set(p0 + d, p1 + d, Stage2(-d, rec.attrs, is_owned))
        return result

    def view(self, phys: PhysMap, start: int, end: int) -> View:
        """Returns the worker-visible view of IPA [start, end): file pages and rights."""
        result: View = RangeMap()
        for i0, i1, s2 in self.stage2(start, end):
            rights = s2.attrs.kernel if s2.owned else Access.NONE
            for p0, p1, backing in phys.pieces(i0 + s2.phys_delta, i1 + s2.phys_delta):
                delta = s2.phys_delta - backing.phys_base
                result.set(p0 - s2.phys_delta, p1 - s2.phys_delta,
                           Placement(backing.key, delta, rights))
        return result

    def lookup(self, vbase: int, size: int) -> tuple[int, int, MapAttrs]:
        """Returns (phys, size, attrs) of the mapped run at ``vbase``, at most ``size`` bytes
        of contiguous physical memory with equal attributes (HYP ``addrspace_lookup``)."""
        if size == 0:
            raise HypError(Error.ARGUMENT_SIZE, "lookup of 0 bytes")
        if vbase + size - 1 > _U64:
            raise HypError(Error.ADDR_OVERFLOW, f"[{vbase:#x}, +{size:#x}) wraps")
        if vbase % PAGE_SIZE or size % PAGE_SIZE:
            raise HypError(Error.ARGUMENT_ALIGNMENT, f"lookup [{vbase:#x}, +{size:#x})")
        # Runs merge when their translation and attributes are equal, so the run at vbase is
        # exactly the contiguous, uniform stretch HYP's walk would return.
        end = min(vbase + size, IPA_LIMIT)
        runs = self.stage2(vbase, end).runs(vbase, end)
        if not runs or runs[0][0] != vbase or not runs[0][2].owned:
            raise HypError(Error.ADDR_INVALID, f"IPA {vbase:#x} is not mapped")
        _, stop, s2 = runs[0]
        return vbase + s2.phys_delta, stop - vbase, s2.attrs


def check_ipa_range(vbase: int, size: int) -> None:
    """Raises ADDR_INVALID if ``vbase`` is outside the IPA space, ADDR_OVERFLOW if the range
    runs past its end (HYP ``pgtable_vm_map`` addr_check)."""
    if vbase >= IPA_LIMIT:
        raise HypError(Error.ADDR_INVALID, f"IPA {vbase:#x} is beyond 2^{IPA_BITS}")
    if vbase + size > IPA_LIMIT:
        raise HypError(Error.ADDR_OVERFLOW, f"[{vbase:#x}, +{size:#x}) runs past 2^{IPA_BITS}")


def check_no_overlap(addrspace: AddrSpace, extent: MemExtent, vbase: int, size: int,
                     ipa_delta: int) -> None:
    """Raises ERROR_EXISTING_MAPPING if a record in ``addrspace`` covers part of
    [vbase, vbase + size) with another physical page, or through the same ``extent``."""
    for slot in addrspace.slots:
        for p0, p1, rec in slot.records:
            lo = max(p0 + rec.ipa_delta, vbase)
            hi = min(p1 + rec.ipa_delta, vbase + size)
            if lo < hi and (slot.extent is extent or rec.ipa_delta != ipa_delta):
                raise HypError(Error.EXISTING_MAPPING,
                               f"IPA [{lo:#x}, {hi:#x}) of vmid {addrspace.vmid:#x} is mapped")


class Watch:
    """Snapshots the worker views of some IPA windows, so that ``effects`` can diff them."""

    def __init__(self, phys: PhysMap, windows: Iterable[tuple[AddrSpace, int, int]]) -> None:
        self._phys = phys
        merged: dict[AddrSpace, RangeMap[bool]] = {}
        for addrspace, start, end in windows:
            merged.setdefault(addrspace, RangeMap()).set(start, end, True)
        self._windows = {a: [(s, e) for s, e, _ in m] for a, m in merged.items()}
        self._before = {a: self._snapshot(a) for a in self._windows}

    def _snapshot(self, addrspace: AddrSpace) -> View:
        view: View = RangeMap()
        for start, end in self._windows[addrspace]:
            for s, e, placement in addrspace.view(self._phys, start, end):
                view.set(s, e, placement)
        return view

    def effects(self) -> list[MemEffect]:
        """Returns the effects that take each watched window from its snapshot to now."""
        effects: list[MemEffect] = []
        for addrspace, windows in self._windows.items():
            effects += diff(addrspace.vmid, self._before[addrspace], self._snapshot(addrspace),
                            windows)
        return effects
