/*
 * testsvc: bench-copy, copying through shared memory against private RAM.
 *
 * bench-copy size=<bytes> rounds=<n> label=<shm label>
 *   Times `rounds` copies of `size` bytes (a) private RAM -> private RAM and
 *   (b) private RAM -> the [[shm]] region labelled `label`, with one copy
 *   routine (svc_copy64: 64 bytes per iteration, four LDP/STP pairs). The
 *   two alternate over COPY_REPS repetitions, swapping their order each time
 *   to cancel drift; the best repetition of each is reported:
 *     bench-copy: private <ticks> ticks, shm <ticks> ticks for <rounds> x <size> bytes
 *   Then both destinations are checked against the source (FNV-1a 64) and it
 *   prints `bench-copy: done`, or `bench-copy: FAIL <where> checksum ...`.
 */
#include "svc.h"

#define COPY_MAX 0x10000U /* 64 KiB: the largest size, and each buffer's size */
#define COPY_CHUNK 64U    /* bytes per svc_copy64 iteration */
#define COPY_REPS 5U      /* repetitions of (a) and (b) each */

static const char NAME[] = "bench-copy";

/* Private RAM: two static buffers in .bss, cache-line aligned. */
static uint8_t copy_src[COPY_MAX] __attribute__((aligned(64)));
static uint8_t copy_dst[COPY_MAX] __attribute__((aligned(64)));

/* Copies n bytes (a multiple of 64, possibly 0) from src to dst, 64 at a time. */
void svc_copy64(void *dst, const void *src, size_t n);

__asm__(".section .text.svc_copy64, \"ax\"\n"
        ".global svc_copy64\n"
        ".type svc_copy64, %function\n"
        ".balign 64\n"
        "svc_copy64:\n"
        "    cbz     x2, 2f\n"
        "1:  ldp     x3, x4, [x1]\n"
        "    ldp     x5, x6, [x1, #16]\n"
        "    ldp     x7, x8, [x1, #32]\n"
        "    ldp     x9, x10, [x1, #48]\n"
        "    add     x1, x1, #64\n"
        "    stp     x3, x4, [x0]\n"
        "    stp     x5, x6, [x0, #16]\n"
        "    stp     x7, x8, [x0, #32]\n"
        "    stp     x9, x10, [x0, #48]\n"
        "    add     x0, x0, #64\n"
        "    subs    x2, x2, #64\n"
        "    b.ne    1b\n"
        "2:  ret\n"
        ".size svc_copy64, . - svc_copy64\n"
        ".text\n");

struct copy_args {
    uint64_t size, rounds, label;
};

/* Reads size=, rounds= and label=; prints the first problem and returns false. */
static bool copy_parse(const char *args, struct copy_args *out)
{
    if (!gn_bootargs_get_u64(args, "size", &out->size) || out->size == 0 ||
        out->size > COPY_MAX || out->size % COPY_CHUNK != 0) {
        gn_printf("svc %s: error: needs bootarg size=<decimal bytes, a multiple of %u "
                  "from %u to %u>\n", NAME, COPY_CHUNK, COPY_CHUNK, COPY_MAX);
        return false;
    }
    if (!gn_bootargs_get_u64(args, "rounds", &out->rounds) || out->rounds == 0) {
        gn_printf("svc %s: error: needs bootarg rounds=<decimal copies, at least 1>\n", NAME);
        return false;
    }
    if (!gn_bootargs_get_u64(args, "label", &out->label) || out->label > UINT32_MAX) {
        gn_printf("svc %s: error: needs bootarg label=<decimal shm label, a u32>\n", NAME);
        return false;
    }
    return true;
}

/* Returns the FNV-1a 64 hash of n bytes at p. */
static uint64_t copy_checksum(const volatile uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325UL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3UL;
    return h;
}

/* Returns the ticks that `rounds` copies of `size` bytes from copy_src to dst take. */
static uint64_t copy_time(void *dst, uint64_t size, uint64_t rounds)
{
    uint64_t start = gn_timer_counter();
    for (uint64_t r = 0; r < rounds; r++)
        svc_copy64(dst, copy_src, size);
    return gn_timer_counter() - start;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* Fills the source with a pattern and the shm window with its complement,
 * so the final check proves the copies wrote every byte. */
static void copy_prepare(uint8_t *shm, uint64_t size)
{
    for (uint64_t i = 0; i < size; i++) {
        copy_src[i] = (uint8_t)((i * 131U + 7U) ^ (i >> 8));
        shm[i] = (uint8_t)~copy_src[i];
        copy_dst[i] = shm[i];
    }
}

/* Compares dst's checksum with the source's; prints a FAIL line on a mismatch. */
static bool copy_verify(const char *where, const uint8_t *dst, uint64_t size)
{
    uint64_t want = copy_checksum(copy_src, size);
    uint64_t got = copy_checksum(dst, size);
    if (got == want)
        return true;
    gn_printf("%s: FAIL %s checksum %016lx, source %016lx\n", NAME, where, got, want);
    return false;
}

void svc_bench_copy(const gn_dt *dt, const char *args)
{
    struct copy_args a;
    if (!copy_parse(args, &a))
        return;
    gn_shm_region region;
    int err = gn_shm_find(dt, (uint32_t)a.label, &region);
    if (err != GN_DT_OK) {
        gn_printf("svc %s: error: shm %lu: %s\n", NAME, a.label, gn_dt_strerror(err));
        return;
    }
    if (region.size < a.size) {
        gn_printf("svc %s: error: shm %lu: %lu bytes, smaller than size=%lu\n", NAME, a.label,
                  region.size, a.size);
        return;
    }
    uint8_t *shm = (uint8_t *)(uintptr_t)region.ipa;
    copy_prepare(shm, a.size);
    uint64_t best_private = UINT64_MAX, best_shm = UINT64_MAX;
    for (unsigned rep = 0; rep < COPY_REPS; rep++) {
        if (rep % 2U == 0U) {
            best_private = min_u64(best_private, copy_time(copy_dst, a.size, a.rounds));
            best_shm = min_u64(best_shm, copy_time(shm, a.size, a.rounds));
        } else {
            best_shm = min_u64(best_shm, copy_time(shm, a.size, a.rounds));
            best_private = min_u64(best_private, copy_time(copy_dst, a.size, a.rounds));
        }
    }
    gn_printf("%s: private %lu ticks, shm %lu ticks for %lu x %lu bytes\n", NAME, best_private,
              best_shm, a.rounds, a.size);
    bool ok = copy_verify("private", copy_dst, a.size);
    ok = copy_verify("shm", shm, a.size) && ok;
    if (ok)
        gn_printf("%s: done\n", NAME);
}
