/*
 * Message queues by label: blocking send and receive driven by the not-full
 * and not-empty interrupts, and a drain that reads until not_empty is false.
 *
 * Lost wake-ups: the event count is read BEFORE the hypercall that fails, so
 * an interrupt that fires between the failure and the wait moves the count
 * and the wait returns at once. Gunyah raises not-full when a receive brings
 * the count down to the threshold (depth - 1) and not-empty when a send
 * brings it up to 1, i.e. exactly on the transitions these calls wait for.
 */
#include <gn/ipc.h>

static void msgq_irq(unsigned intid, void *arg)
{
    (void)intid;
    gn_msgq *q = arg;
    gn_event_signal(&q->irq);
}

int gn_msgq_open(gn_msgq *q, const gn_dt *dt, gn_hyp_kind side, uint32_t label)
{
    *q = (gn_msgq){0};
    if (side != GN_HYP_MSGQUEUE_TX && side != GN_HYP_MSGQUEUE_RX)
        return GN_DT_ERR_NOT_FOUND;
    int err = gn_hyp_find(dt, side, label, &q->res);
    if (err != GN_DT_OK)
        return err;
    if (q->res.intid == GN_HYP_NO_INTID)
        return GN_IPC_ERR_NO_IRQ;
    return gn_ipc_irq_attach(q->res.intid, q->res.edge, GN_IPC_PRIORITY, msgq_irq, q);
}

gn_error_t gn_msgq_send(gn_msgq *q, const void *buf, size_t size, uint64_t flags, bool *not_full)
{
    for (;;) {
        uint64_t seen = gn_event_read(&q->irq);
        gn_error_t err = gunyah_msgqueue_send(q->res.cap, size, buf, flags, not_full);
        if (err != GN_ERROR_MSGQUEUE_FULL)
            return err;
        gn_event_wait(&q->irq, seen);
    }
}

gn_error_t gn_msgq_recv(gn_msgq *q, void *buf, size_t max, size_t *size, bool *not_empty)
{
    for (;;) {
        uint64_t seen = gn_event_read(&q->irq);
        gn_error_t err = gunyah_msgqueue_receive(q->res.cap, buf, max, size, not_empty);
        if (err != GN_ERROR_MSGQUEUE_EMPTY)
            return err;
        gn_event_wait(&q->irq, seen);
    }
}

gn_error_t gn_msgq_drain(gn_msgq *q, void *buf, size_t max, gn_msgq_sink_fn fn, void *arg,
                         uint64_t *count)
{
    uint64_t n = 0;
    gn_error_t err = GN_OK;
    bool more = true;
    while (more) {
        size_t size = 0;
        err = gunyah_msgqueue_receive(q->res.cap, buf, max, &size, &more);
        if (err != GN_OK)
            break;
        n++;
        if (fn != NULL && !fn(arg, buf, size))
            break;
    }
    if (count != NULL)
        *count = n;
    return err == GN_ERROR_MSGQUEUE_EMPTY ? GN_OK : err;
}
