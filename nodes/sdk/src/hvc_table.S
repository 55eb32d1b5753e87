/*
 * Native Gunyah hypercalls with a call number known only at run time.
 *
 * The call number is encoded in the HVC immediate, so each of the 512
 * native calls (HVC #0x6000 .. #0x61FF) has an 8-byte stub "hvc #imm; ret",
 * and gn_hvc_native_call branches to the stub for the requested call.
 *
 * void gn_hvc_native_call(uint64_t call, const uint64_t args[8], gn_regs *out)
 *   call: the HVC immediate (0x6000 + N). Out of range: out->x[0] = -1
 *         (ERROR_UNIMPLEMENTED), out->x[1..7] = 0, and no HVC is issued.
 *   args: X0..X7 on entry to the hypervisor.
 *   out:  X0..X7 on return from the hypervisor.
 */
#define NATIVE_BASE 0x6000
#define NATIVE_COUNT 0x200

    .section .text.gn_hvc_native_call, "ax"
    .global gn_hvc_native_call
    .type gn_hvc_native_call, %function
gn_hvc_native_call:
    sub     x9, x0, #NATIVE_BASE
    cmp     x9, #NATIVE_COUNT
    b.hs    out_of_range
    stp     x29, x30, [sp, #-32]!
    mov     x29, sp
    str     x2, [sp, #16]
    adr     x10, stubs
    add     x10, x10, x9, lsl #3
    mov     x9, x1
    ldp     x0, x1, [x9, #0]
    ldp     x2, x3, [x9, #16]
    ldp     x4, x5, [x9, #32]
    ldp     x6, x7, [x9, #48]
    blr     x10
    ldr     x9, [sp, #16]
    stp     x0, x1, [x9, #0]
    stp     x2, x3, [x9, #16]
    stp     x4, x5, [x9, #32]
    stp     x6, x7, [x9, #48]
    ldp     x29, x30, [sp], #32
    ret
out_of_range:
    movn    x0, #0
    stp     x0, xzr, [x2, #0]
    stp     xzr, xzr, [x2, #16]
    stp     xzr, xzr, [x2, #32]
    stp     xzr, xzr, [x2, #48]
    ret

    .balign 8
stubs:
    .set imm, NATIVE_BASE
    .rept NATIVE_COUNT
    hvc     #imm
    ret
    .set imm, imm + 1
    .endr
    .size gn_hvc_native_call, . - gn_hvc_native_call
