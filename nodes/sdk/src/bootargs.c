/*
 * Command-line (bootargs) tokens: flags and key=value pairs.
 */
#include <gn/bootargs.h>
#include <gn/string.h>

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Returns the token starting at or after *cursor and advances past it;
 * returns an empty view at the end of the line. */
static gn_str next_token(const char **cursor)
{
    const char *p = *cursor;
    while (*p != '\0' && is_space(*p))
        p++;
    const char *start = p;
    while (*p != '\0' && !is_space(*p))
        p++;
    *cursor = p;
    return (gn_str){start, (size_t)(p - start)};
}

bool gn_str_eq(gn_str s, const char *z)
{
    return gn_strnlen(z, s.len + 1) == s.len && gn_memeq(s.ptr, z, s.len);
}

bool gn_bootargs_has(const char *args, const char *flag)
{
    const char *cursor = args != NULL ? args : "";
    for (gn_str t = next_token(&cursor); t.len != 0; t = next_token(&cursor)) {
        if (gn_str_eq(t, flag))
            return true;
    }
    return false;
}

bool gn_bootargs_get(const char *args, const char *key, gn_str *value)
{
    size_t key_len = gn_strlen(key);
    const char *cursor = args != NULL ? args : "";
    for (gn_str t = next_token(&cursor); t.len != 0; t = next_token(&cursor)) {
        if (t.len > key_len && t.ptr[key_len] == '=' && gn_memeq(t.ptr, key, key_len)) {
            *value = (gn_str){t.ptr + key_len + 1, t.len - key_len - 1};
            return true;
        }
    }
    return false;
}

bool gn_str_to_u64(gn_str s, uint64_t *out)
{
    if (s.len == 0)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (c < '0' || c > '9')
            return false;
        uint64_t digit = (uint64_t)(c - '0');
        if (v > (UINT64_MAX - digit) / 10)
            return false;
        v = v * 10 + digit;
    }
    *out = v;
    return true;
}

bool gn_bootargs_get_u64(const char *args, const char *key, uint64_t *out)
{
    gn_str value;
    return gn_bootargs_get(args, key, &value) && gn_str_to_u64(value, out);
}
