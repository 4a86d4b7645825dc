#include "engine/stop.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

struct fr_stop_matcher {
    char **stops;
    size_t *lens;
    int n;
    char *held; /* text not yet emitted: a possible start of a stop string */
    size_t held_len, held_cap;
    char *out; /* text handed to the caller by the last call */
    size_t out_cap;
};

static bool reserve(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    char *p = realloc(*buf, c);
    if (!p) return false;
    *buf = p;
    *cap = c;
    return true;
}

fr_status fr_stop_create(const char *const *stops, int n_stops, fr_stop_matcher **out,
                         fr_error *err) {
    fr_stop_matcher *m = calloc(1, sizeof *m);
    if (!m) return fr_error_set(err, FR_ERR_NOMEM, "stop strings: out of memory");
    m->stops = calloc((size_t)(n_stops > 0 ? n_stops : 1), sizeof *m->stops);
    m->lens = calloc((size_t)(n_stops > 0 ? n_stops : 1), sizeof *m->lens);
    if (!m->stops || !m->lens) goto nomem;
    for (int i = 0; i < n_stops; i++) {
        if (!stops[i] || !stops[i][0]) continue;
        if (!(m->stops[m->n] = strdup(stops[i]))) goto nomem;
        m->lens[m->n++] = strlen(stops[i]);
    }
    /* both buffers exist from the start, so an empty emit is a valid pointer, never NULL */
    if (!reserve(&m->held, &m->held_cap, 64) || !reserve(&m->out, &m->out_cap, 64)) goto nomem;
    *out = m;
    return FR_OK;
nomem:
    fr_stop_free(m);
    return fr_error_set(err, FR_ERR_NOMEM, "stop strings: out of memory");
}

void fr_stop_free(fr_stop_matcher *m) {
    if (!m) return;
    for (int i = 0; i < m->n; i++)
        free(m->stops[i]);
    free(m->stops);
    free(m->lens);
    free(m->held);
    free(m->out);
    free(m);
}

void fr_stop_reset(fr_stop_matcher *m) {
    m->held_len = 0;
}

/* Length of the longest suffix of s[0..n) that is a proper prefix of some stop string. */
static size_t partial_suffix(const fr_stop_matcher *m, const char *s, size_t n) {
    size_t best = 0;
    for (int i = 0; i < m->n; i++) {
        size_t max = m->lens[i] - 1 < n ? m->lens[i] - 1 : n;
        for (size_t k = max; k > best; k--)
            if (!memcmp(s + n - k, m->stops[i], k)) {
                best = k;
                break;
            }
    }
    return best;
}

static void hand_out(fr_stop_matcher *m, size_t n, const char **emit, size_t *emit_len) {
    /* the caller may keep the pointer until the next call, so copy out of `held`; fr_stop_feed
     * keeps out_cap >= held_cap, so this cannot run out of room */
    if (n) memcpy(m->out, m->held, n);
    memmove(m->held, m->held + n, m->held_len - n);
    m->held_len -= n;
    *emit = m->out;
    *emit_len = n;
}

fr_status fr_stop_feed(fr_stop_matcher *m, const char *piece, size_t len, const char **emit,
                       size_t *emit_len, bool *matched, fr_error *err) {
    *emit = m->out;
    *emit_len = 0;
    *matched = false;
    if (len > SIZE_MAX / 4 - m->held_len ||
        !reserve(&m->held, &m->held_cap, m->held_len + len + 1) ||
        !reserve(&m->out, &m->out_cap, m->held_cap))
        return fr_error_set(err, FR_ERR_NOMEM, "stop strings: out of memory holding %zu bytes",
                            m->held_len + len);
    *emit = m->out;
    if (len) memcpy(m->held + m->held_len, piece, len);
    m->held_len += len;
    /* earliest full match wins */
    size_t first = (size_t)-1;
    for (int i = 0; i < m->n; i++) {
        if (m->lens[i] > m->held_len) continue;
        for (size_t at = 0; at + m->lens[i] <= m->held_len && at < first; at++)
            if (!memcmp(m->held + at, m->stops[i], m->lens[i])) {
                first = at;
                break;
            }
    }
    if (first != (size_t)-1) {
        hand_out(m, first, emit, emit_len);
        m->held_len = 0;
        *matched = true;
        return FR_OK;
    }
    hand_out(m, m->held_len - partial_suffix(m, m->held, m->held_len), emit, emit_len);
    return FR_OK;
}

void fr_stop_flush(fr_stop_matcher *m, const char **emit, size_t *emit_len) {
    hand_out(m, m->held_len, emit, emit_len);
}
