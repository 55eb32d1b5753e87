"""The frame codec: round trips, and every malformed input becomes a FrameError."""

import struct

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gunyah_net.wire import codec
from gunyah_net.wire import messages as m

SAMPLES = [
    m.Hello(version=1, vm="alpha", pid=1234, token="t" * 32),
    m.Welcome(version=1, name="alpha", vmid=0x80, vcpus=2, memory=16 << 20, image="/x.elf",
              bootargs="vm=alpha", ram_path="/dev/shm/x", heartbeat_interval=0.5),
    m.Reject(reason="bad token"),
    m.Heartbeat(seq=7),
    m.ConsoleOut(data=b"hello\r\n"),
    m.ConsoleIn(data=bytes(range(256))),
    m.VmState(state="exited", exit_type=1, reason="PSCI SYSTEM_OFF"),
    m.Stop(reason="down"),
    m.Hvc(seq=1, vcpu=0, number=0x1B, args=[1, 240, 0x8000_1000, 1, 0], data=b"x" * 240),
    m.HvcReturn(seq=1, regs=[2**64 - 1, 0], data=b""),
    m.Virq(virq=40, asserted=True),
]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda s: type(s).__name__)
def test_round_trip_byte_by_byte(message):
    frame = codec.encode(message)
    decoder = codec.FrameDecoder()
    out = []
    for i in range(len(frame)):
        out += decoder.feed(frame[i:i + 1])
    assert out == [message]
    assert decoder.pending() == 0


def test_several_frames_in_one_chunk_keep_order():
    frames = b"".join(codec.encode(m.ConsoleOut(data=bytes([i]))) for i in range(100))
    out = codec.FrameDecoder().feed(frames)
    assert [msg.data for msg in out] == [bytes([i]) for i in range(100)]


def _frame(obj) -> bytes:
    payload = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(payload)) + payload


BAD_FRAMES = {
    "empty frame": b"\x00\x00\x00\x00",
    "oversized length": struct.pack(">I", codec.MAX_FRAME + 1),
    "not msgpack": b"\x00\x00\x00\x02\xc1\xc1",
    "trailing bytes": b"\x00\x00\x00\x02\x80\x80",
    "truncated map": b"\x00\x00\x00\x03\x81\xa1t",
    "a list": _frame([1, 2, 3]),
    "no type": _frame({"seq": 1}),
    "unknown type": _frame({"t": "Launch", "x": 1}),
    "missing field": _frame({"t": "Hello", "version": 1, "vm": "a", "pid": 1}),
    "unknown field": _frame({"t": "Heartbeat", "seq": 1, "extra": 2}),
    "wrong type": _frame({"t": "Heartbeat", "seq": "1"}),
    "bool for int": _frame({"t": "Heartbeat", "seq": True}),
    "negative int": _frame({"t": "Heartbeat", "seq": -1}),
    "str for bytes": _frame({"t": "ConsoleOut", "data": "text"}),
    "bad state": _frame({"t": "VmState", "state": "dancing", "exit_type": 0, "reason": ""}),
    "too many args": _frame({"t": "Hvc", "seq": 1, "vcpu": 0, "number": 0, "args": [0] * 9}),
    "non-int arg": _frame({"t": "Hvc", "seq": 1, "vcpu": 0, "number": 0, "args": ["x"]}),
    "int map key": _frame({1: 2}),
}


@pytest.mark.parametrize("frame", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
def test_malformed_frames_raise_frame_error(frame):
    with pytest.raises(codec.FrameError):
        codec.FrameDecoder().feed(frame)


def test_encoder_refuses_oversized_message():
    with pytest.raises(codec.FrameError):
        codec.encode(m.ConsoleOut(data=b"x" * (codec.MAX_FRAME + 1)))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_garbage_never_raises_anything_but_frame_error(blob):
    try:
        codec.FrameDecoder().feed(blob)
    except codec.FrameError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.text()
                    | st.binary(),
                    lambda kids: st.lists(kids) | st.dictionaries(st.text(), kids), max_leaves=20))
def test_arbitrary_msgpack_objects_are_validated(obj):
    try:
        codec.FrameDecoder().feed(_frame(obj))
    except codec.FrameError:
        pass


def _welcome(**changes) -> dict:
    """A run-time VM's Welcome as a decoded map (no image, entry and context)."""
    body = m.to_wire(m.Welcome(version=1, name="vm-82", vmid=0x82, vcpus=1, memory=0, image="",
                               bootargs="", ram_path="", heartbeat_interval=0.5,
                               entry=0x8000_0000, context=0x8010_0000))
    return {**body, **changes}


def test_welcome_boot_regs_round_trip_and_default_to_none():
    regs = [[0, 1, 2**64 - 1], [0, 30, 5], [2, 0, 0x10], [2, 1, 0x8020_0000]]
    message = m.from_wire(_welcome(boot_regs=regs))
    assert message.boot_regs == regs
    assert codec.FrameDecoder().feed(codec.encode(message)) == [message]
    without = {k: v for k, v in _welcome().items() if k != "boot_regs"}
    assert m.from_wire(without).boot_regs == [], "an older coordinator's Welcome still decodes"


@pytest.mark.parametrize("changes, reason", [
    ({"boot_regs": [[0, 0, 1]]}, r"boot_regs\[0\]: register set 0 index 0 is not one of"),
    ({"boot_regs": [[0, 31, 1]]}, "register set 0 index 31"),
    ({"boot_regs": [[1, 0, 1]]}, "register set 1 index 0"),         # PC: that is entry
    ({"boot_regs": [[2, 2, 1]]}, "register set 2 index 2"),
    ({"boot_regs": [[0, 3, 1], [0, 3, 2]]}, r"boot_regs\[1\]: set 0 index 3 is given twice"),
    ({"boot_regs": [[0, 3]]}, r"boot_regs\[0\]: 2 items, expected \[reg_set, index, value\]"),
    ({"boot_regs": [[0, 3, 1, 4]]}, "4 items"),
    ({"boot_regs": [[0, 3, -1]]}, r"boot_regs\[0\]\[2\]: -1 is outside"),
    ({"boot_regs": [[0, 3, 2**64]]}, "is outside 0..2"),
    ({"boot_regs": [[0, "3", 1]]}, r"boot_regs\[0\]\[1\]: expected int"),
    ({"boot_regs": {"x": 1}}, "boot_regs: expected a list"),
    ({"boot_regs": [[0, 3, 1]], "image": "/x.elf"}, "a VM with an image boots at its ELF entry"),
], ids=lambda value: None)
def test_a_welcome_with_bad_boot_regs_is_refused_precisely(changes, reason):
    with pytest.raises(m.MessageError, match=reason):
        m.from_wire(_welcome(**changes))
