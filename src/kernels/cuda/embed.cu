/* Embedding lookup: out[t,:] = table[ids[t],:]. Ids live in device memory (so a recorded step
 * can be replayed with new ones); an id outside [0, V) gives a zero row instead of a fault.
 * Quantized tables are decoded eight elements per thread, straight from the stored blocks. */
#include "kernels/cuda/quant_dev.h"

template <typename W>
__global__ void fr_cu_embed_kernel(const W *table, int64_t ld_table, int64_t V, const int *ids,
                                   void *out, int64_t ld_out, int out_dtype, int64_t C) {
    const int64_t t = blockIdx.y;
    const int id = ids[t];
    const bool ok = id >= 0 && id < V;
    const W *row = table + (ok ? (int64_t)id * ld_table : 0);
    for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < C;
         c += (int64_t)gridDim.x * blockDim.x) {
        float v = ok ? fr_cu_to_f32(row[c]) : 0.0f;
        fr_cu_store(out, t * ld_out + c, out_dtype, v);
    }
}

template <int QT>
__global__ void fr_cuq_embed_kernel(const uint8_t *table, int64_t ld_table, int64_t V,
                                    const int *ids, void *out, int64_t ld_out, int out_dtype,
                                    int64_t C) {
    constexpr int BE = fr_cuq<QT>::BE, BB = fr_cuq<QT>::BB;
    const int64_t t = blockIdx.y;
    const int id = ids[t];
    const bool ok = id >= 0 && id < V;
    const uint8_t *row = table + (ok ? (int64_t)id * ld_table : 0);
    for (int64_t g = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; g < C / 8;
         g += (int64_t)gridDim.x * blockDim.x) {
        const int64_t e0 = 8 * g;
        float f[8];
        if (ok) {
            fr_cuq_deq8<QT>(row + (e0 / BE) * BB, (int)(e0 % BE) / 8, f);
        } else {
#pragma unroll
            for (int i = 0; i < 8; i++)
                f[i] = 0.0f;
        }
#pragma unroll
        for (int i = 0; i < 8; i++)
            fr_cu_store(out, t * ld_out + e0 + i, out_dtype, f[i]);
    }
}

fr_status fr_cuda_embedding(void *vctx, const fr_tensor *table, const fr_tensor *ids,
                            fr_tensor *out, fr_error *err) {
    fr_cuda_ctx *c = (fr_cuda_ctx *)vctx;
    fr_status s = fr_cu_enter(c, err, "embedding");
    if (s) return s;
    const int64_t T = ids->shape[0], V = table->shape[0], C = table->shape[1];
    const int threads = 256;
    unsigned bx = fr_cu_blocks(C, threads);
    if (bx > 64) bx = 64;
    if (T > 65535)
        return fr_error_set(err, FR_ERR_UNSUPPORTED,
                            "cuda embedding: %lld ids in one call (max "
                            "65535)",
                            (long long)T);
    dim3 grid(bx, (unsigned)T);
    const int *id = (const int *)fr_cu_ptr(ids);
    void *o = fr_cu_ptr(out);
    const int64_t ldo = fr_cu_estride(out, 0);
    switch (table->dtype) {
    case FR_DTYPE_F32:
        fr_cu_embed_kernel<<<grid, threads, 0, c->stream>>>(
            (const float *)fr_cu_ptr(table), fr_cu_estride(table, 0), V, id, o, ldo, out->dtype, C);
        break;
    case FR_DTYPE_F16:
        fr_cu_embed_kernel<<<grid, threads, 0, c->stream>>>((const __half *)fr_cu_ptr(table),
                                                            fr_cu_estride(table, 0), V, id, o, ldo,
                                                            out->dtype, C);
        break;
    case FR_DTYPE_BF16:
        fr_cu_embed_kernel<<<grid, threads, 0, c->stream>>>((const __nv_bfloat16 *)fr_cu_ptr(table),
                                                            fr_cu_estride(table, 0), V, id, o, ldo,
                                                            out->dtype, C);
        break;
    default:
        if (!fr_cuq_supported(table->dtype))
            return fr_error_set(err, FR_ERR_UNSUPPORTED,
                                "cuda embedding: table dtype %s is not supported",
                                fr_dtype_name(table->dtype));
        {
            const uint8_t *tp = (const uint8_t *)fr_cu_ptr(table);
            const int64_t ldt = table->stride[0];
            unsigned gx = fr_cu_blocks(C / 8, threads);
            if (gx > 64) gx = 64;
            FR_CUQ_DISPATCH(table->dtype, fr_cuq_embed_kernel<QT>
                            <<<dim3(gx, (unsigned)T), threads, 0, c->stream>>>(tp, ldt, V, id, o,
                                                                               ldo, out->dtype, C));
        }
        break;
    }
    return fr_cu_launched(err, "embedding");
}
