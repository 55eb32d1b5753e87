"""A Hypothesis state machine of create / accept / release / reclaim / reset, whose EL2 memory
operations are carried out on a page-level model of stage 2, checked after every step:

- no page is both mapped to its owner and lent or donated away;
- every page belongs to exactly one VM or one parcel, and a VM maps only pages it owns, or a
  parcel it owns (SHARE) or has accepted;
- a reclaim while a borrower holds the parcel is MEM_INUSE;
- a reclaim zeroes the pages exactly when someone asked to sanitize; otherwise data survives.
"""

from dataclasses import dataclass, field

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gunyah_net.abi.rm import MemAcceptFlag, MemRights, RmError, TransType, VmAuth, VmState
from rm.mem_payloads import (
    AclEntry,
    MemAccept,
    MemDonate,
    MemLend,
    MemReclaim,
    MemRelease,
    MemShare,
    SglEntry,
)
from rm.memparcel import (
    DonateToParcel,
    DonateToVm,
    MapInto,
    RestoreOwner,
    Sanitize,
    UnmapFrom,
)
from rm.memparcel_table import MemparcelTable

PAGE = 0x1000
HOST, GUEST, CROWDED = 3, 0x80, 0x81
RAM, PAGES = 0x8000_0000, 32
BORROWERS = (GUEST, CROWDED)
KINDS = {TransType.LEND: MemLend, TransType.SHARE: MemShare, TransType.DONATE: MemDonate}


@dataclass(frozen=True)
class Vm:
    vm_state: VmState = VmState.RUNNING
    auth: VmAuth | None = VmAuth.NONE


class Vms:
    def get(self, vmid):
        return Vm() if vmid in (HOST, *BORROWERS) else None


@dataclass
class Stage2:
    """EL2 as pages: who owns each physical page, who maps it where, and its contents."""

    owned: dict[int, dict[int, int]] = field(default_factory=dict)   # vmid -> ipa -> phys
    extents: dict[int, dict[int, int]] = field(default_factory=dict)  # handle -> owner ipa -> phys
    maps: dict[int, dict[int, tuple[int, bool]]] = field(default_factory=dict)  # vmid -> ipa
    data: dict[int, int] = field(default_factory=dict)                # phys -> value

    def pages(self, ipa, size):
        return range(ipa, ipa + size, PAGE)

    def apply(self, op):
        self._apply(op)
        self.extents = {h: pages for h, pages in self.extents.items() if pages}

    def _apply(self, op):
        match op:
            case UnmapFrom(vmid=vmid, maps=maps):
                for m in maps:
                    for off in range(0, m.size, PAGE):
                        assert self.maps[vmid].pop(m.ipa + off, None) is not None, op
            case DonateToParcel(owner=owner, handle=handle, regions=regions):
                extent = self.extents.setdefault(handle, {})
                for r in regions:
                    for ipa in self.pages(r.ipa, r.size):
                        extent[ipa] = self.owned[owner].pop(ipa)
            case MapInto(vmid=vmid, handle=handle, maps=maps, rights=rights):
                for m in maps:
                    for off in range(0, m.size, PAGE):
                        phys = self.extents[handle][m.owner_ipa + off]
                        old = self.maps.setdefault(vmid, {}).get(m.ipa + off)
                        assert old is None or old[0] == phys, op
                        self.maps[vmid][m.ipa + off] = (phys, bool(rights & MemRights.W))
            case Sanitize(handle=handle, regions=regions):
                for r in regions:
                    for ipa in self.pages(r.ipa, r.size):
                        self.data[self.extents[handle][ipa]] = 0
            case RestoreOwner(owner=owner, handle=handle, regions=regions):
                for r in regions:
                    for ipa in self.pages(r.ipa, r.size):
                        phys = self.extents[handle].pop(ipa)
                        self.owned[owner][ipa] = phys
                        self.maps[owner][ipa] = (phys, True)
            case DonateToVm(new_owner=new, handle=handle, maps=maps):
                for m in maps:
                    for off in range(0, m.size, PAGE):
                        phys = self.extents[handle].pop(m.owner_ipa + off)
                        self.owned.setdefault(new, {})[m.ipa + off] = phys


class MemparcelMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.table = MemparcelTable(Vms())
        self.table.register_memory(HOST, [SglEntry(RAM, PAGES * PAGE)])
        self.table.register_memory(CROWDED, [SglEntry(RAM, PAGES * PAGE)])
        host = {RAM + i * PAGE: RAM + i * PAGE for i in range(PAGES)}
        self.el2 = Stage2(owned={HOST: dict(host)},
                          maps={HOST: {ipa: (phys, True) for ipa, phys in host.items()}},
                          data={phys: phys for phys in host.values()})
        self.accepted: dict[int, set[int]] = {}
        self.sanitize: dict[int, bool] = {}
        self.kind: dict[int, TransType] = {}
        self.gone = {0xFFFF_FF00}
        """Handles of reclaimed or donated parcels, and one never handed out."""

    def pick(self, data):
        """A live handle three times in four (when there is one), else a stale one."""
        stale = st.sampled_from(sorted(self.gone))
        if not self.accepted:
            return data.draw(stale)
        live = st.sampled_from(sorted(self.accepted))
        return data.draw(st.one_of(live, live, live, stale))

    def forget(self, handle):
        for table in (self.accepted, self.sanitize, self.kind):
            del table[handle]
        self.gone.add(handle)

    def run(self, result):
        for op in result.el2_ops:
            self.el2.apply(op)
        return result

    # --- rules ------------------------------------------------------------------------------------

    @rule(kind=st.sampled_from(list(KINDS)), first=st.integers(0, PAGES - 1),
          count=st.integers(1, 4), borrowers=st.sets(st.sampled_from(BORROWERS), min_size=1),
          rights=st.sampled_from([MemRights.R, MemRights.RW, MemRights.RWX]),
          sanitize=st.booleans())
    def create(self, kind, first, count, borrowers, rights, sanitize):
        count = min(count, PAGES - first)
        sgl = (SglEntry(RAM + first * PAGE, count * PAGE),)
        acl = [AclEntry(v, MemRights.RWX if kind is TransType.DONATE else rights)
               for v in sorted(borrowers)]
        if kind is TransType.SHARE:
            acl.insert(0, AclEntry(HOST, MemRights.RW))
        elif kind is TransType.DONATE:
            acl = acl[:1]
        free = all(self.el2.owned[HOST].get(ipa) is not None
                   for ipa in self.el2.pages(sgl[0].ipa, sgl[0].size))
        before = {ipa: self.el2.data[phys] for ipa, phys in self.el2.owned[HOST].items()}
        result = self.run(self.table.create(HOST, KINDS[kind](0, int(sanitize), 0, tuple(acl),
                                                              sgl)))
        assert result.ok == free, result
        event(f"create {kind.name}: {result.error.name}")
        if result.ok:
            handle = result.reply.handle
            self.accepted[handle], self.sanitize[handle], self.kind[handle] = set(), False, kind
            for ipa in self.el2.pages(sgl[0].ipa, sgl[0].size):
                value = self.el2.data[self.el2.extents[handle][ipa]]
                assert value == (0 if sanitize else before[ipa])

    @rule(data=st.data(), borrower=st.sampled_from(BORROWERS), contiguous=st.booleans(),
          sanitize=st.booleans())
    def accept(self, data, borrower, contiguous, sanitize):
        handle = self.pick(data)
        flags = MemAcceptFlag.DONE | (MemAcceptFlag.MAP_CONTIGUOUS if contiguous else 0)
        flags |= MemAcceptFlag.SANITIZE if sanitize else 0
        kind = self.kind.get(handle, TransType.LEND)
        parcel = self.table.get(handle)
        entry = parcel.entry(borrower) if parcel else None
        result = self.run(self.table.accept(borrower, MemAccept(handle, 0, kind, flags, 0)))
        event(f"accept {kind.name}: {result.error.name}")
        if handle in self.gone:
            assert result.error is RmError.HANDLE_INVALID
        elif entry is None:
            assert result.error is RmError.VMID_INVALID
        elif borrower in self.accepted[handle]:
            assert result.error is RmError.DENIED
        elif sanitize and not entry.rights & MemRights.W:
            assert result.error is RmError.ARGUMENT_INVALID
        else:
            assert result.ok, result
            self._accepted(handle, borrower, sanitize)

    def _accepted(self, handle, borrower, sanitize):
        if self.kind[handle] is TransType.DONATE:
            self.forget(handle)
            return
        self.accepted[handle].add(borrower)
        self.sanitize[handle] |= sanitize

    @rule(data=st.data(), borrower=st.sampled_from(BORROWERS), sanitize=st.booleans())
    def release(self, data, borrower, sanitize):
        handle = self.pick(data)
        parcel = self.table.get(handle)
        entry = parcel.entry(borrower) if parcel else None
        result = self.run(self.table.release(borrower, MemRelease(handle, int(sanitize))))
        event(f"release: {result.error.name}")
        if entry is None:
            assert result.error is RmError.HANDLE_INVALID
        elif borrower not in self.accepted[handle]:
            assert result.error is RmError.MEM_RELEASED
        elif sanitize and not entry.rights & MemRights.W:
            assert result.error is RmError.ARGUMENT_INVALID
        else:
            assert result.ok, result
            self.accepted[handle].discard(borrower)
            self.sanitize[handle] |= sanitize

    @rule(data=st.data(), sanitize=st.booleans())
    def reclaim(self, data, sanitize):
        handle = self.pick(data)
        parcel = self.table.get(handle)
        before = {ipa: self.el2.data[phys]
                  for ipa, phys in self.el2.extents.get(handle, {}).items()}
        result = self.run(self.table.reclaim(HOST, MemReclaim(handle, int(sanitize))))
        event(f"reclaim: {result.error.name}")
        if handle in self.gone:
            assert result.error is RmError.HANDLE_INVALID
            return
        if self.accepted[handle]:
            assert result.error is RmError.MEM_INUSE and result.el2_ops == ()
            return
        assert result.ok, result
        zero = sanitize or self.sanitize[handle]
        for region in parcel.regions:
            for ipa in self.el2.pages(region.ipa, region.size):
                phys, writable = self.el2.maps[HOST][ipa]
                assert writable and self.el2.data[phys] == (0 if zero else before[ipa])
        self.forget(handle)

    @rule(borrower=st.sampled_from(BORROWERS))
    def reset(self, borrower):
        result = self.run(self.table.release_all_accepted(borrower))
        assert sorted(n.payload.handle for n in result.notifications) == sorted(
            h for h, vmids in self.accepted.items() if borrower in vmids)
        for vmids in self.accepted.values():
            vmids.discard(borrower)

    @rule(vmid=st.sampled_from((HOST, *BORROWERS)), data=st.data(), value=st.integers(1, 255))
    def write(self, vmid, data, value):
        writable = sorted(ipa for ipa, (_, w) in self.el2.maps.get(vmid, {}).items() if w)
        if writable:
            ipa = data.draw(st.sampled_from(writable))
            self.el2.data[self.el2.maps[vmid][ipa][0]] = value

    # --- invariants -------------------------------------------------------------------------------

    @invariant()
    def lent_pages_are_not_the_owners(self):
        host_phys = {phys for phys, _ in self.el2.maps[HOST].values()}
        for handle, kind in self.kind.items():
            pages = set(self.el2.extents[handle].values())
            assert (kind is TransType.SHARE) == bool(pages & host_phys)

    @invariant()
    def every_page_has_one_home(self):
        homes = [p for pages in self.el2.owned.values() for p in pages.values()]
        homes += [p for pages in self.el2.extents.values() for p in pages.values()]
        assert sorted(homes) == [RAM + i * PAGE for i in range(PAGES)]

    @invariant()
    def vms_map_only_what_they_own_or_hold(self):
        for vmid, maps in self.el2.maps.items():
            allowed = set(self.el2.owned.get(vmid, {}).values())
            for handle, extent in self.el2.extents.items():
                parcel = self.table.get(handle)
                holds = vmid in self.accepted.get(handle, ()) or (
                    vmid == HOST and parcel.trans_type is TransType.SHARE)
                allowed |= set(extent.values()) if holds else set()
            assert {phys for phys, _ in maps.values()} <= allowed

    @invariant()
    def the_table_agrees_with_the_model(self):
        for handle, vmids in self.accepted.items():
            parcel = self.table.get(handle)
            assert {b.vmid for b in parcel.acl if b.accepted} == vmids
            assert parcel.in_use == bool(vmids)


TestMemparcelMachine = MemparcelMachine.TestCase
TestMemparcelMachine.settings = settings(max_examples=250, stateful_step_count=50,
                                         deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])
