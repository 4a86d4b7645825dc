/* Flash-style attention: one pass over the allowed keys in tiles with an online softmax (running
 * max m, running sum l, output accumulator rescaled when m grows), so no [T, L] score matrix is
 * ever formed.
 *
 * One task per (kv head, token) handles all H/Hkv query heads of that kv head together, so each
 * K and V row is read (and widened from f16/bf16) once per token rather than once per query
 * head; tasks run on both cores. Per tile of KEY_TILE keys, the scores are a small GEMV (the
 * group's query rows times the K rows, the matmul kernels' gemv) and P.V one register-blocked
 * pass over the V rows (kernels' pv); both read the cache in its own dtype, no conversion copy.
 * Query at position p sees keys j in (p-W, p] (W = window, 0 = all of [0, p]). Every query has
 * at least its own key, so the softmax sum is never zero. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/cpu_ops.h"

#define KEY_TILE   64 /* keys scored per tile */
#define HEAD_GROUP 8  /* query heads processed together (bounds the scratch) */

typedef struct {
    fr_cpu_ctx *ctx;
    const fr_tensor *q, *k, *v, *out;
    const int32_t *pos;
    float scale;
    int window;
    int64_t T, D, G; /* G = query heads per kv head */
    int failed;      /* set when a thread could not get scratch */
} attn_args;

static void attn_task(void *varg, int64_t task, int thread) {
    attn_args *g = varg;
    const fr_cpu_kernels *kn = g->ctx->k;
    const int64_t hkv = task / g->T, t = task % g->T, D = g->D;
    const int64_t p = g->pos[t];
    const int64_t lo = g->window > 0 && p - g->window + 1 > 0 ? p - g->window + 1 : 0;
    const fr_dtype kt = g->k->dtype, vt = g->v->dtype;
    /* q.k for a tile of keys is a small GEMV: the group's query rows times the K rows */
    const fr_gemv_fn scores = kt == FR_DTYPE_F32   ? kn->gemv_f32
                              : kt == FR_DTYPE_F16 ? kn->gemv_f16
                                                   : kn->gemv_bf16;
    const fr_pv_fn pv = vt == FR_DTYPE_F32   ? kn->pv_f32
                        : vt == FR_DTYPE_F16 ? kn->pv_f16
                                             : kn->pv_bf16;

    /* scratch: acc[HEAD_GROUP][D], s[HEAD_GROUP][KEY_TILE] */
    float *acc = fr_cpu_scratch(g->ctx, thread,
                                sizeof(float) * ((size_t)HEAD_GROUP * D + HEAD_GROUP * KEY_TILE));
    if (!acc) {
        g->failed = 1;
        return;
    }
    float *s = acc + HEAD_GROUP * D;

    for (int64_t g0 = 0; g0 < g->G; g0 += HEAD_GROUP) {
        const int ng = (int)(g->G - g0 < HEAD_GROUP ? g->G - g0 : HEAD_GROUP);
        float m[HEAD_GROUP], l[HEAD_GROUP];
        for (int a = 0; a < ng; a++) {
            m[a] = -FLT_MAX;
            l[a] = 0;
        }
        memset(acc, 0, sizeof(float) * (size_t)(ng * D));
        fr_gemv_args sa = {.x = (const float *)fr_cpu_at3(g->q, hkv * g->G + g0, t),
                           .x_stride = g->q->stride[0] / 4,
                           .M = ng,
                           .w_stride = g->k->stride[1],
                           .K = D,
                           .out = s,
                           .out_stride = KEY_TILE};
        for (int64_t j0 = lo; j0 <= p; j0 += KEY_TILE) {
            const int nk = (int)(p + 1 - j0 < KEY_TILE ? p + 1 - j0 : KEY_TILE);
            sa.w = fr_cpu_at3(g->k, hkv, j0);
            scores(&sa, 0, nk);
            /* online softmax: raise the running max, rescale what was accumulated under it */
            for (int a = 0; a < ng; a++) {
                float *sr = s + a * KEY_TILE, tmax = m[a];
                for (int j = 0; j < nk; j++) {
                    sr[j] *= g->scale;
                    tmax = sr[j] > tmax ? sr[j] : tmax;
                }
                const float corr = expf(m[a] - tmax);
                l[a] = l[a] * corr + kn->exp_sum(sr, nk, tmax);
                m[a] = tmax;
                if (corr != 1.0f)
                    for (int64_t i = 0; i < D; i++)
                        acc[a * D + i] *= corr;
            }
            pv(s, KEY_TILE, ng, fr_cpu_at3(g->v, hkv, j0), g->v->stride[1], nk, D, acc, D);
        }
        for (int a = 0; a < ng; a++) {
            float *o = (float *)fr_cpu_at3(g->out, t, hkv * g->G + g0 + a);
            const float inv = 1.0f / l[a];
            for (int64_t i = 0; i < D; i++)
                o[i] = acc[a * D + i] * inv;
        }
    }
}

fr_status fr_cpu_attention(void *vctx, const fr_tensor *q, const fr_tensor *k_cache,
                           const fr_tensor *v_cache, const fr_tensor *pos,
                           const fr_attention_params *prm, fr_tensor *out, fr_error *err) {
    if (q->dtype != FR_DTYPE_F32)
        return fr_cpu_unsupported_dtype(err, "attention", "q", q, "f32 activations only");
    if (out->dtype != FR_DTYPE_F32)
        return fr_cpu_unsupported_dtype(err, "attention", "out", out, "f32 activations only");
    if (q->stride[0] % 4)
        return fr_error_set(err, FR_ERR_INVALID,
                            "cpu attention: q head stride %lld is not a multiple of 4 bytes",
                            (long long)q->stride[0]);
    const int64_t H = q->shape[0], T = q->shape[1], D = q->shape[2];
    const int64_t Hkv = k_cache->shape[0], L = k_cache->shape[1];
    const int32_t *p = (const int32_t *)fr_cpu_at2(pos, 0);
    double keys = 0;
    for (int64_t t = 0; t < T; t++) {
        if (p[t] < 0 || p[t] >= L)
            return fr_error_set(err, FR_ERR_RANGE,
                                "cpu attention: pos[%lld] = %d outside the cache's %lld slots",
                                (long long)t, p[t], (long long)L);
        keys += prm->window > 0 && p[t] + 1 > prm->window ? prm->window : p[t] + 1;
    }
    attn_args g = {vctx,
                   q,
                   k_cache,
                   v_cache,
                   out,
                   p,
                   prm->scale > 0 ? prm->scale : 1.0f / sqrtf((float)D),
                   prm->window,
                   T,
                   D,
                   H / Hkv,
                   0};
    const double bytes = keys * (double)Hkv * (double)D *
                         (fr_dtype_get(k_cache->dtype)->block_bytes * 2.0 + 4.0 * H / Hkv);
    fr_cpu_run(vctx, Hkv * T, bytes, attn_task, &g);
    if (g.failed) return fr_error_set(err, FR_ERR_NOMEM, "cpu attention: out of scratch memory");
    return FR_OK;
}
