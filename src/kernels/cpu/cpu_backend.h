/* CPU backend internals shared by the op files in this folder. */
#ifndef FR_KERNELS_CPU_BACKEND_H
#define FR_KERNELS_CPU_BACKEND_H

#include "core/threadpool.h"
#include "kernels/backend.h"

struct fr_cpu_kernels;

typedef struct fr_cpu_ctx {
    fr_threadpool *pool;
    int n_threads;
    fr_backend *self;               /* freed with the context */
    const struct fr_cpu_kernels *k; /* SIMD kernels chosen by CPUID (cpu_kernels.h) */
    /* quantized-weight matmuls on f32 activations (FR_QUANT_ACT_F32) instead of 8-bit ones */
    bool quant_f32;
    /* per-thread scratch (fr_cpu_scratch in cpu_ops.h): slot i belongs to pool thread i */
    void **scratch;
    size_t *scratch_size;
    /* quantized activations of the current quantized matmul (matmul_quant.c), shared by all
     * pool threads of that call; grown on demand, freed with the context */
    void *quant_scratch;
    size_t quant_scratch_size;
} fr_cpu_ctx;

#endif
