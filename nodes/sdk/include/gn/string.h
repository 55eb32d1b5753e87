/*
 * Memory and string primitives. The compiler may emit calls to memset,
 * memcpy, memmove and memcmp, so the SDK defines them under those names.
 */
#ifndef GN_STRING_H
#define GN_STRING_H

#include <stdbool.h>
#include <stddef.h>

void *memset(void *dst, int c, size_t n);
void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/* Returns the length of s. */
size_t gn_strlen(const char *s);
/* Returns the length of s, at most max (s need not be terminated within max). */
size_t gn_strnlen(const char *s, size_t max);
/* Compares like strcmp. */
int gn_strcmp(const char *a, const char *b);
/* Returns true if the n bytes at a equal the n bytes at b. */
bool gn_memeq(const void *a, const void *b, size_t n);

#endif /* GN_STRING_H */
