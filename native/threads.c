/* r1ts native thread pool (API in threads.h).
 *
 * Design (why it looks like this):
 * - One process-wide pool of persistent pthreads, created lazily on the first parallel call, so
 *   the addon costs nothing until used and a small job pays no pthread_create.
 * - r1_parallel_for: chunk i of [0,n) is meant for thread i (the caller takes chunk 0), but chunks
 *   are *claimed* (one CAS each) and whoever is free runs any unclaimed chunk, with that chunk's
 *   index as thread_index. So each thread_index is used by at most one executor per call (callers may
 *   keep per-index scratch or partial results), and on a shared, oversubscribed machine the caller
 *   never waits for a worker that the OS has not scheduled yet: it runs that worker's chunk itself.
 * - Publishing uses a seqlock-style generation: odd while the job descriptor is being written, even
 *   once published. A worker copies the descriptor and re-checks the generation, so it never runs a
 *   torn or stale job; chunk claims are tagged with the generation (claim[i] only grows), so a late
 *   worker cannot claim a chunk of a job that has already finished.
 * - Wake-up: idle workers spin on the generation for a short bounded time (R1_SPIN_NS; back-to-back
 *   small kernels then start in well under a microsecond) and then sleep on a condition variable; a
 *   "sleepers" count lets the caller skip the futex wake when everyone is spinning. When threads
 *   outnumber CPUs, spinning would only steal time from the thread that has work, so workers then
 *   block at once.
 * - r1_parallel_team's members are claimed the same way: a member whose worker has not started when
 *   the caller is done with its own runs on the caller, after it (members must not wait for each other).
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
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define R1_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define R1_CPU_RELAX() __asm__ __volatile__("yield")
#else
#define R1_CPU_RELAX() ((void)0)
#endif

#define R1_MAX_THREADS 64
/* How long an idle worker spins before it sleeps: long enough to bridge the gap between the kernels
 * of one layer, short enough that an idle pool does not keep taking CPU from other processes. */
#define R1_SPIN_NS 100000L

typedef struct {
  r1_team_fn team;   /* non-NULL: team job, member i runs team(ctx, i, nchunks) */
  r1_range_fn fn;
  void *ctx;
  long n;
  int nchunks;
  int quit;          /* workers exit (pool resize) */
} r1_job;

static struct {
  pthread_mutex_t mu;        /* guards sleeping / waking */
  pthread_cond_t cv;
  pthread_mutex_t call_mu;   /* one top-level parallel call at a time */
  atomic_ulong gen;          /* even: job `gen` published; odd: descriptor being written */
  atomic_int done;           /* chunks (or team members) finished in the current job */
  atomic_int waiting;        /* the caller sleeps on `done` (futex) until the job is finished */
  atomic_int sleepers;       /* workers blocked (or about to block) on cv */
  atomic_ulong claim[R1_MAX_THREADS]; /* generation in which chunk i was last claimed */
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

static long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000L + t.tv_nsec;
}

/* A member finished a chunk: count it, and wake the caller if it went to sleep waiting. */
static void mark_done(void) {
  atomic_fetch_add(&pool.done, 1); /* seq_cst: ordered before the waiting load (pairs with wait_done) */
#ifdef __linux__
  if (atomic_load(&pool.waiting)) syscall(SYS_futex, (int *)&pool.done, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
#endif
}

/* Claim chunk i of job generation g; fails if it was already claimed in g (claims only grow, so a
 * stale worker holding an older g cannot take a chunk of a newer job either). */
static int try_claim(int i, unsigned long g) {
  unsigned long c = atomic_load_explicit(&pool.claim[i], memory_order_relaxed);
  while (c < g)
    if (atomic_compare_exchange_weak_explicit(&pool.claim[i], &c, g, memory_order_acq_rel, memory_order_relaxed)) return 1;
  return 0;
}

/* Run every still-unclaimed chunk of job (g, job), starting with `first`. */
static void run_chunks(const r1_job *job, unsigned long g, int first) {
  for (int k = 0; k < job->nchunks; k++) {
    int i = (first + k) % job->nchunks;
    if (!try_claim(i, g)) continue;
    long b, e;
    chunk_bounds(job->n, job->nchunks, i, &b, &e);
    if (job->team) job->team(job->ctx, i, job->nchunks);
    else job->fn(job->ctx, b, e, i);
    mark_done();
  }
}

/* Wait (spinning, bounded by R1_SPIN_NS) for a published generation other than `seen`. */
static unsigned long spin_for_job(unsigned long seen) {
  unsigned long g = atomic_load_explicit(&pool.gen, memory_order_acquire);
  if (!pool.spin || (g != seen && !(g & 1))) return g;
  long deadline = now_ns() + R1_SPIN_NS;
  for (;;) {
    for (int i = 0; i < 64; i++) { /* clock read only every 64 pauses */
      R1_CPU_RELAX();
      g = atomic_load_explicit(&pool.gen, memory_order_acquire);
      if (g != seen && !(g & 1)) return g;
    }
    if (now_ns() > deadline) return g;
  }
}

static void *worker_main(void *arg) {
  int idx = (int)(long)arg; /* 1..nworkers; the caller is 0 */
  /* The generation at spawn time (not "now": the caller may publish before this thread runs, and
   * not 0: after a resize the last published job is the old workers' quit). */
  unsigned long seen = pool.gen_at_spawn;
  in_region = 1;            /* anything a worker calls runs serially */
  for (;;) {
    unsigned long g = spin_for_job(seen);
    if (g == seen || (g & 1)) {
      pthread_mutex_lock(&pool.mu);
      atomic_fetch_add(&pool.sleepers, 1); /* seq_cst: pairs with the caller's gen store + sleepers load */
      while ((g = atomic_load(&pool.gen)) == seen || (g & 1)) pthread_cond_wait(&pool.cv, &pool.mu);
      atomic_fetch_sub(&pool.sleepers, 1);
      pthread_mutex_unlock(&pool.mu);
    }
    r1_job job = pool.job;
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&pool.gen, memory_order_relaxed) != g) continue; /* torn copy: re-read */
    seen = g;
    if (job.quit) return NULL;
    if (idx < job.nchunks) {
      run_chunks(&job, g, idx); /* own chunk first, then help with any left */
    }
  }
}

/* Publish pool.job as a new generation and wake sleeping workers. Returns the generation. */
static unsigned long publish(const r1_job *job) {
  unsigned long g = atomic_load_explicit(&pool.gen, memory_order_relaxed);
  atomic_store_explicit(&pool.gen, g + 1, memory_order_relaxed); /* odd: writing */
  atomic_thread_fence(memory_order_release);
  pool.job = *job;
  atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
  atomic_fetch_add(&pool.gen, 1); /* even: published (seq_cst, ordered before the sleepers load) */
  if (atomic_load(&pool.sleepers) > 0) {
    pthread_mutex_lock(&pool.mu);
    pthread_cond_broadcast(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
  }
  return g + 2;
}

/* How long the caller spins for the last members before it sleeps. Sleeping matters on a machine
 * where the threads outnumber the free CPUs for a moment (V8's own background threads: GC, compiler):
 * a member that lost its CPU waits in that CPU's run queue while a spinning caller keeps its own CPU
 * busy, possibly for a whole time slice (single kernel calls stalled 4-30 ms on a 2-core VM, with the
 * main thread preempted hundreds of times per second); a caller that sleeps leaves its CPU idle, and
 * the scheduler can move the waiting member there. 200 us: a sleep (and the futex wake-up the last
 * member then pays) only for waits far longer than the usual imbalance of a split. */
#ifndef R1_WAIT_SPIN_NS
#define R1_WAIT_SPIN_NS 200000L
#endif
static void wait_done(int count) {
  int d = atomic_load_explicit(&pool.done, memory_order_acquire);
  if (d >= count) return;
  static long spin_ns = -1; /* tuning hook: R1_WAIT_SPIN_NS, read once */
  if (spin_ns < 0) { const char *e = getenv("R1_WAIT_SPIN_NS"); spin_ns = e ? atol(e) : R1_WAIT_SPIN_NS; if (spin_ns < 0) spin_ns = 0; }
  long deadline = now_ns() + spin_ns;
  for (;;) {
    for (int i = 0; i < 64; i++) {
      R1_CPU_RELAX();
      if (atomic_load_explicit(&pool.done, memory_order_acquire) >= count) return;
    }
    if (now_ns() > deadline) break;
  }
#ifdef __linux__
  atomic_store(&pool.waiting, 1);
  while ((d = atomic_load(&pool.done)) < count) {
    struct timespec ts = {0, 1000000}; /* 1 ms: a bound, should a wake-up ever be missed */
    syscall(SYS_futex, (int *)&pool.done, FUTEX_WAIT_PRIVATE, d, &ts, NULL, 0);
  }
  atomic_store(&pool.waiting, 0);
  atomic_thread_fence(memory_order_acquire);
#else
  while (atomic_load_explicit(&pool.done, memory_order_acquire) < count) sched_yield();
#endif
}

static void pool_resize(int threads) {
  int want = threads - 1;
  if (want == pool.nworkers) return;
  if (pool.nworkers > 0) { /* stop and join the old workers */
    r1_job q = {0};
    q.quit = 1;
    publish(&q);
    for (int i = 1; i <= pool.nworkers; i++) pthread_join(pool.tid[i], NULL);
    pool.nworkers = 0;
  }
  pool.spin = threads <= online_cpus();
  pool.gen_at_spawn = atomic_load(&pool.gen); /* pthread_create orders this before the thread runs */
  for (int i = 1; i <= want; i++) {
    if (pthread_create(&pool.tid[i], NULL, worker_main, (void *)(long)i) != 0) break; /* run with fewer */
    pool.nworkers = i;
  }
}

/* Enter the pool for a top-level call, or return 0 when the call must run serially. */
static int enter(int nchunks) {
  if (nchunks <= 1 || in_region) return 0;
  if (pthread_mutex_trylock(&pool.call_mu) != 0) return 0;
  return 1;
}

void r1_parallel_for(long n, long grain, r1_range_fn fn, void *ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int threads = r1_num_threads();
  long maxchunks = (n + grain - 1) / grain;
  int nchunks = maxchunks < threads ? (int)maxchunks : threads;
  if (!enter(nchunks)) {
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
    r1_job job = {.fn = fn, .ctx = ctx, .n = n, .nchunks = nchunks};
    unsigned long g = publish(&job);
    run_chunks(&job, g, 0);
    wait_done(nchunks);
  }
  in_region = 0;
  pthread_mutex_unlock(&pool.call_mu);
}

void r1_parallel_team(int max_threads, r1_team_fn fn, void *ctx) {
  int threads = r1_num_threads();
  int nteam = max_threads < threads ? max_threads : threads;
  if (!enter(nteam)) {
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
    r1_job job = {.team = fn, .ctx = ctx, .n = nteam, .nchunks = nteam};
    unsigned long g = publish(&job);
    run_chunks(&job, g, 0);
    wait_done(nteam);
  }
  in_region = 0;
  pthread_mutex_unlock(&pool.call_mu);
}
