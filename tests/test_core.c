/* Core: dtype conversions (exhaustive over f16/bf16 bit patterns), tensor descriptors, arena,
 * thread pool. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/testutil.h"
#include "core/alloc.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"
#include "core/threadpool.h"

/* Reference f32 -> f16 via double arithmetic: pick the nearer of the two neighbouring f16
 * values, ties to even mantissa. */
static uint16_t ref_f32_to_f16(float f) {
    if (isnan(f)) return 0x7e00;
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    double a = fabs((double)f);
    if (a >= 65520.0) return sign | 0x7c00;
    /* enumerate: find the largest finite f16 magnitude <= a */
    uint16_t lo = 0, hi = 0x7bff;
    while (lo < hi) {
        uint16_t mid = (uint16_t)((lo + hi + 1) / 2);
        if (fr_f16_to_f32(mid) <= a)
            lo = mid;
        else
            hi = mid - 1;
    }
    double vlo = fr_f16_to_f32(lo);
    if (vlo == a) return sign | lo;
    double vhi = lo == 0x7bff ? 65536.0 : fr_f16_to_f32((uint16_t)(lo + 1));
    uint16_t pick;
    if (a - vlo < vhi - a)
        pick = lo;
    else if (a - vlo > vhi - a)
        pick = (uint16_t)(lo + 1);
    else
        pick = (lo & 1) ? (uint16_t)(lo + 1) : lo;
    return sign | pick;
}

static void test_f16(void) {
    /* f16 -> f32 -> f16 round-trips every non-NaN pattern */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = fr_f16_to_f32((uint16_t)h);
        if (isnan(f)) {
            if (!isnan(fr_f16_to_f32(fr_f32_to_f16(f)))) bad++;
            continue;
        }
        if (fr_f32_to_f16(f) != h) bad++;
    }
    CHECK(bad == 0, "%d f16 patterns do not round-trip", bad);
    CHECK(fr_f16_to_f32(0x3c00) == 1.0f && fr_f16_to_f32(0x0001) == 0x1p-24f, "f16 decode");
    /* f32 -> f16 rounding against the reference on a sweep of f32 values incl. ties */
    fr_test_rng rng = {7};
    bad = 0;
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = (uint32_t)fr_test_rng_u64(&rng);
        if (i & 1) u = (u & 0x8000e000u) | ((uint32_t)(0x33 + (u >> 3) % 0x15) << 23) | 0x1000u;
        float f = fr_bits_f32(u);
        if (isnan(f))
            bad += !isnan(fr_f16_to_f32(fr_f32_to_f16(f)));
        else if (fr_f32_to_f16(f) != ref_f32_to_f16(f))
            bad++;
    }
    CHECK(bad == 0, "%d f32->f16 conversions differ from the reference", bad);
}

static void test_bf16(void) {
    CHECK(fr_f32_to_bf16(1.0f) == 0x3f80, "bf16(1)");
    /* tie: 1 + 2^-8 lies halfway between 1 and 1+2^-7 -> even (1.0) */
    CHECK(fr_f32_to_bf16(fr_bits_f32(0x3f808000u)) == 0x3f80, "bf16 tie to even (down)");
    CHECK(fr_f32_to_bf16(fr_bits_f32(0x3f818000u)) == 0x3f82, "bf16 tie to even (up)");
    CHECK(fr_f32_to_bf16(fr_bits_f32(0x3f808001u)) == 0x3f81, "bf16 above tie");
    CHECK(isnan(fr_bf16_to_f32(fr_f32_to_bf16(NAN))), "bf16 nan");
    CHECK(fr_f32_to_bf16(fr_bits_f32(0x7f7fffffu)) == 0x7f80, "bf16 overflow to inf");
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = fr_bf16_to_f32((uint16_t)h);
        if (!isnan(f) && fr_f32_to_bf16(f) != h) bad++;
    }
    CHECK(bad == 0, "%d bf16 patterns do not round-trip", bad);
}

static void test_tensor(void) {
    fr_buffer buf = {.data = (void *)64, .size = 1 << 20};
    fr_tensor t = fr_tensor_3d(&buf, 0, FR_DTYPE_F32, 2, 3, 5);
    CHECK(t.stride[2] == 4 && t.stride[1] == 20 && t.stride[0] == 60, "f32 strides");
    CHECK(fr_tensor_span_bytes(&t) == 120 && fr_tensor_is_contiguous(&t), "f32 span");
    fr_tensor q = fr_tensor_2d(&buf, 0, FR_DTYPE_Q4_K, 3, 512);
    CHECK(q.stride[0] == 288 && fr_tensor_span_bytes(&q) == 864, "q4_k rows");
    CHECK(fr_dtype_row_bytes(FR_DTYPE_Q8_0, 33) == 0, "partial block rejected");
    fr_tensor r = fr_tensor_rows(&t, 1, 1);
    CHECK(r.offset == 60 && r.shape[0] == 1, "row view");
}

static void test_arena(void) {
    fr_arena a;
    CHECK(fr_arena_init(&a, 1000) == 0, "arena init");
    void *p = fr_arena_alloc(&a, 10), *q = fr_arena_alloc(&a, 10);
    CHECK(p && q && ((uintptr_t)q % FR_ALIGN) == 0 && (char *)q - (char *)p == FR_ALIGN, "align");
    CHECK(fr_arena_alloc(&a, 2000) == NULL, "arena exhaustion returns NULL");
    fr_arena_free(&a);
}

typedef struct {
    atomic_llong sum;
} pool_arg;

static void pool_task(void *varg, int64_t task, int thread) {
    pool_arg *a = varg;
    atomic_fetch_add(&a->sum, task + 1);
}

typedef struct {
    atomic_int arrived, met;
    int thread[2];
} rendezvous;

static void rendezvous_task(void *varg, int64_t task, int thread) {
    rendezvous *r = varg;
    r->thread[task] = thread;
    atomic_fetch_add(&r->arrived, 1);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do { /* give up after 10 s so a broken pool fails instead of hanging */
        if (atomic_load(&r->arrived) == 2) {
            atomic_fetch_add(&r->met, 1);
            return;
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while (t.tv_sec - t0.tv_sec < 10);
}

static void test_threadpool(void) {
    fr_threadpool *p = fr_threadpool_create(4);
    CHECK(p && fr_threadpool_size(p) == 4, "pool create");
    for (int rep = 0; rep < 2000; rep++) {
        pool_arg a = {0};
        int64_t n = 1 + rep % 37;
        fr_threadpool_run(p, n, pool_task, &a);
        if (atomic_load(&a.sum) != n * (n + 1) / 2) {
            CHECK(0, "run %d: sum %lld", rep, (long long)atomic_load(&a.sum));
            break;
        }
    }
    pool_arg a = {0};
    fr_threadpool_run(p, 100000, pool_task, &a);
    CHECK(atomic_load(&a.sum) == 100000LL * 100001 / 2, "big run");
    /* two tasks that each wait for the other to start can only finish on two threads */
    rendezvous r = {0};
    fr_threadpool_run(p, 2, rendezvous_task, &r);
    CHECK(atomic_load(&r.met) == 2 && r.thread[0] != r.thread[1], "tasks ran concurrently");
    fr_threadpool_destroy(p);
}

/* ---- the pool on a busy machine: exact results whatever runs when ---- */

#define BUSY_MAX_TASKS 300

typedef struct {
    atomic_int hits[BUSY_MAX_TASKS]; /* each task must run exactly once */
    int value[BUSY_MAX_TASKS];       /* plain writes: the caller must see them after the run */
    atomic_int in_use[FR_THREADPOOL_MAX_THREADS];
    atomic_int bad_thread, shared_thread;
    int n_threads, tag;
} busy_arg;

static void busy_task_common(busy_arg *a, int64_t task, int thread, int mul) {
    if (thread < 0 || thread >= a->n_threads || task < 0 || task >= BUSY_MAX_TASKS) {
        atomic_fetch_add(&a->bad_thread, 1);
        return;
    }
    /* two tasks of one run on the same thread index at once would share its scratch */
    if (atomic_exchange(&a->in_use[thread], 1)) atomic_fetch_add(&a->shared_thread, 1);
    atomic_fetch_add(&a->hits[task], 1);
    a->value[task] = (int)task * mul + a->tag;
    atomic_store(&a->in_use[thread], 0);
}
/* two functions, so that a task run with the previous run's function shows up as a wrong value */
static void busy_task_a(void *varg, int64_t task, int thread) {
    busy_task_common(varg, task, thread, 3);
}
static void busy_task_b(void *varg, int64_t task, int thread) {
    busy_task_common(varg, task, thread, 7);
}

/* Runs `reps` runs of varying task counts (1..max_tasks), alternating two functions and two
 * argument blocks, and checks every task ran once, on a valid thread, with its own run's
 * function and argument. Returns the number of runs that failed. */
static int busy_runs(fr_threadpool *p, int reps, int max_tasks, int seed) {
    static busy_arg args[2]; /* large; one pair per call, used serially */
    int failed = 0;
    for (int rep = 0; rep < reps; rep++) {
        busy_arg *a = &args[rep & 1];
        memset(a, 0, sizeof *a);
        a->n_threads = fr_threadpool_size(p);
        a->tag = rep * 1000 + seed;
        const int n = 1 + (rep * 7 + seed) % max_tasks;
        const int mul = rep % 3 ? 3 : 7;
        fr_threadpool_run(p, n, mul == 3 ? busy_task_a : busy_task_b, a);
        int bad = atomic_load(&a->bad_thread) + atomic_load(&a->shared_thread);
        for (int t = 0; t < BUSY_MAX_TASKS; t++) {
            const int want_hits = t < n;
            if (atomic_load(&a->hits[t]) != want_hits) bad++;
            if (want_hits && a->value[t] != t * mul + a->tag) bad++;
        }
        if (bad && failed++ < 3)
            fprintf(stderr, "  run %d (%d tasks, %d threads): %d wrong\n", rep, n, a->n_threads,
                    bad);
    }
    return failed;
}

typedef struct {
    fr_threadpool **inner;
    atomic_llong sum[4];
    atomic_int failed;
} nested_arg;

/* a task of one pool running a whole run of another pool (one inner pool per thread index) */
static void nested_task(void *varg, int64_t task, int thread) {
    nested_arg *na = varg;
    pool_arg a = {0};
    const int64_t n = 50 + task;
    fr_threadpool_run(na->inner[thread], n, pool_task, &a);
    if (atomic_load(&a.sum) != n * (n + 1) / 2) atomic_fetch_add(&na->failed, 1);
    atomic_fetch_add(&na->sum[task], atomic_load(&a.sum));
}

static void sleepy_task(void *varg, int64_t task, int thread) {
    pool_arg *a = varg;
    if (task % 16 == 0) { /* a task whose thread is off the CPU for a while */
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    atomic_fetch_add(&a->sum, task + 1);
}

static void test_threadpool_busy(void) {
    const int cpus = fr_cpu_count();
    CHECK(cpus >= 1, "fr_cpu_count %d", cpus);
    /* more threads than tasks, than CPUs, and a pool of one */
    const int sizes[] = {1, 2, 3, 8};
    for (int s = 0; s < 4; s++) {
        fr_threadpool *p = fr_threadpool_create(sizes[s]);
        CHECK(p && fr_threadpool_size(p) == sizes[s], "pool of %d", sizes[s]);
        if (!p) continue;
        int failed = busy_runs(p, 20000, 5, s);         /* 1..5 tasks: often fewer than threads */
        failed += busy_runs(p, 300, BUSY_MAX_TASKS, s); /* up to 300 */
        CHECK(failed == 0, "pool of %d: %d runs with wrong results", sizes[s], failed);
        fr_threadpool_destroy(p);
    }
    /* 64 threads, far more than this machine's CPUs, through thousands of tiny runs */
    fr_threadpool *big = fr_threadpool_create(64);
    CHECK(big && fr_threadpool_size(big) == 64, "pool of 64");
    if (big) {
        CHECK(busy_runs(big, 3000, 70, 11) == 0, "pool of 64: wrong results");
        /* tasks that sleep: the run ends only when they are done, with nothing lost */
        pool_arg a = {0};
        fr_threadpool_run(big, 200, sleepy_task, &a);
        CHECK(atomic_load(&a.sum) == 200 * 201 / 2, "sleepy run: sum %lld",
              (long long)atomic_load(&a.sum));
    }
    /* two pools used one after the other, and one inside the tasks of another */
    fr_threadpool *outer = fr_threadpool_create(3);
    fr_threadpool *inner[3] = {fr_threadpool_create(2), fr_threadpool_create(2),
                               fr_threadpool_create(2)};
    CHECK(outer && inner[0] && inner[1] && inner[2], "pools for nesting");
    if (outer && inner[0] && inner[1] && inner[2]) {
        for (int rep = 0; rep < 100; rep++) {
            nested_arg na = {.inner = inner};
            fr_threadpool_run(outer, 4, nested_task, &na);
            int bad = atomic_load(&na.failed);
            for (int t = 0; t < 4; t++) {
                const int64_t n = 50 + t;
                bad += atomic_load(&na.sum[t]) != n * (n + 1) / 2;
            }
            if (big) bad += busy_runs(big, 3, 40, rep); /* interleaved with another pool */
            if (bad) {
                CHECK(0, "nested run %d: %d wrong", rep, bad);
                break;
            }
        }
    }
    fr_threadpool_destroy(outer);
    for (int i = 0; i < 3; i++)
        fr_threadpool_destroy(inner[i]);
    fr_threadpool_destroy(big);
    /* destroyed before its workers ever ran, or right after one run */
    int made = 0;
    for (int rep = 0; rep < 40; rep++) {
        fr_threadpool *p = fr_threadpool_create(6);
        if (!p) continue;
        made++;
        if (rep & 1) {
            pool_arg a = {0};
            fr_threadpool_run(p, 10, pool_task, &a);
            CHECK(atomic_load(&a.sum) == 55, "run before destroy");
        }
        fr_threadpool_destroy(p);
    }
    CHECK(made == 40, "%d of 40 pools created", made);
    /* a request beyond the cap (the CLI's -t 1000) starts the most one pool starts, and works */
    fr_threadpool *huge = fr_threadpool_create(1000);
    CHECK(huge && fr_threadpool_size(huge) == FR_THREADPOOL_MAX_THREADS, "pool of 1000 capped");
    if (huge) {
        CHECK(busy_runs(huge, 200, 40, 5) == 0, "capped pool: wrong results");
        fr_threadpool_destroy(huge);
    }
}

/* A failure stays a failure with or without an error object: fr_error_prefix returned FR_OK for
 * err == NULL, and callers returned that after a failed allocation (issue 16). */
static void test_error(void) {
    CHECK(fr_error_set(NULL, FR_ERR_NOMEM, "x %d", 1) == FR_ERR_NOMEM, "set without an error");
    CHECK(fr_error_prefix(NULL, FR_ERR_NOMEM, "file %s", "a") == FR_ERR_NOMEM,
          "prefix without an error");
    CHECK(fr_error_prefix(NULL, FR_ERR_FORMAT, "file") == FR_ERR_FORMAT, "prefix: the code given");
    fr_error e = {0};
    fr_error_set(&e, FR_ERR_FORMAT, "bad byte %d", 7);
    fr_status st = fr_error_prefix(&e, FR_ERR_FORMAT, "%s", "model.gguf");
    CHECK(st == FR_ERR_FORMAT && e.code == FR_ERR_FORMAT &&
              !strcmp(e.msg, "model.gguf: bad byte 7"),
          "prefix: %d \"%s\"", (int)st, e.msg);
    /* the status passed wins over a stale code (the error object may carry an older failure) */
    fr_error_clear(&e);
    st = fr_error_prefix(&e, FR_ERR_IO, "ctx");
    CHECK(st == FR_ERR_IO && e.code == FR_ERR_IO, "prefix on a cleared error: %d %d", (int)st,
          (int)e.code);
    /* a long prefix and message are both cut, never overrun */
    char big[2048];
    memset(big, 'p', sizeof big - 1);
    big[sizeof big - 1] = 0;
    fr_error_set(&e, FR_ERR_RANGE, "%s", big);
    st = fr_error_prefix(&e, FR_ERR_RANGE, "%s", big);
    CHECK(st == FR_ERR_RANGE && strlen(e.msg) < sizeof e.msg && strstr(e.msg, "p: p"),
          "long prefix: %zu bytes", strlen(e.msg));
}

/* Every task computes for 20 us, and on a worker it then sleeps 200 us: the calling thread
 * alone (4 x 20 us a run) is far faster than with the worker (whose task alone takes 220 us), as
 * when another process holds the second core. The pool must find that out by measurement and run
 * alone, with every run's result still exact. */
static void slow_worker_task(void *varg, int64_t task, int thread) {
    pool_arg *a = varg;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 20000);
    if (thread != 0) {
        struct timespec d = {0, 200000};
        nanosleep(&d, NULL);
    }
    atomic_fetch_add(&a->sum, task + 1);
}

static void test_threadpool_adapts(void) {
    if (fr_cpu_count() < 2) {
        printf(
            "test_core: one usable CPU, the pool has nothing to choose (adaptation unchecked)\n");
        return;
    }
    fr_threadpool *p = fr_threadpool_create(2);
    CHECK(p != NULL, "pool of 2");
    if (!p) return;
    /* 4 windows held, one probe: about 5 x 1024 runs (about a second); 40000 is far more */
    int rep = 0;
    for (; rep < 40000 && fr_threadpool_solo_runs(p) < 2048; rep++) {
        pool_arg a = {0};
        fr_threadpool_run(p, 4, slow_worker_task, &a);
        if (atomic_load(&a.sum) != 10) {
            CHECK(0, "run %d: sum %lld", rep, (long long)atomic_load(&a.sum));
            break;
        }
    }
    CHECK(fr_threadpool_solo_runs(p) >= 2048, "runs alone after %d runs: %lld", rep,
          (long long)fr_threadpool_solo_runs(p));
    fr_threadpool_destroy(p);
}

int main(void) {
    test_error();
    test_f16();
    test_bf16();
    test_tensor();
    test_arena();
    test_threadpool();
    test_threadpool_busy();
    test_threadpool_adapts();
    return fr_test_finish("test_core");
}
