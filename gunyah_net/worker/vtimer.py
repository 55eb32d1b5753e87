"""The EL1 virtual timer of one vCPU (CNTV_CTL_EL0, CNTV_CVAL_EL0, CNTV_TVAL_EL0) on host deadlines.

Unicorn implements the counter but does not wire the timer: CNTVCT_EL0 reads
``CLOCK_MONOTONIC ns / 16`` (62.5 MHz, which CNTFRQ_EL0 reports; CNTVOFF is 0), while CNTV_CTL
reads back 0. So the worker traps the three CNTV registers (sysregs.py) and keeps their state
here, computing the counter from the same host clock: ``time.monotonic_ns() // 16``.

Semantics (Arm ARM D11.2.4): ISTATUS = ENABLE && CNTVCT >= CVAL; the timer's output, PPI 27, is
a level held high while ISTATUS && !IMASK. TVAL reads ``(CVAL - CNTVCT)`` as a signed 32-bit value
and a TVAL write sets CVAL = CNTVCT + sign-extended value. When the output should rise in the
future, a host deadline re-evaluates it then; any register write re-evaluates at once and
cancels the stale deadline. ``set_line`` is called under the timer's lock whenever the output
changes, so levels reach the vGIC in order even when the deadline thread and the vCPU race.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .deadlines import Deadline, Deadlines

COUNTER_HZ = 62_500_000
NS_PER_TICK = 16
CTL_ENABLE = 1 << 0
CTL_IMASK = 1 << 1
CTL_ISTATUS = 1 << 2
_U64 = (1 << 64) - 1


def counter_now() -> int:
    """Returns CNTVCT_EL0 as the guest reads it now."""
    return time.monotonic_ns() // NS_PER_TICK


class VirtualTimer:
    """CNTV_* state of one vCPU and its output line."""

    def __init__(self, deadlines: Deadlines, set_line: Callable[[bool], None]) -> None:
        self._deadlines = deadlines
        self._set_line = set_line
        self._lock = threading.Lock()
        self._ctl = 0
        self._cval = 0
        self._line = False
        self._pending: Deadline | None = None
        self._generation = 0

    def read_ctl(self) -> int:
        """CNTV_CTL_EL0: ENABLE, IMASK and the computed ISTATUS."""
        with self._lock:
            return self._ctl | (CTL_ISTATUS if self._fired(counter_now()) else 0)

    def write_ctl(self, value: int) -> None:
        """CNTV_CTL_EL0 := value (ISTATUS is read-only)."""
        with self._lock:
            self._ctl = value & (CTL_ENABLE | CTL_IMASK)
            self._update_locked()

    def read_cval(self) -> int:
        """CNTV_CVAL_EL0."""
        with self._lock:
            return self._cval

    def write_cval(self, value: int) -> None:
        """CNTV_CVAL_EL0 := value."""
        with self._lock:
            self._cval = value & _U64
            self._update_locked()

    def read_tval(self) -> int:
        """CNTV_TVAL_EL0: the low 32 bits of CVAL - CNTVCT."""
        with self._lock:
            return (self._cval - counter_now()) & 0xFFFF_FFFF

    def write_tval(self, value: int) -> None:
        """CNTV_TVAL_EL0 := value: CVAL = CNTVCT + SignExtend(value[31:0])."""
        low = value & 0xFFFF_FFFF
        delta = low - (1 << 32) if low & (1 << 31) else low
        with self._lock:
            self._cval = (counter_now() + delta) & _U64
            self._update_locked()

    @property
    def line(self) -> bool:
        """The output level (PPI 27) as last signalled."""
        return self._line

    def reset(self) -> None:
        """Disables the timer (CTL = 0, CVAL = 0) and drops its output."""
        with self._lock:
            self._ctl = 0
            self._cval = 0
            self._update_locked()

    def _fired(self, now: int) -> bool:
        return bool(self._ctl & CTL_ENABLE) and now >= self._cval

    def _update_locked(self) -> None:
        """Recomputes the output; arms a deadline for a future rise, cancels a stale one."""
        self._generation += 1
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        fired = self._fired(counter_now())
        level = fired and not self._ctl & CTL_IMASK
        if level != self._line:
            self._line = level
            self._set_line(level)
        if self._ctl == CTL_ENABLE and not fired:
            generation = self._generation
            self._pending = self._deadlines.schedule(self._cval * NS_PER_TICK,
                                                     lambda: self._expire(generation))

    def _expire(self, generation: int) -> None:
        with self._lock:
            if generation == self._generation:  # else a write already re-evaluated
                self._pending = None
                self._update_locked()
