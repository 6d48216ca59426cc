/* FP8 bulk codecs and FP8 GEMM emulation (API and semantics in fp8.h; the TypeScript oracles are
 * src/quant/fp8.ts and src/quant/fp8-gemm.ts, and the tests compare against them bit for bit).
 *
 * Encoding (f32/f64 -> E4M3fn/E5M2, round to nearest even, from the exact input):
 *   |x| below the format's smallest normal: the code is |x| / minSubnormal rounded to an integer
 *   (|x| * 2^(bias-1+m) is exact; adding and subtracting 2^23 (2^52 for f64) rounds it to nearest
 *   even in the default rounding mode). Code 2^m there is the smallest normal, so the carry is right.
 *   Otherwise: rebias the exponent field and round the mantissa from 23 (52) to m bits with the
 *   usual "add half - 1 + lsb, shift" trick; a carry out of the mantissa bumps the exponent, which
 *   is exactly the next code, since codes are ordered like values. A result above maxCode (this
 *   includes +-inf) overflows: saturate -> +-maxCode, else +-inf (E5M2) / +-NaN code (E4M3fn).
 *   NaN -> 0x7F (no sign), -0 -> 0x80. This is the TS codec's behaviour case for case.
 *
 * Floating-point contraction is off for this file so `out + partial * scale` stays two f32
 * roundings, as in the TS reference (JS has no fused multiply-add). */
#pragma GCC optimize("fp-contract=off")
#include "fp8.h"
#include "glue.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "threads.h"

#define CODEC_GRAIN (1L << 15)

/* ------------------------------------------------------------------------------------------------ */
/* Codecs                                                                                             */

typedef struct { int m, bias; uint32_t max_code, ovf_code; } fmt_t;
static const fmt_t FMTS[2] = {
  {3, 7, 0x7e, 0x7f},  /* E4M3fn: no infinity, overflow (non-saturating) -> NaN code */
  {2, 15, 0x7b, 0x7c}, /* E5M2: overflow -> inf */
};

/* Branch-free (both paths computed, then selected) so the loop vectorises; see the header comment. */
static inline __attribute__((always_inline)) uint8_t enc32(float x, int m, uint32_t rebias, uint32_t cap, float sub_scale,
                                                           uint32_t min_normal) {
  uint32_t u;
  memcpy(&u, &x, 4);
  const uint32_t sign = (u >> 24) & 0x80, a = u & 0x7fffffffu;
  const int sh = 23 - m;
  float v;
  memcpy(&v, &a, 4);
  v = v * sub_scale;                 /* exact: a power-of-two scaling; in [0, 2^m] when a is subnormal in FP8 */
  v = (v + 8388608.0f) - 8388608.0f; /* round to nearest even integer (garbage when unused) */
  const uint32_t code_sub = (uint32_t)(int32_t)(a < min_normal ? v : 0.0f);
  const uint32_t r = a - rebias;     /* wraps when a is small: unused then */
  uint32_t code_n = (r + ((1u << (sh - 1)) - 1) + ((r >> sh) & 1)) >> sh;
  code_n = code_n < cap ? code_n : cap; /* cap = maxCode (saturate) or maxCode + 1 = the overflow code */
  const uint32_t code = sign | (a < min_normal ? code_sub : code_n);
  return (uint8_t)(a > 0x7f800000u ? 0x7fu : code);
}

/* The overflow code of both formats is maxCode + 1 (0x7F NaN for E4M3fn, 0x7C inf for E5M2), so the
 * non-saturating overflow result is a clamp to maxCode + 1 as well. */
#define ENC32_LOOP                                                                                  \
  const fmt_t *f = &FMTS[c->fmt];                                                                   \
  const float *s = c->src;                                                                          \
  const int m = f->m;                                                                               \
  const uint32_t rebias = (uint32_t)(127 - f->bias) << 23, cap = c->sat ? f->max_code : f->max_code + 1; \
  const float sub_scale = (float)(1u << (f->bias - 1 + m));                                         \
  const uint32_t min_normal = (uint32_t)(127 + 1 - f->bias) << 23;                                  \
  uint8_t *d = c->dst;                                                                              \
  if (m == 3) for (long i = b; i < e; i++) d[i] = enc32(s[i], 3, rebias, cap, sub_scale, min_normal); \
  else for (long i = b; i < e; i++) d[i] = enc32(s[i], 2, rebias, cap, sub_scale, min_normal);

static inline uint8_t enc64(double x, const fmt_t *f, int sat, double sub_scale, uint64_t min_normal) {
  uint64_t u;
  memcpy(&u, &x, 8);
  uint32_t sign = (uint32_t)(u >> 56) & 0x80;
  uint64_t a = u & 0x7fffffffffffffffull;
  if (a > 0x7ff0000000000000ull) return 0x7f;
  uint64_t code;
  if (a < min_normal) {
    double v;
    memcpy(&v, &a, 8);
    v = v * sub_scale;
    v = (v + 4503599627370496.0) - 4503599627370496.0;
    code = (uint64_t)v;
  } else {
    const int sh = 52 - f->m;
    uint64_t r = a - ((uint64_t)(1023 - f->bias) << 52);
    code = (r + ((1ull << (sh - 1)) - 1) + ((r >> sh) & 1)) >> sh;
    if (code > f->max_code) code = sat ? f->max_code : f->ovf_code;
  }
  return (uint8_t)(sign | (uint32_t)code);
}

typedef struct { uint8_t *dst; const void *src; int fmt, sat, f64; } enc_ctx;

static void enc32_range(void *vc, long b, long e, int tid) {
  (void)tid;
  const enc_ctx *c = vc;
  ENC32_LOOP
}
#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2"))) static void enc32_range_avx2(void *vc, long b, long e, int tid) {
  (void)tid;
  const enc_ctx *c = vc;
  ENC32_LOOP
}
#endif

static void enc64_range(void *vc, long b, long e, int tid) {
  (void)tid;
  const enc_ctx *c = vc;
  const fmt_t *f = &FMTS[c->fmt];
  const double *s = c->src;
  const double sub_scale = ldexp(1.0, f->bias - 1 + f->m);
  const uint64_t min_normal = (uint64_t)(1023 + 1 - f->bias) << 52;
  for (long i = b; i < e; i++) c->dst[i] = enc64(s[i], f, c->sat, sub_scale, min_normal);
}

void r1_fp8_encode_f32(uint8_t *dst, const float *src, long n, int fmt, int saturate) {
  enc_ctx c = {dst, src, fmt, saturate, 0};
#if defined(__x86_64__) || defined(__i386__)
  if (r1_isa() >= R1_ISA_AVX2) { r1_parallel_for(n, CODEC_GRAIN, enc32_range_avx2, &c); return; }
#endif
  r1_parallel_for(n, CODEC_GRAIN, enc32_range, &c);
}
void r1_fp8_encode_f64(uint8_t *dst, const double *src, long n, int fmt, int saturate) {
  enc_ctx c = {dst, src, fmt, saturate, 1};
  r1_parallel_for(n, CODEC_GRAIN, enc64_range, &c);
}

/* Decode tables, built once from the bit layout (same rules as decodeFromBits in fp8.ts). */
static float TABLES[2][256];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;
static void build_tables(void) {
  const uint32_t qnan = 0x7fc00000u;
  for (int t = 0; t < 2; t++) {
    const int m = FMTS[t].m, eb = t == 0 ? 4 : 5, bias = FMTS[t].bias, emax = (1 << eb) - 1;
    for (int c = 0; c < 256; c++) {
      const int e = (c >> m) & emax, fr = c & ((1 << m) - 1);
      const float sgn = (c & 0x80) ? -1.0f : 1.0f;
      float v;
      if (t == 1 && e == emax) {
        if (fr == 0) v = sgn * INFINITY; else memcpy(&v, &qnan, 4);
      } else if (t == 0 && e == emax && fr == (1 << m) - 1) {
        memcpy(&v, &qnan, 4);
      } else if (e == 0) {
        v = sgn * ldexpf((float)fr, 1 - bias - m);
      } else {
        v = sgn * ldexpf((float)((1 << m) + fr), e - bias - m);
      }
      TABLES[t][c] = v;
    }
  }
}
static const float *table_for(int fmt) {
  pthread_once(&tables_once, build_tables);
  return TABLES[fmt];
}

typedef struct { float *dst; const uint8_t *src; const float *t; } dec_ctx;
static void dec_range(void *vc, long b, long e, int tid) {
  (void)tid;
  const dec_ctx *c = vc;
  for (long i = b; i < e; i++) c->dst[i] = c->t[c->src[i]];
}
void r1_fp8_decode(float *dst, const uint8_t *src, long n, int fmt) {
  dec_ctx c = {dst, src, table_for(fmt)};
  r1_parallel_for(n, CODEC_GRAIN, dec_range, &c);
}

/* Fine-grained quantization (DeepSeek-V3 section 3.3.1; the semantics of quantizeTiles in src/nn/fp8-linear.ts, the
 * TypeScript oracle): per [br, bc] tile of x [rows, cols], scaleInv = amax / maxFinite rounded to f32 (1 when the tile
 * is all zeros, NaN when it holds a NaN or an infinity), codes = encode(x / scaleInv) with saturation, and (deq not
 * NULL) deq = decode(code) * scaleInv. f32 arithmetic throughout (contraction is off in this file). Threads take
 * whole rows of tiles. */
typedef struct { const float *x; long rows, cols, br, bc, sc; int fmt; float *si; uint8_t *codes; float *deq; } qt_ctx;
static void qt_range(void *vc, long b, long e, int tid) {
  (void)tid;
  const qt_ctx *c = vc;
  const fmt_t *f = &FMTS[c->fmt];
  const int m = f->m;
  const uint32_t rebias = (uint32_t)(127 - f->bias) << 23, cap = f->max_code;
  const float sub_scale = (float)(1u << (f->bias - 1 + m)), maxf = c->fmt == R1_FP8_E4M3 ? 448.0f : 57344.0f;
  const uint32_t min_normal = (uint32_t)(127 + 1 - f->bias) << 23;
  const float *tab = table_for(c->fmt);
  for (long tr = b; tr < e; tr++) {
    const long r0 = tr * c->br, r1 = r0 + c->br < c->rows ? r0 + c->br : c->rows;
    for (long tj = 0; tj < c->sc; tj++) {
      const long c0 = tj * c->bc, c1 = c0 + c->bc < c->cols ? c0 + c->bc : c->cols;
      float amax = 0.0f;
      int bad = 0;
      for (long r = r0; r < r1; r++)
        for (long j = c0; j < c1; j++) {
          const float a = fabsf(c->x[r * c->cols + j]);
          amax = a > amax ? a : amax;
          bad |= a != a || a == INFINITY;
        }
      float s = amax / maxf;
      s = bad ? NAN : (s > 0.0f ? s : 1.0f);
      c->si[tr * c->sc + tj] = s;
      for (long r = r0; r < r1; r++) {
        const float *xr = c->x + r * c->cols;
        uint8_t *q = c->codes + r * c->cols;
        if (m == 3)
          for (long j = c0; j < c1; j++) q[j] = enc32(xr[j] / s, 3, rebias, cap, sub_scale, min_normal);
        else
          for (long j = c0; j < c1; j++) q[j] = enc32(xr[j] / s, 2, rebias, cap, sub_scale, min_normal);
        if (c->deq) {
          float *d = c->deq + r * c->cols;
          for (long j = c0; j < c1; j++) d[j] = tab[q[j]] * s;
        }
      }
    }
  }
}
void r1_fp8_quantize_tiles(const float *x, long rows, long cols, long br, long bc, int fmt, float *scale_inv,
                           uint8_t *codes, float *deq) {
  if (rows <= 0 || cols <= 0) return;
  const long sr = (rows + br - 1) / br;
  qt_ctx c = {x, rows, cols, br, bc, (cols + bc - 1) / bc, fmt, scale_inv, codes, deq};
  const long per = br * cols; /* elements per row of tiles */
  r1_parallel_for(sr, per >= CODEC_GRAIN ? 1 : CODEC_GRAIN / per, qt_range, &c);
}

/* ------------------------------------------------------------------------------------------------ */
/* GEMM emulation (DeepSeek-V3 technical report, section 3.3.2, "Increasing Accumulation Precision").
 *
 * What is emulated, for each output C[i, j]:
 *   - K is cut into segments at every multiple of promote_every and wherever the scale of A's row
 *     tile or of B's block changes along K (multiples of abc and bbc): a Tensor Core partial sum is
 *     over raw FP8 products sharing one pair of scales.
 *   - Within a segment, the limited-precision accumulator starts at +0 and, for each k in order,
 *     becomes round(acc + a[i,k] * b[j,k]), where the product of the two decoded FP8 values is exact
 *     (at most 4 x 4 significant bits) and round() keeps acc_bits significant bits (the leading bit
 *     included, so 24 = f32) with unbounded exponent, rounding to nearest even (R1_ACC_NEAREST) or
 *     toward zero (R1_ACC_TOWARD_ZERO, i.e. dropping the shifted-out bits, as an aligned
 *     fixed-width adder does). The sum acc + p is formed in f64 and then rounded: for acc_bits <= 24
 *     and 8-bit products the f64 rounding cannot change the final result (the exact sum is either
 *     exact in f64 or lies far from any acc_bits rounding boundary).
 *   - Promotion at the end of each segment (CUDA-core FP32 accumulate): scale = f32(sa * sb),
 *     out = f32(out + f32(f32(acc) * scale)); f32(acc) is exact for acc_bits <= 24.
 * out starts at +0 and segments are visited in increasing k. */

/* Implementation: each output's accumulation is a serial dependency chain (add, then round), so the
 * kernel works on JB = 8 outputs of one row of C at a time (columns j0 .. j0+7), whose chains are
 * independent: B is decoded into a packed [ceil(N/8)][K][8] layout (zero padding past N) so the 8
 * products of one k are contiguous (AVX2: one f32 multiply, then two 4-lane f64 chains; the portable
 * version runs the 8 chains interleaved). Per output the arithmetic is exactly the definition above,
 * in the same order. Threads split the (row, column group) pairs. */
#define JB 8

typedef struct {
  float *C;
  const float *A, *Bp, *As, *Bs; /* decoded A [M,K]; packed decoded B; the scale grids */
  long M, N, K, abr, bbr, asc, bsc, ngroups;
  const long *seg;               /* nseg + 1 boundaries */
  const long *sega, *segb;       /* per segment: scale column in A's / B's grid */
  long nseg;
  int shift, mode;
} gemm_ctx;

static inline __attribute__((always_inline)) double acc_round(double x, int shift, int mode) {
  uint64_t u;
  memcpy(&u, &x, 8);
  const uint64_t mask = (1ull << shift) - 1;
  /* The kept lsb decides ties; with 1 significant bit (shift 52) it is the implicit bit (set for normals). */
  if (mode == R1_ACC_NEAREST) {
    const uint64_t lsb = shift == 52 ? (((u >> 52) & 0x7ff) != 0) : ((u >> shift) & 1);
    u += (mask >> 1) + lsb;
  }
  u &= ~mask;
  memcpy(&x, &u, 8);
  return x;
}

#define GEMM_BODY(MODE)                                                                               \
  const gemm_ctx *c = vc;                                                                             \
  const long K = c->K, N = c->N;                                                                      \
  const int shift = c->shift;                                                                         \
  for (long idx = b; idx < e; idx++) {                                                                \
    const long i = idx / c->ngroups, g = idx % c->ngroups, j0 = g * JB;                               \
    const float *a = c->A + i * K, *bp = c->Bp + g * K * JB;                                          \
    const float *sa = c->As + (i / c->abr) * c->asc;                                                  \
    float out[JB];                                                                                    \
    for (int jj = 0; jj < JB; jj++) out[jj] = 0.0f;                                                   \
    for (long s = 0; s < c->nseg; s++) {                                                              \
      double acc[JB];                                                                                 \
      for (int jj = 0; jj < JB; jj++) acc[jj] = 0.0;                                                  \
      for (long k = c->seg[s]; k < c->seg[s + 1]; k++) {                                              \
        const float av = a[k];                                                                        \
        const float *bk = bp + k * JB;                                                                \
        for (int jj = 0; jj < JB; jj++) {                                                             \
          const float pr = av * bk[jj]; /* exact */                                                   \
          acc[jj] = acc_round(acc[jj] + (double)pr, shift, MODE);                                     \
        }                                                                                             \
      }                                                                                               \
      const float sav = sa[c->sega[s]];                                                               \
      for (int jj = 0; jj < JB; jj++) {                                                               \
        const long j = j0 + jj < N ? j0 + jj : N - 1; /* padded lanes: any valid scale, discarded */  \
        const float scale = sav * c->Bs[(j / c->bbr) * c->bsc + c->segb[s]];                          \
        const float t = (float)acc[jj] * scale;                                                       \
        out[jj] = out[jj] + t;                                                                        \
      }                                                                                               \
    }                                                                                                 \
    for (int jj = 0; jj < JB && j0 + jj < N; jj++) c->C[i * N + j0 + jj] = out[jj];                   \
  }

static void gemm_range_nearest(void *vc, long b, long e, int tid) { (void)tid; GEMM_BODY(R1_ACC_NEAREST) }
static void gemm_range_zero(void *vc, long b, long e, int tid) { (void)tid; GEMM_BODY(R1_ACC_TOWARD_ZERO) }
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
/* AVX2: the 8 lanes as two vectors of 4 doubles; the same operations as acc_round, lane-wise (the
 * f32 products are exact, their widening to f64 is exact, the add is one f64 rounding, then the
 * integer add/mask on the encoding). Not used for shift == 52 (accBits 1), whose tie rule reads the
 * implicit bit. */
#define GEMM_AVX2_BODY(NEAREST)                                                                       \
  const gemm_ctx *c = vc;                                                                             \
  const long K = c->K, N = c->N;                                                                      \
  const __m128i cnt = _mm_cvtsi32_si128(c->shift);                                                    \
  const __m256i mask = _mm256_set1_epi64x((long long)((1ull << c->shift) - 1));                       \
  const __m256i halfm1 = _mm256_set1_epi64x((long long)(((1ull << c->shift) - 1) >> 1));              \
  const __m256i one = _mm256_set1_epi64x(1);                                                          \
  for (long idx = b; idx < e; idx++) {                                                                \
    const long i = idx / c->ngroups, g = idx % c->ngroups, j0 = g * JB;                               \
    const float *a = c->A + i * K, *bp = c->Bp + g * K * JB;                                          \
    const float *sa = c->As + (i / c->abr) * c->asc;                                                  \
    float out[JB];                                                                                    \
    for (int jj = 0; jj < JB; jj++) out[jj] = 0.0f;                                                   \
    for (long s = 0; s < c->nseg; s++) {                                                              \
      __m256i u0 = _mm256_setzero_si256(), u1 = _mm256_setzero_si256();                              \
      for (long k = c->seg[s]; k < c->seg[s + 1]; k++) {                                              \
        const __m256 pr = _mm256_mul_ps(_mm256_set1_ps(a[k]), _mm256_loadu_ps(bp + k * JB));          \
        __m256d s0 = _mm256_add_pd(_mm256_castsi256_pd(u0), _mm256_cvtps_pd(_mm256_castps256_ps128(pr))); \
        __m256d s1 = _mm256_add_pd(_mm256_castsi256_pd(u1), _mm256_cvtps_pd(_mm256_extractf128_ps(pr, 1))); \
        u0 = _mm256_castpd_si256(s0);                                                                 \
        u1 = _mm256_castpd_si256(s1);                                                                 \
        if (NEAREST) {                                                                                \
          u0 = _mm256_add_epi64(u0, _mm256_add_epi64(halfm1, _mm256_and_si256(_mm256_srl_epi64(u0, cnt), one))); \
          u1 = _mm256_add_epi64(u1, _mm256_add_epi64(halfm1, _mm256_and_si256(_mm256_srl_epi64(u1, cnt), one))); \
        }                                                                                             \
        u0 = _mm256_andnot_si256(mask, u0);                                                           \
        u1 = _mm256_andnot_si256(mask, u1);                                                           \
      }                                                                                               \
      double acc[JB];                                                                                 \
      _mm256_storeu_pd(acc, _mm256_castsi256_pd(u0));                                                 \
      _mm256_storeu_pd(acc + 4, _mm256_castsi256_pd(u1));                                             \
      const float sav = sa[c->sega[s]];                                                               \
      for (int jj = 0; jj < JB; jj++) {                                                               \
        const long j = j0 + jj < N ? j0 + jj : N - 1;                                                 \
        const float scale = sav * c->Bs[(j / c->bbr) * c->bsc + c->segb[s]];                          \
        const float t = (float)acc[jj] * scale;                                                       \
        out[jj] = out[jj] + t;                                                                        \
      }                                                                                               \
    }                                                                                                 \
    for (int jj = 0; jj < JB && j0 + jj < N; jj++) c->C[i * N + j0 + jj] = out[jj];                   \
  }

__attribute__((target("avx2"))) static void gemm_range_nearest_avx2(void *vc, long b, long e, int tid) {
  (void)tid;
  GEMM_AVX2_BODY(1)
}
__attribute__((target("avx2"))) static void gemm_range_zero_avx2(void *vc, long b, long e, int tid) {
  (void)tid;
  GEMM_AVX2_BODY(0)
}
#endif

/* Returns 0 on success, -1 when memory runs out (nothing written then). */
static int fp8_gemm_impl(float *C, const uint8_t *A, const float *As, const uint8_t *B, const float *Bs,
                         long M, long N, long K, long abr, long abc, long bbr, long bbc,
                         int acc_bits, long promote_every, int round_mode, int fmt) {
  if (M == 0 || N == 0) return 0;
  if (K == 0) {
    for (long i = 0; i < M * N; i++) C[i] = 0.0f;
    return 0;
  }
  const long ngroups = (N + JB - 1) / JB;
  float *dA = malloc(sizeof(float) * (size_t)(M * K));
  float *dB = malloc(sizeof(float) * (size_t)(N * K));
  float *pB = malloc(sizeof(float) * (size_t)(ngroups * JB * K));
  long *seg = malloc(sizeof(long) * (size_t)(3 * K + 1));
  if (!dA || !dB || !pB || !seg) { free(dA); free(dB); free(pB); free(seg); return -1; }
  r1_fp8_decode(dA, A, M * K, fmt);
  r1_fp8_decode(dB, B, N * K, fmt);
  for (long g = 0; g < ngroups; g++)
    for (long k = 0; k < K; k++)
      for (int jj = 0; jj < JB; jj++) {
        const long j = g * JB + jj;
        pB[(g * K + k) * JB + jj] = j < N ? dB[j * K + k] : 0.0f;
      }
  free(dB);
  long nseg = 0, *sega = seg + K + 1, *segb = seg + 2 * K + 1;
  seg[0] = 0;
  for (long k = 0; k < K;) {
    long nk = (k / promote_every + 1) * promote_every;
    long ka = (k / abc + 1) * abc, kb = (k / bbc + 1) * bbc;
    if (ka < nk) nk = ka;
    if (kb < nk) nk = kb;
    if (nk > K) nk = K;
    sega[nseg] = k / abc;
    segb[nseg] = k / bbc;
    seg[++nseg] = nk;
    k = nk;
  }
  gemm_ctx c = {C, dA, pB, As, Bs, M, N, K, abr, bbr, (K + abc - 1) / abc, (K + bbc - 1) / bbc, ngroups,
                seg, sega, segb, nseg, 53 - acc_bits, round_mode};
  r1_range_fn fn = round_mode == R1_ACC_NEAREST ? gemm_range_nearest : gemm_range_zero;
#if defined(__x86_64__) || defined(__i386__)
  if (r1_isa() >= R1_ISA_AVX2 && acc_bits > 1) fn = round_mode == R1_ACC_NEAREST ? gemm_range_nearest_avx2 : gemm_range_zero_avx2;
#endif
  long grain = 8192 / K;
  r1_parallel_for(M * ngroups, grain < 1 ? 1 : grain, fn, &c);
  free(dA);
  free(pB);
  free(seg);
  return 0;
}

void r1_fp8_gemm(float *C, const uint8_t *A, const float *As, const uint8_t *B, const float *Bs,
                 long M, long N, long K, long abr, long abc, long bbr, long bbc,
                 int acc_bits, long promote_every, int round_mode, int fmt) {
  (void)fp8_gemm_impl(C, A, As, B, Bs, M, N, K, abr, abc, bbr, bbc, acc_bits, promote_every, round_mode, fmt);
}

/* ------------------------------------------------------------------------------------------------ */
/* N-API glue. Every size is checked against the typed arrays before a kernel runs; a bad call
 * throws RangeError / TypeError (codes ERR_R1_NATIVE_RANGE / ERR_R1_NATIVE_TYPE, like addon.c). */

#define FBEGIN(NAME, N) \
  call_t C_ = {env, NAME}; call_t *C = &C_; napi_value argv[N]; size_t argc = (N); \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL; \
  if (argc < (size_t)(N)) { fail(C, 0, "expected %d arguments, got %zu", (N), argc); return NULL; }

/* fp8Encode(dst: Uint8Array, src: Float32Array | Float64Array, n, format: 0 e4m3 | 1 e5m2, saturate) */
napi_value r1_napi_fp8_encode(napi_env env, napi_callback_info info) {
  FBEGIN("fp8Encode", 5);
  arr_t d, s;
  long n = 0, fmt = 0;
  int sat = 0;
  if (!arg_typed(C, argv[0], &d, "dst", napi_uint8_array)) return NULL;
  if (!arg_arr(C, argv[1], &s, "src")) return NULL;
  if (s.type != napi_float32_array && s.type != napi_float64_array)
    return fail(C, 0, "src must be a Float32Array or Float64Array"), NULL;
  if (!arg_long(C, argv[2], &n, "n", 0, MAX_SIZE) || !arg_long(C, argv[3], &fmt, "format", 0, 1) ||
      !arg_bool(C, argv[4], &sat, "saturate"))
    return NULL;
  if (!need(C, &d, 0, n, "dst") || !need(C, &s, 0, n, "src")) return NULL;
  if (n == 0) return NULL;
  if (s.type == napi_float32_array) r1_fp8_encode_f32(d.data, s.data, n, (int)fmt, sat);
  else r1_fp8_encode_f64(d.data, s.data, n, (int)fmt, sat);
  return NULL;
}

/* fp8Decode(dst: Float32Array, src: Uint8Array, n, format) */
napi_value r1_napi_fp8_decode(napi_env env, napi_callback_info info) {
  FBEGIN("fp8Decode", 4);
  arr_t d, s;
  long n = 0, fmt = 0;
  if (!arg_typed(C, argv[0], &d, "dst", napi_float32_array) ||
      !arg_typed(C, argv[1], &s, "src", napi_uint8_array) ||
      !arg_long(C, argv[2], &n, "n", 0, MAX_SIZE) || !arg_long(C, argv[3], &fmt, "format", 0, 1))
    return NULL;
  if (!need(C, &d, 0, n, "dst") || !need(C, &s, 0, n, "src")) return NULL;
  if (n == 0) return NULL;
  r1_fp8_decode(d.data, s.data, n, (int)fmt);
  return NULL;
}

/* fp8Gemm(c: Float32Array, aCodes: Uint8Array, aScaleInv: Float32Array, bCodes: Uint8Array,
 *         bScaleInv: Float32Array, M, N, K, aBlockRows, aBlockCols, bBlockRows, bBlockCols,
 *         accBits (1..24), promoteEvery (>= 1), roundMode (0 nearest even, 1 toward zero), format) */
/* fp8QuantizeTiles(x: Float32Array, rows, cols, blockRows, blockCols, format, scaleInv: Float32Array,
 *                  codes: Uint8Array, deq: Float32Array | null) */
napi_value r1_napi_fp8_quantize_tiles(napi_env env, napi_callback_info info) {
  FBEGIN("fp8QuantizeTiles", 9);
  arr_t x, si, q, dq;
  long rows = 0, cols = 0, br = 0, bc = 0, fmt = 0, n = 0;
  if (!arg_typed(C, argv[0], &x, "x", napi_float32_array) || !arg_long(C, argv[1], &rows, "rows", 0, MAX_SIZE) ||
      !arg_long(C, argv[2], &cols, "cols", 0, MAX_SIZE) || !arg_long(C, argv[3], &br, "blockRows", 1, MAX_SIZE) ||
      !arg_long(C, argv[4], &bc, "blockCols", 1, MAX_SIZE) || !arg_long(C, argv[5], &fmt, "format", 0, 1) ||
      !arg_typed(C, argv[6], &si, "scaleInv", napi_float32_array) || !arg_typed(C, argv[7], &q, "codes", napi_uint8_array) ||
      !mul2(C, rows, cols, &n))
    return NULL;
  napi_valuetype t;
  napi_typeof(env, argv[8], &t);
  const int has_deq = t != napi_null && t != napi_undefined;
  if (has_deq && !arg_typed(C, argv[8], &dq, "deq", napi_float32_array)) return NULL;
  const long ns = ((rows + br - 1) / br) * ((cols + bc - 1) / bc);
  if (!need(C, &x, 0, n, "x") || !need(C, &q, 0, n, "codes") || !need(C, &si, 0, ns, "scaleInv") ||
      (has_deq && !need(C, &dq, 0, n, "deq")))
    return NULL;
  r1_fp8_quantize_tiles(x.data, rows, cols, br, bc, (int)fmt, si.data, q.data, has_deq ? dq.data : NULL);
  return NULL;
}

napi_value r1_napi_fp8_gemm(napi_env env, napi_callback_info info) {
  FBEGIN("fp8Gemm", 16);
  arr_t cc, a, as, b, bs;
  if (!arg_typed(C, argv[0], &cc, "c", napi_float32_array) ||
      !arg_typed(C, argv[1], &a, "aCodes", napi_uint8_array) ||
      !arg_typed(C, argv[2], &as, "aScaleInv", napi_float32_array) ||
      !arg_typed(C, argv[3], &b, "bCodes", napi_uint8_array) ||
      !arg_typed(C, argv[4], &bs, "bScaleInv", napi_float32_array))
    return NULL;
  long M = 0, N = 0, K = 0, abr = 1, abc = 1, bbr = 1, bbc = 1, bits = 24, prom = 1, mode = 0, fmt = 0;
  if (!arg_long(C, argv[5], &M, "M", 0, MAX_SIZE) || !arg_long(C, argv[6], &N, "N", 0, MAX_SIZE) ||
      !arg_long(C, argv[7], &K, "K", 0, MAX_SIZE) || !arg_long(C, argv[8], &abr, "aBlockRows", 1, MAX_SIZE) ||
      !arg_long(C, argv[9], &abc, "aBlockCols", 1, MAX_SIZE) || !arg_long(C, argv[10], &bbr, "bBlockRows", 1, MAX_SIZE) ||
      !arg_long(C, argv[11], &bbc, "bBlockCols", 1, MAX_SIZE) || !arg_long(C, argv[12], &bits, "accBits", 1, 24) ||
      !arg_long(C, argv[13], &prom, "promoteEvery", 1, MAX_SIZE) || !arg_long(C, argv[14], &mode, "roundMode", 0, 1) ||
      !arg_long(C, argv[15], &fmt, "format", 0, 1))
    return NULL;
  long mn, mk, nk, na, nb;
  if (!mul2(C, M, N, &mn) || !mul2(C, M, K, &mk) || !mul2(C, N, K, &nk)) return NULL;
  if (!mul2(C, (M + abr - 1) / abr, (K + abc - 1) / abc, &na) ||
      !mul2(C, (N + bbr - 1) / bbr, (K + bbc - 1) / bbc, &nb))
    return NULL;
  if (!need(C, &cc, 0, mn, "c") || !need(C, &a, 0, mk, "aCodes") || !need(C, &b, 0, nk, "bCodes") ||
      !need(C, &as, 0, na, "aScaleInv") || !need(C, &bs, 0, nb, "bScaleInv"))
    return NULL;
  /* The scratch (decoded operands, segment table) must fit in size_t with the element sizes. */
  if (mk > MAX_SIZE / 8 || nk > MAX_SIZE / 8 || K > MAX_SIZE / 32) return fail(C, 1, "operands too large"), NULL;
  if (fp8_gemm_impl(cc.data, a.data, as.data, b.data, bs.data, M, N, K, abr, abc, bbr, bbc, (int)bits, prom,
                    (int)mode, (int)fmt) != 0)
    return fail(C, 1, "out of memory for the decoded operands (M*K + N*K floats)"), NULL;
  return NULL;
}
