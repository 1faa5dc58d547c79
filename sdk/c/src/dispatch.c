/*
 * The dispatcher: `functions`, `run-chain` and `flush-chain` of the record
 * contract (docs/record-format.md, "The dispatcher"), the registry the
 * WEFT_* macros fill, the SDK's own steps, and failures (weft_fail,
 * weft_panic, decode errors) turned into the contract's call errors.
 */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"
#include "job.h"

/* ---- The registry ------------------------------------------------------ */

static weft__fn *registry;
static size_t registered, registry_cap;

void weft_register(const char *name, enum weft__kind kind, weft_shape in, weft_shape out, void (*fn)(void)) {
    if (registered == registry_cap) {
        registry_cap = registry_cap ? registry_cap * 2 : 32;
        registry = realloc(registry, registry_cap * sizeof *registry);
        if (registry == NULL) {
            __builtin_trap();
        }
    }
    for (size_t i = 0; i < registered; i++) {
        if (strcmp(registry[i].name, name) == 0) {
            registry[i].twice = true; /* two static functions of one name, in two files */
            return;
        }
    }
    weft__fn f = {name, kind, in, out, fn, false};
    registry[registered++] = f;
}

/* The SDK's own steps, over bytes (docs/sdk-c.md, "The SDK's own steps"). */
static int own_keys(weft_rec in, weft_out *out) {
    weft_put_val(out, in.key);
    return 0;
}
static int own_values(weft_rec in, weft_out *out) {
    weft_put_val(out, in.val);
    return 0;
}
static int own_one(weft_rec in, weft_out *out) {
    weft_put_val(out, in.val);
    weft_put_i64(out, 1);
    return 0;
}
static int own_ones(weft_rec in, weft_out *out) {
    weft_put_val(out, in.key);
    weft_put_i64(out, 1);
    return 0;
}
static int own_unit(weft_rec in, weft_out *out) {
    weft_put_val(out, in.val);
    weft_put_unit(out);
    return 0;
}
static int64_t own_add(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
static int own_keep(weft_val a, weft_val b, weft_out *out) {
    (void)b;
    weft_put_val(out, a);
    return 0;
}

#define OWN(name, kind, in, out, fn) {"_weft." name, kind, in, out, (void (*)(void))(fn), false}
static const weft__fn own_steps[] = {
    OWN("keys", WEFT__MAP, WEFT_PAIR, WEFT_RECORD, own_keys),
    OWN("values", WEFT__MAP, WEFT_PAIR, WEFT_RECORD, own_values),
    OWN("one", WEFT__MAP, WEFT_RECORD, WEFT_PAIR, own_one),
    OWN("ones", WEFT__MAP, WEFT_PAIR, WEFT_PAIR, own_ones),
    OWN("unit", WEFT__MAP, WEFT_RECORD, WEFT_PAIR, own_unit),
    OWN("add", WEFT__REDUCE_I64, WEFT_PAIR, WEFT_PAIR, own_add),
    OWN("keep", WEFT__REDUCE, WEFT_PAIR, WEFT_PAIR, own_keep),
};
#define OWN_STEPS (sizeof own_steps / sizeof own_steps[0])

const weft__fn *weft__lookup(const char *name, size_t len) {
    for (size_t i = 0; i < registered; i++) {
        if (strlen(registry[i].name) == len && memcmp(registry[i].name, name, len) == 0) {
            return &registry[i];
        }
    }
    for (size_t i = 0; i < OWN_STEPS; i++) {
        if (strlen(own_steps[i].name) == len && memcmp(own_steps[i].name, name, len) == 0) {
            return &own_steps[i];
        }
    }
    return NULL;
}

const char *weft__kind_name(enum weft__kind kind) {
    switch (kind) {
    case WEFT__MAP: return "map";
    case WEFT__FILTER: return "filter";
    case WEFT__FLAT_MAP: return "flat_map";
    case WEFT__BATCH: return "map_partitions function";
    default: return "reduce function";
    }
}

const weft__fn *weft__functions(size_t *count) {
    *count = registered;
    return registry;
}

/* ---- Failures ------------------------------------------------------------ */

const char *weft__running = "main";

char *weft__vformat(const char *format, va_list ap) {
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, format, ap);
    char *s = malloc(n > 0 ? (size_t)n + 1 : 1);
    if (s == NULL) {
        __builtin_trap();
    }
    vsnprintf(s, n > 0 ? (size_t)n + 1 : 1, format, again);
    va_end(again);
    return s;
}

char *weft__format(const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    char *s = weft__vformat(format, ap);
    va_end(ap);
    return s;
}

/* The first failure of the running call: a decode error or weft_fail's. */
static char *failure;
static bool failure_is_decode;

void weft__decode_failed(const char *format, ...) {
    if (failure) {
        return;
    }
    va_list ap;
    va_start(ap, format);
    failure = weft__vformat(format, ap);
    failure_is_decode = true;
    va_end(ap);
}

char *weft__take_failure(void) {
    char *f = failure;
    failure = NULL;
    failure_is_decode = false;
    return f;
}

int weft_fail(const char *format, ...) {
    if (!failure) {
        va_list ap;
        va_start(ap, format);
        failure = weft__vformat(format, ap);
        failure_is_decode = false;
        va_end(ap);
    }
    return -1;
}

void weft_log(weft_level level, const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    char *s = weft__utf8(weft__vformat(format, ap));
    va_end(ap);
    job_string_t msg = {(uint8_t *)s, strlen(s)};
    weft_grid_log_log((weft_grid_log_level_t)level, &msg);
    free(s);
}

_Noreturn void weft__panic(const char *file, int line, const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    char *s = weft__vformat(format, ap);
    va_end(ap);
    /* The agent reports the last line saying "panicked at" as the reason a
     * task trapped. */
    weft_log(WEFT_ERROR, "`%s` panicked at %s:%d: %s", weft__running, file, line, s);
    __builtin_trap();
}

/* `assert` reports like a panic (this replaces wasi-libc's, which aborts
 * without a word). */
_Noreturn void __assert_fail(const char *expr, const char *file, int line, const char *func) {
    weft__panic(file, line, "assertion `%s` failed in %s", expr, func);
}

void weft_accumulate(const char *name, int64_t delta) {
    job_string_t s = {(uint8_t *)name, strlen(name)};
    weft_grid_accumulators_add(&s, delta);
}

/* ---- Bound parameters ---------------------------------------------------- */

typedef struct param {
    uint64_t id;
    job_list_u8_t value;
} param;
static param *params;
static size_t nparams;
static weft_val current_param;

weft_val weft_param(void) { return current_param; }

/* Broadcast `id`, fetched once per instance; false when the job has none. */
static bool fetch_param(uint64_t id, weft_val *v) {
    for (size_t i = 0; i < nparams; i++) {
        if (params[i].id == id) {
            v->ptr = params[i].value.ptr;
            v->len = params[i].value.len;
            return true;
        }
    }
    job_list_u8_t value;
    if (!weft_grid_broadcast_get(id, &value)) {
        return false;
    }
    params = realloc(params, (nparams + 1) * sizeof *params);
    if (params == NULL) {
        __builtin_trap();
    }
    params[nparams].id = id;
    params[nparams].value = value;
    nparams++;
    v->ptr = value.ptr;
    v->len = value.len;
    return true;
}

/* ---- Chains --------------------------------------------------------------- */

typedef struct step {
    const weft__fn *f;
    uint8_t op;        /* WEFT_GRID_TYPES_OP_KIND_* */
    bool partition;    /* weft:partition:<f> */
    bool bound;
    weft_val param;
} step;

/* A call's failure, as the contract's call-error. */
typedef struct call_failure {
    uint8_t tag;
    char *message;
} call_failure;

static bool fail_call(call_failure *e, uint8_t tag, char *message) {
    e->tag = tag;
    e->message = message;
    return false;
}

#define PARTITION "weft:partition:"

static bool resolve(const exports_weft_grid_dispatcher_op_t *op, step *s, call_failure *e) {
    const char *name = (const char *)op->function.ptr;
    size_t len = op->function.len;
    s->op = op->kind;
    s->partition = op->kind == WEFT_GRID_TYPES_OP_KIND_MAP_BATCH && len > strlen(PARTITION) &&
                   memcmp(name, PARTITION, strlen(PARTITION)) == 0;
    if (s->partition) {
        name += strlen(PARTITION);
        len -= strlen(PARTITION);
    }
    s->f = weft__lookup(name, len);
    static const enum weft__kind wanted[] = {
        [WEFT_GRID_TYPES_OP_KIND_MAP] = WEFT__MAP,       [WEFT_GRID_TYPES_OP_KIND_FILTER] = WEFT__FILTER,
        [WEFT_GRID_TYPES_OP_KIND_FLAT_MAP] = WEFT__FLAT_MAP, [WEFT_GRID_TYPES_OP_KIND_MAP_BATCH] = WEFT__BATCH,
        [WEFT_GRID_TYPES_OP_KIND_REDUCE] = WEFT__REDUCE,  [WEFT_GRID_TYPES_OP_KIND_COMBINE] = WEFT__REDUCE,
    };
    if (op->kind > WEFT_GRID_TYPES_OP_KIND_COMBINE) {
        return fail_call(e, WEFT_GRID_TYPES_CALL_ERROR_UNKNOWN_FUNCTION, weft__format("an unknown step kind %u", op->kind));
    }
    if (s->f == NULL) {
        return fail_call(e, WEFT_GRID_TYPES_CALL_ERROR_UNKNOWN_FUNCTION, weft__format("%.*s", (int)len, name));
    }
    if (s->f->twice) {
        return fail_call(e, WEFT_GRID_TYPES_CALL_ERROR_USER,
                         weft__format("`%s` is registered twice (two functions of that name in the job's files)",
                                      s->f->name));
    }
    enum weft__kind want = wanted[op->kind];
    bool fits = s->f->kind == want ||
                (want == WEFT__REDUCE && (s->f->kind == WEFT__REDUCE_I64 || s->f->kind == WEFT__REDUCE_F64));
    if (!fits) {
        return fail_call(e, WEFT_GRID_TYPES_CALL_ERROR_USER,
                         weft__format("`%s` is registered as a %s; this step needs a %s", s->f->name,
                                      weft__kind_name(s->f->kind), weft__kind_name(want)));
    }
    s->bound = op->param.is_some;
    s->param.ptr = NULL;
    s->param.len = 0;
    if (s->bound && !fetch_param(op->param.val, &s->param)) {
        return fail_call(e, WEFT_GRID_TYPES_CALL_ERROR_DECODE,
                         weft__format("`%s`: the job has no broadcast value %llu", s->f->name,
                                      (unsigned long long)op->param.val));
    }
    return true;
}

/* The length of the UTF-8 character at `p` (`n` bytes left), or 0 when the
 * bytes there are not one. */
static size_t utf8_char(const uint8_t *p, size_t n) {
    uint8_t c = p[0];
    size_t len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (len == 0 || len > n) {
        return 0;
    }
    uint32_t cp = c & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))) {
        return 0;
    }
    return len;
}

/* A record as an error message shows it: printable UTF-8 text quoted, else
 * hex; at most 200 bytes, text cut where a character starts. */
static void show(weft_out *m, weft_val v) {
    bool text = true;
    for (size_t i = 0, len = 0; i < v.len && text; i += len) {
        len = utf8_char(v.ptr + i, v.len - i);
        text = len > 1 || (len == 1 && v.ptr[i] >= 0x20 && v.ptr[i] != 0x7f);
    }
    size_t n = v.len > 200 ? 200 : v.len;
    while (text && n < v.len && (v.ptr[n] & 0xc0) == 0x80) {
        n--;
    }
    if (text) {
        weft__bytes(m, "\"", 1);
        weft__bytes(m, v.ptr, n);
        weft__bytes(m, "\"", 1);
    } else {
        static const char hex[] = "0123456789abcdef";
        weft__bytes(m, "0x", 2);
        for (size_t i = 0; i < n; i++) {
            char b[2] = {hex[v.ptr[i] >> 4], hex[v.ptr[i] & 15]};
            weft__bytes(m, b, 2);
        }
    }
    if (n < v.len) {
        weft__bytes(m, "…", strlen("…"));
    }
}

/* The call error for a function that failed (or mis-decoded) on `rec`. */
static bool user_failure(call_failure *e, const step *s, const weft_rec *rec, const char *what) {
    weft_out m = {0};
    char *head = weft__format("`%s` %s: %s\n  on record ", s->f->name,
                              failure_is_decode ? "could not decode its input" : "failed", failure ? failure : what);
    weft__bytes(&m, head, strlen(head));
    free(head);
    if (rec == NULL) {
        weft__bytes(&m, "<the whole batch>", strlen("<the whole batch>"));
    } else if (rec->key.ptr) {
        weft__bytes(&m, "(", 1);
        show(&m, rec->key);
        weft__bytes(&m, ", ", 2);
        show(&m, rec->val);
        weft__bytes(&m, ")", 1);
    } else {
        show(&m, rec->val);
    }
    weft__bytes(&m, "", 1);
    uint8_t tag = failure_is_decode ? WEFT_GRID_TYPES_CALL_ERROR_DECODE : WEFT_GRID_TYPES_CALL_ERROR_USER;
    free(failure);
    failure = NULL;
    failure_is_decode = false;
    return fail_call(e, tag, (char *)m.buf);
}

/* ---- combine: a hash table of key bytes, held across calls --------------- */

/* The value of an i64 or f64 reduce, folded without encoding. */
typedef union number {
    int64_t i;
    double f;
} number;

/* Fold `v` into `n` with an i64/f64 reduce function, or start `n` with it. */
static inline void fold_number(const weft__fn *f, number *n, weft_val v, bool first) {
    if (f->kind == WEFT__REDUCE_I64) {
        int64_t x = weft_i64(v);
        n->i = first ? x : ((weft_reduce_i64_fn)f->fn)(n->i, x);
    } else {
        double x = weft_f64(v);
        n->f = first ? x : ((weft_reduce_f64_fn)f->fn)(n->f, x);
    }
}

/* A folded pair: the key, then the number (i64/f64 reduces) or the value. */
static inline void put_folded(weft_out *out, const weft__fn *f, weft_val key, number n, weft_val value) {
    weft_put_val(out, key);
    if (f->kind == WEFT__REDUCE_I64) {
        weft_put_i64(out, n.i);
    } else if (f->kind == WEFT__REDUCE_F64) {
        weft_put_f64(out, n.f);
    } else {
        weft_put_val(out, value);
    }
}

typedef struct slot {
    uint64_t hash;
    size_t key, key_len; /* in `keys` */
    size_t val, val_len; /* in `vals` (generic values) */
    number num;
} slot;

typedef struct held {
    char *chain;            /* the chain, as a signature, or NULL when free */
    slot *slots;            /* in first-seen order */
    size_t n, cap;
    uint32_t *index;        /* open addressing: slot number + 1, 0 empty */
    size_t index_cap;       /* a power of two */
    weft_out keys, vals;
    weft_out partition;     /* a weft:partition: step's input so far */
} held;

#define HELD_CHAINS 4
static held helds[HELD_CHAINS];

/* The most keys (or value bytes) a combine holds before it hands them back. */
#define HELD_KEYS (1u << 18)
#define HELD_BYTES (64u << 20)

static inline uint64_t hash_bytes(const uint8_t *p, size_t n) {
    const uint64_t k = 0x9E3779B97F4A7C15ull;
    uint64_t h = (uint64_t)n * k;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * k;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, p, n);
        h = (h ^ w) * k;
        h ^= h >> 29;
    }
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 31);
}

/* Whether two byte strings of length `n` are equal: eight bytes at a time
 * (wasi-libc's memcmp goes a byte at a time). */
static inline bool same_bytes(const uint8_t *a, const uint8_t *b, size_t n) {
    uint64_t x, y;
    while (n >= 8) {
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y) {
            return false;
        }
        a += 8;
        b += 8;
        n -= 8;
    }
    while (n--) {
        if (*a++ != *b++) {
            return false;
        }
    }
    return true;
}

static void held_grow(held *t) {
    size_t cap = t->index_cap ? t->index_cap * 2 : 1024;
    uint32_t *index = calloc(cap, sizeof *index);
    if (index == NULL) {
        weft_panic("out of memory: a combine table of %zu slots", cap);
    }
    for (size_t i = 0; i < t->n; i++) {
        size_t at = t->slots[i].hash & (cap - 1);
        while (index[at]) {
            at = (at + 1) & (cap - 1);
        }
        index[at] = (uint32_t)i + 1;
    }
    free(t->index);
    t->index = index;
    t->index_cap = cap;
}

/* The slot of `key`, made when new (then *fresh is true). */
static slot *held_slot(held *t, weft_val key, bool *fresh) {
    if ((t->n + 1) * 4 > t->index_cap * 3) {
        held_grow(t);
    }
    uint64_t h = hash_bytes(key.ptr, key.len);
    size_t at = h & (t->index_cap - 1);
    for (;;) {
        uint32_t i = t->index[at];
        if (i == 0) {
            break;
        }
        slot *s = &t->slots[i - 1];
        if (s->hash == h && s->key_len == key.len && same_bytes(t->keys.buf + s->key, key.ptr, key.len)) {
            *fresh = false;
            return s;
        }
        at = (at + 1) & (t->index_cap - 1);
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 1024;
        t->slots = realloc(t->slots, t->cap * sizeof *t->slots);
        if (t->slots == NULL) {
            weft_panic("out of memory: a combine table of %zu keys", t->cap);
        }
    }
    slot *s = &t->slots[t->n];
    t->index[at] = (uint32_t)++t->n;
    s->hash = h;
    s->key = t->keys.len;
    s->key_len = key.len;
    weft__bytes(&t->keys, key.ptr, key.len);
    *fresh = true;
    return s;
}

/* Hand every held pair to `out` and forget them. */
static void held_drain(held *t, const weft__fn *f, weft_out *out) {
    for (size_t i = 0; i < t->n; i++) {
        const slot *s = &t->slots[i];
        weft_val key = {t->keys.buf + s->key, s->key_len}, value = {0};
        if (f->kind == WEFT__REDUCE) { /* (a number's slot has no value bytes) */
            value = (weft_val){t->vals.buf + s->val, s->val_len};
        }
        put_folded(out, f, key, s->num, value);
    }
    t->n = 0;
    t->keys.len = 0;
    t->vals.len = 0;
    if (t->index) {
        memset(t->index, 0, t->index_cap * sizeof *t->index);
    }
}

/* The value a reduce function wrote to `tmp`: exactly one entry. */
static bool reduced(const step *s, weft_out *tmp, weft_val *v, call_failure *e, const weft_rec *rec) {
    weft_reader r = {tmp->buf, tmp->buf + tmp->len};
    if (tmp->depth != 0) {
        weft_fail("it left an entry open (weft_open without weft_close)");
        return user_failure(e, s, rec, "");
    }
    if (tmp->entries != 1 || !weft_next(&r, v)) {
        weft_fail("a reduce function writes one value, this call wrote %zu entries", tmp->entries);
        return user_failure(e, s, rec, "");
    }
    return true;
}

static weft_out scratch;

/* Fold `b` into the value `a` with the step's reduce function; the result
 * is in `scratch` (generic) or `num`. */
static bool fold(const step *s, weft_val a, weft_val b, weft_val *v, call_failure *e, const weft_rec *rec) {
    weft__running = s->f->name;
    scratch.len = 0;
    scratch.entries = 0;
    scratch.depth = 0;
    int rc = ((weft_reduce_fn)s->f->fn)(a, b, &scratch);
    if (rc != 0 || failure) {
        return user_failure(e, s, rec, "it returned an error without weft_fail's message");
    }
    return reduced(s, &scratch, v, e, rec);
}

static bool combine(held *t, const step *s, weft_val input, weft_out *out, call_failure *e) {
    weft_reader r = {input.ptr, input.ptr + input.len};
    weft_rec rec;
    const weft__fn *f = s->f;
    weft__running = f->name;
    while (weft_next_rec(&r, WEFT_PAIR, &rec)) {
        bool fresh;
        slot *sl = held_slot(t, rec.key, &fresh);
        if (f->kind != WEFT__REDUCE) {
            fold_number(f, &sl->num, rec.val, fresh);
        } else if (fresh) {
            sl->val = t->vals.len;
            sl->val_len = rec.val.len;
            weft__bytes(&t->vals, rec.val.ptr, rec.val.len);
        } else {
            weft_val a = {t->vals.buf + sl->val, sl->val_len}, v;
            if (!fold(s, a, rec.val, &v, e, &rec)) {
                return false;
            }
            if (v.len <= sl->val_len) {
                memmove(t->vals.buf + sl->val, v.ptr, v.len);
            } else {
                sl->val = t->vals.len;
                weft__bytes(&t->vals, v.ptr, v.len);
            }
            sl->val_len = v.len;
            /* Checked per fold: a value that grows leaves its old bytes behind. */
            if (t->vals.len + t->keys.len >= HELD_BYTES) {
                held_drain(t, f, out);
            }
        }
        if (failure) {
            return user_failure(e, s, &rec, "");
        }
    }
    if (failure) {
        return user_failure(e, s, NULL, "");
    }
    if (t->n >= HELD_KEYS || t->vals.len + t->keys.len >= HELD_BYTES) {
        held_drain(t, f, out);
    }
    return true;
}

/* A reduce: runs of equal keys, sorted, each folded into one pair. */
static bool reduce_runs(const step *s, weft_val input, weft_out *out, call_failure *e) {
    weft_reader r = {input.ptr, input.ptr + input.len};
    weft_rec rec;
    const weft__fn *f = s->f;
    weft_val key = {0}, a = {0};
    number num = {0};
    weft_out acc = {0};
    bool any = false, ok = true;
    while (ok && weft_next_rec(&r, WEFT_PAIR, &rec)) {
        bool same = any && rec.key.len == key.len && same_bytes(rec.key.ptr, key.ptr, key.len);
        if (!same) {
            if (any) {
                put_folded(out, f, key, num, a);
            }
            any = true;
            key = rec.key;
        }
        if (f->kind != WEFT__REDUCE) {
            fold_number(f, &num, rec.val, !same);
        } else if (!same) {
            a = rec.val;
        } else {
            weft_val v;
            ok = fold(s, a, rec.val, &v, e, &rec);
            if (ok) {
                acc.len = 0;
                weft__bytes(&acc, v.ptr, v.len);
                a.ptr = acc.buf;
                a.len = v.len;
            }
        }
        if (ok && failure) {
            ok = user_failure(e, s, &rec, "");
        }
    }
    if (ok && failure) {
        ok = user_failure(e, s, NULL, "");
    }
    if (ok && any) {
        put_folded(out, f, key, num, a);
    }
    free(acc.buf);
    return ok;
}

/* map, filter, flat-map: each record of `input` through the function, into
 * `out`; or, when `then` is a combine, each record's output folded into `t`
 * at once (what the combine hands back goes to `result`), so that no batch
 * of pairs is written between the two. */
static bool elements(const step *s, weft_val input, weft_out *out, call_failure *e, const step *then, held *t,
                     weft_out *result) {
    weft_reader r = {input.ptr, input.ptr + input.len};
    weft_rec rec;
    const weft__fn *f = s->f;
    size_t per = f->out == WEFT_PAIR ? 2 : 1;
    while (weft_next_rec(&r, f->in, &rec)) {
        weft__running = f->name;
        if (then) {
            weft_val made = {out->buf, out->len};
            if (out->len && !combine(t, then, made, result, e)) {
                return false;
            }
            out->len = 0;
            out->entries = 0;
        }
        if (s->op == WEFT_GRID_TYPES_OP_KIND_FILTER) {
            int keep = ((weft_filter_fn)f->fn)(rec);
            if (keep < 0 || failure) {
                return user_failure(e, s, &rec, "it returned an error without weft_fail's message");
            }
            if (keep) {
                if (f->in == WEFT_PAIR) {
                    weft_put_val(out, rec.key);
                }
                weft_put_val(out, rec.val);
            }
            continue;
        }
        size_t before = out->entries;
        if (((weft_map_fn)f->fn)(rec, out) != 0 || failure) {
            return user_failure(e, s, &rec, "it returned an error without weft_fail's message");
        }
        size_t wrote = out->entries - before;
        if (out->depth != 0) {
            weft_fail("it left an entry open (weft_open without weft_close)");
            return user_failure(e, s, &rec, "");
        }
        if (s->op == WEFT_GRID_TYPES_OP_KIND_MAP ? wrote != per : wrote % per != 0) {
            weft_fail("it is a %s to %s and wrote %zu entries (a record is one entry, a pair two)",
                      s->op == WEFT_GRID_TYPES_OP_KIND_MAP ? "map" : "flat_map", per == 2 ? "pairs" : "records", wrote);
            return user_failure(e, s, &rec, "");
        }
    }
    if (failure) {
        return user_failure(e, s, NULL, "");
    }
    if (then && out->len) {
        weft_val made = {out->buf, out->len};
        if (!combine(t, then, made, result, e)) {
            return false;
        }
        out->len = 0;
    }
    return true;
}

static bool whole(const step *s, weft_val input, weft_out *out, call_failure *e) {
    weft__running = s->f->name;
    if (((weft_batch_fn)s->f->fn)(input, out) != 0 || failure) {
        return user_failure(e, s, NULL, "it returned an error without weft_fail's message");
    }
    if (out->depth != 0) {
        weft_fail("it left an entry open (weft_open without weft_close)");
        return user_failure(e, s, NULL, "");
    }
    if (s->f->out == WEFT_PAIR && out->entries % 2) {
        weft_fail("it makes pairs and wrote %zu entries (a pair is two)", out->entries);
        return user_failure(e, s, NULL, "");
    }
    return true;
}

/* Two buffers the steps write in turn, kept between calls, and what a
 * combine fed directly hands back. */
static weft_out buffers[2], handed;

/* Run steps [from, n) over `input`; the result is left in `*result`
 * (a buffer of `buffers`, or the input itself when no step wrote). A
 * whole-partition step keeps its input in `t` and ends the run; a combine
 * folds into `t`. */
static bool run_steps(const step *steps, size_t from, size_t n, held *t, weft_val input, weft_val *result,
                      call_failure *e, size_t *stopped) {
    weft_val cur = input;
    int next = 0;
    *stopped = n;
    for (size_t i = from; i < n; i++) {
        const step *s = &steps[i];
        current_param = s->param;
        weft_out *out = &buffers[next];
        if ((const uint8_t *)out->buf == cur.ptr) {
            out = &buffers[next ^= 1];
        }
        out->len = 0;
        out->entries = 0;
        out->depth = 0;
        bool ok;
        if (s->partition) {
            weft__bytes(&t->partition, cur.ptr, cur.len);
            cur.ptr = NULL;
            cur.len = 0;
            *stopped = i;
            break;
        } else if (s->op == WEFT_GRID_TYPES_OP_KIND_COMBINE) {
            ok = combine(t, s, cur, out, e);
        } else if (s->op == WEFT_GRID_TYPES_OP_KIND_REDUCE) {
            ok = reduce_runs(s, cur, out, e);
        } else if (s->op == WEFT_GRID_TYPES_OP_KIND_MAP_BATCH) {
            ok = whole(s, cur, out, e);
        } else if (i + 2 == n && steps[i + 1].op == WEFT_GRID_TYPES_OP_KIND_COMBINE && !steps[i + 1].partition) {
            /* The step before a combine feeds it directly. */
            handed.len = handed.entries = 0;
            handed.depth = 0;
            ok = elements(s, cur, out, e, &steps[i + 1], t, &handed);
            if (ok) {
                *result = (weft_val){handed.buf, handed.len};
            }
            return ok;
        } else {
            ok = elements(s, cur, out, e, NULL, NULL, NULL);
        }
        if (!ok) {
            return false;
        }
        cur.ptr = out->buf;
        cur.len = out->len;
        next ^= 1;
    }
    *result = cur;
    return true;
}

/* ---- The exports --------------------------------------------------------- */

/* A chain as text, to find what it holds: its steps' kinds and names. */
static char *signature(const exports_weft_grid_dispatcher_list_op_t *chain) {
    weft_out m = {0};
    for (size_t i = 0; i < chain->len; i++) {
        const exports_weft_grid_dispatcher_op_t *op = &chain->ptr[i];
        char head[32];
        int n = snprintf(head, sizeof head, "%u:%llu:", op->kind,
                         op->param.is_some ? (unsigned long long)op->param.val + 1 : 0ull);
        weft__bytes(&m, head, (size_t)n);
        weft__bytes(&m, op->function.ptr, op->function.len);
        weft__bytes(&m, "\n", 1);
    }
    weft__bytes(&m, "", 1);
    return (char *)m.buf;
}

/* What a chain holds between calls, found (or made) by its signature. */
static held *held_for(const exports_weft_grid_dispatcher_list_op_t *chain, bool make) {
    char *sig = signature(chain);
    held *free_one = NULL;
    for (int i = 0; i < HELD_CHAINS; i++) {
        if (helds[i].chain && strcmp(helds[i].chain, sig) == 0) {
            free(sig);
            return &helds[i];
        }
        if (!helds[i].chain && !free_one) {
            free_one = &helds[i];
        }
    }
    if (!make || !free_one) {
        free(sig);
        return NULL;
    }
    free_one->chain = sig;
    return free_one;
}

static void release(held *t) {
    free(t->chain);
    t->chain = NULL;
    t->n = 0;
    t->keys.len = 0;
    t->vals.len = 0;
    t->partition.len = 0;
}

static bool resolve_all(const exports_weft_grid_dispatcher_list_op_t *chain, step **steps, call_failure *e) {
    *steps = calloc(chain->len ? chain->len : 1, sizeof **steps);
    if (*steps == NULL) {
        weft_panic("out of memory");
    }
    for (size_t i = 0; i < chain->len; i++) {
        if (!resolve(&chain->ptr[i], &(*steps)[i], e)) {
            return false;
        }
    }
    return true;
}

/* Hand the result to the host: it frees it after the call. */
static void give(weft_val v, job_list_u8_t *ret) {
    ret->len = v.len;
    ret->ptr = NULL; /* empty: the post-return frees only a list that is not */
    if (v.len == 0) {
        return;
    }
    ret->ptr = malloc(v.len);
    if (ret->ptr == NULL) {
        weft_panic("out of memory: an output of %zu bytes", v.len);
    }
    memcpy(ret->ptr, v.ptr, v.len);
}

/* A call error's message (or a log line, or the job's error) is a WIT
 * string, UTF-8: a byte of a user's message that does not start a character
 * becomes U+FFFD. */
char *weft__utf8(char *s) {
    size_t n = strlen(s), len;
    bool valid = true;
    for (size_t i = 0; i < n && valid; i += len) {
        valid = (len = utf8_char((const uint8_t *)s + i, n - i)) != 0;
    }
    if (valid) {
        return s;
    }
    weft_out m = {0};
    for (size_t i = 0; i < n; i += len ? len : 1) {
        len = utf8_char((const uint8_t *)s + i, n - i);
        weft__bytes(&m, len ? s + i : "\xef\xbf\xbd", len ? len : 3);
    }
    weft__bytes(&m, "", 1);
    free(s);
    return (char *)m.buf;
}

static void to_error(call_failure *f, exports_weft_grid_dispatcher_call_error_t *err) {
    f->message = weft__utf8(f->message);
    err->tag = f->tag;
    err->val.user.ptr = (uint8_t *)f->message;
    err->val.user.len = strlen(f->message);
    weft__running = "main";
}

static bool has_partition_step(const step *steps, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (steps[i].partition) {
            return true;
        }
    }
    return false;
}

static bool has_holding_step(const step *steps, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (steps[i].partition || steps[i].op == WEFT_GRID_TYPES_OP_KIND_COMBINE) {
            return true;
        }
    }
    return false;
}

bool exports_weft_grid_dispatcher_run_chain(exports_weft_grid_dispatcher_list_op_t *chain, job_list_u8_t *input,
                                            job_list_u8_t *ret, exports_weft_grid_dispatcher_call_error_t *err) {
    step *steps;
    call_failure f;
    bool ok = resolve_all(chain, &steps, &f);
    held *t = NULL;
    if (ok && has_holding_step(steps, chain->len)) {
        t = held_for(chain, true);
        if (t == NULL) {
            ok = fail_call(&f, WEFT_GRID_TYPES_CALL_ERROR_USER,
                           weft__format("more than %d chains hold records at once in one instance", HELD_CHAINS));
        }
    }
    weft_val in = {input->ptr, input->len}, result;
    size_t stopped;
    if (ok) {
        ok = run_steps(steps, 0, chain->len, t, in, &result, &f, &stopped);
    }
    if (ok) {
        give(result, ret);
    } else {
        to_error(&f, err);
    }
    free(steps);
    job_list_u8_free(input); /* (an empty list's pointer is not malloc's) */
    exports_weft_grid_dispatcher_list_op_free(chain);
    weft__running = "main";
    return ok;
}

bool exports_weft_grid_dispatcher_flush_chain(exports_weft_grid_dispatcher_list_op_t *chain, job_list_u8_t *ret,
                                              exports_weft_grid_dispatcher_call_error_t *err) {
    step *steps;
    call_failure f;
    bool ok = resolve_all(chain, &steps, &f);
    /* A whole-partition step runs even when the task had no batch (an empty
     * partition), as Spark's mapPartitions does. */
    held *t = ok ? held_for(chain, has_partition_step(steps, chain->len)) : NULL;
    weft_val result = {0};
    weft_out last = {0};
    if (ok && t) {
        /* Each whole-partition step's function over what it holds, then the
         * steps after it, up to the next one (which holds that in turn). */
        size_t at = chain->len;
        for (size_t i = 0; i < chain->len; i++) {
            if (steps[i].partition) {
                at = i;
                break;
            }
        }
        while (ok && at < chain->len) {
            weft_val part = {t->partition.buf, t->partition.len};
            weft_out *out = &buffers[0];
            out->len = out->entries = 0;
            out->depth = 0;
            current_param = steps[at].param;
            ok = whole(&steps[at], part, out, &f);
            t->partition.len = 0;
            if (ok) {
                weft_val mid = {out->buf, out->len};
                ok = run_steps(steps, at + 1, chain->len, t, mid, &result, &f, &at);
            }
        }
        /* Then what a combine at the end holds. */
        if (ok && chain->len && steps[chain->len - 1].op == WEFT_GRID_TYPES_OP_KIND_COMBINE) {
            weft__bytes(&last, result.ptr, result.len);
            held_drain(t, steps[chain->len - 1].f, &last);
            result.ptr = last.buf;
            result.len = last.len;
        }
        release(t);
    }
    if (ok) {
        give(result, ret);
    } else {
        to_error(&f, err);
    }
    free(last.buf);
    free(steps);
    exports_weft_grid_dispatcher_list_op_free(chain);
    weft__running = "main";
    return ok;
}

void exports_weft_grid_dispatcher_functions(job_list_string_t *ret) {
    ret->len = registered;
    ret->ptr = calloc(registered ? registered : 1, sizeof *ret->ptr);
    for (size_t i = 0; i < registered; i++) {
        job_string_dup(&ret->ptr[i], registry[i].name);
    }
}
