/*
 * Doorbells by label: a receiver whose IRQ handler collects the flags, and a
 * source that rings.
 */
#include <gn/cpu.h>
#include <gn/ipc.h>

#define ALL_FLAGS (~(uint64_t)0)

const char *gn_ipc_strerror(int err)
{
    switch (err) {
    case GN_IPC_ERR_NO_IRQ:
        return "the node has no interrupts";
    case GN_IPC_ERR_IRQ:
        return "cannot attach the interrupt";
    case GN_IPC_ERR_RING:
        return "the shared-memory region cannot hold that ring";
    default:
        return gn_dt_strerror(err);
    }
}

/* IRQ handler: reads and clears every flag (this also lowers a level line),
 * or, counting, just counts. */
static void doorbell_irq(unsigned intid, void *arg)
{
    (void)intid;
    gn_doorbell *db = arg;
    if (db->counting) {
        db->pending = db->pending + 1U;
        gn_event_signal(&db->fired);
        return;
    }
    uint64_t old = 0;
    gn_error_t err = gunyah_doorbell_receive(db->res.cap, ALL_FLAGS, &old);
    if (err != GN_OK)
        db->last_error = err;
    db->pending = db->pending | old;
    gn_event_signal(&db->fired);
}

static int open_doorbell(gn_doorbell *db, const gn_dt *dt, uint32_t label, bool counting)
{
    *db = (gn_doorbell){0};
    int err = gn_hyp_find(dt, GN_HYP_DOORBELL, label, &db->res);
    if (err != GN_DT_OK)
        return err;
    if (db->res.intid == GN_HYP_NO_INTID)
        return GN_IPC_ERR_NO_IRQ;
    db->counting = counting && db->res.edge;
    return gn_ipc_irq_attach(db->res.intid, db->res.edge, GN_IPC_PRIORITY, doorbell_irq, db);
}

int gn_doorbell_open(gn_doorbell *db, const gn_dt *dt, uint32_t label)
{
    return open_doorbell(db, dt, label, false);
}

int gn_doorbell_open_counting(gn_doorbell *db, const gn_dt *dt, uint32_t label)
{
    return open_doorbell(db, dt, label, true);
}

int gn_doorbell_source_open(gn_doorbell_source *src, const gn_dt *dt, uint32_t label)
{
    *src = (gn_doorbell_source){0};
    return gn_hyp_find(dt, GN_HYP_DOORBELL_SOURCE, label, &src->res);
}

uint64_t gn_doorbell_take(gn_doorbell *db)
{
    uint64_t daif = gn_irq_save();
    uint64_t flags = db->pending;
    db->pending = 0;
    gn_irq_restore(daif);
    return flags;
}

uint64_t gn_doorbell_wait(gn_doorbell *db)
{
    for (;;) {
        uint64_t seen = gn_event_read(&db->fired);
        uint64_t flags = gn_doorbell_take(db);
        if (flags != 0)
            return flags;
        gn_event_wait(&db->fired, seen);
    }
}

gn_error_t gn_doorbell_ring(const gn_doorbell_source *src, uint64_t flags, uint64_t *old_flags)
{
    return gunyah_doorbell_send(src->res.cap, flags, old_flags);
}
