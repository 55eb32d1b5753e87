"""Interrupts in the worker on real Unicorn with real guest code: IRQ entry/return, the vGIC's CPU
interface, the virtual timer, SGIs, the UART line and coordinator Virqs.

Hand-assembled snippets (``SysAsm``) pin the exact architectural behaviour (which registers the
entry preserves, where ELR points, when a masked interrupt is taken); the committed
``irqtest`` image checks the same paths through the SDK's GIC driver. Waits are bounded.
"""

from __future__ import annotations

import struct
import time
from dataclasses import replace
from pathlib import Path

import pytest
from test_worker_asm import Asm, asm_elf
from test_worker_vm import IMAGES, RESULTS, Harness, make_vm  # noqa: F401 (a fixture)

from gunyah_net.abi import hypercalls
from gunyah_net.abi.hypercalls import Handler
from gunyah_net.abi.platform import RAM_BASE
from gunyah_net.abi.rm import ExitType
from gunyah_net.worker.deadlines import Deadlines
from gunyah_net.worker.exits import HvcRequest
from gunyah_net.worker.vcpu import VcpuState
from gunyah_net.worker.vm import VmResetting, VmRunning
from gunyah_net.worker.vtimer import CTL_ENABLE, CTL_IMASK, CTL_ISTATUS, VirtualTimer, counter_now

SYSREGS = {
    "nzcv": (3, 3, 4, 2, 0), "daif": (3, 3, 4, 2, 1), "vbar_el1": (3, 0, 12, 0, 0),
    "elr_el1": (3, 0, 4, 0, 1), "spsr_el1": (3, 0, 4, 0, 0), "sp_el0": (3, 0, 4, 1, 0),
    "icc_iar1": (3, 0, 12, 12, 0), "icc_eoir1": (3, 0, 12, 12, 1), "icc_pmr": (3, 0, 4, 6, 0),
    "icc_igrpen1": (3, 0, 12, 12, 7), "icc_sgi1r": (3, 0, 12, 11, 5),
    "icc_hppir1": (3, 0, 12, 12, 2), "icc_rpr": (3, 0, 12, 11, 3),
    "cntvct": (3, 3, 14, 0, 2), "cntfrq": (3, 3, 14, 0, 0), "cntv_ctl": (3, 3, 14, 3, 1),
    "cntv_tval": (3, 3, 14, 3, 0), "cntv_cval": (3, 3, 14, 3, 2),
}
GICD = 0x0800_0000
GICR0_SGI = 0x080A_0000 + 0x1_0000
STACK = RAM_BASE + 0x20_0000
IRQ_LOG = RESULTS + 0x400
"""The test handler's record: ELR, SPSR, INTID, count, then free words."""
SPURIOUS = 1023


class SysAsm(Asm):
    """``Asm`` plus system instructions, GIC set-up and a vector table with a test IRQ handler."""

    def mrs(self, rt: int, name: str) -> SysAsm:
        op0, op1, crn, crm, op2 = SYSREGS[name]
        return self.word(0xD5300000 | (op0 & 1) << 19 | op1 << 16 | crn << 12 | crm << 8
                         | op2 << 5 | rt)

    def msr(self, name: str, rt: int) -> SysAsm:
        op0, op1, crn, crm, op2 = SYSREGS[name]
        return self.word(0xD5100000 | (op0 & 1) << 19 | op1 << 16 | crn << 12 | crm << 8
                         | op2 << 5 | rt)

    def daifclr(self, imm: int) -> SysAsm:
        return self.word(0xD50340FF | imm << 8)

    def daifset(self, imm: int) -> SysAsm:
        return self.word(0xD50340DF | imm << 8)

    def eret(self) -> SysAsm:
        return self.word(0xD69F03E0)

    def push01(self) -> SysAsm:
        return self.word(0xA9BF07E0)  # stp x0, x1, [sp, #-16]!

    def pop01(self) -> SysAsm:
        return self.word(0xA8C107E0)  # ldp x0, x1, [sp], #16

    def mov_to_sp(self, rn: int) -> SysAsm:
        return self.word(0x9100001F | rn << 5)

    def mov_from_sp(self, rd: int) -> SysAsm:
        return self.word(0x910003E0 | rd)

    def store32(self, address: int, value: int) -> SysAsm:
        """*(u32 *)address = value, through X9/X10 (one STR: an MMIO access)."""
        return self.mov(9, address).mov(10, value).str_w(10, 9)

    def gic_setup(self, private: tuple[int, ...] = (), spis: tuple[int, ...] = (),
                  edge: tuple[int, ...] = ()) -> SysAsm:
        """Enables Group 1, the given SGIs/PPIs on vCPU 0 and SPIs (routed to vCPU 0, priority
        0, level unless in ``edge``); PMR 0xFF, IGRPEN1 1. Clobbers X9, X10."""
        self.store32(GICD, 2)
        if private:
            self.store32(GICR0_SGI + 0x100, sum(1 << i for i in private))
        for intid in spis:
            if intid in edge:
                self.store32(GICD + 0xC00 + 4 * (intid // 16), 2 << (2 * (intid % 16)))
            self.store32(GICD + 0x100 + 4 * (intid // 32), 1 << (intid % 32))
        return self.mov(10, 0xFF).msr("icc_pmr", 10).mov(10, 1).msr("icc_igrpen1", 10)

    def vectors_then(self, main: str, handler: str) -> SysAsm:
        """Branches to ``main``; lays out a vector table whose EL1h IRQ entry goes to
        ``handler`` (every other entry is UDF); ends with VBAR_EL1 and SP set up at ``main``."""
        self.b("setup").align(0x800).label("vectors")
        while self.here() < self.labels["vectors"] + 0x280:
            self.udf()
        self.b(handler)
        self.label("setup").adr(0, "vectors").msr("vbar_el1", 0)
        return self.mov(0, STACK).mov_to_sp(0).b(main)

    def recording_handler(self, name: str = "irq") -> SysAsm:
        """An IRQ handler that preserves every register and NZCV: records ELR, SPSR and the
        acknowledged INTID at IRQ_LOG, counts at IRQ_LOG + 24, EOIs, returns."""
        self.label(name).push01().mov(0, IRQ_LOG)
        self.mrs(1, "elr_el1").str_x(1, 0, 0).mrs(1, "spsr_el1").str_x(1, 0, 8)
        self.mrs(1, "icc_iar1").str_x(1, 0, 16).msr("icc_eoir1", 1)
        self.ldr_x(1, 0, 24).add(1, 1, 1).str_x(1, 0, 24)
        return self.pop01().eret()

    def sgi_to_self(self, intid: int, rt: int) -> SysAsm:
        return self.mov(rt, intid << 24 | 1).msr("icc_sgi1r", rt)


# Reference words from clang's integrated assembler (zig cc, -target aarch64-freestanding-none).
@pytest.mark.parametrize("build, expected", [
    (lambda a: a.daifclr(2), 0xD50342FF),
    (lambda a: a.daifset(2), 0xD50342DF),
    (lambda a: a.mrs(3, "nzcv"), 0xD53B4203),
    (lambda a: a.msr("nzcv", 3), 0xD51B4203),
    (lambda a: a.msr("vbar_el1", 3), 0xD518C003),
    (lambda a: a.mrs(3, "elr_el1"), 0xD5384023),
    (lambda a: a.mrs(3, "spsr_el1"), 0xD5384003),
    (lambda a: a.mrs(3, "icc_iar1"), 0xD538CC03),
    (lambda a: a.msr("icc_eoir1", 3), 0xD518CC23),
    (lambda a: a.msr("icc_pmr", 3), 0xD5184603),
    (lambda a: a.msr("icc_igrpen1", 3), 0xD518CCE3),
    (lambda a: a.msr("icc_sgi1r", 3), 0xD518CBA3),
    (lambda a: a.mrs(3, "icc_hppir1"), 0xD538CC43),
    (lambda a: a.msr("daif", 3), 0xD51B4223),
    (lambda a: a.mrs(3, "cntvct"), 0xD53BE043),
    (lambda a: a.mrs(3, "cntv_ctl"), 0xD53BE323),
    (lambda a: a.msr("cntv_tval", 3), 0xD51BE303),
    (lambda a: a.msr("cntv_cval", 3), 0xD51BE343),
    (lambda a: a.mrs(3, "cntfrq"), 0xD53BE003),
    (lambda a: a.msr("elr_el1", 3), 0xD5184023),
    (lambda a: a.msr("spsr_el1", 3), 0xD5184003),
    (lambda a: a.msr("sp_el0", 3), 0xD5184103),
    (lambda a: a.mrs(3, "sp_el0"), 0xD5384103),
    (lambda a: a.eret(), 0xD69F03E0),
    (lambda a: a.push01(), 0xA9BF07E0),
    (lambda a: a.pop01(), 0xA8C107E0),
    (lambda a: a.mov_to_sp(3), 0x9100007F),
    (lambda a: a.mov_from_sp(3), 0x910003E3),
])
def test_system_encodings_match_the_reference_assembler(build, expected):
    asm = SysAsm()
    build(asm)
    assert asm.words == [expected]


def _irq_log(vm: Harness) -> tuple[int, int, int, int]:
    return vm.quads(IRQ_LOG, 4)


# --- IRQ entry and return ------------------------------------------------------------------

NZCV = 0xA000_0000  # N and C set


def _preservation_program() -> SysAsm:
    asm = SysAsm().vectors_then("main", "irq").recording_handler()
    asm.label("main").gic_setup(private=(3,)).daifclr(2)
    for reg in range(27):
        asm.mov(reg, 0x1111_0000_0000 | reg)
    asm.mov(26, NZCV).msr("nzcv", 26).mov(26, 0x1111_0000_0000 | 26)  # MOV keeps the flags
    asm.mov(27, 3 << 24 | 1).mov(28, RESULTS).mov(29, 0x2929).mov(30, 0x3030)
    asm.msr("icc_sgi1r", 27).label("after_sgi").nop().nop()
    for reg in range(31):
        asm.str_x(reg, 28, 8 * reg)
    asm.mrs(0, "nzcv").str_x(0, 28, 8 * 31).mov_from_sp(0).str_x(0, 28, 8 * 32)
    return asm.system_off()


def test_irq_entry_and_eret_preserve_every_register(make_vm, tmp_path):
    asm = _preservation_program()
    vm = make_vm(asm_elf(tmp_path / "preserve.elf", asm)).start()
    assert vm.wait_exit().exit_type == ExitType.PLATFORM_OFF
    regs = vm.quads(RESULTS, 33)
    expected = [0x1111_0000_0000 | r for r in range(27)] + [3 << 24 | 1, RESULTS, 0x2929, 0x3030]
    assert list(regs[:31]) == expected
    assert regs[31] == NZCV and regs[32] == STACK
    elr, spsr, intid, count = _irq_log(vm)
    assert (intid, count) == (3, 1)
    assert elr == asm.labels["after_sgi"], "taken at the first block after the SGI write"
    assert spsr == NZCV | 0x340 | 0b0101, "SPSR: NZCV, D/A/F still masked, I clear, EL1h"


def _masked_program(unmask: str) -> SysAsm:
    """SGI 5 while IRQs are masked; a WFI must complete; then unmask with ``unmask``."""
    asm = SysAsm().vectors_then("main", "irq").recording_handler()
    asm.label("main").gic_setup(private=(5,)).mov(28, RESULTS)
    asm.sgi_to_self(5, 1).wfi()                         # pending + masked: WFI falls through
    for _ in range(50):
        asm.add(2, 2, 1)
    asm.mrs(1, "icc_hppir1").str_x(1, 28, 0)
    asm.mov(1, IRQ_LOG).ldr_x(1, 1, 24).str_x(1, 28, 8)          # count while masked
    if unmask == "daifclr":
        asm.daifclr(2)
    else:
        asm.mov(3, 0x340).msr("daif", 3)
    asm.label("after_unmask").nop().nop().nop()
    return asm.system_off()


@pytest.mark.parametrize("unmask", ["daifclr", "msr daif"])
def test_a_masked_interrupt_is_taken_right_after_the_guest_unmasks(make_vm, tmp_path, unmask):
    asm = _masked_program(unmask)
    vm = make_vm(asm_elf(tmp_path / "masked.elf", asm)).start()
    assert vm.wait_exit().exit_type == ExitType.PLATFORM_OFF
    hppir, count_masked = vm.quads(RESULTS, 2)
    assert (hppir, count_masked) == (5, 0), "pending, not taken while PSTATE.I is set"
    elr, _, intid, count = _irq_log(vm)
    assert (intid, count) == (5, 1)
    assert elr == asm.labels["after_unmask"]


def test_an_irq_taken_from_el0_switches_stacks_and_returns_to_el0(make_vm, tmp_path):
    # EL1 drops to an EL0 loop (SP_EL0 = STACK - 0x8000); SPI 960 arrives: the lower-EL vector
    # (VBAR + 0x480) runs on SP_EL1 with SP_EL0 banked, and ERET resumes the EL0 loop, which
    # then records its own SP.
    el0_stack, flag = STACK - 0x8000, IRQ_LOG + 24
    asm = SysAsm().b("setup").align(0x800).label("vectors")
    while asm.here() < asm.labels["vectors"] + 0x480:
        asm.udf()
    asm.b("lower")
    asm.label("lower").mov(0, RESULTS).mov_from_sp(1).str_x(1, 0, 0)
    asm.mrs(1, "sp_el0").str_x(1, 0, 8).mrs(1, "elr_el1").str_x(1, 0, 16)
    asm.mrs(1, "spsr_el1").str_x(1, 0, 24).mrs(1, "icc_iar1").str_x(1, 0, 32)
    asm.msr("icc_eoir1", 1).mov(1, 1).mov(2, flag).str_x(1, 2).eret()
    asm.label("setup").adr(0, "vectors").msr("vbar_el1", 0).mov(0, STACK).mov_to_sp(0)
    asm.gic_setup(spis=(VIRQ,), edge=(VIRQ,))
    asm.adr(0, "el0").msr("elr_el1", 0).mov(0, 0).msr("spsr_el1", 0)
    asm.mov(0, el0_stack).msr("sp_el0", 0).eret()
    asm.label("el0").mov(6, RESULTS).mov(7, 1).str_x(7, 6, 48)
    asm.mov(3, flag).label("spin").ldr_x(4, 3).cbz(4, "spin")
    asm.mov_from_sp(5).str_x(5, 6, 40)
    asm.label("done").b("done")
    vm = make_vm(asm_elf(tmp_path / "el0.elf", asm))
    vm.vm.interrupts.configure_virq(VIRQ, edge=True)
    vm.start()
    _wait_quad(vm, RESULTS + 48, 1)
    vm.vm.set_virq(VIRQ, True)
    _wait_quad(vm, RESULTS + 40, el0_stack)
    sp_el1, sp_el0, elr, spsr, intid, _ = vm.quads(RESULTS, 6)
    assert (sp_el1, sp_el0, intid) == (STACK, el0_stack, VIRQ)
    assert asm.labels["spin"] <= elr <= asm.labels["spin"] + 4 and spsr & 0xF == 0, "from EL0t"


# --- virtual timer ---------------------------------------------------------------------------

def _timer_program() -> SysAsm:
    """Arms the timer 1 ms ahead and waits for its handler's flag without losing the wake-up.

    The IRQ may arrive before the guest reaches its WFI (under host load it often does), so the
    flag is tested with IRQs masked and the WFI runs masked: a pending IRQ completes a WFI
    whatever PSTATE.I, and the IRQ is taken in the unmasked window right after it. A loop that
    unmasked first and tested the flag only after WFI would sleep forever whenever the IRQ came
    before the WFI, as on hardware (the handler disables the timer, so nothing wakes it again).
    """
    asm = SysAsm().vectors_then("main", "tick")
    asm.label("tick").mov(0, RESULTS)
    asm.mrs(1, "cntvct").str_x(1, 0, 0).mrs(1, "cntv_ctl").str_x(1, 0, 8)
    asm.mrs(1, "cntv_cval").str_x(1, 0, 16).mrs(1, "icc_iar1").str_x(1, 0, 24)
    asm.mov(2, 0).msr("cntv_ctl", 2)                             # disable: the level drops
    asm.msr("icc_eoir1", 1).mov(2, 1).str_x(2, 0, 32).eret()
    asm.label("main").gic_setup(private=(27,)).mov(0, RESULTS)
    asm.mrs(1, "cntfrq").str_x(1, 0, 40)
    asm.mov(1, 62_500).msr("cntv_tval", 1).mov(1, 1).msr("cntv_ctl", 1)   # 1 ms from now
    asm.label("wait").ldr_x(1, 0, 32).cbnz(1, "done")                   # IRQs masked since reset
    asm.wfi().daifclr(2).daifset(2).b("wait")                           # taken between these two
    asm.label("done").mrs(1, "cntv_ctl").str_x(1, 0, 48)
    return asm.system_off()


def test_virtual_timer_raises_ppi27_at_its_deadline(make_vm, tmp_path):
    vm = make_vm(asm_elf(tmp_path / "timer.elf", _timer_program())).start()
    assert vm.wait_exit().exit_type == ExitType.PLATFORM_OFF
    now, ctl, cval, intid, _, cntfrq, ctl_after = vm.quads(RESULTS, 7)
    assert intid == 27
    assert cntfrq == 62_500_000
    assert ctl == CTL_ENABLE | CTL_ISTATUS, "in the handler: enabled, condition met"
    assert now >= cval, "never before the deadline"
    assert ctl_after == 0


def test_timer_line_follows_enable_imask_and_the_deadline():
    levels: list[bool] = []
    deadlines = Deadlines("t-timers")
    timer = VirtualTimer(deadlines, levels.append)
    try:
        timer.write_cval(counter_now() - 1)
        timer.write_ctl(CTL_ENABLE | CTL_IMASK)
        assert timer.read_ctl() == CTL_ENABLE | CTL_IMASK | CTL_ISTATUS and levels == []
        timer.write_ctl(CTL_ENABLE)
        assert levels == [True]
        timer.write_tval(62_500_000)                             # 1 s ahead: condition false
        assert levels == [True, False] and timer.read_ctl() == CTL_ENABLE
        assert 0 < timer.read_tval() <= 62_500_000
        timer.write_tval(-625)                                   # negative TVAL: in the past
        assert levels[-1] is True and timer.read_cval() < counter_now()
        timer.write_tval(625)                                    # 10 us ahead: fires by deadline
        deadline = time.monotonic() + 5
        while len(levels) < 5:
            assert time.monotonic() < deadline, levels
            time.sleep(0.001)
        assert levels == [True, False, True, False, True]
        timer.reset()
        assert levels[-1] is False and timer.read_ctl() == 0 and deadlines.pending() == 0
    finally:
        deadlines.close()


def test_rearming_the_timer_cancels_the_stale_deadline():
    deadlines = Deadlines("t-timers")
    timer = VirtualTimer(deadlines, lambda high: None)
    try:
        timer.write_ctl(CTL_ENABLE)
        for _ in range(1000):
            timer.write_tval(62_500_000)
        assert deadlines.pending() == 1
    finally:
        deadlines.close()


# --- the irqtest image: timer, SGIs, UART RX through the SDK's GIC driver ---------------------

def test_irqtest_timer_and_sgi_between_vcpus(make_vm):
    vm = make_vm(IMAGES / "irqtest.elf", vcpus=2).start()
    out = vm.wait_output(b"irqtest: echo ready\n")
    assert out == (b"irqtest: timer irq\nirqtest: sgi on cpu 1\nirqtest: sgi answered\n"
                   b"irqtest: echo ready\n")
    stats = vm.vm.interrupts.vgic.stats()
    assert stats.delivered[27] == 1 and stats.delivered[1] == 1 and stats.delivered[2] == 1


def test_uart_rx_interrupt_wakes_the_wfi_parked_vcpu_and_its_handler_echoes(make_vm):
    vm = make_vm(IMAGES / "irqtest.elf", vcpus=1).start()
    vm.wait_output(b"irqtest: echo ready\n")
    vm.wait_state(0, VcpuState.WFI)
    assert vm.vm.console_input(b"ping\r") == 5
    vm.wait_output(b"ping\r\n")
    assert vm.vm.interrupts.vgic.stats().delivered[33] >= 1
    vm.wait_state(0, VcpuState.WFI)
    vm.vm.console_input(b"x")
    vm.wait_output(b"ping\r\nx")


# --- coordinator Virqs -------------------------------------------------------------------------

VIRQ = 960
GO, READY, PHASE1 = RESULTS + 0x200, RESULTS + 0x208, RESULTS + 0x210


def _virq_program() -> SysAsm:
    """Phase 1 (IRQs masked): READY, wait for GO, record HPPIR1 and the handler count, unmask,
    PHASE1. Phase 2: idle in WFI. The handler acknowledges, calls doorbell_receive (cap 7, which
    EL2 answers after deasserting the line), and EOIs."""
    asm = SysAsm().vectors_then("main", "irq")
    asm.label("irq").mov(20, IRQ_LOG).mrs(21, "icc_iar1").str_x(21, 20, 16)
    asm.ldr_x(22, 20, 24).add(22, 22, 1).str_x(22, 20, 24)
    asm.mov(0, 7).mov(1, 1).mov(2, 0).hvc(0x6013)
    asm.msr("icc_eoir1", 21).eret()
    asm.label("main").gic_setup(spis=(VIRQ,)).mov(28, RESULTS)
    asm.mov(1, 1).mov(2, READY).str_x(1, 2)
    asm.mov(2, GO).label("go").ldr_x(1, 2).cbz(1, "go")
    asm.mrs(1, "icc_hppir1").str_x(1, 28, 0)
    asm.daifclr(2).nop().nop()
    asm.mov(1, IRQ_LOG).ldr_x(1, 1, 24).str_x(1, 28, 8)
    asm.mov(1, 1).mov(2, PHASE1).str_x(1, 2)
    asm.label("idle").wfi().b("idle")
    return asm


def _el2_lookup(*numbers: int):
    def lookup(number: int):
        spec = hypercalls.lookup(number)
        return replace(spec, handler=Handler.EL2) if number in numbers and spec else spec
    return lookup


def _wait_quad(vm: Harness, address: int, value: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while vm.quads(address, 1)[0] != value:
        assert time.monotonic() < deadline, f"{address:#x} never became {value}"
        time.sleep(0.002)


def test_level_virq_is_taken_once_and_withdrawn_by_deassertion_before_ack(make_vm, tmp_path):
    vm = make_vm(asm_elf(tmp_path / "virq.elf", _virq_program()), lookup=_el2_lookup(0x13))
    forwarded: list[HvcRequest] = []

    def forward(request: HvcRequest) -> None:  # EL2: doorbell_receive deasserts, then answers
        forwarded.append(request)
        vm.vm.set_virq(VIRQ, False)
        vm.vm.complete_hvc(request.vcpu, [0, 1])

    vm.vm.forward = forward
    vm.vm.interrupts.configure_virq(VIRQ, edge=False)
    vm.start()
    _wait_quad(vm, READY, 1)
    vm.vm.set_virq(VIRQ, True)
    assert vm.vm.interrupts.vgic.irq_pending(0)
    vm.vm.set_virq(VIRQ, False)
    assert not vm.vm.interrupts.vgic.irq_pending(0)
    vm.ram.write(GO, struct.pack("<Q", 1))
    _wait_quad(vm, PHASE1, 1)
    assert vm.quads(RESULTS, 2) == (SPURIOUS, 0), "deasserted before any ack: nothing to take"

    vm.wait_state(0, VcpuState.WFI)
    vm.vm.set_virq(VIRQ, True)
    _wait_quad(vm, IRQ_LOG + 24, 1)
    time.sleep(0.05)
    assert _irq_log(vm)[2:] == (VIRQ, 1), "taken exactly once: the handler's hypercall lowered it"
    assert [(f.number, f.args) for f in forwarded] == [(0x13, (7, 1, 0))]
    vm.wait_state(0, VcpuState.WFI)


def test_edge_virq_is_pulsed_once_per_assertion(make_vm, tmp_path):
    asm = SysAsm().vectors_then("main", "irq").recording_handler()
    asm.label("main").gic_setup(spis=(VIRQ,), edge=(VIRQ,)).daifclr(2)
    asm.label("idle").wfi().b("idle")
    vm = make_vm(asm_elf(tmp_path / "edge.elf", asm))
    vm.vm.interrupts.configure_virq(VIRQ, edge=True)
    vm.start()
    vm.wait_state(0, VcpuState.WFI)
    for n in (1, 2, 3):
        vm.vm.set_virq(VIRQ, True)      # an edge source never deasserts; each assert counts
        _wait_quad(vm, IRQ_LOG + 24, n)
    vm.vm.set_virq(VIRQ, False)
    time.sleep(0.05)
    assert _irq_log(vm)[2:] == (VIRQ, 3)


def test_bad_virq_numbers_are_logged_not_fatal(make_vm, tmp_path, caplog):
    vm = make_vm(asm_elf(tmp_path / "idle.elf", SysAsm().label("l").wfi().b("l"))).start()
    for virq in (5, 1020, 1 << 40):
        vm.vm.set_virq(virq, True)
    assert sum("Virq" in r.getMessage() and "ignored" in r.getMessage()
               for r in caplog.records) == 3
    vm.vm.stop()
    assert vm.vm.join(5)


# --- scheduling: an interrupted vCPU runs next, but cannot starve the others ----------------------

def test_an_interrupted_vcpu_is_served_while_another_spins(make_vm, tmp_path):
    # vCPU 0 idles in WFI; vCPU 1 spins forever and, after 4000 rounds, sends it SGI 4. vCPU 0
    # must take it although vCPU 1 never stops being runnable, and vCPU 1 keeps running after.
    asm = SysAsm().vectors_then("main", "irq").recording_handler()
    asm.label("main").gic_setup(private=(4,)).daifclr(2)
    asm.mov(0, 0xC4000003).mov(1, 1).adr(2, "spinner").hvc(0)
    asm.label("idle").wfi().b("idle")
    asm.label("spinner").mov(3, RESULTS).label("spin").ldr_x(4, 3).add(4, 4, 1).str_x(4, 3)
    asm.cmp(4, 4000).b_cond("ne", "spin").mov(5, 4 << 24 | 1).msr("icc_sgi1r", 5).b("spin")
    vm = make_vm(asm_elf(tmp_path / "spin.elf", asm), vcpus=2).start()
    _wait_quad(vm, IRQ_LOG + 24, 1)
    assert _irq_log(vm)[2] == 4
    spins = vm.quads(RESULTS, 1)[0]
    deadline = time.monotonic() + 5
    while vm.quads(RESULTS, 1)[0] < spins + 10_000:
        assert time.monotonic() < deadline, "the spinning vCPU stopped getting time"
        time.sleep(0.005)


def test_reset_clears_the_vgic_timers_and_latched_virqs(make_vm, tmp_path):
    # First boot (a byte waits in the UART): enable Group 1, PPI 27, the SPI and the timer, then
    # SYSTEM_RESET. The reset empties the UART, so the second boot just idles.
    asm = SysAsm().vectors_then("main", "irq").recording_handler()
    asm.label("main").mov(1, 0x0900_0000).ldr_w(2, 1, 0x18).tbnz(2, 4, "idle")
    asm.ldr_w(2, 1, 0)
    asm.gic_setup(private=(27,), spis=(VIRQ,)).mov(1, 1).msr("cntv_ctl", 1)
    asm.smccc(0x84000009)
    asm.label("idle").wfi().b("idle")
    vm = make_vm(asm_elf(tmp_path / "reset.elf", asm))
    vm.vm.interrupts.configure_virq(VIRQ, edge=False)
    vm.vm.set_virq(VIRQ, True)
    vm.vm.console_input(b"r")
    vm.start()
    assert isinstance(vm.next_event(), VmResetting)
    assert isinstance(vm.next_event(), VmRunning)
    vm.wait_state(0, VcpuState.WFI)
    interrupts = vm.vm.interrupts
    assert interrupts.vgic.group_enables == 0
    assert not interrupts.vgic.table.irq(0, 27).enabled
    assert interrupts.timers[0].read_ctl() == 0, "the timer was disabled by the reset"
    spi = interrupts.vgic.table.irq(None, VIRQ)
    # An EL2 assertion is a latched pending state (hyp/effects.py), which a reset discards
    # with the rest of the vGIC; the trigger mode from the VM's resources carries over.
    assert not spi.pending and not spi.enabled and not spi.edge


def test_wfi_with_a_pending_but_masked_interrupt_does_not_park(make_vm, tmp_path):
    asm = SysAsm().vectors_then("main", "irq").recording_handler()
    asm.label("main").gic_setup(private=(6,)).sgi_to_self(6, 1)
    asm.mov(3, RESULTS).label("loop").wfi().ldr_x(4, 3).add(4, 4, 1).str_x(4, 3)
    asm.cmp(4, 100).b_cond("ne", "loop").system_off()
    vm = make_vm(asm_elf(tmp_path / "wfi.elf", asm)).start()
    assert vm.wait_exit().exit_type == ExitType.PLATFORM_OFF
    assert vm.quads(RESULTS, 1) == (100,)
    assert _irq_log(vm)[3] == 0


def test_icc_traps_are_never_replayed_under_preemption(make_vm, tmp_path):
    # Two vCPUs each send 1000 SGIs to the other, time-sliced every 0.5 ms. A trapped MRS of
    # ICC_IAR1_EL1 that ran twice would read 1023 the second time and leave the SGI active
    # forever; a replayed EOI would be ignored. Every acknowledge must pair with one EOI.
    counts, done = RESULTS + 0x80, RESULTS + 0xC0
    asm = SysAsm().vectors_then("main", "irq")
    asm.label("irq").push01().mrs(0, "icc_iar1").msr("icc_eoir1", 0)
    asm.mrs_mpidr(0).and_ff(0, 0).lsl(0, 0, 3).add(0, 0, 0x80).mov(1, RESULTS).add_reg(0, 0, 1)
    asm.ldr_x(1, 0).add(1, 1, 1).str_x(1, 0).pop01().eret()
    asm.label("main").gic_setup(private=(7,))
    asm.mov(0, 0xC4000003).mov(1, 1).adr(2, "second").hvc(0).mov(6, 7 << 24 | 2).b("send")
    asm.label("second").adr(0, "vectors").msr("vbar_el1", 0).mov(0, STACK - 0x1000).mov_to_sp(0)
    asm.mov(9, GICR0_SGI + 0x2_0000 + 0x100).mov(10, 1 << 7).str_w(10, 9)
    asm.mov(10, 0xFF).msr("icc_pmr", 10).mov(10, 1).msr("icc_igrpen1", 10)
    asm.mov(6, 7 << 24 | 1)
    asm.label("send").daifclr(2).mov(7, 1000)
    asm.label("again").msr("icc_sgi1r", 6)
    for _ in range(20):
        asm.nop()
    asm.subs(7, 7, 1).b_cond("ne", "again")
    asm.mov(8, done).label("inc").ldxr_x(9, 8).add(9, 9, 1).stxr_x(10, 9, 8).cbnz(10, "inc")
    asm.label("park").wfi().b("park")
    vm = make_vm(asm_elf(tmp_path / "sgis.elf", asm), vcpus=2, timeslice=0.0005).start()
    _wait_quad(vm, done, 2, timeout=30)
    vm.wait_state(0, VcpuState.WFI)
    vm.wait_state(1, VcpuState.WFI)
    stats = vm.vm.interrupts.vgic.stats()
    assert stats.spurious_acks == (0, 0) and stats.ignored_eoi == 0
    assert 2 <= stats.delivered[7] <= 2000  # SGIs to a vCPU with one pending merge
    assert sum(vm.quads(counts, 2)) == stats.delivered[7]
    assert not any(vm.vm.interrupts.vgic.table.irq(v, 7).active for v in (0, 1))
