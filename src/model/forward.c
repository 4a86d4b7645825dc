/* The one decoder forward for the Llama family, built only from fr_op_* calls. Per layer:
 *   normed = rms_norm(x)                       (fused into the previous residual_norm)
 *   q,k,v  = normed W^T (+ bias); q,k: [per-head RMSNorm (Qwen3)] + RoPE; v: transpose
 *   K/V appended to the cache at their positions; attention (GQA, causal, optional window)
 * Where the backend offers them, fused ops stand in for sequences of these (one matmul_multi for
 * the three projections, attn_prepare for norm/RoPE/append, matmul_glu for gate, up and SiLU);
 * the math is the same (a fused op may skip rounding an intermediate to the compute dtype).
 *   x      = x + (attn W_o^T) * attn_scale;  normed = rms_norm(x)      (one residual_norm)
 *   x      = x + (silu(normed W_g^T) * normed W_u^T) W_d^T * mlp_scale; normed = next norm
 * The last residual_norm applies the final norm, so `normed` then feeds the LM head.
 * Dtypes (see fr_forward_state): x (`res`), the sublayer outputs (`proj`) and the logits are f32;
 * everything else, the KV cache included, is in the session's compute dtype, so with bf16/f16
 * compute each op reads and writes 16-bit tensors (computing in f32 inside) and the matmuls take
 * 16-bit inputs. The op sequence is the same for every compute dtype. With f32 compute the KV
 * cache may still be 16-bit (fr_kv_type): kv_append rounds each row into it and attention widens
 * the rows back as it reads them. */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "model/model.h"

/* ---------------------------------------------------------------- state */

typedef struct {
    size_t used;
    bool overflow;
} layout;

/* Reserves `count` elements of `elem` bytes, 64-byte aligned; returns the offset. */
static size_t reserve(layout *l, size_t count, size_t elem) {
    size_t bytes;
    if (__builtin_mul_overflow(count, elem, &bytes) || l->used > SIZE_MAX / 2 ||
        bytes > SIZE_MAX / 4) {
        l->overflow = true;
        return 0;
    }
    size_t off = fr_align_up(l->used, FR_ALIGN);
    l->used = off + bytes;
    return off;
}

void fr_forward_state_free(fr_forward_state *st) {
    if (!st) return;
    fr_buffer_free(&st->kv_buf);
    fr_buffer_free(&st->rope_buf);
    fr_buffer_free(&st->scratch);
    free(st->k_cache);
    free(st->v_cache);
    memset(st, 0, sizeof *st);
}

fr_status fr_forward_state_init(const fr_model *m, int n_ctx, int n_batch, fr_dtype compute,
                                fr_dtype kv, fr_forward_state *st, fr_error *err) {
    memset(st, 0, sizeof *st);
    const fr_config *c = &m->cfg;
    fr_backend *be = m->backend;
    if (n_ctx < 1 || n_batch < 1)
        return fr_error_set(err, FR_ERR_INVALID, "session: n_ctx %d and n_batch %d must be >= 1",
                            n_ctx, n_batch);
    if (compute != FR_DTYPE_F32 && compute != FR_DTYPE_BF16 && compute != FR_DTYPE_F16)
        return fr_error_set(err, FR_ERR_INVALID,
                            "session: compute type %s is not one of f32, bf16, f16",
                            fr_dtype_get(compute) ? fr_dtype_name(compute) : "?");
    /* Asked before anything is allocated, so a backend without 16-bit activations fails here
     * with one clear message rather than at its first op in the middle of a forward. */
    if (!fr_backend_accepts_act(be, compute))
        return fr_error_set(err, FR_ERR_UNSUPPORTED,
                            "session: %s compute needs 16-bit activations, which the %s backend "
                            "does not support (use f32 compute)",
                            fr_dtype_name(compute), fr_backend_name(be));
    if (kv != FR_DTYPE_F32 && kv != FR_DTYPE_BF16 && kv != FR_DTYPE_F16)
        return fr_error_set(err, FR_ERR_INVALID,
                            "session: KV cache type %s is not one of f32, bf16, f16",
                            fr_dtype_get(kv) ? fr_dtype_name(kv) : "?");
    /* with f32 activations every backend widens a 16-bit cache row as it reads it (the attention
     * ops take any cache dtype); 16-bit activations are appended and read in their own type */
    if (compute != FR_DTYPE_F32 && kv != compute)
        return fr_error_set(err, FR_ERR_UNSUPPORTED,
                            "session: a %s KV cache with %s compute (with 16-bit compute the "
                            "cache is of the compute type)",
                            fr_dtype_name(kv), fr_dtype_name(compute));
    if (n_batch > n_ctx) n_batch = n_ctx;
    const size_t C = (size_t)c->hidden, H = (size_t)c->n_heads, Hkv = (size_t)c->n_kv_heads,
                 D = (size_t)c->head_dim, F = (size_t)c->intermediate, V = (size_t)c->vocab,
                 T = (size_t)n_batch, L = (size_t)c->n_layers, N = (size_t)n_ctx;
    /* bytes per element: f32 for the residual stream, sublayer outputs and logits; the compute
     * dtype for everything a matmul reads */
    const size_t es = (size_t)fr_dtype_get(compute)->block_bytes;
    /* bounded so the lm_head scratch stays small even for 150k-token vocabularies */
    const size_t R = T < 32 ? T : 32;
    st->n_ctx = n_ctx;
    st->n_batch = n_batch;
    st->n_logit_rows = (int)R;
    st->compute = compute;
    st->kv = kv;

    /* KV cache: [L][K|V][Hkv, N, D] in the kv dtype */
    const size_t kes = (size_t)fr_dtype_get(kv)->block_bytes;
    layout kl = {0};
    size_t per = 0;
    if (__builtin_mul_overflow(Hkv * D, N, &per)) kl.overflow = true;
    size_t kv_off = reserve(&kl, per, 2 * L * kes);
    (void)kv_off;
    if (kl.overflow)
        return fr_error_set(err, FR_ERR_RANGE, "session: a KV cache of %d tokens is too large",
                            n_ctx);
    st->k_cache = calloc(L, sizeof *st->k_cache);
    st->v_cache = calloc(L, sizeof *st->v_cache);
    if (!st->k_cache || !st->v_cache) {
        fr_forward_state_free(st);
        return fr_error_set(err, FR_ERR_NOMEM, "session: out of memory");
    }
    fr_status s = fr_buffer_alloc(be, kl.used, &st->kv_buf, err);
    if (s) {
        fr_forward_state_free(st);
        return fr_error_prefix(err, s, "session: KV cache of %d tokens (%zu bytes)", n_ctx,
                               kl.used);
    }
    for (size_t l = 0; l < L; l++) {
        const size_t base = l * 2 * per * kes;
        st->k_cache[l] = fr_tensor_3d(&st->kv_buf, base, kv, (int64_t)Hkv, (int64_t)N, (int64_t)D);
        st->v_cache[l] =
            fr_tensor_3d(&st->kv_buf, base + per * kes, kv, (int64_t)Hkv, (int64_t)N, (int64_t)D);
    }

    /* RoPE table for every position the cache can hold */
    float *table = malloc(N * D * sizeof(float));
    if (!table) {
        fr_forward_state_free(st);
        return fr_error_set(err, FR_ERR_NOMEM, "session: out of memory for the RoPE table");
    }
    fr_rope_config rc = c->rope;
    rc.head_dim = (int)D;
    fr_rope_table_fill(&rc, n_ctx, table);
    s = fr_buffer_alloc(be, N * D * sizeof(float), &st->rope_buf, err);
    if (!s) s = fr_buffer_upload(&st->rope_buf, 0, table, N * D * sizeof(float), err);
    free(table);
    if (s) {
        fr_forward_state_free(st);
        return s;
    }
    st->rope = fr_tensor_2d(&st->rope_buf, 0, FR_DTYPE_F32, (int64_t)N, (int64_t)D);

    /* activations for one chunk of T tokens (every region 64-byte aligned, so 16-bit rows keep
     * the 16-byte alignment the vector loads of the GPU kernels look for) */
    layout a = {0};
    const size_t o_ids = reserve(&a, T, 4), o_pos = reserve(&a, T, 4);
    const size_t o_res = reserve(&a, T * C, 4), o_normed = reserve(&a, T * C, es);
    const size_t o_q = reserve(&a, T * H * D, es), o_k = reserve(&a, T * Hkv * D, es),
                 o_v = reserve(&a, T * Hkv * D, es);
    const size_t o_qr = reserve(&a, T * H * D, es), o_kr = reserve(&a, T * Hkv * D, es),
                 o_vr = reserve(&a, T * Hkv * D, es);
    const size_t o_attn = reserve(&a, T * H * D, es), o_proj = reserve(&a, T * C, 4);
    const size_t o_gate = reserve(&a, T * F, es), o_up = reserve(&a, T * F, es),
                 o_act = reserve(&a, T * F, es);
    const size_t o_logits = reserve(&a, R * V, 4);
    const size_t o_step = reserve(&a, 3, 4); /* id, position, argmax */
    if (a.overflow) {
        fr_forward_state_free(st);
        return fr_error_set(err, FR_ERR_RANGE, "session: batch of %d tokens is too large", n_batch);
    }
    s = fr_buffer_alloc(be, a.used, &st->scratch, err);
    if (s) {
        fr_forward_state_free(st);
        return fr_error_prefix(err, s, "session: activations (%zu bytes)", a.used);
    }
    fr_buffer *sb = &st->scratch;
    const int64_t t = (int64_t)T;
    const fr_dtype ct = compute;
    st->ids = fr_tensor_1d(sb, o_ids, FR_DTYPE_I32, t);
    st->pos = fr_tensor_1d(sb, o_pos, FR_DTYPE_I32, t);
    st->res = fr_tensor_2d(sb, o_res, FR_DTYPE_F32, t, (int64_t)C);
    st->normed = fr_tensor_2d(sb, o_normed, ct, t, (int64_t)C);
    st->q = fr_tensor_2d(sb, o_q, ct, t, (int64_t)(H * D));
    st->k = fr_tensor_2d(sb, o_k, ct, t, (int64_t)(Hkv * D));
    st->v = fr_tensor_2d(sb, o_v, ct, t, (int64_t)(Hkv * D));
    st->qr = fr_tensor_3d(sb, o_qr, ct, (int64_t)H, t, (int64_t)D);
    st->kr = fr_tensor_3d(sb, o_kr, ct, (int64_t)Hkv, t, (int64_t)D);
    st->vr = fr_tensor_3d(sb, o_vr, ct, (int64_t)Hkv, t, (int64_t)D);
    st->attn = fr_tensor_2d(sb, o_attn, ct, t, (int64_t)(H * D));
    /* f32: the sublayer output is added to the f32 residual stream, and rounding it to 16 bits
     * first would only add error (cuBLASLt writes f32 from 16-bit inputs at no extra cost) */
    st->proj = fr_tensor_2d(sb, o_proj, FR_DTYPE_F32, t, (int64_t)C);
    st->gate = fr_tensor_2d(sb, o_gate, ct, t, (int64_t)F);
    st->up = fr_tensor_2d(sb, o_up, ct, t, (int64_t)F);
    st->act = fr_tensor_2d(sb, o_act, ct, t, (int64_t)F);
    st->logits = fr_tensor_2d(sb, o_logits, FR_DTYPE_F32, (int64_t)R, (int64_t)V);
    st->step_in = fr_tensor_1d(sb, o_step, FR_DTYPE_I32, 2);
    st->step_ids = fr_tensor_1d(sb, o_step, FR_DTYPE_I32, 1);
    st->step_pos = fr_tensor_1d(sb, o_step + 4, FR_DTYPE_I32, 1);
    st->step_argmax = fr_tensor_1d(sb, o_step + 8, FR_DTYPE_I32, 1);
    return FR_OK;
}

/* ---------------------------------------------------------------- forward */

static const fr_tensor *opt(const fr_tensor *t) {
    return t->buf ? t : NULL;
}

/* [T, n*D] rows viewed as [T, n, D] (same memory). */
static fr_tensor heads_view(const fr_tensor *x, int64_t n, int64_t D) {
    return fr_tensor_3d(x->buf, x->offset, x->dtype, x->shape[0], n, D);
}

/* The first T tokens' worth of a [heads, n_batch, D] buffer, dense as [heads, T, D]. */
static fr_tensor head_major(const fr_tensor *x, int64_t T) {
    return fr_tensor_3d(x->buf, x->offset, x->dtype, x->shape[0], T, x->shape[2]);
}

static fr_status call_hook(const fr_model *m, fr_forward_state *st, int index, int pos0,
                           const fr_tensor *x, fr_error *err) {
    if (!st->hook) return FR_OK;
    FR_TRY(fr_backend_sync(m->backend, err));
    st->hook(st->hook_user, index, pos0, x);
    return FR_OK;
}

static fr_status layer_forward(const fr_model *m, fr_forward_state *st, int l, int64_t T,
                               const fr_tensor *pos, fr_tensor *res, fr_tensor *normed,
                               fr_error *err) {
    fr_backend *b = m->backend;
    const fr_config *c = &m->cfg;
    const fr_layer *L = &m->layers[l];
    const int64_t H = c->n_heads, Hkv = c->n_kv_heads, D = c->head_dim;
    const float eps = (float)c->norm_eps;

    fr_tensor q = fr_tensor_rows(&st->q, 0, T), k = fr_tensor_rows(&st->k, 0, T),
              v = fr_tensor_rows(&st->v, 0, T);
    if (fr_backend_has_fused(b, FR_FUSED_MATMUL_MULTI)) {
        const fr_tensor *w[3] = {&L->wq, &L->wk, &L->wv};
        const fr_tensor *bias[3] = {opt(&L->bq), opt(&L->bk), opt(&L->bv)};
        fr_tensor *out[3] = {&q, &k, &v};
        FR_TRY(fr_op_matmul_multi(b, normed, 3, w, bias, out, err));
    } else {
        FR_TRY(fr_op_matmul(b, normed, &L->wq, opt(&L->bq), &q, err));
        FR_TRY(fr_op_matmul(b, normed, &L->wk, opt(&L->bk), &k, err));
        FR_TRY(fr_op_matmul(b, normed, &L->wv, opt(&L->bv), &v, err));
    }

    const int mode = c->qk_norm ? FR_ROPE_MODE_NORM_ROPE : FR_ROPE_MODE_ROPE;
    fr_tensor q3 = heads_view(&q, H, D), k3 = heads_view(&k, Hkv, D), v3 = heads_view(&v, Hkv, D);
    fr_tensor qr = head_major(&st->qr, T);
    if (fr_backend_has_fused(b, FR_FUSED_ATTN_PREPARE)) {
        FR_TRY(fr_op_attn_prepare(b, &q3, &k3, &v3, opt(&L->q_norm), opt(&L->k_norm), &st->rope,
                                  pos, mode, eps, &qr, &st->k_cache[l], &st->v_cache[l], err));
    } else {
        fr_tensor kr = head_major(&st->kr, T), vr = head_major(&st->vr, T);
        FR_TRY(fr_op_qk_norm_rope(b, &q3, opt(&L->q_norm), &st->rope, pos, mode, eps, &qr, err));
        FR_TRY(fr_op_qk_norm_rope(b, &k3, opt(&L->k_norm), &st->rope, pos, mode, eps, &kr, err));
        FR_TRY(
            fr_op_qk_norm_rope(b, &v3, NULL, NULL, NULL, FR_ROPE_MODE_TRANSPOSE, 0.0f, &vr, err));
        FR_TRY(fr_op_kv_append(b, &kr, pos, &st->k_cache[l], err));
        FR_TRY(fr_op_kv_append(b, &vr, pos, &st->v_cache[l], err));
    }

    fr_tensor attn = fr_tensor_rows(&st->attn, 0, T);
    fr_tensor attn3 = heads_view(&attn, H, D);
    fr_attention_params ap = {.scale = 0.0f, .window = c->layer_window[l] ? c->sliding_window : 0};
    FR_TRY(fr_op_attention(b, &qr, &st->k_cache[l], &st->v_cache[l], pos, &ap, &attn3, err));

    fr_tensor proj = fr_tensor_rows(&st->proj, 0, T);
    FR_TRY(fr_op_matmul(b, &attn, &L->wo, opt(&L->bo), &proj, err));
    FR_TRY(fr_op_residual_norm(b, res, &proj, opt(&L->attn_scale), &L->mlp_norm, eps, res, normed,
                               err));

    fr_tensor gate = fr_tensor_rows(&st->gate, 0, T), up = fr_tensor_rows(&st->up, 0, T),
              act = fr_tensor_rows(&st->act, 0, T);
    if (fr_backend_has_fused(b, FR_FUSED_MATMUL_GLU)) {
        FR_TRY(fr_op_matmul_glu(b, normed, &L->w_gate, &L->w_up, opt(&L->b_gate), opt(&L->b_up),
                                &gate, &up, &act, err));
    } else {
        FR_TRY(fr_op_matmul(b, normed, &L->w_gate, opt(&L->b_gate), &gate, err));
        FR_TRY(fr_op_matmul(b, normed, &L->w_up, opt(&L->b_up), &up, err));
        FR_TRY(fr_op_silu_mul(b, &gate, &up, &act, err));
    }
    FR_TRY(fr_op_matmul(b, &act, &L->w_down, opt(&L->b_down), &proj, err));
    const fr_tensor *next_norm = l + 1 < c->n_layers ? &m->layers[l + 1].attn_norm : &m->final_norm;
    return fr_op_residual_norm(b, res, &proj, opt(&L->mlp_scale), next_norm, eps, res, normed, err);
}

static fr_status lm_head(const fr_model *m, fr_forward_state *st, const fr_tensor *normed,
                         int64_t row0, int64_t rows, float *out, fr_error *err) {
    const size_t V = (size_t)m->cfg.vocab;
    for (int64_t r = 0; r < rows; r += st->n_logit_rows) {
        int64_t n = rows - r < st->n_logit_rows ? rows - r : st->n_logit_rows;
        fr_tensor x = fr_tensor_rows(normed, row0 + r, n);
        fr_tensor y = fr_tensor_rows(&st->logits, 0, n);
        FR_TRY(fr_op_matmul(m->backend, &x, &m->lm_head, NULL, &y, err));
        FR_TRY(fr_backend_sync(m->backend, err));
        FR_TRY(fr_buffer_download(y.buf, y.offset, out + (size_t)r * V,
                                  (size_t)n * V * sizeof(float), err));
    }
    return FR_OK;
}

/* Embedding, every layer and the final norm for T tokens: `normed` ends up holding the LM head's
 * input. Only the hook syncs. */
static fr_status forward_body(const fr_model *m, fr_forward_state *st, const fr_tensor *ids,
                              const fr_tensor *pos, int64_t T, int pos0, fr_error *err) {
    fr_backend *b = m->backend;
    const fr_config *c = &m->cfg;
    fr_tensor res = fr_tensor_rows(&st->res, 0, T), normed = fr_tensor_rows(&st->normed, 0, T);
    FR_TRY(fr_op_embedding(b, &m->embed, ids, &res, err));
    FR_TRY(call_hook(m, st, 0, pos0, &res, err));
    FR_TRY(fr_op_rms_norm(b, &res, &m->layers[0].attn_norm, (float)c->norm_eps, &normed, err));
    for (int l = 0; l < c->n_layers; l++) {
        FR_TRY(layer_forward(m, st, l, T, pos, &res, &normed, err));
        FR_TRY(call_hook(m, st, l + 1, pos0, &res, err));
    }
    return call_hook(m, st, c->n_layers + 1, pos0, &normed, err);
}

fr_status fr_model_decode_ops(const fr_model *m, fr_forward_state *st, fr_error *err) {
    if (st->hook)
        return fr_error_set(err, FR_ERR_INVALID, "decode step: a hidden-state hook needs syncs");
    FR_TRY(forward_body(m, st, &st->step_ids, &st->step_pos, 1, 0, err));
    fr_tensor x = fr_tensor_rows(&st->normed, 0, 1), y = fr_tensor_rows(&st->logits, 0, 1);
    return fr_op_matmul(m->backend, &x, &m->lm_head, NULL, &y, err);
}

static fr_status forward_ops(const fr_model *m, fr_forward_state *st, int64_t T, int pos0,
                             int logits_mode, float *logits, fr_error *err) {
    fr_tensor ids = fr_tensor_rows(&st->ids, 0, T), pos = fr_tensor_rows(&st->pos, 0, T);
    fr_tensor normed = fr_tensor_rows(&st->normed, 0, T);
    FR_TRY(forward_body(m, st, &ids, &pos, T, pos0, err));
    if (logits_mode == FR_LOGITS_ALL) return lm_head(m, st, &normed, 0, T, logits, err);
    if (logits_mode == FR_LOGITS_LAST) return lm_head(m, st, &normed, T - 1, 1, logits, err);
    return fr_backend_sync(m->backend, err);
}

fr_status fr_model_forward(const fr_model *m, fr_forward_state *st, const int32_t *ids, int n,
                           int pos0, int logits_mode, float *logits, fr_error *err) {
    if (n < 1 || n > st->n_batch || pos0 < 0 || pos0 > st->n_ctx - n)
        return fr_error_set(err, FR_ERR_RANGE,
                            "forward: %d tokens at position %d do not fit (batch %d, context %d)",
                            n, pos0, st->n_batch, st->n_ctx);
    int32_t *pos = malloc((size_t)n * sizeof *pos);
    if (!pos) return fr_error_set(err, FR_ERR_NOMEM, "forward: out of memory");
    for (int i = 0; i < n; i++)
        pos[i] = pos0 + i;
    fr_status s = fr_buffer_upload(st->ids.buf, st->ids.offset, ids, (size_t)n * 4, err);
    if (!s) s = fr_buffer_upload(st->pos.buf, st->pos.offset, pos, (size_t)n * 4, err);
    free(pos);
    if (s) return s;
    s = fr_backend_begin(m->backend, err);
    if (s) return s;
    s = forward_ops(m, st, n, pos0, logits_mode, logits, err);
    fr_error end_err;
    fr_status e = fr_backend_end(m->backend, s ? &end_err : err);
    return s ? s : e;
}
