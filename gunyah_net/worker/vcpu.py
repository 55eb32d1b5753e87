"""One virtual CPU: a Unicorn AArch64 engine whose guest runs at EL1 while Python plays EL2.

Each vCPU owns one ``Uc`` (Cortex-A72, 4 KiB pages, a small TCG buffer) that maps the VM's shared
RAM and shared-memory regions with ``mem_map_ptr`` (given here, or later by the VM's stage 2,
``stage2.py``) and the VM's MMIO devices (PL011, GICD, GICRs) with ``mmio_map``. Its EL3/EL2
controls are set once so that EL1 is non-secure with EL2 present: SCR_EL3 = NS|HCE|RW (0x501)
makes HVC trap (intno 11) and makes MPIDR_EL1 reads return VMPIDR_EL2, which carries Aff0 =
vCPU index (measured: with NS=0 MPIDR_EL1 always reads 0x80000000); HCR_EL2.RW keeps EL1
AArch64 and CNTHCTL_EL2 lets EL1 read the physical counter. That state is saved once as the
pristine context that power-on and reset restore.

``run`` executes one slice from ``pc`` until a kick (``preempt`` armed by another thread), a WFI, a
trap that called ``request_exit``, or an error, and says which with a ``VcpuExit``. An access to
an unmapped page, or one its stage-2 rights forbid, is a ``GuestFault`` naming the access, the
address and PC (on the faulting instruction). Nothing ever
calls ``emu_stop`` on a vCPU from another thread: that can replay a half-executed load or store
(see preempt.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from unicorn import (UC_ARCH_ARM64, UC_ERR_FETCH_PROT, UC_ERR_FETCH_UNMAPPED, UC_ERR_READ_PROT,
                     UC_ERR_READ_UNMAPPED, UC_ERR_WRITE_PROT, UC_ERR_WRITE_UNMAPPED, UC_HOOK_INSN,
                     UC_HOOK_MEM_FETCH_PROT, UC_HOOK_MEM_FETCH_UNMAPPED, UC_HOOK_MEM_READ_PROT,
                     UC_HOOK_MEM_READ_UNMAPPED, UC_HOOK_MEM_WRITE_PROT, UC_HOOK_MEM_WRITE_UNMAPPED,
                     UC_MEM_FETCH_PROT, UC_MEM_FETCH_UNMAPPED, UC_MEM_READ_PROT,
                     UC_MEM_WRITE_PROT, UC_MEM_WRITE_UNMAPPED, UC_MODE_ARM, UC_PROT_ALL, Uc,
                     UcError)
from unicorn import arm64_const as a64
from unicorn.unicorn_const import UC_CTL_IO_WRITE, UC_CTL_TLB_FLUSH

from gunyah_net.abi.platform import MMIO_WINDOW_BASE, MMIO_WINDOW_SIZE

from .exits import GuestFault, InternalError, Preempted, VcpuExit, Wfi
from .preempt import PreemptPoint
from .ram import GuestRam
from .regs import PC, X_REGS, RegisterFile

UNTIL = 0xFFFF_FFFF_FFFF_FFFF
"""emu_start's end address: never reached, AArch64 PCs are 4-byte aligned."""
WFI_INSN = 0xD503207F
TCG_BUFFER_SIZE = 32 << 20
PAGE_SIZE = 4096

# (crn, crm, op0, op1, op2) of system registers written through UC_ARM64_REG_CP_REG.
SCR_EL3 = (1, 1, 3, 6, 0)
HCR_EL2 = (1, 1, 3, 4, 0)
CNTHCTL_EL2 = (14, 1, 3, 4, 0)
VMPIDR_EL2 = (0, 0, 3, 4, 5)
SCR_NS_HCE_RW = 0x501
HCR_RW = 1 << 31
CNTHCTL_EL1PCTEN_EL1PCEN = 0x3
MPIDR_RES1 = 1 << 31

SysregHook = Callable[[Uc, int, object, object], int]
_MEMORY_FAULTS = frozenset({UC_ERR_READ_UNMAPPED, UC_ERR_WRITE_UNMAPPED, UC_ERR_FETCH_UNMAPPED,
                            UC_ERR_READ_PROT, UC_ERR_WRITE_PROT, UC_ERR_FETCH_PROT})
_PROT_KINDS = {UC_MEM_READ_PROT: "read of", UC_MEM_WRITE_PROT: "write to",
               UC_MEM_FETCH_PROT: "instruction fetch from"}


class VcpuState(Enum):
    """Where a vCPU is in its life, as the scheduler sees it."""

    OFF = "off"
    RUNNABLE = "runnable"
    WFI = "wfi"
    """Parked in WFI until a wake event."""
    BLOCKED = "blocked"
    """Waiting for EL2 to answer a forwarded hypercall."""


@dataclass(frozen=True)
class MmioDevice:
    """A device model mapped at IPA [base, base + size) with synchronous accessors."""

    base: int
    size: int
    read: Callable[[int, int], int]
    """(offset, size) -> value."""
    write: Callable[[int, int, int], None]
    """(offset, size, value)."""


class HostMemory(Protocol):
    """Guest memory backed by a host mapping: IPA [base, base + size) at host ``host_address``."""

    base: int
    size: int
    host_address: int


class Vcpu:
    """One vCPU's engine, registers and scheduling state."""

    def __init__(self, index: int, ram: GuestRam | None, devices: tuple[MmioDevice, ...] = (),
                 tcg_buffer_size: int = TCG_BUFFER_SIZE,
                 memory: tuple[HostMemory, ...] = ()) -> None:
        self.index = index
        self.uc = _new_engine(tcg_buffer_size)
        regions = memory if ram is None else (ram, *memory)
        for region in regions:  # zero-copy: every vCPU maps the same host pages
            self.uc.mem_map_ptr(region.base, region.size, UC_PROT_ALL, region.host_address)
        for dev in devices:
            self.uc.mmio_map(dev.base, dev.size, self._mmio_read(dev), None,
                             self._mmio_write(dev), None)
        self.uc.hook_add(UC_HOOK_MEM_READ_UNMAPPED | UC_HOOK_MEM_WRITE_UNMAPPED
                         | UC_HOOK_MEM_FETCH_UNMAPPED | UC_HOOK_MEM_READ_PROT
                         | UC_HOOK_MEM_WRITE_PROT | UC_HOOK_MEM_FETCH_PROT, self._on_unmapped)
        self.regs = RegisterFile(self.uc)
        self.preempt = PreemptPoint(self.uc)
        """Stops this vCPU cleanly at its next block start when armed (see preempt.py)."""
        self._write_el2_controls()
        self._pristine = self.uc.context_save()
        self.state = VcpuState.OFF
        self.pc = 0
        self._exit: VcpuExit | None = None
        self._unmapped: tuple[int, int, int] | None = None
        self._keep: list[object] = []

    @property
    def mpidr(self) -> int:
        """The MPIDR_EL1 value the guest reads: Aff0 = index."""
        return MPIDR_RES1 | self.index

    def keep_alive(self, obj: object) -> None:
        """Holds a reference for the engine's lifetime (raw ctypes callbacks)."""
        self._keep.append(obj)

    def request_exit(self, why: VcpuExit) -> None:
        """Ends the current slice with ``why``; only from the INTR hook (an exception boundary).

        Anywhere else (MMIO or MRS/MSR hooks) the stop would take effect after a later load or
        store of the same block and replay it; use ``end_slice_soon`` there.
        """
        if self._exit is None:
            self._exit = why
        self.uc.emu_stop()

    def end_slice_soon(self) -> None:
        """Ends the current slice before the next translation block (safe from any hook)."""
        self.preempt.arm()

    def fail_soon(self, error: BaseException) -> None:
        """Ends the slice with ``InternalError(error)`` at the next block (safe from any hook)."""
        if self._exit is None:
            self._exit = InternalError(error)
        self.preempt.arm()

    def hook_sysreg(self, insn: int, callback: SysregHook) -> int:
        """Hooks MRS/MSR/SYS/SYSL (``a64.UC_ARM64_INS_*``): ``callback(uc, reg, cp, None)``.

        Return 1 to skip the instruction. For registers Unicorn does not implement (ICC_*) the
        callback must also set PC += 4, or the instruction re-executes forever.
        """
        return self.uc.hook_add(UC_HOOK_INSN, callback, None, 1, 0, insn)

    def power_on(self, entry: int, context: int) -> None:
        """Resets to the pristine state and makes the vCPU runnable at ``entry`` with X0 = context.

        The vCPU starts at EL1h with DAIF masked and the MMU off.
        """
        self.uc.context_restore(self._pristine)
        self.regs.write({PC: entry, X_REGS[0]: context})
        self._write_el2_controls()  # a CP_REG write also rebuilds the translator's EL flags
        self.uc.ctl(UC_CTL_TLB_FLUSH, UC_CTL_IO_WRITE)
        self.pc = entry
        self._exit = None
        self.state = VcpuState.RUNNABLE

    def power_off(self) -> None:
        """Marks the vCPU off; it runs again only after ``power_on``."""
        self.state = VcpuState.OFF

    def flush_translations(self) -> None:
        """Drops cached translations (after RAM was rewritten behind the engine's back)."""
        self.uc.ctl_flush_tb()
        self.uc.ctl(UC_CTL_TLB_FLUSH, UC_CTL_IO_WRITE)

    def run(self) -> VcpuExit:
        """Runs one slice from ``pc``; returns why it ended and leaves ``pc`` where it stopped."""
        self._exit = None
        self._unmapped = None
        try:
            self.uc.emu_start(self.pc, UNTIL)
        except UcError as exc:
            self.pc = self.uc.reg_read(PC)
            return self._exit or self._memory_fault(exc)
        except Exception as exc:  # a Python MMIO or memory hook raised: a gunyah-net bug
            return InternalError(exc)
        self.pc = self.uc.reg_read(PC)
        if self._exit is not None:
            return self._exit
        if self.regs.read_insn(self.pc - 4) == WFI_INSN:
            return Wfi()
        return Preempted()

    def close(self) -> None:
        """Releases the engine now (``uc_close``); the vCPU must not be used afterwards."""
        self.uc._Uc__finalizer()  # the binding's weakref finalizer calls uc_close exactly once

    def _write_el2_controls(self) -> None:
        cp = a64.UC_ARM64_REG_CP_REG
        self.uc.reg_write(cp, SCR_EL3 + (SCR_NS_HCE_RW,))
        self.uc.reg_write(cp, HCR_EL2 + (HCR_RW,))
        self.uc.reg_write(cp, CNTHCTL_EL2 + (CNTHCTL_EL1PCTEN_EL1PCEN,))
        self.uc.reg_write(cp, VMPIDR_EL2 + (self.mpidr,))

    def _mmio_read(self, dev: MmioDevice) -> Callable[[Uc, int, int, object], int]:
        def read(uc: Uc, offset: int, size: int, user_data: object) -> int:
            try:
                return dev.read(offset, size)
            except BaseException as exc:  # a device-model bug: end the VM with it
                self.request_exit(InternalError(exc))
                return 0
        return read

    def _mmio_write(self, dev: MmioDevice) -> Callable[[Uc, int, int, int, object], None]:
        def write(uc: Uc, offset: int, size: int, value: int, user_data: object) -> None:
            try:
                dev.write(offset, size, value)
            except BaseException as exc:  # a device-model bug: end the VM with it
                self.request_exit(InternalError(exc))
        return write

    def _on_unmapped(self, uc: Uc, access: int, address: int, size: int, value: int,
                     user_data: object) -> bool:
        self._unmapped = (access, address, size)
        return False

    def _memory_fault(self, exc: UcError) -> GuestFault:
        if self._unmapped is None or exc.errno not in _MEMORY_FAULTS:
            return GuestFault(f"emulation error ({exc}) on vcpu {self.index}", self.pc)
        access, address, size = self._unmapped
        if access in _PROT_KINDS:
            return GuestFault(f"{_PROT_KINDS[access]} {address:#x} denied by stage 2 "
                              f"({size} bytes) on vcpu {self.index}", self.pc)
        if access == UC_MEM_FETCH_UNMAPPED:
            return GuestFault(f"instruction fetch from unmapped {address:#x} on vcpu "
                              f"{self.index}", self.pc)
        kind = "write" if access == UC_MEM_WRITE_UNMAPPED else "read"
        if MMIO_WINDOW_BASE <= address < MMIO_WINDOW_BASE + MMIO_WINDOW_SIZE:
            what = f"unhandled MMIO access at {address:#x} ({kind}, {size} bytes)"
        else:
            what = f"unmapped {kind} at {address:#x} ({size} bytes)"
        return GuestFault(f"{what} on vcpu {self.index}", self.pc)


def _new_engine(tcg_buffer_size: int) -> Uc:
    uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
    uc.ctl_set_cpu_model(a64.UC_CPU_ARM64_A72)  # before any mem_map or register access
    uc.ctl_set_page_size(PAGE_SIZE)
    uc.ctl_set_tcg_buffer_size(tcg_buffer_size)
    return uc


def format_dump(index: int, regs: dict[str, int]) -> str:
    """Renders a register dump (``RegisterFile.dump``) as log lines, four registers per line."""
    items = [f"{name:>8}={value:016x}" for name, value in regs.items()]
    lines = [" ".join(items[i:i + 4]) for i in range(0, len(items), 4)]
    return f"vcpu {index} registers:\n  " + "\n  ".join(lines)
