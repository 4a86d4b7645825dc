/* Read bandwidth of the memory a backend computes from, measured rather than looked up, so
 * benchmarks can say how close decode gets to the roofline of the machine they ran on.
 *
 * CPU: core/membw.h (every pool thread sums slices of a buffer far larger than the caches, best
 * of a few passes, with and without software prefetch, whichever the machine rewards). CUDA: the backend's own
 * streaming-read kernel timed with events (kernels/cuda/cuda_api.h). Other backends report
 * FR_ERR_UNSUPPORTED until they offer a way to measure. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/membw.h"
#include "model/model.h"
#ifdef FR_HAVE_CUDA
#include "kernels/cuda/cuda_api.h"
#endif

static fr_status cpu_read_bandwidth(int n_threads, size_t bytes, double *gbps, fr_error *err) {
    const double plain = fr_host_read_bandwidth(n_threads, bytes, 5, false);
    const double prefetched = fr_host_read_bandwidth(n_threads, bytes, 5, true);
    *gbps = plain > prefetched ? plain : prefetched;
    if (*gbps <= 0)
        return fr_error_set(err, FR_ERR_NOMEM, "bandwidth: cannot allocate %zu bytes", bytes);
    return FR_OK;
}

fr_status fr_measure_read_bandwidth(const fr_model *m, int n_threads, size_t bytes, double *gbps,
                                    fr_error *err) {
    *gbps = 0;
    const char *name = fr_backend_name(m->backend);
    if (!strcmp(name, "cpu"))
        return cpu_read_bandwidth(n_threads, bytes ? bytes : (size_t)512 << 20, gbps, err);
#ifdef FR_HAVE_CUDA
    /* its default, 1 GiB, is far beyond the 50 MB L2 of an H100 */
    if (!strcmp(name, "cuda")) return fr_cuda_measure_bandwidth(m->backend, bytes, gbps, err);
#endif
    return fr_error_set(err, FR_ERR_UNSUPPORTED,
                        "bandwidth: the %s backend offers no way to measure it", name);
}
