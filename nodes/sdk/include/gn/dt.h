/*
 * A read-only flattened device tree (FDT v17) reader.
 *
 * Every read is bounds-checked against the header's blocks, which are
 * checked against totalsize: a malformed DTB yields an error code, never a
 * read outside [blob, blob + totalsize). (The 8-byte magic + totalsize
 * prefix is read first; the rest of the header only if totalsize covers it.)
 *
 * Nodes are identified by an int handle (>= 0); functions returning a handle
 * or a status return a negative GN_DT_ERR_* value on failure.
 */
#ifndef GN_DT_H
#define GN_DT_H

#include <stdbool.h>
#include <stdint.h>

#define GN_DT_MAGIC 0xD00DFEEDU
#define GN_DT_MAX_SIZE 0x100000U /* a larger totalsize is rejected */

#define GN_DT_OK 0
#define GN_DT_ERR_NULL (-1)       /* no blob, or misaligned (needs 4-byte alignment) */
#define GN_DT_ERR_MAGIC (-2)      /* not a flattened device tree */
#define GN_DT_ERR_SIZE (-3)       /* totalsize below the header or above GN_DT_MAX_SIZE */
#define GN_DT_ERR_VERSION (-4)    /* not compatible with version 17 */
#define GN_DT_ERR_LAYOUT (-5)     /* a block lies outside totalsize */
#define GN_DT_ERR_NOT_FOUND (-6)  /* no such node or property */
#define GN_DT_ERR_BAD_STRUCT (-7) /* malformed structure block */
#define GN_DT_ERR_BAD_VALUE (-8)  /* property has the wrong size or form */

/* A validated DTB. Fill with gn_dt_init; do not modify. */
typedef struct gn_dt {
    const uint8_t *blob;
    uint32_t total_size;
    uint32_t struct_off;
    uint32_t struct_size;
    uint32_t strings_off;
    uint32_t strings_size;
} gn_dt;

/* Validates the header of the DTB at blob and fills *dt; returns GN_DT_OK or an error. */
int gn_dt_init(gn_dt *dt, const void *blob);

/* Returns a short description of a GN_DT_* code. */
const char *gn_dt_strerror(int err);

/* Returns the root node. */
int gn_dt_root(const gn_dt *dt);

/* Returns the node at an absolute path ("/", "/chosen", "/cpus/cpu@1").
 * A component without '@' also matches a node name with a unit address. */
int gn_dt_find_node(const gn_dt *dt, const char *path);

/* Returns the first child of node, or GN_DT_ERR_NOT_FOUND if it has none. */
int gn_dt_first_child(const gn_dt *dt, int node);

/* Returns the next sibling of node, or GN_DT_ERR_NOT_FOUND after the last. */
int gn_dt_next_sibling(const gn_dt *dt, int node);

/* Returns the node's name ("" for the root), or NULL for a bad handle. */
const char *gn_dt_node_name(const gn_dt *dt, int node);

/* Finds property `name` of node: *value points into the blob, *len bytes. */
int gn_dt_get_prop(const gn_dt *dt, int node, const char *name, const void **value,
                   uint32_t *len);

/* Returns the property as a string (NUL-terminated within its length), or NULL. */
const char *gn_dt_prop_string(const gn_dt *dt, int node, const char *name);

/* Reads a one-cell (4-byte) property. */
int gn_dt_prop_u32(const gn_dt *dt, int node, const char *name, uint32_t *out);

/* Reads a one- or two-cell (4- or 8-byte) property. */
int gn_dt_prop_u64(const gn_dt *dt, int node, const char *name, uint64_t *out);

/* Reads ncells (1 or 2) cells starting at cell index `index` of a property. */
int gn_dt_prop_cells(const gn_dt *dt, int node, const char *name, uint32_t index, uint32_t ncells,
                     uint64_t *out);

/* True if the node's "compatible" string list holds `compatible` exactly. */
bool gn_dt_is_compatible(const gn_dt *dt, int node, const char *compatible);

/* Reads a #address-cells / #size-cells style property of node: 1 or 2, or
 * `dflt` when absent; any other value is GN_DT_ERR_BAD_VALUE. */
int gn_dt_cells(const gn_dt *dt, int node, const char *name, uint32_t dflt, uint32_t *out);

/* Returns /chosen/bootargs, or NULL if absent or malformed. */
const char *gn_dt_bootargs(const gn_dt *dt);

/* Reads the first (base, size) of /memory's reg, using the root's
 * #address-cells / #size-cells (defaults 2 / 1). */
int gn_dt_memory(const gn_dt *dt, uint64_t *base, uint64_t *size);

/* Returns the number of /cpus children named "cpu" or "cpu@<unit>". */
int gn_dt_cpu_count(const gn_dt *dt);

#endif /* GN_DT_H */
