/*
 * The EL1 virtual timer (CNTV_*, PPI 27) and the virtual counter (CNTVCT_EL0).
 *
 * Each vCPU has its own timer. gn_timer_oneshot_us arms the calling vCPU's
 * timer; its handler runs once, in IRQ context on that vCPU, and may re-arm.
 * It needs gn_gic_init() (once) and gn_gic_cpu_init() (on this vCPU) first,
 * and IRQs unmasked (gn_irq_enable) to be delivered.
 */
#ifndef GN_TIMER_H
#define GN_TIMER_H

#include <stdint.h>

#define GN_TIMER_INTID 27U /* the virtual timer's PPI */

/* Returns CNTVCT_EL0, the virtual counter (62.5 MHz under gunyah-net). */
static inline uint64_t gn_timer_counter(void)
{
    uint64_t v;
    __asm__ volatile("isb\n\tmrs %0, cntvct_el0" : "=r"(v)::"memory");
    return v;
}

/* Returns CNTFRQ_EL0, the counter frequency in Hz. */
static inline uint64_t gn_timer_frequency(void)
{
    uint64_t v;
    __asm__ volatile("mrs %0, cntfrq_el0" : "=r"(v));
    return v;
}

/* Converts microseconds to counter ticks (rounded down). */
uint64_t gn_timer_us_to_ticks(uint64_t us);

/* Arms this vCPU's timer to run handler(arg) once, us microseconds from now,
 * replacing any earlier deadline of this vCPU. Enables PPI 27 on this vCPU. */
void gn_timer_oneshot_us(uint64_t us, void (*handler)(void *arg), void *arg);

/* Disarms this vCPU's timer (a pending expiry is withdrawn). */
void gn_timer_cancel(void);

/* Busy-waits at least us microseconds on the virtual counter. */
void gn_udelay(uint64_t us);

#endif /* GN_TIMER_H */
