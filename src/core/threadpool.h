/* A persistent fork-join thread pool. The calling thread takes part, so a pool of n threads starts
 * n-1 workers. Workers spin briefly after each run (decode steps issue many small ops back to back)
 * and then sleep on a condition variable. */
#ifndef FR_CORE_THREADPOOL_H
#define FR_CORE_THREADPOOL_H

#include <stdint.h>

typedef struct fr_threadpool fr_threadpool;

/* fn(arg, task, thread): run task `task` (0..n_tasks-1) on thread `thread` (0..n_threads-1). */
typedef void (*fr_task_fn)(void *arg, int64_t task, int thread);

/* n_threads <= 0 means one per online CPU. Returns NULL on failure. */
fr_threadpool *fr_threadpool_create(int n_threads);
void fr_threadpool_destroy(fr_threadpool *pool);
int fr_threadpool_size(const fr_threadpool *pool);

/* Runs all tasks and returns when every one is done. Not re-entrant: call from one thread. */
void fr_threadpool_run(fr_threadpool *pool, int64_t n_tasks, fr_task_fn fn, void *arg);

int fr_cpu_count(void);

#endif
