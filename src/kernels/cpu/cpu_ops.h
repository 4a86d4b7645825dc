/* CPU op entry points (registered in cpu_backend.c) and the small helpers the op files share.
 * Inputs are already validated by the fr_op_* wrappers in kernels/backend.c (shapes, dtypes in
 * the accepted set, buffer bounds, dense rows); the ops check what those cannot: value ranges
 * of ids and positions, and which dtypes this backend implements. */
#ifndef FR_KERNELS_CPU_OPS_H
#define FR_KERNELS_CPU_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/cpu/cpu_backend.h"

fr_status fr_cpu_embedding(void *ctx, const fr_tensor *table, const fr_tensor *ids, fr_tensor *out,
                           fr_error *err);
fr_status fr_cpu_argmax(void *ctx, const fr_tensor *x, fr_tensor *out, fr_error *err);
fr_status fr_cpu_sample(void *ctx, const fr_tensor *logits, const fr_sample_params *p,
                        fr_tensor *state, fr_tensor *out, fr_error *err);
fr_status fr_cpu_rms_norm(void *ctx, const fr_tensor *x, const fr_tensor *w, float eps,
                          fr_tensor *out, fr_error *err);
fr_status fr_cpu_residual_norm(void *ctx, const fr_tensor *residual, const fr_tensor *x,
                               const fr_tensor *layer_scale, const fr_tensor *norm_w, float eps,
                               fr_tensor *res_out, fr_tensor *norm_out, fr_error *err);
fr_status fr_cpu_matmul(void *ctx, const fr_tensor *x, const fr_tensor *w, const fr_tensor *bias,
                        fr_tensor *out, fr_error *err);
fr_status fr_cpu_matmul_multi(void *ctx, const fr_tensor *x, int n, const fr_tensor *const *w,
                              const fr_tensor *const *bias, fr_tensor *const *out, fr_error *err);
fr_status fr_cpu_matmul_glu(void *ctx, const fr_tensor *x, const fr_tensor *w_gate,
                            const fr_tensor *w_up, const fr_tensor *b_gate, const fr_tensor *b_up,
                            fr_tensor *gate, fr_tensor *up, fr_tensor *out, fr_error *err);
fr_status fr_cpu_qk_norm_rope(void *ctx, const fr_tensor *x, const fr_tensor *norm_w,
                              const fr_tensor *rope, const fr_tensor *pos, int mode, float eps,
                              fr_tensor *out, fr_error *err);
fr_status fr_cpu_kv_append(void *ctx, const fr_tensor *kv, const fr_tensor *pos, fr_tensor *cache,
                           fr_error *err);
fr_dtype fr_cpu_kv_auto_dtype(void *ctx);
fr_status fr_cpu_attn_prepare(void *ctx, const fr_tensor *q, const fr_tensor *k, const fr_tensor *v,
                              const fr_tensor *q_norm, const fr_tensor *k_norm,
                              const fr_tensor *rope, const fr_tensor *pos, int mode, float eps,
                              fr_tensor *q_out, fr_tensor *k_cache, fr_tensor *v_cache,
                              fr_error *err);
fr_status fr_cpu_attention(void *ctx, const fr_tensor *q, const fr_tensor *k_cache,
                           const fr_tensor *v_cache, const fr_tensor *pos,
                           const fr_attention_params *p, fr_tensor *out, fr_error *err);
fr_status fr_cpu_silu_mul(void *ctx, const fr_tensor *gate, const fr_tensor *up, fr_tensor *out,
                          fr_error *err);
fr_status fr_cpu_add(void *ctx, const fr_tensor *a, const fr_tensor *b, fr_tensor *out,
                     fr_error *err);
fr_status fr_cpu_scaled_add(void *ctx, const fr_tensor *a, const fr_tensor *b,
                            const fr_tensor *scale, fr_tensor *out, fr_error *err);

/* ---- shared helpers (cpu_backend.c) ---- */

/* Runs fn over n_tasks tasks on the pool when `bytes` (memory the op touches, or an equivalent
 * cost) makes waking the workers worth it; inline on the calling thread otherwise. */
void fr_cpu_run(fr_cpu_ctx *ctx, int64_t n_tasks, double bytes, fr_task_fn fn, void *arg);
/* Weight rows per GEMV task for N rows of row_bytes each: ~16 tasks per thread, which balances
 * uneven cores to the end (4 left a long tail: f16 decode +10 % with 16), but at least min_rows
 * rows and FR_CPU_GEMV_TASK_BYTES of weights, rounded up to a multiple of align. */
int64_t fr_cpu_gemv_chunk(const fr_cpu_ctx *ctx, int64_t N, double row_bytes, int64_t min_rows,
                          int64_t align);

/* Per-thread scratch memory (64-byte aligned, contents undefined), grown on demand and kept for
 * the backend's lifetime. Only thread `thread` may use its slot; NULL when out of memory. */
void *fr_cpu_scratch(fr_cpu_ctx *ctx, int thread, size_t bytes);

/* Element address helpers: tensors carry byte strides. */
static inline char *fr_cpu_at2(const fr_tensor *t, int64_t i0) {
    return (char *)t->buf->data + t->offset + i0 * t->stride[0];
}
static inline char *fr_cpu_at3(const fr_tensor *t, int64_t i0, int64_t i1) {
    return (char *)t->buf->data + t->offset + i0 * t->stride[0] + i1 * t->stride[1];
}

/* "cpu <op>: <name> dtype <d> not supported (...)" */
fr_status fr_cpu_unsupported_dtype(fr_error *err, const char *op, const char *name,
                                   const fr_tensor *t, const char *supported);

/* Converts n elements of a plain dtype (f32, f16, bf16) to f32, and back with RNE. */
void fr_cpu_row_to_f32(fr_dtype t, const void *src, float *dst, int64_t n);
void fr_cpu_row_from_f32(fr_dtype t, const float *src, void *dst, int64_t n);

#endif
