"""Stage-2 operations on the wire: the frozen format, round trips and every rejection."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gunyah_net.wire import messages
from gunyah_net.wire.messages import MemUpdate, MessageError
from gunyah_net.wire.stage2 import MapOp, ProtectOp, UnmapOp, from_wire, ops_from_wire, to_wire

PAGE = 0x1000
U64 = (1 << 64) - 1


def test_the_wire_format_is_frozen():
    assert to_wire(MapOp(0x8000_0000, 2 * PAGE, "/dev/shm/a.ram", PAGE, 7)) == {
        "op": "map", "ipa": 0x8000_0000, "size": 0x2000, "path": "/dev/shm/a.ram",
        "offset": 0x1000, "rights": 7}
    assert to_wire(UnmapOp(0x9000_0000, PAGE)) == {"op": "unmap", "ipa": 0x9000_0000,
                                                   "size": 0x1000}
    assert to_wire(ProtectOp(0x9000_0000, PAGE, 0)) == {"op": "protect", "ipa": 0x9000_0000,
                                                        "size": 0x1000, "rights": 0}


pages = st.integers(0, (1 << 40) - 1).map(lambda n: n * PAGE)
ops = st.one_of(
    st.builds(MapOp, pages, pages.filter(bool), st.text(min_size=1).filter(lambda s: "\0" not in s),
              pages, st.integers(0, 7)),
    st.builds(UnmapOp, pages, pages.filter(bool)),
    st.builds(ProtectOp, pages, pages.filter(bool), st.integers(0, 7)))


@given(st.lists(ops, max_size=8))
def test_ops_survive_msgpack_inside_a_memupdate(values):
    update = MemUpdate(9, [to_wire(v) for v in values])
    message = messages.from_wire(msgpack.unpackb(msgpack.packb(messages.to_wire(update))))
    assert isinstance(message, MemUpdate) and message.seq == 9
    assert ops_from_wire(message.ops) == values


GOOD = {"op": "map", "ipa": 0x8000_0000, "size": PAGE, "path": "/f", "offset": 0, "rights": 6}


@pytest.mark.parametrize("obj, message", [
    ([1], "not a map"),
    ({**GOOD, "op": "remap"}, "unknown stage-2 op 'remap'"),
    ({k: v for k, v in GOOD.items() if k != "op"}, "unknown stage-2 op None"),
    ({k: v for k, v in GOOD.items() if k != "path"}, r"missing \['path'\]"),
    ({**GOOD, "extra": 1}, r"unknown \['extra'\]"),
    ({"op": "unmap", "ipa": 0, "size": PAGE, "rights": 7}, r"unknown \['rights'\]"),
    ({**GOOD, "ipa": 0x8000_0800}, "ipa: 0x80000800 is not a multiple of 4 KiB"),
    ({**GOOD, "size": 0x10}, "size: 0x10 is not a multiple of 4 KiB"),
    ({**GOOD, "offset": 1}, "offset: 0x1 is not a multiple of 4 KiB"),
    ({**GOOD, "size": 0}, "size is 0"),
    ({**GOOD, "ipa": U64 - PAGE + 1, "size": 2 * PAGE}, "wraps"),
    ({**GOOD, "offset": U64 - PAGE + 1, "size": 2 * PAGE}, "file range .* wraps"),
    ({**GOOD, "rights": 8}, "rights: 0x8 is not R=4|W=2|X=1"),
    ({**GOOD, "rights": True}, "rights: True is not a 64-bit unsigned integer"),
    ({**GOOD, "ipa": -PAGE}, "ipa: -4096 is not a 64-bit unsigned integer"),
    ({**GOOD, "ipa": 1 << 64}, "is not a 64-bit unsigned integer"),
    ({**GOOD, "size": "4096"}, "size: '4096' is not a 64-bit unsigned integer"),
    ({**GOOD, "path": ""}, "expected a non-empty path"),
    ({**GOOD, "path": b"/f"}, "expected a non-empty path"),
    ({**GOOD, "path": "/f\0"}, "expected a non-empty path"),
    ({"op": "protect", "ipa": 0, "size": PAGE}, r"missing \['rights'\]"),
])
def test_a_bad_op_is_rejected_with_a_precise_reason(obj, message):
    with pytest.raises(MessageError, match=message):
        from_wire(obj)


def test_a_bad_op_in_a_list_is_named_by_its_index():
    with pytest.raises(MessageError, match=r"op \[1\]: unmap op: size is 0"):
        ops_from_wire([GOOD, {"op": "unmap", "ipa": 0, "size": 0}])
    with pytest.raises(MessageError, match="not a list"):
        ops_from_wire({"op": "unmap"})
