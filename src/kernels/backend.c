/* Backend creation, buffer helpers, and the validating fr_op_* wrappers. Every check that is
 * the same for all backends lives here so the backends can trust their inputs. */
#include "kernels/backend.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kernels/sample_common.h"

bool fr_backend_available(const char *name) {
    if (!name || !strcmp(name, "cpu")) return true;
#ifdef FR_HAVE_CUDA
    if (!strcmp(name, "cuda")) return true;
#endif
    return false;
}

fr_status fr_backend_create(const char *name, const fr_backend_params *params, fr_backend **out,
                            fr_error *err) {
    fr_backend_params defaults = {0};
    if (!params) params = &defaults;
    if (!name || !strcmp(name, "cpu")) return fr_cpu_backend_create(params, out, err);
    if (!strcmp(name, "cuda")) {
#ifdef FR_HAVE_CUDA
        return fr_cuda_backend_create(params, out, err);
#else
        return fr_error_set(err, FR_ERR_UNSUPPORTED,
                            "backend 'cuda': this build has no CUDA support (nvcc was not found)");
#endif
    }
    return fr_error_set(err, FR_ERR_INVALID, "unknown backend '%s' (expected cpu or cuda)", name);
}

void fr_backend_destroy(fr_backend *b) {
    if (b && b->ops->destroy) b->ops->destroy(b->ctx);
}

const char *fr_backend_name(const fr_backend *b) {
    return b->ops->name;
}

bool fr_backend_accepts_act(const fr_backend *b, fr_dtype t) {
    if (t == FR_DTYPE_F32) return true;
    return (unsigned)t < 32 && (b->ops->act_dtypes & (1u << t)) != 0;
}

fr_dtype fr_backend_kv_auto_dtype(const fr_backend *b) {
    return b->ops->kv_auto_dtype ? b->ops->kv_auto_dtype(b->ctx) : FR_DTYPE_F32;
}

bool fr_backend_has_fused(const fr_backend *b, fr_fused_op op) {
    switch (op) {
    case FR_FUSED_MATMUL_MULTI:
        return b->ops->matmul_multi != NULL;
    case FR_FUSED_MATMUL_GLU:
        return b->ops->matmul_glu != NULL;
    case FR_FUSED_ATTN_PREPARE:
        return b->ops->attn_prepare != NULL;
    }
    return false;
}

/* ------------------------------------------------------------------ buffers */

fr_status fr_buffer_alloc(fr_backend *b, size_t size, fr_buffer *buf, fr_error *err) {
    memset(buf, 0, sizeof *buf);
    buf->backend = b;
    fr_status s = b->ops->buffer_alloc(b->ctx, size, buf, err);
    if (s == FR_OK) {
        buf->backend = b;
        buf->size = size;
        buf->owned = true;
    }
    return s;
}

void fr_buffer_free(fr_buffer *buf) {
    if (buf && buf->backend && buf->data) buf->backend->ops->buffer_free(buf->backend->ctx, buf);
    if (buf) memset(buf, 0, sizeof *buf);
}

static fr_status check_range(const fr_buffer *buf, size_t offset, size_t size, const char *what,
                             fr_error *err) {
    if (offset > buf->size || size > buf->size - offset)
        return fr_error_set(err, FR_ERR_RANGE, "%s: [%zu, +%zu) outside buffer of %zu bytes", what,
                            offset, size, buf->size);
    return FR_OK;
}

fr_status fr_buffer_upload(fr_buffer *buf, size_t offset, const void *src, size_t size,
                           fr_error *err) {
    fr_status s = check_range(buf, offset, size, "upload", err);
    if (s) return s;
    return buf->backend->ops->buffer_upload(buf->backend->ctx, buf, offset, src, size, err);
}

fr_status fr_buffer_download(const fr_buffer *buf, size_t offset, void *dst, size_t size,
                             fr_error *err) {
    fr_status s = check_range(buf, offset, size, "download", err);
    if (s) return s;
    return buf->backend->ops->buffer_download(buf->backend->ctx, buf, offset, dst, size, err);
}

fr_status fr_buffer_from_host(fr_backend *b, void *ptr, size_t size, fr_buffer *buf,
                              fr_error *err) {
    if (b->ops->buffer_wrap_host) {
        memset(buf, 0, sizeof *buf);
        fr_status s = b->ops->buffer_wrap_host(b->ctx, ptr, size, buf, err);
        if (s == FR_OK) {
            buf->backend = b;
            buf->size = size;
            buf->owned = false;
        }
        return s;
    }
    fr_status s = fr_buffer_alloc(b, size, buf, err);
    if (s) return s;
    s = fr_buffer_upload(buf, 0, ptr, size, err);
    if (s) fr_buffer_free(buf);
    return s;
}

fr_status fr_buffer_from_host_at(fr_backend *b, void *ptr, size_t size, size_t key, fr_buffer *buf,
                                 size_t *shift, fr_error *err) {
    *shift = 0;
    if (b->ops->buffer_wrap_host || key >= size) return fr_buffer_from_host(b, ptr, size, buf, err);
    const size_t a = FR_BUFFER_PLACE_ALIGN, sh = (a - key % a) % a;
    fr_status s = fr_buffer_alloc(b, size + sh, buf, err);
    if (s) return s;
    s = fr_buffer_upload(buf, sh, ptr, size, err);
    if (s) {
        fr_buffer_free(buf);
        return s;
    }
    *shift = sh;
    return FR_OK;
}

/* ------------------------------------------------------------------ streams and graphs */

#define OPTIONAL_CALL(b, fn, ...) ((b)->ops->fn ? (b)->ops->fn((b)->ctx, __VA_ARGS__) : FR_OK)

fr_status fr_backend_begin(fr_backend *b, fr_error *err) {
    return OPTIONAL_CALL(b, begin, err);
}
fr_status fr_backend_end(fr_backend *b, fr_error *err) {
    return OPTIONAL_CALL(b, end, err);
}
fr_status fr_backend_sync(fr_backend *b, fr_error *err) {
    return OPTIONAL_CALL(b, sync, err);
}

static fr_status unsupported(const fr_backend *b, const char *op, fr_error *err) {
    return fr_error_set(err, FR_ERR_UNSUPPORTED, "backend '%s' does not implement %s", b->ops->name,
                        op);
}

fr_status fr_graph_capture_begin(fr_backend *b, fr_error *err) {
    if (!b->ops->graph_capture_begin) return unsupported(b, "graph capture", err);
    return b->ops->graph_capture_begin(b->ctx, err);
}
fr_status fr_graph_capture_end(fr_backend *b, void **graph, fr_error *err) {
    if (!b->ops->graph_capture_end) return unsupported(b, "graph capture", err);
    return b->ops->graph_capture_end(b->ctx, graph, err);
}
fr_status fr_graph_launch(fr_backend *b, void *graph, fr_error *err) {
    if (!b->ops->graph_launch) return unsupported(b, "graph launch", err);
    return b->ops->graph_launch(b->ctx, graph, err);
}
void fr_graph_free(fr_backend *b, void *graph) {
    if (graph && b->ops->graph_free) b->ops->graph_free(b->ctx, graph);
}

/* ------------------------------------------------------------------ validation helpers */

typedef struct {
    fr_backend *b;
    const char *op;
    fr_error *err;
} vctx;

static fr_status bad(vctx *v, const char *name, const fr_tensor *t, const char *detail) {
    char d[96];
    if (t)
        fr_tensor_describe(t, d, sizeof d);
    else
        snprintf(d, sizeof d, "(null)");
    return fr_error_set(v->err, FR_ERR_INVALID, "%s on %s: %s %s: %s", v->op, v->b->ops->name, name,
                        d, detail);
}

/* A tensor that must exist, live in a buffer of this backend, fit inside it, have `ndim` dims
 * (0 = any) and one of the dtypes in `mask` (bit per fr_dtype). */
static fr_status need(vctx *v, const char *name, const fr_tensor *t, int ndim, unsigned mask) {
    if (!t) return bad(v, name, NULL, "missing");
    if (!t->buf || !t->buf->data) return bad(v, name, t, "has no buffer");
    if (t->buf->backend != v->b) return bad(v, name, t, "lives in another backend's buffer");
    if (!fr_dtype_get(t->dtype) || !(mask & (1u << t->dtype)))
        return bad(v, name, t, "dtype not accepted here");
    if (t->ndim < 1 || t->ndim > FR_MAX_DIMS || (ndim && t->ndim != ndim))
        return bad(v, name, t, "wrong number of dimensions");
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] <= 0) return bad(v, name, t, "empty or negative dimension");
    if (fr_dtype_get(t->dtype)->block_elems > 1 &&
        fr_dtype_row_bytes(t->dtype, t->shape[t->ndim - 1]) == 0)
        return bad(v, name, t, "row length is not a multiple of the quant block");
    size_t span = fr_tensor_span_bytes(t);
    if (t->offset > t->buf->size || span > t->buf->size - t->offset)
        return bad(v, name, t, "extends past the end of its buffer");
    if (!fr_tensor_rows_dense(t)) return bad(v, name, t, "innermost dimension not dense");
    return FR_OK;
}

static fr_status need_shape(vctx *v, const char *name, const fr_tensor *t, int dim, int64_t n) {
    if (t->shape[dim] != n) {
        char detail[96];
        snprintf(detail, sizeof detail, "dim %d is %lld, expected %lld", dim,
                 (long long)t->shape[dim], (long long)n);
        return bad(v, name, t, detail);
    }
    return FR_OK;
}

static fr_status need_op(vctx *v, const void *fn) {
    return fn ? FR_OK : unsupported(v->b, v->op, v->err);
}

#define BIT(t)     (1u << (t))
#define ACT_TYPES  (BIT(FR_DTYPE_F32) | BIT(FR_DTYPE_F16) | BIT(FR_DTYPE_BF16))
#define F32_ONLY   BIT(FR_DTYPE_F32)
#define I32_ONLY   BIT(FR_DTYPE_I32)
#define ANY_WEIGHT 0xffffffffu & ~BIT(FR_DTYPE_I32)

/* ------------------------------------------------------------------ ops */

fr_status fr_op_embedding(fr_backend *b, const fr_tensor *table, const fr_tensor *ids,
                          fr_tensor *out, fr_error *err) {
    vctx v = {b, "embedding", err};
    FR_TRY(need_op(&v, b->ops->embedding));
    FR_TRY(need(&v, "table", table, 2, ANY_WEIGHT));
    FR_TRY(need(&v, "ids", ids, 1, I32_ONLY));
    FR_TRY(need(&v, "out", out, 2, ACT_TYPES));
    FR_TRY(need_shape(&v, "out", out, 0, ids->shape[0]));
    FR_TRY(need_shape(&v, "out", out, 1, table->shape[1]));
    return b->ops->embedding(b->ctx, table, ids, out, err);
}

fr_status fr_op_rms_norm(fr_backend *b, const fr_tensor *x, const fr_tensor *w, float eps,
                         fr_tensor *out, fr_error *err) {
    vctx v = {b, "rms_norm", err};
    FR_TRY(need_op(&v, b->ops->rms_norm));
    FR_TRY(need(&v, "x", x, 2, ACT_TYPES));
    FR_TRY(need(&v, "w", w, 1, F32_ONLY));
    FR_TRY(need(&v, "out", out, 2, ACT_TYPES));
    FR_TRY(need_shape(&v, "w", w, 0, x->shape[1]));
    FR_TRY(need_shape(&v, "out", out, 0, x->shape[0]));
    FR_TRY(need_shape(&v, "out", out, 1, x->shape[1]));
    return b->ops->rms_norm(b->ctx, x, w, eps, out, err);
}

/* x [M,K], w [N,K], bias [N] or NULL, out [M,N]: the argument names carry a suffix in the
 * fused ops ("w[1]", "w_up"). */
static fr_status need_matmul(vctx *v, const fr_tensor *x, const char *wn, const fr_tensor *w,
                             const char *bn, const fr_tensor *bias, const char *on,
                             const fr_tensor *out) {
    FR_TRY(need(v, "x", x, 2, ACT_TYPES));
    FR_TRY(need(v, wn, w, 2, ANY_WEIGHT));
    FR_TRY(need(v, on, out, 2, ACT_TYPES));
    FR_TRY(need_shape(v, wn, w, 1, x->shape[1]));
    FR_TRY(need_shape(v, on, out, 0, x->shape[0]));
    FR_TRY(need_shape(v, on, out, 1, w->shape[0]));
    if (bias) {
        FR_TRY(need(v, bn, bias, 1, F32_ONLY));
        FR_TRY(need_shape(v, bn, bias, 0, w->shape[0]));
    }
    return FR_OK;
}

fr_status fr_op_matmul(fr_backend *b, const fr_tensor *x, const fr_tensor *w, const fr_tensor *bias,
                       fr_tensor *out, fr_error *err) {
    vctx v = {b, "matmul", err};
    FR_TRY(need_op(&v, b->ops->matmul));
    FR_TRY(need_matmul(&v, x, "w", w, "bias", bias, "out", out));
    return b->ops->matmul(b->ctx, x, w, bias, out, err);
}

fr_status fr_op_matmul_multi(fr_backend *b, const fr_tensor *x, int n, const fr_tensor *const *w,
                             const fr_tensor *const *bias, fr_tensor *const *out, fr_error *err) {
    vctx v = {b, "matmul_multi", err};
    FR_TRY(need_op(&v, b->ops->matmul_multi));
    if (n < 1 || n > 3)
        return fr_error_set(err, FR_ERR_INVALID, "matmul_multi: %d matrices (1 to 3)", n);
    for (int i = 0; i < n; i++) {
        char wn[8], bn[12], on[12];
        snprintf(wn, sizeof wn, "w[%d]", i);
        snprintf(bn, sizeof bn, "bias[%d]", i);
        snprintf(on, sizeof on, "out[%d]", i);
        FR_TRY(need_matmul(&v, x, wn, w[i], bn, bias ? bias[i] : NULL, on, out[i]));
    }
    return b->ops->matmul_multi(b->ctx, x, n, w, bias, out, err);
}

fr_status fr_op_matmul_glu(fr_backend *b, const fr_tensor *x, const fr_tensor *w_gate,
                           const fr_tensor *w_up, const fr_tensor *b_gate, const fr_tensor *b_up,
                           fr_tensor *gate, fr_tensor *up, fr_tensor *out, fr_error *err) {
    vctx v = {b, "matmul_glu", err};
    FR_TRY(need_op(&v, b->ops->matmul_glu));
    FR_TRY(need_matmul(&v, x, "w_gate", w_gate, "b_gate", b_gate, "gate", gate));
    FR_TRY(need_matmul(&v, x, "w_up", w_up, "b_up", b_up, "up", up));
    FR_TRY(need_matmul(&v, x, "w_gate", w_gate, "b_gate", b_gate, "out", out));
    return b->ops->matmul_glu(b->ctx, x, w_gate, w_up, b_gate, b_up, gate, up, out, err);
}

fr_status fr_op_qk_norm_rope(fr_backend *b, const fr_tensor *x, const fr_tensor *norm_w,
                             const fr_tensor *rope, const fr_tensor *pos, int mode, float eps,
                             fr_tensor *out, fr_error *err) {
    vctx v = {b, "qk_norm_rope", err};
    FR_TRY(need_op(&v, b->ops->qk_norm_rope));
    if (mode < FR_ROPE_MODE_TRANSPOSE || mode > FR_ROPE_MODE_ROPE)
        return fr_error_set(err, FR_ERR_INVALID, "qk_norm_rope: unknown mode %d", mode);
    FR_TRY(need(&v, "x", x, 3, ACT_TYPES));
    FR_TRY(need(&v, "out", out, 3, ACT_TYPES));
    const int64_t T = x->shape[0], H = x->shape[1], D = x->shape[2];
    FR_TRY(need_shape(&v, "out", out, 0, H));
    FR_TRY(need_shape(&v, "out", out, 1, T));
    FR_TRY(need_shape(&v, "out", out, 2, D));
    if (mode != FR_ROPE_MODE_TRANSPOSE) {
        if (D % 2) return bad(&v, "x", x, "head_dim must be even for RoPE");
        FR_TRY(need(&v, "rope", rope, 2, F32_ONLY));
        FR_TRY(need_shape(&v, "rope", rope, 1, D));
        FR_TRY(need(&v, "pos", pos, 1, I32_ONLY));
        FR_TRY(need_shape(&v, "pos", pos, 0, T));
    }
    if (mode == FR_ROPE_MODE_NORM_ROPE) {
        FR_TRY(need(&v, "norm_w", norm_w, 1, F32_ONLY));
        FR_TRY(need_shape(&v, "norm_w", norm_w, 0, D));
    }
    return b->ops->qk_norm_rope(b->ctx, x, norm_w, rope, pos, mode, eps, out, err);
}

fr_status fr_op_kv_append(fr_backend *b, const fr_tensor *kv, const fr_tensor *pos,
                          fr_tensor *cache, fr_error *err) {
    vctx v = {b, "kv_append", err};
    FR_TRY(need_op(&v, b->ops->kv_append));
    FR_TRY(need(&v, "kv", kv, 3, ACT_TYPES));
    FR_TRY(need(&v, "pos", pos, 1, I32_ONLY));
    FR_TRY(need(&v, "cache", cache, 3, ACT_TYPES));
    FR_TRY(need_shape(&v, "pos", pos, 0, kv->shape[1]));
    FR_TRY(need_shape(&v, "cache", cache, 0, kv->shape[0]));
    FR_TRY(need_shape(&v, "cache", cache, 2, kv->shape[2]));
    return b->ops->kv_append(b->ctx, kv, pos, cache, err);
}

fr_status fr_op_attn_prepare(fr_backend *b, const fr_tensor *q, const fr_tensor *k,
                             const fr_tensor *v, const fr_tensor *q_norm, const fr_tensor *k_norm,
                             const fr_tensor *rope, const fr_tensor *pos, int mode, float eps,
                             fr_tensor *q_out, fr_tensor *k_cache, fr_tensor *v_cache,
                             fr_error *err) {
    vctx c = {b, "attn_prepare", err}; /* not `v`: that is the v tensor */
    FR_TRY(need_op(&c, b->ops->attn_prepare));
    /* no transpose-only mode: the fusion exists for the RoPE paths */
    if (mode != FR_ROPE_MODE_NORM_ROPE && mode != FR_ROPE_MODE_ROPE)
        return fr_error_set(err, FR_ERR_INVALID,
                            "attn_prepare: mode %d (expected %d norm+rope or %d rope)", mode,
                            FR_ROPE_MODE_NORM_ROPE, FR_ROPE_MODE_ROPE);
    FR_TRY(need(&c, "q", q, 3, ACT_TYPES));
    FR_TRY(need(&c, "k", k, 3, ACT_TYPES));
    FR_TRY(need(&c, "v", v, 3, ACT_TYPES));
    FR_TRY(need(&c, "q_out", q_out, 3, ACT_TYPES));
    FR_TRY(need(&c, "k_cache", k_cache, 3, ACT_TYPES));
    FR_TRY(need(&c, "v_cache", v_cache, 3, ACT_TYPES));
    FR_TRY(need(&c, "rope", rope, 2, F32_ONLY));
    FR_TRY(need(&c, "pos", pos, 1, I32_ONLY));
    const int64_t T = q->shape[0], H = q->shape[1], D = q->shape[2], Hkv = k->shape[1];
    if (D % 2) return bad(&c, "q", q, "head_dim must be even for RoPE");
    FR_TRY(need_shape(&c, "k", k, 0, T));
    FR_TRY(need_shape(&c, "k", k, 2, D));
    for (int d = 0; d < 3; d++)
        FR_TRY(need_shape(&c, "v", v, d, k->shape[d]));
    FR_TRY(need_shape(&c, "q_out", q_out, 0, H));
    FR_TRY(need_shape(&c, "q_out", q_out, 1, T));
    FR_TRY(need_shape(&c, "q_out", q_out, 2, D));
    FR_TRY(need_shape(&c, "k_cache", k_cache, 0, Hkv));
    FR_TRY(need_shape(&c, "k_cache", k_cache, 2, D));
    for (int d = 0; d < 3; d++)
        FR_TRY(need_shape(&c, "v_cache", v_cache, d, k_cache->shape[d]));
    FR_TRY(need_shape(&c, "rope", rope, 1, D));
    FR_TRY(need_shape(&c, "pos", pos, 0, T));
    if (mode == FR_ROPE_MODE_NORM_ROPE) {
        FR_TRY(need(&c, "q_norm", q_norm, 1, F32_ONLY));
        FR_TRY(need_shape(&c, "q_norm", q_norm, 0, D));
        FR_TRY(need(&c, "k_norm", k_norm, 1, F32_ONLY));
        FR_TRY(need_shape(&c, "k_norm", k_norm, 0, D));
    }
    return b->ops->attn_prepare(b->ctx, q, k, v, q_norm, k_norm, rope, pos, mode, eps, q_out,
                                k_cache, v_cache, err);
}

fr_status fr_op_attention(fr_backend *b, const fr_tensor *q, const fr_tensor *k_cache,
                          const fr_tensor *v_cache, const fr_tensor *pos,
                          const fr_attention_params *p, fr_tensor *out, fr_error *err) {
    vctx v = {b, "attention", err};
    FR_TRY(need_op(&v, b->ops->attention));
    FR_TRY(need(&v, "q", q, 3, ACT_TYPES));
    FR_TRY(need(&v, "k_cache", k_cache, 3, ACT_TYPES));
    FR_TRY(need(&v, "v_cache", v_cache, 3, ACT_TYPES));
    FR_TRY(need(&v, "pos", pos, 1, I32_ONLY));
    FR_TRY(need(&v, "out", out, 3, ACT_TYPES));
    const int64_t H = q->shape[0], T = q->shape[1], D = q->shape[2], Hkv = k_cache->shape[0];
    if (Hkv <= 0 || H % Hkv) return bad(&v, "k_cache", k_cache, "kv heads must divide heads");
    FR_TRY(need_shape(&v, "k_cache", k_cache, 2, D));
    for (int d = 0; d < 3; d++)
        FR_TRY(need_shape(&v, "v_cache", v_cache, d, k_cache->shape[d]));
    FR_TRY(need_shape(&v, "pos", pos, 0, T));
    FR_TRY(need_shape(&v, "out", out, 0, T));
    FR_TRY(need_shape(&v, "out", out, 1, H));
    FR_TRY(need_shape(&v, "out", out, 2, D));
    if (!p || p->window < 0)
        return fr_error_set(err, FR_ERR_INVALID, "attention: missing params or negative window");
    return b->ops->attention(b->ctx, q, k_cache, v_cache, pos, p, out, err);
}

fr_status fr_op_residual_norm(fr_backend *b, const fr_tensor *residual, const fr_tensor *x,
                              const fr_tensor *layer_scale, const fr_tensor *norm_w, float eps,
                              fr_tensor *res_out, fr_tensor *norm_out, fr_error *err) {
    vctx v = {b, "residual_norm", err};
    FR_TRY(need_op(&v, b->ops->residual_norm));
    FR_TRY(need(&v, "residual", residual, 2, ACT_TYPES));
    FR_TRY(need(&v, "x", x, 2, ACT_TYPES));
    FR_TRY(need(&v, "norm_w", norm_w, 1, F32_ONLY));
    FR_TRY(need(&v, "res_out", res_out, 2, ACT_TYPES));
    FR_TRY(need(&v, "norm_out", norm_out, 2, ACT_TYPES));
    const int64_t T = residual->shape[0], C = residual->shape[1];
    const fr_tensor *same[] = {x, res_out, norm_out};
    const char *names[] = {"x", "res_out", "norm_out"};
    for (int i = 0; i < 3; i++) {
        FR_TRY(need_shape(&v, names[i], same[i], 0, T));
        FR_TRY(need_shape(&v, names[i], same[i], 1, C));
    }
    FR_TRY(need_shape(&v, "norm_w", norm_w, 0, C));
    if (layer_scale) {
        FR_TRY(need(&v, "layer_scale", layer_scale, 1, F32_ONLY));
        FR_TRY(need_shape(&v, "layer_scale", layer_scale, 0, C));
    }
    return b->ops->residual_norm(b->ctx, residual, x, layer_scale, norm_w, eps, res_out, norm_out,
                                 err);
}

static fr_status same_2d(vctx *v, const char *na, const fr_tensor *a, const char *nb,
                         const fr_tensor *b) {
    FR_TRY(need(v, na, a, 2, ACT_TYPES));
    FR_TRY(need(v, nb, b, 2, ACT_TYPES));
    FR_TRY(need_shape(v, nb, b, 0, a->shape[0]));
    return need_shape(v, nb, b, 1, a->shape[1]);
}

fr_status fr_op_silu_mul(fr_backend *b, const fr_tensor *gate, const fr_tensor *up, fr_tensor *out,
                         fr_error *err) {
    vctx v = {b, "silu_mul", err};
    FR_TRY(need_op(&v, b->ops->silu_mul));
    FR_TRY(same_2d(&v, "gate", gate, "up", up));
    FR_TRY(same_2d(&v, "gate", gate, "out", out));
    return b->ops->silu_mul(b->ctx, gate, up, out, err);
}

fr_status fr_op_add(fr_backend *b, const fr_tensor *a, const fr_tensor *bb, fr_tensor *out,
                    fr_error *err) {
    vctx v = {b, "add", err};
    FR_TRY(need_op(&v, b->ops->add));
    FR_TRY(same_2d(&v, "a", a, "b", bb));
    FR_TRY(same_2d(&v, "a", a, "out", out));
    return b->ops->add(b->ctx, a, bb, out, err);
}

fr_status fr_op_scaled_add(fr_backend *b, const fr_tensor *a, const fr_tensor *bb,
                           const fr_tensor *scale, fr_tensor *out, fr_error *err) {
    vctx v = {b, "scaled_add", err};
    FR_TRY(need_op(&v, b->ops->scaled_add));
    FR_TRY(same_2d(&v, "a", a, "b", bb));
    FR_TRY(same_2d(&v, "a", a, "out", out));
    FR_TRY(need(&v, "scale", scale, 1, F32_ONLY));
    FR_TRY(need_shape(&v, "scale", scale, 0, a->shape[1]));
    return b->ops->scaled_add(b->ctx, a, bb, scale, out, err);
}

fr_status fr_op_argmax(fr_backend *b, const fr_tensor *x, fr_tensor *out, fr_error *err) {
    vctx v = {b, "argmax", err};
    FR_TRY(need_op(&v, b->ops->argmax));
    FR_TRY(need(&v, "x", x, 2, ACT_TYPES));
    FR_TRY(need(&v, "out", out, 1, I32_ONLY));
    FR_TRY(need_shape(&v, "out", out, 0, x->shape[0]));
    return b->ops->argmax(b->ctx, x, out, err);
}

fr_status fr_op_sample(fr_backend *b, const fr_tensor *logits, const fr_sample_params *p,
                       fr_tensor *state, fr_tensor *out, fr_error *err) {
    vctx v = {b, "sample", err};
    FR_TRY(need_op(&v, b->ops->sample));
    FR_TRY(need(&v, "logits", logits, 2, F32_ONLY));
    FR_TRY(need(&v, "out", out, 1, I32_ONLY));
    FR_TRY(need_shape(&v, "out", out, 0, logits->shape[0]));
    FR_TRY(need(&v, "state", state, 1, I32_ONLY));
    /* the backends read the state as an fr_sample_state: whole, 8-byte aligned */
    if (state->shape[0] < FR_SAMPLE_STATE_WORDS)
        return bad(&v, "state", state, "needs FR_SAMPLE_STATE_WORDS elements");
    if ((((uintptr_t)state->buf->data + state->offset) & 7) != 0)
        return bad(&v, "state", state, "not 8-byte aligned");
    if (logits->shape[1] > FR_SMP_MAX_VOCAB || logits->shape[0] > INT32_MAX)
        return bad(&v, "logits", logits, "more than 2^23 columns or 2^31 rows");
    FR_TRY(fr_sample_params_check(p, err));
    return b->ops->sample(b->ctx, logits, p, state, out, err);
}

fr_status fr_sample_params_check(const fr_sample_params *p, fr_error *err) {
    if (!p) return fr_error_set(err, FR_ERR_INVALID, "sample: no parameters");
    if (isnan(p->temperature) ||
        (p->temperature > 0 && fr_smp_inv_temperature(p->temperature) == 0))
        return fr_error_set(err, FR_ERR_INVALID,
                            "sample: temperature %g (its reciprocal must be a normal float)",
                            p->temperature);
    if (p->temperature > 0 &&
        (!(p->top_p > 0) || !(p->top_p <= 1) || !(p->min_p >= 0) || !(p->min_p <= 1)))
        return fr_error_set(err, FR_ERR_INVALID,
                            "sample: top_p %g must be in (0, 1] and min_p %g in [0, 1]", p->top_p,
                            p->min_p);
    return FR_OK;
}

void fr_sample_state_pack(uint64_t seed, uint64_t counter, int32_t *words) {
    const fr_sample_state st = {.seed = seed, .counter = counter};
    memcpy(words, &st, sizeof st);
}

/* ------------------------------------------------------------------ RoPE tables */

static double rope_inv_freq(const fr_rope_config *c, int i) {
    const int D = c->head_dim;
    double inv = 1.0 / pow(c->theta, (double)(2 * i) / (double)D);
    if (c->factor > 0) {
        /* llama3: long wavelengths slowed by `factor`, short kept, smooth blend in between */
        const double old = c->original_max_pos > 0 ? c->original_max_pos : 8192;
        const double low_wl = old / c->low_freq_factor, high_wl = old / c->high_freq_factor;
        const double wl = 2.0 * M_PI / inv;
        if (wl > low_wl) {
            inv = inv / c->factor;
        } else if (wl >= high_wl) {
            double smooth =
                (old / wl - c->low_freq_factor) / (c->high_freq_factor - c->low_freq_factor);
            inv = (1.0 - smooth) * inv / c->factor + smooth * inv;
        }
    }
    if (c->linear_factor > 0) inv /= c->linear_factor;
    return inv;
}

void fr_rope_table_fill(const fr_rope_config *c, int n_pos, float *table) {
    const int D = c->head_dim, half = D / 2;
    for (int i = 0; i < half; i++) {
        const double f = rope_inv_freq(c, i);
        for (int p = 0; p < n_pos; p++) {
            const double a = (double)p * f;
            table[(size_t)p * D + i] = (float)cos(a);
            table[(size_t)p * D + half + i] = (float)sin(a);
        }
    }
}
