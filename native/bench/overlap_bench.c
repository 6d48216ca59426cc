/* Can a core stream weights from DRAM while its dot units run? The batch-16 panel product (qpanel_kern.h) does 24
 * vdpbf16ps per K step of an 8-row x 3-panel block and reads three 64-byte panel lines a step, so 16 rows (two
 * blocks) need 1.5 new lines per 24-vdpbf16ps step. This harness runs that register block on operands held in L1,
 * on every core, and issues n software prefetches per step (n = 0..3) into a separate stream of a 256 MiB buffer
 * (hint T0, T1 or NTA, or a demand load), then reports the step time and the bytes prefetched per second: the
 * compute rate with no memory traffic, and how much of it survives a given stream rate.
 * Build: gcc -O3 -std=gnu11 -pthread native/bench/overlap_bench.c -o /tmp/overlap_bench
 * Run:   /tmp/overlap_bench [threads (2)] [prefetch distance in bytes (4096)]
 * x86-64 with AVX512_BF16 only. */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TB __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static const long BYTES = 256L << 20;
static char *stream_buf;
static long dist;
static volatile float sink;

typedef struct { int tid, nthreads, npf, hint; long steps; double seconds; } job;

TB static void *run(void *v) {
  job *j = v;
  char *w = aligned_alloc(64, 16384), *base = stream_buf + j->tid * (BYTES / j->nthreads);
  int *x = aligned_alloc(64, 16384);
  memset(w, 0x3f, 16384);
  for (int i = 0; i < 4096; i++) x[i] = 0x3f803f80 + (i & 7);
  __m512 c[24];
  for (int i = 0; i < 24; i++) c[i] = _mm512_setzero_ps();
  const long span = BYTES / j->nthreads - dist - 64;
  long off = 0, dummy = 0;
  const double t0 = now();
  for (long p = 0; p < j->steps; p++) {
    for (int k = 0; k < j->npf; k++) {
      const char *a = base + off + dist;
      off = off + 64 < span ? off + 64 : 0;
      switch (j->hint) {
        case 0: _mm_prefetch(a, _MM_HINT_T0); break;
        case 1: _mm_prefetch(a, _MM_HINT_T1); break;
        case 2: _mm_prefetch(a, _MM_HINT_NTA); break;
        default: dummy += *(volatile const char *)a; break;
      }
    }
    const char *r = w + (p & 63) * 192;
    const __m512i w0 = _mm512_loadu_si512(r), w1 = _mm512_loadu_si512(r + 64), w2 = _mm512_loadu_si512(r + 128);
    for (int i = 0; i < 8; i++) {
      const __m512bh xb = (__m512bh)_mm512_set1_epi32(x[(p & 255) * 8 + i]);
      c[3 * i] = _mm512_dpbf16_ps(c[3 * i], xb, (__m512bh)w0);
      c[3 * i + 1] = _mm512_dpbf16_ps(c[3 * i + 1], xb, (__m512bh)w1);
      c[3 * i + 2] = _mm512_dpbf16_ps(c[3 * i + 2], xb, (__m512bh)w2);
    }
  }
  j->seconds = now() - t0;
  float s = (float)dummy;
  for (int i = 0; i < 24; i++) s += _mm512_reduce_add_ps(c[i]);
  sink = s;
  free(w);
  free(x);
  return NULL;
}

int main(int argc, char **argv) {
  const int nt = argc > 1 ? atoi(argv[1]) : 2;
  dist = argc > 2 ? atol(argv[2]) : 4096;
  if (nt < 1 || nt > 64 || dist < 0 || dist > (1L << 20)) { fprintf(stderr, "usage: overlap_bench [threads 1-64] [distance 0-1048576]\n"); return 2; }
  if (!__builtin_cpu_supports("avx512bf16")) { fprintf(stderr, "overlap_bench: needs AVX512_BF16\n"); return 2; }
  stream_buf = aligned_alloc(4096, BYTES);
  memset(stream_buf, 1, BYTES);
  const char *hints[] = {"T0", "T1", "NTA", "load"};
  const long steps = 20000000;
  printf("threads %d, prefetch %ld bytes ahead, %ld steps of 24 vdpbf16ps per thread\n", nt, dist, steps);
  for (int hint = 0; hint < 4; hint++)
    for (int npf = hint ? 1 : 0; npf <= 3; npf++) {
      job j[64];
      pthread_t t[64];
      for (int i = 0; i < nt; i++) { j[i] = (job){i, nt, npf, hint, steps, 0}; pthread_create(&t[i], NULL, run, &j[i]); }
      double sec = 0;
      for (int i = 0; i < nt; i++) { pthread_join(t[i], NULL); sec += j[i].seconds / nt; }
      printf("%-4s %d lines/step: %6.2f ns/step, %6.1f GB/s streamed, %6.0f GFLOP/s\n", hints[hint], npf,
             sec / steps * 1e9, (double)nt * steps * npf * 64 / sec / 1e9, (double)nt * steps * 24 * 64 / sec / 1e9);
    }
  return 0;
}
