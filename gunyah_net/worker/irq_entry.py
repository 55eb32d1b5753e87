"""IRQ exception entry into the guest's vectors, done by hand between two slices of a vCPU.

Unicorn never vectors an exception into the guest, and has no interrupt line to raise, so the
worker performs the architectural IRQ entry itself (Arm ARM D1.10.2) while the vCPU is stopped:

1. ELR_EL1 = the PC the vCPU would resume at; SPSR_EL1 = PSTATE (NZCV, DAIF, mode, ...);
2. PSTATE = EL1h with D, A, I and F masked, NZCV kept (the other PSTATE bits are zero);
3. PC = VBAR_EL1 + 0x280 from EL1h, + 0x080 from EL1t, + 0x480 from EL0 (AArch64);
4. from EL1t or EL0 the stack pointer switches from SP_EL0 to SP_EL1: Unicorn's SP register is
   the live one and the banked copy of the level being left is stale, so the live SP is saved as
   SP_EL0 and SP_EL1 becomes live (``ERET`` later does the reverse itself);
5. a CP_REG write (SPSR_EL1 goes last, through CP_REG) makes the translator rebuild its cached
   EL and flags: writing PSTATE alone does not change the EL that translated code assumes.

The guest's ``ERET`` then returns exactly to the interrupted instruction with every register
(X0..X30, SP, NZCV, DAIF) as they were. An IRQ is taken only while PSTATE.I is clear; AArch32 EL0
is not supported (gunyah-net guests are AArch64 only) and is never interrupted. With the register
batches prepared once per vCPU an entry costs ~3.5 µs (measured; ~24 µs with ad-hoc batches).
"""

from __future__ import annotations

from unicorn import arm64_const as a64

from .regs import PC, PSTATE, SP
from .vcpu import Vcpu

PSTATE_I = 1 << 7
PSTATE_DAIF = 0xF << 6
PSTATE_NZCV = 0xF << 28
PSTATE_NRW = 1 << 4
"""Set for an AArch32 execution state."""
MODE_EL1H = 0b0101
SPSR_EL1 = (4, 0, 3, 0, 0)
"""(crn, crm, op0, op1, op2) of SPSR_EL1 for UC_ARM64_REG_CP_REG."""
VECTOR_EL1T, VECTOR_EL1H, VECTOR_EL0_64 = 0x080, 0x280, 0x480
VBAR_EL1 = a64.UC_ARM64_REG_VBAR_EL1
ELR_EL1 = a64.UC_ARM64_REG_ELR_EL1
SP_EL0 = a64.UC_ARM64_REG_SP_EL0
SP_EL1 = a64.UC_ARM64_REG_SP_EL1


class IrqEntry:
    """The IRQ entry of one vCPU, with its register batches prepared once."""

    def __init__(self, vcpu: Vcpu) -> None:
        self._vcpu = vcpu
        self._state = vcpu.regs.batch((PSTATE, VBAR_EL1, SP, SP_EL1))
        self._enter = vcpu.regs.batch((ELR_EL1, PSTATE, PC))
        self._swap_sp = vcpu.regs.batch((SP_EL0, SP))

    def take(self) -> bool:
        """Enters the guest's IRQ vector (vCPU stopped) unless IRQs are masked; True if so."""
        vcpu = self._vcpu
        pstate, vbar, sp, sp_el1 = self._state.read()
        if pstate & (PSTATE_I | PSTATE_NRW):
            return False
        el, spsel = (pstate >> 2) & 3, pstate & 1
        if el == 1 and spsel:
            offset = VECTOR_EL1H
        else:
            offset = VECTOR_EL1T if el == 1 else VECTOR_EL0_64
        entry = (vbar + offset) & 0xFFFF_FFFF_FFFF_FFFF
        self._enter.write(vcpu.pc, (pstate & PSTATE_NZCV) | PSTATE_DAIF | MODE_EL1H, entry)
        if offset != VECTOR_EL1H:
            self._swap_sp.write(sp, sp_el1)
        vcpu.regs.write_cp(SPSR_EL1, pstate)  # last: rebuilds the translator's EL flags
        vcpu.pc = entry
        return True
