/* Overhead of one r1_parallel_for with trivial work (wake-up + join), back to back and after idling.
 * Build: gcc -O2 -std=gnu11 -pthread -Inative -I/usr/include/node native/bench/pool_bench.c native/threads.c -o /tmp/pool_bench */
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include "threads.h"

static atomic_long hits;
static void touch(void *ctx, long b, long e, int tid) { (void)ctx; (void)tid; atomic_fetch_add(&hits, e - b); }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

int main(void) {
  printf("threads=%d\n", r1_num_threads());
  for (int round = 0; round < 3; round++) {
    const int n = 20000;
    double t0 = now();
    for (int i = 0; i < n; i++) r1_parallel_for(64, 1, touch, NULL);
    double back = (now() - t0) / n * 1e6;
    /* after the workers have gone to sleep (idle > spin window) */
    double sleepy = 0;
    for (int i = 0; i < 50; i++) {
      usleep(2000);
      double s = now();
      r1_parallel_for(64, 1, touch, NULL);
      sleepy += now() - s;
    }
    printf("back-to-back %.2f us/call, after 2 ms idle %.1f us/call\n", back, sleepy / 50 * 1e6);
  }
  printf("items %ld (expect %ld)\n", (long)atomic_load(&hits), 3L * (20000 + 50) * 64);
  return 0;
}
