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

/* One decode step for token `id` (as fr_session_decode) followed by the backend's `sample` op
 * on its logits (kernels/backend.h, fr_op_sample: temperature, top-k, top-p, min-p; no
 * penalties): *next gets the drawn id, the only data that comes back. On graph-recording
 * backends the step and the sample op are one recorded graph (re-recorded when *sp changes), and
 * the generator's counter advances on the device. The generator state is the session's: seeded
 * with fr_session_set_sample_seed (seed 0 if never seeded), one counter step per call.
 * FR_ERR_UNSUPPORTED when the backend has no `sample` op. */
fr_status fr_session_decode_sample(fr_session *s, int32_t id, const fr_sample_params *sp,
                                   int32_t *next, fr_error *err);
/* Restarts the session's device-side generator: seed, counter 0. */
fr_status fr_session_set_sample_seed(fr_session *s, uint64_t seed, fr_error *err);
/* Whether the generator was seeded, and with what. */
bool fr_session_sample_seed(const fr_session *s, uint64_t *seed);
/* Whether fr_generate samples with fr_session_decode_sample: by default on backends that
 * implement `sample` and record graphs (GPUs); the CPU keeps the host sampler. Turning it on
 * takes effect only where the backend implements `sample` (tests use it on the CPU). */
bool fr_session_device_sampling(const fr_session *s);
void fr_session_set_device_sampling(fr_session *s, bool on);

/* Decode steps are recorded once into a graph and replayed on backends that record graphs (on
 * by default there). Off runs every step's ops directly (and drops the recorded graph): for
 * tests comparing the two. */
void fr_session_set_graphs(fr_session *s, bool on);
/* Decode steps served by replaying the recorded graph so far. */
int64_t fr_session_graph_replays(const fr_session *s);

#endif
