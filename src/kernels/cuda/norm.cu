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

/* Prefill's common case in vector form: f32 residual stream and sublayer output, C of 1024,
 * 2048, 4096 or 8192, rows 16-byte aligned. 256 threads per row, each holding V float4 groups in
 * registers, so a row costs one read of res and x, one write of res_out and norm_out, and
 * several rows fit on an SM at once (the generic kernel uses 1024 scalar threads per row). Same
 * arithmetic and order as fr_cu_residual_norm_kernel. */
template <typename OT, int V>
__global__ void __launch_bounds__(256)
    fr_cu_residual_norm_vec_kernel(const float *res, int64_t ldr, const float *x, int64_t ldx,
                                   const float *scale, const float *w, float eps, float *res_out,
                                   int64_t ldro, OT *norm_out, int64_t ldno) {
    __shared__ float red[32];
    fr_cu_pdl_trigger();
    fr_cu_pdl_wait();
    const int64_t t = blockIdx.x;
    constexpr int C = V * 1024;
    float4 v[V];
    float ss = 0.0f;
#pragma unroll
    for (int i = 0; i < V; i++) {
        const int c = (i * 256 + (int)threadIdx.x) * 4;
        const float4 a = *(const float4 *)(res + t * ldr + c);
        float4 b = *(const float4 *)(x + t * ldx + c);
        if (scale) {
            const float4 s = *(const float4 *)(scale + c);
            b = make_float4(b.x * s.x, b.y * s.y, b.z * s.z, b.w * s.w);
        }
        v[i] = make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
        *(float4 *)(res_out + t * ldro + c) = v[i];
        ss += v[i].x * v[i].x + v[i].y * v[i].y + v[i].z * v[i].z + v[i].w * v[i].w;
    }
    ss = fr_cu_block_sum(ss, red);
    const float inv = rsqrtf(ss / (float)C + eps);
#pragma unroll
    for (int i = 0; i < V; i++) {
        const int c = (i * 256 + (int)threadIdx.x) * 4;
        const float4 g = *(const float4 *)(w + c);
        OT *o = norm_out + t * ldno + c;
        o[0] = fr_cu_from_f32<OT>(v[i].x * inv * g.x);
        o[1] = fr_cu_from_f32<OT>(v[i].y * inv * g.y);
        o[2] = fr_cu_from_f32<OT>(v[i].z * inv * g.z);
        o[3] = fr_cu_from_f32<OT>(v[i].w * inv * g.w);
    }
}

template <typename OT>
static bool fr_cu_residual_norm_vec(fr_cuda_ctx *c, const fr_tensor *residual, const fr_tensor *x,
                                    const fr_tensor *scale, const fr_tensor *w, float eps,
                                    fr_tensor *res_out, fr_tensor *norm_out) {
    const int64_t T = residual->shape[0], C = residual->shape[1];
    const float *sp = scale ? (const float *)fr_cu_ptr(scale) : (const float *)NULL;
    const float *r = (const float *)fr_cu_ptr(residual), *xp = (const float *)fr_cu_ptr(x),
                *wp = (const float *)fr_cu_ptr(w);
    float *ro = (float *)fr_cu_ptr(res_out);
    OT *no = (OT *)fr_cu_ptr(norm_out);
    const int64_t ldr = fr_cu_estride(residual, 0), ldx = fr_cu_estride(x, 0),
                  ldro = fr_cu_estride(res_out, 0), ldno = fr_cu_estride(norm_out, 0);
    void (*kernel)(const float *, int64_t, const float *, int64_t, const float *, const float *,
                   float, float *, int64_t, OT *, int64_t) =
        C == 1024   ? fr_cu_residual_norm_vec_kernel<OT, 1>
        : C == 2048 ? fr_cu_residual_norm_vec_kernel<OT, 2>
        : C == 4096 ? fr_cu_residual_norm_vec_kernel<OT, 4>
        : C == 8192 ? fr_cu_residual_norm_vec_kernel<OT, 8>
                    : nullptr;
    if (!kernel) return false;
    fr_cu_launch_pdl(c, kernel, dim3((unsigned)T), dim3(256), 0, r, ldr, xp, ldx, sp, wp, eps, ro,
                     ldro, no, ldno);
    return true;
}

/* Whether the vector kernel can read and write these tensors: f32 residual, sublayer output,
 * res_out, weights and scale, 16-byte aligned rows (norm_out: 8-byte aligned for 16-bit types).
 * The row widths it takes are fr_cu_residual_norm_vec's. */
static bool fr_cu_residual_norm_vec_ok(const fr_tensor *residual, const fr_tensor *x,
                                       const fr_tensor *scale, const fr_tensor *w,
                                       const fr_tensor *res_out, const fr_tensor *norm_out) {
    const fr_tensor *f32s[] = {residual, x, res_out, w, scale};
    for (int i = 0; i < 5; i++) {
        const fr_tensor *t = f32s[i];
        if (!t) continue;
        if (t->dtype != FR_DTYPE_F32 || !fr_cu_rows_aligned(t, 16)) return false;
    }
    return fr_cu_rows_aligned(norm_out, 4 * fr_cu_esize(norm_out->dtype));
}

fr_status fr_cuda_residual_norm(void *vctx, const fr_tensor *residual, const fr_tensor *x,
                                const fr_tensor *layer_scale, const fr_tensor *norm_w, float eps,
                                fr_tensor *res_out, fr_tensor *norm_out, fr_error *err) {
    fr_cuda_ctx *c = (fr_cuda_ctx *)vctx;
    fr_status s = fr_cu_enter(c, err, "residual_norm");
    if (s) return s;
    if (fr_cu_residual_norm_vec_ok(residual, x, layer_scale, norm_w, res_out, norm_out)) {
        bool done = false;
        switch (norm_out->dtype) {
        case FR_DTYPE_F16:
            done = fr_cu_residual_norm_vec<__half>(c, residual, x, layer_scale, norm_w, eps,
                                                   res_out, norm_out);
            break;
        case FR_DTYPE_BF16:
            done = fr_cu_residual_norm_vec<__nv_bfloat16>(c, residual, x, layer_scale, norm_w, eps,
                                                          res_out, norm_out);
            break;
        default:
            done = fr_cu_residual_norm_vec<float>(c, residual, x, layer_scale, norm_w, eps, res_out,
                                                  norm_out);
            break;
        }
        if (done) return fr_cu_launched(err, "residual_norm");
    }
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
