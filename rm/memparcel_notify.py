"""The memparcel notifications: MEM_SHARED and MEM_RECALL to borrowers, MEM_ACCEPTED and
MEM_RELEASED to the owner, and MEM_NOTIFY's checks (RM ``memparcel_notify``).

MEM_NOTIFY(SHARED / RECALL) comes from the owner (else DENIED) with a list of 1 .. len(ACL)
vmids (else ARGUMENT_INVALID), each a known VM (else VMID_INVALID) in the ACL (else
ARGUMENT_INVALID). MEM_NOTIFY(ACCEPTED / RELEASED) comes from a VM in the ACL (else
HANDLE_INVALID) whose state matches: MEM_INUSE if it asks RELEASED while holding the parcel,
MEM_RELEASED if it asks ACCEPTED without holding it.
"""

from __future__ import annotations

from collections.abc import Callable

from gunyah_net.abi.rm import MEMPARCEL_MAX_LIST_ENTRIES, RmError

from .mem_payloads import (
    MemAcceptedNotify,
    MemRecallNotify,
    MemReleasedNotify,
    MemSharedNotify,
)
from .memparcel import Parcel, Refusal, require
from .vm_record import Notify


def owner_notice(parcel: Parcel, vmid: int, accepted: bool) -> Notify:
    """MEM_ACCEPTED (or MEM_RELEASED) to the owner: borrower ``vmid`` accepted (released)."""
    payload = (MemAcceptedNotify if accepted else MemReleasedNotify)(
        parcel.handle, vmid, parcel.mem_info_tag or 0)
    return Notify(parcel.owner, payload)


def borrower_claim(parcel: Parcel, vmid: int, accepted: bool) -> Notify:
    """MEM_NOTIFY(ACCEPTED / RELEASED) from ``vmid``: checks its claim, returns the notice."""
    entry = parcel.entry(vmid)
    require(entry is not None, RmError.HANDLE_INVALID, f"VM {vmid:#x} is not in the ACL")
    assert entry is not None
    if entry.accepted != accepted:
        raise Refusal(RmError.MEM_INUSE if entry.accepted else RmError.MEM_RELEASED)
    return owner_notice(parcel, vmid, accepted)


def notify_targets(parcel: Parcel, caller: int, vmids: tuple[int, ...],
                   vm_known: Callable[[int], bool]) -> tuple[int, ...]:
    """Checks the owner's VMID list of MEM_NOTIFY(SHARED / RECALL); returns it."""
    require(caller == parcel.owner, RmError.DENIED, "not the owner")
    require(0 < len(vmids) <= len(parcel.acl), RmError.ARGUMENT_INVALID,
            f"{len(vmids)} VMIDs for an ACL of {len(parcel.acl)}")
    for vmid in vmids:
        require(vm_known(vmid), RmError.VMID_INVALID, f"no VM {vmid:#x}")
        require(parcel.entry(vmid) is not None, RmError.ARGUMENT_INVALID,
                f"VM {vmid:#x} is not in the ACL")
    return vmids


def shared_notice(parcel: Parcel) -> MemSharedNotify:
    """MEM_SHARED: the parcel's handle, types, owner, label, tag, ACL, region sizes (at most
    512, as the RM truncates), attributes; flags bit0 when it was sanitized at creation."""
    sizes = tuple(r.size for r in parcel.regions[:MEMPARCEL_MAX_LIST_ENTRIES])
    return MemSharedNotify(parcel.handle, parcel.mem_type, parcel.trans_type,
                           int(parcel.sanitize_create), parcel.owner, parcel.label,
                           parcel.mem_info_tag or 0, parcel.acl_entries(), sizes, parcel.attrs)


def recall_notice(parcel: Parcel) -> MemRecallNotify:
    """MEM_RECALL: the owner asks for the parcel back."""
    return MemRecallNotify(parcel.handle, parcel.mem_info_tag or 0)
