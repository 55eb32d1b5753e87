/*
 * irqtest: exercises interrupts end to end through the SDK's GIC driver.
 *
 *   1. the virtual timer (PPI 27) fires 1 ms after arming: "irqtest: timer irq";
 *   2. with 2+ vCPUs, vCPU 0 sends SGI 1 to vCPU 1, which prints
 *      "irqtest: sgi on cpu 1" and answers with SGI 2 to vCPU 0;
 *   3. the UART RX interrupt (SPI 33) is enabled and every received byte is
 *      echoed from the handler ("\r" as "\r\n") while vCPU 0 idles in WFI;
 *      it prints "irqtest: echo ready" first.
 *
 * Bootarg "bench=<intid>" replaces all that with a latency probe: SPI <intid>
 * is enabled edge-triggered on vCPU 0, and its handler reads CNTVCT_EL0 first
 * thing and prints "irqtest: bench <n> <cntvct>" for the n-th interrupt. Between
 * interrupts vCPU 0 idles in WFI, or spins with the extra flag "spin".
 */
#include <gn/gic.h>
#include <gn/sdk.h>
#include <gn/timer.h>

#define SGI_PING 1U
#define SGI_PONG 2U
#define UART_INT_RX (1U << 4)
#define UART_INT_RT (1U << 6)

static volatile uint64_t timer_fired;
static volatile uint64_t cpu1_ready;
static volatile uint64_t pong_seen;

/* Sleeps until an interrupt handler sets *flag, without losing the wake-up: the flag is checked
 * with IRQs masked, WFI still ends on a pending (masked) IRQ, and the handler runs in the short
 * unmasked window after it. Checking with IRQs unmasked could take the IRQ just before the WFI
 * and then sleep forever. */
static void wait_for(volatile uint64_t *flag)
{
    uint64_t daif = gn_irq_save();
    while (!*flag) {
        gn_wfi();
        gn_irq_restore(daif);
        gn_irq_disable();
    }
    gn_irq_restore(daif);
}

static volatile uint64_t bench_count;

static void on_timer(void *arg)
{
    (void)arg;
    gn_printf("irqtest: timer irq\n");
    timer_fired = 1;
}

static void on_ping(unsigned intid, void *arg)
{
    (void)intid;
    (void)arg;
    gn_printf("irqtest: sgi on cpu %u\n", gn_cpu_id());
    gn_gic_send_sgi(SGI_PONG, 0);
}

static void on_pong(unsigned intid, void *arg)
{
    (void)intid;
    (void)arg;
    pong_seen = 1;
}

static void on_uart(unsigned intid, void *arg)
{
    (void)intid;
    (void)arg;
    int c;
    while ((c = gn_uart_getc()) >= 0) {
        char out[2] = {(char)c, '\n'};
        gn_console_write(out, c == '\r' ? 2 : 1);
    }
    gn_mmio_write32(GN_UART_BASE + GN_UART_ICR, UART_INT_RX | UART_INT_RT);
}

static void on_bench(unsigned intid, void *arg)
{
    (void)intid;
    (void)arg;
    uint64_t now = gn_timer_counter();
    uint64_t n = bench_count + 1;
    bench_count = n;
    gn_printf("irqtest: bench %lu %lu\n", n, now);
}

void secondary_main(unsigned cpu)
{
    gn_gic_cpu_init();
    gn_irq_register(SGI_PING, on_ping, NULL);
    gn_gic_enable_private(SGI_PING, GN_GIC_PRIO_DEFAULT);
    gn_irq_enable();
    gn_store_release_u64(&cpu1_ready, cpu);
    gn_idle_forever();
}

static void sgi_round_trip(unsigned ncpus)
{
    if (ncpus < 2) {
        gn_printf("irqtest: sgi skipped (1 cpu)\n");
        return;
    }
    gn_irq_register(SGI_PONG, on_pong, NULL);
    gn_gic_enable_private(SGI_PONG, GN_GIC_PRIO_DEFAULT);
    int32_t rc = gn_cpu_start(1);
    if (rc != GN_PSCI_SUCCESS) {
        gn_printf("irqtest: CPU_ON(1) failed: %d\n", rc);
        return;
    }
    while (gn_load_acquire_u64(&cpu1_ready) == 0)
        ;
    gn_gic_send_sgi(SGI_PING, 1);
    wait_for(&pong_seen);
    gn_printf("irqtest: sgi answered\n");
}

static _Noreturn void bench(uint64_t intid, bool spin)
{
    gn_irq_register((unsigned)intid, on_bench, NULL);
    if (gn_gic_enable_spi((unsigned)intid, GN_GIC_PRIO_DEFAULT, 0, true) != 0)
        gn_panic("irqtest: bench=%lu is not an SPI", intid);
    gn_printf("irqtest: bench ready on %lu (%s)\n", intid, spin ? "spin" : "wfi");
    if (!spin)
        gn_idle_forever();
    for (volatile uint64_t n = 0;; n = n + 1)
        ;
}

int main(const void *dtb)
{
    gn_dt dt;
    const char *args = NULL;
    int ncpus = 1;
    if (gn_dt_init(&dt, dtb) == GN_DT_OK) {
        args = gn_dt_bootargs(&dt);
        ncpus = gn_dt_cpu_count(&dt);
    }
    gn_gic_init();
    gn_gic_cpu_init();
    gn_irq_enable();

    uint64_t intid;
    if (gn_bootargs_get_u64(args, "bench", &intid))
        bench(intid, gn_bootargs_has(args, "spin"));

    gn_timer_oneshot_us(1000, on_timer, NULL);
    wait_for(&timer_fired);

    sgi_round_trip(ncpus > 0 ? (unsigned)ncpus : 1);

    gn_irq_register(GN_UART_INTID, on_uart, NULL);
    gn_mmio_write32(GN_UART_BASE + GN_UART_IMSC, UART_INT_RX | UART_INT_RT);
    gn_gic_enable_spi(GN_UART_INTID, GN_GIC_PRIO_DEFAULT, 0, false);
    gn_printf("irqtest: echo ready\n");
    gn_idle_forever();
}
