"""The vGIC's interrupt state table: every INTID's enable/pending/active/priority/trigger and route.

Plain data with no locking: ``VGic`` owns one table and guards it with its lock. SGIs (0..15) and
PPIs (16..31) are banked per vCPU; SPIs (32..1019) are shared and routed by GICD_IROUTER. Pending
state is a software latch (edge, ISPENDR, SGIs, ``pulse``) OR'ed with the input line for
level-sensitive interrupts, so acknowledging a level interrupt whose line is still high leaves it
active and pending. A "ready" set per bank holds the INTIDs that are enabled, pending and not
active, so finding the highest-priority interrupt never scans all 1020 INTIDs.
"""

from __future__ import annotations

from enum import Enum

MAX_VCPUS = 8
SGI_COUNT = 16
PRIVATE_COUNT = 32
SPI_BASE = 32
INTID_LIMIT = 1020
"""One past the last SPI; 1020..1023 are special INTIDs."""
PRIORITY_MASK = 0xF8
"""5 implemented priority bits (VGIC_PRIO_BITS = 5): bits [2:0] read as zero."""

IROUTER_IRM = 1 << 31
IROUTER_MASK = 0xFF_80FF_FFFF
"""Aff0, Aff1, Aff2, IRM and Aff3; every other GICD_IROUTER bit is RES0."""
IROUTER_UPPER_AFF = 0xFF_00FF_FF00
"""Aff1, Aff2 and Aff3: always zero for this VM's vCPUs (vCPU i has MPIDR Aff0 = i)."""


class VGicError(ValueError):
    """A worker-side misuse of the vGIC API: bad vCPU index, INTID, register name or access."""


class Irq:
    """Mutable state of one interrupt: an SPI, or one vCPU's banked copy of an SGI or PPI."""

    __slots__ = ("enabled", "latch", "line", "active", "priority", "edge")

    def __init__(self, edge: bool) -> None:
        self.enabled = False
        self.latch = False
        self.line = False
        self.active = False
        self.priority = 0
        self.edge = edge

    @property
    def pending(self) -> bool:
        """The architectural pending state: latched, or a level-sensitive line held high."""
        return self.latch or (self.line and not self.edge)

    @property
    def ready(self) -> bool:
        """Tells whether the interrupt may be forwarded: enabled, pending and not active."""
        return self.enabled and not self.active and self.pending

    def drive(self, high: bool) -> None:
        """Sets the input line; a rising edge latches pending on an edge-triggered interrupt."""
        if high and not self.line and self.edge:
            self.latch = True
        self.line = high


class BitOp(Enum):
    """The one-bit-per-interrupt register families; values are their GICD/GICR_SGI offsets."""

    GROUP = 0x080
    SET_ENABLE = 0x100
    CLEAR_ENABLE = 0x180
    SET_PENDING = 0x200
    CLEAR_PENDING = 0x280
    SET_ACTIVE = 0x300
    CLEAR_ACTIVE = 0x380


def _bit_of(op: BitOp, irq: Irq) -> bool:
    match op:
        case BitOp.GROUP:
            return True  # IGROUPR is RAO/WI: everything is Group 1.
        case BitOp.SET_ENABLE | BitOp.CLEAR_ENABLE:
            return irq.enabled
        case BitOp.SET_PENDING | BitOp.CLEAR_PENDING:
            return irq.pending
        case BitOp.SET_ACTIVE | BitOp.CLEAR_ACTIVE:
            return irq.active


def _apply(op: BitOp, irq: Irq) -> None:
    match op:
        case BitOp.GROUP:
            pass
        case BitOp.SET_ENABLE:
            irq.enabled = True
        case BitOp.CLEAR_ENABLE:
            irq.enabled = False
        case BitOp.SET_PENDING:
            irq.latch = True
        case BitOp.CLEAR_PENDING:
            irq.latch = False  # A level line that is still high keeps it pending.
        case BitOp.SET_ACTIVE:
            irq.active = True
        case BitOp.CLEAR_ACTIVE:
            irq.active = False


class IrqTable:
    """All interrupt state of one VM, plus the ready sets and the SPI routes."""

    def __init__(self, vcpu_count: int) -> None:
        self.vcpu_count = vcpu_count
        self._shared = [Irq(edge=False) for _ in range(INTID_LIMIT)]
        self._private = [[Irq(edge=i < SGI_COUNT) for i in range(PRIVATE_COUNT)]
                         for _ in range(vcpu_count)]
        self._routes = [0] * INTID_LIMIT
        self.ready_spis: set[int] = set()
        self.ready_private: list[set[int]] = [set() for _ in range(vcpu_count)]

    def irq(self, vcpu: int | None, intid: int) -> Irq:
        """Returns the state of ``intid`` (``vcpu``'s banked copy for INTIDs below 32)."""
        if intid < SPI_BASE:
            assert vcpu is not None, "SGIs and PPIs are banked: a vCPU index is required"
            return self._private[vcpu][intid]
        return self._shared[intid]

    def sync(self, vcpu: int | None, intid: int) -> None:
        """Refreshes the ready sets after ``intid``'s state changed."""
        irq = self.irq(vcpu, intid)
        if intid < SPI_BASE:
            assert vcpu is not None
            ready = self.ready_private[vcpu]
        else:
            ready = self.ready_spis
        if irq.ready:
            ready.add(intid)
        else:
            ready.discard(intid)

    def read_bits(self, op: BitOp, vcpu: int | None, first: int) -> int:
        """Returns the 32-bit register of family ``op`` covering INTIDs first..first+31."""
        value = 0
        for bit in range(min(32, INTID_LIMIT - first)):
            value |= _bit_of(op, self.irq(vcpu, first + bit)) << bit
        return value

    def write_bits(self, op: BitOp, vcpu: int | None, first: int, value: int) -> None:
        """Applies a write of ``value`` to the register of family ``op`` at INTID ``first``."""
        value &= (1 << min(32, INTID_LIMIT - first)) - 1
        while value:
            low = value & -value
            value ^= low
            intid = first + low.bit_length() - 1
            _apply(op, self.irq(vcpu, intid))
            self.sync(vcpu, intid)

    def read_priorities(self, vcpu: int | None, first: int, count: int) -> int:
        """Returns ``count`` IPRIORITYR bytes starting at INTID ``first``, little-endian."""
        value = 0
        for i in range(max(0, min(count, INTID_LIMIT - first))):
            value |= self.irq(vcpu, first + i).priority << (8 * i)
        return value

    def write_priorities(self, vcpu: int | None, first: int, count: int, value: int) -> None:
        """Writes ``count`` IPRIORITYR bytes starting at INTID ``first``."""
        for i in range(max(0, min(count, INTID_LIMIT - first))):
            self.irq(vcpu, first + i).priority = (value >> (8 * i)) & PRIORITY_MASK

    def read_config(self, vcpu: int | None, first: int) -> int:
        """Returns the ICFGR word for INTIDs first..first+15 (bit 2i+1 set = edge-triggered)."""
        value = 0
        for i in range(min(16, INTID_LIMIT - first)):
            value |= self.irq(vcpu, first + i).edge << (2 * i + 1)
        return value

    def write_config(self, vcpu: int | None, first: int, value: int) -> None:
        """Writes the ICFGR word for INTIDs first..first+15; SGIs stay edge-triggered."""
        for i in range(min(16, INTID_LIMIT - first)):
            intid = first + i
            if intid >= SGI_COUNT:
                self.irq(vcpu, intid).edge = bool((value >> (2 * i + 1)) & 1)
                self.sync(vcpu, intid)

    def route(self, intid: int) -> int:
        """Returns GICD_IROUTER<intid>."""
        return self._routes[intid]

    def set_route(self, intid: int, value: int) -> None:
        """Sets GICD_IROUTER<intid>; RES0 bits are dropped."""
        self._routes[intid] = value & IROUTER_MASK

    def spi_target(self, intid: int, one_of_n: int | None) -> int | None:
        """Returns the vCPU SPI ``intid`` is forwarded to, or None if its route names none."""
        route = self._routes[intid]
        if route & IROUTER_IRM:
            return one_of_n
        if route & IROUTER_UPPER_AFF or (route & 0xFF) >= self.vcpu_count:
            return None
        return route & 0xFF

    def best(self, vcpu: int, one_of_n: int | None) -> tuple[int, int] | None:
        """Returns (priority, INTID) of the highest-priority ready interrupt for ``vcpu``.

        Equal priorities resolve to the lowest INTID.
        """
        best = None
        for intid in self.ready_private[vcpu]:
            candidate = (self._private[vcpu][intid].priority, intid)
            if best is None or candidate < best:
                best = candidate
        for intid in self.ready_spis:
            if self.spi_target(intid, one_of_n) == vcpu:
                candidate = (self._shared[intid].priority, intid)
                if best is None or candidate < best:
                    best = candidate
        return best
