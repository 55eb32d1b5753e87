"""Using a memparcel: MEM_ACCEPT (where the borrower's IPAs come from), MEM_RELEASE, MEM_RECLAIM
with sanitize, donation, and the VM start and reset hooks; every refusal with its RM error."""

import pytest

from gunyah_net.abi.rm import (
    MemAcceptFlag,
    MemCreateFlag,
    MemRights,
    MemType,
    RmError,
    VmAuth,
    VmState,
)
from rm.mem_payloads import (
    AclEntry,
    AttrEntry,
    MemAccept,
    MemAcceptedNotify,
    MemAcceptReply,
    MemAppend,
    MemDonate,
    MemLend,
    MemReclaim,
    MemRelease,
    MemReleasedNotify,
    MemShare,
    SglEntry,
)
from rm.memparcel import (
    DonateToVm,
    MapInto,
    RegionMap,
    RestoreOwner,
    Sanitize,
    UnmapFrom,
)
from rm.vm_record import Notify

from test_rm_memparcel import (
    GUEST,
    HOST,
    IDLE,
    MIB,
    OTHER,
    RAM,
    RW,
    RWX,
    Vm,
    handle_of,
    lend,
    table,
)

F = MemAcceptFlag
DONE = F.DONE
R = MemRights.R


def accept(t, handle, vmid=GUEST, flags=DONE, sgl=(), trans_type=1, **fields):
    return t.accept(vmid, MemAccept(handle, 0, trans_type, flags, fields.pop("label", 0),
                                    sgl=tuple(SglEntry(*s) for s in sgl), **fields))


# --- accept ---------------------------------------------------------------------------------------


def test_accept_maps_at_the_owners_ipas_and_tells_the_owner():
    t = table()
    handle = handle_of(lend(t, sgl=((RAM + 2 * MIB, MIB), (RAM, 0x3000))))
    result = accept(t, handle)
    assert result.reply == MemAcceptReply((SglEntry(RAM + 2 * MIB, MIB), SglEntry(RAM, 0x3000)))
    maps = (RegionMap(RAM + 2 * MIB, RAM + 2 * MIB, MIB), RegionMap(RAM, RAM, 0x3000))
    assert result.el2_ops == (MapInto(GUEST, handle, maps, RWX, 0),)
    assert result.notifications == (Notify(HOST, MemAcceptedNotify(handle, GUEST, 0)),)
    assert t.maps(handle, GUEST) == maps and t.accepted_by(GUEST) == (t.get(handle),)


def test_owner_ipas_taken_in_the_borrower_fall_back_to_the_allocator():
    t = table()
    t.register_memory(GUEST, [SglEntry(RAM, 4 * MIB)])
    sgl = ((RAM, 2 * MIB), (RAM + 8 * MIB, 0x1000), (RAM + 3 * MIB, 0x1000))
    handle = handle_of(lend(t, sgl=sgl))
    result = accept(t, handle)
    assert result.reply.sgl == (SglEntry(1 << 32, 2 * MIB), SglEntry(RAM + 8 * MIB, 0x1000),
                                SglEntry((1 << 32) + 2 * MIB, 0x1000))


def test_an_explicit_sgl_places_each_region_and_gets_a_standard_reply():
    t = table()
    handle = handle_of(lend(t, sgl=((RAM, MIB), (RAM + 4 * MIB, 0x2000))))
    result = accept(t, handle, sgl=((0x4000_0000, MIB), (0x2000_0000, 0x2000)))
    assert result.ok and result.reply is None
    assert result.el2_ops[0].maps == (RegionMap(RAM, 0x4000_0000, MIB),
                                      RegionMap(RAM + 4 * MIB, 0x2000_0000, 0x2000))


def test_map_contiguous_puts_the_regions_back_to_back():
    t = table()
    handle = handle_of(lend(t, sgl=((RAM + 4 * MIB, MIB), (RAM, 0x2000))))
    result = accept(t, handle, flags=DONE | F.MAP_CONTIGUOUS, sgl=((0x4000_0000, MIB + 0x2000),))
    assert result.el2_ops[0].maps == (RegionMap(RAM + 4 * MIB, 0x4000_0000, MIB),
                                      RegionMap(RAM, 0x4000_0000 + MIB, 0x2000))
    other = handle_of(lend(t, sgl=((RAM + 8 * MIB, MIB), (RAM + 10 * MIB, MIB))))
    chosen = accept(t, other, flags=DONE | F.MAP_CONTIGUOUS)
    assert chosen.reply.sgl == (SglEntry(RAM + 8 * MIB, 2 * MIB),)


def test_more_than_512_regions_are_accepted_in_steps():
    t = table()
    pages = [SglEntry(RAM + 2 * i * 0x1000, 0x1000) for i in range(600)]
    handle = handle_of(t.create(HOST, MemLend(0, MemCreateFlag.APPEND, 0, (AclEntry(GUEST, RW),),
                                              tuple(pages[:500]))))
    assert t.append(HOST, MemAppend(handle, 1, tuple(pages[500:]))).ok
    first = accept(t, handle, flags=0)
    assert first.ok and first.el2_ops == () and first.notifications == ()
    assert len(first.reply.sgl) == 512 and first.reply.flags == 1
    assert t.get(handle).entry(GUEST).accepted and not t.get(handle).entry(GUEST).mapped
    assert t.reclaim(HOST, MemReclaim(handle)).error is RmError.MEM_INUSE
    rest = accept(t, handle)
    assert len(rest.reply.sgl) == 88 and rest.reply.flags == 0
    assert len(rest.el2_ops[0].maps) == 600 and rest.notifications[0].vmid == HOST


def test_done_before_every_ipa_is_reserved_is_invalid():
    t = table()
    handle = handle_of(lend(t, sgl=((RAM, MIB), (RAM + 2 * MIB, MIB))))
    partial = accept(t, handle, flags=DONE, sgl=((0x4000_0000, MIB),))
    assert partial.error is RmError.ARGUMENT_INVALID
    assert accept(t, handle, flags=0, sgl=((0x4000_0000, MIB),)).ok
    assert accept(t, handle, flags=DONE, sgl=((0x5000_0000, MIB),)).ok
    assert [m.ipa for m in t.maps(handle, GUEST)] == [0x4000_0000, 0x5000_0000]


ACCEPT_ERRORS = {
    "unknown handle": (dict(handle=9), RmError.HANDLE_INVALID),
    "wrong trans_type": (dict(trans_type=2), RmError.ARGUMENT_INVALID),
    "unsanitized parcel": (dict(flags=DONE | F.VALIDATE_SANITIZED), RmError.VALIDATE_FAILED),
    "other label": (dict(flags=DONE | F.VALIDATE_LABEL, label=4), RmError.VALIDATE_FAILED),
    "other ACL": (dict(flags=DONE | F.VALIDATE_ACL_ATTR, acl=(AclEntry(GUEST, RW),)),
                  RmError.VALIDATE_FAILED),
    "other attrs": (dict(flags=DONE | F.VALIDATE_ACL_ATTR, acl=(AclEntry(GUEST, RWX),),
                         attrs=(AttrEntry(0, GUEST),)), RmError.VALIDATE_FAILED),
    "map other": (dict(flags=DONE | F.MAP_OTHER, map_vmid=OTHER), RmError.DENIED),
    "map_vmid without map other": (dict(map_vmid=OTHER), RmError.ARGUMENT_INVALID),
    "not in the ACL": (dict(vmid=OTHER), RmError.VMID_INVALID),
    "unknown VM": (dict(vmid=0x90), RmError.VMID_INVALID),
    "the owner, not in a LEND's ACL": (dict(vmid=HOST), RmError.VMID_INVALID),
    "too many SGL entries": (dict(sgl=((0x4000_0000, MIB), (0x5000_0000, MIB))),
                             RmError.ARGUMENT_INVALID),
    "wrong size": (dict(sgl=((0x4000_0000, 0x2000),)), RmError.ARGUMENT_INVALID),
    "misaligned IPA": (dict(sgl=((0x4000_0800, MIB),)), RmError.ARGUMENT_INVALID),
    "contiguous wrong size": (dict(flags=DONE | F.MAP_CONTIGUOUS, sgl=((0x4000_0000, 0x1000),)),
                              RmError.ARGUMENT_INVALID),
    "IPA in use": (dict(sgl=((0x7000_0000, MIB),)), RmError.NORESOURCE),
}


@pytest.mark.parametrize("name", ACCEPT_ERRORS)
def test_accept_rule_refused_with_its_rm_error(name):
    fields, error = ACCEPT_ERRORS[name]
    t = table()
    t.register_memory(GUEST, [SglEntry(0x7000_0000, MIB)])
    handle_of(lend(t, label=3))
    kwargs = {"handle": 0, **fields}
    result = accept(t, kwargs.pop("handle"), **kwargs)
    assert result.error is error
    assert result.el2_ops == () and result.notifications == ()
    assert t.get(0).entry(GUEST).accepted is False


def test_accept_validations_pass_when_they_match():
    t = table()
    handle = handle_of(t.create(HOST, MemLend(0, MemCreateFlag.SANITIZE, 3,
                                              (AclEntry(GUEST, RW),), (SglEntry(RAM, MIB),),
                                              (AttrEntry(2, GUEST),))))
    flags = DONE | F.VALIDATE_SANITIZED | F.VALIDATE_LABEL | F.VALIDATE_ACL_ATTR
    result = accept(t, handle, flags=flags, label=3, acl=(AclEntry(GUEST, RW),),
                    attrs=(AttrEntry(2, GUEST),))
    assert result.ok and result.el2_ops[0].attr == 2 and result.el2_ops[0].rights == RW


def test_accepting_twice_or_contiguous_io_or_sanitize_without_write_is_refused():
    t = table()
    shared = handle_of(t.create(HOST, MemShare(0, 0, 0, (AclEntry(HOST, RW),),
                                               (SglEntry(RAM + 8 * MIB, MIB),))))
    assert accept(t, shared, vmid=HOST, trans_type=2).error is RmError.DENIED
    handle = handle_of(lend(t, acl=((GUEST, RW), (OTHER, R))))
    assert accept(t, handle).ok
    assert accept(t, handle).error is RmError.DENIED
    assert accept(t, handle, vmid=OTHER, flags=DONE | F.SANITIZE).error is \
        RmError.ARGUMENT_INVALID
    io = handle_of(t.create(HOST, MemLend(MemType.IO, 0, 0, (AclEntry(GUEST, RW),),
                                          (SglEntry(0x1000_0000, 0x1000),))))
    contiguous_io = t.accept(GUEST, MemAccept(io, MemType.IO, 1, DONE | F.MAP_CONTIGUOUS, 0))
    assert contiguous_io.error is RmError.ARGUMENT_INVALID
    sanitize_io = t.accept(GUEST, MemAccept(io, MemType.IO, 1, DONE | F.SANITIZE, 0))
    assert sanitize_io.error is RmError.ARGUMENT_INVALID


# --- release and reclaim --------------------------------------------------------------------------


def test_release_unmaps_and_tells_the_owner_then_reclaim_restores_it():
    t = table()
    handle = handle_of(lend(t))
    maps = accept(t, handle).el2_ops[0].maps
    assert t.reclaim(HOST, MemReclaim(handle)).error is RmError.MEM_INUSE
    released = t.release(GUEST, MemRelease(handle))
    assert released.el2_ops == (UnmapFrom(GUEST, handle, maps),)
    assert released.notifications == (Notify(HOST, MemReleasedNotify(handle, GUEST, 0)),)
    assert t.release(GUEST, MemRelease(handle)).error is RmError.MEM_RELEASED
    reclaimed = t.reclaim(HOST, MemReclaim(handle))
    assert reclaimed.el2_ops == (RestoreOwner(HOST, handle, (SglEntry(RAM, MIB),)),)
    assert t.get(handle) is None and lend(t).ok


@pytest.mark.parametrize(("caller", "handle", "flags", "error"), [
    (GUEST, 9, 0, RmError.HANDLE_INVALID),
    (OTHER, 0, 0, RmError.HANDLE_INVALID),
    (0x90, 0, 0, RmError.VMID_INVALID),
    (HOST, 0, 0, RmError.DENIED),
    (IDLE, 0, 0, RmError.MEM_RELEASED),
    (GUEST, 0, 1, RmError.ARGUMENT_INVALID),
], ids=["unknown handle", "not in the ACL", "unknown VM", "the owner", "not accepted",
        "sanitize without write"])
def test_release_refusals(caller, handle, flags, error):
    t = table()
    handle_of(t.create(HOST, MemShare(0, 0, 0, (AclEntry(HOST, RW), AclEntry(GUEST, R),
                                                 AclEntry(IDLE, RW)), (SglEntry(RAM, MIB),))))
    assert accept(t, 0, trans_type=2).ok
    result = t.release(caller, MemRelease(handle, flags))
    assert result.error is error and result.el2_ops == ()


@pytest.mark.parametrize(("caller", "handle", "flags", "error"), [
    (HOST, 9, 0, RmError.HANDLE_INVALID),
    (GUEST, 0, 0, RmError.DENIED),
    (HOST, 1, 1, RmError.ARGUMENT_INVALID),
], ids=["unknown handle", "a borrower", "sanitize IO"])
def test_reclaim_refusals(caller, handle, flags, error):
    t = table()
    handle_of(lend(t))
    handle_of(t.create(HOST, MemLend(MemType.IO, 0, 0, (AclEntry(GUEST, RW),),
                                     (SglEntry(0x1000_0000, 0x1000),))))
    assert t.reclaim(caller, MemReclaim(handle, flags)).error is error


def _sanitize_by_accept(t, h):
    assert accept(t, h, flags=DONE | F.SANITIZE).ok
    assert t.release(GUEST, MemRelease(h)).ok
    return 0


def _sanitize_by_release(t, h):
    assert accept(t, h).ok
    assert t.release(GUEST, MemRelease(h, 1)).ok
    return 0


def _sanitize_by_reclaim(t, h):
    return 1


def _sanitize_by_nobody(t, h):
    assert accept(t, h).ok
    assert t.release(GUEST, MemRelease(h)).ok
    return 0


@pytest.mark.parametrize(("who", "zeroed"), [
    (_sanitize_by_accept, True), (_sanitize_by_release, True), (_sanitize_by_reclaim, True),
    (_sanitize_by_nobody, False)], ids=["accept", "release", "reclaim", "nobody"])
def test_reclaim_zeroes_when_any_party_asked(who, zeroed):
    t = table()
    handle = handle_of(lend(t))
    flags = who(t, handle)
    ops = t.reclaim(HOST, MemReclaim(handle, flags)).el2_ops
    assert (Sanitize(handle, (SglEntry(RAM, MIB),)) in ops) is zeroed
    assert ops[-1] == RestoreOwner(HOST, handle, (SglEntry(RAM, MIB),))


# --- donation -------------------------------------------------------------------------------------


def test_donation_moves_ownership_on_accept():
    t = table()
    handle = handle_of(t.create(HOST, MemDonate(0, 0, 0, (AclEntry(GUEST, RWX),),
                                                (SglEntry(RAM, MIB),))))
    result = accept(t, handle, trans_type=0, sgl=((0x4000_0000, MIB),))
    maps = (RegionMap(RAM, 0x4000_0000, MIB),)
    assert result.el2_ops == (MapInto(GUEST, handle, maps, RWX, 0),
                              DonateToVm(HOST, GUEST, handle, maps))
    assert t.get(handle) is None
    assert t.reclaim(HOST, MemReclaim(handle)).error is RmError.HANDLE_INVALID
    assert lend(t).error is RmError.MEM_INVALID
    assert lend(t, owner=GUEST, sgl=((0x4000_0000, MIB),), acl=((OTHER, RW),)).ok


# --- VM start and reset ---------------------------------------------------------------------------


def _start_setup(auth):
    t = table()
    t._vms.vms[IDLE] = Vm(VmState.READY, auth)
    image = handle_of(lend(t, acl=((IDLE, RWX),), sgl=((RAM + 4 * MIB, MIB), (RAM, MIB))))
    shm = handle_of(lend(t, acl=((IDLE, RW), (GUEST, RW)), sgl=((RAM + 8 * MIB, 0x2000),),
                         label=7))
    private = handle_of(lend(t, acl=((IDLE, RWX),), sgl=((RAM + 12 * MIB, MIB),)))
    handle_of(lend(t, acl=((GUEST, RWX),), sgl=((RAM + 14 * MIB, MIB),)))
    return t, image, shm, private


def test_start_accepts_the_image_at_its_base_and_the_rest_at_owner_ipas():
    t, image, shm, private = _start_setup(VmAuth.NONE)
    result = t.auto_accept_for_start(IDLE, (image, 0x10_0000_0000))
    assert result.ok
    assert [n for n in result.notifications] == [
        Notify(HOST, MemAcceptedNotify(h, IDLE, 0)) for h in (image, shm, private)]
    assert t.maps(image, IDLE) == (RegionMap(RAM + 4 * MIB, 0x10_0000_0000, MIB),
                                   RegionMap(RAM, 0x10_0000_0000 + MIB, MIB))
    assert t.maps(shm, IDLE) == (RegionMap(RAM + 8 * MIB, RAM + 8 * MIB, 0x2000),)
    assert [op.handle for op in result.el2_ops] == [image, shm, private]
    assert not any(t.get(h).sanitize_reclaim for h in (image, shm, private))
    assert t.get(3).entry(GUEST).accepted is False


def test_start_of_an_authenticated_vm_marks_its_private_memory_sanitize_on_reclaim():
    t, image, shm, private = _start_setup(VmAuth.ANDROID_PVM)
    assert t.auto_accept_for_start(IDLE, (image, 0x10_0000_0000)).ok
    assert t.get(image).sanitize_reclaim and t.get(private).sanitize_reclaim
    assert not t.get(shm).sanitize_reclaim


def test_start_failure_reports_the_error_and_what_was_done():
    t, image, shm, private = _start_setup(VmAuth.NONE)
    everything_above_4g = SglEntry(1 << 32, (1 << 44) - (1 << 32))
    t.register_memory(IDLE, [SglEntry(RAM + 12 * MIB, MIB), everything_above_4g])
    result = t.auto_accept_for_start(IDLE, (image, 0x4000_0000))
    assert result.error is RmError.NORESOURCE
    assert [op.handle for op in result.el2_ops] == [image, shm]
    assert [n.payload.handle for n in result.notifications] == [image, shm]
    assert t.auto_accept_for_start(IDLE, (image, 0x4000_0000)).error is RmError.DENIED
    assert t.auto_accept_for_start(0x90).error is RmError.VMID_INVALID
    assert t.auto_accept_for_start(IDLE, (9, 0)).error is RmError.HANDLE_INVALID


def test_reset_releases_everything_the_vm_accepted_without_sanitizing():
    t, image, shm, private = _start_setup(VmAuth.NONE)
    assert t.auto_accept_for_start(IDLE, (image, 0x10_0000_0000)).ok
    accept(t, shm)
    result = t.release_all_accepted(IDLE)
    assert [n.payload for n in result.notifications] == [
        MemReleasedNotify(h, IDLE, 0) for h in (image, shm, private)]
    assert [type(op) for op in result.el2_ops] == [UnmapFrom] * 3
    assert t.accepted_by(IDLE) == () and t.get(shm).entry(GUEST).accepted
    ops = t.reclaim(HOST, MemReclaim(image)).el2_ops
    assert not any(isinstance(op, Sanitize) for op in ops)
    assert t.release_all_accepted(IDLE) == type(result)()
