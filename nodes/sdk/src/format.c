/*
 * A minimal printf-style formatter (see gn/format.h for the accepted syntax).
 */
#include <stdbool.h>
#include <stdint.h>

#include <gn/format.h>

struct out {
    gn_put_fn put;
    void *ctx;
    int count;
};

/* One parsed conversion specification. */
struct spec {
    bool left;
    bool zero;
    int width;
    int precision; /* -1: none */
    int length;    /* 0 int, 1 long, 2 long long, 3 size_t */
    char conv;
};

static void emit(struct out *o, char c)
{
    o->put(o->ctx, c);
    o->count++;
}

static void emit_repeat(struct out *o, char c, int n)
{
    for (int i = 0; i < n; i++)
        emit(o, c);
}

/* Emits prefix then body (len bytes) inside the field width of s. */
static void emit_field(struct out *o, const struct spec *s, const char *prefix, const char *body,
                       int len)
{
    int prefix_len = 0;
    while (prefix[prefix_len] != '\0')
        prefix_len++;
    int pad = s->width - prefix_len - len;
    if (pad < 0)
        pad = 0;
    if (!s->left && !s->zero)
        emit_repeat(o, ' ', pad);
    for (int i = 0; i < prefix_len; i++)
        emit(o, prefix[i]);
    if (!s->left && s->zero)
        emit_repeat(o, '0', pad);
    for (int i = 0; i < len; i++)
        emit(o, body[i]);
    if (s->left)
        emit_repeat(o, ' ', pad);
}

static void emit_number(struct out *o, const struct spec *s, uint64_t v, unsigned base,
                        const char *prefix)
{
    const char *digits = s->conv == 'X' ? "0123456789ABCDEF" : "0123456789abcdef";
    char buf[24];
    int n = (int)sizeof(buf);
    do {
        buf[--n] = digits[v % base];
        v /= base;
    } while (v != 0);
    emit_field(o, s, prefix, buf + n, (int)sizeof(buf) - n);
}

static void emit_string(struct out *o, const struct spec *s, const char *str)
{
    if (str == NULL)
        str = "(null)";
    int len = 0;
    while (str[len] != '\0' && (s->precision < 0 || len < s->precision))
        len++;
    struct spec plain = *s;
    plain.zero = false;
    emit_field(o, &plain, "", str, len);
}

static int parse_int(const char **p)
{
    int v = 0;
    while (**p >= '0' && **p <= '9' && v < 100000)
        v = v * 10 + (*(*p)++ - '0');
    return v;
}

/* Parses flags, width, precision and length after '%'; returns the
 * position of the conversion character. */
static const char *parse_spec(const char *p, va_list *ap, struct spec *s)
{
    *s = (struct spec){.precision = -1};
    for (;; p++) {
        if (*p == '-')
            s->left = true;
        else if (*p == '0')
            s->zero = true;
        else
            break;
    }
    if (*p == '*') {
        s->width = va_arg(*ap, int);
        p++;
        if (s->width < 0) {
            s->left = true;
            s->width = s->width == INT32_MIN ? 0 : -s->width;
        }
    } else {
        s->width = parse_int(&p);
    }
    if (*p == '.') {
        p++;
        if (*p == '*') {
            s->precision = va_arg(*ap, int);
            p++;
        } else {
            s->precision = parse_int(&p);
        }
    }
    while (*p == 'h')
        p++;
    if (*p == 'z') {
        s->length = 3;
        p++;
    }
    while (*p == 'l' && s->length < 2) {
        s->length++;
        p++;
    }
    return p;
}

static uint64_t arg_unsigned(va_list *ap, int length)
{
    switch (length) {
    case 0:
        return va_arg(*ap, unsigned int);
    case 1:
        return va_arg(*ap, unsigned long);
    case 2:
        return va_arg(*ap, unsigned long long);
    default:
        return va_arg(*ap, size_t);
    }
}

static int64_t arg_signed(va_list *ap, int length)
{
    switch (length) {
    case 0:
        return va_arg(*ap, int);
    case 1:
        return va_arg(*ap, long);
    case 2:
        return va_arg(*ap, long long);
    default:
        return (int64_t)va_arg(*ap, size_t);
    }
}

static void emit_signed(struct out *o, const struct spec *s, int64_t v)
{
    uint64_t magnitude = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    emit_number(o, s, magnitude, 10, v < 0 ? "-" : "");
}

/* Emits one conversion; spec_start is the '%' (echoed for unknown ones). */
static void emit_conversion(struct out *o, struct spec *s, va_list *ap, const char *spec_start,
                            const char *spec_end)
{
    switch (s->conv) {
    case 'd':
    case 'i':
        emit_signed(o, s, arg_signed(ap, s->length));
        break;
    case 'u':
        emit_number(o, s, arg_unsigned(ap, s->length), 10, "");
        break;
    case 'x':
    case 'X':
        emit_number(o, s, arg_unsigned(ap, s->length), 16, "");
        break;
    case 'p':
        emit_number(o, s, (uintptr_t)va_arg(*ap, void *), 16, "0x");
        break;
    case 'c': {
        char c = (char)va_arg(*ap, int);
        emit_field(o, s, "", &c, 1);
        break;
    }
    case 's':
        emit_string(o, s, va_arg(*ap, const char *));
        break;
    case '%':
        emit(o, '%');
        break;
    default:
        for (const char *q = spec_start; q <= spec_end && *q != '\0'; q++)
            emit(o, *q);
        break;
    }
}

int gn_vformat(gn_put_fn put, void *ctx, const char *fmt, va_list ap)
{
    struct out o = {put, ctx, 0};
    va_list args;
    va_copy(args, ap);
    const char *p = fmt;
    while (*p != '\0') {
        if (*p != '%') {
            emit(&o, *p++);
            continue;
        }
        const char *start = p;
        struct spec s;
        p = parse_spec(p + 1, &args, &s);
        s.conv = *p;
        emit_conversion(&o, &s, &args, start, p);
        if (*p != '\0')
            p++;
    }
    va_end(args);
    return o.count;
}

struct buffer {
    char *buf;
    size_t size;
    size_t used;
};

static void put_buffer(void *ctx, char c)
{
    struct buffer *b = ctx;
    if (b->used + 1 < b->size)
        b->buf[b->used] = c;
    b->used++;
}

int gn_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct buffer b = {buf, size, 0};
    int n = gn_vformat(put_buffer, &b, fmt, ap);
    if (size > 0)
        buf[b.used < size ? b.used : size - 1] = '\0';
    return n;
}

int gn_snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = gn_vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}
