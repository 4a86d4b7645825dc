/* The CUDA backend's extras callable from C (everything else in this folder is CUDA C++ behind
 * struct fr_backend_ops). Declared only in builds with CUDA (FR_HAVE_CUDA). */
#ifndef FR_KERNELS_CUDA_API_H
#define FR_KERNELS_CUDA_API_H

#ifdef __cplusplus
extern "C" {
#endif

#include "kernels/backend.h"

/* Measured read bandwidth of the GPU behind a CUDA backend, in GB/s (1e9 B/s), for benchmarks
 * that report decode as a fraction of the card's roofline: a kernel streams a device buffer of
 * `bytes` (0 = 1 GiB, at least 64 MiB so the L2 cache cannot hold it) with 16-byte loads from
 * every SM, timed with CUDA events on the backend's stream; the best of five passes after a
 * warm-up. The buffer is allocated and freed here, so never call it during graph capture.
 * FR_ERR_INVALID when b is not a CUDA backend; FR_ERR_NOMEM when the buffer does not fit. */
fr_status fr_cuda_measure_bandwidth(fr_backend *b, size_t bytes, double *gbps, fr_error *err);

#ifdef __cplusplus
}
#endif

#endif
