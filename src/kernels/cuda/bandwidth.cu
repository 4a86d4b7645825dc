/* Read bandwidth of the device memory (see cuda_api.h): what a decode step, which must read
 * every weight once, can at best approach. */
#include <string.h>

#include "kernels/cuda/cuda_api.h"
#include "kernels/cuda/cuda_backend.h"

#define FR_CU_BW_PASSES 5
#define FR_CU_BW_UNROLL 4

/* Every thread keeps FR_CU_BW_UNROLL independent 16-byte loads in flight; the xor of all data
 * is written only if it hits one arbitrary value, which keeps the loads alive at no cost. */
__global__ void fr_cu_bw_read_kernel(const uint4 *__restrict__ p, size_t n, unsigned *sink) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    unsigned acc = 0;
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    for (; i + (FR_CU_BW_UNROLL - 1) * stride < n; i += FR_CU_BW_UNROLL * stride) {
        uint4 v[FR_CU_BW_UNROLL];
#pragma unroll
        for (int u = 0; u < FR_CU_BW_UNROLL; u++)
            v[u] = __ldcs(p + i + u * stride);
#pragma unroll
        for (int u = 0; u < FR_CU_BW_UNROLL; u++)
            acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
    }
    for (; i < n; i += stride) {
        const uint4 v = __ldcs(p + i);
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == 0x9e3779b9u) *sink = acc;
}

extern "C" fr_status fr_cuda_measure_bandwidth(fr_backend *b, size_t bytes, double *gbps,
                                               fr_error *err) {
    *gbps = 0.0;
    if (!b || strcmp(b->ops->name, "cuda") != 0)
        return fr_error_set(err, FR_ERR_INVALID, "cuda bandwidth: not a CUDA backend");
    fr_cuda_ctx *c = (fr_cuda_ctx *)b->ctx;
    if (c->capturing)
        return fr_error_set(err, FR_ERR_INVALID, "cuda bandwidth: not allowed during capture");
    if (bytes == 0) bytes = (size_t)1 << 30;
    if (bytes < ((size_t)64 << 20)) bytes = (size_t)64 << 20;
    bytes &= ~(size_t)15;
    fr_status s = fr_cu_enter(c, err, "bandwidth");
    if (s) return s;
    void *buf = NULL;
    unsigned *sink = NULL;
    cudaEvent_t ev[2] = {NULL, NULL};
    cudaError_t e = cudaMalloc(&buf, bytes);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        return fr_error_set(err, FR_ERR_NOMEM, "cuda bandwidth: cannot allocate %zu bytes", bytes);
    }
    if (e == cudaSuccess) e = cudaMalloc((void **)&sink, sizeof *sink);
    if (e == cudaSuccess) e = cudaMemsetAsync(buf, 0x5a, bytes, c->stream);
    if (e == cudaSuccess) e = cudaEventCreate(&ev[0]);
    if (e == cudaSuccess) e = cudaEventCreate(&ev[1]);
    double best_ms = 0.0;
    const unsigned blocks = (unsigned)c->n_sm * 8;
    for (int pass = 0; e == cudaSuccess && pass <= FR_CU_BW_PASSES; pass++) {
        e = cudaEventRecord(ev[0], c->stream);
        if (e != cudaSuccess) break;
        fr_cu_bw_read_kernel<<<blocks, 256, 0, c->stream>>>((const uint4 *)buf, bytes / 16, sink);
        e = cudaGetLastError();
        if (e == cudaSuccess) e = cudaEventRecord(ev[1], c->stream);
        if (e == cudaSuccess) e = cudaEventSynchronize(ev[1]);
        float ms = 0.0f;
        if (e == cudaSuccess) e = cudaEventElapsedTime(&ms, ev[0], ev[1]);
        if (e == cudaSuccess && pass > 0 && ms > 0.0f && (best_ms == 0.0 || ms < best_ms))
            best_ms = ms; /* pass 0 warms up clocks and TLBs */
    }
    if (ev[0]) cudaEventDestroy(ev[0]);
    if (ev[1]) cudaEventDestroy(ev[1]);
    cudaFree(sink);
    cudaFree(buf);
    if (e != cudaSuccess) return fr_cu_fail(err, "bandwidth", e);
    if (best_ms <= 0.0)
        return fr_error_set(err, FR_ERR_BACKEND, "cuda bandwidth: no pass could be timed");
    *gbps = (double)bytes / (best_ms * 1e-3) / 1e9;
    return FR_OK;
}
