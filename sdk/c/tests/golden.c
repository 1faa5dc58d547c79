/*
 * The record contract's golden vectors (codec/golden/records.json, described
 * in docs/record-format.md), against the C SDK's codec (src/out.c): every
 * vector's record and key bytes decode to its value, the value encodes back
 * to exactly those bytes, and the key bytes of one type sort as the vectors'
 * `order` ranks them. Then malformed input, which the readers must reject.
 *
 * The SDK's readers and writers are used wherever it has one; the types it
 * has none for (i8, i16, u8, u16, i128, u128, f32, char) and the key walk
 * (escaped strings, option tags, which part is "last") follow the contract's
 * tables here. Native, with the C library only: the JSON reader is below.
 *
 *     golden [path/to/records.json]    (from the repository root by default)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

/* The vectors on file: a vector dropped from it fails here, as in the Rust
 * and Python SDKs' tests. */
#define GOLDEN_VECTORS 74

static size_t failures;

static void fail(const char *format, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    fputs("golden: FAIL ", stdout);
    vprintf(format, ap);
    fputc('\n', stdout);
    va_end(ap);
    failures++;
}

/* ---- What out.c needs from the dispatcher ------------------------------- */

/* Decode errors the SDK reported, and the last one's message. */
static int decode_errors;
static char decode_message[256];

void weft__decode_failed(const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    vsnprintf(decode_message, sizeof decode_message, format, ap);
    va_end(ap);
    decode_errors++;
}

_Noreturn void weft__panic(const char *file, int line, const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    fprintf(stderr, "golden: the SDK panicked at %s:%d: ", file, line);
    vfprintf(stderr, format, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

/* ---- Bytes ---------------------------------------------------------------- */

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fputs("golden: out of memory\n", stderr);
        exit(2);
    }
    return p;
}

/* A growable buffer (strings being read, hex for messages). */
typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void buf_add(buf *b, const void *bytes, size_t n) {
    if (b->cap - b->len < n + 1) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->len < n + 1) {
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            fputs("golden: out of memory\n", stderr);
            exit(2);
        }
        b->p = p;
        b->cap = cap;
    }
    if (n) {
        memcpy(b->p + b->len, bytes, n);
    }
    b->len += n;
    b->p[b->len] = 0;
}

/* Bytes as lowercase hex, for messages: a static buffer per call site turn
 * (the last four calls' results stay valid). */
static const char *hex(const uint8_t *p, size_t n) {
    static char ring[4][512];
    static int at;
    char *s = ring[at++ & 3];
    static const char digits[] = "0123456789abcdef";
    size_t max = (sizeof ring[0] - 4) / 2, i;
    for (i = 0; i < n && i < max; i++) {
        s[2 * i] = digits[p[i] >> 4];
        s[2 * i + 1] = digits[p[i] & 15];
    }
    s[2 * i] = 0;
    if (i < n) {
        strcat(s, "...");
    }
    return n ? s : "(empty)";
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Hex to bytes (malloc'd); false when it is not hex. */
static bool unhex(const char *s, size_t n, uint8_t **out, size_t *len) {
    if (n % 2) {
        return false;
    }
    uint8_t *b = xmalloc(n / 2);
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(b);
            return false;
        }
        b[i] = (uint8_t)(hi << 4 | lo);
    }
    *out = b;
    *len = n / 2;
    return true;
}

/* The next scalar value of UTF-8 text at `p` (its length in *n), or -1 when
 * the bytes there are not UTF-8 (overlong forms and surrogates included). */
static int32_t utf8_next(const uint8_t *p, size_t avail, size_t *n) {
    if (avail == 0) return -1;
    uint8_t c = p[0];
    if (c < 0x80) {
        *n = 1;
        return c;
    }
    size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    if (len == 0 || c > 0xf4 || avail < len) return -1;
    int32_t cp = c & (0x3f >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return -1;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    static const int32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1;
    *n = len;
    return cp;
}

static bool utf8_valid(const uint8_t *p, size_t len) {
    size_t n;
    for (size_t i = 0; i < len; i += n) {
        if (utf8_next(p + i, len - i, &n) < 0) return false;
    }
    return true;
}

static void utf8_put(buf *b, uint32_t cp) {
    uint8_t u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (uint8_t)cp, n = 1;
    } else if (cp < 0x800) {
        u[0] = (uint8_t)(0xc0 | cp >> 6), u[1] = (uint8_t)(0x80 | (cp & 0x3f)), n = 2;
    } else if (cp < 0x10000) {
        u[0] = (uint8_t)(0xe0 | cp >> 12), u[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
        u[2] = (uint8_t)(0x80 | (cp & 0x3f)), n = 3;
    } else {
        u[0] = (uint8_t)(0xf0 | cp >> 18), u[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
        u[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f)), u[3] = (uint8_t)(0x80 | (cp & 0x3f)), n = 4;
    }
    buf_add(b, u, n);
}

/* ---- JSON (RFC 8259), strictly ------------------------------------------- */

typedef enum { J_NULL, J_BOOL, J_NUMBER, J_STRING, J_ARRAY, J_OBJECT } json_kind;

typedef struct json {
    json_kind kind;
    bool boolean;
    char *text; /* a number as written, or a string's UTF-8 (NUL-terminated) */
    size_t len;
    struct json **items; /* an array's elements, an object's values */
    char **names;        /* an object's member names */
    size_t n;
    const char *src; /* the value as written in the file, for messages */
    size_t src_len;
} json;

typedef struct parser {
    const char *start, *at, *end;
    int depth;
    char error[160];
} parser;

static void json_free(json *j) {
    if (j == NULL) return;
    for (size_t i = 0; i < j->n; i++) {
        json_free(j->items[i]);
        if (j->names) free(j->names[i]);
    }
    free(j->items);
    free(j->names);
    free(j->text);
    free(j);
}

static json *json_error(parser *p, const char *what) {
    if (!p->error[0]) {
        int line = 1;
        for (const char *c = p->start; c < p->at; c++) line += *c == '\n';
        snprintf(p->error, sizeof p->error, "%s at line %d (byte %zu)", what, line, (size_t)(p->at - p->start));
    }
    return NULL;
}

static void skip_space(parser *p) {
    while (p->at < p->end && (*p->at == ' ' || *p->at == '\t' || *p->at == '\n' || *p->at == '\r')) p->at++;
}

static bool literal(parser *p, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(p->end - p->at) >= n && memcmp(p->at, word, n) == 0) {
        p->at += n;
        return true;
    }
    return false;
}

static int hex4(parser *p) {
    if (p->end - p->at < 4) return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(p->at[i]);
        if (d < 0) return -1;
        v = v << 4 | d;
    }
    p->at += 4;
    return v;
}

/* A string's contents after its opening quote, decoded to UTF-8. */
static bool json_string(parser *p, buf *b) {
    for (;;) {
        if (p->at == p->end) return json_error(p, "an unterminated string"), false;
        unsigned char c = (unsigned char)*p->at++;
        if (c == '"') break;
        if (c < 0x20) return p->at--, json_error(p, "a control character in a string"), false;
        if (c != '\\') {
            buf_add(b, &c, 1);
            continue;
        }
        if (p->at == p->end) return json_error(p, "an unterminated escape"), false;
        char e = *p->at++;
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *k = strchr(from, e);
        if (e != 'u' && (e == 0 || k == NULL)) return p->at--, json_error(p, "an unknown escape"), false;
        if (e != 'u') {
            buf_add(b, &to[k - from], 1);
            continue;
        }
        int cp = hex4(p);
        if (cp < 0) return json_error(p, "a bad \\u escape"), false;
        if (cp >= 0xdc00 && cp <= 0xdfff) return json_error(p, "a lone low surrogate"), false;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            int lo = literal(p, "\\u") ? hex4(p) : -1;
            if (lo < 0xdc00 || lo > 0xdfff) return json_error(p, "a high surrogate without its low one"), false;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        utf8_put(b, (uint32_t)cp);
    }
    if (b->len && !utf8_valid((const uint8_t *)b->p, b->len)) return json_error(p, "a string that is not UTF-8"), false;
    return true;
}

static bool json_number(parser *p) {
    if (p->at < p->end && *p->at == '-') p->at++;
#define DIGITS(at) ((at) < p->end && *(at) >= '0' && *(at) <= '9')
    if (!DIGITS(p->at)) return json_error(p, "a number without digits"), false;
    if (*p->at == '0') {
        p->at++;
    } else {
        while (DIGITS(p->at)) p->at++;
    }
    if (p->at < p->end && *p->at == '.') {
        p->at++;
        if (!DIGITS(p->at)) return json_error(p, "a fraction without digits"), false;
        while (DIGITS(p->at)) p->at++;
    }
    if (p->at < p->end && (*p->at == 'e' || *p->at == 'E')) {
        p->at++;
        if (p->at < p->end && (*p->at == '+' || *p->at == '-')) p->at++;
        if (!DIGITS(p->at)) return json_error(p, "an exponent without digits"), false;
        while (DIGITS(p->at)) p->at++;
    }
#undef DIGITS
    return true;
}

static json *json_value(parser *p);

/* An array's or object's members, after its opening bracket. */
static bool json_members(parser *p, json *j, bool object) {
    char close = object ? '}' : ']';
    skip_space(p);
    if (p->at < p->end && *p->at == close) {
        p->at++;
        return true;
    }
    size_t cap = 0;
    for (;;) {
        char *name = NULL;
        if (object) {
            skip_space(p);
            if (p->at == p->end || *p->at != '"') return json_error(p, "expected a member name"), false;
            p->at++;
            buf b = {0};
            if (!json_string(p, &b)) return free(b.p), false;
            buf_add(&b, "", 0);
            name = b.p;
            for (size_t i = 0; i < j->n; i++) {
                if (strcmp(j->names[i], name) == 0) return free(name), json_error(p, "a member named twice"), false;
            }
            skip_space(p);
            if (p->at == p->end || *p->at != ':') return free(name), json_error(p, "expected `:`"), false;
            p->at++;
        }
        json *item = json_value(p);
        if (item == NULL) return free(name), false;
        if (j->n == cap) {
            cap = cap ? cap * 2 : 8;
            j->items = realloc(j->items, cap * sizeof *j->items);
            if (object) j->names = realloc(j->names, cap * sizeof *j->names);
            if (j->items == NULL || (object && j->names == NULL)) {
                fputs("golden: out of memory\n", stderr);
                exit(2);
            }
        }
        if (object) j->names[j->n] = name;
        j->items[j->n++] = item;
        skip_space(p);
        if (p->at < p->end && *p->at == ',') {
            p->at++;
            continue;
        }
        if (p->at < p->end && *p->at == close) {
            p->at++;
            return true;
        }
        return json_error(p, object ? "expected `,` or `}`" : "expected `,` or `]`"), false;
    }
}

static json *json_value(parser *p) {
    skip_space(p);
    if (p->at == p->end) return json_error(p, "expected a value");
    if (++p->depth > 64) return json_error(p, "values nested too deep");
    json *j = calloc(1, sizeof *j);
    if (j == NULL) exit(2);
    j->src = p->at;
    bool ok = true;
    char c = *p->at;
    if (literal(p, "null")) {
        j->kind = J_NULL;
    } else if (literal(p, "true") || literal(p, "false")) {
        j->kind = J_BOOL;
        j->boolean = c == 't';
    } else if (c == '"') {
        j->kind = J_STRING;
        p->at++;
        buf b = {0};
        ok = json_string(p, &b);
        buf_add(&b, "", 0);
        j->text = b.p;
        j->len = b.len;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        j->kind = J_NUMBER;
        ok = json_number(p);
        if (ok) {
            j->len = (size_t)(p->at - j->src);
            j->text = xmalloc(j->len + 1);
            memcpy(j->text, j->src, j->len);
            j->text[j->len] = 0;
        }
    } else if (c == '[' || c == '{') {
        j->kind = c == '[' ? J_ARRAY : J_OBJECT;
        p->at++;
        ok = json_members(p, j, c == '{');
    } else {
        json_error(p, "expected a value");
        ok = false;
    }
    p->depth--;
    if (!ok) {
        json_free(j);
        return NULL;
    }
    j->src_len = (size_t)(p->at - j->src);
    return j;
}

static json *json_parse(const char *text, size_t len, char *error, size_t error_len) {
    parser p = {text, text, text + len, 0, {0}};
    json *j = json_value(&p);
    if (j) {
        skip_space(&p);
        if (p.at != p.end) {
            json_free(j);
            j = json_error(&p, "text after the value");
        }
    }
    snprintf(error, error_len, "%s", p.error);
    return j;
}

/* A value as written, without the whitespace between tokens, cut at 60
 * bytes: a vector's label in messages. */
static const char *compact(const json *j) {
    static char s[64];
    size_t n = 0;
    bool quoted = false, escaped = false;
    size_t i;
    for (i = 0; i < j->src_len && n < sizeof s - 4; i++) {
        char c = j->src[i];
        if (!quoted && (c == ' ' || c == '\n' || c == '\r' || c == '\t')) continue;
        if (quoted && escaped) {
            escaped = false;
        } else if (quoted && c == '\\') {
            escaped = true;
        } else if (c == '"') {
            quoted = !quoted;
        }
        s[n++] = c;
    }
    strcpy(s + n, i < j->src_len ? "..." : "");
    return s;
}

/* An object's member, or NULL. */
static const json *member(const json *obj, const char *name) {
    if (obj == NULL || obj->kind != J_OBJECT) return NULL;
    for (size_t i = 0; i < obj->n; i++) {
        if (strcmp(obj->names[i], name) == 0) return obj->items[i];
    }
    return NULL;
}

/* ---- Types: the vectors' language-neutral names ------------------------ */

typedef enum {
    T_STRING, T_BYTES, T_INT, T_F32, T_F64, T_BOOL, T_CHAR, T_UNIT, T_OPTION, T_LIST, T_TUPLE
} type_kind;

typedef struct type {
    type_kind kind;
    int width;      /* T_INT: 1, 2, 4, 8 or 16 bytes */
    bool is_signed; /* T_INT */
    bool bits;      /* T_F64 given as "f64 bits": the value is its IEEE bits in hex */
    struct type *elems[6]; /* an option's or list's element, a tuple's elements */
    size_t n;
} type;

static void type_free(type *t) {
    if (t == NULL) return;
    for (size_t i = 0; i < t->n; i++) type_free(t->elems[i]);
    free(t);
}

static void skip_blank(const char **s) {
    while (**s == ' ') (*s)++;
}

/* The type spelled at *s (advanced past it), or NULL. */
static type *parse_type(const char **s) {
    type *t = calloc(1, sizeof *t);
    if (t == NULL) exit(2);
    skip_blank(s);
    if (**s == '(') {
        (*s)++;
        skip_blank(s);
        if (**s == ')') {
            (*s)++;
            t->kind = T_UNIT;
            return t;
        }
        t->kind = T_TUPLE;
        for (;;) {
            if (t->n == 6) goto bad; /* the contract's tuples have 1 to 6 elements */
            if ((t->elems[t->n] = parse_type(s)) == NULL) goto bad;
            t->n++;
            skip_blank(s);
            if (**s == ',') {
                (*s)++;
                skip_blank(s);
                if (**s != ')') continue;
            }
            if (**s != ')') goto bad;
            (*s)++;
            return t;
        }
    }
    static const struct { const char *name; type_kind kind; } wrappers[] = {{"option<", T_OPTION}, {"list<", T_LIST}};
    for (size_t i = 0; i < 2; i++) {
        size_t n = strlen(wrappers[i].name);
        if (strncmp(*s, wrappers[i].name, n) == 0) {
            *s += n;
            t->kind = wrappers[i].kind;
            if ((t->elems[0] = parse_type(s)) == NULL) goto bad;
            t->n = 1;
            skip_blank(s);
            if (**s != '>') goto bad;
            (*s)++;
            return t;
        }
    }
    static const struct { const char *name; type_kind kind; int width; bool is_signed, bits; } scalars[] = {
        {"string", T_STRING, 0, 0, 0}, {"bytes", T_BYTES, 0, 0, 0}, {"bool", T_BOOL, 1, 0, 0},
        {"char", T_CHAR, 4, 0, 0},     {"f32", T_F32, 4, 0, 0},     {"f64 bits", T_F64, 8, 0, 1},
        {"f64", T_F64, 8, 0, 0},       {"i8", T_INT, 1, 1, 0},      {"i16", T_INT, 2, 1, 0},
        {"i32", T_INT, 4, 1, 0},       {"i64", T_INT, 8, 1, 0},     {"i128", T_INT, 16, 1, 0},
        {"u8", T_INT, 1, 0, 0},        {"u16", T_INT, 2, 0, 0},     {"u32", T_INT, 4, 0, 0},
        {"u64", T_INT, 8, 0, 0},       {"u128", T_INT, 16, 0, 0},
    };
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++) {
        size_t n = strlen(scalars[i].name);
        if (strncmp(*s, scalars[i].name, n) == 0 && strchr(",)> ", (*s)[n]) != NULL) { /* (or the end: NUL) */
            *s += n;
            t->kind = scalars[i].kind;
            t->width = scalars[i].width;
            t->is_signed = scalars[i].is_signed;
            t->bits = scalars[i].bits;
            return t;
        }
    }
bad:
    type_free(t);
    return NULL;
}

static type *type_named(const char *name) {
    const char *s = name;
    type *t = parse_type(&s);
    skip_blank(&s);
    if (t && *s) {
        type_free(t);
        return NULL;
    }
    return t;
}

/* The width of a fixed-width type's encoding, or 0. */
static int fixed_width(const type *t) {
    switch (t->kind) {
    case T_INT: case T_F32: case T_F64: case T_BOOL: case T_CHAR: return t->width;
    default: return 0;
    }
}

/* ---- Values ---------------------------------------------------------------- */

typedef unsigned __int128 u128;

/* A value of a vector's type. */
typedef struct value {
    u128 bits;           /* an integer (two's complement), a float's IEEE bits, a bool, a char */
    uint8_t *bytes;      /* a string's UTF-8, bytes */
    size_t len;
    struct value *items; /* a tuple's or list's elements, an option's value */
    size_t n;            /* an option: 0 (none) or 1 */
} value;

static void value_free(value *v) {
    for (size_t i = 0; i < v->n; i++) value_free(&v->items[i]);
    free(v->items);
    free(v->bytes);
    memset(v, 0, sizeof *v);
}

static bool value_eq(const type *t, const value *a, const value *b) {
    switch (t->kind) {
    case T_STRING: case T_BYTES:
        return a->len == b->len && (a->len == 0 || memcmp(a->bytes, b->bytes, a->len) == 0);
    case T_UNIT:
        return true;
    case T_OPTION: case T_LIST: case T_TUPLE:
        if (a->n != b->n) return false;
        for (size_t i = 0; i < a->n; i++) {
            if (!value_eq(t->kind == T_TUPLE ? t->elems[i] : t->elems[0], &a->items[i], &b->items[i])) return false;
        }
        return true;
    default:
        return a->bits == b->bits; /* floats by their bits: -0.0 and NaNs */
    }
}

/* An integer literal, exactly, in the range of an integer type. */
static bool int_of(const type *t, const char *s, u128 *out) {
    bool negative = *s == '-';
    s += negative;
    u128 m = 0, limit = t->width == 16 ? ~(u128)0 : ((u128)1 << (8 * t->width)) - 1;
    if (!*s) return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return false; /* a fraction or an exponent */
        unsigned d = (unsigned)(*s - '0');
        if (m > (~(u128)0 - d) / 10) return false;
        m = m * 10 + d;
    }
    if (t->is_signed) {
        u128 top = (u128)1 << (8 * t->width - 1); /* |least| */
        if (negative ? m > top : m >= top) return false;
        *out = negative ? ~m + 1 : m; /* two's complement, 128 bits wide */
    } else {
        if ((negative && m) || m > limit) return false;
        *out = m;
    }
    return true;
}

/* The vector's JSON value as a value of `t` (a tuple is an array, none is
 * null, bytes are hex, `f64 bits` is hex of the bits). */
static bool from_json(const type *t, const json *j, value *v, char *why, size_t why_len) {
    memset(v, 0, sizeof *v);
    switch (t->kind) {
    case T_INT:
        if (j->kind != J_NUMBER || !int_of(t, j->text, &v->bits)) break;
        return true;
    case T_F64:
        if (t->bits) {
            uint8_t *b;
            size_t n;
            if (j->kind != J_STRING || j->len != 16 || !unhex(j->text, 16, &b, &n)) break;
            for (size_t i = 0; i < 8; i++) v->bits = v->bits << 8 | b[i];
            free(b);
            return true;
        } else {
            char *end;
            if (j->kind != J_NUMBER) break;
            errno = 0;
            double d = strtod(j->text, &end);
            uint64_t bits;
            memcpy(&bits, &d, 8);
            v->bits = bits;
            if (*end || errno) break;
            return true;
        }
    case T_F32: {
        char *end;
        if (j->kind != J_NUMBER) break;
        errno = 0;
        float f = strtof(j->text, &end);
        uint32_t bits;
        memcpy(&bits, &f, 4);
        v->bits = bits;
        if (*end || errno || (double)f != strtod(j->text, NULL)) break; /* exactly an f32 */
        return true;
    }
    case T_BOOL:
        if (j->kind != J_BOOL) break;
        v->bits = j->boolean;
        return true;
    case T_CHAR: {
        size_t n;
        int32_t cp = j->kind == J_STRING ? utf8_next((const uint8_t *)j->text, j->len, &n) : -1;
        if (cp < 0 || n != j->len) break; /* one scalar value */
        v->bits = (u128)cp;
        return true;
    }
    case T_STRING:
        if (j->kind != J_STRING) break;
        v->len = j->len;
        v->bytes = xmalloc(j->len);
        memcpy(v->bytes, j->text, j->len);
        return true;
    case T_BYTES:
        if (j->kind != J_STRING || !unhex(j->text, j->len, &v->bytes, &v->len)) break;
        return true;
    case T_UNIT:
        if (j->kind != J_NULL) break;
        return true;
    case T_OPTION:
        if (j->kind == J_NULL) return true;
        v->items = xmalloc(sizeof *v->items);
        v->n = 1;
        return from_json(t->elems[0], j, &v->items[0], why, why_len);
    case T_LIST: case T_TUPLE:
        if (j->kind != J_ARRAY || (t->kind == T_TUPLE && j->n != t->n)) break;
        v->items = calloc(j->n ? j->n : 1, sizeof *v->items);
        for (size_t i = 0; i < j->n; i++) {
            v->n = i + 1;
            if (!from_json(t->kind == T_TUPLE ? t->elems[i] : t->elems[0], j->items[i], &v->items[i], why, why_len)) {
                return false;
            }
        }
        return true;
    }
    snprintf(why, why_len, "the value %s is not one of its type", compact(j));
    return false;
}

/* ---- Fixed-width values by the contract's table ------------------------- */

/* The key encoding of a fixed-width value (also its record encoding),
 * computed here: big endian, signed integers with the sign bit flipped,
 * floats in IEEE 754 totalOrder form. */
static void fixed_bytes(const type *t, const value *v, uint8_t *out) {
    int w = fixed_width(t);
    u128 k = v->bits;
    if (t->kind == T_INT && t->is_signed) {
        k ^= (u128)1 << (8 * w - 1);
    } else if (t->kind == T_F32 || t->kind == T_F64) {
        u128 sign = (u128)1 << (8 * w - 1), all = (sign << 1) - 1;
        k = (k & sign) ? ~k & all : k ^ sign;
    }
    for (int i = w - 1; i >= 0; i--, k >>= 8) out[i] = (uint8_t)k;
}

/* And back: the value of `w` key bytes, or false for bytes no value
 * encodes to (a bool other than 00/01, a char that is not a scalar value). */
static bool fixed_value(const type *t, const uint8_t *p, value *v, char *why, size_t why_len) {
    int w = fixed_width(t);
    u128 k = 0;
    for (int i = 0; i < w; i++) k = k << 8 | p[i];
    u128 sign = (u128)1 << (8 * w - 1), all = (sign << 1) - 1;
    if (t->kind == T_INT && t->is_signed) {
        k ^= sign;
        if (k & sign) k |= ~all; /* sign-extend to 128 bits */
    } else if (t->kind == T_F32 || t->kind == T_F64) {
        k = (k & sign) ? k ^ sign : ~k & all;
    } else if (t->kind == T_BOOL && k > 1) {
        snprintf(why, why_len, "a `bool` is 00 or 01, not %s", hex(p, 1));
        return false;
    } else if (t->kind == T_CHAR && (k > 0x10ffff || (k >= 0xd800 && k <= 0xdfff))) {
        snprintf(why, why_len, "%s is not a Unicode scalar value", hex(p, 4));
        return false;
    }
    v->bits = k;
    return true;
}

/* ---- Decoding: the SDK's readers, and the contract's rules -------------- */

/* Whether the SDK reported no decode error since `before` (else why). */
static bool sdk_quiet(int before, char *why, size_t why_len) {
    if (decode_errors == before) return true;
    snprintf(why, why_len, "the SDK reported a decode error: %s", decode_message);
    return false;
}

/* A fixed-width value of exactly `v.len` bytes: with weft_i64, weft_u64,
 * weft_i32, weft_u32, weft_f64 and weft_bool where the SDK has them. */
static bool decode_fixed(const type *t, weft_val v, value *out, char *why, size_t why_len) {
    int before = decode_errors;
    int w = fixed_width(t);
    memset(out, 0, sizeof *out);
    if (t->kind == T_INT && w == 8) {
        out->bits = t->is_signed ? (u128)(__int128)weft_i64(v) : (u128)weft_u64(v);
    } else if (t->kind == T_INT && w == 4) {
        out->bits = t->is_signed ? (u128)(__int128)weft_i32(v) : (u128)weft_u32(v);
    } else if (t->kind == T_F64) {
        double d = weft_f64(v);
        uint64_t bits;
        memcpy(&bits, &d, 8);
        out->bits = bits;
    } else if (t->kind == T_BOOL) {
        out->bits = weft_bool(v);
    } else if (v.len != (size_t)w) {
        snprintf(why, why_len, "%zu bytes for a %d-byte type", v.len, w);
        return false;
    } else {
        return fixed_value(t, v.ptr, out, why, why_len);
    }
    return sdk_quiet(before, why, why_len);
}

/* A record: fixed widths as above; a tuple, list or option as a batch of
 * its elements read with weft_read and weft_next (and a tuple's elements
 * with weft_elem as well). */
static bool decode_record(const type *t, weft_val v, value *out, char *why, size_t why_len) {
    memset(out, 0, sizeof *out);
    if (fixed_width(t)) return decode_fixed(t, v, out, why, why_len);
    switch (t->kind) {
    case T_STRING: case T_BYTES:
        if (t->kind == T_STRING && !utf8_valid(v.ptr, v.len)) {
            snprintf(why, why_len, "a string record that is not UTF-8: %s", hex(v.ptr, v.len));
            return false;
        }
        out->bytes = xmalloc(v.len);
        out->len = v.len;
        if (v.len) memcpy(out->bytes, v.ptr, v.len);
        return true;
    case T_UNIT:
        if (v.len) snprintf(why, why_len, "a `()` record of %zu bytes", v.len);
        return v.len == 0;
    default:
        break;
    }
    int before = decode_errors;
    weft_reader r = weft_read(v);
    weft_val e;
    size_t cap = t->kind == T_TUPLE ? t->n : 4;
    out->items = calloc(cap, sizeof *out->items);
    while (weft_next(&r, &e)) {
        if (t->kind != T_LIST && out->n == cap) {
            snprintf(why, why_len, "more than %zu entries in %s record", cap,
                     t->kind == T_TUPLE ? "a tuple" : "an option");
            return false;
        }
        if (out->n == cap) {
            cap *= 2;
            out->items = realloc(out->items, cap * sizeof *out->items);
            if (out->items == NULL) exit(2);
        }
        const type *et = t->kind == T_TUPLE ? t->elems[out->n] : t->elems[0];
        if (t->kind == T_TUPLE) {
            weft_val again = weft_elem(v, out->n);
            if (again.ptr != e.ptr || again.len != e.len) {
                snprintf(why, why_len, "weft_elem(%zu) is not the entry weft_next read", out->n);
                return false;
            }
        }
        if (!decode_record(et, e, &out->items[out->n++], why, why_len)) return false;
    }
    if (!sdk_quiet(before, why, why_len)) return false;
    if (t->kind == T_TUPLE && out->n != t->n) {
        snprintf(why, why_len, "a %zu-tuple record of %zu entries", t->n, out->n);
        return false;
    }
    return true;
}

/* A key's part at `*p` (advanced past it): "last" is where the part sits,
 * passed down, which decides how a string or bytes is written. */
static bool decode_key(const type *t, const uint8_t **p, const uint8_t *end, bool last, value *out, char *why,
                       size_t why_len) {
    memset(out, 0, sizeof *out);
    size_t left = (size_t)(end - *p);
    int w = fixed_width(t);
    if (w) {
        if (left < (size_t)w) {
            snprintf(why, why_len, "%zu bytes left for a %d-byte key part", left, w);
            return false;
        }
        weft_val v = {*p, (size_t)w};
        *p += w;
        return decode_fixed(t, v, out, why, why_len);
    }
    switch (t->kind) {
    case T_UNIT:
        return true;
    case T_STRING: case T_BYTES: {
        buf b = {0};
        if (last) {
            buf_add(&b, *p, left); /* the raw bytes, to the end */
            *p = end;
        } else {
            /* Escaped: 00 ff is a 00 byte, 00 00 the end. */
            for (;;) {
                const uint8_t *zero = memchr(*p, 0, (size_t)(end - *p));
                if (zero == NULL || zero + 1 == end) {
                    free(b.p);
                    snprintf(why, why_len, "an escaped string without its terminator");
                    return false;
                }
                buf_add(&b, *p, (size_t)(zero - *p));
                *p = zero + 2;
                if (zero[1] == 0x00) break;
                if (zero[1] != 0xff) {
                    free(b.p);
                    snprintf(why, why_len, "00 followed by %s in an escaped string", hex(zero + 1, 1));
                    return false;
                }
                buf_add(&b, "", 1);
            }
        }
        out->bytes = (uint8_t *)b.p;
        out->len = b.len;
        if (t->kind == T_STRING && !utf8_valid(out->bytes, out->len)) {
            snprintf(why, why_len, "a string key that is not UTF-8");
            return false;
        }
        return true;
    }
    case T_OPTION:
        if (left == 0 || **p > 1) {
            snprintf(why, why_len, "an option tag %s", left ? hex(*p, 1) : "missing");
            return false;
        }
        if (*(*p)++ == 0) return true;
        out->items = xmalloc(sizeof *out->items);
        out->n = 1;
        return decode_key(t->elems[0], p, end, last, &out->items[0], why, why_len);
    case T_TUPLE:
        out->items = calloc(t->n, sizeof *out->items);
        for (size_t i = 0; i < t->n; i++) {
            out->n = i + 1;
            if (!decode_key(t->elems[i], p, end, last && i + 1 == t->n, &out->items[i], why, why_len)) return false;
        }
        return true;
    default:
        snprintf(why, why_len, "a list is not a key type");
        return false;
    }
}

/* A whole key: nothing may be left over. */
static bool decode_whole_key(const type *t, weft_val key, value *out, char *why, size_t why_len) {
    const uint8_t *p = key.ptr, *end = key.ptr + key.len;
    if (!decode_key(t, &p, end, true, out, why, why_len)) return false;
    if (p != end) {
        snprintf(why, why_len, "%zu bytes left over after the key", (size_t)(end - p));
        return false;
    }
    return true;
}

/* ---- Encoding: the SDK's writers ------------------------------------------ */

/* One entry of `v`'s record encoding: weft_put_i64, _u64, _i32, _u32, _f64,
 * _bool, weft_put and weft_put_unit; a tuple, list or option between
 * weft_open and weft_close; fixed widths the SDK has no writer for as an
 * entry of the bytes computed here. */
static void encode_record(weft_out *out, const type *t, const value *v) {
    int w = fixed_width(t);
    switch (t->kind) {
    case T_INT:
        if (w == 8 && t->is_signed) weft_put_i64(out, (int64_t)(uint64_t)v->bits);
        else if (w == 8) weft_put_u64(out, (uint64_t)v->bits);
        else if (w == 4 && t->is_signed) weft_put_i32(out, (int32_t)(uint32_t)v->bits);
        else if (w == 4) weft_put_u32(out, (uint32_t)v->bits);
        else break;
        return;
    case T_F64: {
        uint64_t bits = (uint64_t)v->bits;
        double d;
        memcpy(&d, &bits, 8);
        weft_put_f64(out, d);
        return;
    }
    case T_BOOL:
        weft_put_bool(out, v->bits != 0);
        return;
    case T_STRING: case T_BYTES:
        weft_put(out, v->bytes, v->len);
        return;
    case T_UNIT:
        weft_put_unit(out);
        return;
    case T_OPTION: case T_LIST: case T_TUPLE:
        weft_open(out);
        for (size_t i = 0; i < v->n; i++) {
            encode_record(out, t->kind == T_TUPLE ? t->elems[i] : t->elems[0], &v->items[i]);
        }
        weft_close(out);
        return;
    default:
        break;
    }
    uint8_t b[16];
    fixed_bytes(t, v, b);
    weft_put(out, b, (size_t)w);
}

/* A key part, appended to the open entry: weft_append_i64, _u64 and _f64;
 * a string or bytes raw (weft_append) when last, else escaped
 * (weft_append_key_str); other fixed widths as the bytes computed here. */
static void encode_key(weft_out *out, const type *t, const value *v, bool last) {
    int w = fixed_width(t);
    switch (t->kind) {
    case T_INT:
        if (w == 8 && t->is_signed) weft_append_i64(out, (int64_t)(uint64_t)v->bits);
        else if (w == 8) weft_append_u64(out, (uint64_t)v->bits);
        else break;
        return;
    case T_F64: {
        uint64_t bits = (uint64_t)v->bits;
        double d;
        memcpy(&d, &bits, 8);
        weft_append_f64(out, d);
        return;
    }
    case T_STRING: case T_BYTES:
        if (last) weft_append(out, v->bytes, v->len);
        else weft_append_key_str(out, v->bytes, v->len);
        return;
    case T_UNIT:
        return;
    case T_OPTION: {
        uint8_t tag = v->n != 0;
        weft_append(out, &tag, 1);
        if (v->n) encode_key(out, t->elems[0], &v->items[0], last);
        return;
    }
    case T_TUPLE:
        for (size_t i = 0; i < t->n; i++) encode_key(out, t->elems[i], &v->items[i], last && i + 1 == t->n);
        return;
    case T_LIST: /* not a key type: never asked */
        return;
    default:
        break;
    }
    uint8_t b[16];
    fixed_bytes(t, v, b);
    weft_append(out, b, (size_t)w);
}

/* The bytes of the one top-level entry written to `out`: the golden bytes
 * are a record or key without the batch's length framing. */
static bool sole_entry(const weft_out *out, weft_val *v, char *why, size_t why_len) {
    uint32_t n = 0;
    if (out->len >= 4) memcpy(&n, out->buf, 4);
    if (out->depth != 0 || out->entries != 1 || out->len < 4 || n != out->len - 4) {
        snprintf(why, why_len, "the writer made %zu entries (depth %d) of %zu bytes, its length saying %u",
                 out->entries, out->depth, out->len, n);
        return false;
    }
    v->ptr = out->buf + 4;
    v->len = n;
    return true;
}

/* Whether encoding `v` (as a key when `key`) gives exactly `want`. */
static bool encodes_to(const type *t, const value *v, bool key, weft_val want, char *why, size_t why_len) {
    weft_out *out = weft_out_new();
    if (key) {
        weft_open(out);
        encode_key(out, t, v, true);
        weft_close(out);
    } else {
        encode_record(out, t, v);
    }
    weft_val got;
    bool ok = sole_entry(out, &got, why, why_len);
    if (ok && (got.len != want.len || (got.len && memcmp(got.ptr, want.ptr, got.len) != 0))) {
        snprintf(why, why_len, "encodes to %s, not %s", hex(got.ptr, got.len), hex(want.ptr, want.len));
        ok = false;
    }
    weft_out_free(out);
    return ok;
}

/* ---- The vectors ----------------------------------------------------------- */

/* A vector with an `order`, for the sort check. */
typedef struct ranked {
    const char *family; /* the type, "f64 bits" counted as "f64" */
    long long order;
    uint8_t *key;
    size_t key_len;
    size_t index;
} ranked;

static ranked *ranks;
static size_t nranks;

/* One encoding (`as_key`: the key's, else the record's) of a vector: it
 * decodes to `want`, and both `want` and what decoded encode to `bytes`
 * again. Returns what failed, with `why`, or NULL. */
static const char *check_encoding(const type *t, weft_val bytes, bool as_key, const value *want, char *why,
                                  size_t why_len) {
    value got = {0};
    const char *failed = NULL;
    bool decoded = as_key ? decode_whole_key(t, bytes, &got, why, why_len) : decode_record(t, bytes, &got, why, why_len);
    if (!decoded) {
        failed = "decodes";
    } else if (!value_eq(t, &got, want)) {
        snprintf(why, why_len, "%s decodes to another value", hex(bytes.ptr, bytes.len));
        failed = "decodes";
    } else if (!encodes_to(t, &got, as_key, bytes, why, why_len)) {
        failed = "decoded and encoded again";
    }
    value_free(&got);
    if (!failed && !encodes_to(t, want, as_key, bytes, why, why_len)) {
        failed = "encodes";
    }
    return failed;
}

/* Decode both encodings of vector `i`, compare with its value, encode the
 * value (and what decoded) again. */
static void check_vector(size_t i, const json *vec) {
    char why[400];
    const json *jtype = member(vec, "type"), *jvalue = member(vec, "value"), *jrecord = member(vec, "record"),
               *jkey = member(vec, "key"), *jorder = member(vec, "order");
    if (!jtype || jtype->kind != J_STRING || !jvalue || !jrecord || jrecord->kind != J_STRING ||
        (jkey && jkey->kind != J_STRING && jkey->kind != J_NULL) || (jorder && jorder->kind != J_NUMBER)) {
        fail("vector %zu: not a vector (type, value, record, key, order)", i);
        return;
    }
    const char *name = jtype->text;
    type *t = type_named(name);
    if (t == NULL) {
        fail("vector %zu: unknown type `%s`", i, name);
        return;
    }
    value want = {0};
    uint8_t *record = NULL, *key = NULL;
    size_t record_len = 0, key_len = 0;
    bool has_key = jkey && jkey->kind == J_STRING;
    const char *label = compact(jvalue);
#define VFAIL(what) fail("vector %zu `%s` %s: %s: %s", i, name, label, what, why)
    if (!from_json(t, jvalue, &want, why, sizeof why)) {
        VFAIL("value");
        goto done;
    }
    if (!unhex(jrecord->text, jrecord->len, &record, &record_len) ||
        (has_key && !unhex(jkey->text, jkey->len, &key, &key_len))) {
        snprintf(why, sizeof why, "not hex");
        VFAIL("bytes");
        goto done;
    }
    weft_val rec = {record, record_len}, k = {key, key_len};

    /* (a), (b): the record, and the key for key types. */
    const char *failed = check_encoding(t, rec, false, &want, why, sizeof why);
    if (failed) {
        char what[64];
        snprintf(what, sizeof what, "record %s", failed);
        VFAIL(what);
    }
    if (has_key && (failed = check_encoding(t, k, true, &want, why, sizeof why))) {
        char what[64];
        snprintf(what, sizeof what, "key %s", failed);
        VFAIL(what);
    }

    /* (c): kept for the sort check. */
    if (jorder) {
        char *end;
        long long order = strtoll(jorder->text, &end, 10);
        if (*end || !has_key) {
            snprintf(why, sizeof why, *end ? "not an integer" : "a rank without key bytes");
            VFAIL("order");
        } else {
            ranks = realloc(ranks, (nranks + 1) * sizeof *ranks);
            if (ranks == NULL) exit(2);
            ranked r = {t->bits ? "f64" : name, order, key, key_len, i};
            ranks[nranks++] = r;
            key = NULL; /* now the rank's */
        }
    }
#undef VFAIL
done:
    value_free(&want);
    free(record);
    free(key);
    type_free(t);
}

/* Key bytes compared as the host does: memcmp, shorter first on a prefix. */
static int key_cmp(const ranked *a, const ranked *b) {
    size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
    int c = n ? memcmp(a->key, b->key, n) : 0;
    return c ? c : (a->key_len > b->key_len) - (a->key_len < b->key_len);
}

/* (c): within each type, key bytes sort as the ranks do, and equal bytes are
 * equal ranks. Returns the number of types checked. */
static size_t check_order(void) {
    size_t families = 0;
    bool *done = calloc(nranks ? nranks : 1, sizeof *done);
    ranked *group = xmalloc((nranks ? nranks : 1) * sizeof *group);
    for (size_t i = 0; i < nranks; i++) {
        if (done[i]) continue;
        size_t n = 0;
        for (size_t j = i; j < nranks; j++) {
            if (!done[j] && strcmp(ranks[j].family, ranks[i].family) == 0) {
                done[j] = true;
                /* Insertion by key bytes. */
                size_t at = n++;
                while (at > 0 && key_cmp(&group[at - 1], &ranks[j]) > 0) {
                    group[at] = group[at - 1];
                    at--;
                }
                group[at] = ranks[j];
            }
        }
        families++;
        for (size_t j = 1; j < n; j++) {
            const ranked *a = &group[j - 1], *b = &group[j];
            bool equal = key_cmp(a, b) == 0;
            if (equal ? a->order != b->order : a->order >= b->order) {
                fail("order of `%s`: vector %zu (order %lld, key %s) sorts %s vector %zu (order %lld, key %s)",
                     a->family, a->index, a->order, hex(a->key, a->key_len), equal ? "equal to" : "before",
                     b->index, b->order, hex(b->key, b->key_len));
            }
        }
    }
    free(group);
    free(done);
    return families;
}

/* ---- Malformed input -------------------------------------------------------- */

/* Bytes from hex (a static buffer: one at a time). */
static weft_val bytes_of(const char *h) {
    static uint8_t b[64];
    size_t n = strlen(h) / 2;
    for (size_t i = 0; i < n && i < sizeof b; i++) b[i] = (uint8_t)(hex_digit(h[2 * i]) << 4 | hex_digit(h[2 * i + 1]));
    weft_val v = {b, n};
    return v;
}

/* Whether a call since `before` reported exactly one decode error. */
static void expect_decode_error(int before, const char *what) {
    if (decode_errors != before + 1) {
        fail("malformed: %s reported %d decode errors, not 1", what, decode_errors - before);
    }
}

static void check_malformed(void) {
    int before;
    weft_val e;

    /* A batch whose last entry runs past its end: weft_next stops and says so,
     * then stays at the end without another error. */
    static const char *const cut[] = {"0500000061626364", "010000006103000000", "010000", "01000000"};
    for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++) {
        weft_val v = bytes_of(cut[i]);
        weft_reader r = weft_read(v);
        size_t whole = 0;
        before = decode_errors;
        while (weft_next(&r, &e)) whole++;
        expect_decode_error(before, cut[i]);
        if (whole != (i == 1)) fail("malformed: batch %s gave %zu whole entries", cut[i], whole);
        if (weft_next(&r, &e) || decode_errors != before + 1) {
            fail("malformed: weft_next went on after batch %s", cut[i]);
        }
    }

    /* Fixed widths of the wrong size: a decode error, and 0. */
    before = decode_errors;
    if (weft_i64(bytes_of("80000000000001")) != 0) fail("malformed: weft_i64 of 7 bytes is not 0");
    expect_decode_error(before, "weft_i64 of 7 bytes");
    before = decode_errors;
    weft_i64(bytes_of("800000000000000000"));
    expect_decode_error(before, "weft_i64 of 9 bytes");
    before = decode_errors;
    weft_u64(bytes_of(""));
    expect_decode_error(before, "weft_u64 of 0 bytes");
    before = decode_errors;
    weft_i32(bytes_of("800000"));
    expect_decode_error(before, "weft_i32 of 3 bytes");
    before = decode_errors;
    weft_u32(bytes_of("0000000000"));
    expect_decode_error(before, "weft_u32 of 5 bytes");
    before = decode_errors;
    weft_f64(bytes_of("bff8"));
    expect_decode_error(before, "weft_f64 of 2 bytes");

    /* A bool other than 00 or 01. */
    before = decode_errors;
    if (weft_bool(bytes_of("02")) != false) fail("malformed: weft_bool(02) is not false");
    expect_decode_error(before, "weft_bool(02)");
    if (!strstr(decode_message, "02")) {
        fail("malformed: weft_bool(02)'s message does not show the byte: %s", decode_message);
    }
    before = decode_errors;
    weft_bool(bytes_of("0100"));
    expect_decode_error(before, "weft_bool of 2 bytes");

    /* A tuple without the element asked for. */
    before = decode_errors;
    e = weft_elem(bytes_of("0100000061"), 1);
    expect_decode_error(before, "weft_elem(1) of a 1-tuple");
    if (e.ptr != NULL || e.len != 0) fail("malformed: weft_elem(1) of a 1-tuple is not an empty view");

    /* A pair batch with a key and no value. */
    weft_val odd = bytes_of("010000006101000000620100000063");
    weft_reader r = weft_read(odd);
    weft_rec rec;
    size_t pairs = 0;
    before = decode_errors;
    while (weft_next_rec(&r, WEFT_PAIR, &rec)) pairs++;
    expect_decode_error(before, "three entries read as pairs");
    if (pairs != 1) fail("malformed: three entries read as %zu pairs", pairs);

    /* What no value encodes to (the Python SDK's list): the decoders above,
     * the SDK's readers within them, reject each. */
    static const struct { const char *type, *kind, *hex; } rejected[] = {
        {"bool", "record", "02"},
        {"option<i64>", "key", "02"},
        {"(string, i64)", "key", "6100018000000000000001"},
        {"(string, i64)", "key", "6100"},
        {"char", "key", "0000d800"},
        {"char", "record", "00110000"},
        {"i64", "key", "80"},
        {"i64", "key", "800000000000000000"},
        {"string", "record", "ff"},
        {"(string, i64)", "record", "0100000061"},
        {"option<i64>", "record", "08000000800000000000000008000000800000000000000000"},
        {"(i64, string)", "record", "080000008000000000000000010000006100000000"},
    };
    for (size_t i = 0; i < sizeof rejected / sizeof rejected[0]; i++) {
        type *t = type_named(rejected[i].type);
        value v;
        char why[400];
        weft_val b = bytes_of(rejected[i].hex);
        bool key = strcmp(rejected[i].kind, "key") == 0;
        bool ok = key ? decode_whole_key(t, b, &v, why, sizeof why) : decode_record(t, b, &v, why, sizeof why);
        if (ok) fail("malformed: %s %s %s decoded", rejected[i].type, rejected[i].kind, rejected[i].hex);
        value_free(&v);
        type_free(t);
    }
}

/* ---- Main ----------------------------------------------------------------- */

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line out before a sanitizer's report */
    const char *path = argc > 1 ? argv[1] : "codec/golden/records.json";
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "golden: cannot open %s: %s (run from the repository root)\n", path, strerror(errno));
        return 2;
    }
    buf text = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) buf_add(&text, chunk, n);
    fclose(f);

    char error[200];
    json *doc = json_parse(text.p ? text.p : "", text.len, error, sizeof error);
    if (doc == NULL) {
        fprintf(stderr, "golden: %s is not JSON: %s\n", path, error);
        free(text.p);
        return 2;
    }
    const json *vectors = member(doc, "vectors");
    size_t count = vectors && vectors->kind == J_ARRAY ? vectors->n : 0;
    if (count != GOLDEN_VECTORS) {
        fail("%s holds %zu vectors, not %d", path, count, GOLDEN_VECTORS);
    }
    for (size_t i = 0; i < count; i++) {
        check_vector(i, vectors->items[i]);
    }
    size_t families = check_order();
    if (families <= 10) fail("only %zu types have ranked vectors", families);
    check_malformed();

    for (size_t i = 0; i < nranks; i++) free(ranks[i].key);
    free(ranks);
    json_free(doc);
    free(text.p);
    printf("golden: %zu vectors, %zu failures\n", count, failures);
    return failures ? 1 : 0;
}
