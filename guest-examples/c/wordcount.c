/*
 * Word count in C: every word of the input with its number of occurrences.
 *
 *     weft local wordcount.wasm -- <input-uri> <output-uri>
 *
 * writes `word<TAB>count` lines under the output URI and logs the ten most
 * frequent words.
 */
#include <stdio.h>
#include <weft.h>

/* Each byte lowercased (ASCII letters; other bytes as they are), and -1 for
 * ASCII white space: the bytes str::split_whitespace splits an ASCII line on. */
static int16_t folded[256];

__attribute__((constructor)) static void fill_folded(void) {
    for (int c = 0; c < 256; c++) {
        folded[c] = (int16_t)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
    }
    static const char space[] = " \t\n\v\f\r";
    for (const char *s = space; *s; s++) {
        folded[(uint8_t)*s] = -1;
    }
}

/* Each lowercased word of a line as a pair (word, 1). */
static int split_words(weft_rec line, weft_out *out) {
    const uint8_t *p = line.val.ptr, *end = p + line.val.len;
    uint8_t word[256];
    for (;;) {
        while (p < end && folded[*p] < 0) {
            p++;
        }
        if (p == end) {
            return 0;
        }
        size_t n = 0;
        for (; p < end && folded[*p] >= 0; p++, n++) {
            if (n < sizeof word) {
                word[n] = (uint8_t)folded[*p];
            }
        }
        if (n <= sizeof word) {
            weft_put(out, word, n);
        } else { /* a word longer than the buffer: lowercased again, into the output */
            weft_open(out);
            for (const uint8_t *c = p - n; c < p; c++) {
                uint8_t lowered = (uint8_t)folded[*c];
                weft_append(out, &lowered, 1);
            }
            weft_close(out);
        }
        weft_put_i64(out, 1);
    }
}
WEFT_FLAT_MAP(split_words, RECORD, PAIR);

/* (Summed as unsigned: wrapping, where a signed overflow is undefined.) */
static int64_t add(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
WEFT_REDUCE_I64(add);

/* One output line. */
static int format(weft_rec pair, weft_out *out) {
    weft_printf(out, "%.*s\t%lld", WEFT_STR(pair.key), (long long)weft_i64(pair.val));
    return 0;
}
WEFT_MAP(format, PAIR, RECORD);

/* Keyed by count, to sort by it. */
static int by_count(weft_rec pair, weft_out *out) {
    weft_put_val(out, pair.val);
    weft_put_val(out, pair.key);
    return 0;
}
WEFT_MAP(by_count, PAIR, PAIR);

static int wordcount(int argc, char **argv) {
    if (argc != 3) {
        return weft_fail("usage: wordcount <input-uri> <output-uri>");
    }
    weft_ds counts = weft_cache(weft_reduce_by_key(weft_flat_map(weft_text_file(argv[1], 4), split_words), add, 0));
    weft_save_as_text_file(weft_map(counts, format), argv[2]);
    weft_info("%lld distinct words", (long long)weft_count(counts));
    /* Sorted into 4 ranges of counts (sampled first), largest first. */
    weft_batch top = weft_take(weft_sort_by_key(weft_map(counts, by_count), false, 4), 10);
    weft_reader r = weft_read_batch(top);
    weft_rec rec;
    while (weft_next_rec(&r, WEFT_PAIR, &rec)) {
        weft_info("%.*s: %lld", WEFT_STR(rec.val), (long long)weft_i64(rec.key));
    }
    weft_batch_free(&top);
    return 0;
}
WEFT_MAIN(wordcount);
