"""The vGIC's per-vCPU CPU interface: the ICC_* system registers a guest reaches with MRS/MSR.

The table ``ICC_REGISTERS`` names every ICC register the worker may see by its architectural name
and its (op0, op1, CRn, CRm, op2) encoding, as Unicorn's MRS/MSR hooks report it in ``cp``. The
encodings were checked against the Arm ARM and Linux's ``arch/arm64/include/asm/sysreg.h``.

The model is GICv3 with system-register access (SRE = 1), one security state (GICD_CTLR.DS = 1),
Group 1 only, 5 priority bits (priorities live in bits [7:3]; ``ICC_AP1R0_EL1`` bit n stands for
group priority n << 3) and 16-bit INTIDs. Group 0 registers exist so a guest does not fault, but
nothing is ever Group 0: IAR0/HPPIR0 read 1023, EOIR0/SGI0R/ASGI1R are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gunyah_net.worker.vgic import VGic

SPURIOUS_INTID = 1023
PRIORITY_MASK = 0xF8
"""Implemented priority bits (VGIC_PRIO_BITS = 5): the low three bits read as zero."""
IDLE_PRIORITY = 0xFF
BPR1_MIN = 3
"""The smallest ICC_BPR1_EL1: group priority bits [7:3], i.e. all five implemented bits."""
BPR0_MIN = 2

ICC_CTLR_EOIMODE = 1 << 1
ICC_CTLR_RO_BITS = (4 << 8) | (0 << 11) | (1 << 15)
"""PRIbits = 4 (five bits), IDbits = 0 (16-bit INTIDs), A3V = 1; CBPR, PMHE, SEIS, RSS read 0."""
ICC_SRE_VALUE = 0x7
"""SRE | DFB | DIB, read-only: the system-register interface is always on."""


class Access(Enum):
    """Which of MRS / MSR the architecture allows on a register."""

    RO = "read-only"
    WO = "write-only"
    RW = "read-write"


@dataclass(frozen=True)
class IccRegister:
    """One ICC register: architectural name, encoding and access."""

    name: str
    encoding: tuple[int, int, int, int, int]
    """(op0, op1, CRn, CRm, op2)."""
    access: Access


def _reg(name: str, crn: int, crm: int, op2: int, access: Access) -> IccRegister:
    return IccRegister(name, (3, 0, crn, crm, op2), access)


ICC_REGISTERS: tuple[IccRegister, ...] = (
    _reg("ICC_PMR_EL1", 4, 6, 0, Access.RW),
    _reg("ICC_IAR0_EL1", 12, 8, 0, Access.RO),
    _reg("ICC_EOIR0_EL1", 12, 8, 1, Access.WO),
    _reg("ICC_HPPIR0_EL1", 12, 8, 2, Access.RO),
    _reg("ICC_BPR0_EL1", 12, 8, 3, Access.RW),
    *(_reg(f"ICC_AP0R{n}_EL1", 12, 8, 4 + n, Access.RW) for n in range(4)),
    *(_reg(f"ICC_AP1R{n}_EL1", 12, 9, n, Access.RW) for n in range(4)),
    _reg("ICC_DIR_EL1", 12, 11, 1, Access.WO),
    _reg("ICC_RPR_EL1", 12, 11, 3, Access.RO),
    _reg("ICC_SGI1R_EL1", 12, 11, 5, Access.WO),
    _reg("ICC_ASGI1R_EL1", 12, 11, 6, Access.WO),
    _reg("ICC_SGI0R_EL1", 12, 11, 7, Access.WO),
    _reg("ICC_IAR1_EL1", 12, 12, 0, Access.RO),
    _reg("ICC_EOIR1_EL1", 12, 12, 1, Access.WO),
    _reg("ICC_HPPIR1_EL1", 12, 12, 2, Access.RO),
    _reg("ICC_BPR1_EL1", 12, 12, 3, Access.RW),
    _reg("ICC_CTLR_EL1", 12, 12, 4, Access.RW),
    _reg("ICC_SRE_EL1", 12, 12, 5, Access.RW),
    _reg("ICC_IGRPEN0_EL1", 12, 12, 6, Access.RW),
    _reg("ICC_IGRPEN1_EL1", 12, 12, 7, Access.RW),
)
ICC_BY_NAME: dict[str, IccRegister] = {r.name: r for r in ICC_REGISTERS}
ICC_BY_ENCODING: dict[tuple[int, int, int, int, int], IccRegister] = {
    r.encoding: r for r in ICC_REGISTERS}


def icc_name(op0: int, op1: int, crn: int, crm: int, op2: int) -> str | None:
    """Returns the ICC register a system-register encoding names, or None if it is not one."""
    reg = ICC_BY_ENCODING.get((op0, op1, crn, crm, op2))
    return None if reg is None else reg.name


@dataclass(frozen=True)
class SgiRequest:
    """A decoded ICC_SGI1R_EL1 write."""

    intid: int
    broadcast: bool
    """IRM = 1: every vCPU except the writer."""
    targets: tuple[int, ...]
    """vCPU indices (Aff0 = RS * 16 + bit) when not broadcast; Aff1..3 must be zero."""


def decode_sgi1r(value: int, vcpu_count: int) -> SgiRequest:
    """Decodes ICC_SGI1R_EL1; targets that name no vCPU of this VM are dropped, as on hardware."""
    intid = (value >> 24) & 0xF
    if (value >> 40) & 1:
        return SgiRequest(intid, True, ())
    upper_aff = ((value >> 16) & 0xFF) | ((value >> 32) & 0xFF) | ((value >> 48) & 0xFF)
    if upper_aff:
        return SgiRequest(intid, False, ())
    base = ((value >> 44) & 0xF) * 16
    targets = tuple(base + bit for bit in range(16)
                    if (value >> bit) & 1 and base + bit < vcpu_count)
    return SgiRequest(intid, False, targets)


class CpuInterface:
    """Mutable ICC state of one vCPU, and the priority arithmetic that decides preemption."""

    __slots__ = ("pmr", "bpr1", "eoimode", "igrpen1", "ap1r0")

    def __init__(self) -> None:
        self.pmr = 0
        self.bpr1 = BPR1_MIN
        self.eoimode = False
        self.igrpen1 = False
        self.ap1r0 = 0

    def group_priority(self, priority: int) -> int:
        """Returns the group (preemption) part of ``priority`` under the current ICC_BPR1_EL1."""
        return priority & (0xFF << self.bpr1) & 0xFF

    def running_priority(self) -> int:
        """Returns ICC_RPR_EL1: the group priority of the highest active priority, or 0xFF."""
        if not self.ap1r0:
            return IDLE_PRIORITY
        lowest = (self.ap1r0 & -self.ap1r0).bit_length() - 1
        return lowest << 3

    def can_signal(self, priority: int) -> bool:
        """Tells whether an interrupt of ``priority`` passes the PMR and preempts the running."""
        return priority < self.pmr and self.group_priority(priority) < self.running_priority()

    def activate(self, priority: int) -> None:
        """Records an acknowledged interrupt's group priority in ICC_AP1R0_EL1."""
        self.ap1r0 |= 1 << (self.group_priority(priority) >> 3)

    def drop_priority(self) -> bool:
        """Clears the highest active priority; returns False if none was active."""
        if not self.ap1r0:
            return False
        self.ap1r0 &= self.ap1r0 - 1
        return True

    def ctlr(self) -> int:
        """Returns ICC_CTLR_EL1."""
        return ICC_CTLR_RO_BITS | (ICC_CTLR_EOIMODE if self.eoimode else 0)


def icc_read(vgic: VGic, vcpu: int, reg: IccRegister) -> int:
    """Performs an MRS of ``reg`` on ``vcpu``; the caller holds the vGIC lock."""
    cpu = vgic.cpu(vcpu)
    match reg.name:
        case "ICC_IAR1_EL1":
            return vgic.acknowledge_locked(vcpu)
        case "ICC_HPPIR1_EL1":
            return vgic.highest_pending_locked(vcpu)
        case "ICC_PMR_EL1":
            return cpu.pmr
        case "ICC_RPR_EL1":
            return cpu.running_priority()
        case "ICC_BPR1_EL1":
            return cpu.bpr1
        case "ICC_BPR0_EL1":
            return BPR0_MIN
        case "ICC_CTLR_EL1":
            return cpu.ctlr()
        case "ICC_SRE_EL1":
            return ICC_SRE_VALUE
        case "ICC_IGRPEN1_EL1":
            return int(cpu.igrpen1)
        case "ICC_AP1R0_EL1":
            return cpu.ap1r0
        case "ICC_IAR0_EL1" | "ICC_HPPIR0_EL1":
            return SPURIOUS_INTID
        case _:
            return 0  # IGRPEN0, AP0Rn, AP1R1..3: RAZ.


def icc_write(vgic: VGic, vcpu: int, reg: IccRegister, value: int) -> None:
    """Performs an MSR of ``value`` to ``reg`` on ``vcpu``; the caller holds the vGIC lock."""
    cpu = vgic.cpu(vcpu)
    match reg.name:
        case "ICC_EOIR1_EL1":
            vgic.end_of_interrupt_locked(vcpu, value & 0xFF_FFFF)
        case "ICC_DIR_EL1":
            vgic.deactivate_locked(vcpu, value & 0xFF_FFFF)
        case "ICC_SGI1R_EL1":
            vgic.send_sgi_locked(vcpu, decode_sgi1r(value, vgic.vcpu_count))
        case "ICC_PMR_EL1":
            cpu.pmr = value & PRIORITY_MASK
        case "ICC_BPR1_EL1":
            cpu.bpr1 = max(BPR1_MIN, value & 0x7)
        case "ICC_CTLR_EL1":
            cpu.eoimode = bool(value & ICC_CTLR_EOIMODE)
        case "ICC_IGRPEN1_EL1":
            cpu.igrpen1 = bool(value & 1)
        case "ICC_AP1R0_EL1":
            cpu.ap1r0 = value & 0xFFFF_FFFF
        case _:
            pass  # SRE, BPR0, IGRPEN0, AP0Rn, AP1R1..3, EOIR0, SGI0R, ASGI1R: WI.
