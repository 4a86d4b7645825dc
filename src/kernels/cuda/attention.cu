/* attention: out[t,h,:] = softmax_j(scale * q[h,t,:] . k[h/G, j, :]) v[h/G, j, :] over the keys
 * j that query t may see: j <= pos[t] (causal by position) and, with a sliding window W,
 * j > pos[t] - W. q [H,T,D], k/v cache [Hkv,L,D] (row stride along L may exceed D), out [T,H,D].
 * Positions are read on the device, so a captured step replays correctly with new positions.
 *
 * One kernel serves prefill and decode. A block takes one KV head and eight "rows" (a row is one
 * (token, query head) pair of that KV head's group, tokens outer), one warp per row, so GQA
 * groups and neighbouring tokens share every K/V tile: 32 keys at a time are staged in shared
 * memory as f32 (16-byte loads when rows are aligned), each lane scores one key, and the warp
 * folds the tile into its running max / sum / accumulator (online softmax, f32 throughout) with
 * lanes owning slices of D.
 *
 * Split-K: when rows x KV heads give too few blocks to fill the GPU (decode), a third grid
 * dimension splits every row's key range into S slices; each block writes (max, sum, acc[D]) to
 * scratch and a merge kernel combines them. S is fixed at launch; the slices are computed on the
 * device from the actual positions, so short and long contexts both spread over all S blocks.
 *
 * Prefill with f16/bf16 q and cache (D 64 or 128) goes to the tensor-core kernel of
 * attention_mma.cu instead; this file keeps f32, other head sizes, and decode. */
#include "kernels/cuda/cuda_backend.h"

#define FR_CU_ATT_MAX_D      256
#define FR_CU_ATT_ROWS       8  /* warps per block, one (token, query head) row each */
#define FR_CU_ATT_TK         32 /* keys per shared-memory tile: one per lane */
#define FR_CU_ATT_MAX_SPLITS 64
#define FR_CU_ATT_MIN_SLICE  64 /* fewest keys per split at full cache capacity */

typedef struct fr_cu_att_args {
    const void *q;
    int64_t q_sh, q_st;
    int q_dtype;
    const void *k, *v;
    int64_t k_sh, k_sl, v_sh, v_sl;
    const int *pos;
    void *out;
    int64_t o_st, o_sh;
    int o_dtype;
    int64_t T, H, D, L, G;
    int window;
    float scale;
} fr_cu_att_args;

/* Keys [lo, hi] visible to a query at position p; empty when lo > hi. */
__device__ __forceinline__ void fr_cu_att_range(const fr_cu_att_args &a, int64_t p, int64_t &lo,
                                                int64_t &hi) {
    if (p < 0) {
        lo = 1;
        hi = 0;
        return;
    }
    hi = p < a.L - 1 ? p : a.L - 1;
    lo = a.window > 0 ? p - a.window + 1 : 0;
    if (lo < 0) lo = 0;
}

static size_t fr_cu_att_smem(int64_t D) {
    return 2 * FR_CU_ATT_ROWS * sizeof(int64_t) +
           (size_t)(FR_CU_ATT_TK * (D + 1) + FR_CU_ATT_TK * D + FR_CU_ATT_ROWS * D) * sizeof(float);
}

/* Stages keys [j0, j0 + TK) of one head into Ks (padded rows) and Vs as f32; rows past jmax are
 * zero. vec: rows are 16-byte aligned and D is a whole number of 16-byte chunks. */
template <typename KT>
__device__ __forceinline__ void fr_cu_att_tile(const KT *kb, int64_t k_sl, const KT *vb,
                                               int64_t v_sl, int64_t j0, int64_t jmax, int64_t D,
                                               bool vec, float *Ks, float *Vs) {
    if (vec) {
        constexpr int E = fr_cu_w16<KT>::E;
        const int cpr = (int)(D / E); /* chunks per row */
        for (int idx = threadIdx.x; idx < FR_CU_ATT_TK * cpr; idx += blockDim.x) {
            const int r = idx / cpr, c = idx - r * cpr;
            const int64_t j = j0 + r;
            float kf[E], vf[E];
            if (j <= jmax) {
                fr_cu_w16<KT>::cvt(__ldg((const uint4 *)(kb + j * k_sl) + c), kf);
                fr_cu_w16<KT>::cvt(__ldg((const uint4 *)(vb + j * v_sl) + c), vf);
            } else {
#pragma unroll
                for (int e = 0; e < E; e++)
                    kf[e] = vf[e] = 0.0f;
            }
#pragma unroll
            for (int e = 0; e < E; e++) {
                Ks[r * (D + 1) + c * E + e] = kf[e];
                Vs[r * D + c * E + e] = vf[e];
            }
        }
    } else {
        for (int idx = threadIdx.x; idx < FR_CU_ATT_TK * D; idx += blockDim.x) {
            const int r = (int)(idx / D), d = (int)(idx - r * D);
            const int64_t j = j0 + r;
            const bool in = j <= jmax;
            Ks[r * (D + 1) + d] = in ? fr_cu_to_f32(kb[j * k_sl + d]) : 0.0f;
            Vs[r * D + d] = in ? fr_cu_to_f32(vb[j * v_sl + d]) : 0.0f;
        }
    }
}

/* grid: (row blocks, Hkv, S). S == 1 writes out directly; S > 1 writes partials to part. */
template <typename KT, int DPL>
__global__ void __launch_bounds__(FR_CU_ATT_ROWS * 32)
    fr_cu_att_kernel(fr_cu_att_args a, int S, bool vec, float *part) {
    extern __shared__ __align__(16) unsigned char fr_cu_att_smem_raw[];
    fr_cu_pdl_trigger(); /* the output projection's GEMV may start fetching its weights */
    fr_cu_pdl_wait();    /* launched early (PDL): q and the cache must be written */
    const int64_t D = a.D;
    int64_t *rlo = (int64_t *)fr_cu_att_smem_raw, *rhi = rlo + FR_CU_ATT_ROWS; /* key slices */
    float *Ks = (float *)(rhi + FR_CU_ATT_ROWS); /* [TK][D+1]: padded, lanes read other rows */
    float *Vs = Ks + FR_CU_ATT_TK * (D + 1);     /* [TK][D] */
    float *Qs = Vs + FR_CU_ATT_TK * D;           /* [ROWS][D], pre-scaled */
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t hk = blockIdx.y, s = blockIdx.z;
    const int64_t row = (int64_t)blockIdx.x * FR_CU_ATT_ROWS + warp;
    const bool active = row < a.T * a.G;
    const int64_t t = active ? row / a.G : 0, h = hk * a.G + (active ? row % a.G : 0);

    /* this row's slice of its key range */
    int64_t lo = 1, hi = 0;
    if (active) {
        fr_cu_att_range(a, a.pos[t], lo, hi);
        if (S > 1 && lo <= hi) {
            const int64_t chunk = (hi - lo + 1 + S - 1) / S;
            const int64_t slo = lo + s * chunk, shi = slo + chunk - 1;
            lo = slo;
            hi = shi < hi ? shi : hi;
        }
    }
    if (lane == 0) {
        rlo[warp] = lo;
        rhi[warp] = hi;
    }
    for (int64_t d = lane; d < D; d += 32)
        Qs[warp * D + d] =
            active ? fr_cu_load(a.q, h * a.q_sh + t * a.q_st + d, a.q_dtype) * a.scale : 0.0f;
    __syncthreads();
    int64_t blo = INT64_MAX, bhi = -1;
    for (int w = 0; w < FR_CU_ATT_ROWS; w++)
        if (rlo[w] <= rhi[w]) {
            blo = rlo[w] < blo ? rlo[w] : blo;
            bhi = rhi[w] > bhi ? rhi[w] : bhi;
        }

    const KT *kb = (const KT *)a.k + hk * a.k_sh;
    const KT *vb = (const KT *)a.v + hk * a.v_sh;
    float m = -INFINITY, l = 0.0f, acc[DPL];
#pragma unroll
    for (int i = 0; i < DPL; i++)
        acc[i] = 0.0f;
    const float *qrow = Qs + warp * D;

    for (int64_t j0 = blo; j0 <= bhi; j0 += FR_CU_ATT_TK) {
        fr_cu_att_tile<KT>(kb, a.k_sl, vb, a.v_sl, j0, bhi, D, vec, Ks, Vs);
        __syncthreads();
        /* warp-uniform: does this row see any key of the tile? */
        if (lo <= hi && lo < j0 + FR_CU_ATT_TK && hi >= j0) {
            const int64_t j = j0 + lane;
            const bool valid = j >= lo && j <= hi;
            float sc = -INFINITY;
            if (valid) {
                const float *kr = Ks + lane * (D + 1);
                float dot = 0.0f;
                for (int64_t d = 0; d < D; d++)
                    dot = fmaf(qrow[d], kr[d], dot);
                sc = dot;
            }
            const float m_new = fmaxf(m, fr_cu_warp_max(sc)); /* finite: one key is valid */
            const float corr = __expf(m - m_new);
            const float pj = valid ? __expf(sc - m_new) : 0.0f;
            l = l * corr + fr_cu_warp_sum(pj);
#pragma unroll
            for (int i = 0; i < DPL; i++)
                acc[i] *= corr;
            for (int r = 0; r < FR_CU_ATT_TK; r++) {
                const float pr = __shfl_sync(0xffffffffu, pj, r);
#pragma unroll
                for (int i = 0; i < DPL; i++) {
                    const int64_t d = lane + 32 * i;
                    if (d < D) acc[i] = fmaf(pr, Vs[r * D + d], acc[i]);
                }
            }
            m = m_new;
        }
        __syncthreads();
    }
    if (!active) return;
    if (S == 1) {
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            const int64_t d = lane + 32 * i;
            if (d < D) fr_cu_store(a.out, t * a.o_st + h * a.o_sh + d, a.o_dtype, acc[i] * inv);
        }
    } else {
        /* every (row, slice) writes its partial, empty slices included (max = -inf, sum = 0) */
        float *pp = part + ((t * a.H + h) * S + s) * (D + 2);
        if (lane == 0) {
            pp[0] = m;
            pp[1] = l;
        }
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            const int64_t d = lane + 32 * i;
            if (d < D) pp[2 + d] = acc[i];
        }
    }
}

__global__ void fr_cu_att_merge_kernel(fr_cu_att_args a, int S, const float *part) {
    fr_cu_pdl_trigger();
    fr_cu_pdl_wait();
    const int64_t th = blockIdx.x, t = th / a.H, h = th % a.H;
    const float *pp = part + th * S * (a.D + 2);
    float mb = -INFINITY;
    for (int s = 0; s < S; s++)
        mb = fmaxf(mb, pp[s * (a.D + 2)]);
    float lb = 0.0f;
    for (int s = 0; s < S; s++) {
        const float ms = pp[s * (a.D + 2)];
        if (ms != -INFINITY) lb += pp[s * (a.D + 2) + 1] * __expf(ms - mb);
    }
    const float inv = lb > 0.0f ? 1.0f / lb : 0.0f;
    for (int64_t d = threadIdx.x; d < a.D; d += blockDim.x) {
        float r = 0.0f;
        for (int s = 0; s < S; s++) {
            const float ms = pp[s * (a.D + 2)];
            if (ms != -INFINITY) r += pp[s * (a.D + 2) + 2 + d] * __expf(ms - mb);
        }
        fr_cu_store(a.out, t * a.o_st + h * a.o_sh + d, a.o_dtype, r * inv);
    }
}

/* ------------------------------------------------------------------ dispatch */

template <typename KT, int DPL>
static void fr_cu_att_launch(fr_cuda_ctx *c, const fr_cu_att_args &a, int S, bool vec) {
    const int64_t rows = a.T * a.G;
    dim3 grid(fr_cu_blocks(rows, FR_CU_ATT_ROWS), (unsigned)(a.H / a.G), (unsigned)S);
    fr_cu_launch_pdl(c, fr_cu_att_kernel<KT, DPL>, grid, dim3(FR_CU_ATT_ROWS * 32),
                     fr_cu_att_smem(a.D), a, S, vec, c->attn_part);
    if (S > 1 && cudaPeekAtLastError() == cudaSuccess) {
        const int threads = a.D >= 128 ? 128 : 64;
        fr_cu_launch_pdl(c, fr_cu_att_merge_kernel, dim3((unsigned)(a.T * a.H)), dim3(threads), 0,
                         a, S, (const float *)c->attn_part);
    }
}

template <typename KT>
static void fr_cu_att_launch_d(fr_cuda_ctx *c, const fr_cu_att_args &a, int S, bool vec) {
    if (a.D <= 64)
        fr_cu_att_launch<KT, 2>(c, a, S, vec);
    else if (a.D <= 128)
        fr_cu_att_launch<KT, 4>(c, a, S, vec);
    else
        fr_cu_att_launch<KT, 8>(c, a, S, vec);
}

template <typename KT, int DPL> static cudaError_t fr_cu_att_raise_smem(size_t bytes) {
    return cudaFuncSetAttribute(fr_cu_att_kernel<KT, DPL>,
                                cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
}

template <typename KT> static cudaError_t fr_cu_att_raise_smem_all(void) {
    cudaError_t e = fr_cu_att_raise_smem<KT, 2>(fr_cu_att_smem(64));
    if (e == cudaSuccess) e = fr_cu_att_raise_smem<KT, 4>(fr_cu_att_smem(128));
    if (e == cudaSuccess) e = fr_cu_att_raise_smem<KT, 8>(fr_cu_att_smem(FR_CU_ATT_MAX_D));
    return e;
}

fr_status fr_cuda_attention_init(fr_cuda_ctx *c, fr_error *err) {
    if (fr_cu_att_smem(FR_CU_ATT_MAX_D) > c->smem_optin)
        return fr_error_set(err, FR_ERR_BACKEND,
                            "cuda backend: device allows %zu bytes of shared memory per block, "
                            "attention needs %zu",
                            c->smem_optin, fr_cu_att_smem(FR_CU_ATT_MAX_D));
    cudaError_t e = fr_cu_att_raise_smem_all<float>();
    if (e == cudaSuccess) e = fr_cu_att_raise_smem_all<__half>();
    if (e == cudaSuccess) e = fr_cu_att_raise_smem_all<__nv_bfloat16>();
    if (e != cudaSuccess) return fr_cu_fail(err, "backend_create (attention smem)", e);
    return fr_cuda_attention_mma_init(c, err);
}

fr_status fr_cuda_attention(void *vctx, const fr_tensor *q, const fr_tensor *k_cache,
                            const fr_tensor *v_cache, const fr_tensor *pos,
                            const fr_attention_params *p, fr_tensor *out, fr_error *err) {
    fr_cuda_ctx *c = (fr_cuda_ctx *)vctx;
    fr_status st = fr_cu_enter(c, err, "attention");
    if (st) return st;
    if (k_cache->dtype != v_cache->dtype)
        return fr_error_set(err, FR_ERR_UNSUPPORTED,
                            "cuda attention: k_cache %s and v_cache %s must share a dtype",
                            fr_dtype_name(k_cache->dtype), fr_dtype_name(v_cache->dtype));
    fr_cu_att_args a;
    memset(&a, 0, sizeof a);
    a.H = q->shape[0];
    a.T = q->shape[1];
    a.D = q->shape[2];
    a.L = k_cache->shape[1];
    a.G = a.H / k_cache->shape[0];
    if (a.D > FR_CU_ATT_MAX_D)
        return fr_error_set(err, FR_ERR_UNSUPPORTED, "cuda attention: head_dim %lld > %d",
                            (long long)a.D, FR_CU_ATT_MAX_D);
    if (k_cache->shape[0] > 65535)
        return fr_error_set(err, FR_ERR_UNSUPPORTED, "cuda attention: %lld kv heads (max 65535)",
                            (long long)k_cache->shape[0]);
    /* prefill with 16-bit q and cache: the tensor-core kernel, when it takes the call */
    st = fr_cuda_attention_mma(c, q, k_cache, v_cache, pos, p, out, err);
    if (st != FR_ERR_UNSUPPORTED) return st;
    a.q = fr_cu_ptr(q);
    a.q_sh = fr_cu_estride(q, 0);
    a.q_st = fr_cu_estride(q, 1);
    a.q_dtype = q->dtype;
    a.k = fr_cu_ptr(k_cache);
    a.k_sh = fr_cu_estride(k_cache, 0);
    a.k_sl = fr_cu_estride(k_cache, 1);
    a.v = fr_cu_ptr(v_cache);
    a.v_sh = fr_cu_estride(v_cache, 0);
    a.v_sl = fr_cu_estride(v_cache, 1);
    a.pos = (const int *)fr_cu_ptr(pos);
    a.out = fr_cu_ptr(out);
    a.o_st = fr_cu_estride(out, 0);
    a.o_sh = fr_cu_estride(out, 1);
    a.o_dtype = out->dtype;
    a.window = p->window;
    a.scale = p->scale > 0.0f ? p->scale : 1.0f / sqrtf((float)a.D);

    /* Split-K when the grid would be too small (decode): about two blocks per SM in total,
     * bounded by the scratch for partials. */
    const int64_t Hkv = k_cache->shape[0];
    const int64_t blocks = (int64_t)fr_cu_blocks(a.T * a.G, FR_CU_ATT_ROWS) * Hkv;
    int64_t S = (2 * (int64_t)c->n_sm + blocks - 1) / blocks;
    if (S > FR_CU_ATT_MAX_SPLITS) S = FR_CU_ATT_MAX_SPLITS;
    if (S > a.L / FR_CU_ATT_MIN_SLICE) S = a.L / FR_CU_ATT_MIN_SLICE;
    if (S > 1) {
        const int64_t fit = (int64_t)(c->attn_part_size / sizeof(float)) / (a.T * a.H * (a.D + 2));
        if (S > fit) S = fit;
    }
    if (S < 1) S = 1;
    /* 16-byte tile loads when every K/V row starts 16-byte aligned and holds whole chunks */
    const int64_t es = fr_cu_esize(k_cache->dtype);
    const bool vec = (uintptr_t)a.k % 16 == 0 && (uintptr_t)a.v % 16 == 0 && (a.D * es) % 16 == 0 &&
                     (a.k_sh * es) % 16 == 0 && (a.k_sl * es) % 16 == 0 &&
                     (a.v_sh * es) % 16 == 0 && (a.v_sl * es) % 16 == 0;
    switch (k_cache->dtype) {
    case FR_DTYPE_F16:
        fr_cu_att_launch_d<__half>(c, a, (int)S, vec);
        break;
    case FR_DTYPE_BF16:
        fr_cu_att_launch_d<__nv_bfloat16>(c, a, (int)S, vec);
        break;
    default:
        fr_cu_att_launch_d<float>(c, a, (int)S, vec);
        break;
    }
    return fr_cu_launched(err, "attention");
}
