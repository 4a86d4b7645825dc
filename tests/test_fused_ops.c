/* The fused matmul ops (matmul_multi, matmul_glu) on every backend named in FR_TEST_BACKENDS
 * (comma list, default "cpu"; tests/test_cuda_fused_ops.sh runs it on CUDA) against the unfused
 * sequence they stand for, run on the same backend with the same inputs:
 *   matmul_multi(x, {w0, w1, w2})  ==  matmul(x, w0); matmul(x, w1); matmul(x, w2)
 *   matmul_glu(x, wg, wu)          ==  matmul(x, wg) -> g; matmul(x, wu) -> u; silu_mul(g, u)
 * to f32 rounding (NMSE < 1e-10, f32 outputs: a fused kernel keeps the per-row arithmetic of the
 * plain one, though a GEMV may split a row's K range differently when a launch has more rows;
 * a wrong row, bias or SiLU costs > 1e-4), the unfused ops being checked against float64 in
 * test_ops / test_cuda_quant. Also a float64 sanity bound, so two equally wrong paths cannot
 * pass together.
 *
 * Cases: weights f32 / f16 / bf16 and q8_0 / q4_0 / q4_k / q6_k (with and without a shared
 * dtype, so backends that fuse only one dtype fall back); decode sizes (M = 1, 3, 8) and a
 * prefill size (M = 20); biases on some matrices; activations in every dtype the backend
 * accepts; outputs with padded rows whose padding must stay untouched.
 * Also residual_norm and silu_mul over dense full-width rows (C = 1024 / 4096 / 8192, F = 12288;
 * the CUDA vector kernels' case) against float64. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"
#include "core/dtype.h"
#include "core/quant.h"
#include "kernels/backend.h"

static fr_backend *B;
static const char *BNAME;
static fr_test_rng RNG = {20261126};

typedef struct {
    fr_buffer buf;
    fr_tensor t;
    size_t bytes;
} dev_t2;

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of host memory\n");
        exit(1);
    }
    return p;
}

/* A [rows, cols] tensor of dtype t on B, rows padded by `pad` elements, filled from `host`
 * (bytes) or poisoned with 0xff. */
static void dev_make(dev_t2 *d, fr_dtype t, int64_t rows, int64_t cols, int64_t pad,
                     const void *host) {
    const size_t row = fr_dtype_row_bytes(t, cols + pad);
    d->bytes = (size_t)rows * row;
    fr_error err = {0};
    fr_status s = fr_buffer_alloc(B, d->bytes, &d->buf, &err);
    if (s) {
        fprintf(stderr, "buffer_alloc: %s\n", err.msg);
        exit(1);
    }
    d->t = fr_tensor_2d(&d->buf, 0, t, rows, cols);
    d->t.stride[0] = (int64_t)row;
    if (host) {
        s = fr_buffer_upload(&d->buf, 0, host, d->bytes, &err);
    } else {
        unsigned char *p = xmalloc(d->bytes);
        memset(p, 0xff, d->bytes);
        s = fr_buffer_upload(&d->buf, 0, p, d->bytes, &err);
        free(p);
    }
    CHECK(s == FR_OK, "upload: %s", err.msg);
}

static unsigned char *dev_read(const dev_t2 *d) {
    unsigned char *p = xmalloc(d->bytes);
    fr_error err = {0};
    fr_status s = fr_backend_sync(B, &err);
    if (!s) s = fr_buffer_download(&d->buf, 0, p, d->bytes, &err);
    CHECK(s == FR_OK, "download: %s", err.msg);
    return p;
}

/* A weight [N, K] of dtype t; deq gets the values the backend sees (float). */
static void make_weight(dev_t2 *d, fr_dtype t, int64_t N, int64_t K, float *deq) {
    const size_t row = fr_dtype_row_bytes(t, K);
    unsigned char *host = xmalloc((size_t)N * row);
    float *vals = xmalloc((size_t)K * sizeof(float));
    for (int64_t n = 0; n < N; n++) {
        for (int64_t k = 0; k < K; k++)
            vals[k] = fr_test_rng_sym(&RNG);
        unsigned char *dst = host + (size_t)n * row;
        if (fr_dtype_get(t)->quantized) {
            fr_error err = {0};
            CHECK(fr_quantize_row(t, vals, dst, K, &err) == FR_OK, "quantize: %s", err.msg);
            fr_dequantize_row(t, dst, deq + n * K, K);
        } else {
            for (int64_t k = 0; k < K; k++) {
                fr_test_store(t, dst + (size_t)k * fr_dtype_get(t)->block_bytes, vals[k]);
                deq[n * K + k] = fr_test_load(t, dst + (size_t)k * fr_dtype_get(t)->block_bytes);
            }
        }
    }
    dev_make(d, t, N, K, 0, host);
    free(vals);
    free(host);
}

static void make_vec(dev_t2 *d, int64_t n, float *vals) {
    for (int64_t i = 0; i < n; i++)
        vals[i] = fr_test_rng_sym(&RNG);
    dev_make(d, FR_DTYPE_F32, 1, n, 0, vals);
    d->t = fr_tensor_1d(&d->buf, 0, FR_DTYPE_F32, n);
}

static void dev_free(dev_t2 *d) {
    fr_buffer_free(&d->buf);
}

static double silu(double g) {
    return g / (1.0 + exp(-g));
}

/* x . w[n] + b[n] in float64, x as the device holds it. */
static double ref_dot(const float *x, const float *w, int64_t K, const float *b, int64_t n) {
    double acc = b ? b[n] : 0.0;
    for (int64_t k = 0; k < K; k++)
        acc += (double)x[k] * (double)w[n * K + k];
    return acc;
}

/* The fused result agrees with float64 up to the weights' and activations' quantization: a
 * loose NMSE bound (the exact checks are the bitwise ones). */
static void check_ref(const char *what, const unsigned char *got, int64_t M, int64_t N, int64_t ld,
                      const double *ref) {
    float *g = xmalloc((size_t)(M * N) * sizeof(float));
    for (int64_t m = 0; m < M; m++)
        memcpy(g + m * N, got + (size_t)(m * ld) * 4, (size_t)N * 4);
    const double e = fr_test_nmse(g, ref, (size_t)(M * N));
    CHECK(e < 1e-3, "[%s] %s: NMSE %.3g against float64", BNAME, what, e);
    free(g);
}

/* fused vs unfused outputs (f32, rows of ld elements, N used), padding included bitwise */
static void check_same(const char *what, const char *op, const unsigned char *f,
                       const unsigned char *u, int64_t M, int64_t N, int64_t ld) {
    float *a = xmalloc((size_t)(M * N) * sizeof(float));
    double *b = xmalloc((size_t)(M * N) * sizeof(double));
    bool pad_same = true;
    for (int64_t m = 0; m < M; m++) {
        for (int64_t n = 0; n < N; n++) {
            float v;
            memcpy(&a[m * N + n], f + (size_t)(m * ld + n) * 4, 4);
            memcpy(&v, u + (size_t)(m * ld + n) * 4, 4);
            b[m * N + n] = v;
        }
        if (memcmp(f + (size_t)(m * ld + N) * 4, u + (size_t)(m * ld + N) * 4,
                   (size_t)(ld - N) * 4))
            pad_same = false;
    }
    const double e = fr_test_nmse(a, b, (size_t)(M * N));
    CHECK(e < 1e-10, "[%s] %s %s: NMSE %.3g against the unfused ops", BNAME, op, what, e);
    CHECK(pad_same, "[%s] %s %s: output padding written", BNAME, op, what);
    free(a);
    free(b);
}

static void one_case(const fr_dtype wt[3], fr_dtype xt, int64_t M, int64_t K, bool with_bias) {
    const int64_t N[3] = {37, 13, 13}, pad = 3;
    char what[160];
    snprintf(what, sizeof what, "w %s/%s/%s x %s M=%lld K=%lld bias=%d", fr_dtype_name(wt[0]),
             fr_dtype_name(wt[1]), fr_dtype_name(wt[2]), fr_dtype_name(xt), (long long)M,
             (long long)K, with_bias);

    /* activations */
    const size_t xe = (size_t)fr_dtype_get(xt)->block_bytes;
    unsigned char *xh = xmalloc((size_t)M * (size_t)(K + pad) * xe);
    float *xv = xmalloc((size_t)(M * K) * sizeof(float));
    memset(xh, 0, (size_t)M * (size_t)(K + pad) * xe);
    for (int64_t m = 0; m < M; m++)
        for (int64_t k = 0; k < K; k++) {
            unsigned char *p = xh + ((size_t)(m * (K + pad) + k)) * xe;
            fr_test_store(xt, p, fr_test_rng_sym(&RNG));
            xv[m * K + k] = fr_test_load(xt, p);
        }
    dev_t2 x;
    dev_make(&x, xt, M, K, pad, xh);

    dev_t2 w[3], bias[3], fo[3], uo[3];
    float *wd[3], *bv[3];
    for (int i = 0; i < 3; i++) {
        wd[i] = xmalloc((size_t)(N[i] * K) * sizeof(float));
        make_weight(&w[i], wt[i], N[i], K, wd[i]);
        bv[i] = NULL;
        if (with_bias && i != 1) {
            bv[i] = xmalloc((size_t)N[i] * sizeof(float));
            make_vec(&bias[i], N[i], bv[i]);
        }
        dev_make(&fo[i], FR_DTYPE_F32, M, N[i], pad, NULL);
        dev_make(&uo[i], FR_DTYPE_F32, M, N[i], pad, NULL);
    }

    /* matmul_multi against three matmuls */
    fr_error err = {0};
    const fr_tensor *wp[3] = {&w[0].t, &w[1].t, &w[2].t};
    const fr_tensor *bp[3] = {bv[0] ? &bias[0].t : NULL, bv[1] ? &bias[1].t : NULL,
                              bv[2] ? &bias[2].t : NULL};
    fr_tensor *op[3] = {&fo[0].t, &fo[1].t, &fo[2].t};
    fr_status s = fr_op_matmul_multi(B, &x.t, 3, wp, bp, op, &err);
    CHECK(s == FR_OK, "[%s] matmul_multi %s: %s", BNAME, what, err.msg);
    for (int i = 0; i < 3 && s == FR_OK; i++) {
        s = fr_op_matmul(B, &x.t, wp[i], bp[i], &uo[i].t, &err);
        CHECK(s == FR_OK, "[%s] matmul %s: %s", BNAME, what, err.msg);
    }
    for (int i = 0; i < 3; i++) {
        unsigned char *f = dev_read(&fo[i]), *u = dev_read(&uo[i]);
        check_same(what,
                   i == 0   ? "matmul_multi[0]"
                   : i == 1 ? "matmul_multi[1]"
                            : "matmul_multi[2]",
                   f, u, M, N[i], N[i] + pad);
        double *ref = xmalloc((size_t)(M * N[i]) * sizeof(double));
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N[i]; n++)
                ref[m * N[i] + n] = ref_dot(xv + m * K, wd[i], K, bv[i], n);
        check_ref(what, f, M, N[i], N[i] + pad, ref);
        free(ref);
        free(f);
        free(u);
    }

    /* matmul_glu with w[1] (gate) and w[2] (up) of the same shape, against matmul x2 + silu_mul;
     * the reference path writes gate/up in f32 so both see the same values */
    const int64_t F = N[1];
    dev_t2 gs, us, act, act_ref;
    dev_make(&gs, FR_DTYPE_F32, M, F, 0, NULL);
    dev_make(&us, FR_DTYPE_F32, M, F, 0, NULL);
    dev_make(&act, FR_DTYPE_F32, M, F, pad, NULL);
    dev_make(&act_ref, FR_DTYPE_F32, M, F, pad, NULL);
    s = fr_op_matmul_glu(B, &x.t, &w[1].t, &w[2].t, bp[1], bp[2], &gs.t, &us.t, &act.t, &err);
    CHECK(s == FR_OK, "[%s] matmul_glu %s: %s", BNAME, what, err.msg);
    if (!s) s = fr_op_matmul(B, &x.t, &w[1].t, bp[1], &gs.t, &err);
    if (!s) s = fr_op_matmul(B, &x.t, &w[2].t, bp[2], &us.t, &err);
    if (!s) s = fr_op_silu_mul(B, &gs.t, &us.t, &act_ref.t, &err);
    CHECK(s == FR_OK, "[%s] unfused glu %s: %s", BNAME, what, err.msg);
    unsigned char *a = dev_read(&act), *ar = dev_read(&act_ref);
    check_same(what, "matmul_glu", a, ar, M, F, F + pad);
    double *ref = xmalloc((size_t)(M * F) * sizeof(double));
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < F; n++)
            ref[m * F + n] = silu(ref_dot(xv + m * K, wd[1], K, bv[1], n)) *
                             ref_dot(xv + m * K, wd[2], K, bv[2], n);
    check_ref(what, a, M, F, F + pad, ref);
    free(ref);
    free(a);
    free(ar);
    dev_free(&gs);
    dev_free(&us);
    dev_free(&act);
    dev_free(&act_ref);

    for (int i = 0; i < 3; i++) {
        dev_free(&w[i]);
        if (bv[i]) dev_free(&bias[i]);
        dev_free(&fo[i]);
        dev_free(&uo[i]);
        free(wd[i]);
        free(bv[i]);
    }
    dev_free(&x);
    free(xh);
    free(xv);
}

static void test_errors(void) {
    dev_t2 x, w, o;
    float wd[4 * 32];
    make_weight(&w, FR_DTYPE_F32, 4, 32, wd);
    dev_make(&x, FR_DTYPE_F32, 2, 32, 0, NULL);
    dev_make(&o, FR_DTYPE_F32, 2, 5, 0, NULL); /* 5 columns: w has 4 rows */
    const fr_tensor *wp[1] = {&w.t};
    fr_tensor *op[1] = {&o.t};
    fr_error err = {0};
    fr_status s = fr_op_matmul_multi(B, &x.t, 1, wp, NULL, op, &err);
    CHECK(s == FR_ERR_INVALID && strstr(err.msg, "out[0]"), "[%s] matmul_multi shape: %d %s", BNAME,
          s, err.msg);
    s = fr_op_matmul_multi(B, &x.t, 4, wp, NULL, op, &err);
    CHECK(s == FR_ERR_INVALID, "[%s] matmul_multi with 4 matrices: %d", BNAME, s);
    s = fr_op_matmul_glu(B, &x.t, &w.t, &w.t, NULL, NULL, &o.t, &o.t, &o.t, &err);
    CHECK(s == FR_ERR_INVALID && strstr(err.msg, "matmul_glu"), "[%s] matmul_glu shape: %d %s",
          BNAME, s, err.msg);
    dev_free(&x);
    dev_free(&w);
    dev_free(&o);
}

/* ------------------------------------------------------------------ full-width rows
 * residual_norm and silu_mul on dense, 16-byte aligned rows of the widths real models use (the
 * CUDA vector kernels' case: f32 residual stream, C a multiple of 1024) against float64. */

/* Bound on the NMSE of values rounded to t once (f32: fast-math exp and summation order). */
static double rounding_bound(fr_dtype t) {
    return t == FR_DTYPE_BF16 ? 3e-5 : t == FR_DTYPE_F16 ? 1e-6 : 1e-10;
}

static void residual_norm_case(int64_t T, int64_t C, fr_dtype ot, bool scaled, bool inplace) {
    const int64_t n = T * C;
    const float eps = 1e-6f;
    float *rv = xmalloc((size_t)n * 4), *xv = xmalloc((size_t)n * 4), *sv = xmalloc((size_t)C * 4),
          *wv = xmalloc((size_t)C * 4);
    for (int64_t i = 0; i < n; i++) {
        rv[i] = fr_test_rng_sym(&RNG);
        xv[i] = fr_test_rng_sym(&RNG);
    }
    dev_t2 res, x, sc, w, ro, no;
    dev_make(&res, FR_DTYPE_F32, T, C, 0, rv);
    dev_make(&x, FR_DTYPE_F32, T, C, 0, xv);
    make_vec(&sc, C, sv);
    make_vec(&w, C, wv);
    if (!inplace) dev_make(&ro, FR_DTYPE_F32, T, C, 0, NULL);
    dev_make(&no, ot, T, C, 0, NULL);
    fr_error err = {0};
    fr_status s = fr_op_residual_norm(B, &res.t, &x.t, scaled ? &sc.t : NULL, &w.t, eps,
                                      inplace ? &res.t : &ro.t, &no.t, &err);
    char what[96];
    snprintf(what, sizeof what, "residual_norm T=%lld C=%lld out %s scale=%d inplace=%d",
             (long long)T, (long long)C, fr_dtype_name(ot), scaled, inplace);
    CHECK(s == FR_OK, "[%s] %s: %s", BNAME, what, err.msg);
    unsigned char *gr = dev_read(inplace ? &res : &ro), *gn = dev_read(&no);
    double *sum = xmalloc((size_t)n * 8), *ref = xmalloc((size_t)n * 8);
    float *got_r = xmalloc((size_t)n * 4), *got_n = xmalloc((size_t)n * 4);
    for (int64_t t = 0; t < T; t++) {
        double ss = 0;
        for (int64_t c = 0; c < C; c++) {
            const int64_t i = t * C + c;
            sum[i] = (double)rv[i] + (double)xv[i] * (scaled ? (double)sv[c] : 1.0);
            ss += sum[i] * sum[i];
        }
        const double r = 1.0 / sqrt(ss / (double)C + eps);
        for (int64_t c = 0; c < C; c++) {
            const int64_t i = t * C + c;
            ref[i] = sum[i] * r * wv[c];
            got_r[i] = fr_test_load(FR_DTYPE_F32, gr + (size_t)i * 4);
            got_n[i] = fr_test_load(ot, gn + (size_t)i * fr_dtype_get(ot)->block_bytes);
        }
    }
    const double er = fr_test_nmse(got_r, sum, (size_t)n), en = fr_test_nmse(got_n, ref, (size_t)n);
    CHECK(er < 1e-12, "[%s] %s: residual NMSE %.3g", BNAME, what, er);
    CHECK(en < rounding_bound(ot), "[%s] %s: norm NMSE %.3g", BNAME, what, en);
    free(gr);
    free(gn);
    free(sum);
    free(ref);
    free(got_r);
    free(got_n);
    free(rv);
    free(xv);
    free(sv);
    free(wv);
    dev_free(&res);
    dev_free(&x);
    dev_free(&sc);
    dev_free(&w);
    if (!inplace) dev_free(&ro);
    dev_free(&no);
}

static void silu_mul_case(int64_t T, int64_t F, fr_dtype t) {
    const int64_t n = T * F;
    const size_t e = fr_dtype_get(t)->block_bytes;
    unsigned char *hg = xmalloc((size_t)n * e), *hu = xmalloc((size_t)n * e);
    double *ref = xmalloc((size_t)n * 8);
    for (int64_t i = 0; i < n; i++) {
        fr_test_store(t, hg + i * e, 8.0f * fr_test_rng_sym(&RNG)); /* silu's tails too */
        fr_test_store(t, hu + i * e, fr_test_rng_sym(&RNG));
        const double g = fr_test_load(t, hg + i * e), u = fr_test_load(t, hu + i * e);
        ref[i] = silu(g) * u;
    }
    dev_t2 g, u, o;
    dev_make(&g, t, T, F, 0, hg);
    dev_make(&u, t, T, F, 0, hu);
    dev_make(&o, t, T, F, 0, NULL);
    fr_error err = {0};
    fr_status s = fr_op_silu_mul(B, &g.t, &u.t, &o.t, &err);
    CHECK(s == FR_OK, "[%s] silu_mul %s: %s", BNAME, fr_dtype_name(t), err.msg);
    unsigned char *go = dev_read(&o);
    float *got = xmalloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++)
        got[i] = fr_test_load(t, go + i * e);
    const double en = fr_test_nmse(got, ref, (size_t)n);
    CHECK(en < rounding_bound(t), "[%s] silu_mul T=%lld F=%lld %s: NMSE %.3g", BNAME, (long long)T,
          (long long)F, fr_dtype_name(t), en);
    free(go);
    free(got);
    free(ref);
    free(hg);
    free(hu);
    dev_free(&g);
    dev_free(&u);
    dev_free(&o);
}

static void full_rows(void) {
    const fr_dtype acts[] = {FR_DTYPE_F32, FR_DTYPE_BF16, FR_DTYPE_F16};
    const int64_t widths[] = {1024, 4096, 8192};
    for (size_t a = 0; a < 3; a++) {
        if (!fr_backend_accepts_act(B, acts[a])) continue;
        for (size_t wi = 0; wi < 3; wi++)
            for (int v = 0; v < 4; v++)
                residual_norm_case(wi == 1 ? 37 : 3, widths[wi], acts[a], v & 1, v & 2);
        silu_mul_case(5, 12288, acts[a]);
        silu_mul_case(2, 40, acts[a]);
    }
}

static void run_all(void) {
    const fr_dtype plain[] = {FR_DTYPE_F32, FR_DTYPE_F16, FR_DTYPE_BF16};
    const fr_dtype quant[] = {FR_DTYPE_Q8_0, FR_DTYPE_Q4_0, FR_DTYPE_Q4_K, FR_DTYPE_Q6_K};
    const fr_dtype acts[] = {FR_DTYPE_F32, FR_DTYPE_BF16, FR_DTYPE_F16};
    const int64_t Ms[] = {1, 3, 8, 20};
    for (size_t a = 0; a < 3; a++) {
        if (!fr_backend_accepts_act(B, acts[a])) continue;
        for (size_t mi = 0; mi < 4; mi++) {
            const int64_t M = Ms[mi];
            for (size_t i = 0; i < 3; i++) {
                const fr_dtype wt[3] = {plain[i], plain[i], plain[i]};
                one_case(wt, acts[a], M, 96 + 8 * (int64_t)i, mi % 2 == 1);
            }
            for (size_t i = 0; i < 4; i++) {
                const fr_dtype wt[3] = {quant[i], quant[i], quant[i]};
                one_case(wt, acts[a], M, 512, mi % 2 == 0);
            }
            /* long rows: GEMVs split K across warps */
            if (M <= 3) {
                const fr_dtype bf[3] = {FR_DTYPE_BF16, FR_DTYPE_BF16, FR_DTYPE_BF16};
                const fr_dtype q6[3] = {FR_DTYPE_Q6_K, FR_DTYPE_Q6_K, FR_DTYPE_Q6_K};
                const fr_dtype q8[3] = {FR_DTYPE_Q8_0, FR_DTYPE_Q8_0, FR_DTYPE_Q8_0};
                one_case(bf, acts[a], M, 4096, false);
                one_case(q6, acts[a], M, 4096, true);
                one_case(q8, acts[a], M, 4096, M == 1);
            }
            /* one dtype per matrix, as in Q4_K_M files (v in q6_k): no single launch */
            const fr_dtype mixed[3] = {FR_DTYPE_Q4_K, FR_DTYPE_Q4_K, FR_DTYPE_Q6_K};
            one_case(mixed, acts[a], M, 256, true);
        }
    }
    full_rows();
    test_errors();
}

int main(void) {
    const char *env = getenv("FR_TEST_BACKENDS");
    char list[256];
    snprintf(list, sizeof list, "%s", env && *env ? env : "cpu");
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        fr_error err = {0};
        fr_status s = fr_backend_create(tok, NULL, &B, &err);
        CHECK(s == FR_OK, "create backend %s: %s", tok, err.msg);
        if (s) continue;
        BNAME = tok;
        run_all();
        fr_backend_destroy(B);
    }
    return fr_test_finish("test_fused_ops");
}
