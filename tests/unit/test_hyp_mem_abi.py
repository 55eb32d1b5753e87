"""Memory hypercalls through raw registers: every error path, in HYP's order, and the outputs.

A caller VM (the RM, vmid 0xFF) holds a partition cap (ObjectCreate, Donate) and a cap to its
own cspace (CapCreate), creates extents and address spaces with partition_create_*, and drives
every memory call by the argument names of the ABI table. The standard world:

- ``ddr``: root SPARSE extent over [0, 2^44), RWX; the first 8 pages of file ``a.ram`` donated
  partition -> ddr -> ``a`` (a SPARSE child), mapped partially at IPA 0x8000_0000 of vmid 0x81;
- ``b``: a SPARSE sibling of ``a`` that owns nothing; ``ro``: a read-only SPARSE sibling;
- ``basic``: a root BASIC extent over pages 8..11 of ``a.ram``;
- address spaces of vmids 0x81 and 0x82.
"""

from __future__ import annotations

import pytest

from gunyah_net.abi.errors import Error, HypError
from gunyah_net.abi.hypercalls import BY_NAME
from gunyah_net.abi.rights import (AddrspaceRights, CspaceRights, MemextentRights,
                                   PartitionRights)
from gunyah_net.hyp.cspace import Cspace
from gunyah_net.hyp.hypercalls import SHIMS, Call
from gunyah_net.hyp.mem_attrs import NORMAL_WB
from gunyah_net.hyp.mem_effects import Access, MapRegion, ProtectRegion, UnmapRegion, ZeroRegion
from gunyah_net.hyp.mem_hypercalls import MEM_SHIMS
from gunyah_net.hyp.memdb import PHYS_LIMIT
from gunyah_net.hyp.memory import Memory
from gunyah_net.hyp.partition import Partition
from gunyah_net.hyp.vic import Vic
from gunyah_net.hyp.vm import Vm

PAGE = 0x1000
RAM_IPA = 0x8000_0000
SPARSE, RWX, RW, R = 1 << 16, 7, 6, 4
MAP_RWX = RWX | RWX << 4 | NORMAL_WB << 16
MAP_RW = RW | RW << 4 | NORMAL_WB << 16
PARTIAL, NOSYNC = 1, 1 << 31
TO_CHILD, TO_PARENT, TO_SIBLING = 0, 1, 2
UNMAP_ALL, ZERO_RANGE, CLEAN_RANGE, SYNC_ALL = 0, 1, 2, 255


class World:
    """The caller VM, its caps, and the standard objects."""

    def __init__(self) -> None:
        self.partition = Partition()
        self.partition.activate()
        root = Cspace(id_base=0, max_caps=4096, name="root")
        root.activate()
        self.memory = Memory(self.partition)
        cspace, cspace_master = self.partition.create_cspace(root, id_base=0xFF << 16)
        cspace.configure(1024)
        cspace.activate()
        self.vm = Vm(0xFF, "rm", cspace, Vic(0xFF), 0)
        part_master = root.create_master_cap(self.partition)
        self.part = cspace.copy_cap_from(root, part_master,
                                         PartitionRights.OBJECT_CREATE | PartitionRights.DONATE)
        self.cs = cspace.copy_cap_from(root, cspace_master,
                                       CspaceRights.CAP_CREATE | CspaceRights.CAP_DELETE)
        self.ram = self.memory.add_backing("a.ram", 16 * PAGE)
        self.phys = self.ram.phys_base
        self.ddr = self.extent(0, PHYS_LIMIT, SPARSE | RWX)
        self.a = self.extent(0, PHYS_LIMIT, SPARSE | RWX, parent=self.ddr)
        self.b = self.extent(0, PHYS_LIMIT, SPARSE | RWX, parent=self.ddr)
        self.ro = self.extent(0, PHYS_LIMIT, SPARSE | R, parent=self.ddr)
        self.basic = self.extent(self.phys + 8 * PAGE, 4 * PAGE, RWX)
        self.ok("memextent_donate", TO_CHILD, self.part, self.ddr, self.phys, 8 * PAGE, 0)
        self.ok("memextent_donate", TO_CHILD, self.ddr, self.a, self.phys, 8 * PAGE, 0)
        self.as_a = self.addrspace(0x81)
        self.as_b = self.addrspace(0x82)
        self.ok("addrspace_map", self.as_a, self.a, RAM_IPA, MAP_RWX, PARTIAL, self.phys,
                8 * PAGE)

    def call(self, name: str, *regs: int) -> tuple[Error, tuple[int, ...], tuple]:
        """Runs ``name`` with input registers in table order; returns (X0, outputs, effects)."""
        spec = BY_NAME[name]
        assert len(regs) == len(spec.inputs), f"{name} takes {len(spec.inputs)} registers"
        args = {arg.name: value for arg, value in zip(spec.inputs, regs)}
        shim = MEM_SHIMS.get(name) or SHIMS[name]
        try:
            outcome = shim(Call(self.vm, args))
        except HypError as err:
            return err.code, (), ()
        assert len(outcome.values) == len(spec.outputs) - 1
        assert outcome.effects == (), "memory calls have no virq effects"
        return Error.OK, outcome.values, outcome.memory

    def ok(self, name: str, *regs: int) -> tuple[tuple[int, ...], tuple]:
        code, values, effects = self.call(name, *regs)
        assert code is Error.OK, f"{name}{regs} -> {code.name}"
        return values, effects

    def extent(self, base: int, size: int, attrs: int, parent: int | None = None,
               activate: bool = True) -> int:
        (cap,), _ = self.ok("partition_create_memextent", self.part, self.cs, 0)
        if parent is None:
            self.ok("memextent_configure", cap, base, size, attrs, 0)
        else:
            self.ok("memextent_configure_derive", cap, parent, base, size, attrs, 0)
        if activate:
            self.ok("object_activate", cap, 0)
        return cap

    def addrspace(self, vmid: int | None, activate: bool = True) -> int:
        (cap,), _ = self.ok("partition_create_addrspace", self.part, self.cs, 0)
        if vmid is not None:
            self.ok("addrspace_configure", cap, vmid, 0)
        if activate:
            self.ok("object_activate", cap, 0)
        return cap

    def only(self, cap: int, rights: int) -> int:
        """Returns a copy of ``cap`` in the caller's cspace with only ``rights``."""
        return self.vm.cspace.copy_cap_from(self.vm.cspace, cap, rights)

    def obj(self, cap: int) -> object:
        return self.vm.cspace.lookup_any(cap, 0)


@pytest.fixture
def w() -> World:
    return World()


def test_every_memory_shim_is_named_as_in_the_table():
    wanted = {"memextent_configure", "memextent_configure_derive", "memextent_modify",
              "memextent_donate", "addrspace_map", "addrspace_unmap", "addrspace_update_access",
              "addrspace_lookup", "partition_create_memextent", "partition_create_addrspace",
              "addrspace_configure"}
    assert set(MEM_SHIMS) == wanted
    assert {BY_NAME[name].number for name in MEM_SHIMS} == {
        0x31, 0x32, 0x30, 0x61, 0x2B, 0x2C, 0x2D, 0x5A, 0x04, 0x03, 0x2E}


# -- creation -------------------------------------------------------------------------------------

CREATE_ERRORS = {
    "partition cap lacks ObjectCreate": (
        lambda w: (w.only(w.part, PartitionRights.DONATE), w.cs),
        Error.CSPACE_INSUFFICIENT_RIGHTS),
    "cspace cap lacks CapCreate": (
        lambda w: (w.part, w.only(w.cs, CspaceRights.CAP_DELETE)),
        Error.CSPACE_INSUFFICIENT_RIGHTS),
    "a cspace cap as the partition": (lambda w: (w.cs, w.cs), Error.CSPACE_WRONG_OBJECT_TYPE),
    "an empty slot": (lambda w: (w.part, (0xFF << 16) | 1000), Error.CSPACE_CAP_NULL),
    "not a cap id": (lambda w: (w.part, 2**64 - 1), Error.ARGUMENT_INVALID),
}


@pytest.mark.parametrize("name", ["partition_create_memextent", "partition_create_addrspace"])
@pytest.mark.parametrize("case", CREATE_ERRORS)
def test_create_errors(w, name, case):
    make, error = CREATE_ERRORS[case]
    assert w.call(name, *make(w), 0)[0] is error


def test_created_objects_start_in_init_and_refuse_use_until_activated(w):
    init = w.extent(0, PHYS_LIMIT, SPARSE | RWX, parent=w.ddr, activate=False)
    assert w.call("addrspace_map", w.as_b, init, 0, MAP_RW, 0, 0, 0)[0] is Error.OBJECT_STATE
    assert w.call("object_activate", init, 0)[0] is Error.OK
    assert w.call("memextent_configure", init, 0, PAGE, RWX, 0)[0] is Error.OBJECT_STATE
    assert w.call("object_activate", init, 0)[0] is Error.OBJECT_STATE


# -- configuration --------------------------------------------------------------------------------

@pytest.mark.parametrize("phys, size, attrs, error", [
    (0, 0, RWX, Error.ARGUMENT_INVALID),
    (2**64 - PAGE, 2 * PAGE, RWX, Error.ARGUMENT_INVALID),
    (0x800, PAGE, RWX, Error.ARGUMENT_ALIGNMENT),
    (0, 0x1800, RWX, Error.ARGUMENT_ALIGNMENT),
    (0, PAGE, RWX | 1 << 3, Error.ARGUMENT_INVALID),
    (0, PAGE, RWX | 1 << 31, Error.ARGUMENT_INVALID),
    (0, PAGE, 0, Error.ARGUMENT_INVALID),
    (0, PAGE, 3, Error.ARGUMENT_INVALID),
    (0, PAGE, RWX | 3 << 8, Error.ARGUMENT_INVALID),
    (0, PAGE, RWX | 2 << 16, Error.ARGUMENT_INVALID),
    (0, PAGE, RWX | 1 << 8 | SPARSE, Error.OK),
])
def test_memextent_configure_checks(w, phys, size, attrs, error):
    (cap,), _ = w.ok("partition_create_memextent", w.part, w.cs, 0)
    assert w.call("memextent_configure", cap, phys, size, attrs, 0)[0] is error


def test_configure_needs_a_memextent_in_init(w):
    assert w.call("memextent_configure", w.as_a, 0, PAGE, RWX, 0)[0] is \
        Error.CSPACE_WRONG_OBJECT_TYPE
    assert w.call("memextent_configure", w.a, 0, PAGE, RWX, 0)[0] is Error.OBJECT_STATE
    assert w.call("memextent_configure", w.only(w.a, MemextentRights.MAP), 0, PAGE, RWX, 0)[0] \
        is Error.CSPACE_INSUFFICIENT_RIGHTS


@pytest.mark.parametrize("offset, size, attrs, error", [
    (0, 0, RW, Error.ARGUMENT_INVALID),
    (4 * PAGE, PAGE, RW, Error.ADDR_INVALID),
    (3 * PAGE, 2 * PAGE, RW, Error.ADDR_INVALID),
    (0x800, PAGE, RW, Error.ARGUMENT_ALIGNMENT),
    (0, PAGE, RW | 1 << 4, Error.ARGUMENT_INVALID),
    (0, PAGE, RWX, Error.ARGUMENT_INVALID),
    (PAGE, PAGE, R, Error.OK),
])
def test_memextent_configure_derive_checks(w, offset, size, attrs, error):
    parent = w.extent(w.phys + 12 * PAGE, 4 * PAGE, RW)
    (cap,), _ = w.ok("partition_create_memextent", w.part, w.cs, 0)
    assert w.call("memextent_configure_derive", cap, parent, offset, size, attrs, 0)[0] \
        is error


def test_derive_access_and_memtype_must_fit_the_parent(w):
    device = w.extent(w.phys + 12 * PAGE, 4 * PAGE, RW | 1 << 8)
    (cap,), _ = w.ok("partition_create_memextent", w.part, w.cs, 0)
    assert w.call("memextent_configure_derive", cap, device, 0, PAGE, RWX | 1 << 8, 0)[0] is \
        Error.ARGUMENT_INVALID
    assert w.call("memextent_configure_derive", cap, device, 0, PAGE, RW, 0)[0] is \
        Error.ARGUMENT_INVALID
    assert w.call("memextent_configure_derive", cap, w.only(device, MemextentRights.MAP), 0,
                  PAGE, RW | 1 << 8, 0)[0] is Error.CSPACE_INSUFFICIENT_RIGHTS
    assert w.call("memextent_configure_derive", cap, device, 0, PAGE, RW | 1 << 8, 0)[0] is \
        Error.OK


# -- activation -----------------------------------------------------------------------------------

def test_activation_errors(w):
    (never,), _ = w.ok("partition_create_memextent", w.part, w.cs, 0)
    assert w.call("object_activate", never, 0)[0] is Error.OBJECT_CONFIG
    hole = w.extent(w.ram.phys_end, PAGE, RWX, activate=False)
    assert w.call("object_activate", hole, 0)[0] is Error.MEMDB_NOT_OWNER
    taken = w.extent(w.phys, PAGE, RWX, activate=False)
    assert w.call("object_activate", taken, 0)[0] is Error.MEMDB_NOT_OWNER
    sub = w.extent(PAGE, PAGE, RWX, parent=w.basic, activate=False)
    assert w.call("object_activate", sub, 0)[0] is Error.OK
    again = w.extent(PAGE, PAGE, RWX, parent=w.basic, activate=False)
    assert w.call("object_activate", again, 0)[0] is Error.MEMDB_NOT_OWNER


def test_a_basic_child_needs_its_range_owned_then_whole_parent_mappings(w):
    straddling = w.extent(w.phys + 7 * PAGE, 2 * PAGE, RWX, parent=w.a, activate=False)
    assert w.call("object_activate", straddling, 0)[0] is Error.MEMDB_NOT_OWNER
    w.ok("addrspace_unmap", w.as_a, w.a, RAM_IPA + PAGE, PARTIAL, w.phys + PAGE, PAGE)
    child = w.extent(w.phys, 2 * PAGE, RWX, parent=w.a, activate=False)
    assert w.call("object_activate", child, 0)[0] is Error.DENIED
    assert w.memory.memdb.owner(w.phys) is w.obj(w.a)


def test_addrspace_configure_and_activation_errors(w):
    init = w.addrspace(None, activate=False)
    assert w.call("addrspace_configure", init, 0, 0)[0] is Error.ARGUMENT_INVALID
    assert w.call("addrspace_configure", init, 256, 0)[0] is Error.ARGUMENT_INVALID
    assert w.call("addrspace_configure", w.a, 5, 0)[0] is Error.CSPACE_WRONG_OBJECT_TYPE
    assert w.call("addrspace_configure", w.as_a, 5, 0)[0] is Error.OBJECT_STATE
    assert w.call("object_activate", init, 0)[0] is Error.OBJECT_CONFIG
    dup = w.addrspace(0x81, activate=False)
    assert w.call("object_activate", dup, 0)[0] is Error.BUSY


# -- donation -------------------------------------------------------------------------------------

DONATE_ERRORS = {
    "reserved option bits": (lambda w: (1 << 8, w.ddr, w.b, w.phys, PAGE),
                             Error.ARGUMENT_INVALID),
    "TO_PROTECTED is newer than HYP": (lambda w: (3, w.ddr, w.b, w.phys, PAGE),
                                       Error.ARGUMENT_INVALID),
    "child lacks Donate": (lambda w: (TO_CHILD, w.ddr, w.only(w.b, MemextentRights.MAP),
                                      w.phys, PAGE), Error.CSPACE_INSUFFICIENT_RIGHTS),
    "parent lacks Donate": (lambda w: (TO_CHILD, w.only(w.ddr, MemextentRights.MAP), w.b,
                                       w.phys, PAGE), Error.CSPACE_INSUFFICIENT_RIGHTS),
    "not the parent": (lambda w: (TO_CHILD, w.a, w.b, w.phys, PAGE), Error.ARGUMENT_INVALID),
    "root child needs the partition": (lambda w: (TO_CHILD, w.a, w.ddr, w.phys, PAGE),
                                       Error.CSPACE_WRONG_OBJECT_TYPE),
    "partition cap lacks Donate": (
        lambda w: (TO_CHILD, w.only(w.part, PartitionRights.OBJECT_CREATE), w.ddr,
                   w.phys + 12 * PAGE, PAGE), Error.CSPACE_INSUFFICIENT_RIGHTS),
    "misaligned": (lambda w: (TO_CHILD, w.ddr, w.b, w.phys + 1, PAGE),
                   Error.ARGUMENT_ALIGNMENT),
    "zero size": (lambda w: (TO_CHILD, w.ddr, w.b, w.phys, 0), Error.ARGUMENT_SIZE),
    "outside the child": (lambda w: (TO_CHILD, w.ddr, w.b, PHYS_LIMIT, PAGE),
                          Error.ARGUMENT_INVALID),
    "basic child": (lambda w: (TO_PARENT, w.basic, w.part, 0, PAGE), Error.MEMEXTENT_TYPE),
    "donor does not own": (lambda w: (TO_CHILD, w.ddr, w.b, w.phys, PAGE),
                           Error.MEMDB_NOT_OWNER),
    "child gives back what it lacks": (lambda w: (TO_PARENT, w.b, w.ddr, w.phys, PAGE),
                                       Error.MEMDB_NOT_OWNER),
    "partition lacks a hole page": (lambda w: (TO_CHILD, w.part, w.ddr, w.ram.phys_end, PAGE),
                                    Error.MEMDB_NOT_OWNER),
    "sibling to itself": (lambda w: (TO_SIBLING, w.a, w.a, w.phys, PAGE),
                          Error.ARGUMENT_INVALID),
    "not siblings": (lambda w: (TO_SIBLING, w.a, w.ddr, w.phys, PAGE), Error.ARGUMENT_INVALID),
    "sibling of nobody": (lambda w: (TO_SIBLING, w.ddr, w.basic, w.phys + 8 * PAGE, PAGE),
                          Error.ARGUMENT_INVALID),
    "sibling does not own": (lambda w: (TO_SIBLING, w.b, w.a, w.phys, PAGE),
                             Error.MEMDB_NOT_OWNER),
    "sibling partly owns": (lambda w: (TO_SIBLING, w.a, w.b, w.phys + 7 * PAGE, 2 * PAGE),
                            Error.MEMDB_NOT_OWNER),
}


@pytest.mark.parametrize("case", DONATE_ERRORS)
def test_donate_errors_leave_ownership_unchanged(w, case):
    make, error = DONATE_ERRORS[case]
    before = w.memory.memdb.all_runs()
    assert w.call("memextent_donate", *make(w), 0)[0] is error
    assert w.memory.memdb.all_runs() == before


def test_only_sparse_extents_donate_and_take(w):
    sparse_of_basic = w.extent(PAGE, PAGE, SPARSE | RWX, parent=w.basic)
    assert w.call("memextent_donate", TO_CHILD, w.basic, sparse_of_basic, 0, PAGE, 0)[0] is \
        Error.ARGUMENT_INVALID
    basic_kid = w.extent(w.phys, PAGE, RWX, parent=w.a)
    sparse_kid = w.extent(w.phys, 2 * PAGE, SPARSE | RWX, parent=w.a)
    assert w.call("memextent_donate", TO_SIBLING, basic_kid, sparse_kid, 0, PAGE, 0)[0] is \
        Error.MEMEXTENT_TYPE
    assert w.call("memextent_donate", TO_SIBLING, sparse_kid, basic_kid, 0, PAGE, 0)[0] is \
        Error.ARGUMENT_INVALID
    assert w.call("memextent_donate", TO_CHILD, w.a, sparse_kid, PAGE, PAGE, 0)[0] is Error.OK


# -- memextent_modify -----------------------------------------------------------------------------

@pytest.mark.parametrize("extent, flags, offset, size, error", [
    ("a", 1 << 8, 0, 0, Error.ARGUMENT_INVALID),
    ("a", 7 | NOSYNC, 0, 0, Error.ARGUMENT_INVALID),
    ("a", ZERO_RANGE, 0, PAGE, Error.ARGUMENT_INVALID),
    ("a", SYNC_ALL | NOSYNC, 0, 0, Error.ARGUMENT_INVALID),
    ("a", SYNC_ALL, 0, 0, Error.OK),
    ("ro", ZERO_RANGE | NOSYNC, 0, PAGE, Error.DENIED),
    ("a", ZERO_RANGE | NOSYNC, 0x800, PAGE, Error.ARGUMENT_ALIGNMENT),
    ("a", ZERO_RANGE | NOSYNC, 0, 0, Error.ARGUMENT_SIZE),
    ("a", ZERO_RANGE | NOSYNC, PHYS_LIMIT, PAGE, Error.ARGUMENT_INVALID),
    ("a", CLEAN_RANGE | NOSYNC, 0, PAGE, Error.OK),
    ("a", CLEAN_RANGE, 0, PAGE, Error.ARGUMENT_INVALID),
])
def test_memextent_modify_checks(w, extent, flags, offset, size, error):
    assert w.call("memextent_modify", getattr(w, extent), flags, offset, size)[0] is error


def test_modify_needs_map_right_and_zeroes_only_owned_pages(w):
    assert w.call("memextent_modify", w.only(w.a, MemextentRights.DONATE), UNMAP_ALL, 0, 0)[0] \
        is Error.CSPACE_INSUFFICIENT_RIGHTS
    device = w.extent(w.phys + 12 * PAGE, PAGE, RW | 1 << 8)
    assert w.call("memextent_modify", device, ZERO_RANGE | NOSYNC, 0, PAGE)[0] is Error.DENIED
    _, effects = w.ok("memextent_modify", w.a, ZERO_RANGE | NOSYNC, w.phys + 6 * PAGE,
                      4 * PAGE)
    assert effects == (ZeroRegion("a.ram", 6 * PAGE, 2 * PAGE),)


def test_unmap_all_removes_every_mapping(w):
    _, effects = w.ok("memextent_modify", w.a, UNMAP_ALL, 0, 0)
    assert effects == (UnmapRegion(0x81, RAM_IPA, 8 * PAGE),)
    assert w.call("addrspace_lookup", w.as_a, w.a, RAM_IPA, PAGE, 0)[0] is Error.ADDR_INVALID


# -- addrspace_map --------------------------------------------------------------------------------

MAP_ERRORS = {
    "reserved map_attrs bit 3": (lambda w: (w.as_b, w.a, 0x9000_0000, MAP_RW | 8, PARTIAL,
                                            w.phys, PAGE), Error.ARGUMENT_INVALID),
    "PRIVATE flag is newer than HYP": (lambda w: (w.as_b, w.a, 0x9000_0000, MAP_RW, 2, 0, 0),
                                       Error.ARGUMENT_INVALID),
    "addrspace lacks Map": (lambda w: (w.only(w.as_b, AddrspaceRights.LOOKUP), w.a,
                                       0x9000_0000, MAP_RW, PARTIAL, w.phys, PAGE),
                            Error.CSPACE_INSUFFICIENT_RIGHTS),
    "extent lacks Map": (lambda w: (w.as_b, w.only(w.a, MemextentRights.LOOKUP), 0x9000_0000,
                                    MAP_RW, PARTIAL, w.phys, PAGE),
                         Error.CSPACE_INSUFFICIENT_RIGHTS),
    "extent cap as addrspace": (lambda w: (w.a, w.a, 0x9000_0000, MAP_RW, 0, 0, 0),
                                Error.CSPACE_WRONG_OBJECT_TYPE),
    "misaligned vbase": (lambda w: (w.as_b, w.basic, 0x9000_0800, MAP_RW, 0, 0, 0),
                         Error.ARGUMENT_ALIGNMENT),
    "misaligned offset": (lambda w: (w.as_b, w.a, 0x9000_0000, MAP_RW, PARTIAL, w.phys + 8,
                                     PAGE), Error.ARGUMENT_ALIGNMENT),
    "zero size": (lambda w: (w.as_b, w.a, 0x9000_0000, MAP_RW, PARTIAL, w.phys, 0),
                  Error.ARGUMENT_SIZE),
    "past the extent": (lambda w: (w.as_b, w.basic, 0x9000_0000, MAP_RW, PARTIAL, 0,
                                   5 * PAGE), Error.ARGUMENT_SIZE),
    "more access than the extent": (lambda w: (w.as_b, w.ro, 0x9000_0000, MAP_RW, PARTIAL,
                                               w.phys, PAGE), Error.ARGUMENT_INVALID),
    "unknown memtype": (lambda w: (w.as_b, w.a, 0x9000_0000, RW | 4 << 16, PARTIAL, w.phys,
                                   PAGE), Error.ARGUMENT_INVALID),
    "partial on basic": (lambda w: (w.as_b, w.basic, 0x9000_0000, MAP_RW, PARTIAL, 0, PAGE),
                         Error.MEMEXTENT_TYPE),
    "IPA beyond 2^36": (lambda w: (w.as_b, w.a, 1 << 36, MAP_RW, PARTIAL, w.phys, PAGE),
                        Error.ADDR_INVALID),
    "IPA runs past 2^36": (lambda w: (w.as_b, w.a, (1 << 36) - PAGE, MAP_RW, PARTIAL, w.phys,
                                      2 * PAGE), Error.ADDR_OVERFLOW),
    "vbase beyond the GPT's 48 bits": (lambda w: (w.as_b, w.a, 1 << 48, MAP_RW, PARTIAL,
                                                  w.phys, PAGE), Error.ADDR_INVALID),
    "basic vbase wraps": (lambda w: (w.as_b, w.basic, 2**64 - PAGE, MAP_RW, 0, 0, 0),
                          Error.ADDR_OVERFLOW),
    "other memory at that IPA": (lambda w: (w.as_a, w.b, RAM_IPA + PAGE, MAP_RW, PARTIAL,
                                            w.phys + 8 * PAGE, PAGE), Error.EXISTING_MAPPING),
    "the same extent twice": (lambda w: (w.as_a, w.a, RAM_IPA, MAP_RW, PARTIAL, w.phys, PAGE),
                              Error.EXISTING_MAPPING),
}


@pytest.mark.parametrize("case", MAP_ERRORS)
def test_map_errors(w, case):
    make, error = MAP_ERRORS[case]
    assert w.call("addrspace_map", *make(w))[0] is error


def test_device_extent_takes_device_memtypes_only(w):
    device = w.extent(w.phys + 12 * PAGE, PAGE, RW | 1 << 8)
    assert w.call("addrspace_map", w.as_b, device, 0x1000_0000, MAP_RW, 0, 0, 0)[0] is \
        Error.ARGUMENT_INVALID
    assert w.call("addrspace_map", w.as_b, device, 0x1000_0000, RW | RW << 4 | 1 << 16, 0, 0,
                  0)[0] is Error.OK


def test_an_extent_has_at_most_four_mappings(w):
    for i in range(4):
        assert w.call("addrspace_map", w.as_b, w.basic, 0x9000_0000 + i * 0x10_0000, MAP_RW,
                      0, 0, 0)[0] is Error.OK
    assert w.call("addrspace_map", w.as_b, w.basic, 0xA000_0000, MAP_RW, 0, 0, 0)[0] is \
        Error.MEMEXTENT_MAPPINGS_FULL


def test_a_sparse_extent_counts_address_spaces_not_ranges(w):
    for i in range(8):
        assert w.call("addrspace_map", w.as_b, w.b, 0x9000_0000 + i * PAGE, MAP_RW, PARTIAL,
                      w.phys + 8 * PAGE + i * PAGE, PAGE)[0] is Error.OK
    assert len(w.obj(w.b).slots) == 1


def test_map_attrs_ignore_the_upper_register_half(w):
    assert w.call("addrspace_map", w.as_b, w.basic, 0x9000_0000, MAP_RW | 1 << 40, 0, 0,
                  0)[0] is Error.OK


# -- unmap, update_access, lookup -----------------------------------------------------------------

@pytest.mark.parametrize("vbase, flags, offset, size, error", [
    (RAM_IPA + PAGE, PARTIAL, 0, PAGE, Error.ADDR_INVALID),
    (RAM_IPA, PARTIAL, PAGE, PAGE, Error.ADDR_INVALID),
    (RAM_IPA, PARTIAL, 0, 16 * PAGE, Error.ADDR_INVALID),
    (RAM_IPA, 0, 0, 0, Error.ADDR_INVALID),
    (RAM_IPA + 0x10, PARTIAL, 0, PAGE, Error.ARGUMENT_ALIGNMENT),
    (RAM_IPA, PARTIAL, 0, 0, Error.ARGUMENT_SIZE),
    (RAM_IPA, 1 << 5, 0, PAGE, Error.ARGUMENT_INVALID),
    (RAM_IPA + PAGE, PARTIAL, PAGE, 2 * PAGE, Error.OK),
])
def test_unmap_checks(w, vbase, flags, offset, size, error):
    assert w.call("addrspace_unmap", w.as_a, w.a, vbase, flags, w.phys + offset, size)[0] \
        is error


def test_unmap_of_a_basic_extent_names_the_mapping_by_vbase(w):
    w.ok("addrspace_map", w.as_b, w.basic, 0x9000_0000, MAP_RW, 0, 0, 0)
    assert w.call("addrspace_unmap", w.as_b, w.basic, 0x9000_0000, PARTIAL, 0, PAGE)[0] is \
        Error.MEMEXTENT_TYPE
    assert w.call("addrspace_unmap", w.as_b, w.basic, 0x9000_1000, 0, 0, 0)[0] is \
        Error.ADDR_INVALID
    _, effects = w.ok("addrspace_unmap", w.as_b, w.basic, 0x9000_0000, 0, 0, 0)
    assert effects == (UnmapRegion(0x82, 0x9000_0000, 4 * PAGE),)


@pytest.mark.parametrize("attrs, vbase, offset, size, error", [
    (R | 1 << 3, RAM_IPA, 0, PAGE, Error.ARGUMENT_INVALID),
    (R | 1 << 8, RAM_IPA, 0, PAGE, Error.ARGUMENT_INVALID),
    (R | R << 4, RAM_IPA + PAGE, 0, PAGE, Error.ADDR_INVALID),
    (R | R << 4, RAM_IPA, 0, 9 * PAGE, Error.ADDR_INVALID),
    (R | R << 4, RAM_IPA, 0, 0, Error.ARGUMENT_SIZE),
    (R | R << 4, RAM_IPA, 2 * PAGE, 2 * PAGE, Error.ADDR_INVALID),
    (R | R << 4, RAM_IPA + 2 * PAGE, 2 * PAGE, 2 * PAGE, Error.OK),
])
def test_update_access_checks(w, attrs, vbase, offset, size, error):
    assert w.call("addrspace_update_access", w.as_a, w.a, vbase, attrs, PARTIAL,
                  w.phys + offset, size)[0] is error


def test_update_access_cannot_exceed_the_extent_and_protects(w):
    ro_child = w.extent(0, PHYS_LIMIT, SPARSE | R, parent=w.ddr)
    w.ok("addrspace_map", w.as_b, ro_child, 0x9000_0000, R | R << 4 | NORMAL_WB << 16,
         PARTIAL, w.phys, PAGE)
    assert w.call("addrspace_update_access", w.as_b, ro_child, 0x9000_0000, RW | RW << 4,
                  PARTIAL, w.phys, PAGE)[0] is Error.ARGUMENT_INVALID
    _, effects = w.ok("addrspace_update_access", w.as_a, w.a, RAM_IPA + PAGE, R | R << 4,
                      PARTIAL, w.phys + PAGE, PAGE)
    assert effects == (ProtectRegion(0x81, RAM_IPA + PAGE, PAGE, Access.R),)
    values, _ = w.ok("addrspace_lookup", w.as_a, w.a, RAM_IPA + PAGE, 8 * PAGE, 0)
    assert values == (w.phys + PAGE, PAGE, R | R << 4 | NORMAL_WB << 16)


def test_lookup_returns_offset_size_and_attrs(w):
    values, _ = w.ok("addrspace_lookup", w.as_a, w.a, RAM_IPA + 2 * PAGE, 16 * PAGE, 0)
    assert values == (w.phys + 2 * PAGE, 6 * PAGE, MAP_RWX)
    values, _ = w.ok("addrspace_lookup", w.as_a, w.a, RAM_IPA, 2 * PAGE, 0)
    assert values == (w.phys, 2 * PAGE, MAP_RWX)


@pytest.mark.parametrize("make, error", [
    (lambda w: (w.only(w.as_a, AddrspaceRights.MAP), w.a, RAM_IPA, PAGE),
     Error.CSPACE_INSUFFICIENT_RIGHTS),
    (lambda w: (w.as_a, w.only(w.a, MemextentRights.MAP), RAM_IPA, PAGE),
     Error.CSPACE_INSUFFICIENT_RIGHTS),
    (lambda w: (w.as_a, w.a, RAM_IPA, 0), Error.ARGUMENT_SIZE),
    (lambda w: (w.as_a, w.a, 2**64 - PAGE, 2 * PAGE), Error.ADDR_OVERFLOW),
    (lambda w: (w.as_a, w.a, RAM_IPA + 8, PAGE), Error.ARGUMENT_ALIGNMENT),
    (lambda w: (w.as_a, w.a, RAM_IPA + 8 * PAGE, PAGE), Error.ADDR_INVALID),
    (lambda w: (w.as_a, w.b, RAM_IPA, PAGE), Error.MEMDB_NOT_OWNER),
])
def test_lookup_errors(w, make, error):
    assert w.call("addrspace_lookup", *make(w), 0)[0] is error


def test_lend_through_registers_protects_the_owner_and_maps_the_borrower(w):
    _, lent = w.ok("memextent_donate", TO_SIBLING, w.a, w.b, w.phys + 2 * PAGE, 2 * PAGE, 0)
    assert [(type(e).__name__, e.vmid, e.ipa, e.size, e.rights) for e in lent] == [
        ("ProtectRegion", 0x81, RAM_IPA + 2 * PAGE, 2 * PAGE, Access.NONE)]
    assert w.call("addrspace_lookup", w.as_a, w.a, RAM_IPA + 2 * PAGE, PAGE, 0)[0] is \
        Error.ADDR_INVALID
    _, accepted = w.ok("addrspace_map", w.as_b, w.b, 0x9000_0000, MAP_RW, PARTIAL,
                       w.phys + 2 * PAGE, 2 * PAGE)
    assert accepted == (MapRegion(0x82, 0x9000_0000, 2 * PAGE, "a.ram", 2 * PAGE, Access.RW),)
