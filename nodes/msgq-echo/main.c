/*
 * msgq-echo: a client sends messages on a message queue, a server echoes
 * each one back on a second queue, and the client checks every byte.
 *
 * Bootargs: role=client|server, n=N (client: messages to send, default 10),
 * poweroff (client: power off when done). Queue label 1 goes client ->
 * server, label 2 server -> client. Message i is the text
 * "message <i> of <n> from <vm>" followed by pattern bytes up to a length
 * that varies with i (1 to the queue's message size), so short and full
 * messages both cross.
 */
#include <gn/sdk.h>

#define TO_SERVER 1U
#define TO_CLIENT 2U
#define DEFAULT_COUNT 10U
#define MAX_MESSAGE 1024U

static uint8_t out_buf[MAX_MESSAGE];
static uint8_t in_buf[MAX_MESSAGE];

static bool open_queue(gn_msgq *q, const gn_dt *dt, gn_hyp_kind side, uint32_t label)
{
    int err = gn_msgq_open(q, dt, side, label);
    if (err != 0) {
        gn_printf("msgq-echo: cannot open %s queue %u: %s\n", gn_hyp_kind_name(side), label,
                  gn_ipc_strerror(err));
        return false;
    }
    return true;
}

/* Fills out_buf with message i; returns its length (1..max) and, in
 * *text_len, the length of its text part. */
static size_t make_message(uint64_t i, uint64_t n, const char *vm, size_t max, size_t *text_len)
{
    int text = gn_snprintf((char *)out_buf, max, "message %lu of %lu from %s", i, n, vm);
    *text_len = (size_t)text < max ? (size_t)text : max - 1;
    size_t len = 1 + (size_t)((i * 97U) % max);
    if (len < *text_len)
        len = *text_len;
    for (size_t j = *text_len; j < len; j++)
        out_buf[j] = (uint8_t)(i + j);
    return len;
}

static bool client_round(gn_msgq *tx, gn_msgq *rx, uint64_t i, uint64_t n, const char *vm)
{
    size_t max = tx->res.message_size != 0 ? tx->res.message_size : 240U;
    size_t text_len;
    size_t len = make_message(i, n, vm, max < MAX_MESSAGE ? max : MAX_MESSAGE, &text_len);
    gn_error_t err = gn_msgq_send(tx, out_buf, len, 0, NULL);
    if (err != GN_OK) {
        gn_printf("msgq-echo: FAIL message %lu: msgqueue_send: %s\n", i, gunyah_error_name(err));
        return false;
    }
    gn_printf("client: sent #%lu (%lu bytes): %.*s\n", i, len, (int)text_len,
              (const char *)out_buf);
    size_t got = 0;
    err = gn_msgq_recv(rx, in_buf, sizeof(in_buf), &got, NULL);
    if (err != GN_OK) {
        gn_printf("msgq-echo: FAIL message %lu: msgqueue_receive: %s\n", i,
                  gunyah_error_name(err));
        return false;
    }
    if (got != len || !gn_memeq(in_buf, out_buf, len)) {
        gn_printf("msgq-echo: FAIL message %lu: echo differs (%lu bytes back)\n", i, got);
        return false;
    }
    gn_printf("client: echo #%lu ok\n", i);
    return true;
}

static bool run_client(const gn_dt *dt, uint64_t n, const char *vm)
{
    static gn_msgq tx, rx;
    if (!open_queue(&tx, dt, GN_HYP_MSGQUEUE_TX, TO_SERVER) ||
        !open_queue(&rx, dt, GN_HYP_MSGQUEUE_RX, TO_CLIENT))
        return false;
    gn_printf("client: ready: sends on queue %u, reads echoes on queue %u\n", TO_SERVER,
              TO_CLIENT);
    for (uint64_t i = 1; i <= n; i++) {
        if (!client_round(&tx, &rx, i, n, vm))
            return false;
    }
    gn_printf("msgq-echo: %lu messages ok\n", n);
    return true;
}

struct server {
    gn_msgq rx, tx;
    uint64_t echoed;
};

static bool echo_one(void *arg, const void *msg, size_t size)
{
    struct server *s = arg;
    gn_error_t err = gn_msgq_send(&s->tx, msg, size, 0, NULL);
    s->echoed++;
    if (err != GN_OK)
        gn_printf("server: echo #%lu failed: %s\n", s->echoed, gunyah_error_name(err));
    else
        gn_printf("server: echo #%lu (%lu bytes)\n", s->echoed, size);
    return true;
}

static void run_server(const gn_dt *dt)
{
    static struct server s;
    if (!open_queue(&s.rx, dt, GN_HYP_MSGQUEUE_RX, TO_SERVER) ||
        !open_queue(&s.tx, dt, GN_HYP_MSGQUEUE_TX, TO_CLIENT))
        return;
    gn_printf("server: ready: echoes queue %u back on queue %u\n", TO_SERVER, TO_CLIENT);
    for (;;) {
        uint64_t seen = gn_event_read(&s.rx.irq);
        gn_error_t err = gn_msgq_drain(&s.rx, in_buf, sizeof(in_buf), echo_one, &s, NULL);
        if (err != GN_OK)
            gn_printf("server: msgqueue_receive: %s\n", gunyah_error_name(err));
        gn_event_wait(&s.rx.irq, seen);
    }
}

int main(const void *dtb)
{
    gn_dt dt;
    int err = gn_dt_init(&dt, dtb);
    if (err != GN_DT_OK) {
        gn_printf("msgq-echo: cannot read the DTB: %s\n", gn_dt_strerror(err));
        return 1;
    }
    const char *args = gn_dt_bootargs(&dt);
    gn_str role, vm_name = {"?", 1}, value;
    uint64_t n = DEFAULT_COUNT;
    gn_bootargs_get(args, "vm", &vm_name);
    if (gn_bootargs_get(args, "n", &value) && !gn_str_to_u64(value, &n)) {
        gn_printf("msgq-echo: error: n=%.*s is not a decimal\n", (int)value.len, value.ptr);
        return 1;
    }
    char vm[33];
    gn_snprintf(vm, sizeof(vm), "%.*s", (int)vm_name.len, vm_name.ptr);
    if (gn_bootargs_get(args, "role", &role) && gn_str_eq(role, "server")) {
        run_server(&dt);
        return 1;
    }
    if (!gn_bootargs_get(args, "role", &role) || !gn_str_eq(role, "client")) {
        gn_printf("msgq-echo: error: needs bootarg role=client or role=server\n");
        return 1;
    }
    if (run_client(&dt, n, vm) && gn_bootargs_has(args, "poweroff"))
        return 0;
    gn_idle_forever();
}
