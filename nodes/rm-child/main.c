/*
 * rm-child: the VM host-launch creates at run time through the RM. It has no
 * UART of its own: everything it says goes through its RM console
 * (VM_CONSOLE_OPEN / WRITE / FLUSH), which the RM forwards to its owner as
 * VM_CONSOLE_CHARS.
 *
 * Loaded as a flat binary (images/rm-child.bin) at the start of the host's
 * image parcel, which the RM maps at 0x8000_0000 (the link address); its DT
 * (images/rm-child.dtb, from child.dts) sits at parcel offset 0xF0000 and
 * gets the RM's /hypervisor overlay, whose RM node this program uses.
 *
 * Lines, in order:
 *   child: hello from vmid 0x<vmid>
 *   child: DT says vmid 0x<vmid>, owner 0x<owner>
 *   child: running at 0x<image>, DTB at 0x<dtb>
 *   child: no doorbell 1: <reason>      (only if the RM gave it none)
 *   child: idle
 * Then it rings its owner once: doorbell_send(0x1) on doorbell source 2
 * (child.dts), printing `child: no doorbell source 2: <reason>` or
 * `child: doorbell_send on source 2: <error>` if it cannot. Then it idles in
 * WFI, still draining its RM queue, until the host stops it.
 * Each time its doorbell (label 1, rung by its owner; child.dts) interrupts it
 * prints `child: doorbell rang (flags 0x<flags>)` with the flags it collected.
 * If the RM link cannot be used it calls VM_EXIT with SOFTWARE_ERROR, so the
 * host sees VM_EXITED (exit_type VM_EXIT) instead of silence.
 */
#include <gn/sdk.h>

extern char __image_start[];

static gn_rm rm;

/* Writes a formatted line to this VM's RM console; false on an RM error. */
__attribute__((format(printf, 1, 2))) static bool say(const char *fmt, ...)
{
    char line[160];
    va_list ap;
    va_start(ap, fmt);
    int len = gn_vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    size_t n = (size_t)len < sizeof(line) ? (size_t)len : sizeof(line) - 1;
    return gn_rm_console_write(&rm, 0, line, n) == 0;
}

static uint32_t dt_u32(const gn_dt *dt, const char *path, const char *prop)
{
    uint32_t value = 0;
    int node = gn_dt_find_node(dt, path);
    if (node >= 0)
        gn_dt_prop_u32(dt, node, prop, &value);
    return value;
}

/* Opens doorbell 1 (its IRQ handler collects the flags); false, said, if absent. */
static bool open_doorbell(const gn_dt *dt, gn_doorbell *db)
{
    int err = gn_doorbell_open(db, dt, 1);
    if (err == 0)
        return true;
    say("child: no doorbell 1: %s\n", gn_ipc_strerror(err));
    return false;
}

static bool greet(const gn_dt *dt, const void *dtb, gn_doorbell *db, bool *have_db)
{
    uint16_t vmid = 0;
    if (gn_rm_vm_get_vmid(&rm, &vmid) != 0 || gn_rm_console_open(&rm, 0) != 0)
        return false;
    const char *vm = "/hypervisor/qcom,gunyah-vm";
    if (!say("child: hello from vmid 0x%x\n", vmid) ||
        !say("child: DT says vmid 0x%x, owner 0x%x\n", dt_u32(dt, vm, "qcom,vmid"),
             dt_u32(dt, vm, "qcom,owner-vmid")) ||
        !say("child: running at %p, DTB at %p\n", (void *)__image_start, dtb))
        return false;
    *have_db = open_doorbell(dt, db);
    return say("child: idle\n") && gn_rm_console_flush(&rm, 0) == 0;
}

/* Rings the owner's doorbell (doorbell-source label 2) once; says why not if
 * it cannot. */
static void ring_owner(const gn_dt *dt)
{
    gn_doorbell_source src;
    int err = gn_doorbell_source_open(&src, dt, 2);
    if (err != 0) {
        say("child: no doorbell source 2: %s\n", gn_ipc_strerror(err));
    } else {
        gn_error_t sent = gn_doorbell_ring(&src, 0x1, NULL);
        if (sent == GN_OK)
            return;
        say("child: doorbell_send on source 2: %s\n", gunyah_error_name(sent));
    }
    (void)gn_rm_console_flush(&rm, 0);
}

/* Sleeps in WFI; keeps the RM receive queue drained (notifications are
 * dropped) and says so each time the doorbell (if any) collected flags. */
_Noreturn static void idle(gn_doorbell *db)
{
    for (;;) {
        const gn_event *evs[2] = {&rm.rx.irq, db ? &db->fired : &rm.rx.irq};
        uint64_t seen[2] = {gn_event_read(evs[0]), gn_event_read(evs[1])};
        gn_rm_notification note;
        int err;
        while ((err = gn_rm_next_notification(&rm, &note, 0)) == GN_RM_OK)
            ;
        if (err != GN_RM_ERR_TIMEOUT)
            gn_idle_forever(); /* the queue broke: just sleep */
        uint64_t flags = db ? gn_doorbell_take(db) : 0;
        if (flags != 0) {
            if (!say("child: doorbell rang (flags 0x%lx)\n", flags) ||
                gn_rm_console_flush(&rm, 0) != 0)
                gn_idle_forever();
            continue;
        }
        gn_event_wait_any(evs, seen, 2);
    }
}

int main(const void *dtb)
{
    gn_dt dt;
    static gn_doorbell db;
    bool have_db = false;
    if (gn_dt_init(&dt, dtb) != GN_DT_OK || gn_rm_open(&rm, &dt) != GN_RM_OK)
        gn_idle_forever(); /* no way to tell anyone; the host's wait times out */
    if (!greet(&dt, dtb, &db, &have_db))
        (void)gn_rm_vm_exit(&rm, 0, GN_RM_EXIT_CODE_SOFTWARE_ERROR);
    ring_owner(&dt);
    idle(have_db ? &db : NULL);
}
