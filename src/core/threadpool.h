/* A persistent fork-join thread pool built to survive a busy machine. The calling thread takes
 * part, so a pool of n threads starts n-1 workers. Tasks are claimed from a shared counter and a
 * run ends when its last task has finished, however many workers took part: a worker that is
 * not scheduled claims nothing and is not waited for. Idle workers spin for a few microseconds
 * (decode steps issue many small ops back to back) and then sleep on a futex; at most as many
 * threads as there are usable CPUs spin or are woken for one run, so threads beyond the CPU
 * count sleep instead of competing for the cores. On machines of up to 4 usable CPUs the pool
 * also measures whether the calling thread alone is faster (other processes busy) and then runs
 * alone, probing again from time to time. */
#ifndef FR_CORE_THREADPOOL_H
#define FR_CORE_THREADPOOL_H

#include <stdint.h>

/* The most threads one pool starts; a larger request is cut to this with a warning. */
#define FR_THREADPOOL_MAX_THREADS 256

typedef struct fr_threadpool fr_threadpool;

/* fn(arg, task, thread): run task `task` (0..n_tasks-1) on thread `thread` (0..n_threads-1).
 * Two tasks of one run never get the same `thread` at the same time. */
typedef void (*fr_task_fn)(void *arg, int64_t task, int thread);

/* n_threads <= 0 means one per usable CPU (fr_cpu_count). The environment variable
 * FR_THREADPOOL_SPIN_US (0..10000) overrides how long idle threads spin before sleeping.
 * Returns NULL on failure. */
fr_threadpool *fr_threadpool_create(int n_threads);
void fr_threadpool_destroy(fr_threadpool *pool);
int fr_threadpool_size(const fr_threadpool *pool);
/* Runs given to the calling thread alone because measurement found one thread faster than all
 * of them (another process busy on a small machine; see threadpool.c): for tests and
 * diagnostics. */
int64_t fr_threadpool_solo_runs(const fr_threadpool *pool);

/* Runs all tasks and returns when every one is done. Not re-entrant: call from one thread at a
 * time, and not from inside a task. */
void fr_threadpool_run(fr_threadpool *pool, int64_t n_tasks, fr_task_fn fn, void *arg);

/* CPUs this process may run on (its affinity mask, e.g. under taskset), else the online CPUs. */
int fr_cpu_count(void);

#endif
