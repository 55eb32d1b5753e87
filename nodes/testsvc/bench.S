/*
 * uint64_t gn_bench_alu(uint64_t n)
 *
 * The guest-compute benchmark kernel: n iterations of 4 ALU instructions
 * plus a conditional branch (5 instructions per iteration). A leaf: no
 * memory access, no stack, clobbers x0-x2 only; returns a checksum in x0.
 * Benchmarks find it by its ELF symbol and may run it directly.
 */
    .section .text.gn_bench_alu, "ax"
    .global gn_bench_alu
    .type gn_bench_alu, %function
    .balign 64
gn_bench_alu:
    mov     x1, #0
    mov     x2, #1
    cbz     x0, 2f
1:  add     x1, x1, x2
    eor     x2, x2, x1, lsr #3
    add     x2, x2, #7
    subs    x0, x0, #1
    b.ne    1b
2:  mov     x0, x1
    ret
    .size gn_bench_alu, . - gn_bench_alu
