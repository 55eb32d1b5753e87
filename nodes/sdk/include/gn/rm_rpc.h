/*
 * The Resource Manager RPC client: requests, replies and notifications over
 * the VM's RM message-queue pair (gunyah-abi.md 3.1, 3.2).
 *
 * The RM node is found in the DT by compatible "gunyah-resource-manager"
 * anywhere in the tree (the RM writes it at /hypervisor/gunyah-resource-mgr@<rx
 * cap> by default): reg = <tx_cap(u64) rx_cap(u64)>, interrupts = <tx>, <rx>
 * ("not full" of the VM->RM queue, "not empty" of the RM->VM queue).
 *
 * Framing: each message travels as 1..63 msgqueue messages (fragments) of at
 * most 240 bytes with an 8-byte little-endian header: 0x21, (additional
 * fragments << 2) | type, u16 seq, u32 msg_id. Later fragments have type 0
 * (continuation) and repeat msg_id, seq and the count; PUSH is set on the
 * last one. A reply's body is the u32 RM error word, then its payload.
 *
 * Waiting: calls sleep in WFI on the queues' interrupts and on this vCPU's
 * virtual timer (gn/timer.h), which a wait arms with its deadline and cancels
 * afterwards; nothing spins. While a sender waits for room it keeps draining
 * the receive queue, so the RM's replies cannot deadlock against its requests.
 *
 * Notifications that arrive while a call waits are queued (GN_RM_QUEUE_SLOTS;
 * when full, newer ones are counted in `dropped` and lost) for
 * gn_rm_next_notification. Replies whose seq and msg_id do not match the call
 * in progress (a late reply to a timed-out call) are counted and dropped;
 * malformed fragments are counted in `violations` and dropped, keeping one
 * reassembly in progress as the RM and Linux do.
 *
 * One vCPU: open, call and wait on the same vCPU, never from an IRQ handler.
 */
#ifndef GN_RM_RPC_H
#define GN_RM_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gn/dt.h>
#include <gn/hvc.h>
#include <gn/ipc.h>

/* Framing (gunyah-abi.md 3.2). */
#define GN_RM_MESSAGE_SIZE 240U
#define GN_RM_HEADER_SIZE 8U
#define GN_RM_FRAGMENT_PAYLOAD 232U
#define GN_RM_MAX_ADDITIONAL_FRAGMENTS 62U
#define GN_RM_MAX_BODY (GN_RM_FRAGMENT_PAYLOAD * (GN_RM_MAX_ADDITIONAL_FRAGMENTS + 1U)) /* 14616 */
#define GN_RM_API_BYTE 0x21U /* version 1, header of 2 words */
#define GN_RM_TYPE_CONTINUATION 0U
#define GN_RM_TYPE_REQUEST 1U
#define GN_RM_TYPE_REPLY 2U
#define GN_RM_TYPE_NOTIFICATION 3U

/* Transport failures (negative; the DT and IPC codes are other negatives). */
#define GN_RM_OK 0
#define GN_RM_ERR_NO_NODE (-30)    /* no "gunyah-resource-manager" node in the DT */
#define GN_RM_ERR_BAD_NODE (-31)   /* its reg or interrupts are malformed */
#define GN_RM_ERR_IRQ (-32)        /* an interrupt could not be attached */
#define GN_RM_ERR_HVC (-33)        /* a msgqueue hypercall failed; see gn_rm.hvc_error */
#define GN_RM_ERR_TIMEOUT (-34)    /* no reply (or notification) before the deadline */
#define GN_RM_ERR_TOO_BIG (-35)    /* the request body exceeds GN_RM_MAX_BODY */
#define GN_RM_ERR_REPLY (-36)      /* the reply is malformed or its payload has the wrong size */

#define GN_RM_QUEUE_SLOTS 16U
#define GN_RM_NOTIFICATION_MAX 512U /* payload bytes kept per queued notification */
#define GN_RM_DEFAULT_TIMEOUT_US 30000000U
#define GN_RM_WAIT_FOREVER UINT64_MAX

/* One notification as received. */
typedef struct gn_rm_notification {
    uint32_t msg_id;
    uint16_t seq;       /* the RM's counter; receivers ignore it */
    uint32_t size;      /* payload bytes the RM sent */
    uint32_t kept;      /* payload bytes stored (< size: truncated to GN_RM_NOTIFICATION_MAX) */
    uint8_t payload[GN_RM_NOTIFICATION_MAX];
} gn_rm_notification;

/* One message-queue end of the RM link. */
typedef struct gn_rm_queue {
    uint64_t cap;
    uint32_t intid;
    bool edge;
    gn_event irq; /* "not full" (tx) or "not empty" (rx) interrupts taken */
} gn_rm_queue;

/* The reply the call in progress waits for. */
typedef struct gn_rm_pending {
    bool active;
    bool done;
    bool malformed; /* the matching reply was shorter than its error word */
    uint16_t seq;
    uint32_t msg_id;
    uint32_t rm_error;
    uint8_t *buf;
    size_t max;
    size_t len; /* payload bytes the RM sent (may exceed max; then max were kept) */
} gn_rm_pending;

/* The message being reassembled (one at a time). */
typedef struct gn_rm_reassembly {
    bool active;
    uint8_t type;
    uint8_t fragments; /* additional fragments announced */
    uint8_t received;  /* fragments received so far, the first included */
    uint16_t seq;
    uint32_t msg_id;
    size_t len;
    uint8_t body[GN_RM_MAX_BODY];
} gn_rm_reassembly;

/* An RM client. Large (about 30 KiB): give it static storage. */
typedef struct gn_rm {
    gn_rm_queue tx, rx;
    uint64_t timeout_us;  /* per call; GN_RM_DEFAULT_TIMEOUT_US after open */
    gn_error_t hvc_error; /* the failing hypercall's error after GN_RM_ERR_HVC */
    uint16_t next_seq;
    gn_event deadline;    /* bumped by the timer when a wait's deadline passes */
    gn_rm_pending pending;
    gn_rm_reassembly in;
    gn_rm_notification queue[GN_RM_QUEUE_SLOTS];
    unsigned queue_head, queue_count;
    uint64_t dropped;      /* notifications lost to a full queue */
    uint64_t stray_replies;
    uint64_t violations;   /* fragments or messages dropped as malformed */
    uint8_t tx_buf[GN_RM_MESSAGE_SIZE];
    uint8_t rx_buf[GN_RM_MESSAGE_SIZE];
} gn_rm;

/* Returns a short description of a GN_RM_ERR_* code (DT and IPC codes too). */
const char *gn_rm_strerror(int err);

/* Finds the RM node in dt, attaches both interrupts (routed to this vCPU) and
 * prepares *rm. Returns GN_RM_OK, GN_RM_ERR_NO_NODE, GN_RM_ERR_BAD_NODE or
 * GN_RM_ERR_IRQ. */
int gn_rm_open(gn_rm *rm, const gn_dt *dt);

/*
 * Sends request msg_id with req_len bytes of payload and waits (rm->timeout_us)
 * for the reply with the same seq and msg_id. Returns GN_RM_OK once it arrived:
 * *rm_error = its RM error word, min(*reply_len, reply_max) payload bytes in
 * reply, *reply_len = the payload length the RM sent. Otherwise returns
 * GN_RM_ERR_TOO_BIG, GN_RM_ERR_HVC, GN_RM_ERR_TIMEOUT or GN_RM_ERR_REPLY.
 * reply may be NULL when reply_max is 0; reply_len may be NULL.
 */
int gn_rm_call(gn_rm *rm, uint32_t msg_id, const void *req, size_t req_len, void *reply,
               size_t reply_max, size_t *reply_len, uint32_t *rm_error);

/* Receives everything the RM sent so far without sleeping (queueing
 * notifications). Returns GN_RM_OK or GN_RM_ERR_HVC. */
int gn_rm_poll(gn_rm *rm);

/* Copies the oldest queued notification into *out and removes it; if none is
 * queued it receives, sleeping up to timeout_us (0: not at all,
 * GN_RM_WAIT_FOREVER: no deadline). Returns GN_RM_OK, GN_RM_ERR_TIMEOUT or
 * GN_RM_ERR_HVC. */
int gn_rm_next_notification(gn_rm *rm, gn_rm_notification *out, uint64_t timeout_us);

#endif /* GN_RM_RPC_H */
