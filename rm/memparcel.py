"""The values of the RM's memparcel table: parcels, borrowers, EL2 memory operations, results.

A memparcel (gunyah-abi.md 4.1) is a set of *regions*, ranges of the owner's IPA space, that the
owner lends, shares or donates to the VMs of its ACL. ``rm.memparcel_table.MemparcelTable`` keeps
them; every operation returns a ``MemResult``: the RM error for the reply, the reply payload, the
notifications to send (each to one VM), and the EL2 memory operations the RM service must carry
out, in order, through hypercalls (memextent_donate, addrspace_map / unmap, zeroing through the
RM's own mapping). The operations are abstract and name ranges in the *owner's* IPA space, so the
service can find the backing pages; a ``RegionMap`` says where a borrower sees one of them:

- ``UnmapFrom(vmid, handle, maps)``: remove ``maps`` from ``vmid``'s stage 2; afterwards an access
  by ``vmid`` to those IPAs faults;
- ``DonateToParcel(owner, handle, regions)``: move the owner's regions into the parcel's
  memextent; mappings the owner still has stay (SHARE: a ``MapInto`` of the owner then sets its
  ACL rights; LEND and DONATE: an ``UnmapFrom`` of the owner comes first);
- ``MapInto(vmid, handle, maps, rights, attr)``: map the parcel's regions into ``vmid``;
- ``Sanitize(handle, regions)``: zero the regions' backing pages;
- ``RestoreOwner(owner, handle, regions)``: donate the regions back to the owner and map them at
  their original IPAs with full rights (reclaim);
- ``DonateToVm(old_owner, new_owner, handle, maps)``: a donation completes; the pages the
  preceding ``MapInto`` mapped into ``new_owner`` leave the parcel and are ``new_owner``'s own
  memory at the IPAs of ``maps``, still mapped there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from gunyah_net.abi.rm import MemRights, RmError, TransType, VmAuth, VmState

from .mem_payloads import AclEntry, AttrEntry, MemAcceptReply, MemHandleReply, SglEntry
from .vm_record import Notify

PAGE_SIZE = 0x1000
SIZE_2M = 0x20_0000
IPA_LIMIT = 1 << 44
"""The RM keeps page-aligned addresses in 32 bits: every IPA and size is below 2**44."""
IPA_ALLOC_BASE = 1 << 32
"""Where the RM's fallback IPA allocator starts searching a borrower's address space (4 GiB)."""


@dataclass(frozen=True)
class RegionMap:
    """Where a borrower sees the ``size`` parcel bytes at the owner's IPA ``owner_ipa``."""

    owner_ipa: int
    ipa: int
    size: int


# --- EL2 memory operations ------------------------------------------------------------------------


@dataclass(frozen=True)
class UnmapFrom:
    """Unmaps ``maps`` from ``vmid``'s stage 2; its later accesses there fault."""

    vmid: int
    handle: int
    maps: tuple[RegionMap, ...]


@dataclass(frozen=True)
class DonateToParcel:
    """Moves the owner's ``regions`` (owner IPAs) into the parcel's memextent."""

    owner: int
    handle: int
    regions: tuple[SglEntry, ...]


@dataclass(frozen=True)
class MapInto:
    """Maps the parcel's regions into ``vmid`` at the IPAs of ``maps`` with ``rights``."""

    vmid: int
    handle: int
    maps: tuple[RegionMap, ...]
    rights: MemRights
    attr: int


@dataclass(frozen=True)
class Sanitize:
    """Zeroes the backing pages of ``regions`` (owner IPAs)."""

    handle: int
    regions: tuple[SglEntry, ...]


@dataclass(frozen=True)
class RestoreOwner:
    """Returns ``regions`` to the owner, mapped again at their IPAs with full rights (RWX)."""

    owner: int
    handle: int
    regions: tuple[SglEntry, ...]


@dataclass(frozen=True)
class DonateToVm:
    """Completes a donation: the mapped pages now are ``new_owner``'s at the IPAs of ``maps``."""

    old_owner: int
    new_owner: int
    handle: int
    maps: tuple[RegionMap, ...]


El2Op = UnmapFrom | DonateToParcel | MapInto | Sanitize | RestoreOwner | DonateToVm


# --- the table's records --------------------------------------------------------------------------


@dataclass(frozen=True)
class Borrower:
    """One ACL entry of a parcel and what that VM has done with it.

    ``accepted`` is the RM's "shared" flag: set by the first MEM_ACCEPT (with or without DONE),
    cleared by MEM_RELEASE. ``ipas`` holds the IPAs allocated so far, one per region, or one for
    the whole parcel when ``contiguous``; ``mapped`` is set once a MEM_ACCEPT with DONE mapped them.
    """

    vmid: int
    rights: int
    attr: int
    accepted: bool = False
    mapped: bool = False
    contiguous: bool = False
    ipas: tuple[int, ...] = ()


@dataclass(frozen=True)
class Parcel:
    """One memparcel. ``regions`` are owner IPA ranges in SGL order; ``complete`` is False while
    MEM_APPEND may still add regions (the RM's state INIT)."""

    handle: int
    owner: int
    label: int
    mem_type: int
    trans_type: TransType
    acl: tuple[Borrower, ...]
    attrs: tuple[AttrEntry, ...] = ()
    regions: tuple[SglEntry, ...] = ()
    complete: bool = True
    sanitize_create: bool = False
    sanitize_reclaim: bool = False
    mem_info_tag: int | None = None

    @property
    def total_size(self) -> int:
        """The parcel's size in bytes: the sum of its regions."""
        return sum(r.size for r in self.regions)

    def entry(self, vmid: int) -> Borrower | None:
        """Returns ``vmid``'s ACL entry, or None if it is not in the ACL."""
        return next((b for b in self.acl if b.vmid == vmid), None)

    def acl_entries(self) -> tuple[AclEntry, ...]:
        """Returns the ACL as the wire's entries, in the order the owner gave them."""
        return tuple(AclEntry(b.vmid, b.rights) for b in self.acl)

    @property
    def in_use(self) -> bool:
        """True while any borrower holds it accepted (the RM's state SHARED)."""
        return any(b.accepted for b in self.acl)

    def region_maps(self, borrower: Borrower) -> tuple[RegionMap, ...]:
        """Returns where ``borrower`` sees each region, from its allocated IPAs."""
        if borrower.contiguous and borrower.ipas:
            maps, ipa = [], borrower.ipas[0]
            for region in self.regions:
                maps.append(RegionMap(region.ipa, ipa, region.size))
                ipa += region.size
            return tuple(maps)
        return tuple(RegionMap(r.ipa, ipa, r.size) for r, ipa in zip(self.regions, borrower.ipas))

    def is_private_to(self, vmid: int) -> bool:
        """True for normal memory with label 0 lent to ``vmid`` alone with RWX (RM
        ``memparcel_is_private``): the RM treats it as the VM's own RAM."""
        only = self.acl[0] if len(self.acl) == 1 else None
        return (self.mem_type == 0 and self.label == 0 and only is not None
                and only.vmid == vmid and only.rights == MemRights.RWX and only.attr == 0)


def reply_sgl(parcel: Parcel, borrower: Borrower, first: int, count: int) -> tuple[SglEntry, ...]:
    """Returns the SGL of IPAs ``first`` .. ``first + count`` of ``borrower``'s allocation."""
    if borrower.contiguous:
        return tuple(SglEntry(ipa, parcel.total_size) for ipa in borrower.ipas[first:first + count])
    sizes = [r.size for r in parcel.regions]
    return tuple(SglEntry(borrower.ipas[i], sizes[i]) for i in range(first, first + count))


MemReply = MemHandleReply | MemAcceptReply


class Refusal(Exception):
    """Aborts a memparcel operation with the RM error its reply carries."""

    def __init__(self, error: RmError, reason: str = "") -> None:
        super().__init__(f"{error.name}: {reason}" if reason else error.name)
        self.error = error


def require(condition: bool, error: RmError, reason: str = "") -> None:
    """Raises ``Refusal(error)`` unless ``condition`` holds."""
    if not condition:
        raise Refusal(error, reason)


@dataclass(frozen=True)
class MemResult:
    """The answer to one memparcel call: reply error and payload, notifications, EL2 operations.

    Carry out ``el2_ops`` in order before sending the reply; send ``notifications`` after them.
    A failed call has no operations, except ``auto_accept_for_start``, which reports the
    operations of the accepts that succeeded before the one that failed.
    """

    error: RmError = RmError.OK
    reply: MemReply | None = None
    notifications: tuple[Notify, ...] = ()
    el2_ops: tuple[El2Op, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when the reply's error is RM_OK."""
        return self.error is RmError.OK


class VmView(Protocol):
    """What the memparcel table needs to know about a VM (``rm.vm_record.VmRecord`` fits)."""

    @property
    def vm_state(self) -> VmState: ...

    @property
    def auth(self) -> VmAuth | None: ...


class VmLookup(Protocol):
    """Finds VMs by vmid (``rm.vm_table.VmTable`` fits)."""

    def get(self, vmid: int) -> VmView | None: ...
