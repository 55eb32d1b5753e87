"""Capability rights bitmaps per object type, as guests pass them in ``rights_mask``.

Values are from the public Gunyah API (gunyah-abi.md section 2, "Rights bitmaps"). A cap's rights
word is 32 bits: the object-specific rights in the low bits and the generic rights in the high
bits; the only generic right is ``ACTIVATE`` (0x80000000), which every flag class repeats so that
``DoorbellRights.ACTIVATE | DoorbellRights.SEND`` is one value of one type. CSpace ``REVOKE``
(0x10) is in HYP's code (``cspace_twolevel/cspace.tc``) but not in the API doc's table.
"""

from __future__ import annotations

from enum import IntFlag

GENERIC_ACTIVATE = 0x8000_0000
"""The generic right to activate (and configure) an object: object_activate, X_configure."""

RIGHTS_WORD_MASK = 0xFFFF_FFFF
"""cap_rights_t is 32 bits; upper register bits of a rights argument are ignored."""


class PartitionRights(IntFlag):
    """Rights on a partition cap."""

    OBJECT_CREATE = 0x1
    DONATE = 0x2
    ACTIVATE = GENERIC_ACTIVATE


class CspaceRights(IntFlag):
    """Rights on a cspace cap."""

    CAP_CREATE = 0x1
    CAP_DELETE = 0x2
    CAP_COPY = 0x4
    ATTACH = 0x8
    REVOKE = 0x10
    ACTIVATE = GENERIC_ACTIVATE


class AddrspaceRights(IntFlag):
    """Rights on an address-space cap."""

    ATTACH = 0x1
    MAP = 0x2
    LOOKUP = 0x4
    ACTIVATE = GENERIC_ACTIVATE


class MemextentRights(IntFlag):
    """Rights on a memory-extent cap."""

    MAP = 0x1
    DERIVE = 0x2
    ATTACH = 0x4
    LOOKUP = 0x8
    DONATE = 0x10
    ACTIVATE = GENERIC_ACTIVATE


class ThreadRights(IntFlag):
    """Rights on a thread (vCPU) cap."""

    POWER_ON_OFF = 0x1
    SET_AFFINITY = 0x2
    SET_PRIORITY = 0x4
    SET_TIMESLICE = 0x8
    YIELD_TO = 0x10
    BIND_VIRQ = 0x20
    ACCESS_STATE = 0x40
    LIFECYCLE = 0x80
    WRITE_CONTEXT = 0x100
    DISABLE = 0x200
    ACTIVATE = GENERIC_ACTIVATE


class DoorbellRights(IntFlag):
    """Rights on a doorbell cap. Receive also covers doorbell_reset and doorbell_mask (HYP code)."""

    SEND = 0x1
    RECEIVE = 0x2
    BIND = 0x4
    ACTIVATE = GENERIC_ACTIVATE


class MsgqueueRights(IntFlag):
    """Rights on a message-queue cap. Receive also covers msgqueue_flush (HYP code)."""

    SEND = 0x1
    RECEIVE = 0x2
    BIND_SEND = 0x4
    BIND_RECEIVE = 0x8
    ACTIVATE = GENERIC_ACTIVATE


class VicRights(IntFlag):
    """Rights on a virtual interrupt controller cap."""

    BIND_SOURCE = 0x1
    ATTACH_VCPU = 0x2
    ACTIVATE = GENERIC_ACTIVATE


class HwirqRights(IntFlag):
    """Rights on a hardware IRQ cap."""

    BIND_VIC = 0x1
    ACTIVATE = GENERIC_ACTIVATE


class VpmGroupRights(IntFlag):
    """Rights on a virtual power-management group cap."""

    ATTACH_VCPU = 0x1
    BIND_VIRQ = 0x2
    QUERY = 0x4
    ACTIVATE = GENERIC_ACTIVATE


class WatchdogRights(IntFlag):
    """Rights on a watchdog cap."""

    ATTACH_VCPU = 0x1
    BIND_VIRQ = 0x2
    ACTIVATE = GENERIC_ACTIVATE


class VirtioMmioRights(IntFlag):
    """Rights on a virtio-mmio cap."""

    BIND_BACKEND_VIRQ = 0x1
    BIND_FRONTEND_VIRQ = 0x2
    ASSERT_VIRQ = 0x4
    CONFIG = 0x8
    ACTIVATE = GENERIC_ACTIVATE


class VitsRights(IntFlag):
    """Rights on a virtual ITS (platform MSI source) cap."""

    BIND_VIC = 0x1
    ACTIVATE = GENERIC_ACTIVATE


def all_rights(rights_type: type[IntFlag]) -> int:
    """Returns every right of ``rights_type`` (a master cap's rights word)."""
    value = 0
    for member in rights_type:
        value |= int(member)
    return value
