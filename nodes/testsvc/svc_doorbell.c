/*
 * testsvc: doorbell semantics and capability errors.
 *
 * db-proxy  runs doorbell_send for a peer: requests on queue 1, replies on 2.
 * db-flags  drives a db-proxy peer through a fixed script of sends against
 *           doorbells 5 (level) and 6 (edge) and runs receive / mask / reset
 *           itself, printing old_flags and interrupt counts after each step.
 * bad-cap   calls doorbell_send (and friends) with caps it must not use and
 *           prints each error code.
 *
 * db-flags counts interrupts with its own handlers. Every step ends with a
 * round trip through the proxy and then polls the GIC (gn_ipc_poll): a
 * doorbell interrupt the step raised reached this VM before the proxy's
 * reply did, so it is signalled by then and each printed count is final. A
 * level handler disables its INTID at the distributor (the line stays high
 * until a receive) and the script re-enables it after each local operation.
 */
#include "svc.h"

#define PROXY_NOP 0U
#define PROXY_SEND 1U
#define WATCH_PRIORITY 0x80U
#define ALL (~(uint64_t)0)
#define MAX_SOURCES 8U

struct proxy_request {
    uint32_t op;
    uint32_t label;
    uint64_t flags;
};

struct proxy_reply {
    int64_t error;
    uint64_t old_flags;
};

/* ---- db-proxy --------------------------------------------------------------------------- */

static struct proxy_reply proxy_send(const gn_dt *dt, const struct proxy_request *req)
{
    static gn_doorbell_source sources[MAX_SOURCES];
    static unsigned opened;
    struct proxy_reply reply = {0};
    gn_doorbell_source *src = NULL;
    for (unsigned i = 0; i < opened && src == NULL; i++) {
        if (sources[i].res.label == req->label)
            src = &sources[i];
    }
    if (src == NULL && opened < MAX_SOURCES &&
        gn_doorbell_source_open(&sources[opened], dt, req->label) == 0)
        src = &sources[opened++];
    if (src == NULL)
        reply.error = GN_ERROR_ARGUMENT_INVALID; /* no such doorbell source here */
    else
        reply.error = gn_doorbell_ring(src, req->flags, &reply.old_flags);
    return reply;
}

void svc_db_proxy(const gn_dt *dt, const char *args)
{
    (void)args;
    static gn_msgq rx, tx;
    if (!svc_open_msgq(&rx, dt, GN_HYP_MSGQUEUE_RX, SVC_REQUEST_QUEUE, "db-proxy") ||
        !svc_open_msgq(&tx, dt, GN_HYP_MSGQUEUE_TX, SVC_REPLY_QUEUE, "db-proxy"))
        return;
    gn_printf("db-proxy: ready\n");
    for (;;) {
        struct proxy_request req = {0};
        size_t size = 0;
        gn_error_t err = gn_msgq_recv(&rx, &req, sizeof(req), &size, NULL);
        struct proxy_reply reply = {.error = err};
        if (err == GN_OK && size != sizeof(req))
            reply.error = GN_ERROR_ARGUMENT_SIZE;
        else if (err == GN_OK && req.op == PROXY_SEND)
            reply = proxy_send(dt, &req);
        gn_msgq_send(&tx, &reply, sizeof(reply), 0, NULL);
    }
}

/* ---- db-flags --------------------------------------------------------------------------- */

struct watched {
    gn_hyp_cap res;
    const char *binding; /* "level" or "edge", from the DT */
    volatile uint64_t irqs;
};

struct flags_test {
    gn_msgq requests, replies;
    struct watched *w;
};

static void watched_irq(unsigned intid, void *arg)
{
    struct watched *w = arg;
    w->irqs = w->irqs + 1U;
    if (!w->res.edge)
        gn_gic_disable(intid);
}

static bool open_watched(struct watched *w, const gn_dt *dt, uint32_t label)
{
    int err = gn_hyp_find(dt, GN_HYP_DOORBELL, label, &w->res);
    if (err == 0 && w->res.intid == GN_HYP_NO_INTID)
        err = GN_IPC_ERR_NO_IRQ;
    if (err == 0)
        err = gn_ipc_irq_attach(w->res.intid, w->res.edge, WATCH_PRIORITY, watched_irq, w);
    if (err != 0) {
        gn_printf("svc db-flags: error: doorbell %u: %s\n", label, gn_ipc_strerror(err));
        return false;
    }
    w->binding = w->res.edge ? "edge" : "level";
    return true;
}

/* One request through the proxy; returns its reply (error set on failure). */
static struct proxy_reply remote(struct flags_test *t, uint32_t op, uint64_t flags)
{
    struct proxy_request req = {op, t->w->res.label, flags};
    struct proxy_reply reply = {0};
    size_t size = 0;
    gn_error_t err = gn_msgq_send(&t->requests, &req, sizeof(req), 0, NULL);
    if (err == GN_OK)
        err = gn_msgq_recv(&t->replies, &reply, sizeof(reply), &size, NULL);
    if (err != GN_OK)
        reply.error = err;
    (void)gn_ipc_poll(); /* take the doorbell interrupts this step raised */
    return reply;
}

/* Prints one step: old flags (send/receive), "OK" (mask/reset) or the error. */
static void print_step(struct flags_test *t, const char *step, gn_error_t err,
                       const uint64_t *old)
{
    if (err != GN_OK)
        gn_printf("db-flags: %s %s: error %s irqs=%lu\n", t->w->binding, step,
                  gunyah_error_name(err), t->w->irqs);
    else if (old != NULL)
        gn_printf("db-flags: %s %s: old=0x%lx irqs=%lu\n", t->w->binding, step, *old, t->w->irqs);
    else
        gn_printf("db-flags: %s %s: OK irqs=%lu\n", t->w->binding, step, t->w->irqs);
}

static void step_send(struct flags_test *t, uint64_t flags)
{
    struct proxy_reply r = remote(t, PROXY_SEND, flags);
    char step[40];
    gn_snprintf(step, sizeof(step), "send 0x%lx", flags);
    print_step(t, step, r.error, &r.old_flags);
}

/* After a local call: re-enable a level INTID, then settle with a round trip. */
static void settle(struct flags_test *t)
{
    if (!t->w->res.edge)
        gn_gic_enable_spi(t->w->res.intid, WATCH_PRIORITY, gn_cpu_id(), false);
    (void)remote(t, PROXY_NOP, 0);
}

static void step_receive(struct flags_test *t, uint64_t clear)
{
    uint64_t old = 0;
    gn_error_t err = gunyah_doorbell_receive(t->w->res.cap, clear, &old);
    settle(t);
    char step[40];
    gn_snprintf(step, sizeof(step), "receive 0x%lx", clear);
    print_step(t, step, err, &old);
}

static void step_mask(struct flags_test *t, uint64_t enable, uint64_t ack)
{
    gn_error_t err = gunyah_doorbell_mask(t->w->res.cap, enable, ack);
    settle(t);
    char step[64];
    gn_snprintf(step, sizeof(step), "mask enable=0x%lx ack=0x%lx", enable, ack);
    print_step(t, step, err, NULL);
}

static void step_reset(struct flags_test *t)
{
    gn_error_t err = gunyah_doorbell_reset(t->w->res.cap);
    settle(t);
    print_step(t, "reset", err, NULL);
}

/* The script, the same for both bindings (see nodes/README.md). */
static void run_script(struct flags_test *t)
{
    step_send(t, 0x1);
    step_send(t, 0x2);
    step_receive(t, 0x3);
    step_mask(t, 0x1, 0x0);
    step_send(t, 0x2);
    step_send(t, 0x1);
    step_receive(t, ALL);
    step_mask(t, ALL, 0x4);
    step_send(t, 0x4);
    step_receive(t, ALL);
    step_send(t, 0x4);
    step_reset(t);
    step_receive(t, ALL);
}

void svc_db_flags(const gn_dt *dt, const char *args)
{
    (void)args;
    static struct watched level, edge;
    static struct flags_test t;
    if (!svc_open_msgq(&t.requests, dt, GN_HYP_MSGQUEUE_TX, SVC_REQUEST_QUEUE, "db-flags") ||
        !svc_open_msgq(&t.replies, dt, GN_HYP_MSGQUEUE_RX, SVC_REPLY_QUEUE, "db-flags") ||
        !open_watched(&level, dt, SVC_LEVEL_DOORBELL) ||
        !open_watched(&edge, dt, SVC_EDGE_DOORBELL))
        return;
    gn_printf("db-flags: doorbell %u is %s (intid %u), doorbell %u is %s (intid %u)\n",
              SVC_LEVEL_DOORBELL, level.binding, level.res.intid, SVC_EDGE_DOORBELL,
              edge.binding, edge.res.intid);
    t.w = &level;
    run_script(&t);
    t.w = &edge;
    run_script(&t);
    gn_printf("db-flags: done\n");
}

/* ---- bad-cap ---------------------------------------------------------------------------- */

static void report(const char *call, const char *what, uint64_t cap, gn_error_t err)
{
    gn_printf("bad-cap: %s on %s cap 0x%lx: error %ld (%s)\n", call, what, cap, err,
              gunyah_error_name(err));
}

void svc_bad_cap(const gn_dt *dt, const char *args)
{
    (void)args;
    gn_hyp_cap rx, tx, mq;
    if (gn_hyp_find(dt, GN_HYP_DOORBELL, SVC_PING_DOORBELL, &rx) != 0 ||
        gn_hyp_find(dt, GN_HYP_DOORBELL_SOURCE, SVC_PONG_DOORBELL, &tx) != 0 ||
        gn_hyp_find(dt, GN_HYP_MSGQUEUE_TX, SVC_REQUEST_QUEUE, &mq) != 0) {
        gn_printf("svc bad-cap: error: needs doorbell 3, doorbell-source 4 and msgqueue 1 (tx)\n");
        return;
    }
    /* gunyah-net's cap IDs are (vmid << 16) | slot in a 1024-slot cspace
     * (the no-randomisation encoding): slot 1023 of ours is empty. */
    uint64_t empty = (rx.cap & ~0xFFFFUL) | 0x3FFUL;
    uint64_t invalid = ~(uint64_t)0;
    report("doorbell_send", "invalid", invalid, gunyah_doorbell_send(invalid, 1, NULL));
    report("doorbell_send", "empty", empty, gunyah_doorbell_send(empty, 1, NULL));
    report("doorbell_send", "msgqueue", mq.cap, gunyah_doorbell_send(mq.cap, 1, NULL));
    report("doorbell_send", "receive-only", rx.cap, gunyah_doorbell_send(rx.cap, 1, NULL));
    report("doorbell_receive", "send-only", tx.cap, gunyah_doorbell_receive(tx.cap, 1, NULL));
    uint8_t byte = 0;
    report("msgqueue_send", "doorbell", tx.cap,
           gunyah_msgqueue_send(tx.cap, 1, &byte, 0, NULL));
    gn_printf("bad-cap: done\n");
}
