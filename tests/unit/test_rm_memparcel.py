"""The RM's memparcel table: create, append and notify, every rule with its exact RM error, and
the EL2 memory work each call asks for (accept/release/reclaim are in test_rm_memparcel_use.py)."""

from dataclasses import dataclass

import pytest

from gunyah_net.abi.rm import (
    MemAttr,
    MemCreateFlag,
    MemNotifyFlag,
    MemRights,
    MemType,
    RmError,
    TransType,
    VmAuth,
    VmState,
)
from rm import vm_payloads as vp
from rm.mem_payloads import (
    AclEntry,
    AttrEntry,
    MemAccept,
    MemAppend,
    MemDonate,
    MemLend,
    MemNotify,
    MemReclaim,
    MemRecallNotify,
    MemShare,
    MemSharedNotify,
    SglEntry,
)
from rm.memparcel import DonateToParcel, MapInto, RegionMap, Sanitize, UnmapFrom
from rm.memparcel_table import MemparcelTable
from rm.vm_table import VmTable

HOST, GUEST, OTHER, IDLE = 3, 0x80, 0x81, 0x82
RAM = 0x8000_0000
MIB = 0x10_0000
R, RW, RWX = MemRights.R, MemRights.RW, MemRights.RWX
DONE = 0x80


@dataclass(frozen=True)
class Vm:
    vm_state: VmState
    auth: VmAuth | None = VmAuth.NONE


class Vms:
    def __init__(self, **states):
        self.vms = {HOST: Vm(VmState.RUNNING), GUEST: Vm(VmState.RUNNING),
                    OTHER: Vm(VmState.RUNNING), IDLE: Vm(VmState.READY)}

    def get(self, vmid):
        return self.vms.get(vmid)


def table(**kwargs):
    t = MemparcelTable(Vms(), **kwargs)
    t.register_memory(HOST, [SglEntry(RAM, 16 * MIB)])
    t.register_memory(HOST, [SglEntry(0x1000_0000, MIB)], MemType.IO)
    return t


def lend(t, sgl=((RAM, MIB),), acl=((GUEST, RWX),), flags=0, label=0, owner=HOST):
    request = MemLend(0, flags, label, tuple(AclEntry(*a) for a in acl),
                      tuple(SglEntry(*s) for s in sgl))
    return t.create(owner, request)


def handle_of(result):
    assert result.ok, result
    return result.reply.handle


# --- create ---------------------------------------------------------------------------------------


def test_lend_replies_handles_from_zero_and_unmaps_the_owner_before_donating():
    t = table()
    first = lend(t)
    assert handle_of(first) == 0
    region = SglEntry(RAM, MIB)
    assert first.el2_ops == (UnmapFrom(HOST, 0, (RegionMap(RAM, RAM, MIB),)),
                             DonateToParcel(HOST, 0, (region,)))
    assert handle_of(lend(t, sgl=((RAM + MIB, MIB),))) == 1
    assert t.get(0).trans_type is TransType.LEND and t.get(0).regions == (region,)


def test_share_keeps_the_owner_mapped_with_its_acl_rights():
    t = table()
    result = t.create(HOST, MemShare(0, 0, 5, (AclEntry(HOST, R), AclEntry(GUEST, RW)),
                                     (SglEntry(RAM, MIB),)))
    handle = handle_of(result)
    assert result.el2_ops == (DonateToParcel(HOST, handle, (SglEntry(RAM, MIB),)),
                              MapInto(HOST, handle, (RegionMap(RAM, RAM, MIB),), R,
                                      MemAttr.NORMAL))


def test_sanitize_at_creation_zeroes_after_the_donation():
    t = table()
    result = lend(t, flags=MemCreateFlag.SANITIZE)
    assert result.el2_ops[-1] == Sanitize(0, (SglEntry(RAM, MIB),))
    assert t.get(0).sanitize_create and not t.get(0).sanitize_reclaim


def _create(kind, acl, sgl=((RAM, MIB),), mem_type=0, flags=0, attrs=()):
    return kind(mem_type, flags, 0, tuple(AclEntry(*a) for a in acl),
                tuple(SglEntry(*s) for s in sgl), tuple(AttrEntry(*a) for a in attrs))


IO = 0x1000_0000
CREATE_ERRORS = {
    "empty ACL": (_create(MemLend, ()), RmError.ARGUMENT_INVALID),
    "empty SGL": (_create(MemLend, ((GUEST, RWX),), sgl=()), RmError.ARGUMENT_INVALID),
    "donate to two": (_create(MemDonate, ((GUEST, RWX), (OTHER, RWX))), RmError.ARGUMENT_INVALID),
    "donate without full rights": (_create(MemDonate, ((GUEST, RW),)), RmError.DENIED),
    "donate IO without RW": (_create(MemDonate, ((GUEST, R),), sgl=((IO, 0x1000),), mem_type=1),
                             RmError.DENIED),
    "donate to the owner": (_create(MemDonate, ((HOST, RWX),)), RmError.ARGUMENT_INVALID),
    "share without the owner": (_create(MemShare, ((GUEST, RW),)), RmError.ARGUMENT_INVALID),
    "lend to the owner too": (_create(MemLend, ((GUEST, RW), (HOST, RW))),
                              RmError.ARGUMENT_INVALID),
    "duplicate vmid": (_create(MemLend, ((GUEST, RW), (GUEST, R))), RmError.ARGUMENT_INVALID),
    "unknown VM": (_create(MemLend, ((0x90, RW),)), RmError.ARGUMENT_INVALID),
    "write-only rights": (_create(MemLend, ((GUEST, MemRights.W),)), RmError.ARGUMENT_INVALID),
    "no rights": (_create(MemLend, ((GUEST, 0),)), RmError.ARGUMENT_INVALID),
    "execute-only rights": (_create(MemLend, ((GUEST, MemRights.X),)), RmError.ARGUMENT_INVALID),
    "executable IO": (_create(MemLend, ((GUEST, MemRights.RX),), sgl=((IO, 0x1000),),
                              mem_type=1), RmError.ARGUMENT_INVALID),
    "sanitized IO": (_create(MemLend, ((GUEST, RW),), sgl=((IO, 0x1000),), mem_type=1,
                             flags=MemCreateFlag.SANITIZE), RmError.ARGUMENT_INVALID),
    "unknown mem_type": (_create(MemLend, ((GUEST, RW),), mem_type=2), RmError.ARGUMENT_INVALID),
    "duplicate attr vmid": (_create(MemLend, ((GUEST, RW),), attrs=((0, GUEST), (3, GUEST))),
                            RmError.ARGUMENT_INVALID),
    "unknown attr": (_create(MemLend, ((GUEST, RW),), attrs=((9, GUEST),)),
                     RmError.ARGUMENT_INVALID),
    "DEVICE on normal memory": (_create(MemLend, ((GUEST, RW),), attrs=((1, GUEST),)),
                                RmError.ARGUMENT_INVALID),
    "NORMAL on IO memory": (_create(MemLend, ((GUEST, RW),), sgl=((IO, 0x1000),), mem_type=1,
                                    attrs=((0, GUEST),)), RmError.ARGUMENT_INVALID),
    "donate with CACHED": (_create(MemDonate, ((GUEST, RWX),), attrs=((3, GUEST),)),
                           RmError.ARGUMENT_INVALID),
    "attr for a VM not in the ACL": (_create(MemLend, ((GUEST, RW),), attrs=((3, OTHER),)),
                                     RmError.VMID_INVALID),
    "misaligned region": (_create(MemLend, ((GUEST, RW),), sgl=((RAM + 1, MIB),)),
                          RmError.ARGUMENT_INVALID),
    "empty region": (_create(MemLend, ((GUEST, RW),), sgl=((RAM, 0),)), RmError.ARGUMENT_INVALID),
    "region past 2**44": (_create(MemLend, ((GUEST, RW),), sgl=(((1 << 44) - 0x1000, 0x2000),)),
                          RmError.ARGUMENT_INVALID),
    "not the owner's memory": (_create(MemLend, ((GUEST, RW),), sgl=((RAM + 16 * MIB, MIB),)),
                               RmError.MEM_INVALID),
    "normal memory as IO": (_create(MemLend, ((GUEST, RW),), mem_type=1), RmError.MEM_INVALID),
    "overlapping regions": (_create(MemLend, ((GUEST, RW),), sgl=((RAM, MIB), (RAM, 0x1000))),
                            RmError.MEM_INVALID),
    "513 regions": (_create(MemLend, ((GUEST, RW),),
                            sgl=tuple((RAM + i * 0x1000, 0x1000) for i in range(513))),
                    RmError.ARGUMENT_INVALID),
}


@pytest.mark.parametrize("name", CREATE_ERRORS)
def test_create_rule_refused_with_its_rm_error(name):
    request, error = CREATE_ERRORS[name]
    t = table()
    result = t.create(HOST, request)
    assert result.error is error
    assert result.reply is None and result.el2_ops == () and t.owned_by(HOST) == ()


def test_memory_already_in_a_parcel_is_not_the_owners_to_lend_again():
    t = table()
    handle_of(lend(t, sgl=((RAM, 2 * MIB),)))
    assert lend(t, sgl=((RAM + MIB, MIB),)).error is RmError.MEM_INVALID
    assert lend(t, acl=((OTHER, RW),), sgl=((RAM + MIB, MIB),)).error is RmError.MEM_INVALID


def test_a_borrower_cannot_lend_what_it_borrowed():
    t = table()
    handle = handle_of(lend(t))
    assert t.accept(GUEST, MemAccept(handle, 0, 1, DONE, 0)).ok
    assert lend(t, owner=GUEST, acl=((OTHER, RW),)).error is RmError.MEM_INVALID


def test_sixty_five_parcels_per_owner_is_denied():
    t = table()
    for i in range(64):
        handle_of(lend(t, sgl=((RAM + i * 0x1000, 0x1000),)))
    assert lend(t, sgl=((RAM + 64 * 0x1000, 0x1000),)).error is RmError.DENIED
    assert t.reclaim(HOST, MemReclaim(5)).ok
    assert lend(t, sgl=((RAM + 64 * 0x1000, 0x1000),)).ok


def test_the_table_takes_the_vm_table_as_its_vm_lookup():
    vms = VmTable()
    guest = vms.alloc_vmid(HOST, vp.VmAllocVmid(0)).reply.vmid
    t = MemparcelTable(vms)
    t.register_memory(HOST, [SglEntry(RAM, MIB)])
    assert lend(t, acl=((guest, RWX),)).ok
    assert lend(t, acl=((0x90, RWX),), sgl=((RAM, 0x1000),)).error is RmError.ARGUMENT_INVALID


# --- append ---------------------------------------------------------------------------------------


def test_append_adds_regions_until_end():
    t = table()
    handle = handle_of(lend(t, flags=MemCreateFlag.APPEND | MemCreateFlag.SANITIZE))
    assert not t.get(handle).complete
    more = t.append(HOST, MemAppend(handle, 0, (SglEntry(RAM + 4 * MIB, MIB),)))
    assert more.ok and more.el2_ops == (
        UnmapFrom(HOST, handle, (RegionMap(RAM + 4 * MIB, RAM + 4 * MIB, MIB),)),
        DonateToParcel(HOST, handle, (SglEntry(RAM + 4 * MIB, MIB),)),
        Sanitize(handle, (SglEntry(RAM + 4 * MIB, MIB),)))
    assert t.append(HOST, MemAppend(handle, 1, (SglEntry(RAM + 8 * MIB, MIB),))).ok
    parcel = t.get(handle)
    assert parcel.complete and parcel.total_size == 3 * MIB
    late = t.append(HOST, MemAppend(handle, 1, (SglEntry(RAM + 9 * MIB, MIB),)))
    assert late.error is RmError.DENIED


@pytest.mark.parametrize(("caller", "handle", "sgl", "error"), [
    (HOST, 0, (), RmError.ARGUMENT_INVALID),
    (HOST, 7, ((RAM + 4 * MIB, MIB),), RmError.HANDLE_INVALID),
    (GUEST, 0, ((RAM + 4 * MIB, MIB),), RmError.DENIED),
    (HOST, 0, ((RAM, MIB),), RmError.MEM_INVALID),
    (HOST, 0, ((RAM + 4 * MIB + 1, MIB),), RmError.ARGUMENT_INVALID),
], ids=["empty", "unknown handle", "not the owner", "already in the parcel", "misaligned"])
def test_append_refusals(caller, handle, sgl, error):
    t = table()
    handle_of(lend(t, flags=MemCreateFlag.APPEND))
    result = t.append(caller, MemAppend(handle, 1, tuple(SglEntry(*s) for s in sgl)))
    assert result.error is error and not t.get(0).complete


def test_an_unfinished_parcel_cannot_be_accepted_or_shared_but_can_be_reclaimed():
    t = table()
    handle = handle_of(lend(t, flags=MemCreateFlag.APPEND))
    assert t.accept(GUEST, MemAccept(handle, 0, 1, DONE, 0)).error is RmError.DENIED
    shared = t.notify(HOST, MemNotify(handle, MemNotifyFlag.SHARED, 0, (GUEST,)))
    assert shared.error is RmError.DENIED
    assert t.reclaim(HOST, MemReclaim(handle)).ok and t.get(handle) is None


# --- notify ---------------------------------------------------------------------------------------


def test_notify_shared_tells_running_borrowers_and_stores_the_tag():
    t = table()
    handle = handle_of(t.create(HOST, MemShare(
        0, MemCreateFlag.SANITIZE, 9, (AclEntry(HOST, RW), AclEntry(GUEST, R)),
        (SglEntry(RAM, MIB), SglEntry(RAM + 2 * MIB, 0x2000)),
        (AttrEntry(MemAttr.CACHED, GUEST),))))
    result = t.notify(HOST, MemNotify(handle, MemNotifyFlag.SHARED, 0x77, (GUEST,)))
    assert result.ok and result.el2_ops == ()
    (note,) = result.notifications
    assert note.vmid == GUEST
    assert note.payload == MemSharedNotify(
        handle, 0, TransType.SHARE, 1, HOST, 9, 0x77, (AclEntry(HOST, RW), AclEntry(GUEST, R)),
        (MIB, 0x2000), (AttrEntry(MemAttr.CACHED, GUEST),))
    later = t.notify(HOST, MemNotify(handle, MemNotifyFlag.SHARED, 0x78, (GUEST,)))
    assert later.error is RmError.ARGUMENT_INVALID


def test_notify_shared_to_a_ready_vm_waits_for_its_start():
    t = table()
    handle = handle_of(lend(t, acl=((IDLE, RWX), (GUEST, RW))))
    result = t.notify(HOST, MemNotify(handle, MemNotifyFlag.SHARED, 0, (IDLE, GUEST)))
    assert result.ok and [n.vmid for n in result.notifications] == [GUEST]


@pytest.mark.parametrize(("caller", "flags", "vmids", "error"), [
    (GUEST, MemNotifyFlag.SHARED, (GUEST,), RmError.DENIED),
    (HOST, MemNotifyFlag.SHARED, (), RmError.ARGUMENT_INVALID),
    (HOST, MemNotifyFlag.SHARED, (GUEST, OTHER), RmError.ARGUMENT_INVALID),
    (HOST, MemNotifyFlag.SHARED, (0x90,), RmError.VMID_INVALID),
    (HOST, MemNotifyFlag.SHARED, (OTHER,), RmError.ARGUMENT_INVALID),
    (GUEST, MemNotifyFlag.RECALL, (GUEST,), RmError.DENIED),
    (HOST, MemNotifyFlag.RECALL, (), RmError.ARGUMENT_INVALID),
    (HOST, 0, (), RmError.ARGUMENT_INVALID),
    (HOST, MemNotifyFlag.SHARED | MemNotifyFlag.RECALL, (GUEST,), RmError.ARGUMENT_INVALID),
    (OTHER, MemNotifyFlag.ACCEPTED, (), RmError.HANDLE_INVALID),
    (GUEST, MemNotifyFlag.ACCEPTED, (), RmError.MEM_RELEASED),
], ids=["shared by a borrower", "no vmids", "more vmids than ACL", "unknown VM", "not in ACL",
        "recall by a borrower", "recall to nobody", "no flag", "two flags",
        "claim by a stranger", "claim accepted before accepting"])
def test_notify_refusals(caller, flags, vmids, error):
    t = table()
    handle = handle_of(lend(t))
    result = t.notify(caller, MemNotify(handle, flags, 0, vmids))
    assert result.error is error and result.notifications == ()


def test_notify_of_an_unknown_handle():
    t = table()
    result = t.notify(HOST, MemNotify(3, MemNotifyFlag.SHARED, 0, (GUEST,)))
    assert result.error is RmError.HANDLE_INVALID


def test_borrower_claims_reach_the_owner_only_when_true():
    t = table(notify_owner=False)
    handle = handle_of(lend(t))
    released = t.notify(GUEST, MemNotify(handle, MemNotifyFlag.RELEASED))
    assert released.ok and released.notifications[0].vmid == HOST
    assert type(released.notifications[0].payload).__name__ == "MemReleasedNotify"
    accept = t.accept(GUEST, MemAccept(handle, 0, 1, DONE, 0))
    assert accept.ok and accept.notifications == ()
    claim = t.notify(GUEST, MemNotify(handle, MemNotifyFlag.ACCEPTED))
    assert claim.ok and claim.notifications[0].payload.vmid == GUEST
    inuse = t.notify(GUEST, MemNotify(handle, MemNotifyFlag.RELEASED))
    assert inuse.error is RmError.MEM_INUSE


def test_recall_asks_each_listed_borrower():
    t = table()
    handle = handle_of(lend(t, acl=((GUEST, RW), (OTHER, R))))
    result = t.notify(HOST, MemNotify(handle, MemNotifyFlag.RECALL, 0, (OTHER, GUEST)))
    assert [(n.vmid, n.payload) for n in result.notifications] == [
        (OTHER, MemRecallNotify(handle, 0)), (GUEST, MemRecallNotify(handle, 0))]


# --- queries --------------------------------------------------------------------------------------


def test_locate_maps_parcel_offsets_to_owner_ranges():
    t = table()
    handle = handle_of(lend(t, sgl=((RAM + 4 * MIB, 0x3000), (RAM, 0x2000))))
    assert t.locate(handle, 0x2000, 0x2000) == (SglEntry(RAM + 4 * MIB + 0x2000, 0x1000),
                                                SglEntry(RAM, 0x1000))
    with pytest.raises(ValueError, match="has no bytes"):
        t.locate(handle, 0x4000, 0x2000)


def test_check_image_parcel():
    t = table()
    handle = handle_of(lend(t, sgl=((RAM, MIB),)))
    assert t.check_image_parcel(GUEST, handle, 0, 0x8000, MIB - 0x1000, 0x1000) is RmError.OK
    assert t.check_image_parcel(GUEST, handle, 0, 0, MIB, 1) is RmError.ARGUMENT_INVALID
    assert t.check_image_parcel(OTHER, handle, 0, 0, 0, 0) is RmError.MEM_INVALID
    assert t.check_image_parcel(GUEST, 9, 0, 0, 0, 0) is RmError.MEM_INVALID


def test_call_dispatches_by_request_type():
    t = table()
    assert t.call(HOST, _create(MemLend, ((GUEST, RW),))).ok
    with pytest.raises(TypeError, match="not a memparcel request"):
        t.call(HOST, vp.VmInit(1))
