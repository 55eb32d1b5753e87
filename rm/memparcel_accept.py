"""MEM_ACCEPT: its checks, the IPAs a borrower gets, and the mapping it causes.

``plan_accept`` applies the public RM's checks in its order (RM ``memparcel_do_accept``):

1. mem_type or trans_type differ from the parcel's: ARGUMENT_INVALID;
2. VALIDATE_SANITIZED of a parcel not sanitized at creation, VALIDATE_LABEL with another label,
   VALIDATE_ACL_ATTR with another ACL or attribute list (same entries, same order):
   VALIDATE_FAILED;
3. MAP_OTHER: DENIED (only mapping into the caller is supported); a non-zero map_vmid without
   it: ARGUMENT_INVALID;
4. the caller is unknown or not in the ACL: VMID_INVALID; it is the owner, or has already mapped
   the parcel: DENIED;
5. MAP_CONTIGUOUS on IO memory, or unlike an earlier partial accept: ARGUMENT_INVALID;
   SANITIZE on IO memory or without the W right: ARGUMENT_INVALID;
6. an SGL with more entries than IPAs still to allocate, a size that differs from the region
   (or, contiguous, from the whole parcel), a misaligned IPA: ARGUMENT_INVALID; an IPA range in
   use in the borrower: NORESOURCE;
7. DONE before every IPA is allocated: ARGUMENT_INVALID.

Without DONE, an accept only reserves IPAs, up to 512 per call (the reply says INCOMPLETE while
more remain); the call with DONE maps them. Without an SGL the reply lists the IPAs reserved by
this call; with one, the reply is standard.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gunyah_net.abi.rm import (
    MEMPARCEL_MAX_LIST_ENTRIES,
    MemAcceptFlag,
    MemAcceptReplyFlag,
    MemRights,
    MemType,
    RmError,
    TransType,
)

from .mem_payloads import MemAccept, MemAcceptReply, SglEntry
from .memparcel import Borrower, DonateToVm, El2Op, MapInto, Parcel, reply_sgl, require
from .memparcel_space import AddressSpace

_F = MemAcceptFlag


@dataclass(frozen=True)
class AcceptPlan:
    """What an accepted MEM_ACCEPT changes: the updated parcel, the reply, the EL2 work."""

    parcel: Parcel
    reply: MemAcceptReply | None
    ops: tuple[El2Op, ...]
    done: bool


def plan_accept(parcel: Parcel, caller: int, request: MemAccept, space: AddressSpace,
                vm_exists: bool) -> AcceptPlan:
    """Checks ``caller``'s MEM_ACCEPT of ``parcel`` and plans it (``space``: its IPA space)."""
    _check_request(parcel, request)
    require(vm_exists, RmError.VMID_INVALID, f"no VM {caller:#x}")
    entry = parcel.entry(caller)
    require(entry is not None, RmError.VMID_INVALID, f"VM {caller:#x} is not in the ACL")
    assert entry is not None
    require(caller != parcel.owner and not entry.mapped, RmError.DENIED,
            "the owner, or a borrower that has already mapped it")
    contiguous = bool(request.flags & _F.MAP_CONTIGUOUS)
    if contiguous:
        require(parcel.mem_type == MemType.NORMAL, RmError.ARGUMENT_INVALID, "contiguous IO")
    require(not entry.ipas or entry.contiguous == contiguous, RmError.ARGUMENT_INVALID,
            "MAP_CONTIGUOUS differs from the earlier accept")
    sanitize = bool(request.flags & _F.SANITIZE)
    if sanitize:
        require(parcel.mem_type != MemType.IO, RmError.ARGUMENT_INVALID, "IO memory")
        require(bool(entry.rights & MemRights.W), RmError.ARGUMENT_INVALID, "no write right")
    return _reserve_and_map(parcel, entry, request, space, contiguous, sanitize)


def _check_request(parcel: Parcel, request: MemAccept) -> None:
    require(request.mem_type == parcel.mem_type and request.trans_type == parcel.trans_type,
            RmError.ARGUMENT_INVALID, "mem_type or trans_type differ")
    flags = request.flags
    require(not flags & _F.VALIDATE_SANITIZED or parcel.sanitize_create,
            RmError.VALIDATE_FAILED, "not sanitized at creation")
    require(not flags & _F.VALIDATE_LABEL or request.label == parcel.label,
            RmError.VALIDATE_FAILED, "label differs")
    if flags & _F.VALIDATE_ACL_ATTR:
        require(request.acl == parcel.acl_entries() and request.attrs == parcel.attrs,
                RmError.VALIDATE_FAILED, "ACL or attributes differ")
    require(not flags & _F.MAP_OTHER, RmError.DENIED, "MAP_OTHER is not supported")
    require(request.map_vmid == 0, RmError.ARGUMENT_INVALID, "map_vmid without MAP_OTHER")


def _reserve_and_map(parcel: Parcel, entry: Borrower, request: MemAccept, space: AddressSpace,
                     contiguous: bool, sanitize: bool) -> AcceptPlan:
    needed = 1 if contiguous else len(parcel.regions)
    have = len(entry.ipas)
    room = min(needed - have, MEMPARCEL_MAX_LIST_ENTRIES)
    count = len(request.sgl) if request.sgl else room
    require(count <= room, RmError.ARGUMENT_INVALID, f"{count} SGL entries, {room} to allocate")
    ipas = _reserve(parcel, request.sgl, space, contiguous, have, count)
    entry = replace(entry, accepted=True, contiguous=contiguous, ipas=entry.ipas + ipas)
    reply = None
    if not request.sgl:
        incomplete = MemAcceptReplyFlag.INCOMPLETE if have + count < needed else 0
        reply = MemAcceptReply(reply_sgl(parcel, entry, have, count), int(incomplete))
    done = bool(request.flags & _F.DONE)
    if done:
        require(len(entry.ipas) == needed, RmError.ARGUMENT_INVALID, "IPAs still to allocate")
        entry = replace(entry, mapped=True)
    acl = tuple(entry if b.vmid == entry.vmid else b for b in parcel.acl)
    updated = replace(parcel, acl=acl, sanitize_reclaim=parcel.sanitize_reclaim or sanitize)
    return AcceptPlan(updated, reply, _map_ops(updated, entry) if done else (), done)


def _reserve(parcel: Parcel, sgl: tuple[SglEntry, ...], space: AddressSpace, contiguous: bool,
             first: int, count: int) -> tuple[int, ...]:
    """Reserves ``count`` IPAs from mapping ``first`` on: requested ones, or chosen."""
    if contiguous:
        total = parcel.total_size
        if not count:
            return ()
        if sgl:
            require(sgl[0].size == total, RmError.ARGUMENT_INVALID, "size differs from the parcel")
            return (space.place(sgl[0].ipa, total),)
        return (space.choose(parcel.regions[0].ipa, total),)
    ipas = []
    for j in range(count):
        region = parcel.regions[first + j]
        if sgl:
            require(sgl[j].size == region.size, RmError.ARGUMENT_INVALID,
                    f"SGL entry {j} size differs from region {first + j}")
            ipas.append(space.place(sgl[j].ipa, region.size))
        else:
            ipas.append(space.choose(region.ipa, region.size))
    return tuple(ipas)


def _map_ops(parcel: Parcel, entry: Borrower) -> tuple[El2Op, ...]:
    maps = parcel.region_maps(entry)
    mapping = MapInto(entry.vmid, parcel.handle, maps, MemRights(entry.rights), entry.attr)
    if parcel.trans_type is TransType.DONATE:
        return (mapping, DonateToVm(parcel.owner, entry.vmid, parcel.handle, maps))
    return (mapping,)


def start_request(parcel: Parcel | None, vmid: int, unsanitized: bool,
                  base: int | None) -> MemAccept | None:
    """The MEM_ACCEPT the RM makes for ``vmid`` at its start: at ``base``, contiguously, for
    the image parcel, else where the owner has it; None for an unknown parcel."""
    if parcel is None:
        return None
    flags = accept_flags_for_start(parcel, vmid, unsanitized, contiguous=base is not None)
    sgl = (SglEntry(base, parcel.total_size),) if base is not None else ()
    return MemAccept(parcel.handle, parcel.mem_type, parcel.trans_type, flags, 0, sgl=sgl)


def accept_flags_for_start(parcel: Parcel, vmid: int, unsanitized: bool,
                           contiguous: bool) -> int:
    """The flags the RM accepts a parcel with at VM start: DONE; MAP_CONTIGUOUS for the image
    parcel; SANITIZE (zero on reclaim) for the image and other private memory unless the VM's
    auth is NONE, whose memory the RM leaves unsanitized (RM ``mem_unsanitized``)."""
    flags = int(_F.DONE)
    if contiguous:
        flags |= _F.MAP_CONTIGUOUS
    private = contiguous or parcel.is_private_to(vmid)
    entry = parcel.entry(vmid)
    writable = entry is not None and bool(entry.rights & MemRights.W)
    if private and writable and not unsanitized and parcel.mem_type == MemType.NORMAL:
        flags |= _F.SANITIZE
    return flags
