/* The host's measured read bandwidth: the roofline that CPU decode numbers are compared with
 * (ferrum bench, bench_ops, bench_quant_matmul all use this one measurement). */
#ifndef FR_CORE_MEMBW_H
#define FR_CORE_MEMBW_H

#include <stdbool.h>
#include <stddef.h>

/* Every thread of a fresh pool of n_threads (<= 0: one per core) sums its slices of a `bytes`
 * buffer (several slices per thread so a slow core does not leave the others idle); the best of
 * `passes` timed passes after one warm-up pass. With `prefetch`, the loop issues software
 * prefetches 2 KiB ahead, as the GEMV kernels do (some CPUs reward it, some do not).
 * Returns GB/s (1e9 B/s); 0 when the buffer or the pool cannot be allocated. */
double fr_host_read_bandwidth(int n_threads, size_t bytes, int passes, bool prefetch);

#endif
