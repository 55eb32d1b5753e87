/*
 * The EL1 exception vector table (VBAR_EL1 = gn_vectors).
 *
 * IRQs taken at EL1 with SP_EL1 save the caller-saved registers, ELR_EL1 and
 * SPSR_EL1, call the C hook irq_handler() (weak; see gn/cpu.h) and return with
 * eret. Every other entry is fatal: it calls gn_exception_fatal(kind, esr,
 * elr, far), which prints the syndrome and powers the system off.
 *
 * kind = (origin << 2) | type, origin 0 = EL1 with SP_EL0, 1 = EL1 with
 * SP_EL1, 2 = EL0 AArch64, 3 = EL0 AArch32; type 0 = sync, 1 = IRQ,
 * 2 = FIQ, 3 = SError.
 */

    .macro fatal_entry kind
    .balign 0x80
    mov     x0, #\kind
    b       fatal_common
    .endm

    .section .text.vectors, "ax"
    .balign 2048
    .global gn_vectors
gn_vectors:
    fatal_entry 0           /* EL1 SP_EL0: sync */
    fatal_entry 1           /* irq */
    fatal_entry 2           /* fiq */
    fatal_entry 3           /* serror */
    fatal_entry 4           /* EL1 SP_EL1: sync */
    .balign 0x80            /* EL1 SP_EL1: irq */
    b       irq_entry
    fatal_entry 6           /* fiq */
    fatal_entry 7           /* serror */
    fatal_entry 8           /* EL0 AArch64 */
    fatal_entry 9
    fatal_entry 10
    fatal_entry 11
    fatal_entry 12          /* EL0 AArch32 */
    fatal_entry 13
    fatal_entry 14
    fatal_entry 15

    .balign 0x80
fatal_common:
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
    bl      gn_exception_fatal
1:  wfi
    b       1b

#define FRAME 192
irq_entry:
    sub     sp, sp, #FRAME
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x29, [sp, #144]
    mrs     x0, elr_el1
    mrs     x1, spsr_el1
    stp     x30, x0, [sp, #160]
    str     x1, [sp, #176]

    bl      irq_handler

    ldr     x1, [sp, #176]
    ldp     x30, x0, [sp, #160]
    msr     elr_el1, x0
    msr     spsr_el1, x1
    ldp     x18, x29, [sp, #144]
    ldp     x16, x17, [sp, #128]
    ldp     x14, x15, [sp, #112]
    ldp     x12, x13, [sp, #96]
    ldp     x10, x11, [sp, #80]
    ldp     x8, x9, [sp, #64]
    ldp     x6, x7, [sp, #48]
    ldp     x4, x5, [sp, #32]
    ldp     x2, x3, [sp, #16]
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #FRAME
    eret
