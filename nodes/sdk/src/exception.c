/*
 * Exception reporting and the weak default hooks for images (the IRQ hook
 * dispatches through the GIC driver, gn/gic.h).
 */
#include <gn/console.h>
#include <gn/cpu.h>
#include <gn/gic.h>

static const char *const exception_types[4] = {"sync", "irq", "fiq", "serror"};
static const char *const exception_origins[4] = {"el1t", "el1h", "el0-64", "el0-32"};

_Noreturn void gn_exception_fatal(uint64_t kind, uint64_t esr, uint64_t elr, uint64_t far)
{
    gn_panic("unhandled %s exception from %s on cpu %u: esr=%016lx elr=%016lx far=%016lx",
             exception_types[kind & 3], exception_origins[(kind >> 2) & 3], gn_cpu_id(), esr,
             elr, far);
}

/* The default IRQ hook: the GIC dispatcher (handlers registered with gn_irq_register). */
__attribute__((weak)) void irq_handler(void)
{
    gn_gic_dispatch();
}

__attribute__((weak)) void secondary_main(unsigned cpu)
{
    (void)cpu;
}
