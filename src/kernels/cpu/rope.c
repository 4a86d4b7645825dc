/* qk_norm_rope: [T,H,D] -> [H,T,D] with optional per-head RMSNorm (mode 1) and half-split RoPE
 * (modes 1, 2): pairs (i, i+D/2) rotated by the angle in row pos[t] of the [P, D] cos|sin table,
 *   out[i]       = x[i] cos - x[i+D/2] sin
 *   out[i+D/2]   = x[i+D/2] cos + x[i] sin
 * which is Hugging Face's q*cos + rotate_half(q)*sin.
 * attn_prepare: the same for q and k plus kv_append of k and v, one pool run for all of it. */
#include <math.h>

#include "kernels/cpu/cpu_ops.h"

typedef struct {
    const fr_tensor *x, *out, *rope;
    const float *norm_w;
    const int32_t *pos;
    int mode;
    float eps;
    int64_t H, D;
} rope_args;

/* One head: o[0..D) = x copied (mode 0), or RMSNorm'd with w (mode 1) and rotated by the cos|sin
 * row cs (modes 1, 2). Shared by qk_norm_rope and attn_prepare so both give the same bits. */
static void rope_row(const float *x, float *o, const float *cs, const float *norm_w, int mode,
                     float eps, int64_t D) {
    const int64_t half = D / 2;
    if (mode == FR_ROPE_MODE_TRANSPOSE) {
        for (int64_t i = 0; i < D; i++)
            o[i] = x[i];
        return;
    }
    float r = 1.0f;
    const float *w = NULL;
    if (mode == FR_ROPE_MODE_NORM_ROPE) {
        float ss = 0;
        for (int64_t i = 0; i < D; i++)
            ss += x[i] * x[i];
        r = 1.0f / sqrtf(ss / (float)D + eps);
        w = norm_w;
    }
    for (int64_t i = 0; i < half; i++) {
        float a = x[i] * r, b = x[i + half] * r;
        if (w) {
            a *= w[i];
            b *= w[i + half];
        }
        const float c = cs[i], s = cs[half + i];
        o[i] = a * c - b * s;
        o[i + half] = b * c + a * s;
    }
}

static void rope_task(void *varg, int64_t t, int thread) {
    const rope_args *g = varg;
    const float *cs = NULL;
    if (g->mode != FR_ROPE_MODE_TRANSPOSE) cs = (const float *)fr_cpu_at2(g->rope, g->pos[t]);
    for (int64_t h = 0; h < g->H; h++)
        rope_row((const float *)fr_cpu_at3(g->x, t, h), (float *)fr_cpu_at3(g->out, h, t), cs,
                 g->norm_w, g->mode, g->eps, g->D);
}

fr_status fr_cpu_qk_norm_rope(void *vctx, const fr_tensor *x, const fr_tensor *norm_w,
                              const fr_tensor *rope, const fr_tensor *pos, int mode, float eps,
                              fr_tensor *out, fr_error *err) {
    if (x->dtype != FR_DTYPE_F32)
        return fr_cpu_unsupported_dtype(err, "qk_norm_rope", "x", x, "f32 activations only");
    if (out->dtype != FR_DTYPE_F32)
        return fr_cpu_unsupported_dtype(err, "qk_norm_rope", "out", out, "f32 activations only");
    const int64_t T = x->shape[0];
    rope_args g = {x, out, rope, NULL, NULL, mode, eps, x->shape[1], x->shape[2]};
    if (mode != FR_ROPE_MODE_TRANSPOSE) {
        g.pos = (const int32_t *)fr_cpu_at2(pos, 0);
        for (int64_t t = 0; t < T; t++)
            if (g.pos[t] < 0 || g.pos[t] >= rope->shape[0])
                return fr_error_set(err, FR_ERR_RANGE,
                                    "cpu qk_norm_rope: pos[%lld] = %d outside the rope table's "
                                    "%lld positions",
                                    (long long)t, g.pos[t], (long long)rope->shape[0]);
    }
    if (mode == FR_ROPE_MODE_NORM_ROPE) g.norm_w = (const float *)fr_cpu_at2(norm_w, 0);
    fr_cpu_run(vctx, T, 8.0 * (double)T * (double)g.H * (double)g.D, rope_task, &g);
    return FR_OK;
}

/* ------------------------------------------------------------------ attn_prepare */

typedef struct {
    fr_cpu_ctx *ctx;
    const fr_tensor *q, *k, *v, *rope, *q_out, *k_cache, *v_cache;
    const float *q_norm, *k_norm;
    const int32_t *pos;
    int mode;
    float eps;
    int64_t H, Hkv, D;
    int failed; /* a task found no scratch (cannot happen: reserved before the run) */
} prep_args;

/* Task = (token t, head j) over H query heads, then Hkv key heads, then Hkv value heads: each
 * does what its unfused op would (rope_row, then kv_append's row conversion). */
static void prep_task(void *varg, int64_t task, int thread) {
    prep_args *g = varg;
    const int64_t nh = g->H + 2 * g->Hkv, t = task / nh;
    int64_t j = task % nh;
    const float *cs = (const float *)fr_cpu_at2(g->rope, g->pos[t]);
    if (j < g->H) {
        rope_row((const float *)fr_cpu_at3(g->q, t, j), (float *)fr_cpu_at3(g->q_out, j, t), cs,
                 g->q_norm, g->mode, g->eps, g->D);
        return;
    }
    j -= g->H;
    if (j < g->Hkv) {
        const fr_dtype ct = g->k_cache->dtype;
        void *dst = fr_cpu_at3(g->k_cache, j, g->pos[t]);
        /* an f32 cache row takes the result directly; others get it converted from f32 */
        float *row =
            ct == FR_DTYPE_F32 ? dst : fr_cpu_scratch(g->ctx, thread, sizeof(float) * g->D);
        if (!row) {
            g->failed = 1;
            return;
        }
        rope_row((const float *)fr_cpu_at3(g->k, t, j), row, cs, g->k_norm, g->mode, g->eps, g->D);
        if (row != dst) fr_cpu_row_from_f32(ct, row, dst, g->D);
        return;
    }
    j -= g->Hkv;
    fr_cpu_row_from_f32(g->v_cache->dtype, (const float *)fr_cpu_at3(g->v, t, j),
                        fr_cpu_at3(g->v_cache, j, g->pos[t]), g->D);
}

fr_status fr_cpu_attn_prepare(void *vctx, const fr_tensor *q, const fr_tensor *k,
                              const fr_tensor *v, const fr_tensor *q_norm, const fr_tensor *k_norm,
                              const fr_tensor *rope, const fr_tensor *pos, int mode, float eps,
                              fr_tensor *q_out, fr_tensor *k_cache, fr_tensor *v_cache,
                              fr_error *err) {
    fr_cpu_ctx *ctx = vctx;
    const fr_tensor *acts[] = {q, k, v, q_out};
    const char *names[] = {"q", "k", "v", "q_out"};
    for (int i = 0; i < 4; i++)
        if (acts[i]->dtype != FR_DTYPE_F32)
            return fr_cpu_unsupported_dtype(err, "attn_prepare", names[i], acts[i],
                                            "f32 activations only");
    const int64_t T = q->shape[0], P = rope->shape[0], L = k_cache->shape[1];
    const int32_t *p = (const int32_t *)fr_cpu_at2(pos, 0);
    /* every position first, so a bad one leaves q_out and both caches untouched */
    for (int64_t t = 0; t < T; t++) {
        if (p[t] < 0 || p[t] >= P)
            return fr_error_set(err, FR_ERR_RANGE,
                                "cpu attn_prepare: pos[%lld] = %d outside the rope table's "
                                "%lld positions",
                                (long long)t, p[t], (long long)P);
        if (p[t] >= L)
            return fr_error_set(err, FR_ERR_RANGE,
                                "cpu attn_prepare: pos[%lld] = %d outside the cache's %lld slots",
                                (long long)t, p[t], (long long)L);
    }
    prep_args g = {.ctx = ctx,
                   .q = q,
                   .k = k,
                   .v = v,
                   .rope = rope,
                   .q_out = q_out,
                   .k_cache = k_cache,
                   .v_cache = v_cache,
                   .pos = p,
                   .mode = mode,
                   .eps = eps,
                   .H = q->shape[1],
                   .Hkv = k->shape[1],
                   .D = q->shape[2]};
    if (mode == FR_ROPE_MODE_NORM_ROPE) {
        g.q_norm = (const float *)fr_cpu_at2(q_norm, 0);
        g.k_norm = (const float *)fr_cpu_at2(k_norm, 0);
    }
    /* a row of scratch per thread for key rows bound for a 16-bit cache, reserved here so no
     * task can fail for want of it */
    if (k_cache->dtype != FR_DTYPE_F32)
        for (int i = 0; i < ctx->n_threads; i++)
            if (!fr_cpu_scratch(ctx, i, sizeof(float) * (size_t)g.D))
                return fr_error_set(err, FR_ERR_NOMEM, "cpu attn_prepare: out of scratch memory");
    const int64_t rows = T * (g.H + 2 * g.Hkv);
    fr_cpu_run(ctx, rows, 8.0 * (double)rows * (double)g.D, prep_task, &g);
    if (g.failed) return fr_error_set(err, FR_ERR_NOMEM, "cpu attn_prepare: out of scratch memory");
    return FR_OK;
}
