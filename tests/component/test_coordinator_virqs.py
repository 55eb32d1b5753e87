"""Virq delivery to a worker that does not read: bounded by the number of virqs, nothing lost.

A real socket pair: the coordinator's end is a ``Link`` on uvloop, the worker's end is not read
until the test says so.
"""

from __future__ import annotations

import asyncio
import socket

from fake_worker import run_with_timeout

from gunyah_net.coordinator.virqs import HOLD_THRESHOLD, VirqOutbox
from gunyah_net.wire.codec import FrameDecoder
from gunyah_net.wire.messages import Virq
from gunyah_net.wire.transport import Link


async def _link_pair() -> tuple[Link, socket.socket]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    reader, writer = await asyncio.open_unix_connection(sock=ours)
    theirs.setblocking(False)
    return Link(reader, writer), theirs


async def _read_all(sock: socket.socket, idle: float = 0.3) -> list[Virq]:
    """Reads frames from ``sock`` until nothing arrives for ``idle`` seconds."""
    loop, decoder, frames = asyncio.get_running_loop(), FrameDecoder(), []
    while True:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 1 << 16), idle)
        except TimeoutError:
            return frames
        frames += decoder.feed(data)


def test_a_worker_that_does_not_read_costs_at_most_one_held_change_per_virq():
    changes = [(40 + n % 3, True) for n in range(100_000)] + [(41, False)]  # ..., 42, 40, 41

    async def body():
        link, theirs = await _link_pair()
        outbox = VirqOutbox("b")
        outbox.attach(link)
        peak = 0
        for virq, asserted in changes:
            outbox.deliver(virq, asserted)
            peak = max(peak, link.write_buffer_size())
        held = outbox.held
        frames = await _read_all(theirs)
        link.close("done")
        theirs.close()
        return peak, held, frames, outbox.held

    peak, held, frames, held_after = run_with_timeout(body)
    assert peak <= HOLD_THRESHOLD + 64, "the coordinator stopped buffering at the threshold"
    assert held == 3, "one held change per virq"
    assert 0 < len(frames) < len(changes), "coalesced while the worker was not reading"
    assert held_after == 0
    assert frames[-3:] == [Virq(42, True), Virq(40, True), Virq(41, False)], \
        "every virq ends in its latest state, in the order of the latest changes"


def test_changes_for_a_worker_not_yet_connected_are_written_after_attach_in_order():
    async def body():
        link, theirs = await _link_pair()
        outbox = VirqOutbox("b")
        outbox.deliver(960, True)
        outbox.deliver(40, True)
        outbox.deliver(960, False)   # a level line dropped again before anyone saw it
        outbox.attach(link)
        frames = await _read_all(theirs)
        link.close("done")
        theirs.close()
        return frames

    assert run_with_timeout(body) == [Virq(40, True), Virq(960, False)]


def test_changes_after_detach_are_dropped_and_counted():
    async def body():
        link, theirs = await _link_pair()
        outbox = VirqOutbox("b")
        outbox.attach(link)
        outbox.deliver(40, True)
        outbox.detach()
        outbox.deliver(41, True)
        frames = await _read_all(theirs)
        link.close("done")
        theirs.close()
        return frames, outbox.dropped

    assert run_with_timeout(body) == ([Virq(40, True)], 1)
