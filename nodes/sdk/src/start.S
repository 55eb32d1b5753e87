/*
 * Boot and secondary entry points.
 *
 * _start (boot vCPU): X0 = DTB address. Installs the vector table, takes
 * the cpu 0 stack, zeroes .bss, calls main(dtb); powers the system off if
 * main returns.
 *
 * gn_secondary_entry (PSCI CPU_ON target): X0 = context_id = cpu index.
 * Installs the vector table, takes that cpu's stack, calls
 * secondary_main(cpu); powers the vCPU off (PSCI CPU_OFF) if it returns.
 *
 * TPIDR_EL1 holds the cpu index (read it with gn_cpu_id()).
 */
#include <gn/platform.h>

#define PSCI_CPU_OFF 0x84000002

    .section .text.boot, "ax"
    .global _start
    .type _start, %function
_start:
    mov     x19, x0
    msr     tpidr_el1, xzr
    bl      install_vectors

    adrp    x1, gn_stacks
    add     x1, x1, :lo12:gn_stacks
    mov     x2, #GN_STACK_SIZE
    add     x1, x1, x2
    mov     sp, x1

    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
1:  cmp     x1, x2
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
2:
    mov     x0, x19
    bl      main
    bl      gn_psci_system_off
3:  wfi
    b       3b
    .size _start, . - _start

    .text
    .global gn_secondary_entry
    .type gn_secondary_entry, %function
gn_secondary_entry:
    cmp     x0, #GN_MAX_CPUS
    b.hs    cpu_off                 /* no stack for this index */
    mov     x19, x0
    msr     tpidr_el1, x0
    bl      install_vectors

    adrp    x1, gn_stacks
    add     x1, x1, :lo12:gn_stacks
    add     x2, x19, #1
    mov     x3, #GN_STACK_SIZE
    madd    x1, x2, x3, x1
    mov     sp, x1

    mov     x0, x19
    bl      secondary_main
cpu_off:
    movz    x0, #(PSCI_CPU_OFF & 0xffff)
    movk    x0, #(PSCI_CPU_OFF >> 16), lsl #16
    hvc     #0
4:  wfi
    b       4b
    .size gn_secondary_entry, . - gn_secondary_entry

/* Leaf: points VBAR_EL1 at gn_vectors. Clobbers x1. */
    .type install_vectors, %function
install_vectors:
    adrp    x1, gn_vectors
    add     x1, x1, :lo12:gn_vectors
    msr     vbar_el1, x1
    isb
    ret
    .size install_vectors, . - install_vectors

    .section .stacks, "aw", %nobits
    .balign 16
    .global gn_stacks
gn_stacks:
    .space GN_MAX_CPUS * GN_STACK_SIZE
