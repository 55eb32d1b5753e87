"""VM_CREATE's and VM_POWERON's request decoding: the RM's data becomes a typed request, or
ARGUMENT_INVALID naming the key."""

from __future__ import annotations

import msgpack
import pytest

from gunyah_net.abi.errors import Error
from gunyah_net.coordinator.platform_request import (BootRegs, CreateRequest, DoorbellSpec,
                                                     MsgqueueSpec, PlatformError,
                                                     decode_boot_regs, decode_create)

VM, PEER = 0x82, 0x03
U64 = (1 << 64) - 1
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
    ([VM, 1], b"\x81", "VM_CREATE: data is not one msgpack object"),
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


# -- VM_POWERON's boot registers ----------------------------------------------------------------

def test_poweron_data_decodes_into_boot_registers_as_welcome_triples():
    regs = decode_boot_regs(msgpack.packb({"x": [[30, 7], [1, U64]], "sp_el0": 0x10,
                                           "sp_el1": 0x8010_0000}))
    assert regs == BootRegs(((30, 7), (1, U64)), 0x10, 0x8010_0000)
    assert regs.triples() == ((0, 30, 7), (0, 1, U64), (2, 0, 0x10), (2, 1, 0x8010_0000))
    only_sp1 = decode_boot_regs(msgpack.packb({"sp_el1": 0}))
    assert only_sp1.triples() == ((2, 1, 0),), "a zero SP_EL1 is still a register set"


@pytest.mark.parametrize("raw", [b"", msgpack.packb({}), msgpack.packb({"x": []})])
def test_no_poweron_data_sets_no_register(raw):
    assert decode_boot_regs(raw).triples() == ()


@pytest.mark.parametrize("raw, detail", [
    (b"\xc1", "VM_POWERON: data is not one msgpack object"),
    (b"\x01\x02", "data is not one msgpack object"),
    (msgpack.packb([[1, 2]]), "data: expected a map, got list"),
    (msgpack.packb({"x": [], "pc": 4}), "data: unknown key(s) 'pc'"),
    (msgpack.packb({"sp_el2": 4}), "unknown key(s) 'sp_el2'"),
    (msgpack.packb({"x": {"1": 2}}), "x: expected a list, got dict"),
    (msgpack.packb({"x": [[0, 5]]}), "x[0]: X0 is the context argument"),
    (msgpack.packb({"x": [[31, 5]]}), "x[0].index: 31 is not an integer in 1..30"),
    (msgpack.packb({"x": [[1, 1], [True, 5]]}), "x[1].index: True is not an integer"),
    (msgpack.packb({"x": [[1, -1]]}), "x[0].value: -1 is not an integer in 0.."),
    (msgpack.packb({"x": [[1, "5"]]}), "x[0].value: '5' is not an integer"),
    (msgpack.packb({"x": [[1, 2, 3]]}), "x[0]: [1, 2, 3] is not an [index, value] pair"),
    (msgpack.packb({"x": [5]}), "x[0]: 5 is not an [index, value] pair"),
    (msgpack.packb({"x": [[4, 1], [4, 2]]}), "x[1]: X4 is given twice"),
    (msgpack.packb({"sp_el0": None}), "sp_el0: None is not an integer"),
    (msgpack.packb({"sp_el1": 1.5}), "sp_el1: 1.5 is not an integer"),
    (msgpack.packb({"sp_el1": True}), "sp_el1: True is not an integer"),
], ids=lambda value: None)
def test_malformed_poweron_data_is_argument_invalid_naming_the_key(raw, detail):
    with pytest.raises(PlatformError) as refused:
        decode_boot_regs(raw)
    assert refused.value.code is Error.ARGUMENT_INVALID
    assert detail in refused.value.detail
