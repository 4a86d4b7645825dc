/* Stop strings split across pieces, overlapping candidates, and pass-through without stops. */
#include <stdbool.h>
#include <string.h>

#include "common/testutil.h"
#include "engine/stop.h"

/* Feeds the pieces, returns the concatenated emitted text and whether a stop matched. */
static int run(const char *const *stops, int n_stops, const char *const *pieces, int n_pieces,
               char *out, size_t cap) {
    out[0] = 0;
    fr_stop_matcher *m = NULL;
    fr_error err = {0};
    CHECK(fr_stop_create(stops, n_stops, &m, &err) == FR_OK, "create: %s", err.msg);
    if (!m) return -1;
    size_t used = 0;
    bool stopped = false;
    const char *e;
    size_t el;
    for (int i = 0; i < n_pieces && !stopped; i++) {
        CHECK(fr_stop_feed(m, pieces[i], strlen(pieces[i]), &e, &el, &stopped, &err) == FR_OK,
              "feed: %s", err.msg);
        /* an empty emit is a valid pointer too: the caller may memcpy it as it is */
        CHECK(e != NULL, "feed of piece %d emitted a NULL text", i);
        if (e && used + el < cap) memcpy(out + used, e, el), used += el;
    }
    if (!stopped) {
        fr_stop_flush(m, &e, &el);
        CHECK(e != NULL, "flush emitted a NULL text");
        if (e && used + el < cap) memcpy(out + used, e, el), used += el;
    }
    out[used] = 0;
    fr_stop_free(m);
    return stopped;
}

int main(void) {
    char out[256];
    const char *stops[] = {"<|im_end|>", "\n\nUser:"};
    int s = run(stops, 2, (const char *[]){"Hello", " world<|im", "_e", "nd|>tail"}, 4, out,
                sizeof out);
    CHECK(s && !strcmp(out, "Hello world"), "split stop: stopped=%d '%s'", s, out);

    s = run(stops, 2, (const char *[]){"a\n", "\nUs", "er", ": hi"}, 4, out, sizeof out);
    CHECK(s && !strcmp(out, "a"), "stop across three pieces: '%s'", out);

    s = run(stops, 2, (const char *[]){"<|im", " not a stop", "\n\n"}, 3, out, sizeof out);
    CHECK(!s && !strcmp(out, "<|im not a stop\n\n"), "false start released at the end: '%s'", out);

    /* a piece that contains the start of one stop and the full other one */
    s = run(stops, 2, (const char *[]){"x<|im_e\n\nUser:"}, 1, out, sizeof out);
    CHECK(s && !strcmp(out, "x<|im_e"), "earliest full match wins: '%s'", out);

    s = run(NULL, 0, (const char *[]){"plain ", "text"}, 2, out, sizeof out);
    CHECK(!s && !strcmp(out, "plain text"), "no stop strings: '%s'", out);

    /* text is released as soon as it cannot begin a stop */
    fr_stop_matcher *m = NULL;
    CHECK(fr_stop_create((const char *[]){"END"}, 1, &m, NULL) == FR_OK, "create");
    if (!m) return fr_test_finish("test_stop");
    const char *e;
    size_t el;
    bool matched;
    CHECK(fr_stop_feed(m, "abcE", 4, &e, &el, &matched, NULL) == FR_OK && !matched, "feed");
    CHECK(el == 3 && !memcmp(e, "abc", 3), "holds back only the possible prefix (%zu)", el);
    CHECK(fr_stop_feed(m, "x", 1, &e, &el, &matched, NULL) == FR_OK && !matched, "feed");
    CHECK(el == 2 && !memcmp(e, "Ex", 2), "releases it when the match fails (%zu)", el);
    /* nothing to emit yet (a possible prefix held back, or an empty piece): an empty string,
     * not NULL (issue 16: a NULL text with length 0 reached memcpy) */
    CHECK(fr_stop_feed(m, "EN", 2, &e, &el, &matched, NULL) == FR_OK && !matched, "feed");
    CHECK(e != NULL && el == 0, "held-back prefix: emit %p length %zu", (const void *)e, el);
    CHECK(fr_stop_feed(m, "", 0, &e, &el, &matched, NULL) == FR_OK && !matched, "feed");
    CHECK(e != NULL && el == 0, "empty piece: emit %p length %zu", (const void *)e, el);
    CHECK(fr_stop_feed(m, "D!", 2, &e, &el, &matched, NULL) == FR_OK && matched && el == 0 &&
              e != NULL,
          "stop completed by the last piece: matched %d emit %p length %zu", (int)matched,
          (const void *)e, el);
    fr_stop_free(m);

    /* a fresh matcher's first call with nothing to emit (the reported reproducer) */
    m = NULL;
    CHECK(fr_stop_create((const char *[]){"<|im_end|>"}, 1, &m, NULL) == FR_OK, "create");
    if (m) {
        CHECK(fr_stop_feed(m, "<|", 2, &e, &el, &matched, NULL) == FR_OK && e && el == 0,
              "first feed, all held: emit %p", (const void *)e);
        fr_stop_free(m);
    }
    m = NULL;
    CHECK(fr_stop_create(NULL, 0, &m, NULL) == FR_OK, "create without stops");
    if (m) {
        fr_stop_flush(m, &e, &el);
        CHECK(e != NULL && el == 0, "flush of an empty matcher: emit %p", (const void *)e);
        fr_stop_free(m);
    }
    return fr_test_finish("test_stop");
}
