/* Elementwise ops (silu_mul, add, scaled_add) and argmax. Rows may be strided views (e.g. gate
 * and up halves of one fused projection); the innermost dimension is dense. */
#include "kernels/cuda/cuda_backend.h"

typedef struct fr_cu_view {
    const void *p;
    int64_t ld; /* row stride in elements */
    int dtype;
} fr_cu_view;

static fr_cu_view fr_cu_view_of(const fr_tensor *t) {
    fr_cu_view v = {fr_cu_ptr(t), fr_cu_estride(t, 0), (int)t->dtype};
    return v;
}

enum { FR_CU_SILU_MUL, FR_CU_ADD, FR_CU_SCALED_ADD };

/* blockIdx.x = row (up to 2^31 rows), blockIdx.y and the loop cover the columns. */
template <int OP>
__global__ void fr_cu_binary_kernel(fr_cu_view a, fr_cu_view b, const float *scale, void *out,
                                    int64_t ldo, int o_dtype, int64_t F) {
    fr_cu_pdl_trigger(); /* silu_mul feeds the down projection's GEMV */
    const int64_t t = blockIdx.x;
    for (int64_t c = (int64_t)blockIdx.y * blockDim.x + threadIdx.x; c < F;
         c += (int64_t)gridDim.y * blockDim.x) {
        const float x = fr_cu_load(a.p, t * a.ld + c, a.dtype);
        const float y = fr_cu_load(b.p, t * b.ld + c, b.dtype);
        float r;
        if (OP == FR_CU_SILU_MUL)
            r = x / (1.0f + __expf(-x)) * y;
        else if (OP == FR_CU_ADD)
            r = x + y;
        else
            r = x + y * scale[c];
        fr_cu_store(out, t * ldo + c, o_dtype, r);
    }
}

template <int OP>
static fr_status fr_cu_binary(fr_cuda_ctx *c, const char *name, const fr_tensor *a,
                              const fr_tensor *b, const fr_tensor *scale, fr_tensor *out,
                              fr_error *err) {
    fr_status s = fr_cu_enter(c, err, name);
    if (s) return s;
    const int64_t T = a->shape[0], F = a->shape[1];
    const int threads = 256;
    unsigned by = fr_cu_blocks(F, threads);
    if (by > 65535) by = 65535;
    dim3 grid((unsigned)T, by);
    fr_cu_binary_kernel<OP><<<grid, threads, 0, c->stream>>>(
        fr_cu_view_of(a), fr_cu_view_of(b), scale ? (const float *)fr_cu_ptr(scale) : NULL,
        fr_cu_ptr(out), fr_cu_estride(out, 0), out->dtype, F);
    return fr_cu_launched(err, name);
}

/* silu_mul on 16-byte vectors, for gate, up and out of one dtype with 16-byte aligned rows
 * (prefill's [T, F] activations): the generic kernel's per-element loads and dtype switches ran
 * at less than half the bandwidth on 2048 x 12288 bf16. Same formula per element. */
template <typename T>
__global__ void fr_cu_silu_mul_vec_kernel(const T *a, int64_t lda, const T *b, int64_t ldb, T *out,
                                          int64_t ldo, int64_t nvec) {
    fr_cu_pdl_trigger();
    fr_cu_pdl_wait();
    constexpr int E = 16 / sizeof(T);
    const int64_t t = blockIdx.x;
    for (int64_t v = (int64_t)blockIdx.y * blockDim.x + threadIdx.x; v < nvec;
         v += (int64_t)gridDim.y * blockDim.x) {
        const uint4 ua = *(const uint4 *)(a + t * lda + v * E);
        const uint4 ub = *(const uint4 *)(b + t * ldb + v * E);
        float fa[E], fb[E];
        fr_cu_w16<T>::cvt(ua, fa);
        fr_cu_w16<T>::cvt(ub, fb);
        T r[E];
#pragma unroll
        for (int i = 0; i < E; i++)
            r[i] = fr_cu_from_f32<T>(fa[i] / (1.0f + __expf(-fa[i])) * fb[i]);
        *(uint4 *)(out + t * ldo + v * E) = *(const uint4 *)r;
    }
}

template <typename T>
static void fr_cu_silu_mul_vec(fr_cuda_ctx *c, const fr_tensor *gate, const fr_tensor *up,
                               fr_tensor *out) {
    const int64_t T_ = gate->shape[0], nvec = gate->shape[1] / (16 / (int64_t)sizeof(T));
    const int threads = 256;
    unsigned by = fr_cu_blocks(nvec, threads);
    if (by > 65535) by = 65535;
    fr_cu_launch_pdl(c, fr_cu_silu_mul_vec_kernel<T>, dim3((unsigned)T_, by), dim3(threads), 0,
                     (const T *)fr_cu_ptr(gate), fr_cu_estride(gate, 0), (const T *)fr_cu_ptr(up),
                     fr_cu_estride(up, 0), (T *)fr_cu_ptr(out), fr_cu_estride(out, 0), nvec);
}

fr_status fr_cuda_silu_mul(void *ctx, const fr_tensor *gate, const fr_tensor *up, fr_tensor *out,
                           fr_error *err) {
    fr_cuda_ctx *c = (fr_cuda_ctx *)ctx;
    const fr_dtype d = gate->dtype;
    const int64_t e = 16 / fr_cu_esize(d);
    if (up->dtype == d && out->dtype == d && gate->shape[1] % e == 0 &&
        fr_cu_rows_aligned(gate, 16) && fr_cu_rows_aligned(up, 16) && fr_cu_rows_aligned(out, 16) &&
        gate->shape[0] <= 0x7fffffff) {
        fr_status s = fr_cu_enter(c, err, "silu_mul");
        if (s) return s;
        if (d == FR_DTYPE_BF16)
            fr_cu_silu_mul_vec<__nv_bfloat16>(c, gate, up, out);
        else if (d == FR_DTYPE_F16)
            fr_cu_silu_mul_vec<__half>(c, gate, up, out);
        else
            fr_cu_silu_mul_vec<float>(c, gate, up, out);
        return fr_cu_launched(err, "silu_mul");
    }
    return fr_cu_binary<FR_CU_SILU_MUL>(c, "silu_mul", gate, up, NULL, out, err);
}

fr_status fr_cuda_add(void *ctx, const fr_tensor *a, const fr_tensor *b, fr_tensor *out,
                      fr_error *err) {
    return fr_cu_binary<FR_CU_ADD>((fr_cuda_ctx *)ctx, "add", a, b, NULL, out, err);
}

fr_status fr_cuda_scaled_add(void *ctx, const fr_tensor *a, const fr_tensor *b,
                             const fr_tensor *scale, fr_tensor *out, fr_error *err) {
    return fr_cu_binary<FR_CU_SCALED_ADD>((fr_cuda_ctx *)ctx, "scaled_add", a, b, scale, out, err);
}

/* ------------------------------------------------------------------ argmax */

/* The better of two candidates: larger value, or the lower index on ties. */
__device__ __forceinline__ void fr_cu_arg_pick(float &v, int64_t &i, float ov, int64_t oi) {
    if (ov > v || (ov == v && oi < i)) {
        v = ov;
        i = oi;
    }
}

__global__ void fr_cu_argmax_kernel(const void *x, int64_t ldx, int x_dtype, int64_t V, int *out) {
    __shared__ float sv[32];
    __shared__ int64_t si[32];
    const int64_t t = blockIdx.x;
    float best = -INFINITY;
    int64_t bi = INT64_MAX;
    for (int64_t c = threadIdx.x; c < V; c += blockDim.x)
        fr_cu_arg_pick(best, bi, fr_cu_load(x, t * ldx + c, x_dtype), c);
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, best, o);
        int64_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
        fr_cu_arg_pick(best, bi, ov, oi);
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) {
        sv[warp] = best;
        si[warp] = bi;
    }
    __syncthreads();
    if (warp == 0) {
        const int nw = blockDim.x >> 5;
        best = lane < nw ? sv[lane] : -INFINITY;
        bi = lane < nw ? si[lane] : INT64_MAX;
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, best, o);
            int64_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
            fr_cu_arg_pick(best, bi, ov, oi);
        }
        /* A row of only NaN / -inf keeps index 0, as a sequential scan would. */
        if (lane == 0) out[t] = bi == INT64_MAX ? 0 : (int)bi;
    }
}

fr_status fr_cuda_argmax(void *ctx, const fr_tensor *x, fr_tensor *out, fr_error *err) {
    fr_cuda_ctx *c = (fr_cuda_ctx *)ctx;
    fr_status s = fr_cu_enter(c, err, "argmax");
    if (s) return s;
    const int64_t T = x->shape[0], V = x->shape[1];
    const int threads = V >= 8192 ? 1024 : 256;
    fr_cu_argmax_kernel<<<(unsigned)T, threads, 0, c->stream>>>(fr_cu_ptr(x), fr_cu_estride(x, 0),
                                                                x->dtype, V, (int *)fr_cu_ptr(out));
    return fr_cu_launched(err, "argmax");
}
