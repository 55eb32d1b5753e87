/*
 * PL011 UART driver (polled).
 */
#include <gn/mmio.h>
#include <gn/platform.h>
#include <gn/uart.h>

static uint32_t uart_read(uint32_t reg)
{
    return gn_mmio_read32(GN_UART_BASE + reg);
}

void gn_uart_putc(char c)
{
    while (uart_read(GN_UART_FR) & GN_UART_FR_TXFF)
        ;
    gn_mmio_write32(GN_UART_BASE + GN_UART_DR, (uint8_t)c);
}

void gn_uart_write(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        gn_uart_putc(s[i]);
}

bool gn_uart_rx_ready(void)
{
    return (uart_read(GN_UART_FR) & GN_UART_FR_RXFE) == 0;
}

int gn_uart_getc(void)
{
    if (!gn_uart_rx_ready())
        return -1;
    return (int)(uart_read(GN_UART_DR) & 0xFFU);
}
