"""Arm SMCCC and PSCI function identifiers that a Gunyah guest may call with ``HVC #0``.

Numbers are from gunyah-abi.md section 1.1 (SMCCC vendor-hypervisor space) and the Arm PSCI 1.1
specification (DEN0022). The Gunyah hypercall class is ``0xC6008000 + N``.
"""

from __future__ import annotations

from enum import IntEnum

SMCCC_UNKNOWN_FUNCTION = -1
"""X0 for an SMCCC function the hypervisor does not implement (SMCCC_UNKNOWN_FUNCTION64)."""

SMCCC_VERSION_1_3 = 0x10003

SMCCC_FAST = 1 << 31
SMCCC_SMC64 = 1 << 30
SMCCC_OWNER_SHIFT = 24
SMCCC_OWNER_MASK = 0x3F
OWNER_VENDOR_HYP = 6
OWNER_STANDARD = 4

HYPERCALL_SMCCC_BASE = 0xC6008000
"""Fast, SMC64, vendor-hyp owner, call class HYPERCALL (bits 15:14 = 0b10)."""

HYPERCALL_NATIVE_BASE = 0x6000
"""Native Gunyah hypercalls are ``HVC #(0x6000 + N)``."""

HYPERCALL_NATIVE_LIMIT = 0x61FF

SMCCC_VERSION = 0x80000000
"""Arm architecture call SMCCC_VERSION; answered with ``SMCCC_VERSION_1_3``."""
SMCCC_ARCH_FEATURES = 0x80000001
"""Arm architecture call SMCCC_ARCH_FEATURES; answered with -1 (no optional features)."""

CALL_UID = 0x8600FF01
REVISION = 0x8600FF03
CALL_COUNT = 0x8600FF00

GUNYAH_UID = (0xCD8FD5C1, 0xDB5F53A4, 0x36CE6592, 0x145F3D67)
"""UUID c1d58fcd-a453-5fdb-9265-ce36673d5f14 as the four words CALL_UID returns in X0..X3."""


class Psci(IntEnum):
    """PSCI function IDs (SMC32 and SMC64 forms)."""

    VERSION = 0x84000000
    CPU_SUSPEND = 0x84000001
    CPU_SUSPEND64 = 0xC4000001
    CPU_OFF = 0x84000002
    CPU_ON = 0x84000003
    CPU_ON64 = 0xC4000003
    AFFINITY_INFO = 0x84000004
    AFFINITY_INFO64 = 0xC4000004
    SYSTEM_OFF = 0x84000008
    SYSTEM_RESET = 0x84000009
    FEATURES = 0x8400000A
    SYSTEM_RESET2 = 0x84000012
    SYSTEM_RESET2_64 = 0xC4000012


PSCI_VERSION_1_1 = 0x10001

PSCI_IMPLEMENTED = frozenset({Psci.VERSION, Psci.CPU_ON, Psci.CPU_ON64, Psci.CPU_OFF,
                              Psci.AFFINITY_INFO, Psci.AFFINITY_INFO64, Psci.SYSTEM_OFF,
                              Psci.SYSTEM_RESET, Psci.FEATURES})
"""The PSCI functions gunyah-net answers (in the worker); every other PSCI ID returns
NOT_SUPPORTED. docs/abi.md lists them from here."""


class PsciStatus(IntEnum):
    """PSCI return codes (written sign-extended to X0)."""

    SUCCESS = 0
    NOT_SUPPORTED = -1
    INVALID_PARAMETERS = -2
    DENIED = -3
    ALREADY_ON = -4
    ON_PENDING = -5
    INTERNAL_FAILURE = -6
    NOT_PRESENT = -7
    DISABLED = -8
    INVALID_ADDRESS = -9


def hypercall_index_from_smccc(function_id: int) -> int | None:
    """Returns the Gunyah call number N for an SMCCC hypercall-class ID, or None."""
    if function_id & 0xFFFF_C000 != HYPERCALL_SMCCC_BASE:
        return None
    return function_id & 0x3FFF
