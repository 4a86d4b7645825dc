/* CUDA backend: device buffers, one stream per context, CUDA graphs through stream capture, and
 * the ops table. Weights are uploaded once (no host wrapping: buffer_wrap_host stays NULL so
 * fr_buffer_from_host allocates and copies). Uploads and downloads are ordered on the context's
 * stream and wait for it, so a caller may write new positions between graph launches. */
#include <stdlib.h>

#include "kernels/cuda/cuda_backend.h"

/* Scratch sizes: fixed at creation so ops never allocate (and stay capturable). */
#define FR_CU_LT_WORKSPACE    (32u << 20)
#define FR_CU_WCONV_BYTES     (64u << 20)
#define FR_CU_ATTN_PART_BYTES (16u << 20)
#define FR_CU_XQ_ELEMS        (8u << 16) /* 8 activation rows of up to 65536 elements */

static void cuda_destroy(void *vctx) {
    fr_cuda_ctx *c = (fr_cuda_ctx *)vctx;
    if (!c) return;
    cudaSetDevice(c->device);
    if (c->stream) {
        if (c->capturing) {
            cudaGraph_t g = NULL;
            cudaStreamEndCapture(c->stream, &g);
            if (g) cudaGraphDestroy(g);
        }
        cudaStreamSynchronize(c->stream);
    }
    fr_cuda_matmul_release(c);
    if (c->lt) cublasLtDestroy(c->lt);
    cudaFree(c->lt_ws);
    cudaFree(c->wconv);
    cudaFree(c->attn_part);
    cudaFree(c->xq);
    cudaFree(c->xq_scale);
    cudaFree(c->xq_blk);
    if (c->stream) cudaStreamDestroy(c->stream);
    cudaGetLastError(); /* nothing to report from a destructor; don't leave a sticky error */
    free(c->self);
    free(c);
}

/* ------------------------------------------------------------------ buffers */

static fr_status cuda_buffer_alloc(void *vctx, size_t size, fr_buffer *buf, fr_error *err) {
    fr_cuda_ctx *c = (fr_cuda_ctx *)vctx;
    if (c->capturing)
        return fr_error_set(err, FR_ERR_INVALID,
                            "cuda buffer_alloc: not allowed during graph capture");
    fr_status s = fr_cu_enter(c, err, "buffer_alloc");
    if (s) return s;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, size ? size : 1);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        return fr_error_set(err, FR_ERR_NOMEM,
                            "cuda buffer_alloc: cannot allocate %zu bytes on device %d (%zu of "
                            "%zu bytes free)",
                            size, c->device, free_b, total_b);
    }
    if (e != cudaSuccess) return fr_cu_fail(err, "buffer_alloc", e);
    buf->data = p;
    return FR_OK;
}

static void cuda_buffer_free(void *vctx, fr_buffer *buf) {
    fr_cuda_ctx *c = (fr_cuda_ctx *)vctx;
    cudaSetDevice(c->device);
    if (buf->owned) cudaFree(buf->data);
    buf->data = NULL;
}

static fr_status cuda_copy(fr_cuda_ctx *c, void *dst, const void *src, size_t n,
                           cudaMemcpyKind kind, const char *op, fr_error *err) {
    if (c->capturing)
        return fr_error_set(err, FR_ERR_INVALID, "cuda %s: not allowed during graph capture", op);
    fr_status s = fr_cu_enter(c, err, op);
    if (s) return s;
    if (n == 0) return FR_OK;
    /* Ordered after everything queued on the stream, and complete on return. */
    cudaError_t e = cudaMemcpyAsync(dst, src, n, kind, c->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
    return e == cudaSuccess ? FR_OK : fr_cu_fail(err, op, e);
}

static fr_status cuda_buffer_upload(void *vctx, fr_buffer *buf, size_t off, const void *src,
                                    size_t n, fr_error *err) {
    return cuda_copy((fr_cuda_ctx *)vctx, (char *)buf->data + off, src, n, cudaMemcpyHostToDevice,
                     "buffer_upload", err);
}

static fr_status cuda_buffer_download(void *vctx, const fr_buffer *buf, size_t off, void *dst,
                                      size_t n, fr_error *err) {
    return cuda_copy((fr_cuda_ctx *)vctx, dst, (const char *)buf->data + off, n,
                     cudaMemcpyDeviceToHost, "buffer_download", err);
}

/* ------------------------------------------------------------------ stream and graphs */

static fr_status cuda_begin(void *vctx, fr_error *err) {
    return fr_cu_enter((fr_cuda_ctx *)vctx, err, "begin");
}

static fr_status cuda_end(void *vctx, fr_error *err) {
    /* Everything is already queued; report launch errors that nobody has collected yet. */
    return fr_cu_launched(err, "end");
}

static fr_status cuda_sync(void *vctx, fr_error *err) {
    fr_cuda_ctx *c = (fr_cuda_ctx *)vctx;
    if (c->capturing)
        return fr_error_set(err, FR_ERR_INVALID, "cuda sync: not allowed during graph capture");
    fr_status s = fr_cu_enter(c, err, "sync");
    if (s) return s;
    cudaError_t e = cudaStreamSynchronize(c->stream);
    return e == cudaSuccess ? FR_OK : fr_cu_fail(err, "sync", e);
}

static fr_status cuda_capture_begin(void *vctx, fr_error *err) {
    fr_cuda_ctx *c = (fr_cuda_ctx *)vctx;
    if (c->capturing)
        return fr_error_set(err, FR_ERR_INVALID, "cuda graph_capture_begin: already capturing");
    fr_status s = fr_cu_enter(c, err, "graph_capture_begin");
    if (s) return s;
    /* Thread-local: other threads (other sessions) may keep allocating while we record. */
    cudaError_t e = cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) return fr_cu_fail(err, "graph_capture_begin", e);
    c->capturing = true;
    return FR_OK;
}

static fr_status cuda_capture_end(void *vctx, void **graph, fr_error *err) {
    fr_cuda_ctx *c = (fr_cuda_ctx *)vctx;
    *graph = NULL;
    if (!c->capturing)
        return fr_error_set(err, FR_ERR_INVALID, "cuda graph_capture_end: no capture in progress");
    c->capturing = false;
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(c->stream, &g);
    if (e != cudaSuccess) {
        if (g) cudaGraphDestroy(g);
        return fr_cu_fail(err, "graph_capture_end (an op inside the capture failed?)", e);
    }
    cudaGraphExec_t exec = NULL;
    e = cudaGraphInstantiate(&exec, g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) return fr_cu_fail(err, "graph_instantiate", e);
    *graph = (void *)exec;
    return FR_OK;
}

static fr_status cuda_graph_launch(void *vctx, void *graph, fr_error *err) {
    fr_cuda_ctx *c = (fr_cuda_ctx *)vctx;
    if (!graph) return fr_error_set(err, FR_ERR_INVALID, "cuda graph_launch: no graph");
    fr_status s = fr_cu_enter(c, err, "graph_launch");
    if (s) return s;
    cudaError_t e = cudaGraphLaunch((cudaGraphExec_t)graph, c->stream);
    return e == cudaSuccess ? FR_OK : fr_cu_fail(err, "graph_launch", e);
}

static void cuda_graph_free(void *vctx, void *graph) {
    fr_cuda_ctx *c = (fr_cuda_ctx *)vctx;
    cudaSetDevice(c->device);
    if (graph) cudaGraphExecDestroy((cudaGraphExec_t)graph);
}

/* ------------------------------------------------------------------ creation */

static fr_backend_ops make_ops(void) {
    fr_backend_ops o;
    memset(&o, 0, sizeof o);
    o.name = "cuda";
    /* every op converts per element on load and store (fr_cu_load / fr_cu_store) */
    o.act_dtypes = (1u << FR_DTYPE_F32) | (1u << FR_DTYPE_F16) | (1u << FR_DTYPE_BF16);
    o.destroy = cuda_destroy;
    o.buffer_alloc = cuda_buffer_alloc;
    o.buffer_free = cuda_buffer_free;
    o.buffer_upload = cuda_buffer_upload;
    o.buffer_download = cuda_buffer_download;
    o.buffer_wrap_host = NULL; /* weights are uploaded once */
    o.begin = cuda_begin;
    o.end = cuda_end;
    o.sync = cuda_sync;
    o.graph_capture_begin = cuda_capture_begin;
    o.graph_capture_end = cuda_capture_end;
    o.graph_launch = cuda_graph_launch;
    o.graph_free = cuda_graph_free;
    o.embedding = fr_cuda_embedding;
    o.rms_norm = fr_cuda_rms_norm;
    o.matmul = fr_cuda_matmul;
    o.matmul_multi = fr_cuda_matmul_multi;
    o.matmul_glu = fr_cuda_matmul_glu;
    o.qk_norm_rope = fr_cuda_qk_norm_rope;
    o.kv_append = fr_cuda_kv_append;
    o.attn_prepare = fr_cuda_attn_prepare;
    o.attention = fr_cuda_attention;
    o.residual_norm = fr_cuda_residual_norm;
    o.silu_mul = fr_cuda_silu_mul;
    o.add = fr_cuda_add;
    o.scaled_add = fr_cuda_scaled_add;
    o.argmax = fr_cuda_argmax;
    o.sample = fr_cuda_sample;
    return o;
}

static const fr_backend_ops cuda_ops = make_ops();

static fr_status create_fail(fr_cuda_ctx *c, fr_status s) {
    cuda_destroy(c);
    return s;
}

fr_status fr_cuda_backend_create(const fr_backend_params *params, fr_backend **out, fr_error *err) {
    *out = NULL;
    const int dev = params ? params->device : 0;
    int n_dev = 0;
    cudaError_t e = cudaGetDeviceCount(&n_dev);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return fr_error_set(err, FR_ERR_BACKEND,
                            "cuda backend: no usable GPU (is an NVIDIA GPU and driver present?): "
                            "%s (%s)",
                            cudaGetErrorString(e), cudaGetErrorName(e));
    }
    if (n_dev <= 0) return fr_error_set(err, FR_ERR_BACKEND, "cuda backend: no CUDA device found");
    if (dev < 0 || dev >= n_dev)
        return fr_error_set(err, FR_ERR_BACKEND,
                            "cuda backend: device %d does not exist (%d device%s found)", dev,
                            n_dev, n_dev == 1 ? "" : "s");

    fr_cuda_ctx *c = (fr_cuda_ctx *)calloc(1, sizeof *c);
    fr_backend *b = (fr_backend *)calloc(1, sizeof *b);
    if (!c || !b) {
        free(c);
        free(b);
        return fr_error_set(err, FR_ERR_NOMEM, "cuda backend: out of host memory");
    }
    c->device = dev;
    c->self = b;
    c->quant_act = params ? params->quant_act : FR_QUANT_ACT_Q8;
    if (c->quant_act != FR_QUANT_ACT_Q8 && c->quant_act != FR_QUANT_ACT_F32) {
        free(c);
        free(b);
        return fr_error_set(err, FR_ERR_INVALID,
                            "cuda backend: quant_act %d unknown (FR_QUANT_ACT_Q8 or _F32)",
                            (int)params->quant_act);
    }
    if ((e = cudaSetDevice(dev)) != cudaSuccess)
        return create_fail(c, fr_cu_fail(err, "backend_create (set device)", e));
    cudaDeviceProp prop;
    if ((e = cudaGetDeviceProperties(&prop, dev)) != cudaSuccess)
        return create_fail(c, fr_cu_fail(err, "backend_create (device properties)", e));
    if (prop.major < 7)
        return create_fail(c, fr_error_set(err, FR_ERR_BACKEND,
                                           "cuda backend: device %d (%s) has compute capability "
                                           "%d.%d; 7.0 or newer is required",
                                           dev, prop.name, prop.major, prop.minor));
    c->n_sm = prop.multiProcessorCount;
    c->smem_optin = prop.sharedMemPerBlockOptin;
    /* FR_CUDA_PDL=0 turns programmatic dependent launch off (to measure what it buys) */
    const char *pdl_env = getenv("FR_CUDA_PDL");
    c->pdl = prop.major >= 9 && !(pdl_env && pdl_env[0] == '0');
    const char *q80_env = getenv("FR_CUDA_Q80_U");
    c->q80_unroll = q80_env && (atoi(q80_env) == 4 || atoi(q80_env) == 0) ? atoi(q80_env) : 5;
    if ((e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) != cudaSuccess)
        return create_fail(c, fr_cu_fail(err, "backend_create (stream)", e));
    cublasStatus_t bs = cublasLtCreate(&c->lt);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        c->lt = NULL;
        return create_fail(c, fr_error_set(err, FR_ERR_BACKEND,
                                           "cuda backend_create: cublasLtCreate failed: %s",
                                           cublasLtGetStatusString(bs)));
    }
    c->lt_ws_size = FR_CU_LT_WORKSPACE;
    c->wconv_size = FR_CU_WCONV_BYTES;
    c->attn_part_size = FR_CU_ATTN_PART_BYTES;
    c->xq_size = FR_CU_XQ_ELEMS;
    if ((e = cudaMalloc(&c->lt_ws, c->lt_ws_size)) != cudaSuccess ||
        (e = cudaMalloc(&c->wconv, c->wconv_size)) != cudaSuccess ||
        (e = cudaMalloc((void **)&c->attn_part, c->attn_part_size)) != cudaSuccess ||
        (e = cudaMalloc((void **)&c->xq, c->xq_size)) != cudaSuccess ||
        (e = cudaMalloc((void **)&c->xq_scale, c->xq_size / 32 * sizeof(float))) != cudaSuccess ||
        (e = cudaMalloc((void **)&c->xq_blk, c->xq_size / 32 * 34)) != cudaSuccess)
        return create_fail(c, fr_cu_fail(err, "backend_create (scratch)", e));
    fr_status s = fr_cuda_attention_init(c, err);
    if (s) return create_fail(c, s);

    b->ops = &cuda_ops;
    b->ctx = c;
    *out = b;
    return FR_OK;
}
