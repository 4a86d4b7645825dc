/* Session internals that tests may reach (not part of the public API). */
#ifndef FR_ENGINE_SESSION_H
#define FR_ENGINE_SESSION_H

#include "ferrum.h"
#include "model/model.h"

/* Installs a hook called with the hidden state after the embedding, after every layer and after
 * the final norm (see fr_hidden_hook); NULL removes it. */
void fr_session_set_hidden_hook(fr_session *s, fr_hidden_hook fn, void *user);

/* The model a session runs. */
fr_model *fr_session_model(const fr_session *s);

/* One decode step for token `id` at the session's position: logits (vocab floats) and/or next
 * (the argmax of those logits, computed on the device: 4 bytes come back instead of the row)
 * may each be NULL. Same checks as fr_session_eval; FR_ERR_INVALID while a hidden-state hook is
 * set. fr_session_eval / _eval_last of one token take the same path. */
fr_status fr_session_decode(fr_session *s, int32_t id, float *logits, int32_t *next, fr_error *err);

/* Decode steps are recorded once into a graph and replayed on backends that record graphs (on
 * by default there). Off runs every step's ops directly (and drops the recorded graph): for
 * tests comparing the two. */
void fr_session_set_graphs(fr_session *s, bool on);
/* Decode steps served by replaying the recorded graph so far. */
int64_t fr_session_graph_replays(const fr_session *s);

#endif
