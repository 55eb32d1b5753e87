/*
 * The blocking ring channel: gn_ring over a shm region found by label, plus
 * a doorbell each way. See gn/ring.h for the wake-up protocol.
 */
#include <gn/hvc.h>
#include <gn/ring.h>

#define RING_DOORBELL_FLAG 1U

/* A full barrier between VMs: a trap into the emulator (it takes locks). A
 * DMB alone orders nothing on the host under Unicorn. */
static void cross_vm_barrier(void)
{
    (void)gunyah_hypervisor_identify();
}

int gn_ring_channel_open(gn_ring_channel *ch, const gn_dt *dt, uint32_t shm_label,
                         uint32_t slot_size, uint32_t wake_label, uint32_t peer_label)
{
    *ch = (gn_ring_channel){0};
    gn_shm_region shm;
    int err = gn_shm_find(dt, shm_label, &shm);
    if (err != GN_DT_OK)
        return err;
    if (gn_ring_init(&ch->ring, (void *)(uintptr_t)shm.ipa, shm.size, slot_size) != GN_RING_OK)
        return GN_IPC_ERR_RING;
    err = gn_doorbell_source_open(&ch->peer, dt, peer_label);
    if (err != GN_DT_OK)
        return err;
    return gn_doorbell_open_counting(&ch->wake, dt, wake_label);
}

/* Rings the peer; counts it. */
static gn_error_t ring_peer(gn_ring_channel *ch)
{
    ch->rings++;
    return gn_doorbell_ring(&ch->peer, RING_DOORBELL_FLAG, NULL);
}

gn_error_t gn_ring_notify(gn_ring_channel *ch)
{
    if (ch->unnotified == 0)
        return GN_OK;
    ch->unnotified = 0;
    return ring_peer(ch);
}

/* Publishes, or reports FULL after asking for a ring-back and re-checking. */
static int produce_or_request(gn_ring_channel *ch, const void *record, uint32_t len)
{
    int r = gn_ring_produce(&ch->ring, record, len);
    if (r != GN_RING_FULL)
        return r;
    gn_ring_notify(ch); /* the consumer must hear of what filled the ring */
    gn_ring_request_space(&ch->ring);
    cross_vm_barrier();
    return gn_ring_produce(&ch->ring, record, len);
}

int gn_ring_write(gn_ring_channel *ch, const void *record, uint32_t len)
{
    for (;;) {
        uint64_t seen = gn_event_read(&ch->wake.fired);
        int r = produce_or_request(ch, record, len);
        if (r == GN_RING_OK)
            ch->unnotified++;
        if (r != GN_RING_FULL)
            return r;
        ch->sleeps++;
        gn_event_wait(&ch->wake.fired, seen);
        (void)gn_doorbell_take(&ch->wake);
    }
}

int gn_ring_send(gn_ring_channel *ch, const void *record, uint32_t len)
{
    int r = gn_ring_write(ch, record, len);
    if (r == GN_RING_OK)
        gn_ring_notify(ch);
    return r;
}

/* Consumer: rings the producer back if it asked for space. */
static void answer_space_request(gn_ring_channel *ch)
{
    if (gn_ring_take_space_request(&ch->ring))
        ring_peer(ch);
}

/* Consumes, or reports EMPTY after a barrier, answering space requests. */
static int consume_or_answer(gn_ring_channel *ch, void *buf, uint32_t max, uint32_t *len)
{
    int r = gn_ring_consume(&ch->ring, buf, max, len);
    if (r != GN_RING_EMPTY) {
        if (r == GN_RING_OK)
            answer_space_request(ch);
        return r;
    }
    cross_vm_barrier(); /* our tail stores out, the producer's request in */
    answer_space_request(ch);
    r = gn_ring_consume(&ch->ring, buf, max, len);
    if (r == GN_RING_OK)
        answer_space_request(ch);
    return r;
}

int gn_ring_recv(gn_ring_channel *ch, void *buf, uint32_t max, uint32_t *len)
{
    for (;;) {
        uint64_t seen = gn_event_read(&ch->wake.fired);
        int r = consume_or_answer(ch, buf, max, len);
        if (r != GN_RING_EMPTY)
            return r;
        ch->sleeps++;
        gn_event_wait(&ch->wake.fired, seen);
        (void)gn_doorbell_take(&ch->wake);
    }
}
