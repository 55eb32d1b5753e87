"""GICD: the vGIC distributor's 64 KiB MMIO frame (SPI state, global group enable, routing).

Register values follow Gunyah's vGIC where the architecture leaves a choice: GICD_IIDR names
Qualcomm (JEP106 0x70) and product 'G', GICD_PIDR2 is 0x30 (ArchRev 3), GICD_TYPER reports
ITLinesNumber 31 (INTIDs up to 1019), 10 INTID bits, A3V, no LPIs/MBIS/ESPI and CPUNumber 0
(ARE cannot be cleared). With affinity routing on, the INTID 0..31 slices of every register are
RAZ/WI (the redistributors own them). Accesses must be naturally aligned; 8-byte accesses are
allowed only to GICD_IROUTER<n> (which may also arrive as two 32-bit halves), byte accesses only to
the byte-wide registers. Anything else, unknown offsets and writes to read-only registers read as
zero / are ignored and are counted in ``VGicStats.unhandled_mmio``; nothing a guest does raises.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import IntEnum
from typing import TYPE_CHECKING

from gunyah_net.worker.vgic_irq import INTID_LIMIT, SPI_BASE, BitOp, VGicError

if TYPE_CHECKING:
    from gunyah_net.worker.vgic import VGic

GICD_SIZE = 0x1_0000


class Gicd(IntEnum):
    """GICD single-register offsets."""

    CTLR = 0x0000
    TYPER = 0x0004
    IIDR = 0x0008
    TYPER2 = 0x000C
    STATUSR = 0x0010
    PIDR2 = 0xFFE8


IPRIORITYR = 0x0400
ICFGR = 0x0C00
IROUTER = 0x6000

CTLR_ARE = 1 << 4
CTLR_DS = 1 << 6
TYPER_VALUE = 31 | (9 << 19) | (1 << 24)
"""ITLinesNumber = 31, IDbits = 9 (10 bits), A3V = 1."""
IIDR_VALUE = (ord("G") << 24) | 0x070
"""ProductID 'G', Variant 0, Revision 0, Implementer 0x070 (Qualcomm), as Gunyah's vGIC."""
PIDR2_VALUE = 0x30
"""ArchRev = 3 (GICv3), as Gunyah's vGIC."""

_BITMAPS = range(0x0080, 0x0400)
_PRIORITIES = range(IPRIORITYR, IPRIORITYR + 0x400)
_CONFIGS = range(ICFGR, ICFGR + 0x100)
_ROUTES = range(IROUTER, IROUTER + 8 * 1024)
_ITARGETSR = range(0x0800, 0x0C00)
_SGI_PENDING = range(0x0F10, 0x0F30)
"""GICD_CPENDSGIR and GICD_SPENDSGIR."""
_RAZ_WI = (_ITARGETSR, range(0x0D00, 0x0D80), range(0x0E00, 0x0F00), range(0x0F00, 0x0F04),
           _SGI_PENDING)
"""ITARGETSR, SGIR, C/SPENDSGIR (all unused with ARE on), IGRPMODR and NSACR (DS = 1)."""


class MmioFrame(ABC):
    """Splits a guest MMIO access into the 32-bit or byte accesses a GIC frame decodes.

    Subclasses implement ``read32``/``write32`` (and the byte variants for byte-wide registers);
    they run with the vGIC lock held.
    """

    SIZE = 0

    def __init__(self, vgic: VGic) -> None:
        self._vgic = vgic

    def read(self, offset: int, size: int) -> int:
        """Returns the value a guest load of ``size`` bytes at frame ``offset`` observes."""
        self._check(offset, size)
        with self._vgic.mutation():
            match size:
                case 4 if offset % 4 == 0:
                    return self.read32(offset)
                case 8 if offset % 8 == 0 and self.is_64bit(offset):
                    return self.read32(offset) | (self.read32(offset + 4) << 32)
                case 1 if self.is_bytewide(offset):
                    return self.read_byte(offset)
            self._vgic.count_unhandled_mmio()
            return 0

    def write(self, offset: int, size: int, value: int) -> None:
        """Applies a guest store of ``size`` bytes of ``value`` at frame ``offset``."""
        self._check(offset, size)
        value &= (1 << (8 * size)) - 1
        with self._vgic.mutation():
            match size:
                case 4 if offset % 4 == 0:
                    self.write32(offset, value)
                case 8 if offset % 8 == 0 and self.is_64bit(offset):
                    self.write32(offset, value & 0xFFFF_FFFF)
                    self.write32(offset + 4, value >> 32)
                case 1 if self.is_bytewide(offset):
                    self.write_byte(offset, value)
                case _:
                    self._vgic.count_unhandled_mmio()

    def _check(self, offset: int, size: int) -> None:
        if size not in (1, 2, 4, 8):
            raise VGicError(f"MMIO access size must be 1, 2, 4 or 8 bytes, got {size}")
        if not 0 <= offset <= self.SIZE - size:
            raise VGicError(f"MMIO offset {offset:#x} (+{size}) is outside the "
                            f"{self.SIZE:#x}-byte {type(self).__name__} frame")

    def unhandled(self) -> int:
        """Counts an access to an unknown offset or a read-only register; returns 0 (RAZ)."""
        self._vgic.count_unhandled_mmio()
        return 0

    def is_64bit(self, offset: int) -> bool:
        """Tells whether a 64-bit register starts at ``offset``."""
        return False

    def is_bytewide(self, offset: int) -> bool:
        """Tells whether ``offset`` lies in a byte-accessible register."""
        return False

    @abstractmethod
    def read32(self, offset: int) -> int:
        """Returns the 32-bit register (or half of a 64-bit one) at ``offset``."""

    @abstractmethod
    def write32(self, offset: int, value: int) -> None:
        """Writes the 32-bit register (or half of a 64-bit one) at ``offset``."""

    def read_byte(self, offset: int) -> int:
        """Returns one byte of a byte-wide register (RAZ unless overridden)."""
        return 0

    def write_byte(self, offset: int, value: int) -> None:
        """Writes one byte of a byte-wide register (WI unless overridden)."""


class Distributor(MmioFrame):
    """The GICD frame: map it at GICD_BASE and forward (offset, size[, value]) accesses."""

    SIZE = GICD_SIZE

    def is_64bit(self, offset: int) -> bool:
        return offset in _ROUTES

    def is_bytewide(self, offset: int) -> bool:
        return offset in _PRIORITIES or offset in _ITARGETSR or offset in _SGI_PENDING

    def read32(self, offset: int) -> int:
        table = self._vgic.table
        match offset:
            case Gicd.CTLR:
                return self._vgic.group_enables | CTLR_ARE | CTLR_DS
            case Gicd.TYPER:
                return TYPER_VALUE
            case Gicd.IIDR:
                return IIDR_VALUE
            case Gicd.TYPER2 | Gicd.STATUSR:
                return 0  # TYPER2: no vSGI/extended ranges; STATUSR: RAZ/WI.
            case Gicd.PIDR2:
                return PIDR2_VALUE
            case _ if offset in _BITMAPS:
                first = (offset & 0x7F) * 8
                if first < SPI_BASE:
                    return 0
                return table.read_bits(BitOp(offset & ~0x7F), None, first)
            case _ if offset in _PRIORITIES:
                return self._priorities(offset, 4)
            case _ if offset in _CONFIGS:
                first = (offset - ICFGR) * 4
                return table.read_config(None, first) if first >= SPI_BASE else 0
            case _ if offset in _ROUTES:
                intid = (offset - IROUTER) // 8
                route = table.route(intid) if SPI_BASE <= intid < INTID_LIMIT else 0
                return (route >> 32 if offset & 4 else route) & 0xFFFF_FFFF
            case _ if any(offset in r for r in _RAZ_WI):
                return 0
        return self.unhandled()

    def write32(self, offset: int, value: int) -> None:
        table = self._vgic.table
        match offset:
            case Gicd.CTLR:
                self._vgic.group_enables = value
            case Gicd.TYPER | Gicd.IIDR | Gicd.TYPER2 | Gicd.PIDR2:
                self.unhandled()
            case Gicd.STATUSR:
                pass
            case _ if offset in _BITMAPS:
                first = (offset & 0x7F) * 8
                if first >= SPI_BASE:
                    table.write_bits(BitOp(offset & ~0x7F), None, first, value)
            case _ if offset in _PRIORITIES:
                self._set_priorities(offset, 4, value)
            case _ if offset in _CONFIGS:
                first = (offset - ICFGR) * 4
                if first >= SPI_BASE:
                    table.write_config(None, first, value)
            case _ if offset in _ROUTES:
                self._write_route_half(offset, value)
            case _ if any(offset in r for r in _RAZ_WI):
                pass
            case _:
                self.unhandled()

    def read_byte(self, offset: int) -> int:
        return self._priorities(offset, 1) if offset in _PRIORITIES else 0

    def write_byte(self, offset: int, value: int) -> None:
        if offset in _PRIORITIES:
            self._set_priorities(offset, 1, value)

    def _priorities(self, offset: int, count: int) -> int:
        first = offset - IPRIORITYR
        return self._vgic.table.read_priorities(None, first, count) if first >= SPI_BASE else 0

    def _set_priorities(self, offset: int, count: int, value: int) -> None:
        first = offset - IPRIORITYR
        if first >= SPI_BASE:
            self._vgic.table.write_priorities(None, first, count, value)

    def _write_route_half(self, offset: int, value: int) -> None:
        intid = (offset - IROUTER) // 8
        if not SPI_BASE <= intid < INTID_LIMIT:
            return
        route = self._vgic.table.route(intid)
        if offset & 4:
            route = (route & 0xFFFF_FFFF) | (value << 32)
        else:
            route = (route & ~0xFFFF_FFFF) | value
        self._vgic.table.set_route(intid, route)
