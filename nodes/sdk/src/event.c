/*
 * Events: sleep in WFI until an interrupt handler bumps a counter; and the
 * attachment of IPC interrupts to the GIC driver.
 */
#include <stdbool.h>

#include <gn/cpu.h>
#include <gn/gic.h>
#include <gn/ipc.h>
#include <gn/platform.h>

#define DAIF_I (1UL << 7)

static bool distributor_ready;
static bool cpu_interface_ready[GN_MAX_CPUS];

int gn_ipc_irq_attach(uint32_t intid, bool edge, uint8_t priority, gn_irq_handler fn, void *arg)
{
    unsigned cpu = gn_cpu_id();
    if (intid < GN_GIC_SPI_BASE || intid >= GN_GIC_INTID_LIMIT || fn == NULL ||
        cpu >= GN_MAX_CPUS)
        return GN_IPC_ERR_IRQ;
    if (!distributor_ready) {
        gn_gic_init();
        distributor_ready = true;
    }
    if (!cpu_interface_ready[cpu]) {
        gn_gic_cpu_init();
        cpu_interface_ready[cpu] = true;
    }
    if (gn_irq_register(intid, fn, arg) != 0 || gn_gic_enable_spi(intid, priority, cpu, edge) != 0)
        return GN_IPC_ERR_IRQ;
    return 0;
}

/* Writes DAIF with the register form of MSR: unlike MSR DAIFClr, a vCPU
 * emulator can trap it (it is a system-register write) and take a pending
 * IRQ right there. */
static inline void write_daif(uint64_t daif)
{
    __asm__ volatile("msr daif, %0\n\tisb" ::"r"(daif) : "memory");
}

static bool any_moved(const gn_event *const *evs, const uint64_t *seen, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (evs[i]->count != seen[i])
            return true;
    }
    return false;
}

void gn_event_wait_any(const gn_event *const *evs, const uint64_t *seen, size_t n)
{
    uint64_t daif = gn_irq_save();
    while (!any_moved(evs, seen, n)) {
        gn_wfi();                    /* wakes on a pending IRQ although PSTATE.I is set */
        write_daif(daif & ~DAIF_I);  /* the IRQ vector may take it here ... */
        gn_irq_disable();
        (void)gn_gic_dispatch();     /* ... or it is acknowledged and handled here */
    }
    gn_irq_restore(daif);
}

unsigned gn_ipc_poll(void)
{
    uint64_t daif = gn_irq_save();
    unsigned handled = gn_gic_dispatch();
    gn_irq_restore(daif);
    return handled;
}

void gn_event_wait(const gn_event *ev, uint64_t seen)
{
    gn_event_wait_any(&ev, &seen, 1);
}
