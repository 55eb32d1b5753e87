"""The per-VM virtual GICv3: interrupt sources, the register entry points, and IRQ signalling.

One ``VGic`` per VM worker. It is plain Python (no Unicorn) and thread-safe: device and
coordinator-link code raise lines from the asyncio thread while the vCPU thread performs MMIO
(``gicd`` and ``gicr[i]`` frames) and ICC accesses (``icc_read`` / ``icc_write``). One lock guards
all state; the ``kick`` callback is always called after the lock is released.

Model (GICv3, IHI 0069): affinity routing always on, one security state (GICD_CTLR.DS = 1),
every interrupt Group 1, 5 priority bits, SGIs/PPIs banked per vCPU, SPIs 32..1019, no
LPIs/ITS/extended ranges. See ``vgic_irq`` for the interrupt state, ``vgic_cpuif`` for the ICC
registers and their encodings, ``vgic_dist`` / ``vgic_redist`` for the MMIO frames.

Signalling: vCPU v has IRQ asserted when its highest-priority pending, enabled, inactive
interrupt (with GICD_CTLR.EnableGrp1 and its ICC_IGRPEN1_EL1 set, and its redistributor awake)
has priority < ICC_PMR_EL1 and a group priority above the running priority. Whenever that, or
``wfi_should_wake``, turns true for v, ``kick(v)`` is called, possibly on the vCPU thread itself
from inside an MSR hook (e.g. an EOI that unmasks a waiting interrupt). Kicks are edge-triggered:
the worker must latch them (a flag or an Event), never assume it was waiting when one came.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from gunyah_net.worker.vgic_cpuif import (
    ICC_BY_NAME,
    SPURIOUS_INTID,
    Access,
    CpuInterface,
    IccRegister,
    SgiRequest,
    icc_read,
    icc_write,
)
from gunyah_net.worker.vgic_dist import Distributor
from gunyah_net.worker.vgic_irq import (
    INTID_LIMIT,
    MAX_VCPUS,
    PRIVATE_COUNT,
    SGI_COUNT,
    SPI_BASE,
    IrqTable,
    VGicError,
)
from gunyah_net.worker.vgic_redist import Redistributor

GICD_CTLR_ENABLE_GRP1 = 1 << 1
"""With DS = 1, GICD_CTLR bit 1 is EnableGrp1 (bit 0, EnableGrp0, gates nothing here)."""


@dataclass(frozen=True)
class VGicStats:
    """A snapshot of the vGIC's counters."""

    delivered: Mapping[int, int]
    """INTID -> times acknowledged through ICC_IAR1_EL1 (all vCPUs)."""
    spurious_acks: tuple[int, ...]
    """Per vCPU: ICC_IAR1_EL1 reads that returned 1023."""
    unhandled_mmio: int
    """GICD/GICR accesses to unknown offsets or RO registers, or with a bad width (RAZ/WI)."""
    unhandled_icc: int
    """MRS of a write-only or MSR of a read-only ICC register (RAZ/WI)."""
    ignored_eoi: int
    """ICC_EOIR1_EL1 writes with no active priority to drop."""


class VGic:
    """The virtual GICv3 of one VM: GICD, one GICR per vCPU and each vCPU's CPU interface."""

    def __init__(self, vcpu_count: int, kick: Callable[[int], None]) -> None:
        if not 1 <= vcpu_count <= MAX_VCPUS:
            raise VGicError(f"vcpu_count must be 1..{MAX_VCPUS}, got {vcpu_count}")
        self.vcpu_count = vcpu_count
        self.table = IrqTable(vcpu_count)
        self._kick = kick
        self._lock = threading.Lock()
        self._cpus = [CpuInterface() for _ in range(vcpu_count)]
        self._asleep = [False] * vcpu_count
        self._group_enables = 0
        self._irq_out = [False] * vcpu_count
        self._wake_out = [False] * vcpu_count
        self._delivered: Counter[int] = Counter()
        self._spurious = [0] * vcpu_count
        self._unhandled_mmio = 0
        self._unhandled_icc = 0
        self._ignored_eoi = 0
        self.gicd = Distributor(self)
        self.gicr = tuple(Redistributor(self, i) for i in range(vcpu_count))

    # ---- interrupt sources (any thread) -----------------------------------------------------

    def set_level(self, intid: int, high: bool) -> None:
        """Drives SPI ``intid``'s line: level, pending follows it; edge, a rise latches pending."""
        self._check_spi(intid)
        with self.mutation():
            self.table.irq(None, intid).drive(high)
            self.table.sync(None, intid)

    def pulse(self, intid: int) -> None:
        """Asserts SPI ``intid`` once: pending until acknowledged, whatever its trigger mode.

        A pulse while the SPI is already pending merges with it (one acknowledge), as on hardware.
        """
        self._check_spi(intid)
        with self.mutation():
            self.table.irq(None, intid).latch = True
            self.table.sync(None, intid)

    def withdraw(self, intid: int) -> None:
        """Withdraws SPI ``intid``'s latched pending state, as a write to GICD_ICPENDR does.

        An interrupt the guest has already acknowledged stays active; a level line still held
        high keeps it pending.
        """
        self._check_spi(intid)
        with self.mutation():
            self.table.irq(None, intid).latch = False
            self.table.sync(None, intid)

    def set_ppi(self, vcpu: int, intid: int, high: bool) -> None:
        """Drives PPI ``intid`` (16..31) of ``vcpu``, e.g. the virtual timer's PPI 27."""
        self._check_vcpu(vcpu)
        if not SGI_COUNT <= intid < PRIVATE_COUNT:
            raise VGicError(f"PPI INTID must be {SGI_COUNT}..{PRIVATE_COUNT - 1}, got {intid}")
        with self.mutation():
            self.table.irq(vcpu, intid).drive(high)
            self.table.sync(vcpu, intid)

    def configure(self, intid: int, edge: bool) -> None:
        """Presets SPI ``intid`` as edge- or level-triggered (GICD_ICFGR reads it back)."""
        self._check_spi(intid)
        with self.mutation():
            self.table.irq(None, intid).edge = edge
            self.table.sync(None, intid)

    # ---- signalling (vCPU thread; lock-free reads of values updated under the lock) ---------

    def irq_pending(self, vcpu: int) -> bool:
        """Tells whether the CPU interface asserts IRQ to ``vcpu`` (taken if PSTATE.I is clear)."""
        return self._irq_out[vcpu]

    def wfi_should_wake(self, vcpu: int) -> bool:
        """Tells whether a WFI on ``vcpu`` completes now.

        Redistributor awake: exactly when IRQ is asserted (``irq_pending``). That ignores PSTATE.I
        but honours PMR, running priority and group enables: the Arm ARM's WFI wake-up event is an
        IRQ *received by the PE*, and the GIC signals nothing below the PMR (which is why Linux
        unmasks the PMR around WFI under pseudo-NMI). Redistributor asleep (GICR_WAKER.
        ProcessorSleep = 1): nothing is signalled, but any forwardable interrupt routed to the
        vCPU (ignoring PMR) wakes it, as Gunyah's vGIC does for a sleeping GICR.
        """
        return self._wake_out[vcpu]

    # ---- CPU interface (vCPU thread) --------------------------------------------------------

    def icc_read(self, vcpu: int, name: str) -> int:
        """Returns what an MRS of ICC register ``name`` yields on ``vcpu`` (IAR1 acknowledges)."""
        reg = self._icc_register(vcpu, name)
        with self.mutation():
            if reg.access is Access.WO:
                self._unhandled_icc += 1
                return 0
            return icc_read(self, vcpu, reg)

    def icc_write(self, vcpu: int, name: str, value: int) -> None:
        """Performs an MSR of ``value`` (64-bit) to ICC register ``name`` on ``vcpu``."""
        reg = self._icc_register(vcpu, name)
        with self.mutation():
            if reg.access is Access.RO:
                self._unhandled_icc += 1
                return
            icc_write(self, vcpu, reg, value & 0xFFFF_FFFF_FFFF_FFFF)

    def stats(self) -> VGicStats:
        """Returns a snapshot of the delivery and error counters."""
        with self._lock:
            return VGicStats(dict(self._delivered), tuple(self._spurious), self._unhandled_mmio,
                             self._unhandled_icc, self._ignored_eoi)

    # ---- primitives for the register modules (callers are inside mutation()) -----------------

    @contextmanager
    def mutation(self) -> Iterator[None]:
        """Holds the lock around a state access, then re-evaluates signals and kicks unlocked."""
        with self._lock:
            yield
            kicks = self._resignal()
        for vcpu in kicks:
            self._kick(vcpu)

    def cpu(self, vcpu: int) -> CpuInterface:
        """Returns ``vcpu``'s CPU interface state."""
        return self._cpus[vcpu]

    def count_unhandled_mmio(self) -> None:
        """Counts one GICD/GICR access that was treated as RAZ/WI."""
        self._unhandled_mmio += 1

    @property
    def group_enables(self) -> int:
        """GICD_CTLR bits EnableGrp0 (bit 0) and EnableGrp1 (bit 1)."""
        return self._group_enables

    @group_enables.setter
    def group_enables(self, value: int) -> None:
        self._group_enables = value & 0b11

    def processor_sleep(self, vcpu: int) -> bool:
        """Returns GICR_WAKER.ProcessorSleep of ``vcpu``'s redistributor."""
        return self._asleep[vcpu]

    def set_processor_sleep(self, vcpu: int, sleep: bool) -> None:
        """Sets GICR_WAKER.ProcessorSleep; while set, nothing is signalled to ``vcpu``."""
        self._asleep[vcpu] = sleep

    def acknowledge_locked(self, vcpu: int) -> int:
        """ICC_IAR1_EL1: activates and returns the signalled interrupt, or 1023 if none is."""
        best = self._highest(vcpu, self._one_of_n_target())
        cpu = self._cpus[vcpu]
        if best is None or self._asleep[vcpu] or not cpu.can_signal(best[0]):
            self._spurious[vcpu] += 1
            return SPURIOUS_INTID
        priority, intid = best
        irq = self.table.irq(vcpu, intid)
        irq.latch = False
        irq.active = True
        self.table.sync(vcpu, intid)
        cpu.activate(priority)
        self._delivered[intid] += 1
        return intid

    def highest_pending_locked(self, vcpu: int) -> int:
        """ICC_HPPIR1_EL1: the highest-priority forwardable interrupt, ignoring PMR and RPR."""
        best = None if self._asleep[vcpu] else self._highest(vcpu, self._one_of_n_target())
        return SPURIOUS_INTID if best is None else best[1]

    def end_of_interrupt_locked(self, vcpu: int, intid: int) -> None:
        """ICC_EOIR1_EL1: drops the running priority; with EOImode 0 also deactivates ``intid``.

        Special INTIDs (1020..1023 and up) are ignored entirely; so is an EOI with no active
        priority (counted in ``ignored_eoi``).
        """
        if intid >= INTID_LIMIT:
            return
        cpu = self._cpus[vcpu]
        if not cpu.drop_priority():
            self._ignored_eoi += 1
            return
        if not cpu.eoimode:
            self.deactivate_locked(vcpu, intid)

    def deactivate_locked(self, vcpu: int, intid: int) -> None:
        """ICC_DIR_EL1 (and EOI under EOImode 0): clears ``intid``'s active state.

        Like Gunyah, a DIR write deactivates whatever the EOImode (architecturally UNPREDICTABLE
        with EOImode 0).
        """
        if intid >= INTID_LIMIT:
            return
        self.table.irq(vcpu, intid).active = False
        self.table.sync(vcpu, intid)

    def send_sgi_locked(self, sender: int, request: SgiRequest) -> None:
        """ICC_SGI1R_EL1: makes SGI ``request.intid`` pending on every target vCPU."""
        if request.broadcast:
            targets = [v for v in range(self.vcpu_count) if v != sender]
        else:
            targets = list(request.targets)
        for target in targets:
            self.table.irq(target, request.intid).latch = True
            self.table.sync(target, request.intid)

    # ---- internals ------------------------------------------------------------------------

    def _highest(self, vcpu: int, one_of_n: int | None) -> tuple[int, int] | None:
        """Returns (priority, INTID) of ``vcpu``'s best forwardable interrupt, if any.

        ``one_of_n`` is the current 1-of-N target (``_one_of_n_target()``).
        """
        if not (self._group_enables & GICD_CTLR_ENABLE_GRP1 and self._cpus[vcpu].igrpen1):
            return None
        return self.table.best(vcpu, one_of_n)

    def _one_of_n_target(self) -> int | None:
        """The vCPU a 1-of-N SPI goes to: the lowest awake one with Group 1 enabled, else the
        lowest sleeping one with Group 1 enabled (it gets a wake request), else none."""
        enabled = [v for v in range(self.vcpu_count) if self._cpus[v].igrpen1]
        awake = [v for v in enabled if not self._asleep[v]]
        return (awake or enabled or [None])[0]

    def _signal(self, vcpu: int, one_of_n: int | None) -> tuple[bool, bool]:
        """Returns (IRQ asserted, WFI wakes) for ``vcpu``."""
        best = self._highest(vcpu, one_of_n)
        if best is None:
            return False, False
        if self._asleep[vcpu]:
            return False, True
        asserted = self._cpus[vcpu].can_signal(best[0])
        return asserted, asserted

    def _resignal(self) -> list[int]:
        """Recomputes every vCPU's outputs; returns the vCPUs where one of them rose."""
        kicks = []
        idle = not self.table.ready_spis and not any(self.table.ready_private)
        one_of_n = None if idle else self._one_of_n_target()
        for vcpu in range(self.vcpu_count):
            irq, wake = (False, False) if idle else self._signal(vcpu, one_of_n)
            if (irq and not self._irq_out[vcpu]) or (wake and not self._wake_out[vcpu]):
                kicks.append(vcpu)
            self._irq_out[vcpu] = irq
            self._wake_out[vcpu] = wake
        return kicks

    def _icc_register(self, vcpu: int, name: str) -> IccRegister:
        self._check_vcpu(vcpu)
        reg = ICC_BY_NAME.get(name)
        if reg is None:
            raise VGicError(f"{name!r} is not an ICC register this vGIC implements")
        return reg

    def _check_vcpu(self, vcpu: int) -> None:
        if not 0 <= vcpu < self.vcpu_count:
            raise VGicError(f"vCPU index must be 0..{self.vcpu_count - 1}, got {vcpu}")

    @staticmethod
    def _check_spi(intid: int) -> None:
        if not SPI_BASE <= intid < INTID_LIMIT:
            raise VGicError(f"SPI INTID must be {SPI_BASE}..{INTID_LIMIT - 1}, got {intid}")
