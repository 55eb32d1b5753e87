"""Gunyah's global error enumeration, as guests see it in X0.

Values are from the public Gunyah API (gunyah-abi.md section 1.2). A hypercall writes its error
as a 64-bit sign-extended value, so ``UNIMPLEMENTED`` (-1) reads as all ones.
"""

from __future__ import annotations

from enum import IntEnum


class Error(IntEnum):
    """A Gunyah hypercall error code (X0)."""

    OK = 0
    UNIMPLEMENTED = -1
    RETRY = -2
    ARGUMENT_INVALID = 1
    ARGUMENT_SIZE = 2
    ARGUMENT_ALIGNMENT = 3
    NOMEM = 10
    NORESOURCES = 11
    ADDR_OVERFLOW = 20
    ADDR_UNDERFLOW = 21
    ADDR_INVALID = 22
    DENIED = 30
    BUSY = 31
    IDLE = 32
    OBJECT_STATE = 33
    OBJECT_CONFIG = 34
    OBJECT_CONFIGURED = 35
    FAILURE = 36
    VIRQ_BOUND = 40
    VIRQ_NOT_BOUND = 41
    CSPACE_CAP_NULL = 50
    CSPACE_CAP_REVOKED = 51
    CSPACE_WRONG_OBJECT_TYPE = 52
    CSPACE_INSUFFICIENT_RIGHTS = 53
    CSPACE_FULL = 54
    MSGQUEUE_EMPTY = 60
    MSGQUEUE_FULL = 61
    MEMDB_NOT_OWNER = 111
    MEMEXTENT_MAPPINGS_FULL = 120
    MEMEXTENT_TYPE = 121
    EXISTING_MAPPING = 200


class HypError(Exception):
    """A guest-visible hypercall failure carrying the exact Gunyah error code.

    Raised by the EL2 object model; the one hypercall dispatcher converts it into X0.
    """

    def __init__(self, code: Error, detail: str = "") -> None:
        super().__init__(f"{code.name}" + (f": {detail}" if detail else ""))
        self.code = code
        self.detail = detail


def to_x0(value: int) -> int:
    """Returns ``value`` as the unsigned 64-bit register image (sign-extended for negatives)."""
    return value & 0xFFFF_FFFF_FFFF_FFFF
