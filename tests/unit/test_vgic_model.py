"""The vGIC against a small brute-force reference model, driven by a Hypothesis state machine.

The reference scans every interrupt on every question and keeps active priorities as a stack; the
vGIC keeps ready sets and an ICC_AP1R0_EL1 bitmap. After every step the IRQ outputs, HPPIR1 and the
kicks of the step must agree.
"""

from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gunyah_net.worker.vgic import VGic

VCPUS = 2
SPIS = (32, 33, 34)
PRIVATE = (1, 27)
ANY = "any"

vcpus = st.integers(0, VCPUS - 1)
spis = st.sampled_from(SPIS)
privates = st.sampled_from(PRIVATE)
priorities = st.one_of(st.sampled_from([0x00, 0x40, 0x80, 0xA0, 0xF8, 0xFF]), st.integers(0, 255))


@dataclass
class RefIrq:
    edge: bool = False
    enabled: bool = True
    latch: bool = False
    line: bool = False
    active: bool = False
    priority: int = 0x80

    def drive(self, high: bool) -> None:
        self.latch |= high and not self.line and self.edge
        self.line = high

    @property
    def ready(self) -> bool:
        pending = self.latch or (self.line and not self.edge)
        return self.enabled and pending and not self.active


class Reference:
    """GICv3 delivery for Group 1 with BPR1 at its minimum, written the obvious way."""

    def __init__(self) -> None:
        self.spis = {i: RefIrq() for i in SPIS}
        self.private = {(v, i): RefIrq(edge=i < 16) for v in range(VCPUS) for i in PRIVATE}
        self.routes: dict[int, int | str] = dict.fromkeys(SPIS, 0)
        self.pmr = [0xF8] * VCPUS
        self.grpen = [True] * VCPUS
        self.eoimode = [False] * VCPUS
        self.stacks: list[list[tuple[int, int]]] = [[] for _ in range(VCPUS)]

    def bits(self, vcpu: int, intids: tuple[int, ...], field: str) -> int:
        """The ISPENDR/ISACTIVER word a guest reads for ``intids`` (pending or active)."""
        value = 0
        for intid in intids:
            irq = self.irq(vcpu, intid)
            on = irq.active if field == "active" else irq.latch or (irq.line and not irq.edge)
            value |= on << (intid % 32)
        return value

    def irq(self, vcpu: int, intid: int) -> RefIrq:
        return self.private[(vcpu, intid)] if intid < 32 else self.spis[intid]

    def target(self, spi: int) -> int | None:
        route = self.routes[spi]
        if route == ANY:
            return next((v for v in range(VCPUS) if self.grpen[v]), None)
        return route  # type: ignore[return-value]

    def hppi(self, vcpu: int) -> tuple[int, int] | None:
        if not self.grpen[vcpu]:
            return None
        mine = [(vcpu, i) for i in PRIVATE] + [(vcpu, s) for s in SPIS if self.target(s) == vcpu]
        ready = [(self.irq(v, i).priority, i) for v, i in mine if self.irq(v, i).ready]
        return min(ready, default=None)

    def running(self, vcpu: int) -> int:
        return min((prio for _, prio in self.stacks[vcpu]), default=0xFF)

    def signal(self, vcpu: int) -> bool:
        best = self.hppi(vcpu)
        return best is not None and best[0] < self.pmr[vcpu] and best[0] < self.running(vcpu)

    def ack(self, vcpu: int) -> int:
        if not self.signal(vcpu):
            return 1023
        priority, intid = self.hppi(vcpu)  # type: ignore[misc]
        irq = self.irq(vcpu, intid)
        irq.latch, irq.active = False, True
        self.stacks[vcpu].append((intid, priority))
        return intid

    def eoi(self, vcpu: int) -> int:
        intid, _ = self.stacks[vcpu].pop()
        if not self.eoimode[vcpu]:
            self.irq(vcpu, intid).active = False
        return intid


class VGicMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.kicks: list[int] = []
        self.vgic = VGic(VCPUS, self.kicks.append)
        self.ref = Reference()
        self.vgic.configure(SPIS[-1], edge=True)
        self.ref.spis[SPIS[-1]].edge = True
        self.vgic.gicd.write(0x0000, 4, 0b10)
        self.vgic.gicd.write(0x0104, 4, 0xFFFF_FFFF)
        for spi in SPIS:
            self.vgic.gicd.write(0x0400 + spi, 1, 0x80)
        for v in range(VCPUS):
            self.vgic.icc_write(v, "ICC_IGRPEN1_EL1", 1)
            self.vgic.icc_write(v, "ICC_PMR_EL1", 0xFF)
            self.vgic.gicr[v].write(0x1_0100, 4, 0xFFFF_FFFF)
            for intid in PRIVATE:
                self.vgic.gicr[v].write(0x1_0400 + intid, 1, 0x80)
        self.before = [False] * VCPUS

    def _step(self) -> None:
        """Checks this step's kicks against the reference's rising IRQ outputs."""
        after = [self.ref.signal(v) for v in range(VCPUS)]
        rises = [v for v in range(VCPUS) if after[v] and not self.before[v]]
        assert sorted(self.kicks) == rises
        self.kicks.clear()
        self.before = after

    @rule(spi=spis, high=st.booleans())
    def set_level(self, spi, high):
        self.vgic.set_level(spi, high)
        self.ref.spis[spi].drive(high)
        self._step()

    @rule(spi=spis)
    def pulse(self, spi):
        self.vgic.pulse(spi)
        self.ref.spis[spi].latch = True
        self._step()

    @rule(spi=spis, edge=st.booleans())
    def configure(self, spi, edge):
        self.vgic.configure(spi, edge)
        self.ref.spis[spi].edge = edge
        self._step()

    @rule(vcpu=vcpus, ppi=st.just(27), high=st.booleans())
    def set_ppi(self, vcpu, ppi, high):
        self.vgic.set_ppi(vcpu, ppi, high)
        self.ref.irq(vcpu, ppi).drive(high)
        self._step()

    @rule(spi=spis, on=st.booleans())
    def enable_spi(self, spi, on):
        self.vgic.gicd.write(0x0104 if on else 0x0184, 4, 1 << (spi - 32))
        self.ref.spis[spi].enabled = on
        self._step()

    @rule(vcpu=vcpus, intid=privates, on=st.booleans())
    def enable_private(self, vcpu, intid, on):
        self.vgic.gicr[vcpu].write(0x1_0100 if on else 0x1_0180, 4, 1 << intid)
        self.ref.irq(vcpu, intid).enabled = on
        self._step()

    @rule(spi=spis, priority=priorities)
    def spi_priority(self, spi, priority):
        self.vgic.gicd.write(0x0400 + spi, 1, priority)
        self.ref.spis[spi].priority = priority & 0xF8
        self._step()

    @rule(vcpu=vcpus, intid=privates, priority=priorities)
    def private_priority(self, vcpu, intid, priority):
        self.vgic.gicr[vcpu].write(0x1_0400 + intid, 1, priority)
        self.ref.irq(vcpu, intid).priority = priority & 0xF8
        self._step()

    @rule(spi=spis, dest=st.sampled_from([0, 1, ANY]))
    def route(self, spi, dest):
        self.vgic.gicd.write(0x6000 + 8 * spi, 4, 1 << 31 if dest == ANY else dest)
        self.ref.routes[spi] = dest
        self._step()

    @rule(sender=vcpus, intid=st.just(1), target_list=st.integers(0, 3),
          broadcast=st.booleans())
    def sgi(self, sender, intid, target_list, broadcast):
        value = target_list | intid << 24 | int(broadcast) << 40
        self.vgic.icc_write(sender, "ICC_SGI1R_EL1", value)
        receivers = [v for v in range(VCPUS)
                     if (v != sender if broadcast else target_list >> v & 1)]
        for v in receivers:
            self.ref.irq(v, intid).latch = True
        self._step()

    @rule(vcpu=vcpus, pmr=priorities)
    def set_pmr(self, vcpu, pmr):
        self.vgic.icc_write(vcpu, "ICC_PMR_EL1", pmr)
        self.ref.pmr[vcpu] = pmr & 0xF8
        self._step()

    @rule(vcpu=vcpus, on=st.booleans())
    def group_enable(self, vcpu, on):
        self.vgic.icc_write(vcpu, "ICC_IGRPEN1_EL1", int(on))
        self.ref.grpen[vcpu] = on
        self._step()

    @rule(vcpu=vcpus, on=st.booleans())
    def eoimode(self, vcpu, on):
        self.vgic.icc_write(vcpu, "ICC_CTLR_EL1", int(on) << 1)
        self.ref.eoimode[vcpu] = on
        self._step()

    @rule(vcpu=vcpus)
    def acknowledge(self, vcpu):
        assert self.vgic.icc_read(vcpu, "ICC_IAR1_EL1") == self.ref.ack(vcpu)
        self._step()

    @precondition(lambda self: any(self.ref.stacks))
    @rule(data=st.data())
    def end_of_interrupt(self, data):
        vcpu = data.draw(st.sampled_from([v for v in range(VCPUS) if self.ref.stacks[v]]))
        self.vgic.icc_write(vcpu, "ICC_EOIR1_EL1", self.ref.eoi(vcpu))
        self._step()

    @rule(vcpu=vcpus, intid=st.sampled_from(SPIS + PRIVATE))
    def deactivate(self, vcpu, intid):
        self.vgic.icc_write(vcpu, "ICC_DIR_EL1", intid)
        self.ref.irq(vcpu, intid).active = False
        self._step()

    @invariant()
    def outputs_agree(self):
        for v in range(VCPUS):
            assert self.vgic.irq_pending(v) == self.ref.signal(v)
            assert self.vgic.wfi_should_wake(v) == self.ref.signal(v)
            best = self.ref.hppi(v)
            assert self.vgic.icc_read(v, "ICC_HPPIR1_EL1") == (1023 if best is None else best[1])
            assert self.vgic.icc_read(v, "ICC_RPR_EL1") == self.ref.running(v)
            for offset, field in ((0x0200, "pending"), (0x0300, "active")):
                assert self.vgic.gicr[v].read(0x1_0000 + offset, 4) == self.ref.bits(
                    v, PRIVATE, field)
                assert self.vgic.gicd.read(offset + 4, 4) == self.ref.bits(v, SPIS, field)


VGicMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_vgic_matches_the_reference_model = VGicMachine.TestCase
