/*
 * Records: the codec's C side (reading fixed-width values and nested
 * batches, writing entries), the contract of docs/record-format.md.
 */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

/* ---- Reading ---------------------------------------------------------- */

static inline uint64_t load_be64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return __builtin_bswap64(v);
}

static inline uint32_t load_be32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return __builtin_bswap32(v);
}

static bool width(weft_val v, size_t n, const char *type) {
    if (v.len == n) {
        return true;
    }
    weft__decode_failed("a `%s` is %zu bytes, this value is %zu", type, n, v.len);
    return false;
}

int64_t weft_i64(weft_val v) {
    return width(v, 8, "i64") ? (int64_t)(load_be64(v.ptr) ^ (1ull << 63)) : 0;
}

uint64_t weft_u64(weft_val v) { return width(v, 8, "u64") ? load_be64(v.ptr) : 0; }

int32_t weft_i32(weft_val v) {
    return width(v, 4, "i32") ? (int32_t)(load_be32(v.ptr) ^ (1u << 31)) : 0;
}

uint32_t weft_u32(weft_val v) { return width(v, 4, "u32") ? load_be32(v.ptr) : 0; }

double weft_f64(weft_val v) {
    if (!width(v, 8, "f64")) {
        return 0;
    }
    uint64_t bits = load_be64(v.ptr);
    bits = (bits >> 63) ? bits ^ (1ull << 63) : ~bits;
    double d;
    memcpy(&d, &bits, 8);
    return d;
}

bool weft_bool(weft_val v) {
    if (!width(v, 1, "bool")) {
        return false;
    }
    if (v.ptr[0] > 1) {
        weft__decode_failed("a `bool` is 00 or 01, not %02x", v.ptr[0]);
        return false;
    }
    return v.ptr[0] == 1;
}

bool weft_next(weft_reader *r, weft_val *element) {
    if (r->at == r->end) {
        return false;
    }
    if (r->end - r->at < 4) {
        weft__decode_failed("an entry's length is cut short");
        r->at = r->end;
        return false;
    }
    uint32_t n;
    memcpy(&n, r->at, 4);
    if ((size_t)(r->end - r->at - 4) < n) {
        weft__decode_failed("an entry of %u bytes runs past its batch's end", n);
        r->at = r->end;
        return false;
    }
    element->ptr = r->at + 4;
    element->len = n;
    r->at += 4 + (size_t)n;
    return true;
}

weft_val weft_elem(weft_val tuple, size_t i) {
    weft_reader r = weft_read(tuple);
    weft_val e = {0};
    for (size_t k = 0; k <= i; k++) {
        if (!weft_next(&r, &e)) {
            weft__decode_failed("a tuple without element %zu", i);
            weft_val none = {0};
            return none;
        }
    }
    return e;
}

bool weft_next_rec(weft_reader *r, weft_shape shape, weft_rec *rec) {
    weft_val none = {0};
    if (shape == WEFT_RECORD) {
        rec->key = none;
        return weft_next(r, &rec->val);
    }
    if (!weft_next(r, &rec->key)) {
        return false;
    }
    if (!weft_next(r, &rec->val)) {
        weft__decode_failed("a pair's key without its value (an odd number of entries)");
        return false;
    }
    return true;
}

bool weft_contains(weft_val v, weft_val needle) {
    if (needle.len == 0) {
        return true;
    }
    if (needle.len > v.len) {
        return false;
    }
    const uint8_t *p = v.ptr, *end = v.ptr + v.len - needle.len + 1;
    while (p < end) {
        p = memchr(p, needle.ptr[0], (size_t)(end - p));
        if (p == NULL) {
            return false;
        }
        if (memcmp(p, needle.ptr, needle.len) == 0) {
            return true;
        }
        p++;
    }
    return false;
}

/* ---- Writing ---------------------------------------------------------- */

void weft__grow(weft_out *out, size_t more) {
    if (more > SIZE_MAX / 2 - out->len) {
        weft_panic("a batch of over %zu bytes", (size_t)(SIZE_MAX / 2));
    }
    size_t cap = out->cap ? out->cap : 4096;
    while (cap - out->len < more) {
        cap *= 2;
    }
    uint8_t *buf = realloc(out->buf, cap);
    if (buf == NULL) {
        weft_panic("out of memory: a batch of %zu bytes", cap);
    }
    out->buf = buf;
    out->cap = cap;
}

/* Growth for an entry of `len` bytes, checked: out of the writers' fast path. */
__attribute__((noinline)) static void grow_entry(weft_out *out, size_t len) {
    if (len > UINT32_MAX - 4) {
        weft_panic("an entry of %zu bytes is over the contract's 4 GiB", len);
    }
    weft__grow(out, 4 + len);
}

static inline void entry(weft_out *out, const void *bytes, size_t len) {
    size_t room = out->cap - out->len;
    if (room < 4 || room - 4 < len) { /* (4 + len itself could wrap on wasm32) */
        grow_entry(out, len);
    }
    uint32_t n = (uint32_t)len;
    memcpy(out->buf + out->len, &n, 4);
    if (len) {
        memcpy(out->buf + out->len + 4, bytes, len);
    }
    out->len += 4 + len;
    out->entries += out->depth == 0;
}

void weft_put(weft_out *out, const void *bytes, size_t len) { entry(out, bytes, len); }
void weft_put_val(weft_out *out, weft_val v) { entry(out, v.ptr, v.len); }
void weft_put_str(weft_out *out, const char *s) { entry(out, s, strlen(s)); }
void weft_put_unit(weft_out *out) { entry(out, NULL, 0); }

void weft_printf(weft_out *out, const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    weft_open(out);
    weft__reserve(out, 256);
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf((char *)out->buf + out->len, out->cap - out->len, format, ap);
    if (n >= 0 && (size_t)n >= out->cap - out->len) {
        weft__reserve(out, (size_t)n + 1);
        vsnprintf((char *)out->buf + out->len, out->cap - out->len, format, again);
    }
    va_end(again);
    va_end(ap);
    if (n > 0) {
        out->len += (size_t)n;
    }
    weft_close(out);
}

static inline void be64(uint8_t *p, uint64_t v) {
    v = __builtin_bswap64(v);
    memcpy(p, &v, 8);
}

static inline uint64_t f64_key(double d) {
    uint64_t bits;
    memcpy(&bits, &d, 8);
    return (bits >> 63) ? ~bits : bits ^ (1ull << 63);
}

void weft_put_u64(weft_out *out, uint64_t v) {
    weft__reserve(out, 12);
    uint32_t n = 8;
    memcpy(out->buf + out->len, &n, 4);
    be64(out->buf + out->len + 4, v);
    out->len += 12;
    out->entries += out->depth == 0;
}

void weft_put_i64(weft_out *out, int64_t v) { weft_put_u64(out, (uint64_t)v ^ (1ull << 63)); }
void weft_put_f64(weft_out *out, double v) { weft_put_u64(out, f64_key(v)); }

void weft_put_u32(weft_out *out, uint32_t v) {
    uint32_t be = __builtin_bswap32(v);
    entry(out, &be, 4);
}

void weft_put_i32(weft_out *out, int32_t v) { weft_put_u32(out, (uint32_t)v ^ (1u << 31)); }

void weft_put_bool(weft_out *out, bool v) {
    uint8_t b = v;
    entry(out, &b, 1);
}

void weft_open(weft_out *out) {
    if (out->depth == WEFT__MAX_DEPTH) {
        weft_panic("entries nested more than %d deep", WEFT__MAX_DEPTH);
    }
    weft__reserve(out, 4);
    out->open[out->depth++] = out->len;
    out->len += 4;
}

void weft_close(weft_out *out) {
    if (out->depth == 0) {
        weft_panic("weft_close without weft_open");
    }
    size_t at = out->open[--out->depth];
    size_t n = out->len - at - 4;
    if (n > UINT32_MAX) {
        weft_panic("an entry of %zu bytes is over the contract's 4 GiB", n);
    }
    uint32_t n32 = (uint32_t)n;
    memcpy(out->buf + at, &n32, 4);
    out->entries += out->depth == 0;
}

/* Appending is only inside an open entry: at the top level the bytes would
 * be read as entries' lengths. */
static inline void inside(const weft_out *out) {
    if (out->depth == 0) {
        weft_panic("weft_append* outside weft_open/weft_close");
    }
}

void weft_append(weft_out *out, const void *bytes, size_t len) {
    inside(out);
    weft__bytes(out, bytes, len);
}

void weft__bytes(weft_out *out, const void *bytes, size_t len) {
    if (len == 0) {
        return; /* (bytes may be NULL, and out->buf too) */
    }
    weft__reserve(out, len);
    memcpy(out->buf + out->len, bytes, len);
    out->len += len;
}

void weft_append_key_str(weft_out *out, const void *bytes, size_t len) {
    inside(out);
    const uint8_t *p = bytes, *end = p + len;
    weft__reserve(out, len + 2);
    while (p < end) {
        const uint8_t *zero = memchr(p, 0, (size_t)(end - p));
        const uint8_t *stop = zero ? zero : end;
        weft_append(out, p, (size_t)(stop - p));
        if (zero) {
            static const uint8_t escaped[2] = {0x00, 0xff};
            weft_append(out, escaped, 2);
            p = zero + 1;
        } else {
            p = end;
        }
    }
    static const uint8_t terminator[2] = {0x00, 0x00};
    weft_append(out, terminator, 2);
}

void weft_append_u64(weft_out *out, uint64_t v) {
    inside(out);
    weft__reserve(out, 8);
    be64(out->buf + out->len, v);
    out->len += 8;
}

void weft_append_i64(weft_out *out, int64_t v) { weft_append_u64(out, (uint64_t)v ^ (1ull << 63)); }
void weft_append_f64(weft_out *out, double v) { weft_append_u64(out, f64_key(v)); }

weft_out *weft_out_new(void) {
    weft_out *out = calloc(1, sizeof *out);
    if (out == NULL) {
        weft_panic("out of memory");
    }
    return out;
}

void weft_out_free(weft_out *out) {
    if (out) {
        free(out->buf);
        free(out);
    }
}
