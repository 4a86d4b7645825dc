/* CPU backend: host buffers (mmapped weights are wrapped, never copied), direct op calls, a
 * persistent thread pool. begin/end/sync have nothing to wait for. */
#include "kernels/cpu/cpu_backend.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "core/alloc.h"
#include "core/log.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/matmul_quant.h"

#if defined(__x86_64__) || defined(__i386__)
/* F16C straight from CPUID (leaf 1, ECX bit 29): clang before 15 rejects
 * __builtin_cpu_supports("f16c"). The OS side (saved YMM state) is covered by the avx2 check it is
 * combined with. */
static bool cpu_has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}
#endif

/* The best kernel table this CPU (and OS, which libgcc's CPUID check includes) can run, lowered
 * to FR_CPU_ISA (scalar|avx2|avx512) when that is set, so tests can compare the variants. */
static const fr_cpu_kernels *cpu_pick_kernels(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    const bool avx2 =
        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
    const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bf16");
#else
    const bool avx2 = false, avx512 = false;
#endif
    const char *want = getenv("FR_CPU_ISA");
    int level = avx512 ? 2 : avx2 ? 1 : 0;
    if (want && *want) {
        int w = !strcmp(want, "scalar")   ? 0
                : !strcmp(want, "avx2")   ? 1
                : !strcmp(want, "avx512") ? 2
                                          : -1;
        if (w < 0)
            FR_LOG_W("FR_CPU_ISA=%s unknown (scalar, avx2, avx512); using the best", want);
        else if (w > level)
            FR_LOG_W("FR_CPU_ISA=%s: this CPU lacks it; using %s", want,
                     level == 1 ? "avx2" : "scalar");
        else
            level = w;
    }
    return level == 2   ? &fr_cpu_kernels_avx512
           : level == 1 ? &fr_cpu_kernels_avx2
                        : &fr_cpu_kernels_scalar;
}

/* Waking the second core costs a few microseconds; below this many bytes touched an op is done
 * before the workers would be up. */
#define FR_CPU_PARALLEL_BYTES (96 * 1024)

void fr_cpu_run(fr_cpu_ctx *ctx, int64_t n_tasks, double bytes, fr_task_fn fn, void *arg) {
    if (n_tasks <= 0) return;
    if (ctx->n_threads > 1 && n_tasks > 1 && bytes >= FR_CPU_PARALLEL_BYTES) {
        fr_threadpool_run(ctx->pool, n_tasks, fn, arg);
        return;
    }
    for (int64_t t = 0; t < n_tasks; t++)
        fn(arg, t, 0);
}

/* Many threads on a small model's matrices would otherwise get tasks of a few KB, claimed from
 * one shared counter about as fast as they run. */
#define FR_CPU_GEMV_TASK_BYTES (16 * 1024)

int64_t fr_cpu_gemv_chunk(const fr_cpu_ctx *ctx, int64_t N, double row_bytes, int64_t min_rows,
                          int64_t align) {
    int64_t chunk = (N + 16 * ctx->n_threads - 1) / (16 * ctx->n_threads);
    const int64_t by_bytes = row_bytes > 0 ? (int64_t)(FR_CPU_GEMV_TASK_BYTES / row_bytes) + 1 : 1;
    chunk = chunk > by_bytes ? chunk : by_bytes;
    chunk = chunk > min_rows ? chunk : min_rows;
    return (chunk + align - 1) / align * align;
}

void *fr_cpu_scratch(fr_cpu_ctx *ctx, int thread, size_t bytes) {
    if (thread < 0 || thread >= ctx->n_threads) return NULL;
    if (ctx->scratch_size[thread] < bytes) {
        fr_aligned_free(ctx->scratch[thread]);
        size_t grow = fr_align_up(bytes + bytes / 4, 4096);
        ctx->scratch[thread] = fr_aligned_alloc(grow);
        ctx->scratch_size[thread] = ctx->scratch[thread] ? grow : 0;
    }
    return ctx->scratch[thread];
}

fr_status fr_cpu_unsupported_dtype(fr_error *err, const char *op, const char *name,
                                   const fr_tensor *t, const char *supported) {
    return fr_error_set(err, FR_ERR_UNSUPPORTED, "cpu %s: %s dtype %s not supported (%s)", op, name,
                        fr_dtype_name(t->dtype), supported);
}

void fr_cpu_row_to_f32(fr_dtype t, const void *src, float *dst, int64_t n) {
    if (t == FR_DTYPE_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
    } else if (t == FR_DTYPE_F16 || t == FR_DTYPE_BF16) {
        /* src may be a row of the mapped file at an odd address (a safetensors header of any
         * length): each element by memcpy, not through a uint16_t pointer */
        const char *s = src;
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = t == FR_DTYPE_F16 ? fr_f16_to_f32(h) : fr_bf16_to_f32(h);
        }
    }
}

void fr_cpu_row_from_f32(fr_dtype t, const float *src, void *dst, int64_t n) {
    if (t == FR_DTYPE_F32) {
        memmove(dst, src, (size_t)n * sizeof(float));
    } else if (t == FR_DTYPE_F16) {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++)
            d[i] = fr_f32_to_f16(src[i]);
    } else if (t == FR_DTYPE_BF16) {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++)
            d[i] = fr_f32_to_bf16(src[i]);
    }
}

static void cpu_destroy(void *vctx) {
    fr_cpu_ctx *ctx = vctx;
    for (int i = 0; ctx->scratch && i < ctx->n_threads; i++)
        fr_aligned_free(ctx->scratch[i]);
    free(ctx->scratch);
    free(ctx->scratch_size);
    fr_cpu_quant_release(ctx);
    fr_threadpool_destroy(ctx->pool);
    free(ctx->self);
    free(ctx);
}

/* Buffers of several MiB (KV caches, copied weights) are 2 MiB aligned and asked to use
 * transparent huge pages: ops stream through them and 4 KiB pages would cost a TLB miss every
 * 4 KiB. Freed with free() like every fr_aligned_alloc block. */
#define FR_CPU_HUGE_BYTES (4u << 20)

static fr_status cpu_buffer_alloc(void *ctx, size_t size, fr_buffer *buf, fr_error *err) {
    if (size >= FR_CPU_HUGE_BYTES) {
        void *p = NULL;
        if (posix_memalign(&p, 2u << 20, fr_align_up(size, 2u << 20)) == 0) {
            madvise(p, fr_align_up(size, 2u << 20), MADV_HUGEPAGE);
            buf->data = p;
            return FR_OK;
        }
    }
    buf->data = fr_aligned_alloc(size);
    if (!buf->data) return fr_error_set(err, FR_ERR_NOMEM, "cpu: cannot allocate %zu bytes", size);
    return FR_OK;
}

static void cpu_buffer_free(void *ctx, fr_buffer *buf) {
    if (buf->owned) fr_aligned_free(buf->data);
    buf->data = NULL;
}

static fr_status cpu_buffer_upload(void *ctx, fr_buffer *buf, size_t off, const void *src, size_t n,
                                   fr_error *err) {
    memcpy((char *)buf->data + off, src, n);
    return FR_OK;
}

static fr_status cpu_buffer_download(void *ctx, const fr_buffer *buf, size_t off, void *dst,
                                     size_t n, fr_error *err) {
    memcpy(dst, (const char *)buf->data + off, n);
    return FR_OK;
}

static fr_status cpu_buffer_wrap_host(void *ctx, void *ptr, size_t size, fr_buffer *buf,
                                      fr_error *err) {
    buf->data = ptr;
    return FR_OK;
}

static const fr_backend_ops cpu_ops = {
    .name = "cpu",
    .kv_auto_dtype = fr_cpu_kv_auto_dtype,
    .destroy = cpu_destroy,
    .buffer_alloc = cpu_buffer_alloc,
    .buffer_free = cpu_buffer_free,
    .buffer_upload = cpu_buffer_upload,
    .buffer_download = cpu_buffer_download,
    .buffer_wrap_host = cpu_buffer_wrap_host,
    .embedding = fr_cpu_embedding,
    .rms_norm = fr_cpu_rms_norm,
    .matmul = fr_cpu_matmul,
    .matmul_multi = fr_cpu_matmul_multi,
    .matmul_glu = fr_cpu_matmul_glu,
    .qk_norm_rope = fr_cpu_qk_norm_rope,
    .kv_append = fr_cpu_kv_append,
    .attn_prepare = fr_cpu_attn_prepare,
    .attention = fr_cpu_attention,
    .residual_norm = fr_cpu_residual_norm,
    .silu_mul = fr_cpu_silu_mul,
    .add = fr_cpu_add,
    .scaled_add = fr_cpu_scaled_add,
    .argmax = fr_cpu_argmax,
    .sample = fr_cpu_sample,
};

fr_status fr_cpu_backend_create(const fr_backend_params *params, fr_backend **out, fr_error *err) {
    const fr_quant_act qa = params ? params->quant_act : FR_QUANT_ACT_Q8;
    if (qa != FR_QUANT_ACT_Q8 && qa != FR_QUANT_ACT_F32)
        return fr_error_set(err, FR_ERR_INVALID,
                            "cpu backend: quant_act %d unknown (FR_QUANT_ACT_Q8 or _F32)", (int)qa);
    fr_cpu_ctx *ctx = calloc(1, sizeof *ctx);
    fr_backend *b = calloc(1, sizeof *b);
    if (!ctx || !b) goto nomem;
    ctx->pool = fr_threadpool_create(params ? params->n_threads : 0);
    if (!ctx->pool) goto nomem;
    ctx->n_threads = fr_threadpool_size(ctx->pool);
    ctx->k = cpu_pick_kernels();
    ctx->quant_f32 = qa == FR_QUANT_ACT_F32;
    ctx->scratch = calloc((size_t)ctx->n_threads, sizeof *ctx->scratch);
    ctx->scratch_size = calloc((size_t)ctx->n_threads, sizeof *ctx->scratch_size);
    if (!ctx->scratch || !ctx->scratch_size) goto nomem;
    ctx->self = b;
    b->ops = &cpu_ops;
    b->ctx = ctx;
    *out = b;
    return FR_OK;
nomem:
    if (ctx) {
        fr_threadpool_destroy(ctx->pool);
        free(ctx->scratch);
        free(ctx->scratch_size);
    }
    free(ctx);
    free(b);
    return fr_error_set(err, FR_ERR_NOMEM, "cpu backend: out of memory");
}
