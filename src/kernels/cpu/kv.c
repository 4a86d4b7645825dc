/* kv_append: cache[h, pos[t], :] = kv[h, t, :], converting f32 to the cache dtype (f32, f16 or
 * bf16, round to nearest even). */
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/cpu_ops.h"

typedef struct {
    const fr_tensor *kv, *cache;
    const int32_t *pos;
    int64_t T, D;
} kv_args;

static void kv_task(void *varg, int64_t task, int thread) {
    const kv_args *g = varg;
    const int64_t h = task / g->T, t = task % g->T;
    fr_cpu_row_from_f32(g->cache->dtype, (const float *)fr_cpu_at3(g->kv, h, t),
                        fr_cpu_at3(g->cache, h, g->pos[t]), g->D);
}

fr_status fr_cpu_kv_append(void *vctx, const fr_tensor *kv, const fr_tensor *pos, fr_tensor *cache,
                           fr_error *err) {
    if (kv->dtype != FR_DTYPE_F32)
        return fr_cpu_unsupported_dtype(err, "kv_append", "kv", kv, "f32 activations only");
    const int64_t Hkv = kv->shape[0], T = kv->shape[1], L = cache->shape[1];
    const int32_t *p = (const int32_t *)fr_cpu_at2(pos, 0);
    for (int64_t t = 0; t < T; t++)
        if (p[t] < 0 || p[t] >= L)
            return fr_error_set(err, FR_ERR_RANGE,
                                "cpu kv_append: pos[%lld] = %d outside the cache's %lld slots",
                                (long long)t, p[t], (long long)L);
    kv_args g = {kv, cache, p, T, kv->shape[2]};
    fr_cpu_run(vctx, Hkv * T, 6.0 * (double)(Hkv * T) * (double)g.D, kv_task, &g);
    return FR_OK;
}

/* f16 where the kernel table widens it with F16C (the AVX2 and AVX-512 tables; cpu_backend.c
 * picks those only when CPUID reports F16C): attention then reads half the bytes for a one-
 * instruction conversion per 8 values. The scalar table converts in software, a dozen operations
 * a value, so there the cache stays f32 rather than trade speed for memory unasked. bf16 would be
 * cheap without hardware (a shift) but keeps 3 fewer mantissa bits than f16, and the default
 * should not cost accuracy on the machines that have no F16C. */
fr_dtype fr_cpu_kv_auto_dtype(void *vctx) {
    const fr_cpu_ctx *ctx = vctx;
    return ctx->k != &fr_cpu_kernels_scalar ? FR_DTYPE_F16 : FR_DTYPE_F32;
}
