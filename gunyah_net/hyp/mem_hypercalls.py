"""Thin shims of the memextent and addrspace hypercalls (same shape as ``hyp.hypercalls``).

Each shim decodes its argument words, looks the caps up with the rights HYP's
``mem/memextent/src/hypercalls.c`` and ``mem/addrspace/src/hypercalls.c`` use, calls the core
and returns the memory effects (``Outcome.memory``). Bitfield arguments are 32-bit in HYP: the
upper half of the register is ignored; reserved bits inside the 32 are ERROR_ARGUMENT_INVALID,
checked before any cap lookup, as HYP does. The NOSYNC bits are accepted and ignored (the model
has no deferred EL2 operations to wait for), except where memextent_modify gives them meaning.

Rights: create (partition ObjectCreate, cspace CapCreate); configure and configure of the
child in derive (generic Activate, any state, then WRONG_OBJECT_TYPE / OBJECT_STATE); the
derive parent (MemExtent Derive); modify (MemExtent Map); donate (MemExtent Donate on both, or
Partition Donate when a root extent takes from or gives to its partition); map / unmap /
update_access (AddrSpace Map, MemExtent Map); lookup (AddrSpace Lookup, MemExtent Lookup).
"""

from __future__ import annotations

from enum import IntEnum
from typing import TypeVar

from gunyah_net.abi.errors import Error, HypError
from gunyah_net.abi.rights import (GENERIC_ACTIVATE, AddrspaceRights, CspaceRights,
                                   MemextentRights, PartitionRights)
from gunyah_net.hyp.addrspace import AddrSpace
from gunyah_net.hyp.cspace import Cspace
from gunyah_net.hyp.hypercalls import Call, Outcome, Shim
from gunyah_net.hyp.mem_attrs import MapAttrs, decode_access_attrs, decode_map_flags
from gunyah_net.hyp.memextent import MemExtent
from gunyah_net.hyp.memory import Memory
from gunyah_net.hyp.object import KernelObject, ObjectState
from gunyah_net.hyp.partition import Partition

MEM_SHIMS: dict[str, Shim] = {}
"""Every memory hypercall implemented here, by hypercall name (merge into ``SHIMS``)."""

_U32 = 0xFFFF_FFFF
_OPTIONS_RES0 = 0x7FFF_FF00
"""donate options and modify flags: reserved bits 30:8."""
NOSYNC = 1 << 31

T = TypeVar("T", bound=KernelObject)


class DonateType(IntEnum):
    """memextent_donate options bits 7:0 (3 and 4 are newer than public HYP: invalid here)."""

    TO_CHILD = 0
    TO_PARENT = 1
    TO_SIBLING = 2


class ModifyOp(IntEnum):
    """memextent_modify flags bits 7:0."""

    UNMAP_ALL = 0
    ZERO_RANGE = 1
    CACHE_CLEAN_RANGE = 2
    CACHE_FLUSH_RANGE = 3
    SYNC_ALL = 255


def _shim(fn: Shim) -> Shim:
    MEM_SHIMS[fn.__name__] = fn
    return fn


def _options(word: int) -> tuple[int, bool]:
    """Splits donate options / modify flags into (bits 7:0, NOSYNC); reserved bits invalid."""
    word &= _U32
    if word & _OPTIONS_RES0:
        raise HypError(Error.ARGUMENT_INVALID, f"options {word:#x}")
    return word & 0xFF, bool(word & NOSYNC)


def _extent(call: Call, arg: str, rights: int) -> MemExtent:
    return call.vm.cspace.lookup(call.args[arg], MemExtent, rights)


def _addrspace(call: Call, rights: int) -> AddrSpace:
    return call.vm.cspace.lookup(call.args["addrspace"], AddrSpace, rights)


def _in_init(call: Call, arg: str, kind: type[T]) -> T:
    """Looks an object up by the generic Activate right; it must be a ``kind`` in INIT."""
    obj = call.vm.cspace.lookup_any(call.args[arg], GENERIC_ACTIVATE)
    if not isinstance(obj, kind):
        raise HypError(Error.CSPACE_WRONG_OBJECT_TYPE, f"{obj.describe()} is not a "
                       f"{kind.object_type.value}")
    if obj.state is not ObjectState.INIT:
        raise HypError(Error.OBJECT_STATE, f"configure {obj.describe()} in {obj.state.name}")
    return obj


def _creator(call: Call) -> tuple[Memory, Cspace]:
    partition = call.vm.cspace.lookup(call.args["partition"], Partition,
                                      PartitionRights.OBJECT_CREATE)
    cspace = call.vm.cspace.lookup(call.args["cspace"], Cspace, CspaceRights.CAP_CREATE)
    return Memory.of(partition), cspace


# -- creation and configuration -------------------------------------------------------------------

@_shim
def partition_create_memextent(call: Call) -> Outcome:
    """Creates a memextent in INIT; returns its master cap in the given cspace."""
    memory, cspace = _creator(call)
    _, cap = memory.create_memextent(cspace)
    return Outcome((cap,))


@_shim
def partition_create_addrspace(call: Call) -> Outcome:
    """Creates an address space in INIT; returns its master cap in the given cspace."""
    memory, cspace = _creator(call)
    _, cap = memory.create_addrspace(cspace)
    return Outcome((cap,))


@_shim
def memextent_configure(call: Call) -> Outcome:
    """Configures a root extent over [phys_base, +size) with me_attrs."""
    extent = _in_init(call, "memextent", MemExtent)
    extent.configure(call.args["phys_base"], call.args["size"], call.args["attributes"])
    return Outcome()


@_shim
def memextent_configure_derive(call: Call) -> Outcome:
    """Configures a child of parent_memextent (Derive) over its [offset, +size)."""
    parent = _extent(call, "parent_memextent", MemextentRights.DERIVE)
    extent = _in_init(call, "memextent", MemExtent)
    extent.configure_derive(parent, call.args["offset"], call.args["size"],
                            call.args["attributes"])
    return Outcome()


@_shim
def addrspace_configure(call: Call) -> Outcome:
    """Sets the vmid of an address space in INIT."""
    _in_init(call, "addrspace", AddrSpace).configure(call.args["vmid"])
    return Outcome()


# -- memextent_modify and memextent_donate --------------------------------------------------------

@_shim
def memextent_modify(call: Call) -> Outcome:
    """UNMAP_ALL, ZERO_RANGE, CACHE_{CLEAN,FLUSH}_RANGE (need NOSYNC) or SYNC_ALL (must not
    have it) on an extent (Map); other operations are ERROR_ARGUMENT_INVALID."""
    op, nosync = _options(call.args["flags"])
    extent = _extent(call, "memextent", MemextentRights.MAP)
    offset, size = call.args["offset"], call.args["size"]
    match op:
        case ModifyOp.UNMAP_ALL:
            return Outcome(memory=extent.unmap_all())
        case ModifyOp.ZERO_RANGE if nosync:
            return Outcome(memory=extent.zero_range(offset, size))
        case ModifyOp.CACHE_CLEAN_RANGE | ModifyOp.CACHE_FLUSH_RANGE if nosync:
            extent.check_clean(offset, size)
            return Outcome()
        case ModifyOp.SYNC_ALL if not nosync:
            return Outcome()
    raise HypError(Error.ARGUMENT_INVALID, f"memextent_modify op {op} nosync {nosync}")


def _donor_of_child(call: Call, arg: str, child: MemExtent) -> None:
    """Checks that ``arg`` names ``child``'s parent (Donate), or its partition (Donate) for a
    root extent; ERROR_ARGUMENT_INVALID if it names another one."""
    if child.parent is not None:
        named: object = _extent(call, arg, MemextentRights.DONATE)
        expected: object = child.parent
    else:
        named = call.vm.cspace.lookup(call.args[arg], Partition, PartitionRights.DONATE)
        expected = child.partition
    if named is not expected:
        raise HypError(Error.ARGUMENT_INVALID, "not the child's parent")


@_shim
def memextent_donate(call: Call) -> Outcome:
    """Moves [offset, +size) between extents: TO_CHILD, TO_PARENT or TO_SIBLING."""
    kind, _ = _options(call.args["options"])
    offset, size = call.args["offset"], call.args["size"]
    match kind:
        case DonateType.TO_CHILD | DonateType.TO_PARENT:
            reverse = kind == DonateType.TO_PARENT
            parent_arg, child_arg = (("to_memextent", "from_memextent") if reverse
                                     else ("from_memextent", "to_memextent"))
            child = _extent(call, child_arg, MemextentRights.DONATE)
            _donor_of_child(call, parent_arg, child)
            return Outcome(memory=child.donate_child(offset, size, reverse=reverse))
        case DonateType.TO_SIBLING:
            donor = _extent(call, "from_memextent", MemextentRights.DONATE)
            recipient = _extent(call, "to_memextent", MemextentRights.DONATE)
            return Outcome(memory=donor.donate_sibling(recipient, offset, size))
    raise HypError(Error.ARGUMENT_INVALID, f"donate type {kind}")


# -- address spaces -------------------------------------------------------------------------------

@_shim
def addrspace_map(call: Call) -> Outcome:
    """Maps an extent (Map) into an address space (Map) at vbase with map_attrs."""
    attrs = MapAttrs.decode(call.args["map_attrs"])
    partial = decode_map_flags(call.args["map_flags"])
    addrspace = _addrspace(call, AddrspaceRights.MAP)
    extent = _extent(call, "memextent", MemextentRights.MAP)
    effects = extent.map(addrspace, call.args["vbase"], attrs, partial=partial,
                         offset=call.args["offset"], size=call.args["size"])
    return Outcome(memory=effects)


@_shim
def addrspace_unmap(call: Call) -> Outcome:
    """Removes an extent's (Map) mapping at vbase from an address space (Map)."""
    partial = decode_map_flags(call.args["map_flags"])
    addrspace = _addrspace(call, AddrspaceRights.MAP)
    extent = _extent(call, "memextent", MemextentRights.MAP)
    effects = extent.unmap(addrspace, call.args["vbase"], partial=partial,
                           offset=call.args["offset"], size=call.args["size"])
    return Outcome(memory=effects)


@_shim
def addrspace_update_access(call: Call) -> Outcome:
    """Changes the access of an extent's (Map) mapping at vbase (address space: Map)."""
    user, kernel = decode_access_attrs(call.args["update_attrs"])
    partial = decode_map_flags(call.args["map_flags"])
    addrspace = _addrspace(call, AddrspaceRights.MAP)
    extent = _extent(call, "memextent", MemextentRights.MAP)
    effects = extent.update_access(addrspace, call.args["vbase"], user, kernel,
                                   partial=partial, offset=call.args["offset"],
                                   size=call.args["size"])
    return Outcome(memory=effects)


@_shim
def addrspace_lookup(call: Call) -> Outcome:
    """Returns (offset in the extent, size, map_attrs) of the mapping at vbase; the extent
    (Lookup) must own all of it (ERROR_MEMDB_NOT_OWNER); address space: Lookup."""
    addrspace = _addrspace(call, AddrspaceRights.LOOKUP)
    extent = _extent(call, "memextent", MemextentRights.LOOKUP)
    phys, size, attrs = addrspace.lookup(call.args["vbase"], call.args["size"])
    if not extent.memdb.owns(extent, phys, size):
        raise HypError(Error.MEMDB_NOT_OWNER, "the extent does not own the mapped memory")
    return Outcome((phys - extent.phys_base, size, attrs.word()))
