"""The vCPU's EL2 trap: decodes HVC/SMC in both Gunyah conventions and answers or forwards them.

Unicorn reports every synchronous exception to UC_HOOK_INTR and never vectors into the guest. HVC
(intno 11) and SMC (13) arrive with PC already past the instruction and no syndrome, so the
immediate is read back from the instruction word at PC-4:

- ``HVC #0x6000+N`` (native): call N of the hypercall table, arguments from X0.
- ``HVC #0`` or ``SMC #0`` (SMCCC): X0 = 0xC6008000+N is call N with arguments from X1; CALL_UID,
  REVISION, CALL_COUNT (-1), SMCCC_VERSION (1.3), SMCCC_ARCH_FEATURES (-1) and PSCI are answered
  here; any other function ID returns -1 (SMCCC_UNKNOWN_FUNCTION).
- Any other immediate: X0 = -1, other registers untouched.

Table calls: a gap or a ``Handler.NONE`` row returns ERROR_UNIMPLEMENTED (-1); a non-zero
reserved-must-be-zero argument of an implemented call returns ERROR_ARGUMENT_INVALID.
``Handler.LOCAL`` rows (hypervisor_identify, scheduler_yield) are answered in the hook.
``Handler.EL2`` rows end the slice with ``Forward``: the VM sends them to the coordinator and writes
the reply when it arrives; the vCPU resumes after the HVC (no replay). Buffers: a BUF_IN of at most
``MAX_BUFFER`` bytes is read from guest memory and shipped (a larger size ships nothing, and EL2
answers ERROR_ARGUMENT_SIZE); a BUF_OUT is checked writable before forwarding, because EL2 consumes
the message when it answers. Either buffer must translate (guest MMU) to RAM or shared memory,
never to a device, or the call returns ERROR_ADDR_INVALID without reaching EL2.

Results are written in one batch: all of X0..X7 on the native path (EL2 zeroes the registers it
does not return), X0..X3 (or more for calls with more outputs) on the SMCCC path, where SMCCC 1.1+
callers rely on X4..X17 being preserved. Other exceptions end the VM as guest faults.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

from unicorn import UC_PROT_READ, UC_PROT_WRITE

from gunyah_net.abi import hypercalls, smccc
from gunyah_net.abi.errors import Error
from gunyah_net.abi.hypercalls import Arg, ArgKind, Handler, HypercallSpec
from gunyah_net.abi.identify import hyp_api_info
from gunyah_net.abi.smccc import (HYPERCALL_NATIVE_BASE, HYPERCALL_NATIVE_LIMIT,
                                  SMCCC_UNKNOWN_FUNCTION, hypercall_index_from_smccc)

from . import psci
from .exits import Forward, GuestFault, HvcRequest, InternalError, Yield
from .psci import PsciHost, is_psci, psci_call
from .regs import INTR_HOOK, PC, add_intr_hook
from .vcpu import Vcpu


class Excp(IntEnum):
    """QEMU's AArch64 exception numbers as UC_HOOK_INTR reports them."""

    UDEF = 1
    SVC = 2
    PREFETCH_ABORT = 3
    DATA_ABORT = 4
    BKPT = 7
    HVC = 11
    SMC = 13
    UNALIGNED = 22


NATIVE_RESULTS = 8
SMCCC_RESULTS = 4
_HVC, _SMC = int(Excp.HVC), int(Excp.SMC)
_UNIMPLEMENTED = (int(Error.UNIMPLEMENTED),)
_ARGUMENT_INVALID = (int(Error.ARGUMENT_INVALID),)
_OK = (int(Error.OK),)
MAX_BUFFER = 1024
"""Largest guest buffer a forwarded call carries: the largest msgqueue message. A BUF_IN call
with a larger size ships no bytes (EL2 rejects the size); a BUF_OUT buffer is checked and
written up to this many bytes."""
PAGE = 4096
_ADDR_INVALID = (int(Error.ADDR_INVALID),)

LocalCall = Callable[[Vcpu], tuple[int, ...]]


class TrapHost(PsciHost, Protocol):
    """What the trap needs from its VM (vCPU thread only)."""

    def others_runnable(self, vcpu: Vcpu) -> bool:
        """True if another vCPU could use the rest of ``vcpu``'s slice."""

    def guest_memory(self, ipa: int, length: int, prot: int) -> bool:
        """True if IPA [ipa, ipa + length) is guest memory (not a device) whose stage-2 rights
        allow an access of Unicorn protection ``prot``."""


@dataclass(frozen=True)
class _Plan:
    """A table row prepared for dispatch: reserved-argument positions and the local handler."""

    spec: HypercallSpec
    reserved: tuple[int, ...]
    local: LocalCall | None


class HypercallTrap:
    """Decodes and answers the traps of every vCPU of one VM."""

    def __init__(self, host: TrapHost, api_flags0: int = 0,
                 lookup: Callable[[int], HypercallSpec | None] = hypercalls.lookup) -> None:
        self._host = host
        self._identify = (hyp_api_info(), api_flags0, 0, 0, 0, 0, 0, 0)
        local = {"hypervisor_identify": self._hypervisor_identify,
                 "scheduler_yield": self._scheduler_yield}
        self._plans: dict[int, _Plan] = {}
        for number in range(HYPERCALL_NATIVE_LIMIT - HYPERCALL_NATIVE_BASE + 1):
            spec = lookup(number)
            if spec is not None and spec.handler is not Handler.NONE:
                reserved = tuple(i for i, a in enumerate(spec.inputs) if a.kind is ArgKind.RESERVED)
                self._plans[number] = _Plan(spec, reserved, local.get(spec.name))

    def install(self, vcpu: Vcpu) -> None:
        """Registers this trap as ``vcpu``'s raw UC_HOOK_INTR callback."""
        on_call, on_exception = self._on_call, self._on_exception

        def on_intr(handle: int, intno: int, user_data: int) -> None:
            try:
                if intno == _HVC or intno == _SMC:
                    on_call(vcpu, intno)
                else:
                    on_exception(vcpu, intno)
            except BaseException as exc:  # a raw ctypes callback must not leak it: crash the VM
                vcpu.request_exit(InternalError(exc))

        callback = INTR_HOOK(on_intr)
        vcpu.keep_alive(callback)
        add_intr_hook(vcpu.uc, callback)

    def _on_call(self, vcpu: Vcpu, intno: int) -> None:
        regs = vcpu.regs
        frame = regs.read_frame()
        insn = regs.read_insn(frame[8] - 4)
        imm = (insn >> 5) & 0xFFFF if insn is not None else -1
        if intno == _HVC and HYPERCALL_NATIVE_BASE <= imm <= HYPERCALL_NATIVE_LIMIT:
            results = self._hypercall(vcpu, imm - HYPERCALL_NATIVE_BASE, frame, 0, NATIVE_RESULTS)
            count = NATIVE_RESULTS
        elif imm == 0:
            results, count = self._smccc(vcpu, frame)
        else:
            results, count = (SMCCC_UNKNOWN_FUNCTION,), 1
        if results is not None:
            regs.write_results(results, count)

    def _hypercall(self, vcpu: Vcpu, number: int, frame, first: int,
                   result_count: int) -> tuple[int, ...] | None:
        """Runs call ``number`` with inputs from X<first>.. ; None if the answer comes later."""
        plan = self._plans.get(number)
        if plan is None:
            return _UNIMPLEMENTED
        for pos in plan.reserved:
            if first + pos < 8 and frame[first + pos]:
                return _ARGUMENT_INVALID
        if plan.local is not None:
            return plan.local(vcpu)
        if plan.spec.handler is Handler.EL2:
            return self._forward(vcpu, plan.spec, frame, first, result_count)
        return _UNIMPLEMENTED

    def _smccc(self, vcpu: Vcpu, frame) -> tuple[tuple[int, ...] | None, int]:
        """Answers an SMCCC call; returns (results or None, how many of X0.. to write)."""
        fid = frame[0] & 0xFFFF_FFFF
        number = hypercall_index_from_smccc(fid)
        if number is not None:
            plan = self._plans.get(number)
            count = max(SMCCC_RESULTS, len(plan.spec.outputs) if plan is not None else 1)
            return self._hypercall(vcpu, number, frame, 1, count), count
        return self._smccc_service(vcpu, fid, frame), SMCCC_RESULTS

    def _smccc_service(self, vcpu: Vcpu, fid: int, frame) -> tuple[int, ...] | None:
        """Answers SMCCC arch, standard (PSCI) and vendor-hyp service calls; -1 otherwise."""
        match fid:
            case _ if is_psci(fid):
                x0 = psci_call(self._host, vcpu, fid, frame[1], frame[2], frame[3])
                return None if x0 is None else (x0,)
            case smccc.CALL_UID:
                return smccc.GUNYAH_UID
            case smccc.REVISION:
                return (hyp_api_info(),)
            case smccc.SMCCC_VERSION:
                return (smccc.SMCCC_VERSION_1_3,)
            case _:  # CALL_COUNT (deprecated), SMCCC_ARCH_FEATURES and everything unknown
                return (SMCCC_UNKNOWN_FUNCTION,)

    def _hypervisor_identify(self, vcpu: Vcpu) -> tuple[int, ...]:
        return self._identify

    def _scheduler_yield(self, vcpu: Vcpu) -> tuple[int, ...]:
        if self._host.others_runnable(vcpu):
            vcpu.request_exit(Yield())
        return _OK

    def _forward(self, vcpu: Vcpu, spec: HypercallSpec, frame, first: int,
                 result_count: int) -> tuple[int, ...] | None:
        """Ends the slice with a ``Forward`` for EL2; returns an error if a buffer is bad."""
        args = tuple(frame[first + i] if first + i < 8 else 0 for i in range(len(spec.inputs)))
        data, out = b"", None
        for i, arg in enumerate(spec.inputs):
            match arg.kind:
                case ArgKind.BUF_IN:
                    size = _size_of(spec, args, arg)
                    if size > MAX_BUFFER:
                        continue  # ship nothing: EL2 answers ARGUMENT_SIZE
                    read = (vcpu.regs.read_virt(args[i], size)
                            if self._guest_buffer(vcpu, args[i], size, UC_PROT_READ) else None)
                    if read is None:
                        return _ADDR_INVALID
                    data = read
                case ArgKind.BUF_OUT:
                    size = min(_size_of(spec, args, arg), MAX_BUFFER)
                    if not self._guest_buffer(vcpu, args[i], size, UC_PROT_WRITE):
                        return _ADDR_INVALID  # checked first: EL2 dequeues before it answers
                    out = (args[i], size)
        request = HvcRequest(vcpu.index, spec.number, args, data, result_count, out)
        vcpu.request_exit(Forward(request))
        return None

    def _guest_buffer(self, vcpu: Vcpu, va: int, size: int, prot: int) -> bool:
        """True if every byte of [va, va + size) maps (guest MMU) to guest memory that stage 2
        lets the guest access with ``prot``."""
        if va + size > 1 << 64:
            return False
        end = va + size
        while va < end:
            chunk = min(end, (va | (PAGE - 1)) + 1) - va
            ipa = vcpu.regs.translate(va, prot)
            if ipa is None or not self._host.guest_memory(ipa, chunk, prot):
                return False
            va += chunk
        return True

    def _on_exception(self, vcpu: Vcpu, intno: int) -> None:
        pc = vcpu.uc.reg_read(PC)
        match intno:
            case Excp.UDEF:
                insn = vcpu.regs.read_insn(pc)
                what = "undefined instruction" + (f" {insn:#010x}" if insn is not None else "")
            case Excp.SVC:
                pc -= 4
                what = (f"SVC {_immediate(vcpu, pc)} (exception entry to the guest's vectors is "
                        "not emulated)")
            case Excp.BKPT:
                what = f"BRK {_immediate(vcpu, pc)}"
            case Excp.PREFETCH_ABORT:
                what = "prefetch abort"
            case Excp.DATA_ABORT:
                what = "data abort"
            case Excp.UNALIGNED:
                what = "alignment fault"
            case _:
                what = f"unexpected exception {intno}"
        vcpu.request_exit(GuestFault(f"{what} on vcpu {vcpu.index}", pc))


def _size_of(spec: HypercallSpec, args: tuple[int, ...], buffer: Arg) -> int:
    """The value of the size argument that goes with ``buffer`` (0 if the row names none)."""
    for i, arg in enumerate(spec.inputs):
        if arg.name == buffer.size_arg:
            return args[i]
    return 0


def _immediate(vcpu: Vcpu, pc: int) -> str:
    insn = vcpu.regs.read_insn(pc)
    return "#?" if insn is None else f"#{(insn >> 5) & 0xFFFF:#x}"
