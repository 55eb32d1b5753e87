/*
 * Atomics and spinlocks built on LDXR/STXR exclusives (ARMv8.0, no LSE).
 *
 * Under gunyah-net, exclusives are exact between the vCPUs of one VM (they
 * share a host thread) but not between VMs: use rings plus doorbells there.
 */
#ifndef GN_ATOMIC_H
#define GN_ATOMIC_H

#include <stdint.h>

/* Full barrier between this vCPU's earlier and later memory accesses. */
static inline void gn_dmb(void)
{
    __asm__ volatile("dmb ish" ::: "memory");
}

/* Atomically adds v to *p; returns the new value. No ordering implied. */
static inline uint64_t gn_atomic_add_u64(volatile uint64_t *p, uint64_t v)
{
    uint64_t result;
    uint32_t failed;
    __asm__ volatile("1:\tldxr %0, %2\n\t"
                     "add %0, %0, %3\n\t"
                     "stxr %w1, %0, %2\n\t"
                     "cbnz %w1, 1b"
                     : "=&r"(result), "=&r"(failed), "+Q"(*p)
                     : "r"(v)
                     : "memory");
    return result;
}

/* Loads *p with acquire semantics. */
static inline uint64_t gn_load_acquire_u64(const volatile uint64_t *p)
{
    uint64_t v;
    __asm__ volatile("ldar %0, %1" : "=r"(v) : "Q"(*p) : "memory");
    return v;
}

/* Stores v to *p with release semantics. */
static inline void gn_store_release_u64(volatile uint64_t *p, uint64_t v)
{
    __asm__ volatile("stlr %1, %0" : "=Q"(*p) : "r"(v) : "memory");
}

typedef struct gn_spinlock {
    volatile uint32_t locked;
} gn_spinlock;

#define GN_SPINLOCK_INIT {0}

/* Spins until this vCPU holds the lock (acquire). */
static inline void gn_spin_lock(gn_spinlock *lock)
{
    uint32_t held, failed;
    __asm__ volatile("1:\tldaxr %w0, %2\n\t"
                     "cbnz %w0, 1b\n\t"
                     "stxr %w1, %w3, %2\n\t"
                     "cbnz %w1, 1b"
                     : "=&r"(held), "=&r"(failed), "+Q"(lock->locked)
                     : "r"(1U)
                     : "memory");
}

/* Releases a lock held by this vCPU (release). */
static inline void gn_spin_unlock(gn_spinlock *lock)
{
    __asm__ volatile("stlr wzr, %0" : "=Q"(lock->locked)::"memory");
}

#endif /* GN_ATOMIC_H */
