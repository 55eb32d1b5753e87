/*
 * PSCI calls through the SMCCC conduit (HVC #0).
 *
 * Calls that must not return park the vCPU in WFI if the hypervisor returns
 * anyway, after saying so on the console.
 */
#include <gn/cpu.h>
#include <gn/hvc.h>
#include <gn/psci.h>
#include <gn/uart.h>

uint32_t gn_psci_version(void)
{
    return (uint32_t)gn_smccc(GN_PSCI_VERSION).x[0];
}

int32_t gn_psci_cpu_on(uint64_t target_mpidr, uintptr_t entry, uint64_t context_id)
{
    return (int32_t)gn_smccc(GN_PSCI_CPU_ON, target_mpidr, entry, context_id).x[0];
}

int32_t gn_cpu_start(unsigned cpu)
{
    return gn_psci_cpu_on(cpu, (uintptr_t)gn_secondary_entry, cpu);
}

_Noreturn static void returned(const char *call)
{
    const char *prefix = "gn: PSCI ";
    const char *suffix = " returned\n";
    for (const char *p = prefix; *p != '\0'; p++)
        gn_uart_putc(*p);
    for (const char *p = call; *p != '\0'; p++)
        gn_uart_putc(*p);
    for (const char *p = suffix; *p != '\0'; p++)
        gn_uart_putc(*p);
    gn_idle_forever();
}

_Noreturn void gn_psci_cpu_off(void)
{
    gn_smccc(GN_PSCI_CPU_OFF);
    returned("CPU_OFF");
}

_Noreturn void gn_psci_system_off(void)
{
    gn_smccc(GN_PSCI_SYSTEM_OFF);
    returned("SYSTEM_OFF");
}

_Noreturn void gn_psci_system_reset(void)
{
    gn_smccc(GN_PSCI_SYSTEM_RESET);
    returned("SYSTEM_RESET");
}
