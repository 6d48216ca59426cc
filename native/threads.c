/* r1ts native thread pool (API in threads.h).
 *
 * Design (why it looks like this):
 * - One process-wide pool of persistent pthreads, created lazily on the first parallel call, so
 *   the addon costs nothing until used and a small job pays no pthread_create.
 * - Static split: chunk i of [0,n) goes to thread i (the caller runs chunk 0). Callers may keep
 *   per-thread partial results indexed by thread_index, so each index is used at most once per call.
 *   Kernels that want dynamic load balancing (gemm.c) hand out their own tiles via an atomic counter.
 * - Wake-up: the caller publishes a job by bumping a generation counter. Workers spin on that counter
 *   for a short while after each job (back-to-back small kernels then start in well under a
 *   microsecond) and only then sleep on a condition variable. A "sleepers" count lets the caller
 *   skip the futex wake when everyone is spinning. When threads outnumber CPUs, spinning only steals
 *   time from the thread that has work, so workers then block immediately.
 * - Every worker acknowledges every job (even one with fewer chunks than threads), so the caller
 *   never rewrites the job descriptor while a late worker could still be reading it.
 * - Nesting: a thread-local flag marks "inside a parallel region"; inner calls run serially on the
 *   calling thread. A second, concurrent top-level caller (another OS thread) that finds the pool
 *   busy also runs serially rather than waiting, so no call can deadlock.
 */
#define _GNU_SOURCE
#include "threads.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define R1_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define R1_CPU_RELAX() __asm__ __volatile__("yield")
#else
#define R1_CPU_RELAX() ((void)0)
#endif

#define R1_MAX_THREADS 64
/* Spin iterations (each one PAUSE, ~10-60 ns depending on the core) before a worker sleeps. */
#define R1_SPIN_ITERS 20000

typedef struct {
  r1_team_fn team;   /* non-NULL: team job, worker idx runs team(ctx, idx, nchunks) */
  r1_range_fn fn;
  void *ctx;
  long n;
  int nchunks;
} r1_job;

static struct {
  pthread_mutex_t mu;        /* guards sleeping / waking */
  pthread_cond_t cv;
  pthread_mutex_t call_mu;   /* one top-level parallel_for at a time */
  atomic_ulong gen;          /* bumped once per published job */
  atomic_int pending;        /* workers that have not finished the current job */
  atomic_int sleepers;       /* workers blocked (or about to block) on cv */
  atomic_int quit;
  r1_job job;
  int nworkers;              /* worker threads alive (threads - 1) */
  unsigned long gen_at_spawn;
  int spin;                  /* whether idle workers spin before sleeping */
  pthread_t tid[R1_MAX_THREADS];
} pool = {
  .mu = PTHREAD_MUTEX_INITIALIZER,
  .cv = PTHREAD_COND_INITIALIZER,
  .call_mu = PTHREAD_MUTEX_INITIALIZER,
};

static atomic_int want_threads;      /* 0 = not decided yet */
static _Thread_local int in_region;  /* nonzero inside a parallel region on this thread */

static int online_cpus(void) {
  long c = sysconf(_SC_NPROCESSORS_ONLN);
  return c < 1 ? 1 : (c > R1_MAX_THREADS ? R1_MAX_THREADS : (int)c);
}

static int clamp_threads(long n) { return n < 1 ? 1 : (n > R1_MAX_THREADS ? R1_MAX_THREADS : (int)n); }

int r1_num_threads(void) {
  int t = atomic_load_explicit(&want_threads, memory_order_relaxed);
  if (t > 0) return t;
  const char *env = getenv("R1_THREADS");
  int v = 0;
  if (env && *env) {
    char *end = NULL;
    long x = strtol(env, &end, 10);
    if (end != env && *end == '\0' && x >= 1) v = clamp_threads(x);
  }
  if (v == 0) v = online_cpus();
  int expected = 0;
  /* Another thread may have decided concurrently; keep whichever value landed first. */
  if (!atomic_compare_exchange_strong(&want_threads, &expected, v)) return expected;
  return v;
}

void r1_set_num_threads(int n) { atomic_store(&want_threads, clamp_threads(n)); }

static void chunk_bounds(long n, int nchunks, int i, long *b, long *e) {
  /* Balanced contiguous split: the first n % nchunks chunks get one extra item. */
  long q = n / nchunks, r = n % nchunks;
  *b = i * q + (i < r ? i : r);
  *e = *b + q + (i < r ? 1 : 0);
}

static void *worker_main(void *arg) {
  int idx = (int)(long)arg; /* 1..nworkers; the caller is 0 */
  /* The generation at spawn time, not "now": the caller may publish the first job before this
   * thread gets scheduled, and reading gen here would then skip that job. */
  unsigned long seen = pool.gen_at_spawn;
  in_region = 1;            /* anything a worker calls runs serially */
  for (;;) {
    unsigned long g;
    int spins = pool.spin ? R1_SPIN_ITERS : 0;
    while ((g = atomic_load_explicit(&pool.gen, memory_order_acquire)) == seen && spins-- > 0) R1_CPU_RELAX();
    if (g == seen) {
      pthread_mutex_lock(&pool.mu);
      atomic_fetch_add(&pool.sleepers, 1); /* seq_cst pairs with the caller's gen store + sleepers load */
      while ((g = atomic_load(&pool.gen)) == seen) pthread_cond_wait(&pool.cv, &pool.mu);
      atomic_fetch_sub(&pool.sleepers, 1);
      pthread_mutex_unlock(&pool.mu);
    }
    seen = g;
    if (atomic_load_explicit(&pool.quit, memory_order_acquire)) {
      atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_release);
      return NULL;
    }
    r1_job job = pool.job;
    if (idx < job.nchunks && job.team) {
      job.team(job.ctx, idx, job.nchunks);
    } else if (idx < job.nchunks) {
      long b, e;
      chunk_bounds(job.n, job.nchunks, idx, &b, &e);
      job.fn(job.ctx, b, e, idx);
    }
    atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_release);
  }
}

/* Publish the current pool.job (or quit) to all workers and wait for every acknowledgement,
 * running chunk 0 on the caller in between. */
static void publish_and_run(int run_chunk0) {
  atomic_store_explicit(&pool.pending, pool.nworkers, memory_order_relaxed);
  atomic_fetch_add(&pool.gen, 1); /* seq_cst: release of job fields, ordered before sleepers load */
  if (atomic_load(&pool.sleepers) > 0) {
    pthread_mutex_lock(&pool.mu);
    pthread_cond_broadcast(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
  }
  if (run_chunk0 && pool.job.team) {
    pool.job.team(pool.job.ctx, 0, pool.job.nchunks);
  } else if (run_chunk0) {
    long b, e;
    chunk_bounds(pool.job.n, pool.job.nchunks, 0, &b, &e);
    pool.job.fn(pool.job.ctx, b, e, 0);
  }
  unsigned spins = 0;
  while (atomic_load_explicit(&pool.pending, memory_order_acquire) > 0) {
    if (++spins < 1u << 16) R1_CPU_RELAX();
    else sched_yield(); /* a worker was descheduled (shared machine): give it the CPU */
  }
}

static void pool_resize(int threads) {
  int want = threads - 1;
  if (want == pool.nworkers) return;
  if (pool.nworkers > 0) { /* stop and join the old workers */
    atomic_store(&pool.quit, 1);
    publish_and_run(0);
    for (int i = 0; i < pool.nworkers; i++) pthread_join(pool.tid[i + 1], NULL);
    atomic_store(&pool.quit, 0);
    pool.nworkers = 0;
  }
  pool.spin = threads <= online_cpus();
  pool.gen_at_spawn = atomic_load(&pool.gen); /* pthread_create orders this before the thread runs */
  for (int i = 1; i <= want; i++) {
    if (pthread_create(&pool.tid[i], NULL, worker_main, (void *)(long)i) != 0) break; /* run with fewer */
    pool.nworkers = i;
  }
}

void r1_parallel_for(long n, long grain, r1_range_fn fn, void *ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int threads = r1_num_threads();
  long maxchunks = (n + grain - 1) / grain;
  int nchunks = maxchunks < threads ? (int)maxchunks : threads;
  if (nchunks <= 1 || in_region || pthread_mutex_trylock(&pool.call_mu) != 0) {
    int saved = in_region;
    in_region = 1;
    fn(ctx, 0, n, 0);
    in_region = saved;
    return;
  }
  pool_resize(threads);
  if (nchunks > pool.nworkers + 1) nchunks = pool.nworkers + 1; /* thread creation may have failed */
  in_region = 1;
  if (nchunks <= 1) {
    fn(ctx, 0, n, 0);
  } else {
    pool.job.team = NULL;
    pool.job.fn = fn;
    pool.job.ctx = ctx;
    pool.job.n = n;
    pool.job.nchunks = nchunks;
    publish_and_run(1);
  }
  in_region = 0;
  pthread_mutex_unlock(&pool.call_mu);
}

void r1_parallel_team(int max_threads, r1_team_fn fn, void *ctx) {
  int threads = r1_num_threads();
  int nteam = max_threads < threads ? max_threads : threads;
  if (nteam <= 1 || in_region || pthread_mutex_trylock(&pool.call_mu) != 0) {
    int saved = in_region;
    in_region = 1;
    fn(ctx, 0, 1);
    in_region = saved;
    return;
  }
  pool_resize(threads);
  if (nteam > pool.nworkers + 1) nteam = pool.nworkers + 1;
  in_region = 1;
  if (nteam <= 1) {
    fn(ctx, 0, 1);
  } else {
    pool.job.team = fn;
    pool.job.fn = NULL;
    pool.job.ctx = ctx;
    pool.job.n = nteam;
    pool.job.nchunks = nteam;
    publish_and_run(1);
  }
  in_region = 0;
  pthread_mutex_unlock(&pool.call_mu);
}
