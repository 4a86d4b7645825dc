#include "core/membw.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "core/alloc.h"
#include "core/threadpool.h"

typedef struct {
    const uint64_t *data;
    size_t words_per_task;
    bool prefetch;
    uint64_t *sums;
} sum_job;

/* Eight independent sums so the loads, not an add chain, set the pace. */
static void sum_task(void *varg, int64_t task, int thread) {
    sum_job *j = varg;
    const uint64_t *p = j->data + (size_t)task * j->words_per_task;
    uint64_t a[8] = {0};
    for (size_t i = 0; i + 8 <= j->words_per_task; i += 8) {
        if (j->prefetch) __builtin_prefetch(p + i + 256);
        for (int k = 0; k < 8; k++) a[k] += p[i + k];
    }
    j->sums[task] = a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double fr_host_read_bandwidth(int n_threads, size_t bytes, int passes, bool prefetch) {
    fr_threadpool *pool = fr_threadpool_create(n_threads);
    if (!pool) return 0;
    const int tasks = 8 * fr_threadpool_size(pool);
    const size_t words_per_task = bytes / sizeof(uint64_t) / (size_t)tasks / 8 * 8;
    uint64_t *data = fr_aligned_alloc(words_per_task * (size_t)tasks * sizeof(uint64_t));
    uint64_t *sums = calloc((size_t)tasks, sizeof *sums);
    double gbps = 0;
    if (data && sums && words_per_task > 0) {
        for (size_t i = 0; i < words_per_task * (size_t)tasks; i++)
            data[i] = i * 0x9e3779b97f4a7c15ull; /* real pages, not the shared zero page */
        sum_job j = {data, words_per_task, prefetch, sums};
        double best = 1e30;
        for (int pass = 0; pass <= passes; pass++) { /* pass 0 warms TLBs and clocks */
            const double t0 = now_s();
            fr_threadpool_run(pool, tasks, sum_task, &j);
            const double t = now_s() - t0;
            if (pass > 0 && t < best) best = t;
        }
        /* publishing the sums keeps the compiler from dropping the reads */
        volatile uint64_t sink = 0;
        for (int t = 0; t < tasks; t++) sink ^= sums[t];
        (void)sink;
        gbps = (double)(words_per_task * (size_t)tasks * sizeof(uint64_t)) / best / 1e9;
    }
    fr_aligned_free(data);
    free(sums);
    fr_threadpool_destroy(pool);
    return gbps;
}
