/* The generic decoder (Llama family): loaded model, per-sequence forward state, and the forward
 * pass. Internal: the public face is fr_model / fr_session in ferrum.h. Model code talks to the
 * hardware only through the fr_op_* wrappers of kernels/backend.h. */
#ifndef FR_MODEL_MODEL_H
#define FR_MODEL_MODEL_H

#include <pthread.h>

#include "ferrum.h"
#include "kernels/backend.h"
#include "model/config.h"
#include "model/weights.h"

/* One decoder layer. Matrices point into the wrapped weight regions in their stored dtype;
 * vectors (norms, biases, scales) are f32 copies. Unused optional tensors have buf == NULL. */
typedef struct fr_layer {
    fr_tensor attn_norm, mlp_norm;   /* [C] */
    fr_tensor wq, wk, wv, wo;        /* [H*D, C], [Hkv*D, C], [Hkv*D, C], [C, H*D] */
    fr_tensor bq, bk, bv, bo;        /* biases (qkv_bias / o_bias) */
    fr_tensor q_norm, k_norm;        /* [D] (qk_norm) */
    fr_tensor w_gate, w_up, w_down;  /* [F, C], [F, C], [C, F] */
    fr_tensor b_gate, b_up, b_down;  /* (mlp_bias) */
    fr_tensor attn_scale, mlp_scale; /* [C] (layer_scale) */
} fr_layer;

struct fr_model {
    char *path;
    fr_config cfg;
    fr_backend *backend;
    fr_weight_source *src;
    fr_buffer *region_bufs; /* one per source region, wrapping the mapped file */
    size_t *region_shift;   /* where byte 0 of each region sits in its buffer */
    int n_region_bufs;
    fr_buffer vec_buf; /* every f32 vector */
    fr_tensor embed, lm_head, final_norm;
    fr_layer *layers;
    int64_t n_params;
    size_t weight_bytes;
    char dtypes[64];
    fr_kv_type kv_type;   /* fr_model_params.kv_type: the default of its sessions */
    pthread_mutex_t lock; /* one forward at a time per model (the backend is not re-entrant) */
};

/* Builds a model from an already parsed config and an open weight source, whatever their file
 * format; takes ownership of src (freed on failure too). path is used in messages. */
fr_status fr_model_load_from_source(const char *path, const fr_config *cfg, fr_weight_source *src,
                                    const fr_model_params *params, fr_model **out, fr_error *err);

/* ---------------------------------------------------------------- forward state */

/* Called after the embedding (index 0), after each layer i (index i+1, the residual stream) and
 * after the final norm (index n_layers+1), with x = [T, C] on the model's backend holding
 * positions pos0 .. pos0+T-1: f32, except the final norm's output, which is in the state's
 * compute dtype (st->compute). For tests (the Hugging Face hidden_states). */
typedef void (*fr_hidden_hook)(void *user, int index, int pos0, const fr_tensor *x);

/* Buffer dtypes: `res` (the residual stream), `proj` (each sublayer's output, added to res) and
 * `logits` are always f32; every other activation is in the compute dtype `compute` (f32, bf16
 * or f16), so with a 16-bit one every matmul reads 16-bit inputs. The KV cache is in `kv`. */
typedef struct fr_forward_state {
    int n_ctx, n_batch, n_logit_rows;
    fr_dtype compute;   /* compute dtype */
    fr_dtype kv;        /* KV cache dtype: the compute dtype, or a 16-bit one with f32 compute */
    fr_buffer kv_buf;   /* all layers' K and V caches */
    fr_tensor *k_cache; /* [n_layers] of [Hkv, n_ctx, D] kv */
    fr_tensor *v_cache;
    fr_buffer rope_buf;
    fr_tensor rope; /* [n_ctx, D] f32 */
    fr_buffer scratch;
    fr_tensor ids, pos;      /* [n_batch] i32 */
    fr_tensor res;           /* [n_batch, C] f32 */
    fr_tensor normed;        /* [n_batch, C] compute */
    fr_tensor q, k, v;       /* [n_batch, H*D], [n_batch, Hkv*D] x2, compute */
    fr_tensor qr, kr, vr;    /* [H, n_batch, D], [Hkv, n_batch, D] x2, compute */
    fr_tensor attn;          /* [n_batch, H*D] compute */
    fr_tensor proj;          /* [n_batch, C] f32 */
    fr_tensor gate, up, act; /* [n_batch, F] compute */
    fr_tensor logits;        /* [n_logit_rows, V] f32 */
    /* decode steps: {token id, position} in one [2] i32 (one 8-byte upload per step), viewed as
     * the [1] ids and positions the step's ops read; argmax [1] i32 of the step's logits */
    fr_tensor step_in, step_ids, step_pos, step_argmax;
    fr_hidden_hook hook;
    void *hook_user;
} fr_forward_state;

/* compute: the compute dtype (FR_DTYPE_F32, _BF16 or _F16); a 16-bit one needs a backend that
 * accepts 16-bit activations (FR_ERR_UNSUPPORTED otherwise). kv: the KV cache dtype, any of those
 * three with f32 compute, the compute dtype itself otherwise (FR_ERR_UNSUPPORTED). */
fr_status fr_forward_state_init(const fr_model *m, int n_ctx, int n_batch, fr_dtype compute,
                                fr_dtype kv, fr_forward_state *st, fr_error *err);
void fr_forward_state_free(fr_forward_state *st);

enum { FR_LOGITS_NONE = 0, FR_LOGITS_LAST = 1, FR_LOGITS_ALL = 2 };

/* Runs n <= n_batch tokens at positions pos0.. (caller checked pos0 + n <= n_ctx and the ids).
 * logits (host) gets n rows (ALL), one row (LAST) or nothing (NONE). */
fr_status fr_model_forward(const fr_model *m, fr_forward_state *st, const int32_t *ids, int n,
                           int pos0, int logits_mode, float *logits, fr_error *err);

/* One decode step as device work only: no host sync, no copy, no hook (st->hook must be NULL),
 * so it can be recorded into a graph once and replayed. Reads the token id and position from
 * st->step_in (the caller uploads {id, pos} before each run or replay), appends to the KV cache
 * and leaves the logits in row 0 of st->logits. Call between fr_backend_begin and _end. */
fr_status fr_model_decode_ops(const fr_model *m, fr_forward_state *st, fr_error *err);

#endif
