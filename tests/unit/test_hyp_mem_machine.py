"""A Hypothesis state machine of donate / map / unmap / update_access / zero / unmap_all.

The reference model is written per page from the rules in ``memextent`` and ``addrspace``:
every page has one owner (the partition ``P`` or an extent); an extent has at most 4 mapping
slots, each in one VM, each a dict phys page -> (IPA page, rights); a VM sees a recorded page
with the record's rights if the record's extent owns it, else with no access. The effects EL2
returns are replayed, page by page, into a model of each VM's worker that refuses redundant
effects (mapping a mapped page, unmapping an unmapped one, protecting to the same rights), so
the effects must be exact and minimal. After every step:

- ownership in the memdb equals the model's, page by page, and covers the file exactly once;
- each worker model equals the reference view and ``Memory.view``;
- every page a worker can access is owned by an extent whose record maps it there.

Extents: ``R`` (root, SPARSE, over the 16 pages of file ``ram``), ``A`` and ``B`` (children of
R) and ``C`` (child of A), all SPARSE and RWX; VMs 1, 2 and 3. At the start A owns pages 0..5,
B pages 6..11 and R pages 12..15.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from gunyah_net.abi.errors import Error, HypError
from gunyah_net.hyp.cspace import Cspace
from gunyah_net.hyp.mem_attrs import NORMAL_WB, ExtentAttrs, ExtentType, MapAttrs, MemType
from gunyah_net.hyp.mem_effects import (Access, MapRegion, ProtectRegion, UnmapRegion,
                                        ZeroRegion)
from gunyah_net.hyp.memory import Memory
from gunyah_net.hyp.partition import Partition

PAGE = 0x1000
PAGES = 16
IPA_BASE = 0x8000_0000
VMIDS = (1, 2, 3)
EXTENTS = ("R", "A", "B", "C")
PARENT = {"R": "P", "A": "R", "B": "R", "C": "A"}
SPARSE_RWX = ExtentAttrs(Access.RWX, MemType.ANY, ExtentType.SPARSE).word()
RANK = {UnmapRegion: 0, ProtectRegion: 1, ZeroRegion: 2, MapRegion: 3}

names = st.sampled_from(EXTENTS)
rights = st.sampled_from([Access.R, Access.RW, Access.RWX, Access.RX])
spans = st.integers(0, PAGES - 1).flatmap(
    lambda first: st.tuples(st.just(first), st.integers(1, min(6, PAGES - first))))


class MemoryMachine(RuleBasedStateMachine):
    """Drives the model objects and checks them against the page-level reference."""

    @initialize()
    def setup(self) -> None:
        self.partition = Partition()
        self.partition.activate()
        root = Cspace(id_base=0, max_caps=256)
        root.activate()
        self.memory = Memory(self.partition)
        self.base = self.memory.add_backing("ram", PAGES * PAGE).phys_base
        self.obj: dict[str, object] = {"P": self.partition}
        for name in EXTENTS:
            extent, _ = self.memory.create_memextent(root, name)
            if name == "R":
                extent.configure(self.base, PAGES * PAGE, SPARSE_RWX)
            else:
                extent.configure_derive(self.obj[PARENT[name]], 0, PAGES * PAGE, SPARSE_RWX)
            extent.activate()
            self.obj[name] = extent
        self.addrspaces = {}
        for vmid in VMIDS:
            addrspace, _ = self.memory.create_addrspace(root)
            addrspace.configure(vmid)
            addrspace.activate()
            self.addrspaces[vmid] = addrspace
        self.owner = ["P"] * PAGES
        self.slots = {name: [] for name in EXTENTS}
        self.worker = {}
        for child, reverse, first, count in (("R", False, 0, 16), ("A", False, 0, 6),
                                             ("B", False, 6, 6)):
            self.donate_child(child, (first, count), reverse)

    # -- running an operation ---------------------------------------------------------------------

    def run(self, expected: Error, operation) -> tuple:
        """Runs ``operation``; it must fail with ``expected`` or succeed when that is OK."""
        try:
            effects = operation()
        except HypError as err:
            assert err.code is expected, f"got {err.code.name}, expected {expected.name}"
            return ()
        assert expected is Error.OK, f"succeeded, expected {expected.name}"
        self.replay(effects)
        return effects

    def replay(self, effects: tuple) -> None:
        """Applies effects to the worker models, refusing any that would change nothing."""
        ranks = [RANK[type(e)] for e in effects]
        assert ranks == sorted(ranks), effects
        for effect in effects:
            match effect:
                case MapRegion(vmid, ipa, size, backing, offset, access):
                    for i in range(0, size, PAGE):
                        assert (vmid, ipa + i) not in self.worker
                        self.worker[vmid, ipa + i] = (backing, (offset + i) // PAGE, access)
                case UnmapRegion(vmid, ipa, size):
                    for i in range(0, size, PAGE):
                        del self.worker[vmid, ipa + i]
                case ProtectRegion(vmid, ipa, size, access):
                    for i in range(0, size, PAGE):
                        backing, page, old = self.worker[vmid, ipa + i]
                        assert old != access
                        self.worker[vmid, ipa + i] = (backing, page, access)
                case ZeroRegion():
                    raise AssertionError(f"unexpected {effect}")

    # -- donation ---------------------------------------------------------------------------------

    def _move(self, donor: str, recipient: str, first: int, count: int) -> Error:
        pages = range(first, first + count)
        if any(self.owner[p] != donor for p in pages):
            return Error.MEMDB_NOT_OWNER
        for p in pages:
            self.owner[p] = recipient
        return Error.OK

    @rule(child=names, span=spans, reverse=st.booleans())
    def donate_child(self, child: str, span: tuple[int, int], reverse: bool) -> None:
        first, count = span
        donor, recipient = (child, PARENT[child]) if reverse else (PARENT[child], child)
        expected = self._move(donor, recipient, first, count)
        self.run(expected, lambda: self.obj[child].donate_child(first * PAGE, count * PAGE,
                                                                 reverse))

    @rule(data=st.data(), count=st.integers(1, 4))
    def donate_owned_run(self, data, count: int) -> None:
        """Donates a run starting at a page an extent owns, to a relative that may take it."""
        page = data.draw(st.sampled_from([p for p in range(PAGES) if self.owner[p] != "P"]
                                         or [0]))
        owner = self.owner[page]
        moves = [(c, False) for c in EXTENTS if PARENT[c] == owner] + \
            [(owner, True)] if owner != "P" else [("R", False)]
        sibling = {"A": "B", "B": "A"}.get(owner)
        choice = data.draw(st.sampled_from(moves + ([("sibling", False)] if sibling else [])))
        count = min(count, PAGES - page)
        if choice[0] == "sibling":
            self.donate_sibling(owner == "A", (page, count))
        else:
            self.donate_child(choice[0], (page, count), choice[1])

    @rule(a_to_b=st.booleans(), span=spans)
    def donate_sibling(self, a_to_b: bool, span: tuple[int, int]) -> None:
        first, count = span
        donor, recipient = ("A", "B") if a_to_b else ("B", "A")
        expected = self._move(donor, recipient, first, count)
        self.run(expected, lambda: self.obj[donor].donate_sibling(
            self.obj[recipient], self.base + first * PAGE - self.obj[donor].phys_base,
            count * PAGE))

    # -- mappings ---------------------------------------------------------------------------------

    def _predict_map(self, name: str, vmid: int, first: int, count: int,
                     ipa: int) -> tuple[Error, int | None]:
        """Returns the expected error and the index of the slot the record goes to."""
        pages = set(range(first, first + count))
        slot_index = next((i for i, (v, recs) in enumerate(self.slots[name])
                           if v == vmid and not pages & recs.keys()), None)
        if slot_index is None and len(self.slots[name]) >= 4:
            return Error.MEMEXTENT_MAPPINGS_FULL, None
        for other, slots in self.slots.items():
            for v, recs in slots:
                for phys, (at, _) in recs.items():
                    if v == vmid and ipa <= at < ipa + count and (
                            other == name or phys != first + at - ipa):
                        return Error.EXISTING_MAPPING, None
        return Error.OK, slot_index

    @rule(name=names, vmid=st.sampled_from(VMIDS), span=spans, ipa=st.integers(0, 48),
          access=rights)
    def map(self, name: str, vmid: int, span: tuple[int, int], ipa: int,
            access: Access) -> None:
        first, count = span
        expected, slot_index = self._predict_map(name, vmid, first, count, ipa)
        attrs = MapAttrs(access, access, NORMAL_WB)
        self.run(expected, lambda: self.obj[name].map(
            self.addrspaces[vmid], IPA_BASE + ipa * PAGE, attrs, partial=True,
            offset=first * PAGE, size=count * PAGE))
        if expected is Error.OK:
            if slot_index is None:
                self.slots[name].append((vmid, {}))
                slot_index = len(self.slots[name]) - 1
            recs = self.slots[name][slot_index][1]
            recs.update({first + i: (ipa + i, access) for i in range(count)})

    def _find(self, name: str, vmid: int, first: int, count: int, ipa: int) -> int | None:
        for i, (v, recs) in enumerate(self.slots[name]):
            if v == vmid and all(recs.get(first + k, (None,))[0] == ipa + k
                                 for k in range(count)):
                return i
        return None

    def _recorded(self) -> list[tuple[str, int, int, int]]:
        return sorted((name, v, phys, at) for name, slots in self.slots.items()
                      for v, recs in slots for phys, (at, _) in recs.items())

    @rule(data=st.data(), count=st.integers(1, 3), exact=st.booleans(),
          everything=st.integers(0, 9))
    def unmap(self, data, count: int, exact: bool, everything: int) -> None:
        name, vmid, first, ipa = self._pick(data, exact)
        if everything == 0:
            self.unmap_all(name)
            return
        index = self._find(name, vmid, first, count, ipa)
        expected = Error.ADDR_INVALID if index is None or first + count > PAGES else Error.OK
        if first + count > PAGES:
            expected = Error.ARGUMENT_SIZE
        self.run(expected, lambda: self.obj[name].unmap(
            self.addrspaces[vmid], IPA_BASE + ipa * PAGE, partial=True, offset=first * PAGE,
            size=count * PAGE))
        if expected is Error.OK:
            vmid_, recs = self.slots[name][index]
            for k in range(count):
                del recs[first + k]
            if not recs:
                del self.slots[name][index]

    @rule(data=st.data(), count=st.integers(1, 3), exact=st.booleans(), access=rights)
    def update_access(self, data, count: int, exact: bool, access: Access) -> None:
        name, vmid, first, ipa = self._pick(data, exact)
        index = self._find(name, vmid, first, count, ipa)
        expected = Error.ADDR_INVALID if index is None else Error.OK
        if first + count > PAGES:
            expected = Error.ARGUMENT_SIZE
        self.run(expected, lambda: self.obj[name].update_access(
            self.addrspaces[vmid], IPA_BASE + ipa * PAGE, access, access, partial=True,
            offset=first * PAGE, size=count * PAGE))
        if expected is Error.OK:
            recs = self.slots[name][index][1]
            for k in range(count):
                recs[first + k] = (recs[first + k][0], access)

    def _pick(self, data, exact: bool) -> tuple[str, int, int, int]:
        """Draws (extent, vmid, phys page, IPA page): a recorded page, or anything."""
        recorded = self._recorded()
        if exact and recorded:
            return data.draw(st.sampled_from(recorded))
        return (data.draw(names), data.draw(st.sampled_from(VMIDS)),
                data.draw(st.integers(0, PAGES - 1)), data.draw(st.integers(0, 48)))

    def unmap_all(self, name: str) -> None:
        self.run(Error.OK, self.obj[name].unmap_all)
        self.slots[name] = []

    @rule(name=names, span=spans)
    def zero(self, name: str, span: tuple[int, int]) -> None:
        first, count = span
        effects = self.obj[name].zero_range(first * PAGE, count * PAGE)
        zeroed = [p for e in effects for p in range(e.offset // PAGE, (e.offset + e.size) // PAGE)]
        assert all(isinstance(e, ZeroRegion) and e.backing == "ram" for e in effects)
        assert zeroed == [p for p in range(first, first + count) if self.owner[p] == name]
        assert len(effects) == len({p - i for i, p in enumerate(zeroed)})

    # -- invariants -------------------------------------------------------------------------------

    @invariant()
    def every_page_has_exactly_the_modelled_owner(self) -> None:
        runs = self.memory.memdb.all_runs()
        assert runs[0][0] == self.base and runs[-1][1] == self.base + PAGES * PAGE
        assert all(a[1] == b[0] for a, b in zip(runs, runs[1:]))
        for p in range(PAGES):
            assert self.memory.memdb.owner(self.base + p * PAGE) is self.obj[self.owner[p]]

    @invariant()
    def workers_see_the_reference_view(self) -> None:
        for vmid in VMIDS:
            expected: dict[int, tuple[str, int, Access]] = {}
            for pass_owned in (False, True):
                for name, slots in self.slots.items():
                    for v, recs in slots:
                        for phys, (ipa, access) in recs.items():
                            owned = self.owner[phys] == name
                            if v == vmid and owned == pass_owned:
                                expected[IPA_BASE + ipa * PAGE] = (
                                    "ram", phys, access if owned else Access.NONE)
            worker = {ipa: v for (vm, ipa), v in self.worker.items() if vm == vmid}
            assert worker == expected
            full = {s + i: (p.backing, (s + i + p.delta) // PAGE, p.rights)
                    for s, size, p in self.memory.view(vmid) for i in range(0, size, PAGE)}
            assert full == expected

    @invariant()
    def accessible_pages_are_owned_by_the_extent_that_maps_them(self) -> None:
        for (vmid, ipa), (_, page, access) in self.worker.items():
            if access is Access.NONE:
                continue
            phys = self.base + page * PAGE
            assert any(rec is not None and ipa - rec.ipa_delta == phys
                       and self.memory.memdb.owner(phys) is slot.extent
                       for slot in self.addrspaces[vmid].slots
                       for rec in [slot.records.get(phys)])


TestMemoryMachine = MemoryMachine.TestCase
TestMemoryMachine.settings = settings(max_examples=200, stateful_step_count=50, deadline=None,
                                      suppress_health_check=[HealthCheck.too_slow])
