"""Batches guest UART output from the vCPU thread into ConsoleOut-sized chunks on the event loop.

``write`` runs on the vCPU thread (once per transmitted byte) and never blocks: it appends to a
buffer under a lock and, only for the first byte of a batch, schedules a flush on the loop with
``call_soon_threadsafe``. The loop flushes ``flush_interval`` later (10 ms), or as soon as
``flush_bytes`` (4 KiB) are waiting, in chunks of at most ``chunk_bytes``. If the loop falls behind
by more than ``limit`` bytes, further output is dropped and counted rather than buffered.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.010
FLUSH_BYTES = 4096
CHUNK_BYTES = 64 * 1024
LIMIT_BYTES = 4 * 1024 * 1024


class ConsoleBatcher:
    """Thread-safe output buffer that delivers batches to ``send`` on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, send: Callable[[bytes], None],
                 flush_interval: float = FLUSH_INTERVAL, flush_bytes: int = FLUSH_BYTES,
                 limit: int = LIMIT_BYTES) -> None:
        self._loop = loop
        self._send = send
        self._interval = flush_interval
        self._flush_bytes = flush_bytes
        self._limit = limit
        self._lock = threading.Lock()
        self._buffer = bytearray()
        self._scheduled = False
        self._urgent = False
        self._timer: asyncio.TimerHandle | None = None
        self.dropped = 0
        """Output bytes dropped because the loop fell ``limit`` bytes behind."""
        self._dropped_reported = 0

    def write(self, data: bytes) -> None:
        """Queues guest output (any thread); schedules a flush for the first byte of a batch."""
        with self._lock:
            if len(self._buffer) + len(data) > self._limit:
                first = self.dropped == self._dropped_reported
                self.dropped += len(data)
                if first:
                    log.warning("console output %d bytes behind; dropping guest output",
                                len(self._buffer))
                return
            self._buffer += data
            arm = not self._scheduled
            self._scheduled = True
            urgent = not self._urgent and len(self._buffer) >= self._flush_bytes
            self._urgent |= urgent
        if arm:
            self._loop.call_soon_threadsafe(self._arm)
        if urgent:
            self._loop.call_soon_threadsafe(self.flush)

    def _arm(self) -> None:
        if self._timer is None:
            self._timer = self._loop.call_later(self._interval, self.flush)

    def flush(self) -> None:
        """Sends everything buffered now (event-loop thread only)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        with self._lock:
            data = bytes(self._buffer)
            self._buffer.clear()
            self._scheduled = False
            self._urgent = False
            self._dropped_reported = self.dropped
        for start in range(0, len(data), CHUNK_BYTES):
            self._send(data[start:start + CHUNK_BYTES])
