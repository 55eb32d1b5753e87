"""Runs every vCPU of a VM round-robin on one host thread, time-sliced by the kicker.

Under Unicorn, atomics (LDXR/STXR, LSE) are only atomic between vCPUs that take turns on one
thread, so a VM's vCPUs never run concurrently. One slice is one ``emu_start`` of one runnable
vCPU. A slice ends when the kicker preempts it (only while several vCPUs are runnable), on WFI,
on a trap that asked to end it, or on an error.

Other threads never touch a vCPU. They ``post`` a function, which runs on the vCPU thread before
the next slice (the running slice is kicked so that happens promptly), or use the wrappers
``wake``/``raise_event``/``stop``. A kick arms the running vCPU's clean stop (preempt.py): it
leaves ``emu_start`` before its next translation block, never in the middle of an instruction.
The mailbox is drained after a slice's outcome is handled, so a wake posted while a vCPU was
heading into WFI is never lost. When no vCPU is runnable the thread sleeps on a condition (0% CPU)
until something is posted.

Seams for the vGIC: ``before_slice(vcpu)`` runs before each ``emu_start`` (inject IRQ entry), and
``wakeup_pending(vcpu)`` is consulted when a vCPU executes WFI (a pending interrupt keeps it
runnable, as a level-sensitive line does on hardware).

Interrupt latency: ``wake(v)`` (the vGIC's kick) also marks v urgent, so v runs next instead of
waiting for its round-robin turn. Fairness survives interrupt floods: a slice of the same vCPU
that follows an early-ended one continues its *turn* (the kicker measures the time slice from
the turn's start), and a vCPU whose turn the kicker ended is not preferred again until another
vCPU has run, so a vCPU interrupted more often than once per time slice cannot starve the others.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from .exits import Preempted, VcpuExit, Wfi, Yield
from .kicker import Kicker, Slice
from .vcpu import Vcpu, VcpuState

TIMESLICE = 0.010

ExitHandler = Callable[[Vcpu, VcpuExit], None]


class Scheduler:
    """The single vCPU thread of a VM and its mailbox."""

    def __init__(self, vcpus: list[Vcpu], on_exit: ExitHandler, name: str,
                 timeslice: float = TIMESLICE) -> None:
        self.vcpus = vcpus
        self._on_exit = on_exit
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._mailbox: deque[Callable[[], None]] = deque()
        self._attention = False
        self._stopping = False
        self._slice: Slice | None = None
        self._running: Vcpu | None = None
        self._kicked = False
        self._next_sid = 0
        self._last = len(vcpus) - 1
        self._urgent: set[int] = set()
        self._turn: tuple[int, float] | None = None
        """(vCPU index, start) of the running turn: consecutive slices of one vCPU."""
        self._expired: int | None = None
        """The vCPU whose turn the kicker ended last, until another vCPU runs."""
        self._kicker = Kicker(self, timeslice, f"{name}-kicker")
        self._thread = threading.Thread(target=self._main, name=f"{name}-vcpus", daemon=True)
        self.before_slice: Callable[[Vcpu], None] | None = None
        """Called on the vCPU thread right before each slice of ``vcpu`` (vGIC IRQ entry)."""
        self.wakeup_pending: Callable[[Vcpu], bool] | None = None
        """Called when ``vcpu`` executes WFI; True keeps it runnable (an interrupt is pending)."""
        self.on_finished: Callable[[BaseException | None], None] | None = None
        """Called on the vCPU thread as it ends: None after ``stop``, else the fatal error."""

    def start(self) -> None:
        """Starts the vCPU thread (and the kicker)."""
        self._kicker.start()
        self._thread.start()

    def post(self, fn: Callable[[], None]) -> None:
        """Runs ``fn`` on the vCPU thread before the next slice (any thread; never blocks long)."""
        with self._lock:
            self._mailbox.append(fn)
            self._attention = True
            self._cond.notify()
            self._kick_locked()

    def wake(self, index: int) -> None:
        """Wakes vCPU ``index`` if it is parked in WFI and runs it next (any thread)."""
        self.post(lambda: self._interrupt(self.vcpus[index]))

    def raise_event(self) -> None:
        """Wakes every vCPU parked in WFI (any thread): a wake event with no specific target."""
        self.post(self._wake_all)

    def stop(self) -> None:
        """Makes the vCPU thread finish its slice and exit (any thread; returns at once)."""
        with self._lock:
            self._stopping = True
            self._attention = True
            self._cond.notify()
            self._kick_locked()

    def join(self, timeout: float | None = None) -> bool:
        """Waits for the vCPU thread to end; returns True if it has."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def update_preemption(self) -> None:
        """Re-evaluates time slicing after a trap made another vCPU runnable (vCPU thread)."""
        self._kicker.set_periodic(sum(v.state is VcpuState.RUNNABLE for v in self.vcpus) > 1)

    def others_runnable(self, vcpu: Vcpu) -> bool:
        """True if a vCPU other than ``vcpu`` is runnable (vCPU thread only)."""
        return any(v is not vcpu and v.state is VcpuState.RUNNABLE for v in self.vcpus)

    def current_slice(self) -> Slice | None:
        """Returns the running slice, or None between slices (the kicker's view)."""
        with self._lock:
            return self._slice

    def preempt(self, sid: int) -> None:
        """Ends slice ``sid`` at the vCPU's next block start, if it is still running."""
        with self._lock:
            if self._slice is not None and self._slice.sid == sid:
                self._kick_locked()
                self._turn = None
                self._expired = self._slice.vcpu

    def _kick_locked(self) -> None:
        if self._running is not None:
            self._running.preempt.arm()
            self._kicked = True

    def _wake(self, vcpu: Vcpu) -> None:
        if vcpu.state is VcpuState.WFI:
            vcpu.state = VcpuState.RUNNABLE

    def _interrupt(self, vcpu: Vcpu) -> None:
        self._wake(vcpu)
        self._urgent.add(vcpu.index)

    def _wake_all(self) -> None:
        for vcpu in self.vcpus:
            self._wake(vcpu)

    def _main(self) -> None:
        error: BaseException | None = None
        try:
            while self._service():
                vcpu = self._pick()
                if vcpu is None:
                    self._idle()
                else:
                    self._run_slice(vcpu)
        except BaseException as exc:  # reported through on_finished, never swallowed
            error = exc
        finally:
            self._kicker.close()
            if self.on_finished is not None:
                self.on_finished(error)

    def _service(self) -> bool:
        """Runs the posted functions; returns False once the thread must stop."""
        with self._lock:
            work = list(self._mailbox)
            self._mailbox.clear()
            self._attention = False
            stopping = self._stopping
        if stopping:
            return False
        for fn in work:
            fn()
        return True

    def _pick(self) -> Vcpu | None:
        """Returns the next runnable vCPU: an urgent one first, else round-robin after the last."""
        n = len(self.vcpus)
        order = [self.vcpus[(self._last + step) % n] for step in range(1, n + 1)]
        for vcpu in order:
            if (vcpu.index in self._urgent and vcpu.state is VcpuState.RUNNABLE
                    and vcpu.index != self._expired):
                self._last = vcpu.index
                return vcpu
        for vcpu in order:
            if vcpu.state is VcpuState.RUNNABLE:
                self._last = vcpu.index
                return vcpu
        return None

    def _idle(self) -> None:
        self._kicker.set_periodic(False)
        with self._lock:
            self._turn = None
            while not self._attention:
                self._cond.wait()

    def _run_slice(self, vcpu: Vcpu) -> None:
        self._kicker.set_periodic(self.others_runnable(vcpu))
        if self.before_slice is not None:
            self.before_slice(vcpu)
        with self._lock:
            if self._attention:  # service the mailbox first; this vCPU keeps its turn
                self._last = (vcpu.index - 1) % len(self.vcpus)
                return
            self._next_sid += 1
            self._slice = Slice(self._next_sid, vcpu.index, self._turn_start_locked(vcpu))
            self._running = vcpu
            self._kicked = False
        self._urgent.discard(vcpu.index)
        try:
            outcome = vcpu.run()
        finally:
            with self._lock:
                self._slice = None
                self._running = None
                kicked = self._kicked
                vcpu.preempt.disarm()
        self._handle(vcpu, outcome, kicked)

    def _turn_start_locked(self, vcpu: Vcpu) -> float:
        """Start of ``vcpu``'s turn: kept across its consecutive slices, else now."""
        if self._turn is None or self._turn[0] != vcpu.index:
            self._turn = (vcpu.index, time.monotonic())
            if self._expired != vcpu.index:
                self._expired = None
        return self._turn[1]

    def _handle(self, vcpu: Vcpu, outcome: VcpuExit, kicked: bool) -> None:
        match outcome:
            case Preempted() | Yield():
                pass
            case Wfi():
                # A WFI that coincides with a kick completes at once (a legal spurious wakeup):
                # the kick may carry the very event this WFI waits for.
                pending = self.wakeup_pending is not None and self.wakeup_pending(vcpu)
                if not kicked and not pending:
                    vcpu.state = VcpuState.WFI
            case _:
                self._on_exit(vcpu, outcome)
