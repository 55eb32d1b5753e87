"""Memory extents: physical ranges that own pages, derive children, donate, and get mapped.

Model (HYP ``mem/memextent``, ``mem/memextent_sparse``; checks in HYP's order):

- Lifecycle: created in INIT; ``configure(phys_base, size, attrs)`` makes a root extent,
  ``configure_derive(parent, offset, size, attrs)`` a child covering [offset, +size) of its
  parent's range; both only in INIT (ERROR_OBJECT_STATE). Activation takes memory:
  a root BASIC extent takes its whole range from its partition, a derived BASIC extent from its
  parent (ERROR_MEMDB_NOT_OWNER if the donor does not own every page); SPARSE extents start
  empty (a SPARSE child of a BASIC parent takes its whole range, as the parent cannot donate).
  A derived extent inherits its parent's mapping records over its range, with access limited to
  its own (a BASIC child refuses a parent mapping that covers only part of it: ERROR_DENIED).
- Donation (SPARSE only; ERROR_MEMEXTENT_TYPE for BASIC): TO_CHILD / TO_PARENT move pages
  between a child and its parent, or its partition for a root; TO_SIBLING between two children
  of one parent. ``offset`` is relative to the child (TO_CHILD / TO_PARENT) or to the donor
  (TO_SIBLING). The donor must own every page (ERROR_MEMDB_NOT_OWNER, nothing moves).
- Mappings: an extent has at most 4 mapping slots (ERROR_MEMEXTENT_MAPPINGS_FULL), each in one
  address space. BASIC: a slot maps the whole extent; PARTIAL is ERROR_MEMEXTENT_TYPE. SPARSE: a
  slot holds any number of records (partial ranges) in one address space; a new record reuses a
  slot of the same address space whose records do not overlap it physically. Unmap and
  update_access name a mapping by its vbase; a range that is not exactly mapped there is
  ERROR_ADDR_INVALID. Pages donated away stay recorded but are no longer mapped; pages donated
  in are mapped wherever the recipient's records say (``addrspace`` explains the view).
- memextent_modify: UNMAP_ALL drops every record; ZERO_RANGE zeroes the pages of the range the
  extent owns (ERROR_DENIED for DEVICE memory or an extent without W).

Every operation that can change what a VM sees returns its ``mem_effects`` in contract order.
Known differences from HYP 12/2023: update_access on a SPARSE extent works (HYP's never finds
the mapping and always returns ERROR_ADDR_INVALID); a derived SPARSE extent mirrors its parent's
slots one to one; CACHED memtype is refused as on HYP builds without S2FWB.
"""

from __future__ import annotations

from collections.abc import Iterable

from gunyah_net.abi.errors import Error, HypError
from gunyah_net.abi.platform import PAGE_SIZE
from gunyah_net.abi.rights import MemextentRights
from gunyah_net.hyp.addrspace import (AddrSpace, MapRecord, MapSlot, Watch, check_ipa_range,
                                      check_no_overlap)
from gunyah_net.hyp.mem_attrs import ExtentAttrs, ExtentType, MapAttrs, MemType, memtype_allows
from gunyah_net.hyp.mem_effects import Access, MemEffects, ZeroRegion, ordered
from gunyah_net.hyp.memdb import MemDb, PhysMap
from gunyah_net.hyp.object import KernelObject, ObjectState, ObjectType

MAX_MAPS = 4
"""Mappings per extent (HYP ``MEMEXTENT_MAX_MAPS``)."""

GPT_VBASE_LIMIT = 1 << 48
_U64 = (1 << 64) - 1


def _check_range(base: int, offset: int, size: int, limit: int) -> None:
    """The checks of HYP's donate and clean paths, in order: alignment, overflow of the base,
    size (zero or wrapping), and that [offset, +size) lies inside ``limit`` bytes."""
    if offset % PAGE_SIZE or size % PAGE_SIZE:
        raise HypError(Error.ARGUMENT_ALIGNMENT, f"offset {offset:#x} size {size:#x}")
    if base + offset > _U64:
        raise HypError(Error.ARGUMENT_INVALID, f"offset {offset:#x} overflows")
    if size == 0 or base + offset + size - 1 > _U64:
        raise HypError(Error.ARGUMENT_SIZE, f"size {size:#x}")
    if offset + size > limit:
        raise HypError(Error.ARGUMENT_INVALID, f"[{offset:#x}, +{size:#x}) is outside the extent")


def _check_partial(vbase: int, offset: int, size: int, limit: int) -> None:
    """The checks of HYP's *_partial paths: alignment, size (zero or wrapping), bounds."""
    if vbase % PAGE_SIZE or offset % PAGE_SIZE or size % PAGE_SIZE:
        raise HypError(Error.ARGUMENT_ALIGNMENT, f"vbase {vbase:#x} offset {offset:#x}")
    if size == 0 or offset + size - 1 > _U64 or vbase + size - 1 > _U64:
        raise HypError(Error.ARGUMENT_SIZE, f"size {size:#x}")
    if offset + size > limit:
        raise HypError(Error.ARGUMENT_SIZE, f"[{offset:#x}, +{size:#x}) is outside the extent")


class MemExtent(KernelObject):
    """A memory extent: a physical range, its attributes, its children and its mappings."""

    object_type = ObjectType.MEMEXTENT
    rights_type = MemextentRights

    def __init__(self, partition: object, memdb: MemDb, phys: PhysMap, name: str = "") -> None:
        super().__init__(name)
        self.partition = partition
        self.memdb = memdb
        self.phys = phys
        self.phys_base = 0
        self.size = 0
        self.attrs = ExtentAttrs(Access.RWX, MemType.ANY, ExtentType.BASIC)
        self.parent: MemExtent | None = None
        self.children: list[MemExtent] = []
        self.slots: list[MapSlot] = []

    @property
    def phys_end(self) -> int:
        """First physical address past the extent."""
        return self.phys_base + self.size

    @property
    def access(self) -> Access:
        """The extent's access rights."""
        return self.attrs.access

    @property
    def sparse(self) -> bool:
        """True for a SPARSE extent (partial mappings, donation)."""
        return self.attrs.ext_type is ExtentType.SPARSE

    def owned(self) -> list[tuple[int, int]]:
        """Returns the physical ranges this extent owns now."""
        return self.memdb.owned(self, self.phys_base, self.phys_end)

    # -- configuration and activation -------------------------------------------------------------

    def configure(self, phys_base: int, size: int, attrs_word: int) -> None:
        """Makes this a root extent over [phys_base, +size) (memextent_configure); INIT only."""
        self.require_init()
        if size == 0 or phys_base + size - 1 > _U64:
            raise HypError(Error.ARGUMENT_INVALID, f"[{phys_base:#x}, +{size:#x}) wraps")
        if phys_base % PAGE_SIZE or size % PAGE_SIZE:
            raise HypError(Error.ARGUMENT_ALIGNMENT, f"[{phys_base:#x}, +{size:#x})")
        self.attrs = ExtentAttrs.decode(attrs_word)
        self.phys_base, self.size, self.parent = phys_base, size, None

    def configure_derive(self, parent: MemExtent, offset: int, size: int,
                         attrs_word: int) -> None:
        """Makes this a child of ``parent`` over its [offset, +size)
        (memextent_configure_derive); INIT only."""
        self.require_init()
        if size == 0 or offset + size - 1 > _U64:
            raise HypError(Error.ARGUMENT_INVALID, f"[{offset:#x}, +{size:#x}) wraps")
        if parent.phys_base + offset > _U64 or offset >= parent.size \
                or offset + size > parent.size:
            raise HypError(Error.ADDR_INVALID, f"[{offset:#x}, +{size:#x}) is outside the parent")
        if offset % PAGE_SIZE or size % PAGE_SIZE:
            raise HypError(Error.ARGUMENT_ALIGNMENT, f"[{offset:#x}, +{size:#x})")
        attrs = ExtentAttrs.decode(attrs_word)
        if attrs.access & ~parent.access or (parent.attrs.memtype is not MemType.ANY
                                             and parent.attrs.memtype != attrs.memtype):
            raise HypError(Error.ARGUMENT_INVALID, "access or memtype exceeds the parent's")
        self.attrs = attrs
        self.phys_base, self.size, self.parent = parent.phys_base + offset, size, parent

    def activate(self) -> MemEffects:  # type: ignore[override]
        """Moves INIT -> ACTIVE, taking memory and inheriting mappings; returns the effects
        (FAILED, and nothing changed, if activation fails)."""
        if self.state is not ObjectState.INIT:
            raise HypError(Error.OBJECT_STATE, f"activate {self.describe()} in {self.state.name}")
        try:
            effects = self._take_memory()
        except HypError:
            self.state = ObjectState.FAILED
            raise
        self.state = ObjectState.ACTIVE
        return effects

    def _take_memory(self) -> MemEffects:
        parent = self.parent
        if parent is None:
            if self.size == 0:
                raise HypError(Error.OBJECT_CONFIG, "memextent was never configured")
            if not self.sparse:
                self.memdb.update(self.phys_base, self.size, self, self.partition)
            return ()
        transfer = not self.sparse or not parent.sparse
        if transfer and not self.memdb.owns(parent, self.phys_base, self.size):
            raise HypError(Error.MEMDB_NOT_OWNER, "the parent does not own the whole range")
        inherited = self._inherit(parent)
        watch = self._watch([parent], self.phys_base, self.phys_end)
        if transfer:
            self.memdb.update(self.phys_base, self.size, self, parent)
        for slot in inherited:
            slot.addrspace.slots.append(slot)
        self.slots = inherited
        parent.children.append(self)
        return ordered(watch.effects())

    def _inherit(self, parent: MemExtent) -> list[MapSlot]:
        """Returns copies of the parent's records over this range, access-limited."""
        slots = []
        for parent_slot in parent.slots:
            runs = parent_slot.records.runs(self.phys_base, self.phys_end)
            if not runs:
                continue
            if not self.sparse and (len(runs) != 1 or runs[0][:2] != (self.phys_base,
                                                                      self.phys_end)):
                raise HypError(Error.DENIED, "parent maps only part of a BASIC child")
            slot = MapSlot(self, parent_slot.addrspace)
            for start, end, rec in runs:
                slot.records.set(start, end, MapRecord(rec.ipa_delta,
                                                       rec.attrs.masked(self.access)))
            slots.append(slot)
        return slots

    def _watch(self, others: Iterable[MemExtent | None], start: int, end: int) -> Watch:
        """Watches every IPA window where this extent or ``others`` record [start, end)."""
        windows = [(slot.addrspace, i0, i1)
                   for extent in (self, *others) if extent is not None
                   for slot in extent.slots for i0, i1 in slot.ipa_windows(start, end)]
        return Watch(self.phys, windows)

    # -- donation ---------------------------------------------------------------------------------

    def donate_child(self, offset: int, size: int, reverse: bool) -> MemEffects:
        """Moves [offset, +size) of this extent from its parent (or partition) to it, or back
        with ``reverse`` (memextent_donate TO_CHILD / TO_PARENT, this extent being the child)."""
        _check_range(self.phys_base, offset, size, self.size)
        if not self.sparse:
            raise HypError(Error.MEMEXTENT_TYPE, "only SPARSE extents take donations")
        if self.parent is not None and not self.parent.sparse:
            raise HypError(Error.ARGUMENT_INVALID, "the parent extent is not SPARSE")
        donor: object = self.parent if self.parent is not None else self.partition
        recipient: object = self
        if reverse:
            donor, recipient = recipient, donor
        return self._move(donor, recipient, self.phys_base + offset, size, self.parent)

    def donate_sibling(self, to: MemExtent, offset: int, size: int) -> MemEffects:
        """Moves [offset, +size) of this extent to sibling ``to`` (memextent_donate TO_SIBLING)."""
        _check_range(self.phys_base, offset, size, self.size)
        phys = self.phys_base + offset
        if not (to.phys_base <= phys and phys + size <= to.phys_end):
            raise HypError(Error.ARGUMENT_INVALID, "the range is outside the recipient")
        if to is self or self.parent is None or self.parent is not to.parent:
            raise HypError(Error.ARGUMENT_INVALID, "the extents are not siblings")
        if not self.sparse:
            raise HypError(Error.MEMEXTENT_TYPE, "only SPARSE extents donate")
        if not to.sparse:
            raise HypError(Error.ARGUMENT_INVALID, "the recipient is not SPARSE")
        return self._move(self, to, phys, size, to)

    def _move(self, donor: object, recipient: object, phys: int, size: int,
              other: MemExtent | None) -> MemEffects:
        watch = self._watch([other], phys, phys + size)
        self.memdb.update(phys, size, recipient, donor)
        return ordered(watch.effects())

    # -- memextent_modify -------------------------------------------------------------------------

    def unmap_all(self) -> MemEffects:
        """Drops every mapping record of this extent (memextent_modify UNMAP_ALL)."""
        watch = self._watch([], self.phys_base, self.phys_end)
        self._drop_slots()
        return ordered(watch.effects())

    def _drop_slots(self) -> None:
        for slot in self.slots:
            slot.addrspace.slots.remove(slot)
        self.slots = []

    def check_clean(self, offset: int, size: int) -> None:
        """The checks of ZERO_RANGE / CACHE_*_RANGE: DENIED for DEVICE memory or without W."""
        if self.attrs.memtype is MemType.DEVICE or not self.access & Access.W:
            raise HypError(Error.DENIED, "cannot clean DEVICE or read-only memory")
        _check_range(self.phys_base, offset, size, self.size)

    def zero_range(self, offset: int, size: int) -> MemEffects:
        """Zeroes the pages of [offset, +size) this extent owns (memextent_modify ZERO_RANGE)."""
        self.check_clean(offset, size)
        start = self.phys_base + offset
        zeros = [ZeroRegion(backing.key, s - backing.phys_base, e - s)
                 for o0, o1 in self.memdb.owned(self, start, start + size)
                 for s, e, backing in self.phys.pieces(o0, o1)]
        return ordered(zeros)

    # -- mappings ---------------------------------------------------------------------------------

    def map(self, addrspace: AddrSpace, vbase: int, attrs: MapAttrs, *,
            partial: bool = False, offset: int = 0, size: int = 0) -> MemEffects:
        """Records a mapping of [offset, +size) (the whole extent unless ``partial``) at
        ``vbase`` of ``addrspace`` (addrspace_map); returns the effects."""
        offset, size = self._mapping_range(vbase, partial, offset, size)
        if attrs.user & ~self.access or attrs.kernel & ~self.access \
                or not memtype_allows(self.attrs.memtype, attrs.memtype):
            raise HypError(Error.ARGUMENT_INVALID, f"map_attrs {attrs.word():#x}")
        self._require_type(partial)
        if not self.sparse and vbase + size - 1 > _U64:
            raise HypError(Error.ADDR_OVERFLOW, f"vbase {vbase:#x} + size wraps")
        self._check_gpt(vbase, size)
        phys = self.phys_base + offset
        slot = self._slot_for(addrspace, phys, phys + size)
        check_ipa_range(vbase, size)
        check_no_overlap(addrspace, self, vbase, size, vbase - phys)
        watch = Watch(self.phys, [(addrspace, vbase, vbase + size)])
        if slot not in self.slots:
            self.slots.append(slot)
            addrspace.slots.append(slot)
        slot.records.set(phys, phys + size, MapRecord(vbase - phys, attrs))
        return ordered(watch.effects())

    def _mapping_range(self, vbase: int, partial: bool, offset: int,
                       size: int) -> tuple[int, int]:
        """Returns (offset, size) of a map / unmap / update_access after HYP's checks."""
        if partial:
            _check_partial(vbase, offset, size, self.size)
            return offset, size
        if vbase % PAGE_SIZE:
            raise HypError(Error.ARGUMENT_ALIGNMENT, f"vbase {vbase:#x}")
        return 0, self.size

    def _require_type(self, partial: bool) -> None:
        """PARTIAL operations exist only for SPARSE extents (HYP's event has no BASIC handler)."""
        if partial and not self.sparse:
            raise HypError(Error.MEMEXTENT_TYPE, "PARTIAL needs a SPARSE extent")

    def _check_gpt(self, vbase: int, size: int) -> None:
        """A SPARSE extent's records hold 48-bit vbases (HYP GPT_VBASE_BITS)."""
        if self.sparse and vbase + size - 1 >= GPT_VBASE_LIMIT:
            raise HypError(Error.ADDR_INVALID, f"vbase {vbase:#x} is beyond 2^48")

    def _slot_for(self, addrspace: AddrSpace, start: int, end: int) -> MapSlot:
        """Returns the slot a new record goes to; ERROR_MEMEXTENT_MAPPINGS_FULL if none."""
        if self.sparse:
            for slot in self.slots:
                if slot.addrspace is addrspace and not slot.records.runs(start, end):
                    return slot
        if len(self.slots) >= MAX_MAPS:
            raise HypError(Error.MEMEXTENT_MAPPINGS_FULL, f"{self.describe()} has 4 mappings")
        return MapSlot(self, addrspace)

    def _find(self, addrspace: AddrSpace, vbase: int, start: int, end: int) -> MapSlot:
        """Returns the slot whose records map exactly [start, end) at ``vbase``."""
        for slot in self.slots:
            cover = slot.records.cover(start, end)
            if slot.addrspace is addrspace and all(
                    rec is not None and rec.ipa_delta == vbase - start for _, _, rec in cover):
                return slot
        raise HypError(Error.ADDR_INVALID, f"no mapping at vbase {vbase:#x}")

    def unmap(self, addrspace: AddrSpace, vbase: int, *, partial: bool = False,
              offset: int = 0, size: int = 0) -> MemEffects:
        """Removes the mapping of [offset, +size) at ``vbase`` (addrspace_unmap)."""
        offset, size = self._mapping_range(vbase, partial, offset, size)
        self._require_type(partial)
        self._check_gpt(vbase, size)
        start = self.phys_base + offset
        slot = self._find(addrspace, vbase, start, start + size)
        watch = Watch(self.phys, [(addrspace, vbase, vbase + size)])
        slot.records.set(start, start + size, None)
        if not slot.records:
            self.slots.remove(slot)
            addrspace.slots.remove(slot)
        return ordered(watch.effects())

    def update_access(self, addrspace: AddrSpace, vbase: int, user: Access, kernel: Access, *,
                      partial: bool = False, offset: int = 0, size: int = 0) -> MemEffects:
        """Sets the user and kernel access of the mapping at ``vbase``
        (addrspace_update_access); memtypes are kept."""
        if user & ~self.access or kernel & ~self.access:
            raise HypError(Error.ARGUMENT_INVALID, "access exceeds the extent's")
        offset, size = self._mapping_range(vbase, partial, offset, size)
        self._require_type(partial)
        self._check_gpt(vbase, size)
        start = self.phys_base + offset
        slot = self._find(addrspace, vbase, start, start + size)
        watch = Watch(self.phys, [(addrspace, vbase, vbase + size)])
        for s, e, rec in slot.records.runs(start, start + size):
            attrs = MapAttrs(user, kernel, rec.attrs.memtype)
            slot.records.set(s, e, MapRecord(rec.ipa_delta, attrs))
        return ordered(watch.effects())

    # -- destruction ------------------------------------------------------------------------------

    def destroy(self) -> MemEffects:
        """Deactivates the extent when its last cap goes: its mappings are dropped and the pages
        it owns return to its parent (which maps them where it records them) or partition.
        ERROR_BUSY while it has children (in HYP they keep it alive)."""
        if self.children:
            raise HypError(Error.BUSY, f"{self.describe()} still has derived extents")
        if self.state is not ObjectState.ACTIVE:
            self.state = ObjectState.DESTROYING
            return ()
        watch = self._watch([self.parent], self.phys_base, self.phys_end)
        self._drop_slots()
        heir: object = self.parent if self.parent is not None else self.partition
        for start, end in self.owned():
            self.memdb.update(start, end - start, heir, self)
        if self.parent is not None:
            self.parent.children.remove(self)
        self.state = ObjectState.DESTROYING
        return ordered(watch.effects())
