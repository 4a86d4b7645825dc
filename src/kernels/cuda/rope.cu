/* qk_norm_rope: x [T,H,D] (rows may be strided, e.g. a slice of a fused QKV output) -> out
 * [H,T,D], with optional per-head RMSNorm (mode 1) and half-split RoPE (modes 1, 2) from a
 * [P,D] cos|sin table. One warp per (token, head). Positions live in device memory; one outside
 * [0, P) is clamped into the table so a bad id can never read out of bounds. */
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

__global__ void fr_cu_rope_kernel(fr_cu_rope_args a) {
    const int lane = threadIdx.x & 31;
    const int64_t item = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (item >= a.T * a.H) return;
    const int64_t t = item / a.H, h = item % a.H;
    const int64_t xb = t * a.x_st + h * a.x_sh, ob = h * a.o_sh + t * a.o_st;
    if (a.mode == FR_ROPE_MODE_TRANSPOSE) {
        for (int64_t d = lane; d < a.D; d += 32)
            fr_cu_store(a.out, ob + d, a.o_dtype, fr_cu_load(a.x, xb + d, a.x_dtype));
        return;
    }
    float inv = 1.0f;
    if (a.mode == FR_ROPE_MODE_NORM_ROPE) {
        float ss = 0.0f;
        for (int64_t d = lane; d < a.D; d += 32) {
            float v = fr_cu_load(a.x, xb + d, a.x_dtype);
            ss += v * v;
        }
        ss = fr_cu_warp_sum(ss);
        inv = rsqrtf(ss / (float)a.D + a.eps);
    }
    int64_t p = a.pos[t];
    p = p < 0 ? 0 : (p >= a.P ? a.P - 1 : p);
    const float *cs = a.rope + p * a.D;
    const int64_t half = a.D / 2;
    for (int64_t i = lane; i < half; i += 32) {
        float x1 = fr_cu_load(a.x, xb + i, a.x_dtype) * inv;
        float x2 = fr_cu_load(a.x, xb + i + half, a.x_dtype) * inv;
        if (a.mode == FR_ROPE_MODE_NORM_ROPE) {
            x1 *= a.norm_w[i];
            x2 *= a.norm_w[i + half];
        }
        const float co = cs[i], si = cs[half + i];
        fr_cu_store(a.out, ob + i, a.o_dtype, x1 * co - x2 * si);
        fr_cu_store(a.out, ob + i + half, a.o_dtype, x2 * co + x1 * si);
    }
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
