/* Tensor-core flash attention for prefill: the `attention` op (same contract as attention.cu)
 * when q and the K/V cache are all f16 or all bf16, D is 64 or 128 and the call has enough query
 * tokens for tensor cores to pay; fr_cuda_attention offers every call here first and keeps its
 * SIMT kernel for everything else (decode above all, where split-K matters more).
 *
 * Layout (FlashAttention-2 style). A block of 4 warps takes one KV head and 64 "rows", a row being
 * one (token, query head) pair of that head's GQA group, tokens outer as in attention.cu, so the
 * whole group shares every K/V tile. Each warp owns 16 rows and keeps their Q fragments in
 * registers for the whole key loop. Keys go through shared memory 64 at a time, K and V double
 * buffered with cp.async (the next tile streams in while this one is used). Per tile a warp
 * computes S = Q K^T with mma.m16n8k16 (16-bit inputs, f32 accumulators; K fragments by
 * ldmatrix), masks S per element by each row's own key range, folds the tile into its running
 * max / sum (online softmax in f32, base-2 exponentials with the scale folded in), rounds P to the
 * input type and accumulates O += P V with mma again (V fragments by ldmatrix.trans). Rows with no
 * visible key end with sum 0 and are written as zeros, as the SIMT kernel does.
 *
 * Key ranges come from the positions on the device: each row's [lo, hi] (causal by position,
 * optional window, never past L-1), the block loops over the union of its rows' ranges, and a warp
 * skips tiles that none of its rows can see. Any positions are handled; contiguous ones (normal
 * prefill) just make the union tight.
 *
 * Fragment layouts (PTX ISA, mma.m16n8k16 with .f16/.bf16 inputs and f32 accumulators), with
 * g = lane / 4 and c = lane % 4:
 *   A (16x16, row-major): reg0 = (row g, cols 2c, 2c+1), reg1 = (row g+8, same cols),
 *                         reg2 = (row g, cols 2c+8, 2c+9), reg3 = (row g+8, cols 2c+8, 2c+9)
 *   B (16x8, k x n):      reg0 = (k 2c, 2c+1; n g), reg1 = (k 2c+8, 2c+9; n g)
 *   C/D (16x8, f32):      d0, d1 = (row g, cols 2c, 2c+1), d2, d3 = (row g+8, cols 2c, 2c+1)
 * In every 32-bit register the lower half holds the lower column (or k) index. ldmatrix .x4 reads
 * four 8x8 matrices whose row addresses come from lanes 8i..8i+7 for matrix i; register i then
 * holds (row g, cols 2c, 2c+1) of matrix i, or with .trans (rows 2c, 2c+1; col g). */
#include <limits.h>

#include "kernels/cuda/cuda_backend.h"

#define FR_CU_FA_WARPS 4
#define FR_CU_FA_BM    (16 * FR_CU_FA_WARPS) /* rows per block: 16 per warp (the mma's M) */
#define FR_CU_FA_BN    64                    /* keys per shared-memory tile */
#define FR_CU_FA_PAD   8  /* 16-bit elements of padding per shared row: see fr_cu_fa_smem */
#define FR_CU_FA_MIN_T 16 /* fewer tokens (decode, short chunks): the SIMT kernel with split-K */

typedef struct fr_cu_fa_args {
    const uint16_t *q; /* raw f16 / bf16 bits */
    int64_t q_sh, q_st;
    const uint16_t *k, *v;
    int64_t k_sh, k_sl, v_sh, v_sl;
    const int *pos;
    void *out;
    int64_t o_st, o_sh;
    int o_dtype;
    int64_t T, L;
    int G; /* query heads per KV head */
    int window;
    float sl2; /* scale * log2(e): softmax in base 2 */
} fr_cu_fa_args;

/* Bytes of dynamic shared memory: K and V tiles, two stages each, rows padded by 16 bytes so the
 * eight row addresses of every ldmatrix (and every 8-lane phase of the cp.async stores) fall in
 * distinct 16-byte bank groups: the row stride is 16 mod 128 bytes for D = 64 and 128. */
static constexpr size_t fr_cu_fa_smem(int D) {
    return (size_t)2 * 2 * FR_CU_FA_BN * (D + FR_CU_FA_PAD) * sizeof(uint16_t);
}

/* ---- PTX wrappers (sm_80+) ---- */

__device__ __forceinline__ uint32_t fr_cu_fa_saddr(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* 16 bytes global -> shared without passing through registers; `in` false writes zeros and reads
 * nothing (src must still be a valid address). */
__device__ __forceinline__ void fr_cu_fa_cp16(uint32_t dst, const void *src, bool in) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst),
                 "l"(__cvta_generic_to_global(src)), "r"(in ? 16 : 0)
                 : "memory");
}
__device__ __forceinline__ void fr_cu_fa_commit(void) {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}
/* Waits until at most N of this thread's committed groups are still in flight. */
template <int N> __device__ __forceinline__ void fr_cu_fa_wait(void) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

/* The memory clobbers keep the compiler from moving shared reads across __syncthreads. */
__device__ __forceinline__ void fr_cu_fa_ldsm(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr)
                 : "memory");
}
__device__ __forceinline__ void fr_cu_fa_ldsm_t(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr)
                 : "memory");
}

/* d += a b for one 16x8x16 product, and packing of two floats into an A register, per type. */
template <typename KT> struct fr_cu_fa_type;
template <> struct fr_cu_fa_type<__nv_bfloat16> {
    static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                               uint32_t b1) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
                     "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
    static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
        const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi); /* .x (lo) in the low half */
        uint32_t u;
        memcpy(&u, &h, 4);
        return u;
    }
};
template <> struct fr_cu_fa_type<__half> {
    static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                               uint32_t b1) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
                     "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
    static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
        const __half2 h = __floats2half2_rn(lo, hi);
        uint32_t u;
        memcpy(&u, &h, 4);
        return u;
    }
};

/* ---- the kernel ---- */

/* Keys [lo, hi] that row r (of all T*G rows of a KV head) may see; empty as lo = INT_MAX,
 * hi = -1, so that both "lo <= j <= hi" and min/max unions need no special case. */
__device__ __forceinline__ void fr_cu_fa_range(const fr_cu_fa_args &a, int64_t r, int &lo,
                                               int &hi) {
    lo = INT_MAX;
    hi = -1;
    if (r >= a.T * a.G) return;
    const int64_t p = a.pos[r / a.G];
    if (p < 0) return;
    const int64_t h = p < a.L - 1 ? p : a.L - 1;
    int64_t l = a.window > 0 ? p - a.window + 1 : 0;
    if (l < 0) l = 0;
    if (l > h) return;
    lo = (int)l;
    hi = (int)h;
}

/* Two consecutive 16-bit elements of a q row as one A register (zeros for a missing row). q rows
 * need not be 4-byte aligned, so they are read as halves; this happens once per block. */
__device__ __forceinline__ uint32_t fr_cu_fa_q2(const uint16_t *row, int d) {
    if (!row) return 0u;
    return (uint32_t)__ldg((const unsigned short *)row + d) |
           ((uint32_t)__ldg((const unsigned short *)row + d + 1) << 16);
}

/* Issues the copies of keys [j0, j0 + BN) of K and V into one stage (rows past jmax are zeros:
 * their scores are masked, and P = 0 times a zero V row stays 0) and commits them as a group. */
template <int D>
__device__ __forceinline__ void fr_cu_fa_load(const fr_cu_fa_args &a, const uint16_t *kb,
                                              const uint16_t *vb, int j0, int jmax, uint16_t *ks,
                                              uint16_t *vs) {
    constexpr int SROW = D + FR_CU_FA_PAD, CPR = D / 8; /* 16-byte chunks per row */
    for (int i = threadIdx.x; i < FR_CU_FA_BN * CPR; i += FR_CU_FA_WARPS * 32) {
        const int r = i / CPR, ch = i - r * CPR;
        const bool in = j0 + r <= jmax;
        const int64_t j = in ? j0 + r : jmax; /* a readable address even when nothing is read */
        fr_cu_fa_cp16(fr_cu_fa_saddr(ks + r * SROW + ch * 8), kb + j * a.k_sl + ch * 8, in);
        fr_cu_fa_cp16(fr_cu_fa_saddr(vs + r * SROW + ch * 8), vb + j * a.v_sl + ch * 8, in);
    }
    fr_cu_fa_commit();
}

/* grid: (row tiles, Hkv); block: 4 warps. */
template <typename KT, int D>
__global__ void __launch_bounds__(FR_CU_FA_WARPS * 32) fr_cu_fa_kernel(fr_cu_fa_args a) {
#if __CUDA_ARCH__ >= 800
    constexpr int SROW = D + FR_CU_FA_PAD;
    constexpr int KSTEPS = D / 16;      /* k-steps of Q K^T */
    constexpr int NB = FR_CU_FA_BN / 8; /* 8-key column blocks of S */
    constexpr int DB = D / 8;           /* 8-column blocks of O */
    constexpr int STAGE = FR_CU_FA_BN * SROW;
    typedef fr_cu_fa_type<KT> ty;
    extern __shared__ __align__(16) unsigned char fr_cu_fa_smem_raw[];
    uint16_t *Ks = (uint16_t *)fr_cu_fa_smem_raw; /* [2][BN][SROW] */
    uint16_t *Vs = Ks + 2 * STAGE;                /* [2][BN][SROW] */
    __shared__ int wr[FR_CU_FA_WARPS][2];         /* each warp's union of key ranges */

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, c = lane & 3;
    /* the last row tiles usually hold the latest positions and the longest key loops: start them
     * first so the short ones fill the tail of the grid */
    const int64_t rbase = (int64_t)(gridDim.x - 1 - blockIdx.x) * FR_CU_FA_BM + warp * 16;
    const int64_t hk = blockIdx.y;

    /* key ranges: lane i (and i + 16) computes the warp's row i; this thread's rows are g, g + 8 */
    int lo, hi;
    fr_cu_fa_range(a, rbase + (lane & 15), lo, hi);
    const int lo0 = __shfl_sync(0xffffffffu, lo, g), hi0 = __shfl_sync(0xffffffffu, hi, g);
    const int lo1 = __shfl_sync(0xffffffffu, lo, g + 8), hi1 = __shfl_sync(0xffffffffu, hi, g + 8);
    int wlo = lo, whi = hi;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        wlo = min(wlo, __shfl_xor_sync(0xffffffffu, wlo, o));
        whi = max(whi, __shfl_xor_sync(0xffffffffu, whi, o));
    }
    if (lane == 0) {
        wr[warp][0] = wlo;
        wr[warp][1] = whi;
    }

    /* Q fragments of rows g and g + 8, unscaled (the scale is applied to S in f32) */
    const int64_t r0 = rbase + g, r1 = r0 + 8, rows = a.T * a.G;
    const uint16_t *q0 = NULL, *q1 = NULL;
    if (r0 < rows) q0 = a.q + (hk * a.G + r0 % a.G) * a.q_sh + (r0 / a.G) * a.q_st;
    if (r1 < rows) q1 = a.q + (hk * a.G + r1 % a.G) * a.q_sh + (r1 / a.G) * a.q_st;
    uint32_t qa[KSTEPS][4];
#pragma unroll
    for (int s = 0; s < KSTEPS; s++) {
        const int d = 16 * s + 2 * c;
        qa[s][0] = fr_cu_fa_q2(q0, d);
        qa[s][1] = fr_cu_fa_q2(q1, d);
        qa[s][2] = fr_cu_fa_q2(q0, d + 8);
        qa[s][3] = fr_cu_fa_q2(q1, d + 8);
    }
    __syncthreads();
    int blo = INT_MAX, bhi = -1;
#pragma unroll
    for (int w = 0; w < FR_CU_FA_WARPS; w++) {
        blo = min(blo, wr[w][0]);
        bhi = max(bhi, wr[w][1]);
    }

    const uint16_t *kb = a.k + hk * a.k_sh, *vb = a.v + hk * a.v_sh;
    float o[DB][4];
#pragma unroll
    for (int i = 0; i < DB; i++)
        o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY; /* running max of rows g, g + 8 (quad-uniform) */
    float l0 = 0.0f, l1 = 0.0f;           /* this thread's share of their running sums */

    const int ntiles = bhi >= blo ? (bhi - blo) / FR_CU_FA_BN + 1 : 0;
    if (ntiles > 0) fr_cu_fa_load<D>(a, kb, vb, blo, bhi, Ks, Vs);
    for (int n = 0; n < ntiles; n++) {
        const int j0 = blo + n * FR_CU_FA_BN;
        if (n + 1 < ntiles) {
            /* the other stage was last read in iteration n - 1, which ended in __syncthreads */
            const int nx = (n + 1) & 1;
            fr_cu_fa_load<D>(a, kb, vb, j0 + FR_CU_FA_BN, bhi, Ks + nx * STAGE, Vs + nx * STAGE);
            fr_cu_fa_wait<1>();
        } else {
            fr_cu_fa_wait<0>();
        }
        __syncthreads(); /* every thread's copies of tile n have landed */

        /* warp-uniform: mma.sync needs the whole warp */
        if (j0 <= whi && j0 + FR_CU_FA_BN - 1 >= wlo) {
            const uint16_t *ks = Ks + (n & 1) * STAGE, *vs = Vs + (n & 1) * STAGE;
            /* S = Q K^T: per ldmatrix.x4, matrices (keys +0..7 | +8..15) x (d +0..7 | +8..15),
             * ordered k0 d0, k0 d8, k8 d0, k8 d8: registers 0,1 are the B fragment of key block
             * 2p, registers 2,3 that of key block 2p + 1 */
            float s[NB][4];
#pragma unroll
            for (int i = 0; i < NB; i++)
                s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
            const int krow = (lane & 7) + ((lane >> 4) << 3), kcol = ((lane >> 3) & 1) << 3;
#pragma unroll
            for (int st = 0; st < KSTEPS; st++)
#pragma unroll
                for (int p = 0; p < NB / 2; p++) {
                    uint32_t b[4];
                    fr_cu_fa_ldsm(b, fr_cu_fa_saddr(ks + (16 * p + krow) * SROW + 16 * st + kcol));
                    ty::mma(s[2 * p], qa[st], b[0], b[1]);
                    ty::mma(s[2 * p + 1], qa[st], b[2], b[3]);
                }

                /* scale, and mask unless both rows see the whole tile; s[i][0..1] are row g,
                 * s[i][2..3] row g + 8, keys j0 + 8i + 2c + (e & 1) */
#pragma unroll
            for (int i = 0; i < NB; i++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    s[i][e] *= a.sl2;
            const bool full = lo0 <= j0 && j0 + FR_CU_FA_BN - 1 <= hi0 && lo1 <= j0 &&
                              j0 + FR_CU_FA_BN - 1 <= hi1;
            if (!full) {
#pragma unroll
                for (int i = 0; i < NB; i++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int j = j0 + 8 * i + 2 * c + (e & 1);
                        const bool ok = e < 2 ? j >= lo0 && j <= hi0 : j >= lo1 && j <= hi1;
                        if (!ok) s[i][e] = -INFINITY;
                    }
            }

            /* online softmax: the four lanes of a quad share rows g and g + 8 */
            float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
            for (int i = 0; i < NB; i++) {
                mx0 = fmaxf(mx0, fmaxf(s[i][0], s[i][1]));
                mx1 = fmaxf(mx1, fmaxf(s[i][2], s[i][3]));
            }
#pragma unroll
            for (int x = 1; x <= 2; x <<= 1) {
                mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, x));
                mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, x));
            }
            const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
            /* a row that has seen no key yet keeps max -inf: subtract 0 instead, so that
             * -inf - -inf never makes a NaN (its p and correction are all exp2(-inf) = 0) */
            const float b0 = mn0 == -INFINITY ? 0.0f : mn0, b1 = mn1 == -INFINITY ? 0.0f : mn1;
            const float c0 = exp2f(m0 - b0), c1 = exp2f(m1 - b1);
            m0 = mn0;
            m1 = mn1;
            float ps0 = 0.0f, ps1 = 0.0f;
#pragma unroll
            for (int i = 0; i < NB; i++) {
                s[i][0] = exp2f(s[i][0] - b0);
                s[i][1] = exp2f(s[i][1] - b0);
                s[i][2] = exp2f(s[i][2] - b1);
                s[i][3] = exp2f(s[i][3] - b1);
                ps0 += s[i][0] + s[i][1];
                ps1 += s[i][2] + s[i][3];
            }
            l0 = l0 * c0 + ps0;
            l1 = l1 * c1 + ps1;
#pragma unroll
            for (int i = 0; i < DB; i++) {
                o[i][0] *= c0;
                o[i][1] *= c0;
                o[i][2] *= c1;
                o[i][3] *= c1;
            }

            /* O += P V. The S accumulators of key blocks 2k, 2k + 1 are exactly the A fragment
             * of keys 16k..16k+15. V by ldmatrix.trans, matrices ordered (keys +0..7, d +0..7),
             * (keys +8..15, d +0..7), (keys +0..7, d +8..15), (keys +8..15, d +8..15):
             * registers 0,1 are the B fragment of d block 2q, registers 2,3 of d block 2q + 1 */
            const int vrow = (lane & 7) + (((lane >> 3) & 1) << 3), vcol = (lane >> 4) << 3;
#pragma unroll
            for (int k = 0; k < NB / 2; k++) {
                const uint32_t pa[4] = {ty::pack(s[2 * k][0], s[2 * k][1]),
                                        ty::pack(s[2 * k][2], s[2 * k][3]),
                                        ty::pack(s[2 * k + 1][0], s[2 * k + 1][1]),
                                        ty::pack(s[2 * k + 1][2], s[2 * k + 1][3])};
#pragma unroll
                for (int q = 0; q < D / 16; q++) {
                    uint32_t b[4];
                    fr_cu_fa_ldsm_t(b, fr_cu_fa_saddr(vs + (16 * k + vrow) * SROW + 16 * q + vcol));
                    ty::mma(o[2 * q], pa, b[0], b[1]);
                    ty::mma(o[2 * q + 1], pa, b[2], b[3]);
                }
            }
        }
        __syncthreads(); /* this stage is refilled in the next iteration */
    }

    /* whole-row sums, then normalise and store rows g, g + 8: columns 8i + 2c, 8i + 2c + 1 */
#pragma unroll
    for (int x = 1; x <= 2; x <<= 1) {
        l0 += __shfl_xor_sync(0xffffffffu, l0, x);
        l1 += __shfl_xor_sync(0xffffffffu, l1, x);
    }
    const float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
    if (r0 < rows) {
        const int64_t base = (r0 / a.G) * a.o_st + (hk * a.G + r0 % a.G) * a.o_sh + 2 * c;
#pragma unroll
        for (int i = 0; i < DB; i++) {
            fr_cu_store(a.out, base + 8 * i, a.o_dtype, o[i][0] * inv0);
            fr_cu_store(a.out, base + 8 * i + 1, a.o_dtype, o[i][1] * inv0);
        }
    }
    if (r1 < rows) {
        const int64_t base = (r1 / a.G) * a.o_st + (hk * a.G + r1 % a.G) * a.o_sh + 2 * c;
#pragma unroll
        for (int i = 0; i < DB; i++) {
            fr_cu_store(a.out, base + 8 * i, a.o_dtype, o[i][2] * inv1);
            fr_cu_store(a.out, base + 8 * i + 1, a.o_dtype, o[i][3] * inv1);
        }
    }
#endif
}

/* ------------------------------------------------------------------ dispatch */

template <typename KT, int D>
static void fr_cu_fa_launch(fr_cuda_ctx *c, const fr_cu_fa_args &a, int64_t Hkv) {
    const dim3 grid(fr_cu_blocks(a.T * a.G, FR_CU_FA_BM), (unsigned)Hkv);
    fr_cu_fa_kernel<KT, D><<<grid, FR_CU_FA_WARPS * 32, fr_cu_fa_smem(D), c->stream>>>(a);
}

template <typename KT> static cudaError_t fr_cu_fa_raise_smem(void) {
    cudaError_t e =
        cudaFuncSetAttribute(fr_cu_fa_kernel<KT, 64>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             (int)fr_cu_fa_smem(64));
    if (e == cudaSuccess)
        e = cudaFuncSetAttribute(fr_cu_fa_kernel<KT, 128>,
                                 cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)fr_cu_fa_smem(128));
    return e;
}

fr_status fr_cuda_attention_mma_init(fr_cuda_ctx *c, fr_error *err) {
    c->attn_mma = false;
    int major = 0;
    cudaError_t e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, c->device);
    if (e != cudaSuccess) return fr_cu_fail(err, "backend_create (compute capability)", e);
    /* cp.async, ldmatrix and bf16 mma need sm_80; without them (or the shared memory) the SIMT
     * kernel serves every call */
    if (major < 8 || fr_cu_fa_smem(128) > c->smem_optin) return FR_OK;
    e = fr_cu_fa_raise_smem<__half>();
    if (e == cudaSuccess) e = fr_cu_fa_raise_smem<__nv_bfloat16>();
    if (e != cudaSuccess) return fr_cu_fail(err, "backend_create (flash attention smem)", e);
    c->attn_mma = true;
    return FR_OK;
}

fr_status fr_cuda_attention_mma(fr_cuda_ctx *c, const fr_tensor *q, const fr_tensor *k_cache,
                                const fr_tensor *v_cache, const fr_tensor *pos,
                                const fr_attention_params *p, fr_tensor *out, fr_error *err) {
    const fr_dtype dt = k_cache->dtype;
    const int64_t H = q->shape[0], T = q->shape[1], D = q->shape[2];
    const int64_t Hkv = k_cache->shape[0], L = k_cache->shape[1];
    if (!c->attn_mma || T < FR_CU_FA_MIN_T || (D != 64 && D != 128)) return FR_ERR_UNSUPPORTED;
    if ((dt != FR_DTYPE_F16 && dt != FR_DTYPE_BF16) || q->dtype != dt || v_cache->dtype != dt)
        return FR_ERR_UNSUPPORTED;
    /* keys and positions are ints in the kernel; grid.y holds the KV heads */
    if (L > INT_MAX - FR_CU_FA_BN || Hkv > 65535 || H / Hkv > INT_MAX) return FR_ERR_UNSUPPORTED;
    /* cp.async copies 16-byte chunks: every K/V row must start 16-byte aligned */
    const char *kp = fr_cu_ptr(k_cache), *vp = fr_cu_ptr(v_cache);
    if ((uintptr_t)kp % 16 || (uintptr_t)vp % 16 || k_cache->stride[0] % 16 ||
        k_cache->stride[1] % 16 || v_cache->stride[0] % 16 || v_cache->stride[1] % 16)
        return FR_ERR_UNSUPPORTED;

    fr_cu_fa_args a;
    memset(&a, 0, sizeof a);
    a.q = (const uint16_t *)fr_cu_ptr(q);
    a.q_sh = fr_cu_estride(q, 0);
    a.q_st = fr_cu_estride(q, 1);
    a.k = (const uint16_t *)kp;
    a.v = (const uint16_t *)vp;
    a.k_sh = fr_cu_estride(k_cache, 0);
    a.k_sl = fr_cu_estride(k_cache, 1);
    a.v_sh = fr_cu_estride(v_cache, 0);
    a.v_sl = fr_cu_estride(v_cache, 1);
    a.pos = (const int *)fr_cu_ptr(pos);
    a.out = fr_cu_ptr(out);
    a.o_st = fr_cu_estride(out, 0);
    a.o_sh = fr_cu_estride(out, 1);
    a.o_dtype = out->dtype;
    a.T = T;
    a.L = L;
    a.G = (int)(H / Hkv);
    a.window = p->window;
    const float scale = p->scale > 0.0f ? p->scale : 1.0f / sqrtf((float)D);
    a.sl2 = scale * 1.4426950408889634f;
    if (dt == FR_DTYPE_F16) {
        if (D == 64)
            fr_cu_fa_launch<__half, 64>(c, a, Hkv);
        else
            fr_cu_fa_launch<__half, 128>(c, a, Hkv);
    } else {
        if (D == 64)
            fr_cu_fa_launch<__nv_bfloat16, 64>(c, a, Hkv);
        else
            fr_cu_fa_launch<__nv_bfloat16, 128>(c, a, Hkv);
    }
    return fr_cu_launched(err, "attention");
}
