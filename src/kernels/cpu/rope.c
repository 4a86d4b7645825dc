/* qk_norm_rope: [T,H,D] -> [H,T,D] with optional per-head RMSNorm (mode 1) and half-split RoPE
 * (modes 1, 2): pairs (i, i+D/2) rotated by the angle in row pos[t] of the [P, D] cos|sin table,
 *   out[i]       = x[i] cos - x[i+D/2] sin
 *   out[i+D/2]   = x[i+D/2] cos + x[i] sin
 * which is Hugging Face's q*cos + rotate_half(q)*sin. */
#include <math.h>

#include "kernels/cpu/cpu_ops.h"

typedef struct {
    const fr_tensor *x, *out, *rope;
    const float *norm_w;
    const int32_t *pos;
    int mode;
    float eps;
    int64_t H, D;
} rope_args;

static void rope_task(void *varg, int64_t t, int thread) {
    const rope_args *g = varg;
    const int64_t D = g->D, half = D / 2;
    const float *cs = NULL;
    if (g->mode != FR_ROPE_MODE_TRANSPOSE) cs = (const float *)fr_cpu_at2(g->rope, g->pos[t]);
    for (int64_t h = 0; h < g->H; h++) {
        const float *x = (const float *)fr_cpu_at3(g->x, t, h);
        float *o = (float *)fr_cpu_at3(g->out, h, t);
        if (g->mode == FR_ROPE_MODE_TRANSPOSE) {
            for (int64_t i = 0; i < D; i++)
                o[i] = x[i];
            continue;
        }
        float r = 1.0f;
        const float *w = NULL;
        if (g->mode == FR_ROPE_MODE_NORM_ROPE) {
            float ss = 0;
            for (int64_t i = 0; i < D; i++)
                ss += x[i] * x[i];
            r = 1.0f / sqrtf(ss / (float)D + g->eps);
            w = g->norm_w;
        }
        for (int64_t i = 0; i < half; i++) {
            float a = x[i] * r, b = x[i + half] * r;
            if (w) {
                a *= w[i];
                b *= w[i + half];
            }
            const float c = cs[i], s = cs[half + i];
            o[i] = a * c - b * s;
            o[i + half] = b * c + a * s;
        }
    }
}

fr_status fr_cpu_qk_norm_rope(void *vctx, const fr_tensor *x, const fr_tensor *norm_w,
                              const fr_tensor *rope, const fr_tensor *pos, int mode, float eps,
                              fr_tensor *out, fr_error *err) {
    if (x->dtype != FR_DTYPE_F32)
        return fr_cpu_unsupported_dtype(err, "qk_norm_rope", "x", x, "f32 activations only");
    if (out->dtype != FR_DTYPE_F32)
        return fr_cpu_unsupported_dtype(err, "qk_norm_rope", "out", out, "f32 activations only");
    const int64_t T = x->shape[0];
    rope_args g = {x, out, rope, NULL, NULL, mode, eps, x->shape[1], x->shape[2]};
    if (mode != FR_ROPE_MODE_TRANSPOSE) {
        g.pos = (const int32_t *)fr_cpu_at2(pos, 0);
        for (int64_t t = 0; t < T; t++)
            if (g.pos[t] < 0 || g.pos[t] >= rope->shape[0])
                return fr_error_set(err, FR_ERR_RANGE,
                                    "cpu qk_norm_rope: pos[%lld] = %d outside the rope table's "
                                    "%lld positions",
                                    (long long)t, g.pos[t], (long long)rope->shape[0]);
    }
    if (mode == FR_ROPE_MODE_NORM_ROPE) g.norm_w = (const float *)fr_cpu_at2(norm_w, 0);
    fr_cpu_run(vctx, T, 8.0 * (double)T * (double)g.H * (double)g.D, rope_task, &g);
    return FR_OK;
}
