/* r1ts native thread pool.
 * One process-wide pool of worker threads (R1_THREADS overrides the count; default = online CPUs).
 * r1_parallel_for splits [0, n) into contiguous chunks and runs fn(ctx, begin, end, thread_index)
 * on the pool, the calling thread taking part; it returns when every chunk is done.
 * thread_index is the chunk's index (0 .. r1_num_threads()-1), used by exactly one call per
 * parallel_for, so per-index scratch or partial results are safe; which OS thread runs a chunk is
 * not fixed (an idle thread may take over a chunk whose worker has not started yet).
 * Calls from inside a running parallel region run serially on the caller (no nesting deadlock). */
#ifndef R1_THREADS_H
#define R1_THREADS_H
#include <stddef.h>

typedef void (*r1_range_fn)(void *ctx, long begin, long end, int thread_index);

int r1_num_threads(void);              /* threads used by parallel_for (>= 1) */
void r1_set_num_threads(int n);        /* 1..64; takes effect on next call */
/* Run fn over [0,n) split into chunks of at least `grain` items (grain >= 1). */
void r1_parallel_for(long n, long grain, r1_range_fn fn, void *ctx);

/* Team form: run fn(ctx, tid, nteam) once for each tid in [0, nteam) (tid 0 on the caller), with
 * 1 <= nteam <= max_threads decided by the pool (1 when nested or when the pool is busy). Members are
 * meant for separate threads, but a member whose thread has not started when the caller has finished
 * its own runs on the caller, after it: members share work through their own counters and must never
 * wait for one another (no barriers). */
typedef void (*r1_team_fn)(void *ctx, int tid, int nteam);
void r1_parallel_team(int max_threads, r1_team_fn fn, void *ctx);
#endif
