/* Flash-style attention: one pass over the allowed keys in tiles with an online softmax (running
 * max m, running sum l, output accumulator rescaled when m grows), so no [T, L] score matrix is
 * ever formed.
 *
 * A task takes one kv head and up to QUERY_ROWS query rows of it: all H/Hkv query heads of that kv
 * head for a block of consecutive tokens (as many tokens as fit; one token, head groups of
 * QUERY_ROWS, when H/Hkv is larger). Each K and V row is then read (and widened from f16/bf16)
 * once for all those rows: in prefill with GQA 2 four tokens share every load, where one token
 * per task read the cache four times as often (pp512 spent ~20 % of its time here). Per tile of
 * KEY_TILE keys, the scores are a small GEMV (the rows times the K rows, the matmul kernels' gemv)
 * and P.V one register-blocked pass over the V rows (kernels' pv); both read the cache in its own
 * dtype, no conversion copy. Query at position p sees keys j in (p-W, p] (W = window, 0 = all of
 * [0, p]); a task walks the union of its rows' ranges and each row's softmax takes only its own
 * keys (the rest get weight 0). Every query has at least its own key, so the softmax sum is never
 * zero. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/cpu_ops.h"

#define KEY_TILE   64 /* keys scored per tile */
#define QUERY_ROWS 8  /* query rows per task (the GEMV and P.V kernels take up to 8) */

typedef struct {
    fr_cpu_ctx *ctx;
    const fr_tensor *q, *k, *v, *out;
    const int32_t *pos;
    float scale;
    int window;
    int64_t T, D, G; /* G = query heads per kv head */
    int64_t tb;      /* tokens per task: QUERY_ROWS / G, at least 1 */
    int64_t n_tb;    /* token blocks: ceil(T / tb) */
    int failed;      /* set when a thread could not get scratch */
} attn_args;

/* Softmax step of one query row over one tile of nk scores: scales them, raises the row's running
 * max m, rescales what acc holds under the old one, and turns the scores into weights, 0 outside
 * the row's keys [from, to) (tile-relative, clamped to the tile here). */
static void attn_row_tile(const fr_cpu_kernels *kn, float *sr, int nk, int64_t from, int64_t to,
                          float scale, float *m, float *l, float *acc, int64_t D) {
    const int k0 = (int)(from < 0 ? 0 : from > nk ? nk : from);
    const int k1 = (int)(to < 0 ? 0 : to > nk ? nk : to);
    if (k0 >= k1) {
        memset(sr, 0, sizeof(float) * (size_t)nk);
        return;
    }
    float tmax = *m;
    for (int j = k0; j < k1; j++) {
        sr[j] *= scale;
        tmax = sr[j] > tmax ? sr[j] : tmax;
    }
    const float corr = expf(*m - tmax);
    *l = *l * corr + kn->exp_sum(sr + k0, k1 - k0, tmax);
    *m = tmax;
    if (corr != 1.0f)
        for (int64_t i = 0; i < D; i++)
            acc[i] *= corr;
    memset(sr, 0, sizeof(float) * (size_t)k0);
    memset(sr + k1, 0, sizeof(float) * (size_t)(nk - k1));
}

static void attn_task(void *varg, int64_t task, int thread) {
    attn_args *g = varg;
    const fr_cpu_kernels *kn = g->ctx->k;
    const int64_t hkv = task / g->n_tb, t0 = task % g->n_tb * g->tb, D = g->D;
    const int64_t nt = g->T - t0 < g->tb ? g->T - t0 : g->tb;
    const fr_dtype kt = g->k->dtype, vt = g->v->dtype;
    /* q.k for a tile of keys is a small GEMV: the task's query rows times the K rows */
    const fr_gemv_fn scores = kt == FR_DTYPE_F32   ? kn->gemv_f32
                              : kt == FR_DTYPE_F16 ? kn->gemv_f16
                                                   : kn->gemv_bf16;
    const fr_pv_fn pv = vt == FR_DTYPE_F32   ? kn->pv_f32
                        : vt == FR_DTYPE_F16 ? kn->pv_f16
                                             : kn->pv_bf16;

    /* scratch: acc[QUERY_ROWS][D], the query rows qr[QUERY_ROWS][D], s[QUERY_ROWS][KEY_TILE] */
    float *acc = fr_cpu_scratch(
        g->ctx, thread, sizeof(float) * ((size_t)2 * QUERY_ROWS * D + QUERY_ROWS * KEY_TILE));
    if (!acc) {
        g->failed = 1;
        return;
    }
    float *qr = acc + QUERY_ROWS * D, *s = qr + QUERY_ROWS * D;

    /* head groups of at most QUERY_ROWS / nt heads (all G heads when several tokens share) */
    const int64_t hg = QUERY_ROWS / nt;
    for (int64_t g0 = 0; g0 < g->G; g0 += hg) {
        const int ng = (int)(g->G - g0 < hg ? g->G - g0 : hg), M = (int)nt * ng;
        /* row r = token t0 + r / ng, head hkv * G + g0 + r % ng; its keys [lo[r], hi[r]] */
        int64_t lo[QUERY_ROWS], hi[QUERY_ROWS], jlo = INT64_MAX, jhi = -1;
        float m[QUERY_ROWS], l[QUERY_ROWS];
        for (int r = 0; r < M; r++) {
            const int64_t t = t0 + r / ng, p = g->pos[t];
            memcpy(qr + r * D, fr_cpu_at3(g->q, hkv * g->G + g0 + r % ng, t), sizeof(float) * D);
            hi[r] = p;
            lo[r] = g->window > 0 && p - g->window + 1 > 0 ? p - g->window + 1 : 0;
            jlo = lo[r] < jlo ? lo[r] : jlo;
            jhi = hi[r] > jhi ? hi[r] : jhi;
            m[r] = -FLT_MAX;
            l[r] = 0;
        }
        memset(acc, 0, sizeof(float) * (size_t)(M * D));
        fr_gemv_args sa = {.x = qr,
                           .x_stride = D,
                           .M = M,
                           .w_stride = g->k->stride[1],
                           .K = D,
                           .out = s,
                           .out_stride = KEY_TILE};
        for (int64_t j0 = jlo; j0 <= jhi; j0 += KEY_TILE) {
            const int nk = (int)(jhi + 1 - j0 < KEY_TILE ? jhi + 1 - j0 : KEY_TILE);
            sa.w = fr_cpu_at3(g->k, hkv, j0);
            scores(&sa, 0, nk);
            for (int r = 0; r < M; r++)
                attn_row_tile(kn, s + r * KEY_TILE, nk, lo[r] - j0, hi[r] + 1 - j0, g->scale, &m[r],
                              &l[r], acc + r * D, D);
            pv(s, KEY_TILE, M, fr_cpu_at3(g->v, hkv, j0), g->v->stride[1], nk, D, acc, D);
        }
        for (int r = 0; r < M; r++) {
            float *o = (float *)fr_cpu_at3(g->out, t0 + r / ng, hkv * g->G + g0 + r % ng);
            const float inv = 1.0f / l[r];
            for (int64_t i = 0; i < D; i++)
                o[i] = acc[r * D + i] * inv;
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
    const int64_t G = H / Hkv, tb = G >= QUERY_ROWS ? 1 : QUERY_ROWS / G;
    attn_args g = {.ctx = vctx,
                   .q = q,
                   .k = k_cache,
                   .v = v_cache,
                   .out = out,
                   .pos = p,
                   .scale = prm->scale > 0 ? prm->scale : 1.0f / sqrtf((float)D),
                   .window = prm->window,
                   .T = T,
                   .D = D,
                   .G = G,
                   .tb = tb,
                   .n_tb = (T + tb - 1) / tb};
    const double bytes = keys * (double)Hkv * (double)D *
                         (fr_dtype_get(k_cache->dtype)->block_bytes * 2.0 + 4.0 * G);
    fr_cpu_run(vctx, Hkv * g.n_tb, bytes, attn_task, &g);
    if (g.failed) return fr_error_set(err, FR_ERR_NOMEM, "cpu attention: out of scratch memory");
    return FR_OK;
}
