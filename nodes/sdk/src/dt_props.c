/*
 * Flattened device tree reader: typed property access and the few
 * platform nodes a guest needs (/chosen/bootargs, /memory, /cpus).
 */
#include <stdbool.h>
#include <stddef.h>

#include <gn/dt.h>
#include <gn/string.h>

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

const char *gn_dt_prop_string(const gn_dt *dt, int node, const char *name)
{
    const void *value;
    uint32_t len;
    if (gn_dt_get_prop(dt, node, name, &value, &len) != GN_DT_OK)
        return NULL;
    return gn_strnlen(value, len) < len ? value : NULL;
}

int gn_dt_prop_cells(const gn_dt *dt, int node, const char *name, uint32_t index, uint32_t ncells,
                     uint64_t *out)
{
    const void *value;
    uint32_t len;
    int err = gn_dt_get_prop(dt, node, name, &value, &len);
    if (err != GN_DT_OK)
        return err;
    if (ncells < 1 || ncells > 2 || (uint64_t)index * 4 + (uint64_t)ncells * 4 > len)
        return GN_DT_ERR_BAD_VALUE;
    const uint8_t *cell = (const uint8_t *)value + (size_t)index * 4;
    uint64_t v = be32(cell);
    if (ncells == 2)
        v = v << 32 | be32(cell + 4);
    *out = v;
    return GN_DT_OK;
}

int gn_dt_prop_u32(const gn_dt *dt, int node, const char *name, uint32_t *out)
{
    const void *value;
    uint32_t len;
    int err = gn_dt_get_prop(dt, node, name, &value, &len);
    if (err != GN_DT_OK)
        return err;
    if (len != 4)
        return GN_DT_ERR_BAD_VALUE;
    *out = be32(value);
    return GN_DT_OK;
}

int gn_dt_prop_u64(const gn_dt *dt, int node, const char *name, uint64_t *out)
{
    const void *value;
    uint32_t len;
    int err = gn_dt_get_prop(dt, node, name, &value, &len);
    if (err != GN_DT_OK)
        return err;
    if (len != 4 && len != 8)
        return GN_DT_ERR_BAD_VALUE;
    return gn_dt_prop_cells(dt, node, name, 0, len / 4, out);
}

const char *gn_dt_bootargs(const gn_dt *dt)
{
    int chosen = gn_dt_find_node(dt, "/chosen");
    if (chosen < 0)
        return NULL;
    return gn_dt_prop_string(dt, chosen, "bootargs");
}

bool gn_dt_is_compatible(const gn_dt *dt, int node, const char *compatible)
{
    const void *value;
    uint32_t len;
    if (gn_dt_get_prop(dt, node, "compatible", &value, &len) != GN_DT_OK)
        return false;
    const char *entry = value;
    const char *end = entry + len;
    size_t want = gn_strlen(compatible);
    while (entry < end) {
        size_t n = gn_strnlen(entry, (size_t)(end - entry));
        if (n == (size_t)(end - entry))
            return false; /* the last entry lacks its NUL */
        if (n == want && gn_memeq(entry, compatible, n))
            return true;
        entry += n + 1;
    }
    return false;
}

int gn_dt_cells(const gn_dt *dt, int node, const char *name, uint32_t dflt, uint32_t *out)
{
    int err = gn_dt_prop_u32(dt, node, name, out);
    if (err == GN_DT_ERR_NOT_FOUND) {
        *out = dflt;
        return GN_DT_OK;
    }
    if (err != GN_DT_OK)
        return err;
    return *out == 1 || *out == 2 ? GN_DT_OK : GN_DT_ERR_BAD_VALUE;
}

int gn_dt_memory(const gn_dt *dt, uint64_t *base, uint64_t *size)
{
    int root = gn_dt_root(dt);
    if (root < 0)
        return root;
    uint32_t acells, scells;
    int err = gn_dt_cells(dt, root, "#address-cells", 2, &acells);
    if (err == GN_DT_OK)
        err = gn_dt_cells(dt, root, "#size-cells", 1, &scells);
    if (err != GN_DT_OK)
        return err;
    int memory = gn_dt_find_node(dt, "/memory");
    if (memory < 0)
        return memory;
    err = gn_dt_prop_cells(dt, memory, "reg", 0, acells, base);
    if (err == GN_DT_OK)
        err = gn_dt_prop_cells(dt, memory, "reg", acells, scells, size);
    return err;
}

static bool is_cpu_name(const char *name)
{
    return name[0] == 'c' && name[1] == 'p' && name[2] == 'u' && (name[3] == '\0' || name[3] == '@');
}

int gn_dt_cpu_count(const gn_dt *dt)
{
    int cpus = gn_dt_find_node(dt, "/cpus");
    if (cpus < 0)
        return cpus;
    int count = 0;
    int child = gn_dt_first_child(dt, cpus);
    while (child >= 0) {
        const char *name = gn_dt_node_name(dt, child);
        if (name != NULL && is_cpu_name(name))
            count++;
        child = gn_dt_next_sibling(dt, child);
    }
    return child == GN_DT_ERR_NOT_FOUND ? count : child;
}
