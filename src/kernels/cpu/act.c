/* Element-wise ops on [T, C] f32 rows (rows may be strided views): silu_mul, add, scaled_add.
 * Work is split into (row, column chunk) tasks so a single long row still uses both cores. */

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/cpu_ops.h"

enum { EW_SILU_MUL, EW_ADD, EW_SCALED_ADD };

#define EW_CHUNK 4096 /* columns per task */

typedef struct {
    int kind;
    const fr_tensor *a, *b, *out;
    const float *scale;
    int64_t cols, chunks_per_row;
    fr_silu_mul_fn silu;
} ew_args;

static void ew_task(void *varg, int64_t task, int thread) {
    const ew_args *g = varg;
    const int64_t row = task / g->chunks_per_row, c0 = (task % g->chunks_per_row) * EW_CHUNK;
    const int64_t n = g->cols - c0 < EW_CHUNK ? g->cols - c0 : EW_CHUNK;
    const float *a = (const float *)fr_cpu_at2(g->a, row) + c0;
    const float *b = (const float *)fr_cpu_at2(g->b, row) + c0;
    float *o = (float *)fr_cpu_at2(g->out, row) + c0;
    switch (g->kind) {
    case EW_SILU_MUL:
        g->silu(a, b, o, n);
        break;
    case EW_ADD:
        for (int64_t i = 0; i < n; i++)
            o[i] = a[i] + b[i];
        break;
    case EW_SCALED_ADD: {
        const float *s = g->scale + c0;
        for (int64_t i = 0; i < n; i++)
            o[i] = a[i] + b[i] * s[i];
        break;
    }
    }
}

static fr_status ew_run(fr_cpu_ctx *ctx, const char *op, int kind, const fr_tensor *a,
                        const fr_tensor *b, const fr_tensor *scale, fr_tensor *out, fr_error *err) {
    const fr_tensor *ts[] = {a, b, out};
    const char *names[] = {kind == EW_SILU_MUL ? "gate" : "a", kind == EW_SILU_MUL ? "up" : "b",
                           "out"};
    for (int i = 0; i < 3; i++)
        if (ts[i]->dtype != FR_DTYPE_F32)
            return fr_cpu_unsupported_dtype(err, op, names[i], ts[i], "f32 activations only");
    ew_args g = {kind,
                 a,
                 b,
                 out,
                 scale ? (const float *)fr_cpu_at2(scale, 0) : NULL,
                 a->shape[1],
                 (a->shape[1] + EW_CHUNK - 1) / EW_CHUNK,
                 ctx->k->silu_mul};
    const int64_t tasks = a->shape[0] * g.chunks_per_row;
    fr_cpu_run(ctx, tasks, 12.0 * (double)a->shape[0] * (double)a->shape[1], ew_task, &g);
    return FR_OK;
}

fr_status fr_cpu_silu_mul(void *ctx, const fr_tensor *gate, const fr_tensor *up, fr_tensor *out,
                          fr_error *err) {
    return ew_run(ctx, "silu_mul", EW_SILU_MUL, gate, up, NULL, out, err);
}

fr_status fr_cpu_add(void *ctx, const fr_tensor *a, const fr_tensor *b, fr_tensor *out,
                     fr_error *err) {
    return ew_run(ctx, "add", EW_ADD, a, b, NULL, out, err);
}

fr_status fr_cpu_scaled_add(void *ctx, const fr_tensor *a, const fr_tensor *b,
                            const fr_tensor *scale, fr_tensor *out, fr_error *err) {
    return ew_run(ctx, "scaled_add", EW_SCALED_ADD, a, b, scale, out, err);
}
