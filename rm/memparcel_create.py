"""The rules of MEM_LEND / MEM_SHARE / MEM_DONATE, and the owner-side EL2 work they cause.

``check_create`` applies the public RM's checks in its order (RM ``memparcel_construct``), each
with its error code:

1. an empty ACL or SGL, or a DONATE with more than one ACL entry: ARGUMENT_INVALID;
2. the owner already has 64 parcels: DENIED;
3. more than 512 entries in a list, SANITIZE of IO memory, an unknown mem_type: ARGUMENT_INVALID;
4. per ACL entry: a duplicate vmid, an unknown VM, rights other than R / RX / RW / RWX, or X on IO
   memory: ARGUMENT_INVALID; a DONATE without full rights (RWX, or RW for IO): DENIED;
5. SHARE without the owner in the ACL, or LEND / DONATE with it: ARGUMENT_INVALID;
6. per attribute entry: a duplicate vmid, an unknown attr, DEVICE on normal memory or anything
   else on IO memory, a non-default attr in a DONATE: ARGUMENT_INVALID; a vmid not in the ACL:
   VMID_INVALID.

The regions themselves are checked against the owner's memory by ``rm.memparcel_space``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gunyah_net.abi.rm import (
    MEMPARCEL_MAX_LIST_ENTRIES,
    MEMPARCEL_MAX_PER_VM,
    MemAttr,
    MemCreateFlag,
    MemRights,
    MemType,
    RmError,
    TransType,
)

from .mem_payloads import MemCreate, SglEntry
from .memparcel import (
    Borrower,
    DonateToParcel,
    El2Op,
    MapInto,
    Parcel,
    RegionMap,
    Sanitize,
    UnmapFrom,
    require,
)

_VALID_RIGHTS = frozenset({MemRights.R, MemRights.RX, MemRights.RW, MemRights.RWX})
_VALID_ATTRS = frozenset(MemAttr)


def check_create(request: MemCreate, owner: int, owned: int,
                 vm_exists: Callable[[int], bool]) -> tuple[Borrower, ...]:
    """Checks a create request from ``owner`` (who has ``owned`` parcels); returns its ACL."""
    trans_type = TransType(request.TRANS_TYPE)
    require(bool(request.acl) and bool(request.sgl), RmError.ARGUMENT_INVALID, "empty ACL or SGL")
    require(trans_type is not TransType.DONATE or len(request.acl) == 1,
            RmError.ARGUMENT_INVALID, "a donation has exactly one recipient")
    require(owned < MEMPARCEL_MAX_PER_VM, RmError.DENIED,
            f"VM {owner:#x} already owns {MEMPARCEL_MAX_PER_VM} parcels")
    longest = max(len(request.acl), len(request.sgl), len(request.attrs))
    require(longest <= MEMPARCEL_MAX_LIST_ENTRIES, RmError.ARGUMENT_INVALID, "list too long")
    require(request.mem_type in (MemType.NORMAL, MemType.IO), RmError.ARGUMENT_INVALID,
            f"mem_type {request.mem_type}")
    is_io = request.mem_type == MemType.IO
    require(not (request.flags & MemCreateFlag.SANITIZE and is_io), RmError.ARGUMENT_INVALID,
            "IO memory cannot be sanitized")
    acl = _check_acl(request, trans_type, vm_exists)
    in_acl = sum(1 for b in acl if b.vmid == owner)
    require(in_acl == (1 if trans_type is TransType.SHARE else 0), RmError.ARGUMENT_INVALID,
            "the owner must be in a SHARE's ACL and in no other's")
    return _apply_attrs(request, trans_type, acl)


def _check_acl(request: MemCreate, trans_type: TransType,
               vm_exists: Callable[[int], bool]) -> tuple[Borrower, ...]:
    is_io = request.mem_type == MemType.IO
    full = MemRights.RW if is_io else MemRights.RWX
    default_attr = MemAttr.DEVICE if is_io else MemAttr.NORMAL
    seen: set[int] = set()
    for entry in request.acl:
        require(entry.vmid not in seen, RmError.ARGUMENT_INVALID, f"duplicate vmid {entry.vmid}")
        seen.add(entry.vmid)
        require(vm_exists(entry.vmid) and entry.rights in _VALID_RIGHTS,
                RmError.ARGUMENT_INVALID, f"ACL entry {entry}")
        require(not (is_io and entry.rights & MemRights.X), RmError.ARGUMENT_INVALID,
                "IO memory is not executable")
        require(trans_type is not TransType.DONATE or entry.rights == full, RmError.DENIED,
                "a donation gives full rights")
    return tuple(Borrower(e.vmid, e.rights, default_attr) for e in request.acl)


def _apply_attrs(request: MemCreate, trans_type: TransType,
                 acl: tuple[Borrower, ...]) -> tuple[Borrower, ...]:
    is_io = request.mem_type == MemType.IO
    default_attr = MemAttr.DEVICE if is_io else MemAttr.NORMAL
    seen: set[int] = set()
    by_vmid = {b.vmid: b for b in acl}
    for entry in request.attrs:
        require(entry.vmid not in seen, RmError.ARGUMENT_INVALID, f"duplicate vmid {entry.vmid}")
        seen.add(entry.vmid)
        require(entry.attr in _VALID_ATTRS, RmError.ARGUMENT_INVALID, f"attr {entry.attr}")
        require(is_io == (entry.attr == MemAttr.DEVICE), RmError.ARGUMENT_INVALID,
                "DEVICE is the only attr of IO memory, and only of IO memory")
        require(trans_type is not TransType.DONATE or entry.attr == default_attr,
                RmError.ARGUMENT_INVALID, "a donation keeps the default attr")
        require(entry.vmid in by_vmid, RmError.VMID_INVALID, f"vmid {entry.vmid} not in the ACL")
        by_vmid[entry.vmid] = Borrower(entry.vmid, by_vmid[entry.vmid].rights, entry.attr)
    return tuple(by_vmid[b.vmid] for b in acl)


def owner_ops(parcel: Parcel, regions: Sequence[SglEntry]) -> tuple[El2Op, ...]:
    """The EL2 work of putting ``regions`` into ``parcel``: LEND and DONATE unmap the owner
    first; SHARE leaves the owner mapped with its ACL rights; SANITIZE zeroes them last."""
    identity = tuple(RegionMap(r.ipa, r.ipa, r.size) for r in regions)
    regions = tuple(regions)
    ops: list[El2Op] = []
    if parcel.trans_type is TransType.SHARE:
        owner = parcel.entry(parcel.owner)
        assert owner is not None
        ops += [DonateToParcel(parcel.owner, parcel.handle, regions),
                MapInto(parcel.owner, parcel.handle, identity, MemRights(owner.rights),
                        owner.attr)]
    else:
        ops += [UnmapFrom(parcel.owner, parcel.handle, identity),
                DonateToParcel(parcel.owner, parcel.handle, regions)]
    if parcel.sanitize_create:
        ops.append(Sanitize(parcel.handle, regions))
    return tuple(ops)
