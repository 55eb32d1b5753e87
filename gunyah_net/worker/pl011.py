"""An Arm PL011 UART (PrimeCell r1p5 register map) as a synchronous MMIO device model.

Transmission is instantaneous: every DR write hands its byte to ``on_tx`` at once, so the transmit
FIFO always reads empty (FR.TXFE=1, TXFF=0, BUSY=0). Received bytes wait in a bounded FIFO
(``rx_capacity`` bytes, default 64 KiB); bytes that do not fit are dropped, counted, logged and
flag an overrun (RSR.OE, RIS.OE). Register accesses run on the vCPU thread inside Unicorn's MMIO
callback and must return at once; ``receive`` runs on the event-loop thread. One lock guards the
state; callbacks (``on_tx``, ``on_irq``) run after it is released (``on_irq`` under a second lock
that keeps line changes in order).

Interrupts follow the PL011 TRM with instantaneous transmission (as QEMU models it): TXRIS is set
by every transmitted byte and cleared by ICR; RXRIS is a level (FIFO fill >= the IFLS trigger, or
any data when the FIFO is disabled); RTRIS (receive timeout) is set when data arrives and cleared by
ICR or by emptying the FIFO. The interrupt line is ``(RIS & IMSC) != 0``; ``on_irq(level)`` is
called whenever it changes, so a vGIC can route it (platform.UART_INTID).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

DR, RSR_ECR, FR, ILPR, IBRD, FBRD, LCR_H, CR, IFLS, IMSC, RIS, MIS, ICR, DMACR = (
    0x000, 0x004, 0x018, 0x020, 0x024, 0x028, 0x02C, 0x030, 0x034, 0x038, 0x03C, 0x040, 0x044,
    0x048)
ID_BASE = 0xFE0
ID_BYTES = (0x11, 0x10, 0x14, 0x00, 0x0D, 0xF0, 0x05, 0xB1)
"""PeriphID0..3 (PL011, r1p5) then PCellID0..3 at 0xFE0..0xFFC, one byte per word."""

FR_BUSY, FR_RXFE, FR_TXFF, FR_RXFF, FR_TXFE = 1 << 3, 1 << 4, 1 << 5, 1 << 6, 1 << 7
INT_RX, INT_TX, INT_RT, INT_OE = 1 << 4, 1 << 5, 1 << 6, 1 << 10
INT_ALL = 0x7FF
RSR_OE = 1 << 3
LCR_H_FEN = 1 << 4
CR_RESET = 0x300  # TXE | RXE
IFLS_RESET = 0x12  # both triggers at 1/2
RX_TRIGGERS = (4, 8, 16, 24, 28)
"""IFLS.RXIFLSEL 0..4: 1/8, 1/4, 1/2, 3/4, 7/8 of the r1p5's 32-entry FIFO."""
RX_CAPACITY = 64 * 1024


class Pl011:
    """One PL011: ``mmio_read``/``mmio_write`` for the guest, ``receive`` for console input."""

    def __init__(self, on_tx: Callable[[bytes], None], rx_capacity: int = RX_CAPACITY,
                 name: str = "uart") -> None:
        self._on_tx = on_tx
        self.on_irq: Callable[[bool], None] | None = None
        """Called with the new line level whenever ``(RIS & IMSC) != 0`` changes."""
        self._name = name
        self._lock = threading.Lock()
        self._line_lock = threading.Lock()
        self._rx = bytearray()
        self._rx_capacity = rx_capacity
        self.rx_dropped = 0
        """Received bytes dropped because the RX FIFO was full."""
        self._reset_registers()
        self._line = False

    def _reset_registers(self) -> None:
        self._rx.clear()
        self._rsr = 0
        self._ris = 0
        self._imsc = 0
        self._ibrd = 0
        self._fbrd = 0
        self._lcr_h = 0
        self._cr = CR_RESET
        self._ifls = IFLS_RESET
        self._ilpr = 0
        self._dmacr = 0

    def reset(self) -> None:
        """Returns every register to its reset value and empties the RX FIFO."""
        with self._lock:
            self._reset_registers()
        self._update_line()

    @property
    def irq_level(self) -> bool:
        """The interrupt line: True while a raw interrupt that is unmasked in IMSC is pending."""
        with self._lock:
            return self._masked() != 0

    def rx_pending(self) -> int:
        """Returns how many received bytes wait in the RX FIFO."""
        with self._lock:
            return len(self._rx)

    def receive(self, data: bytes) -> int:
        """Queues console input for the guest; returns how many bytes fit (the rest is dropped)."""
        with self._lock:
            room = self._rx_capacity - len(self._rx)
            accepted = data[:max(room, 0)]
            self._rx += accepted
            dropped = len(data) - len(accepted)
            if dropped:
                self.rx_dropped += dropped
                self._rsr |= RSR_OE
                self._ris |= INT_OE
            if accepted:
                self._ris |= INT_RT
            self._update_rx_level()
        if dropped:
            log.warning("%s: RX FIFO full (%d bytes), dropped %d input bytes", self._name,
                        self._rx_capacity, dropped)
        self._update_line()
        return len(accepted)

    def mmio_read(self, offset: int, size: int) -> int:
        """Returns the value of the register at ``offset`` (the guest's load)."""
        with self._lock:
            value = self._read_locked(offset & ~3)
        if offset & ~3 == DR:
            self._update_line()
        return value >> (8 * (offset & 3)) & ((1 << (8 * size)) - 1) if size < 4 else value

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        """Applies the guest's store of ``value`` to the register at ``offset``."""
        if offset & 3:
            return  # the PL011 only decodes word-aligned registers
        if offset == DR:
            self._on_tx(bytes((value & 0xFF,)))
        with self._lock:
            self._write_locked(offset, value & 0xFFFF_FFFF)
        self._update_line()

    def _read_locked(self, offset: int) -> int:
        match offset:
            case 0x000:
                return self._pop_rx()
            case 0x004:
                return self._rsr
            case 0x018:
                return self._flags()
            case 0x020:
                return self._ilpr
            case 0x024:
                return self._ibrd
            case 0x028:
                return self._fbrd
            case 0x02C:
                return self._lcr_h
            case 0x030:
                return self._cr
            case 0x034:
                return self._ifls
            case 0x038:
                return self._imsc
            case 0x03C:
                return self._ris
            case 0x040:
                return self._masked()
            case 0x048:
                return self._dmacr
            case _ if ID_BASE <= offset < ID_BASE + 4 * len(ID_BYTES):
                return ID_BYTES[(offset - ID_BASE) // 4]
            case _:
                return 0

    def _write_locked(self, offset: int, value: int) -> None:
        match offset:
            case 0x000:
                self._ris |= INT_TX
            case 0x004:
                self._rsr = 0
            case 0x020:
                self._ilpr = value & 0xFF
            case 0x024:
                self._ibrd = value & 0xFFFF
            case 0x028:
                self._fbrd = value & 0x3F
            case 0x02C:
                self._lcr_h = value & 0xFF
                self._update_rx_level()
            case 0x030:
                self._cr = value & 0xFFFF
            case 0x034:
                self._ifls = value & 0x3F
                self._update_rx_level()
            case 0x038:
                self._imsc = value & INT_ALL
            case 0x044:
                self._ris &= ~value & INT_ALL
                self._update_rx_level()
            case 0x048:
                self._dmacr = value & 0x7
            case _:
                pass

    def _pop_rx(self) -> int:
        if not self._rx:
            return 0
        byte = self._rx[0]
        del self._rx[0]
        if not self._rx:
            self._ris &= ~INT_RT
        self._update_rx_level()
        return byte

    def _flags(self) -> int:
        flags = FR_TXFE
        if not self._rx:
            flags |= FR_RXFE
        if len(self._rx) >= self._rx_capacity:
            flags |= FR_RXFF
        return flags

    def _rx_trigger(self) -> int:
        if not self._lcr_h & LCR_H_FEN:
            return 1
        return RX_TRIGGERS[min((self._ifls >> 3) & 0x7, 4)]

    def _update_rx_level(self) -> None:
        if len(self._rx) >= self._rx_trigger():
            self._ris |= INT_RX
        else:
            self._ris &= ~INT_RX

    def _masked(self) -> int:
        return self._ris & self._imsc

    def _update_line(self) -> None:
        # One thread at a time computes and delivers the level, so two threads racing (guest MMIO
        # and console input) cannot deliver their levels out of order and leave the line stale.
        with self._line_lock:
            with self._lock:
                level = self._masked() != 0
                changed = level != self._line
                self._line = level
            if changed and self.on_irq is not None:
                self.on_irq(level)
