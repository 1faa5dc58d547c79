/*
 * The SDK conformance job, in C: the same cases as the Rust one
 * (tests/guests/conformance), with the same outputs, checked against native
 * references by cli/tests/all/conformance.rs.
 *
 *     conformance <case> <uris...>
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

/* ---- word count, sort, join, group ---------------------------------------- */

static bool is_space(uint8_t c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* Each lowercased word of a line: a record each, or a pair (word, 1) each. */
static void words(weft_val line, weft_out *out, bool counted) {
    size_t i = 0;
    while (i < line.len) {
        while (i < line.len && is_space(line.ptr[i])) {
            i++;
        }
        size_t start = i;
        while (i < line.len && !is_space(line.ptr[i])) {
            i++;
        }
        if (i == start) {
            break;
        }
        weft_open(out);
        for (size_t k = start; k < i; k++) {
            uint8_t c = line.ptr[k];
            c = (c >= 'A' && c <= 'Z') ? (uint8_t)(c | 0x20) : c;
            weft_append(out, &c, 1);
        }
        weft_close(out);
        if (counted) {
            weft_put_i64(out, 1);
        }
    }
}

static int split_words(weft_rec line, weft_out *out) {
    words(line.val, out, false);
    return 0;
}
WEFT_FLAT_MAP(split_words, RECORD, RECORD);

static int count_line(weft_rec pair, weft_out *out) {
    weft_printf(out, "%.*s\t%lld", WEFT_STR(pair.key), (long long)weft_i64(pair.val));
    return 0;
}
WEFT_MAP(count_line, PAIR, RECORD);

/* `key,number` as (key, number). */
static int key_and_number(weft_rec line, weft_out *out) {
    const uint8_t *comma = memchr(line.val.ptr, ',', line.val.len);
    if (comma == NULL) {
        return weft_fail("no comma");
    }
    size_t klen = (size_t)(comma - line.val.ptr);
    char number[32];
    size_t nlen = line.val.len - klen - 1;
    if (nlen == 0 || nlen >= sizeof number) {
        return weft_fail("not a number after the comma");
    }
    memcpy(number, comma + 1, nlen);
    number[nlen] = 0;
    char *end;
    long long n = strtoll(number, &end, 10);
    if (*end) {
        return weft_fail("`%s` is not a number", number);
    }
    weft_put(out, line.val.ptr, klen);
    weft_put_i64(out, n);
    return 0;
}
WEFT_MAP(key_and_number, RECORD, PAIR);

static int first_word_key(weft_rec line, weft_out *out) {
    const uint8_t *space = memchr(line.val.ptr, ' ', line.val.len);
    weft_put(out, line.val.ptr, space ? (size_t)(space - line.val.ptr) : line.val.len);
    weft_put_val(out, line.val);
    return 0;
}
WEFT_MAP(first_word_key, RECORD, PAIR);

/* (key, (left, right)) as `key<TAB>left<TAB>right`. */
static int join_line(weft_rec pair, weft_out *out) {
    weft_printf(out, "%.*s\t%lld\t%lld", WEFT_STR(pair.key), (long long)weft_i64(weft_elem(pair.val, 0)),
                (long long)weft_i64(weft_elem(pair.val, 1)));
    return 0;
}
WEFT_MAP(join_line, PAIR, RECORD);

static int by_value(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* (key, [values]) as `key<TAB>v1,v2,...`, the values sorted. */
static int group_line(weft_rec pair, weft_out *out) {
    size_t n = 0, cap = 16;
    int64_t *values = malloc(cap * sizeof *values);
    weft_reader r = weft_read(pair.val);
    weft_val v;
    while (weft_next(&r, &v)) {
        if (n == cap) {
            values = realloc(values, (cap *= 2) * sizeof *values);
        }
        values[n++] = weft_i64(v);
    }
    qsort(values, n, sizeof *values, by_value);
    weft_open(out);
    weft_append(out, pair.key.ptr, pair.key.len);
    for (size_t i = 0; i < n; i++) {
        char number[24];
        int len = snprintf(number, sizeof number, "%s%lld", i ? "," : "\t", (long long)values[i]);
        weft_append(out, number, (size_t)len);
    }
    weft_close(out);
    free(values);
    return 0;
}
WEFT_MAP(group_line, PAIR, RECORD);

/* ---- accumulators, a bound parameter ------------------------------------- */

static int measure(weft_rec line, weft_out *out) {
    weft_accumulate("lines", 1);
    weft_accumulate("bytes", (int64_t)line.val.len);
    weft_put_val(out, line.val);
    return 0;
}
WEFT_MAP(measure, RECORD, RECORD);

static int contains(weft_rec line) { return weft_contains(line.val, weft_param()); }
WEFT_FILTER(contains, RECORD);

/* ---- failures ---------------------------------------------------------------- */

static int reject_bad(weft_rec line, weft_out *out) {
    if (weft_contains(line.val, weft_cstr("BAD"))) {
        return weft_fail("conformance: bad record %.*s", WEFT_STR(line.val));
    }
    weft_put_val(out, line.val);
    return 0;
}
WEFT_MAP(reject_bad, RECORD, RECORD);

/* An integer division by zero: a trap in WebAssembly, as in C on most machines. */
static int divide(weft_rec line, weft_out *out) {
    volatile size_t zero = line.val.len - line.val.len;
    weft_put_i64(out, (int64_t)(line.val.len / zero));
    return 0;
}
WEFT_MAP(divide, RECORD, RECORD);

static int spin(weft_rec line, weft_out *out) {
    volatile uint64_t n = 0;
    for (;;) {
        n = n + 1;
        if (n == 0) {
            break;
        }
    }
    weft_put_val(out, line.val);
    return 0;
}
WEFT_MAP(spin, RECORD, RECORD);

static int grow(weft_rec line, weft_out *out) {
    void *volatile last = NULL;
    for (;;) {
        void **block = malloc(1 << 20);
        if (block == NULL) {
            break; /* not reached: the sandbox's memory limit ends the task first */
        }
        memset(block, 1, 1 << 20);
        block[0] = last;
        last = block;
    }
    weft_put_val(out, line.val);
    return 0;
}
WEFT_MAP(grow, RECORD, RECORD);

#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Winfinite-recursion"
__attribute__((noinline)) static uint64_t deeper(uint64_t n) {
    volatile uint8_t frame[1024];
    frame[7] = (uint8_t)n;
    return deeper(n + 1) + frame[7];
}
#pragma clang diagnostic pop

static int recurse(weft_rec line, weft_out *out) {
    weft_printf(out, "%.*s %llu", WEFT_STR(line.val), (unsigned long long)deeper(0));
    return 0;
}
WEFT_MAP(recurse, RECORD, RECORD);

static int huge_output(weft_rec line, weft_out *out) {
    (void)line;
    char *x = malloc(1 << 20);
    memset(x, 'x', 1 << 20);
    for (int i = 0; i < 1024; i++) {
        weft_put(out, x, 1 << 20);
    }
    free(x);
    return 0;
}
WEFT_FLAT_MAP(huge_output, RECORD, RECORD);

/* ---- main ---------------------------------------------------------------------- */

static int conformance(int argc, char **argv) {
    if (argc < 3) {
        return weft_fail("usage: conformance <case> <uris...>");
    }
    const char *c = argv[1];
#define CASE(name, n) (strcmp(c, name) == 0 && argc == (n) + 2)
    if (CASE("wordcount", 2)) {
        weft_ds counts = weft_count_by_value(weft_flat_map(weft_text_file(argv[2], 4), split_words), 3);
        weft_save_as_text_file(weft_map(counts, count_line), argv[3]);
    } else if (CASE("join", 3)) {
        weft_ds left = weft_map(weft_text_file(argv[2], 2), key_and_number);
        weft_ds right = weft_map(weft_text_file(argv[3], 3), key_and_number);
        weft_save_as_text_file(weft_map(weft_join(left, right, 4), join_line), argv[4]);
    } else if (CASE("sort", 2)) {
        weft_ds sorted = weft_sort_by_key(weft_map(weft_text_file(argv[2], 3), first_word_key), true, 4);
        weft_save_as_text_file(weft_values(sorted), argv[3]);
    } else if (CASE("group", 2)) {
        weft_ds groups = weft_group_by_key(weft_map(weft_text_file(argv[2], 3), key_and_number), 3);
        weft_save_as_text_file(weft_map(groups, group_line), argv[3]);
    } else if (CASE("accumulate", 1)) {
        int64_t n = weft_count(weft_map(weft_text_file(argv[2], 4), measure));
        weft_info("count=%lld lines=%lld bytes=%lld", (long long)n, (long long)weft_accumulator_value("lines"),
                  (long long)weft_accumulator_value("bytes"));
    } else if (CASE("broadcast", 3)) {
        uint64_t word = weft_broadcast(argv[4], strlen(argv[4]));
        weft_save_as_text_file(weft_filter_with(weft_text_file(argv[2], 3), contains, word), argv[3]);
    } else if (CASE("cache", 1)) {
        weft_ds words = weft_cache(weft_flat_map(weft_text_file(argv[2], 4), split_words));
        int64_t first = weft_count(words), again = weft_count(words);
        int64_t distinct = weft_count(weft_distinct(words, 2));
        weft_info("words=%lld again=%lld distinct=%lld", (long long)first, (long long)again, (long long)distinct);
    } else if (CASE("fail", 1)) {
        weft_count(weft_map(weft_text_file(argv[2], 2), reject_bad));
    } else if (CASE("panic", 1)) {
        weft_count(weft_map(weft_text_file(argv[2], 2), divide));
    } else if (CASE("spin", 1)) {
        weft_count(weft_map(weft_text_file(argv[2], 2), spin));
    } else if (CASE("grow", 1)) {
        weft_count(weft_map(weft_text_file(argv[2], 2), grow));
    } else if (CASE("recurse", 1)) {
        weft_count(weft_map(weft_text_file(argv[2], 2), recurse));
    } else if (CASE("misuse", 1)) {
        /* (C only) A function of pairs given records: the kept error fails
         * the job, and the calls after it do nothing. */
        weft_ds lines = weft_text_file(argv[2], 2);
        weft_ds wrong = weft_map(lines, count_line);
        if (wrong != WEFT_NONE || weft_count(wrong) != -1) {
            return weft_fail("a misused step was accepted");
        }
    } else if (CASE("giant", 1)) {
        weft_count(weft_flat_map(weft_text_file(argv[2], 2), huge_output));
    } else {
        return weft_fail("no case `%s` with %d arguments", c, argc - 2);
    }
    return 0;
}
WEFT_MAIN(conformance);
