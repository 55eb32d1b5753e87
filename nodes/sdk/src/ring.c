/*
 * The single-producer/single-consumer ring over shared memory: geometry,
 * produce, consume, and the space request/acknowledge words. Pure: no
 * hypercalls and no interrupts, so it also runs on the host under test.
 */
#include <stddef.h>

#include <gn/ring.h>
#include <gn/string.h>

#define PRODUCER_LINE 0U
#define CONSUMER_LINE 64U
#define MAX_SLOTS (1U << 30)

/* Index of a shared u64 word in the producer / consumer lines. */
#define HEAD_WORD (PRODUCER_LINE / 8U)
#define SPACE_REQ_WORD (PRODUCER_LINE / 8U + 1U)
#define TAIL_WORD (CONSUMER_LINE / 8U)
#define SPACE_ACK_WORD (CONSUMER_LINE / 8U + 1U)

static inline void ring_barrier(void)
{
#if defined(__aarch64__)
    __asm__ volatile("dmb ish" ::: "memory");
#else
    __sync_synchronize(); /* host builds (unit tests) */
#endif
}

static inline volatile uint64_t *word(const gn_ring *ring, unsigned index)
{
    return (volatile uint64_t *)(void *)ring->base + index;
}

static inline uint8_t *slot_at(const gn_ring *ring, uint64_t index)
{
    return ring->slot0 + (size_t)(index & (ring->slots - 1U)) * ring->slot_size;
}

int gn_ring_init(gn_ring *ring, void *base, uint64_t size, uint32_t slot_size)
{
    if (base == NULL || ((uintptr_t)base & 7U) != 0 || slot_size < GN_RING_MIN_SLOT_SIZE ||
        (slot_size & 7U) != 0 || size <= GN_RING_HEADER_SIZE)
        return GN_RING_BAD_GEOMETRY;
    uint64_t fit = (size - GN_RING_HEADER_SIZE) / slot_size;
    if (fit == 0)
        return GN_RING_BAD_GEOMETRY;
    uint32_t slots = 1;
    while ((uint64_t)slots * 2U <= fit && slots < MAX_SLOTS)
        slots *= 2U;
    *ring = (gn_ring){base, (uint8_t *)base + GN_RING_HEADER_SIZE, slot_size, slots};
    return GN_RING_OK;
}

uint32_t gn_ring_max_record(const gn_ring *ring)
{
    return ring->slot_size - GN_RING_RECORD_HEADER;
}

/* Writes a u32 in little-endian byte order (alignment-agnostic). */
static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const volatile uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int gn_ring_produce(gn_ring *ring, const void *record, uint32_t len)
{
    if (len > gn_ring_max_record(ring))
        return GN_RING_TOO_BIG;
    uint64_t head = *word(ring, HEAD_WORD);
    uint64_t tail = *word(ring, TAIL_WORD);
    ring_barrier(); /* the slot is free only once tail says so */
    uint64_t used = head - tail;
    if (used > ring->slots)
        return GN_RING_CORRUPT;
    if (used == ring->slots)
        return GN_RING_FULL;
    uint8_t *slot = slot_at(ring, head);
    put_u32(slot, len);
    put_u32(slot + 4, 0);
    memcpy(slot + GN_RING_RECORD_HEADER, record, len);
    ring_barrier(); /* the record before the index that publishes it */
    *word(ring, HEAD_WORD) = head + 1U;
    return GN_RING_OK;
}

int gn_ring_consume(gn_ring *ring, void *buf, uint32_t max, uint32_t *len)
{
    uint64_t tail = *word(ring, TAIL_WORD);
    uint64_t head = *word(ring, HEAD_WORD);
    ring_barrier(); /* the index before the record it publishes */
    uint64_t used = head - tail;
    if (used > ring->slots)
        return GN_RING_CORRUPT;
    if (used == 0)
        return GN_RING_EMPTY;
    const uint8_t *slot = slot_at(ring, tail);
    uint32_t n = get_u32(slot);
    if (n > gn_ring_max_record(ring))
        return GN_RING_CORRUPT;
    *len = n;
    if (n > max)
        return GN_RING_TOO_BIG;
    memcpy(buf, slot + GN_RING_RECORD_HEADER, n);
    ring_barrier(); /* finish reading the slot before handing it back */
    *word(ring, TAIL_WORD) = tail + 1U;
    return GN_RING_OK;
}

uint64_t gn_ring_count(const gn_ring *ring)
{
    uint64_t tail = *word(ring, TAIL_WORD);
    uint64_t head = *word(ring, HEAD_WORD);
    return head - tail;
}

void gn_ring_request_space(gn_ring *ring)
{
    *word(ring, SPACE_REQ_WORD) = *word(ring, SPACE_REQ_WORD) + 1U;
}

bool gn_ring_take_space_request(gn_ring *ring)
{
    uint64_t req = *word(ring, SPACE_REQ_WORD);
    if (req == *word(ring, SPACE_ACK_WORD))
        return false;
    *word(ring, SPACE_ACK_WORD) = req;
    return true;
}

const char *gn_ring_strerror(int result)
{
    switch (result) {
    case GN_RING_OK:
        return "ok";
    case GN_RING_FULL:
        return "full";
    case GN_RING_EMPTY:
        return "empty";
    case GN_RING_TOO_BIG:
        return "record too big";
    case GN_RING_CORRUPT:
        return "corrupt index or length";
    case GN_RING_BAD_GEOMETRY:
        return "bad geometry";
    default:
        return "unknown result";
    }
}
