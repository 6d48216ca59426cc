/* Stress check of the thread pool: every item of [0,n) is visited exactly once, each thread_index at
 * most once per call, nested calls run serially, thread-count changes (pool resize) between calls,
 * and team calls run their members concurrently (a barrier inside must not deadlock).
 * Build: gcc -O2 -std=gnu11 -pthread -Inative -I/usr/include/node native/bench/pool_check.c native/threads.c -o /tmp/pool_check */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "threads.h"

#define MAXN 5000
static atomic_int seen[MAXN];
static atomic_int idx_used[64];
static atomic_int bad;

static void inner(void *ctx, long b, long e, int t) { (void)ctx; (void)t; for (long i = b; i < e; i++) atomic_fetch_add(&seen[i], 0); }
static void visit(void *ctx, long b, long e, int t) {
  (void)ctx;
  if (atomic_fetch_add(&idx_used[t], 1) != 0) atomic_store(&bad, 1);
  for (long i = b; i < e; i++) atomic_fetch_add(&seen[i], 1);
  r1_parallel_for(10, 1, inner, NULL); /* nested: must run serially, not deadlock */
}

typedef struct { atomic_int arrived; } team_ctx;
static void member(void *vctx, int tid, int nt) {
  team_ctx *c = vctx;
  (void)tid;
  atomic_fetch_add(&c->arrived, 1);
  while (atomic_load(&c->arrived) < nt) { } /* barrier: needs all members at once */
}

int main(void) {
  unsigned s = 12345;
  for (int it = 0; it < 20000; it++) {
    s = s * 1103515245u + 12345u;
    if (it % 1000 == 0) r1_set_num_threads(1 + (s >> 8) % 4);
    long n = 1 + (s >> 4) % MAXN, grain = 1 + (s >> 12) % 300;
    for (long i = 0; i < n; i++) atomic_store(&seen[i], 0);
    for (int i = 0; i < 64; i++) atomic_store(&idx_used[i], 0);
    r1_parallel_for(n, grain, visit, NULL);
    for (long i = 0; i < n; i++) if (atomic_load(&seen[i]) != 1) { printf("item %ld seen %d times (n=%ld grain=%ld)\n", i, atomic_load(&seen[i]), n, grain); return 1; }
    if (atomic_load(&bad)) { printf("thread_index reused within one call\n"); return 1; }
    if (it % 10 == 0) { team_ctx c; atomic_init(&c.arrived, 0); r1_parallel_team(4, member, &c); }
  }
  printf("pool ok\n");
  return 0;
}
