/* CPU backend: host buffers (mmapped weights are wrapped, never copied), direct op calls, a
 * persistent thread pool. begin/end/sync have nothing to wait for. */
#include "kernels/cpu/cpu_backend.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

static void cpu_destroy(void *vctx) {
    fr_cpu_ctx *ctx = vctx;
    fr_threadpool_destroy(ctx->pool);
    free(ctx->self);
    free(ctx);
}

static fr_status cpu_buffer_alloc(void *ctx, size_t size, fr_buffer *buf, fr_error *err) {
    buf->data = fr_aligned_alloc(size);
    if (!buf->data)
        return fr_error_set(err, FR_ERR_NOMEM, "cpu: cannot allocate %zu bytes", size);
    return FR_OK;
}

static void cpu_buffer_free(void *ctx, fr_buffer *buf) {
    if (buf->owned) fr_aligned_free(buf->data);
    buf->data = NULL;
}

static fr_status cpu_buffer_upload(void *ctx, fr_buffer *buf, size_t off, const void *src,
                                   size_t n, fr_error *err) {
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
    .destroy = cpu_destroy,
    .buffer_alloc = cpu_buffer_alloc,
    .buffer_free = cpu_buffer_free,
    .buffer_upload = cpu_buffer_upload,
    .buffer_download = cpu_buffer_download,
    .buffer_wrap_host = cpu_buffer_wrap_host,
};

fr_status fr_cpu_backend_create(const fr_backend_params *params, fr_backend **out, fr_error *err) {
    fr_cpu_ctx *ctx = calloc(1, sizeof *ctx);
    fr_backend *b = calloc(1, sizeof *b);
    if (!ctx || !b) goto nomem;
    ctx->pool = fr_threadpool_create(params ? params->n_threads : 0);
    if (!ctx->pool) goto nomem;
    ctx->n_threads = fr_threadpool_size(ctx->pool);
    ctx->self = b;
    b->ops = &cpu_ops;
    b->ctx = ctx;
    *out = b;
    return FR_OK;
nomem:
    free(ctx);
    free(b);
    return fr_error_set(err, FR_ERR_NOMEM, "cpu backend: out of memory");
}
