"""MRS/MSR traps for the system registers Unicorn lacks or leaves unwired: ICC_* and CNTV_*.

Unicorn 2.1.4 has no GIC CPU interface (an ICC_* access is an undefined instruction) and a
generic timer whose CNTV registers do nothing. Every vCPU therefore carries one raw UC_HOOK_INSN
callback for MRS and one for MSR. Each looks the register's (op0, op1, CRn, CRm, op2) up in a
table built once; an access to one of ours is answered (the vGIC's CPU interface, or the vCPU's
``VirtualTimer``) and skipped: the hook writes Xt for an MRS, sets PC += 4 and returns 1 (measured:
returning 1 without moving PC runs the instruction again forever, for implemented and
unimplemented registers alike). Any other register returns 0 and Unicorn executes it natively.

The hooks run on the vCPU thread in the middle of a translation block, so they never stop the
engine: state changes that need attention (an EOI that lets a pending interrupt through, an SGI
to another vCPU) reach the scheduler through the vGIC's kick, which ends the running slice at
the next block start (preempt.py). A bug in a model ends the VM with an ``InternalError`` the
same way (``Vcpu.fail_soon``).
"""

from __future__ import annotations

import ctypes
import functools
import struct
from enum import Enum
from typing import Protocol

from unicorn import arm64_const as a64

from .preempt import map_native_code
from .regs import SYSREG_HOOK, RegisterFile, add_sysreg_hook
from .vcpu import Vcpu
from .vgic_cpuif import ICC_REGISTERS
from .vtimer import VirtualTimer

_CP_KEY = 20
"""Bytes of ``uc_arm64_cp_reg`` holding crn, crm, op0, op1, op2 (five u32)."""
_CP_VAL = 24
"""Offset of its u64 ``val`` (the value an MSR writes)."""
_SKIP, _NATIVE = 1, 0
_X86_64_FILTER = bytes.fromhex(
    "554889e58b024189c04183e0fd4183f80c7506488b015dffe083f8047506837a040674ef31c05dc3")
"""The hooks' native pre-filter, so that the guest's many DAIF/ELR/SPSR accesses never enter
Python (~11 per doorbell round trip, each a GIL-taking ctypes callback). It is this C function,
compiled like preempt.py's stub (no relocations)::

    struct filt { u32 (*python_hook)(void *, u32, const u32 *, void *); };
    u32 hook(void *uc, u32 reg, const u32 *cp, struct filt *f) {
        u32 crn = cp[0];
        if (crn == 12 || crn == 14 || (crn == 4 && cp[1] == 6))
            return f->python_hook(uc, reg, cp, f);
        return 0;  /* not ours: Unicorn executes it natively */
    }
"""


class Timer(Enum):
    """The virtual timer registers the worker emulates."""

    CNTV_TVAL_EL0 = (3, 3, 14, 3, 0)
    CNTV_CTL_EL0 = (3, 3, 14, 3, 1)
    CNTV_CVAL_EL0 = (3, 3, 14, 3, 2)


def _key(op0: int, op1: int, crn: int, crm: int, op2: int) -> bytes:
    return struct.pack("<5I", crn, crm, op0, op1, op2)


TRAPPED: dict[bytes, str | Timer] = {
    **{_key(*reg.encoding): reg.name for reg in ICC_REGISTERS},
    **{_key(*timer.value): timer for timer in Timer},
}
"""Encoding (as the hook's cp_reg bytes) -> ICC register name or timer register."""


class SysregHost(Protocol):
    """What the traps need from the VM's interrupt wiring (vCPU thread)."""

    def icc_read(self, vcpu: int, name: str) -> int:
        """MRS of ICC register ``name`` on ``vcpu``."""

    def icc_write(self, vcpu: int, name: str, value: int) -> None:
        """MSR of ``value`` to ICC register ``name`` on ``vcpu``."""

    def timer(self, vcpu: int) -> VirtualTimer:
        """The virtual timer of ``vcpu``."""


def read_timer(timer: VirtualTimer, reg: Timer) -> int:
    """MRS of a CNTV register."""
    match reg:
        case Timer.CNTV_CTL_EL0:
            return timer.read_ctl()
        case Timer.CNTV_CVAL_EL0:
            return timer.read_cval()
        case Timer.CNTV_TVAL_EL0:
            return timer.read_tval()


def write_timer(timer: VirtualTimer, reg: Timer, value: int) -> None:
    """MSR to a CNTV register."""
    match reg:
        case Timer.CNTV_CTL_EL0:
            timer.write_ctl(value)
        case Timer.CNTV_CVAL_EL0:
            timer.write_cval(value)
        case Timer.CNTV_TVAL_EL0:
            timer.write_tval(value)


def install_sysreg_traps(vcpu: Vcpu, host: SysregHost) -> None:
    """Hooks MRS and MSR on ``vcpu`` so that ICC_* and CNTV_* reach ``host``."""
    index, regs, trapped = vcpu.index, vcpu.regs, TRAPPED
    string_at, u64_at = ctypes.string_at, ctypes.c_uint64.from_address

    def on_mrs(handle: int, reg: int, cp: int, user_data: int) -> int:
        target = trapped.get(string_at(cp, _CP_KEY))
        if target is None:
            return _NATIVE
        try:
            if isinstance(target, str):
                value = host.icc_read(index, target)
            else:
                value = read_timer(host.timer(index), target)
            regs.skip_insn(reg, value)
        except BaseException as exc:  # a raw ctypes callback must not leak it: fail the VM
            _fail(vcpu, regs, exc)
        return _SKIP

    def on_msr(handle: int, reg: int, cp: int, user_data: int) -> int:
        target = trapped.get(string_at(cp, _CP_KEY))
        if target is None:
            return _NATIVE
        try:
            value = u64_at(cp + _CP_VAL).value
            if isinstance(target, str):
                host.icc_write(index, target, value)
            else:
                write_timer(host.timer(index), target, value)
            regs.skip_insn()
        except BaseException as exc:  # a raw ctypes callback must not leak it: fail the VM
            _fail(vcpu, regs, exc)
        return _SKIP

    for insn, fn in ((a64.UC_ARM64_INS_MRS, on_mrs), (a64.UC_ARM64_INS_MSR, on_msr)):
        callback = SYSREG_HOOK(fn)
        target = _Filter(ctypes.cast(callback, ctypes.c_void_p).value)
        vcpu.keep_alive((callback, target))
        add_sysreg_hook(vcpu.uc, _filter_address(), insn, ctypes.addressof(target))


class _Filter(ctypes.Structure):
    _fields_ = (("python_hook", ctypes.c_void_p),)


def _filter_candidate(key: bytes) -> bool:
    """The native filter's test: CRn 12 (ICC_*), CRn 14 (CNT*), or CRn 4 CRm 6 (ICC_PMR_EL1)."""
    crn, crm = struct.unpack_from("<2I", key)
    return crn in (12, 14) or (crn, crm) == (4, 6)


@functools.cache
def _filter_address() -> int:
    """Builds the native MRS/MSR pre-filter once per process; returns its address."""
    missed = [name for key, name in TRAPPED.items() if not _filter_candidate(key)]
    if missed:
        raise RuntimeError(f"native sysreg filter would skip trapped registers {missed}")
    return map_native_code(_X86_64_FILTER)


def _fail(vcpu: Vcpu, regs: RegisterFile, exc: BaseException) -> None:
    vcpu.fail_soon(exc)
    regs.skip_insn()  # never re-execute the access while the slice winds down

