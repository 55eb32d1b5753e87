/*
 * testsvc: guest "services" for the emulator's integration tests.
 *
 * The bootarg svc=<name> picks the service. Each one prints
 * "svc <name>: start" first; see nodes/README.md for what each does and
 * prints. Unknown service: "svc <name>: unknown", then SYSTEM_OFF.
 */
#include "svc.h"

/* See bench.S. */
uint64_t gn_bench_alu(uint64_t n);

/* Far above RAM, outside the MMIO window: no memory and no device. */
#define UNMAPPED_ADDRESS 0x1000000000UL
/* An unallocated SMCCC vendor-hypervisor function id. */
#define UNKNOWN_SMCCC_ID 0xC60081FFU

struct service {
    const char *name;
    svc_fn *run;
};

static void print_regs(const char *what, uint64_t x0, uint64_t x1, uint64_t x2, uint64_t x3)
{
    gn_printf("hvc %s: x0=%016lx x1=%016lx x2=%016lx x3=%016lx\n", what, x0, x1, x2, x3);
}

static void print_result(const char *what, gn_regs r)
{
    print_regs(what, r.x[0], r.x[1], r.x[2], r.x[3]);
}

static void run_hvc_probe(const gn_dt *dt, const char *args)
{
    (void)dt;
    (void)args;
    struct gn_hyp_identity id = gunyah_hypervisor_identify();
    print_regs("identify", id.api_info, id.api_flags0, id.api_flags1, id.api_flags2);
    id = gunyah_hypervisor_identify_smccc();
    print_regs("identify-smccc", id.api_info, id.api_flags0, id.api_flags1, id.api_flags2);
    print_result("call-uid", gn_smccc(GN_SMCCC_CALL_UID));
    print_result("revision", gn_smccc(GN_SMCCC_REVISION));
    print_result("psci-version", gn_smccc(GN_PSCI_VERSION));
    print_result("unimplemented", gn_hvc_native(GN_HVC_RESERVED_6008));
    print_result("unknown-smccc", gn_smccc(UNKNOWN_SMCCC_ID));
    gn_printf("svc hvc-probe: done\n");
}

static void run_fault_undef(const gn_dt *dt, const char *args)
{
    (void)dt;
    (void)args;
    __asm__ volatile(".word 0x00000000" ::: "memory"); /* udf #0 */
    gn_printf("svc fault-undef: survived\n");
}

static void run_fault_unmapped(const gn_dt *dt, const char *args)
{
    (void)dt;
    (void)args;
    uint32_t v = gn_mmio_read32(UNMAPPED_ADDRESS);
    gn_printf("svc fault-unmapped: survived, read %08x\n", v);
}

static void run_reset(const gn_dt *dt, const char *args)
{
    (void)dt;
    (void)args;
    gn_printf("svc reset: boot\n");
    gn_psci_system_reset();
}

static void run_off(const gn_dt *dt, const char *args)
{
    (void)dt;
    (void)args;
}

static void run_spin(const gn_dt *dt, const char *args)
{
    (void)dt;
    (void)args;
    __asm__ volatile("1:\tadd x9, x9, #1\n\tb 1b" ::: "x9");
}

static void run_echo(const gn_dt *dt, const char *args)
{
    (void)dt;
    (void)args;
    gn_console_echo_loop();
}

bool svc_iterations(const char *args, const char *name, uint64_t *n)
{
    if (gn_bootargs_get_u64(args, "n", n))
        return true;
    gn_printf("svc %s: error: needs bootarg n=<decimal iterations>\n", name);
    return false;
}

static void run_bench_alu(const gn_dt *dt, const char *args)
{
    (void)dt;
    uint64_t n;
    if (!svc_iterations(args, "bench-alu", &n))
        return;
    gn_bench_alu(n);
    gn_printf("bench-alu: done\n");
}

static void run_bench_hvc(const gn_dt *dt, const char *args)
{
    (void)dt;
    uint64_t n;
    if (!svc_iterations(args, "bench-hvc", &n))
        return;
    for (uint64_t i = 0; i < n; i++)
        gunyah_hypervisor_identify();
    gn_printf("bench-hvc: done\n");
}

static const struct service services[] = {
    {"hvc-probe", run_hvc_probe},
    {"fault-undef", run_fault_undef},
    {"fault-unmapped", run_fault_unmapped},
    {"reset", run_reset},
    {"off", run_off},
    {"spin", run_spin},
    {"echo", run_echo},
    {"bench-alu", run_bench_alu},
    {"bench-hvc", run_bench_hvc},
    {"bench-copy", svc_bench_copy},
    {"bench-rm", svc_bench_rm},
    {"ipc-echo", svc_ipc_echo},
    {"mq-ping", svc_mq_ping},
    {"db-ping", svc_db_ping},
    {"db-pong", svc_db_pong},
    {"mq-fill", svc_mq_fill},
    {"mq-drain", svc_mq_drain},
    {"mq-stream", svc_mq_stream},
    {"mq-sink", svc_mq_sink},
    {"db-flags", svc_db_flags},
    {"db-proxy", svc_db_proxy},
    {"bad-cap", svc_bad_cap},
};

static const struct service *find_service(gn_str name)
{
    for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++) {
        if (gn_str_eq(name, services[i].name))
            return &services[i];
    }
    return NULL;
}

int main(const void *dtb)
{
    gn_dt dt;
    const char *args = NULL;
    int err = gn_dt_init(&dt, dtb);
    if (err == GN_DT_OK)
        args = gn_dt_bootargs(&dt);
    else
        gn_printf("svc: cannot read the DTB: %s\n", gn_dt_strerror(err));

    gn_str name;
    if (!gn_bootargs_get(args, "svc", &name)) {
        gn_printf("svc: error: needs bootarg svc=<service>\n");
        gn_psci_system_off();
    }
    const struct service *svc = find_service(name);
    if (svc == NULL) {
        gn_printf("svc %.*s: unknown\n", (int)name.len, name.ptr);
        gn_psci_system_off();
    }
    gn_printf("svc %s: start\n", svc->name);
    svc->run(&dt, args);
    gn_psci_system_off();
}
