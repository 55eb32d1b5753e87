/*
 * Hypercall wrappers: SMCCC (HVC #0) and named native Gunyah calls.
 *
 * Named native wrappers issue their HVC with the call number as a constant
 * immediate (no table lookup), so a tight loop of them costs one trap each.
 */
#include <gn/hvc.h>

#define GN_STR(x) #x
#define GN_XSTR(x) GN_STR(x)

/*
 * Defines `static void fn(gn_regs *r)`: X0..X7 = r->x, issue `insn`,
 * r->x = X0..X7. X8..X17 are clobbered by the hypervisor.
 */
#define DEFINE_TRAP(fn, insn)                                                          \
    static void fn(gn_regs *r)                                                         \
    {                                                                                  \
        register uint64_t x0 __asm__("x0") = r->x[0];                                  \
        register uint64_t x1 __asm__("x1") = r->x[1];                                  \
        register uint64_t x2 __asm__("x2") = r->x[2];                                  \
        register uint64_t x3 __asm__("x3") = r->x[3];                                  \
        register uint64_t x4 __asm__("x4") = r->x[4];                                  \
        register uint64_t x5 __asm__("x5") = r->x[5];                                  \
        register uint64_t x6 __asm__("x6") = r->x[6];                                  \
        register uint64_t x7 __asm__("x7") = r->x[7];                                  \
        __asm__ volatile(insn                                                          \
                         : "+r"(x0), "+r"(x1), "+r"(x2), "+r"(x3), "+r"(x4), "+r"(x5), \
                           "+r"(x6), "+r"(x7)                                          \
                         :                                                             \
                         : "x8", "x9", "x10", "x11", "x12", "x13", "x14", "x15",       \
                           "x16", "x17", "memory");                                    \
        r->x[0] = x0;                                                                  \
        r->x[1] = x1;                                                                  \
        r->x[2] = x2;                                                                  \
        r->x[3] = x3;                                                                  \
        r->x[4] = x4;                                                                  \
        r->x[5] = x5;                                                                  \
        r->x[6] = x6;                                                                  \
        r->x[7] = x7;                                                                  \
    }

#define DEFINE_NATIVE(fn, call) DEFINE_TRAP(fn, "hvc #" GN_XSTR(call))

DEFINE_TRAP(trap_smccc, "hvc #0")
DEFINE_NATIVE(native_identify, GN_HVC_HYPERVISOR_IDENTIFY)
DEFINE_NATIVE(native_doorbell_send, GN_HVC_DOORBELL_SEND)
DEFINE_NATIVE(native_doorbell_receive, GN_HVC_DOORBELL_RECEIVE)
DEFINE_NATIVE(native_doorbell_reset, GN_HVC_DOORBELL_RESET)
DEFINE_NATIVE(native_doorbell_mask, GN_HVC_DOORBELL_MASK)
DEFINE_NATIVE(native_msgqueue_send, GN_HVC_MSGQUEUE_SEND)
DEFINE_NATIVE(native_msgqueue_receive, GN_HVC_MSGQUEUE_RECEIVE)
DEFINE_NATIVE(native_msgqueue_flush, GN_HVC_MSGQUEUE_FLUSH)

gn_regs gn_smccc_call(uint32_t id, const uint64_t args[7])
{
    gn_regs r = {{id, args[0], args[1], args[2], args[3], args[4], args[5], args[6]}};
    trap_smccc(&r);
    return r;
}

static struct gn_hyp_identity identity_of(const gn_regs *r)
{
    return (struct gn_hyp_identity){r->x[0], r->x[1], r->x[2], r->x[3]};
}

struct gn_hyp_identity gunyah_hypervisor_identify(void)
{
    gn_regs r = {{0}};
    native_identify(&r);
    return identity_of(&r);
}

struct gn_hyp_identity gunyah_hypervisor_identify_smccc(void)
{
    gn_regs r = gn_smccc(GN_SMCCC_HYPERCALL(GN_HVC_HYPERVISOR_IDENTIFY));
    return identity_of(&r);
}

gn_error_t gunyah_doorbell_send(uint64_t cap_id, uint64_t new_flags, uint64_t *old_flags)
{
    gn_regs r = {{cap_id, new_flags, 0}};
    native_doorbell_send(&r);
    if (old_flags != NULL)
        *old_flags = r.x[1];
    return (gn_error_t)r.x[0];
}

gn_error_t gunyah_doorbell_receive(uint64_t cap_id, uint64_t clear_flags, uint64_t *old_flags)
{
    gn_regs r = {{cap_id, clear_flags, 0}};
    native_doorbell_receive(&r);
    if (old_flags != NULL)
        *old_flags = r.x[1];
    return (gn_error_t)r.x[0];
}

gn_error_t gunyah_doorbell_mask(uint64_t cap_id, uint64_t enable_mask, uint64_t ack_mask)
{
    gn_regs r = {{cap_id, enable_mask, ack_mask, 0}};
    native_doorbell_mask(&r);
    return (gn_error_t)r.x[0];
}

gn_error_t gunyah_doorbell_reset(uint64_t cap_id)
{
    gn_regs r = {{cap_id, 0}};
    native_doorbell_reset(&r);
    return (gn_error_t)r.x[0];
}

gn_error_t gunyah_msgqueue_send(uint64_t cap_id, size_t size, const void *buf, uint64_t flags,
                                bool *not_full)
{
    gn_regs r = {{cap_id, size, (uintptr_t)buf, flags, 0}};
    native_msgqueue_send(&r);
    if (not_full != NULL)
        *not_full = r.x[1] != 0;
    return (gn_error_t)r.x[0];
}

gn_error_t gunyah_msgqueue_receive(uint64_t cap_id, void *buf, size_t max_size, size_t *size,
                                   bool *not_empty)
{
    gn_regs r = {{cap_id, (uintptr_t)buf, max_size, 0}};
    native_msgqueue_receive(&r);
    if (size != NULL)
        *size = r.x[1];
    if (not_empty != NULL)
        *not_empty = r.x[2] != 0;
    return (gn_error_t)r.x[0];
}

gn_error_t gunyah_msgqueue_flush(uint64_t cap_id)
{
    gn_regs r = {{cap_id, 0}};
    native_msgqueue_flush(&r);
    return (gn_error_t)r.x[0];
}
