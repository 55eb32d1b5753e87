/*
 * smp: brings up every vCPU in the DT with PSCI CPU_ON; all of them add 1
 * to a shared counter ITERATIONS times with LDXR/STXR; the boot vCPU checks
 * the total, then powers off (bootarg "poweroff") or idles.
 */
#include <gn/sdk.h>

#define ITERATIONS 100000U

static volatile uint64_t counter;
static volatile uint64_t finished; /* vCPUs done adding (or never started) */

static void add_to_counter(void)
{
    for (unsigned i = 0; i < ITERATIONS; i++)
        gn_atomic_add_u64(&counter, 1);
    gn_dmb();
    gn_atomic_add_u64(&finished, 1);
}

void secondary_main(unsigned cpu)
{
    gn_printf("cpu %u online\n", cpu);
    add_to_counter();
}

/* Returns the number of vCPUs to use (1..GN_MAX_CPUS), from /cpus. */
static unsigned cpu_count(const gn_dt *dt)
{
    int n = gn_dt_cpu_count(dt);
    if (n < 1) {
        gn_printf("smp: no cpus in the DT (%s); using 1\n",
                  n < 0 ? gn_dt_strerror(n) : "empty /cpus");
        return 1;
    }
    if (n > GN_MAX_CPUS) {
        gn_printf("smp: %d cpus in the DT; the SDK supports %d\n", n, GN_MAX_CPUS);
        return GN_MAX_CPUS;
    }
    return (unsigned)n;
}

static void start_secondaries(unsigned ncpus)
{
    for (unsigned cpu = 1; cpu < ncpus; cpu++) {
        int32_t rc = gn_cpu_start(cpu);
        if (rc != GN_PSCI_SUCCESS) {
            gn_printf("smp: CPU_ON(%u) failed: %d\n", cpu, rc);
            gn_atomic_add_u64(&finished, 1);
        }
    }
}

int main(const void *dtb)
{
    gn_dt dt;
    const char *args = NULL;
    unsigned ncpus = 1;
    int err = gn_dt_init(&dt, dtb);
    if (err == GN_DT_OK) {
        args = gn_dt_bootargs(&dt);
        ncpus = cpu_count(&dt);
    } else {
        gn_printf("smp: cannot read the DTB: %s\n", gn_dt_strerror(err));
    }

    start_secondaries(ncpus);
    add_to_counter();
    while (gn_load_acquire_u64(&finished) < ncpus)
        __asm__ volatile("yield");

    uint64_t total = gn_load_acquire_u64(&counter);
    uint64_t expected = (uint64_t)ncpus * ITERATIONS;
    gn_printf("smp: %u cpus, counter=%lu (expected %lu)\n", ncpus, total, expected);
    gn_printf(total == expected ? "smp: ok\n" : "smp: FAIL\n");

    if (gn_bootargs_has(args, "poweroff"))
        gn_psci_system_off();
    gn_idle_forever();
}
