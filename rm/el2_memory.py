"""The RM's memory translator: memparcel EL2 operations as Gunyah memory hypercalls (sans-IO).

``MemoryPlanner.plan(op)`` turns one abstract operation of ``rm.memparcel`` into a *plan*: a
generator that yields one ``HvcCall`` at a time and is sent the result registers (X0..) of each
before it chooses the next. The runtime makes the calls; the planner remembers, per parcel
handle, what it learnt and made. A result with X0 != 0 raises ``El2CallFailed`` from the plan;
an operation that names an unknown VM or parcel raises ``ValueError`` (``plan``: at the plan's
first step, so plans may be made ahead; ``map_into_rm`` / ``unmap_from_rm``: at once).

The memory layout the RM works with (the RM's QEMU platform, ``gunyah_net.hyp.memory``):

- a root SPARSE "DDR" extent spans physical [0, 2^44); each VM's RAM belongs to that VM's
  *owned* extent, a SPARSE child of DDR over the same range, mapped in the VM's addrspace;
- a parcel is one more SPARSE child of DDR over the same range, made at the parcel's first
  operation (or reused from a parcel that ended). All siblings therefore name a page by the same
  offset, and pages move between them with memextent_donate TO_SIBLING;
- the RM learns which pages an owner IPA range holds with addrspace_lookup on the owner's
  addrspace and owned extent, before it unmaps or donates them, and keeps the answer.

What each operation becomes (every map / unmap is PARTIAL, one call per physical run):

- ``UnmapFrom`` the owner (LEND, DONATE): addrspace_lookup, then addrspace_unmap of the owned
  extent. ``UnmapFrom`` a borrower: addrspace_unmap of the parcel extent.
- ``DonateToParcel``: partition_create_memextent, memextent_configure_derive, object_activate
  (first time only), addrspace_lookup (if not done yet), memextent_donate owned -> parcel.
  Where the owner is still mapped (SHARE) the parcel extent is first mapped at the owner's IPAs
  with the owner's map_attrs, so the donation changes nothing the owner sees.
- ``MapInto``: addrspace_map of the parcel extent (addrspace_update_access where it is mapped
  there already: SHARE's owner); user = kernel access = the ACL rights; memtype NORMAL_WB for
  NORMAL and CACHED, NORMAL_NC for UNCACHED, DEVICE_nGnRE for DEVICE.
- ``Sanitize``: memextent_modify ZERO_RANGE (NOSYNC) of the parcel extent.
- ``RestoreOwner``: memextent_donate parcel -> owned; addrspace_map of the owned extent where
  ``UnmapFrom`` took the owner's mapping away, with the map_attrs the lookup reported; then
  addrspace_unmap of every mapping the parcel extent still has (SHARE's owner, the RM's window).
- ``DonateToVm``: per run, addrspace_map of the recipient's owned extent under the parcel's
  mapping (same map_attrs), memextent_donate parcel -> owned, addrspace_unmap of the parcel's
  mapping: the recipient sees the page throughout.

No operation makes a page a VM keeps inaccessible in between two of its calls: access is taken
away only where the operation takes it away (an owner's LEND or DONATE, a borrower's release).

``RestoreOwner`` and ``DonateToVm`` end the parcel: its (empty, unmapped) extent waits for the
next parcel, so a long run of lend / reclaim cycles uses a bounded number of RM caps.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field, replace

from gunyah_net.abi.errors import Error
from gunyah_net.abi.hypercalls import BY_NAME, ArgKind, lookup
from gunyah_net.abi.rm import MemAttr, MemRights, Vmid

from .mem_payloads import SglEntry
from .memparcel import (
    PAGE_SIZE,
    DonateToParcel,
    DonateToVm,
    El2Op,
    MapInto,
    RegionMap,
    RestoreOwner,
    Sanitize,
    UnmapFrom,
)

DDR_SIZE = 1 << 44
"""Every DDR child extent spans physical [0, 2^44) (RM ``vm_memory.h`` ADDR_LIMIT)."""
PARCEL_ME_ATTRS = 0x7 | 0 << 8 | 1 << 16
"""me_attrs of a parcel extent: access RWX (2:0), memtype ANY (9:8), type SPARSE (17:16)."""
MAP_PARTIAL = 1
"""map_flags bit 0."""
DONATE_TO_SIBLING = 2
"""memextent_donate options bits 7:0."""
MODIFY_ZERO_RANGE = 1
"""memextent_modify flags bits 7:0."""
NOSYNC = 1 << 31
"""memextent_modify flags bit 31: needed by ZERO_RANGE."""
MEMTYPE = {MemAttr.NORMAL: 0b1111, MemAttr.CACHED: 0b1111, MemAttr.UNCACHED: 0b0101,
           MemAttr.DEVICE: 0b0001}
"""Stage-2 memtype (map_attrs 23:16, pgtable_vm_memtype) of each memparcel attr."""

_U64 = (1 << 64) - 1
_ACCESS_BITS = 0x77
"""The user (2:0) and kernel (6:4) access of a map_attrs word: an update_attrs word."""


def map_attrs(rights: int, attr: int = MemAttr.NORMAL) -> int:
    """Returns the map_attrs word: user access 2:0 and kernel access 6:4 both ``rights``
    (R = 4, W = 2, X = 1), memtype 23:16 from the memparcel ``attr``."""
    if attr not in MEMTYPE or not 0 <= rights <= MemRights.RWX:
        raise ValueError(f"no mapping for rights {rights:#x} attr {attr}")
    return rights | rights << 4 | MEMTYPE[MemAttr(attr)] << 16


RM_WINDOW_ATTRS = map_attrs(MemRights.RW)
"""How ``map_into_rm`` maps a parcel into the RM: RW, normal write-back."""


@dataclass(frozen=True)
class HvcCall:
    """One hypercall the RM must make: table number, input registers in table order."""

    number: int
    args: tuple[int, ...]

    @classmethod
    def of(cls, name: str, **inputs: int) -> HvcCall:
        """Builds hypercall ``name`` from its inputs by table name; reserved registers are 0."""
        spec = BY_NAME.get(name)
        if spec is None:
            raise ValueError(f"no hypercall named {name!r}")
        wanted = {a.name for a in spec.inputs if a.kind is not ArgKind.RESERVED}
        if set(inputs) != wanted:
            raise ValueError(f"{name} takes {sorted(wanted)}, got {sorted(inputs)}")
        return cls(spec.number, tuple(0 if a.kind is ArgKind.RESERVED else inputs[a.name] & _U64
                                      for a in spec.inputs))

    @property
    def name(self) -> str:
        """The hypercall's table name."""
        spec = lookup(self.number)
        return spec.name if spec else f"hypercall {self.number:#x}"


class El2CallFailed(Exception):
    """A hypercall of a plan returned an error in X0; the plan stopped there."""

    def __init__(self, call: HvcCall, x0: int) -> None:
        self.call = call
        self.number = call.number
        self.x0 = x0 & _U64
        signed = self.x0 - (1 << 64) if self.x0 >> 63 else self.x0
        try:
            self.error = Error(signed)
        except ValueError:
            self.error = Error.FAILURE  # a code outside the enumeration: ``x0`` has it raw
        args = ", ".join(f"{a:#x}" for a in call.args)
        super().__init__(f"{call.name}({args}) -> {self.error.name} (X0 {self.x0:#x})")


Plan = Generator[HvcCall, list[int], None]
"""Yields the calls one by one; ``send`` it each call's result registers (X0 first)."""
_Steps = Generator[HvcCall, list[int], int]


def _issue(call: HvcCall) -> Generator[HvcCall, list[int], list[int]]:
    """Yields ``call``; returns its result registers, or raises El2CallFailed on X0 != 0."""
    regs = yield call
    if not regs:
        raise ValueError(f"{call.name}: the runtime sent no result registers")
    if regs[0] != 0:
        raise El2CallFailed(call, regs[0])
    return regs


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


def _unmap(addrspace: int, extent: int, run: PhysRun | ParcelMapping) -> HvcCall:
    return HvcCall.of("addrspace_unmap", addrspace=addrspace, memextent=extent, vbase=run.ipa,
                      map_flags=MAP_PARTIAL, offset=run.phys, size=run.size)


def _map(addrspace: int, extent: int, run: PhysRun, attrs: int) -> HvcCall:
    return HvcCall.of("addrspace_map", addrspace=addrspace, memextent=extent, vbase=run.ipa,
                      map_attrs=attrs, map_flags=MAP_PARTIAL, offset=run.phys, size=run.size)


def _donate(from_extent: int, to_extent: int, run: PhysRun) -> HvcCall:
    return HvcCall.of("memextent_donate", options=DONATE_TO_SIBLING, from_memextent=from_extent,
                      to_memextent=to_extent, offset=run.phys, size=run.size)


class MemoryPlanner:
    """Plans the hypercalls of the memparcel table's EL2 operations, with per-parcel state."""

    def __init__(self, rm_caps: Mapping[str, int]) -> None:
        missing = {"partition", "ddr", "addrspace", "cspace"} - set(rm_caps)
        if missing:
            raise ValueError(f"rm_caps lacks {sorted(missing)}")
        self._partition = rm_caps["partition"]
        self._ddr = rm_caps["ddr"]
        self._rm_addrspace = rm_caps["addrspace"]
        self._cspace = rm_caps["cspace"]
        self._vms: dict[int, tuple[int, int]] = {}
        self._parcels: dict[int, ParcelState] = {}
        self._spare: list[int] = []
        """Extents of ended parcels: active, empty and unmapped, ready for the next parcel."""

    # -- VMs and queries --------------------------------------------------------------------------

    def add_vm(self, vmid: int, addrspace_cap: int, memextent_cap: int) -> None:
        """Records the RM's caps of VM ``vmid``'s addrspace and owned memextent."""
        self._vms[vmid] = (addrspace_cap, memextent_cap)

    def forget_vm(self, vmid: int) -> None:
        """Forgets VM ``vmid`` (destroyed) and the parcel mappings its addrspace had."""
        self._vms.pop(vmid, None)
        for state in self._parcels.values():
            state.mappings = [m for m in state.mappings if m.vmid != vmid or m.rm_window]

    def parcel(self, handle: int) -> ParcelState | None:
        """Returns what the planner knows of parcel ``handle`` (None once it ended)."""
        return self._parcels.get(handle)

    def _addrspace(self, vmid: int) -> int:
        if vmid in self._vms:
            return self._vms[vmid][0]
        if vmid == Vmid.RM:
            return self._rm_addrspace
        raise ValueError(f"vmid {vmid:#x} is unknown to the memory planner (add_vm)")

    def _owned(self, vmid: int) -> int:
        if vmid not in self._vms:
            raise ValueError(f"vmid {vmid:#x} has no owned memextent (add_vm)")
        return self._vms[vmid][1]

    def _known(self, handle: int) -> tuple[ParcelState, int]:
        state = self._parcels.get(handle)
        if state is None or state.extent is None:
            raise ValueError(f"parcel {handle:#x} has no memextent: no DonateToParcel yet")
        return state, state.extent

    # -- plans ------------------------------------------------------------------------------------

    def plan(self, op: El2Op) -> Plan:
        """Returns the plan of one memparcel EL2 operation."""
        match op:
            case UnmapFrom():
                return self._unmap_from(op)
            case DonateToParcel():
                return self._donate_to_parcel(op)
            case MapInto():
                return self._map_into(op)
            case Sanitize():
                return self._sanitize(op)
            case RestoreOwner():
                return self._restore_owner(op)
            case DonateToVm():
                return self._donate_to_vm(op)
        raise TypeError(f"{type(op).__name__} is not an EL2 memory operation")

    def map_into_rm(self, handle: int, rm_ipa: int) -> Plan:
        """Maps the parcel's regions, in owner (SGL) order, contiguously at ``rm_ipa`` of the
        RM's addrspace, RW normal memory."""
        state, extent = self._known(handle)
        if any(m.rm_window for m in state.mappings):
            raise ValueError(f"parcel {handle:#x} is already mapped into the RM")
        return self._map_window(state, extent, rm_ipa)

    def unmap_from_rm(self, handle: int, rm_ipa: int) -> Plan:
        """Unmaps the RM's window of the parcel that ``map_into_rm`` put at ``rm_ipa``."""
        state, extent = self._known(handle)
        window = [m for m in state.mappings if m.rm_window]
        if not window or window[0].ipa != rm_ipa:
            raise ValueError(f"parcel {handle:#x} is not mapped into the RM at {rm_ipa:#x}")
        return self._unmap_all(state, extent, window)

    def _map_window(self, state: ParcelState, extent: int, rm_ipa: int) -> Plan:
        ipa = rm_ipa
        for region in state.regions:
            for run in state.slice(region.ipa, region.size):
                run = replace(run, ipa=ipa)
                yield from _issue(_map(self._rm_addrspace, extent, run, RM_WINDOW_ATTRS))
                state.mappings.append(ParcelMapping(Vmid.RM, ipa, run.phys, run.size,
                                                    RM_WINDOW_ATTRS, rm_window=True))
                ipa += run.size

    def _unmap_all(self, state: ParcelState, extent: int,
                   mappings: Iterable[ParcelMapping]) -> Plan:
        for mapping in list(mappings):
            addrspace = self._rm_addrspace if mapping.rm_window else self._addrspace(mapping.vmid)
            yield from _issue(_unmap(addrspace, extent, mapping))
            state.mappings.remove(mapping)

    def _ensure_extent(self, state: ParcelState) -> _Steps:
        """Gives the parcel its extent: a spare one, or a new SPARSE child of DDR."""
        if state.extent is None and self._spare:
            state.extent = self._spare.pop()
        if state.extent is None:
            regs = yield from _issue(HvcCall.of("partition_create_memextent",
                                                partition=self._partition, cspace=self._cspace))
            cap = regs[1]
            yield from _issue(HvcCall.of("memextent_configure_derive", memextent=cap,
                                         parent_memextent=self._ddr, offset=0, size=DDR_SIZE,
                                         attributes=PARCEL_ME_ATTRS))
            yield from _issue(HvcCall.of("object_activate", cap=cap))
            state.extent = cap
        return state.extent

    def _resolve(self, state: ParcelState, owner: int,
                 ranges: Iterable[tuple[int, int]]) -> Plan:
        """Looks up the pages of the owner IPA ranges the parcel does not know yet."""
        addrspace, owned = self._addrspace(owner), self._owned(owner)
        for start, size in ranges:
            ipa, end = start, start + size
            if state.covers(start, size):
                continue
            while ipa < end:
                regs = yield from _issue(HvcCall.of("addrspace_lookup", addrspace=addrspace,
                                                    memextent=owned, vbase=ipa, size=end - ipa))
                if len(regs) < 4 or not 0 < regs[2] or regs[2] % PAGE_SIZE:
                    raise ValueError(f"addrspace_lookup at {ipa:#x} answered {regs}")
                got = min(regs[2], end - ipa)
                state.runs.append(PhysRun(ipa, regs[1], got, regs[3]))
                ipa += got

    def _claim(self, handle: int, owner: int) -> ParcelState:
        state = self._parcels.setdefault(handle, ParcelState())
        if state.owner not in (None, owner):
            raise ValueError(f"parcel {handle:#x} belongs to vmid {state.owner:#x}, not {owner:#x}")
        state.owner = owner
        return state

    def _unmap_from(self, op: UnmapFrom) -> Plan:
        state = self._parcels.get(op.handle)
        if state is not None and any(m.vmid == op.vmid and not m.rm_window
                                     for m in state.mappings):
            yield from self._unmap_borrower(op, state)
            return
        addrspace, owned = self._addrspace(op.vmid), self._owned(op.vmid)
        state = self._claim(op.handle, op.vmid)
        yield from self._ensure_extent(state)
        yield from self._resolve(state, op.vmid, [(m.owner_ipa, m.size) for m in op.maps])
        for region_map in op.maps:
            for run in state.pieces(region_map):
                yield from _issue(_unmap(addrspace, owned, run))
                state.owner_unmapped.append(run)

    def _unmap_borrower(self, op: UnmapFrom, state: ParcelState) -> Plan:
        _, extent = self._known(op.handle)
        mapped = [state.mapping(op.vmid, run) for m in op.maps for run in state.pieces(m)]
        if None in mapped:
            raise ValueError(f"parcel {op.handle:#x} is not mapped in vmid {op.vmid:#x} "
                             f"where UnmapFrom says")
        yield from self._unmap_all(state, extent, [m for m in mapped if m is not None])

    def _donate_to_parcel(self, op: DonateToParcel) -> Plan:
        addrspace, owned = self._addrspace(op.owner), self._owned(op.owner)
        state = self._claim(op.handle, op.owner)
        extent = yield from self._ensure_extent(state)
        yield from self._resolve(state, op.owner, [(r.ipa, r.size) for r in op.regions])
        for region in op.regions:
            for run in state.slice(region.ipa, region.size):
                if not state.owner_lost(run):
                    yield from _issue(_map(addrspace, extent, run, run.attrs))
                    state.mappings.append(ParcelMapping(op.owner, run.ipa, run.phys, run.size,
                                                        run.attrs))
                yield from _issue(_donate(owned, extent, run))
            state.regions.append(region)

    def _map_into(self, op: MapInto) -> Plan:
        state, extent = self._known(op.handle)
        addrspace, attrs = self._addrspace(op.vmid), map_attrs(op.rights, op.attr)
        for region_map in op.maps:
            for run in state.pieces(region_map):
                mapping = state.mapping(op.vmid, run)
                if mapping is None:
                    yield from _issue(_map(addrspace, extent, run, attrs))
                else:
                    yield from _issue(HvcCall.of(
                        "addrspace_update_access", addrspace=addrspace, memextent=extent,
                        vbase=run.ipa, update_attrs=attrs & _ACCESS_BITS, map_flags=MAP_PARTIAL,
                        offset=run.phys, size=run.size))
                    state.mappings.remove(mapping)
                state.mappings.append(ParcelMapping(op.vmid, run.ipa, run.phys, run.size, attrs))

    def _sanitize(self, op: Sanitize) -> Plan:
        state, extent = self._known(op.handle)
        for region in op.regions:
            for run in state.slice(region.ipa, region.size):
                yield from _issue(HvcCall.of("memextent_modify", memextent=extent,
                                             flags=MODIFY_ZERO_RANGE | NOSYNC, offset=run.phys,
                                             size=run.size))

    def _restore_owner(self, op: RestoreOwner) -> Plan:
        state, extent = self._known(op.handle)
        if state.owner != op.owner:
            raise ValueError(f"parcel {op.handle:#x} is not vmid {op.owner:#x}'s")
        if sorted(op.regions, key=lambda r: r.ipa) != sorted(state.regions, key=lambda r: r.ipa):
            raise ValueError(f"RestoreOwner of parcel {op.handle:#x} names other regions")
        addrspace, owned = self._addrspace(op.owner), self._owned(op.owner)
        for region in op.regions:
            for run in state.slice(region.ipa, region.size):
                yield from _issue(_donate(extent, owned, run))
        while state.owner_unmapped:
            run = state.owner_unmapped[0]
            yield from _issue(_map(addrspace, owned, run, run.attrs))
            state.owner_unmapped.pop(0)
        yield from self._end(op.handle, state, extent)

    def _donate_to_vm(self, op: DonateToVm) -> Plan:
        state, extent = self._known(op.handle)
        addrspace, owned = self._addrspace(op.new_owner), self._owned(op.new_owner)
        for region_map in op.maps:
            for run in state.pieces(region_map):
                mapping = state.mapping(op.new_owner, run)
                if mapping is None:
                    raise ValueError(f"parcel {op.handle:#x} is not mapped in vmid "
                                     f"{op.new_owner:#x} at {run.ipa:#x}: no MapInto before")
                yield from _issue(_map(addrspace, owned, run, mapping.attrs))
                yield from _issue(_donate(extent, owned, run))
                yield from _issue(_unmap(addrspace, extent, mapping))
                state.mappings.remove(mapping)
        yield from self._end(op.handle, state, extent)

    def _end(self, handle: int, state: ParcelState, extent: int) -> Plan:
        """Unmaps what the parcel extent still maps, forgets the handle, keeps the extent."""
        yield from self._unmap_all(state, extent, state.mappings)
        del self._parcels[handle]
        self._spare.append(extent)
