/* Stop strings split across pieces, overlapping candidates, and pass-through without stops. */
#include <string.h>

#include "common/testutil.h"
#include "engine/stop.h"

/* Feeds the pieces, returns the concatenated emitted text and whether a stop matched. */
static int run(const char *const *stops, int n_stops, const char *const *pieces, int n_pieces,
               char *out, size_t cap) {
    fr_stop_matcher *m = NULL;
    fr_stop_create(stops, n_stops, &m, NULL);
    size_t used = 0;
    int stopped = 0;
    const char *e;
    size_t el;
    for (int i = 0; i < n_pieces && !stopped; i++) {
        stopped = fr_stop_feed(m, pieces[i], strlen(pieces[i]), &e, &el);
        if (used + el < cap) memcpy(out + used, e, el), used += el;
    }
    if (!stopped) {
        fr_stop_flush(m, &e, &el);
        if (used + el < cap) memcpy(out + used, e, el), used += el;
    }
    out[used] = 0;
    fr_stop_free(m);
    return stopped;
}

int main(void) {
    char out[256];
    const char *stops[] = {"<|im_end|>", "\n\nUser:"};
    int s = run(stops, 2, (const char *[]){"Hello", " world<|im", "_e", "nd|>tail"}, 4, out, sizeof out);
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
    fr_stop_create((const char *[]){"END"}, 1, &m, NULL);
    const char *e;
    size_t el;
    fr_stop_feed(m, "abcE", 4, &e, &el);
    CHECK(el == 3 && !memcmp(e, "abc", 3), "holds back only the possible prefix (%zu)", el);
    fr_stop_feed(m, "x", 1, &e, &el);
    CHECK(el == 2 && !memcmp(e, "Ex", 2), "releases it when the match fails (%zu)", el);
    fr_stop_free(m);
    return fr_test_finish("test_stop");
}
