"""Why a vCPU left ``emu_start``: the closed vocabulary between the traps and the scheduler.

A hook that must end the slice stores one of these on the vCPU and calls ``emu_stop``; the
scheduler ``match``es on what ``Vcpu.run`` returns. ``Preempted`` and ``Wfi`` come from the run
loop itself (a kick, or a WFI instruction), everything else from a trap.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Preempted:
    """The slice ended because someone kicked the vCPU (time slice over, or an event)."""


@dataclass(frozen=True)
class Wfi:
    """The guest executed WFI; PC is already past it."""


@dataclass(frozen=True)
class Yield:
    """The guest called scheduler_yield; its result is already written."""


@dataclass(frozen=True)
class CpuOff:
    """PSCI CPU_OFF: this vCPU powers down."""


@dataclass(frozen=True)
class SystemOff:
    """PSCI SYSTEM_OFF: the VM powers down (RM exit_type PLATFORM_OFF)."""


@dataclass(frozen=True)
class SystemReset:
    """PSCI SYSTEM_RESET: the VM resets (RM exit_type PLATFORM_RESET)."""


@dataclass(frozen=True)
class GuestFault:
    """The guest did something the platform cannot continue from; ``what`` says what."""

    what: str
    pc: int


@dataclass(frozen=True)
class HvcRequest:
    """A hypercall that EL2 (the coordinator) must execute for vCPU ``vcpu``."""

    vcpu: int
    number: int
    args: tuple[int, ...]
    data: bytes = b""
    result_count: int = 8
    """How many result registers (X0..) the reply fills; the rest of them are zeroed."""
    out_buffer: tuple[int, int] | None = None
    """(guest VA, max bytes) where returned data is written, for BUF_OUT calls."""


@dataclass(frozen=True)
class Forward:
    """The hypercall in ``request`` waits for EL2; the vCPU resumes after the HVC once answered."""

    request: HvcRequest


@dataclass(frozen=True)
class InternalError:
    """A hook raised: a bug in gunyah-net, never swallowed (the worker crashes with it)."""

    error: BaseException = field(compare=False)


VcpuExit = (Preempted | Wfi | Yield | CpuOff | SystemOff | SystemReset | GuestFault | Forward
            | InternalError)
