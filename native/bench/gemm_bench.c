/* Standalone GEMM timing harness for tuning block sizes (not part of the addon).
 * Build: gcc -O3 -std=gnu11 -pthread -Inative -I/usr/include/node native/bench/gemm_bench.c native/gemm.c native/threads.c native/cpu.c -o /tmp/gemm_bench
 * Usage: /tmp/gemm_bench m k n [threads] [reps] [ta tb]   -> prints best GFLOP/s over reps
 * Block sizes can be overridden with R1_GEMM_KC / R1_GEMM_NCU / R1_GEMM_UPT (units per thread);
 * MISALIGN=<floats> offsets the operands from 64-byte alignment, as JS typed arrays may be. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "gemm.h"
#include "threads.h"
#include "cpu.h"

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
/* CPU time of this thread: with 1 thread, flops / cpu-time measures the kernel even while other
 * processes steal the (shared) CPU, which wall-clock cannot. */
static double cpu_now(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

int main(int argc, char **argv) {
  if (argc < 4) { fprintf(stderr, "usage: %s m k n [threads] [reps] [ta tb]\n", argv[0]); return 2; }
  long m = atol(argv[1]), k = atol(argv[2]), n = atol(argv[3]);
  if (argc > 4) r1_set_num_threads(atoi(argv[4]));
  int reps = argc > 5 ? atoi(argv[5]) : 5;
  int ta = argc > 6 ? atoi(argv[6]) : 0, tb = argc > 7 ? atoi(argv[7]) : 0;
  float *A = aligned_alloc(64, sizeof(float) * ((m * k + 15) & ~15L)), *B = aligned_alloc(64, sizeof(float) * ((k * n + 15) & ~15L)),
        *C = aligned_alloc(64, sizeof(float) * ((m * n + 15) & ~15L));
  if (getenv("MISALIGN")) { /* mimic JS typed arrays (16-byte aligned at best) */
    long off = atol(getenv("MISALIGN"));
    A = aligned_alloc(64, sizeof(float) * ((m * k + 31) & ~15L)) + off;
    B = aligned_alloc(64, sizeof(float) * ((k * n + 31) & ~15L)) + off;
    C = aligned_alloc(64, sizeof(float) * ((m * n + 31) & ~15L)) + off;
  }
  for (long i = 0; i < m * k; i++) A[i] = (float)((i * 7) % 13) * 0.1f - 0.6f;
  for (long i = 0; i < k * n; i++) B[i] = (float)((i * 5) % 11) * 0.1f - 0.5f;
  double flops = 2.0 * m * n * k;
  /* enough inner iterations per sample to last ~0.2 s */
  r1_sgemm(ta, tb, m, n, k, 1.0f, A, ta ? m : k, B, tb ? k : n, 0.0f, C, n);
  double t0 = now(); r1_sgemm(ta, tb, m, n, k, 1.0f, A, ta ? m : k, B, tb ? k : n, 0.0f, C, n); double one = now() - t0;
  int inner = one > 0.2 ? 1 : (int)(0.2 / (one + 1e-9)) + 1;
  double best = 0, bestcpu = 0;
  for (int r = 0; r < reps; r++) {
    t0 = now();
    double c0 = cpu_now();
    for (int i = 0; i < inner; i++) r1_sgemm(ta, tb, m, n, k, 1.0f, A, ta ? m : k, B, tb ? k : n, 0.0f, C, n);
    double g = flops * inner / (now() - t0) / 1e9, gc = flops * inner / (cpu_now() - c0) / 1e9;
    if (g > best) best = g;
    if (gc > bestcpu) bestcpu = gc;
  }
  printf("%s m=%ld k=%ld n=%ld threads=%d ta=%d tb=%d best=%.1f GFLOP/s", r1_isa_name(r1_isa()), m, k, n, r1_num_threads(), ta, tb, best);
  if (r1_num_threads() == 1) printf(" per-cpu-second=%.1f", bestcpu);
  printf("\n");
  return 0;
}
