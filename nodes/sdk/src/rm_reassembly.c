/*
 * RM RPC reassembly and delivery, with the same rules as the RM and Linux
 * (gunyah-abi.md 3.2): one message in progress; a new first fragment aborts
 * it; a continuation that does not match it (msg_id, seq, count) is dropped
 * and the reassembly goes on; a bad header byte, a count above 62 or a
 * fragment shorter than the header is dropped. Each drop counts a violation.
 */
#include <gn/rm_rpc.h>
#include <gn/string.h>

#include "rm_internal.h"

#define RM_ERROR_WORD 4U

static void queue_notification(gn_rm *rm, uint32_t msg_id, uint16_t seq, const uint8_t *body,
                               size_t len)
{
    if (rm->queue_count == GN_RM_QUEUE_SLOTS) {
        rm->dropped++;
        return;
    }
    unsigned slot = (rm->queue_head + rm->queue_count) % GN_RM_QUEUE_SLOTS;
    gn_rm_notification *n = &rm->queue[slot];
    size_t kept = len < GN_RM_NOTIFICATION_MAX ? len : GN_RM_NOTIFICATION_MAX;
    n->msg_id = msg_id;
    n->seq = seq;
    n->size = (uint32_t)len;
    n->kept = (uint32_t)kept;
    if (kept != 0)
        memcpy(n->payload, body, kept);
    rm->queue_count++;
}

static void deliver_reply(gn_rm *rm, uint32_t msg_id, uint16_t seq, const uint8_t *body,
                          size_t len)
{
    gn_rm_pending *p = &rm->pending;
    if (!p->active || p->done || p->seq != seq || p->msg_id != msg_id) {
        rm->stray_replies++;
        return;
    }
    p->done = true;
    if (len < RM_ERROR_WORD) {
        p->malformed = true;
        rm->violations++;
        return;
    }
    p->rm_error = gn_rm_get32(body);
    p->len = len - RM_ERROR_WORD;
    size_t kept = p->len < p->max ? p->len : p->max;
    if (kept != 0)
        memcpy(p->buf, body + RM_ERROR_WORD, kept);
}

/* Hands a complete message to the pending call or the notification queue. */
static void deliver(gn_rm *rm, uint8_t type, uint32_t msg_id, uint16_t seq, const uint8_t *body,
                    size_t len)
{
    switch (type) {
    case GN_RM_TYPE_REPLY:
        deliver_reply(rm, msg_id, seq, body, len);
        break;
    case GN_RM_TYPE_NOTIFICATION:
        queue_notification(rm, msg_id, seq, body, len);
        break;
    default: /* the RM sends VMs no requests */
        rm->violations++;
        break;
    }
}

static void start_message(gn_rm *rm, uint8_t type, uint8_t more, uint16_t seq, uint32_t msg_id,
                          const uint8_t *chunk, size_t len)
{
    gn_rm_reassembly *in = &rm->in;
    if (in->active) { /* aborted by a new message */
        in->active = false;
        rm->violations++;
    }
    if (more == 0) {
        deliver(rm, type, msg_id, seq, chunk, len);
        return;
    }
    *in = (gn_rm_reassembly){.active = true, .type = type, .fragments = more, .received = 1,
                             .seq = seq, .msg_id = msg_id, .len = len};
    memcpy(in->body, chunk, len);
}

static void continue_message(gn_rm *rm, uint8_t more, uint16_t seq, uint32_t msg_id,
                             const uint8_t *chunk, size_t len)
{
    gn_rm_reassembly *in = &rm->in;
    if (!in->active || in->msg_id != msg_id || in->seq != seq || in->fragments != more) {
        rm->violations++;
        return;
    }
    memcpy(in->body + in->len, chunk, len);
    in->len += len;
    in->received++;
    if (in->received <= in->fragments)
        return;
    in->active = false;
    deliver(rm, in->type, in->msg_id, in->seq, in->body, in->len);
}

void gn_rm_take_fragment(gn_rm *rm, const uint8_t *frag, size_t size)
{
    if (size < GN_RM_HEADER_SIZE || size > GN_RM_MESSAGE_SIZE || frag[0] != GN_RM_API_BYTE) {
        rm->violations++;
        return;
    }
    uint8_t type = frag[1] & 0x3U;
    uint8_t more = frag[1] >> 2;
    if (more > GN_RM_MAX_ADDITIONAL_FRAGMENTS) {
        rm->violations++;
        return;
    }
    uint16_t seq = gn_rm_get16(frag + 2);
    uint32_t msg_id = gn_rm_get32(frag + 4);
    const uint8_t *chunk = frag + GN_RM_HEADER_SIZE;
    size_t len = size - GN_RM_HEADER_SIZE;
    if (type == GN_RM_TYPE_CONTINUATION)
        continue_message(rm, more, seq, msg_id, chunk, len);
    else
        start_message(rm, type, more, seq, msg_id, chunk, len);
}
