/* qk_norm_rope: x [T,H,D] (rows may be strided, e.g. a slice of a fused QKV output) -> out
 * [H,T,D], with optional per-head RMSNorm (mode 1) and half-split RoPE (modes 1, 2) from a
 * [P,D] cos|sin table. One warp per (token, head). Positions live in device memory; one outside
 * [0, P) is clamped into the table so a bad id can never read out of bounds.
 * attn_prepare: qk_norm_rope of q, k, v and kv_append of k, v in one launch, through the same
 * per-row code. */
#include "kernels/cuda/cuda_backend.h"

typedef struct fr_cu_rope_args {
    const void *x;
    int64_t x_st, x_sh; /* element strides of x along T and H */
    int x_dtype;
    void *out;
    int64_t o_sh, o_st; /* element strides of out along H and T */
    int o_dtype;
    const float *norm_w;
    const float *rope;
    int64_t P;
    const int *pos;
    int mode;
    float eps;
    int64_t T, H, D;
} fr_cu_rope_args;

/* One head row, by one whole warp (the norm is a warp sum, so all 32 lanes must call it):
 * out[ob + i] = x[xb + i] copied (mode 0), or RMSNorm'd with norm_w (mode 1) and rotated by the
 * cos|sin row cs (modes 1, 2). qk_norm_rope and attn_prepare both run exactly this, which is
 * what makes the fused op give the unfused bits. */
/* The common case in vector form: D = 128, 16-bit x and out of one type, rows 8-byte aligned.
 * Lane l holds elements 4l .. 4l+3 (one 8-byte load); RoPE partners (i, i + 64) sit in lanes l
 * and l ^ 16, swapped with one shuffle per element. */
template <typename T>
__device__ __forceinline__ void fr_cu_rope_row128(const T *x, T *out, const float *norm_w,
                                                  const float *cs, int mode, float eps, int lane) {
    const uint2 raw = *(const uint2 *)(x + 4 * lane);
    float v[4];
    {
        T e[4];
        memcpy(e, &raw, 8);
#pragma unroll
        for (int i = 0; i < 4; i++)
            v[i] = fr_cu_to_f32(e[i]);
    }
    if (mode != FR_ROPE_MODE_TRANSPOSE) {
        float inv = 1.0f;
        if (mode == FR_ROPE_MODE_NORM_ROPE) {
            const float ss = fr_cu_warp_sum(v[0] * v[0] + v[1] * v[1] + v[2] * v[2] + v[3] * v[3]);
            inv = rsqrtf(ss / 128.0f + eps);
            /* (x * inv) * w as the scalar path; weights may sit at any 4-byte offset */
#pragma unroll
            for (int i = 0; i < 4; i++)
                v[i] = v[i] * inv * norm_w[4 * lane + i];
        }
        const bool low = lane < 16; /* first half: x1 = mine, x2 = partner's */
        const int i0 = 4 * (lane & 15);
        /* the table is its own dense [P, 128] allocation: rows are 16-byte aligned */
        const float4 co = *(const float4 *)(cs + i0), si = *(const float4 *)(cs + 64 + i0);
        const float c4[4] = {co.x, co.y, co.z, co.w}, s4[4] = {si.x, si.y, si.z, si.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const float p = __shfl_xor_sync(0xffffffffu, v[i], 16);
            v[i] = low ? v[i] * c4[i] - p * s4[i] : v[i] * c4[i] + p * s4[i];
        }
    }
    T e[4];
#pragma unroll
    for (int i = 0; i < 4; i++)
        e[i] = fr_cu_from_f32<T>(v[i]);
    uint2 o;
    memcpy(&o, e, 8);
    *(uint2 *)(out + 4 * lane) = o;
}

__device__ __forceinline__ void fr_cu_rope_row(const void *x, int64_t xb, int x_dtype, void *out,
                                               int64_t ob, int o_dtype, const float *norm_w,
                                               const float *cs, int mode, float eps, int64_t D,
                                               int lane) {
    if (D == 128 && x_dtype == o_dtype && (x_dtype == FR_DTYPE_BF16 || x_dtype == FR_DTYPE_F16) &&
        (((uintptr_t)x + 2 * xb) | ((uintptr_t)out + 2 * ob)) % 8 == 0 &&
        (mode == FR_ROPE_MODE_TRANSPOSE || (uintptr_t)cs % 16 == 0)) {
        if (x_dtype == FR_DTYPE_BF16)
            fr_cu_rope_row128((const __nv_bfloat16 *)x + xb, (__nv_bfloat16 *)out + ob, norm_w, cs,
                              mode, eps, lane);
        else
            fr_cu_rope_row128((const __half *)x + xb, (__half *)out + ob, norm_w, cs, mode, eps,
                              lane);
        return;
    }
    if (mode == FR_ROPE_MODE_TRANSPOSE) {
        for (int64_t d = lane; d < D; d += 32)
            fr_cu_store(out, ob + d, o_dtype, fr_cu_load(x, xb + d, x_dtype));
        return;
    }
    float inv = 1.0f;
    if (mode == FR_ROPE_MODE_NORM_ROPE) {
        float ss = 0.0f;
        for (int64_t d = lane; d < D; d += 32) {
            float v = fr_cu_load(x, xb + d, x_dtype);
            ss += v * v;
        }
        ss = fr_cu_warp_sum(ss);
        inv = rsqrtf(ss / (float)D + eps);
    }
    const int64_t half = D / 2;
    for (int64_t i = lane; i < half; i += 32) {
        float x1 = fr_cu_load(x, xb + i, x_dtype) * inv;
        float x2 = fr_cu_load(x, xb + i + half, x_dtype) * inv;
        if (mode == FR_ROPE_MODE_NORM_ROPE) {
            x1 *= norm_w[i];
            x2 *= norm_w[i + half];
        }
        const float co = cs[i], si = cs[half + i];
        fr_cu_store(out, ob + i, o_dtype, x1 * co - x2 * si);
        fr_cu_store(out, ob + i + half, o_dtype, x2 * co + x1 * si);
    }
}

/* Row of the rope table for a position, clamped into [0, P) (a bad position must not read out
 * of bounds, and there is no host sync to report it). */
__device__ __forceinline__ const float *fr_cu_rope_cs(const float *rope, int64_t P, int64_t D,
                                                      int64_t p) {
    p = p < 0 ? 0 : (p >= P ? P - 1 : p);
    return rope + p * D;
}

__global__ void fr_cu_rope_kernel(fr_cu_rope_args a) {
    const int lane = threadIdx.x & 31;
    const int64_t item = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (item >= a.T * a.H) return;
    const int64_t t = item / a.H, h = item % a.H;
    const float *cs =
        a.mode == FR_ROPE_MODE_TRANSPOSE ? NULL : fr_cu_rope_cs(a.rope, a.P, a.D, a.pos[t]);
    fr_cu_rope_row(a.x, t * a.x_st + h * a.x_sh, a.x_dtype, a.out, h * a.o_sh + t * a.o_st,
                   a.o_dtype, a.norm_w, cs, a.mode, a.eps, a.D, lane);
}

fr_status fr_cuda_qk_norm_rope(void *vctx, const fr_tensor *x, const fr_tensor *norm_w,
                               const fr_tensor *rope, const fr_tensor *pos, int mode, float eps,
                               fr_tensor *out, fr_error *err) {
    fr_cuda_ctx *c = (fr_cuda_ctx *)vctx;
    fr_status s = fr_cu_enter(c, err, "qk_norm_rope");
    if (s) return s;
    fr_cu_rope_args a;
    memset(&a, 0, sizeof a);
    a.x = fr_cu_ptr(x);
    a.x_st = fr_cu_estride(x, 0);
    a.x_sh = fr_cu_estride(x, 1);
    a.x_dtype = x->dtype;
    a.out = fr_cu_ptr(out);
    a.o_sh = fr_cu_estride(out, 0);
    a.o_st = fr_cu_estride(out, 1);
    a.o_dtype = out->dtype;
    a.mode = mode;
    a.eps = eps;
    a.T = x->shape[0];
    a.H = x->shape[1];
    a.D = x->shape[2];
    if (mode != FR_ROPE_MODE_TRANSPOSE) {
        a.rope = (const float *)fr_cu_ptr(rope);
        a.P = rope->shape[0];
        a.pos = (const int *)fr_cu_ptr(pos);
        if (fr_cu_estride(rope, 0) != a.D)
            return fr_error_set(err, FR_ERR_UNSUPPORTED,
                                "cuda qk_norm_rope: rope table rows must be dense [P,D]");
    }
    if (mode == FR_ROPE_MODE_NORM_ROPE) a.norm_w = (const float *)fr_cu_ptr(norm_w);
    const int warps = 4;
    fr_cu_rope_kernel<<<fr_cu_blocks(a.T * a.H, warps), warps * 32, 0, c->stream>>>(a);
    return fr_cu_launched(err, "qk_norm_rope");
}

/* ------------------------------------------------------------------ attn_prepare */

typedef struct fr_cu_prep_args {
    const void *q, *k, *v;
    int64_t q_st, q_sh, k_st, k_sh, v_st, v_sh; /* element strides along T and H */
    int q_dtype, k_dtype, v_dtype;
    void *q_out;
    int64_t qo_sh, qo_st; /* element strides of q_out along H and T */
    int qo_dtype;
    void *k_cache, *v_cache;
    int64_t kc_sh, kc_sl, vc_sh, vc_sl; /* element strides of the caches along H and L */
    int kc_dtype, vc_dtype;
    int64_t L;
    const float *q_norm, *k_norm, *rope;
    int64_t P;
    const int *pos;
    int mode;
    float eps;
    int64_t T, H, Hkv, D;
} fr_cu_prep_args;

/* One warp per (token, head) over H query heads, then Hkv key heads, then Hkv value heads (all
 * of a token's heads are neighbours, so the warps of a block read one fused QKV row). Key and
 * value warps whose position lies outside [0, L) write nothing, as kv_append skips them. */
__global__ void fr_cu_attn_prepare_kernel(fr_cu_prep_args a) {
    fr_cu_pdl_trigger(); /* attention may launch; it waits for us */
    fr_cu_pdl_wait();    /* launched early (PDL): the QKV projection must be done */
    const int lane = threadIdx.x & 31;
    /* 32-bit index math (the host checks T * nh < 2^31): a 64-bit division costs more than the
     * rest of a head row */
    const unsigned nh = (unsigned)(a.H + 2 * a.Hkv);
    const unsigned item = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (item >= (unsigned)a.T * nh) return;
    const int64_t t = item / nh, p = a.pos[t];
    int64_t j = item % nh;
    const float *cs = fr_cu_rope_cs(a.rope, a.P, a.D, p);
    if (j < a.H) {
        fr_cu_rope_row(a.q, t * a.q_st + j * a.q_sh, a.q_dtype, a.q_out, j * a.qo_sh + t * a.qo_st,
                       a.qo_dtype, a.q_norm, cs, a.mode, a.eps, a.D, lane);
        return;
    }
    if (p < 0 || p >= a.L) return; /* the whole warp leaves: t is the same for all its lanes */
    j -= a.H;
    if (j < a.Hkv) {
        fr_cu_rope_row(a.k, t * a.k_st + j * a.k_sh, a.k_dtype, a.k_cache,
                       j * a.kc_sh + p * a.kc_sl, a.kc_dtype, a.k_norm, cs, a.mode, a.eps, a.D,
                       lane);
        return;
    }
    j -= a.Hkv;
    fr_cu_rope_row(a.v, t * a.v_st + j * a.v_sh, a.v_dtype, a.v_cache, j * a.vc_sh + p * a.vc_sl,
                   a.vc_dtype, NULL, NULL, FR_ROPE_MODE_TRANSPOSE, 0.0f, a.D, lane);
}

fr_status fr_cuda_attn_prepare(void *vctx, const fr_tensor *q, const fr_tensor *k,
                               const fr_tensor *v, const fr_tensor *q_norm, const fr_tensor *k_norm,
                               const fr_tensor *rope, const fr_tensor *pos, int mode, float eps,
                               fr_tensor *q_out, fr_tensor *k_cache, fr_tensor *v_cache,
                               fr_error *err) {
    fr_cuda_ctx *c = (fr_cuda_ctx *)vctx;
    fr_status s = fr_cu_enter(c, err, "attn_prepare");
    if (s) return s;
    fr_cu_prep_args a;
    memset(&a, 0, sizeof a);
    a.q = fr_cu_ptr(q);
    a.q_st = fr_cu_estride(q, 0);
    a.q_sh = fr_cu_estride(q, 1);
    a.q_dtype = q->dtype;
    a.k = fr_cu_ptr(k);
    a.k_st = fr_cu_estride(k, 0);
    a.k_sh = fr_cu_estride(k, 1);
    a.k_dtype = k->dtype;
    a.v = fr_cu_ptr(v);
    a.v_st = fr_cu_estride(v, 0);
    a.v_sh = fr_cu_estride(v, 1);
    a.v_dtype = v->dtype;
    a.q_out = fr_cu_ptr(q_out);
    a.qo_sh = fr_cu_estride(q_out, 0);
    a.qo_st = fr_cu_estride(q_out, 1);
    a.qo_dtype = q_out->dtype;
    a.k_cache = fr_cu_ptr(k_cache);
    a.kc_sh = fr_cu_estride(k_cache, 0);
    a.kc_sl = fr_cu_estride(k_cache, 1);
    a.kc_dtype = k_cache->dtype;
    a.v_cache = fr_cu_ptr(v_cache);
    a.vc_sh = fr_cu_estride(v_cache, 0);
    a.vc_sl = fr_cu_estride(v_cache, 1);
    a.vc_dtype = v_cache->dtype;
    a.L = k_cache->shape[1];
    a.rope = (const float *)fr_cu_ptr(rope);
    a.P = rope->shape[0];
    a.pos = (const int *)fr_cu_ptr(pos);
    a.mode = mode;
    a.eps = eps;
    a.T = q->shape[0];
    a.H = q->shape[1];
    a.Hkv = k->shape[1];
    a.D = q->shape[2];
    if (fr_cu_estride(rope, 0) != a.D)
        return fr_error_set(err, FR_ERR_UNSUPPORTED,
                            "cuda attn_prepare: rope table rows must be dense [P,D]");
    if (mode == FR_ROPE_MODE_NORM_ROPE) {
        a.q_norm = (const float *)fr_cu_ptr(q_norm);
        a.k_norm = (const float *)fr_cu_ptr(k_norm);
    }
    const int warps = 4;
    const int64_t items = a.T * (a.H + 2 * a.Hkv);
    if (items >= 0x7fffffff)
        return fr_error_set(err, FR_ERR_UNSUPPORTED, "cuda attn_prepare: %lld head rows",
                            (long long)items);
    fr_cu_launch_pdl(c, fr_cu_attn_prepare_kernel, dim3(fr_cu_blocks(items, warps)),
                     dim3(warps * 32), 0, a);
    return fr_cu_launched(err, "attn_prepare");
}
