/*
 * Interrupt-driven Gunyah IPC for guests: events, doorbells, message queues.
 *
 * Every object is opened by label from the DT (gn/hyp_dt.h). Opening an
 * object with an interrupt registers a handler for its INTID with the GIC
 * driver (gn/gic.h) and enables it, routed to the calling vCPU at priority
 * GN_IPC_PRIORITY; the handler bumps the object's gn_event. Blocking calls
 * sleep in WFI until that event moves: nothing here spins on a hypercall.
 *
 * IRQs may stay masked (PSTATE.I, the boot state) outside the waits: a wait
 * briefly unmasks them after each WFI and then polls the GIC
 * (gn_gic_dispatch), so handlers run either through the IRQ vector or from
 * the wait itself, and an interrupt is never left pending while the waiter
 * sleeps. Code that runs with IRQs unmasked works the same.
 *
 * Single-vCPU objects: open, wait and handle on the same vCPU.
 */
#ifndef GN_IPC_H
#define GN_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gn/dt.h>
#include <gn/gic.h>
#include <gn/hvc.h>
#include <gn/hyp_dt.h>

#define GN_IPC_PRIORITY 0xA0U /* GIC priority of IPC interrupts (lower is more urgent) */

/* Errors of the open functions besides the negative GN_DT_ERR_* codes. */
#define GN_IPC_ERR_NO_IRQ (-20)  /* the node has no interrupts, but this object needs one */
#define GN_IPC_ERR_IRQ (-21)     /* the INTID could not be attached (not an SPI) */
#define GN_IPC_ERR_RING (-22)    /* the shm region cannot hold a ring of that slot size */

/* Returns a short description of an open error (GN_IPC_ERR_* or GN_DT_ERR_*). */
const char *gn_ipc_strerror(int err);

/* ---- events ------------------------------------------------------------------------- */

/* A counter that interrupt handlers bump and waiters sleep on. */
typedef struct gn_event {
    volatile uint64_t count;
} gn_event;

/* Reads the count; take it BEFORE checking the condition you will wait for. */
static inline uint64_t gn_event_read(const gn_event *ev)
{
    return ev->count;
}

/* Bumps the count (from an IRQ handler, or with IRQs masked). */
static inline void gn_event_signal(gn_event *ev)
{
    ev->count = ev->count + 1U;
}

/* Sleeps until the count differs from `seen`. With IRQs masked it checks,
 * WFIs (a pending IRQ wakes it although masked), opens a one-instruction
 * unmasked window, masks again and dispatches whatever the GIC still
 * signals; repeats. The caller's PSTATE.I is restored on return. */
void gn_event_wait(const gn_event *ev, uint64_t seen);

/* Runs the handler of every interrupt the GIC signals to this vCPU now,
 * with IRQs masked meanwhile; returns how many. After a hypercall returns,
 * every interrupt its effects raised in this VM is already signalled. */
unsigned gn_ipc_poll(void);

/* Sleeps until some evs[i] differs from seen[i] (n events, n >= 1). */
void gn_event_wait_any(const gn_event *const *evs, const uint64_t *seen, size_t n);

/* ---- interrupts ------------------------------------------------------------------------ */

/* Brings up the GIC for this vCPU if needed (gn_gic_init once, gn_gic_cpu_init
 * per vCPU), registers fn(intid, arg) for SPI `intid`, and enables it routed
 * to this vCPU with `priority` and the given trigger. Returns 0 or
 * GN_IPC_ERR_IRQ (not an SPI, or no handler). */
int gn_ipc_irq_attach(uint32_t intid, bool edge, uint8_t priority, gn_irq_handler fn, void *arg);

/* ---- doorbells ----------------------------------------------------------------------- */

/* A doorbell this VM receives, in one of two modes:
 * - collecting (gn_doorbell_open): the IRQ handler calls doorbell_receive(cap, ~0)
 *   and ORs the old flags into `pending`; gn_doorbell_take/wait return flags.
 * - counting (gn_doorbell_open_counting, edge bindings only): the handler makes
 *   no hypercall and adds 1 to `pending`; take/wait return interrupt counts.
 *   The doorbell's flags are never cleared, which is fine for an edge virq:
 *   Gunyah pulses it on every doorbell_send while enabled flags are set. */
typedef struct gn_doorbell {
    gn_hyp_cap res;
    gn_event fired;            /* interrupts handled */
    volatile uint64_t pending; /* flags collected (or interrupts counted), not yet taken */
    gn_error_t last_error;     /* the handler's last doorbell_receive error (0 = none) */
    bool counting;
} gn_doorbell;

/* A doorbell this VM rings. */
typedef struct gn_doorbell_source {
    gn_hyp_cap res;
} gn_doorbell_source;

/* Finds the doorbell labelled `label` and attaches its interrupt (collecting). */
int gn_doorbell_open(gn_doorbell *db, const gn_dt *dt, uint32_t label);

/* Like gn_doorbell_open, but counting if the binding is edge-triggered; a
 * level binding still collects (its handler must lower the line). Check
 * db->counting to know which. */
int gn_doorbell_open_counting(gn_doorbell *db, const gn_dt *dt, uint32_t label);

/* Finds the doorbell source labelled `label`. */
int gn_doorbell_source_open(gn_doorbell_source *src, const gn_dt *dt, uint32_t label);

/* Returns and clears what was collected so far: flags, or (counting) the
 * number of interrupts; 0 if nothing. */
uint64_t gn_doorbell_take(gn_doorbell *db);

/* Sleeps until something was collected; returns and clears it (as take). */
uint64_t gn_doorbell_wait(gn_doorbell *db);

/* doorbell_send(flags) on the source; *old_flags (if non-NULL) = previous flags. */
gn_error_t gn_doorbell_ring(const gn_doorbell_source *src, uint64_t flags, uint64_t *old_flags);

/* ---- message queues ------------------------------------------------------------------ */

/* One end of a message queue. The event counts its interrupts: "not full"
 * for a sender, "not empty" for a receiver. */
typedef struct gn_msgq {
    gn_hyp_cap res;
    gn_event irq;
} gn_msgq;

/* Finds the queue labelled `label` on the sending (GN_HYP_MSGQUEUE_TX) or
 * receiving (GN_HYP_MSGQUEUE_RX) side and attaches its interrupt. */
int gn_msgq_open(gn_msgq *q, const gn_dt *dt, gn_hyp_kind side, uint32_t label);

/* Sends size bytes. On MSGQUEUE_FULL it sleeps until the not-full interrupt
 * fires, then retries; any other error is returned. *not_full (if non-NULL)
 * is the hypervisor's answer for the successful send. */
gn_error_t gn_msgq_send(gn_msgq *q, const void *buf, size_t size, uint64_t flags, bool *not_full);

/* Receives one message. On MSGQUEUE_EMPTY it sleeps until the not-empty
 * interrupt fires, then retries; any other error is returned. */
gn_error_t gn_msgq_recv(gn_msgq *q, void *buf, size_t max, size_t *size, bool *not_empty);

/* Called by gn_msgq_drain for each message; return false to stop early. */
typedef bool (*gn_msgq_sink_fn)(void *arg, const void *msg, size_t size);

/* Receives without sleeping until the hypervisor reports not_empty == false
 * (or MSGQUEUE_EMPTY), calling fn per message; *count (if non-NULL) = the
 * number received. Returns 0, or the first error other than EMPTY. */
gn_error_t gn_msgq_drain(gn_msgq *q, void *buf, size_t max, gn_msgq_sink_fn fn, void *arg,
                         uint64_t *count);

#endif /* GN_IPC_H */
