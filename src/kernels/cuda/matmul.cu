/* matmul: out[m,n] = sum_k x[m,k] * w[n,k] (+ bias[n]); x [M,K], w [N,K], out [M,N].
 *
 * Three paths:
 *  - decode GEMV (M <= 8): our own kernel, one warp per weight row, 16-byte weight loads with
 *    four in flight per lane, conversion of bf16/f16 in registers, f32 accumulation. All M rows
 *    of x are applied to each weight chunk while it sits in registers, so weights are read once.
 *  - prefill GEMM (M > 8): cuBLASLt with f32 accumulation. The GEMM's input type follows the
 *    activations: f32 x runs a true f32 GEMM (no TF32: the f32 model path must stay within 1e-4
 *    of the reference), bf16/f16 x runs on tensor cores. Weights of another type are converted
 *    chunk by chunk into a scratch buffer allocated at context creation (exact for bf16/f16 ->
 *    f32), so nothing is allocated here and the whole op stays capturable.
 *  - a tiled SIMT GEMM for anything cuBLASLt declines (odd alignment, 16-bit output from f32
 *    input, a weight row too long for the scratch).
 *
 * Quantized weights (matmul_quant.cu) take the same three routes: their own GEMV that dequantizes
 * in registers, the chunked conversion (a row dequantizer) in front of cuBLASLt, and the SIMT
 * GEMM over f32 chunks dequantized into the same scratch. */
#include <stdlib.h>

#include "kernels/cuda/cuda_backend.h"

/* ------------------------------------------------------------------ activation chunks */

/* E consecutive activations starting at an address aligned to E elements. */
template <int E> __device__ __forceinline__ void fr_cu_load_x(const float *p, float *f) {
#pragma unroll
    for (int i = 0; i < E / 4; i++) {
        const float4 v = *(const float4 *)(p + 4 * i);
        f[4 * i] = v.x;
        f[4 * i + 1] = v.y;
        f[4 * i + 2] = v.z;
        f[4 * i + 3] = v.w;
    }
}
template <int E, typename H> __device__ __forceinline__ void fr_cu_load_x16(const H *p, float *f) {
#pragma unroll
    for (int i = 0; i < E / 2; i++)
        f[2 * i] = fr_cu_to_f32(p[2 * i]), f[2 * i + 1] = fr_cu_to_f32(p[2 * i + 1]);
}
template <int E> __device__ __forceinline__ void fr_cu_load_x(const __half *p, float *f) {
    if (E == 8) {
        const uint4 u = *(const uint4 *)p;
        fr_cu_w16<__half>::cvt(u, f);
    } else {
        fr_cu_load_x16<E>(p, f);
    }
}
template <int E> __device__ __forceinline__ void fr_cu_load_x(const __nv_bfloat16 *p, float *f) {
    if (E == 8) {
        const uint4 u = *(const uint4 *)p;
        fr_cu_w16<__nv_bfloat16>::cvt(u, f);
    } else {
        fr_cu_load_x16<E>(p, f);
    }
}

/* ------------------------------------------------------------------ decode GEMV */

#define FR_CU_GEMV_WARPS 8

/* Rows per warp: with one activation row a warp streams one weight row (x is tiny and cached);
 * with several, each chunk of x read from L1 serves two weight rows, halving that traffic. A
 * gate/up pair (GLU) is always two rows: the warp needs both results for its output. */
#ifndef FR_CU_GEMV_U1
#define FR_CU_GEMV_U1 8 /* 16-byte loads in flight per lane, one row and one x row */
#endif
#ifndef FR_CU_GEMV_U2
#define FR_CU_GEMV_U2 4 /* ... per row of a pair (two rows, or several x rows) */
#endif
template <int MM, bool GLU> struct fr_cu_gemv_shape {
    static constexpr int R = (MM == 1 && !GLU) ? 1 : 2; /* weight rows per warp */
    static constexpr int U = (MM == 1 && !GLU) ? FR_CU_GEMV_U1 : FR_CU_GEMV_U2;
};

/* MM: compile-time bound on M (1, 2, 4, 8) so accumulators stay in registers; M <= MM at run
 * time. VEC: rows of w and x are 16-byte aligned, so whole chunks are loaded as uint4. The
 * weight rows come from a row set (fr_cu_rowset): up to three matrices in one launch. */
template <typename XT, typename WT, int MM, bool VEC, bool GLU>
__global__ void __launch_bounds__(FR_CU_GEMV_WARPS * 32)
    fr_cu_gemv_kernel(const XT *__restrict__ x, int64_t ldx, fr_cu_rowset o, int M, int64_t K,
                      int ks) {
    __shared__ float red[FR_CU_GEMV_WARPS * 2 * MM];
    constexpr int R = fr_cu_gemv_shape<MM, GLU>::R, U = fr_cu_gemv_shape<MM, GLU>::U;
    const int lane = threadIdx.x & 31;
    const int64_t items = fr_cu_rowset_items(o);
    const int warp = threadIdx.x >> 5, part = warp % ks; /* ks warps share a row, split on K */
    int64_t g0 = ((int64_t)blockIdx.x * (FR_CU_GEMV_WARPS / ks) + warp / ks) * (GLU ? 1 : R);
    const bool active = g0 < items;
    if (!active) g0 = items - 1; /* loads stay in bounds; nothing is stored */
    const WT *wr[R];
#pragma unroll
    for (int r = 0; r < R; r++) /* a row past the end re-reads the last; its result is dropped */
        wr[r] = (const WT *)fr_cu_rowset_row(o, GLU ? r : -1,
                                             GLU ? g0 : (g0 + r < items ? g0 + r : items - 1));
        /* weights first (nothing before us writes them), then wait for x */
#pragma unroll
    for (int r = 0; r < R; r++) {
        const int64_t first = (int64_t)part * 32 * 16, n = K * (int64_t)sizeof(WT) - first;
        fr_cu_prefetch_l2((const char *)wr[r] + first, n < 4096 ? n : 4096, lane);
    }
    fr_cu_pdl_wait();
    float acc[R][MM];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int m = 0; m < MM; m++)
            acc[r][m] = 0.0f;
    int64_t k_tail = 0;
    if (VEC) {
        constexpr int E = fr_cu_w16<WT>::E;
        const int64_t nv = K / E;
        const int64_t step = 32 * ks;
        int64_t i = lane + 32 * part;
        /* Several independent 16-byte loads in flight before the first use. */
        for (; i + (U - 1) * step < nv; i += U * step) {
            uint4 u[R][U];
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
                for (int j = 0; j < U; j++)
                    u[r][j] = __ldg((const uint4 *)wr[r] + i + j * step);
#pragma unroll
            for (int j = 0; j < U; j++) {
                float wf[R][E];
#pragma unroll
                for (int r = 0; r < R; r++)
                    fr_cu_w16<WT>::cvt(u[r][j], wf[r]);
                const int64_t k = (i + j * step) * E;
#pragma unroll
                for (int m = 0; m < MM; m++) {
                    if (m < M) {
                        float xf[E];
                        fr_cu_load_x<E>(x + m * ldx + k, xf);
#pragma unroll
                        for (int r = 0; r < R; r++)
#pragma unroll
                            for (int e = 0; e < E; e++)
                                acc[r][m] = fmaf(wf[r][e], xf[e], acc[r][m]);
                    }
                }
            }
        }
        for (; i < nv; i += step) {
            float wf[R][E];
#pragma unroll
            for (int r = 0; r < R; r++)
                fr_cu_w16<WT>::cvt(__ldg((const uint4 *)wr[r] + i), wf[r]);
            const int64_t k = i * E;
#pragma unroll
            for (int m = 0; m < MM; m++) {
                if (m < M) {
                    float xf[E];
                    fr_cu_load_x<E>(x + m * ldx + k, xf);
#pragma unroll
                    for (int r = 0; r < R; r++)
#pragma unroll
                        for (int e = 0; e < E; e++)
                            acc[r][m] = fmaf(wf[r][e], xf[e], acc[r][m]);
                }
            }
        }
        k_tail = nv * E;
    }
    for (int64_t k = k_tail + lane + 32 * part; k < K; k += 32 * ks) {
        float wv[R];
#pragma unroll
        for (int r = 0; r < R; r++)
            wv[r] = fr_cu_to_f32(wr[r][k]);
#pragma unroll
        for (int m = 0; m < MM; m++) {
            if (m < M) {
                const float xv = fr_cu_to_f32(x[m * ldx + k]);
#pragma unroll
                for (int r = 0; r < R; r++)
                    acc[r][m] = fmaf(wv[r], xv, acc[r][m]);
            }
        }
    }
    fr_cu_pdl_trigger();
    fr_cu_splitk_reduce<R, MM>(acc, ks, warp, lane, red);
    if (active && part == 0) fr_cu_rowset_store<R, MM, GLU>(o, g0, items, M, lane, acc);
}

template <typename XT, typename WT, int MM, bool GLU>
static void fr_cu_gemv_mm(fr_cuda_ctx *c, bool vec, const fr_tensor *x, const fr_cu_rowset &o) {
    const int64_t M = x->shape[0], K = x->shape[1];
    constexpr int R = GLU ? 1 : fr_cu_gemv_shape<MM, GLU>::R; /* items per warp */
    const int64_t warps = fr_cu_blocks(fr_cu_rowset_items(o), R);
    const int ks = fr_cu_splitk(c, warps, K / fr_cu_w16<WT>::E / 32);
    const unsigned blocks = fr_cu_blocks(warps, FR_CU_GEMV_WARPS / ks);
    const XT *xp = (const XT *)fr_cu_ptr(x);
    const int64_t ldx = fr_cu_estride(x, 0);
    if (vec)
        fr_cu_launch_pdl(c, fr_cu_gemv_kernel<XT, WT, MM, true, GLU>, dim3(blocks),
                         dim3(FR_CU_GEMV_WARPS * 32), 0, xp, ldx, o, (int)M, K, ks);
    else
        fr_cu_launch_pdl(c, fr_cu_gemv_kernel<XT, WT, MM, false, GLU>, dim3(blocks),
                         dim3(FR_CU_GEMV_WARPS * 32), 0, xp, ldx, o, (int)M, K, ks);
}

template <typename XT, typename WT, bool GLU>
static void fr_cu_gemv_typed(fr_cuda_ctx *c, const fr_tensor *x, const fr_cu_rowset &o) {
    bool vec = fr_cu_aligned(fr_cu_ptr(x), fr_cu_estride(x, 0) * (int64_t)sizeof(XT), 16);
    for (int s = 0; s < o.nseg; s++)
        vec = vec && fr_cu_aligned(o.w[s], o.ldw[s], 16);
    const int64_t M = x->shape[0];
    if (M == 1)
        fr_cu_gemv_mm<XT, WT, 1, GLU>(c, vec, x, o);
    else if (M == 2)
        fr_cu_gemv_mm<XT, WT, 2, GLU>(c, vec, x, o);
    else if (M <= 4)
        fr_cu_gemv_mm<XT, WT, 4, GLU>(c, vec, x, o);
    else
        fr_cu_gemv_mm<XT, WT, 8, GLU>(c, vec, x, o);
}

template <typename XT, bool GLU>
static fr_status fr_cu_gemv_launch(fr_cuda_ctx *c, const fr_tensor *x, const fr_cu_rowset &o,
                                   fr_error *err) {
    switch (o.w_dtype) {
    case FR_DTYPE_F32:
        fr_cu_gemv_typed<XT, float, GLU>(c, x, o);
        break;
    case FR_DTYPE_F16:
        fr_cu_gemv_typed<XT, __half, GLU>(c, x, o);
        break;
    case FR_DTYPE_BF16:
        fr_cu_gemv_typed<XT, __nv_bfloat16, GLU>(c, x, o);
        break;
    default:
        return fr_error_set(err, FR_ERR_UNSUPPORTED, "cuda matmul: weight dtype %s in a float GEMV",
                            fr_dtype_name((fr_dtype)o.w_dtype));
    }
    return fr_cu_launched(err, "matmul (gemv)");
}

template <bool GLU>
static fr_status fr_cu_gemv_x(fr_cuda_ctx *c, const fr_tensor *x, const fr_cu_rowset &o,
                              fr_error *err) {
    switch (x->dtype) {
    case FR_DTYPE_F16:
        return fr_cu_gemv_launch<__half, GLU>(c, x, o, err);
    case FR_DTYPE_BF16:
        return fr_cu_gemv_launch<__nv_bfloat16, GLU>(c, x, o, err);
    default:
        return fr_cu_gemv_launch<float, GLU>(c, x, o, err);
    }
}

/* One launch for the whole row set (plain types). */
static fr_status fr_cu_gemv_rows(fr_cuda_ctx *c, const fr_tensor *x, const fr_cu_rowset &o,
                                 fr_error *err) {
    return o.glu ? fr_cu_gemv_x<true>(c, x, o, err) : fr_cu_gemv_x<false>(c, x, o, err);
}

/* ------------------------------------------------------------------ SIMT GEMM fallback */

#define FR_CU_TM 64
#define FR_CU_TN 64
#define FR_CU_TK 16

/* 256 threads, each computing a 4x4 piece of a 64x64 output tile; rows ty + 16 i and columns
 * tx + 16 j so shared-memory reads are conflict-free. */
template <typename WT>
__global__ void __launch_bounds__(256)
    fr_cu_gemm_simt_kernel(const void *x, int64_t ldx, int x_dtype, const WT *w, int64_t ldw,
                           const float *bias, void *out, int64_t ldo, int o_dtype, int64_t M,
                           int64_t N, int64_t K) {
    __shared__ float xs[FR_CU_TK][FR_CU_TM + 4];
    __shared__ float ws[FR_CU_TK][FR_CU_TN + 4];
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const int64_t m0 = (int64_t)blockIdx.y * FR_CU_TM, n0 = (int64_t)blockIdx.x * FR_CU_TN;
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
            acc[i][j] = 0.0f;
    for (int64_t k0 = 0; k0 < K; k0 += FR_CU_TK) {
#pragma unroll
        for (int l = 0; l < 4; l++) {
            const int idx = tid + l * 256, r = idx / FR_CU_TK, kk = idx % FR_CU_TK;
            const int64_t k = k0 + kk, m = m0 + r, n = n0 + r;
            xs[kk][r] = (m < M && k < K) ? fr_cu_load(x, m * ldx + k, x_dtype) : 0.0f;
            ws[kk][r] = (n < N && k < K) ? fr_cu_to_f32(w[n * ldw + k]) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < FR_CU_TK; kk++) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; i++)
                a[i] = xs[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; j++)
                b[j] = ws[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++)
                    acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int64_t m = m0 + ty + 16 * i;
        if (m >= M) continue;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int64_t n = n0 + tx + 16 * j;
            if (n < N) fr_cu_store(out, m * ldo + n, o_dtype, acc[i][j] + (bias ? bias[n] : 0.0f));
        }
    }
}

template <typename WT>
static void fr_cu_gemm_simt_typed(fr_cuda_ctx *c, const fr_tensor *x, const fr_tensor *w,
                                  const float *bias, fr_tensor *out) {
    const int64_t M = x->shape[0], K = x->shape[1], N = w->shape[0];
    dim3 grid(fr_cu_blocks(N, FR_CU_TN), fr_cu_blocks(M, FR_CU_TM));
    fr_cu_gemm_simt_kernel<WT><<<grid, 256, 0, c->stream>>>(
        fr_cu_ptr(x), fr_cu_estride(x, 0), x->dtype, (const WT *)fr_cu_ptr(w), fr_cu_estride(w, 0),
        bias, fr_cu_ptr(out), fr_cu_estride(out, 0), out->dtype, M, N, K);
}

static fr_status fr_cu_gemm_simt(fr_cuda_ctx *c, const fr_tensor *x, const fr_tensor *w,
                                 const float *bias, fr_tensor *out, fr_error *err) {
    if (x->shape[0] > 65535 * (int64_t)FR_CU_TM)
        return fr_error_set(err, FR_ERR_UNSUPPORTED, "cuda matmul: %lld rows in one call",
                            (long long)x->shape[0]);
    switch (w->dtype) {
    case FR_DTYPE_F32:
        fr_cu_gemm_simt_typed<float>(c, x, w, bias, out);
        break;
    case FR_DTYPE_F16:
        fr_cu_gemm_simt_typed<__half>(c, x, w, bias, out);
        break;
    case FR_DTYPE_BF16:
        fr_cu_gemm_simt_typed<__nv_bfloat16>(c, x, w, bias, out);
        break;
    default:
        return fr_error_set(err, FR_ERR_UNSUPPORTED,
                            "cuda matmul: weight dtype %s is not supported yet",
                            fr_dtype_name(w->dtype));
    }
    return fr_cu_launched(err, "matmul (simt gemm)");
}

/* Quantized weights on the SIMT GEMM: chunks of rows dequantized to f32 into the conversion
 * scratch, each followed by the GEMM of its output columns. */
static fr_status fr_cu_gemm_simt_quant(fr_cuda_ctx *c, const fr_tensor *x, const fr_tensor *w,
                                       const float *bias, fr_tensor *out, fr_error *err);

/* ------------------------------------------------------------------ prefill via cuBLASLt */

/* Rows [n0, n0 + rows) of w, converted to the GEMM input type and packed densely. */
template <typename WT, typename CT>
__global__ void fr_cu_convert_rows_kernel(const WT *w, int64_t ldw, int64_t n0, int64_t rows,
                                          int64_t K, CT *dst) {
    const int64_t total = rows * K;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / K, k = i - r * K;
        dst[i] = fr_cu_from_f32<CT>(fr_cu_to_f32(w[(n0 + r) * ldw + k]));
    }
}

template <typename CT>
static fr_status fr_cu_convert_rows_to(fr_cuda_ctx *c, const fr_tensor *w, int64_t n0, int64_t rows,
                                       CT *dst, fr_error *err) {
    const int64_t K = w->shape[1], ldw = fr_cu_estride(w, 0);
    unsigned blocks = fr_cu_blocks(rows * K, 256);
    if (blocks > (unsigned)c->n_sm * 16) blocks = (unsigned)c->n_sm * 16;
    switch (w->dtype) {
    case FR_DTYPE_F32:
        fr_cu_convert_rows_kernel<<<blocks, 256, 0, c->stream>>>((const float *)fr_cu_ptr(w), ldw,
                                                                 n0, rows, K, dst);
        break;
    case FR_DTYPE_F16:
        fr_cu_convert_rows_kernel<<<blocks, 256, 0, c->stream>>>((const __half *)fr_cu_ptr(w), ldw,
                                                                 n0, rows, K, dst);
        break;
    case FR_DTYPE_BF16:
        fr_cu_convert_rows_kernel<<<blocks, 256, 0, c->stream>>>(
            (const __nv_bfloat16 *)fr_cu_ptr(w), ldw, n0, rows, K, dst);
        break;
    default:
        /* Quantized types: a row dequantizer into the scratch goes here. */
        return fr_error_set(err, FR_ERR_UNSUPPORTED,
                            "cuda matmul: weight dtype %s is not supported yet",
                            fr_dtype_name(w->dtype));
    }
    return fr_cu_launched(err, "matmul (weight conversion)");
}

static fr_status fr_cu_convert_rows(fr_cuda_ctx *c, const fr_tensor *w, int64_t n0, int64_t rows,
                                    fr_dtype ct, fr_error *err) {
    if (fr_dtype_get(w->dtype)->quantized)
        return fr_cuda_dequant_rows(c, w, n0, rows, ct, c->wconv, err);
    switch (ct) {
    case FR_DTYPE_F16:
        return fr_cu_convert_rows_to(c, w, n0, rows, (__half *)c->wconv, err);
    case FR_DTYPE_BF16:
        return fr_cu_convert_rows_to(c, w, n0, rows, (__nv_bfloat16 *)c->wconv, err);
    default:
        return fr_cu_convert_rows_to(c, w, n0, rows, (float *)c->wconv, err);
    }
}

__global__ void fr_cu_bias_kernel(void *out, int64_t ldo, int o_dtype, const float *bias,
                                  int64_t N) {
    const int64_t m = blockIdx.x;
    for (int64_t n = (int64_t)blockIdx.y * blockDim.x + threadIdx.x; n < N;
         n += (int64_t)gridDim.y * blockDim.x) {
        const int64_t i = m * ldo + n;
        fr_cu_store(out, i, o_dtype, fr_cu_load(out, i, o_dtype) + bias[n]);
    }
}

static cudaDataType_t fr_cu_lt_type(fr_dtype t) {
    switch (t) {
    case FR_DTYPE_F16:
        return CUDA_R_16F;
    case FR_DTYPE_BF16:
        return CUDA_R_16BF;
    default:
        return CUDA_R_32F;
    }
}

/* Largest power of two (<= 256) dividing both the address and the leading dimension in bytes. */
static uint32_t fr_cu_alignment(const void *p, int64_t ld_bytes) {
    uint64_t v = (uint64_t)(uintptr_t)p | (uint64_t)ld_bytes | 256u;
    return (uint32_t)(v & (~v + 1));
}

/* One cuBLASLt problem: D[rows x M] (column-major, = out rows transposed) = A^T B with A the
 * weight rows [K x rows] and B the activations [K x M]. Descriptors are built once per shape and
 * reused for every chunk of that shape. */
typedef struct fr_cu_lt_plan {
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulHeuristicResult_t heur;
    bool ok;
} fr_cu_lt_plan;

static void fr_cu_lt_plan_free(fr_cu_lt_plan *p) {
    if (p->desc) cublasLtMatmulDescDestroy(p->desc);
    if (p->a) cublasLtMatrixLayoutDestroy(p->a);
    if (p->b) cublasLtMatrixLayoutDestroy(p->b);
    if (p->d) cublasLtMatrixLayoutDestroy(p->d);
    memset(p, 0, sizeof *p);
}

/* False when cuBLASLt offers no algorithm (the caller then falls back to the SIMT GEMM). */
static bool fr_cu_lt_plan_make(fr_cuda_ctx *c, fr_cu_lt_plan *p, fr_dtype ct, fr_dtype ot,
                               int64_t rows, int64_t M, int64_t K, int64_t lda, int64_t ldb,
                               int64_t ldd, uint32_t al_a, uint32_t al_b, uint32_t al_d) {
    memset(p, 0, sizeof *p);
    const cudaDataType_t it = fr_cu_lt_type(ct), dt = fr_cu_lt_type(ot);
    const cublasOperation_t opT = CUBLAS_OP_T, opN = CUBLAS_OP_N;
    cublasLtMatmulPreference_t pref = NULL;
    uint64_t ws = c->lt_ws_size;
    int found = 0;
    bool ok = cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) ==
                  CUBLAS_STATUS_SUCCESS &&
              cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opT,
                                             sizeof opT) == CUBLAS_STATUS_SUCCESS &&
              cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opN,
                                             sizeof opN) == CUBLAS_STATUS_SUCCESS &&
              cublasLtMatrixLayoutCreate(&p->a, it, (uint64_t)K, (uint64_t)rows, lda) ==
                  CUBLAS_STATUS_SUCCESS &&
              cublasLtMatrixLayoutCreate(&p->b, it, (uint64_t)K, (uint64_t)M, ldb) ==
                  CUBLAS_STATUS_SUCCESS &&
              cublasLtMatrixLayoutCreate(&p->d, dt, (uint64_t)rows, (uint64_t)M, ldd) ==
                  CUBLAS_STATUS_SUCCESS &&
              cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS;
    ok = ok &&
         cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                              sizeof ws) == CUBLAS_STATUS_SUCCESS &&
         cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                              &al_a, sizeof al_a) == CUBLAS_STATUS_SUCCESS &&
         cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                              &al_b, sizeof al_b) == CUBLAS_STATUS_SUCCESS &&
         cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                              &al_d, sizeof al_d) == CUBLAS_STATUS_SUCCESS &&
         cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                              &al_d, sizeof al_d) == CUBLAS_STATUS_SUCCESS;
    ok = ok &&
         cublasLtMatmulAlgoGetHeuristic(c->lt, p->desc, p->a, p->b, p->d, p->d, pref, 1, &p->heur,
                                        &found) == CUBLAS_STATUS_SUCCESS &&
         found > 0 && p->heur.workspaceSize <= c->lt_ws_size;
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (!ok)
        fr_cu_lt_plan_free(p);
    else
        p->ok = true;
    return ok;
}

/* Plans are cached per shape (a model reuses a handful of shapes), so the heuristic query runs
 * once per shape instead of once per call. Failed queries are cached too. */
#define FR_CU_LT_CACHE 32

typedef struct fr_cu_lt_key {
    int ct, ot;
    int64_t rows, M, K, lda, ldb, ldd;
    uint32_t al_a, al_b, al_d, pad;
} fr_cu_lt_key;

struct fr_cu_lt_cache {
    fr_cu_lt_key key[FR_CU_LT_CACHE];
    fr_cu_lt_plan plan[FR_CU_LT_CACHE];
    bool used[FR_CU_LT_CACHE];
    int next;
};

void fr_cuda_matmul_release(fr_cuda_ctx *c) {
    if (!c->lt_cache) return;
    for (int i = 0; i < FR_CU_LT_CACHE; i++)
        if (c->lt_cache->used[i]) fr_cu_lt_plan_free(&c->lt_cache->plan[i]);
    free(c->lt_cache);
    c->lt_cache = NULL;
}

/* The plan for this problem, or NULL when cuBLASLt offers none (or host memory ran out). The
 * entry `keep` is never evicted, so a plan fetched earlier in the same call stays valid. */
static const fr_cu_lt_plan *fr_cu_lt_plan_get(fr_cuda_ctx *c, fr_dtype ct, fr_dtype ot,
                                              int64_t rows, int64_t M, int64_t K, int64_t lda,
                                              int64_t ldb, int64_t ldd, uint32_t al_a,
                                              uint32_t al_b, uint32_t al_d,
                                              const fr_cu_lt_plan *keep) {
    if (!c->lt_cache) {
        c->lt_cache = (struct fr_cu_lt_cache *)calloc(1, sizeof *c->lt_cache);
        if (!c->lt_cache) return NULL;
    }
    struct fr_cu_lt_cache *lc = c->lt_cache;
    fr_cu_lt_key k;
    memset(&k, 0, sizeof k);
    k.ct = ct, k.ot = ot, k.rows = rows, k.M = M, k.K = K, k.lda = lda, k.ldb = ldb, k.ldd = ldd;
    k.al_a = al_a, k.al_b = al_b, k.al_d = al_d;
    for (int i = 0; i < FR_CU_LT_CACHE; i++)
        if (lc->used[i] && !memcmp(&lc->key[i], &k, sizeof k))
            return lc->plan[i].ok ? &lc->plan[i] : NULL;
    int slot = lc->next;
    if (&lc->plan[slot] == keep) slot = (slot + 1) % FR_CU_LT_CACHE;
    lc->next = (slot + 1) % FR_CU_LT_CACHE;
    if (lc->used[slot]) fr_cu_lt_plan_free(&lc->plan[slot]);
    lc->key[slot] = k;
    lc->used[slot] = true;
    fr_cu_lt_plan_make(c, &lc->plan[slot], ct, ot, rows, M, K, lda, ldb, ldd, al_a, al_b, al_d);
    return lc->plan[slot].ok ? &lc->plan[slot] : NULL;
}

static fr_status fr_cu_lt_run(fr_cuda_ctx *c, const fr_cu_lt_plan *p, const void *a, const void *b,
                              void *d, fr_error *err) {
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t s =
        cublasLtMatmul(c->lt, p->desc, &one, a, p->a, b, p->b, &zero, d, p->d, d, p->d,
                       &p->heur.algo, c->lt_ws, p->heur.workspaceSize, c->stream);
    if (s != CUBLAS_STATUS_SUCCESS)
        return fr_error_set(err, FR_ERR_BACKEND, "cuda matmul: cublasLtMatmul failed: %s",
                            cublasLtGetStatusString(s));
    return fr_cu_launched(err, "matmul (cublasLt)");
}

/* FR_ERR_UNSUPPORTED (with err untouched) when cuBLASLt cannot take this problem. */
static fr_status fr_cu_gemm_lt(fr_cuda_ctx *c, const fr_tensor *x, const fr_tensor *w,
                               const float *bias, fr_tensor *out, fr_error *err) {
    const int64_t M = x->shape[0], K = x->shape[1], N = w->shape[0];
    const fr_dtype ct = x->dtype, ot = out->dtype;
    /* cuBLASLt pairs: f32 in -> f32 out; 16-bit in -> same 16-bit or f32 out. */
    if (ct == FR_DTYPE_F32 ? ot != FR_DTYPE_F32 : (ot != ct && ot != FR_DTYPE_F32))
        return FR_ERR_UNSUPPORTED;
    const int ces = fr_cu_esize(ct), oes = fr_cu_esize(ot);
    const int64_t ldx = fr_cu_estride(x, 0), ldo = fr_cu_estride(out, 0);
    const uint32_t al_b = fr_cu_alignment(fr_cu_ptr(x), ldx * ces);
    const uint32_t al_d = fr_cu_alignment(fr_cu_ptr(out), ldo * oes);
    fr_status s = FR_OK;

    if (w->dtype == ct) {
        const int64_t ldw = fr_cu_estride(w, 0);
        const fr_cu_lt_plan *plan =
            fr_cu_lt_plan_get(c, ct, ot, N, M, K, ldw, ldx, ldo,
                              fr_cu_alignment(fr_cu_ptr(w), ldw * ces), al_b, al_d, NULL);
        if (!plan) return FR_ERR_UNSUPPORTED;
        s = fr_cu_lt_run(c, plan, fr_cu_ptr(w), fr_cu_ptr(x), fr_cu_ptr(out), err);
    } else {
        /* Convert weight rows chunk by chunk; chunks are multiples of 64 rows so every chunk's
         * output column keeps the alignment of the first. */
        int64_t chunk = (int64_t)(c->wconv_size / ((size_t)K * ces)) / 64 * 64;
        if (chunk <= 0) return FR_ERR_UNSUPPORTED;
        if (chunk > N) chunk = N;
        const int64_t tail = N % chunk;
        const uint32_t al_a = fr_cu_alignment(c->wconv, K * ces);
        const fr_cu_lt_plan *full =
            fr_cu_lt_plan_get(c, ct, ot, chunk, M, K, K, ldx, ldo, al_a, al_b, al_d, NULL);
        if (!full) return FR_ERR_UNSUPPORTED;
        const fr_cu_lt_plan *last = NULL;
        if (tail && N > chunk) {
            last = fr_cu_lt_plan_get(c, ct, ot, tail, M, K, K, ldx, ldo, al_a, al_b, al_d, full);
            if (!last) return FR_ERR_UNSUPPORTED;
        }
        for (int64_t n0 = 0; n0 < N && s == FR_OK; n0 += chunk) {
            const int64_t rows = N - n0 < chunk ? N - n0 : chunk;
            s = fr_cu_convert_rows(c, w, n0, rows, ct, err);
            if (s == FR_OK)
                s = fr_cu_lt_run(c, rows == chunk ? full : last, c->wconv, fr_cu_ptr(x),
                                 fr_cu_ptr(out) + n0 * oes, err);
        }
    }
    if (s == FR_OK && bias) {
        unsigned by = fr_cu_blocks(N, 256);
        if (by > 65535) by = 65535;
        fr_cu_bias_kernel<<<dim3((unsigned)M, by), 256, 0, c->stream>>>(fr_cu_ptr(out), ldo, ot,
                                                                        bias, N);
        s = fr_cu_launched(err, "matmul (bias)");
    }
    return s;
}

static fr_status fr_cu_gemm_simt_quant(fr_cuda_ctx *c, const fr_tensor *x, const fr_tensor *w,
                                       const float *bias, fr_tensor *out, fr_error *err) {
    const int64_t M = x->shape[0], K = x->shape[1], N = w->shape[0];
    if (M > 65535 * (int64_t)FR_CU_TM)
        return fr_error_set(err, FR_ERR_UNSUPPORTED, "cuda matmul: %lld rows in one call",
                            (long long)M);
    int64_t chunk = (int64_t)(c->wconv_size / ((size_t)K * sizeof(float)));
    if (chunk <= 0)
        return fr_error_set(err, FR_ERR_UNSUPPORTED,
                            "cuda matmul: rows of %lld elements exceed the conversion scratch",
                            (long long)K);
    if (chunk > N) chunk = N;
    const int oes = fr_cu_esize(out->dtype);
    fr_status s = FR_OK;
    for (int64_t n0 = 0; n0 < N && s == FR_OK; n0 += chunk) {
        const int64_t rows = N - n0 < chunk ? N - n0 : chunk;
        s = fr_cuda_dequant_rows(c, w, n0, rows, FR_DTYPE_F32, c->wconv, err);
        if (s) break;
        dim3 grid(fr_cu_blocks(rows, FR_CU_TN), fr_cu_blocks(M, FR_CU_TM));
        fr_cu_gemm_simt_kernel<float><<<grid, 256, 0, c->stream>>>(
            fr_cu_ptr(x), fr_cu_estride(x, 0), x->dtype, (const float *)c->wconv, K,
            bias ? bias + n0 : NULL, fr_cu_ptr(out) + n0 * oes, fr_cu_estride(out, 0), out->dtype,
            M, rows, K);
        s = fr_cu_launched(err, "matmul (simt gemm, quantized)");
    }
    return s;
}

/* ------------------------------------------------------------------ entry */

#define FR_CU_GEMV_MAX_M 8

fr_status fr_cuda_matmul(void *vctx, const fr_tensor *x, const fr_tensor *w, const fr_tensor *bias,
                         fr_tensor *out, fr_error *err) {
    fr_cuda_ctx *c = (fr_cuda_ctx *)vctx;
    fr_status s = fr_cu_enter(c, err, "matmul");
    if (s) return s;
    const float *b = bias ? (const float *)fr_cu_ptr(bias) : NULL;
    const bool quant = fr_dtype_get(w->dtype)->quantized;
    if (x->shape[0] <= FR_CU_GEMV_MAX_M) {
        if (quant) return fr_cuda_gemv_quant(c, x, w, b, out, err);
        return fr_cu_gemv_rows(c, x, fr_cu_rowset_of(1, &w, &bias, &out, false), err);
    }
    s = fr_cu_gemm_lt(c, x, w, b, out, err);
    if (s != FR_ERR_UNSUPPORTED) return s;
    FR_LOG_D("cuda matmul: cuBLASLt declined x %s w %s out %s M=%lld N=%lld K=%lld; SIMT GEMM",
             fr_dtype_name(x->dtype), fr_dtype_name(w->dtype), fr_dtype_name(out->dtype),
             (long long)x->shape[0], (long long)w->shape[0], (long long)x->shape[1]);
    return quant ? fr_cu_gemm_simt_quant(c, x, w, b, out, err)
                 : fr_cu_gemm_simt(c, x, w, b, out, err);
}

/* ------------------------------------------------------------------ fused entries */

/* A row set in one GEMV launch: decode only, one weight dtype, one output dtype. */
static fr_status fr_cu_rows_one_launch(fr_cuda_ctx *c, const fr_tensor *x, const fr_cu_rowset &o,
                                       bool *x_ready, fr_error *err) {
    if (x->shape[0] > FR_CU_GEMV_MAX_M) return FR_ERR_UNSUPPORTED;
    if (fr_dtype_get((fr_dtype)o.w_dtype)->quantized)
        return fr_cuda_gemv_quant_rows(c, x, o, x_ready, err);
    return fr_cu_gemv_rows(c, x, o, err);
}

/* The matrices are grouped by (weight dtype, output dtype), one launch per group, so a file
 * that stores V in another type than Q and K (Q4_K_M: q6_k for some layers) still takes two
 * launches, not three; quantized groups share one quantization of x. Prefill and what the
 * GEMVs decline run as plain matmuls. */
fr_status fr_cuda_matmul_multi(void *vctx, const fr_tensor *x, int n, const fr_tensor *const *w,
                               const fr_tensor *const *bias, fr_tensor *const *out, fr_error *err) {
    fr_cuda_ctx *c = (fr_cuda_ctx *)vctx;
    fr_status s = fr_cu_enter(c, err, "matmul_multi");
    if (s) return s;
    bool done[FR_CU_ROWSET_MAX] = {false, false, false}, x_ready = false;
    for (int i = 0; i < n && n <= FR_CU_ROWSET_MAX; i++) {
        if (done[i]) continue;
        const fr_tensor *gw[FR_CU_ROWSET_MAX] = {NULL}, *gb[FR_CU_ROWSET_MAX] = {NULL};
        fr_tensor *go[FR_CU_ROWSET_MAX] = {NULL};
        int members[FR_CU_ROWSET_MAX], k = 0;
        for (int j = i; j < n; j++)
            if (!done[j] && w[j]->dtype == w[i]->dtype && out[j]->dtype == out[i]->dtype) {
                gw[k] = w[j];
                gb[k] = bias ? bias[j] : NULL;
                go[k] = out[j];
                members[k++] = j;
            }
        s = fr_cu_rows_one_launch(c, x, fr_cu_rowset_of(k, gw, gb, go, false), &x_ready, err);
        if (s == FR_ERR_UNSUPPORTED) continue; /* left for the plain matmuls below */
        if (s) return s;
        for (int j = 0; j < k; j++)
            done[members[j]] = true;
    }
    for (int i = 0; i < n; i++)
        if (n > FR_CU_ROWSET_MAX || !done[i])
            FR_TRY(fr_cuda_matmul(c, x, w[i], bias ? bias[i] : NULL, out[i], err));
    return FR_OK;
}

fr_status fr_cuda_matmul_glu(void *vctx, const fr_tensor *x, const fr_tensor *w_gate,
                             const fr_tensor *w_up, const fr_tensor *b_gate, const fr_tensor *b_up,
                             fr_tensor *gate, fr_tensor *up, fr_tensor *out, fr_error *err) {
    fr_cuda_ctx *c = (fr_cuda_ctx *)vctx;
    fr_status s = fr_cu_enter(c, err, "matmul_glu");
    if (s) return s;
    if (w_gate->dtype == w_up->dtype) {
        const fr_tensor *w[2] = {w_gate, w_up}, *b[2] = {b_gate, b_up};
        fr_tensor *o[2] = {out, out};
        bool x_ready = false;
        s = fr_cu_rows_one_launch(c, x, fr_cu_rowset_of(2, w, b, o, true), &x_ready, err);
        if (s != FR_ERR_UNSUPPORTED) return s;
    }
    FR_TRY(fr_cuda_matmul(c, x, w_gate, b_gate, gate, err));
    FR_TRY(fr_cuda_matmul(c, x, w_up, b_up, up, err));
    return fr_cuda_silu_mul(c, gate, up, out, err);
}
