/*
 * Internal to the RM RPC client (rm_rpc.c, rm_reassembly.c, rm_calls.c):
 * little-endian field access and the fragment entry point.
 */
#ifndef GN_RM_INTERNAL_H
#define GN_RM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <gn/rm_rpc.h>

static inline void gn_rm_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void gn_rm_put32(uint8_t *p, uint32_t v)
{
    gn_rm_put16(p, (uint16_t)v);
    gn_rm_put16(p + 2, (uint16_t)(v >> 16));
}

static inline void gn_rm_put64(uint8_t *p, uint64_t v)
{
    gn_rm_put32(p, (uint32_t)v);
    gn_rm_put32(p + 4, (uint32_t)(v >> 32));
}

static inline uint16_t gn_rm_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t gn_rm_get32(const uint8_t *p)
{
    return gn_rm_get16(p) | ((uint32_t)gn_rm_get16(p + 2) << 16);
}

static inline uint64_t gn_rm_get64(const uint8_t *p)
{
    return gn_rm_get32(p) | ((uint64_t)gn_rm_get32(p + 4) << 32);
}

/* Consumes one received msgqueue message: reassembles it and delivers a
 * completed message (the pending reply, or a queued notification). */
void gn_rm_take_fragment(gn_rm *rm, const uint8_t *frag, size_t size);

#endif /* GN_RM_INTERNAL_H */
