/* kv_append: cache[h, pos[t], :] = kv[h, t, :]. The cache row stride along L may exceed D. A
 * position outside [0, L) is skipped (nothing written) rather than written out of bounds. */
#include "kernels/cuda/cuda_backend.h"

__global__ void fr_cu_kv_append_kernel(const void *kv, int64_t kv_sh, int64_t kv_st, int kv_dtype,
                                       const int *pos, void *cache, int64_t c_sh, int64_t c_sl,
                                       int c_dtype, int64_t L, int64_t T, int64_t D) {
    const int64_t h = blockIdx.y, t = blockIdx.x;
    const int64_t p = pos[t];
    if (p < 0 || p >= L) return;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x)
        fr_cu_store(cache, h * c_sh + p * c_sl + d, c_dtype,
                    fr_cu_load(kv, h * kv_sh + t * kv_st + d, kv_dtype));
}

fr_status fr_cuda_kv_append(void *vctx, const fr_tensor *kv, const fr_tensor *pos, fr_tensor *cache,
                            fr_error *err) {
    fr_cuda_ctx *c = (fr_cuda_ctx *)vctx;
    fr_status s = fr_cu_enter(c, err, "kv_append");
    if (s) return s;
    const int64_t Hkv = kv->shape[0], T = kv->shape[1], D = kv->shape[2];
    if (Hkv > 65535)
        return fr_error_set(err, FR_ERR_UNSUPPORTED, "cuda kv_append: %lld kv heads (max 65535)",
                            (long long)Hkv);
    dim3 grid((unsigned)T, (unsigned)Hkv);
    const int threads = D >= 128 ? 128 : 64;
    fr_cu_kv_append_kernel<<<grid, threads, 0, c->stream>>>(
        fr_cu_ptr(kv), fr_cu_estride(kv, 0), fr_cu_estride(kv, 1), kv->dtype,
        (const int *)fr_cu_ptr(pos), fr_cu_ptr(cache), fr_cu_estride(cache, 0),
        fr_cu_estride(cache, 1), cache->dtype, cache->shape[1], T, D);
    return fr_cu_launched(err, "kv_append");
}
