/* CUDA backend internals shared by the op files in this folder (CUDA C++ only).
 *
 * Every op launches on the context's stream and never allocates or synchronizes, so a whole
 * decode step can be captured into one CUDA graph. Scratch memory (cuBLASLt workspace, the
 * weight-conversion buffer for prefill GEMMs, split-K attention partials) is allocated once when
 * the context is created. */
#ifndef FR_KERNELS_CUDA_BACKEND_H
#define FR_KERNELS_CUDA_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

extern "C" {
#include "core/error.h"
#include "core/log.h"
#include "kernels/backend.h"
}

typedef struct fr_cuda_ctx {
    int device;
    int n_sm;
    size_t smem_optin; /* largest dynamic shared memory a block may opt into */
    cudaStream_t stream;
    bool capturing;
    cublasLtHandle_t lt;
    void *lt_ws; /* cuBLASLt workspace */
    size_t lt_ws_size;
    void *wconv; /* prefill: weight rows converted to the GEMM's input type, chunk by chunk */
    size_t wconv_size;
    struct fr_cu_lt_cache *lt_cache; /* cuBLASLt plans by problem shape (matmul.cu) */
    float *attn_part;                /* split-K attention partials: [T, H, splits, D + 2] */
    size_t attn_part_size;
    bool attn_mma; /* prefill attention may use the tensor-core kernel (attention_mma.cu) */
    fr_quant_act quant_act; /* activations of quantized decode GEMVs (matmul_quant.cu) */
    bool pdl;               /* GEMVs use programmatic dependent launch (sm_90+) */
    int8_t *xq;             /* those activations quantized: [M, K] int8 ... */
    float *xq_scale;        /* ... and one scale per 32 of them */
    int8_t *xq_blk;         /* the same values laid out as q8_0 blocks (two zero bytes, then the
                               32 values; xq_size / 32 * 34 bytes), for the q8_0 chunk GEMV */
    int q80_unroll;   /* chunks in flight per lane in that GEMV: 5, or FR_CUDA_Q80_U=4; 0 = off */
    size_t xq_size;   /* capacity of xq in elements (xq_scale holds xq_size / 32) */
    fr_backend *self; /* freed with the context */
} fr_cuda_ctx;

/* ---- error helpers ---- */

/* Turns a CUDA error into FR_ERR_BACKEND naming the op. */
static inline fr_status fr_cu_fail(fr_error *err, const char *op, cudaError_t e) {
    return fr_error_set(err, FR_ERR_BACKEND, "cuda %s: %s (%s)", op, cudaGetErrorString(e),
                        cudaGetErrorName(e));
}

/* Checks the launch that just happened (configuration errors surface here; faults inside a
 * kernel surface at the next sync). Does not synchronize, so it is legal during capture. */
static inline fr_status fr_cu_launched(fr_error *err, const char *op) {
    cudaError_t e = cudaGetLastError();
    return e == cudaSuccess ? FR_OK : fr_cu_fail(err, op, e);
}

/* Makes the context's device current (a no-op when it already is). */
static inline fr_status fr_cu_enter(fr_cuda_ctx *c, fr_error *err, const char *op) {
    int cur = -1;
    cudaError_t e = cudaGetDevice(&cur);
    if (e == cudaSuccess && cur != c->device) e = cudaSetDevice(c->device);
    return e == cudaSuccess ? FR_OK : fr_cu_fail(err, op, e);
}

/* ---- tensor access ---- */

static inline char *fr_cu_ptr(const fr_tensor *t) {
    return (char *)t->buf->data + t->offset;
}
static inline int fr_cu_esize(fr_dtype d) {
    return fr_dtype_get(d)->block_bytes;
}
/* Stride of dim `d` in elements (plain types only). */
static inline int64_t fr_cu_estride(const fr_tensor *t, int d) {
    return t->stride[d] / fr_cu_esize(t->dtype);
}
/* Whether vector loads of `bytes` fit rows starting at p, ld_bytes apart. */
static inline bool fr_cu_aligned(const void *p, int64_t ld_bytes, int bytes) {
    return (uintptr_t)p % (uintptr_t)bytes == 0 && ld_bytes % bytes == 0;
}
/* The same for a tensor's rows (dim 0; a 1-D tensor is one row). */
static inline bool fr_cu_rows_aligned(const fr_tensor *t, int bytes) {
    return fr_cu_aligned(fr_cu_ptr(t), t->ndim > 1 ? t->stride[0] : 0, bytes);
}
static inline unsigned fr_cu_blocks(int64_t n, int per) {
    return (unsigned)((n + per - 1) / per);
}

/* ---- device-side element conversion: activations are f32, f16 or bf16, chosen at run time
 * for cheap ops (one switch per element is nothing next to the memory traffic) and by template
 * in the hot loops of matmul and attention. ---- */

__device__ __forceinline__ float fr_cu_to_f32(float v) {
    return v;
}
__device__ __forceinline__ float fr_cu_to_f32(__half v) {
    return __half2float(v);
}
__device__ __forceinline__ float fr_cu_to_f32(__nv_bfloat16 v) {
    return __bfloat162float(v);
}

template <typename T> __device__ __forceinline__ T fr_cu_from_f32(float v);
template <> __device__ __forceinline__ float fr_cu_from_f32<float>(float v) {
    return v;
}
template <> __device__ __forceinline__ __half fr_cu_from_f32<__half>(float v) {
    return __float2half_rn(v);
}
template <> __device__ __forceinline__ __nv_bfloat16 fr_cu_from_f32<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

__device__ __forceinline__ float fr_cu_load(const void *p, int64_t i, int dtype) {
    switch (dtype) {
    case FR_DTYPE_F16:
        return __half2float(((const __half *)p)[i]);
    case FR_DTYPE_BF16:
        return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    default:
        return ((const float *)p)[i];
    }
}

__device__ __forceinline__ void fr_cu_store(void *p, int64_t i, int dtype, float v) {
    switch (dtype) {
    case FR_DTYPE_F16:
        ((__half *)p)[i] = __float2half_rn(v);
        break;
    case FR_DTYPE_BF16:
        ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
        break;
    default:
        ((float *)p)[i] = v;
        break;
    }
}

/* Rounds v as a store of `dtype` would (so later math sees the stored value). */
__device__ __forceinline__ float fr_cu_round(float v, int dtype) {
    switch (dtype) {
    case FR_DTYPE_F16:
        return __half2float(__float2half_rn(v));
    case FR_DTYPE_BF16:
        return __bfloat162float(__float2bfloat16_rn(v));
    default:
        return v;
    }
}

/* 16 bytes of a plain type, unpacked to E floats (weights in GEMV, KV tiles in attention). */

template <typename W> struct fr_cu_w16;
template <> struct fr_cu_w16<float> {
    static constexpr int E = 4;
    static __device__ __forceinline__ void cvt(const uint4 &u, float *f) {
        f[0] = __uint_as_float(u.x);
        f[1] = __uint_as_float(u.y);
        f[2] = __uint_as_float(u.z);
        f[3] = __uint_as_float(u.w);
    }
};
template <> struct fr_cu_w16<__nv_bfloat16> {
    static constexpr int E = 8;
    static __device__ __forceinline__ void cvt(const uint4 &u, float *f) {
        const unsigned v[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            f[2 * i] = __uint_as_float(v[i] << 16); /* low half is the earlier element */
            f[2 * i + 1] = __uint_as_float(v[i] & 0xffff0000u);
        }
    }
};
template <> struct fr_cu_w16<__half> {
    static constexpr int E = 8;
    static __device__ __forceinline__ void cvt(const uint4 &u, float *f) {
        const unsigned v[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            __half2 h;
            memcpy(&h, &v[i], 4);
            const float2 p = __half22float2(h);
            f[2 * i] = p.x;
            f[2 * i + 1] = p.y;
        }
    }
};

__device__ __forceinline__ float fr_cu_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float fr_cu_warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over a block of up to 1024 threads; every thread gets the result. `red` holds 32 floats. */
__device__ __forceinline__ float fr_cu_block_sum(float v, float *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = fr_cu_warp_sum(v);
    __syncthreads(); /* red may still be read from a previous call */
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : 0.0f;
    return fr_cu_warp_sum(v);
}

/* ---- programmatic dependent launch (sm_90) ----
 * A decode step is a chain of short kernels; normally each starts only when the previous one
 * has finished, and the launch and ramp-up of every link cost microseconds. The kernels of the
 * chain are launched with programmatic stream serialization (fr_cu_launch_pdl), so a kernel may
 * start once the one before it has called fr_cu_pdl_trigger (small kernels trigger at once,
 * GEMVs after their main loop). A GEMV then fetches its first weights (which nothing in the
 * chain writes) and waits in fr_cu_pdl_wait until the previous kernel has completed and its
 * writes are visible; the small kernels wait first thing. No kernel touches global memory that
 * another writes before its wait, so the overlap cannot race, and by induction every earlier
 * kernel is complete too. Both calls are no-ops for an ordinary launch and on older GPUs;
 * FR_CUDA_PDL=0 at context creation turns the attribute off (to measure what it buys). */
__device__ __forceinline__ void fr_cu_pdl_wait(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void fr_cu_pdl_trigger(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
/* Pulls [p, p + n) toward L2 (one line per lane and 128 bytes) while a kernel waits. GEMV warps
 * pull the first 4 KB of their row: 8 or 16 KB measured 0.88x / 0.87x tg on 8B BF16 (the
 * prefetched rows overflow L2 before they are read) and 1.00x / 0.98x on Q8_0. */
__device__ __forceinline__ void fr_cu_prefetch_l2(const void *p, int64_t n, int lane) {
    for (int64_t o = (int64_t)lane * 128; o < n; o += 32 * 128)
        asm volatile("prefetch.global.L2 [%0];" ::"l"((const char *)p + o));
}

template <typename... KArgs, typename... Args>
static inline cudaError_t fr_cu_launch_pdl(const fr_cuda_ctx *c, void (*kernel)(KArgs...),
                                           dim3 grid, dim3 block, size_t smem, Args &&...args) {
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = c->pdl ? 1 : 0;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = c->stream;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    return cudaLaunchKernelEx(&cfg, kernel, static_cast<KArgs>(args)...);
}

/* ---- the output rows of one decode GEMV launch ----
 * Up to three weight matrices that share the input x (the Q, K and V projections), each with its
 * own bias and output; or (glu) a gate/up pair whose two results for row n become one output
 * silu(gate) * up, so the pair is a single launch with no gate/up round trip through memory.
 * Rows are numbered across the matrices: [0, end[0]) is matrix 0, [end[0], end[1]) matrix 1, ...
 * Every matrix has the same dtype (w_dtype) and K; every output the same dtype. */
#define FR_CU_ROWSET_MAX 3
typedef struct fr_cu_rowset {
    const char *w[FR_CU_ROWSET_MAX];
    int64_t ldw[FR_CU_ROWSET_MAX]; /* bytes */
    const float *bias[FR_CU_ROWSET_MAX];
    char *out[FR_CU_ROWSET_MAX];
    int64_t ldo[FR_CU_ROWSET_MAX]; /* elements */
    int64_t end[FR_CU_ROWSET_MAX];
    int nseg;
    int w_dtype, o_dtype;
    bool glu; /* nseg == 2, equal row counts; results go to out[0] */
} fr_cu_rowset;

static inline fr_cu_rowset fr_cu_rowset_of(int n, const fr_tensor *const *w,
                                           const fr_tensor *const *bias, fr_tensor *const *out,
                                           bool glu) {
    fr_cu_rowset o;
    memset(&o, 0, sizeof o);
    o.nseg = n;
    o.glu = glu;
    o.w_dtype = w[0]->dtype;
    o.o_dtype = out[0]->dtype;
    int64_t rows = 0;
    for (int s = 0; s < n; s++) {
        o.w[s] = fr_cu_ptr(w[s]);
        o.ldw[s] = w[s]->stride[0];
        o.bias[s] = bias && bias[s] ? (const float *)fr_cu_ptr(bias[s]) : NULL;
        o.out[s] = fr_cu_ptr(glu ? out[0] : out[s]);
        o.ldo[s] = fr_cu_estride(glu ? out[0] : out[s], 0);
        rows += w[s]->shape[0];
        o.end[s] = rows;
    }
    return o;
}

/* Work items of a launch: rows, or gate/up pairs. */
__host__ __device__ __forceinline__ int64_t fr_cu_rowset_items(const fr_cu_rowset &o) {
    return o.glu ? o.end[0] : o.end[o.nseg - 1];
}
__device__ __forceinline__ int fr_cu_rowset_seg(const fr_cu_rowset &o, int64_t g) {
    return (o.nseg > 1 && g >= o.end[0]) + (o.nseg > 2 && g >= o.end[1]);
}
__device__ __forceinline__ int64_t fr_cu_rowset_start(const fr_cu_rowset &o, int s) {
    return s == 0 ? 0 : (s == 1 ? o.end[0] : o.end[1]);
}
/* Row g of the set, or (seg >= 0) row g of matrix seg. */
__device__ __forceinline__ const char *fr_cu_rowset_row(const fr_cu_rowset &o, int seg, int64_t g) {
    const int s = seg >= 0 ? seg : fr_cu_rowset_seg(o, g);
    const int64_t n = seg >= 0 ? g : g - fr_cu_rowset_start(o, s);
    return o.w[s] + n * o.ldw[s];
}

/* Reduces a warp's accumulators acc[r][m] (R rows from item g0 on; with GLU, the gate and up
 * rows of pair g0) and stores them with their bias: lane m writes activation row m. */
template <int R, int MM, bool GLU>
__device__ __forceinline__ void fr_cu_rowset_store(const fr_cu_rowset &o, int64_t g0, int64_t items,
                                                   int M, int lane, float (&acc)[R][MM]) {
    if constexpr (GLU) {
        const float bg = o.bias[0] ? o.bias[0][g0] : 0.0f, bu = o.bias[1] ? o.bias[1][g0] : 0.0f;
#pragma unroll
        for (int m = 0; m < MM; m++) {
            const float g = fr_cu_warp_sum(acc[0][m]) + bg, u = fr_cu_warp_sum(acc[R - 1][m]) + bu;
            if (m < M && lane == m)
                fr_cu_store(o.out[0], m * o.ldo[0] + g0, o.o_dtype, g / (1.0f + __expf(-g)) * u);
        }
    } else {
#pragma unroll
        for (int r = 0; r < R; r++) {
            const int64_t g = g0 + r;
            const bool valid = g < items;
            const int s = fr_cu_rowset_seg(o, g);
            const int64_t n = g - fr_cu_rowset_start(o, s);
            const float b = valid && o.bias[s] ? o.bias[s][n] : 0.0f;
#pragma unroll
            for (int m = 0; m < MM; m++) {
                const float sum = fr_cu_warp_sum(acc[r][m]); /* every lane holds the total */
                if (m < M && lane == m && valid)
                    fr_cu_store(o.out[s], m * o.ldo[s] + n, o.o_dtype, sum + b);
            }
        }
    }
}

/* ---- split-K for decode GEMVs ----
 * A GEMV with few output rows (N = 1024 in a 0.6B model) gives one warp per row too few warps
 * to keep the memory system busy; then ks warps (2, 4 or 8) of a block share a row, each
 * taking every ks-th stretch of K, and their partial sums meet in shared memory. ks grows
 * while the launch has fewer than 16 warps per SM and every lane keeps at least two loads
 * (`loads`: a lane's loads over the whole row with ks = 1). */
static inline int fr_cu_splitk(const fr_cuda_ctx *c, int64_t warps, int64_t loads) {
    int ks = 1;
    while (ks < 8 && warps * ks < (int64_t)c->n_sm * 16 && loads >= 4 * ks)
        ks *= 2;
    return ks;
}

/* Sums the ks partial accumulators of each row into the row's first warp (its lane 0; other
 * lanes and warps end with zeros, so a following warp sum gives the total). Every warp of the
 * block must call it (it holds a barrier); red has room for 8 warps x R x MM floats. */
template <int R, int MM>
__device__ __forceinline__ void fr_cu_splitk_reduce(float (&acc)[R][MM], int ks, int warp, int lane,
                                                    float *red) {
    if (ks == 1) return;
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int m = 0; m < MM; m++) {
            const float s = fr_cu_warp_sum(acc[r][m]);
            if (lane == 0) red[(warp * R + r) * MM + m] = s;
        }
    __syncthreads();
    const int lead = warp - warp % ks;
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int m = 0; m < MM; m++) {
            float t = 0.0f;
            if (warp == lead && lane == 0)
                for (int p = 0; p < ks; p++)
                    t += red[((lead + p) * R + r) * MM + m];
            acc[r][m] = t;
        }
}

/* ---- op entry points (one file per op family) ---- */

fr_status fr_cuda_embedding(void *ctx, const fr_tensor *table, const fr_tensor *ids, fr_tensor *out,
                            fr_error *err);
fr_status fr_cuda_rms_norm(void *ctx, const fr_tensor *x, const fr_tensor *w, float eps,
                           fr_tensor *out, fr_error *err);
fr_status fr_cuda_residual_norm(void *ctx, const fr_tensor *residual, const fr_tensor *x,
                                const fr_tensor *layer_scale, const fr_tensor *norm_w, float eps,
                                fr_tensor *res_out, fr_tensor *norm_out, fr_error *err);
fr_status fr_cuda_matmul(void *ctx, const fr_tensor *x, const fr_tensor *w, const fr_tensor *bias,
                         fr_tensor *out, fr_error *err);
fr_status fr_cuda_matmul_multi(void *ctx, const fr_tensor *x, int n, const fr_tensor *const *w,
                               const fr_tensor *const *bias, fr_tensor *const *out, fr_error *err);
fr_status fr_cuda_matmul_glu(void *ctx, const fr_tensor *x, const fr_tensor *w_gate,
                             const fr_tensor *w_up, const fr_tensor *b_gate, const fr_tensor *b_up,
                             fr_tensor *gate, fr_tensor *up, fr_tensor *out, fr_error *err);
fr_status fr_cuda_qk_norm_rope(void *ctx, const fr_tensor *x, const fr_tensor *norm_w,
                               const fr_tensor *rope, const fr_tensor *pos, int mode, float eps,
                               fr_tensor *out, fr_error *err);
fr_status fr_cuda_kv_append(void *ctx, const fr_tensor *kv, const fr_tensor *pos, fr_tensor *cache,
                            fr_error *err);
fr_status fr_cuda_attn_prepare(void *ctx, const fr_tensor *q, const fr_tensor *k,
                               const fr_tensor *v, const fr_tensor *q_norm, const fr_tensor *k_norm,
                               const fr_tensor *rope, const fr_tensor *pos, int mode, float eps,
                               fr_tensor *q_out, fr_tensor *k_cache, fr_tensor *v_cache,
                               fr_error *err);
fr_status fr_cuda_attention(void *ctx, const fr_tensor *q, const fr_tensor *k_cache,
                            const fr_tensor *v_cache, const fr_tensor *pos,
                            const fr_attention_params *p, fr_tensor *out, fr_error *err);
fr_status fr_cuda_silu_mul(void *ctx, const fr_tensor *gate, const fr_tensor *up, fr_tensor *out,
                           fr_error *err);
fr_status fr_cuda_add(void *ctx, const fr_tensor *a, const fr_tensor *b, fr_tensor *out,
                      fr_error *err);
fr_status fr_cuda_scaled_add(void *ctx, const fr_tensor *a, const fr_tensor *b,
                             const fr_tensor *scale, fr_tensor *out, fr_error *err);
fr_status fr_cuda_argmax(void *ctx, const fr_tensor *x, fr_tensor *out, fr_error *err);
fr_status fr_cuda_sample(void *ctx, const fr_tensor *logits, const fr_sample_params *p,
                         fr_tensor *state, fr_tensor *out, fr_error *err);

/* Quantized weights: the decode GEMV (M <= 8), with 8-bit activations where the type and
 * quant_act allow (matmul_quant.cu), else with float activations dequantizing in registers
 * (fr_cuda_gemv_quantf, matmul_quantf.cu); and the row dequantizer feeding the prefill GEMM:
 * dst[r, :] = row n0 + r of w as ct (f32, f16 or bf16), rows packed densely (K elements each). */
fr_status fr_cuda_gemv_quant(fr_cuda_ctx *c, const fr_tensor *x, const fr_tensor *w,
                             const float *bias, fr_tensor *out, fr_error *err);
/* The 8-bit-activation GEMV over a whole row set in one launch, after quantizing x into the
 * context's xq unless *x_ready says an earlier launch of this x already did (then set);
 * FR_ERR_UNSUPPORTED, with nothing launched, when it cannot take it (type, alignment,
 * quant_act f32). */
fr_status fr_cuda_gemv_quant_rows(fr_cuda_ctx *c, const fr_tensor *x, const fr_cu_rowset &o,
                                  bool *x_ready, fr_error *err);
fr_status fr_cuda_gemv_quantf(fr_cuda_ctx *c, const fr_tensor *x, const fr_tensor *w,
                              const float *bias, fr_tensor *out, fr_error *err);
fr_status fr_cuda_dequant_rows(fr_cuda_ctx *c, const fr_tensor *w, int64_t n0, int64_t rows,
                               fr_dtype ct, void *dst, fr_error *err);

/* Frees matmul's cached cuBLASLt plans (at context destruction). */
void fr_cuda_matmul_release(fr_cuda_ctx *c);

/* Called once at context creation: raises shared-memory limits of kernels that need more than
 * the default 48 KB (must not happen during capture). */
fr_status fr_cuda_attention_init(fr_cuda_ctx *c, fr_error *err);

/* The tensor-core flash attention for prefill (attention_mma.cu): fr_cuda_attention offers it
 * every call first; FR_ERR_UNSUPPORTED, with nothing launched and err untouched, when it cannot
 * take the call (dtypes, D, too few tokens, alignment: see the file). Its init, called from
 * fr_cuda_attention_init, sets c->attn_mma once (sm_80+ and enough shared memory). */
fr_status fr_cuda_attention_mma(fr_cuda_ctx *c, const fr_tensor *q, const fr_tensor *k_cache,
                                const fr_tensor *v_cache, const fr_tensor *pos,
                                const fr_attention_params *p, fr_tensor *out, fr_error *err);
fr_status fr_cuda_attention_mma_init(fr_cuda_ctx *c, fr_error *err);

#endif
