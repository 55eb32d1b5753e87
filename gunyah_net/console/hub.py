"""The console hub: per-VM scrollback and fan-out of guest output to any number of subscribers.

Publishing never blocks and never waits for a subscriber. Each subscriber has its own backlog; one
that falls more than ``backlog_limit`` bytes behind is disconnected with a close reason (it can
subscribe again and start from the scrollback). Input from subscribers goes to ``input_sink``.
VMs created at run time are added with ``add_vm`` and leave with ``remove_vm``, which closes their
subscriptions; output published for a VM the hub does not have is dropped.
Knows nothing about HTTP or websockets.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable

SCROLLBACK_SIZE = 256 * 1024
BACKLOG_LIMIT = 1024 * 1024
MAX_CHUNK = 64 * 1024
"""``Subscriber.get`` returns at most this many bytes at a time (unless one publish was larger)."""


class SubscriberClosed(Exception):
    """The subscription ended; ``reason`` says why and ``slow`` if it was for falling behind."""

    def __init__(self, reason: str, slow: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.slow = slow


class Scrollback:
    """A byte ring keeping the last ``size`` bytes written."""

    def __init__(self, size: int = SCROLLBACK_SIZE) -> None:
        self.size = size
        self._data = bytearray()

    def append(self, data: bytes) -> None:
        """Appends ``data``, discarding the oldest bytes beyond ``size``."""
        self._data += data[-self.size:]
        excess = len(self._data) - self.size
        if excess > 0:
            del self._data[:excess]

    def snapshot(self) -> bytes:
        """Returns the retained bytes, oldest first."""
        return bytes(self._data)


class Subscriber:
    """One reader of a VM's console output, with a bounded backlog."""

    def __init__(self, vm: str, backlog_limit: int) -> None:
        self.vm = vm
        self._limit = backlog_limit
        self._chunks: deque[bytes] = deque()
        self._backlog = 0
        self._wakeup = asyncio.Event()
        self.closed: SubscriberClosed | None = None

    @property
    def backlog(self) -> int:
        """Bytes published but not yet taken by ``get``."""
        return self._backlog

    def _push(self, data: bytes) -> bool:
        """Queues ``data``; returns False (and queues nothing) if that exceeds the limit."""
        if self._backlog + len(data) > self._limit:
            return False
        self._chunks.append(data)
        self._backlog += len(data)
        self._wakeup.set()
        return True

    def _close(self, reason: str, slow: bool = False) -> None:
        if self.closed is None:
            self.closed = SubscriberClosed(reason, slow)
            self._chunks.clear()
            self._backlog = 0
        self._wakeup.set()

    async def get(self) -> bytes:
        """Waits for and returns the next output bytes; raises SubscriberClosed when it ends."""
        while not self._chunks:
            if self.closed is not None:
                raise self.closed
            self._wakeup.clear()
            await self._wakeup.wait()
        if self.closed is not None:
            raise self.closed
        out = [self._chunks.popleft()]
        size = len(out[0])
        while self._chunks and size + len(self._chunks[0]) <= MAX_CHUNK:
            size += len(self._chunks[0])
            out.append(self._chunks.popleft())
        self._backlog -= size
        return b"".join(out)

    async def wait_closed(self) -> SubscriberClosed:
        """Waits until the subscription is closed and returns why."""
        while self.closed is None:
            self._wakeup.clear()
            await self._wakeup.wait()
        return self.closed


class ConsoleHub:
    """Scrollback and subscribers for every VM of a topology."""

    def __init__(self, vms: Iterable[str], input_sink: Callable[[str, bytes], bool],
                 scrollback_size: int = SCROLLBACK_SIZE,
                 backlog_limit: int = BACKLOG_LIMIT) -> None:
        if scrollback_size > backlog_limit:
            raise ValueError(f"scrollback of {scrollback_size} bytes exceeds the subscriber "
                             f"backlog limit of {backlog_limit}")
        self._scrollback = {vm: Scrollback(scrollback_size) for vm in vms}
        self._subscribers: dict[str, set[Subscriber]] = {vm: set() for vm in self._scrollback}
        self._input_sink = input_sink
        self._scrollback_size = scrollback_size
        self._backlog_limit = backlog_limit
        self._closed_reason: str | None = None

    def __contains__(self, vm: object) -> bool:
        return vm in self._scrollback

    def add_vm(self, vm: str) -> None:
        """Adds VM ``vm`` with an empty scrollback; ValueError if the hub has it already."""
        if vm in self._scrollback:
            raise ValueError(f"the console hub already has VM {vm!r}")
        self._scrollback[vm] = Scrollback(self._scrollback_size)
        self._subscribers[vm] = set()

    def remove_vm(self, vm: str, reason: str) -> None:
        """Removes VM ``vm`` and its scrollback, closing its subscriptions with ``reason``."""
        for sub in list(self._subscribers.pop(vm, ())):
            sub._close(reason)
        self._scrollback.pop(vm, None)

    def vms(self) -> list[str]:
        """Returns the VM names, in topology order."""
        return list(self._scrollback)

    def scrollback(self, vm: str) -> bytes:
        """Returns VM ``vm``'s retained output."""
        return self._scrollback[vm].snapshot()

    def subscriber_count(self, vm: str) -> int:
        """Returns how many subscribers VM ``vm`` has."""
        return len(self._subscribers[vm])

    def publish(self, vm: str, data: bytes) -> None:
        """Records guest output and hands it to every subscriber; disconnects laggards."""
        if not data or vm not in self._scrollback:
            return
        self._scrollback[vm].append(data)
        for sub in list(self._subscribers[vm]):
            if not sub._push(data):
                self._drop(sub, f"too slow: over {self._backlog_limit} bytes of output "
                                f"backlog; reconnect to resume from scrollback", slow=True)

    def subscribe(self, vm: str, with_scrollback: bool = True) -> Subscriber:
        """Returns a new subscriber of ``vm``, whose first ``get`` yields the scrollback."""
        sub = Subscriber(vm, self._backlog_limit)
        if self._closed_reason is not None:
            sub._close(self._closed_reason)
            return sub
        history = self._scrollback[vm].snapshot() if with_scrollback else b""
        for start in range(0, len(history), MAX_CHUNK):
            sub._push(history[start:start + MAX_CHUNK])
        self._subscribers[vm].add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        """Ends ``sub``'s subscription (idempotent)."""
        self._drop(sub, "unsubscribed")

    def send_input(self, vm: str, data: bytes) -> bool:
        """Sends ``data`` to VM ``vm``'s UART; returns False if the VM cannot take input now."""
        return self._input_sink(vm, data)

    def close(self, reason: str) -> None:
        """Closes every subscription with ``reason``; later subscriptions start closed."""
        self._closed_reason = reason
        for subs in self._subscribers.values():
            for sub in list(subs):
                self._drop(sub, reason)

    def _drop(self, sub: Subscriber, reason: str, slow: bool = False) -> None:
        self._subscribers.get(sub.vm, set()).discard(sub)
        sub._close(reason, slow)
