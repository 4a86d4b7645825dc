/* Embedding lookup and argmax.
 *
 * argmax NaN policy: NaN entries are skipped (they never win); a row that is entirely NaN gives
 * index 0. Ties go to the first (lowest) index, also when a row is split across threads. */
#include <math.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/matmul_quant.h"

typedef struct {
    const fr_tensor *table, *out;
    const int32_t *ids;
    int64_t cols;
    size_t row_bytes;
} embed_args;

static void embed_task(void *varg, int64_t t, int thread) {
    const embed_args *g = varg;
    const char *row = (const char *)g->table->buf->data + g->table->offset +
                      (int64_t)g->ids[t] * g->table->stride[0];
    float *o = (float *)fr_cpu_at2(g->out, t);
    if (fr_dtype_get(g->table->dtype)->quantized)
        fr_cpu_dequantize_row(g->table->dtype, row, o, g->cols);
    else
        fr_cpu_row_to_f32(g->table->dtype, row, o, g->cols);
}

fr_status fr_cpu_embedding(void *vctx, const fr_tensor *table, const fr_tensor *ids, fr_tensor *out,
                           fr_error *err) {
    if (out->dtype != FR_DTYPE_F32)
        return fr_cpu_unsupported_dtype(err, "embedding", "out", out, "f32 activations only");
    if (fr_dtype_get(table->dtype)->quantized && !fr_cpu_dequantize_row)
        return fr_error_set(err, FR_ERR_UNSUPPORTED,
                            "cpu embedding: table dtype %s not supported (no quantized support "
                            "in this build)",
                            fr_dtype_name(table->dtype));
    const int64_t T = ids->shape[0], V = table->shape[0];
    const int32_t *id = (const int32_t *)fr_cpu_at2(ids, 0);
    for (int64_t t = 0; t < T; t++)
        if (id[t] < 0 || id[t] >= V)
            return fr_error_set(err, FR_ERR_RANGE,
                                "cpu embedding: ids[%lld] = %d outside the table's %lld rows",
                                (long long)t, id[t], (long long)V);
    embed_args g = {table, out, id, table->shape[1], 0};
    fr_cpu_run(vctx, T, 8.0 * (double)T * (double)table->shape[1], embed_task, &g);
    return FR_OK;
}

/* ---------------------------------------------------------------- argmax */

#define ARGMAX_CHUNK 16384

typedef struct {
    const fr_tensor *x;
    int64_t cols, chunks_per_row;
    int64_t *best_idx; /* per task: index of the chunk's maximum, -1 when all NaN */
    float *best_val;
} argmax_args;

static void argmax_task(void *varg, int64_t task, int thread) {
    const argmax_args *g = varg;
    const int64_t row = task / g->chunks_per_row, c0 = (task % g->chunks_per_row) * ARGMAX_CHUNK;
    const int64_t c1 = g->cols - c0 < ARGMAX_CHUNK ? g->cols : c0 + ARGMAX_CHUNK;
    const float *x = (const float *)fr_cpu_at2(g->x, row);
    int64_t bi = -1;
    float bv = 0;
    for (int64_t i = c0; i < c1; i++) {
        /* `!(x <= bv)` would let NaN win; `x > bv` never holds for NaN, so NaN is skipped */
        if (bi < 0 ? !isnan(x[i]) : x[i] > bv) {
            bi = i;
            bv = x[i];
        }
    }
    g->best_idx[task] = bi;
    g->best_val[task] = bv;
}

fr_status fr_cpu_argmax(void *vctx, const fr_tensor *x, fr_tensor *out, fr_error *err) {
    fr_cpu_ctx *ctx = vctx;
    if (x->dtype != FR_DTYPE_F32)
        return fr_cpu_unsupported_dtype(err, "argmax", "x", x, "f32 activations only");
    const int64_t T = x->shape[0], V = x->shape[1];
    argmax_args g = {x, V, (V + ARGMAX_CHUNK - 1) / ARGMAX_CHUNK, NULL, NULL};
    const int64_t tasks = T * g.chunks_per_row;
    g.best_idx = fr_cpu_scratch(ctx, 0, (size_t)tasks * (sizeof(int64_t) + sizeof(float)));
    if (!g.best_idx) return fr_error_set(err, FR_ERR_NOMEM, "cpu argmax: out of memory");
    g.best_val = (float *)(g.best_idx + tasks);
    fr_cpu_run(ctx, tasks, 4.0 * (double)T * (double)V, argmax_task, &g);
    int32_t *o = (int32_t *)fr_cpu_at2(out, 0);
    for (int64_t t = 0; t < T; t++) {
        int64_t bi = -1;
        float bv = 0;
        for (int64_t c = 0; c < g.chunks_per_row; c++) {
            const int64_t i = g.best_idx[t * g.chunks_per_row + c];
            const float v = g.best_val[t * g.chunks_per_row + c];
            if (i >= 0 && (bi < 0 || v > bv)) { /* strict: the earlier chunk keeps a tie */
                bi = i;
                bv = v;
            }
        }
        *(int32_t *)((char *)o + t * out->stride[0]) = bi < 0 ? 0 : (int32_t)bi;
    }
    return FR_OK;
}
