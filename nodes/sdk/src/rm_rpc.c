/*
 * The RM RPC client's transport: finding the RM node, sending fragmented
 * requests, waiting for the matching reply with a deadline, and handing out
 * queued notifications. Reassembly lives in rm_reassembly.c.
 */
#include <gn/cpu.h>
#include <gn/ipc.h>
#include <gn/rm_rpc.h>
#include <gn/string.h>
#include <gn/timer.h>

#include "rm_internal.h"

#define RM_COMPATIBLE "gunyah-resource-manager"
#define GIC_SPI 0U
#define SPI_COUNT 988U
#define IRQ_TYPE_EDGE_BOTH 3U
#define MAX_DT_DEPTH 16

const char *gn_rm_strerror(int err)
{
    switch (err) {
    case GN_RM_OK:
        return "ok";
    case GN_RM_ERR_NO_NODE:
        return "no gunyah-resource-manager node in the DT";
    case GN_RM_ERR_BAD_NODE:
        return "the RM node's reg or interrupts are malformed";
    case GN_RM_ERR_IRQ:
        return "cannot attach an RM interrupt";
    case GN_RM_ERR_HVC:
        return "a msgqueue hypercall failed";
    case GN_RM_ERR_TIMEOUT:
        return "timed out";
    case GN_RM_ERR_TOO_BIG:
        return "request too big";
    case GN_RM_ERR_REPLY:
        return "malformed reply";
    default:
        return gn_ipc_strerror(err);
    }
}

/* Depth-first search for the first node compatible with the RM. */
static int find_rm_node(const gn_dt *dt, int node, int depth)
{
    if (gn_dt_is_compatible(dt, node, RM_COMPATIBLE))
        return node;
    if (depth >= MAX_DT_DEPTH)
        return GN_DT_ERR_NOT_FOUND;
    for (int child = gn_dt_first_child(dt, node); child >= 0;
         child = gn_dt_next_sibling(dt, child)) {
        int found = find_rm_node(dt, child, depth + 1);
        if (found >= 0)
            return found;
    }
    return GN_DT_ERR_NOT_FOUND;
}

/* Decodes interrupt specifier `index` (<class number flags>, SPIs only). */
static int read_spi(const gn_dt *dt, int node, uint32_t index, gn_rm_queue *q)
{
    uint64_t kind, number, flags;
    if (gn_dt_prop_cells(dt, node, "interrupts", 3 * index, 1, &kind) != GN_DT_OK ||
        gn_dt_prop_cells(dt, node, "interrupts", 3 * index + 1, 1, &number) != GN_DT_OK ||
        gn_dt_prop_cells(dt, node, "interrupts", 3 * index + 2, 1, &flags) != GN_DT_OK)
        return GN_RM_ERR_BAD_NODE;
    if (kind != GIC_SPI || number >= SPI_COUNT)
        return GN_RM_ERR_BAD_NODE;
    q->intid = 32U + (uint32_t)number;
    q->edge = (flags & IRQ_TYPE_EDGE_BOTH) != 0;
    return GN_RM_OK;
}

static int read_rm_node(const gn_dt *dt, int node, gn_rm *rm)
{
    const void *value;
    uint32_t len;
    if (gn_dt_get_prop(dt, node, "reg", &value, &len) != GN_DT_OK || len != 16)
        return GN_RM_ERR_BAD_NODE;
    gn_dt_prop_cells(dt, node, "reg", 0, 2, &rm->tx.cap);
    gn_dt_prop_cells(dt, node, "reg", 2, 2, &rm->rx.cap);
    if (gn_dt_get_prop(dt, node, "interrupts", &value, &len) != GN_DT_OK || len != 24)
        return GN_RM_ERR_BAD_NODE;
    int err = read_spi(dt, node, 0, &rm->tx);
    return err == GN_RM_OK ? read_spi(dt, node, 1, &rm->rx) : err;
}

static void queue_irq(unsigned intid, void *arg)
{
    (void)intid;
    gn_event_signal(arg);
}

int gn_rm_open(gn_rm *rm, const gn_dt *dt)
{
    memset(rm, 0, sizeof(*rm));
    rm->timeout_us = GN_RM_DEFAULT_TIMEOUT_US;
    rm->next_seq = 1;
    int root = gn_dt_root(dt);
    int node = root >= 0 ? find_rm_node(dt, root, 0) : root;
    if (node < 0)
        return GN_RM_ERR_NO_NODE;
    int err = read_rm_node(dt, node, rm);
    if (err != GN_RM_OK)
        return err;
    if (gn_ipc_irq_attach(rm->tx.intid, rm->tx.edge, GN_IPC_PRIORITY, queue_irq, &rm->tx.irq) ||
        gn_ipc_irq_attach(rm->rx.intid, rm->rx.edge, GN_IPC_PRIORITY, queue_irq, &rm->rx.irq))
        return GN_RM_ERR_IRQ;
    return GN_RM_OK;
}

/* ---- waiting ------------------------------------------------------------------------- */

/* The event counts a waiter compares against. */
typedef struct marks {
    uint64_t tx, rx, deadline;
} marks;

static marks marks_now(const gn_rm *rm)
{
    return (marks){gn_event_read(&rm->tx.irq), gn_event_read(&rm->rx.irq),
                   gn_event_read(&rm->deadline)};
}

static void deadline_passed(void *arg)
{
    gn_event_signal(arg);
}

/* Arms the deadline timeout_us from now (nothing for GN_RM_WAIT_FOREVER). */
static void arm_deadline(gn_rm *rm, uint64_t timeout_us)
{
    if (timeout_us != GN_RM_WAIT_FOREVER)
        gn_timer_oneshot_us(timeout_us, deadline_passed, &rm->deadline);
}

static void disarm_deadline(uint64_t timeout_us)
{
    if (timeout_us != GN_RM_WAIT_FOREVER)
        gn_timer_cancel();
}

/* Sleeps until an RM interrupt or the deadline moved past *m. */
static void wait_for_change(gn_rm *rm, const marks *m)
{
    const gn_event *evs[3] = {&rm->tx.irq, &rm->rx.irq, &rm->deadline};
    const uint64_t seen[3] = {m->tx, m->rx, m->deadline};
    gn_event_wait_any(evs, seen, 3);
}

int gn_rm_poll(gn_rm *rm)
{
    for (;;) {
        size_t size = 0;
        bool more = false;
        gn_error_t err =
            gunyah_msgqueue_receive(rm->rx.cap, rm->rx_buf, sizeof(rm->rx_buf), &size, &more);
        if (err == GN_ERROR_MSGQUEUE_EMPTY)
            return GN_RM_OK;
        if (err != GN_OK) {
            rm->hvc_error = err;
            return GN_RM_ERR_HVC;
        }
        gn_rm_take_fragment(rm, rm->rx_buf, size);
        if (!more)
            return GN_RM_OK;
    }
}

/* ---- requests ------------------------------------------------------------------------ */

/* Sends one fragment, sleeping on "not full" (and draining replies) while the
 * queue is full. start_deadline is the deadline count when the call began. */
static int send_fragment(gn_rm *rm, size_t len, bool last, uint64_t start_deadline)
{
    for (;;) {
        marks m = marks_now(rm);
        gn_error_t err = gunyah_msgqueue_send(rm->tx.cap, len, rm->tx_buf,
                                              last ? GN_MSGQUEUE_SEND_PUSH : 0U, NULL);
        if (err == GN_OK)
            return GN_RM_OK;
        if (err != GN_ERROR_MSGQUEUE_FULL) {
            rm->hvc_error = err;
            return GN_RM_ERR_HVC;
        }
        int polled = gn_rm_poll(rm);
        if (polled != GN_RM_OK)
            return polled;
        if (m.deadline != start_deadline)
            return GN_RM_ERR_TIMEOUT;
        wait_for_change(rm, &m);
    }
}

static void put_header(uint8_t *out, uint8_t type, uint8_t more, uint16_t seq, uint32_t msg_id)
{
    out[0] = GN_RM_API_BYTE;
    out[1] = (uint8_t)((more << 2) | type);
    gn_rm_put16(out + 2, seq);
    gn_rm_put32(out + 4, msg_id);
}

static int send_request(gn_rm *rm, uint32_t msg_id, uint16_t seq, const uint8_t *body,
                        size_t len, uint64_t start_deadline)
{
    size_t count = len == 0 ? 1 : (len + GN_RM_FRAGMENT_PAYLOAD - 1) / GN_RM_FRAGMENT_PAYLOAD;
    for (size_t i = 0; i < count; i++) {
        size_t off = i * GN_RM_FRAGMENT_PAYLOAD;
        size_t chunk = len - off < GN_RM_FRAGMENT_PAYLOAD ? len - off : GN_RM_FRAGMENT_PAYLOAD;
        uint8_t type = i == 0 ? GN_RM_TYPE_REQUEST : GN_RM_TYPE_CONTINUATION;
        put_header(rm->tx_buf, type, (uint8_t)(count - 1), seq, msg_id);
        if (chunk != 0)
            memcpy(rm->tx_buf + GN_RM_HEADER_SIZE, body + off, chunk);
        int err = send_fragment(rm, GN_RM_HEADER_SIZE + chunk, i + 1 == count, start_deadline);
        if (err != GN_RM_OK)
            return err;
    }
    return GN_RM_OK;
}

/* Receives until the pending reply is done or the deadline passes. */
static int await_reply(gn_rm *rm, uint64_t start_deadline)
{
    for (;;) {
        marks m = marks_now(rm);
        int err = gn_rm_poll(rm);
        if (err != GN_RM_OK)
            return err;
        if (rm->pending.done)
            return rm->pending.malformed ? GN_RM_ERR_REPLY : GN_RM_OK;
        if (m.deadline != start_deadline)
            return GN_RM_ERR_TIMEOUT;
        wait_for_change(rm, &m);
    }
}

int gn_rm_call(gn_rm *rm, uint32_t msg_id, const void *req, size_t req_len, void *reply,
               size_t reply_max, size_t *reply_len, uint32_t *rm_error)
{
    if (req_len > GN_RM_MAX_BODY)
        return GN_RM_ERR_TOO_BIG;
    uint16_t seq = rm->next_seq++;
    rm->pending = (gn_rm_pending){
        .active = true, .seq = seq, .msg_id = msg_id, .buf = reply, .max = reply_max};
    uint64_t start_deadline = gn_event_read(&rm->deadline);
    arm_deadline(rm, rm->timeout_us);
    int err = send_request(rm, msg_id, seq, req, req_len, start_deadline);
    if (err == GN_RM_OK)
        err = await_reply(rm, start_deadline);
    disarm_deadline(rm->timeout_us);
    rm->pending.active = false;
    if (err != GN_RM_OK)
        return err;
    if (reply_len != NULL)
        *reply_len = rm->pending.len;
    if (rm_error != NULL)
        *rm_error = rm->pending.rm_error;
    return GN_RM_OK;
}

/* ---- notifications ------------------------------------------------------------------- */

static bool take_queued(gn_rm *rm, gn_rm_notification *out)
{
    if (rm->queue_count == 0)
        return false;
    *out = rm->queue[rm->queue_head];
    rm->queue_head = (rm->queue_head + 1) % GN_RM_QUEUE_SLOTS;
    rm->queue_count--;
    return true;
}

int gn_rm_next_notification(gn_rm *rm, gn_rm_notification *out, uint64_t timeout_us)
{
    if (take_queued(rm, out))
        return GN_RM_OK;
    uint64_t start_deadline = gn_event_read(&rm->deadline);
    if (timeout_us != 0)
        arm_deadline(rm, timeout_us);
    int err;
    for (;;) {
        marks m = marks_now(rm);
        err = gn_rm_poll(rm);
        if (err != GN_RM_OK || take_queued(rm, out))
            break;
        err = GN_RM_ERR_TIMEOUT;
        if (timeout_us == 0 || m.deadline != start_deadline)
            break;
        wait_for_change(rm, &m);
    }
    if (timeout_us != 0)
        disarm_deadline(timeout_us);
    return err;
}
