/* Every op of the kernel interface on every backend named in FR_TEST_BACKENDS (comma list,
 * default "cpu"; "cpu" runs once per SIMD variant this CPU has, "cpu:avx2" picks one) against
 * float64 references written plainly below.
 *
 * Inputs are seeded random values in (-1, 1), never zero; sizes are odd on purpose (1, 3, 17, 33,
 * 4099 columns; M from 1 to 8 for GEMV and 37+ for GEMM; GQA ratios 1, 2, 4; windows 0 and
 * small; KV capacity above the used length). Data only moves through fr_buffer_alloc / upload /
 * download, so the same code tests GPU backends. Every output buffer (padding included) is
 * poisoned with 0xff bytes (NaN as f32/f16/bf16, -1 as i32) before each call: an element the op
 * fails to write stays NaN and fails the NMSE check, and padding the op must not touch is
 * checked to still hold the poison.
 *
 * Thresholds (NMSE = sum (got-ref)^2 / sum ref^2). References use exactly the values the
 * backend sees (f16/bf16 weights and caches are rounded on the host first and the reference
 * uses the rounded values), so on the CPU backend, which computes in f32 throughout, the only
 * error is f32 rounding in sums of <= 4099 terms: NMSE ~1e-14, and 1e-10 leaves four orders of
 * margin while any real bug (one missing term of 4099 is ~2e-4) fails by far. GPU backends may
 * round activations or softmax weights to the weight / cache dtype before a tensor-core product:
 * relative error 2^-11 (f16) or 2^-8 (bf16) per product, NMSE ~1e-7 / ~5e-6, so they get 1e-6
 * (f16) and 3e-5 (bf16) there, and 1e-8 for f32. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "common/testutil.h"
#include "core/dtype.h"
#include "kernels/backend.h"

static fr_backend *B;
static char BNAME[64];
static bool IS_CPU;
static fr_test_rng RNG = {12345};

/* ------------------------------------------------------------------ device tensors */

typedef struct {
    fr_buffer buf;
    fr_tensor t;
    size_t bytes;
} dt;

static size_t esize(fr_dtype t) {
    return (size_t)fr_dtype_get(t)->block_bytes;
}

/* Dense-row tensor whose second-innermost stride is padded by `pad` elements (a strided view
 * like a slice of a wider matrix, or a KV cache with row stride > D). */
static void dt_make(dt *d, fr_dtype type, int ndim, const int64_t *shape, int64_t pad) {
    memset(d, 0, sizeof *d);
    const size_t e = esize(type);
    d->t.dtype = type;
    d->t.ndim = ndim;
    int64_t stride = (int64_t)e;
    for (int i = ndim - 1; i >= 0; i--) {
        d->t.shape[i] = shape[i];
        d->t.stride[i] = stride;
        stride *= shape[i] + (i == ndim - 1 ? pad : 0);
    }
    for (int i = ndim; i < FR_MAX_DIMS; i++)
        d->t.shape[i] = 1;
    d->bytes = (size_t)stride;
    fr_error err = {0};
    fr_status s = fr_buffer_alloc(B, d->bytes, &d->buf, &err);
    if (s != FR_OK) {
        fprintf(stderr, "buffer_alloc(%zu) failed: %s\n", d->bytes, err.msg);
        exit(1);
    }
    d->t.buf = &d->buf;
    d->t.offset = 0;
}

static void dt_free(dt *d) {
    fr_buffer_free(&d->buf);
}

static int64_t dt_nelem(const dt *d) {
    int64_t n = 1;
    for (int i = 0; i < d->t.ndim; i++)
        n *= d->t.shape[i];
    return n;
}

/* Byte offset of the logical element with flat (dense row-major) index i. */
static size_t dt_off(const dt *d, int64_t i) {
    size_t off = 0;
    for (int k = d->t.ndim - 1; k >= 0; k--) {
        off += (size_t)((i % d->t.shape[k]) * d->t.stride[k]);
        i /= d->t.shape[k];
    }
    return off;
}

/* Value v as the backend will see it after storing in dtype t. */
static double rounded(fr_dtype t, double v) {
    char tmp[8] = {0};
    fr_test_put(t, tmp, v);
    return fr_test_get(t, tmp);
}

/* Uploads logical values (padding gets poison); vals are rounded in place to what was stored. */
static void dt_upload(dt *d, double *vals) {
    unsigned char *host = malloc(d->bytes);
    memset(host, 0xff, d->bytes);
    const int64_t n = dt_nelem(d);
    for (int64_t i = 0; i < n; i++) {
        fr_test_put(d->t.dtype, host + dt_off(d, i), vals[i]);
        vals[i] = fr_test_get(d->t.dtype, host + dt_off(d, i));
    }
    fr_error err = {0};
    CHECK(fr_buffer_upload(&d->buf, 0, host, d->bytes, &err) == FR_OK, "upload: %s", err.msg);
    free(host);
}

static void dt_poison(dt *d) {
    unsigned char *host = malloc(d->bytes);
    memset(host, 0xff, d->bytes);
    fr_error err = {0};
    CHECK(fr_buffer_upload(&d->buf, 0, host, d->bytes, &err) == FR_OK, "poison: %s", err.msg);
    free(host);
}

/* Downloads logical values; returns the number of padding bytes that lost their poison. */
static int64_t dt_download(const dt *d, double *vals) {
    unsigned char *host = malloc(d->bytes);
    fr_error err = {0};
    CHECK(fr_buffer_download(&d->buf, 0, host, d->bytes, &err) == FR_OK, "download: %s", err.msg);
    const int64_t n = dt_nelem(d);
    unsigned char *mark = calloc(d->bytes, 1);
    const size_t e = esize(d->t.dtype);
    for (int64_t i = 0; i < n; i++) {
        vals[i] = fr_test_get(d->t.dtype, host + dt_off(d, i));
        memset(mark + dt_off(d, i), 1, e);
    }
    int64_t touched = 0;
    for (size_t i = 0; i < d->bytes; i++)
        touched += !mark[i] && host[i] != 0xff;
    free(mark);
    free(host);
    return touched;
}

static double *rand_vals(int64_t n) {
    double *v = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++)
        v[i] = fr_test_rng_sym(&RNG);
    return v;
}

static double nmse(const double *got, const double *ref, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = got[i] - ref[i];
        num += e * e;
        den += ref[i] * ref[i];
    }
    if (!(num == num)) return INFINITY; /* NaN: an unwritten (poisoned) element */
    return den > 0 ? num / den : num;
}

static double tol(fr_dtype t) {
    if (IS_CPU) return 1e-10;
    return t == FR_DTYPE_BF16 ? 3e-5 : t == FR_DTYPE_F16 ? 1e-6 : 1e-8;
}

/* Runs a call and checks the status; on failure prints the message. */
#define CALL_OK(expr, what)                                                                        \
    do {                                                                                           \
        fr_error err_ = {0};                                                                       \
        fr_status s_ = (expr);                                                                     \
        CHECK(s_ == FR_OK, "[%s] %s: %s", BNAME, what, err_.msg);                                  \
    } while (0)
#define ERR (&err_)

static void check_out(const dt *out, double *got, const double *ref, double limit,
                      const char *what) {
    int64_t touched = dt_download(out, got);
    double e = nmse(got, ref, dt_nelem(out));
    CHECK(e <= limit, "[%s] %s: nmse %.3g > %.3g", BNAME, what, e, limit);
    CHECK(touched == 0, "[%s] %s: %lld padding bytes overwritten", BNAME, what, (long long)touched);
}

static const fr_dtype PLAIN[] = {FR_DTYPE_F32, FR_DTYPE_F16, FR_DTYPE_BF16};

/* ------------------------------------------------------------------ embedding */

static void test_embedding(void) {
    const int64_t cols[] = {1, 3, 17, 4099};
    for (int di = 0; di < 3; di++)
        for (int ci = 0; ci < 4; ci++) {
            const int64_t V = 37, C = cols[ci], T = 6;
            dt table, ids, out;
            dt_make(&table, PLAIN[di], 2, (int64_t[]){V, C}, 0);
            dt_make(&ids, FR_DTYPE_I32, 1, (int64_t[]){T}, 0);
            dt_make(&out, FR_DTYPE_F32, 2, (int64_t[]){T, C}, 3);
            double *tv = rand_vals(V * C), idv[6] = {0, V - 1, 5, 5, 17, 36};
            dt_upload(&table, tv);
            dt_upload(&ids, idv);
            dt_poison(&out);
            CALL_OK(fr_op_embedding(B, &table.t, &ids.t, &out.t, ERR), "embedding");
            double *ref = malloc(sizeof(double) * T * C), *got = malloc(sizeof(double) * T * C);
            for (int64_t t = 0; t < T; t++)
                for (int64_t c = 0; c < C; c++)
                    ref[t * C + c] = tv[(int64_t)idv[t] * C + c];
            char what[64];
            snprintf(what, sizeof what, "embedding %s C=%lld", fr_dtype_name(PLAIN[di]),
                     (long long)C);
            check_out(&out, got, ref, 0.0, what); /* a lookup is exact */
            if (IS_CPU && ci == 0) {
                /* out-of-range ids are rejected on the host (GPU backends clamp instead) */
                double bad[6] = {0, 1, V, 2, 3, 4};
                dt_upload(&ids, bad);
                fr_error err = {0};
                CHECK(fr_op_embedding(B, &table.t, &ids.t, &out.t, &err) == FR_ERR_RANGE,
                      "[%s] embedding id %lld accepted", BNAME, (long long)V);
                bad[2] = -1;
                dt_upload(&ids, bad);
                CHECK(fr_op_embedding(B, &table.t, &ids.t, &out.t, &err) == FR_ERR_RANGE,
                      "[%s] embedding id -1 accepted", BNAME);
            }
            free(tv);
            free(ref);
            free(got);
            dt_free(&table);
            dt_free(&ids);
            dt_free(&out);
        }
}

/* ------------------------------------------------------------------ rms_norm, residual_norm */

static void ref_rms(const double *x, const double *w, double eps, int64_t C, double *out) {
    double ss = 0;
    for (int64_t c = 0; c < C; c++)
        ss += x[c] * x[c];
    const double r = 1.0 / sqrt(ss / (double)C + eps);
    for (int64_t c = 0; c < C; c++)
        out[c] = x[c] * r * w[c];
}

static void test_norms(void) {
    const int64_t cols[] = {1, 3, 17, 33, 4099}, rows[] = {1, 3, 40};
    const float eps = 1e-6f;
    for (int ri = 0; ri < 3; ri++)
        for (int ci = 0; ci < 5; ci++) {
            const int64_t T = rows[ri], C = cols[ci], n = T * C;
            char what[96];
            dt x, w, out;
            dt_make(&x, FR_DTYPE_F32, 2, (int64_t[]){T, C}, 5);
            dt_make(&w, FR_DTYPE_F32, 1, (int64_t[]){C}, 0);
            dt_make(&out, FR_DTYPE_F32, 2, (int64_t[]){T, C}, 2);
            double *xv = rand_vals(n), *wv = rand_vals(C), *ref = malloc(sizeof(double) * n),
                   *got = malloc(sizeof(double) * n);
            dt_upload(&x, xv);
            dt_upload(&w, wv);
            dt_poison(&out);
            CALL_OK(fr_op_rms_norm(B, &x.t, &w.t, eps, &out.t, ERR), "rms_norm");
            for (int64_t t = 0; t < T; t++)
                ref_rms(xv + t * C, wv, eps, C, ref + t * C);
            snprintf(what, sizeof what, "rms_norm T=%lld C=%lld", (long long)T, (long long)C);
            check_out(&out, got, ref, tol(FR_DTYPE_F32), what);

            /* residual_norm, with and without layer scale, separate and in-place res_out */
            for (int variant = 0; variant < 4; variant++) {
                const bool scaled = variant & 1, inplace = variant & 2;
                dt res, s, res_out;
                dt_make(&res, FR_DTYPE_F32, 2, (int64_t[]){T, C}, 1);
                dt_make(&s, FR_DTYPE_F32, 1, (int64_t[]){C}, 0);
                if (!inplace) dt_make(&res_out, FR_DTYPE_F32, 2, (int64_t[]){T, C}, 0);
                double *rv = rand_vals(n), *sv = rand_vals(C), *sum = malloc(sizeof(double) * n);
                dt_upload(&res, rv);
                dt_upload(&s, sv);
                if (!inplace) dt_poison(&res_out);
                dt_poison(&out);
                dt *ro = inplace ? &res : &res_out;
                CALL_OK(fr_op_residual_norm(B, &res.t, &x.t, scaled ? &s.t : NULL, &w.t, eps,
                                            &ro->t, &out.t, ERR),
                        "residual_norm");
                for (int64_t i = 0; i < n; i++)
                    sum[i] = rv[i] + xv[i] * (scaled ? sv[i % C] : 1);
                for (int64_t t = 0; t < T; t++)
                    ref_rms(sum + t * C, wv, eps, C, ref + t * C);
                snprintf(what, sizeof what, "residual_norm T=%lld C=%lld scale=%d inplace=%d",
                         (long long)T, (long long)C, scaled, inplace);
                check_out(&out, got, ref, tol(FR_DTYPE_F32), what);
                check_out(ro, got, sum, tol(FR_DTYPE_F32), what);
                free(rv);
                free(sv);
                free(sum);
                dt_free(&res);
                dt_free(&s);
                if (!inplace) dt_free(&res_out);
            }
            free(xv);
            free(wv);
            free(ref);
            free(got);
            dt_free(&x);
            dt_free(&w);
            dt_free(&out);
        }
}

/* ------------------------------------------------------------------ matmul */

static void one_matmul(int64_t M, int64_t N, int64_t K, fr_dtype wt, bool with_bias, int64_t xpad,
                       int64_t opad) {
    dt x, w, bias, out;
    dt_make(&x, FR_DTYPE_F32, 2, (int64_t[]){M, K}, xpad);
    dt_make(&w, wt, 2, (int64_t[]){N, K}, 0);
    dt_make(&bias, FR_DTYPE_F32, 1, (int64_t[]){N}, 0);
    dt_make(&out, FR_DTYPE_F32, 2, (int64_t[]){M, N}, opad);
    double *xv = rand_vals(M * K), *wv = rand_vals(N * K), *bv = rand_vals(N);
    double *ref = malloc(sizeof(double) * M * N), *got = malloc(sizeof(double) * M * N);
    dt_upload(&x, xv);
    dt_upload(&w, wv);
    dt_upload(&bias, bv);
    dt_poison(&out);
    CALL_OK(fr_op_matmul(B, &x.t, &w.t, with_bias ? &bias.t : NULL, &out.t, ERR), "matmul");
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = with_bias ? bv[n] : 0;
            for (int64_t k = 0; k < K; k++)
                s += xv[m * K + k] * wv[n * K + k];
            ref[m * N + n] = s;
        }
    char what[96];
    snprintf(what, sizeof what, "matmul %s M=%lld N=%lld K=%lld bias=%d", fr_dtype_name(wt),
             (long long)M, (long long)N, (long long)K, with_bias);
    check_out(&out, got, ref, tol(wt), what);
    free(xv);
    free(wv);
    free(bv);
    free(ref);
    free(got);
    dt_free(&x);
    dt_free(&w);
    dt_free(&bias);
    dt_free(&out);
}

static void test_matmul(void) {
    const int64_t ks[] = {1, 3, 17, 33, 4099};
    const int64_t ms[] = {1, 2, 3, 4, 5, 7, 8, 9, 37};
    for (int di = 0; di < 3; di++) {
        for (int mi = 0; mi < 9; mi++)
            for (int ki = 0; ki < 5; ki++) {
                const int64_t N = ks[ki] == 4099 ? 67 : 19 + mi;
                one_matmul(ms[mi], N, ks[ki], PLAIN[di], (mi + ki) & 1, mi & 1 ? 3 : 0,
                           ki & 1 ? 0 : 2);
            }
        /* one output row, and GEMM tiles with edges in M, N and K (several K blocks) */
        one_matmul(3, 1, 40, PLAIN[di], true, 0, 0);
        one_matmul(37, 1, 17, PLAIN[di], false, 0, 0);
        one_matmul(37, 101, 1100, PLAIN[di], true, 1, 3);
        one_matmul(130, 50, 515, PLAIN[di], false, 0, 0);
        /* the other row remainders of the 6-row micro tile, partial 16-row panels */
        one_matmul(11, 40, 300, PLAIN[di], true, 2, 0);
        one_matmul(14, 13, 264, PLAIN[di], false, 0, 1);
    }
}

/* ------------------------------------------------------------------ RoPE table */

/* Hugging Face's llama3 inverse frequency (modeling_rope_utils._compute_llama3_parameters),
 * written out in float64. */
static double hf_llama3_inv_freq(double theta, int D, int i, double factor, double low, double high,
                                 double old_ctx) {
    const double inv = 1.0 / pow(theta, (double)(2 * i) / (double)D);
    const double wavelen = 2.0 * M_PI / inv;
    const double low_wavelen = old_ctx / low, high_wavelen = old_ctx / high;
    if (wavelen < high_wavelen) return inv;         /* high frequency: unchanged */
    if (wavelen > low_wavelen) return inv / factor; /* low frequency: scaled */
    const double smooth = (old_ctx / wavelen - low) / (high - low);
    return (1.0 - smooth) * inv / factor + smooth * inv;
}

static void test_rope_table(void) {
    const int D = 128, P = 9000;
    float *tab = malloc(sizeof(float) * (size_t)P * D);
    /* llama3 scaling as in Llama 3.1 config.json */
    fr_rope_config cfg = {.theta = 500000.0,
                          .head_dim = D,
                          .factor = 8.0,
                          .low_freq_factor = 1.0,
                          .high_freq_factor = 4.0,
                          .original_max_pos = 8192};
    fr_rope_table_fill(&cfg, P, tab);
    double worst = 0;
    int scaled = 0, smoothed = 0;
    for (int i = 0; i < D / 2; i++) {
        const double f = hf_llama3_inv_freq(500000.0, D, i, 8.0, 1.0, 4.0, 8192.0);
        const double plain = 1.0 / pow(500000.0, (double)(2 * i) / D);
        scaled += f != plain;
        smoothed += f != plain && f != plain / 8.0;
        for (int p = 0; p < P; p++) {
            const double c = cos(p * f), s = sin(p * f);
            worst = fmax(worst, fabs(tab[(size_t)p * D + i] - c));
            worst = fmax(worst, fabs(tab[(size_t)p * D + D / 2 + i] - s));
        }
    }
    /* f32 rounding of a value in [-1, 1] is at most 2^-25 ~ 3e-8 */
    CHECK(worst < 1e-7, "llama3 rope table max error %.3g", worst);
    CHECK(scaled > 0 && smoothed > 0, "llama3 case exercises scaling (%d) and smoothing (%d)",
          scaled, smoothed);
    /* plain theta = 1e6, head_dim 64 */
    fr_rope_config plain = {.theta = 1e6, .head_dim = 64};
    fr_rope_table_fill(&plain, 100, tab);
    worst = 0;
    for (int i = 0; i < 32; i++)
        for (int p = 0; p < 100; p++) {
            const double f = 1.0 / pow(1e6, (double)(2 * i) / 64.0);
            worst = fmax(worst, fabs(tab[p * 64 + i] - cos(p * f)));
            worst = fmax(worst, fabs(tab[p * 64 + 32 + i] - sin(p * f)));
        }
    CHECK(worst < 1e-7, "plain rope table max error %.3g", worst);
    free(tab);
}

/* ------------------------------------------------------------------ qk_norm_rope */

/* o = one head x of qk_norm_rope in float64: RMSNorm with nw (mode 1, eps 1e-6), then the
 * half-split rotation by the cos|sin row cs (modes 1, 2); mode 0 copies. D <= 4096. */
static void ref_rope_head(const double *x, const double *nw, const double *cs, int mode, int64_t D,
                          double *o) {
    const int64_t half = D / 2;
    double y[4096], r = 1;
    if (mode == FR_ROPE_MODE_NORM_ROPE) {
        double ss = 0;
        for (int64_t i = 0; i < D; i++)
            ss += x[i] * x[i];
        r = 1.0 / sqrt(ss / D + 1e-6);
    }
    for (int64_t i = 0; i < D; i++)
        y[i] = x[i] * (mode == FR_ROPE_MODE_NORM_ROPE ? r * nw[i] : 1.0);
    if (mode == FR_ROPE_MODE_TRANSPOSE) {
        memcpy(o, y, sizeof(double) * D);
        return;
    }
    for (int64_t i = 0; i < half; i++) {
        o[i] = y[i] * cs[i] - y[i + half] * cs[half + i];
        o[i + half] = y[i + half] * cs[i] + y[i] * cs[half + i];
    }
}

static void one_rope(int mode, int64_t T, int64_t H, int64_t D, int64_t xpad, int64_t p0) {
    const int64_t P = p0 + 2 * T + 3;
    dt x, nw, rope, pos, out;
    dt_make(&x, FR_DTYPE_F32, 3, (int64_t[]){T, H, D}, 0);
    /* rows of x strided like a slice of a fused QKV output: pad the token stride */
    if (xpad) {
        dt_free(&x);
        dt_make(&x, FR_DTYPE_F32, 2, (int64_t[]){T, H * D}, xpad);
        x.t.ndim = 3;
        x.t.shape[1] = H;
        x.t.shape[2] = D;
        x.t.stride[2] = 4;
        x.t.stride[1] = 4 * D;
    }
    dt_make(&nw, FR_DTYPE_F32, 1, (int64_t[]){D}, 0);
    dt_make(&rope, FR_DTYPE_F32, 2, (int64_t[]){P, D}, 0);
    dt_make(&pos, FR_DTYPE_I32, 1, (int64_t[]){T}, 0);
    dt_make(&out, FR_DTYPE_F32, 3, (int64_t[]){H, T, D}, 0);
    double *xv = rand_vals(T * H * D), *nwv = rand_vals(D), *pv = malloc(sizeof(double) * T);
    double *ref = malloc(sizeof(double) * T * H * D), *got = malloc(sizeof(double) * T * H * D);
    float *tab = malloc(sizeof(float) * (size_t)(P * D + 1));
    double *tabd = malloc(sizeof(double) * (size_t)(P * D + 1));
    if (D % 2 == 0) {
        fr_rope_config cfg = {.theta = 10000.0, .head_dim = (int)D};
        fr_rope_table_fill(&cfg, (int)P, tab);
        for (int64_t i = 0; i < P * D; i++)
            tabd[i] = tab[i];
        dt_upload(&rope, tabd);
    }
    /* positions: an offset run, the last one out of order */
    for (int64_t t = 0; t < T; t++)
        pv[t] = (double)(p0 + t);
    if (T > 2) pv[T - 1] = (double)(p0 + 2 * T);
    dt_upload(&x, xv);
    dt_upload(&nw, nwv);
    dt_upload(&pos, pv);
    dt_poison(&out);
    CALL_OK(fr_op_qk_norm_rope(B, &x.t, &nw.t, &rope.t, &pos.t, mode, 1e-6f, &out.t, ERR),
            "qk_norm_rope");
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++)
            ref_rope_head(xv + (t * H + h) * D, nwv, tabd + (int64_t)pv[t] * D, mode, D,
                          ref + (h * T + t) * D);
    char what[96];
    snprintf(what, sizeof what, "qk_norm_rope mode=%d T=%lld H=%lld D=%lld strided=%d", mode,
             (long long)T, (long long)H, (long long)D, xpad > 0);
    check_out(&out, got, ref, mode == FR_ROPE_MODE_TRANSPOSE ? 0.0 : tol(FR_DTYPE_F32), what);
    if (IS_CPU && mode != FR_ROPE_MODE_TRANSPOSE) {
        pv[0] = (double)P; /* past the table */
        dt_upload(&pos, pv);
        fr_error err = {0};
        CHECK(fr_op_qk_norm_rope(B, &x.t, &nw.t, &rope.t, &pos.t, mode, 1e-6f, &out.t, &err) ==
                  FR_ERR_RANGE,
              "[%s] rope position past the table accepted", BNAME);
    }
    free(xv);
    free(nwv);
    free(pv);
    free(ref);
    free(got);
    free(tab);
    free(tabd);
    dt_free(&x);
    dt_free(&nw);
    dt_free(&rope);
    dt_free(&pos);
    dt_free(&out);
}

static void test_rope(void) {
    for (int mode = 0; mode < 3; mode++) {
        one_rope(mode, 1, 1, 2, 0, 0);
        one_rope(mode, 3, 4, 34, 0, 5);
        one_rope(mode, 5, 3, 128, 96, 1000);
        one_rope(mode, 40, 16, 64, 0, 7);
    }
    one_rope(FR_ROPE_MODE_TRANSPOSE, 3, 2, 17, 5, 0); /* odd head_dim is fine without RoPE */
}

/* ------------------------------------------------------------------ kv_append */

static void test_kv_append(void) {
    for (int di = 0; di < 3; di++) {
        const int64_t Hkv = 3, T = 4, D = 17, L = 11;
        dt kv, pos, cache;
        dt_make(&kv, FR_DTYPE_F32, 3, (int64_t[]){Hkv, T, D}, 0);
        dt_make(&pos, FR_DTYPE_I32, 1, (int64_t[]){T}, 0);
        dt_make(&cache, PLAIN[di], 3, (int64_t[]){Hkv, L, D}, 3); /* row stride > D */
        double *kvv = rand_vals(Hkv * T * D), pv[4] = {6, 7, 8, 2};
        double *got = malloc(sizeof(double) * Hkv * L * D);
        dt_upload(&kv, kvv);
        dt_upload(&pos, pv);
        dt_poison(&cache);
        CALL_OK(fr_op_kv_append(B, &kv.t, &pos.t, &cache.t, ERR), "kv_append");
        int64_t touched = dt_download(&cache, got);
        int bad = 0, unwritten = 0;
        for (int64_t h = 0; h < Hkv; h++)
            for (int64_t l = 0; l < L; l++) {
                int64_t t = -1;
                for (int64_t u = 0; u < T; u++)
                    if ((int64_t)pv[u] == l) t = u;
                for (int64_t i = 0; i < D; i++) {
                    const double g = got[(h * L + l) * D + i];
                    if (t < 0)
                        unwritten += !isnan(g); /* rows not appended keep the poison */
                    else
                        bad += g != rounded(PLAIN[di], kvv[(h * T + t) * D + i]);
                }
            }
        CHECK(bad == 0 && unwritten == 0 && touched == 0,
              "[%s] kv_append %s: %d wrong, %d foreign rows written, %lld pad bytes", BNAME,
              fr_dtype_name(PLAIN[di]), bad, unwritten, (long long)touched);
        if (IS_CPU) {
            pv[1] = (double)L;
            dt_upload(&pos, pv);
            fr_error err = {0};
            CHECK(fr_op_kv_append(B, &kv.t, &pos.t, &cache.t, &err) == FR_ERR_RANGE,
                  "[%s] kv_append past capacity accepted", BNAME);
        }
        free(kvv);
        free(got);
        dt_free(&kv);
        dt_free(&pos);
        dt_free(&cache);
    }
}

/* ------------------------------------------------------------------ attn_prepare */

/* NMSE limit for values computed in f32 and then stored as t: the store's own rounding
 * (relative 2^-11 for f16, 2^-8 for bf16) dominates on every backend. */
static double tol_stored(fr_dtype t) {
    return t == FR_DTYPE_F32 ? tol(t) : t == FR_DTYPE_F16 ? 1e-6 : 3e-5;
}

/* [T, n, D] view of columns [c0, c0 + n*D) of the [T, C] matrix m: q, k or v as a slice of one
 * fused QKV output, each keeping m's row stride. */
static fr_tensor cols_view(const dt *m, int64_t c0, int64_t n, int64_t D) {
    fr_tensor t = m->t;
    const int64_t e = (int64_t)esize(t.dtype);
    t.ndim = 3;
    t.offset += (size_t)(c0 * e);
    t.shape[1] = n;
    t.shape[2] = D;
    t.stride[1] = D * e;
    t.stride[2] = e;
    return t;
}

/* Cache rows (h, pos[t]) with pos[t] in [0, L) must hold ref[(h*T + t)*D ...] (NMSE <= limit,
 * 0 = exact); every other row must keep its poison, and the row padding too. */
static void check_cache(const dt *cache, const double *pv, int64_t T, const double *ref,
                        double limit, const char *what) {
    const int64_t Hkv = cache->t.shape[0], L = cache->t.shape[1], D = cache->t.shape[2];
    double *got = malloc(sizeof(double) * Hkv * L * D);
    double *gw = malloc(sizeof(double) * Hkv * T * D), *rw = malloc(sizeof(double) * Hkv * T * D);
    const int64_t touched = dt_download(cache, got);
    int64_t n = 0, foreign = 0;
    for (int64_t h = 0; h < Hkv; h++)
        for (int64_t l = 0; l < L; l++) {
            int64_t t = -1;
            for (int64_t u = 0; u < T; u++)
                if ((int64_t)pv[u] == l) t = u;
            for (int64_t i = 0; i < D; i++) {
                const double g = got[(h * L + l) * D + i];
                if (t < 0) {
                    foreign += !isnan(g);
                } else {
                    gw[n] = g;
                    rw[n++] = ref[(h * T + t) * D + i];
                }
            }
        }
    const double e = nmse(gw, rw, n);
    CHECK(e <= limit && foreign == 0 && touched == 0,
          "[%s] %s: nmse %.3g > %.3g, %lld values in foreign rows, %lld pad bytes", BNAME, what, e,
          limit, (long long)foreign, (long long)touched);
    free(got);
    free(gw);
    free(rw);
}

/* The raw bytes of d's buffer (malloc'd). */
static unsigned char *dt_bytes(const dt *d) {
    unsigned char *h = malloc(d->bytes);
    fr_error err = {0};
    CHECK(fr_buffer_download(&d->buf, 0, h, d->bytes, &err) == FR_OK, "download: %s", err.msg);
    return h;
}

/* Whether two tensors made alike hold the same bytes (padding included), or a poisoned tensor
 * (b NULL) still holds nothing but poison. */
static bool same_bytes(const dt *a, const dt *b) {
    unsigned char *ha = dt_bytes(a), *hb = b ? dt_bytes(b) : malloc(a->bytes);
    if (!b) memset(hb, 0xff, a->bytes);
    const bool same = (!b || a->bytes == b->bytes) && !memcmp(ha, hb, a->bytes);
    free(ha);
    free(hb);
    return same;
}

/* float64 results of attn_prepare for the fused [T, C] input xv: q [H,T,D], k (before the
 * cache's rounding) and v (after it) [Hkv,T,D], all rotated by the table rows pv picks. */
static void prep_ref(const double *xv, const double *qn, const double *kn, const double *tab,
                     const double *pv, int mode, fr_dtype ct, int64_t T, int64_t H, int64_t Hkv,
                     int64_t D, double *qref, double *kref, double *vref) {
    const int64_t C = (H + 2 * Hkv) * D;
    for (int64_t t = 0; t < T; t++) {
        const double *cs = tab + (int64_t)pv[t] * D, *row = xv + t * C;
        for (int64_t h = 0; h < H; h++)
            ref_rope_head(row + h * D, qn, cs, mode, D, qref + (h * T + t) * D);
        for (int64_t h = 0; h < Hkv; h++) {
            ref_rope_head(row + (H + h) * D, kn, cs, mode, D, kref + (h * T + t) * D);
            for (int64_t i = 0; i < D; i++)
                vref[(h * T + t) * D + i] = rounded(ct, row[(H + Hkv + h) * D + i]);
        }
    }
}

static void one_attn_prepare(int mode, fr_dtype ct, int64_t T, int64_t H, int64_t Hkv, int64_t D,
                             int64_t xpad, int64_t p0) {
    const int64_t C = (H + 2 * Hkv) * D, P = p0 + 2 * T + 3, L = P - 1;
    const float eps = 1e-6f;
    dt qkv, qn, kn, rope, pos, qo, kc, vc, qr, kr, vr, kc2, vc2;
    dt_make(&qkv, FR_DTYPE_F32, 2, (int64_t[]){T, C}, xpad);
    dt_make(&qn, FR_DTYPE_F32, 1, (int64_t[]){D}, 0);
    dt_make(&kn, FR_DTYPE_F32, 1, (int64_t[]){D}, 0);
    dt_make(&rope, FR_DTYPE_F32, 2, (int64_t[]){P, D}, 0);
    dt_make(&pos, FR_DTYPE_I32, 1, (int64_t[]){T}, 0);
    dt_make(&qo, FR_DTYPE_F32, 3, (int64_t[]){H, T, D}, 0);
    dt_make(&kc, ct, 3, (int64_t[]){Hkv, L, D}, 3); /* row stride > D, as kv_append's test */
    dt_make(&vc, ct, 3, (int64_t[]){Hkv, L, D}, 3);
    const fr_tensor q = cols_view(&qkv, 0, H, D), k = cols_view(&qkv, H * D, Hkv, D),
                    v = cols_view(&qkv, (H + Hkv) * D, Hkv, D);
    const fr_tensor *qnt = mode == FR_ROPE_MODE_NORM_ROPE ? &qn.t : NULL,
                    *knt = mode == FR_ROPE_MODE_NORM_ROPE ? &kn.t : NULL;
    double *xv = rand_vals(T * C), *qnv = rand_vals(D), *knv = rand_vals(D);
    double *pv = malloc(sizeof(double) * T), *tabd = malloc(sizeof(double) * P * D);
    double *qref = malloc(sizeof(double) * H * T * D), *got = malloc(sizeof(double) * H * T * D);
    double *kref = malloc(sizeof(double) * Hkv * T * D),
           *vref = malloc(sizeof(double) * Hkv * T * D);
    float *tab = malloc(sizeof(float) * P * D);
    fr_rope_config cfg = {.theta = 10000.0, .head_dim = (int)D};
    fr_rope_table_fill(&cfg, (int)P, tab);
    for (int64_t i = 0; i < P * D; i++)
        tabd[i] = tab[i];
    /* positions: an offset run (cache rows below p0 and between stay unwritten), the last one
     * out of order */
    for (int64_t t = 0; t < T; t++)
        pv[t] = (double)(p0 + t);
    if (T > 2) pv[T - 1] = (double)(p0 + 2 * T);
    dt_upload(&qkv, xv);
    dt_upload(&qn, qnv);
    dt_upload(&kn, knv);
    dt_upload(&rope, tabd);
    dt_upload(&pos, pv);
    dt_poison(&qo);
    dt_poison(&kc);
    dt_poison(&vc);
    CALL_OK(fr_op_attn_prepare(B, &q, &k, &v, qnt, knt, &rope.t, &pos.t, mode, eps, &qo.t, &kc.t,
                               &vc.t, ERR),
            "attn_prepare");
    char what[128], part[160];
    snprintf(what, sizeof what,
             "attn_prepare mode=%d %s T=%lld H=%lld/%lld D=%lld pad=%lld p0=%lld", mode,
             fr_dtype_name(ct), (long long)T, (long long)H, (long long)Hkv, (long long)D,
             (long long)xpad, (long long)p0);
    /* (a) float64 references; (b) nothing written outside q_out and the appended rows */
    prep_ref(xv, qnv, knv, tabd, pv, mode, ct, T, H, Hkv, D, qref, kref, vref);
    snprintf(part, sizeof part, "%s q_out", what);
    check_out(&qo, got, qref, tol(FR_DTYPE_F32), part);
    snprintf(part, sizeof part, "%s k_cache", what);
    check_cache(&kc, pv, T, kref, tol_stored(ct), part);
    snprintf(part, sizeof part, "%s v_cache", what);
    check_cache(&vc, pv, T, vref, 0.0, part); /* a copy is exact */

    /* (c) the same bytes as the five unfused ops */
    dt_make(&qr, FR_DTYPE_F32, 3, (int64_t[]){H, T, D}, 0);
    dt_make(&kr, FR_DTYPE_F32, 3, (int64_t[]){Hkv, T, D}, 0);
    dt_make(&vr, FR_DTYPE_F32, 3, (int64_t[]){Hkv, T, D}, 0);
    dt_make(&kc2, ct, 3, (int64_t[]){Hkv, L, D}, 3);
    dt_make(&vc2, ct, 3, (int64_t[]){Hkv, L, D}, 3);
    dt_poison(&qr);
    dt_poison(&kc2);
    dt_poison(&vc2);
    CALL_OK(fr_op_qk_norm_rope(B, &q, qnt, &rope.t, &pos.t, mode, eps, &qr.t, ERR), "q rope");
    CALL_OK(fr_op_qk_norm_rope(B, &k, knt, &rope.t, &pos.t, mode, eps, &kr.t, ERR), "k rope");
    CALL_OK(fr_op_qk_norm_rope(B, &v, NULL, NULL, NULL, FR_ROPE_MODE_TRANSPOSE, 0.0f, &vr.t, ERR),
            "v transpose");
    CALL_OK(fr_op_kv_append(B, &kr.t, &pos.t, &kc2.t, ERR), "k append");
    CALL_OK(fr_op_kv_append(B, &vr.t, &pos.t, &vc2.t, ERR), "v append");
    CHECK(same_bytes(&qo, &qr) && same_bytes(&kc, &kc2) && same_bytes(&vc, &vc2),
          "[%s] %s: not bit-identical to qk_norm_rope x3 + kv_append x2 (q %d, k %d, v %d)", BNAME,
          what, same_bytes(&qo, &qr), same_bytes(&kc, &kc2), same_bytes(&vc, &vc2));

    if (IS_CPU) {
        /* (d) a position past the cache, past the table or negative: FR_ERR_RANGE before any
         * write */
        const double bad[3] = {(double)L, (double)P, -1.0};
        const double keep = pv[T - 1];
        for (int i = 0; i < 3; i++) {
            pv[T - 1] = bad[i];
            dt_upload(&pos, pv);
            dt_poison(&qo);
            dt_poison(&kc);
            dt_poison(&vc);
            fr_error err = {0};
            const fr_status s = fr_op_attn_prepare(B, &q, &k, &v, qnt, knt, &rope.t, &pos.t, mode,
                                                   eps, &qo.t, &kc.t, &vc.t, &err);
            CHECK(s == FR_ERR_RANGE, "[%s] %s: pos %g accepted (status %d)", BNAME, what, bad[i],
                  s);
            CHECK(same_bytes(&qo, NULL) && same_bytes(&kc, NULL) && same_bytes(&vc, NULL),
                  "[%s] %s: pos %g rejected after writing", BNAME, what, bad[i]);
        }
        pv[T - 1] = keep;
    } else {
        /* GPU backends cannot report a bad position: the cache rows of one past L are skipped,
         * its query is still rotated (by table row L, which exists as L < P) */
        pv[0] = (double)L;
        dt_upload(&pos, pv);
        dt_poison(&qo);
        dt_poison(&kc);
        dt_poison(&vc);
        CALL_OK(fr_op_attn_prepare(B, &q, &k, &v, qnt, knt, &rope.t, &pos.t, mode, eps, &qo.t,
                                   &kc.t, &vc.t, ERR),
                "attn_prepare pos past the cache");
        prep_ref(xv, qnv, knv, tabd, pv, mode, ct, T, H, Hkv, D, qref, kref, vref);
        snprintf(part, sizeof part, "%s pos past the cache", what);
        check_out(&qo, got, qref, tol(FR_DTYPE_F32), part);
        check_cache(&kc, pv, T, kref, tol_stored(ct), part);
        check_cache(&vc, pv, T, vref, 0.0, part);
    }
    double *host[] = {xv, qnv, knv, pv, tabd, qref, kref, vref, got};
    for (size_t i = 0; i < sizeof host / sizeof *host; i++)
        free(host[i]);
    free(tab);
    dt *all[] = {&qkv, &qn, &kn, &rope, &pos, &qo, &kc, &vc, &qr, &kr, &vr, &kc2, &vc2};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        dt_free(all[i]);
}

static void test_attn_prepare(void) {
    if (!fr_backend_has_fused(B, FR_FUSED_ATTN_PREPARE)) {
        fprintf(stderr, "[%s] attn_prepare: not implemented, skipped\n", BNAME);
        return;
    }
    for (int mode = FR_ROPE_MODE_NORM_ROPE; mode <= FR_ROPE_MODE_ROPE; mode++)
        for (int di = 0; di < 3; di++) {
            const fr_dtype ct = PLAIN[di];
            one_attn_prepare(mode, ct, 1, 4, 2, 64, 0, 0);
            one_attn_prepare(mode, ct, 3, 6, 3, 16, 5, 5); /* padded QKV rows */
            one_attn_prepare(mode, ct, 7, 4, 2, 128, 0, 5);
            one_attn_prepare(mode, ct, 7, 6, 3, 64, 8, 1000); /* padded, far into the table */
            one_attn_prepare(mode, ct, 33, 8, 2, 128, 0, 3);  /* big enough for the pool */
        }
}

/* Validation of attn_prepare: from a valid call, each broken argument in turn must give
 * FR_ERR_INVALID naming it. */
static void attn_prepare_invalid(void) {
    const int64_t T = 2, H = 2, Hkv = 1, D = 4, L = 5;
    dt qkv, nw, rope, pos, qo, kc, vc;
    dt_make(&qkv, FR_DTYPE_F32, 2, (int64_t[]){T, (H + 2 * Hkv) * D}, 0);
    dt_make(&nw, FR_DTYPE_F32, 1, (int64_t[]){D}, 0);
    dt_make(&rope, FR_DTYPE_F32, 2, (int64_t[]){3, D}, 0);
    dt_make(&pos, FR_DTYPE_I32, 1, (int64_t[]){T}, 0);
    dt_make(&qo, FR_DTYPE_F32, 3, (int64_t[]){H, T, D}, 0);
    dt_make(&kc, FR_DTYPE_F32, 3, (int64_t[]){Hkv, L, D}, 0);
    dt_make(&vc, FR_DTYPE_F32, 3, (int64_t[]){Hkv, L, D}, 0);
    dt_poison(&qkv); /* NaN inputs: only the statuses matter here */
    dt_poison(&nw);
    dt_poison(&rope);
    double pv[2] = {0, 1};
    dt_upload(&pos, pv);
    /* which argument breaks (0 q, 1 k, 2 v, 3 q_out, 4 k_cache, 5 v_cache: shape[dim] = n;
     * 6: q_norm NULL in mode 1; 7: mode 0) and the name the message must carry */
    static const struct {
        int which, dim, n;
        const char *name;
    } cases[] = {{-1, 0, 0, ""},     {1, 2, 2, "k "},      {2, 0, 1, "v "},
                 {3, 1, 1, "q_out"}, {4, 2, 2, "k_cache"}, {5, 1, 4, "v_cache"},
                 {0, 2, 3, "q "},    {6, 0, 0, "q_norm"},  {7, 0, 0, "mode"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fr_tensor t[6] = {cols_view(&qkv, 0, H, D),
                          cols_view(&qkv, H * D, Hkv, D),
                          cols_view(&qkv, (H + Hkv) * D, Hkv, D),
                          qo.t,
                          kc.t,
                          vc.t};
        if (cases[i].which >= 0 && cases[i].which < 6)
            t[cases[i].which].shape[cases[i].dim] = cases[i].n;
        fr_error err = {0};
        const fr_status s = fr_op_attn_prepare(
            B, &t[0], &t[1], &t[2], cases[i].which == 6 ? NULL : &nw.t, &nw.t, &rope.t, &pos.t,
            cases[i].which == 7 ? FR_ROPE_MODE_TRANSPOSE : FR_ROPE_MODE_NORM_ROPE, 1e-6f, &t[3],
            &t[4], &t[5], &err);
        CHECK(i == 0 ? s == FR_OK : s == FR_ERR_INVALID && strstr(err.msg, cases[i].name),
              "[%s] attn_prepare case %zu (%s): status %d (%s)", BNAME, i, cases[i].name, s,
              err.msg);
    }
    dt *all[] = {&qkv, &nw, &rope, &pos, &qo, &kc, &vc};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        dt_free(all[i]);
}

/* ------------------------------------------------------------------ attention */

/* float64 attention over the keys each query's position allows (causal, optional window):
 * q [H,T,D], k/v [Hkv,L,D] as doubles, positions pv[T]; w is scratch of L doubles. */
static void ref_attention(const double *qv, const double *kv, const double *vv, const double *pv,
                          int64_t H, int64_t Hkv, int64_t T, int64_t D, int64_t L, int window,
                          float scale, double *w, double *ref) {
    const double sc = scale > 0 ? scale : 1.0 / sqrt((double)D);
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t kh = h / (H / Hkv), p = (int64_t)pv[t];
            const int64_t lo = window > 0 ? (p - window + 1 > 0 ? p - window + 1 : 0) : 0;
            double mx = -INFINITY, sum = 0;
            for (int64_t j = lo; j <= p; j++) {
                double s = 0;
                for (int64_t i = 0; i < D; i++)
                    s += qv[(h * T + t) * D + i] * kv[(kh * L + j) * D + i];
                w[j] = s * sc;
                mx = fmax(mx, w[j]);
            }
            for (int64_t j = lo; j <= p; j++)
                sum += (w[j] = exp(w[j] - mx));
            for (int64_t i = 0; i < D; i++) {
                double o = 0;
                for (int64_t j = lo; j <= p; j++)
                    o += w[j] * vv[(kh * L + j) * D + i];
                ref[(t * H + h) * D + i] = o / sum;
            }
        }
}

/* One attention call against ref_attention: q in qt, cache in ct (rows padded by kpad), output in
 * ot. Positions are p0 + t, or with `shuffled` the same set in a scrambled order (t * 7 mod T),
 * which any backend must handle: each query's keys follow its own position. The whole cache holds
 * finite values; entries past each query's position must not count. */
static void attention_case(fr_dtype qt, fr_dtype ct, fr_dtype ot, int64_t H, int64_t Hkv, int64_t T,
                           int64_t D, int64_t L, int64_t p0, int window, float scale, int64_t kpad,
                           bool shuffled) {
    dt q, k, v, pos, out;
    dt_make(&q, qt, 3, (int64_t[]){H, T, D}, 0);
    dt_make(&k, ct, 3, (int64_t[]){Hkv, L, D}, kpad);
    dt_make(&v, ct, 3, (int64_t[]){Hkv, L, D}, kpad);
    dt_make(&pos, FR_DTYPE_I32, 1, (int64_t[]){T}, 0);
    dt_make(&out, ot, 3, (int64_t[]){T, H, D}, 0);
    double *qv = rand_vals(H * T * D), *kv = rand_vals(Hkv * L * D), *vv = rand_vals(Hkv * L * D);
    for (int64_t i = 0; i < Hkv * L * D; i++)
        kv[i] *= 3.0; /* sharper softmax */
    double *pv = malloc(sizeof(double) * T), *ref = malloc(sizeof(double) * T * H * D);
    double *got = malloc(sizeof(double) * T * H * D), *w = malloc(sizeof(double) * L);
    for (int64_t t = 0; t < T; t++)
        pv[t] = (double)(p0 + (shuffled ? t * 7 % T : t)); /* 7 and T coprime in the cases */
    dt_upload(&q, qv); /* rounds qv, kv, vv to what the backend sees */
    dt_upload(&k, kv);
    dt_upload(&v, vv);
    dt_upload(&pos, pv);
    dt_poison(&out);
    fr_attention_params prm = {.scale = scale, .window = window};
    CALL_OK(fr_op_attention(B, &q.t, &k.t, &v.t, &pos.t, &prm, &out.t, ERR), "attention");
    ref_attention(qv, kv, vv, pv, H, Hkv, T, D, L, window, scale, w, ref);
    char what[192];
    snprintf(what, sizeof what,
             "attention q %s cache %s out %s H=%lld Hkv=%lld T=%lld D=%lld L=%lld p0=%lld W=%d "
             "pad=%lld%s",
             fr_dtype_name(qt), fr_dtype_name(ct), fr_dtype_name(ot), (long long)H, (long long)Hkv,
             (long long)T, (long long)D, (long long)L, (long long)p0, window, (long long)kpad,
             shuffled ? " shuffled" : "");
    /* the output store's rounding adds about as much as the kernel's own (see the header) */
    check_out(&out, got, ref, tol(ct), what);
    if (IS_CPU) {
        pv[0] = (double)L;
        dt_upload(&pos, pv);
        fr_error err = {0};
        CHECK(fr_op_attention(B, &q.t, &k.t, &v.t, &pos.t, &prm, &out.t, &err) == FR_ERR_RANGE,
              "[%s] attention position past capacity accepted", BNAME);
    }
    free(qv);
    free(kv);
    free(vv);
    free(pv);
    free(ref);
    free(got);
    free(w);
    dt_free(&q);
    dt_free(&k);
    dt_free(&v);
    dt_free(&pos);
    dt_free(&out);
}

/* f32 q and output, cache in ct: every backend. */
static void one_attention(fr_dtype ct, int64_t H, int64_t Hkv, int64_t T, int64_t D, int64_t L,
                          int64_t p0, int window, float scale, int64_t kpad) {
    attention_case(FR_DTYPE_F32, ct, FR_DTYPE_F32, H, Hkv, T, D, L, p0, window, scale, kpad, false);
}

static void test_attention(void) {
    for (int di = 0; di < 3; di++) {
        const fr_dtype ct = PLAIN[di];
        one_attention(ct, 1, 1, 1, 1, 3, 0, 0, 0, 0);          /* a single key */
        one_attention(ct, 2, 2, 1, 17, 50, 33, 0, 0, 3);       /* decode, GQA 1, padded rows */
        one_attention(ct, 4, 2, 5, 64, 300, 150, 0, 0, 0);     /* prefill chunk, GQA 2, >2 tiles */
        one_attention(ct, 8, 2, 3, 33, 40, 10, 0, 0.3f, 1);    /* GQA 4, explicit scale */
        one_attention(ct, 4, 1, 7, 16, 30, 0, 3, 0, 0);        /* window 3 from position 0 */
        one_attention(ct, 4, 4, 4, 128, 200, 150, 70, 0, 8);   /* window across tiles */
        one_attention(ct, 2, 1, 2, 8, 12, 4, 1, 0, 0);         /* window 1: only itself */
        one_attention(ct, 16, 8, 1, 128, 2100, 2047, 0, 0, 0); /* 2k-context decode */
        one_attention(ct, 20, 1, 3, 24, 90, 70, 0, 0, 0);      /* GQA 20: several head groups */
        /* prefill blocks: the CPU scores several tokens of a kv head together (8 query rows);
         * their key ranges differ, with windows, across tiles and when positions are not in
         * order */
        one_attention(ct, 4, 4, 20, 16, 200, 50, 0, 0, 0);  /* GQA 1: 8 tokens a block */
        one_attention(ct, 8, 2, 19, 32, 150, 60, 20, 0, 0); /* GQA 4, window 20, 2 tokens */
        attention_case(FR_DTYPE_F32, ct, FR_DTYPE_F32, 4, 2, 37, 64, 300, 100, 0, 0, 0, true);
        attention_case(FR_DTYPE_F32, ct, FR_DTYPE_F32, 6, 2, 23, 16, 100, 40, 9, 0, 0, true);
    }
}

/* A 16-bit KV cache under f32 activations (--kv-type f16|bf16, the CPU default): K and V rows are
 * appended from f32 by kv_append (rounding each element once, to nearest even) and attention
 * widens them back as it reads them. Checked against float64 twice: on the rounded values the
 * host computes (tol(ct): the op itself adds only f32 rounding, and kv_append must round exactly
 * as the host does), and on the unrounded f32 values, where the rounding of the cache is the whole
 * error: a relative step of 2^-11 (f16) or 2^-8 (bf16) per element, RMS 2^-11/sqrt(3) = 2.8e-4
 * and 8x that, so NMSE near 8e-8 and 64x that. Measured over these cases on every CPU table:
 * at most 1.3e-7 (f16) and 5.9e-6 (bf16). The limits, 1e-6 and 5e-5, leave 8x; an element read
 * with the wrong dtype or from the wrong position gives ~1. */
static double cache16_worst[2];

static void cache16_case(fr_dtype ct, int64_t H, int64_t Hkv, int64_t T, int64_t D, int64_t L,
                         int64_t p0, int window) {
    const int64_t n = p0 + T; /* keys appended: every position a query can see */
    dt q, kin, vin, apos, k, v, pos, out;
    dt_make(&q, FR_DTYPE_F32, 3, (int64_t[]){H, T, D}, 0);
    dt_make(&kin, FR_DTYPE_F32, 3, (int64_t[]){Hkv, n, D}, 0);
    dt_make(&vin, FR_DTYPE_F32, 3, (int64_t[]){Hkv, n, D}, 0);
    dt_make(&apos, FR_DTYPE_I32, 1, (int64_t[]){n}, 0);
    dt_make(&k, ct, 3, (int64_t[]){Hkv, L, D}, 0);
    dt_make(&v, ct, 3, (int64_t[]){Hkv, L, D}, 0);
    dt_make(&pos, FR_DTYPE_I32, 1, (int64_t[]){T}, 0);
    dt_make(&out, FR_DTYPE_F32, 3, (int64_t[]){T, H, D}, 0);
    double *qv = rand_vals(H * T * D), *kx = rand_vals(Hkv * n * D), *vx = rand_vals(Hkv * n * D);
    for (int64_t i = 0; i < Hkv * n * D; i++)
        kx[i] *= 3.0; /* sharper softmax, as test_attention */
    double *ap = malloc(sizeof(double) * (size_t)n), *pv = malloc(sizeof(double) * (size_t)T);
    for (int64_t j = 0; j < n; j++)
        ap[j] = (double)j;
    for (int64_t t = 0; t < T; t++)
        pv[t] = (double)(p0 + t);
    dt_upload(&q, qv);
    dt_upload(&kin, kx); /* kx, vx: the f32 values, not yet rounded to ct */
    dt_upload(&vin, vx);
    dt_upload(&apos, ap);
    dt_upload(&pos, pv);
    dt_poison(&k); /* rows past n stay NaN: attention must not read them */
    dt_poison(&v);
    dt_poison(&out);
    CALL_OK(fr_op_kv_append(B, &kin.t, &apos.t, &k.t, ERR), "kv_append k");
    CALL_OK(fr_op_kv_append(B, &vin.t, &apos.t, &v.t, ERR), "kv_append v");
    fr_attention_params prm = {.scale = 0, .window = window};
    CALL_OK(fr_op_attention(B, &q.t, &k.t, &v.t, &pos.t, &prm, &out.t, ERR), "attention");

    /* references over [Hkv, L, D] caches: the rounded and the unrounded values up to n */
    const int64_t nc = Hkv * L * D;
    double *kr = calloc((size_t)nc, sizeof(double)), *vr = calloc((size_t)nc, sizeof(double));
    double *kf = calloc((size_t)nc, sizeof(double)), *vf = calloc((size_t)nc, sizeof(double));
    for (int64_t h = 0; h < Hkv; h++)
        for (int64_t i = 0; i < n * D; i++) {
            const int64_t c = h * L * D + i, x = h * n * D + i;
            kf[c] = kx[x], vf[c] = vx[x];
            kr[c] = rounded(ct, kx[x]), vr[c] = rounded(ct, vx[x]);
        }
    double *ref = malloc(sizeof(double) * (size_t)(T * H * D));
    double *got = malloc(sizeof(double) * (size_t)(T * H * D)), *w = malloc(sizeof(double) * L);
    char what[160];
    snprintf(what, sizeof what,
             "attention, %s cache from kv_append: H=%lld Hkv=%lld T=%lld D=%lld p0=%lld W=%d",
             fr_dtype_name(ct), (long long)H, (long long)Hkv, (long long)T, (long long)D,
             (long long)p0, window);
    ref_attention(qv, kr, vr, pv, H, Hkv, T, D, L, window, 0, w, ref);
    check_out(&out, got, ref, tol(ct), what);
    ref_attention(qv, kf, vf, pv, H, Hkv, T, D, L, window, 0, w, ref);
    const double e = nmse(got, ref, T * H * D);
    const double limit = ct == FR_DTYPE_F16 ? 1e-6 : 5e-5;
    CHECK(e <= limit, "[%s] %s, against the unrounded f32 values: nmse %.3g > %.3g", BNAME, what, e,
          limit);
    double *worst = &cache16_worst[ct == FR_DTYPE_F16 ? 0 : 1];
    if (!(e <= *worst)) *worst = e;
    free(qv);
    free(kx);
    free(vx);
    free(ap);
    free(pv);
    free(kr);
    free(vr);
    free(kf);
    free(vf);
    free(ref);
    free(got);
    free(w);
    dt_free(&q);
    dt_free(&kin);
    dt_free(&vin);
    dt_free(&apos);
    dt_free(&k);
    dt_free(&v);
    dt_free(&pos);
    dt_free(&out);
}

static void test_attention_cache16(void) {
    const fr_dtype cts[] = {FR_DTYPE_F16, FR_DTYPE_BF16};
    cache16_worst[0] = cache16_worst[1] = 0;
    for (int di = 0; di < 2; di++) {
        const fr_dtype ct = cts[di];
        cache16_case(ct, 2, 2, 1, 17, 60, 40, 0);       /* decode, GQA 1, odd D */
        cache16_case(ct, 16, 8, 1, 128, 2100, 2047, 0); /* decode deep into a 2k context */
        cache16_case(ct, 8, 2, 1, 64, 300, 250, 100);   /* decode, GQA 4, sliding window */
        cache16_case(ct, 4, 2, 37, 64, 300, 100, 0);    /* prefill block after a prefix, GQA 2 */
        cache16_case(ct, 9, 3, 64, 64, 64, 0, 0);       /* prefill from 0, GQA 3, cache full */
        cache16_case(ct, 8, 2, 19, 32, 150, 60, 20);    /* prefill, GQA 4, window across tiles */
    }
    fprintf(stderr, "[%s] 16-bit cache vs unrounded f32 values: worst nmse f16 %.3g, bf16 %.3g\n",
            BNAME, cache16_worst[0], cache16_worst[1]);
}

/* Attention with 16-bit q, cache and (mostly) output: what --compute bf16|f16 runs, and on CUDA
 * the tensor-core prefill kernel (16-bit q and cache, D 64 or 128, T >= 16, 16-byte aligned cache
 * rows). Backends without 16-bit activations skip it. */
static void one_attention_act(fr_dtype ct, fr_dtype ot, int64_t H, int64_t Hkv, int64_t T,
                              int64_t D, int64_t L, int64_t p0, int window, float scale,
                              int64_t kpad, bool shuffled) {
    attention_case(ct, ct, ot, H, Hkv, T, D, L, p0, window, scale, kpad, shuffled);
}

static void test_attention_act(void) {
    const fr_dtype cts[] = {FR_DTYPE_F16, FR_DTYPE_BF16};
    for (int di = 0; di < 2; di++) {
        const fr_dtype ct = cts[di];
        if (!fr_backend_accepts_act(B, ct)) {
            fprintf(stderr, "[%s] attention with %s activations: not supported, skipped\n", BNAME,
                    fr_dtype_name(ct));
            continue;
        }
        /* one full row tile (T * G = 64 rows), keys in one tile */
        one_attention_act(ct, ct, 8, 2, 16, 64, 40, 0, 0, 0, 0, false);
        /* GQA 1, D 128, two key tiles, f32 output */
        one_attention_act(ct, FR_DTYPE_F32, 4, 4, 64, 128, 100, 0, 0, 0, 0, false);
        /* row tail (100 * 4 rows), cache already holding 150 tokens, rows padded by 16 bytes */
        one_attention_act(ct, ct, 8, 2, 100, 128, 300, 150, 0, 0, 8, false);
        /* 257 tokens: 5 row tiles, the last with one row; explicit scale */
        one_attention_act(ct, ct, 4, 4, 257, 64, 300, 0, 0, 0.2f, 0, false);
        /* sliding window after an offset: early keys invisible, ranges start mid-tile */
        one_attention_act(ct, ct, 8, 2, 257, 128, 600, 300, 100, 0, 8, false);
        /* a window narrower than a tile: most tiles are partly masked for every row */
        one_attention_act(ct, FR_DTYPE_F32, 4, 4, 100, 64, 200, 37, 5, 0, 8, false);
        /* positions out of order: each row's own range, not the tile's */
        one_attention_act(ct, ct, 8, 2, 64, 128, 150, 20, 0, 0, 0, true);
        one_attention_act(ct, ct, 4, 4, 100, 64, 140, 30, 9, 0, 0, true);
        /* GQA 10: row tiles split a token's query heads */
        one_attention_act(ct, ct, 20, 2, 20, 64, 60, 3, 0, 0, 0, false);
        /* a short chunk far into a long cache (many key tiles per row tile) */
        one_attention_act(ct, ct, 8, 2, 16, 128, 1100, 1000, 0, 0, 0, false);
        /* cache rows not 16-byte aligned, D not 64/128, too few tokens: the other kernels,
         * with 16-bit q */
        one_attention_act(ct, ct, 4, 2, 33, 64, 80, 10, 0, 0, 3, false);
        one_attention_act(ct, ct, 4, 2, 20, 96, 80, 10, 0, 0, 0, false);
        one_attention_act(ct, ct, 8, 2, 5, 128, 300, 200, 0, 0, 0, false);
    }
}

/* ------------------------------------------------------------------ element-wise */

static void test_elementwise(void) {
    const int64_t cols[] = {1, 3, 17, 4099, 20000};
    for (int ci = 0; ci < 5; ci++) {
        const int64_t T = ci == 4 ? 1 : 3, C = cols[ci], n = T * C;
        /* gate and up are the two halves of one [T, 2C] buffer (strided views) */
        dt gu, gate, up, out, s;
        dt_make(&gu, FR_DTYPE_F32, 2, (int64_t[]){T, 2 * C}, 0);
        dt_make(&out, FR_DTYPE_F32, 2, (int64_t[]){T, C}, 1);
        dt_make(&s, FR_DTYPE_F32, 1, (int64_t[]){C}, 0);
        gate = gu;
        gate.t.buf = &gu.buf;
        gate.t.shape[1] = C;
        up = gate;
        up.t.offset = (size_t)C * 4;
        double *guv = rand_vals(2 * n), *sv = rand_vals(C), *ref = malloc(sizeof(double) * n);
        double *got = malloc(sizeof(double) * n);
        for (int64_t i = 0; i < 2 * n; i++)
            guv[i] *= 8; /* exercise silu's tails */
        dt_upload(&gu, guv);
        dt_upload(&s, sv);
        char what[64];
        for (int op = 0; op < 3; op++) {
            dt_poison(&out);
            if (op == 0)
                CALL_OK(fr_op_silu_mul(B, &gate.t, &up.t, &out.t, ERR), "silu_mul");
            else if (op == 1)
                CALL_OK(fr_op_add(B, &gate.t, &up.t, &out.t, ERR), "add");
            else
                CALL_OK(fr_op_scaled_add(B, &gate.t, &up.t, &s.t, &out.t, ERR), "scaled_add");
            for (int64_t t = 0; t < T; t++)
                for (int64_t c = 0; c < C; c++) {
                    const double a = guv[t * 2 * C + c], b = guv[t * 2 * C + C + c];
                    ref[t * C + c] = op == 0   ? a / (1.0 + exp(-a)) * b
                                     : op == 1 ? a + b
                                               : a + b * sv[c];
                }
            snprintf(what, sizeof what, "%s T=%lld C=%lld",
                     op == 0   ? "silu_mul"
                     : op == 1 ? "add"
                               : "scaled_add",
                     (long long)T, (long long)C);
            check_out(&out, got, ref, tol(FR_DTYPE_F32), what);
        }
        free(guv);
        free(sv);
        free(ref);
        free(got);
        dt_free(&gu);
        dt_free(&out);
        dt_free(&s);
    }
}

/* ------------------------------------------------------------------ argmax */

static void test_argmax(void) {
    const int64_t cols[] = {1, 3, 17, 4099, 40000};
    for (int ci = 0; ci < 5; ci++) {
        const int64_t T = 4, V = cols[ci];
        dt x, out;
        dt_make(&x, FR_DTYPE_F32, 2, (int64_t[]){T, V}, 2);
        dt_make(&out, FR_DTYPE_I32, 1, (int64_t[]){T}, 0);
        double *xv = rand_vals(T * V), got[4];
        int64_t want[4];
        for (int64_t t = 0; t < T; t++) {
            double *r = xv + t * V;
            if (t == 1 && V > 1) { /* a tie: the first index wins */
                r[V / 3] = 2.0;
                r[V - 1] = 2.0;
            }
            if (t == 2 && V > 2) { /* NaNs are skipped, wherever they are */
                r[0] = NAN;
                r[V / 2] = NAN;
                r[V - 1] = 1.5;
            }
            if (t == 3) /* a row of NaN gives 0 */
                for (int64_t i = 0; i < V; i++)
                    r[i] = NAN;
            int64_t bi = -1;
            for (int64_t i = 0; i < V; i++)
                if (!isnan(r[i]) && (bi < 0 || r[i] > r[bi])) bi = i;
            want[t] = bi < 0 ? 0 : bi;
        }
        dt_upload(&x, xv);
        dt_poison(&out);
        CALL_OK(fr_op_argmax(B, &x.t, &out.t, ERR), "argmax");
        dt_download(&out, got);
        for (int64_t t = 0; t < T; t++)
            CHECK((int64_t)got[t] == want[t], "[%s] argmax V=%lld row %lld: got %lld want %lld",
                  BNAME, (long long)V, (long long)t, (long long)got[t], (long long)want[t]);
        free(xv);
        dt_free(&x);
        dt_free(&out);
    }
}

/* ------------------------------------------------------------------ error paths */

static void test_errors(void) {
    dt a, b, w16, ids_f, out, i32;
    dt_make(&a, FR_DTYPE_F32, 2, (int64_t[]){3, 8}, 0);
    dt_make(&b, FR_DTYPE_F32, 2, (int64_t[]){3, 9}, 0);
    dt_make(&w16, FR_DTYPE_F16, 1, (int64_t[]){8}, 0);
    dt_make(&ids_f, FR_DTYPE_F32, 1, (int64_t[]){3}, 0);
    dt_make(&out, FR_DTYPE_F32, 2, (int64_t[]){3, 8}, 0);
    dt_make(&i32, FR_DTYPE_I32, 1, (int64_t[]){3}, 0);
    fr_error err = {0};
    CHECK(fr_op_add(B, &a.t, &b.t, &out.t, &err) == FR_ERR_INVALID, "[%s] add shape", BNAME);
    CHECK(fr_op_rms_norm(B, &a.t, &w16.t, 1e-6f, &out.t, &err) == FR_ERR_INVALID,
          "[%s] rms_norm f16 weight", BNAME);
    CHECK(fr_op_embedding(B, &a.t, &ids_f.t, &out.t, &err) == FR_ERR_INVALID,
          "[%s] embedding f32 ids", BNAME);
    CHECK(fr_op_matmul(B, &a.t, &b.t, NULL, &out.t, &err) == FR_ERR_INVALID,
          "[%s] matmul K mismatch", BNAME);
    CHECK(fr_op_argmax(B, &a.t, &out.t, &err) == FR_ERR_INVALID, "[%s] argmax f32 out", BNAME);
    fr_tensor big = b.t;
    big.shape[0] = 4; /* extends past its buffer */
    CHECK(fr_op_silu_mul(B, &big, &big, &big, &err) == FR_ERR_INVALID, "[%s] silu_mul bounds",
          BNAME);
    attn_prepare_invalid();

    /* an op missing from a backend: same context, one NULL entry per op */
    fr_backend_ops ops = *B->ops;
    fr_backend fake = {&ops, B->ctx};
    dt fa, fo, fw, fi;
    fr_backend *real = B;
    B = &fake;
    dt_make(&fa, FR_DTYPE_F32, 3, (int64_t[]){2, 3, 4}, 0);
    dt_make(&fo, FR_DTYPE_F32, 3, (int64_t[]){2, 3, 4}, 0);
    dt_make(&fw, FR_DTYPE_F32, 2, (int64_t[]){4, 4}, 0);
    dt_make(&fi, FR_DTYPE_I32, 1, (int64_t[]){3}, 0);
    B = real;
    fr_tensor a2 = fr_tensor_2d(&fa.buf, 0, FR_DTYPE_F32, 3, 4);
    fr_tensor o2 = fr_tensor_2d(&fo.buf, 0, FR_DTYPE_F32, 3, 4);
    fr_tensor w1 = fr_tensor_1d(&fw.buf, 0, FR_DTYPE_F32, 4);
    fr_tensor p1 = fr_tensor_1d(&fi.buf, 0, FR_DTYPE_I32, 3);
    fr_tensor rope = fr_tensor_2d(&fw.buf, 0, FR_DTYPE_F32, 4, 4);
    fr_tensor kv = fr_tensor_3d(&fa.buf, 0, FR_DTYPE_F32, 1, 3, 4);
    fr_tensor cache = fr_tensor_3d(&fo.buf, 0, FR_DTYPE_F32, 1, 6, 4);
    fr_tensor o3 = fr_tensor_3d(&fo.buf, 0, FR_DTYPE_F32, 3, 1, 4);
    fr_tensor q3 = fr_tensor_3d(&fa.buf, 0, FR_DTYPE_F32, 1, 3, 4);
    fr_attention_params prm = {0};
    for (int op = 0; op < 12; op++) {
        ops = *B->ops;
        fr_status s = FR_OK;
        const char *name = "";
        switch (op) {
        case 0:
            ops.embedding = NULL, name = "embedding";
            s = fr_op_embedding(&fake, &fw.t, &p1, &o2, &err);
            break;
        case 1:
            ops.rms_norm = NULL, name = "rms_norm";
            s = fr_op_rms_norm(&fake, &a2, &w1, 1e-6f, &o2, &err);
            break;
        case 2:
            ops.matmul = NULL, name = "matmul";
            s = fr_op_matmul(&fake, &a2, &fw.t, NULL, &o2, &err);
            break;
        case 3:
            ops.qk_norm_rope = NULL, name = "qk_norm_rope";
            s = fr_op_qk_norm_rope(&fake, &fa.t, NULL, &rope, &fi.t, 0, 1e-6f, &fo.t, &err);
            break;
        case 4:
            ops.kv_append = NULL, name = "kv_append";
            s = fr_op_kv_append(&fake, &kv, &p1, &cache, &err);
            break;
        case 5:
            ops.attention = NULL, name = "attention";
            s = fr_op_attention(&fake, &q3, &cache, &cache, &p1, &prm, &o3, &err);
            break;
        case 6:
            ops.residual_norm = NULL, name = "residual_norm";
            s = fr_op_residual_norm(&fake, &a2, &a2, NULL, &w1, 1e-6f, &o2, &o2, &err);
            break;
        case 7:
            ops.silu_mul = NULL, name = "silu_mul";
            s = fr_op_silu_mul(&fake, &a2, &a2, &o2, &err);
            break;
        case 8:
            ops.add = NULL, name = "add";
            s = fr_op_add(&fake, &a2, &a2, &o2, &err);
            break;
        case 9:
            ops.scaled_add = NULL, name = "scaled_add";
            s = fr_op_scaled_add(&fake, &a2, &a2, &w1, &o2, &err);
            break;
        case 10:
            ops.argmax = NULL, name = "argmax";
            s = fr_op_argmax(&fake, &a2, &p1, &err);
            break;
        case 11:
            ops.attn_prepare = NULL, name = "attn_prepare";
            s = fr_op_attn_prepare(&fake, &fa.t, &kv, &kv, NULL, NULL, &rope, &p1, 2, 1e-6f, &fo.t,
                                   &cache, &cache, &err);
            break;
        }
        CHECK(s == FR_ERR_UNSUPPORTED && strstr(err.msg, name), "[%s] %s missing: status %d (%s)",
              BNAME, name, s, err.msg);
    }
    /* the buffers belong to `fake`, whose ctx is the real backend's: free through it */
    ops = *B->ops;
    B = &fake;
    dt_free(&fa);
    dt_free(&fo);
    dt_free(&fw);
    dt_free(&fi);
    B = real;
    dt_free(&a);
    dt_free(&b);
    dt_free(&w16);
    dt_free(&ids_f);
    dt_free(&out);
    dt_free(&i32);
}

/* ------------------------------------------------------------------ driver */

static void run_all(void) {
    test_embedding();
    test_norms();
    test_matmul();
    test_rope();
    test_kv_append();
    test_attn_prepare();
    test_attention();
    test_attention_cache16();
    test_attention_act();
    test_elementwise();
    test_argmax();
    test_errors();
}

static bool cpu_has(const char *isa) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    unsigned a, b, c, d; /* F16C by CPUID: clang 14's __builtin_cpu_supports does not know it */
    const bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
    if (!strcmp(isa, "avx2"))
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
    if (!strcmp(isa, "avx512"))
        return cpu_has("avx2") && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bf16");
#endif
    return !strcmp(isa, "scalar");
}

static void run_backend(const char *name, const char *isa, int n_threads) {
    if (isa) setenv("FR_CPU_ISA", isa, 1);
    fr_error err = {0};
    fr_backend *b = NULL;
    fr_backend_params params = {.n_threads = n_threads};
    fr_status s = fr_backend_create(name, &params, &b, &err);
    CHECK(s == FR_OK, "create backend %s: %s", name, err.msg);
    if (s != FR_OK) return;
    B = b;
    IS_CPU = !strcmp(name, "cpu");
    snprintf(BNAME, sizeof BNAME, "%s%s%s%s", name, isa ? "[" : "", isa ? isa : "", isa ? "]" : "");
    if (n_threads) snprintf(BNAME + strlen(BNAME), sizeof BNAME - strlen(BNAME), "x%d", n_threads);
    const int before = fr_test_failures;
    run_all();
    fprintf(stderr, "%s: %s\n", BNAME, fr_test_failures == before ? "ok" : "FAILED");
    fr_backend_destroy(b);
    unsetenv("FR_CPU_ISA");
}

int main(void) {
    test_rope_table();
    const char *env = getenv("FR_TEST_BACKENDS");
    char list[256];
    snprintf(list, sizeof list, "%s", env && *env ? env : "cpu");
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        if (colon) *colon = 0;
        if (!strcmp(tok, "cpu") && !colon) {
            const char *isas[] = {"scalar", "avx2", "avx512"};
            const char *best = "scalar";
            for (int i = 0; i < 3; i++) {
                if (cpu_has(isas[i]))
                    run_backend("cpu", best = isas[i], 0);
                else
                    fprintf(stderr, "cpu[%s]: not available on this CPU\n", isas[i]);
            }
            /* an odd thread count, so work splits never line up with the core count */
            run_backend("cpu", best, 3);
        } else {
            run_backend(tok, colon ? colon + 1 : NULL, 0);
        }
    }
    return fr_test_finish("test_ops");
}
