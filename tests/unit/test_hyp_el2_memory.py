"""El2 with memory: the RM VM's caps, VM RAM and shared memory, and memory hypercalls through
``El2.hypercall`` (raw registers in; registers and memory effects out)."""

from __future__ import annotations

import pytest

from gunyah_net.abi.errors import Error, HypError, to_x0
from gunyah_net.abi.hypercalls import BY_NAME
from gunyah_net.abi.platform import RAM_BASE
from gunyah_net.abi.rights import CspaceRights, PartitionRights
from gunyah_net.hyp.addrspace import AddrSpace
from gunyah_net.hyp.cspace import Cspace
from gunyah_net.hyp.effects import AssertVirq
from gunyah_net.hyp.el2 import El2
from gunyah_net.hyp.mem_attrs import NORMAL_WB
from gunyah_net.hyp.mem_effects import (Access, MapRegion, Placement, ProtectRegion, UnmapRegion,
                                        ZeroRegion)
from gunyah_net.hyp.memextent import MemExtent
from gunyah_net.hyp.partition import Partition

RM, HOST, CHILD = 0xFF, 0x81, 0x82
PAGE = 0x1000
RAM = 16 * PAGE
HOST_RAM, CHILD_RAM, SHM = "/dev/shm/gn/host.ram", "/dev/shm/gn/child.ram", "/dev/shm/gn/r.shm"
N = {name: spec.number for name, spec in BY_NAME.items()}
SPARSE_RWX = 7 | 1 << 16
PARTIAL, NOSYNC, TO_SIBLING, ZERO_RANGE = 1, 1 << 31, 2, 1
MAP_RW = 6 | 6 << 4 | NORMAL_WB << 16


@pytest.fixture
def el2() -> El2:
    el2 = El2()
    el2.add_vm(RM, "rm")
    el2.add_vm(HOST, "host")
    el2.add_vm(CHILD, "child")
    el2.grant_ram(HOST, HOST_RAM, RAM)
    return el2


def rm_hvc(el2: El2, name: str, *args: int):
    return el2.hypercall(RM, 0, N[name], list(args))


def ok(el2: El2, name: str, *args: int):
    result = rm_hvc(el2, name, *args)
    assert result.regs[0] == 0, (name, result.regs)
    return result


def phys(el2: El2, path: str) -> int:
    backing = el2.memory.phys.get(path)
    assert backing is not None
    return backing.phys_base


def test_the_rm_vm_holds_partition_ddr_addrspace_and_cspace_caps(el2):
    caps = el2.rm_caps()
    assert set(caps) == {"partition", "ddr", "addrspace", "cspace"}
    rm = el2.vm(RM).cspace
    rm.lookup(caps["partition"], Partition, PartitionRights.OBJECT_CREATE | PartitionRights.DONATE)
    rm.lookup(caps["cspace"], Cspace, CspaceRights.CAP_CREATE)
    assert rm.lookup(caps["addrspace"], AddrSpace, 0).vmid == RM
    ddr = rm.lookup(caps["ddr"], MemExtent, 0)
    assert (ddr.phys_base, ddr.size, ddr.parent) == (0, 1 << 44, None)
    assert el2.memory.view(RM) == [], "the RM VM has an address space but no RAM"


def test_vm_ram_is_mapped_rwx_at_ram_base_and_its_caps_are_in_the_rm_cspace(el2):
    assert el2.memory.view(HOST) == [(RAM_BASE, RAM, Placement(HOST_RAM, -RAM_BASE, Access.RWX))]
    caps = el2.vm_memory_caps(HOST)
    rm = el2.vm(RM).cspace
    assert rm.lookup(caps["addrspace"], AddrSpace, 0).vmid == HOST
    owned = rm.lookup(caps["memextent"], MemExtent, 0)
    assert owned.owned() == [(phys(el2, HOST_RAM), phys(el2, HOST_RAM) + RAM)]
    assert el2.vm_memory_caps(HOST) == caps, "the same objects every time"


def test_a_vm_created_at_run_time_gets_an_empty_address_space_and_owned_extent(el2):
    caps = el2.vm_memory_caps(CHILD)
    assert el2.memory.view(CHILD) == []
    assert el2.vm(RM).cspace.lookup(caps["memextent"], MemExtent, 0).owned() == []
    with pytest.raises(ValueError, match="no VM with vmid 0x90"):
        el2.vm_memory_caps(0x90)


def test_memory_needs_the_rm_vm():
    el2 = El2()
    el2.add_vm(HOST, "host")
    with pytest.raises(ValueError, match="needs the RM VM"):
        el2.grant_ram(HOST, HOST_RAM, RAM)
    with pytest.raises(ValueError, match="no RM VM"):
        el2.rm_caps()


def test_shm_is_mapped_into_each_vm_at_its_ipa(el2):
    grant = el2.grant_shm(SHM, 4 * PAGE, [(HOST, 0x4000_0000), (CHILD, 0x5000_0000)])
    assert {e.vmid for e in grant.effects if isinstance(e, MapRegion)} == {HOST, CHILD}
    assert el2.memory.view(CHILD) == [(0x5000_0000, 4 * PAGE,
                                       Placement(SHM, -0x5000_0000, Access.RWX))]


def lend_to_child(el2: El2, pages: int) -> tuple[int, int]:
    """The RM's lend: a parcel extent takes ``pages`` host pages (TO_SIBLING) and is mapped
    into the child at 0x9000_0000; returns (parcel cap, phys of the first page)."""
    caps, host, child = el2.rm_caps(), el2.vm_memory_caps(HOST), el2.vm_memory_caps(CHILD)
    parcel = ok(el2, "partition_create_memextent", caps["partition"], caps["cspace"], 0).regs[1]
    ok(el2, "memextent_configure_derive", parcel, caps["ddr"], 0, 1 << 44, SPARSE_RWX, 0)
    ok(el2, "object_activate", parcel, 0)
    base = phys(el2, HOST_RAM)
    donated = ok(el2, "memextent_donate", TO_SIBLING, host["memextent"], parcel, base,
                 pages * PAGE, 0)
    assert donated.memory == (ProtectRegion(HOST, RAM_BASE, pages * PAGE, Access.NONE),)
    mapped = ok(el2, "addrspace_map", child["addrspace"], parcel, 0x9000_0000, MAP_RW, PARTIAL,
                base, pages * PAGE)
    assert mapped.memory == (MapRegion(CHILD, 0x9000_0000, pages * PAGE, HOST_RAM, 0,
                                       Access.RW),)
    assert mapped.effects == ()
    return parcel, base


def test_memory_hypercalls_dispatch_through_el2_and_return_memory_effects(el2):
    parcel, base = lend_to_child(el2, 2)
    child = el2.vm_memory_caps(CHILD)["addrspace"]
    ro = ok(el2, "addrspace_update_access", child, parcel, 0x9000_1000, 4 | 4 << 4, PARTIAL,
            base + PAGE, PAGE)
    assert ro.memory == (ProtectRegion(CHILD, 0x9000_1000, PAGE, Access.R),)
    gone = ok(el2, "addrspace_unmap", child, parcel, 0x9000_0000, PARTIAL, base, PAGE)
    assert gone.memory == (UnmapRegion(CHILD, 0x9000_0000, PAGE),)
    zero = ok(el2, "memextent_modify", parcel, ZERO_RANGE | NOSYNC, base, 2 * PAGE)
    assert zero.memory == (ZeroRegion(HOST_RAM, 0, 2 * PAGE),)
    assert el2.memory.view(CHILD) == [(0x9000_1000, PAGE,
                                       Placement(HOST_RAM, -0x9000_0000, Access.R))]


def test_a_guest_cannot_use_the_rms_caps(el2):
    caps = el2.vm_memory_caps(HOST)
    result = el2.hypercall(HOST, 0, N["addrspace_unmap"],
                           [caps["addrspace"], caps["memextent"], RAM_BASE, 0, 0, 0])
    assert result.regs[0] != 0 and result.memory == ()
    assert el2.memory.view(HOST)[0][:2] == (RAM_BASE, RAM)


def test_a_failed_memory_call_has_no_effects(el2):
    caps = el2.vm_memory_caps(HOST)
    result = rm_hvc(el2, "addrspace_unmap", caps["addrspace"], caps["memextent"], RAM_BASE + 1,
                    PARTIAL, phys(el2, HOST_RAM), PAGE)
    assert (result.regs, result.memory, result.effects) == ([to_x0(Error.ARGUMENT_ALIGNMENT)],
                                                            (), ())


def test_virq_effects_and_memory_effects_are_kept_apart(el2):
    tx, _ = el2.provision_doorbell(HOST, CHILD, 40)
    sent = el2.hypercall(HOST, 0, N["doorbell_send"], [tx, 1, 0])
    assert (sent.effects, sent.memory) == ((AssertVirq(CHILD, 40),), ())


def test_activating_an_extent_that_takes_mapped_pages_returns_its_memory_effects(el2):
    caps, host = el2.rm_caps(), el2.vm_memory_caps(HOST)
    child = ok(el2, "partition_create_memextent", caps["partition"], caps["cspace"], 0).regs[1]
    read_only_basic = 4
    ok(el2, "memextent_configure_derive", child, host["memextent"], phys(el2, HOST_RAM), PAGE,
       read_only_basic, 0)
    activated = ok(el2, "object_activate", child, 0)
    assert activated.memory == (ProtectRegion(HOST, RAM_BASE, PAGE, Access.R),)


def test_removing_a_vm_drops_its_memory_objects_and_frees_its_vmid(el2):
    parcel, base = lend_to_child(el2, 2)
    old = el2.vm_memory_caps(CHILD)
    assert el2.remove_vm(CHILD) == ()
    rm = el2.vm(RM).cspace
    for cap in old.values():
        with pytest.raises(HypError) as err:
            rm.lookup(cap, AddrSpace if cap == old["addrspace"] else MemExtent, 0)
        assert err.value.code is Error.CSPACE_CAP_NULL
    assert el2.memory.view(CHILD) == []
    assert rm.lookup(parcel, MemExtent, 0).owned() == [(base, base + 2 * PAGE)], "still lent"
    el2.add_vm(CHILD, "child again")
    assert el2.memory.view(CHILD) == [] and set(el2.vm_memory_caps(CHILD)) == {"addrspace",
                                                                              "memextent"}
    child = el2.vm_memory_caps(CHILD)["addrspace"]
    again = ok(el2, "addrspace_map", child, parcel, 0x9000_0000, MAP_RW, PARTIAL, base, PAGE)
    assert again.memory == (MapRegion(CHILD, 0x9000_0000, PAGE, HOST_RAM, 0, Access.RW),)
