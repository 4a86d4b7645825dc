/* Decode GEMV with quantized weights and 8-bit activations (quant_act q8, the default), for the
 * types whose blocks dominate real files: q8_0, q4_k and q6_k (the Q8_0, Q4_K_M and Q5_K_M
 * mixes). Other types, and quant_act f32, take the float-activation GEMV of matmul_quantf.cu.
 *
 * Why 8-bit activations: a float GEMV spends ~5 instructions per weight (unpack, convert, scale,
 * FMA), which on an H100 costs more time than reading a 4-bit weight from DRAM. With x quantized
 * once per call to int8 in blocks of 32 (scale = max|x| / 127, as llama.cpp's q8_1), four
 * products are one dp4a and unpacking a nibble costs a fraction of an instruction (1.3-1.5x
 * the float kernel's decode speed on the H100; still well short of the bandwidth, see
 * bench/RESULTS.md). The quantization error is that of the CPU backend's q8 path (~1e-5 NMSE
 * per dot product).
 *
 * Layout: one warp per weight row (ks warps with split-K when a launch has few rows). A row is
 * cut into "units" (16 to 32 weights a lane decodes from one load group: half a q8_0 block, 16
 * nibble bytes of a q4_k super-block, 16 elements of a q6_k super-block); lane l takes units
 * l, l+32, ... and keeps FR_CUQ8_U units of loads in flight before it uses any. Weights are read
 * straight from global memory into registers, 16 bytes at a time where the format keeps 16-byte
 * alignment (q4_k) and 2 bytes at a time where it does not (q6_k blocks are 210 bytes; q8_0's
 * 34-byte blocks too when K % 256 != 0 — other q8_0 rows take the 16-byte chunk kernel below).
 * The kernels are launched with programmatic dependent launch (cuda_backend.h). */
#include "kernels/cuda/quant_dev.h"

#define FR_CUQ8_WARPS 8
#define FR_CUQ8_U     4 /* units in flight per lane */

/* ------------------------------------------------------------------ activation quantization */

/* xq[m, k] = round(x[m, k] / xd[m, k / 32]), xd = max|x| / 127 over the 32-element block; one
 * warp per block, one element per lane. xb gets the same values in the byte layout of q8_0
 * weights with zeros where a block's scale would be (fr_cuq80_gemv_kernel). */
template <typename XT>
__global__ void fr_cuq8_quantize_kernel(const XT *__restrict__ x, int64_t ldx, int64_t K,
                                        int64_t nblk, int8_t *__restrict__ xq,
                                        int8_t *__restrict__ xb, float *__restrict__ xd) {
    fr_cu_pdl_trigger(); /* the GEMV after us may start fetching its weights */
    fr_cu_pdl_wait();    /* launched early (PDL): x must be written */
    const int lane = threadIdx.x & 31;
    const int64_t blk = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (blk >= nblk) return;
    const int64_t per_row = K / 32, m = blk / per_row, k = (blk - m * per_row) * 32 + lane;
    const float v = fr_cu_to_f32(x[m * ldx + k]);
    const float amax = fr_cu_warp_max(fabsf(v));
    const float d = amax / 127.0f, inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    const int8_t q = (int8_t)__float2int_rn(v * inv);
    xq[m * K + k] = q;
    xb[blk * 34 + 2 + lane] = q; /* blocks of a row are consecutive, so row m starts at m K/32 34 */
    if (lane < 2) xb[blk * 34 + lane] = 0;
    if (lane == 0) xd[blk] = d;
}

/* ------------------------------------------------------------------ per-type units */

__device__ __forceinline__ uint32_t fr_cuq8_u16(const uint8_t *p) {
    return *(const uint16_t *)p;
}
/* Four bytes at a 2-byte-aligned address. */
__device__ __forceinline__ int fr_cuq8_i32_a2(const uint8_t *p) {
    return (int)(fr_cuq8_u16(p) | fr_cuq8_u16(p + 2) << 16);
}
__device__ __forceinline__ int fr_cuq8_sum4(int x) {
    return __dp4a(x, 0x01010101, 0);
}

/* One unit of a row: load() reads its bytes into registers, dot() consumes them against one row
 * of quantized activations (xq: that row's int8 values, xd: its block scales). A row holds UPB
 * units per block of BB bytes. (Staging the 2-byte-aligned q8_0 / q6_k blocks through shared
 * memory with 16-byte loads was tried: no faster for q6_k, slower for q8_0.) */
template <int QT> struct fr_cuq8_unit;

/* q8_0: unit = half a block, 16 weights: d (f16) and four ints of qs. */
template <> struct fr_cuq8_unit<FR_DTYPE_Q8_0> {
    static constexpr int UE = 16, UPB = 2, BB = 34, ALIGN = 2;
    float d;
    int q[4];
    int64_t e0; /* first element of the unit in the row */
    __device__ __forceinline__ void load(const uint8_t *row, int64_t u) {
        const uint8_t *b = row + (u >> 1) * 34;
        const uint8_t *qs = b + 2 + 16 * (u & 1);
        d = __half2float(__ushort_as_half((unsigned short)fr_cuq8_u16(b)));
#pragma unroll
        for (int i = 0; i < 4; i++)
            q[i] = fr_cuq8_i32_a2(qs + 4 * i);
        e0 = u * 16;
    }
    __device__ __forceinline__ float dot(const int8_t *xq, const float *xd) const {
        const int4 x = *(const int4 *)(xq + e0);
        int s = __dp4a(q[0], x.x, 0);
        s = __dp4a(q[1], x.y, s);
        s = __dp4a(q[2], x.z, s);
        s = __dp4a(q[3], x.w, s);
        return d * xd[e0 >> 5] * (float)s;
    }
};

/* q4_k: unit = 16 of the 128 nibble bytes of a super-block (j = 0..7): low nibbles are 16
 * weights of sub-block 2c (c = j/2), high nibbles the matching 16 of sub-block 2c+1. The
 * super-block's 16-byte head (d, dmin, 12 bytes of packed 6-bit scales and mins) is loaded by
 * each of its eight lanes; L1 serves the repeats. */
template <> struct fr_cuq8_unit<FR_DTYPE_Q4_K> {
    static constexpr int UE = 32, UPB = 8, BB = 144, ALIGN = 16;
    uint4 head, qs;
    int64_t e0; /* element of the low group's first weight */
    int sub;    /* 2c */
    __device__ __forceinline__ void load(const uint8_t *row, int64_t u) {
        const uint8_t *b = row + (u >> 3) * 144;
        const int j = (int)(u & 7);
        head = __ldg((const uint4 *)b);
        qs = __ldg((const uint4 *)(b + 16 + 16 * j));
        sub = 2 * (j >> 1);
        e0 = (u >> 3) * 256 + 64 * (j >> 1) + 16 * (j & 1);
    }
    /* byte i (0..11) of the packed scales */
    __device__ __forceinline__ int sbyte(int i) const {
        const uint32_t w = i < 4 ? head.y : (i < 8 ? head.z : head.w);
        return (int)((w >> (8 * (i & 3))) & 0xFF);
    }
    __device__ __forceinline__ void scale_min(int j, float &sc, float &mn) const {
        int s, m;
        if (j < 4) {
            s = sbyte(j) & 63;
            m = sbyte(j + 4) & 63;
        } else {
            s = (sbyte(j + 4) & 0xF) | ((sbyte(j - 4) >> 6) << 4);
            m = (sbyte(j + 4) >> 4) | ((sbyte(j) >> 6) << 4);
        }
        sc = (float)s;
        mn = (float)m;
    }
    __device__ __forceinline__ float dot(const int8_t *xq, const float *xd) const {
        const int4 xl = *(const int4 *)(xq + e0), xh = *(const int4 *)(xq + e0 + 32);
        const int w[4] = {(int)qs.x, (int)qs.y, (int)qs.z, (int)qs.w};
        const int xlo[4] = {xl.x, xl.y, xl.z, xl.w}, xhi[4] = {xh.x, xh.y, xh.z, xh.w};
        int sl = 0, sh = 0, ml = 0, mh = 0;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            sl = __dp4a(w[i] & 0x0F0F0F0F, xlo[i], sl);
            sh = __dp4a((w[i] >> 4) & 0x0F0F0F0F, xhi[i], sh);
            ml = __dp4a(0x01010101, xlo[i], ml);
            mh = __dp4a(0x01010101, xhi[i], mh);
        }
        const float d = __half2float(__ushort_as_half((unsigned short)(head.x & 0xFFFF)));
        const float dmin = __half2float(__ushort_as_half((unsigned short)(head.x >> 16)));
        float scl, mnl, sch, mnh;
        scale_min(sub, scl, mnl);
        scale_min(sub + 1, sch, mnh);
        const float dl = xd[e0 >> 5], dh = xd[(e0 + 32) >> 5];
        return dl * (d * scl * (float)sl - dmin * mnl * (float)ml) +
               dh * (d * sch * (float)sh - dmin * mnh * (float)mh);
    }
};

/* q6_k: unit = (half h, i = 0..7): low-nibble weights 8i..8i+7 of the half (ql[64h + 8i ..]) and
 * high-nibble weights 64+8i .. of the same bytes; their 2 high bits come from qh[32h + 8(i%4)
 * ..] at bit pairs 2(i/4) and 4 + 2(i/4). Each group of eight has its own int8 scale. */
template <> struct fr_cuq8_unit<FR_DTYPE_Q6_K> {
    static constexpr int UE = 16, UPB = 16, BB = 210, ALIGN = 2;
    int ql[2], qh[2];
    float d, sl, sh;
    int shift;
    int64_t e0; /* element of the low group's first weight */
    __device__ __forceinline__ void load(const uint8_t *row, int64_t u) {
        const uint8_t *b = row + (u >> 4) * 210;
        const int h = (int)((u >> 3) & 1), i = (int)(u & 7);
        const uint8_t *pl = b + 64 * h + 8 * i, *ph = b + 128 + 32 * h + 8 * (i & 3);
        ql[0] = fr_cuq8_i32_a2(pl);
        ql[1] = fr_cuq8_i32_a2(pl + 4);
        qh[0] = fr_cuq8_i32_a2(ph);
        qh[1] = fr_cuq8_i32_a2(ph + 4);
        const int8_t *sc = (const int8_t *)(b + 192) + 8 * h + (i >> 1);
        sl = (float)sc[0];
        sh = (float)sc[4];
        d = __half2float(__ushort_as_half((unsigned short)fr_cuq8_u16(b + 208)));
        shift = 2 * (i >> 2);
        e0 = (u >> 4) * 256 + 128 * h + 8 * i;
    }
    __device__ __forceinline__ float dot(const int8_t *xq, const float *xd) const {
        const int2 xl = *(const int2 *)(xq + e0), xh = *(const int2 *)(xq + e0 + 64);
        const int xlo[2] = {xl.x, xl.y}, xhi[2] = {xh.x, xh.y};
        int s_lo = 0, s_hi = 0;
#pragma unroll
        for (int k = 0; k < 2; k++) {
            /* 6-bit values 0..63, re-centred to -32..31 so they fit a signed byte */
            const int lo = (ql[k] & 0x0F0F0F0F) | (((qh[k] >> shift) & 0x03030303) << 4);
            const int hi =
                ((ql[k] >> 4) & 0x0F0F0F0F) | (((qh[k] >> (shift + 4)) & 0x03030303) << 4);
            s_lo = __dp4a((int)__vsubss4(lo, 0x20202020), xlo[k], s_lo);
            s_hi = __dp4a((int)__vsubss4(hi, 0x20202020), xhi[k], s_hi);
        }
        return d * (sl * xd[e0 >> 5] * (float)s_lo + sh * xd[(e0 + 64) >> 5] * (float)s_hi);
    }
};

/* ------------------------------------------------------------------ GEMV */

/* Row set items (one row, or with GLU a gate/up pair) are one warp each (ks warps with
 * split-K); the R rows of an item share every activation load. A row is walked in rounds of
 * RU = 32 * FR_CUQ8_U units (a whole number of blocks); round j belongs to part j % ks. */
/* 3 blocks per SM (80 registers): compiling q4_k and q6_k for 4 (64 registers, 28-76 bytes of
 * spills) measured 0.94x tg on 8B Q4_K_M, q6_k alone 1.00x (bench/RESULTS.md). */
template <int QT, int MM, bool GLU>
__global__ void __launch_bounds__(FR_CUQ8_WARPS * 32, GLU ? 2 : 3)
    fr_cuq8_gemv_kernel(const int8_t *__restrict__ xq, const float *__restrict__ xd, int64_t K,
                        int M, fr_cu_rowset o, int ks) {
    typedef fr_cuq8_unit<QT> unit;
    constexpr int R = GLU ? 2 : 1, RU = 32 * FR_CUQ8_U;
    __shared__ float red[FR_CUQ8_WARPS * 2 * MM];
    const int lane = threadIdx.x & 31;
    const int64_t items = fr_cu_rowset_items(o);
    const int warp = threadIdx.x >> 5, part = warp % ks;
    int64_t g0 = (int64_t)blockIdx.x * (FR_CUQ8_WARPS / ks) + warp / ks;
    const bool active = g0 < items;
    if (!active) g0 = items - 1; /* loads stay in bounds; nothing is stored */
    const int64_t nu = K / unit::UE, row_bytes = nu / unit::UPB * unit::BB;
    const uint8_t *row[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
        row[r] = (const uint8_t *)fr_cu_rowset_row(o, GLU ? r : -1, g0);
        /* this warp's first weights (nothing before us writes them), then wait for x */
        const int64_t first = (int64_t)part * RU / unit::UPB * unit::BB, n = row_bytes - first;
        fr_cu_prefetch_l2(row[r] + first, n < 4096 ? n : 4096, lane);
    }
    fr_cu_pdl_wait();
    float acc[R][MM];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int m = 0; m < MM; m++)
            acc[r][m] = 0.0f;
    for (int64_t u0 = (int64_t)part * RU; u0 < nu; u0 += (int64_t)ks * RU) {
        unit wu[R][FR_CUQ8_U];
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int i = 0; i < FR_CUQ8_U; i++) {
                const int64_t u = u0 + lane + 32 * i;
                if (u < nu) wu[r][i].load(row[r], u);
            }
#pragma unroll
        for (int i = 0; i < FR_CUQ8_U; i++) {
            if (u0 + lane + 32 * i < nu) {
#pragma unroll
                for (int m = 0; m < MM; m++)
                    if (m < M)
#pragma unroll
                        for (int r = 0; r < R; r++)
                            acc[r][m] += wu[r][i].dot(xq + m * K, xd + m * (K / 32));
            }
        }
    }
    fr_cu_pdl_trigger();
    fr_cu_splitk_reduce<R, MM>(acc, ks, warp, lane, red);
    if (active && part == 0) fr_cu_rowset_store<R, MM, GLU>(o, g0, items, M, lane, acc);
}

/* ------------------------------------------------------------------ q8_0 in 16-byte chunks */

/* q8_0 rows whose bytes are 16-byte aligned (K % 256 == 0 and aligned rows: every Qwen / Llama
 * matrix) are read as a plain byte array, 16 bytes per lane and load, regardless of where the
 * 34-byte blocks begin. The activations are laid out the same way (xq_blk: each block's two
 * scale bytes are zeros), so the bytes of a weight chunk meet their activations at the same
 * offset and a dp4a of two aligned words needs no shuffling: a scale's bytes meet zeros. A chunk
 * touches at most two blocks (16 < 34); its words before the second block's scale belong to the
 * first (a word holding the last two values of block b and the scale of b + 1 belongs to b, a
 * word holding that scale and the first two values of b + 1 to b + 1). The two weight scales
 * are 2-byte loads that hit L1 (the warp's chunks cover them). This replaces nine 2-byte loads
 * per 16 weights with one 16-byte load and two L1 hits. */
template <int U, int MM, bool GLU>
__global__ void __launch_bounds__(FR_CUQ8_WARPS * 32,
                                  GLU ? (MM == 1 && U == 4 ? 3 : 2) : (MM > 2 ? 3 : 4))
    fr_cuq80_gemv_kernel(const int8_t *__restrict__ xb, const float *__restrict__ xd, int K, int M,
                         fr_cu_rowset o, int ks) {
    constexpr int R = GLU ? 2 : 1, RC = 32 * U; /* chunks per round of a warp */
    __shared__ float red[FR_CUQ8_WARPS * 2 * MM];
    const int lane = threadIdx.x & 31;
    const int64_t items = fr_cu_rowset_items(o);
    const int warp = threadIdx.x >> 5, part = warp % ks;
    int64_t g0 = (int64_t)blockIdx.x * (FR_CUQ8_WARPS / ks) + warp / ks;
    const bool active = g0 < items;
    if (!active) g0 = items - 1; /* loads stay in bounds; nothing is stored */
    const int nb = K / 32, rb = nb * 34, nc = rb / 16;
    const uint8_t *row[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
        row[r] = (const uint8_t *)fr_cu_rowset_row(o, GLU ? r : -1, g0);
        const int first = part * RC * 16, n = rb - first;
        fr_cu_prefetch_l2(row[r] + first, n < 4096 ? n : 4096, lane);
    }
    fr_cu_pdl_wait();
    float acc[R][MM];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int m = 0; m < MM; m++)
            acc[r][m] = 0.0f;
    for (int c0 = part * RC + lane; c0 < nc; c0 += ks * RC) {
        uint4 w[R][U];
        int xw[MM][4];
        float xs[MM][2];
        __half2 dw[R][U]; /* scales of the chunk's first block and of the next (or again the
                             first at the row's end, where no word belongs to a next block) */
#pragma unroll
        for (int i = 0; i < U; i++) {
            const int c = c0 + 32 * i, b = c * 8 / 17, b1 = b + 1 < nb ? b + 1 : b;
#pragma unroll
            for (int r = 0; r < R; r++) {
                w[r][i] = make_uint4(0, 0, 0, 0); /* past the row: zeros, masked below */
                dw[r][i] = __float2half2_rn(0.0f);
                if (c < nc) {
                    w[r][i] = __ldg((const uint4 *)(row[r] + 16 * c));
                    dw[r][i] = __halves2half2(__ldg((const __half *)(row[r] + 34 * b)),
                                              __ldg((const __half *)(row[r] + 34 * b1)));
                }
            }
        }
#pragma unroll
        for (int i = 0; i < U; i++) {
            const int c = c0 + 32 * i;
            const int b = c * 8 / 17, b1 = b + 1 < nb ? b + 1 : b;
            /* words (of 4) before block b + 1's scale, at byte 34 (b + 1); none past the row */
            const int nlo = c < nc ? min(4, (34 * (b + 1) - 16 * c + 3) >> 2) : 0;
            const int nall = c < nc ? 4 : 0;
#pragma unroll
            for (int m = 0; m < MM; m++) {
                xw[m][0] = xw[m][1] = xw[m][2] = xw[m][3] = 0;
                xs[m][0] = xs[m][1] = 0.0f;
                if (m < M && c < nc) {
                    const int4 x = *(const int4 *)(xb + m * rb + 16 * c);
                    xw[m][0] = x.x;
                    xw[m][1] = x.y;
                    xw[m][2] = x.z;
                    xw[m][3] = x.w;
                    xs[m][0] = xd[m * nb + b];
                    xs[m][1] = xd[m * nb + b1];
                }
            }
#pragma unroll
            for (int r = 0; r < R; r++) {
                const float2 d = __half22float2(dw[r][i]);
                const int ww[4] = {(int)w[r][i].x, (int)w[r][i].y, (int)w[r][i].z, (int)w[r][i].w};
#pragma unroll
                for (int m = 0; m < MM; m++) {
                    int lo = 0, all = 0;
#pragma unroll
                    for (int k = 0; k < 4; k++) {
                        const int p = __dp4a(ww[k], xw[m][k], 0);
                        all += k < nall ? p : 0;
                        lo += k < nlo ? p : 0;
                    }
                    if (m < M)
                        acc[r][m] +=
                            d.x * xs[m][0] * (float)lo + d.y * xs[m][1] * (float)(all - lo);
                }
            }
        }
    }
    fr_cu_pdl_trigger();
    fr_cu_splitk_reduce<R, MM>(acc, ks, warp, lane, red);
    if (active && part == 0) fr_cu_rowset_store<R, MM, GLU>(o, g0, items, M, lane, acc);
}

/* Whether the chunk kernel can read this row set: rows a whole number of 16-byte chunks, every
 * matrix and row stride 16-byte aligned. */
static bool fr_cuq80_takes(int64_t K, const fr_cu_rowset &o) {
    if (K % 256 != 0 || K > (1 << 24)) return false; /* 32-bit chunk arithmetic */
    for (int s = 0; s < o.nseg; s++)
        if (!fr_cu_aligned(o.w[s], o.ldw[s], 16)) return false;
    return true;
}

template <int U, int MM, bool GLU>
static void fr_cuq80_gemv_launch(fr_cuda_ctx *c, const fr_tensor *x, const fr_cu_rowset &o) {
    const int64_t M = x->shape[0], K = x->shape[1], items = fr_cu_rowset_items(o);
    const int ks = fr_cu_splitk(c, items, K / 32 * 34 / 16 / 32);
    const unsigned grid = fr_cu_blocks(items, FR_CUQ8_WARPS / ks);
    fr_cu_launch_pdl(c, fr_cuq80_gemv_kernel<U, MM, GLU>, dim3(grid), dim3(FR_CUQ8_WARPS * 32), 0,
                     c->xq_blk, c->xq_scale, (int)K, (int)M, o, ks);
}

/* Chunks in flight per lane: 5 by default (a K = 4096 row is 272 chunks: rounds of 160 + 112;
 * same-call A/B on the H100, 8B Q8_0 tg128 +1.8 % over 4, whose rounds are 128 + 128 + 16);
 * FR_CUDA_Q80_U=4 (read at context creation) takes 4, FR_CUDA_Q80_U=0 the per-block kernel
 * above: knobs to measure the variants against each other in one run. (8 at 2 blocks per SM
 * was measured 8 % slower than 4.) */
template <int MM, bool GLU>
static void fr_cuq80_gemv_mm(fr_cuda_ctx *c, const fr_tensor *x, const fr_cu_rowset &o) {
    if (c->q80_unroll == 4)
        fr_cuq80_gemv_launch<4, MM, GLU>(c, x, o);
    else
        fr_cuq80_gemv_launch<5, MM, GLU>(c, x, o);
}

template <int QT, int MM, bool GLU>
static void fr_cuq8_gemv_mm(fr_cuda_ctx *c, const fr_tensor *x, const fr_cu_rowset &o) {
    const int64_t M = x->shape[0], K = x->shape[1], items = fr_cu_rowset_items(o);
    const int ks = fr_cu_splitk(c, items, K / fr_cuq8_unit<QT>::UE / 32);
    const unsigned grid = fr_cu_blocks(items, FR_CUQ8_WARPS / ks);
    fr_cu_launch_pdl(c, fr_cuq8_gemv_kernel<QT, MM, GLU>, dim3(grid), dim3(FR_CUQ8_WARPS * 32), 0,
                     c->xq, c->xq_scale, K, (int)M, o, ks);
}

template <int QT, bool GLU>
static void fr_cuq8_gemv_typed(fr_cuda_ctx *c, const fr_tensor *x, const fr_cu_rowset &o) {
    const int64_t M = x->shape[0];
    if (QT == FR_DTYPE_Q8_0 && c->q80_unroll && fr_cuq80_takes(x->shape[1], o)) {
        if (M == 1)
            fr_cuq80_gemv_mm<1, GLU>(c, x, o);
        else if (M == 2)
            fr_cuq80_gemv_mm<2, GLU>(c, x, o);
        else if (M <= 4)
            fr_cuq80_gemv_mm<4, GLU>(c, x, o);
        else
            fr_cuq80_gemv_mm<8, GLU>(c, x, o);
        return;
    }
    if (M == 1)
        fr_cuq8_gemv_mm<QT, 1, GLU>(c, x, o);
    else if (M == 2)
        fr_cuq8_gemv_mm<QT, 2, GLU>(c, x, o);
    else if (M <= 4)
        fr_cuq8_gemv_mm<QT, 4, GLU>(c, x, o);
    else
        fr_cuq8_gemv_mm<QT, 8, GLU>(c, x, o);
}

template <bool GLU>
static void fr_cuq8_gemv_dispatch(fr_cuda_ctx *c, const fr_tensor *x, const fr_cu_rowset &o) {
    switch (o.w_dtype) {
    case FR_DTYPE_Q8_0:
        fr_cuq8_gemv_typed<FR_DTYPE_Q8_0, GLU>(c, x, o);
        break;
    case FR_DTYPE_Q4_K:
        fr_cuq8_gemv_typed<FR_DTYPE_Q4_K, GLU>(c, x, o);
        break;
    default:
        fr_cuq8_gemv_typed<FR_DTYPE_Q6_K, GLU>(c, x, o);
        break;
    }
}

/* Whether the q8 path takes this row set: a type with units above, and the alignment its loads
 * assume (every matrix's start and row stride). */
static bool fr_cuq8_takes(const fr_cuda_ctx *c, const fr_tensor *x, const fr_cu_rowset &o) {
    const int64_t M = x->shape[0], K = x->shape[1];
    if (c->quant_act != FR_QUANT_ACT_Q8 || K % 32 != 0 || (size_t)(M * K) > c->xq_size || M > 8)
        return false;
    int align;
    switch (o.w_dtype) {
    case FR_DTYPE_Q8_0:
        align = fr_cuq8_unit<FR_DTYPE_Q8_0>::ALIGN;
        break;
    case FR_DTYPE_Q4_K:
        align = fr_cuq8_unit<FR_DTYPE_Q4_K>::ALIGN;
        break;
    case FR_DTYPE_Q6_K:
        align = fr_cuq8_unit<FR_DTYPE_Q6_K>::ALIGN;
        break;
    default:
        return false;
    }
    for (int s = 0; s < o.nseg; s++)
        if ((uintptr_t)o.w[s] % (uintptr_t)align != 0 || o.ldw[s] % align != 0) return false;
    return true;
}

static void fr_cuq8_quantize(fr_cuda_ctx *c, const fr_tensor *x) {
    const int64_t M = x->shape[0], K = x->shape[1], nblk = M * (K / 32);
    const int64_t ldx = fr_cu_estride(x, 0);
    const dim3 grid(fr_cu_blocks(nblk, 8)), block(256);
    switch (x->dtype) {
    case FR_DTYPE_F16:
        fr_cu_launch_pdl(c, fr_cuq8_quantize_kernel<__half>, grid, block, 0,
                         (const __half *)fr_cu_ptr(x), ldx, K, nblk, c->xq, c->xq_blk, c->xq_scale);
        break;
    case FR_DTYPE_BF16:
        fr_cu_launch_pdl(c, fr_cuq8_quantize_kernel<__nv_bfloat16>, grid, block, 0,
                         (const __nv_bfloat16 *)fr_cu_ptr(x), ldx, K, nblk, c->xq, c->xq_blk,
                         c->xq_scale);
        break;
    default:
        fr_cu_launch_pdl(c, fr_cuq8_quantize_kernel<float>, grid, block, 0,
                         (const float *)fr_cu_ptr(x), ldx, K, nblk, c->xq, c->xq_blk, c->xq_scale);
        break;
    }
}

fr_status fr_cuda_gemv_quant_rows(fr_cuda_ctx *c, const fr_tensor *x, const fr_cu_rowset &o,
                                  bool *x_ready, fr_error *err) {
    if (!fr_cuq8_takes(c, x, o) || fr_cu_blocks(fr_cu_rowset_items(o), FR_CUQ8_WARPS) > 0x7fffffffu)
        return FR_ERR_UNSUPPORTED;
    if (!*x_ready) {
        fr_cuq8_quantize(c, x);
        fr_status s = fr_cu_launched(err, "matmul (quantize activations)");
        if (s) return s;
        *x_ready = true;
    }
    if (o.glu)
        fr_cuq8_gemv_dispatch<true>(c, x, o);
    else
        fr_cuq8_gemv_dispatch<false>(c, x, o);
    return fr_cu_launched(err, "matmul (quantized gemv, 8-bit activations)");
}

fr_status fr_cuda_gemv_quant(fr_cuda_ctx *c, const fr_tensor *x, const fr_tensor *w,
                             const float *bias, fr_tensor *out, fr_error *err) {
    fr_cu_rowset o = fr_cu_rowset_of(1, &w, NULL, &out, false);
    o.bias[0] = bias;
    bool x_ready = false;
    fr_status s = fr_cuda_gemv_quant_rows(c, x, o, &x_ready, err);
    return s == FR_ERR_UNSUPPORTED ? fr_cuda_gemv_quantf(c, x, w, bias, out, err) : s;
}
