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


_API_CALL_PREFIXES: dict[ApiFlags0, tuple[str, ...]] = {
    ApiFlags0.PARTITION_CSPACE: ("partition_create_", "cspace_"),
    ApiFlags0.DOORBELL: ("doorbell_",),
    ApiFlags0.MSGQUEUE: ("msgqueue_",),
    ApiFlags0.VIC: ("vic_", "hwirq_"),
    ApiFlags0.VPM: ("vpm_group_",),
    ApiFlags0.VCPU: ("vcpu_configure", "vcpu_poweron", "vcpu_poweroff", "vcpu_kill",
                     "vcpu_set_", "vcpu_register_write"),
    ApiFlags0.MEMEXTENT: ("memextent_", "addrspace_"),
    ApiFlags0.TRACE_CTRL: ("trace_",),
    ApiFlags0.WATCHDOG: ("watchdog_",),
    ApiFlags0.PRNG: ("prng_",),
    ApiFlags0.VCPU_RUN: ("vcpu_run", "vcpu_bind_virq", "vcpu_unbind_virq"),
}


def implemented_features() -> ApiFlags0:
    """Returns the api_flags0 bits whose every hypercall is implemented in the table.

    An API with no call answered, or only some, is not advertised: guests such as Linux probe
    these bits before using an API, and a half-present API must not be claimed.
    """
    from .hypercalls import HYPERCALLS, Handler

    present = ApiFlags0(0)
    for feature, prefixes in _API_CALL_PREFIXES.items():
        calls = [s for s in HYPERCALLS.values() if s.name.startswith(prefixes)]
        if calls and all(s.handler is not Handler.NONE for s in calls):
            present |= feature
    return present
