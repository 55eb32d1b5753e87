"""RM payload structs: exact reference layouts, round trips, and precise errors for bad bodies."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gunyah_net.abi.rm import ExitCode, ExitFlag, RmCall, RmError, RmNotify
from rm import console_payloads as cp
from rm import mem_payloads as mp
from rm import vm_payloads as vp
from rm import vm_query_payloads as qp
from rm.fields import PayloadError
from rm.payloads import NOTIFICATIONS, REQUESTS, unpack_notification, unpack_request

ACL = (mp.AclEntry(0x80, 6), mp.AclEntry(3, 7))
SGL = (mp.SglEntry(0x8000_0000, 0x20_0000), mp.SglEntry(0x9000_0000, 0x1000))
ATTRS = (mp.AttrEntry(3, 0x80),)


def p(fmt, *values):
    return struct.pack("<" + fmt, *values)


# Each row: a payload object and its bytes, written field by field from gunyah-abi.md 3.5 / 4.2.
GOLDEN = [
    (vp.VmAllocVmid(0x85), p("HH", 0x85, 0)),
    (vp.VmDeallocVmid(0x85), p("HH", 0x85, 0)),
    (vp.VmStart(0x85), p("HH", 0x85, 0)),
    (vp.VmStop(0x85, 1, 3), p("HBBI", 0x85, 1, 0, 3)),
    (vp.VmReset(0x85), p("HH", 0x85, 0)),
    (vp.VmConfigImage(0x85, 2, 9, 0x1000, 0x2000, 0x3000, 0x4000),
     p("HHIQQQQ", 0x85, 2, 9, 0x1000, 0x2000, 0x3000, 0x4000)),
    (vp.VmInit(0x85), p("HH", 0x85, 0)),
    (vp.VmGetState(0), p("HH", 0, 0)),
    (vp.VmGetVmid(), b""),
    (vp.VmHostGetType(), b""),
    (qp.VmGetOwner(), b""),
    (qp.VmGetPeers(), b""),
    (vp.VmGetHypResources(0x85), p("HH", 0x85, 0)),
    (vp.VmSetBootContext(0x85, 1, 0, 0x8000_1000), p("HBBIQ", 0x85, 1, 0, 0, 0x8000_1000)),
    (vp.VmSetFirmwareMem(0x85, 4, 0x100, 0x200), p("HHIQQ", 0x85, 0, 4, 0x100, 0x200)),
    (vp.VmSetStatus(4, 0x1234), p("BBH", 0, 4, 0x1234)),
    (vp.VmExit(ExitFlag.RESTART, ExitCode.BUS_ERROR), p("HBB", 1, 3, 0)),
    (cp.VmConsoleOpen(0x85), p("HH", 0x85, 0)),
    (cp.VmConsoleClose(0), p("HH", 0, 0)),
    (cp.VmConsoleFlush(0x85), p("HH", 0x85, 0)),
    (cp.VmConsoleWrite(0x85, b"hi\n"), p("HH", 0x85, 3) + b"hi\n"),
    (vp.VmAllocVmidReply(0x80), p("I", 0x80)),
    (vp.VmGetStateReply(3, 4, 0x5678), p("I", 3 | 4 << 8 | 0x5678 << 16)),
    (vp.VmGetVmidReply(0x80), p("I", 0x80)),
    (vp.VmHostGetTypeReply(), p("I", 0x01000164)),
    (qp.VmGetOwnerReply(3), p("I", 3)),
    (qp.VmGetPeersReply((3, 0x81)), p("III", 2, 3, 0x81)),
    (qp.VmGetPeersReply(), p("I", 0)),
    (vp.VmGetHypResourcesReply((vp.HypResource(4, 3, 7, 1, 0x1_0000_0002, 8, 960, 0x10, 0x20),)),
     p("I", 1) + p("BBHIIIIIIIIII", 4, 0, 3, 7, 1, 2, 1, 8, 960, 0x10, 0, 0x20, 0)),
    (vp.VmStatusNotify(0x85, 3, 4, 9), p("HHBBH", 0x85, 0, 3, 4, 9)),
    (vp.VmExitedNotify(0x85, 7, p("I", 0)), p("HHI", 0x85, 7, 4) + p("I", 0)),
    (vp.VmShutdownNotify(3), p("I", 3)),
    (cp.VmConsoleCharsNotify(0x85, b"ok"), p("HH", 0x85, 2) + b"ok"),
    (mp.MemLend(0, 1, 42, ACL[:1], SGL, ATTRS),
     p("BBBBI", 0, 0, 1, 0, 42) + p("HH", 1, 0) + p("HBB", 0x80, 6, 0)
     + p("HH", 2, 0) + p("QQQQ", 0x8000_0000, 0x20_0000, 0x9000_0000, 0x1000)
     + p("HH", 1, 0) + p("HH", 3, 0x80)),
    (mp.MemShare(1, 0, 7, ACL, SGL[:1]),
     p("BBBBI", 1, 0, 0, 0, 7) + p("HH", 2, 0) + p("HBBHBB", 0x80, 6, 0, 3, 7, 0)
     + p("HH", 1, 0) + p("QQ", 0x8000_0000, 0x20_0000) + p("HH", 0, 0)),
    (mp.MemDonate(0, 0, 1, ACL[:1], SGL[:1]),
     p("BBBBI", 0, 0, 0, 0, 1) + p("HH", 1, 0) + p("HBB", 0x80, 6, 0)
     + p("HH", 1, 0) + p("QQ", 0x8000_0000, 0x20_0000) + p("HH", 0, 0)),
    (mp.MemAccept(9, 0, 1, 0x82, 42, ACL[:1], (), 0x85, ()),
     p("IBBBBI", 9, 0, 1, 0x82, 0, 42) + p("HH", 1, 0) + p("HBB", 0x80, 6, 0)
     + p("HH", 0, 0x85) + p("HH", 0, 0)),
    (mp.MemRelease(9, 1), p("IBBBB", 9, 1, 0, 0, 0)),
    (mp.MemReclaim(9, 1), p("IBBBB", 9, 1, 0, 0, 0)),
    (mp.MemNotify(9, 2, 0x77), p("IBBBBI", 9, 2, 0, 0, 0, 0x77)),
    (mp.MemNotify(9, 1, 0x77, (0x80, 0x81)),
     p("IBBBBI", 9, 1, 0, 0, 0, 0x77) + p("HH", 2, 0) + p("HHHH", 0x80, 0, 0x81, 0)),
    (mp.MemAppend(9, 1, SGL[1:]), p("IBBBB", 9, 1, 0, 0, 0) + p("HH", 1, 0)
     + p("QQ", 0x9000_0000, 0x1000)),
    (mp.MemHandleReply(9), p("I", 9)),
    (mp.MemAcceptReply(SGL[:1], 1), p("HBB", 1, 1, 0) + p("QQ", 0x8000_0000, 0x20_0000)),
    (mp.MemSharedNotify(9, 0, 2, 1, 3, 42, 0x77, ACL, (0x1000, 0x2000), ATTRS),
     p("IBBBBHHII", 9, 0, 2, 1, 0, 3, 0, 42, 0x77) + p("HH", 2, 0)
     + p("HBBHBB", 0x80, 6, 0, 3, 7, 0) + p("HH", 2, 0) + p("QQ", 0x1000, 0x2000)
     + p("HH", 1, 0) + p("HH", 3, 0x80)),
    (mp.MemReleasedNotify(9, 0x80, 0x77), p("IHHI", 9, 0x80, 0, 0x77)),
    (mp.MemAcceptedNotify(9, 0x80, 0x77), p("IHHI", 9, 0x80, 0, 0x77)),
    (mp.MemRecallNotify(9, 0x77), p("II", 9, 0x77)),
]


@pytest.mark.parametrize(("payload", "wire"), GOLDEN, ids=lambda v: type(v).__name__)
def test_layout_matches_reference_bytes(payload, wire):
    assert payload.pack() == wire
    assert type(payload).unpack(wire) == payload


def test_fixed_sizes_from_the_reference():
    assert len(vp.VmConfigImage(1, 0, 0, 0, 0, 0, 0).pack()) == 40
    assert vp.HypResource.LAYOUT.size == 44
    assert len(vp.VmSetBootContext(1, 0, 0, 0).pack()) == 16
    assert len(vp.VmSetFirmwareMem(1, 0, 0, 0).pack()) == 24


FIXED = [payload for payload, _ in GOLDEN if hasattr(type(payload), "LAYOUT")]


@pytest.mark.parametrize("payload", FIXED, ids=lambda v: type(v).__name__)
def test_short_and_long_fixed_payloads_are_msg_invalid(payload):
    wire = payload.pack()
    for bad in (wire[:-1], wire + b"\x00"):
        with pytest.raises(PayloadError) as info:
            type(payload).unpack(bad)
        assert info.value.error is RmError.MSG_INVALID
        assert "bytes, expected" in info.value.reason


@pytest.mark.parametrize(("cls", "wire", "words"), [
    (vp.VmInit, p("HH", 0x85, 1), "res0"),
    (vp.VmSetFirmwareMem, p("HHIQQ", 0x85, 1, 0, 0, 0), "res0"),
    (vp.VmExit, p("HBB", 0, 0, 1), "res0"),
    (vp.VmExit, p("HBB", 0, ExitCode.UNKNOWN_ERROR, 0), "exit_code 2"),
    (vp.VmExit, p("HBB", 0, 9, 0), "exit_code 9"),
    (vp.VmGetVmid, b"\x00", "expected 0"),
    (cp.VmConsoleWrite, p("HH", 0, 5) + b"abc", "count 5"),
    (cp.VmConsoleCharsNotify, p("HH", 0, 1) + b"ab", "count 1"),
    (vp.VmExitedNotify, p("HHI", 0x85, 0, 8) + p("I", 0), "reason_size 8"),
    (vp.VmGetHypResourcesReply, p("I", 2) + bytes(44), "2 entries need 88"),
    (mp.MemAcceptReply, p("HBB", 2, 0, 0) + bytes(16), "2 SGL entries need 32"),
    (mp.MemLend, p("BBBBI", 0, 0, 0, 0, 1) + p("HH", 2, 0) + bytes(4), "2-entry ACL"),
    (mp.MemLend, p("BBBBI", 0, 0, 0, 0, 1) + p("H", 1), "ACL list header"),
    (mp.MemLend, p("BBBB", 0, 0, 0, 0), "the header"),
    (mp.MemShare, mp.MemShare(0, 0, 1, ACL, SGL).pack() + b"\x00\x00\x00\x00", "trailing"),
    (mp.MemNotify, p("IBBBBI", 9, 1, 0, 0, 0, 0) + p("HH", 3, 0) + bytes(8), "3-entry VMID"),
])
def test_inconsistent_bodies_name_the_problem(cls, wire, words):
    with pytest.raises(PayloadError) as info:
        cls.unpack(wire)
    assert info.value.error is RmError.MSG_INVALID
    assert words in str(info.value)


def test_reserved_bytes_the_rm_ignores_are_ignored():
    assert vp.VmStop.unpack(p("HBBI", 0x85, 1, 0xFF, 3)) == vp.VmStop(0x85, 1, 3)
    assert vp.VmStart.unpack(p("HH", 0x85, 0xFFFF)) == vp.VmStart(0x85)
    assert mp.MemRelease.unpack(p("IBBBB", 9, 1, 1, 2, 3)) == mp.MemRelease(9, 1)


def test_a_list_over_512_entries_is_noresource():
    body = p("BBBBI", 0, 0, 0, 0, 1) + p("HH", 513, 0) + bytes(513 * 4)
    with pytest.raises(PayloadError) as info:
        mp.MemLend.unpack(body)
    assert info.value.error is RmError.NORESOURCE
    with pytest.raises(PayloadError) as info:
        mp.MemLend(0, 0, 1, (mp.AclEntry(3, 7),) * 513, SGL).pack()
    assert info.value.error is RmError.NORESOURCE


def test_trailing_lists_may_be_absent_as_in_the_rm():
    head = p("BBBBI", 0, 0, 0, 0, 1)
    assert mp.MemLend.unpack(head) == mp.MemLend(0, 0, 1, (), (), ())
    without_attrs = head + p("HH", 1, 0) + p("HBB", 0x80, 6, 0) + p("HH", 1, 0) + p("QQ", 1, 2)
    assert mp.MemLend.unpack(without_attrs).attrs == ()
    assert mp.MemNotify.unpack(p("IBBBBI", 9, 2, 0, 0, 0, 5)).vmids == ()


def test_exit_reason_words():
    reason = vp.VmExitReason(ExitFlag.SYSTEM_RESET2_64, ExitCode.NORMAL, (1, 0xCAFE, 0xBEEF))
    wire = reason.pack()
    assert wire == p("IIII", 0x8000, 1, 0xCAFE, 0xBEEF)
    assert vp.VmExitedNotify(0x85, 3, wire).exit_reason() == reason
    assert vp.VmExitReason.unpack(p("I", 1 | 3 << 16)) == vp.VmExitReason(1, 3)
    for bad in (b"", b"\x00\x00\x00"):
        with pytest.raises(PayloadError):
            vp.VmExitReason.unpack(bad)


@pytest.mark.parametrize("payload", [
    vp.VmAllocVmid(0x10000), vp.VmStop(1, 256), vp.VmConfigImage(1, 0, 0, -1, 0, 0, 0),
    cp.VmConsoleWrite(1, bytes(0x10000)), mp.MemRelease(1 << 32),
    mp.MemLend(0, 0, 1, (mp.AclEntry(0x10000, 7),), ()), vp.VmExitReason(0x10000),
])
def test_pack_refuses_out_of_range_fields(payload):
    with pytest.raises(PayloadError):
        payload.pack()


# --- dispatch and fuzzing -------------------------------------------------------------------------


def test_every_request_and_notification_class_is_registered_under_its_id():
    decoded = 0
    for payload, wire in GOLDEN:
        cls = type(payload)
        if REQUESTS.get(cls.MSG_ID) is cls:
            assert unpack_request(cls.MSG_ID, wire) == payload
            decoded += 1
        if NOTIFICATIONS.get(cls.MSG_ID) is cls:
            assert unpack_notification(cls.MSG_ID, wire) == payload
            decoded += 1
    assert decoded == len(REQUESTS) + len(NOTIFICATIONS) + 1  # MEM_NOTIFY has two golden rows
    assert set(REQUESTS) == {
        RmCall.VM_ALLOC_VMID, RmCall.VM_DEALLOC_VMID, RmCall.VM_START, RmCall.VM_STOP,
        RmCall.VM_RESET, RmCall.VM_CONFIG_IMAGE, RmCall.VM_INIT, RmCall.VM_GET_STATE,
        RmCall.VM_GET_VMID, RmCall.VM_HOST_GET_TYPE, RmCall.VM_GET_HYP_RESOURCES,
        RmCall.VM_GET_OWNER, RmCall.VM_GET_PEERS,
        RmCall.VM_SET_BOOT_CONTEXT, RmCall.VM_SET_FIRMWARE_MEM, RmCall.VM_SET_STATUS,
        RmCall.VM_EXIT, RmCall.VM_CONSOLE_OPEN, RmCall.VM_CONSOLE_CLOSE, RmCall.VM_CONSOLE_WRITE,
        RmCall.VM_CONSOLE_FLUSH, RmCall.MEM_LEND, RmCall.MEM_SHARE, RmCall.MEM_DONATE,
        RmCall.MEM_ACCEPT, RmCall.MEM_RELEASE, RmCall.MEM_RECLAIM, RmCall.MEM_NOTIFY,
        RmCall.MEM_APPEND}
    assert set(NOTIFICATIONS) == {
        RmNotify.VM_STATUS, RmNotify.VM_EXITED, RmNotify.VM_SHUTDOWN, RmNotify.VM_CONSOLE_CHARS,
        RmNotify.MEM_SHARED, RmNotify.MEM_RELEASED, RmNotify.MEM_ACCEPTED, RmNotify.MEM_RECALL}
    assert unpack_request(RmCall.VM_LOOKUP_NAME, b"") is None


def test_create_requests_carry_their_transaction_type():
    assert REQUESTS[RmCall.MEM_LEND].TRANS_TYPE == 1
    assert REQUESTS[RmCall.MEM_SHARE].TRANS_TYPE == 2
    assert REQUESTS[RmCall.MEM_DONATE].TRANS_TYPE == 0


u8, u16, u32, u64 = (st.integers(0, 2**n - 1) for n in (8, 16, 32, 64))
acl = st.lists(st.builds(mp.AclEntry, u16, u8), max_size=6).map(tuple)
sgl = st.lists(st.builds(mp.SglEntry, u64, u64), max_size=6).map(tuple)
attrs = st.lists(st.builds(mp.AttrEntry, u16, u16), max_size=6).map(tuple)
ROUND_TRIP = st.one_of(
    st.builds(mp.MemLend, u8, u8, u32, acl, sgl, attrs),
    st.builds(mp.MemShare, u8, u8, u32, acl, sgl, attrs),
    st.builds(mp.MemAccept, u32, u8, u8, u8, u32, acl, sgl, u16, attrs),
    st.builds(mp.MemAppend, u32, u8, sgl),
    st.builds(mp.MemNotify, u32, u8, u32, st.lists(u16, max_size=6).map(tuple)),
    st.builds(mp.MemSharedNotify, u32, u8, u8, u8, u16, u32, u32, acl,
              st.lists(u64, max_size=6).map(tuple), attrs),
    st.builds(mp.MemAcceptReply, sgl, u8),
    st.builds(vp.VmConfigImage, u16, u16, u32, u64, u64, u64, u64),
    st.builds(vp.VmSetBootContext, u16, u8, u8, u64),
    st.builds(vp.VmStop, u16, u8, u32),
    st.builds(vp.VmGetHypResourcesReply, st.lists(st.builds(
        vp.HypResource, u8, u16, u32, u32, u64, u32, u32, u64, u64), max_size=4).map(tuple)),
    st.builds(vp.VmExitedNotify, u16, u16, st.binary(max_size=20)),
    st.builds(cp.VmConsoleWrite, u16, st.binary(max_size=300)),
)


@settings(max_examples=300)
@given(ROUND_TRIP)
def test_pack_unpack_round_trip(payload):
    assert type(payload).unpack(payload.pack()) == payload


@settings(max_examples=300)
@given(st.sampled_from(sorted({**REQUESTS, **NOTIFICATIONS}.items())), st.binary(max_size=120))
def test_arbitrary_bytes_decode_or_raise_payload_error_only(entry, body):
    _, cls = entry
    try:
        decoded = cls.unpack(body)
    except PayloadError as exc:
        assert exc.error in (RmError.MSG_INVALID, RmError.NORESOURCE)
        assert exc.reason
    else:
        assert type(decoded) is cls
