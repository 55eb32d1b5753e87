/*
 * testsvc: the Resource Manager RPC benchmark.
 *
 * bench-rm n=N  opens the RM client (gn/rm_rpc.h) and makes N VM_GET_VMID
 *               calls, the cheapest RM request: each is msgqueue_send, the
 *               RM's msgqueue_receive and msgqueue_send, and the reply's
 *               msgqueue_receive, with a virq each way. One untimed call
 *               first checks the answer; every timed call must return the
 *               same vmid. Prints
 *                 bench-rm: vmid 0x<v>
 *                 bench-rm: <N> calls ok
 *                 bench-rm: <N> calls in <T> ticks (<F> Hz)
 *               or "bench-rm: FAIL <what>" at the first failure.
 */
#include "svc.h"

static gn_rm rm; /* about 30 KiB: static storage */

static void print_failure(const char *call, uint64_t i, gn_rm_result r)
{
    if (r == GN_RM_ERR_HVC)
        gn_printf("bench-rm: FAIL %s %lu: transport error %ld (%s: %s)\n", call, i, r,
                  gn_rm_strerror((int)r), gunyah_error_name(rm.hvc_error));
    else
        gn_printf("bench-rm: FAIL %s %lu: %s (%ld)\n", call, i, gn_rm_result_name(r), r);
}

void svc_bench_rm(const gn_dt *dt, const char *args)
{
    uint64_t n;
    if (!svc_iterations(args, "bench-rm", &n))
        return;
    int err = gn_rm_open(&rm, dt);
    if (err != GN_RM_OK) {
        gn_printf("svc bench-rm: error: RM client: %s\n", gn_rm_strerror(err));
        return;
    }
    uint16_t vmid = 0;
    gn_rm_result r = gn_rm_vm_get_vmid(&rm, &vmid);
    if (r != 0) {
        print_failure("VM_GET_VMID", 0, r);
        return;
    }
    gn_printf("bench-rm: vmid 0x%x\n", vmid);
    uint64_t start = svc_ticks();
    for (uint64_t i = 1; i <= n; i++) {
        uint16_t again = 0;
        r = gn_rm_vm_get_vmid(&rm, &again);
        if (r != 0) {
            print_failure("VM_GET_VMID", i, r);
            return;
        }
        if (again != vmid) {
            gn_printf("bench-rm: FAIL VM_GET_VMID %lu: vmid 0x%x, first 0x%x\n", i, again, vmid);
            return;
        }
    }
    uint64_t ticks = svc_ticks() - start;
    gn_printf("bench-rm: %lu calls ok\n", n);
    svc_print_elapsed("bench-rm", n, "calls", ticks);
}
