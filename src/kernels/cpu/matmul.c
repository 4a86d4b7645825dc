/* matmul: out[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]) with f32 activations and f32 / f16 /
 * bf16 weights (quantized weights go to matmul_quant.c).
 *
 * M <= 8 (decode, small batches) takes the GEMV path: it is memory-bound, so every weight row is
 * read exactly once and dotted with all M activation rows while it is in registers; the N rows
 * are split into contiguous chunks that the pool hands to both cores.
 * Larger M takes the GEMM path: N is split into tiles of GEMM_NB weight rows; each tile is
 * converted to f32 KC columns at a time (GEMM_NB x KC floats, resident in L2) and reused by every
 * row of x before moving on.
 *
 * This file also holds the portable scalar kernels; the SIMD ones are in matmul_avx2.c and
 * matmul_avx512.c, chosen per backend by CPUID (cpu_kernels.h). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/matmul_quant.h"

#define GEMV_MAX_M 8
/* weight rows per GEMM task: a multiple of every micro tile's panel (AVX2 16 rows, AVX-512 32) */
#define GEMM_NB 64
#define GEMM_KC 512 /* K columns per packed tile */
#define GEMM_MB 128 /* x rows per pass over a packed tile */

/* ---------------------------------------------------------------- portable kernels */

/* Weights are read in place from the mapped file, where a safetensors header of any length
 * leaves them at any address: 16-bit elements are fetched by memcpy (one plain load once
 * compiled), never through a misaligned uint16_t pointer. */
void fr_cpu_f16_to_f32_scalar(const void *src, float *dst, int64_t n) {
    const char *s = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        dst[i] = fr_f16_to_f32(h);
    }
}

void fr_cpu_bf16_to_f32_scalar(const void *src, float *dst, int64_t n) {
    const char *s = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        dst[i] = fr_bf16_to_f32(h);
    }
}

float fr_cpu_dot_scalar(const float *a, const float *b, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += a[i + j] * b[i + j];
    float s = 0;
    for (; i < n; i++)
        s += a[i] * b[i];
    for (int j = 0; j < 8; j++)
        s += acc[j];
    return s;
}

void fr_cpu_axpy_scalar(float a, const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

float fr_cpu_exp_sum_scalar(float *s, int64_t n, float max) {
    float sum = 0;
    for (int64_t i = 0; i < n; i++)
        sum += (s[i] = expf(s[i] - max));
    return sum;
}

void fr_cpu_silu_mul_scalar(const float *g, const float *u, float *o, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        o[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* Converts a weight row piece by piece into a small f32 buffer and dots it with every x row. */
static void gemv_scalar(const fr_gemv_args *a, int64_t n0, int64_t n1, fr_dtype wt) {
    enum { PIECE = 256 };
    float buf[PIECE];
    for (int64_t n = n0; n < n1; n++) {
        const char *wr = a->w + n * a->w_stride;
        float sum[GEMV_MAX_M] = {0};
        for (int64_t k0 = 0; k0 < a->K; k0 += PIECE) {
            const int64_t kn = a->K - k0 < PIECE ? a->K - k0 : PIECE;
            const float *wf = buf;
            if (wt == FR_DTYPE_F32 && (uintptr_t)wr % 4 == 0)
                wf = (const float *)wr + k0;
            else if (wt == FR_DTYPE_F32) /* a misaligned row of the mapped file */
                memcpy(buf, wr + k0 * 4, (size_t)kn * 4);
            else if (wt == FR_DTYPE_F16)
                fr_cpu_f16_to_f32_scalar((const uint16_t *)wr + k0, buf, kn);
            else
                fr_cpu_bf16_to_f32_scalar((const uint16_t *)wr + k0, buf, kn);
            for (int m = 0; m < a->M; m++)
                sum[m] += fr_cpu_dot_scalar(a->x + m * a->x_stride + k0, wf, kn);
        }
        for (int m = 0; m < a->M; m++)
            a->out[m * a->out_stride + n] = sum[m] + (a->bias ? a->bias[n] : 0.0f);
    }
}

void fr_cpu_gemv_f32_scalar(const fr_gemv_args *a, int64_t n0, int64_t n1) {
    gemv_scalar(a, n0, n1, FR_DTYPE_F32);
}
void fr_cpu_gemv_f16_scalar(const fr_gemv_args *a, int64_t n0, int64_t n1) {
    gemv_scalar(a, n0, n1, FR_DTYPE_F16);
}
void fr_cpu_gemv_bf16_scalar(const fr_gemv_args *a, int64_t n0, int64_t n1) {
    gemv_scalar(a, n0, n1, FR_DTYPE_BF16);
}

void fr_cpu_gemm_block_scalar(const float *x, int64_t xs, int64_t M, const float *w, int64_t ws,
                              int64_t N, int64_t K, float *out, int64_t os, int accumulate) {
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            const float d = fr_cpu_dot_scalar(x + m * xs, w + n * ws, K);
            out[m * os + n] = accumulate ? out[m * os + n] + d : d;
        }
}

static void pv_scalar(const float *p, int64_t p_stride, int nq, const char *v, int64_t v_stride,
                      int nk, int64_t D, float *acc, int64_t acc_stride, fr_dtype vt) {
    enum { PIECE = 256 };
    float buf[PIECE];
    for (int j = 0; j < nk; j++) {
        const char *vr = v + j * v_stride;
        for (int64_t i0 = 0; i0 < D; i0 += PIECE) {
            const int64_t n = D - i0 < PIECE ? D - i0 : PIECE;
            const float *vf = buf;
            if (vt == FR_DTYPE_F32)
                vf = (const float *)vr + i0;
            else if (vt == FR_DTYPE_F16)
                fr_cpu_f16_to_f32_scalar((const uint16_t *)vr + i0, buf, n);
            else
                fr_cpu_bf16_to_f32_scalar((const uint16_t *)vr + i0, buf, n);
            for (int a = 0; a < nq; a++)
                fr_cpu_axpy_scalar(p[a * p_stride + j], vf, acc + a * acc_stride + i0, n);
        }
    }
}

void fr_cpu_pv_f32_scalar(const float *p, int64_t p_stride, int nq, const char *v, int64_t v_stride,
                          int nk, int64_t D, float *acc, int64_t acc_stride) {
    pv_scalar(p, p_stride, nq, v, v_stride, nk, D, acc, acc_stride, FR_DTYPE_F32);
}
void fr_cpu_pv_f16_scalar(const float *p, int64_t p_stride, int nq, const char *v, int64_t v_stride,
                          int nk, int64_t D, float *acc, int64_t acc_stride) {
    pv_scalar(p, p_stride, nq, v, v_stride, nk, D, acc, acc_stride, FR_DTYPE_F16);
}
void fr_cpu_pv_bf16_scalar(const float *p, int64_t p_stride, int nq, const char *v,
                           int64_t v_stride, int nk, int64_t D, float *acc, int64_t acc_stride) {
    pv_scalar(p, p_stride, nq, v, v_stride, nk, D, acc, acc_stride, FR_DTYPE_BF16);
}

const fr_cpu_kernels fr_cpu_kernels_scalar = {
    .name = "scalar",
    .gemv_f32 = fr_cpu_gemv_f32_scalar,
    .gemv_f16 = fr_cpu_gemv_f16_scalar,
    .gemv_bf16 = fr_cpu_gemv_bf16_scalar,
    .gemm_block = fr_cpu_gemm_block_scalar,
    .pv_f32 = fr_cpu_pv_f32_scalar,
    .pv_f16 = fr_cpu_pv_f16_scalar,
    .pv_bf16 = fr_cpu_pv_bf16_scalar,
    .f16_to_f32 = fr_cpu_f16_to_f32_scalar,
    .bf16_to_f32 = fr_cpu_bf16_to_f32_scalar,
    .dot = fr_cpu_dot_scalar,
    .axpy = fr_cpu_axpy_scalar,
    .exp_sum = fr_cpu_exp_sum_scalar,
    .silu_mul = fr_cpu_silu_mul_scalar,
};

/* ---------------------------------------------------------------- GEMV path */

typedef struct {
    fr_gemv_args a;
    fr_gemv_fn fn;
    int64_t N, chunk;
} gemv_task_args;

static void gemv_task(void *varg, int64_t task, int thread) {
    const gemv_task_args *g = varg;
    const int64_t n0 = task * g->chunk, n1 = n0 + g->chunk < g->N ? n0 + g->chunk : g->N;
    g->fn(&g->a, n0, n1);
}

/* ---------------------------------------------------------------- GEMM path */

typedef struct {
    fr_cpu_ctx *ctx;
    const fr_tensor *x, *w, *out;
    const float *bias;
    int64_t M, N, K;
    int failed;
} gemm_task_args;

static void gemm_task(void *varg, int64_t task, int thread) {
    gemm_task_args *g = varg;
    const fr_cpu_kernels *k = g->ctx->k;
    const int64_t n0 = task * GEMM_NB, nb = g->N - n0 < GEMM_NB ? g->N - n0 : GEMM_NB;
    const fr_dtype wt = g->w->dtype;
    const int64_t xs = g->x->stride[0] / 4, os = g->out->stride[0] / 4;
    const float *x = (const float *)fr_cpu_at2(g->x, 0);
    float *out = (float *)fr_cpu_at2(g->out, 0) + n0;
    /* 16-bit weights straight into the packed panels where the table can (no f32 copy) */
    const fr_gemm_block16_fn direct = wt == FR_DTYPE_F16    ? k->gemm_block_f16
                                      : wt == FR_DTYPE_BF16 ? k->gemm_block_bf16
                                                            : NULL;
    /* f32 weights at a misaligned address (the mapped file) are copied like 16-bit ones: the
     * block kernels may read them as floats */
    const bool f32_copy =
        wt == FR_DTYPE_F32 && ((uintptr_t)fr_cpu_at2(g->w, n0) % 4 || g->w->stride[0] % 4);
    float *tile = NULL;
    if ((wt != FR_DTYPE_F32 && !direct) || f32_copy) {
        tile = fr_cpu_scratch(g->ctx, thread, sizeof(float) * GEMM_NB * GEMM_KC);
        if (!tile) {
            g->failed = 1;
            return;
        }
    }
    for (int64_t k0 = 0; k0 < g->K; k0 += GEMM_KC) {
        const int64_t kc = g->K - k0 < GEMM_KC ? g->K - k0 : GEMM_KC;
        if (direct) {
            const uint16_t *w16 = (const uint16_t *)fr_cpu_at2(g->w, n0) + k0;
            const int64_t ws16 = g->w->stride[0] / 2;
            for (int64_t m0 = 0; m0 < g->M; m0 += GEMM_MB) {
                const int64_t mb = g->M - m0 < GEMM_MB ? g->M - m0 : GEMM_MB;
                direct(x + m0 * xs + k0, xs, mb, w16, ws16, nb, kc, out + m0 * os, os, k0 > 0);
            }
            continue;
        }
        const float *wp;
        int64_t ws;
        if (wt == FR_DTYPE_F32 && !f32_copy) {
            wp = (const float *)fr_cpu_at2(g->w, n0) + k0;
            ws = g->w->stride[0] / 4;
        } else if (f32_copy) {
            for (int64_t r = 0; r < nb; r++)
                memcpy(tile + r * kc, (const char *)fr_cpu_at2(g->w, n0 + r) + k0 * 4,
                       (size_t)kc * 4);
            wp = tile;
            ws = kc;
        } else {
            fr_cvt_fn cvt = wt == FR_DTYPE_F16 ? k->f16_to_f32 : k->bf16_to_f32;
            for (int64_t r = 0; r < nb; r++)
                cvt((const uint16_t *)fr_cpu_at2(g->w, n0 + r) + k0, tile + r * kc, kc);
            wp = tile;
            ws = kc;
        }
        for (int64_t m0 = 0; m0 < g->M; m0 += GEMM_MB) {
            const int64_t mb = g->M - m0 < GEMM_MB ? g->M - m0 : GEMM_MB;
            k->gemm_block(x + m0 * xs + k0, xs, mb, wp, ws, nb, kc, out + m0 * os, os, k0 > 0);
        }
    }
    if (g->bias)
        for (int64_t m = 0; m < g->M; m++)
            for (int64_t n = 0; n < nb; n++)
                out[m * os + n] += g->bias[n0 + n];
}

/* ---------------------------------------------------------------- entry */

fr_status fr_cpu_matmul(void *vctx, const fr_tensor *x, const fr_tensor *w, const fr_tensor *bias,
                        fr_tensor *out, fr_error *err) {
    fr_cpu_ctx *ctx = vctx;
    if (x->dtype != FR_DTYPE_F32)
        return fr_cpu_unsupported_dtype(err, "matmul", "x", x, "f32 activations only");
    if (out->dtype != FR_DTYPE_F32)
        return fr_cpu_unsupported_dtype(err, "matmul", "out", out, "f32 activations only");
    if (fr_dtype_get(w->dtype)->quantized) {
        if (!fr_cpu_matmul_quant)
            return fr_error_set(err, FR_ERR_UNSUPPORTED,
                                "cpu matmul: weight dtype %s not supported (no quantized kernels "
                                "in this build)",
                                fr_dtype_name(w->dtype));
        return fr_cpu_matmul_quant(ctx, x, w, bias, out, err);
    }
    if (w->dtype != FR_DTYPE_F32 && w->dtype != FR_DTYPE_F16 && w->dtype != FR_DTYPE_BF16)
        return fr_cpu_unsupported_dtype(err, "matmul", "w", w, "f32, f16, bf16 or quantized");
    if (x->stride[0] % 4 || out->stride[0] % 4)
        return fr_error_set(err, FR_ERR_INVALID,
                            "cpu matmul: row strides of x (%lld) and out (%lld) must be multiples "
                            "of 4 bytes",
                            (long long)x->stride[0], (long long)out->stride[0]);
    const int64_t M = x->shape[0], K = x->shape[1], N = w->shape[0];
    const float *b = bias ? (const float *)fr_cpu_at2(bias, 0) : NULL;
    const double wbytes = (double)N * (double)K * fr_dtype_get(w->dtype)->block_bytes;

    if (M <= GEMV_MAX_M) {
        const fr_cpu_kernels *k = ctx->k;
        gemv_task_args g = {.a = {(const float *)fr_cpu_at2(x, 0), x->stride[0] / 4, (int)M,
                                  (const char *)fr_cpu_at2(w, 0), w->stride[0], K,
                                  (float *)fr_cpu_at2(out, 0), out->stride[0] / 4, b},
                            .fn = w->dtype == FR_DTYPE_F32   ? k->gemv_f32
                                  : w->dtype == FR_DTYPE_F16 ? k->gemv_f16
                                                             : k->gemv_bf16,
                            .N = N};
        /* chunks of >= 16 rows so each task streams a long contiguous run of weights */
        const int64_t chunk = fr_cpu_gemv_chunk(ctx, N, wbytes / (double)N, 16, 4);
        g.chunk = chunk;
        fr_cpu_run(ctx, (N + chunk - 1) / chunk, wbytes, gemv_task, &g);
        return FR_OK;
    }

    gemm_task_args g = {ctx, x, w, out, b, M, N, K, 0};
    fr_cpu_run(ctx, (N + GEMM_NB - 1) / GEMM_NB, wbytes + 2.0 * (double)M * (double)N * (double)K,
               gemm_task, &g);
    if (g.failed) return fr_error_set(err, FR_ERR_NOMEM, "cpu matmul: out of scratch memory");
    return FR_OK;
}

/* matmul_multi and matmul_glu: the fused entries of the interface, here as their definitions
 * (one matmul per matrix; silu_mul through the gate/up scratch), so every backend offers the
 * same op set and the fused CUDA kernels have a reference to match. */
fr_status fr_cpu_matmul_multi(void *ctx, const fr_tensor *x, int n, const fr_tensor *const *w,
                              const fr_tensor *const *bias, fr_tensor *const *out, fr_error *err) {
    for (int i = 0; i < n; i++)
        FR_TRY(fr_cpu_matmul(ctx, x, w[i], bias ? bias[i] : NULL, out[i], err));
    return FR_OK;
}

fr_status fr_cpu_matmul_glu(void *ctx, const fr_tensor *x, const fr_tensor *w_gate,
                            const fr_tensor *w_up, const fr_tensor *b_gate, const fr_tensor *b_up,
                            fr_tensor *gate, fr_tensor *up, fr_tensor *out, fr_error *err) {
    FR_TRY(fr_cpu_matmul(ctx, x, w_gate, b_gate, gate, err));
    FR_TRY(fr_cpu_matmul(ctx, x, w_up, b_up, up, err));
    return fr_cpu_silu_mul(ctx, gate, up, out, err);
}
