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
fr_status fr_cuda_qk_norm_rope(void *ctx, const fr_tensor *x, const fr_tensor *norm_w,
                               const fr_tensor *rope, const fr_tensor *pos, int mode, float eps,
                               fr_tensor *out, fr_error *err);
fr_status fr_cuda_kv_append(void *ctx, const fr_tensor *kv, const fr_tensor *pos, fr_tensor *cache,
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

/* Quantized weights (matmul_quant.cu): the decode GEMV (M <= 8) that dequantizes in registers,
 * and the row dequantizer feeding the prefill GEMM: dst[r, :] = row n0 + r of w as ct (f32, f16
 * or bf16), rows packed densely (K elements each). */
fr_status fr_cuda_gemv_quant(fr_cuda_ctx *c, const fr_tensor *x, const fr_tensor *w,
                             const float *bias, fr_tensor *out, fr_error *err);
fr_status fr_cuda_dequant_rows(fr_cuda_ctx *c, const fr_tensor *w, int64_t n0, int64_t rows,
                               fr_dtype ct, void *dst, fr_error *err);

/* Frees matmul's cached cuBLASLt plans (at context destruction). */
void fr_cuda_matmul_release(fr_cuda_ctx *c);

/* Called once at context creation: raises shared-memory limits of kernels that need more than
 * the default 48 KB (must not happen during capture). */
fr_status fr_cuda_attention_init(fr_cuda_ctx *c, fr_error *err);

#endif
