/*
 * shm-ring: a producer streams records through a single-producer/single-
 * consumer ring in shared memory; doorbells carry the wake-ups.
 *
 * Bootargs: role=producer|consumer, n=N (records, default 64; give both
 * sides the same n), batch=B (producer: records per doorbell, default 4),
 * poweroff (power off when done). Shared memory label 1 holds the ring
 * (64-byte slots); doorbell label 1 goes producer -> consumer ("data"),
 * label 2 consumer -> producer ("space").
 *
 * Record i: u64 i, u64 checksum, then 1..40 payload bytes. The checksum is a
 * running FNV-1a over every payload byte of records 1..i; the consumer keeps
 * its own and compares on every record.
 */
#include <gn/sdk.h>

#define SHM_LABEL 1U
#define DATA_DOORBELL 1U
#define SPACE_DOORBELL 2U
#define SLOT_SIZE 64U
#define DEFAULT_COUNT 64U
#define DEFAULT_BATCH 4U
#define HEADER_BYTES 16U
#define MAX_PAYLOAD 40U
#define FNV_OFFSET 0xCBF29CE484222325UL
#define FNV_PRIME 0x100000001B3UL

struct record {
    uint64_t seq;
    uint64_t checksum;
    uint8_t payload[MAX_PAYLOAD];
};

static uint32_t payload_len(uint64_t seq)
{
    return 1U + (uint32_t)(seq % MAX_PAYLOAD);
}

static uint64_t fnv1a(uint64_t h, const uint8_t *p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

/* Builds record seq after the running checksum *sum; returns its length. */
static uint32_t make_record(struct record *r, uint64_t seq, uint64_t *sum)
{
    uint32_t n = payload_len(seq);
    for (uint32_t j = 0; j < n; j++)
        r->payload[j] = (uint8_t)(seq * 7U + j);
    *sum = fnv1a(*sum, r->payload, n);
    r->seq = seq;
    r->checksum = *sum;
    return HEADER_BYTES + n;
}

static bool run_producer(gn_ring_channel *ch, uint64_t n, uint64_t batch)
{
    struct record r;
    uint64_t sum = FNV_OFFSET;
    for (uint64_t seq = 1; seq <= n; seq++) {
        uint32_t len = make_record(&r, seq, &sum);
        int res = gn_ring_write(ch, &r, len);
        if (res != GN_RING_OK) {
            gn_printf("shm-ring: FAIL record %lu: %s\n", seq, gn_ring_strerror(res));
            return false;
        }
        gn_printf("producer: record %lu (%u bytes) checksum %016lx\n", seq, len - HEADER_BYTES,
                  sum);
        if (seq % batch == 0 || seq == n)
            gn_ring_notify(ch);
    }
    gn_printf("producer: %lu records sent, rang %lu doorbells, waited for space %lu times\n", n,
              ch->rings, ch->sleeps);
    return true;
}

static bool check_record(const struct record *r, uint32_t len, uint64_t seq, uint64_t *sum)
{
    uint32_t want = payload_len(seq);
    if (len != HEADER_BYTES + want || r->seq != seq) {
        gn_printf("shm-ring: FAIL record %lu: got seq %lu, %u bytes\n", seq, r->seq, len);
        return false;
    }
    *sum = fnv1a(*sum, r->payload, want);
    if (r->checksum != *sum) {
        gn_printf("shm-ring: FAIL record %lu: checksum %016lx, expected %016lx\n", seq,
                  r->checksum, *sum);
        return false;
    }
    return true;
}

static bool run_consumer(gn_ring_channel *ch, uint64_t n)
{
    struct record r;
    uint64_t sum = FNV_OFFSET;
    for (uint64_t seq = 1; seq <= n; seq++) {
        uint32_t len = 0;
        int res = gn_ring_recv(ch, &r, sizeof(r), &len);
        if (res != GN_RING_OK) {
            gn_printf("shm-ring: FAIL record %lu: %s\n", seq, gn_ring_strerror(res));
            return false;
        }
        if (!check_record(&r, len, seq, &sum))
            return false;
        gn_printf("consumer: record %lu (%u bytes) checksum %016lx ok\n", seq,
                  len - HEADER_BYTES, sum);
    }
    gn_printf("shm-ring: %lu records ok (checksum %016lx, rang back %lu times, slept %lu times)\n",
              n, sum, ch->rings, ch->sleeps);
    return true;
}

static bool read_u64(const char *args, const char *key, uint64_t *out)
{
    gn_str value;
    if (!gn_bootargs_get(args, key, &value))
        return true;
    if (gn_str_to_u64(value, out) && *out > 0)
        return true;
    gn_printf("shm-ring: error: %s=%.*s is not a positive decimal\n", key, (int)value.len,
              value.ptr);
    return false;
}

int main(const void *dtb)
{
    gn_dt dt;
    int err = gn_dt_init(&dt, dtb);
    if (err != GN_DT_OK) {
        gn_printf("shm-ring: cannot read the DTB: %s\n", gn_dt_strerror(err));
        return 1;
    }
    const char *args = gn_dt_bootargs(&dt);
    uint64_t n = DEFAULT_COUNT, batch = DEFAULT_BATCH;
    gn_str role;
    if (!read_u64(args, "n", &n) || !read_u64(args, "batch", &batch))
        return 1;
    bool producer = gn_bootargs_get(args, "role", &role) && gn_str_eq(role, "producer");
    if (!producer && !(gn_bootargs_get(args, "role", &role) && gn_str_eq(role, "consumer"))) {
        gn_printf("shm-ring: error: needs bootarg role=producer or role=consumer\n");
        return 1;
    }
    static gn_ring_channel ch;
    uint32_t wake = producer ? SPACE_DOORBELL : DATA_DOORBELL;
    uint32_t peer = producer ? DATA_DOORBELL : SPACE_DOORBELL;
    err = gn_ring_channel_open(&ch, &dt, SHM_LABEL, SLOT_SIZE, wake, peer);
    if (err != 0) {
        gn_printf("shm-ring: cannot open the ring: %s\n", gn_ipc_strerror(err));
        return 1;
    }
    gn_printf("shm-ring: %s: ring at 0x%lx, %u slots of %u bytes; waits on doorbell %u, rings %u\n",
              producer ? "producer" : "consumer", (uint64_t)(uintptr_t)ch.ring.base,
              ch.ring.slots, ch.ring.slot_size, wake, peer);
    bool ok = producer ? run_producer(&ch, n, batch) : run_consumer(&ch, n);
    if (ok && gn_bootargs_has(args, "poweroff"))
        return 0;
    gn_idle_forever();
}
