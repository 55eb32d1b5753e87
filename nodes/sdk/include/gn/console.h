/*
 * The console: formatted output to the PL011 UART, panics, and an echo loop.
 *
 * Output bytes are written as given: "\n" is not translated to "\r\n".
 */
#ifndef GN_CONSOLE_H
#define GN_CONSOLE_H

#include <stddef.h>

#include <gn/format.h>

/* Prints formatted output (gn/format.h syntax) as one unit: output of other
 * vCPUs and of IRQ handlers does not interleave with it. Returns the byte count. */
int gn_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int gn_vprintf(const char *fmt, va_list ap);

/* Writes n bytes as one unit. */
void gn_console_write(const char *s, size_t n);

/* Prints "gn: panic: <message>\n" without taking the console lock (usable
 * from exception handlers), then powers the system off. */
_Noreturn void gn_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Echoes console input forever: each received byte is written back ("\r"
 * as "\r\n"); with no input pending the vCPU idles in WFI. */
_Noreturn void gn_console_echo_loop(void);

#endif /* GN_CONSOLE_H */
