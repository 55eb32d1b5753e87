/*
 * GICv3 driver: distributor, redistributors, CPU interface, and IRQ dispatch.
 *
 * The emulator's vGIC behaves like GICv3 hardware with affinity routing, one
 * security state and every interrupt in Group 1 (5 priority bits: priorities
 * are multiples of 8, lower is more urgent). Bring-up:
 *
 *   gn_gic_init();                      boot vCPU, once: distributor on
 *   gn_gic_cpu_init();                  every vCPU that takes interrupts
 *   gn_irq_register(intid, fn, arg);    who handles an INTID (any vCPU)
 *   gn_gic_enable_spi(33, GN_GIC_PRIO_DEFAULT, 0, false);   or _private()
 *   gn_irq_enable();                    unmask PSTATE.I (gn/cpu.h)
 *
 * The SDK's default irq_handler() (the IRQ vector's C hook) is
 * gn_gic_dispatch(): it acknowledges (ICC_IAR1_EL1), runs the registered
 * handler with IRQs masked, and ends the interrupt (ICC_EOIR1_EL1), until the
 * CPU interface reports nothing pending (INTID 1023). A level-sensitive source
 * must be quietened by its handler (device register, doorbell_receive, ...)
 * or it is taken again at once. An INTID with no handler is disabled and
 * counted (gn_gic_unhandled), so a stray level line cannot storm.
 */
#ifndef GN_GIC_H
#define GN_GIC_H

#include <stdbool.h>
#include <stdint.h>

#define GN_GIC_SPURIOUS 1023U     /* ICC_IAR1_EL1: nothing to acknowledge */
#define GN_GIC_INTID_LIMIT 1020U  /* INTIDs 0..1019: SGIs 0-15, PPIs 16-31, SPIs 32+ */
#define GN_GIC_SPI_BASE 32U
#define GN_GIC_PRIO_DEFAULT 0xA0U /* a middle priority (passes the PMR of 0xF8) */

/* An interrupt handler: runs in IRQ context (IRQs masked) on the vCPU that
 * acknowledged intid. */
typedef void (*gn_irq_handler)(unsigned intid, void *arg);

/* Enables Group 1 forwarding in the distributor (boot vCPU, once). */
void gn_gic_init(void);

/* Prepares the calling vCPU's redistributor and CPU interface: awake, PMR
 * 0xFF (every priority passes), BPR1 0, EOImode 0, Group 1 enabled. PSTATE.I
 * is left as it is: unmask with gn_irq_enable(). */
void gn_gic_cpu_init(void);

/* Sets the handler of intid (NULL removes it). Returns 0, or -1 for a bad INTID. */
int gn_irq_register(unsigned intid, gn_irq_handler handler, void *arg);

/* Configures SPI intid (32..1019): priority, trigger (edge or level), route to
 * vCPU cpu (MPIDR Aff0), then enables it. Returns 0, or -1 for a bad argument. */
int gn_gic_enable_spi(unsigned intid, uint8_t priority, unsigned cpu, bool edge);

/* Sets the priority of SGI/PPI intid (0..31) on the calling vCPU's
 * redistributor and enables it there. Returns 0, or -1 for a bad INTID. */
int gn_gic_enable_private(unsigned intid, uint8_t priority);

/* Disables intid: an SPI everywhere, an SGI/PPI on the calling vCPU. Returns 0 or -1. */
int gn_gic_disable(unsigned intid);

/* Sends SGI intid (0..15) to vCPU cpu (0..15). */
void gn_gic_send_sgi(unsigned intid, unsigned cpu);

/* Acknowledges and handles every signalled interrupt; returns how many. */
unsigned gn_gic_dispatch(void);

/* Interrupts acknowledged that had no handler (each was disabled). */
extern volatile uint64_t gn_gic_unhandled;

/* Masks IRQs on the calling vCPU (the counterpart of gn_irq_enable in gn/cpu.h). */
static inline void gn_irq_disable(void)
{
    __asm__ volatile("msr daifset, #2" ::: "memory");
}

#endif /* GN_GIC_H */
