"""The RM's memparcel table: MEM_LEND/SHARE/DONATE, APPEND, ACCEPT, RELEASE, RECLAIM, NOTIFY.

Pure: every call takes the calling VM's vmid and a decoded request (``rm.mem_payloads``) and
returns a ``MemResult`` (``rm.memparcel``). Checks run in the order of the public RM's
``memparcel.c`` and fail with its error codes. Where gunyah-net decides something the RM leaves
open, it is said here:

- The owner's memory is what the service registered with ``register_memory``; a region outside
  it, or already in another of the owner's parcels, is MEM_INVALID (RM ``vm_memory_lookup``).
- An ACL vmid must name a VM the ``VmLookup`` knows, or the RM (0xFF); an unknown mem_type is
  ARGUMENT_INVALID.
- ACCEPT and MEM_NOTIFY(SHARED) of a parcel still waiting for MEM_APPEND(END) are DENIED (the RM
  does not check).
- ACCEPT without an SGL maps each region at the owner's IPA if that range is free in the borrower,
  else the RM allocator picks one (``rm.memparcel_space``); the reply's SGL says where.
- With ``notify_owner=True`` (the default) a completed ACCEPT sends MEM_ACCEPTED and a RELEASE
  sends MEM_RELEASED to the owner. The public RM sends those only when the borrower asks with
  MEM_NOTIFY(ACCEPTED / RELEASED), which works here as well.
- MEM_NOTIFY(SHARED) to a borrower in READY sends it nothing: ``auto_accept_for_start`` accepts
  the parcel when the VM starts and then tells the owner MEM_ACCEPTED.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Concatenate, ParamSpec

from gunyah_net.abi.rm import (
    MemAppendFlag,
    MemCreateFlag,
    MemNotifyFlag,
    MemReclaimFlag,
    MemReleaseFlag,
    MemRights,
    MemType,
    RmError,
    TransType,
    VmAuth,
    VmState,
    Vmid,
)

from .mem_payloads import (
    MemAccept,
    MemAppend,
    MemCreate,
    MemHandleReply,
    MemNotify,
    MemReclaim,
    MemRelease,
    SglEntry,
)
from .memparcel import (
    Borrower,
    El2Op,
    MemResult,
    Parcel,
    RegionMap,
    Refusal,
    RestoreOwner,
    Sanitize,
    UnmapFrom,
    VmLookup,
    require,
)
from .memparcel_accept import plan_accept, start_request
from .memparcel_create import check_create, owner_ops
from .memparcel_notify import (
    borrower_claim,
    notify_targets,
    owner_notice,
    recall_notice,
    shared_notice,
)
from .memparcel_space import AddressSpace, VmMemory, check_owner_regions
from .vm_record import Notify

__all__ = ["MemparcelTable", "VmLookup"]


P = ParamSpec("P")


def _answers(method: Callable[Concatenate[MemparcelTable, P], MemResult]
             ) -> Callable[Concatenate[MemparcelTable, P], MemResult]:
    @functools.wraps(method)
    def answer(self: MemparcelTable, *args: P.args, **kwargs: P.kwargs) -> MemResult:
        try:
            return method(self, *args, **kwargs)
        except Refusal as refusal:
            return MemResult(refusal.error)
    return answer


class MemparcelTable:
    """Every memparcel by handle, and the memory each VM owns."""

    def __init__(self, vms: VmLookup, *, notify_owner: bool = True) -> None:
        self._vms = vms
        self._auto_owner_notes = notify_owner
        self._parcels: dict[int, Parcel] = {}
        self._memory = VmMemory()
        self._next_handle = 0

    # --- memory and queries -----------------------------------------------------------------------

    def register_memory(self, vmid: int, regions: Iterable[SglEntry],
                        mem_type: MemType = MemType.NORMAL) -> None:
        """Records IPA ranges ``vmid`` owns and may lend, share or donate."""
        self._memory.register(vmid, mem_type, regions)

    def forget_memory(self, vmid: int) -> None:
        """Forgets the memory ``vmid`` owns (the VM is gone)."""
        self._memory.forget(vmid)

    def get(self, handle: int) -> Parcel | None:
        """Returns the parcel ``handle``, or None."""
        return self._parcels.get(handle)

    def owned_by(self, vmid: int) -> tuple[Parcel, ...]:
        """Returns the parcels ``vmid`` owns, by handle."""
        return tuple(p for _, p in sorted(self._parcels.items()) if p.owner == vmid)

    def accepted_by(self, vmid: int) -> tuple[Parcel, ...]:
        """Returns the parcels ``vmid`` has accepted, by handle."""
        return tuple(p for _, p in sorted(self._parcels.items())
                     if (e := p.entry(vmid)) is not None and e.accepted)

    def maps(self, handle: int, vmid: int) -> tuple[RegionMap, ...]:
        """Returns where ``vmid`` sees the parcel's regions (empty if it has not accepted)."""
        parcel = self._parcels.get(handle)
        entry = parcel.entry(vmid) if parcel else None
        return parcel.region_maps(entry) if parcel and entry else ()

    def locate(self, handle: int, offset: int, size: int) -> tuple[SglEntry, ...]:
        """Returns the owner IPA ranges holding bytes [offset, offset + size) of the parcel."""
        parcel = self._parcels.get(handle)
        if parcel is None or offset < 0 or size < 0 or offset + size > parcel.total_size:
            raise ValueError(f"parcel {handle:#x} has no bytes [{offset:#x}, {offset + size:#x})")
        ranges, base = [], 0
        for region in parcel.regions:
            start, end = max(offset, base), min(offset + size, base + region.size)
            if start < end:
                ranges.append(SglEntry(region.ipa + start - base, end - start))
            base += region.size
        return tuple(ranges)

    def check_image_parcel(self, vmid: int, handle: int, image_offset: int, image_size: int,
                           dtb_offset: int, dtb_size: int) -> RmError:
        """VM_CONFIG_IMAGE's parcel checks: MEM_INVALID unless ``vmid`` is in the parcel's ACL,
        ARGUMENT_INVALID unless the image and DT ranges fit inside the parcel."""
        parcel = self._parcels.get(handle)
        if parcel is None or parcel.entry(vmid) is None or parcel.owner == vmid:
            return RmError.MEM_INVALID
        total = parcel.total_size
        if image_offset + image_size > total or dtb_offset + dtb_size > total:
            return RmError.ARGUMENT_INVALID
        return RmError.OK

    # --- calls ------------------------------------------------------------------------------------

    def call(self, caller: int, request: object) -> MemResult:
        """Dispatches one decoded memparcel request from ``caller``."""
        match request:
            case MemCreate():
                return self.create(caller, request)
            case MemAppend():
                return self.append(caller, request)
            case MemAccept():
                return self.accept(caller, request)
            case MemRelease():
                return self.release(caller, request)
            case MemReclaim():
                return self.reclaim(caller, request)
            case MemNotify():
                return self.notify(caller, request)
        raise TypeError(f"{type(request).__name__} is not a memparcel request")

    @_answers
    def create(self, caller: int, request: MemCreate) -> MemResult:
        """MEM_LEND / MEM_SHARE / MEM_DONATE: makes a parcel of the caller's memory; replies its
        handle. The owner loses access (LEND, DONATE) or keeps it with its ACL rights (SHARE)."""
        owned = len(self.owned_by(caller))
        acl = check_create(request, caller, owned, self._vm_exists)
        check_owner_regions(request.sgl, self._memory.owned(caller, request.mem_type),
                            self._owner_parcel_ranges(caller))
        handle = self._allocate_handle()
        parcel = Parcel(handle, caller, request.label, request.mem_type,
                        TransType(request.TRANS_TYPE), acl, request.attrs, request.sgl,
                        complete=not request.flags & MemCreateFlag.APPEND,
                        sanitize_create=bool(request.flags & MemCreateFlag.SANITIZE))
        self._parcels[handle] = parcel
        return MemResult(reply=MemHandleReply(handle), el2_ops=owner_ops(parcel, request.sgl))

    @_answers
    def append(self, caller: int, request: MemAppend) -> MemResult:
        """MEM_APPEND: adds regions to the caller's unfinished parcel; END finishes it."""
        require(bool(request.sgl), RmError.ARGUMENT_INVALID, "empty SGL")
        parcel = self._parcel(request.handle)
        require(caller == parcel.owner, RmError.DENIED, "not the owner")
        require(not parcel.complete, RmError.DENIED, "the parcel is complete")
        check_owner_regions(request.sgl, self._memory.owned(caller, parcel.mem_type),
                            self._owner_parcel_ranges(caller))
        updated = replace(parcel, regions=parcel.regions + request.sgl,
                          complete=bool(request.flags & MemAppendFlag.END))
        self._parcels[parcel.handle] = updated
        return MemResult(el2_ops=owner_ops(updated, request.sgl))

    @_answers
    def accept(self, caller: int, request: MemAccept) -> MemResult:
        """MEM_ACCEPT: a borrower in the ACL reserves IPAs and, with DONE, maps the parcel."""
        parcel = self._parcel(request.handle)
        require(parcel.complete, RmError.DENIED, "the parcel awaits MEM_APPEND(END)")
        space = AddressSpace(self._occupied(caller))
        plan = plan_accept(parcel, caller, request, space, self._vm_exists(caller))
        self._parcels[parcel.handle] = plan.parcel
        if plan.parcel.trans_type is TransType.DONATE and plan.done:
            self._complete_donation(plan.parcel, caller)
        notes = self._owner_note(plan.parcel, caller, accepted=True) if plan.done else ()
        return MemResult(reply=plan.reply, notifications=notes, el2_ops=plan.ops)

    @_answers
    def release(self, caller: int, request: MemRelease) -> MemResult:
        """MEM_RELEASE: a borrower unmaps the parcel; SANITIZE (needs W) zeroes it at reclaim."""
        parcel = self._parcel(request.handle)
        require(self._vm_exists(caller), RmError.VMID_INVALID, "unknown VM")
        entry = parcel.entry(caller)
        require(entry is not None, RmError.HANDLE_INVALID, "caller is not in the ACL")
        assert entry is not None
        require(caller != parcel.owner, RmError.DENIED, "the owner cannot release")
        require(entry.accepted, RmError.MEM_RELEASED, "not accepted")
        sanitize = bool(request.flags & MemReleaseFlag.SANITIZE)
        if sanitize:
            require(parcel.mem_type != MemType.IO, RmError.ARGUMENT_INVALID, "IO memory")
            require(bool(entry.rights & MemRights.W), RmError.ARGUMENT_INVALID, "no write right")
        ops = self._drop(parcel, entry, sanitize)
        return MemResult(notifications=self._owner_note(parcel, caller, accepted=False),
                         el2_ops=ops)

    @_answers
    def reclaim(self, caller: int, request: MemReclaim) -> MemResult:
        """MEM_RECLAIM: the owner takes the parcel back once every borrower has released it;
        the memory is zeroed if anyone asked for sanitize-on-reclaim."""
        parcel = self._parcel(request.handle)
        require(caller == parcel.owner, RmError.DENIED, "not the owner")
        require(not parcel.in_use, RmError.MEM_INUSE, "a borrower still holds it")
        sanitize = parcel.sanitize_reclaim
        if request.flags & MemReclaimFlag.SANITIZE:
            require(parcel.mem_type != MemType.IO, RmError.ARGUMENT_INVALID, "IO memory")
            sanitize = True
        del self._parcels[parcel.handle]
        ops: list[El2Op] = [Sanitize(parcel.handle, parcel.regions)] if sanitize else []
        ops.append(RestoreOwner(parcel.owner, parcel.handle, parcel.regions))
        return MemResult(el2_ops=tuple(ops))

    @_answers
    def notify(self, caller: int, request: MemNotify) -> MemResult:
        """MEM_NOTIFY: SHARED and RECALL (owner only) tell the listed VMs; ACCEPTED and
        RELEASED (a borrower) tell the owner."""
        parcel = self._parcel(request.handle)
        tag = parcel.mem_info_tag
        require(tag is None or tag == request.mem_info_tag, RmError.ARGUMENT_INVALID,
                "mem_info_tag mismatch")
        match request.flags:
            case MemNotifyFlag.SHARED:
                return MemResult(notifications=self._notify_shared(caller, parcel, request))
            case MemNotifyFlag.RELEASED | MemNotifyFlag.ACCEPTED as flag:
                claim = borrower_claim(parcel, caller, flag == MemNotifyFlag.ACCEPTED)
                return MemResult(notifications=(claim,))
            case MemNotifyFlag.RECALL:
                targets = notify_targets(parcel, caller, request.vmids, self._vm_known)
                recall = recall_notice(parcel)
                return MemResult(notifications=tuple(Notify(v, recall) for v in targets))
        raise Refusal(RmError.ARGUMENT_INVALID, f"flags {request.flags:#x}")

    # --- VM lifecycle hooks -----------------------------------------------------------------------

    def auto_accept_for_start(self, vmid: int, image: tuple[int, int] | None = None
                              ) -> MemResult:
        """Accepts, at VM start, every complete parcel whose ACL names ``vmid`` and that it has
        not accepted: first the image parcel ``image = (handle, base IPA)``, mapped contiguously
        at its base, then the others at the owner's IPAs. Private memory is marked
        sanitize-on-reclaim unless the VM's auth is NONE. Stops at the first failure, whose
        error the result carries along with what the earlier accepts did."""
        record = self._vms.get(vmid)
        if record is None:
            return MemResult(RmError.VMID_INVALID)
        unsanitized = record.auth in (None, VmAuth.NONE)
        requests = [start_request(self._parcels.get(handle), vmid, unsanitized, base)
                    for handle, base in ([image] if image else [])]
        skip = {image[0]} if image else set()
        requests += [start_request(p, vmid, unsanitized, None)
                     for p in self._targeting(vmid) if p.handle not in skip]
        notes: list[Notify] = []
        ops: list[El2Op] = []
        for request in requests:
            result = self.accept(vmid, request) if request else MemResult(RmError.HANDLE_INVALID)
            notes += result.notifications
            ops += result.el2_ops
            if not result.ok:
                return MemResult(result.error, notifications=tuple(notes), el2_ops=tuple(ops))
        return MemResult(notifications=tuple(notes), el2_ops=tuple(ops))

    def release_all_accepted(self, vmid: int) -> MemResult:
        """VM reset: releases every parcel ``vmid`` accepted, without sanitizing; each owner
        gets MEM_RELEASED."""
        notes: list[Notify] = []
        ops: list[El2Op] = []
        for parcel in self.accepted_by(vmid):
            entry = parcel.entry(vmid)
            assert entry is not None
            ops += self._drop(parcel, entry, sanitize=False)
            notes.append(owner_notice(parcel, vmid, accepted=False))
        return MemResult(notifications=tuple(notes), el2_ops=tuple(ops))

    # --- internals --------------------------------------------------------------------------------

    def _parcel(self, handle: int) -> Parcel:
        parcel = self._parcels.get(handle)
        if parcel is None:
            raise Refusal(RmError.HANDLE_INVALID, f"no parcel {handle:#x}")
        return parcel

    def _vm_known(self, vmid: int) -> bool:
        return self._vms.get(vmid) is not None

    def _vm_exists(self, vmid: int) -> bool:
        return vmid == Vmid.RM or self._vms.get(vmid) is not None

    def _allocate_handle(self) -> int:
        while self._next_handle in self._parcels or self._next_handle == 0xFFFF_FFFF:
            self._next_handle = (self._next_handle + 1) & 0xFFFF_FFFF
        handle = self._next_handle
        self._next_handle = (handle + 1) & 0xFFFF_FFFF
        return handle

    def _owner_parcel_ranges(self, owner: int) -> list[tuple[int, int]]:
        return [(r.ipa, r.ipa + r.size) for p in self.owned_by(owner) for r in p.regions]

    def _occupied(self, vmid: int) -> list[tuple[int, int]]:
        """The IPA ranges ``vmid`` owns or where it has parcels mapped or reserved."""
        spans = self._memory.owned(vmid)
        for parcel in self._parcels.values():
            entry = parcel.entry(vmid)
            if entry is not None and parcel.owner != vmid:
                spans += [(m.ipa, m.ipa + m.size) for m in parcel.region_maps(entry)]
        return spans

    def _targeting(self, vmid: int) -> list[Parcel]:
        return [p for _, p in sorted(self._parcels.items())
                if p.complete and p.owner != vmid and (e := p.entry(vmid)) and not e.accepted]

    def _drop(self, parcel: Parcel, entry: Borrower, sanitize: bool) -> tuple[El2Op, ...]:
        """Forgets ``entry``'s acceptance; returns the unmap if it was mapped."""
        ops = (UnmapFrom(entry.vmid, parcel.handle, parcel.region_maps(entry)),) \
            if entry.mapped else ()
        cleared = replace(entry, accepted=False, mapped=False, contiguous=False, ipas=())
        acl = tuple(cleared if b.vmid == entry.vmid else b for b in parcel.acl)
        self._parcels[parcel.handle] = replace(
            parcel, acl=acl, sanitize_reclaim=parcel.sanitize_reclaim or sanitize)
        return ops

    def _complete_donation(self, parcel: Parcel, recipient: int) -> None:
        """The donation is done: the pages leave the old owner and become the recipient's."""
        entry = parcel.entry(recipient)
        assert entry is not None
        for region in parcel.regions:
            self._memory.take(parcel.owner, parcel.mem_type,
                              (region.ipa, region.ipa + region.size))
        for m in parcel.region_maps(entry):
            self._memory.give(recipient, parcel.mem_type, (m.ipa, m.ipa + m.size))
        del self._parcels[parcel.handle]

    def _owner_note(self, parcel: Parcel, vmid: int, accepted: bool) -> tuple[Notify, ...]:
        return (owner_notice(parcel, vmid, accepted),) if self._auto_owner_notes else ()

    def _notify_shared(self, caller: int, parcel: Parcel, request: MemNotify
                       ) -> tuple[Notify, ...]:
        targets = notify_targets(parcel, caller, request.vmids, self._vm_known)
        require(parcel.complete, RmError.DENIED, "the parcel awaits MEM_APPEND(END)")
        if parcel.mem_info_tag is None:
            parcel = replace(parcel, mem_info_tag=request.mem_info_tag)
            self._parcels[parcel.handle] = parcel
        shared = shared_notice(parcel)
        return tuple(Notify(vmid, shared) for vmid in targets
                     if (record := self._vms.get(vmid)) and record.vm_state != VmState.READY)
