/* RMSNorm and the fused residual-add + RMSNorm. One block per row; the sum of squares is taken
 * in f32 over the values as stored (so a bf16 residual stream is normalised exactly as read
 * back later). */
#include "kernels/cuda/cuda_backend.h"

static int fr_cu_norm_threads(int64_t C) {
    if (C >= 4096) return 1024;
    if (C >= 1024) return 512;
    return 256;
}

/* Elements per thread kept in registers between the two passes (C <= 1024 * FR_CU_NORM_REG);
 * wider rows re-read pass 1's values. */
#define FR_CU_NORM_REG 8

__global__ void fr_cu_rms_norm_kernel(const void *x, int64_t ldx, int x_dtype, const float *w,
                                      float eps, void *out, int64_t ldo, int o_dtype, int64_t C) {
    __shared__ float red[32];
    fr_cu_pdl_trigger(); /* a following GEMV may start fetching its weights */
    fr_cu_pdl_wait();    /* launched early (PDL): the producer of x must be done */
    const int64_t t = blockIdx.x;
    const int64_t xr = t * ldx, orow = t * ldo;
    const bool in_regs = C <= (int64_t)blockDim.x * FR_CU_NORM_REG;
    float v[FR_CU_NORM_REG], wv[FR_CU_NORM_REG];
    float ss = 0.0f;
#pragma unroll
    for (int i = 0; i < FR_CU_NORM_REG; i++) {
        const int64_t c = threadIdx.x + (int64_t)i * blockDim.x;
        v[i] = in_regs && c < C ? fr_cu_load(x, xr + c, x_dtype) : 0.0f;
        wv[i] = in_regs && c < C ? w[c] : 0.0f; /* in flight during the reduction */
        ss += v[i] * v[i];
    }
    if (!in_regs)
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
            float u = fr_cu_load(x, xr + c, x_dtype);
            ss += u * u;
        }
    ss = fr_cu_block_sum(ss, red);
    const float inv = rsqrtf(ss / (float)C + eps);
    if (in_regs) {
#pragma unroll
        for (int i = 0; i < FR_CU_NORM_REG; i++) {
            const int64_t c = threadIdx.x + (int64_t)i * blockDim.x;
            if (c < C) fr_cu_store(out, orow + c, o_dtype, v[i] * inv * wv[i]);
        }
        return;
    }
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
        fr_cu_store(out, orow + c, o_dtype, fr_cu_load(x, xr + c, x_dtype) * inv * w[c]);
}

fr_status fr_cuda_rms_norm(void *vctx, const fr_tensor *x, const fr_tensor *w, float eps,
                           fr_tensor *out, fr_error *err) {
    fr_cuda_ctx *c = (fr_cuda_ctx *)vctx;
    fr_status s = fr_cu_enter(c, err, "rms_norm");
    if (s) return s;
    const int64_t T = x->shape[0], C = x->shape[1];
    fr_cu_launch_pdl(c, fr_cu_rms_norm_kernel, dim3((unsigned)T), dim3(fr_cu_norm_threads(C)), 0,
                     (const void *)fr_cu_ptr(x), fr_cu_estride(x, 0), (int)x->dtype,
                     (const float *)fr_cu_ptr(w), eps, (void *)fr_cu_ptr(out),
                     fr_cu_estride(out, 0), (int)out->dtype, C);
    return fr_cu_launched(err, "rms_norm");
}

/* res_out may alias residual: each thread reads an element before writing it, and pass 2 uses
 * only what the same thread produced in pass 1 (from registers, or re-read for wide rows). */
__global__ void fr_cu_residual_norm_kernel(const void *res, int64_t ldr, int r_dtype, const void *x,
                                           int64_t ldx, int x_dtype, const float *scale,
                                           const float *w, float eps, void *res_out, int64_t ldro,
                                           int ro_dtype, void *norm_out, int64_t ldno, int no_dtype,
                                           int64_t C) {
    __shared__ float red[32];
    fr_cu_pdl_trigger(); /* a following GEMV may start fetching its weights */
    fr_cu_pdl_wait();    /* launched early (PDL): the producer of x must be done */
    const int64_t t = blockIdx.x;
    const bool in_regs = C <= (int64_t)blockDim.x * FR_CU_NORM_REG;
    float v[FR_CU_NORM_REG], wv[FR_CU_NORM_REG];
    float ss = 0.0f;
#pragma unroll
    for (int i = 0; i < FR_CU_NORM_REG; i++) {
        const int64_t c = threadIdx.x + (int64_t)i * blockDim.x;
        v[i] = wv[i] = 0.0f;
        if (in_regs && c < C) {
            float xv = fr_cu_load(x, t * ldx + c, x_dtype);
            if (scale) xv *= scale[c];
            v[i] = fr_cu_round(fr_cu_load(res, t * ldr + c, r_dtype) + xv, ro_dtype);
            wv[i] = w[c];
            fr_cu_store(res_out, t * ldro + c, ro_dtype, v[i]);
            ss += v[i] * v[i];
        }
    }
    if (!in_regs)
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
            float xv = fr_cu_load(x, t * ldx + c, x_dtype);
            if (scale) xv *= scale[c];
            float u = fr_cu_round(fr_cu_load(res, t * ldr + c, r_dtype) + xv, ro_dtype);
            fr_cu_store(res_out, t * ldro + c, ro_dtype, u);
            ss += u * u;
        }
    ss = fr_cu_block_sum(ss, red);
    const float inv = rsqrtf(ss / (float)C + eps);
    if (in_regs) {
#pragma unroll
        for (int i = 0; i < FR_CU_NORM_REG; i++) {
            const int64_t c = threadIdx.x + (int64_t)i * blockDim.x;
            if (c < C) fr_cu_store(norm_out, t * ldno + c, no_dtype, v[i] * inv * wv[i]);
        }
        return;
    }
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
        fr_cu_store(norm_out, t * ldno + c, no_dtype,
                    fr_cu_load(res_out, t * ldro + c, ro_dtype) * inv * w[c]);
}

fr_status fr_cuda_residual_norm(void *vctx, const fr_tensor *residual, const fr_tensor *x,
                                const fr_tensor *layer_scale, const fr_tensor *norm_w, float eps,
                                fr_tensor *res_out, fr_tensor *norm_out, fr_error *err) {
    fr_cuda_ctx *c = (fr_cuda_ctx *)vctx;
    fr_status s = fr_cu_enter(c, err, "residual_norm");
    if (s) return s;
    const int64_t T = residual->shape[0], C = residual->shape[1];
    fr_cu_launch_pdl(c, fr_cu_residual_norm_kernel, dim3((unsigned)T), dim3(fr_cu_norm_threads(C)),
                     0, (const void *)fr_cu_ptr(residual), fr_cu_estride(residual, 0),
                     (int)residual->dtype, (const void *)fr_cu_ptr(x), fr_cu_estride(x, 0),
                     (int)x->dtype,
                     layer_scale ? (const float *)fr_cu_ptr(layer_scale) : (const float *)NULL,
                     (const float *)fr_cu_ptr(norm_w), eps, (void *)fr_cu_ptr(res_out),
                     fr_cu_estride(res_out, 0), (int)res_out->dtype, (void *)fr_cu_ptr(norm_out),
                     fr_cu_estride(norm_out, 0), (int)norm_out->dtype, C);
    return fr_cu_launched(err, "residual_norm");
}
