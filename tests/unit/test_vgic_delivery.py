"""vGIC delivery: priorities, PMR, level/edge, EOI/DIR, preemption, SGIs, routing, kicks."""

import threading
from collections.abc import Callable

import pytest

from gunyah_net.worker.vgic import VGic
from gunyah_net.worker.vgic_irq import VGicError

UART = 33
DOORBELL = 960


class Guest:
    """A VGic plus the kicks it made, with a guest's usual bring-up already done."""

    def __init__(self, vcpus: int = 2, on_kick: Callable[[int], None] | None = None) -> None:
        self.kicks: list[int] = []
        self.vgic = VGic(vcpus, on_kick or self.kicks.append)
        self.vgic.gicd.write(0x0000, 4, 0b11)
        for vcpu in range(vcpus):
            self.vgic.icc_write(vcpu, "ICC_PMR_EL1", 0xFF)
            self.vgic.icc_write(vcpu, "ICC_IGRPEN1_EL1", 1)

    def spi(self, intid: int, priority: int = 0xA0, vcpu: int = 0, edge: bool = False) -> None:
        """Enables SPI ``intid`` at ``priority``, routed to ``vcpu``."""
        self.vgic.configure(intid, edge)
        self.vgic.gicd.write(0x0400 + intid, 1, priority)
        self.vgic.gicd.write(0x6000 + 8 * intid, 8, vcpu)
        self.vgic.gicd.write(0x0100 + 4 * (intid // 32), 4, 1 << (intid % 32))

    def private(self, vcpu: int, intid: int, priority: int = 0xA0) -> None:
        """Enables SGI/PPI ``intid`` on ``vcpu`` at ``priority``."""
        self.vgic.gicr[vcpu].write(0x1_0400 + intid, 1, priority)
        self.vgic.gicr[vcpu].write(0x1_0100, 4, 1 << intid)

    def ack(self, vcpu: int = 0) -> int:
        return self.vgic.icc_read(vcpu, "ICC_IAR1_EL1")

    def eoi(self, intid: int, vcpu: int = 0) -> None:
        self.vgic.icc_write(vcpu, "ICC_EOIR1_EL1", intid)

    def pending(self, intid: int) -> bool:
        return bool(self.vgic.gicd.read(0x0200 + 4 * (intid // 32), 4) >> (intid % 32) & 1)

    def active(self, intid: int) -> bool:
        return bool(self.vgic.gicd.read(0x0300 + 4 * (intid // 32), 4) >> (intid % 32) & 1)

    def drain(self, vcpu: int = 0) -> list[int]:
        """Acknowledges and EOIs until 1023; returns the INTIDs in order."""
        taken = []
        while (intid := self.ack(vcpu)) != 1023:
            taken.append(intid)
            self.eoi(intid, vcpu)
        return taken


# ---- priorities and masking ------------------------------------------------------------------

def test_acknowledges_in_priority_order_and_ties_go_to_the_lowest_intid():
    g = Guest()
    for intid, prio in [(40, 0xA0), (41, 0x40), (42, 0x80), (39, 0x80)]:
        g.spi(intid, prio, edge=True)
        g.vgic.pulse(intid)
    assert g.drain() == [41, 39, 42, 40]
    assert g.vgic.stats().delivered == {41: 1, 39: 1, 42: 1, 40: 1}


def test_pmr_masks_equal_and_lower_priorities_but_hppir_still_shows_them():
    g = Guest()
    g.spi(UART, 0x80)
    g.vgic.icc_write(0, "ICC_PMR_EL1", 0x80)
    g.vgic.set_level(UART, True)
    assert not g.vgic.irq_pending(0)
    assert not g.vgic.wfi_should_wake(0)
    assert g.ack() == 1023
    assert g.vgic.icc_read(0, "ICC_HPPIR1_EL1") == UART
    assert g.kicks == []
    g.vgic.icc_write(0, "ICC_PMR_EL1", 0x88)
    assert g.vgic.irq_pending(0) and g.kicks == [0]
    assert g.ack() == UART


@pytest.mark.parametrize("gicd_ctlr,igrpen1,enabled", [(0b01, 1, True), (0b10, 0, True),
                                                       (0b10, 1, False)])
def test_nothing_is_signalled_unless_both_group_enables_and_the_interrupt_enable_are_set(
        gicd_ctlr, igrpen1, enabled):
    g = Guest()
    g.spi(UART)
    if not enabled:
        g.vgic.gicd.write(0x0184, 4, 1 << 1)
    g.vgic.gicd.write(0x0000, 4, gicd_ctlr)
    g.vgic.icc_write(0, "ICC_IGRPEN1_EL1", igrpen1)
    g.kicks.clear()
    g.vgic.set_level(UART, True)
    assert not g.vgic.irq_pending(0) and g.ack() == 1023 and g.kicks == []
    assert g.pending(UART)


def test_spurious_acknowledges_are_counted_per_vcpu():
    g = Guest(3)
    assert g.ack(2) == 1023 and g.ack(2) == 1023 and g.ack(0) == 1023
    assert g.vgic.stats().spurious_acks == (1, 0, 2)


# ---- level versus edge -----------------------------------------------------------------------

def test_level_spi_stays_pending_while_the_line_is_high():
    g = Guest()
    g.spi(UART)
    g.vgic.set_level(UART, True)
    assert g.ack() == UART
    assert g.pending(UART) and g.active(UART)
    assert not g.vgic.irq_pending(0)  # Active and pending is not signalled again...
    g.eoi(UART)
    assert g.vgic.irq_pending(0)  # ...until it is deactivated.
    g.vgic.set_level(UART, False)
    assert not g.pending(UART) and not g.vgic.irq_pending(0)
    assert g.ack() == 1023


def test_edge_spi_is_consumed_by_the_acknowledge_and_a_new_edge_during_service_is_kept():
    g = Guest()
    g.spi(DOORBELL, edge=True)
    g.vgic.pulse(DOORBELL)
    assert g.ack() == DOORBELL
    assert not g.pending(DOORBELL)
    g.vgic.pulse(DOORBELL)
    assert g.pending(DOORBELL) and g.active(DOORBELL)
    g.eoi(DOORBELL)
    assert g.drain() == [DOORBELL]


def test_edge_pulses_while_pending_merge_into_one_acknowledge():
    g = Guest()
    g.spi(DOORBELL, edge=True)
    for _ in range(3):
        g.vgic.pulse(DOORBELL)
    assert g.drain() == [DOORBELL]


def test_a_level_line_on_an_edge_spi_latches_only_on_rising_edges():
    g = Guest()
    g.spi(DOORBELL, edge=True)
    g.vgic.set_level(DOORBELL, True)
    g.vgic.set_level(DOORBELL, True)
    assert g.drain() == [DOORBELL]
    g.vgic.set_level(DOORBELL, False)
    g.vgic.set_level(DOORBELL, True)
    assert g.drain() == [DOORBELL]


def test_pulse_on_a_level_spi_latches_until_acknowledged():
    g = Guest()
    g.spi(UART)
    g.vgic.pulse(UART)
    assert g.pending(UART)
    assert g.drain() == [UART]


def test_icpendr_clears_the_latch_but_not_a_high_level_line():
    g = Guest()
    g.spi(UART)
    g.vgic.gicd.write(0x0204, 4, 1 << 1)  # ISPENDR
    g.vgic.gicd.write(0x0284, 4, 1 << 1)  # ICPENDR
    assert not g.pending(UART)
    g.vgic.set_level(UART, True)
    g.vgic.gicd.write(0x0284, 4, 1 << 1)
    assert g.pending(UART)


def test_switching_a_high_level_spi_to_edge_drops_its_pending_state():
    g = Guest()
    g.spi(UART)
    g.vgic.set_level(UART, True)
    g.vgic.gicd.write(0x0C08, 4, 2 << 2)
    assert not g.pending(UART) and not g.vgic.irq_pending(0)


# ---- EOI, DIR and preemption -----------------------------------------------------------------

def test_eoimode_1_splits_priority_drop_from_deactivation():
    g = Guest()
    g.spi(UART)
    g.vgic.icc_write(0, "ICC_CTLR_EL1", 0b10)
    g.vgic.set_level(UART, True)
    assert g.ack() == UART
    g.eoi(UART)
    assert g.vgic.icc_read(0, "ICC_RPR_EL1") == 0xFF
    assert g.active(UART) and not g.vgic.irq_pending(0)
    g.vgic.icc_write(0, "ICC_DIR_EL1", UART)
    assert not g.active(UART) and g.vgic.irq_pending(0)


def test_eoimode_0_eoi_deactivates():
    g = Guest()
    g.spi(UART)
    g.vgic.set_level(UART, True)
    g.ack()
    g.eoi(UART)
    assert not g.active(UART) and g.vgic.icc_read(0, "ICC_RPR_EL1") == 0xFF


def test_higher_priority_preempts_the_running_one_and_eois_unwind_in_order():
    g = Guest()
    g.spi(40, 0xA0, edge=True)
    g.spi(41, 0x40, edge=True)
    g.spi(42, 0xA0, edge=True)
    g.vgic.pulse(40)
    assert g.ack() == 40 and g.vgic.icc_read(0, "ICC_RPR_EL1") == 0xA0
    g.kicks.clear()
    g.vgic.pulse(42)  # Same priority: no preemption.
    assert not g.vgic.irq_pending(0) and g.kicks == [] and g.ack() == 1023
    g.vgic.pulse(41)
    assert g.kicks == [0] and g.ack() == 41
    assert g.vgic.icc_read(0, "ICC_AP1R0_EL1") == (1 << (0xA0 >> 3)) | (1 << (0x40 >> 3))
    assert g.vgic.icc_read(0, "ICC_RPR_EL1") == 0x40
    g.eoi(41)
    assert g.vgic.icc_read(0, "ICC_RPR_EL1") == 0xA0 and not g.vgic.irq_pending(0)
    g.eoi(40)
    assert g.vgic.irq_pending(0) and g.drain() == [42]


@pytest.mark.parametrize("bpr1,preempts", [(3, True), (5, False)])
def test_binary_point_limits_preemption_to_the_group_priority(bpr1, preempts):
    g = Guest()
    g.vgic.icc_write(0, "ICC_BPR1_EL1", bpr1)
    g.spi(40, 0x70, edge=True)
    g.spi(41, 0x60, edge=True)
    g.vgic.pulse(40)
    assert g.ack() == 40
    g.vgic.pulse(41)
    assert g.vgic.irq_pending(0) is preempts


def test_eoi_without_an_active_priority_and_special_intids_are_ignored():
    g = Guest()
    g.spi(UART)
    g.vgic.set_level(UART, True)
    g.eoi(UART)
    g.eoi(1023)
    assert g.vgic.stats().ignored_eoi == 1
    assert g.ack() == UART
    g.eoi(1023)
    assert g.active(UART) and g.vgic.icc_read(0, "ICC_RPR_EL1") == 0xA0


# ---- SGIs, PPIs and routing ------------------------------------------------------------------

def _sgi1r(intid: int, targets: int = 0, irm: bool = False, aff1: int = 0, rs: int = 0) -> int:
    return targets | (aff1 << 16) | (intid << 24) | (int(irm) << 40) | (rs << 44)


@pytest.mark.parametrize("value,receivers", [
    (_sgi1r(3, targets=0b0110), {1, 2}),
    (_sgi1r(3, targets=0b0001), {0}),
    (_sgi1r(3, irm=True), {1, 2, 3}),
    (_sgi1r(3, targets=0b0110, aff1=1), set()),
    (_sgi1r(3, targets=0b0001, rs=1), set()),
    (_sgi1r(3, targets=0b1_0000), set()),
])
def test_sgi1r_reaches_exactly_the_addressed_vcpus(value, receivers):
    g = Guest(4)
    for vcpu in range(4):
        g.private(vcpu, 3)
    g.kicks.clear()
    g.vgic.icc_write(0, "ICC_SGI1R_EL1", value)
    assert {v for v in range(4) if g.vgic.irq_pending(v)} == receivers
    assert sorted(g.kicks) == sorted(receivers)
    for vcpu in receivers:
        assert g.drain(vcpu) == [3]


def test_group_0_sgi_registers_generate_nothing():
    g = Guest(2)
    g.private(1, 3)
    g.vgic.icc_write(0, "ICC_SGI0R_EL1", _sgi1r(3, targets=0b10))
    g.vgic.icc_write(0, "ICC_ASGI1R_EL1", _sgi1r(3, targets=0b10))
    assert not g.vgic.irq_pending(1)


def test_timer_ppi_is_private_to_its_vcpu():
    g = Guest(2)
    g.private(0, 27)
    g.private(1, 27)
    g.vgic.set_ppi(1, 27, True)
    assert (g.vgic.irq_pending(0), g.vgic.irq_pending(1)) == (False, True)
    assert g.ack(1) == 27 and g.ack(0) == 1023
    g.vgic.set_ppi(1, 27, False)
    g.eoi(27, 1)
    assert not g.vgic.irq_pending(1)


def test_irouter_moves_an_spi_between_vcpus_and_a_missing_target_holds_it():
    g = Guest(2)
    g.spi(UART, vcpu=1)
    g.vgic.set_level(UART, True)
    assert (g.vgic.irq_pending(0), g.vgic.irq_pending(1)) == (False, True)
    g.vgic.gicd.write(0x6000 + 8 * UART, 8, 5)  # No vCPU 5 in this VM.
    assert not g.vgic.irq_pending(0) and not g.vgic.irq_pending(1)
    g.vgic.gicd.write(0x6000 + 8 * UART, 4, 0)
    assert g.vgic.irq_pending(0) and g.ack(0) == UART


def test_one_of_n_picks_the_lowest_vcpu_with_group_1_enabled():
    g = Guest(3)
    g.spi(UART)
    g.vgic.gicd.write(0x6000 + 8 * UART, 8, 1 << 31)
    g.vgic.icc_write(0, "ICC_IGRPEN1_EL1", 0)
    g.vgic.set_level(UART, True)
    assert [g.vgic.irq_pending(v) for v in range(3)] == [False, True, False]
    assert g.ack(1) == UART


# ---- kicks, sleep and WFI --------------------------------------------------------------------

def test_kick_fires_once_per_rise_of_a_deliverable_interrupt_for_that_vcpu_only():
    g = Guest(2)
    g.spi(40, 0x80, vcpu=1, edge=True)
    g.spi(41, 0x40, vcpu=1, edge=True)
    g.kicks.clear()
    g.vgic.pulse(40)
    g.vgic.pulse(41)  # Already signalled: no second kick.
    assert g.kicks == [1]
    assert g.ack(1) == 41 and not g.vgic.irq_pending(1)  # 40 cannot preempt 41...
    g.eoi(41, 1)
    assert g.kicks == [1, 1]  # ...so the EOI re-asserts IRQ for it: a new rise.
    assert g.drain(1) == [40] and g.kicks == [1, 1]
    g.vgic.pulse(40)
    assert g.kicks == [1, 1, 1]


def test_enabling_a_pending_interrupt_kicks():
    g = Guest()
    g.spi(UART)
    g.vgic.gicd.write(0x0184, 4, 1 << 1)
    g.vgic.set_level(UART, True)
    assert g.kicks == []
    g.vgic.gicd.write(0x0104, 4, 1 << 1)
    assert g.kicks == [0]


def test_a_sleeping_redistributor_signals_nothing_but_wakes_wfi():
    g = Guest()
    g.spi(UART, 0x80)
    g.vgic.gicr[0].write(0x0014, 4, 0b10)
    g.vgic.icc_write(0, "ICC_PMR_EL1", 0)  # Even below the PMR: a wake request.
    g.vgic.set_level(UART, True)
    assert (g.vgic.irq_pending(0), g.vgic.wfi_should_wake(0)) == (False, True)
    assert g.kicks == [0] and g.ack() == 1023
    assert g.vgic.icc_read(0, "ICC_HPPIR1_EL1") == 1023
    g.vgic.icc_write(0, "ICC_PMR_EL1", 0xFF)
    g.vgic.gicr[0].write(0x0014, 4, 0)
    assert g.vgic.irq_pending(0) and g.ack() == UART


def test_kick_runs_outside_the_lock_so_it_may_call_back():
    seen = []
    vgic = VGic(1, kick=lambda vcpu: seen.append(vgic.icc_read(vcpu, "ICC_HPPIR1_EL1")))
    vgic.gicd.write(0x0000, 4, 0b10)
    vgic.icc_write(0, "ICC_IGRPEN1_EL1", 1)
    vgic.icc_write(0, "ICC_PMR_EL1", 0xFF)
    vgic.gicd.write(0x0104, 4, 1 << 1)
    vgic.set_level(UART, True)
    assert seen == [UART]


@pytest.mark.parametrize("call", [
    lambda v: v.set_level(31, True),
    lambda v: v.pulse(1020),
    lambda v: v.configure(0, True),
    lambda v: v.set_ppi(0, 15, True),
    lambda v: v.set_ppi(2, 27, True),
])
def test_bad_source_arguments_raise_a_precise_error(call):
    with pytest.raises(VGicError, match="must be"):
        call(VGic(2, kick=lambda vcpu: None))


@pytest.mark.parametrize("count", [0, 9])
def test_vcpu_count_is_bounded(count):
    with pytest.raises(VGicError, match="1..8"):
        VGic(count, kick=lambda vcpu: None)


# ---- threads ---------------------------------------------------------------------------------

def test_concurrent_sources_lose_no_edge_and_no_kick():
    """Producers pulse their own edge SPI, each time only after the previous pulse was taken (so
    nothing merges), while a level line toggles; one consumer sleeps on the kick and drains."""
    rounds, spis = 300, [40, 41, 42, 43]
    woken = threading.Event()
    vgic = Guest(1, on_kick=lambda vcpu: woken.set()).vgic
    for spi in spis:
        vgic.configure(spi, edge=True)
    vgic.gicd.write(0x0104, 4, 0xFFFF_FFFF)
    taken = {spi: threading.Semaphore(0) for spi in spis}
    counts = dict.fromkeys(spis + [UART], 0)
    done = threading.Event()

    def produce(spi: int) -> None:
        for _ in range(rounds):
            vgic.pulse(spi)
            assert taken[spi].acquire(timeout=10), "an edge was lost"

    def toggle() -> None:
        for i in range(rounds):
            vgic.set_level(UART, i % 2 == 0)
        vgic.set_level(UART, False)

    def consume() -> None:  # Waits on kicks only: a lost kick stalls it and the counts fail.
        while not done.is_set():
            woken.wait()
            woken.clear()
            while (intid := vgic.icc_read(0, "ICC_IAR1_EL1")) != 1023:
                counts[intid] += 1
                vgic.icc_write(0, "ICC_EOIR1_EL1", intid)
                if intid in taken:
                    taken[intid].release()

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    workers = [threading.Thread(target=produce, args=(spi,), daemon=True) for spi in spis]
    workers.append(threading.Thread(target=toggle, daemon=True))
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=60)
    done.set()
    woken.set()
    consumer.join(timeout=10)
    assert not any(t.is_alive() for t in workers + [consumer])
    assert all(counts[spi] == rounds for spi in spis)
    assert vgic.stats().delivered.get(UART, 0) == counts[UART]
    assert vgic.icc_read(0, "ICC_IAR1_EL1") == 1023 and not vgic.irq_pending(0)
