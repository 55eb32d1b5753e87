"""Time-slice preemption: a helper thread that ends slices which ran for a whole time slice.

It is only active while more than one vCPU of the VM is runnable (``set_periodic(True)``); then it
sleeps until the running slice has used ``timeslice`` seconds and asks the scheduler to preempt
that slice (which arms the vCPU's clean stop, see preempt.py). Otherwise it waits on a condition
and costs nothing. Urgent kicks (a posted event, stop) do not go through this thread: the
scheduler arms the running vCPU directly.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Slice:
    """One ``emu_start`` of one vCPU: its id, the vCPU index and its start time (monotonic)."""

    sid: int
    vcpu: int
    started: float


class SliceSource(Protocol):
    """What the kicker needs from the scheduler."""

    def current_slice(self) -> Slice | None:
        """Returns the slice running now, or None between slices."""

    def preempt(self, sid: int) -> None:
        """Ends slice ``sid`` soon if it is still running."""


class Kicker:
    """The time-slice thread of one VM."""

    def __init__(self, source: SliceSource, timeslice: float, name: str) -> None:
        self._source = source
        self._timeslice = timeslice
        self._cond = threading.Condition()
        self._periodic = False
        self._closed = False
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> None:
        """Starts the thread."""
        self._thread.start()

    def set_periodic(self, enabled: bool) -> None:
        """Turns time slicing on (several runnable vCPUs) or off (one or none)."""
        if enabled == self._periodic:
            return
        with self._cond:
            self._periodic = enabled
            self._cond.notify()

    def close(self) -> None:
        """Stops the thread and waits for it."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()

    def _main(self) -> None:
        with self._cond:
            while not self._closed:
                timeout = None
                if self._periodic:
                    current = self._source.current_slice()
                    timeout = self._timeslice
                    if current is not None:
                        timeout = current.started + self._timeslice - time.monotonic()
                        if timeout <= 0:
                            self._source.preempt(current.sid)
                            timeout = self._timeslice
                self._cond.wait(timeout)
