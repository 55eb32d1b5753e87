/*
 * Typed RM calls: each packs its request exactly as the RM's message
 * structs (little-endian, reserved fields zero), calls gn_rm_call and checks
 * the size of an OK reply's payload.
 */
#include <gn/rm_calls.h>
#include <gn/string.h>

#include "rm_internal.h"

#define VMID_PAD_SIZE 4U

/* Folds a transport status and an RM error word into a gn_rm_result. */
static gn_rm_result result_of(int status, uint32_t rm_error)
{
    return status != GN_RM_OK ? (gn_rm_result)status : (gn_rm_result)rm_error;
}

/* A call whose OK reply carries exactly `want` payload bytes (0: a standard reply). */
static gn_rm_result call_exact(gn_rm *rm, uint32_t msg_id, const uint8_t *req, size_t len,
                               uint8_t *reply, size_t want)
{
    size_t got = 0;
    uint32_t rm_error = 0;
    int status = gn_rm_call(rm, msg_id, req, len, reply, want, &got, &rm_error);
    gn_rm_result r = result_of(status, rm_error);
    if (r == 0 && got != want)
        return GN_RM_ERR_REPLY;
    return r;
}

/* The many requests that are just {u16 vmid, u16 0} with a standard reply. */
static gn_rm_result call_vmid(gn_rm *rm, uint32_t msg_id, uint16_t vmid)
{
    uint8_t req[VMID_PAD_SIZE] = {0};
    gn_rm_put16(req, vmid);
    return call_exact(rm, msg_id, req, sizeof(req), NULL, 0);
}

/* A request with a single u32 reply. */
static gn_rm_result call_u32(gn_rm *rm, uint32_t msg_id, const uint8_t *req, size_t len,
                             uint32_t *value)
{
    uint8_t reply[4];
    gn_rm_result r = call_exact(rm, msg_id, req, len, reply, sizeof(reply));
    if (r == 0)
        *value = gn_rm_get32(reply);
    return r;
}

gn_rm_result gn_rm_vm_alloc_vmid(gn_rm *rm, uint16_t want, uint16_t *vmid)
{
    uint8_t req[VMID_PAD_SIZE] = {0};
    gn_rm_put16(req, want);
    if (want != 0) {
        gn_rm_result r = call_exact(rm, GN_RM_VM_ALLOC_VMID, req, sizeof(req), NULL, 0);
        if (r == 0)
            *vmid = want;
        return r;
    }
    uint32_t value = 0;
    gn_rm_result r = call_u32(rm, GN_RM_VM_ALLOC_VMID, req, sizeof(req), &value);
    if (r == 0 && value > 0xFFFFU)
        return GN_RM_ERR_REPLY;
    if (r == 0)
        *vmid = (uint16_t)value;
    return r;
}

gn_rm_result gn_rm_vm_dealloc_vmid(gn_rm *rm, uint16_t vmid)
{
    return call_vmid(rm, GN_RM_VM_DEALLOC_VMID, vmid);
}

gn_rm_result gn_rm_vm_config_image(gn_rm *rm, uint16_t vmid, const gn_rm_image_config *cfg)
{
    uint8_t req[40];
    gn_rm_put16(req, vmid);
    gn_rm_put16(req + 2, cfg->auth);
    gn_rm_put32(req + 4, cfg->mem_handle);
    gn_rm_put64(req + 8, cfg->image_offset);
    gn_rm_put64(req + 16, cfg->image_size);
    gn_rm_put64(req + 24, cfg->dtb_offset);
    gn_rm_put64(req + 32, cfg->dtb_size);
    return call_exact(rm, GN_RM_VM_CONFIG_IMAGE, req, sizeof(req), NULL, 0);
}

gn_rm_result gn_rm_vm_init(gn_rm *rm, uint16_t vmid)
{
    return call_vmid(rm, GN_RM_VM_INIT, vmid);
}

gn_rm_result gn_rm_vm_set_boot_context(gn_rm *rm, uint16_t vmid, uint8_t reg_set,
                                       uint8_t reg_index, uint64_t value)
{
    uint8_t req[16] = {0};
    gn_rm_put16(req, vmid);
    req[2] = reg_set;
    req[3] = reg_index;
    gn_rm_put64(req + 8, value);
    return call_exact(rm, GN_RM_VM_SET_BOOT_CONTEXT, req, sizeof(req), NULL, 0);
}

gn_rm_result gn_rm_vm_start(gn_rm *rm, uint16_t vmid)
{
    return call_vmid(rm, GN_RM_VM_START, vmid);
}

gn_rm_result gn_rm_vm_stop(gn_rm *rm, uint16_t vmid, uint8_t flags, uint32_t stop_reason)
{
    uint8_t req[8] = {0};
    gn_rm_put16(req, vmid);
    req[2] = flags;
    gn_rm_put32(req + 4, stop_reason);
    return call_exact(rm, GN_RM_VM_STOP, req, sizeof(req), NULL, 0);
}

gn_rm_result gn_rm_vm_reset(gn_rm *rm, uint16_t vmid)
{
    return call_vmid(rm, GN_RM_VM_RESET, vmid);
}

gn_rm_result gn_rm_vm_get_vmid(gn_rm *rm, uint16_t *vmid)
{
    uint32_t value = 0;
    gn_rm_result r = call_u32(rm, GN_RM_VM_GET_VMID, NULL, 0, &value);
    if (r == 0)
        *vmid = (uint16_t)value; /* the VMID is the low 16 bits */
    return r;
}

gn_rm_result gn_rm_vm_exit(gn_rm *rm, uint16_t exit_flags, uint8_t exit_code)
{
    uint8_t req[4] = {0};
    gn_rm_put16(req, exit_flags);
    req[2] = exit_code;
    return call_exact(rm, GN_RM_VM_EXIT, req, sizeof(req), NULL, 0);
}

static void decode_resource(const uint8_t *p, gn_rm_hyp_resource *r)
{
    *r = (gn_rm_hyp_resource){
        .type = p[0],
        .partner_vmid = gn_rm_get16(p + 2),
        .resource_handle = gn_rm_get32(p + 4),
        .label = gn_rm_get32(p + 8),
        .cap_id = gn_rm_get64(p + 12),
        .virq_handle = gn_rm_get32(p + 20),
        .virq = gn_rm_get32(p + 24),
        .base = gn_rm_get64(p + 28),
        .size = gn_rm_get64(p + 36),
    };
}

gn_rm_result gn_rm_vm_get_hyp_resources(gn_rm *rm, uint16_t vmid, gn_rm_hyp_resource *out,
                                        size_t max, size_t *count)
{
    static uint8_t reply[GN_RM_MAX_BODY];
    uint8_t req[VMID_PAD_SIZE] = {0};
    gn_rm_put16(req, vmid);
    size_t got = 0;
    uint32_t rm_error = 0;
    int status = gn_rm_call(rm, GN_RM_VM_GET_HYP_RESOURCES, req, sizeof(req), reply,
                            sizeof(reply), &got, &rm_error);
    gn_rm_result r = result_of(status, rm_error);
    if (r != 0)
        return r;
    if (got < 4 || got > sizeof(reply))
        return GN_RM_ERR_REPLY;
    uint32_t n = gn_rm_get32(reply);
    if ((got - 4) % GN_RM_HYP_RESOURCE_SIZE != 0 || (got - 4) / GN_RM_HYP_RESOURCE_SIZE != n)
        return GN_RM_ERR_REPLY;
    for (size_t i = 0; i < n && i < max; i++)
        decode_resource(reply + 4 + i * GN_RM_HYP_RESOURCE_SIZE, &out[i]);
    *count = n;
    return 0;
}

gn_rm_result gn_rm_console_open(gn_rm *rm, uint16_t vmid)
{
    return call_vmid(rm, GN_RM_VM_CONSOLE_OPEN, vmid);
}

gn_rm_result gn_rm_console_close(gn_rm *rm, uint16_t vmid)
{
    return call_vmid(rm, GN_RM_VM_CONSOLE_CLOSE, vmid);
}

gn_rm_result gn_rm_console_flush(gn_rm *rm, uint16_t vmid)
{
    return call_vmid(rm, GN_RM_VM_CONSOLE_FLUSH, vmid);
}

gn_rm_result gn_rm_console_write(gn_rm *rm, uint16_t vmid, const char *text, size_t len)
{
    uint8_t req[4 + GN_RM_CONSOLE_CHUNK];
    do {
        size_t chunk = len < GN_RM_CONSOLE_CHUNK ? len : GN_RM_CONSOLE_CHUNK;
        gn_rm_put16(req, vmid);
        gn_rm_put16(req + 2, (uint16_t)chunk);
        if (chunk != 0)
            memcpy(req + 4, text, chunk);
        gn_rm_result r = call_exact(rm, GN_RM_VM_CONSOLE_WRITE, req, 4 + chunk, NULL, 0);
        if (r != 0)
            return r;
        text += chunk;
        len -= chunk;
    } while (len != 0);
    return 0;
}

gn_rm_result gn_rm_mem_lend(gn_rm *rm, const gn_rm_lend *lend, uint32_t *handle)
{
    uint8_t req[40] = {0};
    req[0] = lend->mem_type;
    req[2] = lend->flags;
    gn_rm_put32(req + 4, lend->label);
    gn_rm_put16(req + 8, 1);       /* n_acl */
    gn_rm_put16(req + 12, lend->borrower);
    req[14] = lend->rights;
    gn_rm_put16(req + 16, 1);      /* n_sgl */
    gn_rm_put64(req + 20, lend->ipa);
    gn_rm_put64(req + 28, lend->size);
    gn_rm_put16(req + 36, 0);      /* n_attr */
    return call_u32(rm, GN_RM_MEM_LEND, req, sizeof(req), handle);
}

gn_rm_result gn_rm_mem_reclaim(gn_rm *rm, uint32_t handle, uint8_t flags)
{
    uint8_t req[8] = {0};
    gn_rm_put32(req, handle);
    req[4] = flags;
    return call_exact(rm, GN_RM_MEM_RECLAIM, req, sizeof(req), NULL, 0);
}
