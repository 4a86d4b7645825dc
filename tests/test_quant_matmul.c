/* Quantized-weight matmul on the CPU backend (src/kernels/cpu/matmul_quant*.c), driven through
 * the public path: fr_backend_create("cpu"), fr_buffer_alloc / upload, fr_op_matmul, download.
 *
 * For every weight type, random weights are quantized with fr_quantize_row; the reference is a
 * float64 dot product, written plainly below, of the DEQUANTIZED weights (fr_dequantize_row)
 * with the f32 activations, plus the bias. Shapes are odd on purpose: K of one block, a few
 * blocks and many (32, 96, 4096 for the legacy formats; 256, 768 for the K formats), N = 1, 3,
 * 17, 257, M = 1..8 (GEMV path) and 37 / 131 (GEMM path, several activation tiles; plus 9, 11, 130
 * against N = 24, 45, 40 for the packed GEMM's row-group and panel remainders: every type has one
 * on AVX2 and AVX-512 VNNI, checked below so these cases keep reaching it),
 * bias on and off, x / out / w rows strided with padding that holds NaN (x) or a poison pattern
 * that must survive (out). Activations vary in magnitude by 256-element segments (x1, x0.01, x30)
 * and one row is all zeros (amax = 0).
 *
 * Error model. The kernels quantize each activation block (32 values for the legacy formats, 256
 * for the K formats) to q = round(x * 127 / amax) with scale d = amax / 127, so each activation
 * is off by at most d/2 (plus a few ulps from d != 1/(127/amax)). Everything after that is exact
 * integer arithmetic followed by f32 scaling and summation. Hence per output, rigorously,
 *     |got - ref| <= sum_k |w_k| * 0.5001 * d_block(k)  +  2e-5 * sum_k |w_k x_k|  + 1e-6 |bias|
 * where the second term covers f32 summation of at most K/32 + 8 block terms (<= 136 * 2^-24
 * relative to the sum of absolute terms) and the f32 rounding of scales.
 * In aggregate, quantization noise of a block uniform in (-a, a) has variance d^2/12 against a
 * signal variance a^2/3: NMSE = 1 / (4 * 127^2) = 1.55e-5 for independent weights, so the
 * aggregated NMSE per type must stay below 1e-4 (6x margin; one wrong block of 128 would give
 * ~1e-2).
 * The SIMD variants (FR_CPU_ISA=avx2 / avx512, each run when this CPU has it) see bit-identical
 * quantized activations and compute identical integer block sums, so they differ from the scalar
 * variant only by f32 summation order: |simd - scalar| <= 1e-5 * sum_k |w_k x_k|, ~400x tighter
 * than the quantization bound.
 *
 * Float activations (backends created with FR_QUANT_ACT_F32, kernels matmul_quantf*.c): the same
 * cases against the same float64 reference. The kernels use fr_dequantize_row's weight values
 * (at most one rounding apart: an FMA where it multiplies and adds) and sum w*x in f32, in chains
 * of at most D = 300 + K/8 additions (scalar: a block of <= 256, then K/32 block sums; SIMD:
 * K/8 per lane at most, plus the lane and chain reductions). Rigorously then
 *     |got - ref| <= (D + 2) * 2^-24 * sum_k |w_k x_k|  + 2^-24 |ref| + 1e-6 |bias|
 * (for K = 4096 about 5e-5 of sum|w x|, ~10x tighter than the 8-bit bound), and the aggregate
 * NMSE, ~1e-14 for f32 rounding, must stay below 1e-10 (a single wrong block of 128 gives ~1e-2).
 * Each float variant must also agree with the scalar float variant within 1e-5 * sum|w x|. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "common/testutil.h"
#include "core/quant.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/quant_dot.h"

static const fr_dtype TYPES[] = {FR_DTYPE_Q8_0, FR_DTYPE_Q4_0, FR_DTYPE_Q4_1, FR_DTYPE_Q5_0,
                                 FR_DTYPE_Q5_1, FR_DTYPE_Q4_K, FR_DTYPE_Q5_K, FR_DTYPE_Q6_K};
#define N_TYPES (int)(sizeof TYPES / sizeof TYPES[0])

#define MAX_VARIANTS 6
static struct {
    const char *isa;
    bool f32;  /* FR_QUANT_ACT_F32 (float activations) */
    int first; /* index of the scalar variant of the same activation mode */
    fr_backend *b;
    const char *kernels; /* quantized kernel table the backend picked */
    double nmse_num[N_TYPES], nmse_den[N_TYPES];
    double worst_bound_ratio; /* max |err| / bound over all outputs */
    double worst_agree_ratio; /* max |got - scalar| / (1e-5 sum|w x|) */
} V[MAX_VARIANTS];
static int NV;

static fr_test_rng RNG = {20240611};

static int type_index(fr_dtype t) {
    for (int i = 0; i < N_TYPES; i++)
        if (TYPES[i] == t) return i;
    return 0;
}

/* ------------------------------------------------------------------ backends per variant */

static void add_variant(const char *isa, const char *expect, bool f32) {
    setenv("FR_CPU_ISA", isa, 1);
    fr_error err = {0};
    fr_backend *b = NULL;
    fr_backend_params p = {.n_threads = 2, .quant_act = f32 ? FR_QUANT_ACT_F32 : FR_QUANT_ACT_Q8};
    const fr_status st = fr_backend_create("cpu", &p, &b, &err);
    unsetenv("FR_CPU_ISA");
    CHECK(st == FR_OK, "create cpu backend (%s): %s", isa, err.msg);
    if (st != FR_OK) return;
    const char *k = fr_cpu_quant_kernels_name((const fr_cpu_ctx *)b->ctx);
    CHECK(!strcmp(k, expect), "FR_CPU_ISA=%s picked quantized kernels %s, expected %s", isa, k,
          expect);
    V[NV].isa = isa;
    V[NV].f32 = f32;
    V[NV].first = NV;
    for (int i = 0; i < NV; i++)
        if (V[i].f32 == f32) {
            V[NV].first = i;
            break;
        }
    V[NV].b = b;
    V[NV].kernels = k;
    NV++;
}

static void make_variants(bool f32) {
    add_variant("scalar", f32 ? "scalar-f32" : "scalar", f32);
    __builtin_cpu_init();
    unsigned a, b, c, d; /* F16C by CPUID: clang 14's __builtin_cpu_supports does not know it */
    const bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
    const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bf16");
    if (avx2)
        add_variant("avx2", f32 ? "avx2-f32" : "avx2", f32);
    else
        printf("note: this CPU lacks AVX2; only the scalar kernels run\n");
    /* float activations on AVX-512 contexts use the AVX2 kernels (quant_dot.h) */
    if (avx512)
        add_variant("avx512",
                    f32                                    ? "avx2-f32"
                    : __builtin_cpu_supports("avx512vnni") ? "avx512-vnni"
                                                           : "avx2",
                    f32);
    else
        printf("note: this CPU lacks AVX-512 (F/BW/VL/DQ/BF16); the avx512 kernels do not run\n");
}

/* ------------------------------------------------------------------ one case */

typedef struct {
    fr_dtype t;
    int64_t M, N, K;
    bool bias;
    int64_t xpad, opad, wpad; /* row padding: floats for x / out, bytes for w */
    bool zero_row;            /* x row 1 all zeros */
} qcase;

static void upload(fr_backend *b, fr_buffer *buf, const void *src, size_t n) {
    fr_error err = {0};
    fr_status st = fr_buffer_alloc(b, n, buf, &err);
    CHECK(st == FR_OK, "alloc %zu: %s", n, err.msg);
    if (st == FR_OK) {
        st = fr_buffer_upload(buf, 0, src, n, &err);
        CHECK(st == FR_OK, "upload: %s", err.msg);
    }
}

static void run_case(const qcase *c) {
    const int64_t M = c->M, N = c->N, K = c->K;
    const int blk = fr_dtype_get(c->t)->block_elems;
    const size_t row_bytes = fr_dtype_row_bytes(c->t, K);
    const int64_t ws = (int64_t)row_bytes + c->wpad, xs = K + c->xpad, os = N + c->opad;
    const int ti = type_index(c->t);
    char what[96];
    snprintf(what, sizeof what, "%s M=%lld N=%lld K=%lld bias=%d", fr_dtype_name(c->t),
             (long long)M, (long long)N, (long long)K, c->bias);

    /* weights: rows of different scales with occasional outliers, quantized then dequantized */
    float *wf = malloc(sizeof(float) * (size_t)(N * K));
    float *wd = malloc(sizeof(float) * (size_t)(N * K));
    uint8_t *wq = calloc((size_t)(N * ws), 1);
    for (int64_t n = 0; n < N; n++) {
        const float scale = 0.02f * (float)(1 + n % 5);
        for (int64_t k = 0; k < K; k++) {
            float v = scale * fr_test_rng_sym(&RNG);
            if (fr_test_rng_u64(&RNG) % 61 == 0) v *= 8.0f;
            wf[n * K + k] = v;
        }
        fr_error err = {0};
        const fr_status st = fr_quantize_row(c->t, wf + n * K, wq + n * ws, K, &err);
        CHECK(st == FR_OK, "%s: quantize row %lld: %s", what, (long long)n, err.msg);
        fr_dequantize_row(c->t, wq + n * ws, wd + n * K, K);
    }

    /* activations: magnitude varies by 256-element segment; padding is NaN (must not be read) */
    float *x = malloc(sizeof(float) * (size_t)(M * xs));
    for (int64_t m = 0; m < M; m++)
        for (int64_t k = 0; k < xs; k++) {
            static const float seg_scale[3] = {1.0f, 0.01f, 30.0f};
            const float s = seg_scale[(m + k / 256) % 3];
            x[m * xs + k] = k >= K || (c->zero_row && m == 1) ? (k >= K ? NAN : 0.0f)
                                                              : s * fr_test_rng_sym(&RNG);
        }
    float *bias = malloc(sizeof(float) * (size_t)N);
    for (int64_t n = 0; n < N; n++)
        bias[n] = fr_test_rng_sym(&RNG);

    /* float64 reference and per-output bounds */
    const int ablk = blk == FR_QK_K ? FR_QK_K : FR_QK; /* activation block of the kernels */
    double *ref = malloc(sizeof(double) * (size_t)(M * N));
    double *bound = malloc(sizeof(double) * (size_t)(M * N));
    double *bound_f = malloc(sizeof(double) * (size_t)(M * N));
    double *absdot = malloc(sizeof(double) * (size_t)(M * N));
    double *dblk = malloc(sizeof(double) * (size_t)(K / ablk + 1));
    for (int64_t m = 0; m < M; m++) {
        const float *xr = x + m * xs;
        for (int64_t b = 0; b < K / ablk; b++) {
            double amax = 0;
            for (int i = 0; i < ablk; i++)
                amax = fmax(amax, fabs((double)xr[b * ablk + i]));
            dblk[b] = amax / 127.0;
        }
        for (int64_t n = 0; n < N; n++) {
            const float *wr = wd + n * K;
            double s = c->bias ? (double)bias[n] : 0.0, qerr = 0, ad = 0;
            for (int64_t k = 0; k < K; k++) {
                s += (double)wr[k] * (double)xr[k];
                qerr += fabs((double)wr[k]) * 0.5001 * dblk[k / ablk];
                ad += fabs((double)wr[k] * (double)xr[k]);
            }
            ref[m * N + n] = s;
            absdot[m * N + n] = ad;
            bound[m * N + n] = qerr + 2e-5 * ad + (c->bias ? 1e-6 * fabs(bias[n]) : 0.0);
            bound_f[m * N + n] = (300.0 + (double)K / 8 + 2) * 0x1p-24 * ad + 0x1p-24 * fabs(s) +
                                 (c->bias ? 1e-6 * fabs(bias[n]) : 0.0);
        }
    }

    float *got = malloc(sizeof(float) * (size_t)(M * os));
    /* scalar variants' outputs, by activation mode */
    float *first = malloc(sizeof(float) * (size_t)(2 * M * N));
    for (int v = 0; v < NV; v++) {
        fr_backend *b = V[v].b;
        fr_buffer wb = {0}, xb = {0}, bb = {0}, ob = {0};
        upload(b, &wb, wq, (size_t)(N * ws));
        upload(b, &xb, x, sizeof(float) * (size_t)(M * xs));
        upload(b, &bb, bias, sizeof(float) * (size_t)N);
        memset(got, 0xff, sizeof(float) * (size_t)(M * os));
        upload(b, &ob, got, sizeof(float) * (size_t)(M * os));
        fr_tensor wt = fr_tensor_2d(&wb, 0, c->t, N, K);
        wt.stride[0] = ws;
        fr_tensor xt = fr_tensor_2d(&xb, 0, FR_DTYPE_F32, M, K);
        xt.stride[0] = xs * (int64_t)sizeof(float);
        fr_tensor bt = fr_tensor_1d(&bb, 0, FR_DTYPE_F32, N);
        fr_tensor ot = fr_tensor_2d(&ob, 0, FR_DTYPE_F32, M, N);
        ot.stride[0] = os * (int64_t)sizeof(float);
        fr_error err = {0};
        fr_status st = fr_op_matmul(b, &xt, &wt, c->bias ? &bt : NULL, &ot, &err);
        CHECK(st == FR_OK, "%s [%s]: matmul: %s", what, V[v].isa, err.msg);
        st = fr_buffer_download(&ob, 0, got, sizeof(float) * (size_t)(M * os), &err);
        CHECK(st == FR_OK, "download: %s", err.msg);

        int bad_bound = 0, bad_pad = 0, bad_agree = 0;
        for (int64_t m = 0; m < M; m++) {
            for (int64_t n = 0; n < N; n++) {
                const double g = got[m * os + n], r = ref[m * N + n];
                const double e = fabs(g - r), bd = V[v].f32 ? bound_f[m * N + n] : bound[m * N + n];
                if (!(e <= bd) && bad_bound++ < 3)
                    fprintf(stderr, "  %s [%s] out[%lld,%lld] = %.9g, ref %.9g, bound %.3g\n", what,
                            V[v].isa, (long long)m, (long long)n, g, r, bd);
                if (bd > 0 && e / bd > V[v].worst_bound_ratio) V[v].worst_bound_ratio = e / bd;
                V[v].nmse_num[ti] += (g - r) * (g - r);
                V[v].nmse_den[ti] += r * r;
                float *sc = first + (V[v].f32 ? M * N : 0);
                if (V[v].first == v) {
                    sc[m * N + n] = (float)g;
                } else {
                    const double tol = 1e-5 * absdot[m * N + n] + 1e-6 * fabs(r) + 1e-30;
                    const double a = fabs(g - (double)sc[m * N + n]);
                    if (!(a <= tol) && bad_agree++ < 3)
                        fprintf(stderr, "  %s [%s vs scalar] out[%lld,%lld] = %.9g vs %.9g\n", what,
                                V[v].isa, (long long)m, (long long)n, g, (double)sc[m * N + n]);
                    if (a / tol > V[v].worst_agree_ratio) V[v].worst_agree_ratio = a / tol;
                }
            }
            for (int64_t n = N; n < os; n++) {
                uint32_t u;
                memcpy(&u, &got[m * os + n], 4);
                bad_pad += u != 0xffffffffu;
            }
        }
        CHECK(bad_bound == 0, "%s [%s]: %d outputs beyond the quantization error bound", what,
              V[v].isa, bad_bound);
        CHECK(bad_pad == 0, "%s [%s]: %d padding floats of out were written", what, V[v].isa,
              bad_pad);
        if (V[v].first != v)
            CHECK(bad_agree == 0, "%s [%s]: %d outputs differ from the scalar kernels", what,
                  V[v].isa, bad_agree);
        fr_buffer_free(&wb);
        fr_buffer_free(&xb);
        fr_buffer_free(&bb);
        fr_buffer_free(&ob);
    }
    free(wf);
    free(wd);
    free(wq);
    free(x);
    free(bias);
    free(ref);
    free(bound);
    free(bound_f);
    free(absdot);
    free(dblk);
    free(got);
    free(first);
}

/* ------------------------------------------------------------------ the embedding op's rows */

/* The embedding op dequantizes table rows through fr_cpu_dequantize_row; compare with
 * fr_dequantize_row element for element (same decoder, must be exact). */
static void check_embedding(fr_dtype t) {
    const int64_t V_ = 5, C = 512;
    const size_t rb = fr_dtype_row_bytes(t, C);
    uint8_t *tab = malloc(rb * V_);
    float *row = malloc(sizeof(float) * C), *want = malloc(sizeof(float) * C * 2);
    for (int64_t v = 0; v < V_; v++) {
        for (int64_t k = 0; k < C; k++)
            row[k] = fr_test_rng_sym(&RNG);
        fr_error err = {0};
        CHECK(fr_quantize_row(t, row, tab + v * rb, C, &err) == FR_OK, "quantize: %s", err.msg);
    }
    fr_backend *b = V[NV - 1].b;
    fr_buffer tb = {0}, ib = {0}, ob = {0};
    const int32_t ids[2] = {3, 0};
    upload(b, &tb, tab, rb * V_);
    upload(b, &ib, ids, sizeof ids);
    float *got = malloc(sizeof(float) * C * 2);
    upload(b, &ob, got, sizeof(float) * C * 2);
    fr_tensor tt = fr_tensor_2d(&tb, 0, t, V_, C), it = fr_tensor_1d(&ib, 0, FR_DTYPE_I32, 2),
              ot = fr_tensor_2d(&ob, 0, FR_DTYPE_F32, 2, C);
    fr_error err = {0};
    fr_status st = fr_op_embedding(b, &tt, &it, &ot, &err);
    CHECK(st == FR_OK, "embedding %s: %s", fr_dtype_name(t), err.msg);
    fr_buffer_download(&ob, 0, got, sizeof(float) * C * 2, &err);
    fr_dequantize_row(t, tab + 3 * rb, want, C);
    fr_dequantize_row(t, tab, want + C, C);
    CHECK(!memcmp(got, want, sizeof(float) * C * 2),
          "embedding %s rows differ from "
          "fr_dequantize_row",
          fr_dtype_name(t));
    fr_buffer_free(&tb);
    fr_buffer_free(&ib);
    fr_buffer_free(&ob);
    free(tab);
    free(row);
    free(want);
    free(got);
}

/* got[M x N] = x[M x K] (f32) times the N weight rows wq (dtype t, wbytes in all) on variant v;
 * false (after a CHECK failure naming `what`) when the op fails. */
static bool run_matmul(int v, const char *what, fr_dtype t, const void *wq, size_t wbytes,
                       int64_t N, int64_t K, const float *x, int64_t M, float *got) {
    fr_buffer wb = {0}, xb = {0}, ob = {0};
    upload(V[v].b, &wb, wq, wbytes);
    upload(V[v].b, &xb, x, sizeof(float) * (size_t)(M * K));
    upload(V[v].b, &ob, got, sizeof(float) * (size_t)(M * N));
    fr_tensor wt = fr_tensor_2d(&wb, 0, t, N, K), xt = fr_tensor_2d(&xb, 0, FR_DTYPE_F32, M, K),
              ot = fr_tensor_2d(&ob, 0, FR_DTYPE_F32, M, N);
    fr_error err = {0};
    const fr_status st = fr_op_matmul(V[v].b, &xt, &wt, NULL, &ot, &err);
    CHECK(st == FR_OK, "%s [%s]: %s", what, V[v].isa, err.msg);
    if (st == FR_OK) fr_buffer_download(&ob, 0, got, sizeof(float) * (size_t)(M * N), &err);
    fr_buffer_free(&wb);
    fr_buffer_free(&xb);
    fr_buffer_free(&ob);
    return st == FR_OK;
}

/* ------------------------------------------------------------------ q8_0 extremes */

/* q8_0 weights of magnitude 127 and 128 (fr_quantize_row never writes -128, a GGUF file may) with
 * the sign of full-scale activations (x = +-1 quantizes to +-127): every maddubs pair sum is
 * near the 16-bit limit (2*128*127 = 32512), so any kernel adding two of them in 16 bits
 * saturates and is off by far more than the tolerance. Run for M = 3 (GEMV) and M = 21 (GEMM),
 * N = 19 (a partial panel), K = 256. Exact answer: sum_k |w_k| (d_w = 1). */
static void check_q8_0_extremes(void) {
    enum { N = 19, K = 256, MMAX = 21 };
    fr_block_q8_0 wq[N * K / FR_QK];
    static float x[MMAX * K];
    double want[MMAX * N];
    for (int64_t m = 0; m < MMAX; m++)
        for (int64_t k = 0; k < K; k++)
            x[m * K + k] = (k * 7 + m * 3) % 5 < 2 ? -1.0f : 1.0f;
    for (int64_t n = 0; n < N; n++)
        for (int64_t b = 0; b < K / FR_QK; b++) {
            fr_block_q8_0 *blk = &wq[n * (K / FR_QK) + b];
            blk->d = fr_f32_to_f16(1.0f);
            for (int i = 0; i < FR_QK; i++) {
                const int64_t k = b * FR_QK + i;
                /* the sign of row 0's activation; other rows disagree in places (smaller sums) */
                const bool neg = x[k] < 0.0f;
                blk->qs[i] = (int8_t)(neg ? ((n + i) % 3 ? -127 : -128) : 127);
            }
        }
    for (int64_t m = 0; m < MMAX; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++)
                s += (double)wq[n * (K / FR_QK) + k / FR_QK].qs[k % FR_QK] * (double)x[m * K + k];
            want[m * N + n] = s;
        }
    static const int64_t Ms[] = {3, MMAX};
    for (int v = 0; v < NV; v++)
        for (int mi = 0; mi < 2; mi++) {
            const int64_t M = Ms[mi];
            float got[MMAX * N];
            if (!run_matmul(v, "q8_0 extremes", FR_DTYPE_Q8_0, wq, sizeof wq, N, K, x, M, got))
                continue;
            int bad = 0;
            for (int64_t i = 0; i < M * N; i++) {
                /* exact up to f32 scaling and summation: 1e-5 of the largest possible sum */
                if (!(fabs((double)got[i] - want[i]) <= 1e-5 * 128.0 * K) && bad++ < 3)
                    fprintf(stderr, "  q8_0 extremes [%s] M=%lld out[%lld] = %.9g, want %.9g\n",
                            V[v].isa, (long long)M, (long long)i, got[i], want[i]);
            }
            CHECK(bad == 0, "q8_0 extremes [%s] M=%lld: %d outputs wrong (16-bit saturation?)",
                  V[v].isa, (long long)M, bad);
        }
}

/* ------------------------------------------------------------------ largest integer sums */

/* Every other quantized type with all its quants at their largest unsigned value (every byte of
 * qs / qh / ql 0xff: 15, 31 or 63 before the zero point) and the largest 6-bit or int8 scales,
 * against activations of +1 (quantized to 127): the integer sums the kernels build before any
 * float scaling are as large as they can be, so a kernel that lets more groups add up in 16 bits
 * than the type's range allows (q5 values need a widening every 4 groups where q4 allows 8, and
 * the AVX-512 kernels rely on each run of groups fitting int16) overflows and is off by far more
 * than the tolerance. The reference is the float64 dot product of fr_dequantize_row's values.
 * M = 3 (GEMV) and 21 (GEMM), N = 19 (a partial panel), K = 512. */
static void check_largest_sums(void) {
    enum { N = 19, K = 512, MMAX = 21 };
    static const fr_dtype types[] = {FR_DTYPE_Q4_0, FR_DTYPE_Q4_1, FR_DTYPE_Q5_0, FR_DTYPE_Q5_1,
                                     FR_DTYPE_Q4_K, FR_DTYPE_Q5_K, FR_DTYPE_Q6_K};
    static float x[MMAX * K], deq[K];
    static uint8_t wq[N * K]; /* at least N rows of any type here */
    for (int64_t i = 0; i < MMAX * K; i++)
        x[i] = 1.0f;
    const uint16_t one = fr_f32_to_f16(1.0f), half = fr_f32_to_f16(0.5f);
    for (int ti = 0; ti < (int)(sizeof types / sizeof types[0]); ti++) {
        const fr_dtype t = types[ti];
        const size_t bb = fr_dtype_get(t)->block_bytes, rb = fr_dtype_row_bytes(t, K);
        memset(wq, 0xff, sizeof wq);
        for (size_t off = 0; off < N * rb; off += bb) {
            uint8_t *blk = wq + off;
            if (t == FR_DTYPE_Q6_K) {
                memset(blk + offsetof(fr_block_q6_k, scales), 127, FR_QK_K / 16);
                memcpy(blk + offsetof(fr_block_q6_k, d), &one, 2);
            } else {
                /* d first; q4_1 / q5_1 m and q4_k / q5_k dmin next (all-ones scale bytes give
                 * the K formats' 6-bit scales and mins of 63) */
                memcpy(blk, &one, 2);
                if (t != FR_DTYPE_Q4_0 && t != FR_DTYPE_Q5_0) memcpy(blk + 2, &half, 2);
            }
        }
        double want = 0;
        fr_dequantize_row(t, wq, deq, K);
        for (int64_t k = 0; k < K; k++)
            want += deq[k];
        double absw = 0;
        for (int64_t k = 0; k < K; k++)
            absw += fabs(deq[k]);
        static const int64_t Ms[] = {3, MMAX};
        for (int v = 0; v < NV; v++)
            for (int mi = 0; mi < 2; mi++) {
                const int64_t M = Ms[mi];
                float got[MMAX * N];
                char what[64];
                snprintf(what, sizeof what, "%s largest sums", fr_dtype_name(t));
                if (!run_matmul(v, what, t, wq, N * rb, N, K, x, M, got)) continue;
                int bad = 0;
                for (int64_t i = 0; i < M * N; i++) {
                    /* x = 1 quantizes exactly; what remains is f32 scaling and summation */
                    if (!(fabs((double)got[i] - want) <= 1e-5 * absw) && bad++ < 3)
                        fprintf(
                            stderr, "  %s largest sums [%s] M=%lld out[%lld] = %.9g, want %.9g\n",
                            fr_dtype_name(t), V[v].isa, (long long)M, (long long)i, got[i], want);
                }
                CHECK(bad == 0, "%s largest sums [%s] M=%lld: %d outputs wrong (16-bit overflow?)",
                      fr_dtype_name(t), V[v].isa, (long long)M, bad);
            }
    }
}

/* ------------------------------------------------------------------ errors */

static void check_errors(void) {
    fr_backend *b = V[0].b;
    fr_buffer wb = {0}, xb = {0}, ob = {0};
    fr_error err = {0};
    CHECK(fr_buffer_alloc(b, 4096, &wb, &err) == FR_OK, "alloc");
    CHECK(fr_buffer_alloc(b, 4096, &xb, &err) == FR_OK, "alloc");
    CHECK(fr_buffer_alloc(b, 4096, &ob, &err) == FR_OK, "alloc");
    memset(wb.data, 0, 4096);
    /* f16 activations: not supported with quantized weights on CPU, reported as such */
    fr_tensor w = fr_tensor_2d(&wb, 0, FR_DTYPE_Q4_0, 4, 64);
    fr_tensor x16 = fr_tensor_2d(&xb, 0, FR_DTYPE_F16, 2, 64);
    fr_tensor o = fr_tensor_2d(&ob, 0, FR_DTYPE_F32, 2, 4);
    fr_status st = fr_op_matmul(b, &x16, &w, NULL, &o, &err);
    CHECK(st == FR_ERR_UNSUPPORTED, "f16 x with q4_0 w gave status %d (%s)", st, err.msg);
    /* a K that is not a whole number of blocks never reaches the kernels */
    fr_tensor wbad = fr_tensor_2d(&wb, 0, FR_DTYPE_Q4_K, 4, 64);
    fr_tensor x = fr_tensor_2d(&xb, 0, FR_DTYPE_F32, 2, 64);
    st = fr_op_matmul(b, &x, &wbad, NULL, &o, &err);
    CHECK(st == FR_ERR_INVALID, "q4_k with K=64 gave status %d (%s)", st, err.msg);
    /* NaN in one activation block makes the outputs it touches NaN (as f32 weights would) */
    float xv[2 * 64];
    for (int i = 0; i < 128; i++)
        xv[i] = 0.5f;
    xv[70] = NAN;
    fr_buffer_upload(&xb, 0, xv, sizeof xv, &err);
    uint8_t wq[4 * 36];
    float ones[64];
    for (int i = 0; i < 64; i++)
        ones[i] = 1.0f;
    for (int r = 0; r < 4; r++)
        fr_quantize_row(FR_DTYPE_Q4_0, ones, wq + 36 * r, 64, &err);
    fr_buffer_upload(&wb, 0, wq, sizeof wq, &err);
    for (int v = 0; v < NV; v++) {
        fr_buffer wv = {0}, xvb = {0}, ov = {0};
        upload(V[v].b, &wv, wq, sizeof wq);
        upload(V[v].b, &xvb, xv, sizeof xv);
        float out[8] = {0};
        upload(V[v].b, &ov, out, sizeof out);
        fr_tensor wt = fr_tensor_2d(&wv, 0, FR_DTYPE_Q4_0, 4, 64),
                  xt = fr_tensor_2d(&xvb, 0, FR_DTYPE_F32, 2, 64),
                  ot = fr_tensor_2d(&ov, 0, FR_DTYPE_F32, 2, 4);
        st = fr_op_matmul(V[v].b, &xt, &wt, NULL, &ot, &err);
        CHECK(st == FR_OK, "nan case: %s", err.msg);
        fr_buffer_download(&ov, 0, out, sizeof out, &err);
        CHECK(fabsf(out[0] - 32.0f) < 0.05f && isnan(out[4]),
              "[%s] row without NaN gives %g (want 32), row with NaN gives %g (want NaN)", V[v].isa,
              out[0], out[4]);
        fr_buffer_free(&wv);
        fr_buffer_free(&xvb);
        fr_buffer_free(&ov);
    }
    fr_buffer_free(&wb);
    fr_buffer_free(&xb);
    fr_buffer_free(&ob);
}

int main(void) {
    make_variants(false);
    make_variants(true);
    if (NV == 0) return fr_test_finish("test_quant_matmul");
#if defined(__x86_64__) || defined(__i386__)
    /* the packed GEMMs the M > 8 cases exercise (a NULL entry would fall back to mm unnoticed) */
    for (int i = 0; i < N_TYPES; i++) {
        CHECK(fr_qmm_kernels_avx2.gemm && fr_qmm_kernels_avx2.gemm[TYPES[i]],
              "avx2 table lacks the %s packed GEMM", fr_dtype_name(TYPES[i]));
        CHECK(fr_qmm_kernels_avx512.gemm && fr_qmm_kernels_avx512.gemm[TYPES[i]],
              "avx512 table lacks the %s packed GEMM", fr_dtype_name(TYPES[i]));
    }
#endif
    static const int64_t Ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 37};
    static const int64_t Ns[] = {1, 3, 17, 257};
    static const int64_t K_legacy[] = {32, 96, 4096}, K_k[] = {256, 768};
    int n_cases = 0;
    for (int ti = 0; ti < N_TYPES; ti++) {
        const fr_dtype t = TYPES[ti];
        const bool kf = fr_dtype_get(t)->block_elems == FR_QK_K;
        const int64_t *Ks = kf ? K_k : K_legacy;
        const int nK = kf ? 2 : 3;
        for (int ki = 0; ki < nK; ki++)
            for (int ni = 0; ni < 4; ni++)
                for (int mi = 0; mi < 9; mi++) {
                    const int i = ki * 36 + ni * 9 + mi;
                    qcase c = {t,
                               Ms[mi],
                               Ns[ni],
                               Ks[ki],
                               (i % 2) == 0,
                               i % 3 ? 7 : 0,
                               i % 4 ? 5 : 0,
                               i % 5 ? 0 : 2 * fr_dtype_get(t)->block_bytes,
                               Ms[mi] > 2 && i % 3 == 1};
                    run_case(&c);
                    n_cases++;
                }
        /* several GEMM activation tiles (the tile holds <= 128 rows) */
        qcase big = {t, 131, 33, kf ? 768 : 96, true, 3, 1, 0, true};
        run_case(&big);
        n_cases++;
        /* GEMM edges: activation rows left over from groups of 4 (9, 11, 130 = 128 + 2), weight
         * rows that fill one 8-row panel of a 16-row task (24) or leave a partial one (40, 45) */
        static const int64_t gm[][2] = {{9, 24}, {11, 45}, {130, 40}};
        for (int gi = 0; gi < 3; gi++) {
            qcase g = {t, gm[gi][0], gm[gi][1], kf ? 512 : 160, gi == 1, 0, 2, 0, false};
            run_case(&g);
            n_cases++;
        }
        check_embedding(t);
    }
    check_q8_0_extremes();
    check_largest_sums();
    check_errors();
    printf("%d cases x %d variants\n", n_cases, NV);
    for (int v = 0; v < NV; v++) {
        printf("%-7s (kernels %s): worst |err|/bound %.3f, worst |diff vs scalar|/tol %.3f\n",
               V[v].isa, V[v].kernels, V[v].worst_bound_ratio, V[v].worst_agree_ratio);
        const double lim = V[v].f32 ? 1e-10 : 1e-4;
        for (int ti = 0; ti < N_TYPES; ti++) {
            const double nmse = V[v].nmse_num[ti] / V[v].nmse_den[ti];
            printf("   %-5s NMSE %.3g\n", fr_dtype_name(TYPES[ti]), nmse);
            CHECK(nmse < lim, "[%s] %s aggregate NMSE %.3g >= %g", V[v].kernels,
                  fr_dtype_name(TYPES[ti]), nmse, lim);
        }
    }
    for (int v = 0; v < NV; v++)
        fr_backend_destroy(V[v].b);
    return fr_test_finish("test_quant_matmul");
}
