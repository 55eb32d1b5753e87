"""The RM's memory translator against the real EL2 model: the memparcel table's operations, turned
into hypercalls by ``rm.el2_memory`` and made by the RM VM (0xFF) through ``El2.hypercall``, do
to every VM's stage 2 what LEND, SHARE, DONATE, ACCEPT, RELEASE and RECLAIM promise."""

from dataclasses import dataclass, field

import pytest

from gunyah_net.abi.errors import Error
from gunyah_net.abi.hypercalls import lookup
from gunyah_net.abi.rm import (
    MemAcceptFlag,
    MemReclaimFlag,
    MemReleaseFlag,
    MemRights,
    VmAuth,
    VmState,
)
from gunyah_net.hyp.el2 import El2
from gunyah_net.hyp.mem_effects import Access, MapRegion, ProtectRegion, UnmapRegion, ZeroRegion
from rm.el2_memory import (
    DONATE_TO_SIBLING,
    MAP_PARTIAL,
    El2CallFailed,
    HvcCall,
    MemoryPlanner,
    map_attrs,
)
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
from rm.memparcel import DonateToParcel, MapInto, RegionMap, UnmapFrom
from rm.memparcel_table import MemparcelTable

RM, HOST, GUEST, OTHER, CHILD = 0xFF, 3, 0x45, 0x46, 0x80
RAM = 0x8000_0000
MIB = 0x10_0000
RAM_SIZE = 16 * MIB
RW, RWX, R = MemRights.RW, MemRights.RWX, MemRights.R
DONE = MemAcceptFlag.DONE
RM_WINDOW = 0x1_0000_0000


@dataclass(frozen=True)
class _Vm:
    vm_state: VmState = VmState.RUNNING
    auth: VmAuth | None = VmAuth.NONE


class _Vms:
    def get(self, vmid):
        return _Vm() if vmid in (HOST, GUEST, OTHER, CHILD) else None


@dataclass
class Done:
    """What carrying out some operations did: the calls made and their memory effects."""

    calls: list[HvcCall] = field(default_factory=list)
    effects: list = field(default_factory=list)

    def numbers(self):
        return [c.number for c in self.calls]


class World:
    """An El2 whose host, guest and other VM have RAM the RM's way, the RM's planner (from
    El2.rm_caps and El2.vm_memory_caps) and the RM's memparcel table."""

    def __init__(self):
        self.el2 = El2()
        for vmid, name in ((RM, "rm"), (HOST, "host"), (GUEST, "guest"), (OTHER, "other"),
                           (CHILD, "vm-80")):
            self.el2.add_vm(vmid, name)
        self.memory = self.el2.memory
        self.grants = {vmid: self.el2.grant_ram(vmid, f"{vmid:x}.ram", RAM_SIZE, RAM)
                       for vmid in (HOST, GUEST, OTHER)}
        self.planner = MemoryPlanner(self.el2.rm_caps())
        self.table = MemparcelTable(_Vms())
        for vmid in self.grants:
            caps = self.el2.vm_memory_caps(vmid)
            self.planner.add_vm(vmid, caps["addrspace"], caps["memextent"])
            self.table.register_memory(vmid, [SglEntry(RAM, RAM_SIZE)])
        self.initial = {vmid: self.memory.view(vmid) for vmid in self.grants}

    def run(self, plan, done=None):
        """Drives one plan through El2.hypercall as the RM VM."""
        done = done or Done()
        try:
            call = next(plan)
            while True:
                done.calls.append(call)
                result = self.el2.hypercall(RM, 0, call.number, call.args)
                done.effects.extend(result.memory)
                call = plan.send(result.regs)
        except StopIteration:
            return done

    def carry_out(self, result):
        """Carries out a table result's EL2 operations, in order."""
        assert result.ok, result
        done = Done()
        for op in result.el2_ops:
            self.run(self.planner.plan(op), done)
        return done

    def create(self, owner, request):
        result = self.table.create(owner, request)
        return result.reply.handle, self.carry_out(result)

    def accept(self, vmid, handle, trans_type=1):
        result = self.table.accept(vmid, MemAccept(handle, 0, trans_type, DONE, 0))
        assert result.ok, result
        return result.reply.sgl, self.carry_out(result)

    def at(self, vmid, ipa):
        """Returns (file, file offset, rights) of what ``vmid`` has at ``ipa``, or None."""
        for start, size, placement in self.memory.view(vmid):
            if start <= ipa < start + size:
                return placement.backing, ipa + placement.delta, placement.rights
        return None


@pytest.fixture
def world():
    return World()


def lend(acl=((GUEST, RWX),), sgl=((RAM + MIB, 2 * MIB),), flags=0):
    return MemLend(0, flags, 0, tuple(AclEntry(*a) for a in acl), tuple(SglEntry(*s) for s in sgl))


# --- the hypercalls themselves --------------------------------------------------------------------


def test_a_lend_is_lookup_unmap_create_derive_activate_donate_with_the_abi_bit_layouts(world):
    handle, done = world.create(HOST, lend())
    assert [lookup(n).name for n in done.numbers()] == [
        "partition_create_memextent", "memextent_configure_derive", "object_activate",
        "addrspace_lookup", "addrspace_unmap", "memextent_donate"]
    create, derive, activate, look, unmap, donate = done.calls
    grant = world.grants[HOST]
    phys = grant.backing.phys_base + MIB
    new_cap = derive.args[0]
    assert derive.args == (new_cap, world.el2.rm_caps()["ddr"], 0, 1 << 44, 0x1_0007, 0)
    assert activate.args == (new_cap, 0)
    assert look.args == (grant.addrspace_cap, grant.memextent_cap, RAM + MIB, 2 * MIB, 0)
    assert unmap.args == (grant.addrspace_cap, grant.memextent_cap, RAM + MIB, MAP_PARTIAL,
                          phys, 2 * MIB)
    assert donate.args == (DONATE_TO_SIBLING, grant.memextent_cap, new_cap, phys, 2 * MIB, 0)
    assert world.planner.parcel(handle).extent == new_cap


def test_map_attrs_put_rights_in_user_and_kernel_access_and_the_memtype_in_bits_23_16():
    assert map_attrs(RWX) == 0x0F_0077
    assert map_attrs(R, attr=1) == 0x01_0044
    assert map_attrs(RW, attr=2) == 0x05_0066
    with pytest.raises(ValueError, match="attr 9"):
        map_attrs(RW, attr=9)


def test_hvc_call_of_fills_reserved_registers_and_refuses_wrong_inputs():
    assert HvcCall.of("object_activate", cap=5) == HvcCall(0x0C, (5, 0))
    with pytest.raises(ValueError, match="takes"):
        HvcCall.of("addrspace_lookup", addrspace=1, memextent=2, vbase=3)
    with pytest.raises(ValueError, match="no hypercall"):
        HvcCall.of("addrspace_map_all")


# --- LEND / ACCEPT / RELEASE / RECLAIM ------------------------------------------------------------


def test_lend_takes_the_pages_away_from_the_lender_only(world):
    _, done = world.create(HOST, lend())
    assert done.effects == [UnmapRegion(HOST, RAM + MIB, 2 * MIB)]
    assert world.at(HOST, RAM + MIB) is None and world.at(HOST, RAM + 3 * MIB - 1) is None
    assert world.at(HOST, RAM) == ("3.ram", 0, Access.RWX)
    assert world.at(HOST, RAM + 3 * MIB) == ("3.ram", 3 * MIB, Access.RWX)
    assert world.memory.view(GUEST) == world.initial[GUEST]


def test_accept_maps_the_lent_pages_at_the_ipa_the_table_chose(world):
    handle, _ = world.create(HOST, lend())
    sgl, done = world.accept(GUEST, handle)
    ipa = sgl[0].ipa
    assert done.effects == [MapRegion(GUEST, ipa, 2 * MIB, "3.ram", MIB, Access.RWX)]
    assert world.at(GUEST, ipa + MIB) == ("3.ram", 2 * MIB, Access.RWX)
    assert world.at(HOST, RAM + MIB) is None


def test_release_then_sanitizing_reclaim_zeroes_and_gives_the_lender_its_view_back(world):
    handle, _ = world.create(HOST, lend(acl=((GUEST, RW), (OTHER, R))))
    (guest_sgl, _), (other_sgl, _) = world.accept(GUEST, handle), world.accept(OTHER, handle)
    assert world.at(OTHER, other_sgl[0].ipa)[2] == Access.R
    done = world.carry_out(world.table.release(GUEST, MemRelease(handle,
                                                                 MemReleaseFlag.SANITIZE)))
    assert done.effects == [UnmapRegion(GUEST, guest_sgl[0].ipa, 2 * MIB)]
    done = world.carry_out(world.table.release(OTHER, MemRelease(handle)))
    assert done.effects == [UnmapRegion(OTHER, other_sgl[0].ipa, 2 * MIB)]
    done = world.carry_out(world.table.reclaim(HOST, MemReclaim(handle)))
    assert done.effects == [ZeroRegion("3.ram", MIB, 2 * MIB),
                            MapRegion(HOST, RAM + MIB, 2 * MIB, "3.ram", MIB, Access.RWX)]
    assert {vmid: world.memory.view(vmid) for vmid in world.grants} == world.initial
    assert world.planner.parcel(handle) is None


def test_reclaim_without_sanitize_zeroes_nothing(world):
    handle, _ = world.create(HOST, lend())
    world.accept(GUEST, handle)
    world.carry_out(world.table.release(GUEST, MemRelease(handle)))
    done = world.carry_out(world.table.reclaim(HOST, MemReclaim(handle)))
    assert not [e for e in done.effects if isinstance(e, ZeroRegion)]
    assert world.memory.view(HOST) == world.initial[HOST]


def test_sanitize_on_create_zeroes_the_lent_pages(world):
    _, done = world.create(HOST, lend(flags=1))
    assert ZeroRegion("3.ram", MIB, 2 * MIB) in done.effects


def test_a_vm_reset_releases_what_it_accepted_and_the_owner_can_reclaim(world):
    handle, _ = world.create(HOST, lend())
    sgl, _ = world.accept(GUEST, handle)
    done = world.carry_out(world.table.release_all_accepted(GUEST))
    assert done.effects == [UnmapRegion(GUEST, sgl[0].ipa, 2 * MIB)]
    world.carry_out(world.table.reclaim(HOST, MemReclaim(handle, MemReclaimFlag.SANITIZE)))
    assert world.memory.view(HOST) == world.initial[HOST]


def test_a_parcel_of_several_regions_round_trips(world):
    regions = ((RAM + 8 * MIB, MIB), (RAM, 0x3000), (RAM + 4 * MIB, 0x1000))
    handle, done = world.create(HOST, lend(sgl=regions))
    assert sorted(done.effects, key=lambda e: e.ipa) == [
        UnmapRegion(HOST, RAM, 0x3000), UnmapRegion(HOST, RAM + 4 * MIB, 0x1000),
        UnmapRegion(HOST, RAM + 8 * MIB, MIB)]
    sgl, _ = world.accept(GUEST, handle)
    for (owner_ipa, size), entry in zip(regions, sgl):
        assert world.at(GUEST, entry.ipa + size - 0x1000) == (
            "3.ram", owner_ipa - RAM + size - 0x1000, Access.RWX)
    world.carry_out(world.table.release(GUEST, MemRelease(handle)))
    world.carry_out(world.table.reclaim(HOST, MemReclaim(handle)))
    assert world.memory.view(HOST) == world.initial[HOST]


def test_lend_reclaim_cycles_reuse_one_parcel_extent(world):
    creates = 0
    for _ in range(3):
        handle, done = world.create(HOST, lend())
        creates += done.numbers().count(0x04)
        world.carry_out(world.table.reclaim(HOST, MemReclaim(handle)))
    assert creates == 1
    assert world.memory.view(HOST) == world.initial[HOST]


def test_a_child_vm_boots_from_a_lent_image_parcel_and_the_host_gets_it_back_zeroed(world):
    """The host-launch story: the host lends an image parcel to a child that has no RAM of its
    own, the RM writes into it through its window, the child's start maps it contiguously at
    its base, and after the child is gone the host reclaims it sanitized."""
    caps = world.el2.vm_memory_caps(CHILD)
    world.planner.add_vm(CHILD, caps["addrspace"], caps["memextent"])
    regions = ((RAM + 6 * MIB, MIB), (RAM + 2 * MIB, MIB))
    handle, _ = world.create(HOST, lend(acl=((CHILD, RWX),), sgl=regions))
    world.run(world.planner.map_into_rm(handle, RM_WINDOW))
    assert world.at(RM, RM_WINDOW + MIB) == ("3.ram", 2 * MIB, Access.RW)
    world.run(world.planner.unmap_from_rm(handle, RM_WINDOW))
    done = world.carry_out(world.table.auto_accept_for_start(CHILD, image=(handle, RAM)))
    assert done.effects == [MapRegion(CHILD, RAM, MIB, "3.ram", 6 * MIB, Access.RWX),
                            MapRegion(CHILD, RAM + MIB, MIB, "3.ram", 2 * MIB, Access.RWX)]
    world.carry_out(world.table.release_all_accepted(CHILD))
    assert world.memory.view(CHILD) == []
    done = world.carry_out(world.table.reclaim(HOST, MemReclaim(handle, MemReclaimFlag.SANITIZE)))
    assert [e for e in done.effects if isinstance(e, ZeroRegion)] == [
        ZeroRegion("3.ram", 6 * MIB, MIB), ZeroRegion("3.ram", 2 * MIB, MIB)]
    assert world.memory.view(HOST) == world.initial[HOST]


# --- SHARE ----------------------------------------------------------------------------------------


def share():
    return MemShare(0, 0, 0, (AclEntry(HOST, RW), AclEntry(GUEST, R)), (SglEntry(RAM, MIB),))


def test_share_keeps_the_owner_mapped_with_its_acl_rights(world):
    handle, done = world.create(HOST, share())
    assert done.effects == [ProtectRegion(HOST, RAM, MIB, Access.RW)]
    assert world.at(HOST, RAM) == ("3.ram", 0, Access.RW)
    sgl, done = world.accept(GUEST, handle, trans_type=2)
    assert done.effects == [MapRegion(GUEST, sgl[0].ipa, MIB, "3.ram", 0, Access.R)]
    assert world.at(HOST, RAM) == ("3.ram", 0, Access.RW)


def test_share_reclaim_gives_the_owner_full_rights_again(world):
    handle, _ = world.create(HOST, share())
    world.accept(GUEST, handle, trans_type=2)
    world.carry_out(world.table.release(GUEST, MemRelease(handle)))
    done = world.carry_out(world.table.reclaim(HOST, MemReclaim(handle)))
    assert done.effects == [ProtectRegion(HOST, RAM, MIB, Access.RWX)]
    assert {vmid: world.memory.view(vmid) for vmid in world.grants} == world.initial


# --- DONATE ---------------------------------------------------------------------------------------


def test_donate_moves_ownership_to_the_recipient_who_can_lend_it_on(world):
    request = MemDonate(0, 0, 0, (AclEntry(GUEST, RWX),), (SglEntry(RAM + MIB, MIB),))
    handle, done = world.create(HOST, request)
    assert done.effects == [UnmapRegion(HOST, RAM + MIB, MIB)]
    sgl, done = world.accept(GUEST, handle, trans_type=0)
    ipa = sgl[0].ipa
    assert done.effects == [MapRegion(GUEST, ipa, MIB, "3.ram", MIB, Access.RWX)]
    phys = world.grants[HOST].backing.phys_base + MIB
    assert world.memory.memdb.owns(world.grants[GUEST].memextent, phys, MIB)
    assert world.planner.parcel(handle) is None
    # the guest now lends the donated pages to the other VM: they are its own memory
    handle, done = world.create(GUEST, lend(acl=((OTHER, RW),), sgl=((ipa, MIB),)))
    assert done.effects == [UnmapRegion(GUEST, ipa, MIB)]
    sgl, done = world.accept(OTHER, handle)
    assert done.effects == [MapRegion(OTHER, sgl[0].ipa, MIB, "3.ram", MIB, Access.RW)]


# --- the RM's own window --------------------------------------------------------------------------


def test_map_into_rm_maps_the_regions_contiguously_rw_and_unmap_takes_them_away(world):
    handle, _ = world.create(HOST, lend(sgl=((RAM + 4 * MIB, MIB), (RAM, MIB))))
    done = world.run(world.planner.map_into_rm(handle, RM_WINDOW))
    assert done.effects == [MapRegion(RM, RM_WINDOW, MIB, "3.ram", 4 * MIB, Access.RW),
                            MapRegion(RM, RM_WINDOW + MIB, MIB, "3.ram", 0, Access.RW)]
    done = world.run(world.planner.unmap_from_rm(handle, RM_WINDOW))
    assert done.effects == [UnmapRegion(RM, RM_WINDOW, MIB), UnmapRegion(RM, RM_WINDOW + MIB, MIB)]
    assert world.memory.view(RM) == []


def test_reclaim_takes_a_forgotten_rm_window_away(world):
    handle, _ = world.create(HOST, lend())
    world.run(world.planner.map_into_rm(handle, RM_WINDOW))
    done = world.carry_out(world.table.reclaim(HOST, MemReclaim(handle)))
    assert UnmapRegion(RM, RM_WINDOW, 2 * MIB) in done.effects
    assert world.memory.view(RM) == []


# --- failures -------------------------------------------------------------------------------------


def test_a_hypercall_error_stops_the_plan_with_its_gunyah_error(world):
    outside = SglEntry(RAM + RAM_SIZE, MIB)
    with pytest.raises(El2CallFailed) as failure:
        world.run(world.planner.plan(DonateToParcel(HOST, 7, (outside,))))
    assert failure.value.number == 0x5A and failure.value.error is Error.ADDR_INVALID
    assert "addrspace_lookup" in str(failure.value)


def test_operations_naming_unknown_vms_or_parcels_are_precise_errors(world):
    maps = (RegionMap(RAM, RAM, MIB),)
    with pytest.raises(ValueError, match="vmid 0x77 is unknown"):
        world.run(world.planner.plan(UnmapFrom(0x77, 1, maps)))
    with pytest.raises(ValueError, match="parcel 0x9 has no memextent"):
        world.run(world.planner.plan(MapInto(GUEST, 9, maps, RW, 0)))
    world.planner.forget_vm(GUEST)
    with pytest.raises(ValueError, match="vmid 0x45 is unknown"):
        world.run(world.planner.plan(UnmapFrom(GUEST, 1, maps)))
    with pytest.raises(TypeError):
        world.planner.plan(object())
    with pytest.raises(ValueError, match="lacks \\['cspace'\\]"):
        MemoryPlanner({"partition": 1, "ddr": 2, "addrspace": 3})
