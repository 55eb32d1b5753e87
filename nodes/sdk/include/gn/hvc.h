/*
 * Gunyah hypercalls from EL1: the two entry conventions and named wrappers.
 *
 * Native: HVC #(0x6000 + N); arguments in X0..X7, results in X0..X7, X0 is
 * the error code (except hypervisor_identify, where X0 = hyp_api_info).
 * SMCCC:  HVC #0 with X0 = function id (0xC6008000 + N for hypercall N);
 * arguments in X1..X7, results in X0..X7.
 * X8..X17 are clobbered by the hypervisor in both conventions.
 *
 * Call numbers below are the HVC immediates ("Native" column of the Gunyah
 * API tables). They are bare hex literals so assembly can use them.
 */
#ifndef GN_HVC_H
#define GN_HVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* X0..X7 after a hypercall (also used for the arguments). */
typedef struct gn_regs {
    uint64_t x[8];
} gn_regs;

/* Gunyah error codes, as returned in X0 (sign-extended). */
typedef int64_t gn_error_t;
#define GN_OK 0
#define GN_ERROR_UNIMPLEMENTED (-1)
#define GN_ERROR_RETRY (-2)
#define GN_ERROR_ARGUMENT_INVALID 1
#define GN_ERROR_ARGUMENT_SIZE 2
#define GN_ERROR_ARGUMENT_ALIGNMENT 3
#define GN_ERROR_NOMEM 10
#define GN_ERROR_NORESOURCES 11
#define GN_ERROR_ADDR_OVERFLOW 20
#define GN_ERROR_ADDR_UNDERFLOW 21
#define GN_ERROR_ADDR_INVALID 22
#define GN_ERROR_DENIED 30
#define GN_ERROR_BUSY 31
#define GN_ERROR_IDLE 32
#define GN_ERROR_OBJECT_STATE 33
#define GN_ERROR_OBJECT_CONFIG 34
#define GN_ERROR_OBJECT_CONFIGURED 35
#define GN_ERROR_FAILURE 36
#define GN_ERROR_VIRQ_BOUND 40
#define GN_ERROR_VIRQ_NOT_BOUND 41
#define GN_ERROR_CSPACE_CAP_NULL 50
#define GN_ERROR_CSPACE_CAP_REVOKED 51
#define GN_ERROR_CSPACE_WRONG_OBJECT_TYPE 52
#define GN_ERROR_CSPACE_INSUFFICIENT_RIGHTS 53
#define GN_ERROR_CSPACE_FULL 54
#define GN_ERROR_MSGQUEUE_EMPTY 60
#define GN_ERROR_MSGQUEUE_FULL 61

/* Returns the Gunyah name of an error code ("OK", "ERROR_MSGQUEUE_FULL",
 * ...), or "ERROR_UNKNOWN" for a value not in the table above. */
const char *gunyah_error_name(gn_error_t err);

/* Native call numbers (HVC immediates). */
#define GN_HVC_NATIVE_BASE 0x6000
#define GN_HVC_NATIVE_LAST 0x61FF
#define GN_HVC_HYPERVISOR_IDENTIFY 0x6000
#define GN_HVC_PARTITION_CREATE_PARTITION 0x6001
#define GN_HVC_RESERVED_6008 0x6008 /* a gap in the table: ERROR_UNIMPLEMENTED */
#define GN_HVC_DOORBELL_SEND 0x6012
#define GN_HVC_DOORBELL_RECEIVE 0x6013
#define GN_HVC_DOORBELL_RESET 0x6014
#define GN_HVC_DOORBELL_MASK 0x6015
#define GN_HVC_MSGQUEUE_SEND 0x601B
#define GN_HVC_MSGQUEUE_RECEIVE 0x601C
#define GN_HVC_MSGQUEUE_FLUSH 0x601D

/* SMCCC function ids. */
#define GN_SMCCC_HYPERCALL(call) (0xC6008000U + ((uint32_t)(call) - 0x6000U))
#define GN_SMCCC_CALL_UID 0x8600FF01U
#define GN_SMCCC_REVISION 0x8600FF03U
#define GN_SMCCC_UNKNOWN_FUNCTION (-1)

/* hyp_api_info fields (hypervisor_identify X0). */
#define GN_HYP_API_VERSION(info) ((info) & 0x3FFFU)
#define GN_HYP_API_IS_BIG_ENDIAN(info) (((info) >> 14) & 1U)
#define GN_HYP_API_IS_64BIT(info) (((info) >> 15) & 1U)
#define GN_HYP_API_VARIANT(info) ((info) >> 56)

/* msgqueue_send flags. */
#define GN_MSGQUEUE_SEND_PUSH 1U

/*
 * Issues native call `call` (an HVC immediate, 0x6000..0x61FF) with X0..X7 =
 * args and stores X0..X7 after it in *out. A call number out of that range
 * issues nothing and yields X0 = -1 (ERROR_UNIMPLEMENTED), X1..X7 = 0.
 */
void gn_hvc_native_call(uint64_t call, const uint64_t args[8], gn_regs *out);

/* Issues HVC #0 with X0 = id, X1..X7 = args; returns X0..X7 after it. */
gn_regs gn_smccc_call(uint32_t id, const uint64_t args[7]);

static inline gn_regs gn_hvc_native_args(uint64_t call, const uint64_t args[8])
{
    gn_regs r;
    gn_hvc_native_call(call, args, &r);
    return r;
}

/* gn_hvc_native(call, a0, ... a7): missing arguments are zero. */
#define gn_hvc_native(call, ...) gn_hvc_native_args((call), (const uint64_t[8]){__VA_ARGS__})
/* gn_smccc(id, a1, ... a7): missing arguments are zero. */
#define gn_smccc(id, ...) gn_smccc_call((id), (const uint64_t[7]){__VA_ARGS__})

/* hypervisor_identify outputs. */
struct gn_hyp_identity {
    uint64_t api_info;
    uint64_t api_flags0;
    uint64_t api_flags1;
    uint64_t api_flags2;
};

/* Returns the hypervisor's API info and feature flags (native HVC #0x6000). */
struct gn_hyp_identity gunyah_hypervisor_identify(void);
/* Returns the hypervisor's API info and feature flags (SMCCC 0xC6008000). */
struct gn_hyp_identity gunyah_hypervisor_identify_smccc(void);

/* ORs new_flags into the doorbell's flags; *old_flags (if non-NULL) = previous flags. */
gn_error_t gunyah_doorbell_send(uint64_t cap_id, uint64_t new_flags, uint64_t *old_flags);
/* Reads and clears clear_flags (non-zero); *old_flags (if non-NULL) = previous flags. */
gn_error_t gunyah_doorbell_receive(uint64_t cap_id, uint64_t clear_flags, uint64_t *old_flags);
/* Sets the doorbell's enable and ack masks. */
gn_error_t gunyah_doorbell_mask(uint64_t cap_id, uint64_t enable_mask, uint64_t ack_mask);
/* Clears the flags and sets both masks back to their defaults. */
gn_error_t gunyah_doorbell_reset(uint64_t cap_id);

/* Queues size bytes from buf; *not_full (if non-NULL) = queue still has room. */
gn_error_t gunyah_msgqueue_send(uint64_t cap_id, size_t size, const void *buf, uint64_t flags,
                                bool *not_full);
/* Dequeues one message into buf (max_size bytes); *size = its length,
 * *not_empty = more messages wait (each output only if non-NULL). */
gn_error_t gunyah_msgqueue_receive(uint64_t cap_id, void *buf, size_t max_size, size_t *size,
                                   bool *not_empty);
/* Discards every queued message. */
gn_error_t gunyah_msgqueue_flush(uint64_t cap_id);

#endif /* GN_HVC_H */
