"""The limit for inter-VM IPC: raw asyncio Unix-socket traffic between two processes via a relay.

    python bench/_relay_baseline.py           # prints the four figures (5 rounds)
    python bench/_relay_baseline.py --quick   # a CI smoke run (< 5 s)

Three processes on uvloop, the same shape as two VM workers and the coordinator: this process
is the relay (a Unix server); processes A and B connect to it. Frames are a 4-byte big-endian
length plus the payload; the relay reads each frame whole and writes it to the other peer, as the
coordinator routes each message (no msgpack, no validation: that is the point of a limit).

- ping-pong: A sends an 8-byte frame, B echoes it, A waits for it before the next one:
  microseconds per round trip (4 socket hops). The limit for the doorbell round trip.
- stream: A writes N 240-byte frames as fast as the relay takes them (``drain`` after each), B
  counts them and answers one frame at the end: messages per second. The limit for msgqueue
  throughput.
- call: A alone sends a 240-byte frame and the relay answers it at once, N times: calls per
  second (2 socket hops). The floor of one synchronous hypercall carrying a message, which every
  msgqueue_send and msgqueue_receive is; printed for reference.
- queued call: the shape of one RM RPC call over message queues (A = the guest, B = the RM VM,
  the relay = the coordinator). The relay keeps one inbox per peer: a "send" frame from one peer
  goes into the other's inbox, the relay writes that peer a 1-byte "virq" frame and then answers
  the sender "ack"; a "receive" frame is answered with the oldest frame of the caller's inbox.
  A sends a 12-byte request (a VM_GET_VMID fragment) and waits for its ack and then its virq;
  B, on its virq, receives the request and sends a 16-byte reply; A, on its virq, receives it.
  8 socket hops on the critical path: A -> relay -> B -> relay -> B -> relay -> A -> relay -> A
  (send, virq, receive + answer, send, virq, receive + answer), plus the two acks beside it.
  Microseconds per call; the limit for bench/rm_rpc.py.

``relay_rtt``, ``relay_stream``, ``relay_call`` and ``relay_queued_call`` are imported by
doorbell_rtt.py, msgqueue_stream.py and rm_rpc.py, which measure the limit in the same run as the
path they compare to it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import struct
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Coroutine

import uvloop

_HEADER = struct.Struct(">I")
PING_BYTES = 8
STREAM_BYTES = 240
QUEUED_REQUEST_BYTES, QUEUED_REPLY_BYTES = 12, 16
"""The fragments of one VM_GET_VMID call: 8-byte header + 4-byte body; + error word + vmid."""
OP_SEND, OP_RECEIVE, OP_ACK, OP_VIRQ, OP_DATA = b"S", b"R", b"A", b"V", b"D"
"""The queued call's frames start with one of these bytes."""

_Peer = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (length,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    return await reader.readexactly(length)


def _frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload)) + payload


async def _expect(reader: asyncio.StreamReader, op: bytes) -> bytes:
    """Reads one queued-call frame; raises RuntimeError unless it is ``op``."""
    frame = await _read_frame(reader)
    if frame[:1] != op:
        raise RuntimeError(f"queued call: expected {op!r}, got {frame[:1]!r}")
    return frame


# -- the peers (child processes) ------------------------------------------------------------

async def _peer(role: str, path: str, count: int) -> None:
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(_frame(role.encode()))
    await _read_frame(reader)  # "go": both peers are connected
    match role:
        case "ping" | "caller":
            payload = _frame(bytes(PING_BYTES if role == "ping" else STREAM_BYTES))
            started = time.perf_counter()
            for _ in range(count):
                writer.write(payload)
                await _read_frame(reader)
            elapsed = time.perf_counter() - started
        case "source":
            payload = _frame(bytes(STREAM_BYTES))
            started = time.perf_counter()
            for _ in range(count):
                writer.write(payload)
                await writer.drain()
            await _read_frame(reader)  # the sink's "all received"
            elapsed = time.perf_counter() - started
        case "pong":
            for _ in range(count):
                writer.write(_frame(await _read_frame(reader)))
            elapsed = 0.0
        case "queued-caller":
            elapsed = await _queued_caller(reader, writer, count)
        case "queued-server":
            await _queued_server(reader, writer, count)
            elapsed = 0.0
        case _:  # "sink"
            for _ in range(count):
                await _read_frame(reader)
            writer.write(_frame(b"done"))
            elapsed = 0.0
    await writer.drain()
    print(f"{elapsed:.9f}", flush=True)
    writer.close()


async def _queued_caller(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         count: int) -> float:
    """A's side of ``count`` queued calls; returns the elapsed seconds."""
    request = _frame(OP_SEND + bytes(QUEUED_REQUEST_BYTES))
    receive = _frame(OP_RECEIVE)
    started = time.perf_counter()
    for _ in range(count):
        writer.write(request)
        await _expect(reader, OP_ACK)
        await _expect(reader, OP_VIRQ)
        writer.write(receive)
        await _expect(reader, OP_DATA)
    return time.perf_counter() - started


async def _queued_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         count: int) -> None:
    """B's side: answers ``count`` queued calls."""
    reply = _frame(OP_SEND + bytes(QUEUED_REPLY_BYTES))
    receive = _frame(OP_RECEIVE)
    for _ in range(count):
        await _expect(reader, OP_VIRQ)
        writer.write(receive)
        await _expect(reader, OP_DATA)
        writer.write(reply)
        await _expect(reader, OP_ACK)


# -- the relay (this process) ---------------------------------------------------------------

async def _forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            writer.write(_frame(await _read_frame(reader)))
            await writer.drain()
    except asyncio.IncompleteReadError:
        return


async def _queue(me: _Peer, other: _Peer, inbox: deque[bytes], other_inbox: deque[bytes]
                 ) -> None:
    """Serves one peer of the queued call: "send" fills the other's inbox, writes it a virq and
    acks; "receive" answers with the oldest frame of ``inbox``."""
    reader, writer = me
    try:
        while True:
            frame = await _read_frame(reader)
            if frame[:1] == OP_SEND:
                other_inbox.append(frame[1:])
                other[1].write(_frame(OP_VIRQ))
                writer.write(_frame(OP_ACK))
            else:
                writer.write(_frame(OP_DATA + inbox.popleft()))
    except asyncio.IncompleteReadError:
        return


def _forwarding(a: _Peer, b: _Peer) -> list[Coroutine[None, None, None]]:
    """The relay of ping-pong, stream and call: each frame goes on whole (A alone: echoed)."""
    if a is b:
        return [_forward(a[0], a[1])]
    return [_forward(a[0], b[1]), _forward(b[0], a[1])]


def _queueing(a: _Peer, b: _Peer) -> list[Coroutine[None, None, None]]:
    """The relay of the queued call: an inbox per peer."""
    inbox_a: deque[bytes] = deque()
    inbox_b: deque[bytes] = deque()
    return [_queue(a, b, inbox_a, inbox_b), _queue(b, a, inbox_b, inbox_a)]


_Relaying = Callable[[_Peer, _Peer], list[Coroutine[None, None, None]]]


async def _relay(roles: tuple[str, ...], count: int, relaying: _Relaying = _forwarding) -> float:
    """Runs A (roles[0]) and B (roles[1]) through a relay here, or A alone with the relay
    answering it; returns A's elapsed seconds."""
    with tempfile.TemporaryDirectory(prefix="gn-relay-") as tmp:
        path = os.path.join(tmp, "relay.sock")
        peers: dict[str, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
        both = asyncio.Event()

        async def on_connect(reader, writer):
            peers[(await _read_frame(reader)).decode()] = (reader, writer)
            if len(peers) == len(roles):
                both.set()

        server = await asyncio.start_unix_server(on_connect, path=path)
        children = [await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--role", role, "--socket", path, "--count", str(count),
            stdout=asyncio.subprocess.PIPE) for role in roles]
        await asyncio.wait_for(both.wait(), 30)
        tasks = [asyncio.create_task(job)
                 for job in relaying(peers[roles[0]], peers[roles[-1]])]
        for _, writer in peers.values():
            writer.write(_frame(b"go"))
        outputs = [await child.communicate() for child in children]
        for task in tasks:
            task.cancel()
        server.close()
        return float(outputs[0][0])


def relay_rtt(round_trips: int) -> float:
    """Returns seconds per ping-pong round trip through the relay (4 socket hops)."""
    return uvloop.run(_relay(("ping", "pong"), round_trips)) / round_trips


def relay_stream(messages: int) -> float:
    """Returns 240-byte messages per second streamed from A to B through the relay."""
    return messages / uvloop.run(_relay(("source", "sink"), messages))


def relay_call(calls: int) -> float:
    """Returns 240-byte request/response calls per second between A and the relay (2 hops)."""
    return calls / uvloop.run(_relay(("caller",), calls))


def relay_queued_call(calls: int) -> float:
    """Returns seconds per queued call, A -> relay -> B -> relay -> A over inboxes (8 hops on
    the critical path; see the module docstring)."""
    return uvloop.run(_relay(("queued-caller", "queued-server"), calls, _queueing)) / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small CI smoke run (< 5 s)")
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--socket", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role:
        uvloop.run(_peer(args.role, args.socket, args.count))
        return 0
    round_trips, messages, rounds = (2_000, 20_000, 2) if args.quick else (20_000, 200_000, 5)
    rtts = [relay_rtt(round_trips) for _ in range(rounds)]
    rates = [relay_stream(messages) for _ in range(rounds)]
    calls = [relay_call(round_trips) for _ in range(rounds)]
    queued = [relay_queued_call(round_trips) for _ in range(rounds)]
    print(f"relay baseline: 3 processes, uvloop, Unix sockets, {rounds} rounds (best / median)")
    print(f"  ping-pong RTT:  {min(rtts) * 1e6:8.1f} / {statistics.median(rtts) * 1e6:8.1f} us"
          f"   ({round_trips} round trips, {PING_BYTES}-byte frames)")
    print(f"  stream:         {max(rates) / 1e3:8.1f} / {statistics.median(rates) / 1e3:8.1f} "
          f"k msg/s   ({messages} x {STREAM_BYTES}-byte frames)")
    print(f"  call:           {max(calls) / 1e3:8.1f} / {statistics.median(calls) / 1e3:8.1f} "
          f"k calls/s ({round_trips} x {STREAM_BYTES}-byte request/response, 2 hops)")
    print(f"  queued call:    {min(queued) * 1e6:8.1f} / {statistics.median(queued) * 1e6:8.1f} us"
          f"   ({round_trips} calls through inboxes, 8 hops)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
