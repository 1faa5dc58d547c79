/*
 * The dispatcher (src/dispatch.c), natively: chains built here are handed to
 * the exports `run-chain`, `flush-chain` and `functions` as the host hands
 * them (the chain, its names and the input malloc'd, the callee frees them;
 * what comes back freed as the bindings' post-return does), and what they
 * return is checked against plain C computations of it; then the call
 * errors of the record contract (docs/record-format.md, "The dispatcher").
 *
 * The functions are registered with the SDK's macros: their constructors
 * run before main, as in wasm. The WIT imports are stubs that record their
 * calls; the bindings' job.c is not compiled (its import adapters are
 * wasm-only), so the few helpers of it the dispatcher calls are below.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"
#include "job.h"

#define OP_MAP WEFT_GRID_TYPES_OP_KIND_MAP
#define OP_FILTER WEFT_GRID_TYPES_OP_KIND_FILTER
#define OP_FLAT_MAP WEFT_GRID_TYPES_OP_KIND_FLAT_MAP
#define OP_MAP_BATCH WEFT_GRID_TYPES_OP_KIND_MAP_BATCH
#define OP_REDUCE WEFT_GRID_TYPES_OP_KIND_REDUCE
#define OP_COMBINE WEFT_GRID_TYPES_OP_KIND_COMBINE

#define UNKNOWN_FUNCTION WEFT_GRID_TYPES_CALL_ERROR_UNKNOWN_FUNCTION
#define DECODE WEFT_GRID_TYPES_CALL_ERROR_DECODE
#define USER WEFT_GRID_TYPES_CALL_ERROR_USER

/* ---- Checks ----------------------------------------------------------------- */

static const char *test = "setup";
static size_t checks, failures;

static bool check(bool ok, int line, const char *format, ...) __attribute__((format(printf, 3, 4)));
static bool check(bool ok, int line, const char *format, ...) {
    checks++;
    if (!ok) {
        va_list ap;
        va_start(ap, format);
        printf("dispatch: FAIL %s (line %d): ", test, line);
        vprintf(format, ap);
        putchar('\n');
        va_end(ap);
        failures++;
    }
    return ok;
}
#define CHECK(ok, ...) check((ok), __LINE__, __VA_ARGS__)

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fputs("dispatch: out of memory\n", stderr);
        exit(2);
    }
    return p;
}

/* ---- Batches, written and read here without the SDK --------------------- */

typedef struct buf {
    uint8_t *p;
    size_t len, cap;
} buf;

static void raw(buf *b, const void *bytes, size_t n) {
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n) cap *= 2;
        b->p = realloc(b->p, cap);
        if (b->p == NULL) exit(2);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, bytes, n);
    b->len += n;
}

/* One entry: a u32 little-endian length, then the bytes. */
static void put(buf *b, const void *bytes, size_t n) {
    uint8_t len[4] = {(uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24)};
    raw(b, len, 4);
    raw(b, bytes, n);
}

static void put_str(buf *b, const char *s) { put(b, s, strlen(s)); }

/* An i64 record or key: big endian with the sign bit flipped. */
static void put_i64(buf *b, int64_t v) {
    uint64_t u = (uint64_t)v ^ (1ull << 63);
    uint8_t e[8];
    for (int i = 7; i >= 0; i--, u >>= 8) e[i] = (uint8_t)u;
    put(b, e, 8);
}

/* An f64 record: its IEEE bits, big endian, in totalOrder form (every bit
 * flipped when the sign bit is set, else the sign bit). */
static void put_f64(buf *b, double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    u = (u >> 63) ? ~u : u ^ (1ull << 63);
    uint8_t e[8];
    for (int i = 7; i >= 0; i--, u >>= 8) e[i] = (uint8_t)u;
    put(b, e, 8);
}

static int64_t i64_of(const uint8_t *p) {
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) u = u << 8 | p[i];
    return (int64_t)(u ^ (1ull << 63));
}

/* The next entry of a batch; false at its end (and *bad when it is cut). */
typedef struct cursor {
    const uint8_t *at, *end;
    bool bad;
} cursor;

static bool next(cursor *c, const uint8_t **p, size_t *n) {
    if (c->at == c->end) return false;
    if (c->end - c->at < 4) return c->bad = true, false;
    size_t len = (size_t)c->at[0] | (size_t)c->at[1] << 8 | (size_t)c->at[2] << 16 | (size_t)c->at[3] << 24;
    if ((size_t)(c->end - c->at - 4) < len) return c->bad = true, false;
    *p = c->at + 4;
    *n = len;
    c->at += 4 + len;
    return true;
}

/* A batch for messages: its entries as text or hex, the first few. */
static void show(const uint8_t *p, size_t len) {
    cursor c = {p, p ? p + len : p, false};
    const uint8_t *e;
    size_t n, count = 0;
    printf("[");
    while (next(&c, &e, &n)) {
        if (count++ == 12) {
            printf(" ...");
            continue;
        }
        if (count > 12) continue;
        bool text = true;
        for (size_t i = 0; i < n; i++) text = text && e[i] >= 0x20 && e[i] < 0x7f;
        if (text) {
            printf(" \"%.*s\"", (int)n, (const char *)e);
        } else {
            printf(" 0x");
            for (size_t i = 0; i < n && i < 16; i++) printf("%02x", e[i]);
            if (n > 16) printf("...");
        }
    }
    printf(" ]%s (%zu entries, %zu bytes)\n", c.bad ? " and a cut entry" : "", count, len);
}

/* ---- The host: the imports the dispatcher calls --------------------------- */

static int logs;
static char last_log[512];

void weft_grid_log_log(weft_grid_log_level_t level, job_string_t *message) {
    (void)level;
    logs++;
    snprintf(last_log, sizeof last_log, "%.*s", (int)message->len, (const char *)message->ptr);
}

/* The job's one broadcast value: id 7, "needle". */
#define PARAM_ID 7
#define PARAM "needle"
static int broadcast_gets;

bool weft_grid_broadcast_get(uint64_t id, job_list_u8_t *ret) {
    broadcast_gets++;
    if (id != PARAM_ID) {
        return false;
    }
    /* The guest's from now on, as a list the bindings allocate. */
    ret->len = strlen(PARAM);
    ret->ptr = xmalloc(ret->len);
    memcpy(ret->ptr, PARAM, ret->len);
    return true;
}

static int64_t accumulated;

void weft_grid_accumulators_add(job_string_t *name, int64_t delta) {
    (void)name;
    accumulated += delta;
}

void weft_grid_context_info(weft_grid_context_task_info_t *ret) { memset(ret, 0, sizeof *ret); }

/* ---- The bindings' helpers the dispatcher calls, as job.c has them -------- */

/* An empty string's or list's pointer is not malloc's: never freed. */
void job_string_free(job_string_t *s) {
    if (s->len > 0) free(s->ptr);
    s->ptr = NULL;
    s->len = 0;
}

void job_string_dup(job_string_t *ret, const char *s) {
    ret->len = strlen(s);
    ret->ptr = ret->len ? xmalloc(ret->len) : (uint8_t *)1; /* cabi_realloc's answer for 0 bytes */
    memcpy(ret->ptr, s, ret->len);
}

void job_list_u8_free(job_list_u8_t *list) {
    if (list->len > 0) free(list->ptr);
}

void exports_weft_grid_dispatcher_list_op_free(exports_weft_grid_dispatcher_list_op_t *list) {
    if (list->len > 0) {
        for (size_t i = 0; i < list->len; i++) job_string_free(&list->ptr[i].function);
        free(list->ptr);
    }
}

void job_list_string_free(job_list_string_t *list) {
    if (list->len > 0) {
        for (size_t i = 0; i < list->len; i++) job_string_free(&list->ptr[i]);
        free(list->ptr);
    }
}

/* ---- Calls, as the host makes them ------------------------------------------ */

typedef struct op {
    uint8_t kind;
    const char *fn;
    bool bound;
    uint64_t param;
} op;

#define CHAIN(...) ((const op[]){__VA_ARGS__}), sizeof((const op[]){__VA_ARGS__}) / sizeof(op)

/* The chain lowered into the guest: the list and each name malloc'd. */
static exports_weft_grid_dispatcher_list_op_t lower(const op *ops, size_t n) {
    exports_weft_grid_dispatcher_list_op_t chain = {n ? xmalloc(n * sizeof *chain.ptr) : NULL, n};
    for (size_t i = 0; i < n; i++) {
        exports_weft_grid_dispatcher_op_t *o = &chain.ptr[i];
        o->kind = ops[i].kind;
        o->function.len = strlen(ops[i].fn);
        o->function.ptr = o->function.len ? xmalloc(o->function.len) : (uint8_t *)1;
        memcpy(o->function.ptr, ops[i].fn, o->function.len);
        o->param.is_some = ops[i].bound;
        o->param.val = ops[i].param;
    }
    return chain;
}

/* What a call returned, copied out; the original is freed as the bindings'
 * post-return frees it (a list or string only when it is not empty). */
typedef struct result {
    bool ok;
    uint8_t tag;
    uint8_t *out;
    size_t len;
    char *message; /* NUL-terminated */
} result;

static result taken(bool ok, job_list_u8_t *ret, exports_weft_grid_dispatcher_call_error_t *err) {
    result r = {ok, 0, NULL, 0, NULL};
    if (ok) {
        r.len = ret->len;
        r.out = xmalloc(ret->len);
        if (ret->len > 0) {
            memcpy(r.out, ret->ptr, ret->len);
            free(ret->ptr);
        }
    } else {
        job_string_t *m = &err->val.user; /* every case is a string */
        r.tag = err->tag;
        r.message = xmalloc(m->len + 1);
        memcpy(r.message, m->ptr, m->len);
        r.message[m->len] = 0;
        r.len = m->len;
        if (m->len > 0) free(m->ptr);
    }
    return r;
}

static result run(const op *ops, size_t n, const buf *input) {
    exports_weft_grid_dispatcher_list_op_t chain = lower(ops, n);
    job_list_u8_t in = {NULL, input ? input->len : 0}, ret = {NULL, 0};
    if (in.len) {
        in.ptr = xmalloc(in.len);
        memcpy(in.ptr, input->p, in.len);
    } else {
        in.ptr = (uint8_t *)1; /* an empty list: not malloc's */
    }
    exports_weft_grid_dispatcher_call_error_t err;
    memset(&err, 0, sizeof err);
    bool ok = exports_weft_grid_dispatcher_run_chain(&chain, &in, &ret, &err);
    return taken(ok, &ret, &err);
}

static result flush(const op *ops, size_t n) {
    exports_weft_grid_dispatcher_list_op_t chain = lower(ops, n);
    job_list_u8_t ret = {NULL, 0};
    exports_weft_grid_dispatcher_call_error_t err;
    memset(&err, 0, sizeof err);
    bool ok = exports_weft_grid_dispatcher_flush_chain(&chain, &ret, &err);
    return taken(ok, &ret, &err);
}

static void result_free(result *r) {
    free(r->out);
    free(r->message);
}

static const char *tag_name(uint8_t tag) {
    return tag == UNKNOWN_FUNCTION ? "unknown-function" : tag == DECODE ? "decode" : tag == USER ? "user" : "?";
}

/* That a call succeeded with exactly the batch `want` (NULL: empty). */
static bool returned(const result *r, const buf *want, int line) {
    size_t n = want ? want->len : 0;
    if (!r->ok) {
        return check(false, line, "failed (%s): %s", tag_name(r->tag), r->message);
    }
    if (r->len == n && (n == 0 || memcmp(r->out, want->p, n) == 0)) {
        return check(true, line, "ok");
    }
    check(false, line, "returned another batch");
    printf("  got  ");
    show(r->out, r->len);
    printf("  want ");
    show(want ? want->p : NULL, n);
    return false;
}
#define RETURNED(r, want) returned(&(r), (want), __LINE__)

/* Whether UTF-8 text is valid (a WIT string must be). */
static bool utf8(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        size_t len = c < 0x80 ? 1 : c < 0xc2 ? 0 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : c < 0xf5 ? 4 : 0;
        if (len == 0 || n - i < len) return false;
        uint32_t cp = len == 1 ? c : c & (0x7f >> len);
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        bool overlong = (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
        if (overlong || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
            return false;
        }
        i += len;
    }
    return true;
}

/* That a call failed with `tag` and a message (valid UTF-8, as the WIT
 * string it is) holding each of the NULL-terminated strings after it. */
static bool failed(const result *r, uint8_t tag, int line, ...) {
    if (r->ok) {
        return check(false, line, "succeeded; want a %s error", tag_name(tag));
    }
    bool ok = check(r->tag == tag, line, "failed with a %s error, want %s: %s", tag_name(r->tag), tag_name(tag),
                    r->message);
    ok &= check(utf8((const uint8_t *)r->message, r->len), line, "the error message is not UTF-8: %s", r->message);
    va_list ap;
    va_start(ap, line);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;) {
        ok &= check(strstr(r->message, s) != NULL, line, "the message does not say `%s`: %s", s, r->message);
    }
    va_end(ap);
    return ok;
}
#define FAILED(r, tag, ...) failed(&(r), (tag), __LINE__, __VA_ARGS__, (const char *)NULL)

/* ---- The job's functions ----------------------------------------------------- */

/* The record in upper case. */
static int upper(weft_rec in, weft_out *out) {
    weft_open(out);
    for (size_t i = 0; i < in.val.len; i++) {
        char c = (char)toupper(in.val.ptr[i]);
        weft_append(out, &c, 1);
    }
    weft_close(out);
    return 0;
}
WEFT_MAP(upper, RECORD, RECORD);

static int exclaim(weft_rec in, weft_out *out) {
    weft_printf(out, "%.*s!", WEFT_STR(in.val));
    return 0;
}
WEFT_MAP(exclaim, RECORD, RECORD);

static int long_word(weft_rec in) { return in.val.len > 3; }
WEFT_FILTER(long_word, RECORD);

/* Each word of a line (split at spaces) as the pair (word, i64 1). */
static int words(weft_rec in, weft_out *out) {
    const uint8_t *p = in.val.ptr, *end = p + in.val.len;
    while (p < end) {
        while (p < end && *p == ' ') p++;
        const uint8_t *word = p;
        while (p < end && *p != ' ') p++;
        if (p > word) {
            weft_put(out, word, (size_t)(p - word));
            weft_put_i64(out, 1);
        }
    }
    return 0;
}
WEFT_FLAT_MAP(words, RECORD, PAIR);

/* "key=value" as the pair (key, value). */
static int keyed(weft_rec in, weft_out *out) {
    const uint8_t *eq = memchr(in.val.ptr, '=', in.val.len);
    if (eq == NULL) {
        return weft_fail("no `=`");
    }
    weft_put(out, in.val.ptr, (size_t)(eq - in.val.ptr));
    weft_put(out, eq + 1, in.val.len - (size_t)(eq + 1 - in.val.ptr));
    return 0;
}
WEFT_MAP(keyed, RECORD, PAIR);

static int64_t add(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
WEFT_REDUCE_I64(add);

static double largest(double a, double b) { return b > a ? b : a; }
WEFT_REDUCE_F64(largest);

/* Two values as "a+b": a generic reduce whose value grows. */
static int joined(weft_val a, weft_val b, weft_out *out) {
    weft_open(out);
    weft_append(out, a.ptr, a.len);
    weft_append(out, "+", 1);
    weft_append(out, b.ptr, b.len);
    weft_close(out);
    return 0;
}
WEFT_REDUCE(joined);

/* The shorter value (the first on a tie): one that shrinks. */
static int shortest(weft_val a, weft_val b, weft_out *out) {
    weft_put_val(out, b.len < a.len ? b : a);
    return 0;
}
WEFT_REDUCE(shortest);

/* A whole partition: each record as "i/n record". */
static int numbered_calls;
static int numbered(weft_val in, weft_out *out) {
    numbered_calls++;
    weft_reader r = weft_read(in);
    weft_val e;
    size_t n = 0, i = 0;
    while (weft_next(&r, &e)) n++;
    r = weft_read(in);
    while (weft_next(&r, &e)) weft_printf(out, "%zu/%zu %.*s", i++, n, WEFT_STR(e));
    return 0;
}
WEFT_MAP_PARTITIONS(numbered, RECORD, RECORD);

/* A map_partitions making pairs that writes one entry too many. */
static int odd_pairs(weft_val in, weft_out *out) {
    (void)in;
    weft_put_str(out, "key");
    weft_put_i64(out, 1);
    weft_put_str(out, "a key without its value");
    return 0;
}
WEFT_MAP_PARTITIONS(odd_pairs, RECORD, PAIR);

/* A reduce that opens an entry and never closes it. */
static int left_open(weft_val a, weft_val b, weft_out *out) {
    (void)b;
    weft_put_val(out, a);
    weft_open(out);
    return 0;
}
WEFT_REDUCE(left_open);

/* One name registered by two functions, as two static functions of one name
 * in two files would be. */
static int upper_twice(weft_rec in, weft_out *out) { return upper(in, out); }
WEFT_MAP(upper_twice, RECORD, RECORD);
__attribute__((constructor)) static void register_again(void) {
    weft_register("upper_twice", WEFT__MAP, WEFT_RECORD, WEFT_RECORD, (void (*)(void))upper);
}

/* The bound parameter, then the record. */
static int tagged(weft_rec in, weft_out *out) {
    weft_val p = weft_param();
    weft_printf(out, "%.*s:%.*s", WEFT_STR(p), WEFT_STR(in.val));
    return 0;
}
WEFT_MAP(tagged, RECORD, RECORD);

/* Records holding the bound parameter. */
static int has_param(weft_rec in) { return weft_contains(in.val, weft_param()); }
WEFT_FILTER(has_param, RECORD);

/* Counts its records in an accumulator, passing them on. */
static int counted(weft_rec in) {
    (void)in;
    weft_accumulate("records", 1);
    return 1;
}
WEFT_FILTER(counted, RECORD);

/* Failures: weft_fail on all but "ok"; -1 without a message; two records
 * from a map; an entry left open; three entries as pairs; a reduce writing
 * two values. */
static int picky(weft_rec in, weft_out *out) {
    if (!weft_eq(in.val, "ok")) {
        return weft_fail("not ok, %zu bytes", in.val.len);
    }
    weft_put_val(out, in.val);
    return 0;
}
WEFT_MAP(picky, RECORD, RECORD);

/* A failure whose message quotes the record, whatever its bytes. */
static int quoting(weft_rec in, weft_out *out) {
    (void)out;
    return weft_fail("cannot take %.*s", WEFT_STR(in.val));
}
WEFT_MAP(quoting, RECORD, RECORD);

static int refuse(weft_rec in) { return weft_eq(in.val, "no") ? -1 : 1; }
WEFT_FILTER(refuse, RECORD);

static int twice(weft_rec in, weft_out *out) {
    weft_put_val(out, in.val);
    weft_put_val(out, in.val);
    return 0;
}
WEFT_MAP(twice, RECORD, RECORD);

static int unclosed(weft_rec in, weft_out *out) {
    weft_open(out);
    weft_append(out, in.val.ptr, in.val.len);
    return 0;
}
WEFT_MAP(unclosed, RECORD, RECORD);

static int three(weft_rec in, weft_out *out) {
    weft_put_val(out, in.val);
    weft_put_i64(out, 1);
    weft_put_val(out, in.val);
    return 0;
}
WEFT_FLAT_MAP(three, RECORD, PAIR);

static int both(weft_val a, weft_val b, weft_out *out) {
    weft_put_val(out, a);
    weft_put_val(out, b);
    return 0;
}
WEFT_REDUCE(both);

/* ---- Plain C: what the chains must return --------------------------------- */

static const char *const lines[] = {
    "the quick brown fox", "jumps over the lazy dog", "", "  the  end  ", "fox and dog and the fox", "a",
};
#define LINES (sizeof lines / sizeof lines[0])

static buf records(const char *const *s, size_t n) {
    buf b = {0};
    for (size_t i = 0; i < n; i++) put_str(&b, s[i]);
    return b;
}

/* Words in the order they first appear, with their counts. */
typedef struct tally {
    const char *word[64];
    size_t len[64];
    int64_t count[64];
    size_t n;
} tally;

static void count_words(tally *t, const char *line) {
    const char *p = line;
    while (*p) {
        while (*p == ' ') p++;
        const char *w = p;
        while (*p && *p != ' ') p++;
        if (p == w) continue;
        size_t i = 0;
        while (i < t->n && !(t->len[i] == (size_t)(p - w) && memcmp(t->word[i], w, t->len[i]) == 0)) i++;
        if (i == t->n) {
            t->word[i] = w;
            t->len[i] = (size_t)(p - w);
            t->count[i] = 0;
            t->n++;
        }
        t->count[i]++;
    }
}

/* ---- Tests ----------------------------------------------------------------- */

static void test_functions(void) {
    test = "functions";
    static const char *const mine[] = {"upper",    "exclaim", "long_word", "words",  "keyed",    "add",
                                       "joined",   "shortest", "numbered", "tagged", "has_param", "counted",
                                       "picky",    "quoting", "refuse",    "twice",  "unclosed", "three",
                                       "both",     "largest", "odd_pairs", "left_open", "upper_twice"};
    job_list_string_t names;
    exports_weft_grid_dispatcher_functions(&names);
    CHECK(names.len == sizeof mine / sizeof mine[0], "%zu functions listed, %zu registered", names.len,
          sizeof mine / sizeof mine[0]);
    for (size_t i = 0; i < sizeof mine / sizeof mine[0]; i++) {
        size_t seen = 0;
        for (size_t k = 0; k < names.len; k++) {
            seen += names.ptr[k].len == strlen(mine[i]) && memcmp(names.ptr[k].ptr, mine[i], names.ptr[k].len) == 0;
        }
        CHECK(seen == 1, "`%s` listed %zu times", mine[i], seen);
    }
    for (size_t k = 0; k < names.len; k++) {
        CHECK(names.ptr[k].len < 6 || memcmp(names.ptr[k].ptr, "_weft.", 6) != 0, "the SDK's own step `%.*s` is listed",
              (int)names.ptr[k].len, (const char *)names.ptr[k].ptr);
    }
    job_list_string_free(&names);
}

static void test_elements(void) {
    buf in = records(lines, LINES), want = {0};
    char s[128];

    test = "map";
    for (size_t i = 0; i < LINES; i++) {
        size_t n = strlen(lines[i]);
        for (size_t k = 0; k < n; k++) s[k] = (char)toupper((unsigned char)lines[i][k]);
        put(&want, s, n);
    }
    result r = run(CHAIN({OP_MAP, "upper", false, 0}), &in);
    RETURNED(r, &want);
    result_free(&r);

    test = "two maps";
    want.len = 0;
    for (size_t i = 0; i < LINES; i++) {
        size_t n = strlen(lines[i]);
        for (size_t k = 0; k < n; k++) s[k] = (char)toupper((unsigned char)lines[i][k]);
        s[n] = '!';
        put(&want, s, n + 1);
    }
    r = run(CHAIN({OP_MAP, "upper", false, 0}, {OP_MAP, "exclaim", false, 0}), &in);
    RETURNED(r, &want);
    result_free(&r);

    test = "filter";
    want.len = 0;
    for (size_t i = 0; i < LINES; i++) {
        if (strlen(lines[i]) > 3) put_str(&want, lines[i]);
    }
    r = run(CHAIN({OP_FILTER, "long_word", false, 0}), &in);
    RETURNED(r, &want);
    result_free(&r);

    test = "map, filter, map";
    want.len = 0;
    for (size_t i = 0; i < LINES; i++) {
        size_t n = strlen(lines[i]);
        if (n <= 3) continue;
        for (size_t k = 0; k < n; k++) s[k] = (char)toupper((unsigned char)lines[i][k]);
        s[n] = '!';
        put(&want, s, n + 1);
    }
    r = run(CHAIN({OP_MAP, "upper", false, 0}, {OP_FILTER, "long_word", false, 0}, {OP_MAP, "exclaim", false, 0}), &in);
    RETURNED(r, &want);
    result_free(&r);

    test = "flat_map to pairs";
    want.len = 0;
    for (size_t i = 0; i < LINES; i++) {
        const char *p = lines[i];
        while (*p) {
            while (*p == ' ') p++;
            const char *w = p;
            while (*p && *p != ' ') p++;
            if (p > w) {
                put(&want, w, (size_t)(p - w));
                put_i64(&want, 1);
            }
        }
    }
    r = run(CHAIN({OP_FLAT_MAP, "words", false, 0}), &in);
    RETURNED(r, &want);
    result_free(&r);

    test = "the SDK's own steps";
    buf pairs = want, values = {0}, keys = {0};
    cursor c = {pairs.p, pairs.p + pairs.len, false};
    const uint8_t *k, *v;
    size_t kn, vn;
    while (next(&c, &k, &kn) && next(&c, &v, &vn)) {
        put(&keys, k, kn);
        put(&values, v, vn);
    }
    r = run(CHAIN({OP_MAP, "_weft.keys", false, 0}), &pairs);
    RETURNED(r, &keys);
    result_free(&r);
    r = run(CHAIN({OP_MAP, "_weft.values", false, 0}), &pairs);
    RETURNED(r, &values);
    result_free(&r);

    test = "an empty chain, an empty batch";
    r = run(NULL, 0, &in);
    RETURNED(r, &in);
    result_free(&r);
    r = run(CHAIN({OP_MAP, "upper", false, 0}, {OP_FLAT_MAP, "words", false, 0}), NULL);
    RETURNED(r, NULL);
    result_free(&r);

    test = "an accumulator";
    accumulated = 0;
    r = run(CHAIN({OP_FILTER, "counted", false, 0}), &in);
    RETURNED(r, &in);
    CHECK(accumulated == (int64_t)LINES, "accumulated %lld, want %zu", (long long)accumulated, LINES);
    result_free(&r);

    free(in.p);
    free(want.p);
    free(keys.p);
    free(values.p);
}

static void test_combine(void) {
    test = "flat_map then combine (i64)";
    /* The lines in three batches; the combine holds what it folds. */
    tally t = {0};
    for (size_t i = 0; i < LINES; i++) count_words(&t, lines[i]);
    for (size_t from = 0; from < LINES; from += 2) {
        buf in = records(lines + from, from + 2 <= LINES ? 2 : LINES - from);
        result r = run(CHAIN({OP_FLAT_MAP, "words", false, 0}, {OP_COMBINE, "add", false, 0}), &in);
        RETURNED(r, NULL); /* nothing before the flush */
        result_free(&r);
        free(in.p);
    }
    buf want = {0};
    for (size_t i = 0; i < t.n; i++) {
        put(&want, t.word[i], t.len[i]);
        put_i64(&want, t.count[i]);
    }
    result r = flush(CHAIN({OP_FLAT_MAP, "words", false, 0}, {OP_COMBINE, "add", false, 0}));
    RETURNED(r, &want);
    result_free(&r);
    /* Flushed is forgotten. */
    r = flush(CHAIN({OP_FLAT_MAP, "words", false, 0}, {OP_COMBINE, "add", false, 0}));
    RETURNED(r, NULL);
    result_free(&r);

    test = "combine (generic)";
    /* A combine alone over batches of pairs, and fed by a map: the values of
     * each key joined in the order they came, keys as they first appeared. */
    static const char *const kv[] = {"b=1", "a=22", "b=333", "c=4", "a=5", "b=6"};
    buf in = {0}, pairs = {0};
    for (size_t i = 0; i < 6; i++) {
        put_str(&in, kv[i]);
        put(&pairs, kv[i], 1);
        put_str(&pairs, kv[i] + 2);
    }
    want.len = 0;
    put_str(&want, "b");
    put_str(&want, "1+333+6+1+333+6");
    put_str(&want, "a");
    put_str(&want, "22+5+22+5");
    put_str(&want, "c");
    put_str(&want, "4+4");
    for (int call = 0; call < 2; call++) {
        r = run(CHAIN({OP_COMBINE, "joined", false, 0}), &pairs);
        RETURNED(r, NULL);
        result_free(&r);
        r = run(CHAIN({OP_MAP, "keyed", false, 0}, {OP_COMBINE, "joined", false, 0}), &in);
        RETURNED(r, NULL);
        result_free(&r);
    }
    r = flush(CHAIN({OP_COMBINE, "joined", false, 0}));
    RETURNED(r, &want);
    result_free(&r);
    r = flush(CHAIN({OP_MAP, "keyed", false, 0}, {OP_COMBINE, "joined", false, 0}));
    RETURNED(r, &want);
    result_free(&r);

    /* A value that shrinks, in place. */
    want.len = 0;
    put_str(&want, "b");
    put_str(&want, "1");
    put_str(&want, "a");
    put_str(&want, "5");
    put_str(&want, "c");
    put_str(&want, "4");
    r = run(CHAIN({OP_COMBINE, "shortest", false, 0}), &pairs);
    RETURNED(r, NULL);
    result_free(&r);
    r = flush(CHAIN({OP_COMBINE, "shortest", false, 0}));
    RETURNED(r, &want);
    result_free(&r);

    test = "combine (f64)";
    static const struct { const char *key; double v; } floats[] = {
        {"x", -0.5}, {"y", 1e300}, {"x", 2.5}, {"x", -1e-300}, {"y", -2.0}, {"z", -0.0},
    };
    buf fpairs = {0};
    for (size_t i = 0; i < 6; i++) {
        put_str(&fpairs, floats[i].key);
        put_f64(&fpairs, floats[i].v);
    }
    want.len = 0;
    put_str(&want, "x");
    put_f64(&want, 2.5);
    put_str(&want, "y");
    put_f64(&want, 1e300);
    put_str(&want, "z");
    put_f64(&want, -0.0);
    r = run(CHAIN({OP_COMBINE, "largest", false, 0}), &fpairs);
    RETURNED(r, NULL);
    result_free(&r);
    r = flush(CHAIN({OP_COMBINE, "largest", false, 0}));
    RETURNED(r, &want);
    result_free(&r);
    free(fpairs.p);

    test = "count_by_value, distinct (the SDK's own steps)";
    static const char *const vals[] = {"x", "y", "x", "", "z", "x", ""};
    buf recs = records(vals, 7);
    want.len = 0;
    put_str(&want, "x");
    put_i64(&want, 3);
    put_str(&want, "y");
    put_i64(&want, 1);
    put_str(&want, "");
    put_i64(&want, 2);
    put_str(&want, "z");
    put_i64(&want, 1);
    r = run(CHAIN({OP_MAP, "_weft.one", false, 0}, {OP_COMBINE, "_weft.add", false, 0}), &recs);
    RETURNED(r, NULL);
    result_free(&r);
    r = flush(CHAIN({OP_MAP, "_weft.one", false, 0}, {OP_COMBINE, "_weft.add", false, 0}));
    RETURNED(r, &want);
    result_free(&r);
    want.len = 0;
    put_str(&want, "x");
    put_str(&want, "");
    put_str(&want, "y");
    put_str(&want, "");
    put_str(&want, "");
    put_str(&want, "");
    put_str(&want, "z");
    put_str(&want, "");
    r = run(CHAIN({OP_MAP, "_weft.unit", false, 0}, {OP_COMBINE, "_weft.keep", false, 0}), &recs);
    RETURNED(r, NULL);
    result_free(&r);
    r = flush(CHAIN({OP_MAP, "_weft.unit", false, 0}, {OP_COMBINE, "_weft.keep", false, 0}));
    RETURNED(r, &want);
    result_free(&r);

    free(in.p);
    free(pairs.p);
    free(recs.p);
    free(want.p);
}

/* More keys than a combine holds: it hands back what it held during the
 * call; with the flush, every key's counts add up. */
static void test_combine_many_keys(void) {
    test = "combine over more keys than it holds";
    enum { KEYS = (1 << 18) + 5 };
    buf in = {0};
    char s[16];
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < KEYS; i++) put(&in, s, (size_t)snprintf(s, sizeof s, "k%07d", i));
    }
    int64_t *counts = calloc(KEYS, sizeof *counts);
    size_t handed = 0;
    bool bad = false;
    for (int call = 0; call < 2; call++) {
        result r = call == 0 ? run(CHAIN({OP_MAP, "_weft.one", false, 0}, {OP_COMBINE, "_weft.add", false, 0}), &in)
                             : flush(CHAIN({OP_MAP, "_weft.one", false, 0}, {OP_COMBINE, "_weft.add", false, 0}));
        if (CHECK(r.ok, "call %d failed: %s", call, r.message)) {
            if (call == 0) CHECK(r.len > 0, "nothing handed back from %d keys", KEYS);
            cursor c = {r.out, r.out + r.len, false};
            const uint8_t *k, *v;
            size_t kn, vn;
            while (next(&c, &k, &kn)) {
                int i = 0;
                bad |= !next(&c, &v, &vn) || vn != 8 || kn != 8 || k[0] != 'k';
                for (size_t d = 1; !bad && d < 8; d++) {
                    bad |= !isdigit(k[d]);
                    i = i * 10 + (k[d] - '0');
                }
                if (bad || i >= KEYS) {
                    bad = true;
                    break;
                }
                counts[i] += i64_of(v);
                handed++;
            }
            bad |= c.bad;
        }
        result_free(&r);
    }
    CHECK(!bad, "a malformed pair handed back");
    size_t wrong = 0;
    for (int i = 0; i < KEYS; i++) wrong += counts[i] != 2;
    CHECK(wrong == 0, "%zu of %d keys do not count 2 (%zu pairs handed back)", wrong, KEYS, handed);
    free(counts);
    free(in.p);
}

static void test_reduce(void) {
    test = "reduce over sorted pairs";
    buf in = {0}, want = {0};
    static const struct { const char *key; int64_t v; } sorted[] = {
        {"a", 1}, {"a", 2}, {"b", 5}, {"c", 1}, {"c", 1}, {"c", -3}, {"d", 9},
    };
    for (size_t i = 0; i < 7; i++) {
        put_str(&in, sorted[i].key);
        put_i64(&in, sorted[i].v);
    }
    put_str(&want, "a");
    put_i64(&want, 3);
    put_str(&want, "b");
    put_i64(&want, 5);
    put_str(&want, "c");
    put_i64(&want, -1);
    put_str(&want, "d");
    put_i64(&want, 9);
    result r = run(CHAIN({OP_REDUCE, "add", false, 0}), &in);
    RETURNED(r, &want);
    result_free(&r);

    test = "reduce (generic) over sorted pairs";
    in.len = want.len = 0;
    static const char *const kv[][2] = {
        {"", "e"}, {"a", "1"}, {"a", "22"}, {"a", "3"}, {"b", "4"}, {"c", "5"}, {"c", "6"},
    };
    for (size_t i = 0; i < 7; i++) {
        put_str(&in, kv[i][0]);
        put_str(&in, kv[i][1]);
    }
    static const char *const folded[][2] = {{"", "e"}, {"a", "1+22+3"}, {"b", "4"}, {"c", "5+6"}};
    for (size_t i = 0; i < 4; i++) {
        put_str(&want, folded[i][0]);
        put_str(&want, folded[i][1]);
    }
    r = run(CHAIN({OP_REDUCE, "joined", false, 0}), &in);
    RETURNED(r, &want);
    result_free(&r);
    /* And then a map of the SDK's own. */
    buf keys = {0};
    for (size_t i = 0; i < 4; i++) put_str(&keys, folded[i][0]);
    r = run(CHAIN({OP_REDUCE, "joined", false, 0}, {OP_MAP, "_weft.keys", false, 0}), &in);
    RETURNED(r, &keys);
    result_free(&r);
    r = run(CHAIN({OP_REDUCE, "add", false, 0}), NULL);
    RETURNED(r, NULL);
    result_free(&r);

    test = "reduce (f64) over sorted pairs";
    in.len = want.len = 0;
    static const struct { const char *key; double v; } floats[] = {{"a", -3.0}, {"a", -7.5}, {"b", 0.0}, {"b", 4.25}};
    for (size_t i = 0; i < 4; i++) {
        put_str(&in, floats[i].key);
        put_f64(&in, floats[i].v);
    }
    put_str(&want, "a");
    put_f64(&want, -3.0);
    put_str(&want, "b");
    put_f64(&want, 4.25);
    r = run(CHAIN({OP_REDUCE, "largest", false, 0}), &in);
    RETURNED(r, &want);
    result_free(&r);

    free(in.p);
    free(want.p);
    free(keys.p);
}

static void test_partition(void) {
    test = "map_partitions of an empty partition";
    /* A task with no batch: the function still runs, once, on nothing. */
    numbered_calls = 0;
    result r = flush(CHAIN({OP_MAP_BATCH, "weft:partition:numbered", false, 0}));
    RETURNED(r, NULL);
    CHECK(numbered_calls == 1, "numbered ran %d times, want once", numbered_calls);
    result_free(&r);

    test = "map_partitions, then a map";
    /* Two batches held; the function applied once, to both, at the flush. */
    buf a = records(lines, 3), b = records(lines + 3, LINES - 3), want = {0};
    numbered_calls = 0;
    r = run(CHAIN({OP_MAP_BATCH, "weft:partition:numbered", false, 0}, {OP_MAP, "upper", false, 0}), &a);
    RETURNED(r, NULL);
    result_free(&r);
    r = run(CHAIN({OP_MAP_BATCH, "weft:partition:numbered", false, 0}, {OP_MAP, "upper", false, 0}), &b);
    RETURNED(r, NULL);
    result_free(&r);
    CHECK(numbered_calls == 0, "numbered ran %d times before the flush", numbered_calls);
    for (size_t i = 0; i < LINES; i++) {
        char s[128];
        int n = snprintf(s, sizeof s, "%zu/%zu %s", i, LINES, lines[i]);
        for (int k = 0; k < n; k++) s[k] = (char)toupper((unsigned char)s[k]);
        put(&want, s, (size_t)n);
    }
    r = flush(CHAIN({OP_MAP_BATCH, "weft:partition:numbered", false, 0}, {OP_MAP, "upper", false, 0}));
    RETURNED(r, &want);
    CHECK(numbered_calls == 1, "numbered ran %d times, want once", numbered_calls);
    result_free(&r);

    test = "map_partitions, then a combine";
    numbered_calls = 0;
    want.len = 0;
    for (size_t i = 0; i < LINES; i++) {
        char s[128];
        put(&want, s, (size_t)snprintf(s, sizeof s, "%zu/%zu %s", i, LINES, lines[i]));
        put_i64(&want, 1);
    }
    r = run(CHAIN({OP_MAP_BATCH, "weft:partition:numbered", false, 0}, {OP_MAP, "_weft.one", false, 0},
                  {OP_COMBINE, "_weft.add", false, 0}),
            &a);
    RETURNED(r, NULL);
    result_free(&r);
    r = run(CHAIN({OP_MAP_BATCH, "weft:partition:numbered", false, 0}, {OP_MAP, "_weft.one", false, 0},
                  {OP_COMBINE, "_weft.add", false, 0}),
            &b);
    RETURNED(r, NULL);
    result_free(&r);
    r = flush(CHAIN({OP_MAP_BATCH, "weft:partition:numbered", false, 0}, {OP_MAP, "_weft.one", false, 0},
                    {OP_COMBINE, "_weft.add", false, 0}));
    RETURNED(r, &want);
    CHECK(numbered_calls == 1, "numbered ran %d times, want once", numbered_calls);
    result_free(&r);

    test = "two map_partitions in one chain";
    /* The second holds what the first made and applies to all of it. */
    numbered_calls = 0;
    want.len = 0;
    for (size_t i = 0; i < LINES; i++) {
        char s[128];
        put(&want, s, (size_t)snprintf(s, sizeof s, "%zu/%zu %zu/%zu %s", i, LINES, i, LINES, lines[i]));
    }
    r = run(CHAIN({OP_MAP_BATCH, "weft:partition:numbered", false, 0},
                  {OP_MAP_BATCH, "weft:partition:numbered", false, 0}),
            &a);
    RETURNED(r, NULL);
    result_free(&r);
    r = run(CHAIN({OP_MAP_BATCH, "weft:partition:numbered", false, 0},
                  {OP_MAP_BATCH, "weft:partition:numbered", false, 0}),
            &b);
    RETURNED(r, NULL);
    result_free(&r);
    r = flush(CHAIN({OP_MAP_BATCH, "weft:partition:numbered", false, 0},
                    {OP_MAP_BATCH, "weft:partition:numbered", false, 0}));
    RETURNED(r, &want);
    CHECK(numbered_calls == 2, "numbered ran %d times, want twice", numbered_calls);
    result_free(&r);

    test = "map_partitions making pairs writes whole pairs";
    r = run(CHAIN({OP_MAP_BATCH, "odd_pairs", false, 0}), &a);
    FAILED(r, USER, "odd_pairs", "a pair is two");
    result_free(&r);

    free(a.p);
    free(b.p);
    free(want.p);
}

static void test_param(void) {
    test = "a bound parameter";
    static const char *const hay[] = {"a needle here", "none", "needles"};
    buf in = records(hay, 3), want = {0};
    char s[64];
    for (size_t i = 0; i < 3; i++) put(&want, s, (size_t)snprintf(s, sizeof s, "%s:%s", PARAM, hay[i]));
    int gets = broadcast_gets;
    for (int call = 0; call < 2; call++) {
        result r = run(CHAIN({OP_MAP, "tagged", true, PARAM_ID}), &in);
        RETURNED(r, &want);
        result_free(&r);
    }
    CHECK(broadcast_gets - gets == 1, "broadcast.get called %d times for two calls, want once", broadcast_gets - gets);

    want.len = 0;
    put_str(&want, hay[0]);
    put_str(&want, hay[2]);
    result r = run(CHAIN({OP_FILTER, "has_param", true, PARAM_ID}), &in);
    RETURNED(r, &want);
    result_free(&r);

    test = "no bound parameter";
    /* A bound step, then steps without: theirs is empty. */
    r = run(CHAIN({OP_MAP, "tagged", true, PARAM_ID}, {OP_MAP, "upper", false, 0}, {OP_MAP, "tagged", false, 0}), &in);
    buf upper_want = {0};
    for (size_t i = 0; i < 3; i++) {
        int n = snprintf(s, sizeof s, ":%s:%s", PARAM, hay[i]);
        for (int k = 1; k < n; k++) s[k] = (char)toupper((unsigned char)s[k]);
        put(&upper_want, s, (size_t)n);
    }
    RETURNED(r, &upper_want);
    result_free(&r);

    test = "a parameter the job does not have";
    r = run(CHAIN({OP_MAP, "tagged", true, 99}), &in);
    FAILED(r, DECODE, "tagged", "99");
    result_free(&r);

    free(in.p);
    free(want.p);
    free(upper_want.p);
}

static void test_errors(void) {
    buf in = {0};
    put_str(&in, "ok");
    put_str(&in, "bad");

    test = "an unknown function";
    result r = run(CHAIN({OP_MAP, "upper", false, 0}, {OP_MAP, "nosuch", false, 0}), &in);
    FAILED(r, UNKNOWN_FUNCTION, "nosuch");
    result_free(&r);
    r = run(CHAIN({OP_MAP_BATCH, "weft:partition:nosuch", false, 0}), &in);
    FAILED(r, UNKNOWN_FUNCTION, "nosuch");
    result_free(&r);
    r = flush(CHAIN({OP_COMBINE, "nosuch", false, 0}));
    FAILED(r, UNKNOWN_FUNCTION, "nosuch");
    result_free(&r);

    test = "a function of another kind";
    r = run(CHAIN({OP_MAP, "long_word", false, 0}), &in);
    FAILED(r, USER, "long_word", "filter");
    result_free(&r);
    r = run(CHAIN({OP_COMBINE, "upper", false, 0}), &in);
    FAILED(r, USER, "upper", "map");
    result_free(&r);

    test = "weft_fail in a map";
    r = run(CHAIN({OP_MAP, "picky", false, 0}), &in);
    FAILED(r, USER, "picky", "not ok, 3 bytes", "\"bad\"");
    result_free(&r);
    /* The failure is the call's: the next call starts clean. */
    buf ok = {0};
    put_str(&ok, "ok");
    r = run(CHAIN({OP_MAP, "picky", false, 0}), &ok);
    RETURNED(r, &ok);
    result_free(&r);

    test = "a filter's error without a message";
    buf no = {0};
    put_str(&no, "yes");
    put_str(&no, "no");
    r = run(CHAIN({OP_FILTER, "refuse", false, 0}), &no);
    FAILED(r, USER, "refuse", "\"no\"");
    result_free(&r);

    test = "a map writing two records";
    r = run(CHAIN({OP_MAP, "twice", false, 0}), &in);
    FAILED(r, USER, "twice", "2 entries");
    result_free(&r);

    test = "an entry left open";
    r = run(CHAIN({OP_MAP, "unclosed", false, 0}), &in);
    FAILED(r, USER, "unclosed", "open");
    result_free(&r);

    test = "a flat_map writing half a pair";
    r = run(CHAIN({OP_FLAT_MAP, "three", false, 0}), &in);
    FAILED(r, USER, "three", "3 entries");
    result_free(&r);

    test = "a reduce writing two values";
    buf pairs = {0};
    put_str(&pairs, "k");
    put_str(&pairs, "1");
    put_str(&pairs, "k");
    put_str(&pairs, "2");
    r = run(CHAIN({OP_REDUCE, "both", false, 0}), &pairs);
    FAILED(r, USER, "both", "2 entries");
    result_free(&r);

    test = "a malformed input batch";
    buf cut = {0};
    put_str(&cut, "fine");
    raw(&cut, "\x05\x00\x00\x00" "ab", 6);
    r = run(CHAIN({OP_MAP, "upper", false, 0}), &cut);
    FAILED(r, DECODE, "upper");
    result_free(&r);
    r = run(CHAIN({OP_FILTER, "long_word", false, 0}, {OP_MAP, "upper", false, 0}), &cut);
    FAILED(r, DECODE, "long_word");
    result_free(&r);

    test = "pairs of an odd number of entries";
    buf odd = {0};
    put_str(&odd, "k");
    put_i64(&odd, 1);
    put_str(&odd, "j");
    r = run(CHAIN({OP_REDUCE, "add", false, 0}), &odd);
    FAILED(r, DECODE, "add");
    result_free(&r);

    test = "an i64 reduce given 7 bytes";
    buf seven = {0};
    put_str(&seven, "k");
    put(&seven, "\x80\0\0\0\0\0\x01", 7);
    r = run(CHAIN({OP_REDUCE, "add", false, 0}), &seven);
    FAILED(r, DECODE, "add", "7");
    result_free(&r);
    r = run(CHAIN({OP_COMBINE, "add", false, 0}), &seven);
    FAILED(r, DECODE, "add", "7");
    result_free(&r);
    /* (A failed call ends the task's instance; here, let the chain go.) */
    r = flush(CHAIN({OP_COMBINE, "add", false, 0}));
    result_free(&r);

    test = "error messages are UTF-8";
    /* A record that is bytes, not text; one cut where a message shortens it. */
    buf odd_text = {0};
    put(&odd_text, "\xff\xfe\x80 x", 5);
    r = run(CHAIN({OP_MAP, "picky", false, 0}), &odd_text);
    FAILED(r, USER, "picky");
    result_free(&r);
    buf euros = {0};
    char many[3 * 100 + 1] = "";
    for (int i = 0; i < 100; i++) strcat(many, "\xe2\x82\xac");
    put_str(&euros, many);
    r = run(CHAIN({OP_MAP, "picky", false, 0}), &euros);
    FAILED(r, USER, "picky", "\xe2\x82\xac\xe2\x82\xac");
    result_free(&r);
    r = run(CHAIN({OP_MAP, "quoting", false, 0}), &odd_text);
    FAILED(r, USER, "quoting", "cannot take");
    result_free(&r);

    free(in.p);
    free(ok.p);
    free(no.p);
    free(pairs.p);
    free(cut.p);
    free(odd.p);
    free(seven.p);
    free(odd_text.p);
    free(euros.p);
}

/* An instance holds at most four chains' records at once. */
/* A reduce that leaves an entry open: refused, and the next reduce is not
 * harmed by it. */
static void test_reduce_left_open(void) {
    test = "a reduce leaving an entry open";
    buf pairs = {0}, want = {0};
    put_str(&pairs, "k");
    put_str(&pairs, "a");
    put_str(&pairs, "k");
    put_str(&pairs, "b");
    result r = run(CHAIN({OP_REDUCE, "left_open", false, 0}), &pairs);
    FAILED(r, USER, "left_open", "left an entry open");
    result_free(&r);
    r = run(CHAIN({OP_REDUCE, "shortest", false, 0}), &pairs);
    put_str(&want, "k");
    put_str(&want, "a");
    RETURNED(r, &want);
    result_free(&r);

    test = "a function registered twice";
    r = run(CHAIN({OP_MAP, "upper_twice", false, 0}), &pairs);
    FAILED(r, USER, "upper_twice", "registered twice");
    result_free(&r);
    free(pairs.p);
    free(want.p);
}

static void test_held_chains(void) {
    test = "chains holding records at once";
    buf pairs = {0};
    put_str(&pairs, "k");
    put_i64(&pairs, 2);
    static const char *const reduces[] = {"add", "joined", "shortest", "both", "_weft.keep"};
    for (size_t i = 0; i < 5; i++) {
        result r = run(CHAIN({OP_COMBINE, reduces[i], false, 0}), &pairs);
        if (i < 4) {
            RETURNED(r, NULL);
        } else {
            FAILED(r, USER, "more than 4 chains");
        }
        result_free(&r);
    }
    for (size_t i = 0; i < 5; i++) {
        result r = flush(CHAIN({OP_COMBINE, reduces[i], false, 0}));
        RETURNED(r, i < 4 ? &pairs : NULL);
        result_free(&r);
    }
    /* Flushed, they are free again. */
    result r = run(CHAIN({OP_COMBINE, reduces[4], false, 0}), &pairs);
    RETURNED(r, NULL);
    result_free(&r);
    r = flush(CHAIN({OP_COMBINE, reduces[4], false, 0}));
    RETURNED(r, &pairs);
    result_free(&r);
    free(pairs.p);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line out before a sanitizer's report */
    test_functions();
    test_partition(); /* first: the empty partition in a fresh holding slot */
    test_elements();
    test_combine();
    test_combine_many_keys();
    test_reduce();
    test_param();
    test_errors();
    test_reduce_left_open();
    test_held_chains();
    printf("dispatch: %zu checks, %zu failures\n", checks, failures);
    return failures ? 1 : 0;
}
