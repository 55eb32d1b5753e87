/*
 * pingpong: two VMs ring each other's doorbell, round after round.
 *
 * Bootargs: role=ping|pong, rounds=N (default 10), poweroff (ping: power off
 * when done). Doorbell label 1 goes ping -> pong, label 2 pong -> ping.
 * Round r carries the flag bit 1 << (r % 64); each side checks that it got
 * exactly that bit, so a lost or doubled ring shows up as a flags mismatch.
 */
#include <gn/sdk.h>

#define PING_TO_PONG 1U
#define PONG_TO_PING 2U
#define DEFAULT_ROUNDS 10U

struct side {
    const char *name;
    gn_doorbell rx;
    gn_doorbell_source tx;
};

static uint64_t round_flag(uint64_t round)
{
    return 1UL << (round % 64U);
}

static bool open_side(struct side *s, const gn_dt *dt, uint32_t rx_label, uint32_t tx_label)
{
    int err = gn_doorbell_open(&s->rx, dt, rx_label);
    if (err != 0) {
        gn_printf("pingpong: %s: cannot open doorbell %u: %s\n", s->name, rx_label,
                  gn_ipc_strerror(err));
        return false;
    }
    err = gn_doorbell_source_open(&s->tx, dt, tx_label);
    if (err != 0) {
        gn_printf("pingpong: %s: cannot open doorbell source %u: %s\n", s->name, tx_label,
                  gn_ipc_strerror(err));
        return false;
    }
    gn_printf("pingpong: %s: ready: rings doorbell %u (cap 0x%lx), waits on doorbell %u"
              " (intid %u)\n",
              s->name, tx_label, s->tx.res.cap, rx_label, s->rx.res.intid);
    return true;
}

static bool ring(struct side *s, uint64_t round, uint64_t flags)
{
    gn_error_t err = gn_doorbell_ring(&s->tx, flags, NULL);
    if (err == GN_OK)
        return true;
    gn_printf("pingpong: FAIL round %lu: doorbell_send: %s\n", round, gunyah_error_name(err));
    return false;
}

static bool run_ping(struct side *s, uint64_t rounds)
{
    for (uint64_t r = 1; r <= rounds; r++) {
        if (!ring(s, r, round_flag(r)))
            return false;
        gn_printf("ping: round %lu: rang pong (flags 0x%lx)\n", r, round_flag(r));
        uint64_t got = gn_doorbell_wait(&s->rx);
        if (got != round_flag(r)) {
            gn_printf("pingpong: FAIL round %lu: expected flags 0x%lx, got 0x%lx\n", r,
                      round_flag(r), got);
            return false;
        }
        gn_printf("ping: round %lu: pong answered (flags 0x%lx)\n", r, got);
    }
    gn_printf("pingpong: %lu rounds ok\n", rounds);
    return true;
}

_Noreturn static void run_pong(struct side *s, uint64_t rounds)
{
    for (uint64_t r = 1;; r++) {
        uint64_t got = gn_doorbell_wait(&s->rx);
        if (got != round_flag(r))
            gn_printf("pong: round %lu: unexpected flags 0x%lx (expected 0x%lx)\n", r, got,
                      round_flag(r));
        gn_printf("pong: round %lu: ping rang (flags 0x%lx), ringing back\n", r, got);
        ring(s, r, got);
        if (r == rounds)
            gn_printf("pong: %lu rounds answered\n", rounds);
    }
}

int main(const void *dtb)
{
    gn_dt dt;
    int err = gn_dt_init(&dt, dtb);
    if (err != GN_DT_OK) {
        gn_printf("pingpong: cannot read the DTB: %s\n", gn_dt_strerror(err));
        return 1;
    }
    const char *args = gn_dt_bootargs(&dt);
    uint64_t rounds = DEFAULT_ROUNDS;
    gn_str role, value;
    if (gn_bootargs_get(args, "rounds", &value) && !gn_str_to_u64(value, &rounds)) {
        gn_printf("pingpong: error: rounds=%.*s is not a decimal\n", (int)value.len, value.ptr);
        return 1;
    }
    if (!gn_bootargs_get(args, "role", &role) ||
        !(gn_str_eq(role, "ping") || gn_str_eq(role, "pong"))) {
        gn_printf("pingpong: error: needs bootarg role=ping or role=pong\n");
        return 1;
    }
    struct side s = {.name = gn_str_eq(role, "ping") ? "ping" : "pong"};
    if (gn_str_eq(role, "pong")) {
        if (open_side(&s, &dt, PING_TO_PONG, PONG_TO_PING))
            run_pong(&s, rounds);
        return 1;
    }
    if (open_side(&s, &dt, PONG_TO_PING, PING_TO_PONG) && run_ping(&s, rounds) &&
        gn_bootargs_has(args, "poweroff"))
        return 0;
    gn_idle_forever();
}
