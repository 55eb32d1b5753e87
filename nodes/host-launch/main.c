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
 * VM_GET_HYP_RESOURCES (it keeps the doorbell-source cap of the child's
 * doorbell, and the receive cap and virq of the doorbell the child rings,
 * whose interrupt it enables in its GIC), VM_CONSOLE_OPEN(child), VM_START,
 * wait for the child's "child: idle" line, sleep in WFI until the child's
 * doorbell interrupts it (`host: doorbell from child (virq <n>)`),
 * doorbell_send(0x1) on the child's doorbell and wait for the child's
 * "child: doorbell rang" line, VM_STOP(force), wait for VM_EXITED,
 * MEM_RECLAIM(sanitize), check the parcel reads zero, VM_RESET, wait for the
 * RESET status (and disable that virq again), VM_DEALLOC_VMID. Each call prints `host: <CALL>: ok...` or
 * `host: FAIL <CALL>: RM error 0x<e> (<NAME>)` (or a transport error); every
 * notification is printed as it is handled (notify.c). It ends with
 * `host: reclaimed memory is zero` and `host: done`, then idles, still
 * printing notifications.
 *
 * The bootarg variant=<name> changes the sequence, for tests:
 *   touch-lent     after MEM_LEND the host reads the parcel it lent away
 *                  (`host: reading the lent parcel at 0x<ipa>`): stage 2 ends
 *                  the VM with a guest fault there.
 *   wait-exit      no VM_STOP: it waits (`host: waiting for VM_EXITED of
 *                  vmid 0x<v> (no VM_STOP)`) for the child to halt on its own,
 *                  then for MEM_RELEASED of its parcel, and goes on with
 *                  MEM_RECLAIM.
 *   early-reclaim  MEM_RECLAIM while the child runs, before VM_STOP: it prints
 *                  `host: MEM_RECLAIM while the child runs: RM error 0x<e>
 *                  (<NAME>)` and goes on (an ok there is a FAIL).
 */
#include "host.h"

#define PARCEL_OFFSET 0x01000000UL /* from the RAM base */
#define PARCEL_SIZE 0x00100000UL
#define DTB_OFFSET 0x000F0000UL
#define CHILD_TIMEOUT_US 60000000U
#define STATE_TIMEOUT_US 30000000U
#define MAX_RESOURCES 16U
#define CHILD_DOORBELL_LABEL 1U
#define CHILD_SOURCE_LABEL 2U /* the doorbell the child rings (rm-child/child.dts) */
#define DOORBELL_FLAGS 0x1U
#define TYPE_DOORBELL_SRC 0U  /* VM_GET_HYP_RESOURCES types (gunyah-abi.md 3.5) */
#define TYPE_DOORBELL 1U

extern const uint8_t rm_child_image[], rm_child_image_end[];
extern const uint8_t rm_child_dtb[], rm_child_dtb_end[];

gn_rm rm;
struct child child;

typedef enum variant { PLAIN, TOUCH_LENT, WAIT_EXIT, EARLY_RECLAIM } variant;

static const struct {
    const char *name;
    variant v;
} variants[] = {
    {"touch-lent", TOUCH_LENT},
    {"wait-exit", WAIT_EXIT},
    {"early-reclaim", EARLY_RECLAIM},
};

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

/* Reads the first word of the parcel the host lent away (variant touch-lent).
 * Its stage 2 no longer gives the host that page, so this load faults. */
__attribute__((noinline)) static uint64_t touch_lent_parcel(void)
{
    return *(const volatile uint64_t *)child.parcel;
}

static bool config_image(void)
{
    gn_rm_image_config cfg = {.auth = GN_RM_AUTH_NONE, .mem_handle = child.handle,
                              .image_offset = 0, .image_size = child.image_size,
                              .dtb_offset = DTB_OFFSET, .dtb_size = child.dtb_size};
    return outcome("VM_CONFIG_IMAGE", gn_rm_vm_config_image(&rm, child.vmid, &cfg), "");
}

static const char *resource_name(uint8_t type)
{
    static const char *const names[] = {"DOORBELL_SRC", "DOORBELL", "MSGQ_SEND", "MSGQ_RECV"};
    return type < sizeof(names) / sizeof(names[0]) ? names[type] : "OTHER";
}

static gn_event child_bell; /* bumped by child_bell_irq */

/* IRQ handler of the doorbell the child rings: collects (and clears) its flags. */
static void child_bell_irq(unsigned intid, void *arg)
{
    (void)arg;
    uint64_t old = 0;
    gn_error_t err = gunyah_doorbell_receive(child.owner_bell_cap, ~(uint64_t)0, &old);
    if (err != GN_OK)
        child.from_child_error = err;
    child.from_child_flags |= old;
    child.from_child_intid = intid;
    child.from_child = true;
    gn_event_signal(&child_bell);
}

/* Enables the host's end of the doorbell the child rings: its virq, edge (as
 * the RM binds it), handled by child_bell_irq. */
static bool listen_to_child(void)
{
    if (child.owner_bell_cap == 0 || child.owner_bell_virq == 0) {
        gn_printf("host: FAIL no DOORBELL resource with label %u and a virq for the child\n",
                  CHILD_SOURCE_LABEL);
        return false;
    }
    if (gn_ipc_irq_attach(child.owner_bell_virq, true, GN_IPC_PRIORITY, child_bell_irq, NULL) !=
        0) {
        gn_printf("host: FAIL cannot enable virq %u\n", child.owner_bell_virq);
        return false;
    }
    return true;
}

/* Keeps the caps of the child's doorbell's source and of the doorbell the child rings. */
static void keep_child_caps(const gn_rm_hyp_resource *res)
{
    if (res->partner_vmid != child.vmid)
        return;
    if (res->type == TYPE_DOORBELL_SRC && res->label == CHILD_DOORBELL_LABEL &&
        child.bell_cap == 0)
        child.bell_cap = res->cap_id;
    if (res->type == TYPE_DOORBELL && res->label == CHILD_SOURCE_LABEL &&
        child.owner_bell_cap == 0) {
        child.owner_bell_cap = res->cap_id;
        child.owner_bell_virq = res->virq;
    }
}

/* Prints each entry, keeps the caps the host uses and enables its doorbell's virq. */
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
    for (size_t i = 0; i < count && i < MAX_RESOURCES; i++) {
        gn_printf("host:   resource %lu: type %u (%s) label %u partner 0x%x cap 0x%lx virq %u\n",
                  i, res[i].type, resource_name(res[i].type), res[i].label,
                  res[i].partner_vmid, res[i].cap_id, res[i].virq);
        keep_child_caps(&res[i]);
    }
    return listen_to_child();
}

static void bell_deadline_passed(void *arg)
{
    gn_event_signal(arg);
}

/* Sleeps in WFI, printing notifications, until the child's doorbell has
 * interrupted the host (it may have already) or CHILD_TIMEOUT_US pass. */
static bool wait_for_child_bell(void)
{
    static gn_event deadline;
    uint64_t armed = gn_event_read(&deadline);
    const gn_event *evs[3] = {&child_bell, &rm.rx.irq, &deadline};
    gn_timer_oneshot_us(CHILD_TIMEOUT_US, bell_deadline_passed, &deadline);
    for (;;) {
        uint64_t seen[3] = {gn_event_read(evs[0]), gn_event_read(evs[1]), gn_event_read(evs[2])};
        drain();
        if (child.from_child || seen[2] != armed)
            break;
        gn_event_wait_any(evs, seen, 3);
    }
    gn_timer_cancel();
    if (!child.from_child) {
        gn_printf("host: FAIL no doorbell from the child within %u s\n",
                  CHILD_TIMEOUT_US / 1000000U);
        return false;
    }
    gn_printf("host: doorbell from child (virq %u)\n", child.from_child_intid);
    if (child.from_child_error != GN_OK || child.from_child_flags != DOORBELL_FLAGS) {
        gn_printf("host: FAIL doorbell_receive(cap 0x%lx): %s, flags 0x%lx\n",
                  child.owner_bell_cap, gunyah_error_name(child.from_child_error),
                  child.from_child_flags);
        return false;
    }
    return true;
}

/* Rings the child's doorbell and waits for the child to say so. */
static bool ring_child(void)
{
    if (child.bell_cap == 0) {
        gn_printf("host: FAIL no DOORBELL_SRC resource with label %u for the child\n",
                  CHILD_DOORBELL_LABEL);
        return false;
    }
    uint64_t old = 0;
    gn_error_t err = gunyah_doorbell_send(child.bell_cap, DOORBELL_FLAGS, &old);
    if (err != GN_OK) {
        gn_printf("host: FAIL doorbell_send(cap 0x%lx): %s\n", child.bell_cap,
                  gunyah_error_name(err));
        return false;
    }
    gn_printf("host: doorbell_send(cap 0x%lx, 0x%x): OK, old flags 0x%lx\n", child.bell_cap,
              DOORBELL_FLAGS, old);
    return wait_for(&child.rang, CHILD_TIMEOUT_US, "\"" CHILD_RANG_LINE "\" from the child");
}

static bool launch(variant v)
{
    if (!alloc_vmid() || !lend_parcel())
        return false;
    if (v == TOUCH_LENT) {
        gn_printf("host: reading the lent parcel at %p\n", (void *)child.parcel);
        uint64_t word = touch_lent_parcel();
        gn_printf("host: FAIL the lent parcel is still readable: 0x%016lx\n", word);
        return false;
    }
    return config_image() && outcome("VM_INIT", gn_rm_vm_init(&rm, child.vmid), "") &&
           get_resources() &&
           outcome("VM_CONSOLE_OPEN", gn_rm_console_open(&rm, child.vmid), "") &&
           outcome("VM_START", gn_rm_vm_start(&rm, child.vmid), "") &&
           wait_for(&child.idle, CHILD_TIMEOUT_US, "\"" CHILD_IDLE_LINE "\" from the child") &&
           wait_for_child_bell() && ring_child();
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
    if (!outcome("VM_RESET", gn_rm_vm_reset(&rm, child.vmid), "") ||
        !wait_for(&child.reset, STATE_TIMEOUT_US, "RESET status"))
        return false;
    if (child.owner_bell_virq != 0) {
        /* The child's doorbell is gone; the RM may give its virq to another VM. */
        (void)gn_gic_disable(child.owner_bell_virq);
        (void)gn_irq_register(child.owner_bell_virq, NULL, NULL);
    }
    return outcome("VM_DEALLOC_VMID", gn_rm_vm_dealloc_vmid(&rm, child.vmid), "");
}

/* MEM_RECLAIM while the child still runs (variant early-reclaim): the RM must
 * refuse it, since the child has accepted the parcel. */
static bool reclaim_early(void)
{
    gn_rm_result r = gn_rm_mem_reclaim(&rm, child.handle, GN_RM_MEM_RECLAIM_SANITIZE);
    if (r == 0)
        gn_printf("host: FAIL MEM_RECLAIM while the child runs: ok\n");
    else if (r > 0)
        gn_printf("host: MEM_RECLAIM while the child runs: RM error 0x%lx (%s)\n", (uint64_t)r,
                  gn_rm_error_name((uint32_t)r));
    else
        print_failure("MEM_RECLAIM while the child runs", r);
    drain();
    return r > 0;
}

/* Brings the child to EXITED: VM_STOP(force), or (variant wait-exit) waiting
 * until it halts on its own and its parcel is released. */
static bool stop_child(variant v)
{
    if (v == WAIT_EXIT) {
        gn_printf("host: waiting for VM_EXITED of vmid 0x%x (no VM_STOP)\n", child.vmid);
        return wait_for(&child.exited, CHILD_TIMEOUT_US, "VM_EXITED") &&
               wait_for(&child.released, STATE_TIMEOUT_US, "MEM_RELEASED");
    }
    gn_rm_result r = gn_rm_vm_stop(&rm, child.vmid, GN_RM_VM_STOP_FORCE,
                                   GN_RM_STOP_REASON_FORCE_STOP);
    return outcome("VM_STOP", r, "") && wait_for(&child.exited, STATE_TIMEOUT_US, "VM_EXITED");
}

static bool teardown(variant v)
{
    if (v == EARLY_RECLAIM && !reclaim_early())
        return false;
    if (!stop_child(v))
        return false;
    gn_rm_result r = gn_rm_mem_reclaim(&rm, child.handle, GN_RM_MEM_RECLAIM_SANITIZE);
    if (r == GN_RM_ERROR_MEM_INUSE) {
        /* The RM still counts the exited child as a borrower: off the 3.7 order. */
        outcome("MEM_RECLAIM", r, "");
        gn_printf("host: retrying MEM_RECLAIM after VM_RESET\n");
        return reset_and_dealloc() && reclaim();
    }
    return outcome("MEM_RECLAIM", r, "") && check_zero() && reset_and_dealloc();
}

/* ---- main ---------------------------------------------------------------------------- */

/* Reads variant=<name> from the bootargs (absent: PLAIN); false if unknown. */
static bool pick_variant(const gn_dt *dt, variant *v)
{
    gn_str name;
    *v = PLAIN;
    if (!gn_bootargs_get(gn_dt_bootargs(dt), "variant", &name))
        return true;
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        if (gn_str_eq(name, variants[i].name)) {
            *v = variants[i].v;
            gn_printf("host: variant %s\n", variants[i].name);
            return true;
        }
    }
    gn_printf("host: FAIL unknown variant %.*s (known: touch-lent, wait-exit, early-reclaim)\n",
              (int)name.len, name.ptr);
    return false;
}

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
    variant v;
    int err = gn_dt_init(&dt, dtb);
    if (err != GN_DT_OK) {
        gn_printf("host: FAIL cannot read the DTB: %s\n", gn_dt_strerror(err));
        gn_idle_forever();
    }
    gn_printf("host: launching a child VM through the RM\n");
    child.vmid = NO_VMID;
    if (!pick_variant(&dt, &v) || !introduce(&dt))
        gn_idle_forever();
    if (prepare_parcel(&dt) && launch(v) && teardown(v))
        gn_printf("host: done\n");
    else
        gn_printf("host: FAIL stopped; rm stats: %lu violations, %lu stray replies, %lu "
                  "dropped notifications\n", rm.violations, rm.stray_replies, rm.dropped);
    gn_rm_notification n;
    while (gn_rm_next_notification(&rm, &n, GN_RM_WAIT_FOREVER) == GN_RM_OK)
        show(&n);
    gn_idle_forever();
}
