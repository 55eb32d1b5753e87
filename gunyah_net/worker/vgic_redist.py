"""GICR: one vCPU's 128 KiB redistributor frame (RD_base, then SGI_base at +64 KiB).

RD_base carries identification (IIDR, TYPER with Affinity = Processor_Number = vCPU index and
Last on the final vCPU, PIDR2) and GICR_WAKER; SGI_base carries that vCPU's SGI/PPI enables,
pending and active bits, priorities (byte-accessible) and trigger configuration (SGIs are always
edge; PPIs are configurable). No LPIs: GICR_CTLR, PROPBASER and PENDBASER read as zero.

GICR_WAKER: writing ProcessorSleep = 1 stops the redistributor forwarding interrupts to the CPU
interface (they raise a wake request instead, see ``VGic.wfi_should_wake``); ChildrenAsleep reads
1 once ProcessorSleep is 1 and the vCPU's Group 1 is disabled, and clears with ProcessorSleep.
Unlike bare-metal reset (ProcessorSleep = 1) the frame starts awake, as Gunyah's vGIC does, so
guests that never touch GICR_WAKER still get interrupts; Linux's handshake works either way.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

from gunyah_net.worker.vgic_dist import IIDR_VALUE, PIDR2_VALUE, MmioFrame
from gunyah_net.worker.vgic_irq import BitOp

if TYPE_CHECKING:
    from gunyah_net.worker.vgic import VGic

GICR_SIZE = 0x2_0000
SGI_BASE = 0x1_0000


class Gicr(IntEnum):
    """GICR RD_base register offsets."""

    CTLR = 0x0000
    IIDR = 0x0004
    TYPER = 0x0008
    TYPER_HI = 0x000C
    STATUSR = 0x0010
    WAKER = 0x0014
    PROPBASER = 0x0070
    PENDBASER = 0x0078
    PIDR2 = 0xFFE8


IPRIORITYR = SGI_BASE + 0x0400
ICFGR0 = SGI_BASE + 0x0C00
ICFGR1 = SGI_BASE + 0x0C04
IGRPMODR0 = SGI_BASE + 0x0D00
NSACR = SGI_BASE + 0x0E00

WAKER_PROCESSOR_SLEEP = 1 << 1
WAKER_CHILDREN_ASLEEP = 1 << 2
TYPER_LAST = 1 << 4

_BITMAPS = {SGI_BASE + op.value: op for op in BitOp}
_PRIORITIES = range(IPRIORITYR, IPRIORITYR + 32)
_RAZ_WI = (Gicr.CTLR, Gicr.STATUSR, Gicr.PROPBASER, Gicr.PROPBASER + 4, Gicr.PENDBASER,
           Gicr.PENDBASER + 4, IGRPMODR0, NSACR)


class Redistributor(MmioFrame):
    """The GICR frame of vCPU ``index``: map it at ``gicr_base(index)``."""

    SIZE = GICR_SIZE

    def __init__(self, vgic: VGic, index: int) -> None:
        super().__init__(vgic)
        self.index = index

    def typer(self) -> int:
        """Returns GICR_TYPER: Affinity (Aff0 = index), Processor_Number and Last."""
        last = TYPER_LAST if self.index == self._vgic.vcpu_count - 1 else 0
        return (self.index << 32) | (self.index << 8) | last

    def is_64bit(self, offset: int) -> bool:
        return offset in (Gicr.TYPER, Gicr.PROPBASER, Gicr.PENDBASER)

    def is_bytewide(self, offset: int) -> bool:
        return offset in _PRIORITIES

    def read32(self, offset: int) -> int:
        table = self._vgic.table
        match offset:
            case Gicr.IIDR:
                return IIDR_VALUE
            case Gicr.TYPER:
                return self.typer() & 0xFFFF_FFFF
            case Gicr.TYPER_HI:
                return self.typer() >> 32
            case Gicr.WAKER:
                return self._waker()
            case Gicr.PIDR2:
                return PIDR2_VALUE
            case _ if offset in _BITMAPS:
                return table.read_bits(_BITMAPS[offset], self.index, 0)
            case _ if offset in _PRIORITIES:
                return table.read_priorities(self.index, offset - IPRIORITYR, 4)
            case _ if offset in (ICFGR0, ICFGR1):
                return table.read_config(self.index, (offset - ICFGR0) * 4)
            case _ if offset in _RAZ_WI:
                return 0
        return self.unhandled()

    def write32(self, offset: int, value: int) -> None:
        table = self._vgic.table
        match offset:
            case Gicr.WAKER:
                self._vgic.set_processor_sleep(self.index, bool(value & WAKER_PROCESSOR_SLEEP))
            case _ if offset in _BITMAPS:
                table.write_bits(_BITMAPS[offset], self.index, 0, value)
            case _ if offset in _PRIORITIES:
                table.write_priorities(self.index, offset - IPRIORITYR, 4, value)
            case _ if offset in (ICFGR0, ICFGR1):
                table.write_config(self.index, (offset - ICFGR0) * 4, value)
            case _ if offset in _RAZ_WI:
                pass
            case _:
                self.unhandled()  # Unknown, or read-only (IIDR, TYPER, PIDR2).

    def read_byte(self, offset: int) -> int:
        return self._vgic.table.read_priorities(self.index, offset - IPRIORITYR, 1)

    def write_byte(self, offset: int, value: int) -> None:
        self._vgic.table.write_priorities(self.index, offset - IPRIORITYR, 1, value)

    def _waker(self) -> int:
        if not self._vgic.processor_sleep(self.index):
            return 0
        asleep = not self._vgic.cpu(self.index).igrpen1
        return WAKER_PROCESSOR_SLEEP | (WAKER_CHILDREN_ASLEEP if asleep else 0)
