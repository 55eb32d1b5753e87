"""hypervisor_identify results: hyp_api_info and the api_flags words (gunyah-abi.md 1.3)."""

from __future__ import annotations

from enum import IntFlag

API_VERSION = 1
API_INFO_BIG_ENDIAN = 1 << 14
API_INFO_IS_64BIT = 1 << 15
VARIANT_SHIFT = 56
VARIANT_GUNYAH = 0x48
VARIANT_QUALCOMM = 0x51


class ApiFlags0(IntFlag):
    """api_flags0 feature bits: set means the API is present."""

    PARTITION_CSPACE = 1 << 0
    DOORBELL = 1 << 1
    MSGQUEUE = 1 << 2
    VIC = 1 << 3
    VPM = 1 << 4
    VCPU = 1 << 5
    MEMEXTENT = 1 << 6
    TRACE_CTRL = 1 << 7
    WATCHDOG = 1 << 8
    VIRTIO_MMIO = 1 << 9
    PRNG = 1 << 10
    VCPU_RUN = 1 << 11


SCHEDULER_SHIFT = 28
SCHEDULER_FPRR = 1


def hyp_api_info(variant: int = VARIANT_QUALCOMM) -> int:
    """Returns hyp_api_info: API version 1, 64-bit, little-endian, with the given variant byte."""
    return API_VERSION | API_INFO_IS_64BIT | (variant << VARIANT_SHIFT)


def api_flags0(features: ApiFlags0) -> int:
    """Returns api_flags0 for the implemented ``features`` (scheduler variant: trivial, 0)."""
    return int(features)
