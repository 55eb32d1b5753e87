/*
 * A single-producer/single-consumer ring of variable-length records in a
 * shared-memory region, with doorbell notification.
 *
 * Why this shape: between VMs, gunyah-net's shared memory is coherent but
 * read-modify-write is not atomic (each VM's vCPUs are emulated by their own
 * host process; LDXR/STXR and LSE atomics on the same word race). So every
 * shared word has exactly one writer: the producer writes `head` and
 * `space_req`, the consumer writes `tail` and `space_ack`. Indices are
 * free-running 64-bit counts; slot = index & (slots - 1).
 *
 * Region layout (offsets from the region base; both sides derive the same
 * geometry from the region size and slot size, so a zeroed region is an
 * empty ring and no handshake is needed):
 *     0    producer line: head (u64), space_req (u64)          64 bytes
 *     64   consumer line: tail (u64), space_ack (u64)          64 bytes
 *     128  slots[slots]: u32 length, u32 zero, payload         slot_size each
 *
 * Ordering: the producer fills a slot, `dmb ish`, then stores head; the
 * consumer loads head, `dmb ish`, reads the slot, `dmb ish`, then stores
 * tail. Under Unicorn DMB emits no host fence (TCG drops barriers outside
 * parallel mode), which is still sound for these two patterns on a TSO host
 * (x86-64: stores stay ordered with stores, loads with loads). The one
 * pattern TSO does not order, a store followed by a load of another word,
 * is only needed by the sleep/wake handshake, and there the waiting side
 * issues a hypercall (a trap into the emulator, which takes locks: a full
 * barrier) between its store and its re-check; see gn_ring_channel.
 *
 * This part (gn_ring_*) is pure: no hypercalls, no interrupts. The blocking
 * channel (gn_ring_channel_*) adds the doorbells.
 */
#ifndef GN_RING_H
#define GN_RING_H

#include <stdbool.h>
#include <stdint.h>

#include <gn/ipc.h>

#define GN_RING_HEADER_SIZE 128U   /* two 64-byte lines before the slots */
#define GN_RING_RECORD_HEADER 8U   /* u32 length + u32 zero at the start of a slot */
#define GN_RING_MIN_SLOT_SIZE 16U

/* Results of the ring operations. */
#define GN_RING_OK 0
#define GN_RING_FULL 1       /* produce: no free slot */
#define GN_RING_EMPTY 2      /* consume: no record */
#define GN_RING_TOO_BIG 3    /* produce: record > max record; consume: record > buffer (kept) */
#define GN_RING_CORRUPT 4    /* the peer's index or a record length is impossible */
#define GN_RING_BAD_GEOMETRY 5 /* init: slot size or region unusable */

/* One side's view of a ring. Fill with gn_ring_init; the fields are read-only. */
typedef struct gn_ring {
    uint8_t *base;
    uint8_t *slot0;
    uint32_t slot_size; /* a multiple of 8, >= GN_RING_MIN_SLOT_SIZE */
    uint32_t slots;     /* a power of two */
} gn_ring;

/*
 * Lays a ring over [base, base + size): slot_size (a multiple of 8, at least
 * 16) bytes per slot, as many slots as fit, rounded down to a power of two
 * (at most 2^30). base must be 8-byte aligned. Returns GN_RING_OK or
 * GN_RING_BAD_GEOMETRY. Touches no memory: both sides call it.
 */
int gn_ring_init(gn_ring *ring, void *base, uint64_t size, uint32_t slot_size);

/* The largest record a slot holds (slot_size - 8). */
uint32_t gn_ring_max_record(const gn_ring *ring);

/* Producer: copies len bytes into the next slot and publishes it. Returns
 * GN_RING_OK, GN_RING_FULL, GN_RING_TOO_BIG or GN_RING_CORRUPT (the
 * consumer's tail is ahead of head or more than `slots` behind). */
int gn_ring_produce(gn_ring *ring, const void *record, uint32_t len);

/* Consumer: copies the oldest record into buf (max bytes), stores its length
 * in *len and frees its slot. Returns GN_RING_OK, GN_RING_EMPTY,
 * GN_RING_TOO_BIG (*len = the record's length; it stays queued) or
 * GN_RING_CORRUPT (head is behind tail or too far ahead, or a length
 * exceeds the slot). */
int gn_ring_consume(gn_ring *ring, void *buf, uint32_t max, uint32_t *len);

/* The number of published, unconsumed records as seen now (either side). */
uint64_t gn_ring_count(const gn_ring *ring);

/* Producer: asks the consumer to ring back when it frees a slot. */
void gn_ring_request_space(gn_ring *ring);

/* Consumer: true if the producer asked for a ring-back it has not had yet;
 * if so, records the answer (space_ack = space_req) so it is rung once. */
bool gn_ring_take_space_request(gn_ring *ring);

/* Returns a short name of a GN_RING_* result. */
const char *gn_ring_strerror(int result);

/* ---- the blocking channel: a ring plus a doorbell each way ---------------------------- */

/*
 * One side of a ring channel. The producer receives the "space" doorbell and
 * rings the consumer's "data" doorbell; the consumer the other way round.
 *
 * Wake-up protocol (no lost wake-ups without cross-VM atomics):
 * - The producer rings `data` after publishing (gn_ring_notify; gn_ring_send
 *   does it per record, gn_ring_write leaves it to the caller so records can
 *   be batched, but rings before it ever sleeps).
 * - The consumer reads the doorbell's event count, then the ring; only if the
 *   ring was empty does it sleep until the count moves.
 * - A producer that finds the ring full increments space_req, issues a
 *   hypercall as a barrier, re-checks, and only then sleeps on `space`.
 * - The consumer, after freeing a slot, and again (after a barrier
 *   hypercall) before it sleeps, answers any unanswered space_req by ringing
 *   `space`. Either the producer's re-check sees the freed slot, or the
 *   consumer's check sees the request.
 */
typedef struct gn_ring_channel {
    gn_ring ring;
    gn_doorbell wake;        /* ours: space (producer) or data (consumer) */
    gn_doorbell_source peer; /* theirs */
    uint64_t unnotified;     /* producer: records published since the last ring */
    uint64_t rings;          /* doorbells this side has rung */
    uint64_t sleeps;         /* times this side slept in gn_event_wait */
} gn_ring_channel;

/*
 * Opens a channel over the shm region labelled shm_label: slot_size as in
 * gn_ring_init, our doorbell wake_label (receiver; counting mode if it is
 * edge-triggered, see gn_doorbell_open_counting) and the peer's peer_label
 * (source). Returns 0, a GN_DT_ERR_* / GN_IPC_ERR_* code, or
 * GN_IPC_ERR_RING if the region cannot hold a ring of that slot size.
 */
int gn_ring_channel_open(gn_ring_channel *ch, const gn_dt *dt, uint32_t shm_label,
                         uint32_t slot_size, uint32_t wake_label, uint32_t peer_label);

/* Producer: publishes one record, sleeping while the ring is full; does not
 * ring the consumer (call gn_ring_notify after a batch). Returns GN_RING_OK,
 * GN_RING_TOO_BIG or GN_RING_CORRUPT. */
int gn_ring_write(gn_ring_channel *ch, const void *record, uint32_t len);

/* Producer: rings the consumer if records were published since the last
 * ring. Returns the doorbell_send error (0 if nothing needed ringing). */
gn_error_t gn_ring_notify(gn_ring_channel *ch);

/* Producer: gn_ring_write, then gn_ring_notify. */
int gn_ring_send(gn_ring_channel *ch, const void *record, uint32_t len);

/* Consumer: takes one record, sleeping while the ring is empty, and rings the
 * producer back if it asked for space. Returns GN_RING_OK, GN_RING_TOO_BIG
 * (*len = the record's length; it stays queued) or GN_RING_CORRUPT. */
int gn_ring_recv(gn_ring_channel *ch, void *buf, uint32_t max, uint32_t *len);

#endif /* GN_RING_H */
