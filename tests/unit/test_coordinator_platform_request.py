"""VM_CREATE's request decoding: the RM's data becomes a typed request, or ARGUMENT_INVALID."""

from __future__ import annotations

import msgpack
import pytest

from gunyah_net.abi.errors import Error
from gunyah_net.coordinator.platform_request import (CreateRequest, DoorbellSpec, MsgqueueSpec,
                                                     PlatformError, decode_create)

VM, PEER = 0x82, 0x03
BELL = {"sender": PEER, "receiver": VM, "virq": 962, "label": 7, "source_can_clear": True,
        "edge": False}
QUEUE = {"sender": VM, "receiver": PEER, "depth": 8, "size": 240, "tx_virq": 963,
         "rx_virq": None, "label": 9}


def data(**changes) -> bytes:
    return msgpack.packb({"name": "child", "rm_virqs": [960, 961], "doorbells": [BELL],
                          "msgqueues": [QUEUE], **changes})


def test_a_good_request_decodes_into_typed_values_and_names_its_peers():
    request = decode_create([VM, 2], data(), max_vcpus=8)
    assert request == CreateRequest(
        VM, 2, "child", (960, 961),
        (DoorbellSpec(PEER, VM, 962, 7, True, False),),
        (MsgqueueSpec(VM, PEER, 8, 240, 963, None, 9),))
    assert request.peers() == {PEER}
    bare = decode_create([VM, 1], data(doorbells=[], msgqueues=[]), max_vcpus=8)
    assert bare.peers() == set() and bare.doorbells == bare.msgqueues == ()


@pytest.mark.parametrize("args, raw, detail", [
    ([0, 1], data(), "vmid: 0 is not an integer in 1..65535"),
    ([0x10000, 1], data(), "vmid"),
    ([VM, 9], data(), "vcpus: 9 is not an integer in 1..8"),
    ([VM, 1], b"\x81", "data is not one msgpack object"),
    ([VM, 1], b"\x01\x02", "data is not one msgpack object"),
    ([VM, 1], msgpack.packb([1, 2]), "data: expected a map with keys"),
    ([VM, 1], data(extra=1), "data: expected a map with keys"),
    ([VM, 1], data(name=""), "name: '' is not a printable string"),
    ([VM, 1], data(name="a\nb"), "name"),
    ([VM, 1], data(rm_virqs=[960]), "rm_virqs: [960] is not two different virqs"),
    ([VM, 1], data(rm_virqs=[1020, 961]), "rm_virqs[0]: 1020 is not an integer in 32..1019"),
    ([VM, 1], data(rm_virqs="960"), "rm_virqs: expected a list"),
    ([VM, 1], data(doorbells=[{**BELL, "virq": 31}]), "doorbells[0].virq"),
    ([VM, 1], data(doorbells=[{**BELL, "edge": 1}]), "doorbells[0].edge: 1 is not a boolean"),
    ([VM, 1], data(doorbells=[{**BELL, "label": 1 << 32}]), "doorbells[0].label"),
    ([VM, 1], data(doorbells=[{**BELL, "sender": VM}]), "doorbells[0]: connects 0x82 to 0x82"),
    ([VM, 1], data(doorbells=[{**BELL, "receiver": 5}]), "it must connect vm 0x82"),
    ([VM, 1], data(doorbells=[BELL, 3]), "doorbells[1]: expected a map"),
    ([VM, 1], data(msgqueues=[{**QUEUE, "depth": 257}]), "msgqueues[0].depth"),
    ([VM, 1], data(msgqueues=[{**QUEUE, "size": 0}]), "msgqueues[0].size"),
    ([VM, 1], data(msgqueues=[{k: v for k, v in QUEUE.items() if k != "label"}]),
     "msgqueues[0]: expected a map with keys"),
], ids=lambda value: None)
def test_every_malformed_request_is_argument_invalid_naming_the_key(args, raw, detail):
    with pytest.raises(PlatformError) as refused:
        decode_create(args, raw, max_vcpus=8)
    assert refused.value.code is Error.ARGUMENT_INVALID
    assert detail in refused.value.detail
