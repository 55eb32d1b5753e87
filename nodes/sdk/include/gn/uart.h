/*
 * PL011 UART driver (polled): byte output, non-blocking byte input.
 */
#ifndef GN_UART_H
#define GN_UART_H

#include <stdbool.h>
#include <stddef.h>

/* Writes one byte, waiting while the transmit FIFO is full. */
void gn_uart_putc(char c);

/* Writes n bytes (no newline translation). */
void gn_uart_write(const char *s, size_t n);

/* Returns true if the receive FIFO holds at least one byte. */
bool gn_uart_rx_ready(void);

/* Returns the next received byte (0..255), or -1 if the receive FIFO is empty. */
int gn_uart_getc(void);

#endif /* GN_UART_H */
