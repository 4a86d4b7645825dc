/* CUDA backend: graph capture and replay, and the CUDA-only paths the generic op test does not
 * reach.
 *
 * 1. A transformer-layer step (embedding, norms, fused QKV matmul with bf16 weights, QK-norm +
 *    RoPE, KV append, attention, MLP with f16 weights, LM head, argmax) is run directly, then
 *    captured into a CUDA graph and replayed: the replayed logits must be bit-identical to the
 *    direct ones, for decode (T=1, T=3) and for a prefill chunk (T=24, which runs the cuBLASLt
 *    path inside the graph). The graph is then replayed with new positions and ids written into
 *    the same device memory, and must again match a direct run bit for bit.
 * 2. Against float64 references written below: prefill GEMMs with bf16/f16 activations (tensor
 *    cores, f32 and 16-bit outputs), a weight matrix larger than the conversion scratch (several
 *    chunks plus a tail), split-K decode attention over a long cache (with and without a
 *    window), prefill attention with head_dim 256 (large shared memory) and 80, and embedding
 *    ids outside the table (a zero row on GPUs).
 *
 * Needs a GPU: without one the backend cannot be created and the test fails (it carries the
 * `cuda` label, so only the GPU machine runs it). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"
#include "core/dtype.h"
#include "kernels/backend.h"

static fr_backend *B;
static fr_test_rng RNG = {777};

/* ------------------------------------------------------------------ device tensors */

typedef struct {
    fr_buffer buf;
    fr_tensor t;
    size_t bytes;
} gt;

static size_t gt_esize(fr_dtype d) {
    return (size_t)fr_dtype_get(d)->block_bytes;
}

/* A tensor with its own buffer; rows (the second-innermost dim) padded by `pad` elements. */
static void gt_make(gt *g, fr_dtype d, int ndim, const int64_t *shape, int64_t pad) {
    memset(g, 0, sizeof *g);
    g->t.dtype = d;
    g->t.ndim = ndim;
    int64_t st = (int64_t)gt_esize(d);
    for (int i = ndim - 1; i >= 0; i--) {
        g->t.shape[i] = shape[i];
        g->t.stride[i] = st;
        st *= shape[i] + (i == ndim - 1 ? pad : 0);
    }
    for (int i = ndim; i < FR_MAX_DIMS; i++)
        g->t.shape[i] = 1;
    g->bytes = (size_t)st;
    fr_error err = {0};
    if (fr_buffer_alloc(B, g->bytes, &g->buf, &err) != FR_OK) {
        fprintf(stderr, "buffer_alloc(%zu): %s\n", g->bytes, err.msg);
        exit(1);
    }
    g->t.buf = &g->buf;
}

static int64_t gt_n(const gt *g) {
    int64_t n = 1;
    for (int i = 0; i < g->t.ndim; i++)
        n *= g->t.shape[i];
    return n;
}

static size_t gt_off(const gt *g, int64_t i) {
    size_t off = 0;
    for (int k = g->t.ndim - 1; k >= 0; k--) {
        off += (size_t)((i % g->t.shape[k]) * g->t.stride[k]);
        i /= g->t.shape[k];
    }
    return off;
}

/* Uploads logical values (padding gets 0xff poison); vals become the stored (rounded) values. */
static void gt_set(gt *g, double *vals) {
    unsigned char *h = malloc(g->bytes);
    memset(h, 0xff, g->bytes);
    for (int64_t i = 0; i < gt_n(g); i++) {
        fr_test_put(g->t.dtype, h + gt_off(g, i), vals[i]);
        vals[i] = fr_test_get(g->t.dtype, h + gt_off(g, i));
    }
    fr_error err = {0};
    CHECK(fr_buffer_upload(&g->buf, 0, h, g->bytes, &err) == FR_OK, "upload: %s", err.msg);
    free(h);
}

static void gt_poison(gt *g) {
    unsigned char *h = malloc(g->bytes);
    memset(h, 0xff, g->bytes);
    fr_error err = {0};
    CHECK(fr_buffer_upload(&g->buf, 0, h, g->bytes, &err) == FR_OK, "poison: %s", err.msg);
    free(h);
}

static void gt_get(const gt *g, double *vals) {
    unsigned char *h = malloc(g->bytes);
    fr_error err = {0};
    CHECK(fr_buffer_download(&g->buf, 0, h, g->bytes, &err) == FR_OK, "download: %s", err.msg);
    for (int64_t i = 0; i < gt_n(g); i++)
        vals[i] = fr_test_get(g->t.dtype, h + gt_off(g, i));
    free(h);
}

static void *gt_raw(const gt *g) {
    void *h = malloc(g->bytes);
    fr_error err = {0};
    CHECK(fr_buffer_download(&g->buf, 0, h, g->bytes, &err) == FR_OK, "download: %s", err.msg);
    return h;
}

static double *rnd(int64_t n, double scale) {
    double *v = malloc(sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        v[i] = fr_test_rng_sym(&RNG) * scale;
    return v;
}

/* Fills g (which keeps pointing at its own buffer, so it must not be copied) with random values. */
static void gt_rand(gt *g, fr_dtype d, int ndim, const int64_t *shape, int64_t pad, double scale) {
    gt_make(g, d, ndim, shape, pad);
    double *v = rnd(gt_n(g), scale);
    gt_set(g, v);
    free(v);
}

/* Relative L2 error; infinite when got holds a NaN (an element left poisoned). */
static double rel_err(const double *got, const double *ref, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += (got[i] - ref[i]) * (got[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    if (!(num == num)) return INFINITY;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

#define OK(expr)                                                                                   \
    do {                                                                                           \
        fr_error e_ = {0};                                                                         \
        fr_status s_ = (expr);                                                                     \
        CHECK(s_ == FR_OK, "%s: %s", #expr, e_.msg);                                               \
    } while (0)
#define ERR (&e_)

/* ------------------------------------------------------------------ 1. graph replay */

enum { GH = 4, GHKV = 2, GD = 32, GC = 96, GF = 160, GV = 301, GL = 64 };

typedef struct {
    int64_t T;
    gt ids, pos, h, xn, qkv, q, k, v, kc, vc, att, o, xn2, gu, act, dn, h2, xf, logits, tok;
    gt emb, wqkv, qn, kn, rope, wo, n1, n2, nf, wgu, wd, ls, wlm;
    fr_tensor qv, kv, vv, attv, gate, up;
} gstep;

static void gstep_init(gstep *s, int64_t T) {
    memset(s, 0, sizeof *s);
    s->T = T;
    const int64_t QKV = (GH + 2 * GHKV) * GD;
    gt_rand(&s->emb, FR_DTYPE_BF16, 2, (int64_t[]){GV, GC}, 0, 1.0);
    gt_rand(&s->wqkv, FR_DTYPE_BF16, 2, (int64_t[]){QKV, GC}, 0, 0.2);
    gt_rand(&s->qn, FR_DTYPE_F32, 1, (int64_t[]){GD}, 0, 1.0);
    gt_rand(&s->kn, FR_DTYPE_F32, 1, (int64_t[]){GD}, 0, 1.0);
    gt_rand(&s->wo, FR_DTYPE_F32, 2, (int64_t[]){GC, GH * GD}, 0, 0.2);
    gt_rand(&s->n1, FR_DTYPE_F32, 1, (int64_t[]){GC}, 0, 1.0);
    gt_rand(&s->n2, FR_DTYPE_F32, 1, (int64_t[]){GC}, 0, 1.0);
    gt_rand(&s->nf, FR_DTYPE_F32, 1, (int64_t[]){GC}, 0, 1.0);
    gt_rand(&s->wgu, FR_DTYPE_F16, 2, (int64_t[]){2 * GF, GC}, 0, 0.2);
    gt_rand(&s->wd, FR_DTYPE_BF16, 2, (int64_t[]){GC, GF}, 0, 0.2);
    gt_rand(&s->ls, FR_DTYPE_F32, 1, (int64_t[]){GC}, 0, 1.0);
    gt_rand(&s->wlm, FR_DTYPE_F32, 2, (int64_t[]){GV, GC}, 0, 0.3);
    gt_make(&s->rope, FR_DTYPE_F32, 2, (int64_t[]){GL, GD}, 0);
    {
        fr_rope_config rc = {.theta = 10000.0, .head_dim = GD};
        float *tab = malloc(sizeof(float) * GL * GD);
        double *tv = malloc(sizeof(double) * GL * GD);
        fr_rope_table_fill(&rc, GL, tab);
        for (int i = 0; i < GL * GD; i++)
            tv[i] = tab[i];
        gt_set(&s->rope, tv);
        free(tab);
        free(tv);
    }
    gt_make(&s->ids, FR_DTYPE_I32, 1, (int64_t[]){T}, 0);
    gt_make(&s->pos, FR_DTYPE_I32, 1, (int64_t[]){T}, 0);
    gt_make(&s->h, FR_DTYPE_F32, 2, (int64_t[]){T, GC}, 0);
    gt_make(&s->xn, FR_DTYPE_F32, 2, (int64_t[]){T, GC}, 0);
    gt_make(&s->qkv, FR_DTYPE_F32, 2, (int64_t[]){T, QKV}, 0);
    gt_make(&s->q, FR_DTYPE_F32, 3, (int64_t[]){GH, T, GD}, 0);
    gt_make(&s->k, FR_DTYPE_F32, 3, (int64_t[]){GHKV, T, GD}, 0);
    gt_make(&s->v, FR_DTYPE_F32, 3, (int64_t[]){GHKV, T, GD}, 0);
    gt_make(&s->kc, FR_DTYPE_BF16, 3, (int64_t[]){GHKV, GL, GD}, 8);
    gt_make(&s->vc, FR_DTYPE_BF16, 3, (int64_t[]){GHKV, GL, GD}, 8);
    gt_make(&s->att, FR_DTYPE_F32, 3, (int64_t[]){T, GH, GD}, 0);
    gt_make(&s->o, FR_DTYPE_F32, 2, (int64_t[]){T, GC}, 0);
    gt_make(&s->xn2, FR_DTYPE_F32, 2, (int64_t[]){T, GC}, 0);
    gt_make(&s->gu, FR_DTYPE_F32, 2, (int64_t[]){T, 2 * GF}, 0);
    gt_make(&s->act, FR_DTYPE_F32, 2, (int64_t[]){T, GF}, 0);
    gt_make(&s->dn, FR_DTYPE_F32, 2, (int64_t[]){T, GC}, 0);
    gt_make(&s->h2, FR_DTYPE_F32, 2, (int64_t[]){T, GC}, 0);
    gt_make(&s->xf, FR_DTYPE_F32, 2, (int64_t[]){T, GC}, 0);
    gt_make(&s->logits, FR_DTYPE_F32, 2, (int64_t[]){T, GV}, 0);
    gt_make(&s->tok, FR_DTYPE_I32, 1, (int64_t[]){T}, 0);
    /* views: q, k, v columns of the fused projection; gate/up halves; attention as [T, H*D] */
    const int64_t rs = s->qkv.t.stride[0];
    s->qv = (fr_tensor){.dtype = FR_DTYPE_F32,
                        .ndim = 3,
                        .shape = {T, GH, GD, 1},
                        .stride = {rs, GD * 4, 4, 0},
                        .buf = &s->qkv.buf,
                        .offset = 0};
    s->kv = s->qv;
    s->kv.shape[1] = GHKV;
    s->kv.offset = GH * GD * 4;
    s->vv = s->kv;
    s->vv.offset = (GH + GHKV) * GD * 4;
    s->attv = fr_tensor_2d(&s->att.buf, 0, FR_DTYPE_F32, T, GH * GD);
    s->gate = fr_tensor_2d(&s->gu.buf, 0, FR_DTYPE_F32, T, GF);
    s->gate.stride[0] = s->gu.t.stride[0];
    s->up = s->gate;
    s->up.offset = GF * 4;
}

static void gstep_free(gstep *s) {
    gt *all[] = {&s->ids,    &s->pos, &s->h,   &s->xn,   &s->qkv, &s->q,   &s->k,    &s->v,  &s->kc,
                 &s->vc,     &s->att, &s->o,   &s->xn2,  &s->gu,  &s->act, &s->dn,   &s->h2, &s->xf,
                 &s->logits, &s->tok, &s->emb, &s->wqkv, &s->qn,  &s->kn,  &s->rope, &s->wo, &s->n1,
                 &s->n2,     &s->nf,  &s->wgu, &s->wd,   &s->ls,  &s->wlm};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        fr_buffer_free(&all[i]->buf);
}

/* One layer step; returns the first failing status. */
static fr_status gstep_run(gstep *s, fr_error *err) {
    fr_attention_params ap = {.scale = 0, .window = 0};
    fr_status st;
#define STEP(x)                                                                                    \
    if ((st = (x)) != FR_OK) return st
    STEP(fr_op_embedding(B, &s->emb.t, &s->ids.t, &s->h.t, err));
    STEP(fr_op_rms_norm(B, &s->h.t, &s->n1.t, 1e-6f, &s->xn.t, err));
    STEP(fr_op_matmul(B, &s->xn.t, &s->wqkv.t, NULL, &s->qkv.t, err));
    STEP(fr_op_qk_norm_rope(B, &s->qv, &s->qn.t, &s->rope.t, &s->pos.t, FR_ROPE_MODE_NORM_ROPE,
                            1e-6f, &s->q.t, err));
    STEP(fr_op_qk_norm_rope(B, &s->kv, &s->kn.t, &s->rope.t, &s->pos.t, FR_ROPE_MODE_NORM_ROPE,
                            1e-6f, &s->k.t, err));
    STEP(fr_op_qk_norm_rope(B, &s->vv, NULL, NULL, NULL, FR_ROPE_MODE_TRANSPOSE, 0, &s->v.t, err));
    STEP(fr_op_kv_append(B, &s->k.t, &s->pos.t, &s->kc.t, err));
    STEP(fr_op_kv_append(B, &s->v.t, &s->pos.t, &s->vc.t, err));
    STEP(fr_op_attention(B, &s->q.t, &s->kc.t, &s->vc.t, &s->pos.t, &ap, &s->att.t, err));
    STEP(fr_op_matmul(B, &s->attv, &s->wo.t, NULL, &s->o.t, err));
    STEP(fr_op_residual_norm(B, &s->h.t, &s->o.t, NULL, &s->n2.t, 1e-6f, &s->h.t, &s->xn2.t, err));
    STEP(fr_op_matmul(B, &s->xn2.t, &s->wgu.t, NULL, &s->gu.t, err));
    STEP(fr_op_silu_mul(B, &s->gate, &s->up, &s->act.t, err));
    STEP(fr_op_matmul(B, &s->act.t, &s->wd.t, NULL, &s->dn.t, err));
    STEP(fr_op_scaled_add(B, &s->h.t, &s->dn.t, &s->ls.t, &s->h2.t, err));
    STEP(fr_op_rms_norm(B, &s->h2.t, &s->nf.t, 1e-6f, &s->xf.t, err));
    STEP(fr_op_matmul(B, &s->xf.t, &s->wlm.t, NULL, &s->logits.t, err));
    STEP(fr_op_argmax(B, &s->logits.t, &s->tok.t, err));
#undef STEP
    return FR_OK;
}

static void gstep_inputs(gstep *s, int p0, int id0, double *cache_k, double *cache_v) {
    double ids[64], pos[64];
    for (int64_t t = 0; t < s->T; t++) {
        ids[t] = (id0 + 37 * t) % GV;
        pos[t] = p0 + t;
    }
    gt_set(&s->ids, ids);
    gt_set(&s->pos, pos);
    if (cache_k) gt_set(&s->kc, cache_k);
    if (cache_v) gt_set(&s->vc, cache_v);
}

static bool same_bytes(const gt *a, const void *ref) {
    void *got = gt_raw(a);
    bool same = memcmp(got, ref, a->bytes) == 0;
    free(got);
    return same;
}

static void test_graph(int64_t T) {
    gstep s;
    gstep_init(&s, T);
    const int64_t nc = gt_n(&s.kc);
    double *ck = rnd(nc, 1.0), *cv = rnd(nc, 1.0);
    const int p0 = 11, p1 = 11 + (int)T;

    /* direct: step at p0, then at p1 */
    gstep_inputs(&s, p0, 5, ck, cv);
    OK(gstep_run(&s, ERR));
    OK(fr_backend_sync(B, ERR));
    void *logits1 = gt_raw(&s.logits), *tok1 = gt_raw(&s.tok);
    void *kc1 = gt_raw(&s.kc);
    gstep_inputs(&s, p1, 9, NULL, NULL);
    OK(gstep_run(&s, ERR));
    OK(fr_backend_sync(B, ERR));
    void *logits2 = gt_raw(&s.logits);
    double *lg = malloc(sizeof(double) * T * GV);
    gt_get(&s.logits, lg);
    int finite = 1;
    for (int64_t i = 0; i < T * GV; i++)
        finite &= isfinite(lg[i]) != 0;
    CHECK(finite, "graph T=%lld: direct logits not finite", (long long)T);

    /* capture the step (nothing runs), then replay with the p0 inputs */
    gstep_inputs(&s, p0, 5, ck, cv);
    gt_poison(&s.logits);
    void *graph = NULL;
    OK(fr_graph_capture_begin(B, ERR));
    fr_error cerr = {0};
    fr_status cs = gstep_run(&s, &cerr);
    OK(fr_graph_capture_end(B, &graph, ERR));
    CHECK(cs == FR_OK, "graph T=%lld: op failed during capture: %s", (long long)T, cerr.msg);
    if (graph) {
        OK(fr_graph_launch(B, graph, ERR));
        OK(fr_backend_sync(B, ERR));
        CHECK(same_bytes(&s.logits, logits1), "graph T=%lld: replayed logits differ from direct",
              (long long)T);
        CHECK(same_bytes(&s.tok, tok1), "graph T=%lld: replayed argmax differs", (long long)T);
        CHECK(same_bytes(&s.kc, kc1), "graph T=%lld: replayed KV cache differs", (long long)T);
        /* new positions and ids in the same device memory; the cache continues */
        gstep_inputs(&s, p1, 9, NULL, NULL);
        OK(fr_graph_launch(B, graph, ERR));
        OK(fr_backend_sync(B, ERR));
        CHECK(same_bytes(&s.logits, logits2),
              "graph T=%lld: replay with new positions differs from direct", (long long)T);
        fr_graph_free(B, graph);
    } else {
        CHECK(0, "graph T=%lld: no graph", (long long)T);
    }
    free(logits1);
    free(logits2);
    free(tok1);
    free(kc1);
    free(lg);
    free(ck);
    free(cv);
    gstep_free(&s);
}

/* ------------------------------------------------------------------ 2. CUDA-only paths */

static void check_matmul(int64_t M, int64_t N, int64_t K, fr_dtype xt, fr_dtype wt, fr_dtype ot,
                         bool bias, int64_t opad, double limit) {
    gt x, w, b, out;
    gt_make(&x, xt, 2, (int64_t[]){M, K}, 0);
    gt_make(&w, wt, 2, (int64_t[]){N, K}, 0);
    gt_make(&b, FR_DTYPE_F32, 1, (int64_t[]){N}, 0);
    gt_make(&out, ot, 2, (int64_t[]){M, N}, opad);
    double *xv = rnd(M * K, 1.0), *wv = rnd(N * K, 1.0), *bv = rnd(N, 1.0);
    gt_set(&x, xv);
    gt_set(&w, wv);
    gt_set(&b, bv);
    gt_poison(&out);
    OK(fr_op_matmul(B, &x.t, &w.t, bias ? &b.t : NULL, &out.t, ERR));
    double *ref = malloc(sizeof(double) * M * N), *got = malloc(sizeof(double) * M * N);
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double acc = bias ? bv[n] : 0;
            const double *xr = xv + m * K, *wr = wv + n * K;
            for (int64_t k = 0; k < K; k++)
                acc += xr[k] * wr[k];
            ref[m * N + n] = acc;
        }
    gt_get(&out, got);
    const double e = rel_err(got, ref, M * N);
    CHECK(e < limit, "matmul x=%s w=%s out=%s M=%lld N=%lld K=%lld bias=%d: rel err %.3g > %.3g",
          fr_dtype_name(xt), fr_dtype_name(wt), fr_dtype_name(ot), (long long)M, (long long)N,
          (long long)K, bias, e, limit);
    free(xv);
    free(wv);
    free(bv);
    free(ref);
    free(got);
    fr_buffer_free(&x.buf);
    fr_buffer_free(&w.buf);
    fr_buffer_free(&b.buf);
    fr_buffer_free(&out.buf);
}

static void check_attention(fr_dtype ct, int64_t H, int64_t Hkv, int64_t T, int64_t D, int64_t L,
                            int64_t p0, int window) {
    gt q, k, v, pos, out;
    gt_make(&q, FR_DTYPE_F32, 3, (int64_t[]){H, T, D}, 0);
    gt_make(&k, ct, 3, (int64_t[]){Hkv, L, D}, 8);
    gt_make(&v, ct, 3, (int64_t[]){Hkv, L, D}, 8);
    gt_make(&pos, FR_DTYPE_I32, 1, (int64_t[]){T}, 0);
    gt_make(&out, FR_DTYPE_F32, 3, (int64_t[]){T, H, D}, 0);
    double *qv = rnd(H * T * D, 2.0), *kv = rnd(Hkv * L * D, 2.0), *vv = rnd(Hkv * L * D, 1.0);
    double *pv = malloc(sizeof(double) * T);
    for (int64_t t = 0; t < T; t++)
        pv[t] = (double)(p0 + t);
    gt_set(&q, qv);
    gt_set(&k, kv);
    gt_set(&v, vv);
    gt_set(&pos, pv);
    gt_poison(&out);
    fr_attention_params ap = {.scale = 0, .window = window};
    OK(fr_op_attention(B, &q.t, &k.t, &v.t, &pos.t, &ap, &out.t, ERR));
    double *ref = malloc(sizeof(double) * T * H * D), *got = malloc(sizeof(double) * T * H * D);
    double *w = malloc(sizeof(double) * L);
    const double scale = 1.0 / sqrt((double)D);
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t hk = h / (H / Hkv), p = p0 + t;
            const int64_t lo = window > 0 && p - window + 1 > 0 ? p - window + 1 : 0;
            double mx = -INFINITY, sum = 0;
            for (int64_t j = lo; j <= p; j++) {
                double s = 0;
                for (int64_t d = 0; d < D; d++)
                    s += qv[(h * T + t) * D + d] * kv[(hk * L + j) * D + d];
                w[j] = s * scale;
                mx = w[j] > mx ? w[j] : mx;
            }
            for (int64_t j = lo; j <= p; j++)
                sum += (w[j] = exp(w[j] - mx));
            for (int64_t d = 0; d < D; d++) {
                double acc = 0;
                for (int64_t j = lo; j <= p; j++)
                    acc += w[j] * vv[(hk * L + j) * D + d];
                ref[(t * H + h) * D + d] = acc / sum;
            }
        }
    gt_get(&out, got);
    const double e = rel_err(got, ref, T * H * D);
    CHECK(e < 3e-5,
          "attention %s H=%lld Hkv=%lld T=%lld D=%lld L=%lld p0=%lld window=%d: rel err "
          "%.3g",
          fr_dtype_name(ct), (long long)H, (long long)Hkv, (long long)T, (long long)D, (long long)L,
          (long long)p0, window, e);
    free(qv);
    free(kv);
    free(vv);
    free(pv);
    free(ref);
    free(got);
    free(w);
    gt *all[] = {&q, &k, &v, &pos, &out};
    for (int i = 0; i < 5; i++)
        fr_buffer_free(&all[i]->buf);
}

static void check_embedding_clamp(void) {
    const int64_t V = 10, C = 37, T = 4;
    gt tab, ids, out;
    gt_rand(&tab, FR_DTYPE_BF16, 2, (int64_t[]){V, C}, 0, 1.0);
    gt_make(&ids, FR_DTYPE_I32, 1, (int64_t[]){T}, 0);
    gt_make(&out, FR_DTYPE_F32, 2, (int64_t[]){T, C}, 0);
    double idv[4] = {3, -1, 10, 1 << 30};
    gt_set(&ids, idv);
    gt_poison(&out);
    OK(fr_op_embedding(B, &tab.t, &ids.t, &out.t, ERR));
    double *tv = malloc(sizeof(double) * V * C), *got = malloc(sizeof(double) * T * C);
    gt_get(&tab, tv);
    gt_get(&out, got);
    int bad = 0;
    for (int64_t c = 0; c < C; c++) {
        bad += got[c] != tv[3 * C + c];
        for (int64_t t = 1; t < T; t++)
            bad += got[t * C + c] != 0.0;
    }
    CHECK(bad == 0, "embedding: %d elements wrong (out-of-range ids must give zero rows)", bad);
    free(tv);
    free(got);
    fr_buffer_free(&tab.buf);
    fr_buffer_free(&ids.buf);
    fr_buffer_free(&out.buf);
}

int main(void) {
    fr_error err = {0};
    fr_status s = fr_backend_create("cuda", NULL, &B, &err);
    CHECK(s == FR_OK, "create cuda backend: %s", err.msg);
    if (s != FR_OK) return fr_test_finish("test_cuda_graph");

    test_graph(1);
    test_graph(3);
    test_graph(24);

    /* tensor-core prefill GEMMs: inputs exact in 16 bits, f32 accumulation */
    check_matmul(40, 72, 256, FR_DTYPE_BF16, FR_DTYPE_BF16, FR_DTYPE_F32, true, 0, 1e-5);
    check_matmul(40, 72, 256, FR_DTYPE_BF16, FR_DTYPE_BF16, FR_DTYPE_BF16, false, 0, 1e-2);
    check_matmul(40, 70, 250, FR_DTYPE_BF16, FR_DTYPE_BF16, FR_DTYPE_BF16, false, 5, 1e-2);
    check_matmul(33, 64, 192, FR_DTYPE_F16, FR_DTYPE_F16, FR_DTYPE_F16, true, 0, 2e-3);
    check_matmul(33, 64, 192, FR_DTYPE_F16, FR_DTYPE_BF16, FR_DTYPE_F32, false, 0, 2e-3);
    check_matmul(12, 40, 100, FR_DTYPE_F32, FR_DTYPE_F32, FR_DTYPE_BF16, true, 5, 1e-2);
    check_matmul(5, 40, 100, FR_DTYPE_BF16, FR_DTYPE_F16, FR_DTYPE_F32, true, 5, 1e-5);
    /* larger than the 64 MB conversion scratch at K=4096 in f32: two chunks and a tail */
    check_matmul(9, 4096 + 4096 + 100, 4096, FR_DTYPE_F32, FR_DTYPE_BF16, FR_DTYPE_F32, true, 0,
                 1e-5);

    /* split-K decode over long caches, and prefill tiles with large and odd head dims */
    check_attention(FR_DTYPE_BF16, 8, 2, 1, 128, 5000, 4999, 0);
    check_attention(FR_DTYPE_F16, 8, 2, 8, 128, 5000, 3000, 0);
    check_attention(FR_DTYPE_F32, 4, 4, 2, 64, 3000, 2990, 1000);
    check_attention(FR_DTYPE_BF16, 8, 2, 40, 256, 100, 50, 0);
    check_attention(FR_DTYPE_F32, 6, 3, 21, 80, 64, 0, 7);
    check_embedding_clamp();

    fr_backend_destroy(B);
    return fr_test_finish("test_cuda_graph");
}
