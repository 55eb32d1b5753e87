/*
 * host-launch: the host VM (kind "host", vmid 3) creates, runs, stops and
 * tears down a child VM through the Resource Manager, in the order of
 * gunyah-abi.md 3.7, and prints what the RM tells it.
 *
 * The child (nodes/rm-child, embedded: images/rm-child.bin and .dtb) goes
 * into a 1 MiB parcel at RAM base + 16 MiB: its flat image at offset 0, its
 * DTB (with the free space for the RM's overlay) at offset 0xF0000; the rest
 * is zero. The RM maps the parcel at the child's base-address 0x8000_0000.
 *
 * Sequence: VM_GET_VMID (own), VM_ALLOC_VMID(0), MEM_LEND (RWX to the child,
 * label 0, flags 0), VM_CONFIG_IMAGE (auth NONE), VM_INIT,
 * VM_GET_HYP_RESOURCES, VM_CONSOLE_OPEN(child), VM_START, wait for the
 * child's "child: idle" line, VM_STOP(force), wait for VM_EXITED,
 * MEM_RECLAIM(sanitize), check the parcel reads zero, VM_RESET, wait for
 * the RESET status, VM_DEALLOC_VMID. Each call prints `host: <CALL>: ok...`
 * or `host: FAIL <CALL>: RM error 0x<e> (<NAME>)` (or a transport error);
 * every notification is printed as it is handled:
 *   host: VM_STATUS vmid=0x<v> vm_state=<n> (<NAME>) os_state=<n> app_status=0x<n>
 *   host: VM_EXITED vmid=0x<v> exit_type=<n> (<NAME>) exit_code=<n>
 *   host: child says: <one line of the child's RM console>
 *   host: MEM_ACCEPTED handle=0x<h> vmid=0x<v> (and MEM_RELEASED)
 * and finally `host: reclaimed memory is zero` and `host: done`. The host
 * then idles, still printing notifications.
 */
#include <gn/sdk.h>

#define PARCEL_OFFSET 0x01000000UL /* from the RAM base */
#define PARCEL_SIZE 0x00100000UL
#define DTB_OFFSET 0x000F0000UL
#define CHILD_TIMEOUT_US 60000000U
#define STATE_TIMEOUT_US 30000000U
#define MAX_RESOURCES 16U
#define CHILD_LAST_LINE "child: idle"

extern const uint8_t rm_child_image[], rm_child_image_end[];
extern const uint8_t rm_child_dtb[], rm_child_dtb_end[];

static gn_rm rm;

static struct child {
    uint16_t vmid;
    uint32_t handle;
    uint8_t *parcel;
    size_t image_size, dtb_size;
    bool idle, exited, reset;
    char line[200];
    size_t line_len;
} child;

/* ---- output -------------------------------------------------------------------------- */

static void print_failure(const char *call, gn_rm_result r)
{
    if (r > 0)
        gn_printf("host: FAIL %s: RM error 0x%lx (%s)\n", call, (uint64_t)r,
                  gn_rm_error_name((uint32_t)r));
    else if (r == GN_RM_ERR_HVC)
        gn_printf("host: FAIL %s: transport error %ld (%s: %s)\n", call, r, gn_rm_strerror((int)r),
                  gunyah_error_name(rm.hvc_error));
    else
        gn_printf("host: FAIL %s: transport error %ld (%s)\n", call, r, gn_rm_strerror((int)r));
}

static void console_chars(const gn_rm_console_chars *cc)
{
    if (cc->from_vmid != child.vmid) {
        gn_printf("host: console chars from vmid 0x%x ignored\n", cc->from_vmid);
        return;
    }
    for (uint16_t i = 0; i < cc->count; i++) {
        char c = cc->chars[i];
        if (c != '\n' && child.line_len < sizeof(child.line) - 1) {
            child.line[child.line_len++] = c;
            continue;
        }
        child.line[child.line_len] = '\0';
        gn_printf("host: child says: %s\n", child.line);
        if (gn_strcmp(child.line, CHILD_LAST_LINE) == 0)
            child.idle = true;
        child.line_len = 0;
        if (c != '\n') /* an over-long line: keep this character for the next one */
            child.line[child.line_len++] = c;
    }
}

static void show_status(const gn_rm_vm_status *st)
{
    gn_printf("host: VM_STATUS vmid=0x%x vm_state=%u (%s) os_state=%u app_status=0x%x\n",
              st->vmid, st->vm_state, gn_rm_vm_state_name(st->vm_state), st->os_state,
              st->app_status);
    if (st->vmid == child.vmid && st->vm_state == GN_RM_VM_STATE_RESET)
        child.reset = true;
}

static void show_exited(const gn_rm_vm_exited *ex)
{
    gn_printf("host: VM_EXITED vmid=0x%x exit_type=%u (%s) exit_code=%u\n", ex->vmid,
              ex->exit_type, gn_rm_exit_type_name(ex->exit_type), ex->exit_code);
    if (ex->vmid == child.vmid)
        child.exited = true;
}

static bool known(uint32_t msg_id)
{
    return msg_id == GN_RM_NOTIFY_VM_STATUS || msg_id == GN_RM_NOTIFY_VM_EXITED ||
           msg_id == GN_RM_NOTIFY_VM_CONSOLE_CHARS || msg_id == GN_RM_NOTIFY_MEM_ACCEPTED ||
           msg_id == GN_RM_NOTIFY_MEM_RELEASED;
}

static void show(const gn_rm_notification *n)
{
    gn_rm_vm_status st;
    gn_rm_vm_exited ex;
    gn_rm_console_chars cc;
    gn_rm_mem_notice mem;
    if (gn_rm_decode_vm_status(n, &st))
        show_status(&st);
    else if (gn_rm_decode_vm_exited(n, &ex))
        show_exited(&ex);
    else if (gn_rm_decode_console_chars(n, &cc))
        console_chars(&cc);
    else if (gn_rm_decode_mem_notice(n, &mem))
        gn_printf("host: %s handle=0x%x vmid=0x%x\n",
                  mem.accepted ? "MEM_ACCEPTED" : "MEM_RELEASED", mem.handle, mem.vmid);
    else if (known(n->msg_id))
        gn_printf("host: FAIL malformed notification 0x%08x (%u bytes)\n", n->msg_id, n->size);
    else
        gn_printf("host: notification 0x%08x (%u bytes)\n", n->msg_id, n->size);
}

/* Prints every notification received so far. */
static void drain(void)
{
    gn_rm_notification n;
    while (gn_rm_next_notification(&rm, &n, 0) == GN_RM_OK)
        show(&n);
}

/* Prints `host: <call>: ok<detail>` or the failure, then the notifications
 * that came with the call; true on RM_OK. */
static bool outcome(const char *call, gn_rm_result r, const char *detail)
{
    if (r == 0)
        gn_printf("host: %s: ok%s\n", call, detail);
    else
        print_failure(call, r);
    drain();
    return r == 0;
}

/* Handles notifications until *flag is set; false (with a FAIL line) after timeout_us. */
static bool wait_for(const bool *flag, uint64_t timeout_us, const char *what)
{
    uint64_t hz = gn_timer_frequency();
    uint64_t start = gn_timer_counter(), limit = gn_timer_us_to_ticks(timeout_us);
    while (!*flag) {
        uint64_t spent = gn_timer_counter() - start;
        if (spent >= limit) {
            gn_printf("host: FAIL no %s within %lu s\n", what, timeout_us / 1000000U);
            return false;
        }
        gn_rm_notification n;
        int err = gn_rm_next_notification(&rm, &n, (limit - spent) * 1000000U / hz + 1);
        if (err == GN_RM_OK)
            show(&n);
        else if (err != GN_RM_ERR_TIMEOUT)
            return outcome(what, err, "");
    }
    return true;
}

/* ---- creating the child ----------------------------------------------------------------- */

/* Picks and fills the parcel: zero, the image at 0, the DTB at DTB_OFFSET. */
static bool prepare_parcel(const gn_dt *dt)
{
    uint64_t ram_base, ram_size;
    if (gn_dt_memory(dt, &ram_base, &ram_size) != GN_DT_OK) {
        gn_printf("host: FAIL cannot read /memory\n");
        return false;
    }
    child.image_size = (size_t)(rm_child_image_end - rm_child_image);
    child.dtb_size = (size_t)(rm_child_dtb_end - rm_child_dtb);
    uint64_t need = PARCEL_OFFSET + PARCEL_SIZE + GN_DTB_WINDOW_SIZE;
    if (ram_size < need || child.image_size > DTB_OFFSET ||
        child.dtb_size > PARCEL_SIZE - DTB_OFFSET) {
        gn_printf("host: FAIL parcel does not fit: RAM 0x%lx bytes (need 0x%lx), image %lu, "
                  "DTB %lu bytes\n", ram_size, need, child.image_size, child.dtb_size);
        return false;
    }
    child.parcel = (uint8_t *)(uintptr_t)(ram_base + PARCEL_OFFSET);
    memset(child.parcel, 0, PARCEL_SIZE);
    memcpy(child.parcel, rm_child_image, child.image_size);
    memcpy(child.parcel + DTB_OFFSET, rm_child_dtb, child.dtb_size);
    gn_printf("host: parcel at %p, %lu KiB: image %lu bytes at +0x0, DTB %lu bytes at +0x%lx\n",
              (void *)child.parcel, PARCEL_SIZE / 1024U, child.image_size, child.dtb_size,
              DTB_OFFSET);
    return true;
}

static bool alloc_vmid(void)
{
    char detail[32] = "";
    gn_rm_result r = gn_rm_vm_alloc_vmid(&rm, 0, &child.vmid);
    if (r == 0)
        gn_snprintf(detail, sizeof(detail), ", vmid 0x%x", child.vmid);
    return outcome("VM_ALLOC_VMID", r, detail);
}

static bool lend_parcel(void)
{
    gn_rm_lend lend = {.mem_type = GN_RM_MEM_TYPE_NORMAL, .flags = 0, .label = 0,
                       .borrower = child.vmid, .rights = GN_RM_MEM_RIGHTS_RWX,
                       .ipa = (uint64_t)(uintptr_t)child.parcel, .size = PARCEL_SIZE};
    char detail[32] = "";
    gn_rm_result r = gn_rm_mem_lend(&rm, &lend, &child.handle);
    if (r == 0)
        gn_snprintf(detail, sizeof(detail), ", handle 0x%x", child.handle);
    return outcome("MEM_LEND", r, detail);
}

static bool config_image(void)
{
    gn_rm_image_config cfg = {.auth = GN_RM_AUTH_NONE, .mem_handle = child.handle,
                              .image_offset = 0, .image_size = child.image_size,
                              .dtb_offset = DTB_OFFSET, .dtb_size = child.dtb_size};
    return outcome("VM_CONFIG_IMAGE", gn_rm_vm_config_image(&rm, child.vmid, &cfg), "");
}

static bool get_resources(void)
{
    static gn_rm_hyp_resource res[MAX_RESOURCES];
    size_t count = 0;
    char detail[32] = "";
    gn_rm_result r = gn_rm_vm_get_hyp_resources(&rm, child.vmid, res, MAX_RESOURCES, &count);
    if (r == 0)
        gn_snprintf(detail, sizeof(detail), ", %lu entries", count);
    if (!outcome("VM_GET_HYP_RESOURCES", r, detail))
        return false;
    for (size_t i = 0; i < count && i < MAX_RESOURCES; i++)
        gn_printf("host:   resource %lu: type %u label %u partner 0x%x cap 0x%lx virq %u\n", i,
                  res[i].type, res[i].label, res[i].partner_vmid, res[i].cap_id, res[i].virq);
    return true;
}

static bool launch(void)
{
    return alloc_vmid() && lend_parcel() && config_image() &&
           outcome("VM_INIT", gn_rm_vm_init(&rm, child.vmid), "") && get_resources() &&
           outcome("VM_CONSOLE_OPEN", gn_rm_console_open(&rm, child.vmid), "") &&
           outcome("VM_START", gn_rm_vm_start(&rm, child.vmid), "") &&
           wait_for(&child.idle, CHILD_TIMEOUT_US, "\"" CHILD_LAST_LINE "\" from the child");
}

/* ---- tearing it down ------------------------------------------------------------------- */

static bool check_zero(void)
{
    const volatile uint64_t *words = (const volatile uint64_t *)child.parcel;
    for (size_t i = 0; i < PARCEL_SIZE / sizeof(uint64_t); i++) {
        if (words[i] != 0) {
            gn_printf("host: FAIL reclaimed memory is not zero at +0x%lx: 0x%016lx\n",
                      i * sizeof(uint64_t), words[i]);
            return false;
        }
    }
    gn_printf("host: reclaimed memory is zero\n");
    return true;
}

static bool reclaim(void)
{
    gn_rm_result r = gn_rm_mem_reclaim(&rm, child.handle, GN_RM_MEM_RECLAIM_SANITIZE);
    return outcome("MEM_RECLAIM", r, "") && check_zero();
}

static bool reset_and_dealloc(void)
{
    return outcome("VM_RESET", gn_rm_vm_reset(&rm, child.vmid), "") &&
           wait_for(&child.reset, STATE_TIMEOUT_US, "RESET status") &&
           outcome("VM_DEALLOC_VMID", gn_rm_vm_dealloc_vmid(&rm, child.vmid), "");
}

static bool teardown(void)
{
    gn_rm_result r = gn_rm_vm_stop(&rm, child.vmid, GN_RM_VM_STOP_FORCE,
                                   GN_RM_STOP_REASON_FORCE_STOP);
    if (!outcome("VM_STOP", r, "") || !wait_for(&child.exited, STATE_TIMEOUT_US, "VM_EXITED"))
        return false;
    r = gn_rm_mem_reclaim(&rm, child.handle, GN_RM_MEM_RECLAIM_SANITIZE);
    if (r == GN_RM_ERROR_MEM_INUSE) {
        /* The RM still counts the exited child as a borrower: off the 3.7 order. */
        outcome("MEM_RECLAIM", r, "");
        gn_printf("host: retrying MEM_RECLAIM after VM_RESET\n");
        return reset_and_dealloc() && reclaim();
    }
    return outcome("MEM_RECLAIM", r, "") && check_zero() && reset_and_dealloc();
}

/* ---- main ---------------------------------------------------------------------------- */

static bool introduce(const gn_dt *dt)
{
    int err = gn_rm_open(&rm, dt);
    if (err != GN_RM_OK) {
        gn_printf("host: FAIL cannot open the RM link: %s\n", gn_rm_strerror(err));
        return false;
    }
    gn_printf("host: RM link: tx cap 0x%lx (intid %u), rx cap 0x%lx (intid %u)\n", rm.tx.cap,
              rm.tx.intid, rm.rx.cap, rm.rx.intid);
    uint16_t self = 0;
    char detail[32] = "";
    gn_rm_result r = gn_rm_vm_get_vmid(&rm, &self);
    if (r == 0)
        gn_snprintf(detail, sizeof(detail), ", vmid 0x%x", self);
    return outcome("VM_GET_VMID", r, detail);
}

int main(const void *dtb)
{
    gn_dt dt;
    int err = gn_dt_init(&dt, dtb);
    if (err != GN_DT_OK) {
        gn_printf("host: FAIL cannot read the DTB: %s\n", gn_dt_strerror(err));
        gn_idle_forever();
    }
    gn_printf("host: launching a child VM through the RM\n");
    child.vmid = 0xFFFFU; /* none yet */
    if (!introduce(&dt))
        gn_idle_forever();
    if (prepare_parcel(&dt) && launch() && teardown())
        gn_printf("host: done\n");
    else
        gn_printf("host: FAIL stopped; rm stats: %lu violations, %lu stray replies, %lu "
                  "dropped notifications\n", rm.violations, rm.stray_replies, rm.dropped);
    gn_rm_notification n;
    while (gn_rm_next_notification(&rm, &n, GN_RM_WAIT_FOREVER) == GN_RM_OK)
        show(&n);
    gn_idle_forever();
}
