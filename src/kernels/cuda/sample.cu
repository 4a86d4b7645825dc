/* The `sample` op on CUDA: one block of 1024 threads per row, no sort. Semantics in backend.h
 * (fr_op_sample); all arithmetic comes from kernels/sample_common.h, so the ids equal the CPU
 * backend's bit for bit. Passes over the row (it stays in L2 between passes):
 *   1. max of the scaled logits, count of valid ones (and top-k's first histogram);
 *   2. top-k: the k-th largest key by a radix select over the order-preserving float keys,
 *      digits of 11, 11 and 10 bits, counting into a 2048-bin shared histogram (2 more passes);
 *   3. top-p: the same three-level select, but histogramming fixed-point weights instead of
 *      counts, looking for the lowest key whose strictly-larger weight is still below P
 *      (3 passes; the first also gives the total weight after top-k);
 *   4. the draw: each warp sums the kept weight of a contiguous 1/32 of the row, thread 0 picks
 *      the segment holding r, then the block splits that segment into 1024 contiguous chunks,
 *      scans their sums and the one thread whose chunk holds r walks it to the token.
 * Weights are integers, so every histogram, sum and scan is exact and independent of the order
 * of the atomics: the kernel is deterministic and matches the sequential CPU code.
 * The state's counter is advanced by the last block to finish (a done-counter in the state), so
 * a captured graph draws fresh numbers on each replay with no host write. */
#include "kernels/cuda/cuda_backend.h"
#include "kernels/sample_common.h"

#define SMP_THREADS 1024
#define SMP_WARPS   (SMP_THREADS / 32)
#define SMP_BINS    2048
#define SMP_FULL    0xffffffffu

typedef unsigned long long smp_u64;

/* Radix levels: key bits [21, 32), [10, 21), [0, 10). */
__constant__ int smp_shift[3] = {21, 10, 0};
__constant__ unsigned smp_dmask[3] = {2047u, 2047u, 1023u};

struct smp_shared {
    smp_u64 hist[SMP_BINS];
    smp_u64 red[SMP_WARPS];  /* reduction / scan partials */
    smp_u64 wsum[SMP_WARPS]; /* kept weight per warp segment */
    smp_u64 rnd;             /* this row's 64 random bits */
    smp_u64 need;            /* top-k: rank still to find inside the chosen bin */
    smp_u64 above;           /* top-p: weight strictly above the chosen bin */
    smp_u64 P;               /* top-p: the limit */
    smp_u64 r2;              /* draw: r minus the weight of earlier segments */
    unsigned tau;            /* top-k threshold key (digits so far) */
    unsigned cut;            /* top-p threshold key (digits so far) */
    int seg;                 /* draw: the segment holding r */
};

static_assert(SMP_THREADS == 1024 && SMP_WARPS == 32, "reductions assume 32 full warps");
static_assert(SMP_BINS == 2 * SMP_THREADS, "each thread owns two histogram bins");

__device__ __forceinline__ smp_u64 smp_warp_sum(smp_u64 v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(SMP_FULL, v, o);
    return v;
}

__device__ __forceinline__ smp_u64 smp_warp_max(smp_u64 v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const smp_u64 t = __shfl_xor_sync(SMP_FULL, v, o);
        v = t > v ? t : v;
    }
    return v;
}

/* Sum or max over the block; every thread gets the result. */
template <bool MAX> __device__ __forceinline__ smp_u64 smp_block_reduce(smp_u64 v, smp_u64 *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = MAX ? smp_warp_max(v) : smp_warp_sum(v);
    __syncthreads(); /* red may still be read by the previous reduction or scan */
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = red[lane];
    return MAX ? smp_warp_max(v) : smp_warp_sum(v);
}

__device__ __forceinline__ smp_u64 smp_warp_incl_scan(smp_u64 v) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const smp_u64 t = __shfl_up_sync(SMP_FULL, v, o);
        if (lane >= o) v += t;
    }
    return v;
}

/* Exclusive prefix sum of v in thread order; *total gets the block's sum (every thread). */
__device__ __forceinline__ smp_u64 smp_block_scan(smp_u64 v, smp_u64 *red, smp_u64 *total) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const smp_u64 inc = smp_warp_incl_scan(v);
    __syncthreads(); /* red may still be read by the previous reduction or scan */
    if (lane == 31) red[warp] = inc;
    __syncthreads();
    const smp_u64 w = red[lane];
    const smp_u64 winc = smp_warp_incl_scan(w); /* every warp scans the 32 warp totals */
    const smp_u64 before = __shfl_sync(SMP_FULL, winc - w, warp);
    *total = __shfl_sync(SMP_FULL, winc, 31);
    return before + inc - v;
}

/* Token i of the row: false when it does not take part (NaN / -inf); else its scaled logit and
 * key. */
__device__ __forceinline__ bool smp_tok(const float *xr, int i, float inv_t, float &l,
                                        unsigned &k) {
    const float x = __ldg(xr + i);
    if (!fr_smp_valid(x)) return false;
    l = fr_smp_scale(x, inv_t);
    k = fr_smp_key(l);
    return true;
}

/* Token i's weight if it is in the final set, else 0. */
__device__ __forceinline__ smp_u64 smp_kept(const float *xr, int i, float inv_t, float m,
                                            unsigned thr, smp_u64 wmin) {
    float l;
    unsigned k;
    if (!smp_tok(xr, i, inv_t, l, k) || k < thr) return 0;
    const smp_u64 w = fr_smp_weight(l, m);
    return w >= wmin ? w : 0;
}

/* Thread t owns bins hi = 2047 - 2t and lo = hi - 1, so a scan in thread order walks the bins
 * from the largest keys down. */
__device__ __forceinline__ int smp_hi_bin() {
    return SMP_BINS - 1 - 2 * (int)threadIdx.x;
}

__device__ __forceinline__ void smp_clear(smp_shared &sh) {
    sh.hist[smp_hi_bin()] = 0;
    sh.hist[smp_hi_bin() - 1] = 0;
}

/* Top-k level: the bin holding the need-th largest counted key (exactly one thread finds it:
 * need <= the count of the bins). Ends with a barrier. */
__device__ void smp_pick_count(smp_shared &sh, int level) {
    const int hi = smp_hi_bin(), lo = hi - 1;
    const smp_u64 need = sh.need, chi = sh.hist[hi], clo = sh.hist[lo];
    smp_u64 total;
    const smp_u64 ex = smp_block_scan(chi + clo, sh.red, &total); /* count of larger bins */
    if (ex < need && need <= ex + chi) {
        sh.tau |= (unsigned)hi << smp_shift[level];
        sh.need = need - ex;
    } else if (ex + chi < need && need <= ex + chi + clo) {
        sh.tau |= (unsigned)lo << smp_shift[level];
        sh.need = need - ex - chi;
    }
    __syncthreads();
}

/* Top-p level: the lowest bin b with C(b) < P, where C(b) = above + weight of the larger bins
 * (C never grows with b and C(top) = above < P, so exactly one thread finds it). Ends with a
 * barrier. */
__device__ void smp_pick_mass(smp_shared &sh, int level, float top_p) {
    const int hi = smp_hi_bin(), lo = hi - 1;
    const smp_u64 above = sh.above, whi = sh.hist[hi], wlo = sh.hist[lo];
    smp_u64 total;
    const smp_u64 ex = smp_block_scan(whi + wlo, sh.red, &total);
    /* the first level sees every top-k survivor: its total is Z */
    const smp_u64 P = level == 0 ? fr_smp_top_p_limit(top_p, total) : sh.P;
    const smp_u64 c_hi = above + ex, c_lo = c_hi + whi, c_below = c_lo + wlo;
    if (c_hi < P && c_lo >= P) {
        sh.cut |= (unsigned)hi << smp_shift[level];
        sh.above = c_hi;
    } else if (c_lo < P && (lo == 0 || c_below >= P)) {
        sh.cut |= (unsigned)lo << smp_shift[level];
        sh.above = c_lo;
    }
    if (level == 0 && threadIdx.x == 0) sh.P = P;
    __syncthreads();
}

__device__ __forceinline__ bool smp_match(unsigned k, unsigned prefix, int level) {
    return level == 0 || (k >> smp_shift[level - 1]) == (prefix >> smp_shift[level - 1]);
}

__device__ __forceinline__ int smp_digit(unsigned k, int level) {
    return (int)((k >> smp_shift[level]) & smp_dmask[level]);
}

/* fr_op_argmax's rule: largest key, then lowest index; NaN skipped; none -> 0. */
__device__ void smp_greedy(smp_shared &sh, const float *xr, int V, int *out) {
    smp_u64 best = 0; /* 0 = nothing yet: keys of non-NaN floats are >= 0x007fffff */
    for (int i = threadIdx.x; i < V; i += SMP_THREADS) {
        const float x = __ldg(xr + i);
        if ((fr_smp_bits(x) & 0x7fffffffu) > 0x7f800000u) continue;
        const smp_u64 c =
            ((smp_u64)fr_smp_argmax_key(x) << 32) | (smp_u64)(0xffffffffu - (unsigned)i);
        best = c > best ? c : best;
    }
    best = smp_block_reduce<true>(best, sh.red);
    if (threadIdx.x == 0) *out = best ? (int)(0xffffffffu - (unsigned)(best & 0xffffffffu)) : 0;
}

__device__ void smp_sample_row(smp_shared &sh, const float *xr, int V, int *out, float inv_t,
                               int top_k, float top_p, smp_u64 wmin) {
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

    /* pass 1: max key, valid count, and (when top-k may apply) top-k's first histogram */
    unsigned kmax = 0;
    smp_u64 nv = 0;
    for (int i = tid; i < V; i += SMP_THREADS) {
        float l;
        unsigned k;
        if (!smp_tok(xr, i, inv_t, l, k)) continue;
        kmax = k > kmax ? k : kmax;
        nv++;
        if (top_k > 0) atomicAdd(&sh.hist[smp_digit(k, 0)], 1ull);
    }
    kmax = (unsigned)smp_block_reduce<true>(kmax, sh.red);
    nv = smp_block_reduce<false>(nv, sh.red); /* its barriers also complete the histogram */
    if (nv == 0) {                            /* block-uniform */
        if (tid == 0) *out = 0;
        return;
    }
    const float m = fr_smp_unkey(kmax);

    unsigned thr = 0; /* tokens with key >= thr survive the filters so far */
    if (top_k > 0 && (smp_u64)top_k < nv) {
        for (int level = 0; level < 3; level++) {
            if (level > 0) {
                const unsigned prefix = sh.tau;
                smp_clear(sh);
                __syncthreads();
                for (int i = tid; i < V; i += SMP_THREADS) {
                    float l;
                    unsigned k;
                    if (smp_tok(xr, i, inv_t, l, k) && smp_match(k, prefix, level))
                        atomicAdd(&sh.hist[smp_digit(k, level)], 1ull);
                }
                __syncthreads();
            }
            smp_pick_count(sh, level);
        }
        thr = sh.tau;
    }

    if (top_p < 1.0f) {
        for (int level = 0; level < 3; level++) {
            smp_clear(sh);
            __syncthreads();
            const unsigned prefix = sh.cut;
            for (int i = tid; i < V; i += SMP_THREADS) {
                float l;
                unsigned k;
                if (smp_tok(xr, i, inv_t, l, k) && k >= thr && smp_match(k, prefix, level))
                    atomicAdd(&sh.hist[smp_digit(k, level)], (smp_u64)fr_smp_weight(l, m));
            }
            __syncthreads();
            smp_pick_mass(sh, level, top_p);
        }
        thr = sh.cut > thr ? sh.cut : thr;
    }

    /* the draw, level 1: kept weight of each warp's contiguous segment */
    const int seg_len = (V + SMP_WARPS - 1) / SMP_WARPS;
    {
        const int s0 = warp * seg_len, s1 = min(V, s0 + seg_len);
        smp_u64 acc = 0;
        for (int i = s0 + lane; i < s1; i += 32)
            acc += smp_kept(xr, i, inv_t, m, thr, wmin);
        acc = smp_warp_sum(acc);
        if (lane == 0) sh.wsum[warp] = acc;
    }
    __syncthreads();
    if (tid == 0) {
        smp_u64 z = 0;
        for (int w = 0; w < SMP_WARPS; w++)
            z += sh.wsum[w];
        const smp_u64 r = fr_smp_mulhi(sh.rnd, z); /* z >= 2^40: the top token is kept */
        smp_u64 run = 0;
        int seg = 0;
        for (; seg < SMP_WARPS - 1 && r >= run + sh.wsum[seg]; seg++)
            run += sh.wsum[seg];
        sh.seg = seg;
        sh.r2 = r - run;
        *out = -1; /* replaced below; visible as an invalid id if that ever failed */
    }
    __syncthreads();

    /* level 2: that segment in 1024 contiguous chunks, scanned in index order */
    const int seg = sh.seg;
    const smp_u64 r2 = sh.r2;
    const int s0 = seg * seg_len, s1 = min(V, s0 + seg_len);
    const int chunk = (s1 - s0 + SMP_THREADS - 1) / SMP_THREADS;
    const int c0 = min(s1, s0 + tid * chunk), c1 = min(s1, c0 + chunk);
    smp_u64 mine = 0;
    for (int i = c0; i < c1; i++)
        mine += smp_kept(xr, i, inv_t, m, thr, wmin);
    smp_u64 total;
    const smp_u64 ex = smp_block_scan(mine, sh.red, &total);
    if (ex <= r2 && r2 < ex + mine) {
        smp_u64 cum = ex;
        for (int i = c0; i < c1; i++) {
            cum += smp_kept(xr, i, inv_t, m, thr, wmin);
            if (cum > r2) {
                *out = i;
                break;
            }
        }
    }
}

__global__ void __launch_bounds__(SMP_THREADS)
    fr_cu_sample_kernel(const float *__restrict__ x, int64_t ldx, int V, int *__restrict__ out,
                        fr_sample_state *state, int greedy, float inv_t, int top_k, float top_p,
                        smp_u64 wmin) {
    __shared__ smp_shared sh;
    const int64_t row = blockIdx.x;
    smp_u64 counter = 0;
    if (threadIdx.x == 0) {
        /* written by earlier launches (or the host): read through L2, never a stale L1 line */
        const smp_u64 seed = __ldcg((const smp_u64 *)&state->seed);
        counter = __ldcg((const smp_u64 *)&state->counter);
        sh.rnd = fr_smp_random(seed, counter, row);
        sh.need = top_k > 0 ? (smp_u64)top_k : 0;
        sh.above = 0;
        sh.P = 1;
        sh.tau = 0;
        sh.cut = 0;
        sh.seg = 0;
        sh.r2 = 0;
    }
    smp_clear(sh);
    __syncthreads();
    const float *xr = x + row * ldx;
    if (greedy)
        smp_greedy(sh, xr, V, out + row);
    else
        smp_sample_row(sh, xr, V, out + row, inv_t, top_k, top_p, wmin);
    /* The last block to finish advances the counter: every block read it before counting
     * itself done, so none can see the new value in this call. */
    if (threadIdx.x == 0) {
        __threadfence();
        const unsigned prev = atomicAdd(&state->done, 1u);
        if (prev == gridDim.x - 1) {
            state->counter = counter + 1;
            state->done = 0;
            __threadfence();
        }
    }
}

fr_status fr_cuda_sample(void *ctx, const fr_tensor *logits, const fr_sample_params *p,
                         fr_tensor *state, fr_tensor *out, fr_error *err) {
    fr_cuda_ctx *c = (fr_cuda_ctx *)ctx;
    fr_status s = fr_cu_enter(c, err, "sample");
    if (s) return s;
    const int64_t T = logits->shape[0], V = logits->shape[1];
    const bool greedy = !(p->temperature > 0);
    /* computed here on the host, exactly as the CPU backend computes them */
    const float inv_t = greedy ? 0.0f : fr_smp_inv_temperature(p->temperature);
    const smp_u64 wmin = fr_smp_min_p_limit(p->min_p);
    fr_cu_sample_kernel<<<(unsigned)T, SMP_THREADS, 0, c->stream>>>(
        (const float *)fr_cu_ptr(logits), fr_cu_estride(logits, 0), (int)V, (int *)fr_cu_ptr(out),
        (fr_sample_state *)fr_cu_ptr(state), greedy ? 1 : 0, inv_t, p->top_k, p->top_p, wmin);
    return fr_cu_launched(err, "sample");
}
