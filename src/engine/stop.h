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

/* Appends a piece. On return *emit and *emit_len give text now safe to print (valid until the
 * next call). Returns true when a stop string matched: the emitted text is everything before it
 * and the stream is over. */
bool fr_stop_feed(fr_stop_matcher *m, const char *piece, size_t len, const char **emit,
                  size_t *emit_len);
/* End of stream without a match: releases the held-back text. */
void fr_stop_flush(fr_stop_matcher *m, const char **emit, size_t *emit_len);

#endif
