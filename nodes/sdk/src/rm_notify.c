/*
 * RM names (errors, VM states, exit types) and the decoders of the VM_STATUS,
 * VM_EXITED, VM_CONSOLE_CHARS, MEM_ACCEPTED and MEM_RELEASED notifications.
 */
#include <gn/rm_calls.h>

#include "rm_internal.h"

static const char *const error_names[] = {
    "OK", "NOMEM", "NORESOURCE", "DENIED", "MSG_INVALID", "BUSY", "ARGUMENT_INVALID",
    "HANDLE_INVALID", "VALIDATE_FAILED", "MAP_FAILED", "MEM_INVALID", "MEM_INUSE",
    "MEM_RELEASED", "VMID_INVALID", "LOOKUP_FAILED", "IRQ_INVALID", "IRQ_INUSE",
    "IRQ_RELEASED", "IN_USE", "IRQ_NOT_MAPPED", "VM_STATE",
};

static const char *const state_names[] = {
    "NONE", "INIT", "READY", "RUNNING", "PAUSED", "LOAD", "AUTH", "UNKNOWN",
    "INIT_FAILED", "EXITED", "RESETTING", "RESET",
};

static const char *const exit_type_names[] = {
    "VM_EXIT", "PLATFORM_OFF", "PLATFORM_RESET", "PSCI_SYSTEM_RESET2", "WATCHDOG_BITE",
    "SOFTWARE_ERROR", "ASYNC_HW_ERROR", "VM_STOP_FORCED",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const char *gn_rm_error_name(uint32_t error)
{
    if (error == GN_RM_ERROR_UNIMPLEMENTED)
        return "UNIMPLEMENTED";
    return error < COUNT(error_names) ? error_names[error] : "UNKNOWN";
}

const char *gn_rm_result_name(gn_rm_result r)
{
    if (r < 0)
        return gn_rm_strerror((int)r);
    return gn_rm_error_name((uint32_t)r);
}

const char *gn_rm_vm_state_name(uint32_t vm_state)
{
    return vm_state < COUNT(state_names) ? state_names[vm_state] : "UNKNOWN";
}

const char *gn_rm_exit_type_name(uint32_t exit_type)
{
    return exit_type < COUNT(exit_type_names) ? exit_type_names[exit_type] : "UNKNOWN";
}

/* True if n is msg_id and was stored whole. */
static bool whole(const gn_rm_notification *n, uint32_t msg_id)
{
    return n->msg_id == msg_id && n->kept == n->size;
}

bool gn_rm_decode_vm_status(const gn_rm_notification *n, gn_rm_vm_status *out)
{
    if (!whole(n, GN_RM_NOTIFY_VM_STATUS) || n->size != 8)
        return false;
    const uint8_t *p = n->payload;
    *out = (gn_rm_vm_status){.vmid = gn_rm_get16(p), .vm_state = p[4], .os_state = p[5],
                             .app_status = gn_rm_get16(p + 6)};
    return true;
}

bool gn_rm_decode_vm_exited(const gn_rm_notification *n, gn_rm_vm_exited *out)
{
    if (!whole(n, GN_RM_NOTIFY_VM_EXITED) || n->size < 8)
        return false;
    const uint8_t *p = n->payload;
    uint32_t reason_size = gn_rm_get32(p + 4);
    if (reason_size != n->size - 8)
        return false;
    *out = (gn_rm_vm_exited){.vmid = gn_rm_get16(p), .exit_type = gn_rm_get16(p + 2),
                             .reason_size = reason_size, .reason = p + 8};
    if (reason_size >= 4) {
        uint32_t word = gn_rm_get32(p + 8);
        out->exit_flags = (uint16_t)word;
        out->exit_code = (uint8_t)(word >> 16);
    }
    return true;
}

bool gn_rm_decode_console_chars(const gn_rm_notification *n, gn_rm_console_chars *out)
{
    if (!whole(n, GN_RM_NOTIFY_VM_CONSOLE_CHARS) || n->size < 4)
        return false;
    const uint8_t *p = n->payload;
    uint16_t count = gn_rm_get16(p + 2);
    if (count != n->size - 4)
        return false;
    *out = (gn_rm_console_chars){.from_vmid = gn_rm_get16(p), .count = count,
                                 .chars = (const char *)(p + 4)};
    return true;
}

bool gn_rm_decode_mem_notice(const gn_rm_notification *n, gn_rm_mem_notice *out)
{
    bool accepted = n->msg_id == GN_RM_NOTIFY_MEM_ACCEPTED;
    if (!(accepted || n->msg_id == GN_RM_NOTIFY_MEM_RELEASED) || n->kept != n->size ||
        n->size != 12)
        return false;
    const uint8_t *p = n->payload;
    *out = (gn_rm_mem_notice){.accepted = accepted, .handle = gn_rm_get32(p),
                              .vmid = gn_rm_get16(p + 4), .mem_info_tag = gn_rm_get32(p + 8)};
    return true;
}
