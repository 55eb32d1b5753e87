/*
 * Device register access: one single-register LDR/STR per access, with no
 * writeback, pairs or SIMD, so a hypervisor can decode and emulate it.
 */
#ifndef GN_MMIO_H
#define GN_MMIO_H

#include <stdint.h>

/* Reads the 32-bit device register at addr. */
static inline uint32_t gn_mmio_read32(uintptr_t addr)
{
    uint32_t v;
    __asm__ volatile("ldr %w0, [%1]" : "=r"(v) : "r"(addr) : "memory");
    return v;
}

/* Writes v to the 32-bit device register at addr. */
static inline void gn_mmio_write32(uintptr_t addr, uint32_t v)
{
    __asm__ volatile("str %w0, [%1]" ::"r"(v), "r"(addr) : "memory");
}

#endif /* GN_MMIO_H */
