/* Read bandwidth of the memory a backend computes from, measured rather than looked up, so
 * benchmarks can say how close decode gets to the roofline of the machine they ran on.
 *
 * CPU: every thread sums its own slice of a buffer far larger than the caches (first touched by
 * that same thread, so pages sit near it), best of a few passes. CUDA: the backend's own
 * streaming-read kernel timed with events (kernels/cuda/cuda_api.h). Other backends report
 * FR_ERR_UNSUPPORTED until they offer a way to measure. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "model/model.h"
#ifdef FR_HAVE_CUDA
#include "kernels/cuda/cuda_api.h"
#endif

typedef struct {
    uint64_t *data;
    size_t n; /* words */
    pthread_barrier_t *barrier;
    int passes;
    double *starts, *ends; /* per pass */
    uint64_t sink;
    bool leader;
} reader;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Eight independent sums so the loads, not an add chain, set the pace. */
static uint64_t sum_words(const uint64_t *p, size_t n) {
    uint64_t a[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            a[k] += p[i + k];
    for (; i < n; i++)
        a[0] += p[i];
    return a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
}

static void *reader_main(void *arg) {
    reader *r = arg;
    for (size_t i = 0; i < r->n; i++)
        r->data[i] = i * 0x9e3779b97f4a7c15ull;
    for (int pass = 0; pass < r->passes; pass++) {
        pthread_barrier_wait(r->barrier);
        if (r->leader) r->starts[pass] = now_s();
        r->sink += sum_words(r->data, r->n);
        pthread_barrier_wait(r->barrier);
        if (r->leader) r->ends[pass] = now_s();
    }
    return NULL;
}

static fr_status cpu_read_bandwidth(int n_threads, size_t bytes, double *gbps, fr_error *err) {
    enum { PASSES = 5 };
    if (n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
    }
    if (n_threads > 1024) n_threads = 1024;
    const size_t words = bytes / sizeof(uint64_t) / (size_t)n_threads;
    if (words < 1024)
        return fr_error_set(err, FR_ERR_INVALID, "bandwidth: %zu bytes is too small a buffer",
                            bytes);
    reader *rs = calloc((size_t)n_threads, sizeof *rs);
    pthread_t *th = calloc((size_t)n_threads, sizeof *th);
    uint64_t *buf = NULL;
    if (posix_memalign((void **)&buf, 64, words * (size_t)n_threads * sizeof(uint64_t))) buf = NULL;
    if (!rs || !th || !buf) {
        free(rs);
        free(th);
        free(buf);
        return fr_error_set(err, FR_ERR_NOMEM, "bandwidth: cannot allocate %zu bytes", bytes);
    }
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, (unsigned)n_threads);
    double starts[PASSES], ends[PASSES];
    int started = 0;
    fr_status st = FR_OK;
    for (int t = 0; t < n_threads; t++) {
        rs[t] = (reader){.data = buf + (size_t)t * words,
                         .n = words,
                         .barrier = &barrier,
                         .passes = PASSES,
                         .starts = starts,
                         .ends = ends,
                         .leader = t == 0};
    }
    for (int t = 1; t < n_threads; t++) {
        if (pthread_create(&th[t], NULL, reader_main, &rs[t])) {
            st = fr_error_set(err, FR_ERR_BACKEND, "bandwidth: cannot start thread %d", t);
            break;
        }
        started++;
    }
    if (st == FR_OK) {
        reader_main(&rs[0]);
    }
    for (int t = 1; t <= started; t++)
        pthread_join(th[t], NULL);
    pthread_barrier_destroy(&barrier);
    if (st == FR_OK) {
        double best = 1e30;
        for (int i = 1; i < PASSES; i++) /* pass 0 warms up TLBs and frequency */
            if (ends[i] - starts[i] < best) best = ends[i] - starts[i];
        /* publishing the sums keeps the compiler from dropping the reads */
        static volatile uint64_t published;
        for (int t = 0; t < n_threads; t++)
            published ^= rs[t].sink;
        *gbps =
            (double)(words * (size_t)n_threads * sizeof(uint64_t)) / (best > 0 ? best : 1e-9) / 1e9;
    }
    free(rs);
    free(th);
    free(buf);
    return st;
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
