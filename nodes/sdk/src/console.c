/*
 * The console: locked formatted output on the PL011 UART, panics, echo loop.
 */
#include <gn/atomic.h>
#include <gn/console.h>
#include <gn/cpu.h>
#include <gn/psci.h>
#include <gn/uart.h>

static gn_spinlock console_lock = GN_SPINLOCK_INIT;

static void put_uart(void *ctx, char c)
{
    (void)ctx;
    gn_uart_putc(c);
}

int gn_vprintf(const char *fmt, va_list ap)
{
    uint64_t daif = gn_irq_save();
    gn_spin_lock(&console_lock);
    int n = gn_vformat(put_uart, NULL, fmt, ap);
    gn_spin_unlock(&console_lock);
    gn_irq_restore(daif);
    return n;
}

int gn_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = gn_vprintf(fmt, ap);
    va_end(ap);
    return n;
}

void gn_console_write(const char *s, size_t n)
{
    uint64_t daif = gn_irq_save();
    gn_spin_lock(&console_lock);
    gn_uart_write(s, n);
    gn_spin_unlock(&console_lock);
    gn_irq_restore(daif);
}

_Noreturn void gn_panic(const char *fmt, ...)
{
    va_list ap;
    gn_uart_write("gn: panic: ", 11);
    va_start(ap, fmt);
    gn_vformat(put_uart, NULL, fmt, ap);
    va_end(ap);
    gn_uart_putc('\n');
    gn_psci_system_off();
}

_Noreturn void gn_console_echo_loop(void)
{
    for (;;) {
        int c = gn_uart_getc();
        if (c < 0) {
            gn_wfi();
            continue;
        }
        if (c == '\r')
            gn_console_write("\r\n", 2);
        else
            gn_console_write(&(char){(char)c}, 1);
    }
}
