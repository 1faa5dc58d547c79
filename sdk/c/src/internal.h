/* The SDK's own declarations, shared by its files (not part of the API). */
#ifndef WEFT_INTERNAL_H
#define WEFT_INTERNAL_H

#include "weft.h"

#define WEFT__MAX_DEPTH 16

struct weft_out {
    uint8_t *buf;
    size_t len, cap;
    /* Where each open entry's length goes. */
    size_t open[WEFT__MAX_DEPTH];
    int depth;
    /* Entries written at the top level. */
    size_t entries;
};

/* Append bytes as they are (the SDK's own buffers; weft_append is the same
 * inside an open entry). */
void weft__bytes(weft_out *out, const void *bytes, size_t len);

/* Make room for `more` bytes: the check inline on every write, the growth
 * (weft__grow) out of line. */
void weft__grow(weft_out *out, size_t more);
static inline void weft__reserve(weft_out *out, size_t more) {
    if (out->cap - out->len < more) {
        weft__grow(out, more);
    }
}

/* A registered function. */
typedef struct weft__fn {
    const char *name;
    enum weft__kind kind;
    weft_shape in, out;
    void (*fn)(void);
    /* Registered by two functions (static ones in two files): refused. */
    bool twice;
} weft__fn;

/* The function registered under `name` (builtins included), or NULL. */
const weft__fn *weft__lookup(const char *name, size_t len);
/* "map", "filter", ... for messages. */
const char *weft__kind_name(enum weft__kind kind);
/* Every registered function, for the dispatcher's listing. */
const weft__fn *weft__functions(size_t *count);

/* A value did not decode: fails the running call with a decode error. */
void weft__decode_failed(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* weft_fail's message (the caller frees it), or NULL. */
char *weft__take_failure(void);

/* The running user function's name, for panics ("main" in the driver). */
extern const char *weft__running;

/* `s` (malloc'd) made valid UTF-8, U+FFFD for each bad byte; frees `s` when
 * it returns another string. */
char *weft__utf8(char *s);

/* vsnprintf into a malloc'd string. */
char *weft__vformat(const char *format, va_list ap);
char *weft__format(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* The job's main, defined by WEFT_MAIN. */
int weft__main(int argc, char **argv);

#endif
