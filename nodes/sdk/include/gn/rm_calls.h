/*
 * Typed Resource Manager calls and notification decoders over gn/rm_rpc.h,
 * with the RM's numbers (gunyah-abi.md 3.3-3.6, 4.2). Payloads are packed
 * little-endian exactly as the RM's `*_message.h` (and gunyah-net's
 * rm/mem_payloads.py and its siblings) lay them out; reserved fields are written as zero.
 *
 * Every call returns a gn_rm_result:
 *   0            RM_OK;
 *   > 0          the RM error word of the reply (GN_RM_ERROR_*, up to 0xFFFFFFFF);
 *   < 0          no usable reply: GN_RM_ERR_* from gn/rm_rpc.h (GN_RM_ERR_REPLY
 *                also when an OK reply's payload has the wrong size).
 * Output parameters are written only on RM_OK.
 */
#ifndef GN_RM_CALLS_H
#define GN_RM_CALLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gn/rm_rpc.h>

typedef int64_t gn_rm_result;

/* RM error words (gunyah-abi.md 3.3). */
#define GN_RM_ERROR_OK 0x0U
#define GN_RM_ERROR_UNIMPLEMENTED 0xFFFFFFFFU
#define GN_RM_ERROR_NOMEM 0x1U
#define GN_RM_ERROR_NORESOURCE 0x2U
#define GN_RM_ERROR_DENIED 0x3U
#define GN_RM_ERROR_MSG_INVALID 0x4U
#define GN_RM_ERROR_BUSY 0x5U
#define GN_RM_ERROR_ARGUMENT_INVALID 0x6U
#define GN_RM_ERROR_HANDLE_INVALID 0x7U
#define GN_RM_ERROR_VALIDATE_FAILED 0x8U
#define GN_RM_ERROR_MAP_FAILED 0x9U
#define GN_RM_ERROR_MEM_INVALID 0xAU
#define GN_RM_ERROR_MEM_INUSE 0xBU
#define GN_RM_ERROR_MEM_RELEASED 0xCU
#define GN_RM_ERROR_VMID_INVALID 0xDU
#define GN_RM_ERROR_LOOKUP_FAILED 0xEU
#define GN_RM_ERROR_IRQ_INVALID 0xFU
#define GN_RM_ERROR_IRQ_INUSE 0x10U
#define GN_RM_ERROR_IRQ_RELEASED 0x11U
#define GN_RM_ERROR_IN_USE 0x12U
#define GN_RM_ERROR_IRQ_NOT_MAPPED 0x13U
#define GN_RM_ERROR_VM_STATE 0x14U

/* Requests (gunyah-abi.md 3.5). */
#define GN_RM_VM_ALLOC_VMID 0x56000001U
#define GN_RM_VM_DEALLOC_VMID 0x56000002U
#define GN_RM_VM_START 0x56000004U
#define GN_RM_VM_STOP 0x56000005U
#define GN_RM_VM_RESET 0x56000006U
#define GN_RM_VM_CONFIG_IMAGE 0x56000009U
#define GN_RM_VM_INIT 0x5600000BU
#define GN_RM_VM_GET_HYP_RESOURCES 0x56000020U
#define GN_RM_VM_GET_VMID 0x56000024U
#define GN_RM_VM_SET_BOOT_CONTEXT 0x56000031U
#define GN_RM_VM_CONSOLE_OPEN 0x56000081U
#define GN_RM_VM_CONSOLE_CLOSE 0x56000082U
#define GN_RM_VM_CONSOLE_WRITE 0x56000083U
#define GN_RM_VM_CONSOLE_FLUSH 0x56000084U
#define GN_RM_VM_EXIT 0x56000085U
#define GN_RM_MEM_LEND 0x51000012U
#define GN_RM_MEM_RECLAIM 0x51000015U

/* Notifications. */
#define GN_RM_NOTIFY_VM_EXITED 0x56100001U
#define GN_RM_NOTIFY_VM_STATUS 0x56100008U
#define GN_RM_NOTIFY_VM_CONSOLE_CHARS 0x56100080U
#define GN_RM_NOTIFY_MEM_RELEASED 0x51100012U
#define GN_RM_NOTIFY_MEM_ACCEPTED 0x51100013U

/* vm_state (3.6). */
#define GN_RM_VM_STATE_NONE 0U
#define GN_RM_VM_STATE_INIT 1U
#define GN_RM_VM_STATE_READY 2U
#define GN_RM_VM_STATE_RUNNING 3U
#define GN_RM_VM_STATE_PAUSED 4U
#define GN_RM_VM_STATE_LOAD 5U
#define GN_RM_VM_STATE_AUTH 6U
#define GN_RM_VM_STATE_INIT_FAILED 8U
#define GN_RM_VM_STATE_EXITED 9U
#define GN_RM_VM_STATE_RESETTING 10U
#define GN_RM_VM_STATE_RESET 11U

/* exit_type of VM_EXITED, exit_code of VM_EXIT. */
#define GN_RM_EXIT_TYPE_VM_EXIT 0U
#define GN_RM_EXIT_TYPE_VM_STOP_FORCED 7U
#define GN_RM_EXIT_CODE_NORMAL 0U
#define GN_RM_EXIT_CODE_SOFTWARE_ERROR 1U

/* Arguments. */
#define GN_RM_AUTH_NONE 0U
#define GN_RM_VM_STOP_FORCE 0x1U
#define GN_RM_STOP_REASON_FORCE_STOP 3U /* what Linux sends with FORCE */
#define GN_RM_MEM_TYPE_NORMAL 0U
#define GN_RM_MEM_RIGHTS_RWX 0x7U     /* X = 1, W = 2, R = 4 */
#define GN_RM_MEM_RECLAIM_SANITIZE 0x1U
#define GN_RM_BOOT_REG_X 0U
#define GN_RM_BOOT_REG_PC 1U
#define GN_RM_BOOT_REG_SP 2U
#define GN_RM_HYP_RESOURCE_SIZE 44U
#define GN_RM_CONSOLE_CHUNK 228U /* text bytes per VM_CONSOLE_WRITE: one fragment each */

/* Returns the RM name of an error word ("MEM_INUSE"), or "UNKNOWN". */
const char *gn_rm_error_name(uint32_t error);
/* Returns the error word's name for r > 0, "OK" for 0, the transport text for r < 0. */
const char *gn_rm_result_name(gn_rm_result r);
/* Returns "RUNNING", ... or "UNKNOWN". */
const char *gn_rm_vm_state_name(uint32_t vm_state);
/* Returns "VM_STOP_FORCED", ... or "UNKNOWN". */
const char *gn_rm_exit_type_name(uint32_t exit_type);

/* ---- VM management ---------------------------------------------------------------------- */

/* VM_ALLOC_VMID: want 0 lets the RM choose (*vmid = its answer); else *vmid = want. */
gn_rm_result gn_rm_vm_alloc_vmid(gn_rm *rm, uint16_t want, uint16_t *vmid);
gn_rm_result gn_rm_vm_dealloc_vmid(gn_rm *rm, uint16_t vmid);

/* VM_CONFIG_IMAGE's arguments; offsets are from the start of parcel mem_handle. */
typedef struct gn_rm_image_config {
    uint16_t auth; /* GN_RM_AUTH_NONE */
    uint32_t mem_handle;
    uint64_t image_offset, image_size;
    uint64_t dtb_offset, dtb_size;
} gn_rm_image_config;

gn_rm_result gn_rm_vm_config_image(gn_rm *rm, uint16_t vmid, const gn_rm_image_config *cfg);
gn_rm_result gn_rm_vm_init(gn_rm *rm, uint16_t vmid);
/* VM_SET_BOOT_CONTEXT: one boot register (reg_set GN_RM_BOOT_REG_*). */
gn_rm_result gn_rm_vm_set_boot_context(gn_rm *rm, uint16_t vmid, uint8_t reg_set,
                                       uint8_t reg_index, uint64_t value);
gn_rm_result gn_rm_vm_start(gn_rm *rm, uint16_t vmid);
/* VM_STOP: flags GN_RM_VM_STOP_FORCE (or 0: the VM gets VM_SHUTDOWN). */
gn_rm_result gn_rm_vm_stop(gn_rm *rm, uint16_t vmid, uint8_t flags, uint32_t stop_reason);
gn_rm_result gn_rm_vm_reset(gn_rm *rm, uint16_t vmid);
/* VM_GET_VMID: the caller's own vmid. */
gn_rm_result gn_rm_vm_get_vmid(gn_rm *rm, uint16_t *vmid);
/* VM_EXIT (guest to RM): the caller exits; its owner gets VM_EXITED(VM_EXIT). */
gn_rm_result gn_rm_vm_exit(gn_rm *rm, uint16_t exit_flags, uint8_t exit_code);

/* One 44-byte VM_GET_HYP_RESOURCES entry. */
typedef struct gn_rm_hyp_resource {
    uint8_t type; /* 0 DOORBELL_SRC ... 4 VCPU ... 10 ADDR_SPACE */
    uint16_t partner_vmid;
    uint32_t resource_handle;
    uint32_t label;
    uint64_t cap_id;
    uint32_t virq_handle;
    uint32_t virq;
    uint64_t base, size;
} gn_rm_hyp_resource;

/* VM_GET_HYP_RESOURCES: *count = the entries the RM reported; the first
 * min(*count, max) are decoded into out (which may be NULL when max is 0). */
gn_rm_result gn_rm_vm_get_hyp_resources(gn_rm *rm, uint16_t vmid, gn_rm_hyp_resource *out,
                                        size_t max, size_t *count);

/* ---- console (vmid 0: the caller's own) --------------------------------------------------- */

gn_rm_result gn_rm_console_open(gn_rm *rm, uint16_t vmid);
gn_rm_result gn_rm_console_close(gn_rm *rm, uint16_t vmid);
/* VM_CONSOLE_WRITE, GN_RM_CONSOLE_CHUNK bytes per message; stops at the first error. */
gn_rm_result gn_rm_console_write(gn_rm *rm, uint16_t vmid, const char *text, size_t len);
gn_rm_result gn_rm_console_flush(gn_rm *rm, uint16_t vmid);

/* ---- memory parcels ------------------------------------------------------------------------ */

/* MEM_LEND of one region to one borrower (no attribute entries). */
typedef struct gn_rm_lend {
    uint8_t mem_type; /* GN_RM_MEM_TYPE_NORMAL */
    uint8_t flags;    /* 0: Linux lends without SANITIZE or APPEND */
    uint32_t label;
    uint16_t borrower;
    uint8_t rights;   /* GN_RM_MEM_RIGHTS_* */
    uint64_t ipa;     /* in the caller's IPA space, page-aligned */
    uint64_t size;
} gn_rm_lend;

gn_rm_result gn_rm_mem_lend(gn_rm *rm, const gn_rm_lend *lend, uint32_t *handle);
/* MEM_RECLAIM: flags GN_RM_MEM_RECLAIM_SANITIZE zeroes the memory. */
gn_rm_result gn_rm_mem_reclaim(gn_rm *rm, uint32_t handle, uint8_t flags);

/* ---- notification decoders (false: another msg_id, truncated or malformed) ------------------ */

typedef struct gn_rm_vm_status {
    uint16_t vmid;
    uint8_t vm_state;
    uint8_t os_state;
    uint16_t app_status;
} gn_rm_vm_status;

typedef struct gn_rm_vm_exited {
    uint16_t vmid;
    uint16_t exit_type;
    uint32_t reason_size;
    const uint8_t *reason; /* into the notification's payload */
    uint16_t exit_flags;   /* from the first reason word, when reason_size >= 4 */
    uint8_t exit_code;
} gn_rm_vm_exited;

typedef struct gn_rm_console_chars {
    uint16_t from_vmid;
    uint16_t count;
    const char *chars; /* into the notification's payload; not NUL-terminated */
} gn_rm_console_chars;

/* MEM_ACCEPTED / MEM_RELEASED (to the owner): borrower vmid accepted or released a parcel. */
typedef struct gn_rm_mem_notice {
    bool accepted; /* MEM_ACCEPTED; false for MEM_RELEASED */
    uint32_t handle;
    uint16_t vmid;
    uint32_t mem_info_tag;
} gn_rm_mem_notice;

bool gn_rm_decode_vm_status(const gn_rm_notification *n, gn_rm_vm_status *out);
bool gn_rm_decode_vm_exited(const gn_rm_notification *n, gn_rm_vm_exited *out);
bool gn_rm_decode_console_chars(const gn_rm_notification *n, gn_rm_console_chars *out);
bool gn_rm_decode_mem_notice(const gn_rm_notification *n, gn_rm_mem_notice *out);

#endif /* GN_RM_CALLS_H */
