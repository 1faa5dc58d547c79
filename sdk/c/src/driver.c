/*
 * The driver: datasets and actions over `weft:grid/driver`, with one kept
 * error (weft_error) instead of a check after every call, and the job's
 * `run` export calling the user's WEFT_MAIN.
 */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"
#include "job.h"

static char *kept_error;

const char *weft_error(void) { return kept_error; }

void weft_clear_error(void) {
    free(kept_error);
    kept_error = NULL;
}

static void keep(char *message) {
    if (kept_error) {
        free(message);
    } else {
        kept_error = message;
    }
}

/* Keep a driver error, said as `call: message`. */
static void driver_failed(const char *call, weft_grid_driver_driver_error_t *e) {
    if (e->tag == WEFT_GRID_DRIVER_DRIVER_ERROR_NOT_A_DRIVER) {
        keep(weft__format("%s: the driver interface is only for the job's main, not inside a task", call));
        return;
    }
    job_string_t *m = &e->val.invalid_argument;
    keep(weft__format("%s: %.*s", call, (int)m->len, (const char *)m->ptr));
    weft_grid_driver_driver_error_free(e);
}

/* Each dataset's shape, by id, to check steps against; 0xff for an id not
 * made here. */
static uint8_t *shapes;
static size_t nshapes;

static weft_ds made(weft_ds id, weft_shape shape) {
    if (id >= nshapes) {
        size_t n = id + 64;
        shapes = realloc(shapes, n);
        if (shapes == NULL) {
            weft_panic("out of memory");
        }
        memset(shapes + nshapes, 0xff, n - nshapes);
        nshapes = n;
    }
    shapes[id] = shape;
    return id;
}

/* Whether `ds` can be used: a dataset made here, not WEFT_NONE. */
static bool usable(weft_ds ds, const char *call) {
    if (ds == WEFT_NONE) {
        if (!kept_error) {
            keep(weft__format("%s: given WEFT_NONE", call));
        }
        return false;
    }
    if (ds >= nshapes || shapes[ds] == 0xff) {
        keep(weft__format("%s: no dataset %u", call, ds));
        return false;
    }
    return true;
}

static bool pairs(weft_ds ds, const char *call) {
    if (!usable(ds, call)) {
        return false;
    }
    if (shapes[ds] != WEFT_PAIR) {
        keep(weft__format("%s needs a pair dataset; dataset %u holds records", call, ds));
        return false;
    }
    return true;
}

static job_string_t str(const char *s) {
    job_string_t j = {(uint8_t *)s, strlen(s)};
    return j;
}

weft_ds weft_text_file(const char *uri, uint32_t min_partitions) {
    job_string_t u = str(uri);
    weft_grid_driver_dataset_id_t id;
    weft_grid_driver_driver_error_t e;
    if (!weft_grid_driver_text_file(&u, min_partitions, &id, &e)) {
        driver_failed("weft_text_file", &e);
        return WEFT_NONE;
    }
    return made(id, WEFT_RECORD);
}

weft_ds weft_text_file_bytes(const char *uri, uint32_t min_partitions) {
    job_string_t u = str(uri);
    weft_grid_driver_dataset_id_t id;
    weft_grid_driver_driver_error_t e;
    if (!weft_grid_driver_text_file_bytes(&u, min_partitions, &id, &e)) {
        driver_failed("weft_text_file_bytes", &e);
        return WEFT_NONE;
    }
    return made(id, WEFT_RECORD);
}

weft_ds weft_parallelize(const weft_out *records, weft_shape shape, uint32_t partitions) {
    if (records->depth != 0) {
        keep(weft__format("weft_parallelize: an entry is still open (weft_open without weft_close)"));
        return WEFT_NONE;
    }
    weft_grid_driver_batch_t b = {records->buf, records->len};
    weft_grid_driver_dataset_id_t id;
    weft_grid_driver_driver_error_t e;
    if (!weft_grid_driver_parallelize(&b, shape == WEFT_PAIR, partitions ? partitions : 1, &id, &e)) {
        driver_failed("weft_parallelize", &e);
        return WEFT_NONE;
    }
    return made(id, shape);
}

static const char *shape_name(uint8_t shape) { return shape == WEFT_PAIR ? "pairs" : "records"; }

/* The dataset of `op`, a step of `f`, over `ds` (WEFT_NONE, with the error
 * kept, when the host refuses it). */
static weft_ds narrow(weft_ds ds, weft_grid_driver_op_t *op, const weft__fn *f, const char *call) {
    weft_grid_driver_dataset_id_t id;
    weft_grid_driver_driver_error_t e;
    if (!weft_grid_driver_narrow(ds, op, f->out == WEFT_PAIR, &id, &e)) {
        driver_failed(call, &e);
        return WEFT_NONE;
    }
    return made(id, f->out);
}

/* The contract's op kind of each kind of user function a narrow step applies. */
static const weft_grid_types_op_kind_t op_kinds[] = {
    [WEFT__MAP] = WEFT_GRID_TYPES_OP_KIND_MAP,
    [WEFT__FILTER] = WEFT_GRID_TYPES_OP_KIND_FILTER,
    [WEFT__FLAT_MAP] = WEFT_GRID_TYPES_OP_KIND_FLAT_MAP,
    [WEFT__BATCH] = WEFT_GRID_TYPES_OP_KIND_MAP_BATCH,
};

weft_ds weft__step(weft_ds ds, enum weft__kind kind, const char *name, uint64_t param, bool bound) {
    const char *fn = name;
    if (strncmp(fn, "weft:partition:", 15) == 0) {
        fn += 15;
    }
    char *call = weft__format("weft_%s(%s)", kind == WEFT__BATCH ? "map_partitions" : weft__kind_name(kind), fn);
    weft_ds out = WEFT_NONE;
    const weft__fn *f = weft__lookup(fn, strlen(fn));
    if (!usable(ds, call)) {
    } else if (bound && param == UINT64_MAX) {
        keep(weft__format("%s: its bound value was not broadcast", call));
    } else if (f == NULL) {
        keep(weft__format("%s: no function `%s` is registered", call, fn));
    } else if (f->twice) {
        keep(weft__format("%s: `%s` is registered twice (two functions of that name in the job's files)", call, fn));
    } else if (f->kind != kind) {
        keep(weft__format("%s: `%s` is registered as a %s", call, fn, weft__kind_name(f->kind)));
    } else if (f->in != shapes[ds]) {
        keep(weft__format("%s: `%s` takes %s, and dataset %u holds %s", call, fn, shape_name(f->in), ds,
                          shape_name(shapes[ds])));
    } else {
        weft_grid_driver_op_t op = {op_kinds[kind], str(name), {bound, param}};
        out = narrow(ds, &op, f, call);
    }
    free(call);
    return out;
}

/* A step of the SDK's own (docs/sdk-c.md). */
static weft_ds own(weft_ds ds, const char *name, const char *call) {
    const weft__fn *f = weft__lookup(name, strlen(name));
    if (!usable(ds, call)) {
        return WEFT_NONE;
    }
    if (f->in != shapes[ds]) {
        keep(weft__format("%s needs a dataset of %s; dataset %u holds %s", call, shape_name(f->in), ds,
                          shape_name(shapes[ds])));
        return WEFT_NONE;
    }
    weft_grid_driver_op_t op = {WEFT_GRID_TYPES_OP_KIND_MAP, str(name), {false, 0}};
    return narrow(ds, &op, f, call);
}

weft_ds weft_keys(weft_ds pairs) { return own(pairs, "_weft.keys", "weft_keys"); }
weft_ds weft_values(weft_ds pairs) { return own(pairs, "_weft.values", "weft_values"); }

static weft_ds shuffle(weft_ds ds, weft_grid_driver_shuffle_op_t *op, uint32_t partitions, const char *call) {
    if (!pairs(ds, call)) {
        return WEFT_NONE;
    }
    weft_grid_driver_dataset_id_t id;
    weft_grid_driver_driver_error_t e;
    if (!weft_grid_driver_shuffle(ds, op, partitions, &id, &e)) {
        driver_failed(call, &e);
        return WEFT_NONE;
    }
    return made(id, WEFT_PAIR);
}

weft_ds weft__reduce_by_key(weft_ds ds, const char *fn, uint32_t partitions) {
    const weft__fn *f = weft__lookup(fn, strlen(fn));
    if (f == NULL || f->twice ||
        (f->kind != WEFT__REDUCE && f->kind != WEFT__REDUCE_I64 && f->kind != WEFT__REDUCE_F64)) {
        keep(weft__format("weft_reduce_by_key(%s): `%s` is not registered as a reduce function", fn, fn));
        return WEFT_NONE;
    }
    weft_grid_driver_shuffle_op_t op = {WEFT_GRID_DRIVER_SHUFFLE_OP_REDUCE_BY_KEY, {.reduce_by_key = str(fn)}};
    return shuffle(ds, &op, partitions, "weft_reduce_by_key");
}

weft_ds weft_sum_by_key(weft_ds ds, uint32_t partitions) {
    weft_grid_driver_shuffle_op_t op = {WEFT_GRID_DRIVER_SHUFFLE_OP_SUM_BY_KEY, {0}};
    return shuffle(ds, &op, partitions, "weft_sum_by_key");
}

static weft_ds fold(weft_ds ds, weft_grid_driver_fold_t how, uint32_t partitions, const char *call) {
    weft_grid_driver_shuffle_op_t op = {WEFT_GRID_DRIVER_SHUFFLE_OP_FOLD_BY_KEY, {.fold_by_key = how}};
    return shuffle(ds, &op, partitions, call);
}

weft_ds weft_sum_f64_by_key(weft_ds ds, uint32_t partitions) {
    return fold(ds, WEFT_GRID_DRIVER_FOLD_SUM_F64, partitions, "weft_sum_f64_by_key");
}
weft_ds weft_min_by_key(weft_ds ds, uint32_t partitions) {
    return fold(ds, WEFT_GRID_DRIVER_FOLD_MIN, partitions, "weft_min_by_key");
}
weft_ds weft_max_by_key(weft_ds ds, uint32_t partitions) {
    return fold(ds, WEFT_GRID_DRIVER_FOLD_MAX, partitions, "weft_max_by_key");
}

weft_ds weft_group_by_key(weft_ds ds, uint32_t partitions) {
    weft_grid_driver_shuffle_op_t op = {WEFT_GRID_DRIVER_SHUFFLE_OP_GROUP_BY_KEY, {0}};
    return shuffle(ds, &op, partitions, "weft_group_by_key");
}

weft_ds weft_sort_by_key(weft_ds ds, bool ascending, uint32_t partitions) {
    weft_grid_driver_shuffle_op_t op = {WEFT_GRID_DRIVER_SHUFFLE_OP_SORT_BY_KEY, {.sort_by_key = ascending}};
    return shuffle(ds, &op, partitions, "weft_sort_by_key");
}

weft_ds weft_partition_by(weft_ds ds, uint32_t partitions) {
    weft_grid_driver_shuffle_op_t op = {WEFT_GRID_DRIVER_SHUFFLE_OP_PARTITION_BY, {0}};
    return shuffle(ds, &op, partitions, "weft_partition_by");
}

weft_ds weft_join(weft_ds left, weft_ds right, uint32_t partitions) {
    if (!pairs(left, "weft_join") || !pairs(right, "weft_join")) {
        return WEFT_NONE;
    }
    weft_grid_driver_dataset_id_t id;
    weft_grid_driver_driver_error_t e;
    if (!weft_grid_driver_join(left, right, partitions, &id, &e)) {
        driver_failed("weft_join", &e);
        return WEFT_NONE;
    }
    return made(id, WEFT_PAIR);
}

weft_ds weft_union(weft_ds a, weft_ds b) {
    if (!usable(a, "weft_union") || !usable(b, "weft_union")) {
        return WEFT_NONE;
    }
    if (shapes[a] != shapes[b]) {
        keep(weft__format("weft_union: dataset %u holds %s and dataset %u %s", a,
                          shape_name(shapes[a]), b, shape_name(shapes[b])));
        return WEFT_NONE;
    }
    weft_grid_driver_dataset_id_t id;
    weft_grid_driver_driver_error_t e;
    if (!weft_grid_driver_union(a, b, &id, &e)) {
        driver_failed("weft_union", &e);
        return WEFT_NONE;
    }
    return made(id, shapes[a]);
}

static weft_ds by_own_reduce(weft_ds pairs_ds, const char *reduce, uint32_t partitions, const char *call) {
    weft_grid_driver_shuffle_op_t op = {WEFT_GRID_DRIVER_SHUFFLE_OP_REDUCE_BY_KEY, {.reduce_by_key = str(reduce)}};
    return shuffle(pairs_ds, &op, partitions, call);
}

weft_ds weft_count_by_value(weft_ds ds, uint32_t partitions) {
    return by_own_reduce(own(ds, "_weft.one", "weft_count_by_value"), "_weft.add", partitions, "weft_count_by_value");
}

weft_ds weft_count_by_key(weft_ds ds, uint32_t partitions) {
    return by_own_reduce(own(ds, "_weft.ones", "weft_count_by_key"), "_weft.add", partitions, "weft_count_by_key");
}

weft_ds weft_distinct(weft_ds ds, uint32_t partitions) {
    weft_ds kept = by_own_reduce(own(ds, "_weft.unit", "weft_distinct"), "_weft.keep", partitions, "weft_distinct");
    return kept == WEFT_NONE ? WEFT_NONE : own(kept, "_weft.keys", "weft_distinct");
}

weft_ds weft_persist(weft_ds ds, weft_storage level) {
    if (!usable(ds, "weft_persist")) {
        return WEFT_NONE;
    }
    weft_grid_driver_driver_error_t e;
    if (!weft_grid_driver_persist(ds, (weft_grid_driver_storage_level_t)level, &e)) {
        driver_failed("weft_persist", &e);
        return WEFT_NONE;
    }
    return ds;
}

weft_ds weft_cache(weft_ds ds) { return weft_persist(ds, WEFT_MEMORY_ONLY); }

weft_ds weft_unpersist(weft_ds ds) {
    if (!usable(ds, "weft_unpersist")) {
        return WEFT_NONE;
    }
    weft_grid_driver_driver_error_t e;
    if (!weft_grid_driver_unpersist(ds, &e)) {
        driver_failed("weft_unpersist", &e);
        return WEFT_NONE;
    }
    return ds;
}

int64_t weft_count(weft_ds ds) {
    if (!usable(ds, "weft_count")) {
        return -1;
    }
    uint64_t n;
    weft_grid_driver_driver_error_t e;
    if (!weft_grid_driver_count(ds, &n, &e)) {
        driver_failed("weft_count", &e);
        return -1;
    }
    return (int64_t)n;
}

weft_batch weft_collect(weft_ds ds) {
    weft_batch b = {NULL, 0};
    weft_grid_driver_batch_t got;
    weft_grid_driver_driver_error_t e;
    if (usable(ds, "weft_collect")) {
        if (weft_grid_driver_collect(ds, &got, &e)) {
            b.ptr = got.ptr;
            b.len = got.len;
        } else {
            driver_failed("weft_collect", &e);
        }
    }
    return b;
}

weft_batch weft_take(weft_ds ds, uint64_t n) {
    weft_batch b = {NULL, 0};
    weft_grid_driver_batch_t got;
    weft_grid_driver_driver_error_t e;
    if (usable(ds, "weft_take")) {
        if (weft_grid_driver_take(ds, n, &got, &e)) {
            b.ptr = got.ptr;
            b.len = got.len;
        } else {
            driver_failed("weft_take", &e);
        }
    }
    return b;
}

void weft_batch_free(weft_batch *b) {
    if (b->len) {
        free(b->ptr); /* an empty list's pointer is not malloc's */
    }
    b->ptr = NULL;
    b->len = 0;
}

int weft_save_as_text_file(weft_ds ds, const char *uri) {
    if (!usable(ds, "weft_save_as_text_file")) {
        return -1;
    }
    if (shapes[ds] == WEFT_PAIR) {
        keep(weft__format("weft_save_as_text_file: dataset %u holds pairs; make each a line with a map "
                          "(weft_printf(out, \"%%.*s\\t%%lld\", ...)) first",
                          ds));
        return -1;
    }
    job_string_t u = str(uri);
    weft_grid_driver_driver_error_t e;
    if (!weft_grid_driver_save_as_text_file(ds, &u, &e)) {
        driver_failed("weft_save_as_text_file", &e);
        return -1;
    }
    return 0;
}

uint64_t weft_broadcast(const void *value, size_t len) {
    job_list_u8_t v = {(uint8_t *)value, len};
    uint64_t id;
    weft_grid_driver_driver_error_t e;
    if (!weft_grid_driver_broadcast(&v, &id, &e)) {
        driver_failed("weft_broadcast", &e);
        return UINT64_MAX;
    }
    return id;
}

int64_t weft_accumulator_value(const char *name) {
    job_string_t n = str(name);
    int64_t v;
    weft_grid_driver_driver_error_t e;
    if (!weft_grid_driver_accumulator_value(&n, &v, &e)) {
        driver_failed("weft_accumulator_value", &e);
        return 0;
    }
    return v;
}

/* The job's `run`: argv from the driver's arguments, then WEFT_MAIN's
 * function; its failure or a kept error fails the job. */
bool exports_job_run(job_string_t *err) {
    job_list_string_t args;
    weft_grid_driver_args(&args);
    char **argv = calloc(args.len + 2, sizeof *argv);
    if (argv == NULL) {
        weft_panic("out of memory");
    }
    argv[0] = "job";
    for (size_t i = 0; i < args.len; i++) {
        argv[i + 1] = weft__format("%.*s", (int)args.ptr[i].len, (const char *)args.ptr[i].ptr);
    }
    int argc = (int)args.len + 1;
    job_list_string_free(&args);
    int rc = weft__main(argc, argv);
    char *failed = weft__take_failure();
    if (rc == 0 && !kept_error && !failed) {
        return true;
    }
    char *message = kept_error ? weft__format("%s", kept_error)
                    : failed   ? weft__format("%s", failed)
                               : weft__format("the job's main returned %d", rc);
    free(failed);
    message = weft__utf8(message);
    err->ptr = (uint8_t *)message;
    err->len = strlen(message);
    return false;
}
