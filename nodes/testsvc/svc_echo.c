/*
 * testsvc: echo services and their clients.
 *
 * ipc-echo  echoes msgqueue 1 onto msgqueue 2 and answers doorbell 3 on
 *           doorbell 4, forever, sleeping in WFI between interrupts.
 * mq-ping   sends n messages on queue 1 and checks each echo on queue 2.
 * db-ping   rings doorbell 3 n times, each time waiting for doorbell 4.
 * db-pong   answers doorbell 3 on doorbell 4, forever.
 * db-ping and db-pong open their doorbells in counting mode: on an edge
 * binding an interrupt costs no hypercall (see gn_doorbell_open_counting),
 * on a level binding they collect and check the flags.
 */
#include "svc.h"

#define MAX_MESSAGE 1024U

static uint8_t msg_buf[MAX_MESSAGE];
static uint8_t echo_buf[MAX_MESSAGE];

struct echo {
    gn_msgq rx, tx;
    gn_doorbell ping;
    gn_doorbell_source pong;
    bool queues, doorbells;
    uint64_t failures;
};

static bool echo_message(void *arg, const void *msg, size_t size)
{
    struct echo *e = arg;
    gn_error_t err = gn_msgq_send(&e->tx, msg, size, 0, NULL);
    if (err != GN_OK && e->failures++ < 10)
        gn_printf("ipc-echo: msgqueue_send: %s\n", gunyah_error_name(err));
    return true;
}

static void echo_doorbell(struct echo *e)
{
    uint64_t flags = gn_doorbell_take(&e->ping);
    if (flags == 0)
        return;
    gn_error_t err = gn_doorbell_ring(&e->pong, flags, NULL);
    if (err != GN_OK && e->failures++ < 10)
        gn_printf("ipc-echo: doorbell_send: %s\n", gunyah_error_name(err));
}

void svc_ipc_echo(const gn_dt *dt, const char *args)
{
    (void)args;
    static struct echo e;
    e.queues = gn_msgq_open(&e.rx, dt, GN_HYP_MSGQUEUE_RX, SVC_REQUEST_QUEUE) == 0 &&
               gn_msgq_open(&e.tx, dt, GN_HYP_MSGQUEUE_TX, SVC_REPLY_QUEUE) == 0;
    e.doorbells = gn_doorbell_open(&e.ping, dt, SVC_PING_DOORBELL) == 0 &&
                  gn_doorbell_source_open(&e.pong, dt, SVC_PONG_DOORBELL) == 0;
    if (!e.queues && !e.doorbells) {
        gn_printf("svc ipc-echo: error: needs msgqueues 1 and 2, or doorbells 3 and 4\n");
        return;
    }
    gn_printf("ipc-echo: ready: msgqueue 1 -> 2 %s, doorbell 3 -> 4 %s\n",
              e.queues ? "yes" : "no", e.doorbells ? "yes" : "no");
    const gn_event *events[2] = {&e.rx.irq, &e.ping.fired};
    for (;;) {
        uint64_t seen[2] = {gn_event_read(events[0]), gn_event_read(events[1])};
        if (e.queues) {
            gn_error_t err = gn_msgq_drain(&e.rx, msg_buf, sizeof(msg_buf), echo_message, &e, NULL);
            if (err != GN_OK && e.failures++ < 10)
                gn_printf("ipc-echo: msgqueue_receive: %s\n", gunyah_error_name(err));
        }
        if (e.doorbells)
            echo_doorbell(&e);
        gn_event_wait_any(events, seen, 2);
    }
}

/* Fills msg_buf with message i of a ping run; returns its length (1..max). */
static size_t ping_message(uint64_t i, size_t max)
{
    size_t len = 1U + (size_t)((i * 37U) % max);
    for (size_t j = 0; j < len; j++)
        msg_buf[j] = (uint8_t)(i * 13U + j);
    return len;
}

static bool ping_round(gn_msgq *tx, gn_msgq *rx, uint64_t i, size_t max)
{
    size_t len = ping_message(i, max), got = 0;
    gn_error_t err = gn_msgq_send(tx, msg_buf, len, 0, NULL);
    if (err == GN_OK)
        err = gn_msgq_recv(rx, echo_buf, sizeof(echo_buf), &got, NULL);
    if (err != GN_OK) {
        gn_printf("mq-ping: FAIL message %lu: %s\n", i, gunyah_error_name(err));
        return false;
    }
    if (got != len || !gn_memeq(msg_buf, echo_buf, len)) {
        gn_printf("mq-ping: FAIL message %lu: sent %lu bytes, echo of %lu bytes differs\n", i,
                  len, got);
        return false;
    }
    return true;
}

void svc_mq_ping(const gn_dt *dt, const char *args)
{
    static gn_msgq tx, rx;
    uint64_t n;
    if (!svc_iterations(args, "mq-ping", &n) ||
        !svc_open_msgq(&tx, dt, GN_HYP_MSGQUEUE_TX, SVC_REQUEST_QUEUE, "mq-ping") ||
        !svc_open_msgq(&rx, dt, GN_HYP_MSGQUEUE_RX, SVC_REPLY_QUEUE, "mq-ping"))
        return;
    size_t max = tx.res.message_size != 0 ? tx.res.message_size : 240U;
    max = max < MAX_MESSAGE ? max : MAX_MESSAGE;
    uint64_t start = svc_ticks();
    for (uint64_t i = 1; i <= n; i++) {
        if (!ping_round(&tx, &rx, i, max))
            return;
    }
    uint64_t ticks = svc_ticks() - start;
    gn_printf("mq-ping: %lu echoes ok\n", n);
    svc_print_elapsed("mq-ping", n, "round trips", ticks);
}

static uint64_t round_flag(uint64_t round)
{
    return 1UL << (round % 64U);
}

static const char *doorbell_mode(const gn_doorbell *db)
{
    return db->counting ? "edge, counting" : "level, collecting flags";
}

/* Checks what db-ping's wait returned for round i; prints a failure. */
static bool pong_ok(const gn_doorbell *pong, uint64_t i, uint64_t got)
{
    uint64_t want = pong->counting ? 1U : round_flag(i);
    if (got == want)
        return true;
    gn_printf("db-ping: FAIL round %lu: %s 0x%lx, expected 0x%lx\n", i,
              pong->counting ? "interrupts" : "flags", got, want);
    return false;
}

void svc_db_ping(const gn_dt *dt, const char *args)
{
    static gn_doorbell pong;
    static gn_doorbell_source ping;
    uint64_t n;
    if (!svc_iterations(args, "db-ping", &n) ||
        !svc_open_source(&ping, dt, SVC_PING_DOORBELL, "db-ping"))
        return;
    int err = gn_doorbell_open_counting(&pong, dt, SVC_PONG_DOORBELL);
    if (err != 0) {
        gn_printf("svc db-ping: error: doorbell %u: %s\n", SVC_PONG_DOORBELL,
                  gn_ipc_strerror(err));
        return;
    }
    gn_printf("db-ping: ready (doorbell %u: %s)\n", SVC_PONG_DOORBELL, doorbell_mode(&pong));
    uint64_t start = svc_ticks();
    for (uint64_t i = 1; i <= n; i++) {
        gn_error_t e = gn_doorbell_ring(&ping, round_flag(i), NULL);
        if (e != GN_OK) {
            gn_printf("db-ping: FAIL round %lu: doorbell_send: %s\n", i, gunyah_error_name(e));
            return;
        }
        if (!pong_ok(&pong, i, gn_doorbell_wait(&pong)))
            return;
    }
    uint64_t ticks = svc_ticks() - start;
    gn_printf("db-ping: %lu round trips ok\n", n);
    svc_print_elapsed("db-ping", n, "round trips", ticks);
}

void svc_db_pong(const gn_dt *dt, const char *args)
{
    (void)args;
    static gn_doorbell ping;
    static gn_doorbell_source pong;
    int err = gn_doorbell_open_counting(&ping, dt, SVC_PING_DOORBELL);
    if (err != 0) {
        gn_printf("svc db-pong: error: doorbell %u: %s\n", SVC_PING_DOORBELL,
                  gn_ipc_strerror(err));
        return;
    }
    if (!svc_open_source(&pong, dt, SVC_PONG_DOORBELL, "db-pong"))
        return;
    gn_printf("db-pong: ready (doorbell %u: %s)\n", SVC_PING_DOORBELL, doorbell_mode(&ping));
    for (;;) {
        uint64_t got = gn_doorbell_wait(&ping);
        gn_error_t e = gn_doorbell_ring(&pong, ping.counting ? 1U : got, NULL);
        if (e != GN_OK)
            gn_printf("db-pong: doorbell_send: %s\n", gunyah_error_name(e));
    }
}
