/* f32 GEMM, row-major (API in gemm.h).
 *
 * Built from the GotoBLAS/BLIS ingredients (Goto & van de Geijn, "Anatomy of High-Performance Matrix
 * Multiplication", ACM TOMS 2008; Van Zee & van de Geijn, "BLIS", ACM TOMS 2015, Fig. 1): operands
 * packed into micro-panels (transposes and alpha absorbed by the packing), cache blocking, and a
 * register-blocked micro-kernel. The loop order is Goto's with the roles of A and B swapped, so the
 * team synchronises once per call instead of once per K block (details at the driver):
 *
 *   pack alpha*op(A) once, shared        MR-tall micro-panels per K block (L3)
 *   for unit (column strip of NCU, taken dynamically by whichever thread is free)
 *     for pc in K step KC
 *       pack B(pc, strip), private       NR-wide micro-panels, kc x NCU block (L2)
 *       for ir in rows step MR             A micro-panel MR x kc (L1)
 *         for jr in strip step NR
 *           micro-kernel: C[MR x NR] (+)= Apanel * Bpanel, accumulators in registers
 *
 * Micro-kernels: AVX2+FMA 6x16 (12 ymm accumulators, 2 B loads + 6 broadcasts per k step, the
 * BLIS "haswell" shape), AVX-512F 12x32 (24 zmm accumulators, embedded broadcasts), and a portable
 * 4x8 kernel in portable vector C. The x86 SIMD ones are compiled with __attribute__((target)) (no -march in binding.gyp)
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
#include "qgemm.h"
#include "qsmall.h"
/* Weak: the C harnesses in native/bench link gemm.c without qgemm.c / qsmall.c; there the small paths are absent. */
#pragma weak r1_qgemm
#pragma weak r1_small_sgemm

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
  long kc, ncu;    /* K block; column-unit width: B block kc x ncu lives in L2, A micro-panel mr x kc in L1 */
  ukr_fn ukr;
  long upt;        /* work units wanted per thread (load balance vs. per-unit B packing) */
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

/* ---------------- portable micro-kernel (4 x 8) ----------------
 * GCC/Clang vector extensions: 4-lane vectors map to SSE2 on any x86-64 (the baseline the addon is
 * compiled for) and to NEON on arm64. 8 accumulators + 2 B vectors + 1 broadcast fit the 16 SSE
 * registers, so nothing spills. */
#define SC_MR 4
#define SC_NR 8
typedef float v4f __attribute__((vector_size(16)));
static void ukr_scalar(long kc, const float *a, const float *b, float *c, long ldc, float beta, int mr, int nr) {
  v4f c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};
  for (long p = 0; p < kc; p++) {
    v4f b0, b1;
    memcpy(&b0, b, sizeof b0); /* packed B is 64-byte aligned, memcpy keeps this strictly portable */
    memcpy(&b1, b + 4, sizeof b1);
    c00 += a[0] * b0; c01 += a[0] * b1;
    c10 += a[1] * b0; c11 += a[1] * b1;
    c20 += a[2] * b0; c21 += a[2] * b1;
    c30 += a[3] * b0; c31 += a[3] * b1;
    a += SC_MR;
    b += SC_NR;
  }
  float tmp[SC_MR * MAX_NR];
  memcpy(tmp, &c00, 16); memcpy(tmp + 4, &c01, 16);
  memcpy(tmp + MAX_NR, &c10, 16); memcpy(tmp + MAX_NR + 4, &c11, 16);
  memcpy(tmp + 2 * MAX_NR, &c20, 16); memcpy(tmp + 2 * MAX_NR + 4, &c21, 16);
  memcpy(tmp + 3 * MAX_NR, &c30, 16); memcpy(tmp + 3 * MAX_NR + 4, &c31, 16);
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

/* Block sizes (see the driver below for the loop structure). AVX2, tuned on AMD Zen 3 (32 KiB L1d,
 * 512 KiB L2 per core): KC = 256, NCU = 256 gives a 256 KiB B block (half of L2), a 6 KiB A
 * micro-panel and a 16 KiB B micro-panel (together inside L1). AVX-512 (Intel, 48 KiB L1d, >= 1 MiB
 * L2): 12 KiB A micro-panel, 512 KiB B block. */
static const kinfo *kernel_info(void) {
  static kinfo ki;
  static atomic_int ready; /* first callers may race: they compute the same values */
  if (atomic_load_explicit(&ready, memory_order_acquire)) return &ki;
  kinfo k = {SC_MR, SC_NR, 256, 256, ukr_scalar, 4};
#ifdef R1_X86
  int isa = r1_isa();
  if (isa >= R1_ISA_AVX512) k = (kinfo){AVX512_MR, AVX512_NR, 256, 512, ukr_avx512, 4};
  else if (isa == R1_ISA_AVX2) k = (kinfo){AVX2_MR, AVX2_NR, 256, 256, ukr_avx2, 4};
#endif
  const char *e;
  /* Tuning hooks (used with native/bench/gemm_bench.c); ignored unless set. */
  if ((e = getenv("R1_GEMM_KC")) && atol(e) > 0) k.kc = atol(e);
  if ((e = getenv("R1_GEMM_NCU")) && atol(e) > 0) k.ncu = round_up(atol(e), k.nr);
  if ((e = getenv("R1_GEMM_UPT")) && atol(e) > 0) k.upt = atol(e);
  if (!atomic_load_explicit(&ready, memory_order_acquire)) {
    static atomic_flag writing = ATOMIC_FLAG_INIT;
    if (!atomic_flag_test_and_set(&writing)) {
      ki = k;
      atomic_store_explicit(&ready, 1, memory_order_release);
    } else {
      while (!atomic_load_explicit(&ready, memory_order_acquire)) CPU_RELAX();
    }
  }
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

/* ---------------- driver ----------------
 * Goto's classic loop nest synchronises the team with a barrier per K block; on a shared machine a
 * descheduled thread then stalls everyone. Here a call needs no barrier at all:
 *   1. participants pack alpha * op(A) once (rows [i0, i0+ms) x all of K, MR-tall panels per K block),
 *      taking pieces from an atomic counter, then wait only for pieces still in flight;
 *   2. the C block is cut into units (column strips of width NCU, plus row strips when there are too
 *      few columns); participants take units from an atomic counter;
 *   3. per unit and K block, the participant packs its own B block (kc x NCU, sized for L2) and sweeps
 *      its rows: the A micro-panel (MR x kc) stays in L1 across the NCU / NR micro-kernels and the B
 *      block in L2 across all row panels (Goto's scheme with the roles of A and B swapped).
 * Participants run on r1_parallel_for, whose chunks can be taken over by the caller: if a worker has
 * not been scheduled yet, the caller does the work rather than wait for it. Rows come in super-blocks
 * of at most MS rows (one parallel call each) so the packed A stays bounded (~32 MiB). */
typedef struct {
  const kinfo *ki;
  int ta, tb;
  long m, n, k, kcb, ncu, nru; /* nru: rows per row strip (multiple of MR) */
  float alpha, beta;
  const float *A, *B;
  float *C;
  long lda, ldb, ldc;
  /* current super-block */
  long i0, ms;
  float *apack;
  long units_c, units_r;
  atomic_long piece_next, pieces_done, unit_next;
} dyn_ctx;

/* Unit fallback when a participant cannot get its B buffer (out of memory): plain loops, same result. */
static void unit_naive(const dyn_ctx *g, long r0, long r1, long c0, long c1) {
  for (long i = r0; i < r1; i++)
    for (long j = c0; j < c1; j++) {
      float s = 0.0f;
      for (long p = 0; p < g->k; p++)
        s += (g->ta ? g->A[p * g->lda + i] : g->A[i * g->lda + p]) * (g->tb ? g->B[j * g->ldb + p] : g->B[p * g->ldb + j]);
      float *cp = g->C + i * g->ldc + j;
      *cp = g->beta == 0.0f ? g->alpha * s : g->alpha * s + g->beta * *cp;
    }
}

static void dyn_participant(void *vctx, long b, long e, int tid) {
  (void)b; (void)e; (void)tid;
  dyn_ctx *g = vctx;
  const kinfo *ki = g->ki;
  const int mr = ki->mr, nr = ki->nr;
  const long k = g->k, kcb = g->kcb, n = g->n, ms = g->ms, i0 = g->i0;
  const long msp = round_up(ms, mr), npan = msp / mr;
  /* 1. pack A: pieces are (K block, row panel) pairs, taken a few at a time */
  const long nkb = ceil_div(k, kcb), total = nkb * npan, step = 8;
  for (long t0; (t0 = atomic_fetch_add_explicit(&g->piece_next, step, memory_order_relaxed)) < total;) {
    const long t1 = min_l(total, t0 + step);
    for (long t = t0; t < t1; t++) {
      const long kb = t / npan, pan = t % npan, pc = kb * kcb, kc = min_l(kcb, k - pc);
      pack_a(mr, min_l(mr, ms - pan * mr), kc, g->A, g->lda, g->ta, i0 + pan * mr, pc, g->alpha,
             g->apack + msp * pc + pan * mr * kc);
    }
    atomic_fetch_add_explicit(&g->pieces_done, t1 - t0, memory_order_release);
  }
  for (unsigned spins = 0; atomic_load_explicit(&g->pieces_done, memory_order_acquire) < total;)
    if (++spins < 4096) CPU_RELAX(); else sched_yield(); /* a packer lost its CPU: let it finish */
  /* 2. units */
  float *bp = buf_get(&tls_b, (size_t)kcb * round_up(g->ncu, nr));
  const long nunits = g->units_c * g->units_r;
  for (long u; (u = atomic_fetch_add_explicit(&g->unit_next, 1, memory_order_relaxed)) < nunits;) {
    const long ur = u / g->units_c, uc = u % g->units_c;
    const long r0 = ur * g->nru, r1 = min_l(ms, r0 + g->nru);
    const long c0 = uc * g->ncu, c1 = min_l(n, c0 + g->ncu);
    if (r0 >= r1) continue;
    if (!bp) { unit_naive(g, i0 + r0, i0 + r1, c0, c1); continue; }
    for (long pc = 0; pc < k; pc += kcb) {
      const long kc = min_l(kcb, k - pc);
      const float beta = pc == 0 ? g->beta : 1.0f;
      pack_b(nr, kc, g->B, g->ldb, g->tb, pc, c0, c1 - c0, 0, c1 - c0, bp);
      const float *ablk = g->apack + msp * pc;
      for (long ir = r0; ir < r1; ir += mr) {
        const float *apan = ablk + (ir / mr) * mr * kc;
        const int mre = (int)min_l(mr, r1 - ir);
        float *crow = g->C + (i0 + ir) * g->ldc + c0;
        const float *bpan = bp;
        for (long jr = 0; jr < c1 - c0; jr += nr, bpan += nr * kc)
          ki->ukr(kc, apan, bpan, crow + jr, g->ldc, beta, mre, (int)min_l(nr, c1 - c0 - jr));
      }
    }
  }
}

/* Returns 0 when the shared packing buffer could not be allocated (C untouched). */
static int gemm_blocked(int nt, int transA, int transB, long m, long n, long k, float alpha,
                        const float *A, long lda, const float *B, long ldb, float beta, float *C, long ldc) {
  const kinfo *ki = kernel_info();
  const int mr = ki->mr, nr = ki->nr;
  dyn_ctx g = {.ki = ki, .ta = transA, .tb = transB, .m = m, .n = n, .k = k, .alpha = alpha, .beta = beta,
               .A = A, .B = B, .C = C, .lda = lda, .ldb = ldb, .ldc = ldc};
  g.kcb = balanced_block(k, ki->kc, 1);
  /* Super-block rows: packed A at most ~8M floats (32 MiB). */
  long ms = max_l(mr, (8L << 20) / k / mr * mr);
  ms = ms >= m ? m : balanced_block(m, ms, mr);
  /* Column units: NCU wide, narrower (down to 4 NR) when that gives every thread a few units. */
  long ncu = ki->ncu;
  const long want = ki->upt * nt;
  if (nt > 1 && ceil_div(n, ncu) < want) ncu = max_l(4L * nr, round_up(ceil_div(n, want), nr));
  g.ncu = min_l(ncu, round_up(n, nr));
  g.units_c = ceil_div(n, g.ncu);
  /* Row strips only when there are still too few units (tall, narrow C). */
  long ur = 1;
  if (nt > 1 && g.units_c < want) ur = max_l(1, min_l(ceil_div(want, g.units_c), ceil_div(ms, 4L * mr)));
  g.nru = round_up(ceil_div(ms, ur), mr);
  float *ap = buf_get(&tls_a, (size_t)round_up(ms, mr) * k);
  if (!ap) return 0;
  g.apack = ap;
  for (long i0 = 0; i0 < m; i0 += ms) {
    g.i0 = i0;
    g.ms = min_l(ms, m - i0);
    g.units_r = ceil_div(g.ms, g.nru);
    atomic_init(&g.piece_next, 0);
    atomic_init(&g.pieces_done, 0);
    atomic_init(&g.unit_next, 0);
    if (nt > 1) r1_parallel_for(nt, 1, dyn_participant, &g);
    else dyn_participant(&g, 0, 1, 0);
  }
  return 1;
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

#ifdef R1_X86
/* Dot form on AVX-512: a thread's rows [j0, j1) split into GEMV_R equal runs that are read side by side, one row of
 * each run at a time (rows j0 + i + r L, r < GEMV_R), each prefetched GEMV_PF bytes ahead; with rows stored back to
 * back (ldm = k, as decode's weights are) every run is one long sequential stream and the prefetch runs on into the
 * run's next row. Why: a decode row is short (S1: 896 floats = 3.5 KB), too short for the hardware prefetchers (which
 * also stop at 4 KiB page boundaries) to ramp up on each, and a few long streams per thread is the pattern that reads
 * fastest here (native k_read_probe). S1's layer set from DRAM (Zen 5-class VM, 2 threads, paired alternating runs;
 * readProbe 66-80 GB/s): the AVX2 loop above (four adjacent rows, no prefetch) 34-35 GB/s; eight adjacent rows
 * with the prefetch 48-56; four interleaved runs 64 (eight 59, six 57); two lines per stream per step 60 at a probe
 * of 82 (0.73: one of 0.72). Prefetch distances 1-4 KiB alike. */
#ifndef GEMV_PF
#define GEMV_PF 2048
#endif
#define GEMV_R 4
static long gemv_pf(void) {
  static long v = -1; /* tuning hook: R1_GEMV_PF=bytes (0 = off), read once */
  if (v < 0) { const char *e = getenv("R1_GEMV_PF"); v = e ? atol(e) : GEMV_PF; if (v < 0) v = 0; }
  return v;
}
__attribute__((target("avx512f"))) static void gemv_dot_avx512(const gemv_ctx *g, long j0, long j1) {
  const long k = g->k, ld = g->ldm, pf = gemv_pf() / (long)sizeof(float);
  const float *x = g->x;
  const long L = (j1 - j0) / GEMV_R, dl = L * ld;
  for (long i = 0; i < L; i++) {
    const float *r0 = g->M + (j0 + i) * ld;
    __m512 a[GEMV_R], b[GEMV_R];
    for (int r = 0; r < GEMV_R; r++) a[r] = b[r] = _mm512_setzero_ps();
    long p = 0;
    for (; p + 32 <= k; p += 32) {
      if (pf)
        for (int r = 0; r < GEMV_R; r++) {
          _mm_prefetch((const char *)(r0 + r * dl + p + pf), _MM_HINT_T0);
          _mm_prefetch((const char *)(r0 + r * dl + p + pf + 16), _MM_HINT_T0);
        }
      const __m512 x0 = _mm512_loadu_ps(x + p), x1 = _mm512_loadu_ps(x + p + 16);
      for (int r = 0; r < GEMV_R; r++) {
        a[r] = _mm512_fmadd_ps(x0, _mm512_loadu_ps(r0 + r * dl + p), a[r]);
        b[r] = _mm512_fmadd_ps(x1, _mm512_loadu_ps(r0 + r * dl + p + 16), b[r]);
      }
    }
    for (; p + 16 <= k; p += 16) {
      if (pf)
        for (int r = 0; r < GEMV_R; r++) _mm_prefetch((const char *)(r0 + r * dl + p + pf), _MM_HINT_T0);
      const __m512 x0 = _mm512_loadu_ps(x + p);
      for (int r = 0; r < GEMV_R; r++) a[r] = _mm512_fmadd_ps(x0, _mm512_loadu_ps(r0 + r * dl + p), a[r]);
    }
    if (p < k) {
      const __mmask16 m0 = (__mmask16)((1u << (k - p)) - 1u);
      const __m512 x0 = _mm512_maskz_loadu_ps(m0, x + p);
      for (int r = 0; r < GEMV_R; r++) a[r] = _mm512_fmadd_ps(x0, _mm512_maskz_loadu_ps(m0, r0 + r * dl + p), a[r]);
    }
    for (int r = 0; r < GEMV_R; r++) gemv_store(g, j0 + i + r * L, _mm512_reduce_add_ps(_mm512_add_ps(a[r], b[r])));
  }
  if (j0 + GEMV_R * L < j1) gemv_range_avx2(g, j0 + GEMV_R * L, j1); /* the 1..3 rows left over */
}
#endif

static void gemv_chunk(void *vctx, long j0, long j1, int tid) {
  (void)tid;
  const gemv_ctx *g = vctx;
#ifdef R1_X86
  if (g->dot && r1_isa() >= R1_ISA_AVX512) { gemv_dot_avx512(g, j0, j1); return; }
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
/* Tuning/testing hook: R1_GEMM_NO_SMALL_M set turns the small-M redirection off (read once). */
static int small_m_enabled(void) {
  static int v = -1;
  if (v < 0) v = getenv("R1_GEMM_NO_SMALL_M") == NULL;
  return v;
}

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
  /* 2..16 rows against a transposed B ([n, k] rows: a decode step of a batch against [out, in] weights): stream each
   * row of B once for all rows of A (qgemm.c's small-M tile path); packing B would cost as much as the arithmetic. */
  if (parallel && !transA && transB && m <= R1_QW_SMALL_M && lda == k && ldb == k && ldc == n && alpha == 1.0f && beta == 0.0f &&
      n >= 64 && r1_qgemm && small_m_enabled()) {
    r1_qgemm(R1_QW_F32, m, n, k, A, B, NULL, NULL, C);
    return;
  }
  /* Threads: below ~2 MFLOP a wake-up costs more than it saves. */
  int nt = parallel && 2.0 * m * n * k >= 2e6 ? r1_num_threads() : 1;
  /* Single-threaded products with a small dimension (a DeepSeekMoE expert's tens of rows, from the grouped GEMM):
   * register-blocked kernels that read the operands in place (qsmall.c) — packing the panels costs about as much as
   * the arithmetic here (measured on AVX-512, 32 rows: NT 81 vs 52, NN 116 vs 84 GFLOP/s per thread). */
  if (nt == 1 && alpha == 1.0f && (beta == 0.0f || beta == 1.0f) && r1_small_sgemm && small_m_enabled() &&
      ((!transA && transB && m <= 64) || (!transA && !transB && m <= 128) || (transA && !transB && k <= 128)) &&
      r1_small_sgemm(transA, transB, m, n, k, A, lda, B, ldb, beta, C, ldc))
    return;
  if (gemm_blocked(nt, transA, transB, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)) return;
  /* Out of memory for the packing buffers: unblocked reference loop, slow but still correct. */
  for (long i = 0; i < m; i++)
    for (long j = 0; j < n; j++) {
      float s = 0.0f;
      for (long p = 0; p < k; p++)
        s += (transA ? A[p * lda + i] : A[i * lda + p]) * (transB ? B[j * ldb + p] : B[p * ldb + j]);
      float *cp = C + i * ldc + j;
      *cp = beta == 0.0f ? alpha * s : alpha * s + beta * *cp;
    }
}

void r1_sgemm(int transA, int transB, long m, long n, long k, float alpha,
              const float *A, long lda, const float *B, long ldb, float beta, float *C, long ldc) {
  sgemm_impl(1, transA, transB, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* C[M,N] = X[M,K] . W[N,K]^T without the small-M redirection (qgemm.c's f32 fallback for other M). */
void r1_sgemm_big(long M, long N, long K, const float *X, const float *W, float *C) {
  if (M <= 0 || N <= 0) return;
  int nt = 2.0 * M * N * K >= 2e6 ? r1_num_threads() : 1;
  if (M == 1) { gemv(1, 1, N, K, 1.0f, W, K, X, 1, 0.0f, C, 1); return; }
  if (K <= 0) { scale_c(M, N, 0.0f, C, N); return; }
  if (!gemm_blocked(nt, 0, 1, M, N, K, 1.0f, X, K, W, K, 0.0f, C, N)) {
    for (long i = 0; i < M; i++)
      for (long j = 0; j < N; j++) {
        float s = 0.0f;
        for (long p = 0; p < K; p++) s += X[i * K + p] * W[j * K + p];
        C[i * N + j] = s;
      }
  }
}

void r1_sgemm_st(int transA, int transB, long m, long n, long k, float alpha,
                 const float *A, long lda, const float *B, long ldb, float beta, float *C, long ldc) {
  sgemm_impl(0, transA, transB, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
