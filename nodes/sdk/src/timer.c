/*
 * The EL1 virtual timer: one-shot deadlines per vCPU on CNTV_CVAL_EL0, and
 * busy delays on CNTVCT_EL0. See gn/timer.h.
 */
#include <stddef.h>

#include <gn/cpu.h>
#include <gn/gic.h>
#include <gn/platform.h>
#include <gn/timer.h>

#define CNTV_CTL_ENABLE 1U
#define CNTV_CTL_IMASK 2U

struct timer_slot {
    void (*handler)(void *arg);
    void *arg;
};

static struct timer_slot timer_slots[GN_MAX_CPUS];

static void cntv_ctl_write(uint64_t v)
{
    __asm__ volatile("msr cntv_ctl_el0, %0\n\tisb" ::"r"(v) : "memory");
}

uint64_t gn_timer_us_to_ticks(uint64_t us)
{
    uint64_t hz = gn_timer_frequency();
    return (us / 1000000U) * hz + (us % 1000000U) * hz / 1000000U;
}

/* PPI 27: the deadline passed. Disable the timer (its level line drops), then
 * run the handler, which may re-arm. */
static void timer_irq(unsigned intid, void *arg)
{
    (void)intid;
    (void)arg;
    struct timer_slot *slot = &timer_slots[gn_cpu_id()];
    cntv_ctl_write(0);
    void (*handler)(void *) = slot->handler;
    slot->handler = NULL;
    if (handler != NULL)
        handler(slot->arg);
}

void gn_timer_oneshot_us(uint64_t us, void (*handler)(void *arg), void *arg)
{
    uint64_t daif = gn_irq_save();
    struct timer_slot *slot = &timer_slots[gn_cpu_id()];
    slot->handler = handler;
    slot->arg = arg;
    gn_irq_register(GN_TIMER_INTID, timer_irq, NULL);
    gn_gic_enable_private(GN_TIMER_INTID, GN_GIC_PRIO_DEFAULT);
    uint64_t cval = gn_timer_counter() + gn_timer_us_to_ticks(us);
    __asm__ volatile("msr cntv_cval_el0, %0" ::"r"(cval) : "memory");
    cntv_ctl_write(CNTV_CTL_ENABLE);
    gn_irq_restore(daif);
}

void gn_timer_cancel(void)
{
    uint64_t daif = gn_irq_save();
    cntv_ctl_write(0);
    timer_slots[gn_cpu_id()].handler = NULL;
    gn_irq_restore(daif);
}

void gn_udelay(uint64_t us)
{
    uint64_t start = gn_timer_counter();
    uint64_t ticks = gn_timer_us_to_ticks(us);
    while (gn_timer_counter() - start < ticks)
        ;
}
