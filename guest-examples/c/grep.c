/*
 * grep in C: the lines of the input that contain a pattern.
 *
 *     weft local grep.wasm -- <pattern> <input-uri> <output-uri>
 *
 * writes the matching lines under the output URI and logs how many there
 * are, out of how many lines scanned.
 *
 * Tasks run in other instances of the component, so the pattern reaches the
 * filter as its bound parameter (a broadcast value, read with weft_param).
 * The lines scanned are counted with an accumulator, which the master sums
 * over the tasks that finished.
 */
#include <string.h>
#include <weft.h>

static int matches(weft_rec line) {
    weft_accumulate("lines scanned", 1);
    return weft_contains(line.val, weft_param());
}
WEFT_FILTER(matches, RECORD);

static int grep(int argc, char **argv) {
    if (argc != 4) {
        return weft_fail("usage: grep <pattern> <input-uri> <output-uri>");
    }
    const char *pattern = argv[1];
    uint64_t bound = weft_broadcast(pattern, strlen(pattern));
    weft_ds lines = weft_cache(weft_filter_with(weft_text_file(argv[2], 4), matches, bound));
    weft_save_as_text_file(lines, argv[3]);
    /* Read before the next action: as in Spark, an accumulator added to in a
     * transformation counts again whenever a later action recomputes it. */
    int64_t scanned = weft_accumulator_value("lines scanned");
    weft_info("%lld of %lld lines contain \"%s\"", (long long)weft_count(lines), (long long)scanned, pattern);
    return 0;
}
WEFT_MAIN(grep);
