"""A VM's interrupt wiring: the vGIC, the vCPUs' virtual timers, interrupt sources and IRQ entry.

``VmInterrupts`` connects the pure vGIC model (vgic*.py) to the running vCPUs:

- **Registers.** The GICD frame and one GICR frame per vCPU are MMIO devices mapped in every
  vCPU (``devices``); ICC_* and CNTV_* reach the vGIC and the ``VirtualTimer``s through the
  MRS/MSR traps (``install``, sysregs.py).
- **Sources.** ``set_virq`` applies a coordinator ``Virq`` message: a level-triggered virq follows
  ``asserted``, an edge-triggered one is pulsed on assertion (deassertion is meaningless for it).
  Trigger modes come from the VM's resources (``configure_virq``); a virq the resources do not
  name (bound later by a hypercall) follows the mode the vGIC holds for it. ``set_spi_line``
  drives a device line (the PL011 on SPI 33); each timer drives PPI 27 of its vCPU.
- **Delivery.** The vGIC's kick wakes the target vCPU (``wake``, which the scheduler latches and
  uses to run that vCPU next). ``before_slice`` runs before every slice: if the vGIC asserts IRQ
  to the vCPU and PSTATE.I is clear it performs the IRQ entry (irq_entry.py); if I is set it
  arms the vCPU's unmask watch, so the slice ends at the first block after the guest unmasks
  (MSR DAIFClr, MSR DAIF, ERET) and the next ``before_slice`` takes the interrupt.
  ``wakeup_pending`` tells the scheduler whether a WFI completes at once (``wfi_should_wake``).
- **Reset.** ``reset`` gives the VM a fresh vGIC and idle timers, re-applies the trigger modes and
  re-drives every source line that is still high (a doorbell's level survives a guest reset).

Thread-safety: ``set_virq`` and ``set_spi_line`` may be called from any thread; a lock orders
them against ``reset`` swapping the vGIC. Everything else runs on the vCPU thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from gunyah_net.abi.platform import GICD_BASE, GICD_SIZE, VTIMER_INTID, gicr_base

from .deadlines import Deadlines
from .irq_entry import IrqEntry
from .sysregs import install_sysreg_traps
from .vcpu import MmioDevice, Vcpu
from .vgic import VGic
from .vgic_irq import INTID_LIMIT, SPI_BASE, VGicError
from .vgic_redist import GICR_SIZE
from .vtimer import VirtualTimer

log = logging.getLogger(__name__)


class VmInterrupts:
    """The vGIC, timers and IRQ delivery of one VM with ``vcpu_count`` vCPUs."""

    def __init__(self, vcpu_count: int, name: str, wake: Callable[[int], None]) -> None:
        self._name = name
        self._wake = wake
        self._lock = threading.Lock()
        self._edges: dict[int, bool] = {}
        self._levels: dict[int, bool] = {}
        self._deadlines = Deadlines(f"{name}-timers")
        self.vgic = VGic(vcpu_count, self._kick)
        self.timers = [VirtualTimer(self._deadlines, self._timer_output(i))
                       for i in range(vcpu_count)]
        self.taken = [0] * vcpu_count
        """IRQ entries performed per vCPU."""
        self._entries: dict[int, IrqEntry] = {}

    # --- wiring (before the vCPUs run) ---

    def devices(self) -> tuple[MmioDevice, ...]:
        """The GICD frame and every GICR frame, for mapping in each vCPU."""
        frames = [MmioDevice(GICD_BASE, GICD_SIZE, lambda off, size: self.vgic.gicd.read(off, size),
                             lambda off, size, value: self.vgic.gicd.write(off, size, value))]
        for i in range(self.vgic.vcpu_count):
            frames.append(MmioDevice(gicr_base(i), GICR_SIZE, self._gicr_read(i),
                                     self._gicr_write(i)))
        return tuple(frames)

    def install(self, vcpu: Vcpu) -> None:
        """Traps ``vcpu``'s ICC_* and CNTV_* accesses and prepares its IRQ entry."""
        install_sysreg_traps(vcpu, self)
        self._entries[vcpu.index] = IrqEntry(vcpu)

    def configure_virq(self, virq: int, edge: bool) -> None:
        """Presets the trigger mode of SPI ``virq`` (from the VM's resources)."""
        with self._lock:
            self._edges[virq] = edge
            self.vgic.configure(virq, edge)

    # --- sources (any thread) ---

    def set_virq(self, virq: int, asserted: bool) -> None:
        """Applies a coordinator Virq with the meaning of ``hyp/effects.py``, for either trigger.

        True latches the virq pending (GICD_ISPENDR): it is delivered once, and EL2 itself
        asserts again while a level source stays pending. False withdraws a latched assertion the
        guest has not acknowledged yet (GICD_ICPENDR). Neither drives a line: a level line held
        high here would re-pend at every EOI, so an auto-acknowledged level doorbell would storm.
        """
        try:
            if asserted:
                self.vgic.pulse(virq)
            else:
                self.vgic.withdraw(virq)
        except VGicError as exc:
            log.error("%s: Virq %d ignored: %s", self._name, virq, exc)

    def set_spi_line(self, intid: int, high: bool) -> None:
        """Drives the level-sensitive device line SPI ``intid`` (the UART's)."""
        with self._lock:
            self.vgic.set_level(intid, high)
            self._levels[intid] = high

    # --- SysregHost (vCPU thread) ---

    def icc_read(self, vcpu: int, name: str) -> int:
        """MRS of an ICC register."""
        return self.vgic.icc_read(vcpu, name)

    def icc_write(self, vcpu: int, name: str, value: int) -> None:
        """MSR to an ICC register."""
        self.vgic.icc_write(vcpu, name, value)

    def timer(self, vcpu: int) -> VirtualTimer:
        """The virtual timer of ``vcpu``."""
        return self.timers[vcpu]

    # --- scheduler seams (vCPU thread) ---

    def before_slice(self, vcpu: Vcpu) -> None:
        """Takes a pending IRQ on ``vcpu`` if it can, or watches for the guest unmasking IRQs."""
        if not self.vgic.irq_pending(vcpu.index):
            vcpu.preempt.watch_unmask(False)
            return
        taken = self._entries[vcpu.index].take()
        vcpu.preempt.watch_unmask(not taken)
        if taken:
            self.taken[vcpu.index] += 1

    def wakeup_pending(self, vcpu: Vcpu) -> bool:
        """True if a WFI on ``vcpu`` completes at once (an interrupt is signalled to it)."""
        return self.vgic.wfi_should_wake(vcpu.index)

    def reset(self) -> None:
        """Fresh vGIC and idle timers; trigger modes and high source lines carry over."""
        for timer in self.timers:
            timer.reset()
        with self._lock:
            self.vgic = VGic(self.vgic.vcpu_count, self._kick)
            for virq, edge in self._edges.items():
                self.vgic.configure(virq, edge)
            for intid, high in self._levels.items():
                if high:
                    self.vgic.set_level(intid, True)

    def close(self) -> None:
        """Stops the timers' deadline thread."""
        self._deadlines.close()

    # --- internals ---

    def _kick(self, vcpu: int) -> None:
        self._wake(vcpu)

    def _timer_output(self, vcpu: int) -> Callable[[bool], None]:
        def set_line(high: bool) -> None:
            self.vgic.set_ppi(vcpu, VTIMER_INTID, high)
        return set_line

    def _gicr_read(self, vcpu: int) -> Callable[[int, int], int]:
        return lambda offset, size: self.vgic.gicr[vcpu].read(offset, size)

    def _gicr_write(self, vcpu: int) -> Callable[[int, int, int], None]:
        return lambda offset, size, value: self.vgic.gicr[vcpu].write(offset, size, value)
