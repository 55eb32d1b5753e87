/*
 * testsvc: what the service files share. Each service is
 * `void svc_<name>(const gn_dt *dt, const char *args)`; main.c maps the
 * bootarg svc=<name> to it. See nodes/README.md for every service's output.
 *
 * Label conventions, from the service's point of view:
 *   msgqueue 1   requests: client -> service (mq-fill/mq-stream send on it,
 *                ipc-echo/mq-drain/mq-sink/db-proxy receive on it)
 *   msgqueue 2   replies: service -> client (ipc-echo, db-proxy send on it)
 *   doorbell 3   client -> service ("go", ping)
 *   doorbell 4   service -> client (pong)
 *   doorbell 5   db-flags: a level-triggered doorbell the peer rings
 *   doorbell 6   db-flags: an edge-triggered doorbell the peer rings
 */
#ifndef TESTSVC_SVC_H
#define TESTSVC_SVC_H

#include <gn/sdk.h>

#define SVC_REQUEST_QUEUE 1U
#define SVC_REPLY_QUEUE 2U
#define SVC_PING_DOORBELL 3U
#define SVC_PONG_DOORBELL 4U
#define SVC_LEVEL_DOORBELL 5U
#define SVC_EDGE_DOORBELL 6U
#define SVC_STREAM_MESSAGE 240U /* mq-stream / mq-sink message size */

typedef void svc_fn(const gn_dt *dt, const char *args);

svc_fn svc_ipc_echo, svc_mq_ping, svc_db_ping, svc_db_pong;
svc_fn svc_mq_fill, svc_mq_drain, svc_mq_stream, svc_mq_sink;
svc_fn svc_db_flags, svc_db_proxy, svc_bad_cap;
svc_fn svc_bench_copy, svc_bench_rm;

/* The virtual counter (CNTVCT_EL0) and its frequency (CNTFRQ_EL0). */
static inline uint64_t svc_ticks(void)
{
    uint64_t v;
    __asm__ volatile("isb\n\tmrs %0, cntvct_el0" : "=r"(v)::"memory");
    return v;
}

static inline uint64_t svc_tick_hz(void)
{
    uint64_t v;
    __asm__ volatile("mrs %0, cntfrq_el0" : "=r"(v));
    return v;
}

/* Reads n=<decimal> for service `name`; prints why on failure. */
bool svc_iterations(const char *args, const char *name, uint64_t *n);

/* Opens queue `label` on `side`, or prints "svc <name>: error: ..." and returns false. */
bool svc_open_msgq(gn_msgq *q, const gn_dt *dt, gn_hyp_kind side, uint32_t label,
                   const char *name);

/* Opens doorbell `label` (this VM receives), or prints why and returns false. */
bool svc_open_doorbell(gn_doorbell *db, const gn_dt *dt, uint32_t label, const char *name);

/* Opens doorbell source `label` (this VM rings), or prints why and returns false. */
bool svc_open_source(gn_doorbell_source *src, const gn_dt *dt, uint32_t label, const char *name);

/* Prints "<name>: <count> <what> in <ticks> ticks (<hz> Hz)". */
void svc_print_elapsed(const char *name, uint64_t count, const char *what, uint64_t ticks);

#endif /* TESTSVC_SVC_H */
