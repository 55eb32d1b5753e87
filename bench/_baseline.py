"""Shared by the IPC benchmarks: run a topology under the real coordinator, read a result.

``run_topology(text, vm, pattern)`` writes the topology TOML ``text`` to a temporary directory,
brings it up in this process with the real ``Coordinator`` (which spawns one worker process per
VM, exactly as `gunyah-net up` does), waits until VM ``vm``'s console matches ``pattern`` and
returns the match. Guest timings come from CNTVCT, which the worker derives from the host's
CLOCK_MONOTONIC, so ticks / Hz are host seconds.

With ``fake=True`` the workers are *fake peers* instead (``python bench/_baseline.py
--fake-peer``): processes that speak protocol v1 and issue the same hypercalls as the testsvc
bench services, one at a time like a vCPU, but run no guest, no Unicorn and no vGIC. They print
the same result line (in nanosecond "ticks"), so a benchmark can split a path's cost between
the coordinator plus the links and the worker runtime.

The limit side of each comparison is in _relay_baseline.py (``relay_rtt``, ``relay_stream``,
``relay_call``). Modules whose names start with "_" are helpers, not benchmarks of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop

from gunyah_net.abi.hypercalls import BY_NAME
from gunyah_net.config import load_topology
from gunyah_net.coordinator import Coordinator
from gunyah_net.spawned import TOKEN_ENV
from gunyah_net.wire import resources as wire_resources
from gunyah_net.wire.messages import (PROTOCOL_VERSION, ConsoleOut, Heartbeat, Hello, Hvc,
                                      HvcReturn, Stop, Virq, VmState, Welcome)
from gunyah_net.wire.transport import Link

ROOT = Path(__file__).resolve().parents[1]
TESTSVC = ROOT / "nodes/images/testsvc.elf"
ELAPSED = rb"(\d+) (?:round trips|messages|calls) in (\d+) ticks \((\d+) Hz\)"
"""The line testsvc's bench services end with: count, CNTVCT ticks, counter frequency."""


class GuestFailed(RuntimeError):
    """The guest printed a failure or its VM ended before printing the result."""


async def _wait_console(coordinator: Coordinator, vm: str, pattern: re.Pattern[bytes],
                        fail: re.Pattern[bytes], timeout: float) -> re.Match[bytes]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        for name in (r.name for r in coordinator.vm_records()):
            output = coordinator.hub.scrollback(name)
            if (bad := fail.search(output)) is not None:
                raise GuestFailed(f"{name}: {bad[0].decode(errors='replace')}")
            if name == vm and (found := pattern.search(output)) is not None:
                return found
            if coordinator.table[name].terminal and name == vm:
                raise GuestFailed(f"{name} {coordinator.table[name].state}: "
                                  f"{coordinator.table[name].reason}")
        await asyncio.sleep(0.01)
    raise GuestFailed(f"{vm}: no {pattern.pattern!r} within {timeout:g} s")


async def _run(text: str, vm: str, pattern: bytes, timeout: float,
               fake: bool) -> re.Match[bytes]:
    with tempfile.TemporaryDirectory(prefix="gn-bench-") as tmp:
        file = Path(tmp) / "bench.toml"
        file.write_text(text)
        topology = load_topology(file)
        command = FAKE_PEER_COMMAND if fake else None
        async with Coordinator(topology, base=Path(tmp) / "run",
                               worker_command=command) as coordinator:
            return await _wait_console(coordinator, vm, re.compile(pattern),
                                       re.compile(rb"FAIL[^\n]*|error:[^\n]*"), timeout)


def run_topology(text: str, vm: str, pattern: bytes, timeout: float = 300.0,
                 fake: bool = False) -> re.Match[bytes]:
    """Runs topology ``text`` until VM ``vm``'s console matches ``pattern``; returns the match.
    ``fake``: the workers are fake peers (see the module docstring)."""
    return uvloop.run(_run(text, vm, pattern, timeout, fake))


def vm_table(name: str, args: str, image: Path = TESTSVC) -> str:
    """Returns a ``[[vm]]`` table running ``image`` with bootargs ``args`` (fake peers read the
    same ``svc=`` and ``n=`` words)."""
    return f'\n[[vm]]\nname = "{name}"\nimage = "{image}"\nargs = "{args}"\n'


def seconds_per_item(match: re.Match[bytes]) -> float:
    """Returns host seconds per round trip / message / call from an ``ELAPSED`` match."""
    count, ticks, hz = (int(group) for group in match.groups()[:3])
    return ticks / hz / count


# -- fake peers ------------------------------------------------------------------------------

FAKE_PEER_COMMAND = (sys.executable, str(Path(__file__).resolve()), "--fake-peer")
"""Worker command prefix that makes the coordinator spawn fake peers."""
PING, PONG, QUEUE = 3, 4, 1
"""testsvc's labels: doorbell client -> service, doorbell service -> client, request queue."""
STREAM_MESSAGE = 240
ALL_ONES = (1 << 64) - 1
GUEST_BUFFER = 0x8010_0000
MSGQUEUE_FULL, MSGQUEUE_EMPTY = 61, 60


class FakePeer:
    """One fake worker: a single "vCPU" that runs one hypercall at a time through EL2."""

    def __init__(self, link: Link, welcome: Welcome, svc: str) -> None:
        self.link = link
        self.name = welcome.name
        self.svc = svc
        self.resources = [wire_resources.from_wire(r) for r in welcome.resources]
        self.virqs: asyncio.Queue[int] = asyncio.Queue()
        self._seq = 0
        self._reply: asyncio.Future[HvcReturn] | None = None

    def find(self, kind: str, label: int) -> tuple[int, bool]:
        """Returns (cap, level-triggered) of this VM's resource ``kind`` with ``label``."""
        for res in self.resources:
            if res.kind == kind and res.label == label:
                return res.cap, not getattr(res, "edge", True)
        raise LookupError(f"{self.name}: no {kind} with label {label}")

    async def hvc(self, name: str, *args: int, data: bytes = b"") -> HvcReturn:
        """Runs hypercall ``name`` through EL2 and returns its reply (registers, bytes)."""
        self._seq += 1
        self._reply = asyncio.get_running_loop().create_future()
        self.link.send(Hvc(self._seq, 0, BY_NAME[name].number, list(args), data))
        return await self._reply

    def result(self, what: str, count: int, started_ns: int) -> None:
        """Prints testsvc's result line, in nanosecond ticks."""
        ticks = time.monotonic_ns() - started_ns
        self.link.send(ConsoleOut(f"{self.svc}: {count} {what} in {ticks} ticks "
                                  f"(1000000000 Hz)\n".encode()))

    async def serve(self) -> None:
        """Dispatches frames until Stop or EOF."""
        while True:
            match await self.link.receive():
                case HvcReturn() as reply if self._reply is not None:
                    self._reply.set_result(reply)
                case Virq(virq=virq, asserted=True):
                    self.virqs.put_nowait(virq)
                case Stop():
                    return
                case _:
                    pass


async def _doorbell_irq(peer: FakePeer, rx: int, level: bool) -> None:
    """Waits for the doorbell's interrupt; a level one is lowered with doorbell_receive, as the
    SDK's handler does (an edge one opened counting needs no hypercall)."""
    await peer.virqs.get()
    if level:
        await peer.hvc("doorbell_receive", rx, ALL_ONES, 0)


async def _db_ping(peer: FakePeer, n: int) -> None:
    tx, _ = peer.find("doorbell-source", PING)
    rx, level = peer.find("doorbell", PONG)
    started = time.monotonic_ns()
    for _ in range(n):
        await peer.hvc("doorbell_send", tx, 1, 0)
        await _doorbell_irq(peer, rx, level)
    peer.result("round trips", n, started)


async def _db_pong(peer: FakePeer, n: int) -> None:
    tx, _ = peer.find("doorbell-source", PONG)
    rx, level = peer.find("doorbell", PING)
    while True:
        await _doorbell_irq(peer, rx, level)
        await peer.hvc("doorbell_send", tx, 1, 0)


async def _mq_stream(peer: FakePeer, n: int) -> None:
    tx, _ = peer.find("msgqueue-tx", QUEUE)
    started = time.monotonic_ns()
    for seq in range(n):
        payload = seq.to_bytes(8, "little") + bytes(STREAM_MESSAGE - 8)
        while True:
            reply = await peer.hvc("msgqueue_send", tx, STREAM_MESSAGE, GUEST_BUFFER, 0, 0,
                                   data=payload)
            if reply.regs[0] != MSGQUEUE_FULL:
                break
            await peer.virqs.get()  # not-full
    peer.result("messages", n, started)


async def _mq_sink(peer: FakePeer, n: int) -> None:
    rx, _ = peer.find("msgqueue-rx", QUEUE)
    seq = 0
    started = 0
    while seq < n:
        reply = await peer.hvc("msgqueue_receive", rx, GUEST_BUFFER, STREAM_MESSAGE, 0)
        if reply.regs[0] == MSGQUEUE_EMPTY:
            await peer.virqs.get()  # not-empty
            continue
        if seq == 0:
            started = time.monotonic_ns()
        if int.from_bytes(reply.data[:8], "little") != seq:
            peer.link.send(ConsoleOut(f"FAIL message {seq}\n".encode()))
            return
        seq += 1
    peer.result("messages", n, started)


ROLES: dict[str, Callable[[FakePeer, int], Awaitable[None]]] = {
    "db-ping": _db_ping, "db-pong": _db_pong, "mq-stream": _mq_stream, "mq-sink": _mq_sink}
"""What a fake peer does for each testsvc bench service it stands in for."""


async def _heartbeats(link: Link, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        link.send(Heartbeat(0))


async def fake_peer(socket: str, vm: str) -> None:
    """Runs one fake peer for VM ``vm`` (spawned by the coordinator as its worker)."""
    link = await Link.connect_unix(socket)
    link.send(Hello(PROTOCOL_VERSION, vm, os.getpid(), os.environ[TOKEN_ENV]))
    welcome = await link.receive()
    assert isinstance(welcome, Welcome), welcome
    words = dict(word.partition("=")[::2] for word in welcome.bootargs.split())
    peer = FakePeer(link, welcome, words["svc"])
    link.send(VmState("running", 0, ""))
    tasks = [asyncio.create_task(_heartbeats(link, welcome.heartbeat_interval)),
             asyncio.create_task(ROLES[words["svc"]](peer, int(words.get("n", "0"))))]
    try:
        await peer.serve()
    finally:
        for task in tasks:
            task.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="a fake peer (spawned by the coordinator)")
    parser.add_argument("--fake-peer", action="store_true", required=True)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--vm", required=True)
    parser.add_argument("--log")
    options = parser.parse_args()
    uvloop.run(fake_peer(options.socket, options.vm))
