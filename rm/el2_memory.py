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

The call values and their encodings are in ``el2_calls``, what is known of one parcel in
``el2_parcel``; their public names are importable from here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from gunyah_net.abi.rm import MemRights, Vmid

from .el2_calls import (
    ACCESS_BITS,
    DONATE_TO_SIBLING,
    MAP_PARTIAL,
    MEMTYPE,
    MODIFY_ZERO_RANGE,
    NOSYNC,
    El2CallFailed,
    HvcCall,
    Plan,
    Steps,
    issue,
    map_attrs,
)
from .el2_parcel import ParcelMapping, ParcelState, PhysRun
from .memparcel import (
    PAGE_SIZE,
    DonateToParcel,
    DonateToVm,
    El2Op,
    MapInto,
    RestoreOwner,
    Sanitize,
    UnmapFrom,
)

__all__ = ["DDR_SIZE", "DONATE_TO_SIBLING", "MAP_PARTIAL", "MEMTYPE", "MODIFY_ZERO_RANGE",
           "NOSYNC", "PARCEL_ME_ATTRS", "RM_WINDOW_ATTRS", "El2CallFailed", "HvcCall",
           "MemoryPlanner", "ParcelMapping", "ParcelState", "PhysRun", "Plan", "map_attrs"]

DDR_SIZE = 1 << 44
"""Every DDR child extent spans physical [0, 2^44) (RM ``vm_memory.h`` ADDR_LIMIT)."""
PARCEL_ME_ATTRS = 0x7 | 0 << 8 | 1 << 16
"""me_attrs of a parcel extent: access RWX (2:0), memtype ANY (9:8), type SPARSE (17:16)."""
RM_WINDOW_ATTRS = map_attrs(MemRights.RW)
"""How ``map_into_rm`` maps a parcel into the RM: RW, normal write-back."""


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
                yield from issue(_map(self._rm_addrspace, extent, run, RM_WINDOW_ATTRS))
                state.mappings.append(ParcelMapping(Vmid.RM, ipa, run.phys, run.size,
                                                    RM_WINDOW_ATTRS, rm_window=True))
                ipa += run.size

    def _unmap_all(self, state: ParcelState, extent: int,
                   mappings: Iterable[ParcelMapping]) -> Plan:
        for mapping in list(mappings):
            addrspace = self._rm_addrspace if mapping.rm_window else self._addrspace(mapping.vmid)
            yield from issue(_unmap(addrspace, extent, mapping))
            state.mappings.remove(mapping)

    def _ensure_extent(self, state: ParcelState) -> Steps:
        """Gives the parcel its extent: a spare one, or a new SPARSE child of DDR."""
        if state.extent is None and self._spare:
            state.extent = self._spare.pop()
        if state.extent is None:
            regs = yield from issue(HvcCall.of("partition_create_memextent",
                                                partition=self._partition, cspace=self._cspace))
            cap = regs[1]
            yield from issue(HvcCall.of("memextent_configure_derive", memextent=cap,
                                         parent_memextent=self._ddr, offset=0, size=DDR_SIZE,
                                         attributes=PARCEL_ME_ATTRS))
            yield from issue(HvcCall.of("object_activate", cap=cap))
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
                regs = yield from issue(HvcCall.of("addrspace_lookup", addrspace=addrspace,
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
                yield from issue(_unmap(addrspace, owned, run))
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
                    yield from issue(_map(addrspace, extent, run, run.attrs))
                    state.mappings.append(ParcelMapping(op.owner, run.ipa, run.phys, run.size,
                                                        run.attrs))
                yield from issue(_donate(owned, extent, run))
            state.regions.append(region)

    def _map_into(self, op: MapInto) -> Plan:
        state, extent = self._known(op.handle)
        addrspace, attrs = self._addrspace(op.vmid), map_attrs(op.rights, op.attr)
        for region_map in op.maps:
            for run in state.pieces(region_map):
                mapping = state.mapping(op.vmid, run)
                if mapping is None:
                    yield from issue(_map(addrspace, extent, run, attrs))
                else:
                    yield from issue(HvcCall.of(
                        "addrspace_update_access", addrspace=addrspace, memextent=extent,
                        vbase=run.ipa, update_attrs=attrs & ACCESS_BITS, map_flags=MAP_PARTIAL,
                        offset=run.phys, size=run.size))
                    state.mappings.remove(mapping)
                state.mappings.append(ParcelMapping(op.vmid, run.ipa, run.phys, run.size, attrs))

    def _sanitize(self, op: Sanitize) -> Plan:
        state, extent = self._known(op.handle)
        for region in op.regions:
            for run in state.slice(region.ipa, region.size):
                yield from issue(HvcCall.of("memextent_modify", memextent=extent,
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
                yield from issue(_donate(extent, owned, run))
        while state.owner_unmapped:
            run = state.owner_unmapped[0]
            yield from issue(_map(addrspace, owned, run, run.attrs))
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
                yield from issue(_map(addrspace, owned, run, mapping.attrs))
                yield from issue(_donate(extent, owned, run))
                yield from issue(_unmap(addrspace, extent, mapping))
                state.mappings.remove(mapping)
        yield from self._end(op.handle, state, extent)

    def _end(self, handle: int, state: ParcelState, extent: int) -> Plan:
        """Unmaps what the parcel extent still maps, forgets the handle, keeps the extent."""
        yield from self._unmap_all(state, extent, state.mappings)
        del self._parcels[handle]
        self._spare.append(extent)
