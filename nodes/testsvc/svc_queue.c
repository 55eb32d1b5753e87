/*
 * testsvc: message-queue services.
 *
 * mq-fill    fills queue 1 until MSGQUEUE_FULL, rings doorbell 3, then waits
 *            for the not-full interrupt.
 * mq-drain   on each doorbell 3, drains queue 1 until not_empty is false.
 * mq-stream  sends n 240-byte messages with sequence numbers on queue 1.
 * mq-sink    receives n messages on queue 1 and checks sequence and payload.
 */
#include "svc.h"

static uint8_t buf[1024];

/* The fill pattern of a stream message: sequence number, then bytes. */
static void stream_message(uint8_t *m, uint64_t seq)
{
    for (unsigned i = 0; i < 8; i++)
        m[i] = (uint8_t)(seq >> (8U * i));
    for (unsigned j = 8; j < SVC_STREAM_MESSAGE; j++)
        m[j] = (uint8_t)(seq + j);
}

static uint64_t stream_seq(const uint8_t *m)
{
    uint64_t seq = 0;
    for (unsigned i = 0; i < 8; i++)
        seq |= (uint64_t)m[i] << (8U * i);
    return seq;
}

static bool stream_payload_ok(const uint8_t *m, uint64_t seq)
{
    for (unsigned j = 8; j < SVC_STREAM_MESSAGE; j++) {
        if (m[j] != (uint8_t)(seq + j))
            return false;
    }
    return true;
}

void svc_mq_fill(const gn_dt *dt, const char *args)
{
    (void)args;
    static gn_msgq tx;
    static gn_doorbell_source go;
    if (!svc_open_msgq(&tx, dt, GN_HYP_MSGQUEUE_TX, SVC_REQUEST_QUEUE, "mq-fill") ||
        !svc_open_source(&go, dt, SVC_PING_DOORBELL, "mq-fill"))
        return;
    size_t size = tx.res.message_size != 0 ? tx.res.message_size : SVC_STREAM_MESSAGE;
    uint64_t queued = 0;
    bool not_full = true;
    uint64_t seen = gn_event_read(&tx.irq);
    gn_error_t err;
    for (;;) {
        stream_message(buf, queued);
        err = gunyah_msgqueue_send(tx.res.cap, size, buf, 0, &not_full);
        if (err != GN_OK)
            break;
        queued++;
    }
    gn_printf("mq-fill: queued %lu messages (last not_full=%d), then error %ld (%s)\n", queued,
              not_full ? 1 : 0, err, gunyah_error_name(err));
    if (err != GN_ERROR_MSGQUEUE_FULL)
        return;
    err = gn_doorbell_ring(&go, 1, NULL);
    gn_printf("mq-fill: rang doorbell %u: %s\n", SVC_PING_DOORBELL, gunyah_error_name(err));
    gn_event_wait(&tx.irq, seen);
    gn_printf("mq-fill: not-full irq\n");
}

void svc_mq_drain(const gn_dt *dt, const char *args)
{
    (void)args;
    static gn_msgq rx;
    static gn_doorbell go;
    if (!svc_open_msgq(&rx, dt, GN_HYP_MSGQUEUE_RX, SVC_REQUEST_QUEUE, "mq-drain") ||
        !svc_open_doorbell(&go, dt, SVC_PING_DOORBELL, "mq-drain"))
        return;
    gn_printf("mq-drain: ready\n");
    for (;;) {
        (void)gn_doorbell_wait(&go);
        uint64_t count = 0;
        gn_error_t err = gn_msgq_drain(&rx, buf, sizeof(buf), NULL, NULL, &count);
        gn_printf("mq-drain: drained %lu messages: %s\n", count, gunyah_error_name(err));
    }
}

void svc_mq_stream(const gn_dt *dt, const char *args)
{
    static gn_msgq tx;
    uint64_t n;
    if (!svc_iterations(args, "mq-stream", &n) ||
        !svc_open_msgq(&tx, dt, GN_HYP_MSGQUEUE_TX, SVC_REQUEST_QUEUE, "mq-stream"))
        return;
    uint64_t start = svc_ticks();
    for (uint64_t seq = 0; seq < n; seq++) {
        stream_message(buf, seq);
        gn_error_t err = gn_msgq_send(&tx, buf, SVC_STREAM_MESSAGE, 0, NULL);
        if (err != GN_OK) {
            gn_printf("mq-stream: FAIL message %lu: %s\n", seq, gunyah_error_name(err));
            return;
        }
    }
    uint64_t ticks = svc_ticks() - start;
    gn_printf("mq-stream: %lu sent (not-full irqs %lu)\n", n, gn_event_read(&tx.irq));
    svc_print_elapsed("mq-stream", n, "messages", ticks);
}

/* Checks message `expected`; prints the first problem and returns false. */
static bool sink_check(uint64_t expected, size_t size)
{
    if (size != SVC_STREAM_MESSAGE) {
        gn_printf("mq-sink: FAIL size %lu in message %lu\n", size, expected);
        return false;
    }
    uint64_t seq = stream_seq(buf);
    if (seq != expected) {
        gn_printf("mq-sink: FAIL %s: expected %lu, got %lu\n", seq > expected ? "gap" : "reorder",
                  expected, seq);
        return false;
    }
    if (!stream_payload_ok(buf, seq)) {
        gn_printf("mq-sink: FAIL corrupt payload in message %lu\n", seq);
        return false;
    }
    return true;
}

void svc_mq_sink(const gn_dt *dt, const char *args)
{
    static gn_msgq rx;
    uint64_t n, progress = 0, start = 0;
    if (!svc_iterations(args, "mq-sink", &n) ||
        !svc_open_msgq(&rx, dt, GN_HYP_MSGQUEUE_RX, SVC_REQUEST_QUEUE, "mq-sink"))
        return;
    (void)gn_bootargs_get_u64(args, "progress", &progress);
    gn_printf("mq-sink: ready for %lu messages\n", n);
    for (uint64_t seq = 0; seq < n; seq++) {
        size_t size = 0;
        gn_error_t err = gn_msgq_recv(&rx, buf, sizeof(buf), &size, NULL);
        if (seq == 0)
            start = svc_ticks();
        if (err != GN_OK) {
            gn_printf("mq-sink: FAIL message %lu: %s\n", seq, gunyah_error_name(err));
            return;
        }
        if (!sink_check(seq, size))
            return;
        if (progress != 0 && (seq + 1) % progress == 0)
            gn_printf("mq-sink: %lu received\n", seq + 1);
    }
    uint64_t ticks = svc_ticks() - start;
    gn_printf("mq-sink: %lu ok\n", n);
    svc_print_elapsed("mq-sink", n, "messages", ticks);
}
