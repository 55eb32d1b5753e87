/*
 * testsvc: opening IPC objects with uniform error lines, and timing output.
 */
#include "svc.h"

bool svc_open_msgq(gn_msgq *q, const gn_dt *dt, gn_hyp_kind side, uint32_t label,
                   const char *name)
{
    int err = gn_msgq_open(q, dt, side, label);
    if (err == 0)
        return true;
    gn_printf("svc %s: error: %s %u: %s\n", name, gn_hyp_kind_name(side), label,
              gn_ipc_strerror(err));
    return false;
}

bool svc_open_doorbell(gn_doorbell *db, const gn_dt *dt, uint32_t label, const char *name)
{
    int err = gn_doorbell_open(db, dt, label);
    if (err == 0)
        return true;
    gn_printf("svc %s: error: doorbell %u: %s\n", name, label, gn_ipc_strerror(err));
    return false;
}

bool svc_open_source(gn_doorbell_source *src, const gn_dt *dt, uint32_t label, const char *name)
{
    int err = gn_doorbell_source_open(src, dt, label);
    if (err == 0)
        return true;
    gn_printf("svc %s: error: doorbell-source %u: %s\n", name, label, gn_ipc_strerror(err));
    return false;
}

void svc_print_elapsed(const char *name, uint64_t count, const char *what, uint64_t ticks)
{
    gn_printf("%s: %lu %s in %lu ticks (%lu Hz)\n", name, count, what, ticks, svc_tick_hz());
}
