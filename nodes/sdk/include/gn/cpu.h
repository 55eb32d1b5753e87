/*
 * Per-vCPU facts and control: cpu index, idling, interrupt masking, entry
 * hooks that an image provides (main, secondary_main, irq_handler).
 */
#ifndef GN_CPU_H
#define GN_CPU_H

#include <stdint.h>

/* Boot vCPU: called by _start with X0 = DTB address. Returning powers the system off. */
int main(const void *dtb);

/* Secondary vCPU `cpu`: called after PSCI CPU_ON (see gn_cpu_start). Returning
 * powers that vCPU off. The SDK's weak default returns at once. */
void secondary_main(unsigned cpu);

/* IRQ hook, called from the EL1 IRQ vector with IRQs masked. The SDK's weak
 * default calls gn_gic_dispatch() (gn/gic.h): acknowledge through ICC_IAR1_EL1,
 * run the handler registered for that INTID, EOI, until none is pending. */
void irq_handler(void);

/* Entry point for secondaries (X0 = cpu index); pass it to PSCI CPU_ON. */
void gn_secondary_entry(void);

/* Prints the exception syndrome and powers the system off (vector table). */
_Noreturn void gn_exception_fatal(uint64_t kind, uint64_t esr, uint64_t elr, uint64_t far);

/* Returns this vCPU's index (0 on the boot vCPU, the CPU_ON context_id on others). */
static inline unsigned gn_cpu_id(void)
{
    uint64_t v;
    __asm__ volatile("mrs %0, tpidr_el1" : "=r"(v));
    return (unsigned)v;
}

/* Parks this vCPU until an interrupt or event is pending (may wake spuriously). */
static inline void gn_wfi(void)
{
    __asm__ volatile("wfi" ::: "memory");
}

/* Masks IRQs; returns the previous DAIF value for gn_irq_restore. */
static inline uint64_t gn_irq_save(void)
{
    uint64_t daif;
    __asm__ volatile("mrs %0, daif\n\tmsr daifset, #2" : "=r"(daif)::"memory");
    return daif;
}

/* Restores DAIF as returned by gn_irq_save. */
static inline void gn_irq_restore(uint64_t daif)
{
    __asm__ volatile("msr daif, %0" ::"r"(daif) : "memory");
}

/* Unmasks IRQs on this vCPU. */
static inline void gn_irq_enable(void)
{
    __asm__ volatile("msr daifclr, #2" ::: "memory");
}

/* Parks this vCPU forever (IRQs, if unmasked, are still taken). */
_Noreturn static inline void gn_idle_forever(void)
{
    for (;;)
        gn_wfi();
}

#endif /* GN_CPU_H */
