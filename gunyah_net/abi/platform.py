"""gunyah-net's guest platform map: where RAM, the vGIC, the UART and the DTB sit in IPA space.

Documented for guest authors in docs/platform.md. The numbers mirror QEMU's ``virt`` board where
Gunyah's own conventions leave them open.
"""

from __future__ import annotations

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

PAGE_SIZE = 4 * KiB

MMIO_WINDOW_BASE = 0
MMIO_WINDOW_SIZE = 1 * GiB
"""[0, 1 GiB) is the VMMIO window: accesses here are device accesses, never RAM."""

GICD_BASE = 0x0800_0000
GICD_SIZE = 64 * KiB
GICR_BASE = 0x080A_0000
GICR_STRIDE = 128 * KiB

UART_BASE = 0x0900_0000
UART_SIZE = 4 * KiB
UART_INTID = 33
"""The PL011 raises SPI 1 (INTID 33), level-high."""

RAM_BASE = 0x8000_0000

DTB_REGION_SIZE = 64 * KiB
"""The flattened device tree occupies the top 64 KiB of RAM."""

VTIMER_INTID = 27


def dtb_address(ram_size: int) -> int:
    """Returns the IPA at which a VM with ``ram_size`` bytes of RAM finds its DTB (X0 at boot)."""
    return RAM_BASE + ram_size - DTB_REGION_SIZE


def gicr_base(vcpu_index: int) -> int:
    """Returns the IPA of the redistributor frame of vCPU ``vcpu_index``."""
    return GICR_BASE + vcpu_index * GICR_STRIDE
