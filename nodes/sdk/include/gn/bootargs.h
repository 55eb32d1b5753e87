/*
 * The kernel command line (/chosen/bootargs): space-separated tokens.
 *
 * gunyah-net sets it to "vm=<vm name>" followed by a space and the
 * topology's `args` string, if any (e.g. "vm=alpha poweroff").
 * A token is either a flag ("poweroff") or key=value ("svc=echo", "n=100").
 * Values cannot contain spaces. A NULL command line is treated as empty.
 */
#ifndef GN_BOOTARGS_H
#define GN_BOOTARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A view of bytes inside the command line (not NUL-terminated); print
 * with "%.*s", (int)s.len, s.ptr. */
typedef struct gn_str {
    const char *ptr;
    size_t len;
} gn_str;

/* Returns true if the command line holds the token `flag` exactly. */
bool gn_bootargs_has(const char *args, const char *flag);

/* Finds the first token "key=..."; stores its value in *value (possibly
 * empty). Returns false if there is none. */
bool gn_bootargs_get(const char *args, const char *key, gn_str *value);

/* Finds "key=<decimal>" and parses it. Returns false if the key is missing
 * or its value is not a decimal that fits in 64 bits. */
bool gn_bootargs_get_u64(const char *args, const char *key, uint64_t *out);

/* Returns true if s equals the NUL-terminated string z. */
bool gn_str_eq(gn_str s, const char *z);

/* Parses s as a decimal (digits only, at least one); false on any other
 * byte or on overflow. */
bool gn_str_to_u64(gn_str s, uint64_t *out);

#endif /* GN_BOOTARGS_H */
