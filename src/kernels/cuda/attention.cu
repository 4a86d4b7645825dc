/* attention: out[t,h,:] = softmax_j(scale * q[h,t,:] . k[h/G, j, :]) v[h/G, j, :] over the keys
 * j that query t may see: j <= pos[t] (causal by position) and, with a sliding window W,
 * j > pos[t] - W. q [H,T,D], k/v cache [Hkv,L,D] (row stride along L may exceed D), out [T,H,D].
 * Positions are read on the device, so a captured step replays correctly with new positions.
 *
 * Two kernels, both f32 accumulation with an online (running max) softmax:
 *  - decode (T <= 8): the key range of each (token, head) is split across S blocks (split-K);
 *    each block writes a partial (max, sum, acc[D]) into scratch and a second kernel merges
 *    them. S is fixed at launch from the SM count; each block derives its slice from the actual
 *    range on the device, so short and long contexts both spread over all S blocks.
 *  - prefill: one warp per query row, eight rows of one head per block sharing 32-key tiles of
 *    K and V in shared memory; each lane scores one key of the tile, then the warp accumulates
 *    P.V with lanes owning slices of D. */
#include "kernels/cuda/cuda_backend.h"

#define FR_CU_ATT_MAX_D      256
#define FR_CU_DEC_WARPS      4
#define FR_CU_DEC_MAX_T      8
#define FR_CU_DEC_MAX_SPLITS 64
#define FR_CU_PRE_WARPS      8
#define FR_CU_PRE_TK         32

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

/* ------------------------------------------------------------------ decode, split-K */

template <typename KT, int DPL>
__global__ void __launch_bounds__(FR_CU_DEC_WARPS * 32)
    fr_cu_att_decode_kernel(fr_cu_att_args a, int S, float *part) {
    __shared__ float sm_m[FR_CU_DEC_WARPS], sm_l[FR_CU_DEC_WARPS];
    __shared__ float sm_acc[FR_CU_DEC_WARPS][DPL * 32];
    const int s = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t h = blockIdx.y, t = blockIdx.z, hk = h / a.G;
    int64_t lo, hi;
    fr_cu_att_range(a, a.pos[t], lo, hi);
    const int64_t len = hi >= lo ? hi - lo + 1 : 0;
    const int64_t chunk = (len + S - 1) / S;
    const int64_t j0 = lo + s * chunk;
    const int64_t j1 = j0 + chunk < hi + 1 ? j0 + chunk : hi + 1;

    float qv[DPL], acc[DPL];
#pragma unroll
    for (int i = 0; i < DPL; i++) {
        const int64_t d = lane + 32 * i;
        qv[i] = d < a.D ? fr_cu_load(a.q, h * a.q_sh + t * a.q_st + d, a.q_dtype) * a.scale : 0.0f;
        acc[i] = 0.0f;
    }
    const KT *kb = (const KT *)a.k + hk * a.k_sh;
    const KT *vb = (const KT *)a.v + hk * a.v_sh;
    float m = -INFINITY, l = 0.0f;
    for (int64_t j = j0 + warp; j < j1; j += FR_CU_DEC_WARPS) {
        const KT *kr = kb + j * a.k_sl;
        float dot = 0.0f;
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            const int64_t d = lane + 32 * i;
            if (d < a.D) dot = fmaf(qv[i], fr_cu_to_f32(kr[d]), dot);
        }
        const float sc = fr_cu_warp_sum(dot);
        const float m_new = fmaxf(m, sc);
        const float corr = __expf(m - m_new), pj = __expf(sc - m_new);
        l = l * corr + pj;
        const KT *vr = vb + j * a.v_sl;
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            const int64_t d = lane + 32 * i;
            const float vv = d < a.D ? fr_cu_to_f32(vr[d]) : 0.0f;
            acc[i] = fmaf(pj, vv, acc[i] * corr);
        }
        m = m_new;
    }
    if (lane == 0) {
        sm_m[warp] = m;
        sm_l[warp] = l;
    }
#pragma unroll
    for (int i = 0; i < DPL; i++)
        sm_acc[warp][lane + 32 * i] = acc[i];
    __syncthreads();
    float mb = -INFINITY;
#pragma unroll
    for (int w = 0; w < FR_CU_DEC_WARPS; w++)
        mb = fmaxf(mb, sm_m[w]);
    float f[FR_CU_DEC_WARPS], lb = 0.0f;
#pragma unroll
    for (int w = 0; w < FR_CU_DEC_WARPS; w++) {
        f[w] = sm_m[w] == -INFINITY ? 0.0f : __expf(sm_m[w] - mb);
        lb += sm_l[w] * f[w];
    }
    float *pp = part + ((t * a.H + h) * S + s) * (a.D + 2);
    if (threadIdx.x == 0) {
        pp[0] = mb;
        pp[1] = lb;
    }
    for (int64_t d = threadIdx.x; d < a.D; d += blockDim.x) {
        float r = 0.0f;
#pragma unroll
        for (int w = 0; w < FR_CU_DEC_WARPS; w++)
            r += sm_acc[w][d] * f[w];
        pp[2 + d] = r;
    }
}

__global__ void fr_cu_att_merge_kernel(fr_cu_att_args a, int S, const float *part) {
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

/* ------------------------------------------------------------------ prefill */

static size_t fr_cu_pre_smem(int64_t D) {
    return (size_t)(FR_CU_PRE_TK * (D + 1) + FR_CU_PRE_TK * D + FR_CU_PRE_WARPS * D) *
               sizeof(float) +
           2 * FR_CU_PRE_WARPS * sizeof(int64_t);
}

template <typename KT, int DPL>
__global__ void __launch_bounds__(FR_CU_PRE_WARPS * 32) fr_cu_att_prefill_kernel(fr_cu_att_args a) {
    extern __shared__ __align__(16) unsigned char fr_cu_att_smem[];
    const int64_t D = a.D;
    int64_t *rlo = (int64_t *)fr_cu_att_smem, *rhi = rlo + FR_CU_PRE_WARPS; /* key ranges */
    float *Ks = (float *)(rhi + FR_CU_PRE_WARPS); /* [TK][D+1]: padded, lanes read other rows */
    float *Vs = Ks + FR_CU_PRE_TK * (D + 1);      /* [TK][D] */
    float *Qs = Vs + FR_CU_PRE_TK * D;            /* [WARPS][D], pre-scaled */
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t h = blockIdx.y, hk = h / a.G;
    const int64_t t = (int64_t)blockIdx.x * FR_CU_PRE_WARPS + warp;
    const bool active = t < a.T;

    int64_t lo = 1, hi = 0;
    if (active) fr_cu_att_range(a, a.pos[t], lo, hi);
    if (lane == 0) {
        rlo[warp] = lo;
        rhi[warp] = hi;
    }
    for (int64_t d = lane; d < D; d += 32)
        Qs[warp * D + d] =
            active ? fr_cu_load(a.q, h * a.q_sh + t * a.q_st + d, a.q_dtype) * a.scale : 0.0f;
    __syncthreads();
    int64_t blo = INT64_MAX, bhi = -1;
    for (int w = 0; w < FR_CU_PRE_WARPS; w++)
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

    for (int64_t j0 = blo; j0 <= bhi; j0 += FR_CU_PRE_TK) {
        for (int64_t idx = threadIdx.x; idx < FR_CU_PRE_TK * D; idx += blockDim.x) {
            const int64_t r = idx / D, d = idx - r * D, j = j0 + r;
            const bool in = j <= bhi;
            Ks[r * (D + 1) + d] = in ? fr_cu_to_f32(kb[j * a.k_sl + d]) : 0.0f;
            Vs[r * D + d] = in ? fr_cu_to_f32(vb[j * a.v_sl + d]) : 0.0f;
        }
        __syncthreads();
        /* Warp-uniform: does this query see any key of the tile? */
        if (lo <= hi && lo < j0 + FR_CU_PRE_TK && hi >= j0) {
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
            const float tmax = fr_cu_warp_max(sc);
            const float m_new = fmaxf(m, tmax);
            const float corr = __expf(m - m_new);
            const float pj = valid ? __expf(sc - m_new) : 0.0f;
            l = l * corr + fr_cu_warp_sum(pj);
#pragma unroll
            for (int i = 0; i < DPL; i++)
                acc[i] *= corr;
            for (int r = 0; r < FR_CU_PRE_TK; r++) {
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
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
    for (int i = 0; i < DPL; i++) {
        const int64_t d = lane + 32 * i;
        if (d < D) fr_cu_store(a.out, t * a.o_st + h * a.o_sh + d, a.o_dtype, acc[i] * inv);
    }
}

/* ------------------------------------------------------------------ dispatch */

template <typename KT, int DPL>
static void fr_cu_att_launch(fr_cuda_ctx *c, const fr_cu_att_args &a, int S) {
    if (S > 0) {
        dim3 grid((unsigned)S, (unsigned)a.H, (unsigned)a.T);
        fr_cu_att_decode_kernel<KT, DPL>
            <<<grid, FR_CU_DEC_WARPS * 32, 0, c->stream>>>(a, S, c->attn_part);
        if (cudaPeekAtLastError() != cudaSuccess) return;
        const int threads = a.D >= 128 ? 128 : 64;
        fr_cu_att_merge_kernel<<<(unsigned)(a.T * a.H), threads, 0, c->stream>>>(a, S,
                                                                                 c->attn_part);
    } else {
        dim3 grid(fr_cu_blocks(a.T, FR_CU_PRE_WARPS), (unsigned)a.H);
        fr_cu_att_prefill_kernel<KT, DPL>
            <<<grid, FR_CU_PRE_WARPS * 32, fr_cu_pre_smem(a.D), c->stream>>>(a);
    }
}

template <typename KT>
static void fr_cu_att_launch_d(fr_cuda_ctx *c, const fr_cu_att_args &a, int S) {
    if (a.D <= 64)
        fr_cu_att_launch<KT, 2>(c, a, S);
    else if (a.D <= 128)
        fr_cu_att_launch<KT, 4>(c, a, S);
    else
        fr_cu_att_launch<KT, 8>(c, a, S);
}

template <typename KT, int DPL> static cudaError_t fr_cu_att_raise_smem(size_t bytes) {
    return cudaFuncSetAttribute(fr_cu_att_prefill_kernel<KT, DPL>,
                                cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
}

template <typename KT> static cudaError_t fr_cu_att_raise_smem_all(void) {
    cudaError_t e = fr_cu_att_raise_smem<KT, 2>(fr_cu_pre_smem(64));
    if (e == cudaSuccess) e = fr_cu_att_raise_smem<KT, 4>(fr_cu_pre_smem(128));
    if (e == cudaSuccess) e = fr_cu_att_raise_smem<KT, 8>(fr_cu_pre_smem(FR_CU_ATT_MAX_D));
    return e;
}

fr_status fr_cuda_attention_init(fr_cuda_ctx *c, fr_error *err) {
    if (fr_cu_pre_smem(FR_CU_ATT_MAX_D) > c->smem_optin)
        return fr_error_set(err, FR_ERR_BACKEND,
                            "cuda backend: device allows %zu bytes of shared memory per block, "
                            "attention needs %zu",
                            c->smem_optin, fr_cu_pre_smem(FR_CU_ATT_MAX_D));
    cudaError_t e = fr_cu_att_raise_smem_all<float>();
    if (e == cudaSuccess) e = fr_cu_att_raise_smem_all<__half>();
    if (e == cudaSuccess) e = fr_cu_att_raise_smem_all<__nv_bfloat16>();
    return e == cudaSuccess ? FR_OK : fr_cu_fail(err, "backend_create (attention smem)", e);
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
    if (a.H > 65535 || a.T > 65535 * (int64_t)FR_CU_PRE_WARPS)
        return fr_error_set(err, FR_ERR_UNSUPPORTED,
                            "cuda attention: %lld heads x %lld tokens "
                            "is too large for one call",
                            (long long)a.H, (long long)a.T);
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

    /* Split-K for decode: about two blocks per SM in total, bounded by the scratch. */
    int S = 0;
    if (a.T <= FR_CU_DEC_MAX_T) {
        const int64_t th = a.T * a.H;
        int64_t want = (2 * (int64_t)c->n_sm + th - 1) / th;
        if (want > FR_CU_DEC_MAX_SPLITS) want = FR_CU_DEC_MAX_SPLITS;
        if (want > a.L) want = a.L;
        if (want < 1) want = 1;
        const int64_t fit = (int64_t)(c->attn_part_size / sizeof(float)) / (th * (a.D + 2));
        S = (int)(want < fit ? want : fit); /* 0 when even one split does not fit: prefill */
    }
    switch (k_cache->dtype) {
    case FR_DTYPE_F16:
        fr_cu_att_launch_d<__half>(c, a, S);
        break;
    case FR_DTYPE_BF16:
        fr_cu_att_launch_d<__nv_bfloat16>(c, a, S);
        break;
    default:
        fr_cu_att_launch_d<float>(c, a, S);
        break;
    }
    return fr_cu_launched(err, "attention");
}
