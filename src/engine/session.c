/* Sessions: one sequence's KV cache and activations over a shared, read-only model. Prefill runs
 * in chunks of n_batch tokens; a decode step is a chunk of one. */
#include "engine/session.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

struct fr_session {
    fr_model *model;
    fr_forward_state st;
    int pos; /* tokens in the cache */
};

fr_session_params fr_session_default_params(void) {
    fr_session_params p = {0};
    return p;
}

fr_status fr_session_create(fr_model *m, const fr_session_params *params, fr_session **out,
                            fr_error *err) {
    *out = NULL;
    if (!m) return fr_error_set(err, FR_ERR_INVALID, "fr_session_create: no model");
    fr_session_params p = params ? *params : fr_session_default_params();
    if (p.n_ctx < 0 || p.n_batch < 0)
        return fr_error_set(err, FR_ERR_INVALID, "session: negative n_ctx (%d) or n_batch (%d)",
                            p.n_ctx, p.n_batch);
    /* a sane default: never size the cache for a 40k or 128k maximum nobody asked for */
    if (p.n_ctx == 0) p.n_ctx = m->cfg.max_pos < 4096 ? m->cfg.max_pos : 4096;
    if (p.n_batch == 0) p.n_batch = 256;
    if (p.n_ctx > m->cfg.max_pos)
        return fr_error_set(err, FR_ERR_RANGE,
                            "session: n_ctx %d exceeds the model's max_position_embeddings %d",
                            p.n_ctx, m->cfg.max_pos);
    fr_session *s = calloc(1, sizeof *s);
    if (!s) return fr_error_set(err, FR_ERR_NOMEM, "session: out of memory");
    s->model = m;
    fr_status st = fr_forward_state_init(m, p.n_ctx, p.n_batch, &s->st, err);
    if (st) {
        free(s);
        return st;
    }
    *out = s;
    return FR_OK;
}

void fr_session_free(fr_session *s) {
    if (!s) return;
    fr_forward_state_free(&s->st);
    free(s);
}

void fr_session_reset(fr_session *s) {
    s->pos = 0;
}

fr_status fr_session_truncate(fr_session *s, int pos, fr_error *err) {
    if (pos < 0 || pos > s->pos)
        return fr_error_set(err, FR_ERR_RANGE, "session: cannot truncate %d tokens to %d", s->pos,
                            pos);
    s->pos = pos; /* later tokens are overwritten in place: attention never looks past pos */
    return FR_OK;
}

int fr_session_pos(const fr_session *s) {
    return s->pos;
}
int fr_session_n_ctx(const fr_session *s) {
    return s->st.n_ctx;
}
fr_model *fr_session_model(const fr_session *s) {
    return s->model;
}

void fr_session_set_hidden_hook(fr_session *s, fr_hidden_hook fn, void *user) {
    s->st.hook = fn;
    s->st.hook_user = user;
}

static fr_status eval(fr_session *s, const int32_t *ids, int n, float *logits, bool all,
                      fr_error *err) {
    if (!s || (!ids && n > 0) || n < 0)
        return fr_error_set(err, FR_ERR_INVALID, "session eval: bad arguments");
    if (n == 0) return FR_OK;
    if (n > s->st.n_ctx - s->pos)
        return fr_error_set(err, FR_ERR_RANGE,
                            "session: %d tokens at position %d exceed the context of %d tokens "
                            "(n_ctx)",
                            n, s->pos, s->st.n_ctx);
    const int V = s->model->cfg.vocab;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return fr_error_set(err, FR_ERR_INVALID, "session: token %d (id %d) outside [0, %d)", i,
                                ids[i], V);
    pthread_mutex_lock(&s->model->lock);
    fr_status st = FR_OK;
    for (int c = 0; c < n && !st; c += s->st.n_batch) {
        const int chunk = n - c < s->st.n_batch ? n - c : s->st.n_batch;
        const bool last = c + chunk == n;
        int mode = FR_LOGITS_NONE;
        float *out = NULL;
        if (logits && all) {
            mode = FR_LOGITS_ALL;
            out = logits + (size_t)c * (size_t)V;
        } else if (logits && last) {
            mode = FR_LOGITS_LAST;
            out = logits;
        }
        st = fr_model_forward(s->model, &s->st, ids + c, chunk, s->pos, mode, out, err);
        /* tokens written so far are valid cache entries even if a later chunk fails */
        if (!st) s->pos += chunk;
    }
    pthread_mutex_unlock(&s->model->lock);
    return st;
}

fr_status fr_session_eval(fr_session *s, const int32_t *ids, int n, float *logits, fr_error *err) {
    return eval(s, ids, n, logits, true, err);
}

fr_status fr_session_eval_last(fr_session *s, const int32_t *ids, int n, float *logits,
                               fr_error *err) {
    return eval(s, ids, n, logits, false, err);
}
