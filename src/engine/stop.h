/* Stop strings over streamed text. Generated text arrives in pieces (one detokenized token at a
 * time); a stop string may straddle pieces. The matcher passes text through as soon as it can no
 * longer be the start of a stop string and holds back the rest; a full match ends the stream and
 * the stop string itself is never emitted. */
#ifndef FR_ENGINE_STOP_H
#define FR_ENGINE_STOP_H

#include <stdbool.h>
#include <stddef.h>

#include "ferrum.h"

typedef struct fr_stop_matcher fr_stop_matcher;

/* Copies the strings; empty strings are ignored. */
fr_status fr_stop_create(const char *const *stops, int n_stops, fr_stop_matcher **out,
                         fr_error *err);
void fr_stop_free(fr_stop_matcher *m);
void fr_stop_reset(fr_stop_matcher *m);

/* Appends a piece. On FR_OK, *emit and *emit_len give text now safe to print (never NULL, also
 * when empty; valid until the next call) and *matched tells whether a stop string matched: the
 * emitted text is then everything before it and the stream is over. FR_ERR_NOMEM when the piece
 * cannot be held: nothing is emitted and the matcher is as before the call. */
fr_status fr_stop_feed(fr_stop_matcher *m, const char *piece, size_t len, const char **emit,
                       size_t *emit_len, bool *matched, fr_error *err);
/* End of stream without a match: releases the held-back text (never fails: the output buffer
 * always has room for what is held). */
void fr_stop_flush(fr_stop_matcher *m, const char **emit, size_t *emit_len);

#endif
