"""The PL011 model as a guest driver and the console see it: registers, FIFO, IRQ line."""

from __future__ import annotations

import pytest

from gunyah_net.worker import pl011
from gunyah_net.worker.pl011 import Pl011


@pytest.fixture
def uart():
    sent: list[bytes] = []
    dev = Pl011(sent.append, rx_capacity=8)
    dev.sent = sent
    levels: list[bool] = []
    dev.on_irq = levels.append
    dev.levels = levels
    return dev


def test_data_register_writes_transmit_one_byte_each(uart):
    for char in b"hi\n":
        uart.mmio_write(pl011.DR, 4, 0xFFFFFF00 | char)
    assert uart.sent == [b"h", b"i", b"\n"]


def test_flags_show_an_always_empty_transmitter_and_the_receive_fifo(uart):
    fr = uart.mmio_read(pl011.FR, 4)
    assert fr & pl011.FR_TXFE and fr & pl011.FR_RXFE
    assert not fr & (pl011.FR_TXFF | pl011.FR_BUSY | pl011.FR_RXFF)
    uart.receive(b"a")
    assert not uart.mmio_read(pl011.FR, 4) & pl011.FR_RXFE


def test_received_bytes_are_read_in_order_then_reads_return_zero(uart):
    assert uart.receive(b"xyz") == 3
    assert [uart.mmio_read(pl011.DR, 4) for _ in range(4)] == [ord("x"), ord("y"), ord("z"), 0]
    assert uart.rx_pending() == 0


def test_overflow_drops_the_excess_and_flags_an_overrun(uart, caplog):
    assert uart.receive(b"0123456789") == 8
    assert uart.rx_dropped == 2
    assert uart.mmio_read(pl011.FR, 4) & pl011.FR_RXFF
    assert uart.mmio_read(pl011.RSR_ECR, 4) & pl011.RSR_OE
    assert uart.mmio_read(pl011.RIS, 4) & pl011.INT_OE
    assert "dropped 2 input bytes" in caplog.text
    uart.mmio_write(pl011.RSR_ECR, 4, 0)
    assert uart.mmio_read(pl011.RSR_ECR, 4) == 0
    assert bytes(uart.mmio_read(pl011.DR, 4) for _ in range(8)) == b"01234567"


def test_rx_interrupt_line_follows_data_and_mask(uart):
    uart.receive(b"a")
    assert not uart.irq_level, "masked by IMSC at reset"
    uart.mmio_write(pl011.IMSC, 4, pl011.INT_RX | pl011.INT_RT)
    assert uart.irq_level and uart.levels == [True]
    assert uart.mmio_read(pl011.MIS, 4) == pl011.INT_RX | pl011.INT_RT
    uart.mmio_read(pl011.DR, 4)
    assert not uart.irq_level and uart.levels == [True, False]


def test_receive_timeout_is_cleared_by_icr(uart):
    uart.mmio_write(pl011.IMSC, 4, pl011.INT_RT)
    uart.receive(b"a")
    assert uart.irq_level
    uart.mmio_write(pl011.ICR, 4, pl011.INT_RT)
    assert not uart.irq_level


def test_fifo_trigger_level_gates_the_rx_interrupt(uart):
    uart.mmio_write(pl011.LCR_H, 4, pl011.LCR_H_FEN)
    uart.mmio_write(pl011.IFLS, 4, 0)  # RX trigger at 1/8 full: 4 bytes
    uart.receive(b"abc")
    assert not uart.mmio_read(pl011.RIS, 4) & pl011.INT_RX
    uart.receive(b"d")
    assert uart.mmio_read(pl011.RIS, 4) & pl011.INT_RX


def test_tx_interrupt_is_raised_by_a_write_and_cleared_by_icr(uart):
    uart.mmio_write(pl011.IMSC, 4, pl011.INT_TX)
    uart.mmio_write(pl011.DR, 4, ord("x"))
    assert uart.irq_level
    uart.mmio_write(pl011.ICR, 4, pl011.INT_TX)
    assert not uart.irq_level


def test_configuration_registers_read_back(uart):
    for offset, value in ((pl011.IBRD, 13), (pl011.FBRD, 1), (pl011.LCR_H, 0x70),
                          (pl011.CR, 0x301), (pl011.IFLS, 0x12)):
        uart.mmio_write(offset, 4, value)
        assert uart.mmio_read(offset, 4) == value


def test_primecell_identification(uart):
    ids = [uart.mmio_read(0xFE0 + 4 * i, 4) for i in range(8)]
    assert ids == [0x11, 0x10, 0x14, 0x00, 0x0D, 0xF0, 0x05, 0xB1]


def test_byte_reads_of_flags_work(uart):
    assert uart.mmio_read(pl011.FR, 1) == uart.mmio_read(pl011.FR, 4) & 0xFF


def test_reset_empties_the_fifo_and_restores_registers(uart):
    uart.receive(b"ab")
    uart.mmio_write(pl011.IMSC, 4, 0x7FF)
    uart.reset()
    assert uart.rx_pending() == 0
    assert uart.mmio_read(pl011.IMSC, 4) == 0
    assert uart.mmio_read(pl011.CR, 4) == pl011.CR_RESET
