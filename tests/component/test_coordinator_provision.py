"""Provisioning at `up`: EL2 objects, default virqs, shm IPAs and each VM's Welcome resources.

Pure: ``provision`` is called directly on topology values; the caps it hands out are then used
through ``El2.hypercall`` to check they name the objects the resources describe.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gunyah_net.abi.errors import Error
from gunyah_net.abi.hypercalls import BY_NAME
from gunyah_net.config import DoorbellConfig, MsgqueueConfig, ShmConfig, Topology, Trigger, VmConfig
from gunyah_net.coordinator.provision import (FREE_VIRQ_START, ProvisionError, allocate_virqs,
                                              place_shms, provision)
from gunyah_net.hyp.effects import AssertVirq
from gunyah_net.wire import resources as wire
from gunyah_net.wire.resources import (DoorbellResource, MsgqueueResource, RmRpcResource,
                                       ShmResource)

VMIDS = {"a": 0x80, "b": 0x81, "c": 0x82, "d": 0x83}
SHM_DIR = Path("/dev/shm/gunyah-net-test")
GiB = 1 << 30


def _topology(**objects) -> Topology:
    vms = tuple(VmConfig(name, Path("/img.elf"), vcpus=2) for name in VMIDS)
    return Topology("t", "/t.toml", vms, **objects)


def test_default_virqs_count_up_from_960_per_vm_skipping_explicit_ones():
    topology = _topology(
        doorbells=(DoorbellConfig("a", "b", 1), DoorbellConfig("c", "b", 2, virq=961),
                   DoorbellConfig("a", "b", 3), DoorbellConfig("b", "a", 4, virq=40)),
        msgqueues=(MsgqueueConfig("a", "b", 5), MsgqueueConfig("b", "a", 6, tx_virq=960)))
    # Claims in order: the doorbells' virqs (in b, b, b, a), then per queue rx (in the receiver)
    # and tx (in the sender). b names 961 and 960 explicitly, so its defaults are 962, 963, ...
    assert allocate_virqs(topology) == [962, 961, 963, 40,
                                        964, 960,    # queue 5: rx in b, tx in a (a's first free)
                                        961, 960]    # queue 6: rx in a, tx in b (explicit)


def test_running_out_of_default_virqs_names_the_claim():
    spare = 1019 - FREE_VIRQ_START + 1
    topology = _topology(doorbells=tuple(DoorbellConfig("a", "b", n) for n in range(spare + 1)))
    assert allocate_virqs(_topology(doorbells=topology.doorbells[:spare]))[-1] == 1019
    with pytest.raises(ProvisionError, match=rf"/t.toml: doorbell\[{spare}\].virq: VM 'b' has no "
                                             r"free default virq left"):
        allocate_virqs(topology)


def test_shm_bases_are_shared_64k_aligned_and_avoid_every_region_their_vms_see():
    topology = _topology(shms=(
        ShmConfig("one", 0x3000, ("a", "b"), 1),
        ShmConfig("fixed", 0x1000, ("b", "c"), 2, base=GiB + 0x20000),
        ShmConfig("two", 0x20000, ("a", "b"), 3),
        ShmConfig("apart", 0x1000, ("a", "c"), 4),
    ))
    # "two" does not fit between "one" (ends at +0x3000, aligned up to +0x10000) and "fixed"
    # (+0x20000, which b sees), so it goes after "fixed"; "apart" shares a with one and two.
    assert place_shms(topology) == [GiB, GiB + 0x20000, GiB + 0x30000, GiB + 0x10000]


def test_regions_with_no_vm_in_common_may_share_an_ipa():
    apart = _topology(shms=(ShmConfig("ab", 0x1000, ("a", "b"), 1),
                            ShmConfig("cd", 0x1000, ("c", "d"), 2)))
    chained = _topology(shms=(ShmConfig("ab", 0x1000, ("a", "b"), 1),
                              ShmConfig("bc", 0x1000, ("c", "b"), 2),
                              ShmConfig("ac", 0x1000, ("a", "c"), 3)))
    assert place_shms(apart) == [GiB, GiB]
    assert place_shms(chained) == [GiB, GiB + 0x10000, GiB + 0x20000]


def test_a_full_shm_window_is_a_provision_error():
    regions = tuple(ShmConfig(f"r{i}", 256 << 20, ("a", "b"), i) for i in range(5))
    with pytest.raises(ProvisionError, match=r"shm\[4\] 'r4': no room for 0x10000000 bytes"):
        place_shms(_topology(shms=regions))


def _call(el2, vmid, name, *args, data=b""):
    return el2.hypercall(vmid, 0, BY_NAME[name].number, list(args), data)


def test_each_vm_gets_its_caps_virqs_and_regions_and_they_name_live_objects():
    topology = _topology(
        doorbells=(DoorbellConfig("a", "b", 7, trigger=Trigger.EDGE),),
        msgqueues=(MsgqueueConfig("a", "b", 0xFFFF_FFFF, depth=4, message_size=64),),
        shms=(ShmConfig("ring", 0x10000, ("a", "b"), 9),))
    done = provision(topology, VMIDS, SHM_DIR)
    a, b = done.resources["a"], done.resources["b"]
    assert [r.kind for r in a] == ["doorbell-source", "msgqueue-tx", "shm", "rm-rpc"]
    assert [r.kind for r in b] == ["doorbell", "msgqueue-rx", "shm", "rm-rpc"]
    assert [r.kind for r in done.resources["c"]] == [r.kind for r in done.resources["d"]] == \
        ["rm-rpc"]
    bell_tx, queue_tx, shm_a, _ = a
    bell_rx, queue_rx, shm_b, _ = b
    assert bell_rx == DoorbellResource("doorbell", bell_rx.cap, 7, 0x80, 960, True)
    assert bell_tx == DoorbellResource("doorbell-source", bell_tx.cap, 7, 0x81, None, False)
    assert queue_tx == MsgqueueResource("msgqueue-tx", queue_tx.cap, 0xFFFF_FFFF, 0x81, 4, 64,
                                        960, True)
    assert queue_rx == MsgqueueResource("msgqueue-rx", queue_rx.cap, 0xFFFF_FFFF, 0x80, 4, 64,
                                        961, True)
    assert shm_a == shm_b == ShmResource(9, "ring", GiB, 0x10000, str(SHM_DIR / "ring.shm"),
                                         (0x80, 0x81))
    assert [wire.from_wire(wire.to_wire(r)) for r in (*a, *b)] == [*a, *b]
    # The caps are the El2 objects: ringing with a's cap pulses b's virq 960 (edge).
    el2 = done.el2
    assert _call(el2, 0x80, "doorbell_send", bell_tx.cap, 1, 0).effects == (AssertVirq(0x81, 960),)
    sent = _call(el2, 0x80, "msgqueue_send", queue_tx.cap, 3, 0, 0, 0, data=b"abc")
    assert sent.regs == [0, 1] and sent.effects == (AssertVirq(0x81, 961),)
    got = _call(el2, 0x81, "msgqueue_receive", queue_rx.cap, 0, 64, 0)
    assert (got.regs, got.data) == ([0, 3, 0], b"abc")


def test_every_vm_gets_an_rm_queue_pair_with_virqs_after_the_topologys_own():
    topology = _topology(
        doorbells=(DoorbellConfig("a", "b", 1), DoorbellConfig("c", "b", 2, virq=961)),
        msgqueues=(MsgqueueConfig("b", "a", 3, tx_virq=964),))
    done = provision(topology, VMIDS, SHM_DIR)
    rpc = {vm: done.resources[vm][-1] for vm in VMIDS}
    assert all(isinstance(r, RmRpcResource) for r in rpc.values())
    # b: doorbell 1 takes 960 (961 is fixed), 964 is fixed: the pair gets 962 and 963.
    # a: its queue's rx took 960; the pair gets 961, 962. c and d have no virq of their own.
    assert {vm: (r.tx_virq, r.rx_virq) for vm, r in rpc.items()} == {
        "a": (961, 962), "b": (962, 963), "c": (960, 961), "d": (960, 961)}
    # The RM's ends: virqs from its own pool, from 32 up, skipping 33 (the UART's INTID).
    pairs = done.rm_pairs
    assert [(pairs[vm].rm_rx_virq, pairs[vm].rm_tx_virq) for vm in VMIDS] == [
        (32, 34), (35, 36), (37, 38), (39, 40)]
    assert all(p.rm_tx_cap >> 16 == 0xFF and p.rm_rx_cap >> 16 == 0xFF for p in pairs.values())
    assert all(pairs[vm].vm_tx_cap >> 16 == vmid for vm, vmid in VMIDS.items())


def test_a_vm_and_the_rm_talk_over_the_pair_with_its_virqs():
    done = provision(_topology(), VMIDS, SHM_DIR)
    el2, pair = done.el2, done.rm_pairs["b"]
    sent = _call(el2, 0x81, "msgqueue_send", pair.vm_tx_cap, 3, 0, 0, 0, data=b"req")
    assert sent.regs == [0, 1] and sent.effects == (AssertVirq(0xFF, pair.rm_rx_virq),)
    got = _call(el2, 0xFF, "msgqueue_receive", pair.rm_rx_cap, 0, 240, 0)
    assert (got.regs, got.data) == ([0, 3, 0], b"req")
    reply = _call(el2, 0xFF, "msgqueue_send", pair.rm_tx_cap, 5, 0, 0, 0, data=b"reply")
    assert reply.effects == (AssertVirq(0x81, pair.vm_rx_virq),)
    assert _call(el2, 0x81, "msgqueue_receive", pair.vm_rx_cap, 0, 240, 0).data == b"reply"
    wrong = _call(el2, 0x80, "msgqueue_send", pair.vm_tx_cap, 3, 0, 0, 0, data=b"req")
    assert wrong.regs[0] == int(Error.ARGUMENT_INVALID), "b's cap ID is no slot of a's cspace"


def test_a_vm_without_two_free_default_virqs_for_its_rm_pair_is_a_provision_error():
    spare = 1019 - FREE_VIRQ_START + 1
    bells = tuple(DoorbellConfig("a", "b", n) for n in range(spare - 1))
    assert provision(_topology(doorbells=bells[:-1]), VMIDS, SHM_DIR).rm_pairs["b"].vm_rx_virq \
        == 1019
    with pytest.raises(ProvisionError, match="VM 'b' has no free default virq left for its RM "
                                             "RPC queues"):
        provision(_topology(doorbells=bells), VMIDS, SHM_DIR)
