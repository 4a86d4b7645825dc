/* RMSNorm and the fused residual-add + layer-scale + RMSNorm, over [T, C] f32 rows. One task per
 * row: C is at most a few thousand, so a row is too small to split. */
#include <math.h>

#include "kernels/cpu/cpu_ops.h"

/* Sum of squares with 8 independent partial sums: the compiler keeps them in one vector register,
 * and the result does not depend on the thread that computed it. */
static float sum_squares(const float *x, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += x[i + j] * x[i + j];
    float s = 0;
    for (; i < n; i++)
        s += x[i] * x[i];
    for (int j = 0; j < 8; j++)
        s += acc[j];
    return s;
}

static void norm_row(const float *x, const float *w, float eps, int64_t n, float *out) {
    const float r = 1.0f / sqrtf(sum_squares(x, n) / (float)n + eps);
    for (int64_t i = 0; i < n; i++)
        out[i] = x[i] * r * w[i];
}

typedef struct {
    const fr_tensor *residual, *x, *res_out, *out;
    const float *w, *scale;
    float eps;
    int64_t cols;
} norm_args;

static void rms_task(void *varg, int64_t row, int thread) {
    const norm_args *g = varg;
    norm_row((const float *)fr_cpu_at2(g->x, row), g->w, g->eps, g->cols,
             (float *)fr_cpu_at2(g->out, row));
}

static void residual_task(void *varg, int64_t row, int thread) {
    const norm_args *g = varg;
    const float *r = (const float *)fr_cpu_at2(g->residual, row);
    const float *x = (const float *)fr_cpu_at2(g->x, row);
    float *ro = (float *)fr_cpu_at2(g->res_out, row); /* may be r itself: element-wise, safe */
    if (g->scale)
        for (int64_t i = 0; i < g->cols; i++)
            ro[i] = r[i] + x[i] * g->scale[i];
    else
        for (int64_t i = 0; i < g->cols; i++)
            ro[i] = r[i] + x[i];
    norm_row(ro, g->w, g->eps, g->cols, (float *)fr_cpu_at2(g->out, row));
}

fr_status fr_cpu_rms_norm(void *vctx, const fr_tensor *x, const fr_tensor *w, float eps,
                          fr_tensor *out, fr_error *err) {
    if (x->dtype != FR_DTYPE_F32)
        return fr_cpu_unsupported_dtype(err, "rms_norm", "x", x, "f32 activations only");
    if (out->dtype != FR_DTYPE_F32)
        return fr_cpu_unsupported_dtype(err, "rms_norm", "out", out, "f32 activations only");
    norm_args g = {
        .x = x, .out = out, .w = (const float *)fr_cpu_at2(w, 0), .eps = eps, .cols = x->shape[1]};
    fr_cpu_run(vctx, x->shape[0], 8.0 * (double)x->shape[0] * (double)x->shape[1], rms_task, &g);
    return FR_OK;
}

fr_status fr_cpu_residual_norm(void *vctx, const fr_tensor *residual, const fr_tensor *x,
                               const fr_tensor *layer_scale, const fr_tensor *norm_w, float eps,
                               fr_tensor *res_out, fr_tensor *norm_out, fr_error *err) {
    const fr_tensor *ts[] = {residual, x, res_out, norm_out};
    const char *names[] = {"residual", "x", "res_out", "norm_out"};
    for (int i = 0; i < 4; i++)
        if (ts[i]->dtype != FR_DTYPE_F32)
            return fr_cpu_unsupported_dtype(err, "residual_norm", names[i], ts[i],
                                            "f32 activations only");
    norm_args g = {.residual = residual,
                   .x = x,
                   .res_out = res_out,
                   .out = norm_out,
                   .w = (const float *)fr_cpu_at2(norm_w, 0),
                   .scale = layer_scale ? (const float *)fr_cpu_at2(layer_scale, 0) : NULL,
                   .eps = eps,
                   .cols = x->shape[1]};
    fr_cpu_run(vctx, x->shape[0], 16.0 * (double)x->shape[0] * (double)x->shape[1], residual_task,
               &g);
    return FR_OK;
}
