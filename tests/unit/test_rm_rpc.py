"""The RM RPC wire codec: exact header bytes, fragmentation at every boundary, and a decoder that
reports every malformed input as a violation without raising or losing the messages after it."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rm.rpc import (
    Header,
    Notification,
    ProtocolViolation,
    Reply,
    Request,
    RpcReceiver,
    encode,
    encode_notification,
    encode_reply,
    encode_request,
    fragment_count,
    parse_header,
)

VM_ALLOC_VMID = 0x56000001
VM_STATUS = 0x56100008


def feed(receiver, fragments):
    events = []
    for fragment in fragments:
        events += receiver.receive(fragment)
    return events


def header(api=0x21, kind=1, fragments=0, seq=0, msg_id=VM_ALLOC_VMID):
    return struct.pack("<BBHI", api, (fragments << 2) | kind, seq, msg_id)


def violations(events):
    return [e for e in events if isinstance(e, ProtocolViolation)]


# --- exact bytes ----------------------------------------------------------------------------------


def test_request_header_bytes_are_the_reference_layout():
    (fragment,) = encode_request(VM_ALLOC_VMID, 0x1234, b"\x00\x00\x00\x00")
    assert fragment == bytes([0x21, 0x01, 0x34, 0x12, 0x01, 0x00, 0x00, 0x56, 0, 0, 0, 0])


def test_reply_puts_the_error_word_first():
    (fragment,) = encode_reply(VM_ALLOC_VMID, 7, 0x14, b"\x80\x00\x00\x00")
    assert fragment[:8] == bytes([0x21, 0x02, 0x07, 0x00, 0x01, 0x00, 0x00, 0x56])
    assert fragment[8:] == bytes([0x14, 0, 0, 0, 0x80, 0, 0, 0])


def test_standard_reply_is_header_plus_error():
    (fragment,) = encode_reply(VM_ALLOC_VMID, 1, 0)
    assert len(fragment) == 12
    assert RpcReceiver().receive(fragment) == [Reply(VM_ALLOC_VMID, 1, 0, b"")]


def test_notification_type_is_3():
    (fragment,) = encode_notification(VM_STATUS, 9, b"\x80\x00")
    assert fragment[1] == 0x03 and fragment[4:8] == struct.pack("<I", VM_STATUS)


def test_zero_length_request_is_one_8_byte_message():
    assert encode_request(VM_ALLOC_VMID, 0) == [header(kind=1)]


# --- fragmentation --------------------------------------------------------------------------------


@pytest.mark.parametrize(("length", "count"), [
    (0, 1), (1, 1), (231, 1), (232, 1), (233, 2), (464, 2), (465, 3), (14616, 63)])
def test_fragmentation_boundaries_round_trip(length, count):
    payload = bytes(i % 251 for i in range(length))
    fragments = encode_request(0x51000012, 0xBEEF, payload)
    assert len(fragments) == count == fragment_count(length)
    assert all(len(f) <= 240 for f in fragments)
    assert all(len(f) == 240 for f in fragments[:-1])
    for index, fragment in enumerate(fragments):
        parsed = parse_header(fragment)
        assert parsed == Header(1 if index == 0 else 0, count - 1, 0xBEEF, 0x51000012)
    assert feed(RpcReceiver(), fragments) == [Request(0x51000012, 0xBEEF, payload)]


@pytest.mark.parametrize(("length", "count"), [(0, 1), (228, 1), (229, 2), (14612, 63)])
def test_reply_fragmentation_counts_the_error_word(length, count):
    payload = bytes(range(256)) * (length // 256) + bytes(length % 256)
    fragments = encode_reply(0x51000011, 3, 0, payload)
    assert len(fragments) == count
    assert feed(RpcReceiver(), fragments) == [Reply(0x51000011, 3, 0, payload)]


@pytest.mark.parametrize("make", [
    lambda: encode_request(1, 0, bytes(14617)),
    lambda: encode_notification(1, 0, bytes(14617)),
    lambda: encode_reply(1, 0, 0, bytes(14613)),
    lambda: encode_request(1, 0x10000),
    lambda: encode_request(-1, 0),
    lambda: encode_request(1 << 32, 0),
    lambda: encode_reply(1, 0, 1 << 32),
])
def test_encoder_refuses_what_cannot_be_framed(make):
    with pytest.raises(ValueError):
        make()


def test_encode_dispatches_on_the_message_type():
    for message in (Request(1, 2, b"a"), Reply(1, 2, 5, b"b"), Notification(1, 2, b"c")):
        assert feed(RpcReceiver(), encode(message)) == [message]


# --- violations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("fragment", "words"), [
    (b"", "shorter than the 8-byte header"),
    (header()[:7], "shorter than the 8-byte header"),
    (header(api=0x22), "API version 2"),
    (header(api=0x11), "header length of 1 words"),
    (header(api=0x31), "header length of 3 words"),
    (header(fragments=63), "63 additional fragments"),
    (header() + bytes(233), "exceeds 240"),
    (header(kind=0), "no message in progress"),
    (header(kind=2), "shorter than its error word"),
    (header(kind=2) + b"\x00\x00\x00", "shorter than its error word"),
])
def test_malformed_fragment_is_one_precise_violation(fragment, words):
    receiver = RpcReceiver()
    events = receiver.receive(fragment)
    assert len(events) == 1 and isinstance(events[0], ProtocolViolation)
    assert words in events[0].reason
    assert not receiver.in_progress


def test_multi_fragment_reply_shorter_than_error_word_is_a_violation():
    events = feed(RpcReceiver(), [header(kind=2, fragments=1) + b"\x00",
                                  header(kind=0, fragments=1) + b"\x00"])
    assert len(violations(events)) == 1 and len(events) == 1


@pytest.mark.parametrize("bad", [
    header(kind=0, fragments=1, msg_id=0x51000013),
    header(kind=0, fragments=1, seq=6),
    header(kind=0, fragments=2),
])
def test_mismatched_continuation_is_dropped_and_reassembly_goes_on(bad):
    first, rest = encode_request(VM_ALLOC_VMID, 5, bytes(range(240)))
    receiver = RpcReceiver()
    assert receiver.receive(first) == []
    assert len(violations(receiver.receive(bad + b"junk"))) == 1
    assert receiver.in_progress
    assert receiver.receive(rest) == [Request(VM_ALLOC_VMID, 5, bytes(range(240)))]


def test_new_message_mid_reassembly_aborts_the_partial_one_then_is_processed():
    partial = encode_request(VM_ALLOC_VMID, 1, bytes(500))
    note = Notification(VM_STATUS, 77, b"status")
    receiver = RpcReceiver()
    events = feed(receiver, partial[:2] + encode(note))
    assert isinstance(events[0], ProtocolViolation) and "aborted after 2 of 3" in events[0].reason
    assert events[1:] == [note]
    late = receiver.receive(partial[2])
    assert len(violations(late)) == 1 and not receiver.in_progress


def test_new_multi_fragment_message_replaces_the_partial_one():
    old = encode_request(VM_ALLOC_VMID, 1, bytes(300))
    new = Request(0x51000012, 2, bytes(range(200)) * 2)
    events = feed(RpcReceiver(), old[:1] + encode(new))
    assert len(violations(events)) == 1 and events[1:] == [new]


# --- properties -----------------------------------------------------------------------------------

payloads = st.binary(max_size=1200)
messages = st.one_of(
    st.builds(Request, st.integers(0, 2**32 - 1), st.integers(0, 0xFFFF), payloads),
    st.builds(Reply, st.integers(0, 2**32 - 1), st.integers(0, 0xFFFF),
              st.integers(0, 2**32 - 1), payloads),
    st.builds(Notification, st.integers(0, 2**32 - 1), st.integers(0, 0xFFFF), payloads),
)


@settings(max_examples=200)
@given(st.lists(messages, max_size=8))
def test_interleaved_requests_replies_and_notifications_arrive_in_order(stream):
    receiver = RpcReceiver()
    events = feed(receiver, [f for message in stream for f in encode(message)])
    assert events == stream
    assert not receiver.in_progress


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=300), max_size=12), messages)
def test_garbage_never_raises_and_never_hides_the_next_good_message(garbage, message):
    receiver = RpcReceiver()
    events = feed(receiver, garbage)
    assert all(isinstance(e, Request | Reply | Notification | ProtocolViolation) for e in events)
    after = feed(receiver, encode(message))
    assert after[-1] == message
    assert all(isinstance(e, ProtocolViolation) for e in after[:-1])


@settings(max_examples=300)
@given(messages, st.data())
def test_single_byte_mutations_never_raise(message, data):
    fragments = encode(message)
    index = data.draw(st.integers(0, len(fragments) - 1))
    position = data.draw(st.integers(0, len(fragments[index]) - 1))
    value = data.draw(st.integers(0, 255))
    mutated = bytearray(fragments[index])
    mutated[position] = value
    fragments[index] = bytes(mutated)
    receiver = RpcReceiver()
    events = feed(receiver, fragments)
    assert events or receiver.in_progress, "a mutated message vanished without a trace"
    if position == 0 and value != 0x21:
        assert violations(events)
        assert "API version" in violations(events)[0].reason or "header length" in \
            violations(events)[0].reason


@settings(max_examples=200)
@given(messages, st.integers(0, 255).filter(lambda v: v != 0x21))
def test_a_bad_api_byte_is_always_reported(message, api):
    fragments = encode(message)
    fragments[0] = bytes([api]) + fragments[0][1:]
    events = feed(RpcReceiver(), fragments)
    assert violations(events)
    assert message not in events
