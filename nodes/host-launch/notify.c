/*
 * host-launch's output: call outcomes and the RM's notifications, printed as
 * they are handled:
 *   host: VM_STATUS vmid=0x<v> vm_state=<n> (<NAME>) os_state=<n> app_status=0x<n>
 *   host: VM_EXITED vmid=0x<v> exit_type=<n> (<NAME>) exit_code=<n>
 *   host: child says: <one line of the child's RM console>
 *   host: MEM_ACCEPTED handle=0x<h> vmid=0x<v> (and MEM_RELEASED)
 */
#include "host.h"

void print_failure(const char *call, gn_rm_result r)
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

static bool starts_with(const char *s, const char *prefix)
{
    size_t n = gn_strlen(prefix);
    return gn_strnlen(s, n) == n && gn_memeq(s, prefix, n);
}

/* One complete line of the child's console. */
static void child_line(void)
{
    child.line[child.line_len] = '\0';
    gn_printf("host: child says: %s\n", child.line);
    if (gn_strcmp(child.line, CHILD_IDLE_LINE) == 0)
        child.idle = true;
    if (starts_with(child.line, CHILD_RANG_LINE))
        child.rang = true;
    child.line_len = 0;
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
        child_line();
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

static void show_mem(const gn_rm_mem_notice *mem)
{
    gn_printf("host: %s handle=0x%x vmid=0x%x\n", mem->accepted ? "MEM_ACCEPTED" : "MEM_RELEASED",
              mem->handle, mem->vmid);
    if (!mem->accepted && mem->handle == child.handle && mem->vmid == child.vmid)
        child.released = true;
}

static bool known(uint32_t msg_id)
{
    return msg_id == GN_RM_NOTIFY_VM_STATUS || msg_id == GN_RM_NOTIFY_VM_EXITED ||
           msg_id == GN_RM_NOTIFY_VM_CONSOLE_CHARS || msg_id == GN_RM_NOTIFY_MEM_ACCEPTED ||
           msg_id == GN_RM_NOTIFY_MEM_RELEASED;
}

void show(const gn_rm_notification *n)
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
        show_mem(&mem);
    else if (known(n->msg_id))
        gn_printf("host: FAIL malformed notification 0x%08x (%u bytes)\n", n->msg_id, n->size);
    else
        gn_printf("host: notification 0x%08x (%u bytes)\n", n->msg_id, n->size);
}

void drain(void)
{
    gn_rm_notification n;
    while (gn_rm_next_notification(&rm, &n, 0) == GN_RM_OK)
        show(&n);
}

bool outcome(const char *call, gn_rm_result r, const char *detail)
{
    if (r == 0)
        gn_printf("host: %s: ok%s\n", call, detail);
    else
        print_failure(call, r);
    drain();
    return r == 0;
}

bool wait_for(const bool *flag, uint64_t timeout_us, const char *what)
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
