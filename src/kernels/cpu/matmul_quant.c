/* matmul with quantized weights (q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k) straight from
 * the GGML blocks: weights are never dequantized to f32. Each call quantizes the activation rows
 * once into 8-bit blocks (layout and formulas in quant_dot.h), then every output is a sum of
 * exact integer block dot products, each scaled once in f32.
 *
 * M <= 8 (decode): memory-bound, so the N weight rows are split into contiguous chunks that the
 * pool hands to both cores and every weight row is read from memory once (software-prefetched
 * ~2 KiB ahead), then dotted with all M activation rows while it sits in L1.
 * M > 8 (prefill): tasks are tiles of GEMM_NT weight rows x MT activation rows, MT chosen so the
 * tile of quantized activations stays in L2; inside a tile, groups of 4 activation rows stay in
 * L1 while the tile's weight rows pass by.
 *
 * This file holds the driver, the portable scalar kernels and the row dequantizer used by the
 * embedding op; the AVX2 and AVX-512 VNNI kernels are in matmul_quant_avx2.c / _avx512.c. A
 * context created with FR_QUANT_ACT_F32 skips the activation quantization and hands the call to
 * matmul_quantf.c (float activations, weight blocks dequantized in registers). */
#include <float.h>
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/quant.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/matmul_quant.h"
#include "kernels/cpu/quant_dot.h"

#define GEMV_MAX_M     8
#define GEMM_NT        16           /* weight rows per GEMM tile */
#define GEMM_XTILE     (192 * 1024) /* bytes of quantized activations per GEMM tile (L2-resident) */
#define GEMM_XTILE_F32 (256 * 1024) /* the same for f32 activations (FR_QUANT_ACT_F32) */

/* ---------------------------------------------------------------- scalar activation quantizer */

/* One block of n values; returns the sum of the quants. *d = NaN for a non-finite block. */
static int quantize_block(const float *x, int n, int8_t *q, float *d) {
    float amax = 0.0f;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        const float a = fabsf(x[i]);
        if (!(a <= FLT_MAX))
            bad = 1;
        else if (a > amax)
            amax = a;
    }
    if (bad) {
        memset(q, 0, (size_t)n);
        *d = NAN;
        return 0;
    }
    float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    if (id > FLT_MAX) id = 0.0f; /* amax so small that 127/amax overflows: all quants are 0 */
    int sum = 0;
    for (int i = 0; i < n; i++) {
        q[i] = (int8_t)lrintf(x[i] * id);
        sum += q[i];
    }
    *d = amax / 127.0f;
    return sum;
}

static void quantize_x32_scalar(const float *x, void *row, int64_t K) {
    const int64_t nb = K / FR_QK;
    int8_t *qs = row;
    float *d = (float *)(qs + nb * FR_QK), *s = d + nb;
    int32_t *c8 = (int32_t *)(s + nb);
    for (int64_t b = 0; b < nb; b++) {
        const int sum = quantize_block(x + b * FR_QK, FR_QK, qs + b * FR_QK, &d[b]);
        s[b] = d[b] * (float)sum;
        c8[b] = -8 * sum;
    }
}

static void quantize_xk_scalar(const float *x, void *row, int64_t K) {
    fr_block_q8_k *y = row;
    for (int64_t b = 0; b < K / FR_QK_K; b++) {
        quantize_block(x + b * FR_QK_K, FR_QK_K, y[b].qs, &y[b].d);
        for (int j = 0; j < FR_QK_K / 16; j++) {
            int s = 0;
            for (int i = 0; i < 16; i++)
                s += y[b].qs[16 * j + i];
            y[b].bsums[j] = (int16_t)s;
        }
    }
}

/* ---------------------------------------------------------------- scalar kernels */

static inline float f16(uint16_t h) {
    return fr_f16_to_f32(h);
}

static inline int idot(const int8_t *w, const int8_t *x, int n) {
    int s = 0;
    for (int i = 0; i < n; i++)
        s += w[i] * x[i];
    return s;
}

static inline uint32_t load_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Legacy block b of a weight row as 32 small integers plus its scale, min and offset factor. */
static inline void legacy_block(fr_dtype t, const char *row, int64_t b, int8_t *u, float *dw,
                                float *mw) {
    *mw = 0.0f;
    switch (t) {
    case FR_DTYPE_Q8_0: {
        const fr_block_q8_0 *w = (const fr_block_q8_0 *)row + b;
        memcpy(u, w->qs, FR_QK);
        *dw = f16(w->d);
        break;
    }
    case FR_DTYPE_Q4_0:
    case FR_DTYPE_Q4_1: {
        const uint8_t *qs;
        if (t == FR_DTYPE_Q4_0) {
            const fr_block_q4_0 *w = (const fr_block_q4_0 *)row + b;
            qs = w->qs;
            *dw = f16(w->d);
        } else {
            const fr_block_q4_1 *w = (const fr_block_q4_1 *)row + b;
            qs = w->qs;
            *dw = f16(w->d);
            *mw = f16(w->m);
        }
        for (int j = 0; j < 16; j++) {
            u[j] = (int8_t)(qs[j] & 15);
            u[j + 16] = (int8_t)(qs[j] >> 4);
        }
        break;
    }
    case FR_DTYPE_Q5_0:
    case FR_DTYPE_Q5_1: {
        const uint8_t *qs;
        uint32_t qh;
        if (t == FR_DTYPE_Q5_0) {
            const fr_block_q5_0 *w = (const fr_block_q5_0 *)row + b;
            qs = w->qs;
            qh = load_u32(w->qh);
            *dw = f16(w->d);
        } else {
            const fr_block_q5_1 *w = (const fr_block_q5_1 *)row + b;
            qs = w->qs;
            qh = load_u32(w->qh);
            *dw = f16(w->d);
            *mw = f16(w->m);
        }
        for (int j = 0; j < 16; j++) {
            u[j] = (int8_t)((qs[j] & 15) | ((qh >> j) & 1) << 4);
            u[j + 16] = (int8_t)((qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4);
        }
        break;
    }
    default:
        break;
    }
}

static void mm_legacy_scalar(const fr_qmm_args *a, int64_t n0, int64_t n1, int64_t m0, int64_t m1,
                             fr_dtype t) {
    const int64_t nb = a->K / FR_QK;
    /* offset factor applied to dw*s: the zero point of the unsigned _0 formats */
    const float c = t == FR_DTYPE_Q4_0 ? -8.0f : t == FR_DTYPE_Q5_0 ? -16.0f : 0.0f;
    for (int64_t n = n0; n < n1; n++) {
        const char *row = a->w + n * a->w_stride;
        for (int64_t m = m0; m < m1; m++) {
            const int8_t *xq = (const int8_t *)(a->xq + m * a->xq_stride);
            const float *xd = (const float *)(xq + nb * FR_QK), *xs = xd + nb;
            float acc = 0.0f, off = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                int8_t u[FR_QK];
                float dw, mw;
                legacy_block(t, row, b, u, &dw, &mw);
                acc += dw * xd[b] * (float)idot(u, xq + b * FR_QK, FR_QK);
                if (t != FR_DTYPE_Q8_0)
                    off += (t == FR_DTYPE_Q4_1 || t == FR_DTYPE_Q5_1 ? mw : dw) * xs[b];
            }
            const float r = c != 0.0f ? acc + c * off : acc + off;
            a->out[m * a->out_stride + n] = r + (a->bias ? a->bias[n] : 0.0f);
        }
    }
}

/* Dot of one q4_k / q5_k super-block with a q8_k block: acc part (times dx*d) and min part
 * (times dx*dmin). */
static void q45k_block(const uint8_t *scales, const uint8_t *qs, const uint8_t *qh,
                       const fr_block_q8_k *x, int *isum, int *msum) {
    int s = 0, ms = 0;
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        fr_q4k_scale_min(j, scales, &sc, &m);
        const uint8_t *q = qs + 32 * (j / 2);
        const int shift = 4 * (j & 1);
        int8_t u[32];
        for (int l = 0; l < 32; l++) {
            int v = (q[l] >> shift) & 15;
            if (qh) v |= ((qh[l] >> j) & 1) << 4;
            u[l] = (int8_t)v;
        }
        s += sc * idot(u, x->qs + 32 * j, 32);
        ms += m * (x->bsums[2 * j] + x->bsums[2 * j + 1]);
    }
    *isum = s;
    *msum = ms;
}

static void mm_k_scalar(const fr_qmm_args *a, int64_t n0, int64_t n1, int64_t m0, int64_t m1,
                        fr_dtype t) {
    const int64_t nb = a->K / FR_QK_K;
    for (int64_t n = n0; n < n1; n++) {
        const char *row = a->w + n * a->w_stride;
        for (int64_t m = m0; m < m1; m++) {
            const fr_block_q8_k *x = (const fr_block_q8_k *)(a->xq + m * a->xq_stride);
            float acc = 0.0f, off = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                if (t == FR_DTYPE_Q6_K) {
                    const fr_block_q6_k *w = (const fr_block_q6_k *)row + b;
                    int s = 0;
                    for (int h = 0; h < 2; h++)
                        for (int j = 0; j < 8; j++) { /* 16-element sub-block 8h+j */
                            int8_t u[16];
                            for (int l = 0; l < 16; l++) {
                                const int e = 16 * j + l; /* 0..127 within the half */
                                const int lo = (w->ql[64 * h + e % 64] >> (e >= 64 ? 4 : 0)) & 15;
                                const int hi = (w->qh[32 * h + e % 32] >> (2 * (e / 32))) & 3;
                                u[l] = (int8_t)(lo | hi << 4);
                            }
                            const int sb = 8 * h + j;
                            s += w->scales[sb] *
                                 (idot(u, x[b].qs + 16 * sb, 16) - 32 * x[b].bsums[sb]);
                        }
                    acc += x[b].d * f16(w->d) * (float)s;
                } else {
                    int s, ms;
                    float d, dmin;
                    if (t == FR_DTYPE_Q4_K) {
                        const fr_block_q4_k *w = (const fr_block_q4_k *)row + b;
                        q45k_block(w->scales, w->qs, NULL, &x[b], &s, &ms);
                        d = f16(w->d);
                        dmin = f16(w->dmin);
                    } else {
                        const fr_block_q5_k *w = (const fr_block_q5_k *)row + b;
                        q45k_block(w->scales, w->qs, w->qh, &x[b], &s, &ms);
                        d = f16(w->d);
                        dmin = f16(w->dmin);
                    }
                    acc += x[b].d * d * (float)s;
                    off += x[b].d * dmin * (float)ms;
                }
            }
            a->out[m * a->out_stride + n] = acc - off + (a->bias ? a->bias[n] : 0.0f);
        }
    }
}

#define SCALAR_MM(name, fn, T)                                                                     \
    static void name(const fr_qmm_args *a, int64_t n0, int64_t n1, int64_t m0, int64_t m1) {       \
        fn(a, n0, n1, m0, m1, T);                                                                  \
    }
SCALAR_MM(mm_q8_0_scalar, mm_legacy_scalar, FR_DTYPE_Q8_0)
SCALAR_MM(mm_q4_0_scalar, mm_legacy_scalar, FR_DTYPE_Q4_0)
SCALAR_MM(mm_q4_1_scalar, mm_legacy_scalar, FR_DTYPE_Q4_1)
SCALAR_MM(mm_q5_0_scalar, mm_legacy_scalar, FR_DTYPE_Q5_0)
SCALAR_MM(mm_q5_1_scalar, mm_legacy_scalar, FR_DTYPE_Q5_1)
SCALAR_MM(mm_q4_k_scalar, mm_k_scalar, FR_DTYPE_Q4_K)
SCALAR_MM(mm_q5_k_scalar, mm_k_scalar, FR_DTYPE_Q5_K)
SCALAR_MM(mm_q6_k_scalar, mm_k_scalar, FR_DTYPE_Q6_K)

const fr_qmm_kernels fr_qmm_kernels_scalar = {
    .name = "scalar",
    .quantize_x32 = quantize_x32_scalar,
    .quantize_xk = quantize_xk_scalar,
    .mm =
        {
            [FR_DTYPE_Q8_0] = mm_q8_0_scalar,
            [FR_DTYPE_Q4_0] = mm_q4_0_scalar,
            [FR_DTYPE_Q4_1] = mm_q4_1_scalar,
            [FR_DTYPE_Q5_0] = mm_q5_0_scalar,
            [FR_DTYPE_Q5_1] = mm_q5_1_scalar,
            [FR_DTYPE_Q4_K] = mm_q4_k_scalar,
            [FR_DTYPE_Q5_K] = mm_q5_k_scalar,
            [FR_DTYPE_Q6_K] = mm_q6_k_scalar,
        },
};

/* ---------------------------------------------------------------- dispatch */

/* Follows the backend's kernel choice (so FR_CPU_ISA lowers it here too); the AVX-512 table
 * also needs VNNI, without which AVX2's maddubs kernels are as good. */
static const fr_qmm_kernels *qmm_pick(const fr_cpu_ctx *ctx) {
#if defined(__x86_64__) || defined(__i386__)
    if (ctx->k == &fr_cpu_kernels_avx512) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512vnni")) return &fr_qmm_kernels_avx512;
        return &fr_qmm_kernels_avx2;
    }
    if (ctx->k == &fr_cpu_kernels_avx2) return &fr_qmm_kernels_avx2;
#endif
    return &fr_qmm_kernels_scalar;
}

const char *fr_cpu_quant_kernels_name(const fr_cpu_ctx *ctx) {
    return ctx->quant_f32 ? fr_cpu_qmmf_pick(ctx)->name : qmm_pick(ctx)->name;
}

/* ---------------------------------------------------------------- driver */

typedef struct {
    fr_qmm_args a;
    fr_qmm_fn fn;
    fr_qgemm_fn gemm; /* packed GEMM (M > GEMV_MAX_M) or NULL */
    fr_cpu_ctx *ctx;  /* for the per-thread packing scratch */
    fr_qx_fn quantize;
    const char *x;
    int64_t x_stride; /* bytes */
    int64_t M, N;
    int64_t n_chunk;         /* GEMV: weight rows per task */
    int64_t m_tile, n_tiles; /* GEMM: activation rows per tile, tiles along N */
} qmm_job;

static void quantize_task(void *varg, int64_t m, int thread) {
    const qmm_job *j = varg;
    j->quantize((const float *)(j->x + m * j->x_stride), (char *)j->a.xq + m * j->a.xq_stride,
                j->a.K);
}

static void gemv_task(void *varg, int64_t task, int thread) {
    const qmm_job *j = varg;
    const int64_t n0 = task * j->n_chunk, n1 = n0 + j->n_chunk < j->N ? n0 + j->n_chunk : j->N;
    j->fn(&j->a, n0, n1, 0, j->M);
}

static void gemm_task(void *varg, int64_t task, int thread) {
    const qmm_job *j = varg;
    const int64_t mt = task / j->n_tiles, nt = task % j->n_tiles;
    const int64_t n0 = nt * GEMM_NT, n1 = n0 + GEMM_NT < j->N ? n0 + GEMM_NT : j->N;
    const int64_t m0 = mt * j->m_tile, m1 = m0 + j->m_tile < j->M ? m0 + j->m_tile : j->M;
    j->fn(&j->a, n0, n1, m0, m1);
}

static void qgemm_task(void *varg, int64_t task, int thread) {
    const qmm_job *j = varg;
    const int64_t mt = task / j->n_tiles, nt = task % j->n_tiles;
    const int64_t n0 = nt * FR_QGEMM_NT, n1 = n0 + FR_QGEMM_NT < j->N ? n0 + FR_QGEMM_NT : j->N;
    const int64_t m0 = mt * j->m_tile, m1 = m0 + j->m_tile < j->M ? m0 + j->m_tile : j->M;
    /* allocated for every thread before the run (fr_cpu_matmul_quant), so never NULL here */
    j->gemm(&j->a, n0, n1, m0, m1, j->ctx->scratch[thread]);
}

static void *quant_scratch(fr_cpu_ctx *ctx, size_t bytes) {
    if (ctx->quant_scratch_size < bytes) {
        fr_aligned_free(ctx->quant_scratch);
        const size_t grow = fr_align_up(bytes + bytes / 4, 4096);
        ctx->quant_scratch = fr_aligned_alloc(grow);
        ctx->quant_scratch_size = ctx->quant_scratch ? grow : 0;
    }
    return ctx->quant_scratch;
}

fr_status fr_cpu_matmul_quant(fr_cpu_ctx *ctx, const fr_tensor *x, const fr_tensor *w,
                              const fr_tensor *bias, fr_tensor *out, fr_error *err) {
    const fr_qmm_kernels *kk = qmm_pick(ctx);
    /* FR_QUANT_ACT_F32: the float kernels of matmul_quantf*.c read x as it is (no quantization,
     * no packed GEMM); the work split below is the same for both */
    const bool f32_act = ctx->quant_f32;
    const fr_qmm_fn fn = (unsigned)w->dtype >= FR_DTYPE_COUNT ? NULL
                         : f32_act                            ? fr_cpu_qmmf_pick(ctx)->mm[w->dtype]
                                                              : kk->mm[w->dtype];
    if (!fn)
        return fr_cpu_unsupported_dtype(
            err, "matmul", "w", w, "quantized: q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k");
    if (x->dtype != FR_DTYPE_F32)
        return fr_cpu_unsupported_dtype(err, "matmul", "x", x, "f32 activations only");
    if (out->dtype != FR_DTYPE_F32)
        return fr_cpu_unsupported_dtype(err, "matmul", "out", out, "f32 activations only");
    const int64_t M = x->shape[0], K = x->shape[1], N = w->shape[0];
    const int blk = fr_dtype_get(w->dtype)->block_elems;
    if (K % blk)
        return fr_error_set(err, FR_ERR_INVALID,
                            "cpu matmul: w rows of %lld elements are not whole %s blocks of %d",
                            (long long)K, fr_dtype_name(w->dtype), blk);
    if (x->stride[0] % (int64_t)sizeof(float) || out->stride[0] % (int64_t)sizeof(float))
        return fr_error_set(err, FR_ERR_INVALID,
                            "cpu matmul: x / out row strides must be multiples of 4 bytes");
    if (M <= 0 || N <= 0) return FR_OK;

    const bool kfmt = blk == FR_QK_K;
    const fr_qgemm_fn gemm = M > GEMV_MAX_M && !f32_act && kk->gemm ? kk->gemm[w->dtype] : NULL;
    const char *xh = (const char *)fr_tensor_host(x);
    size_t xrow = 0; /* bytes per activation row as the kernels read it */
    const void *xq = xh;
    int64_t xq_stride = x->stride[0];
    if (!f32_act) {
        xrow = kfmt ? fr_qxk_row_bytes(K) : fr_qx32_row_bytes(K);
        xq_stride = (int64_t)xrow;
        /* K == 0 still needs a valid pointer: outputs are then just the bias */
        xq = quant_scratch(ctx, xrow * (size_t)M + 64);
        if (!xq)
            return fr_error_set(err, FR_ERR_NOMEM,
                                "cpu matmul: cannot allocate %zu bytes for quantized activations",
                                xrow * (size_t)M);
    }

    qmm_job j = {
        .a = {(const char *)fr_tensor_host(w), w->stride[0], K, xq, xq_stride,
              (float *)fr_tensor_host(out), out->stride[0] / (int64_t)sizeof(float),
              bias ? (const float *)fr_tensor_host(bias) : NULL},
        .fn = fn,
        .gemm = gemm,
        .ctx = ctx,
        /* the packed GEMM of K formats reads q8_k like mm (quant_dot.h) */
        .quantize = kfmt   ? kk->quantize_xk
                    : gemm ? kk->quantize_x32_plain
                           : kk->quantize_x32,
        .x = xh,
        .x_stride = x->stride[0],
        .M = M,
        .N = N,
    };
    /* activations once per call; parallel only when there are enough rows to be worth it */
    if (!f32_act) fr_cpu_run(ctx, M, (double)M * (double)K * sizeof(float), quantize_task, &j);

    const double wbytes = (double)N * (double)fr_dtype_row_bytes(w->dtype, K);
    if (M <= GEMV_MAX_M) {
        /* the pool hands tasks out dynamically; at least 8 rows each so a task streams a long
         * contiguous run */
        const int64_t chunk = fr_cpu_gemv_chunk(ctx, N, wbytes / (double)N, 8, 1);
        j.n_chunk = chunk;
        fr_cpu_run(ctx, (N + chunk - 1) / chunk, wbytes * (double)M, gemv_task, &j);
        return FR_OK;
    }
    /* f32 rows are larger than quantized ones: a tile of them gets a larger L2 budget */
    const int64_t tile_row = f32_act ? K * (int64_t)sizeof(float) : (int64_t)xrow;
    const int64_t xtile = f32_act ? GEMM_XTILE_F32 : GEMM_XTILE;
    int64_t mt = (tile_row > 0 ? xtile / tile_row : 128) & ~(int64_t)3;
    mt = mt < 8 ? 8 : mt > 128 ? 128 : mt;
    j.m_tile = mt;
    if (gemm) {
        for (int t = 0; t < ctx->n_threads; t++)
            if (!fr_cpu_scratch(ctx, t, fr_qmm_gemm_pack_bytes(K)))
                return fr_error_set(err, FR_ERR_NOMEM,
                                    "cpu matmul: cannot allocate %zu bytes of packed weights",
                                    fr_qmm_gemm_pack_bytes(K));
        j.n_tiles = (N + FR_QGEMM_NT - 1) / FR_QGEMM_NT;
        fr_cpu_run(ctx, j.n_tiles * ((M + mt - 1) / mt), wbytes * (double)M, qgemm_task, &j);
        return FR_OK;
    }
    j.n_tiles = (N + GEMM_NT - 1) / GEMM_NT;
    fr_cpu_run(ctx, j.n_tiles * ((M + mt - 1) / mt), wbytes * (double)M, gemm_task, &j);
    return FR_OK;
}

void fr_cpu_dequantize_row(fr_dtype t, const void *row, float *out, int64_t n) {
    fr_dequantize_row(t, row, out, n);
}

void fr_cpu_quant_release(fr_cpu_ctx *ctx) {
    fr_aligned_free(ctx->quant_scratch);
    ctx->quant_scratch = NULL;
    ctx->quant_scratch_size = 0;
}
