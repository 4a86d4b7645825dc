/* Sessions: one sequence's KV cache and activations over a shared, read-only model. Prefill runs
 * in chunks of n_batch tokens. A decode step (one token) is its own path: its ops read the token
 * id and position from device memory, so on backends that record graphs (CUDA) the step is
 * recorded once per session and replayed, with only {id, pos} uploaded before and the requested
 * logits or argmax brought back after. */
#include "engine/session.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "core/log.h"

struct fr_session {
    fr_model *model;
    fr_forward_state st;
    int pos;         /* tokens in the cache */
    bool graphs;     /* decode steps replay a recorded graph */
    void *graph;     /* the recorded decode step; NULL until the first step */
    int64_t replays; /* decode steps served by the graph */
    /* device-side sampling (fr_session_decode_sample): the `sample` op's generator state and
     * output in one small buffer, allocated on first use; the decode step followed by the
     * sample op recorded as a second graph, re-recorded when the filters change */
    bool device_sampling;
    fr_buffer smp_buf;
    fr_tensor smp_state, smp_out;
    bool smp_seeded;
    uint64_t smp_seed;
    void *smp_graph;
    fr_sample_params smp_graph_params;
};

fr_session_params fr_session_default_params(void) {
    fr_session_params p = {0};
    return p;
}

const char *fr_compute_type_name(fr_compute_type t) {
    switch (t) {
    case FR_COMPUTE_F32:
        return "f32";
    case FR_COMPUTE_BF16:
        return "bf16";
    case FR_COMPUTE_F16:
        return "f16";
    }
    return "?";
}

bool fr_compute_type_parse(const char *name, fr_compute_type *out) {
    static const fr_compute_type all[] = {FR_COMPUTE_F32, FR_COMPUTE_BF16, FR_COMPUTE_F16};
    for (size_t i = 0; name && i < sizeof all / sizeof all[0]; i++)
        if (!strcasecmp(name, fr_compute_type_name(all[i]))) {
            *out = all[i];
            return true;
        }
    return false;
}

const char *fr_kv_type_name(fr_kv_type t) {
    switch (t) {
    case FR_KV_DEFAULT:
        return "default";
    case FR_KV_F32:
        return "f32";
    case FR_KV_BF16:
        return "bf16";
    case FR_KV_F16:
        return "f16";
    case FR_KV_AUTO:
        return "auto";
    }
    return "?";
}

bool fr_kv_type_parse(const char *name, fr_kv_type *out) {
    for (int t = FR_KV_DEFAULT; name && t <= FR_KV_AUTO; t++)
        if (!strcasecmp(name, fr_kv_type_name((fr_kv_type)t))) {
            *out = (fr_kv_type)t;
            return true;
        }
    return false;
}

/* The KV cache dtype for kv type t (the session's, else the model's) with compute dtype
 * `compute`; false for a value outside the enum. */
static bool kv_dtype(const fr_model *m, fr_kv_type t, fr_dtype compute, fr_dtype *out) {
    if (t == FR_KV_DEFAULT) t = m->kv_type;
    switch (t) {
    case FR_KV_DEFAULT:
        *out = compute;
        return true;
    case FR_KV_AUTO:
        /* 16-bit activations are appended and read in their own type */
        *out = compute != FR_DTYPE_F32 ? compute : fr_backend_kv_auto_dtype(m->backend);
        return true;
    case FR_KV_F32:
        *out = FR_DTYPE_F32;
        return true;
    case FR_KV_BF16:
        *out = FR_DTYPE_BF16;
        return true;
    case FR_KV_F16:
        *out = FR_DTYPE_F16;
        return true;
    }
    return false;
}

/* The element type of the forward state's activations and KV cache; false for a value outside
 * the enum (a caller's uninitialised field). */
static bool compute_dtype(fr_compute_type t, fr_dtype *out) {
    switch (t) {
    case FR_COMPUTE_F32:
        *out = FR_DTYPE_F32;
        return true;
    case FR_COMPUTE_BF16:
        *out = FR_DTYPE_BF16;
        return true;
    case FR_COMPUTE_F16:
        *out = FR_DTYPE_F16;
        return true;
    }
    return false;
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
    /* GPUs (graph-capable backends) dequantize each weight once per prefill forward */
    if (p.n_batch == 0) p.n_batch = m->backend->ops->graph_capture_begin ? 2048 : 256;
    if (p.n_ctx > m->cfg.max_pos)
        return fr_error_set(err, FR_ERR_RANGE,
                            "session: n_ctx %d exceeds the model's max_position_embeddings %d",
                            p.n_ctx, m->cfg.max_pos);
    fr_dtype compute;
    if (!compute_dtype(p.compute, &compute))
        return fr_error_set(err, FR_ERR_INVALID,
                            "session: unknown compute type %d (expected "
                            "FR_COMPUTE_F32, _BF16 or _F16)",
                            (int)p.compute);
    fr_dtype kv;
    if (!kv_dtype(m, p.kv_type, compute, &kv))
        return fr_error_set(err, FR_ERR_INVALID,
                            "session: unknown kv type %d (expected FR_KV_DEFAULT, _F32, _BF16, "
                            "_F16 or _AUTO)",
                            (int)p.kv_type);
    fr_session *s = calloc(1, sizeof *s);
    if (!s) return fr_error_set(err, FR_ERR_NOMEM, "session: out of memory");
    s->model = m;
    s->graphs = m->backend->ops->graph_capture_begin != NULL;
    /* GPUs sample on the device by default; the CPU keeps the host sampler (same logits, no
     * copy to save) unless a caller opts in */
    s->device_sampling = m->backend->ops->sample && m->backend->ops->graph_capture_begin;
    fr_status st = fr_forward_state_init(m, p.n_ctx, p.n_batch, compute, kv, &s->st, err);
    if (st) {
        free(s);
        return st;
    }
    *out = s;
    return FR_OK;
}

void fr_session_free(fr_session *s) {
    if (!s) return;
    fr_graph_free(s->model->backend, s->graph);
    fr_graph_free(s->model->backend, s->smp_graph);
    fr_buffer_free(&s->smp_buf);
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
int fr_session_n_batch(const fr_session *s) {
    return s->st.n_batch;
}
fr_compute_type fr_session_compute(const fr_session *s) {
    return s->st.compute == FR_DTYPE_BF16  ? FR_COMPUTE_BF16
           : s->st.compute == FR_DTYPE_F16 ? FR_COMPUTE_F16
                                           : FR_COMPUTE_F32;
}
fr_kv_type fr_session_kv_type(const fr_session *s) {
    return s->st.kv == FR_DTYPE_BF16  ? FR_KV_BF16
           : s->st.kv == FR_DTYPE_F16 ? FR_KV_F16
                                      : FR_KV_F32;
}
fr_model *fr_session_model(const fr_session *s) {
    return s->model;
}

void fr_session_set_hidden_hook(fr_session *s, fr_hidden_hook fn, void *user) {
    s->st.hook = fn;
    s->st.hook_user = user;
}

void fr_session_set_graphs(fr_session *s, bool on) {
    pthread_mutex_lock(&s->model->lock);
    if (!on) {
        fr_graph_free(s->model->backend, s->graph);
        s->graph = NULL;
        fr_graph_free(s->model->backend, s->smp_graph);
        s->smp_graph = NULL;
    }
    s->graphs = on && s->model->backend->ops->graph_capture_begin != NULL;
    pthread_mutex_unlock(&s->model->lock);
}

int64_t fr_session_graph_replays(const fr_session *s) {
    return s->replays;
}

/* The decode step's ops, then (when sp is not NULL) the sample op on its logits row. */
static fr_status step_ops(fr_session *s, const fr_sample_params *sp, fr_error *err) {
    fr_status st = fr_model_decode_ops(s->model, &s->st, err);
    if (st || !sp) return st;
    fr_tensor row = fr_tensor_rows(&s->st.logits, 0, 1);
    return fr_op_sample(s->model->backend, &row, sp, &s->smp_state, &s->smp_out, err);
}

/* Records the decode step (followed by the sample op when sp is not NULL) into a graph. A
 * backend that fails to record leaves the session on direct execution (logged): a graph is a
 * speed-up, never a requirement. */
static void record_step(fr_session *s, const fr_sample_params *sp, void **out) {
    fr_backend *b = s->model->backend;
    fr_error err = {0}, op_err = {0};
    fr_status st = fr_graph_capture_begin(b, &err);
    if (!st) {
        const fr_status ops = step_ops(s, sp, &op_err);
        void *g = NULL;
        st = fr_graph_capture_end(b, &g, &err);
        if (ops) {
            st = ops;
            err = op_err;
        }
        if (st)
            fr_graph_free(b, g);
        else
            *out = g;
    }
    if (st) {
        FR_LOG_W("session: decode steps run without a graph: %s", err.msg);
        s->graphs = false;
    }
}

/* The token at s->pos; the caller validated it and holds the model lock. */
static fr_status decode_step(fr_session *s, int32_t id, float *logits, int32_t *next,
                             fr_error *err) {
    fr_backend *b = s->model->backend;
    fr_forward_state *st = &s->st;
    const int32_t in[2] = {id, s->pos};
    fr_status r = fr_buffer_upload(st->step_in.buf, st->step_in.offset, in, sizeof in, err);
    if (r) return r;
    r = fr_backend_begin(b, err);
    if (r) return r;
    if (s->graphs && !s->graph) record_step(s, NULL, &s->graph);
    if (s->graph) {
        r = fr_graph_launch(b, s->graph, err);
        if (!r) s->replays++;
    } else {
        r = fr_model_decode_ops(s->model, st, err);
    }
    fr_tensor row = fr_tensor_rows(&st->logits, 0, 1);
    if (!r && next) r = fr_op_argmax(b, &row, &st->step_argmax, err);
    if (!r) r = fr_backend_sync(b, err);
    if (!r && logits)
        r = fr_buffer_download(row.buf, row.offset, logits,
                               (size_t)s->model->cfg.vocab * sizeof(float), err);
    if (!r && next)
        r = fr_buffer_download(st->step_argmax.buf, st->step_argmax.offset, next, sizeof *next,
                               err);
    fr_error end_err;
    const fr_status e = fr_backend_end(b, r ? &end_err : err);
    if (!r && !e) s->pos++;
    return r ? r : e;
}

static fr_status check_eval(const fr_session *s, const int32_t *ids, int n, fr_error *err) {
    if (!s || (!ids && n > 0) || n < 0)
        return fr_error_set(err, FR_ERR_INVALID, "session eval: bad arguments");
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
    return FR_OK;
}

fr_status fr_session_decode(fr_session *s, int32_t id, float *logits, int32_t *next,
                            fr_error *err) {
    fr_status st = check_eval(s, &id, 1, err);
    if (st) return st;
    if (s->st.hook)
        return fr_error_set(err, FR_ERR_INVALID,
                            "session decode: not available while a hidden-state hook is set");
    pthread_mutex_lock(&s->model->lock);
    st = decode_step(s, id, logits, next, err);
    pthread_mutex_unlock(&s->model->lock);
    return st;
}

bool fr_session_device_sampling(const fr_session *s) {
    return s->device_sampling && !s->st.hook; /* a hook needs the synchronising forward */
}

void fr_session_set_device_sampling(fr_session *s, bool on) {
    s->device_sampling = on && s->model->backend->ops->sample;
}

/* The generator state and output of the sample op, allocated once (never during a capture). */
static fr_status sample_buffers(fr_session *s, fr_error *err) {
    if (s->smp_buf.data) return FR_OK;
    fr_status st = fr_buffer_alloc(s->model->backend, 64, &s->smp_buf, err);
    if (st) return st;
    s->smp_state = fr_tensor_1d(&s->smp_buf, 0, FR_DTYPE_I32, FR_SAMPLE_STATE_WORDS);
    s->smp_out = fr_tensor_1d(&s->smp_buf, 48, FR_DTYPE_I32, 1);
    return FR_OK;
}

static fr_status upload_seed(fr_session *s, uint64_t seed, fr_error *err) {
    fr_status st = sample_buffers(s, err);
    if (st) return st;
    int32_t words[FR_SAMPLE_STATE_WORDS];
    fr_sample_state_pack(seed, 0, words);
    st = fr_buffer_upload(&s->smp_buf, s->smp_state.offset, words, sizeof words, err);
    if (st) return st;
    s->smp_seeded = true;
    s->smp_seed = seed;
    return FR_OK;
}

fr_status fr_session_set_sample_seed(fr_session *s, uint64_t seed, fr_error *err) {
    pthread_mutex_lock(&s->model->lock);
    const fr_status st = upload_seed(s, seed, err);
    pthread_mutex_unlock(&s->model->lock);
    return st;
}

bool fr_session_sample_seed(const fr_session *s, uint64_t *seed) {
    if (s->smp_seeded && seed) *seed = s->smp_seed;
    return s->smp_seeded;
}

/* Only the id comes back from device sampling, so the logit of that id is fetched (4 bytes) to
 * tell a real token from garbage: the sample op skips NaN and -inf, hence the chosen logit is
 * non-finite only when no logit of the row was finite (corrupt weights give all-NaN rows), and
 * that row's "token 0" must not pass as generated text. */
static fr_status check_sampled(fr_session *s, int32_t id, fr_error *err) {
    const int V = s->model->cfg.vocab;
    if (id < 0 || id >= V)
        return fr_error_set(err, FR_ERR_BACKEND, "session: the sample op returned token %d of %d",
                            id, V);
    const fr_tensor row = fr_tensor_rows(&s->st.logits, 0, 1);
    float x;
    fr_status r =
        fr_buffer_download(row.buf, row.offset + (size_t)id * sizeof x, &x, sizeof x, err);
    if (r) return r;
    if (!isfinite(x))
        return fr_error_set(err, FR_ERR_RANGE,
                            "session: non-finite logits at position %d (the sampled token %d "
                            "has logit %s): the model's weights are corrupt or its activations "
                            "overflow",
                            s->pos, id,
                            isnan(x) ? "NaN"
                            : x > 0  ? "+inf"
                                     : "-inf");
    return FR_OK;
}

/* decode_step with the sample op after it: only the 4-byte id comes back. */
static fr_status decode_sample_step(fr_session *s, int32_t id, const fr_sample_params *sp,
                                    int32_t *next, fr_error *err) {
    fr_backend *b = s->model->backend;
    fr_status r = s->smp_seeded ? FR_OK : upload_seed(s, 0, err);
    const int32_t in[2] = {id, s->pos};
    if (!r) r = fr_buffer_upload(s->st.step_in.buf, s->st.step_in.offset, in, sizeof in, err);
    if (!r) r = fr_backend_begin(b, err);
    if (r) return r;
    /* the filters are kernel arguments: a graph recorded with other ones is recorded again */
    if (s->smp_graph && memcmp(&s->smp_graph_params, sp, sizeof *sp) != 0) {
        fr_graph_free(b, s->smp_graph);
        s->smp_graph = NULL;
    }
    if (s->graphs && !s->smp_graph) {
        record_step(s, sp, &s->smp_graph);
        if (s->smp_graph) s->smp_graph_params = *sp;
    }
    if (s->smp_graph) {
        r = fr_graph_launch(b, s->smp_graph, err);
        if (!r) s->replays++;
    } else {
        r = step_ops(s, sp, err);
    }
    if (!r) r = fr_backend_sync(b, err);
    if (!r) r = fr_buffer_download(&s->smp_buf, s->smp_out.offset, next, sizeof *next, err);
    if (!r) r = check_sampled(s, *next, err);
    fr_error end_err;
    const fr_status e = fr_backend_end(b, r ? &end_err : err);
    if (!r && !e) s->pos++;
    return r ? r : e;
}

fr_status fr_session_decode_sample(fr_session *s, int32_t id, const fr_sample_params *sp,
                                   int32_t *next, fr_error *err) {
    fr_status st = check_eval(s, &id, 1, err);
    if (st) return st;
    if (!next) return fr_error_set(err, FR_ERR_INVALID, "session decode_sample: NULL argument");
    st = fr_sample_params_check(sp, err); /* before a bad value could spoil a graph recording */
    if (st) return st;
    if (s->st.hook)
        return fr_error_set(err, FR_ERR_INVALID,
                            "session decode: not available while a hidden-state hook is set");
    if (!s->model->backend->ops->sample)
        return fr_error_set(err, FR_ERR_UNSUPPORTED, "backend '%s' does not implement sample",
                            fr_backend_name(s->model->backend));
    pthread_mutex_lock(&s->model->lock);
    st = decode_sample_step(s, id, sp, next, err);
    pthread_mutex_unlock(&s->model->lock);
    return st;
}

static fr_status eval(fr_session *s, const int32_t *ids, int n, float *logits, bool all,
                      fr_error *err) {
    fr_status chk = check_eval(s, ids, n, err);
    if (chk) return chk;
    if (n == 0) return FR_OK;
    pthread_mutex_lock(&s->model->lock);
    if (n == 1 && !s->st.hook) {
        /* a decode step: the recorded graph where the backend has one */
        chk = decode_step(s, ids[0], logits, NULL, err);
        pthread_mutex_unlock(&s->model->lock);
        return chk;
    }
    const int V = s->model->cfg.vocab;
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
