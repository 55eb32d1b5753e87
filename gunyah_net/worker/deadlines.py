"""Host deadlines for a VM's virtual timers: one sleeping thread that runs callbacks on time.

The asyncio side of a worker must stay idle (vCPU hooks serialise on the GIL), so timer expiry
does not go through the event loop: a ``Deadlines`` thread sleeps on a condition until the
earliest deadline (``time.monotonic_ns``, the clock CNTVCT follows) and runs its callback there.
Callbacks must be short and must not block; they typically raise a PPI in the vGIC, which kicks
the vCPU thread. ``schedule`` returns a ``Deadline`` that ``cancel`` withdraws; cancelled entries
are dropped lazily, and the heap is rebuilt once they outnumber the live ones, so a guest that
re-arms its timer in a loop cannot grow it without bound. The thread starts on the first
``schedule`` and ends with ``close``.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

MAX_WAIT = 3600.0
"""Longest single sleep in seconds (far deadlines are re-checked, never overflow a wait)."""


class Deadline:
    """One scheduled callback; ``cancel`` withdraws it if it has not run yet."""

    __slots__ = ("when_ns", "callback", "cancelled", "_owner")

    def __init__(self, when_ns: int, callback: Callable[[], None], owner: Deadlines) -> None:
        self.when_ns = when_ns
        self.callback = callback
        self.cancelled = False
        self._owner = owner

    def cancel(self) -> None:
        """Withdraws the callback (any thread); a no-op once it ran."""
        self._owner.cancel(self)


class Deadlines:
    """A heap of host deadlines served by one daemon thread."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._cond = threading.Condition()
        self._heap: list[tuple[int, int, Deadline]] = []
        self._seq = itertools.count()
        self._cancelled = 0
        self._closed = False
        self._thread: threading.Thread | None = None

    def schedule(self, when_ns: int, callback: Callable[[], None]) -> Deadline:
        """Runs ``callback`` on the deadline thread at ``time.monotonic_ns() >= when_ns``."""
        deadline = Deadline(when_ns, callback, self)
        with self._cond:
            if self._closed:
                deadline.cancelled = True
                return deadline
            if self._thread is None:
                self._thread = threading.Thread(target=self._main, name=self._name, daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, (when_ns, next(self._seq), deadline))
            if self._heap[0][2] is deadline:
                self._cond.notify()
        return deadline

    def cancel(self, deadline: Deadline) -> None:
        """Withdraws ``deadline`` (see ``Deadline.cancel``)."""
        with self._cond:
            if deadline.cancelled:
                return
            deadline.cancelled = True
            self._cancelled += 1
            if self._cancelled > 16 and self._cancelled * 2 > len(self._heap):
                self._heap = [entry for entry in self._heap if not entry[2].cancelled]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def pending(self) -> int:
        """Returns how many callbacks are scheduled and not cancelled."""
        with self._cond:
            return sum(not entry[2].cancelled for entry in self._heap)

    def close(self) -> None:
        """Drops every deadline and ends the thread (waits for it unless called from it)."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _main(self) -> None:
        while True:
            with self._cond:
                due = self._next_due_locked()
                if due is None:
                    return
            due.callback()

    def _next_due_locked(self) -> Deadline | None:
        """Waits until the earliest live deadline is due and pops it; None once closed."""
        while not self._closed:
            if not self._heap:
                self._cond.wait()
                continue
            when, _, deadline = self._heap[0]
            if deadline.cancelled:
                heapq.heappop(self._heap)
                self._cancelled -= 1
                continue
            left = when - time.monotonic_ns()
            if left > 0:
                self._cond.wait(min(left / 1e9, MAX_WAIT))
                continue
            heapq.heappop(self._heap)
            deadline.cancelled = True  # ran: a later cancel() is a no-op
            return deadline
        return None
