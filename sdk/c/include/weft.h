/*
 * weft.h: the weft guest SDK for C.
 *
 * A job is a C file: user functions registered with the WEFT_MAP, WEFT_FILTER,
 * WEFT_FLAT_MAP, WEFT_MAP_PARTITIONS and WEFT_REDUCE macros, and a `main`
 * registered with WEFT_MAIN that builds datasets and runs actions. Records are
 * bytes in the record contract's encodings (docs/record-format.md): a function
 * reads them through `weft_val` views and writes its output with the
 * `weft_put_*` functions. The guide is docs/sdk-c.md.
 */
#ifndef WEFT_H
#define WEFT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Records ------------------------------------------------------------ */

/* A view of bytes: a record, a key or an element of one. Not NUL-terminated:
 * print a string record with printf("%.*s", WEFT_STR(v)). */
typedef struct weft_val {
    const uint8_t *ptr;
    size_t len;
} weft_val;

/* The arguments of printf's "%.*s" for a string record. */
#define WEFT_STR(v) (int)(v).len, (const char *)(v).ptr

/* What an element function receives: a plain dataset's record in `val`, or a
 * pair's key (in the key encoding) in `key` and its value in `val`. */
typedef struct weft_rec {
    weft_val key;
    weft_val val;
} weft_rec;

/* Whether a function's input or output is plain records or pairs. */
typedef enum weft_shape { WEFT_RECORD = 0, WEFT_PAIR = 1 } weft_shape;

/* A view of a C string. */
static inline weft_val weft_cstr(const char *s) {
    weft_val v = {(const uint8_t *)s, strlen(s)};
    return v;
}

/* Whether a record's bytes equal a C string's. */
static inline bool weft_eq(weft_val v, const char *s) {
    size_t n = strlen(s);
    return v.len == n && memcmp(v.ptr, s, n) == 0;
}

/* Whether `needle` occurs in `v`. */
bool weft_contains(weft_val v, weft_val needle);

/* Numbers: a record or key of a fixed-width type is its key encoding (big
 * endian, signed integers with the sign bit flipped, floats in IEEE 754
 * totalOrder form). A value of the wrong width fails the call with a decode
 * error naming the function and the record, and these return 0. */
int64_t weft_i64(weft_val v);
uint64_t weft_u64(weft_val v);
int32_t weft_i32(weft_val v);
uint32_t weft_u32(weft_val v);
double weft_f64(weft_val v);
bool weft_bool(weft_val v);

/* Reading a tuple, list or option record: a batch of its elements.
 *
 *     weft_reader r = weft_read(rec.val);
 *     weft_val e;
 *     while (weft_next(&r, &e)) { ... }
 *
 * A malformed element ends the loop and fails the call with a decode error. */
typedef struct weft_reader {
    const uint8_t *at, *end;
} weft_reader;

static inline weft_reader weft_read(weft_val v) {
    weft_reader r = {v.ptr, v.len ? v.ptr + v.len : v.ptr}; /* (an empty view's ptr may be NULL) */
    return r;
}

bool weft_next(weft_reader *r, weft_val *element);

/* The `i`-th element of a tuple record (a decode error when it has fewer). */
weft_val weft_elem(weft_val tuple, size_t i);

/* ---- Output ------------------------------------------------------------- */

/* A batch being written: a function's output, or records for parallelize.
 * Each `weft_put_*` writes one entry: a plain record is one entry, a pair two
 * (the key, then the value). */
typedef struct weft_out weft_out;

/* An entry of raw bytes: a string or bytes record, or a key that is one
 * string (a string key is its own bytes). */
void weft_put(weft_out *out, const void *bytes, size_t len);
void weft_put_val(weft_out *out, weft_val v);
void weft_put_str(weft_out *out, const char *s);
/* An entry of formatted text (printf's format). */
void weft_printf(weft_out *out, const char *format, ...) __attribute__((format(printf, 2, 3)));
/* Fixed-width entries, as keys or records. */
void weft_put_i64(weft_out *out, int64_t v);
void weft_put_u64(weft_out *out, uint64_t v);
void weft_put_i32(weft_out *out, int32_t v);
void weft_put_u32(weft_out *out, uint32_t v);
void weft_put_f64(weft_out *out, double v);
void weft_put_bool(weft_out *out, bool v);
/* The unit record `()`: an empty entry. */
void weft_put_unit(weft_out *out);

/* A nested entry: a tuple, list or option record (its elements written with
 * weft_put_*), or a composite key (its parts written with weft_append_*),
 * between weft_open and weft_close. Nests. */
void weft_open(weft_out *out);
void weft_close(weft_out *out);
/* Key parts, appended to the open entry without framing: a string or bytes
 * not last in a key is escaped (weft_append_key_str); the last one raw
 * (weft_append). */
void weft_append(weft_out *out, const void *bytes, size_t len);
void weft_append_key_str(weft_out *out, const void *bytes, size_t len);
void weft_append_i64(weft_out *out, int64_t v);
void weft_append_u64(weft_out *out, uint64_t v);
void weft_append_f64(weft_out *out, double v);

/* A batch of one's own (for weft_parallelize); free it with weft_out_free. */
weft_out *weft_out_new(void);
void weft_out_free(weft_out *out);

/* ---- User functions ----------------------------------------------------- */

/* map: one record in, one out (written to `out`); flat_map: zero or more out.
 * Return 0, or weft_fail(...) to fail the task. */
typedef int (*weft_map_fn)(weft_rec in, weft_out *out);
/* filter: return 1 to keep the record, 0 to drop it, or weft_fail(...). */
typedef int (*weft_filter_fn)(weft_rec in);
/* map_partitions: every record of a partition (or of a batch, for
 * map_batch) in one call: `in` is the batch; read it with weft_read and
 * weft_next_rec. */
typedef int (*weft_batch_fn)(weft_val in, weft_out *out);
/* reduce: fold two values of one key into one, written to `out`. Must be
 * associative (and commutative: the map side folds in any order). */
typedef int (*weft_reduce_fn)(weft_val a, weft_val b, weft_out *out);
/* reduce over i64 or f64 values, without encoding. */
typedef int64_t (*weft_reduce_i64_fn)(int64_t a, int64_t b);
typedef double (*weft_reduce_f64_fn)(double a, double b);

/* Reading a whole batch (map_partitions): each record, or each pair. */
bool weft_next_rec(weft_reader *r, weft_shape shape, weft_rec *rec);

enum weft__kind {
    WEFT__MAP,
    WEFT__FILTER,
    WEFT__FLAT_MAP,
    WEFT__BATCH,
    WEFT__REDUCE,
    WEFT__REDUCE_I64,
    WEFT__REDUCE_F64,
};

/* How a function is registered: weft_register is called by the macros below
 * from a constructor, before `main` or any task runs. */
void weft_register(const char *name, enum weft__kind kind, weft_shape in, weft_shape out, void (*fn)(void));

#define WEFT__REGISTER(fn, kind, in, out)                                                          \
    __attribute__((constructor)) static void weft__register_##fn(void) {                           \
        weft_register(#fn, kind, in, out, (void (*)(void))(fn));                                   \
    }                                                                                              \
    struct weft__semicolon_##fn

/* Register a function defined above, with the shape of its input and output:
 * RECORD or PAIR. A map returning pairs makes a pair dataset. */
#define WEFT_MAP(fn, in, out)                                                                      \
    __attribute__((unused)) static inline weft_map_fn weft__check_##fn(void) { return fn; }        \
    WEFT__REGISTER(fn, WEFT__MAP, WEFT_##in, WEFT_##out)
#define WEFT_FLAT_MAP(fn, in, out)                                                                 \
    __attribute__((unused)) static inline weft_map_fn weft__check_##fn(void) { return fn; }        \
    WEFT__REGISTER(fn, WEFT__FLAT_MAP, WEFT_##in, WEFT_##out)
#define WEFT_FILTER(fn, in)                                                                        \
    __attribute__((unused)) static inline weft_filter_fn weft__check_##fn(void) { return fn; }     \
    WEFT__REGISTER(fn, WEFT__FILTER, WEFT_##in, WEFT_##in)
#define WEFT_MAP_PARTITIONS(fn, in, out)                                                           \
    __attribute__((unused)) static inline weft_batch_fn weft__check_##fn(void) { return fn; }      \
    WEFT__REGISTER(fn, WEFT__BATCH, WEFT_##in, WEFT_##out)
/* Reduce functions fold the values of a pair dataset. */
#define WEFT_REDUCE(fn)                                                                            \
    __attribute__((unused)) static inline weft_reduce_fn weft__check_##fn(void) { return fn; }     \
    WEFT__REGISTER(fn, WEFT__REDUCE, WEFT_PAIR, WEFT_PAIR)
#define WEFT_REDUCE_I64(fn)                                                                        \
    __attribute__((unused)) static inline weft_reduce_i64_fn weft__check_##fn(void) { return fn; } \
    WEFT__REGISTER(fn, WEFT__REDUCE_I64, WEFT_PAIR, WEFT_PAIR)
#define WEFT_REDUCE_F64(fn)                                                                        \
    __attribute__((unused)) static inline weft_reduce_f64_fn weft__check_##fn(void) { return fn; } \
    WEFT__REGISTER(fn, WEFT__REDUCE_F64, WEFT_PAIR, WEFT_PAIR)

/* Fail the running function with a message (it names the function and the
 * record): `return weft_fail("bad line");`. Returns -1. In `main`, it fails
 * the job with that message. */
int weft_fail(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* End the task at once with a message, as a Rust panic does (the task fails
 * with the message; the sandbox is not harmed). `assert` does the same. */
#define weft_panic(...) weft__panic(__FILE__, __LINE__, __VA_ARGS__)
void weft__panic(const char *file, int line, const char *format, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

/* The value bound to the running function (weft_map_with and the like); an
 * empty view when there is none. */
weft_val weft_param(void);

/* ---- Inside tasks and the driver ---------------------------------------- */

typedef enum weft_level {
    WEFT_TRACE = 0,
    WEFT_DEBUG = 1,
    WEFT_INFO = 2,
    WEFT_WARN = 3,
    WEFT_ERROR = 4
} weft_level;

/* A line in the task's (or the driver's) log. */
void weft_log(weft_level level, const char *format, ...) __attribute__((format(printf, 2, 3)));
#define weft_info(...) weft_log(WEFT_INFO, __VA_ARGS__)
#define weft_warn(...) weft_log(WEFT_WARN, __VA_ARGS__)

/* Add to a named accumulator (summed over finished tasks by the master). */
void weft_accumulate(const char *name, int64_t delta);

/* ---- The driver ---------------------------------------------------------- */

/* A dataset handle. A failed call returns WEFT_NONE and keeps the error
 * (weft_error); later calls given WEFT_NONE return WEFT_NONE (or -1, or an
 * empty batch), so a chain of calls may be checked once at its end. */
typedef uint32_t weft_ds;
#define WEFT_NONE UINT32_MAX

/* The first error of the driver since the last weft_clear_error (which frees
 * it), or NULL. When `main` returns with an error kept, the job fails with it. */
const char *weft_error(void);
void weft_clear_error(void);

/* A batch returned by an action: entries as in a dataset (one per record,
 * two per pair); read it with weft_read_batch. Free it with weft_batch_free. */
typedef struct weft_batch {
    uint8_t *ptr;
    size_t len;
} weft_batch;
void weft_batch_free(weft_batch *b);

static inline weft_reader weft_read_batch(weft_batch b) {
    weft_reader r = {b.ptr, b.len ? b.ptr + b.len : b.ptr}; /* (an empty batch's ptr may be NULL) */
    return r;
}

/* Sources. */
weft_ds weft_text_file(const char *uri, uint32_t min_partitions);
weft_ds weft_text_file_bytes(const char *uri, uint32_t min_partitions);
weft_ds weft_parallelize(const weft_out *records, weft_shape shape, uint32_t partitions);

/* Narrow steps: `fn` is a registered function (checked at compile time to
 * exist, and when called to be registered as that kind). */
weft_ds weft__step(weft_ds ds, enum weft__kind kind, const char *name, uint64_t param, bool bound);
#define weft_map(ds, fn) weft__step(ds, WEFT__MAP, (weft__check_##fn(), #fn), 0, false)
#define weft_filter(ds, fn) weft__step(ds, WEFT__FILTER, (weft__check_##fn(), #fn), 0, false)
#define weft_flat_map(ds, fn) weft__step(ds, WEFT__FLAT_MAP, (weft__check_##fn(), #fn), 0, false)
#define weft_map_partitions(ds, fn) weft__step(ds, WEFT__BATCH, (weft__check_##fn(), "weft:partition:" #fn), 0, false)
#define weft_map_batch(ds, fn) weft__step(ds, WEFT__BATCH, (weft__check_##fn(), #fn), 0, false)
/* The same with a bound parameter: a broadcast id (weft_broadcast), read in
 * the function with weft_param(). */
#define weft_map_with(ds, fn, id) weft__step(ds, WEFT__MAP, (weft__check_##fn(), #fn), id, true)
#define weft_filter_with(ds, fn, id) weft__step(ds, WEFT__FILTER, (weft__check_##fn(), #fn), id, true)
#define weft_flat_map_with(ds, fn, id) weft__step(ds, WEFT__FLAT_MAP, (weft__check_##fn(), #fn), id, true)

/* Pair datasets. `partitions` 0 keeps the parent's count. */
weft_ds weft_keys(weft_ds pairs);   /* the key bytes, as records */
weft_ds weft_values(weft_ds pairs);
weft_ds weft__reduce_by_key(weft_ds pairs, const char *fn, uint32_t partitions);
#define weft_reduce_by_key(ds, fn, partitions) weft__reduce_by_key(ds, (weft__check_##fn(), #fn), partitions)
/* Native folds of i64 (or f64) values in the host, with no user function. */
weft_ds weft_sum_by_key(weft_ds pairs, uint32_t partitions);
weft_ds weft_sum_f64_by_key(weft_ds pairs, uint32_t partitions);
weft_ds weft_min_by_key(weft_ds pairs, uint32_t partitions);
weft_ds weft_max_by_key(weft_ds pairs, uint32_t partitions);
/* Each key with a list record of its values. */
weft_ds weft_group_by_key(weft_ds pairs, uint32_t partitions);
/* A total order by key bytes, into ranges of keys (sampled first). */
weft_ds weft_sort_by_key(weft_ds pairs, bool ascending, uint32_t partitions);
weft_ds weft_partition_by(weft_ds pairs, uint32_t partitions);
/* Inner join on key bytes: values become (left, right) tuple records. */
weft_ds weft_join(weft_ds left, weft_ds right, uint32_t partitions);
weft_ds weft_union(weft_ds a, weft_ds b);
/* Records as keys: (record, i64 count) pairs, and the distinct records. */
weft_ds weft_count_by_value(weft_ds records, uint32_t partitions);
weft_ds weft_distinct(weft_ds records, uint32_t partitions);
/* Pairs to (key, i64 count). */
weft_ds weft_count_by_key(weft_ds pairs, uint32_t partitions);

typedef enum weft_storage { WEFT_MEMORY_ONLY = 0, WEFT_MEMORY_AND_DISK = 1, WEFT_DISK_ONLY = 2 } weft_storage;
weft_ds weft_persist(weft_ds ds, weft_storage level);
weft_ds weft_cache(weft_ds ds); /* persist in memory */
weft_ds weft_unpersist(weft_ds ds);

/* Actions. */
int64_t weft_count(weft_ds ds);                   /* -1 on error */
weft_batch weft_collect(weft_ds ds);              /* empty on error */
weft_batch weft_take(weft_ds ds, uint64_t n);
int weft_save_as_text_file(weft_ds ds, const char *uri); /* 0, or -1 on error */

/* Ship a value to every task once; returns its id for the *_with steps
 * (UINT64_MAX on error). */
uint64_t weft_broadcast(const void *value, size_t len);
/* The sum of every finished task's additions to the named accumulator (0,
 * with the error kept, when the call fails). */
int64_t weft_accumulator_value(const char *name);

/* The job's main: `int name(int argc, char **argv)`, argv[0] is "job" and
 * the rest what follows `--` on the command line. It returns 0, or nonzero
 * (`return weft_fail("usage: ...")`) to fail the job; a kept driver error
 * (weft_error) fails it too, with that error. */
#define WEFT_MAIN(fn)                                                                              \
    int weft__main(int argc, char **argv) { return (fn)(argc, argv); }                             \
    struct weft__semicolon_main

#ifdef __cplusplus
}
#endif

#endif /* WEFT_H */
