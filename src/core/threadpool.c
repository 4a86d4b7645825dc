#include "core/threadpool.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* Idle threads spin this long before sleeping (FR_THREADPOOL_SPIN_US overrides). Long enough to
 * bridge the gap between two ops of a decode step, short enough that a thread whose core is
 * wanted by another process gives it up within a small fraction of a scheduler time slice. */
#define SPIN_US_DEFAULT 50

/* Task index meaning "this run is not open": claims fail against it. */
#define CLOSED 0xffffffffu
/* Tasks per run must stay below CLOSED; longer runs are issued in pieces of this size. */
#define MAX_RUN_TASKS ((int64_t)1 << 31)

#define CACHE_LINE 64

/* Choosing between all threads and the calling thread alone (see adapt_begin): a window is this
 * many runs; a probe of the other mode comes after `hold` windows, MIN_HOLD at first, doubling
 * up to MAX_HOLD while the mode holds; the other mode must be this many percent faster to win.
 * Only pools of at most ADAPT_MAX_ACTIVE running threads adapt: there one competing process takes
 * a large share of the cores, and a probe of one thread against many costs little. */
#define WINDOW_RUNS      1024
#define MIN_HOLD         4
#define MAX_HOLD         256
#define WIN_MARGIN_PCT   5
#define ADAPT_MAX_ACTIVE 4

struct fr_threadpool {
    int n_threads;
    int n_active; /* threads that may run at once: min(n_threads, usable CPUs) */
    int64_t spin_ns;
    unsigned seq; /* the last epoch issued; the caller's alone */
    pthread_t *workers;

    /* The caller's alone: the mode runs use (calling thread alone or all), whether this window
     * probes the other one, runs so far in this window and when it began, the last full window's
     * duration in the chosen mode, windows to hold the mode and windows held. */
    bool adapt, solo, probing;
    int window_runs;
    int64_t window_t0, ref_ns;
    int hold, held;
    int64_t solo_runs;

    /* The current run. `claim` holds epoch << 32 | next task index. The caller closes the old
     * run (index CLOSED, new epoch), writes the descriptor below, then opens the run (index 0).
     * A claim is a compare-and-swap of the whole word, so a worker still holding an old epoch
     * can never take a task of a newer run, and a successful claim proves the descriptor it
     * read belongs to the epoch it claimed in (the close that precedes a rewrite would have
     * failed the swap). */
    _Alignas(CACHE_LINE) _Atomic(uint64_t) claim;
    _Atomic(fr_task_fn) fn;
    _Atomic(void *) arg;
    _Atomic(int64_t) base;     /* task number of index 0 (runs over MAX_RUN_TASKS) */
    _Atomic(unsigned) n_tasks; /* of this piece */

    /* Tasks finished in the current run; the run is over when it reaches n_tasks. Every
     * increment comes from a claimed task, so none can arrive after the caller saw the total. */
    _Alignas(CACHE_LINE) atomic_uint done;
    atomic_int caller_waiting; /* the caller sleeps on `done` */

    /* Futex word the idle workers watch: the epoch of the newest run. */
    _Alignas(CACHE_LINE) atomic_uint epoch;
    atomic_int sleepers; /* workers in (or entering) the futex wait on `epoch` */
    atomic_int spinners; /* workers spinning on `epoch`, at most n_active - 1 */
    atomic_bool stop;
#ifndef __linux__
    pthread_mutex_t mu;
    pthread_cond_t cv;
#endif
};

typedef struct {
    fr_threadpool *pool;
    int index;
} worker_arg;

/* ---- sleeping on a 32-bit word: a futex on Linux, a condition variable elsewhere ---- */

#ifdef __linux__
static void word_wait(fr_threadpool *p, atomic_uint *w, unsigned expected) {
    (void)p;
    /* returns at once if *w != expected; spurious returns are fine, every caller re-checks */
    syscall(SYS_futex, (unsigned *)w, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}
static void word_wake(fr_threadpool *p, atomic_uint *w, int n) {
    (void)p;
    syscall(SYS_futex, (unsigned *)w, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}
#else
static void word_wait(fr_threadpool *p, atomic_uint *w, unsigned expected) {
    pthread_mutex_lock(&p->mu);
    if (atomic_load(w) == expected) pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
static void word_wake(fr_threadpool *p, atomic_uint *w, int n) {
    (void)w, (void)n;
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}
#endif

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* ---- running tasks ---- */

/* Claims and runs tasks of epoch `e` until none are left. */
static void run_claims(fr_threadpool *p, unsigned e, int thread) {
    uint64_t c = atomic_load_explicit(&p->claim, memory_order_acquire);
    for (;;) {
        if ((unsigned)(c >> 32) != e) return;
        const unsigned i = (unsigned)c;
        const unsigned n = atomic_load_explicit(&p->n_tasks, memory_order_relaxed);
        const fr_task_fn fn = atomic_load_explicit(&p->fn, memory_order_relaxed);
        void *const arg = atomic_load_explicit(&p->arg, memory_order_relaxed);
        const int64_t base = atomic_load_explicit(&p->base, memory_order_relaxed);
        if (i >= n) return; /* also CLOSED */
        /* release: the descriptor reads above happen before the caller's close of this run,
         * which reads this value (acq_rel), so they cannot see the next run's descriptor */
        if (!atomic_compare_exchange_weak_explicit(&p->claim, &c, c + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        fn(arg, base + i, thread);
        /* release: the task's writes are visible to the caller once it sees the total */
        if (atomic_fetch_add_explicit(&p->done, 1, memory_order_seq_cst) + 1 == n &&
            atomic_load_explicit(&p->caller_waiting, memory_order_seq_cst))
            word_wake(p, &p->done, 1);
        c = atomic_load_explicit(&p->claim, memory_order_acquire);
    }
}

/* Waits for an epoch other than `seen`: spins for spin_ns if fewer than n_active - 1 workers
 * already spin, then sleeps. Returns the new epoch (or any, once the pool stops). */
static unsigned wait_epoch(fr_threadpool *p, unsigned seen) {
    unsigned e = seen;
    if (atomic_fetch_add_explicit(&p->spinners, 1, memory_order_seq_cst) < p->n_active - 1) {
        const int64_t t0 = now_ns();
        for (int k = 1;; k++) {
            e = atomic_load_explicit(&p->epoch, memory_order_acquire);
            if (e != seen) break;
            cpu_relax();
            if (k % 32 == 0 && now_ns() - t0 > p->spin_ns) break;
        }
    }
    /* seq_cst: the caller reads `spinners` after publishing an epoch to decide whom to wake;
     * a worker that leaves the spin after that read re-reads the epoch below */
    atomic_fetch_sub_explicit(&p->spinners, 1, memory_order_seq_cst);
    while (e == seen && !atomic_load_explicit(&p->stop, memory_order_acquire)) {
        atomic_fetch_add_explicit(&p->sleepers, 1, memory_order_seq_cst);
        /* seq_cst pairs with the caller's epoch store then sleepers load: either this load
         * sees the new epoch or the caller sees this sleeper and wakes it */
        e = atomic_load_explicit(&p->epoch, memory_order_seq_cst);
        if (e == seen && !atomic_load_explicit(&p->stop, memory_order_seq_cst))
            word_wait(p, &p->epoch, seen);
        atomic_fetch_sub_explicit(&p->sleepers, 1, memory_order_relaxed);
        e = atomic_load_explicit(&p->epoch, memory_order_acquire);
    }
    return e;
}

static void *worker_main(void *varg) {
    worker_arg wa = *(worker_arg *)varg;
    free(varg);
    fr_threadpool *p = wa.pool;
    unsigned seen = 0; /* epoch 0 is never a run; a run may start before this thread does */
    for (;;) {
        const unsigned e = wait_epoch(p, seen);
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) return NULL;
        seen = e;
        run_claims(p, e, wa.index);
    }
}

/* The caller's wait for the tasks that workers claimed: spin a while (they are usually running
 * and nearly done), then sleep so that a worker which was descheduled holding a task can have
 * this core. */
static void wait_done(fr_threadpool *p, unsigned n) {
    const int64_t t0 = now_ns();
    for (int k = 1; atomic_load_explicit(&p->done, memory_order_acquire) != n; k++) {
        cpu_relax();
        if (k % 32 == 0 && now_ns() - t0 > p->spin_ns) break;
    }
    atomic_store_explicit(&p->caller_waiting, 1, memory_order_seq_cst);
    unsigned d;
    while ((d = atomic_load_explicit(&p->done, memory_order_seq_cst)) != n)
        word_wait(p, &p->done, d);
    atomic_store_explicit(&p->caller_waiting, 0, memory_order_relaxed);
}

static void run_piece(fr_threadpool *p, int64_t base, unsigned n, fr_task_fn fn, void *arg) {
    const unsigned e = ++p->seq == 0 ? ++p->seq : p->seq; /* 0 is the workers' start value */
    atomic_exchange_explicit(&p->claim, (uint64_t)e << 32 | CLOSED, memory_order_acq_rel);
    atomic_store_explicit(&p->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&p->arg, arg, memory_order_relaxed);
    atomic_store_explicit(&p->base, base, memory_order_relaxed);
    atomic_store_explicit(&p->n_tasks, n, memory_order_relaxed);
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_store_explicit(&p->claim, (uint64_t)e << 32, memory_order_release);
    atomic_store_explicit(&p->epoch, e, memory_order_seq_cst);
    /* wake only as many as can run at once and are not already spinning: no syscall while the
     * workers keep up, and no crowd of threads beyond the CPU count */
    const int helpers = (int)(n < (unsigned)p->n_active ? n : (unsigned)p->n_active) - 1;
    const int want = helpers - atomic_load_explicit(&p->spinners, memory_order_seq_cst);
    if (want > 0 && atomic_load_explicit(&p->sleepers, memory_order_seq_cst) > 0)
        word_wake(p, &p->epoch, want);
    run_claims(p, e, 0);
    wait_done(p, n);
}

int fr_cpu_count(void) {
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        const int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

fr_threadpool *fr_threadpool_create(int n_threads) {
    const int cpus = fr_cpu_count();
    if (n_threads <= 0) n_threads = cpus;
    if (n_threads > FR_THREADPOOL_MAX_THREADS) {
        FR_LOG_W("thread pool: %d threads asked for, starting %d (the most one pool starts; "
                 "this machine has %d usable CPUs)",
                 n_threads, FR_THREADPOOL_MAX_THREADS, cpus);
        n_threads = FR_THREADPOOL_MAX_THREADS;
    }
    const size_t size = (sizeof(fr_threadpool) + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
    fr_threadpool *p = aligned_alloc(CACHE_LINE, size);
    if (!p) return NULL;
    memset(p, 0, size);
    p->n_threads = n_threads;
    p->n_active = n_threads < cpus ? n_threads : cpus;
    long spin_us = SPIN_US_DEFAULT;
    const char *env = getenv("FR_THREADPOOL_SPIN_US");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end || v < 0 || v > 10000)
            FR_LOG_W("FR_THREADPOOL_SPIN_US=%s: not a number of microseconds in 0..10000; "
                     "using %d",
                     env, SPIN_US_DEFAULT);
        else
            spin_us = v;
    }
    p->spin_ns = (int64_t)spin_us * 1000;
    p->adapt = p->n_active > 1 && p->n_active <= ADAPT_MAX_ACTIVE;
    p->hold = MIN_HOLD;
    atomic_init(&p->claim, CLOSED);
    atomic_init(&p->fn, NULL);
    atomic_init(&p->arg, NULL);
    atomic_init(&p->base, 0);
    atomic_init(&p->n_tasks, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->caller_waiting, 0);
    atomic_init(&p->epoch, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->spinners, 0);
    atomic_init(&p->stop, false);
#ifndef __linux__
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
#endif
    if (n_threads > 1) {
        p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->workers) {
            p->n_threads = 1;
            goto fail;
        }
        for (int i = 0; i < n_threads - 1; i++) {
            worker_arg *wa = malloc(sizeof *wa);
            if (wa) {
                wa->pool = p;
                wa->index = i + 1;
            }
            if (!wa || pthread_create(&p->workers[i], NULL, worker_main, wa) != 0) {
                free(wa);
                p->n_threads = i + 1; /* the workers started so far, for destroy to join */
                goto fail;
            }
        }
    }
    return p;
fail:
    fr_threadpool_destroy(p);
    return NULL;
}

void fr_threadpool_destroy(fr_threadpool *p) {
    if (!p) return;
    atomic_store_explicit(&p->stop, true, memory_order_seq_cst);
    atomic_fetch_add_explicit(&p->epoch, 1, memory_order_seq_cst);
    word_wake(p, &p->epoch, INT_MAX);
    for (int i = 0; i < p->n_threads - 1; i++)
        pthread_join(p->workers[i], NULL);
    free(p->workers);
#ifndef __linux__
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
#endif
    free(p);
}

int fr_threadpool_size(const fr_threadpool *p) {
    return p->n_threads;
}

int64_t fr_threadpool_solo_runs(const fr_threadpool *p) {
    return p->solo_runs;
}

/* With one other busy process on two cores, three threads share two cores: the calling thread
 * gets about 2/3 of one, and a step advances only while it runs, so two threads lose to one that
 * has a core to itself (measured 0.73x; bench/RESULTS.md). Which is faster depends on the load,
 * so the pool measures it: decode and prefill repeat the same sequence of runs, so windows of
 * WINDOW_RUNS runs do comparable work, and every `hold` windows one window runs the other mode.
 * The faster one (by WIN_MARGIN_PCT) is kept; a probe that has already taken longer than the
 * last window stops early, so a losing probe costs at most one window. Returns whether this
 * run goes to the calling thread alone. */
static bool adapt_begin(fr_threadpool *p) {
    if (p->window_runs == 0) p->window_t0 = now_ns();
    return p->solo != p->probing;
}

static void adapt_end(fr_threadpool *p) {
    p->window_runs++;
    if (p->probing && p->window_runs % 64 == 0 && now_ns() - p->window_t0 > p->ref_ns) {
        p->probing = false; /* already slower than the last window: keep the mode */
        p->window_runs = 0;
        p->held = 0;
        p->hold = p->hold * 2 > MAX_HOLD ? MAX_HOLD : p->hold * 2;
        return;
    }
    if (p->window_runs < WINDOW_RUNS) return;
    const int64_t t = now_ns() - p->window_t0;
    p->window_runs = 0;
    if (p->probing) {
        p->probing = false;
        p->held = 0;
        if (t * 100 < p->ref_ns * (100 - WIN_MARGIN_PCT)) {
            p->solo = !p->solo;
            p->ref_ns = t;
            p->hold = MIN_HOLD;
        } else {
            p->hold = p->hold * 2 > MAX_HOLD ? MAX_HOLD : p->hold * 2;
        }
        return;
    }
    p->ref_ns = t;
    if (++p->held >= p->hold) p->probing = true;
}

void fr_threadpool_run(fr_threadpool *p, int64_t n_tasks, fr_task_fn fn, void *arg) {
    if (n_tasks <= 0) return;
    if (p->n_threads == 1 || n_tasks == 1) {
        for (int64_t t = 0; t < n_tasks; t++)
            fn(arg, t, 0);
        return;
    }
    if (p->adapt && adapt_begin(p)) {
        p->solo_runs++;
        for (int64_t t = 0; t < n_tasks; t++)
            fn(arg, t, 0);
        adapt_end(p);
        return;
    }
    for (int64_t base = 0; base < n_tasks; base += MAX_RUN_TASKS) {
        const int64_t left = n_tasks - base;
        run_piece(p, base, (unsigned)(left < MAX_RUN_TASKS ? left : MAX_RUN_TASKS), fn, arg);
    }
    if (p->adapt) adapt_end(p);
}
