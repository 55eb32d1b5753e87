"""PSCI 1.1 for the VM's vCPUs, answered in the worker (SMCCC standard-service calls).

Implemented: PSCI_VERSION, CPU_ON (SMC32 and SMC64), CPU_OFF, AFFINITY_INFO (SMC32 and SMC64,
level 0 only), SYSTEM_OFF, SYSTEM_RESET and PSCI_FEATURES. Everything else (CPU_SUSPEND,
SYSTEM_RESET2, ...) returns NOT_SUPPORTED. A target CPU is named by its MPIDR: Aff0 = vCPU index,
every other affinity field zero. Calls that do not return (CPU_OFF, SYSTEM_OFF, SYSTEM_RESET) end
the caller's slice with the matching ``VcpuExit``.
"""

from __future__ import annotations

from typing import Protocol

from gunyah_net.abi.smccc import (PSCI_IMPLEMENTED, PSCI_VERSION_1_1, SMCCC_VERSION, Psci,
                                  PsciStatus)

from .exits import CpuOff, SystemOff, SystemReset
from .vcpu import Vcpu

SUPPORTED = PSCI_IMPLEMENTED | {SMCCC_VERSION}
"""Function IDs for which PSCI_FEATURES answers SUCCESS (SMCCC_VERSION too, so that guests may use
SMCCC 1.1+)."""

AFFINITY_ON = 0
AFFINITY_OFF = 1
_M32 = 0xFFFF_FFFF


class PsciHost(Protocol):
    """The VM-level operations PSCI needs (all run on the vCPU thread)."""

    def cpu_on(self, target: int, entry: int, context: int) -> PsciStatus:
        """Powers on the vCPU whose MPIDR is ``target`` at ``entry`` with X0 = ``context``."""

    def vcpu_index(self, mpidr: int) -> int | None:
        """Returns the index of the vCPU with MPIDR affinity ``mpidr``, or None."""

    def vcpu_is_on(self, index: int) -> bool:
        """Returns True unless vCPU ``index`` is powered off."""


def is_psci(function_id: int) -> bool:
    """True for IDs in the PSCI ranges 0x84000000-0x8400001F and 0xC4000000-0xC400001F."""
    return function_id & 0xBFFF_FFE0 == 0x8400_0000


def psci_call(host: PsciHost, vcpu: Vcpu, fid: int, x1: int, x2: int, x3: int) -> int | None:
    """Executes PSCI function ``fid`` for ``vcpu``; returns X0, or None if it ends the slice."""
    match fid:
        case Psci.VERSION:
            return PSCI_VERSION_1_1
        case Psci.CPU_ON:
            return host.cpu_on(x1 & _M32, x2 & _M32, x3 & _M32)
        case Psci.CPU_ON64:
            return host.cpu_on(x1, x2, x3)
        case Psci.CPU_OFF:
            vcpu.request_exit(CpuOff())
            return None
        case Psci.AFFINITY_INFO:
            return _affinity_info(host, x1 & _M32, x2 & _M32)
        case Psci.AFFINITY_INFO64:
            return _affinity_info(host, x1, x2)
        case Psci.SYSTEM_OFF:
            vcpu.request_exit(SystemOff())
            return None
        case Psci.SYSTEM_RESET:
            vcpu.request_exit(SystemReset())
            return None
        case Psci.FEATURES:
            return PsciStatus.SUCCESS if (x1 & _M32) in SUPPORTED else PsciStatus.NOT_SUPPORTED
        case _:
            return PsciStatus.NOT_SUPPORTED


def _affinity_info(host: PsciHost, target: int, lowest_level: int) -> int:
    index = host.vcpu_index(target)
    if index is None or lowest_level != 0:
        return PsciStatus.INVALID_PARAMETERS
    return AFFINITY_ON if host.vcpu_is_on(index) else AFFINITY_OFF
