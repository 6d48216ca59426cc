/* f32 GEMM, row-major (API in gemm.h).
 *
 * Structure follows the GotoBLAS/BLIS layering (Goto & van de Geijn, "Anatomy of High-Performance
 * Matrix Multiplication", ACM TOMS 2008; Van Zee & van de Geijn, "BLIS", ACM TOMS 2015, Fig. 1):
 *
 *   for jc in N step NC            B panel  kc x nc  packed once, shared by the team (lives in L3)
 *     for pc in K step KC
 *       pack B(pc, jc)             NR-wide micro-panels, op(B) transposes absorbed here
 *       for ic in M step MC        each thread owns a slice of M (or of N, see below)
 *         pack A(ic, pc) * alpha   MR-tall micro-panels in a per-thread buffer (lives in L2)
 *         for jr in nc step NR       B micro-panel kc x NR stays in L1
 *           for ir in mc step MR
 *             micro-kernel: C[MR x NR] (+)= Apanel * Bpanel, accumulators in registers
 *
 * Micro-kernels: AVX2+FMA 6x16 (12 ymm accumulators, 2 B loads + 6 broadcasts per k step, the
 * BLIS "haswell" shape), AVX-512F 12x32 (24 zmm accumulators, embedded broadcasts), and a portable
 * 4x16 C kernel. The SIMD ones are compiled with __attribute__((target)) (no -march in binding.gyp)
 * and picked at run time by r1_isa(), so an AVX-512 kernel never runs on a CPU without AVX-512.
 *
 * beta is applied by the micro-kernel on the first K block only (beta == 0: C is only stored, never
 * read, so NaN garbage in C cannot leak in); later K blocks accumulate with beta = 1.
 *
 * m == 1 and n == 1 are matrix-vector products: memory bound, so they skip packing entirely and
 * stream the matrix once (see gemv_* below).
 */
#define _GNU_SOURCE
#include "gemm.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>

#include "cpu.h"
#include "threads.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define R1_X86 1
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define MAX_MR 12
#define MAX_NR 32

typedef void (*ukr_fn)(long kc, const float *a, const float *b, float *c, long ldc, float beta, int mr, int nr);

typedef struct {
  int mr, nr;      /* register tile */
  long mc, kc, nc; /* cache blocks: A block mc x kc in L2, B panel kc x nc in L3, B micro-panel kc x nr in L1 */
  ukr_fn ukr;
} kinfo;

static inline long min_l(long a, long b) { return a < b ? a : b; }
static inline long max_l(long a, long b) { return a > b ? a : b; }
static inline long ceil_div(long a, long b) { return (a + b - 1) / b; }
static inline long round_up(long a, long b) { return ceil_div(a, b) * b; }

/* Split `total` into ceil(total / blk) nearly equal blocks, each a multiple of `mult`: avoids a tiny
 * last block (e.g. K = 384 with KC = 256 becomes 192 + 192 rather than 256 + 128). */
static long balanced_block(long total, long blk, long mult) {
  long nb = ceil_div(total, blk);
  return min_l(round_up(ceil_div(total, nb), mult), round_up(total, mult));
}

/* Merge an accumulated tile (row stride MAX_NR) into C honouring beta and the valid mr x nr corner. */
static inline void merge_tile(const float *acc, float *c, long ldc, float beta, int mr, int nr) {
  for (int i = 0; i < mr; i++) {
    float *ci = c + i * ldc;
    const float *ai = acc + i * MAX_NR;
    if (beta == 0.0f) for (int j = 0; j < nr; j++) ci[j] = ai[j];
    else if (beta == 1.0f) for (int j = 0; j < nr; j++) ci[j] += ai[j];
    else for (int j = 0; j < nr; j++) ci[j] = ai[j] + beta * ci[j];
  }
}

/* ---------------- portable micro-kernel (4 x 16), compiler-vectorised ---------------- */
#define SC_MR 4
#define SC_NR 16
static void ukr_scalar(long kc, const float *a, const float *b, float *c, long ldc, float beta, int mr, int nr) {
  float acc[SC_MR][SC_NR] = {{0}};
  for (long p = 0; p < kc; p++) {
    for (int i = 0; i < SC_MR; i++) {
      float av = a[i];
      for (int j = 0; j < SC_NR; j++) acc[i][j] += av * b[j];
    }
    a += SC_MR;
    b += SC_NR;
  }
  float tmp[SC_MR * MAX_NR];
  for (int i = 0; i < SC_MR; i++) memcpy(tmp + i * MAX_NR, acc[i], sizeof acc[i]);
  merge_tile(tmp, c, ldc, beta, mr, nr);
}

#ifdef R1_X86
/* ---------------- AVX2 + FMA micro-kernel (6 x 16) ---------------- */
#define AVX2_MR 6
#define AVX2_NR 16

__attribute__((target("avx2,fma"))) static inline __m256 avx2_out(__m256 acc, const float *c, float beta) {
  if (beta == 0.0f) return acc;
  if (beta == 1.0f) return _mm256_add_ps(acc, _mm256_loadu_ps(c));
  return _mm256_fmadd_ps(_mm256_set1_ps(beta), _mm256_loadu_ps(c), acc);
}

__attribute__((target("avx2,fma")))
static void ukr_avx2(long kc, const float *a, const float *b, float *c, long ldc, float beta, int mr, int nr) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  /* Pull the C tile towards L1 while the k loop runs (it is touched only at the end). */
  for (int i = 0; i < mr; i++) {
    _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch((const char *)(c + i * ldc + 15), _MM_HINT_T0);
  }
#pragma GCC unroll 4
  for (long p = 0; p < kc; p++) {
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    __m256 av;
    av = _mm256_broadcast_ss(a + 0); c00 = _mm256_fmadd_ps(av, b0, c00); c01 = _mm256_fmadd_ps(av, b1, c01);
    av = _mm256_broadcast_ss(a + 1); c10 = _mm256_fmadd_ps(av, b0, c10); c11 = _mm256_fmadd_ps(av, b1, c11);
    av = _mm256_broadcast_ss(a + 2); c20 = _mm256_fmadd_ps(av, b0, c20); c21 = _mm256_fmadd_ps(av, b1, c21);
    av = _mm256_broadcast_ss(a + 3); c30 = _mm256_fmadd_ps(av, b0, c30); c31 = _mm256_fmadd_ps(av, b1, c31);
    av = _mm256_broadcast_ss(a + 4); c40 = _mm256_fmadd_ps(av, b0, c40); c41 = _mm256_fmadd_ps(av, b1, c41);
    av = _mm256_broadcast_ss(a + 5); c50 = _mm256_fmadd_ps(av, b0, c50); c51 = _mm256_fmadd_ps(av, b1, c51);
    a += AVX2_MR;
    b += AVX2_NR;
  }
  if (mr == AVX2_MR && nr == AVX2_NR) {
#define ST(i, r0, r1)                                                        \
  _mm256_storeu_ps(c + i * ldc, avx2_out(r0, c + i * ldc, beta));          \
  _mm256_storeu_ps(c + i * ldc + 8, avx2_out(r1, c + i * ldc + 8, beta));
    ST(0, c00, c01) ST(1, c10, c11) ST(2, c20, c21) ST(3, c30, c31) ST(4, c40, c41) ST(5, c50, c51)
#undef ST
  } else {
    float tmp[AVX2_MR * MAX_NR];
#define ST(i, r0, r1) _mm256_storeu_ps(tmp + i * MAX_NR, r0); _mm256_storeu_ps(tmp + i * MAX_NR + 8, r1);
    ST(0, c00, c01) ST(1, c10, c11) ST(2, c20, c21) ST(3, c30, c31) ST(4, c40, c41) ST(5, c50, c51)
#undef ST
    merge_tile(tmp, c, ldc, beta, mr, nr);
  }
}

/* ---------------- AVX-512F micro-kernel (12 x 32) ---------------- */
#define AVX512_MR 12
#define AVX512_NR 32

__attribute__((target("avx512f"))) static inline __m512 avx512_out(__m512 acc, const float *c, float beta) {
  if (beta == 0.0f) return acc;
  if (beta == 1.0f) return _mm512_add_ps(acc, _mm512_loadu_ps(c));
  return _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_loadu_ps(c), acc);
}

__attribute__((target("avx512f")))
static void ukr_avx512(long kc, const float *a, const float *b, float *c, long ldc, float beta, int mr, int nr) {
  __m512 acc[AVX512_MR][2];
#pragma GCC unroll 12
  for (int i = 0; i < AVX512_MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int i = 0; i < mr; i++) {
    _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch((const char *)(c + i * ldc + 31), _MM_HINT_T0);
  }
#pragma GCC unroll 2
  for (long p = 0; p < kc; p++) {
    __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 12
    for (int i = 0; i < AVX512_MR; i++) {
      __m512 av = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
    }
    a += AVX512_MR;
    b += AVX512_NR;
  }
  if (mr == AVX512_MR && nr == AVX512_NR) {
#pragma GCC unroll 12
    for (int i = 0; i < AVX512_MR; i++) {
      _mm512_storeu_ps(c + i * ldc, avx512_out(acc[i][0], c + i * ldc, beta));
      _mm512_storeu_ps(c + i * ldc + 16, avx512_out(acc[i][1], c + i * ldc + 16, beta));
    }
  } else {
    float tmp[AVX512_MR * MAX_NR];
#pragma GCC unroll 12
    for (int i = 0; i < AVX512_MR; i++) {
      _mm512_storeu_ps(tmp + i * MAX_NR, acc[i][0]);
      _mm512_storeu_ps(tmp + i * MAX_NR + 16, acc[i][1]);
    }
    merge_tile(tmp, c, ldc, beta, mr, nr);
  }
}
#endif /* R1_X86 */

/* Block sizes. AVX2 numbers are tuned on AMD Zen 3 (32 KiB L1d, 512 KiB L2 per core, 32 MiB L3):
 * KC*NR*4 = 16 KiB B micro-panel (half of L1), MC*KC*4 = 144 KiB A block (well inside L2),
 * KC*NC*4 = 4 MiB B panel (L3). AVX-512 uses a 32 KiB B micro-panel for 48 KiB-L1 Intel cores. */
static const kinfo *kernel_info(void) {
  static kinfo ki;
  static int ready = 0;
  if (ready) return &ki;
  kinfo k = {SC_MR, SC_NR, 128, 256, 4096, ukr_scalar};
#ifdef R1_X86
  int isa = r1_isa();
  if (isa == R1_ISA_AVX512) k = (kinfo){AVX512_MR, AVX512_NR, 144, 256, 4096, ukr_avx512};
  else if (isa == R1_ISA_AVX2) k = (kinfo){AVX2_MR, AVX2_NR, 144, 256, 4096, ukr_avx2};
#endif
  const char *e;
  /* Tuning hooks (used by native/bench/gemm_bench.c); ignored unless set. */
  if ((e = getenv("R1_GEMM_MC")) && atol(e) > 0) k.mc = round_up(atol(e), k.mr);
  if ((e = getenv("R1_GEMM_KC")) && atol(e) > 0) k.kc = atol(e);
  if ((e = getenv("R1_GEMM_NC")) && atol(e) > 0) k.nc = round_up(atol(e), k.nr);
  ki = k;
  ready = 1;
  return &ki;
}

/* ---------------- packing ---------------- */

/* Pack op(A)[i0 : i0+mc, p0 : p0+kc] * alpha into MR-tall micro-panels: panel r holds, for each p,
 * the MR values of rows r*MR .. r*MR+MR-1 (zero padded), so the micro-kernel reads A sequentially. */
static void pack_a(int mr, long mc, long kc, const float *A, long lda, int transA, long i0, long p0,
                   float alpha, float *restrict dst) {
  for (long ir = 0; ir < mc; ir += mr) {
    int mre = (int)min_l(mr, mc - ir);
    if (transA) { /* op(A)(i, p) = A[p * lda + i]: MR contiguous values per p */
      const float *src = A + p0 * lda + i0 + ir;
      for (long p = 0; p < kc; p++, src += lda) {
        int i = 0;
        for (; i < mre; i++) dst[p * mr + i] = alpha * src[i];
        for (; i < mr; i++) dst[p * mr + i] = 0.0f;
      }
    } else {          /* op(A)(i, p) = A[i * lda + p]: read each row contiguously, scatter by MR */
      int i = 0;
      for (; i < mre; i++) {
        const float *src = A + (i0 + ir + i) * lda + p0;
        for (long p = 0; p < kc; p++) dst[p * mr + i] = alpha * src[p];
      }
      for (; i < mr; i++)
        for (long p = 0; p < kc; p++) dst[p * mr + i] = 0.0f;
    }
    dst += (long)mr * kc;
  }
}

/* Pack op(B)[p0 : p0+kc, j0+jr_begin : j0+jr_end] into consecutive NR-wide micro-panels starting at
 * buf (each kc x NR, the last one zero padded on the right). */
static void pack_b(int nr, long kc, const float *B, long ldb, int transB, long p0, long j0, long nc,
                   long jr_begin, long jr_end, float *restrict buf) {
  for (long jr = jr_begin; jr < jr_end; jr += nr) {
    float *dst = buf + ((jr - jr_begin) / nr) * (long)nr * kc;
    int nre = (int)min_l(nr, nc - jr);
    if (!transB) { /* op(B)(p, j) = B[p * ldb + j]: NR contiguous values per p */
      const float *src = B + p0 * ldb + j0 + jr;
      if (nre == nr) {
        for (long p = 0; p < kc; p++, src += ldb) memcpy(dst + p * nr, src, sizeof(float) * nr);
      } else {
        for (long p = 0; p < kc; p++, src += ldb) {
          int j = 0;
          for (; j < nre; j++) dst[p * nr + j] = src[j];
          for (; j < nr; j++) dst[p * nr + j] = 0.0f;
        }
      }
    } else {       /* op(B)(p, j) = B[j * ldb + p]: read each stored row contiguously */
      int j = 0;
      for (; j < nre; j++) {
        const float *src = B + (j0 + jr + j) * ldb + p0;
        for (long p = 0; p < kc; p++) dst[p * nr + j] = src[p];
      }
      for (; j < nr; j++)
        for (long p = 0; p < kc; p++) dst[p * nr + j] = 0.0f;
    }
  }
}

/* ---------------- buffers ---------------- */

/* Per-thread packing buffers, kept between calls: pool workers are persistent, so steady-state
 * GEMMs allocate nothing (a fresh mmap per call would cost page faults on every call). */
typedef struct { float *p; size_t cap; } fbuf;
static _Thread_local fbuf tls_a, tls_b;

static float *buf_get(fbuf *b, size_t nfloats) {
  if (b->cap < nfloats) {
    free(b->p);
    size_t bytes = round_up((long)(nfloats * sizeof(float)), 64);
    b->p = aligned_alloc(64, bytes);
    b->cap = b->p ? nfloats : 0;
  }
  return b->p;
}

/* ---------------- team barrier ---------------- */
typedef struct {
  atomic_int count;
  atomic_int phase;
} barrier_t;

/* Sense-counting barrier for a team of n (each member passes the team size it was started with). */
static void barrier_wait(barrier_t *b, int n) {
  if (n <= 1) return;
  int ph = atomic_load_explicit(&b->phase, memory_order_acquire);
  if (atomic_fetch_add_explicit(&b->count, 1, memory_order_acq_rel) == n - 1) {
    atomic_store_explicit(&b->count, 0, memory_order_relaxed);
    atomic_store_explicit(&b->phase, ph + 1, memory_order_release);
    return;
  }
  unsigned spins = 0;
  while (atomic_load_explicit(&b->phase, memory_order_acquire) == ph) {
    if (++spins < 4096) CPU_RELAX();
    else sched_yield(); /* a team mate lost its CPU (shared machine): let it run */
  }
}

/* ---------------- driver ---------------- */
typedef struct {
  const kinfo *ki;
  int ta, tb;
  long m, n, k;
  float alpha, beta;
  const float *A, *B;
  float *C;
  long lda, ldb, ldc;
  float *bpanel[2]; /* shared packed-B buffers (double-buffered: one barrier per K block) */
  barrier_t bar;
  int split_m;      /* 1: team members own slices of M; 0: slices of N */
  atomic_int alloc_fail;
} gemm_ctx;

/* Thread `tid`'s share [*b, *e) of `units` items, in whole multiples of `unit`, out of `total`. */
static void share(long total, long unit, int tid, int nt, long *b, long *e) {
  long units = ceil_div(total, unit);
  long q = units / nt, r = units % nt;
  long ub = tid * q + (tid < r ? tid : r);
  long ue = ub + q + (tid < r ? 1 : 0);
  *b = min_l(ub * unit, total);
  *e = min_l(ue * unit, total);
}

static void gemm_team(void *vctx, int tid, int nt) {
  gemm_ctx *g = vctx;
  const kinfo *ki = g->ki;
  const int mr = ki->mr, nr = ki->nr;
  const long m = g->m, n = g->n, k = g->k;
  const long kcb = balanced_block(k, ki->kc, 1);
  const long ncb = balanced_block(n, ki->nc, nr);
  /* Row slice of this thread (split_m) or of everyone (split over N). */
  long r0 = 0, r1 = m;
  if (g->split_m) share(m, mr, tid, nt, &r0, &r1);
  long mrows = r1 - r0;
  const long mcb = mrows > 0 ? balanced_block(mrows, ki->mc, mr) : 0;
  float *ap = mrows > 0 ? buf_get(&tls_a, (size_t)round_up(mcb, mr) * kcb) : NULL;
  if (mrows > 0 && !ap) atomic_store(&g->alloc_fail, 1);
  /* Everyone has its buffer (or the call is abandoned) before anyone touches C, so the caller's
   * fallback path never sees a half-updated C. */
  barrier_wait(&g->bar, nt);
  if (atomic_load(&g->alloc_fail)) return;
  int it = 0;
  for (long jc = 0; jc < n; jc += ncb) {
    const long nc = min_l(ncb, n - jc);
    for (long pc = 0; pc < k; pc += kcb, it++) {
      const long kc = min_l(kcb, k - pc);
      const float beta = pc == 0 ? g->beta : 1.0f;
      float *bp = g->bpanel[it & 1];
      long c0, c1; /* this thread's columns of the panel (multiples of NR); bp holds panel c0 first */
      if (g->split_m) {
        long pb, pe;
        share(nc, nr, tid, nt, &pb, &pe); /* cooperative packing of the shared panel */
        pack_b(nr, kc, g->B, g->ldb, g->tb, pc, jc, nc, pb, pe, bp + (pb / nr) * (long)nr * kc);
        barrier_wait(&g->bar, nt);
        c0 = 0;
        c1 = nc;
      } else {
        /* Private columns, packed by their owner, no barrier. Each thread writes only inside a region
         * fixed by its share of the widest panel (ncb): shares of a narrower last panel can shift, and
         * threads run ahead of each other, so offsets computed from nc could overlap a neighbour's. */
        long rb, re;
        share(ncb, nr, tid, nt, &rb, &re);
        share(nc, nr, tid, nt, &c0, &c1); /* never more panels than the region holds */
        bp += (rb / nr) * (long)nr * kcb;
        pack_b(nr, kc, g->B, g->ldb, g->tb, pc, jc, nc, c0, c1, bp);
      }
      for (long ic = r0; ic < r1; ic += mcb) {
        const long mc = min_l(mcb, r1 - ic);
        pack_a(mr, mc, kc, g->A, g->lda, g->ta, ic, pc, g->alpha, ap);
        for (long jr = c0; jr < c1; jr += nr) {
          const int nre = (int)min_l(nr, nc - jr);
          const float *bpan = bp + ((jr - c0) / nr) * (long)nr * kc;
          float *cc = g->C + ic * g->ldc + jc + jr;
          for (long ir = 0; ir < mc; ir += mr) {
            ki->ukr(kc, ap + ir * kc, bpan, cc + ir * g->ldc, g->ldc, beta, (int)min_l(mr, mc - ir), nre);
          }
        }
      }
    }
  }
}

/* C = beta * C for the degenerate cases (k == 0 or alpha == 0); beta == 0 writes zeros without reading. */
static void scale_c(long m, long n, float beta, float *C, long ldc) {
  for (long i = 0; i < m; i++) {
    float *c = C + i * ldc;
    if (beta == 0.0f) memset(c, 0, sizeof(float) * n);
    else if (beta != 1.0f) for (long j = 0; j < n; j++) c[j] *= beta;
  }
}

/* ---------------- matrix-vector (m == 1 or n == 1) ---------------- */
/* y[j * incy] = alpha * sum_p x[p] * M(p, j) + beta * y[j * incy], j in [0, len), x contiguous.
 *   dot form  (dot = 1): M(p, j) = M[j * ldm + p]  (e.g. x @ W^T with W [out, in])
 *   axpy form (dot = 0): M(p, j) = M[p * ldm + j]  (stream the rows of M once) */
typedef struct {
  int dot;
  long len, k;
  float alpha, beta;
  const float *M, *x;
  long ldm;
  float *y;
  long incy;
} gemv_ctx;

static inline void gemv_store(const gemv_ctx *g, long j, float v) {
  float *yp = g->y + j * g->incy;
  *yp = g->beta == 0.0f ? g->alpha * v : g->alpha * v + g->beta * *yp;
}

#ifndef GEMV_BLK
#define GEMV_BLK 8192 /* axpy-form column block (32 KiB accumulator): one block spans a whole row of the usual shapes, so B streams sequentially */
#endif

static void gemv_range_scalar(const gemv_ctx *g, long j0, long j1) {
  if (g->dot) {
    for (long j = j0; j < j1; j++) {
      const float *row = g->M + j * g->ldm;
      float s = 0.0f;
      for (long p = 0; p < g->k; p++) s += g->x[p] * row[p];
      gemv_store(g, j, s);
    }
    return;
  }
  float acc[GEMV_BLK];
  for (long jb = j0; jb < j1; jb += GEMV_BLK) {
    long w = min_l(GEMV_BLK, j1 - jb);
    memset(acc, 0, sizeof(float) * w);
    for (long p = 0; p < g->k; p++) {
      const float *row = g->M + p * g->ldm + jb;
      float xv = g->x[p];
      for (long j = 0; j < w; j++) acc[j] += xv * row[j];
    }
    for (long j = 0; j < w; j++) gemv_store(g, jb + j, acc[j]);
  }
}

#ifdef R1_X86
__attribute__((target("avx2,fma"))) static inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma")))
static void gemv_range_avx2(const gemv_ctx *g, long j0, long j1) {
  const long k = g->k;
  const float *x = g->x;
  if (g->dot) {
    long j = j0;
    /* Four output rows at once, two accumulators each: every x load serves four rows, and eight
     * independent FMA chains cover the FMA latency. (A two-row variant walking memory strictly in
     * order measured no faster on Zen 3.) */
    for (; j + 4 <= j1; j += 4) {
      const float *r0 = g->M + j * g->ldm, *r1 = r0 + g->ldm, *r2 = r1 + g->ldm, *r3 = r2 + g->ldm;
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
      long p = 0;
      for (; p + 16 <= k; p += 16) {
        __m256 x0 = _mm256_loadu_ps(x + p), x1 = _mm256_loadu_ps(x + p + 8);
        a0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(r0 + p), a0); b0 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(r0 + p + 8), b0);
        a1 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(r1 + p), a1); b1 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(r1 + p + 8), b1);
        a2 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(r2 + p), a2); b2 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(r2 + p + 8), b2);
        a3 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(r3 + p), a3); b3 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(r3 + p + 8), b3);
      }
      float s0 = hsum256(_mm256_add_ps(a0, b0)), s1 = hsum256(_mm256_add_ps(a1, b1));
      float s2 = hsum256(_mm256_add_ps(a2, b2)), s3 = hsum256(_mm256_add_ps(a3, b3));
      for (; p < k; p++) { s0 += x[p] * r0[p]; s1 += x[p] * r1[p]; s2 += x[p] * r2[p]; s3 += x[p] * r3[p]; }
      gemv_store(g, j, s0); gemv_store(g, j + 1, s1); gemv_store(g, j + 2, s2); gemv_store(g, j + 3, s3);
    }
    for (; j < j1; j++) {
      const float *r0 = g->M + j * g->ldm;
      __m256 a0 = _mm256_setzero_ps(), b0 = a0;
      long p = 0;
      for (; p + 16 <= k; p += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + p), _mm256_loadu_ps(r0 + p), a0);
        b0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + p + 8), _mm256_loadu_ps(r0 + p + 8), b0);
      }
      float s0 = hsum256(_mm256_add_ps(a0, b0));
      for (; p < k; p++) s0 += x[p] * r0[p];
      gemv_store(g, j, s0);
    }
    return;
  }
  /* axpy form: stream 4 rows of M at a time into an L1-resident accumulator block. */
  float acc[GEMV_BLK] __attribute__((aligned(32)));
  for (long jb = j0; jb < j1; jb += GEMV_BLK) {
    const long w = min_l(GEMV_BLK, j1 - jb), w8 = w & ~7L;
    memset(acc, 0, sizeof(float) * w);
    long p = 0;
    for (; p + 8 <= k; p += 8) {
      const long ld = g->ldm;
      const float *q0 = g->M + p * ld + jb;
      __m256 x0 = _mm256_set1_ps(x[p]), x1 = _mm256_set1_ps(x[p + 1]), x2 = _mm256_set1_ps(x[p + 2]), x3 = _mm256_set1_ps(x[p + 3]);
      __m256 x4 = _mm256_set1_ps(x[p + 4]), x5 = _mm256_set1_ps(x[p + 5]), x6 = _mm256_set1_ps(x[p + 6]), x7 = _mm256_set1_ps(x[p + 7]);
      long j = 0;
      for (; j < w8; j += 8) {
        const float *q = q0 + j;
        __m256 s = _mm256_fmadd_ps(x0, _mm256_loadu_ps(q), _mm256_load_ps(acc + j));
        __m256 t = _mm256_mul_ps(x1, _mm256_loadu_ps(q + ld));
        s = _mm256_fmadd_ps(x2, _mm256_loadu_ps(q + 2 * ld), s);
        t = _mm256_fmadd_ps(x3, _mm256_loadu_ps(q + 3 * ld), t);
        s = _mm256_fmadd_ps(x4, _mm256_loadu_ps(q + 4 * ld), s);
        t = _mm256_fmadd_ps(x5, _mm256_loadu_ps(q + 5 * ld), t);
        s = _mm256_fmadd_ps(x6, _mm256_loadu_ps(q + 6 * ld), s);
        t = _mm256_fmadd_ps(x7, _mm256_loadu_ps(q + 7 * ld), t);
        _mm256_store_ps(acc + j, _mm256_add_ps(s, t));
      }
      for (; j < w; j++)
        for (int r = 0; r < 8; r++) acc[j] += x[p + r] * q0[r * ld + j];
    }
    for (; p + 4 <= k; p += 4) {
      const float *q0 = g->M + p * g->ldm + jb, *q1 = q0 + g->ldm, *q2 = q1 + g->ldm, *q3 = q2 + g->ldm;
      __m256 x0 = _mm256_set1_ps(x[p]), x1 = _mm256_set1_ps(x[p + 1]);
      __m256 x2 = _mm256_set1_ps(x[p + 2]), x3 = _mm256_set1_ps(x[p + 3]);
      long j = 0;
      for (; j < w8; j += 8) {
        __m256 s = _mm256_load_ps(acc + j);
        s = _mm256_fmadd_ps(x0, _mm256_loadu_ps(q0 + j), s);
        s = _mm256_fmadd_ps(x1, _mm256_loadu_ps(q1 + j), s);
        s = _mm256_fmadd_ps(x2, _mm256_loadu_ps(q2 + j), s);
        s = _mm256_fmadd_ps(x3, _mm256_loadu_ps(q3 + j), s);
        _mm256_store_ps(acc + j, s);
      }
      for (; j < w; j++) acc[j] += x[p] * q0[j] + x[p + 1] * q1[j] + x[p + 2] * q2[j] + x[p + 3] * q3[j];
    }
    for (; p < k; p++) {
      const float *q0 = g->M + p * g->ldm + jb;
      for (long j = 0; j < w; j++) acc[j] += x[p] * q0[j];
    }
    for (long j = 0; j < w; j++) gemv_store(g, jb + j, acc[j]);
  }
}
#endif

static void gemv_chunk(void *vctx, long j0, long j1, int tid) {
  (void)tid;
  const gemv_ctx *g = vctx;
#ifdef R1_X86
  if (r1_isa() >= R1_ISA_AVX2) { gemv_range_avx2(g, j0, j1); return; }
#endif
  gemv_range_scalar(g, j0, j1);
}

static void gemv(int parallel, int dot, long len, long k, float alpha, const float *M, long ldm,
                 const float *x, long incx, float beta, float *y, long incy) {
  float stackx[1024];
  float *xc = (float *)x, *heap = NULL;
  if (incx != 1) { /* gather a strided vector once; k floats is cheap next to the k x len matrix */
    xc = k <= 1024 ? stackx : (heap = malloc(sizeof(float) * k));
    if (!xc) { /* out of memory: fall back to strided scalar code */
      for (long j = 0; j < len; j++) {
        float s = 0.0f;
        for (long p = 0; p < k; p++) s += x[p * incx] * (dot ? M[j * ldm + p] : M[p * ldm + j]);
        float *yp = y + j * incy;
        *yp = beta == 0.0f ? alpha * s : alpha * s + beta * *yp;
      }
      return;
    }
    for (long p = 0; p < k; p++) xc[p] = x[p * incx];
  }
  gemv_ctx g = {dot, len, k, alpha, beta, M, xc, ldm, y, incy};
  /* ~32K multiply-adds per chunk at least: below that, waking a thread costs more than it saves. */
  long grain = max_l(dot ? 4 : 64, 32768 / max_l(k, 1));
  if (parallel && len * k >= 65536) r1_parallel_for(len, round_up(grain, dot ? 4 : 64), gemv_chunk, &g);
  else gemv_chunk(&g, 0, len, 0);
  free(heap);
}

/* ---------------- entry points ---------------- */
static void sgemm_impl(int parallel, int transA, int transB, long m, long n, long k, float alpha,
                       const float *A, long lda, const float *B, long ldb, float beta, float *C, long ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0.0f) { scale_c(m, n, beta, C, ldc); return; }
  if (m == 1) {
    /* C row = alpha * a^T op(B): a[p] = op(A)(0, p) */
    gemv(parallel, transB, n, k, alpha, B, ldb, A, transA ? lda : 1, beta, C, 1);
    return;
  }
  if (n == 1) {
    /* C column = alpha * op(A) b, b[p] = op(B)(p, 0); op(A)(j, p) is dot form unless transA */
    gemv(parallel, !transA, m, k, alpha, A, lda, B, transB ? 1 : ldb, beta, C, ldc);
    return;
  }
  const kinfo *ki = kernel_info();
  gemm_ctx g = {.ki = ki, .ta = transA, .tb = transB, .m = m, .n = n, .k = k, .alpha = alpha, .beta = beta,
                .A = A, .B = B, .C = C, .lda = lda, .ldb = ldb, .ldc = ldc};
  const long kcb = balanced_block(k, ki->kc, 1);
  const long ncb = balanced_block(n, ki->nc, ki->nr);
  const size_t bfloats = (size_t)kcb * round_up(ncb, ki->nr);
  /* Threads: below ~2 MFLOP the wake-up and the shared-panel barrier cost more than they save. */
  double flops = 2.0 * m * n * k;
  int nt = parallel ? r1_num_threads() : 1;
  if (flops < 2e6) nt = 1;
  /* Split M when each thread gets at least a few MR tiles of rows, else split N (small-m shapes). */
  g.split_m = m >= (long)nt * ki->mr * 4 || n < (long)nt * ki->nr * 4;
  /* The shared buffers belong to the calling thread; double-buffered only when the team shares them. */
  float *bb = buf_get(&tls_b, bfloats * 2);
  if (!bb) atomic_store(&g.alloc_fail, 1);
  g.bpanel[0] = bb;
  g.bpanel[1] = bb ? bb + bfloats : NULL;
  atomic_init(&g.bar.count, 0);
  atomic_init(&g.bar.phase, 0);
  if (!atomic_load(&g.alloc_fail)) {
    if (nt > 1) r1_parallel_team(nt, gemm_team, &g);
    else gemm_team(&g, 0, 1);
  }
  if (atomic_load(&g.alloc_fail)) {
    /* Out of memory for packing buffers: unblocked reference loop, still correct. */
    for (long i = 0; i < m; i++)
      for (long j = 0; j < n; j++) {
        float s = 0.0f;
        for (long p = 0; p < k; p++)
          s += (transA ? A[p * lda + i] : A[i * lda + p]) * (transB ? B[j * ldb + p] : B[p * ldb + j]);
        float *cp = C + i * ldc + j;
        *cp = beta == 0.0f ? alpha * s : alpha * s + beta * *cp;
      }
  }
}

void r1_sgemm(int transA, int transB, long m, long n, long k, float alpha,
              const float *A, long lda, const float *B, long ldb, float beta, float *C, long ldc) {
  sgemm_impl(1, transA, transB, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

void r1_sgemm_st(int transA, int transB, long m, long n, long k, float alpha,
                 const float *A, long lda, const float *B, long ldb, float beta, float *C, long ldc) {
  sgemm_impl(0, transA, transB, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
