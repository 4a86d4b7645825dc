/* CPU backend internals shared by the op files in this folder. */
#ifndef FR_KERNELS_CPU_BACKEND_H
#define FR_KERNELS_CPU_BACKEND_H

#include "core/threadpool.h"
#include "kernels/backend.h"

typedef struct fr_cpu_ctx {
    fr_threadpool *pool;
    int n_threads;
    fr_backend *self; /* freed with the context */
} fr_cpu_ctx;

#endif
