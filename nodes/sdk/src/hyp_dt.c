/*
 * Gunyah resources in the device tree: /hypervisor capabilities and
 * /reserved-memory shared-memory regions, looked up by label.
 */
#include <gn/hyp_dt.h>

#define GIC_SPI 0U
#define GIC_PPI 1U
#define SPI_COUNT 988U /* INTIDs 32..1019 */
#define PPI_COUNT 16U
#define IRQ_TYPE_EDGE_BOTH 3U /* rising (1) | falling (2) */

static const char *const compatible_of[] = {
    [GN_HYP_DOORBELL] = "qcom,gunyah-doorbell",
    [GN_HYP_DOORBELL_SOURCE] = "qcom,gunyah-doorbell-source",
    [GN_HYP_MSGQUEUE_TX] = "qcom,gunyah-message-queue",
    [GN_HYP_MSGQUEUE_RX] = "qcom,gunyah-message-queue",
};

const char *gn_hyp_kind_name(gn_hyp_kind kind)
{
    switch (kind) {
    case GN_HYP_DOORBELL:
        return "doorbell";
    case GN_HYP_DOORBELL_SOURCE:
        return "doorbell-source";
    case GN_HYP_MSGQUEUE_TX:
        return "msgqueue-tx";
    case GN_HYP_MSGQUEUE_RX:
        return "msgqueue-rx";
    }
    return "unknown";
}

/* Reads label, falling back to qcom,label. */
static int node_label(const gn_dt *dt, int node, uint32_t *label)
{
    int err = gn_dt_prop_u32(dt, node, "label", label);
    if (err == GN_DT_ERR_NOT_FOUND)
        err = gn_dt_prop_u32(dt, node, "qcom,label", label);
    return err;
}

static bool has_prop(const gn_dt *dt, int node, const char *name)
{
    const void *value;
    uint32_t len;
    return gn_dt_get_prop(dt, node, name, &value, &len) == GN_DT_OK;
}

/* True if node is a `kind` node (compatible, plus the queue direction). */
static bool is_kind(const gn_dt *dt, int node, gn_hyp_kind kind)
{
    if (!gn_dt_is_compatible(dt, node, compatible_of[kind]))
        return false;
    switch (kind) {
    case GN_HYP_MSGQUEUE_TX:
        return has_prop(dt, node, "is-sender");
    case GN_HYP_MSGQUEUE_RX:
        return has_prop(dt, node, "is-receiver");
    default:
        return true;
    }
}

/* Decodes the first <type number flags> triple of interrupts into an INTID. */
static int read_interrupt(const gn_dt *dt, int node, gn_hyp_cap *out)
{
    const void *value;
    uint32_t len;
    int err = gn_dt_get_prop(dt, node, "interrupts", &value, &len);
    if (err == GN_DT_ERR_NOT_FOUND) {
        out->intid = GN_HYP_NO_INTID;
        return GN_DT_OK;
    }
    if (err != GN_DT_OK)
        return err;
    if (len < 12 || len % 12 != 0)
        return GN_DT_ERR_BAD_VALUE;
    uint64_t type, number, flags;
    gn_dt_prop_cells(dt, node, "interrupts", 0, 1, &type);
    gn_dt_prop_cells(dt, node, "interrupts", 1, 1, &number);
    gn_dt_prop_cells(dt, node, "interrupts", 2, 1, &flags);
    if (type == GIC_SPI && number < SPI_COUNT)
        out->intid = 32U + (uint32_t)number;
    else if (type == GIC_PPI && number < PPI_COUNT)
        out->intid = 16U + (uint32_t)number;
    else
        return GN_DT_ERR_BAD_VALUE;
    out->edge = (flags & IRQ_TYPE_EDGE_BOTH) != 0;
    return GN_DT_OK;
}

/* Reads an optional u32 property (0 when absent). */
static int optional_u32(const gn_dt *dt, int node, const char *name, uint32_t *out)
{
    int err = gn_dt_prop_u32(dt, node, name, out);
    if (err == GN_DT_ERR_NOT_FOUND) {
        *out = 0;
        return GN_DT_OK;
    }
    return err;
}

/* Fills *out from a node already known to be of `kind` with label `label`. */
static int read_cap(const gn_dt *dt, int node, uint32_t acells, gn_hyp_cap *out)
{
    int err = gn_dt_prop_cells(dt, node, "reg", 0, acells, &out->cap);
    if (err == GN_DT_OK)
        err = read_interrupt(dt, node, out);
    if (err == GN_DT_OK)
        err = optional_u32(dt, node, "qcom,peer-vmid", &out->peer_vmid);
    if (err == GN_DT_OK && (out->kind == GN_HYP_MSGQUEUE_TX || out->kind == GN_HYP_MSGQUEUE_RX)) {
        err = optional_u32(dt, node, "tx_message_size", &out->message_size);
        if (err == GN_DT_OK)
            err = optional_u32(dt, node, "tx_queue_depth", &out->queue_depth);
    }
    return err == GN_DT_ERR_NOT_FOUND ? GN_DT_ERR_BAD_VALUE : err;
}

int gn_hyp_find(const gn_dt *dt, gn_hyp_kind kind, uint32_t label, gn_hyp_cap *out)
{
    if ((unsigned)kind > GN_HYP_MSGQUEUE_RX)
        return GN_DT_ERR_NOT_FOUND;
    int hyp = gn_dt_find_node(dt, "/hypervisor");
    if (hyp < 0)
        return hyp;
    uint32_t acells;
    int err = gn_dt_cells(dt, hyp, "#address-cells", 2, &acells);
    if (err != GN_DT_OK)
        return err;
    int node = gn_dt_first_child(dt, hyp);
    for (; node >= 0; node = gn_dt_next_sibling(dt, node)) {
        uint32_t found;
        if (!is_kind(dt, node, kind) || node_label(dt, node, &found) != GN_DT_OK ||
            found != label)
            continue;
        *out = (gn_hyp_cap){.kind = kind, .label = label};
        return read_cap(dt, node, acells, out);
    }
    return node;
}

int gn_shm_find(const gn_dt *dt, uint32_t label, gn_shm_region *out)
{
    int rsv = gn_dt_find_node(dt, "/reserved-memory");
    if (rsv < 0)
        return rsv;
    uint32_t acells, scells;
    int err = gn_dt_cells(dt, rsv, "#address-cells", 2, &acells);
    if (err == GN_DT_OK)
        err = gn_dt_cells(dt, rsv, "#size-cells", 1, &scells);
    if (err != GN_DT_OK)
        return err;
    int node = gn_dt_first_child(dt, rsv);
    for (; node >= 0; node = gn_dt_next_sibling(dt, node)) {
        uint32_t found;
        if (node_label(dt, node, &found) != GN_DT_OK || found != label)
            continue;
        *out = (gn_shm_region){.label = label};
        err = gn_dt_prop_cells(dt, node, "reg", 0, acells, &out->ipa);
        if (err == GN_DT_OK)
            err = gn_dt_prop_cells(dt, node, "reg", acells, scells, &out->size);
        if (err != GN_DT_OK)
            return GN_DT_ERR_BAD_VALUE;
        if (out->size == 0 || out->ipa + out->size < out->ipa)
            return GN_DT_ERR_BAD_VALUE;
        return GN_DT_OK;
    }
    return node;
}

int gn_hyp_vmid(const gn_dt *dt, uint32_t *vmid)
{
    int vm = gn_dt_find_node(dt, "/hypervisor/qcom,gunyah-vm");
    if (vm < 0)
        return vm;
    return gn_dt_prop_u32(dt, vm, "qcom,vmid", vmid);
}
