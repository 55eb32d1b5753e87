"""EL2 in the coordinator: hypercalls on the topology's objects, virq effects and shared memory.

In-process coordinator; the test itself is the worker of each "external*" VM (``ExternalWorker``)
and speaks raw Hvc frames over the real Unix socket, as a worker's vCPU would.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fake_worker import ExternalWorker, fake_coordinator, run_with_timeout

from gunyah_net.abi.errors import Error
from gunyah_net.abi.hypercalls import BY_NAME
from gunyah_net.config import DoorbellConfig, MsgqueueConfig, ShmConfig, Trigger
from gunyah_net.hyp import hypercalls as shims
from gunyah_net.wire import resources as wire
from gunyah_net.wire.messages import HvcReturn, Virq

A, B = "external-a", "external-b"
VMIDS = {A: 0x80, B: 0x81}
ALL_ONES = (1 << 64) - 1
BUF = 0x8000_1000
"""A guest buffer address: EL2 never dereferences it (the worker does)."""
OBJECTS = {
    "doorbells": (DoorbellConfig(A, B, 1), DoorbellConfig(B, A, 2, virq=40, trigger=Trigger.EDGE)),
    "msgqueues": (MsgqueueConfig(A, B, 3, depth=8, message_size=240),),
    "shms": (ShmConfig("ring", 0x10000, (A, B), 4),),
}


def N(name: str) -> int:
    return BY_NAME[name].number


def x0(error: Error) -> int:
    return int(error) & ALL_ONES


def coordinator(tmp_path, objects=OBJECTS, **options):
    options.setdefault("stop_grace", 0.3)
    return fake_coordinator(tmp_path, (A, ""), (B, ""), objects=objects, **options)


def resources(worker: ExternalWorker) -> dict[str, wire.Resource]:
    """Returns the worker's Welcome resources by kind (each kind appears once here)."""
    decoded = [wire.from_wire(r) for r in worker.welcome.resources]
    by_kind = {r.kind: r for r in decoded}
    assert len(by_kind) == len(decoded)
    return by_kind


async def pair(c) -> tuple[ExternalWorker, ExternalWorker]:
    return await ExternalWorker.connect(c, A), await ExternalWorker.connect(c, B)


def test_welcome_carries_each_vms_caps_virqs_and_one_shared_file_at_one_ipa(tmp_path):
    async def body():
        async with coordinator(tmp_path) as c:
            a, b = await pair(c)
            ra, rb = resources(a), resources(b)
            shm = Path(ra["shm"].path)
            content = shm.read_bytes()
            await a.close()
            await b.close()
        return ra, rb, content, shm.exists()

    ra, rb, content, exists_after = run_with_timeout(body)
    assert set(ra) == {"doorbell-source", "doorbell", "msgqueue-tx", "shm", "rm-rpc"}
    assert set(rb) == {"doorbell", "doorbell-source", "msgqueue-rx", "shm", "rm-rpc"}
    # The RM RPC pair's VM-side virqs come after the topology's own: a has 40 and 960.
    assert (ra["rm-rpc"].tx_virq, ra["rm-rpc"].rx_virq) == (961, 962)
    assert (rb["rm-rpc"].tx_virq, rb["rm-rpc"].rx_virq) == (962, 963)
    # b receives doorbell 1 (default virq: 960, level) and a doorbell 2 (explicit 40, edge).
    assert (rb["doorbell"].label, rb["doorbell"].virq, rb["doorbell"].edge) == (1, 960, False)
    assert (ra["doorbell"].label, ra["doorbell"].virq, ra["doorbell"].edge) == (2, 40, True)
    assert ra["doorbell-source"].peer == VMIDS[B] and rb["doorbell-source"].peer == VMIDS[A]
    # The queue: not-empty is b's next default (961), not-full a's first default (960); edge.
    assert (rb["msgqueue-rx"].virq, ra["msgqueue-tx"].virq) == (961, 960)
    assert rb["msgqueue-rx"].edge and ra["msgqueue-tx"].edge
    assert (ra["msgqueue-tx"].depth, ra["msgqueue-tx"].message_size) == (8, 240)
    # Caps are per cspace: every ID carries its VM's vmid.
    assert all(r.cap >> 16 == VMIDS[A] for k, r in ra.items() if k not in ("shm", "rm-rpc"))
    assert all(r.cap >> 16 == VMIDS[B] for k, r in rb.items() if k not in ("shm", "rm-rpc"))
    assert ra["rm-rpc"].tx_cap >> 16 == VMIDS[A] and rb["rm-rpc"].rx_cap >> 16 == VMIDS[B]
    # One zero-filled file, the same path and the same IPA for both peers; gone after stop.
    assert ra["shm"] == rb["shm"]
    assert (ra["shm"].ipa, ra["shm"].size, ra["shm"].label) == (0x4000_0000, 0x10000, 4)
    assert ra["shm"].peers == (VMIDS[A], VMIDS[B])
    assert content == bytes(0x10000)
    assert not exists_after


def test_doorbell_send_asserts_the_receivers_virq_and_returns_the_old_flags(tmp_path):
    async def body():
        async with coordinator(tmp_path) as c:
            a, b = await pair(c)
            tx, rx = resources(a)["doorbell-source"].cap, resources(b)["doorbell"].cap
            first = await a.hvc(N("doorbell_send"), [tx, 0b101, 0])
            raised = await asyncio.wait_for(b.virqs.get(), 5)
            second = await a.hvc(N("doorbell_send"), [tx, 0b010, 0])
            received = await b.hvc(N("doorbell_receive"), [rx, ALL_ONES, 0])
            lowered = b.frames[-2]  # the effect on b arrives before b's own reply
            return first, raised, second, received, lowered, b.virqs.qsize()

    first, raised, second, received, lowered, extra = run_with_timeout(body)
    assert first.regs == [0, 0]
    assert raised == Virq(960, True)
    assert second.regs == [0, 0b101]
    assert received.regs == [0, 0b111]
    assert lowered == Virq(960, False)
    assert extra == 1, "level: one assert (queued above) and one deassert, nothing more"


def test_msgqueue_send_and_receive_carry_the_bytes_and_the_not_empty_virq(tmp_path):
    async def body():
        async with coordinator(tmp_path) as c:
            a, b = await pair(c)
            tx, rx = resources(a)["msgqueue-tx"].cap, resources(b)["msgqueue-rx"].cap
            empty = await b.hvc(N("msgqueue_receive"), [rx, BUF, 240, 0])
            sent = await a.hvc(N("msgqueue_send"), [tx, 5, BUF, 0, 0], b"hello")
            virq = await asyncio.wait_for(b.virqs.get(), 5)
            got = await b.hvc(N("msgqueue_receive"), [rx, BUF, 240, 0])
            short = await a.hvc(N("msgqueue_send"), [tx, 5, BUF, 0, 0], b"hel")
            big = await a.hvc(N("msgqueue_send"), [tx, 241, BUF, 0, 0])
            return empty, sent, virq, got, short, big

    empty, sent, virq, got, short, big = run_with_timeout(body)
    assert empty.regs == [x0(Error.MSGQUEUE_EMPTY), 0, 0]
    assert sent.regs == [0, 1]
    assert virq == Virq(961, True)
    assert (got.regs, got.data) == ([0, 5, 0], b"hello")
    assert short.regs == [x0(Error.ADDR_INVALID), 0], "fewer bytes than size: unreadable buffer"
    assert big.regs == [x0(Error.ARGUMENT_SIZE), 0], "over message_size, worker shipped nothing"


@pytest.mark.parametrize("call, expected", [
    (lambda ra, rb: ("doorbell_send", [rb["doorbell"].cap, 1, 0]), Error.ARGUMENT_INVALID),
    (lambda ra, rb: ("doorbell_send", [(VMIDS[A] << 16) | 500, 1, 0]), Error.CSPACE_CAP_NULL),
    (lambda ra, rb: ("doorbell_receive", [ra["doorbell-source"].cap, 1, 0]),
     Error.CSPACE_INSUFFICIENT_RIGHTS),
    (lambda ra, rb: ("msgqueue_flush", [ra["doorbell"].cap, 0]), Error.CSPACE_WRONG_OBJECT_TYPE),
    (lambda ra, rb: ("msgqueue_receive", [ra["msgqueue-tx"].cap, BUF, 240, 0]),
     Error.CSPACE_INSUFFICIENT_RIGHTS),
], ids=["peers-cap-id", "empty-slot", "source-cannot-receive", "doorbell-as-queue",
        "sender-cannot-receive"])
def test_a_cap_the_caller_does_not_hold_gets_the_exact_cspace_error(tmp_path, call, expected):
    async def body():
        async with coordinator(tmp_path) as c:
            a, b = await pair(c)
            name, args = call(resources(a), resources(b))
            return await a.hvc(N(name), args), a.frames, b.frames

    reply, frames_a, frames_b = run_with_timeout(body)
    assert reply.regs[0] == x0(expected)
    assert not [f for f in frames_a + frames_b if isinstance(f, Virq)], "no effect"


@pytest.mark.parametrize("number, args, data, expected", [
    (0x6001, [1, 2], b"", Error.UNIMPLEMENTED),         # not a table number
    (0x01, [0, 0, 0], b"", Error.UNIMPLEMENTED),        # partition_create_partition: not EL2
    (N("doorbell_send"), [0x800000, 1], b"", Error.ARGUMENT_INVALID),      # one arg short
    (N("doorbell_send"), [0x800000, 1, 0], b"x", Error.ARGUMENT_INVALID),  # bytes, no buffer
    (N("msgqueue_send"), [0x800001, 2, BUF, 0, 0], b"abc", Error.ARGUMENT_INVALID),  # > size
])
def test_a_malformed_hvc_gets_an_error_reply_and_the_link_stays_up(tmp_path, number, args, data,
                                                                   expected):
    async def body():
        async with coordinator(tmp_path) as c:
            a, b = await pair(c)
            bad = await a.hvc(number, args, data)
            tx = resources(a)["doorbell-source"].cap
            good = await a.hvc(N("doorbell_send"), [tx, 1, 0])
            return bad, good, c.table[A].state

    bad, good, state = run_with_timeout(body)
    assert bad.regs[0] == x0(expected)
    assert good.regs == [0, 0] and state == "starting", "still served, not crashed"


def test_ten_thousand_messages_arrive_in_order_with_virq_flow_control(tmp_path):
    total = 10_000

    async def sender(a: ExternalWorker, tx: int) -> int:
        full = 0
        for index in range(total):
            while True:
                reply = await a.hvc(N("msgqueue_send"), [tx, 8, BUF, 0, 0],
                                    index.to_bytes(8, "little"))
                if reply.regs[0] == 0:
                    break
                assert reply.regs[0] == x0(Error.MSGQUEUE_FULL)
                full += 1
                await a.virqs.get()  # not-full (edge): the receiver made room
            if reply.regs[1] == 0:  # now full: wait for not-full before the next one
                await a.virqs.get()
        return full

    async def receiver(b: ExternalWorker, rx: int) -> list[int]:
        got: list[int] = []
        while len(got) < total:
            await b.virqs.get()  # not-empty (edge)
            while True:
                reply = await b.hvc(N("msgqueue_receive"), [rx, BUF, 240, 0])
                if reply.regs[0] == x0(Error.MSGQUEUE_EMPTY):
                    break
                assert reply.regs[:2] == [0, 8]
                got.append(int.from_bytes(reply.data, "little"))
                if reply.regs[2] == 0:
                    break
        return got

    async def body():
        async with coordinator(tmp_path) as c:
            a, b = await pair(c)
            tx, rx = resources(a)["msgqueue-tx"].cap, resources(b)["msgqueue-rx"].cap
            return await asyncio.gather(sender(a, tx), receiver(b, rx))

    _, got = run_with_timeout(body, timeout=60)
    assert got == list(range(total))


def test_a_virq_for_a_worker_that_has_not_connected_is_delivered_after_its_welcome(tmp_path):
    async def body():
        async with coordinator(tmp_path) as c:
            a = await ExternalWorker.connect(c, A)
            tx = resources(a)["doorbell-source"].cap
            sent = await a.hvc(N("doorbell_send"), [tx, 1, 0])
            b = await ExternalWorker.connect(c, B)
            return sent, await asyncio.wait_for(b.virqs.get(), 5), b.frames[0]

    sent, virq, first = run_with_timeout(body)
    assert sent.regs == [0, 0]
    assert virq == first == Virq(960, True)


def test_a_virq_for_a_dead_vm_is_dropped_and_the_caller_is_still_answered(tmp_path):
    async def body():
        async with coordinator(tmp_path) as c:
            a, b = await pair(c)
            await b.close()
            record = await c.wait_vm(B, "crashed")  # closed its link, process kept running
            tx = resources(a)["doorbell-source"].cap
            sent = await a.hvc(N("doorbell_send"), [tx, 1, 0])
            return record, sent, c.virqs.outbox(VMIDS[B]).dropped

    record, sent, dropped = run_with_timeout(body)
    assert "closed its link" in record.reason
    assert sent.regs == [0, 0] and dropped == 1


def test_an_internal_el2_error_crashes_the_calling_vm_only(tmp_path, monkeypatch):
    def broken(call):
        raise RuntimeError("bug in a shim")

    monkeypatch.setitem(shims.SHIMS, "doorbell_reset", broken)

    async def body():
        async with coordinator(tmp_path) as c:
            a, b = await pair(c)
            seq = b.send_hvc(N("doorbell_reset"), [resources(b)["doorbell"].cap, 0])
            record = await c.wait_vm(B, "crashed")
            ended = await asyncio.wait_for(b.closed, 5)
            replies = [f for f in b.frames if isinstance(f, HvcReturn) and f.seq == seq]
            tx = resources(a)["doorbell-source"].cap
            return record, ended, replies, await a.hvc(N("doorbell_send"), [tx, 1, 0])

    record, ended, replies, still = run_with_timeout(body)
    assert record.reason == ("internal error in EL2 executing hypercall 0x14: "
                             "RuntimeError('bug in a shim')")
    assert replies == [] and ended
    assert still.regs == [0, 0], "the coordinator serves the other VM"
