/*
 * Gunyah resources in the device tree: capabilities under /hypervisor and
 * shared-memory regions under /reserved-memory, found by label.
 *
 * Layout (what Gunyah's RM generates, gunyah-abi.md 5.2):
 *   /hypervisor/<name>@<cap>  compatible = "qcom,gunyah-doorbell" (this VM receives),
 *                             "qcom,gunyah-doorbell-source" (this VM sends), or
 *                             "qcom,gunyah-message-queue" plus is-sender / is-receiver;
 *                             reg = <u64 cap> (#address-cells = 2, #size-cells = 0);
 *                             interrupts = <type number flags> (absent on sources);
 *                             label = <u32> (or qcom,label); qcom,peer-vmid = <u32>;
 *                             queues: tx_message_size, tx_queue_depth.
 *   /reserved-memory/<name>   label = <u32>; reg = <ipa size> in the parent's cells.
 *
 * Labels are unique per kind in one VM (the topology checks that), except
 * doorbell sources: one VM may ring two peers' doorbells with the same label,
 * and then the first node in DT order wins.
 */
#ifndef GN_HYP_DT_H
#define GN_HYP_DT_H

#include <stdbool.h>
#include <stdint.h>

#include <gn/dt.h>

/* Which side of which object a /hypervisor node gives this VM. */
typedef enum gn_hyp_kind {
    GN_HYP_DOORBELL,        /* receives a doorbell: Receive right, has an interrupt */
    GN_HYP_DOORBELL_SOURCE, /* rings a doorbell: Send right, no interrupt */
    GN_HYP_MSGQUEUE_TX,     /* sends on a queue; its interrupt is "not full" */
    GN_HYP_MSGQUEUE_RX,     /* receives from a queue; its interrupt is "not empty" */
} gn_hyp_kind;

#define GN_HYP_NO_INTID 0U /* gn_hyp_cap.intid when the node has no interrupts */

/* One capability found in /hypervisor. */
typedef struct gn_hyp_cap {
    gn_hyp_kind kind;
    uint64_t cap;          /* reg: the cap ID in this VM's cspace */
    uint32_t label;
    uint32_t intid;        /* GIC INTID (SPI n -> 32 + n, PPI n -> 16 + n), or GN_HYP_NO_INTID */
    bool edge;             /* the interrupt is edge-triggered (flags bit 0 or 1) */
    uint32_t peer_vmid;    /* qcom,peer-vmid, 0 if absent */
    uint32_t message_size; /* queues: tx_message_size (bytes), else 0 */
    uint32_t queue_depth;  /* queues: tx_queue_depth, else 0 */
} gn_hyp_cap;

/* One shared-memory region found in /reserved-memory. */
typedef struct gn_shm_region {
    uint32_t label;
    uint64_t ipa;
    uint64_t size;
} gn_shm_region;

/*
 * Finds the first /hypervisor node of `kind` whose label is `label` and
 * fills *out. Returns GN_DT_OK, GN_DT_ERR_NOT_FOUND (no /hypervisor or no
 * such node), or GN_DT_ERR_BAD_VALUE if the node's reg, interrupts or queue
 * properties are malformed.
 */
int gn_hyp_find(const gn_dt *dt, gn_hyp_kind kind, uint32_t label, gn_hyp_cap *out);

/* Finds the /reserved-memory child labelled `label` (same errors; a size
 * of 0 or a region that wraps the address space is GN_DT_ERR_BAD_VALUE). */
int gn_shm_find(const gn_dt *dt, uint32_t label, gn_shm_region *out);

/* Reads /hypervisor/qcom,gunyah-vm's qcom,vmid. */
int gn_hyp_vmid(const gn_dt *dt, uint32_t *vmid);

/* Returns "doorbell", "doorbell-source", "msgqueue-tx" or "msgqueue-rx". */
const char *gn_hyp_kind_name(gn_hyp_kind kind);

#endif /* GN_HYP_DT_H */
