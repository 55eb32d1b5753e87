/*
 * A minimal printf-style formatter.
 *
 * Conversions: %d %i %u %x %X %p %c %s %%. Length modifiers: l, ll, z
 * (h and hh are accepted and read an int). Flags: '-' (left-justify) and
 * '0' (zero-pad numbers). Width: digits or '*'. Precision ('.' digits or
 * '.*') limits %s; it is accepted and ignored for numbers. %p prints "0x"
 * and lowercase hex. %s of NULL prints "(null)". An unknown conversion is
 * printed as written. No floating point.
 */
#ifndef GN_FORMAT_H
#define GN_FORMAT_H

#include <stdarg.h>
#include <stddef.h>

/* Receives each output byte in order. */
typedef void (*gn_put_fn)(void *ctx, char c);

/* Formats fmt with ap, passing each byte to put; returns the byte count. */
int gn_vformat(gn_put_fn put, void *ctx, const char *fmt, va_list ap);

/* Formats into buf (at most size bytes, NUL-terminated if size > 0);
 * returns the length the full output would have. */
int gn_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int gn_snprintf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* GN_FORMAT_H */
