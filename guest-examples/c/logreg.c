/*
 * Logistic regression in C, as the Spark example computes it.
 *
 *     weft local logreg.wasm -- <points-uri> <dimensions> <iterations> [partitions]
 *
 * reads points, one per line (`label x1 … xD`, the label -1 or 1), keeps the
 * parsed points cached, and runs `iterations` steps of gradient descent from
 * zero weights: each step sums, over every point,
 * `(1 / (1 + exp(-y (w·x))) - 1) · y · x` and subtracts the sum from `w`. It
 * logs each iteration's wall time and the final weights (`final w: w1 … wD`,
 * each with 17 significant digits, which parse back to the same double).
 *
 * A point is a bytes record holding its doubles as they lie in memory
 * (y, x1 … xD): C reads it back with one memcpy. The weights reach `gradient`
 * as its bound parameter, one broadcast per iteration; the sum is a
 * reduce_by_key over one key, folded in each task before the shuffle.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <weft.h>

#define MAX_VALUES 1024

/* The doubles of a line `label x1 … xD`, as a bytes record; a line that
 * does not parse is skipped. */
static int parse_point(weft_rec line, weft_out *out) {
    char text[16384];
    if (line.val.len >= sizeof text) {
        return 0;
    }
    memcpy(text, line.val.ptr, line.val.len);
    text[line.val.len] = 0;
    double values[MAX_VALUES];
    size_t n = 0;
    char *at = text, *end;
    for (;;) {
        double v = strtod(at, &end);
        if (end == at) {
            break;
        }
        if (n == MAX_VALUES) {
            return 0;
        }
        values[n++] = v;
        at = end;
    }
    while (*at == ' ' || *at == '\t' || *at == '\r') {
        at++;
    }
    if (n >= 2 && *at == 0) {
        weft_put(out, values, n * sizeof *values);
    }
    return 0;
}
WEFT_FLAT_MAP(parse_point, RECORD, RECORD);

/* One point's contribution to the gradient at the bound weights, under the
 * one key (unit). */
static int gradient(weft_rec point, weft_out *out) {
    weft_val bound = weft_param();
    size_t d = bound.len / sizeof(double);
    if (point.val.len != (d + 1) * sizeof(double)) {
        return weft_fail("a point of %zu bytes, and %zu weights", point.val.len, d);
    }
    double p[MAX_VALUES], w[MAX_VALUES], g[MAX_VALUES];
    memcpy(p, point.val.ptr, point.val.len);
    memcpy(w, bound.ptr, bound.len);
    double y = p[0], dot = 0;
    for (size_t j = 0; j < d; j++) {
        dot += w[j] * p[j + 1];
    }
    double scale = (1.0 / (1.0 + exp(-y * dot)) - 1.0) * y;
    for (size_t j = 0; j < d; j++) {
        g[j] = scale * p[j + 1];
    }
    weft_put_unit(out);
    weft_put(out, g, d * sizeof *g);
    return 0;
}
WEFT_MAP(gradient, RECORD, PAIR);

/* Two partial gradients, added. */
static int add(weft_val a, weft_val b, weft_out *out) {
    if (a.len != b.len || a.len > MAX_VALUES * sizeof(double)) {
        return weft_fail("gradients of %zu and %zu bytes", a.len, b.len);
    }
    double x[MAX_VALUES], y[MAX_VALUES];
    size_t d = a.len / sizeof(double);
    memcpy(x, a.ptr, a.len);
    memcpy(y, b.ptr, b.len);
    for (size_t j = 0; j < d; j++) {
        x[j] += y[j];
    }
    weft_put(out, x, a.len);
    return 0;
}
WEFT_REDUCE(add);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int logreg(int argc, char **argv) {
    if (argc != 4 && argc != 5) {
        return weft_fail("usage: logreg <points-uri> <dimensions> <iterations> [partitions]");
    }
    int d = atoi(argv[2]), iterations = atoi(argv[3]);
    int partitions = argc == 5 ? atoi(argv[4]) : 4;
    if (d < 1 || d >= MAX_VALUES || iterations < 0 || partitions < 1) {
        return weft_fail("dimensions must be 1 to %d, iterations and partitions positive", MAX_VALUES - 1);
    }
    weft_ds points = weft_cache(weft_flat_map(weft_text_file(argv[1], (uint32_t)partitions), parse_point));
    double w[MAX_VALUES] = {0};
    for (int i = 1; i <= iterations; i++) {
        double started = now();
        uint64_t bound = weft_broadcast(w, (size_t)d * sizeof *w);
        weft_batch sums = weft_collect(weft_reduce_by_key(weft_map_with(points, gradient, bound), add, 1));
        if (weft_error()) {
            return 1;
        }
        weft_reader r = weft_read_batch(sums);
        weft_rec sum;
        if (!weft_next_rec(&r, WEFT_PAIR, &sum) || sum.val.len != (size_t)d * sizeof(double)) {
            weft_batch_free(&sums);
            return weft_fail("iteration %d: no gradient of %d features (no points?)", i, d);
        }
        double g[MAX_VALUES];
        memcpy(g, sum.val.ptr, sum.val.len);
        weft_batch_free(&sums);
        for (int j = 0; j < d; j++) {
            w[j] -= g[j];
        }
        weft_info("iteration %d: %.6f s", i, now() - started);
    }
    char *line = malloc((size_t)d * 32), *at = line;
    for (int j = 0; j < d; j++) {
        at += sprintf(at, "%s%.17g", j ? " " : "", w[j]);
    }
    weft_info("final w: %s", line);
    free(line);
    return 0;
}
WEFT_MAIN(logreg);
