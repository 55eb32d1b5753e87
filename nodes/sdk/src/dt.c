/*
 * Flattened device tree reader: header validation and structure walking.
 *
 * Offsets are relative to the structure block and every token read is
 * checked against its size; strings are checked against the strings block.
 * Each token advances the offset by at least 4 bytes, so every walk ends.
 */
#include <stdbool.h>
#include <stddef.h>

#include <gn/dt.h>
#include <gn/string.h>

#define FDT_BEGIN_NODE 1U
#define FDT_END_NODE 2U
#define FDT_PROP 3U
#define FDT_NOP 4U
#define FDT_END 9U

#define HEADER_SIZE 40U

/* One decoded structure-block token. */
struct token {
    uint32_t tag;
    uint32_t next;      /* offset of the following token */
    uint32_t name_off;  /* PROP: offset in the strings block */
    uint32_t value_off; /* PROP: value offset; BEGIN_NODE: name offset */
    uint32_t len;       /* PROP: value length; BEGIN_NODE: name length */
};

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t align4(uint64_t off)
{
    uint64_t aligned = (off + 3) & ~(uint64_t)3;
    return aligned > UINT32_MAX ? UINT32_MAX : (uint32_t)aligned;
}

static const uint8_t *struct_at(const gn_dt *dt, uint32_t off)
{
    return dt->blob + dt->struct_off + off;
}

/* Reads a big-endian word at off in the structure block. */
static bool struct_word(const gn_dt *dt, uint32_t off, uint32_t *out)
{
    if (dt->struct_size < 4 || off > dt->struct_size - 4)
        return false;
    *out = be32(struct_at(dt, off));
    return true;
}

static int decode_begin_node(const gn_dt *dt, uint32_t off, struct token *t)
{
    uint32_t name = off + 4;
    size_t room = dt->struct_size - name;
    size_t len = gn_strnlen((const char *)struct_at(dt, name), room);
    if (len == room)
        return GN_DT_ERR_BAD_STRUCT;
    t->value_off = name;
    t->len = (uint32_t)len;
    t->next = align4((uint64_t)name + len + 1);
    return GN_DT_OK;
}

static int decode_prop(const gn_dt *dt, uint32_t off, struct token *t)
{
    if (!struct_word(dt, off + 4, &t->len) || !struct_word(dt, off + 8, &t->name_off))
        return GN_DT_ERR_BAD_STRUCT;
    uint64_t end = (uint64_t)off + 12 + t->len;
    if (end > dt->struct_size)
        return GN_DT_ERR_BAD_STRUCT;
    t->value_off = off + 12;
    t->next = align4(end);
    return GN_DT_OK;
}

/* Decodes the token at off. */
static int read_token(const gn_dt *dt, uint32_t off, struct token *t)
{
    if ((off & 3) != 0 || !struct_word(dt, off, &t->tag))
        return GN_DT_ERR_BAD_STRUCT;
    t->next = off + 4;
    switch (t->tag) {
    case FDT_BEGIN_NODE:
        return decode_begin_node(dt, off, t);
    case FDT_PROP:
        return decode_prop(dt, off, t);
    case FDT_END_NODE:
    case FDT_NOP:
    case FDT_END:
        return GN_DT_OK;
    default:
        return GN_DT_ERR_BAD_STRUCT;
    }
}

/* Skips NOPs from off; returns the offset of the next other token. */
static int skip_nops(const gn_dt *dt, uint32_t off, struct token *t)
{
    for (;;) {
        int err = read_token(dt, off, t);
        if (err != GN_DT_OK)
            return err;
        if (t->tag != FDT_NOP)
            return (int)off;
        off = t->next;
    }
}

int gn_dt_init(gn_dt *dt, const void *blob)
{
    const uint8_t *b = blob;
    if (b == NULL || ((uintptr_t)b & 3) != 0)
        return GN_DT_ERR_NULL;
    if (be32(b) != GN_DT_MAGIC)
        return GN_DT_ERR_MAGIC;
    uint32_t total = be32(b + 4);
    if (total < HEADER_SIZE || total > GN_DT_MAX_SIZE)
        return GN_DT_ERR_SIZE;
    if (be32(b + 20) < 17 || be32(b + 24) > 17)
        return GN_DT_ERR_VERSION;
    uint32_t s_off = be32(b + 8), s_size = be32(b + 36);
    uint32_t str_off = be32(b + 12), str_size = be32(b + 32);
    if ((uint64_t)s_off + s_size > total || (uint64_t)str_off + str_size > total ||
        (s_off & 3) != 0)
        return GN_DT_ERR_LAYOUT;
    *dt = (gn_dt){b, total, s_off, s_size, str_off, str_size};
    return GN_DT_OK;
}

const char *gn_dt_strerror(int err)
{
    switch (err) {
    case GN_DT_OK:
        return "ok";
    case GN_DT_ERR_NULL:
        return "no DTB or misaligned DTB";
    case GN_DT_ERR_MAGIC:
        return "bad magic";
    case GN_DT_ERR_SIZE:
        return "bad totalsize";
    case GN_DT_ERR_VERSION:
        return "unsupported version";
    case GN_DT_ERR_LAYOUT:
        return "block outside totalsize";
    case GN_DT_ERR_NOT_FOUND:
        return "not found";
    case GN_DT_ERR_BAD_STRUCT:
        return "malformed structure block";
    case GN_DT_ERR_BAD_VALUE:
        return "bad property value";
    default:
        return "unknown error";
    }
}

int gn_dt_root(const gn_dt *dt)
{
    struct token t;
    int off = skip_nops(dt, 0, &t);
    if (off < 0)
        return off;
    return t.tag == FDT_BEGIN_NODE ? off : GN_DT_ERR_BAD_STRUCT;
}

/* Returns the offset just after node's properties (its first child or END_NODE). */
static int after_props(const gn_dt *dt, int node)
{
    struct token t;
    if (node < 0 || read_token(dt, (uint32_t)node, &t) != GN_DT_OK || t.tag != FDT_BEGIN_NODE)
        return GN_DT_ERR_BAD_STRUCT;
    uint32_t off = t.next;
    for (;;) {
        int err = read_token(dt, off, &t);
        if (err != GN_DT_OK)
            return err;
        if (t.tag != FDT_PROP && t.tag != FDT_NOP)
            return (int)off;
        off = t.next;
    }
}

int gn_dt_first_child(const gn_dt *dt, int node)
{
    struct token t;
    int off = after_props(dt, node);
    if (off < 0)
        return off;
    if (read_token(dt, (uint32_t)off, &t) != GN_DT_OK)
        return GN_DT_ERR_BAD_STRUCT;
    switch (t.tag) {
    case FDT_BEGIN_NODE:
        return off;
    case FDT_END_NODE:
        return GN_DT_ERR_NOT_FOUND;
    default:
        return GN_DT_ERR_BAD_STRUCT;
    }
}

/* Returns the offset just after node's END_NODE. */
static int skip_subtree(const gn_dt *dt, int node)
{
    struct token t;
    uint32_t off = (uint32_t)node;
    uint32_t depth = 0;
    for (;;) {
        if (read_token(dt, off, &t) != GN_DT_OK || t.tag == FDT_END)
            return GN_DT_ERR_BAD_STRUCT;
        if (t.tag == FDT_BEGIN_NODE)
            depth++;
        else if (t.tag == FDT_END_NODE && --depth == 0)
            return (int)t.next;
        off = t.next;
    }
}

int gn_dt_next_sibling(const gn_dt *dt, int node)
{
    struct token t;
    if (node < 0)
        return GN_DT_ERR_BAD_STRUCT;
    int off = skip_subtree(dt, node);
    if (off < 0)
        return off;
    off = skip_nops(dt, (uint32_t)off, &t);
    if (off < 0)
        return off;
    switch (t.tag) {
    case FDT_BEGIN_NODE:
        return off;
    case FDT_END_NODE:
    case FDT_END:
        return GN_DT_ERR_NOT_FOUND;
    default:
        return GN_DT_ERR_BAD_STRUCT;
    }
}

const char *gn_dt_node_name(const gn_dt *dt, int node)
{
    struct token t;
    if (node < 0 || read_token(dt, (uint32_t)node, &t) != GN_DT_OK || t.tag != FDT_BEGIN_NODE)
        return NULL;
    return (const char *)struct_at(dt, t.value_off);
}

/* True if the path component (len bytes) names node_name: exactly, or up
 * to the '@' of a unit address when the component has none. */
static bool component_matches(const char *comp, size_t len, const char *node_name)
{
    size_t name_len = gn_strlen(node_name);
    if (name_len == len)
        return gn_memeq(comp, node_name, len);
    bool has_unit = false;
    for (size_t i = 0; i < len; i++)
        has_unit = has_unit || comp[i] == '@';
    return !has_unit && name_len > len && node_name[len] == '@' && gn_memeq(comp, node_name, len);
}

/* Returns the child of parent named by the component, or an error. */
static int find_child(const gn_dt *dt, int parent, const char *comp, size_t len)
{
    int child = gn_dt_first_child(dt, parent);
    while (child >= 0) {
        const char *name = gn_dt_node_name(dt, child);
        if (name != NULL && component_matches(comp, len, name))
            return child;
        child = gn_dt_next_sibling(dt, child);
    }
    return child;
}

int gn_dt_find_node(const gn_dt *dt, const char *path)
{
    if (path == NULL || path[0] != '/')
        return GN_DT_ERR_NOT_FOUND;
    int node = gn_dt_root(dt);
    const char *p = path;
    while (node >= 0) {
        while (*p == '/')
            p++;
        if (*p == '\0')
            return node;
        size_t len = 0;
        while (p[len] != '\0' && p[len] != '/')
            len++;
        node = find_child(dt, node, p, len);
        p += len;
    }
    return node;
}

/* True if the strings-block string at name_off equals name. */
static bool prop_name_is(const gn_dt *dt, uint32_t name_off, const char *name)
{
    if (name_off >= dt->strings_size)
        return false;
    const char *s = (const char *)dt->blob + dt->strings_off + name_off;
    size_t room = dt->strings_size - name_off;
    size_t len = gn_strnlen(s, room);
    return len < room && len == gn_strlen(name) && gn_memeq(s, name, len);
}

int gn_dt_get_prop(const gn_dt *dt, int node, const char *name, const void **value,
                   uint32_t *len)
{
    struct token t;
    if (node < 0 || read_token(dt, (uint32_t)node, &t) != GN_DT_OK || t.tag != FDT_BEGIN_NODE)
        return GN_DT_ERR_BAD_STRUCT;
    for (uint32_t off = t.next;; off = t.next) {
        int err = read_token(dt, off, &t);
        if (err != GN_DT_OK)
            return err;
        if (t.tag == FDT_NOP)
            continue;
        if (t.tag != FDT_PROP)
            return GN_DT_ERR_NOT_FOUND;
        if (prop_name_is(dt, t.name_off, name)) {
            *value = struct_at(dt, t.value_off);
            *len = t.len;
            return GN_DT_OK;
        }
    }
}
