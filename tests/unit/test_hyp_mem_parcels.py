"""Memory ownership scenarios as the RM drives them: lend, share, donate, release, reclaim.

The RM's QEMU platform code (RM ``platform/qemu/src/vm_memory.c``, ``memparcel.c``) keeps one
SPARSE "owned" extent per VM and one SPARSE extent per parcel, all children of one DDR extent,
and moves pages between them with memextent_donate TO_SIBLING. ``Memory.initial_ram`` builds
the VM side of that; these tests add parcels and check ownership and the effects each VM's
worker receives.
"""

from __future__ import annotations

import gc

import pytest

from gunyah_net.abi.errors import Error, HypError
from gunyah_net.hyp.cspace import Cspace
from gunyah_net.hyp.mem_attrs import NORMAL_WB, ExtentAttrs, ExtentType, MapAttrs, MemType
from gunyah_net.hyp.mem_effects import (Access, MapRegion, Placement, ProtectRegion,
                                        UnmapRegion, ZeroRegion, ordered)
from gunyah_net.hyp.memdb import PHYS_BASE, PHYS_LIMIT
from gunyah_net.hyp.memextent import MemExtent
from gunyah_net.hyp.memory import Memory
from gunyah_net.hyp.partition import Partition

PAGE = 0x1000
OWNER, BORROWER = 0x81, 0x82
RAM_IPA = 0x8000_0000
PARCEL_IPA = 0x9000_0000
SPARSE_RWX = ExtentAttrs(Access.RWX, MemType.ANY, ExtentType.SPARSE).word()
RW = MapAttrs(Access.RW, Access.RW, NORMAL_WB)
RWX = MapAttrs(Access.RWX, Access.RWX, NORMAL_WB)


class Host:
    """Two VMs with 16 pages of RAM each, as ``up`` sets them up."""

    def __init__(self) -> None:
        self.partition = Partition()
        self.partition.activate()
        self.root = Cspace(id_base=0, max_caps=4096)
        self.root.activate()
        self.memory = Memory(self.partition)
        self.owner = self.memory.initial_ram(OWNER, "owner.ram", RAM_IPA, 16 * PAGE, self.root)
        self.borrower = self.memory.initial_ram(BORROWER, "borrower.ram", RAM_IPA, 16 * PAGE,
                                                self.root)
        self.ddr, _ = self.memory.ddr_extent(self.root)
        self.phys = self.owner.backing.phys_base

    def parcel(self) -> MemExtent:
        """A new parcel extent: a SPARSE sibling of the VMs' owned extents."""
        extent, _ = self.memory.create_memextent(self.root, "parcel")
        extent.configure_derive(self.ddr, 0, PHYS_LIMIT, SPARSE_RWX)
        assert extent.activate() == ()
        return extent


@pytest.fixture
def host() -> Host:
    return Host()


def test_initial_ram_maps_the_file_and_the_vm_owns_it(host):
    assert host.owner.effects == (MapRegion(OWNER, RAM_IPA, 16 * PAGE, "owner.ram", 0,
                                            Access.RWX),)
    assert host.memory.view(OWNER) == [(RAM_IPA, 16 * PAGE,
                                        Placement("owner.ram", -RAM_IPA, Access.RWX))]
    assert host.memory.memdb.owned(host.owner.memextent, 0, PHYS_LIMIT) == [
        (host.phys, host.phys + 16 * PAGE)]
    assert host.owner.addrspace.lookup(RAM_IPA + PAGE, PAGE) == (host.phys + PAGE, PAGE, RWX)
    assert host.borrower.backing.phys_base >= host.owner.backing.phys_end + PAGE


def test_lend_takes_the_pages_from_the_owner_and_the_borrower_maps_the_same_file(host):
    parcel = host.parcel()
    lent = host.owner.memextent.donate_sibling(parcel, host.phys + 4 * PAGE, 2 * PAGE)
    assert lent == (ProtectRegion(OWNER, RAM_IPA + 4 * PAGE, 2 * PAGE, Access.NONE),)
    with pytest.raises(HypError) as info:
        host.owner.addrspace.lookup(RAM_IPA + 4 * PAGE, PAGE)
    assert info.value.code is Error.ADDR_INVALID
    accepted = parcel.map(host.borrower.addrspace, PARCEL_IPA, RW, partial=True,
                          offset=host.phys + 4 * PAGE, size=2 * PAGE)
    assert accepted == (MapRegion(BORROWER, PARCEL_IPA, 2 * PAGE, "owner.ram", 4 * PAGE,
                                  Access.RW),)
    assert host.memory.view(OWNER) == [
        (RAM_IPA, 4 * PAGE, Placement("owner.ram", -RAM_IPA, Access.RWX)),
        (RAM_IPA + 4 * PAGE, 2 * PAGE, Placement("owner.ram", -RAM_IPA, Access.NONE)),
        (RAM_IPA + 6 * PAGE, 10 * PAGE, Placement("owner.ram", -RAM_IPA, Access.RWX))]


def test_share_keeps_the_owner_mapped_and_maps_the_borrower(host):
    parcel = host.parcel()
    phys = host.phys + 8 * PAGE
    # The RM first gives the parcel extent the owner's mapping, then donates (memparcel.c).
    assert parcel.map(host.owner.addrspace, RAM_IPA + 8 * PAGE, RWX, partial=True,
                      offset=phys, size=4 * PAGE) == ()
    assert host.owner.memextent.donate_sibling(parcel, phys, 4 * PAGE) == ()
    assert parcel.map(host.borrower.addrspace, PARCEL_IPA, RW, partial=True, offset=phys,
                      size=4 * PAGE) == (
        MapRegion(BORROWER, PARCEL_IPA, 4 * PAGE, "owner.ram", 8 * PAGE, Access.RW),)
    # Stage 2 is one contiguous RWX run over pages 8..15, whoever owns which part of it.
    assert host.owner.addrspace.lookup(RAM_IPA + 8 * PAGE, 16 * PAGE) == (phys, 8 * PAGE, RWX)
    assert host.memory.memdb.owns(parcel, phys, 4 * PAGE)


def test_release_sanitize_and_reclaim_restore_the_owner_with_zeroed_pages(host):
    parcel = host.parcel()
    phys = host.phys + 2 * PAGE
    host.owner.memextent.donate_sibling(parcel, phys, 3 * PAGE)
    parcel.map(host.borrower.addrspace, PARCEL_IPA, RW, partial=True, offset=phys,
               size=3 * PAGE)
    released = parcel.unmap(host.borrower.addrspace, PARCEL_IPA, partial=True, offset=phys,
                            size=3 * PAGE)
    assert released == (UnmapRegion(BORROWER, PARCEL_IPA, 3 * PAGE),)
    assert parcel.zero_range(phys, 3 * PAGE) == (ZeroRegion("owner.ram", 2 * PAGE, 3 * PAGE),)
    reclaimed = parcel.donate_sibling(host.owner.memextent, phys, 3 * PAGE)
    assert reclaimed == (ProtectRegion(OWNER, RAM_IPA + 2 * PAGE, 3 * PAGE, Access.RWX),)
    assert host.memory.view(OWNER) == [(RAM_IPA, 16 * PAGE,
                                        Placement("owner.ram", -RAM_IPA, Access.RWX))]
    assert host.memory.view(BORROWER) == [(RAM_IPA, 16 * PAGE,
                                           Placement("borrower.ram", -RAM_IPA, Access.RWX))]


def test_zero_range_zeroes_only_the_pages_the_extent_owns(host):
    parcel = host.parcel()
    host.owner.memextent.donate_sibling(parcel, host.phys + PAGE, PAGE)
    host.owner.memextent.donate_sibling(parcel, host.phys + 3 * PAGE, 2 * PAGE)
    assert parcel.zero_range(host.phys, 8 * PAGE) == (
        ZeroRegion("owner.ram", PAGE, PAGE), ZeroRegion("owner.ram", 3 * PAGE, 2 * PAGE))


def test_a_reclaim_under_an_accepting_borrower_cuts_the_borrower_off(host):
    # RM refuses this with MEM_INUSE; EL2 itself lets the owner take its pages back.
    parcel = host.parcel()
    phys = host.phys
    host.owner.memextent.donate_sibling(parcel, phys, PAGE)
    parcel.map(host.borrower.addrspace, PARCEL_IPA, RW, partial=True, offset=phys, size=PAGE)
    effects = parcel.donate_sibling(host.owner.memextent, phys, PAGE)
    assert effects == (ProtectRegion(BORROWER, PARCEL_IPA, PAGE, Access.NONE),
                       ProtectRegion(OWNER, RAM_IPA, PAGE, Access.RWX))


def test_donate_moves_ownership_into_the_recipients_owned_extent(host):
    parcel = host.parcel()
    phys = host.phys + 12 * PAGE
    host.owner.memextent.donate_sibling(parcel, phys, 4 * PAGE)
    recipient = host.borrower.memextent
    assert recipient.map(host.borrower.addrspace, PARCEL_IPA, RWX, partial=True, offset=phys,
                         size=4 * PAGE) == (
        MapRegion(BORROWER, PARCEL_IPA, 4 * PAGE, "owner.ram", 12 * PAGE, Access.NONE),)
    assert parcel.donate_sibling(recipient, phys, 4 * PAGE) == (
        ProtectRegion(BORROWER, PARCEL_IPA, 4 * PAGE, Access.RWX),)
    assert host.memory.memdb.owned(recipient, phys, phys + 4 * PAGE) == [(phys, phys + 4 * PAGE)]
    assert host.borrower.addrspace.lookup(PARCEL_IPA, 4 * PAGE)[0] == phys


def test_a_derived_parcel_inherits_the_owner_mapping_until_unmap_all(host):
    owned = host.owner.memextent
    child, _ = host.memory.create_memextent(host.root, "child parcel")
    child.configure_derive(owned, host.phys, 4 * PAGE, SPARSE_RWX)
    assert child.activate() == ()
    assert owned.children == [child]
    assert child.donate_child(0, 4 * PAGE, reverse=False) == ()
    assert child.unmap_all() == (ProtectRegion(OWNER, RAM_IPA, 4 * PAGE, Access.NONE),)
    assert child.donate_child(PAGE, PAGE, reverse=True) == (
        ProtectRegion(OWNER, RAM_IPA + PAGE, PAGE, Access.RWX),)
    with pytest.raises(HypError) as info:
        owned.destroy()
    assert info.value.code is Error.BUSY


def test_a_narrower_basic_child_protects_its_pages_and_destroy_restores_them(host):
    owned = host.owner.memextent
    child, _ = host.memory.create_memextent(host.root, "read-only window")
    child.configure_derive(owned, host.phys + 4 * PAGE, 2 * PAGE,
                           ExtentAttrs(Access.R, MemType.ANY, ExtentType.BASIC).word())
    assert child.activate() == (ProtectRegion(OWNER, RAM_IPA + 4 * PAGE, 2 * PAGE, Access.R),)
    assert host.memory.destroy_memextent(child) == (
        ProtectRegion(OWNER, RAM_IPA + 4 * PAGE, 2 * PAGE, Access.RWX),)
    assert child not in owned.children
    assert host.memory.memdb.owns(owned, host.phys, 16 * PAGE)


def test_destroying_a_mapped_parcel_returns_its_pages_to_the_parent(host):
    owned = host.owner.memextent
    child, _ = host.memory.create_memextent(host.root, "child parcel")
    child.configure_derive(owned, host.phys, 2 * PAGE, SPARSE_RWX)
    child.activate()
    child.unmap_all()
    child.donate_child(0, 2 * PAGE, reverse=False)
    child.map(host.borrower.addrspace, PARCEL_IPA, RW, partial=True, offset=0, size=2 * PAGE)
    assert host.memory.destroy_memextent(child) == (
        UnmapRegion(BORROWER, PARCEL_IPA, 2 * PAGE),
        ProtectRegion(OWNER, RAM_IPA, 2 * PAGE, Access.RWX))


def test_initial_shm_maps_one_file_into_several_vms(host):
    grant = host.memory.initial_shm("ring.shm", 4 * PAGE, [(OWNER, 0x4000_0000),
                                                             (BORROWER, 0x4000_0000)], host.root)
    assert grant.effects == (
        MapRegion(OWNER, 0x4000_0000, 4 * PAGE, "ring.shm", 0, Access.RW),
        MapRegion(BORROWER, 0x4000_0000, 4 * PAGE, "ring.shm", 0, Access.RW))
    assert host.memory.memdb.owns(grant.memextent, grant.backing.phys_base, 4 * PAGE)


def test_initial_shm_beyond_four_vms_is_mappings_full(host):
    for vmid in (0x83, 0x84, 0x85):
        host.memory.initial_ram(vmid, f"{vmid}.ram", RAM_IPA, PAGE, host.root)
    with pytest.raises(HypError) as info:
        host.memory.initial_shm("big.shm", PAGE, [(v, 0x4000_0000) for v in range(0x81, 0x86)],
                                host.root)
    assert info.value.code is Error.MEMEXTENT_MAPPINGS_FULL
    assert host.memory.phys.get("big.shm") is None
    with pytest.raises(ValueError):
        host.memory.initial_shm("lost.shm", PAGE, [(0x99, 0x4000_0000)], host.root)


def test_backing_files_are_laid_out_1gib_apart_with_holes(host):
    layout = [(b.key, b.phys_base) for b in host.memory.phys.backings()]
    assert layout == [("owner.ram", PHYS_BASE), ("borrower.ram", PHYS_BASE + (1 << 30))]
    with pytest.raises(ValueError):
        host.memory.add_backing("owner.ram", PAGE)
    assert host.memory.memdb.owner(host.owner.backing.phys_end) is None


def test_memory_of_a_partition_is_its_one_live_model(host):
    assert Memory.of(host.partition) is host.memory
    with pytest.raises(ValueError):
        Memory(host.partition)
    other = Partition("other")
    with pytest.raises(HypError) as info:
        Memory.of(other)
    assert info.value.code is Error.UNIMPLEMENTED
    model = Memory(other)
    assert Memory.of(other) is model
    del model
    gc.collect()
    with pytest.raises(HypError):
        Memory.of(other)


def test_effects_are_ordered_unmap_protect_zero_map_and_merged():
    effects = [MapRegion(1, 0x3000, PAGE, "f", 0x3000, Access.RW),
               ZeroRegion("f", 0, PAGE),
               UnmapRegion(1, 0x1000, PAGE),
               MapRegion(1, 0x4000, PAGE, "f", 0x4000, Access.RW),
               ProtectRegion(2, 0, PAGE, Access.NONE),
               UnmapRegion(1, 0x2000, PAGE),
               ZeroRegion("f", PAGE, PAGE),
               MapRegion(1, 0x5000, PAGE, "g", 0x5000, Access.RW)]
    assert ordered(effects) == (UnmapRegion(1, 0x1000, 2 * PAGE),
                                ProtectRegion(2, 0, PAGE, Access.NONE),
                                ZeroRegion("f", 0, 2 * PAGE),
                                MapRegion(1, 0x3000, 2 * PAGE, "f", 0x3000, Access.RW),
                                MapRegion(1, 0x5000, PAGE, "g", 0x5000, Access.RW))
