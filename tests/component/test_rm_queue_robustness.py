"""Review: the real RM VM process against a VM that floods it and does not read its replies.

In-process coordinator with the real RM (``python -m rm``); the test is the topology's only VM
(``ExternalWorker``). What a guest depends on: when its RM queue is full the RM waits for room
(the not-full virq) instead of dropping, so every request gets its reply, in request order; a
guest that floods the RM without reading is held back (its own sends fail with
ERROR_MSGQUEUE_FULL after a bounded number) while other VMs are served, and gets every reply
in order once it reads; and garbage in its RM queue is dropped without killing the RM, which
keeps answering.
"""

from __future__ import annotations

import asyncio

from fake_worker import EXTERNAL_COMMAND, ExternalWorker, fake_topology, run_with_timeout

from gunyah_net.abi.errors import Error
from gunyah_net.abi.hypercalls import BY_NAME
from gunyah_net.abi.rm import RPC_QUEUE_DEPTH, RmCall, RpcType
from gunyah_net.coordinator import Coordinator
from gunyah_net.wire import resources as wire
from rm.rpc import Header, encode_request, parse_header
from rm.vm_queues import OUTBOX_BOUND

SEND, RECEIVE = BY_NAME["msgqueue_send"].number, BY_NAME["msgqueue_receive"].number
FULL = int(Error.MSGQUEUE_FULL) & ((1 << 64) - 1)
PUSH = 1
REQUESTS = 40
"""Five times the RM queue's depth (8)."""
FLOOD = 200
HELD_AFTER = 2 * RPC_QUEUE_DEPTH + OUTBOX_BOUND
"""Most requests a VM that does not read gets in: a full queue each way and the RM's bound."""


class Guest:
    """The test as VM external-a: sends fragments on its RM queue, receives what the RM sent."""

    def __init__(self, vm: ExternalWorker) -> None:
        self.vm = vm
        self.rpc = next(r for r in map(wire.from_wire, vm.welcome.resources)
                        if r.kind == "rm-rpc")

    async def send(self, fragment: bytes) -> None:
        """msgqueue_send; on ERROR_MSGQUEUE_FULL waits for the not-full virq and retries."""
        while not await self.try_send(fragment):
            assert await self.not_full(10), "no not-full virq in 10 s"

    async def try_send(self, fragment: bytes) -> bool:
        """msgqueue_send once; False if EL2 answered ERROR_MSGQUEUE_FULL."""
        result = await self.vm.hvc(SEND, [self.rpc.tx_cap, len(fragment), 0, PUSH, 0], fragment)
        assert result.regs[0] in (0, FULL), result
        return result.regs[0] == 0

    async def not_full(self, timeout: float) -> bool:
        """Waits up to ``timeout`` s for the not-full virq of the guest's RM queue."""
        try:
            while (await asyncio.wait_for(self.vm.virqs.get(), timeout)).virq != \
                    self.rpc.tx_virq:
                pass
        except TimeoutError:
            return False
        return True

    async def flood(self, count: int) -> int:
        """Sends requests seq 0.. until EL2 refuses one and no not-full virq follows within 2 s,
        or ``count`` went in; returns how many went in."""
        seq = 0
        while seq < count:
            (fragment,) = encode_request(RmCall.VM_GET_VMID, seq)
            if await self.try_send(fragment):
                seq += 1
            elif not await self.not_full(2):
                break
        return seq

    async def receive(self, count: int) -> list[Header]:
        """Receives until ``count`` fragments came; returns their headers."""
        headers = []
        while len(headers) < count:
            result = await self.vm.hvc(RECEIVE, [self.rpc.rx_cap, 0, 240, 0])
            if result.regs[0] == 0:
                headers.append(parse_header(result.data))
            else:
                await asyncio.sleep(0.02)
        return headers

    async def receive_all(self) -> list[Header]:
        """Receives until the RM has sent nothing for 0.5 s; returns the fragments' headers."""
        headers = []
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        while loop.time() - quiet_since < 0.5:
            result = await self.vm.hvc(RECEIVE, [self.rpc.rx_cap, 0, 240, 0])
            if result.regs[0] == 0:
                headers.append(parse_header(result.data))
                quiet_since = loop.time()
            else:
                await asyncio.sleep(0.02)
        return headers


def coordinator(tmp_path, *vms: str) -> Coordinator:
    return Coordinator(fake_topology(*((vm, "") for vm in ("external-a", *vms))), base=tmp_path,
                       worker_command=EXTERNAL_COMMAND, heartbeat_interval=0.25, stop_grace=0.5)


def test_replies_to_a_vm_that_does_not_read_wait_for_room_none_lost_none_reordered(tmp_path):
    async def body():
        async with coordinator(tmp_path) as c:
            guest = Guest(await ExternalWorker.connect(c, "external-a"))
            for seq in range(REQUESTS):
                (fragment,) = encode_request(RmCall.VM_GET_VMID, seq)
                await guest.send(fragment)
            await asyncio.sleep(0.5)
            return await guest.receive_all(), c.table["rm"]

    headers, rm = run_with_timeout(body, 60)
    assert rm.state == "running"
    assert [(h.rpc_type, h.msg_id) for h in headers] == \
        [(RpcType.REPLY, RmCall.VM_GET_VMID)] * REQUESTS
    assert [h.seq for h in headers] == list(range(REQUESTS)), "every reply, in request order"


def test_a_vm_that_floods_without_reading_is_held_back_and_later_answered_in_order(tmp_path):
    async def body():
        async with coordinator(tmp_path, "external-b") as c:
            flooder = Guest(await ExternalWorker.connect(c, "external-a"))
            other = Guest(await ExternalWorker.connect(c, "external-b"))
            accepted = await flooder.flood(FLOOD)
            (fragment,) = encode_request(RmCall.VM_GET_VMID, 7)
            await other.send(fragment)
            other_reply = await other.receive(1)
            replies = asyncio.create_task(flooder.receive(FLOOD))
            for seq in range(accepted, FLOOD):
                (fragment,) = encode_request(RmCall.VM_GET_VMID, seq)
                await flooder.send(fragment)
            return accepted, await replies, other_reply, c.table["rm"]

    accepted, headers, other_reply, rm = run_with_timeout(body, 60)
    assert rm.state == "running", rm.reason
    assert accepted <= HELD_AFTER, f"{accepted} requests went in before the RM held back"
    assert [(h.rpc_type, h.msg_id, h.seq) for h in other_reply] == \
        [(RpcType.REPLY, RmCall.VM_GET_VMID, 7)], "the other VM is served meanwhile"
    assert [(h.rpc_type, h.msg_id) for h in headers] == \
        [(RpcType.REPLY, RmCall.VM_GET_VMID)] * FLOOD
    assert [h.seq for h in headers] == list(range(FLOOD)), "every reply, in request order"


def test_garbage_in_the_rm_queue_is_dropped_and_the_rm_keeps_answering(tmp_path):
    garbage = [b"\x00", b"\xff" * 240, b"\x21\x01", b"\x21\x7d\x00\x00\x24\x00\x00\x56",
               b"\x21\x02\x05\x00\x24\x00\x00\x56\x00\x00\x00\x00",  # a reply sent to the RM
               b"\x21\x00\x05\x00\x24\x00\x00\x56" + b"x" * 100,     # a stray continuation
               b"\x21\x09\x06\x00\x12\x00\x00\x51" + b"\xff" * 232]  # MEM_LEND, 2 more to come

    async def body():
        async with coordinator(tmp_path) as c:
            guest = Guest(await ExternalWorker.connect(c, "external-a"))
            for fragment in garbage:
                await guest.send(fragment)
            (fragment,) = encode_request(RmCall.VM_GET_VMID, 77)
            await guest.send(fragment)
            return await guest.receive_all(), c.table["rm"]

    headers, rm = run_with_timeout(body, 60)
    assert rm.state == "running", rm.reason
    assert [(h.rpc_type, h.msg_id, h.seq) for h in headers] == \
        [(RpcType.REPLY, RmCall.VM_GET_VMID, 77)], "garbage gets no reply; the request does"
