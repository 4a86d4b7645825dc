/* matmul with quantized weights (q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k) and float
 * activations, blocks used exactly as stored. The decode GEMV here serves quant_act f32 and the
 * types matmul_quant.cu's 8-bit-activation GEMV does not take.
 *
 * Decode GEMV (M <= 8): one warp per weight row. The row is walked in tiles of 1024 elements
 * (32 legacy blocks or 4 super-blocks, 576 to 1088 bytes). A tile's bytes are fetched with
 * 16-byte loads of the aligned chunks that cover it (rows of most types are not 16-byte
 * aligned, so the chunk grid is the tensor's, not the row's), parked in the warp's slice of
 * shared memory, and decoded from there: each lane takes four groups of eight elements, spread
 * so that a warp's activation loads are contiguous. The next tile's loads are issued before the
 * current tile is decoded, so every warp keeps a tile in flight. Weights are never dequantized
 * to memory: values exist only in registers, and each is applied to all M activation rows.
 *
 * Prefill (M > 8): matmul.cu converts one chunk of rows at a time into its scratch buffer with
 * fr_cuda_dequant_rows and runs cuBLASLt on it. */
#include "kernels/cuda/quant_dev.h"

#define FR_CUQ_WARPS      8
#define FR_CUQ_TILE       1024 /* elements per tile */
#define FR_CUQ_TILE_BYTES 1088 /* largest tile: 32 q8_0 blocks */
/* the tile plus up to 15 bytes before it in its first 16-byte chunk, whole chunks */
#define FR_CUQ_SLICE  ((FR_CUQ_TILE_BYTES + 15 + 15) / 16 * 16)
#define FR_CUQ_CHUNKS 3 /* 16-byte loads per lane per tile: ceil(SLICE / 16 / 32) */

static_assert(FR_CUQ_CHUNKS * 32 * 16 >= FR_CUQ_SLICE, "a tile fits the loads of one warp");

/* Where tile t of a row sits: first block, block count, aligned start, offset into the chunk. */
typedef struct fr_cuq_tile {
    int64_t b0;
    int nb;
    uintptr_t a0;
    int off, nch;
} fr_cuq_tile;

template <int QT>
__device__ __forceinline__ fr_cuq_tile fr_cuq_tile_at(const uint8_t *row, int64_t nblk, int64_t t) {
    constexpr int BB = fr_cuq<QT>::BB, TB = FR_CUQ_TILE / fr_cuq<QT>::BE;
    fr_cuq_tile tl;
    tl.b0 = t * TB;
    tl.nb = (int)(nblk - tl.b0 < TB ? nblk - tl.b0 : TB);
    const uintptr_t p = (uintptr_t)(row + tl.b0 * BB);
    tl.a0 = p & ~(uintptr_t)15;
    tl.off = (int)(p - tl.a0);
    tl.nch = (tl.off + tl.nb * BB + 15) >> 4;
    return tl;
}

template <int MM, typename XT>
__device__ __forceinline__ void fr_cuq_fma8(const float *wf, const XT *x, int64_t ldx, int M,
                                            bool xvec, float *acc) {
#pragma unroll
    for (int m = 0; m < MM; m++) {
        if (m >= M) break;
        const XT *xp = x + m * ldx;
        float xf[8];
        if (xvec) {
            if constexpr (sizeof(XT) == 4) {
                const float4 a = *(const float4 *)xp, b = *((const float4 *)xp + 1);
                xf[0] = a.x, xf[1] = a.y, xf[2] = a.z, xf[3] = a.w;
                xf[4] = b.x, xf[5] = b.y, xf[6] = b.z, xf[7] = b.w;
            } else {
                fr_cu_w16<XT>::cvt(*(const uint4 *)xp, xf);
            }
        } else {
#pragma unroll
            for (int i = 0; i < 8; i++)
                xf[i] = fr_cu_to_f32(xp[i]);
        }
#pragma unroll
        for (int i = 0; i < 8; i++)
            acc[m] = fmaf(wf[i], xf[i], acc[m]);
    }
}

/* xvec: x rows are 16-byte aligned with a stride of whole 16-byte chunks, so eight elements
 * starting at a multiple of eight load as one or two vectors. */
template <int QT, typename XT, int MM>
__global__ void __launch_bounds__(FR_CUQ_WARPS * 32)
    fr_cuq_gemv_kernel(const XT *__restrict__ x, int64_t ldx, bool xvec,
                       const uint8_t *__restrict__ w, int64_t ldw, uintptr_t w_lo, uintptr_t w_hi,
                       const float *__restrict__ bias, void *out, int64_t ldo, int o_dtype, int M,
                       int64_t N, int64_t K) {
    constexpr int BE = fr_cuq<QT>::BE, BB = fr_cuq<QT>::BB;
    __shared__ __align__(16) uint8_t slices[FR_CUQ_WARPS][FR_CUQ_SLICE];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t n = (int64_t)blockIdx.x * FR_CUQ_WARPS + warp;
    if (n >= N) return; /* whole warp; no block-wide barrier below */
    uint8_t *sl = slices[warp];
    const uint8_t *row = w + n * ldw;
    const int64_t nblk = K / BE, ntiles = (nblk * BE + FR_CUQ_TILE - 1) / FR_CUQ_TILE;

    float acc[MM];
#pragma unroll
    for (int m = 0; m < MM; m++)
        acc[m] = 0.0f;

    uint4 r[FR_CUQ_CHUNKS];
    fr_cuq_tile cur = fr_cuq_tile_at<QT>(row, nblk, 0);
#pragma unroll
    for (int i = 0; i < FR_CUQ_CHUNKS; i++) {
        const int c = lane + 32 * i;
        if (c < cur.nch) r[i] = fr_cuq_chunk(cur.a0 + 16 * (uintptr_t)c, w_lo, w_hi);
    }
    for (int64_t t = 0; t < ntiles; t++) {
        __syncwarp(); /* the previous tile is decoded: its slice may be overwritten */
#pragma unroll
        for (int i = 0; i < FR_CUQ_CHUNKS; i++) {
            const int c = lane + 32 * i;
            if (c < cur.nch) *(uint4 *)(sl + 16 * c) = r[i];
        }
        __syncwarp();
        fr_cuq_tile nxt = cur;
        if (t + 1 < ntiles) { /* in flight while this tile is decoded */
            nxt = fr_cuq_tile_at<QT>(row, nblk, t + 1);
#pragma unroll
            for (int i = 0; i < FR_CUQ_CHUNKS; i++) {
                const int c = lane + 32 * i;
                if (c < nxt.nch) r[i] = fr_cuq_chunk(nxt.a0 + 16 * (uintptr_t)c, w_lo, w_hi);
            }
        }
        const uint8_t *blocks = sl + cur.off;
        const int nel = cur.nb * BE;
        const XT *xt = x + cur.b0 * BE;
#pragma unroll
        for (int s = 0; s < 4; s++) {
            const int e0 = 8 * (lane + 32 * s);
            if (e0 < nel) {
                float wf[8];
                fr_cuq_deq8<QT>(blocks + (e0 / BE) * BB, (e0 % BE) / 8, wf);
                fr_cuq_fma8<MM>(wf, xt + e0, ldx, M, xvec, acc);
            }
        }
        cur = nxt;
    }
    const float b = bias ? bias[n] : 0.0f;
#pragma unroll
    for (int m = 0; m < MM; m++) {
        const float s = fr_cu_warp_sum(acc[m]);
        if (m < M && lane == m) fr_cu_store(out, m * ldo + n, o_dtype, s + b);
    }
}

template <int QT, typename XT, int MM>
static void fr_cuq_gemv_mm(fr_cuda_ctx *c, const fr_tensor *x, const fr_tensor *w,
                           const float *bias, fr_tensor *out) {
    const int64_t M = x->shape[0], K = x->shape[1], N = w->shape[0];
    const int64_t ldx = fr_cu_estride(x, 0), ldw = w->stride[0];
    const uint8_t *wp = (const uint8_t *)fr_cu_ptr(w);
    const uintptr_t lo = (uintptr_t)wp, hi = lo + (uintptr_t)((N - 1) * ldw) +
                                             (uintptr_t)(K / fr_cuq<QT>::BE) * fr_cuq<QT>::BB;
    const bool xvec = fr_cu_aligned(fr_cu_ptr(x), ldx * (int64_t)sizeof(XT), 16);
    fr_cuq_gemv_kernel<QT, XT, MM>
        <<<fr_cu_blocks(N, FR_CUQ_WARPS), FR_CUQ_WARPS * 32, 0, c->stream>>>(
            (const XT *)fr_cu_ptr(x), ldx, xvec, wp, ldw, lo, hi, bias, fr_cu_ptr(out),
            fr_cu_estride(out, 0), out->dtype, (int)M, N, K);
}

template <int QT, typename XT>
static void fr_cuq_gemv_typed(fr_cuda_ctx *c, const fr_tensor *x, const fr_tensor *w,
                              const float *bias, fr_tensor *out) {
    const int64_t M = x->shape[0];
    if (M == 1)
        fr_cuq_gemv_mm<QT, XT, 1>(c, x, w, bias, out);
    else if (M == 2)
        fr_cuq_gemv_mm<QT, XT, 2>(c, x, w, bias, out);
    else if (M <= 4)
        fr_cuq_gemv_mm<QT, XT, 4>(c, x, w, bias, out);
    else
        fr_cuq_gemv_mm<QT, XT, 8>(c, x, w, bias, out);
}

template <typename XT>
static void fr_cuq_gemv_x(fr_cuda_ctx *c, const fr_tensor *x, const fr_tensor *w, const float *bias,
                          fr_tensor *out) {
    FR_CUQ_DISPATCH(w->dtype, fr_cuq_gemv_typed<QT, XT>(c, x, w, bias, out));
}

fr_status fr_cuda_gemv_quantf(fr_cuda_ctx *c, const fr_tensor *x, const fr_tensor *w,
                              const float *bias, fr_tensor *out, fr_error *err) {
    if (!fr_cuq_supported(w->dtype))
        return fr_error_set(err, FR_ERR_UNSUPPORTED, "cuda matmul: weight dtype %s unsupported",
                            fr_dtype_name(w->dtype));
    if (x->shape[0] > 8)
        return fr_error_set(err, FR_ERR_INVALID, "cuda matmul: quantized GEMV with %lld rows",
                            (long long)x->shape[0]);
    if (fr_cu_blocks(w->shape[0], FR_CUQ_WARPS) > 0x7fffffffu)
        return fr_error_set(err, FR_ERR_UNSUPPORTED, "cuda matmul: %lld weight rows",
                            (long long)w->shape[0]);
    switch (x->dtype) {
    case FR_DTYPE_F16:
        fr_cuq_gemv_x<__half>(c, x, w, bias, out);
        break;
    case FR_DTYPE_BF16:
        fr_cuq_gemv_x<__nv_bfloat16>(c, x, w, bias, out);
        break;
    default:
        fr_cuq_gemv_x<float>(c, x, w, bias, out);
        break;
    }
    return fr_cu_launched(err, "matmul (quantized gemv)");
}

/* ------------------------------------------------------------------ dequantization */

/* dst[r, :] (dense, K per row) = row n0 + r of w, as CT; one thread per group of eight. */
template <int QT, typename CT>
__global__ void fr_cuq_dequant_kernel(const uint8_t *w, int64_t ldw, int64_t n0, int64_t rows,
                                      int64_t K, CT *dst) {
    constexpr int BE = fr_cuq<QT>::BE, BB = fr_cuq<QT>::BB;
    const int64_t gpr = K / 8, total = rows * gpr;
    for (int64_t g = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; g < total;
         g += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = g / gpr, e0 = 8 * (g - r * gpr);
        float f[8];
        fr_cuq_deq8<QT>(w + (n0 + r) * ldw + (e0 / BE) * BB, (int)(e0 % BE) / 8, f);
        CT *d = dst + r * K + e0;
#pragma unroll
        for (int i = 0; i < 8; i++)
            d[i] = fr_cu_from_f32<CT>(f[i]);
    }
}

template <typename CT>
static void fr_cuq_dequant_to(fr_cuda_ctx *c, const fr_tensor *w, int64_t n0, int64_t rows,
                              CT *dst) {
    const int64_t K = w->shape[1];
    unsigned blocks = fr_cu_blocks(rows * (K / 8), 256);
    if (blocks > (unsigned)c->n_sm * 16) blocks = (unsigned)c->n_sm * 16;
    if (blocks == 0) blocks = 1;
    const uint8_t *wp = (const uint8_t *)fr_cu_ptr(w);
    FR_CUQ_DISPATCH(w->dtype, fr_cuq_dequant_kernel<QT, CT>
                    <<<blocks, 256, 0, c->stream>>>(wp, w->stride[0], n0, rows, K, dst));
}

fr_status fr_cuda_dequant_rows(fr_cuda_ctx *c, const fr_tensor *w, int64_t n0, int64_t rows,
                               fr_dtype ct, void *dst, fr_error *err) {
    if (!fr_cuq_supported(w->dtype))
        return fr_error_set(err, FR_ERR_UNSUPPORTED, "cuda matmul: weight dtype %s unsupported",
                            fr_dtype_name(w->dtype));
    switch (ct) {
    case FR_DTYPE_F16:
        fr_cuq_dequant_to(c, w, n0, rows, (__half *)dst);
        break;
    case FR_DTYPE_BF16:
        fr_cuq_dequant_to(c, w, n0, rows, (__nv_bfloat16 *)dst);
        break;
    default:
        fr_cuq_dequant_to(c, w, n0, rows, (float *)dst);
        break;
    }
    return fr_cu_launched(err, "matmul (dequantize rows)");
}
