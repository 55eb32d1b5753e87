"""Resource descriptions in Welcome: round trips, and every malformed one is a MessageError."""

import pytest

from gunyah_net.wire.messages import MessageError
from gunyah_net.wire.resources import (DoorbellResource, MsgqueueResource, RmRpcResource,
                                       ShmResource, from_wire, to_wire)

GOOD = [
    DoorbellResource("doorbell", cap=5, label=1, peer=0x81, virq=960, edge=True),
    DoorbellResource("doorbell-source", cap=6, label=1, peer=0x81),
    MsgqueueResource("msgqueue-tx", cap=7, label=2, peer=0x80, depth=8, message_size=240,
                     virq=961),
    ShmResource(label=3, name="ring0", ipa=0x4000_0000, size=0x1_0000, path="/dev/shm/r",
                peers=(0x80, 0x81)),
    RmRpcResource(tx_cap=0x3_0000, rx_cap=0x3_0001, tx_virq=962, rx_virq=963),
]


@pytest.mark.parametrize("resource", GOOD, ids=lambda r: r.kind)
def test_round_trip(resource):
    assert from_wire(to_wire(resource)) == resource


BAD = {
    "not a map": [1, 2],
    "no kind": {"cap": 1},
    "unknown kind": {"kind": "vcpu", "cap": 1},
    "missing field": {"kind": "doorbell", "cap": 1},
    "unknown field": {"kind": "doorbell", "cap": 1, "label": 1, "peer": 1, "colour": 2},
    "negative cap": {"kind": "doorbell", "cap": -1, "label": 1, "peer": 1},
    "virq not an SPI": {"kind": "doorbell", "cap": 1, "label": 1, "peer": 1, "virq": 27},
    "edge not bool": {"kind": "doorbell", "cap": 1, "label": 1, "peer": 1, "edge": 1},
    "unaligned shm": {"kind": "shm", "label": 1, "name": "a", "ipa": 0x4000_0001,
                      "size": 4096, "path": "/p", "peers": [1]},
    "empty shm": {"kind": "shm", "label": 1, "name": "a", "ipa": 0x4000_0000, "size": 0,
                  "path": "/p", "peers": [1]},
    "peers not a list": {"kind": "shm", "label": 1, "name": "a", "ipa": 0x4000_0000,
                         "size": 4096, "path": "/p", "peers": 3},
    "rm-rpc virq a PPI": {"kind": "rm-rpc", "tx_cap": 1, "rx_cap": 2, "tx_virq": 27,
                          "rx_virq": 960},
    "rm-rpc missing rx": {"kind": "rm-rpc", "tx_cap": 1, "tx_virq": 960, "rx_virq": 961},
    "rm-rpc cap a string": {"kind": "rm-rpc", "tx_cap": "1", "rx_cap": 2, "tx_virq": 960,
                            "rx_virq": 961},
    "rm-rpc virq nil": {"kind": "rm-rpc", "tx_cap": 1, "rx_cap": 2, "tx_virq": None,
                        "rx_virq": 961},
}


@pytest.mark.parametrize("obj", BAD.values(), ids=BAD.keys())
def test_malformed_resources_are_rejected(obj):
    with pytest.raises(MessageError):
        from_wire(obj)
