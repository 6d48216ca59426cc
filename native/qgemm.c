/* Packed-weight GEMM / GEMV for inference (API in qgemm.h): Y[M,N] = X[M,K] . W^T (+ bias), with W stored
 * as bf16 or as FP8 E4M3 codes with 128 x 128 block scales (DeepSeek-V3 technical report section 3.3.2 and
 * the released checkpoints' `weight_scale_inv`: w = decode(code) * scale_inv[n / 128, k / 128]).
 *
 * Why: batch-1 decode is a matrix-vector product per layer, bound by the bytes of W read from DRAM. Reading
 * 2 (bf16) or 1 (fp8) byte per weight instead of 4 is what makes decode faster; the dequantization must
 * then be cheap enough to keep up with memory, so it is fused into the product and vectorised:
 *   - bf16 -> f32 is a 16-bit left shift of the bit pattern (bf16 is the top half of an f32);
 *   - E4M3 -> f32: zero-extend the byte b to 16 bits and form h = (b & 0x80) << 8 | (b & 0x7f) << 7. The
 *     sign lands on the fp16 sign bit, the 4 exponent bits on the low 4 bits of fp16's 5-bit exponent and
 *     the 3 mantissa bits on the top of fp16's mantissa, so h is an fp16 whose value is the E4M3 value
 *     times 2^(7 - 15) = 2^-8 (exponent biases 7 and 15), subnormals included (both scale the same way).
 *     (Computed as ((b sign-extended) << 7) & 0xBFFF, three operations.) F16C's vcvtph2ps turns 8 (AVX2) or
 *     16 (AVX-512) of them into f32; the 2^8 is folded into the block scale. fp16 values are exact in f32 and 2^8 * scale is exact (power-of-two multiply), so
 *     (h as f32) * (2^8 * scale) rounds once, exactly like decode(code) * scale: the dequantized weight is
 *     bit-identical to dequantizeBlockwise (src/quant/blockwise.ts). One exception: E4M3fn's NaN codes
 *     (0x7f, 0xff) decode as +-480 on the SIMD paths; packers reject weights holding them
 *     (src/nn/packed-weights.ts), so they never reach these kernels. The AVX-512 GEMV moves the bits straight
 *     into an f32 instead (e4m3x16_raw: no conversion instruction at all).
 *
 * Small M (decode, M <= QG_SMALL_M): each thread takes groups of QR = 4 consecutive W rows (a group never
 * straddles a 128-row scale block) and streams them once for all M rows of X:
 *   M == 1: decode straight into registers and FMA with x (two accumulators per row); fp8 sums each 128-wide
 *           block unscaled and folds 2^8 * scale in once per block (one scale serves the whole group); on
 *           AVX-512 the block scales are folded into a per-thread copy of x instead (one per 128-row block),
 *           so each row streams with no per-block epilogue;
 *   M >= 2: decode a 4 x QKC chunk into an L1 tile (scale applied), then run the M dot products over it,
 *           so the decode cost is paid once per weight, not once per (weight, row).
 * Large M (prefill): dequantize panels of W rows into an f32 scratch (bounded, ~8 MiB) and call the f32
 * GEMM (gemm.c); decode there is O(N K) against O(M N K) multiply-adds.
 *
 * ISA: AVX-512 (F+BW+VL) and AVX2+FMA+F16C kernels compiled with __attribute__((target)) and picked at run
 * time with r1_isa() (R1_ISA caps it); a portable scalar path (table lookup for E4M3) everywhere else.
 */
#define _GNU_SOURCE
#include "qgemm.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "gemm.h"
#include "glue.h"
#include "qpanel.h"
#include "qsmall.h"
#include "threads.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define R1_X86 1
#endif

#define QR 4          /* W rows per group */
#define QKC 512       /* K chunk decoded into the tile for M >= 2 (multiple of 128 and of 16) */
#define QG_SMALL_M R1_QW_SMALL_M /* largest M served by the fused path (the tile accumulators are sized for it) */
#define BLK R1_QW_BLOCK
#define QG_SLAB 256 /* rows of X per pass over W on the qsmall path (see r1_qgemm) */

static inline long min_l(long a, long b) { return a < b ? a : b; }
static inline long max_l(long a, long b) { return a > b ? a : b; }
static inline long cdiv(long a, long b) { return (a + b - 1) / b; }

/* ---------------- scalar decode ---------------- */
static float e4m3_tab[256];
static pthread_once_t tab_once = PTHREAD_ONCE_INIT;
static void tab_init(void) {
  for (int c = 0; c < 256; c++) {
    int e = (c >> 3) & 15, m = c & 7;
    float v = (e == 15 && m == 7) ? NAN : e == 0 ? ldexpf((float)m, -9) : ldexpf((float)(8 + m), e - 10);
    e4m3_tab[c] = (c & 0x80) ? -v : v;
  }
}
static inline float bf16_f32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

typedef struct {
  int fmt, isa;
  long M, N, K, sk; /* sk = ceil(K / 128), scale columns */
  const float *X;
  const void *W;
  const float *S;
  const float *bias;
  float *Y;
  int small_m;
  const float *Xs; /* M == 1, fp8, AVX-512 raw decode: X (NULL when not used), scaled by 2^xs_shift */
  const uint16_t *Xb; /* packed formats: X rounded to bf16 (bit patterns), for qsmall.c's vdpbf16ps kernels */
  int qsmall;         /* M >= 2 rows go through qsmall.c (register-blocked AVX-512) */
  int xs_shift, raw_ok;
} qctx;

/* Dequantize W[j, k0 : k0 + kc) into dst (scale applied), scalar. */
static void decode_row_scalar(const qctx *g, long j, long k0, long kc, float *dst) {
  if (g->fmt == R1_QW_F32) {
    memcpy(dst, (const float *)g->W + j * g->K + k0, sizeof(float) * (size_t)kc);
    return;
  }
  if (g->fmt == R1_QW_BF16) {
    const uint16_t *w = (const uint16_t *)g->W + j * g->K + k0;
    for (long p = 0; p < kc; p++) dst[p] = bf16_f32(w[p]);
    return;
  }
  const uint8_t *w = (const uint8_t *)g->W + j * g->K;
  const float *srow = g->S + (j / BLK) * g->sk;
  for (long p = k0; p < k0 + kc; p++) dst[p - k0] = e4m3_tab[w[p]] * srow[p / BLK];
}

#ifdef R1_X86
/* ---------------- AVX2 + FMA + F16C ---------------- */
#define T2 __attribute__((target("avx2,fma,f16c")))
/* Software prefetch of the next row group while this one streams. Why: decode rows are short (896 fp8 bytes =
 * 14 cache lines for S1), too short for the hardware stream prefetchers to ramp up on each of the four rows,
 * so without it a thread keeps too few misses in flight and stays far below DRAM bandwidth. The group's
 * rows are one contiguous region, so walking the next region linearly at 4x the row pace covers it exactly
 * by the time this group ends. Prefetches never fault (past the end of W they are simply wasted). */
#ifndef QG_PF_HINT
#define QG_PF_HINT _MM_HINT_T0
#endif
#define PF(a) _mm_prefetch((const char *)(a), QG_PF_HINT)
/* Long rows (a group over QG_PF_NEAR bytes, e.g. the MLP down projection) get no software prefetch: there the
 * hardware prefetchers ramp up within each row, and pulling a whole next group into L1 ahead of time would evict
 * the current one. Open problem, measured on Zen 4 (one thread, weights from DRAM): fp8 rows of 4864 stream at
 * ~11 GB/s against 19-21 GB/s for rows of 896, and neither per-row prefetch distances from 128 B to 8 KiB nor
 * walking the rows one at a time (a single sequential stream) changed that. What did, on AVX512_BF16 + VBMI CPUs
 * (qsmall.c gemv_e4m3_vbmi): reading a thread's rows as four interleaved runs, each one long stream; this path still
 * walks groups of adjacent rows. es: bytes per weight; the loop advances `step` weights per row. */
#ifndef QG_PF_NEAR
#define QG_PF_NEAR 8192
#endif
#define PF_GROUP(es, step)                                                                            \
  do {                                                                                                \
    if (!far) for (int q_ = 0; q_ < 4 * (es) * (step); q_ += 64) PF(nx + 4 * (es) * p + q_);          \
  } while (0)

/* 8 E4M3 codes -> 8 f32 equal to value * 2^-8 (see the header). */
T2 static inline __m256 e4m3x8(const uint8_t *p) {
  /* Sign-extending b to 16 bits and shifting left by 7 puts the sign on bit 15 (a copy of b7 from the
   * extension) and b's 7 magnitude bits on bits 7..13, with b7 again on bit 14: clearing bit 14 gives
   * (b & 0x80) << 8 | (b & 0x7f) << 7 in three operations instead of six. */
  __m128i s = _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)p));
  return _mm256_cvtph_ps(_mm_and_si128(_mm_slli_epi16(s, 7), _mm_set1_epi16((short)0xBFFF)));
}
T2 static inline __m256 bf16x8(const uint16_t *p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
T2 static inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

T2 static void decode_row_avx2(const qctx *g, long j, long k0, long kc, float *dst) {
  if (g->fmt == R1_QW_F32) {
    const float *w = (const float *)g->W + j * g->K + k0;
    /* Prefetch this row's next chunk while the current one is copied and used: the copy and the dot products
     * then overlap the DRAM latency instead of waiting for it chunk by chunk. */
    for (long q = 0; q < kc; q += 16) PF(w + QKC + q);
    memcpy(dst, w, sizeof(float) * (size_t)kc);
    return;
  }
  if (g->fmt == R1_QW_BF16) {
    const uint16_t *w = (const uint16_t *)g->W + j * g->K + k0;
    long p = 0;
    for (; p + 8 <= kc; p += 8) {
      if (!(p & 31)) PF(w + p + QKC); /* this row's next chunk (the tile path decodes row by row) */
      _mm256_storeu_ps(dst + p, bf16x8(w + p));
    }
    for (; p < kc; p++) dst[p] = bf16_f32(w[p]);
    return;
  }
  const uint8_t *w = (const uint8_t *)g->W + j * g->K;
  const float *srow = g->S + (j / BLK) * g->sk;
  for (long p = k0, end = k0 + kc; p < end;) {
    const long bend = min_l(end, (p / BLK + 1) * BLK);
    const float s = srow[p / BLK];
    const __m256 vs = _mm256_set1_ps(s * 256.0f);
    for (; p + 8 <= bend; p += 8) {
      if (!(p & 63)) PF(w + p + QKC);
      _mm256_storeu_ps(dst + p - k0, _mm256_mul_ps(e4m3x8(w + p), vs));
    }
    for (; p < bend; p++) dst[p - k0] = e4m3_tab[w[p]] * s;
  }
}

/* M == 1: rows [j, j + nr) (nr <= 4, same 128-row scale block), y[j + r] = x . W[j + r]. */
T2 static void gemv_group_avx2(const qctx *g, long j, int nr, float *out) {
  const long K = g->K;
  const float *x = g->X;
  float tot[QR] = {0, 0, 0, 0};
  if (nr == QR) {
    __m256 t0 = _mm256_setzero_ps(), t1 = t0, t2 = t0, t3 = t0;
    if (g->fmt == R1_QW_BF16) {
      const uint16_t *w0 = (const uint16_t *)g->W + j * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
      const char *nx = (const char *)(w3 + K); /* next group, prefetched as this one is consumed */
      const int far = 4 * K * (long)sizeof *w0 > QG_PF_NEAR;
      __m256 u0 = t0, u1 = t0, u2 = t0, u3 = t0;
      long p = 0;
      for (; p + 16 <= K; p += 16) {
        PF_GROUP(2, 16);
        const __m256 x0 = _mm256_loadu_ps(x + p), x1 = _mm256_loadu_ps(x + p + 8);
        t0 = _mm256_fmadd_ps(x0, bf16x8(w0 + p), t0); u0 = _mm256_fmadd_ps(x1, bf16x8(w0 + p + 8), u0);
        t1 = _mm256_fmadd_ps(x0, bf16x8(w1 + p), t1); u1 = _mm256_fmadd_ps(x1, bf16x8(w1 + p + 8), u1);
        t2 = _mm256_fmadd_ps(x0, bf16x8(w2 + p), t2); u2 = _mm256_fmadd_ps(x1, bf16x8(w2 + p + 8), u2);
        t3 = _mm256_fmadd_ps(x0, bf16x8(w3 + p), t3); u3 = _mm256_fmadd_ps(x1, bf16x8(w3 + p + 8), u3);
      }
      for (; p + 8 <= K; p += 8) {
        const __m256 x0 = _mm256_loadu_ps(x + p);
        t0 = _mm256_fmadd_ps(x0, bf16x8(w0 + p), t0); t1 = _mm256_fmadd_ps(x0, bf16x8(w1 + p), t1);
        t2 = _mm256_fmadd_ps(x0, bf16x8(w2 + p), t2); t3 = _mm256_fmadd_ps(x0, bf16x8(w3 + p), t3);
      }
      for (; p < K; p++) {
        tot[0] += x[p] * bf16_f32(w0[p]); tot[1] += x[p] * bf16_f32(w1[p]);
        tot[2] += x[p] * bf16_f32(w2[p]); tot[3] += x[p] * bf16_f32(w3[p]);
      }
      t0 = _mm256_add_ps(t0, u0); t1 = _mm256_add_ps(t1, u1); t2 = _mm256_add_ps(t2, u2); t3 = _mm256_add_ps(t3, u3);
    } else {
      const uint8_t *w0 = (const uint8_t *)g->W + j * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
      const char *nx = (const char *)(w3 + K);
      const int far = 4 * K * (long)sizeof *w0 > QG_PF_NEAR;
      const float *srow = g->S + (j / BLK) * g->sk;
      for (long kb = 0; kb < K; kb += BLK) {
        const long ke = min_l(K, kb + BLK);
        const float s = srow[kb / BLK];
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        long p = kb;
        for (; p + 16 <= ke; p += 16) {
          PF_GROUP(1, 16);
          const __m256 x0 = _mm256_loadu_ps(x + p), x1 = _mm256_loadu_ps(x + p + 8);
          a0 = _mm256_fmadd_ps(x0, e4m3x8(w0 + p), a0); b0 = _mm256_fmadd_ps(x1, e4m3x8(w0 + p + 8), b0);
          a1 = _mm256_fmadd_ps(x0, e4m3x8(w1 + p), a1); b1 = _mm256_fmadd_ps(x1, e4m3x8(w1 + p + 8), b1);
          a2 = _mm256_fmadd_ps(x0, e4m3x8(w2 + p), a2); b2 = _mm256_fmadd_ps(x1, e4m3x8(w2 + p + 8), b2);
          a3 = _mm256_fmadd_ps(x0, e4m3x8(w3 + p), a3); b3 = _mm256_fmadd_ps(x1, e4m3x8(w3 + p + 8), b3);
        }
        for (; p + 8 <= ke; p += 8) {
          const __m256 x0 = _mm256_loadu_ps(x + p);
          a0 = _mm256_fmadd_ps(x0, e4m3x8(w0 + p), a0); a1 = _mm256_fmadd_ps(x0, e4m3x8(w1 + p), a1);
          a2 = _mm256_fmadd_ps(x0, e4m3x8(w2 + p), a2); a3 = _mm256_fmadd_ps(x0, e4m3x8(w3 + p), a3);
        }
        for (; p < ke; p++) {
          tot[0] += x[p] * (e4m3_tab[w0[p]] * s); tot[1] += x[p] * (e4m3_tab[w1[p]] * s);
          tot[2] += x[p] * (e4m3_tab[w2[p]] * s); tot[3] += x[p] * (e4m3_tab[w3[p]] * s);
        }
        const __m256 vs = _mm256_set1_ps(s * 256.0f);
        t0 = _mm256_fmadd_ps(_mm256_add_ps(a0, b0), vs, t0); t1 = _mm256_fmadd_ps(_mm256_add_ps(a1, b1), vs, t1);
        t2 = _mm256_fmadd_ps(_mm256_add_ps(a2, b2), vs, t2); t3 = _mm256_fmadd_ps(_mm256_add_ps(a3, b3), vs, t3);
      }
    }
    out[0] = tot[0] + hsum8(t0); out[1] = tot[1] + hsum8(t1); out[2] = tot[2] + hsum8(t2); out[3] = tot[3] + hsum8(t3);
    return;
  }
  /* Fewer than 4 rows (the end of N): one row at a time through a small decoded chunk. */
  float buf[BLK] __attribute__((aligned(32)));
  for (int r = 0; r < nr; r++) {
    __m256 a = _mm256_setzero_ps();
    float t = 0.0f;
    for (long kb = 0; kb < K; kb += BLK) {
      const long kc = min_l(BLK, K - kb);
      decode_row_avx2(g, j + r, kb, kc, buf);
      long p = 0;
      for (; p + 8 <= kc; p += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(x + kb + p), _mm256_load_ps(buf + p), a);
      for (; p < kc; p++) t += x[kb + p] * buf[p];
    }
    out[r] = t + hsum8(a);
  }
}

/* M >= 2: dot products of the M rows of X[:, k0 : k0 + kc) with a decoded 4 x kc tile (row stride QKC).
 * acc holds M x 4 vector accumulators in memory (L1), tail the scalar remainder when kc % 8 != 0. */
T2 static void tile_dots_avx2(const float *X, long ldx, long M, long k0, long kc, const float *tile,
                              __m256 *acc, float *tail) {
  const long kc8 = kc & ~7L;
  long i = 0;
  /* Rows of X in pairs: each tile load serves two FMAs (0.75 loads per FMA instead of 1.25), 8 independent
   * accumulator chains. */
  for (; i + 2 <= M; i += 2) {
    const float *x = X + i * ldx + k0, *y = x + ldx;
    __m256 a0 = acc[i * QR], a1 = acc[i * QR + 1], a2 = acc[i * QR + 2], a3 = acc[i * QR + 3];
    __m256 c0 = acc[(i + 1) * QR], c1 = acc[(i + 1) * QR + 1], c2 = acc[(i + 1) * QR + 2], c3 = acc[(i + 1) * QR + 3];
    for (long p = 0; p < kc8; p += 8) {
      const __m256 x0 = _mm256_loadu_ps(x + p), y0 = _mm256_loadu_ps(y + p);
      __m256 t = _mm256_load_ps(tile + p);
      a0 = _mm256_fmadd_ps(x0, t, a0); c0 = _mm256_fmadd_ps(y0, t, c0);
      t = _mm256_load_ps(tile + QKC + p);
      a1 = _mm256_fmadd_ps(x0, t, a1); c1 = _mm256_fmadd_ps(y0, t, c1);
      t = _mm256_load_ps(tile + 2 * QKC + p);
      a2 = _mm256_fmadd_ps(x0, t, a2); c2 = _mm256_fmadd_ps(y0, t, c2);
      t = _mm256_load_ps(tile + 3 * QKC + p);
      a3 = _mm256_fmadd_ps(x0, t, a3); c3 = _mm256_fmadd_ps(y0, t, c3);
    }
    acc[i * QR] = a0; acc[i * QR + 1] = a1; acc[i * QR + 2] = a2; acc[i * QR + 3] = a3;
    acc[(i + 1) * QR] = c0; acc[(i + 1) * QR + 1] = c1; acc[(i + 1) * QR + 2] = c2; acc[(i + 1) * QR + 3] = c3;
    for (long p = kc8; p < kc; p++)
      for (int r = 0; r < QR; r++) {
        tail[i * QR + r] += x[p] * tile[r * QKC + p];
        tail[(i + 1) * QR + r] += y[p] * tile[r * QKC + p];
      }
  }
  for (; i < M; i++) {
    const float *x = X + i * ldx + k0;
    __m256 a0 = acc[i * QR], a1 = acc[i * QR + 1], a2 = acc[i * QR + 2], a3 = acc[i * QR + 3];
    __m256 b0 = _mm256_setzero_ps(), b1 = b0, b2 = b0, b3 = b0;
    long p = 0;
    for (; p + 16 <= kc8; p += 16) {
      const __m256 x0 = _mm256_loadu_ps(x + p), x1 = _mm256_loadu_ps(x + p + 8);
      a0 = _mm256_fmadd_ps(x0, _mm256_load_ps(tile + p), a0);           b0 = _mm256_fmadd_ps(x1, _mm256_load_ps(tile + p + 8), b0);
      a1 = _mm256_fmadd_ps(x0, _mm256_load_ps(tile + QKC + p), a1);     b1 = _mm256_fmadd_ps(x1, _mm256_load_ps(tile + QKC + p + 8), b1);
      a2 = _mm256_fmadd_ps(x0, _mm256_load_ps(tile + 2 * QKC + p), a2); b2 = _mm256_fmadd_ps(x1, _mm256_load_ps(tile + 2 * QKC + p + 8), b2);
      a3 = _mm256_fmadd_ps(x0, _mm256_load_ps(tile + 3 * QKC + p), a3); b3 = _mm256_fmadd_ps(x1, _mm256_load_ps(tile + 3 * QKC + p + 8), b3);
    }
    for (; p < kc8; p += 8) {
      const __m256 x0 = _mm256_loadu_ps(x + p);
      a0 = _mm256_fmadd_ps(x0, _mm256_load_ps(tile + p), a0);
      a1 = _mm256_fmadd_ps(x0, _mm256_load_ps(tile + QKC + p), a1);
      a2 = _mm256_fmadd_ps(x0, _mm256_load_ps(tile + 2 * QKC + p), a2);
      a3 = _mm256_fmadd_ps(x0, _mm256_load_ps(tile + 3 * QKC + p), a3);
    }
    acc[i * QR] = _mm256_add_ps(a0, b0); acc[i * QR + 1] = _mm256_add_ps(a1, b1);
    acc[i * QR + 2] = _mm256_add_ps(a2, b2); acc[i * QR + 3] = _mm256_add_ps(a3, b3);
    for (; p < kc; p++)
      for (int r = 0; r < QR; r++) tail[i * QR + r] += x[p] * tile[r * QKC + p];
  }
}

T2 static void small_range_avx2(const qctx *g, long g0, long g1) {
  const long M = g->M, N = g->N, K = g->K;
  if (M == 1) {
    for (long gi = g0; gi < g1; gi++) {
      const long j = gi * QR;
      const int nr = (int)min_l(QR, N - j);
      float out[QR];
      gemv_group_avx2(g, j, nr, out);
      for (int r = 0; r < nr; r++) g->Y[j + r] = out[r] + (g->bias ? g->bias[j + r] : 0.0f);
    }
    return;
  }
  float tile[QR * QKC] __attribute__((aligned(32)));
  __m256 acc[QG_SMALL_M * QR];
  float tail[QG_SMALL_M * QR];
  for (long gi = g0; gi < g1; gi++) {
    const long j = gi * QR;
    const int nr = (int)min_l(QR, N - j);
    for (long i = 0; i < M * QR; i++) { acc[i] = _mm256_setzero_ps(); tail[i] = 0.0f; }
    for (long k0 = 0; k0 < K; k0 += QKC) {
      const long kc = min_l(QKC, K - k0);
      for (int r = 0; r < QR; r++) {
        if (r < nr) decode_row_avx2(g, j + r, k0, kc, tile + r * QKC);
        else memset(tile + r * QKC, 0, sizeof(float) * (size_t)kc);
      }
      tile_dots_avx2(g->X, K, M, k0, kc, tile, acc, tail);
    }
    for (long i = 0; i < M; i++)
      for (int r = 0; r < nr; r++)
        g->Y[i * N + j + r] = tail[i * QR + r] + hsum8(acc[i * QR + r]) + (g->bias ? g->bias[j + r] : 0.0f);
  }
}

/* ---------------- AVX-512 (F + BW + VL): 16 weights per step ---------------- */
#define T5 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

T5 static inline __m512 e4m3x16(const uint8_t *p) {
  __m256i s = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)p)); /* as e4m3x8 */
  return _mm512_cvtph_ps(_mm256_and_si256(_mm256_slli_epi16(s, 7), _mm256_set1_epi16((short)0xBFFF)));
}
/* 16 E4M3 codes -> f32 equal to value * 2^-120, by moving bits: sign-extend each byte to 32 bits and shift left by
 * 20, which puts the 4 exponent bits on the low end of f32's exponent field (bits 23..26), the 3 mantissa bits on
 * the top of its mantissa (20..22) and the sign on bit 31 (with copies on 27..30, cleared by the mask). Exponent
 * bias 127 instead of 7 gives the 2^-120; E4M3 subnormals (exponent 0) land on f32 subnormals with the same
 * factor. Products with such tiny values would lose bits, so x is pre-scaled by 2^xs_shift (chosen from
 * max |x| * max scale, r1_qgemm), with the block scales folded in too (small_range_avx512), keeping x * w well
 * inside the normal range; one final factor 2^(120 - xs_shift) undoes both powers of two exactly. */
T5 static inline __m512 e4m3x16_raw(const uint8_t *p) {
  __m512i s = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p));
  return _mm512_castsi512_ps(_mm512_and_si512(_mm512_slli_epi32(s, 20), _mm512_set1_epi32((int)0x87F00000u)));
}
T5 static inline __m512 bf16x16(const uint16_t *p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}

/* M == 1, full group of 4 rows (AVX-512); returns 0 for partial groups (AVX2 code handles those). */
T5 static int gemv_group_avx512(const qctx *g, long j, int nr, float *out, const float *xb) {
  if (nr != QR) return 0;
  const long K = g->K;
  const float *x = g->X;
  float tot[QR] = {0, 0, 0, 0};
  __m512 t0 = _mm512_setzero_ps(), t1 = t0, t2 = t0, t3 = t0;
  if (g->fmt == R1_QW_BF16) {
    const uint16_t *w0 = (const uint16_t *)g->W + j * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
      const char *nx = (const char *)(w3 + K); /* next group, prefetched as this one is consumed */
      const int far = 4 * K * (long)sizeof *w0 > QG_PF_NEAR;
    __m512 u0 = t0, u1 = t0, u2 = t0, u3 = t0;
    long p = 0;
    for (; p + 32 <= K; p += 32) {
      PF_GROUP(2, 32);
      const __m512 x0 = _mm512_loadu_ps(x + p), x1 = _mm512_loadu_ps(x + p + 16);
      t0 = _mm512_fmadd_ps(x0, bf16x16(w0 + p), t0); u0 = _mm512_fmadd_ps(x1, bf16x16(w0 + p + 16), u0);
      t1 = _mm512_fmadd_ps(x0, bf16x16(w1 + p), t1); u1 = _mm512_fmadd_ps(x1, bf16x16(w1 + p + 16), u1);
      t2 = _mm512_fmadd_ps(x0, bf16x16(w2 + p), t2); u2 = _mm512_fmadd_ps(x1, bf16x16(w2 + p + 16), u2);
      t3 = _mm512_fmadd_ps(x0, bf16x16(w3 + p), t3); u3 = _mm512_fmadd_ps(x1, bf16x16(w3 + p + 16), u3);
    }
    for (; p + 16 <= K; p += 16) {
      const __m512 x0 = _mm512_loadu_ps(x + p);
      t0 = _mm512_fmadd_ps(x0, bf16x16(w0 + p), t0); t1 = _mm512_fmadd_ps(x0, bf16x16(w1 + p), t1);
      t2 = _mm512_fmadd_ps(x0, bf16x16(w2 + p), t2); t3 = _mm512_fmadd_ps(x0, bf16x16(w3 + p), t3);
    }
    for (; p < K; p++) {
      tot[0] += x[p] * bf16_f32(w0[p]); tot[1] += x[p] * bf16_f32(w1[p]);
      tot[2] += x[p] * bf16_f32(w2[p]); tot[3] += x[p] * bf16_f32(w3[p]);
    }
    t0 = _mm512_add_ps(t0, u0); t1 = _mm512_add_ps(t1, u1); t2 = _mm512_add_ps(t2, u2); t3 = _mm512_add_ps(t3, u3);
  } else {
    const uint8_t *w0 = (const uint8_t *)g->W + j * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
      const char *nx = (const char *)(w3 + K);
      const int far = 4 * K * (long)sizeof *w0 > QG_PF_NEAR;
    const float *srow = g->S + (j / BLK) * g->sk;
    /* Two decodes: with xb (see below) the weights are bit-moved straight into f32 (3 integer operations, no
     * vcvtph2ps); without it, the fp16 route with 2^8 * scale folded in per 128-wide block. */
#define QG_FP8_BLOCK(DEC, XV, FOLD)                                                                                  \
    for (long kb = 0; kb < K; kb += BLK) {                                                                          \
      const long ke = min_l(K, kb + BLK);                                                                           \
      const float s = srow[kb / BLK];                                                                               \
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;               \
      long p = kb;                                                                                                  \
      for (; p + 32 <= ke; p += 32) {                                                                               \
        PF_GROUP(1, 32);                                                                                            \
        const __m512 x0 = _mm512_loadu_ps(XV + p), x1 = _mm512_loadu_ps(XV + p + 16);                               \
        a0 = _mm512_fmadd_ps(x0, DEC(w0 + p), a0); b0 = _mm512_fmadd_ps(x1, DEC(w0 + p + 16), b0);                  \
        a1 = _mm512_fmadd_ps(x0, DEC(w1 + p), a1); b1 = _mm512_fmadd_ps(x1, DEC(w1 + p + 16), b1);                  \
        a2 = _mm512_fmadd_ps(x0, DEC(w2 + p), a2); b2 = _mm512_fmadd_ps(x1, DEC(w2 + p + 16), b2);                  \
        a3 = _mm512_fmadd_ps(x0, DEC(w3 + p), a3); b3 = _mm512_fmadd_ps(x1, DEC(w3 + p + 16), b3);                  \
      }                                                                                                             \
      for (; p + 16 <= ke; p += 16) {                                                                               \
        const __m512 x0 = _mm512_loadu_ps(XV + p);                                                                  \
        a0 = _mm512_fmadd_ps(x0, DEC(w0 + p), a0); a1 = _mm512_fmadd_ps(x0, DEC(w1 + p), a1);                       \
        a2 = _mm512_fmadd_ps(x0, DEC(w2 + p), a2); a3 = _mm512_fmadd_ps(x0, DEC(w3 + p), a3);                       \
      }                                                                                                             \
      for (; p < ke; p++) {                                                                                         \
        tot[0] += x[p] * (e4m3_tab[w0[p]] * s); tot[1] += x[p] * (e4m3_tab[w1[p]] * s);                             \
        tot[2] += x[p] * (e4m3_tab[w2[p]] * s); tot[3] += x[p] * (e4m3_tab[w3[p]] * s);                             \
      }                                                                                                             \
      const __m512 vs = _mm512_set1_ps(FOLD);                                                                       \
      t0 = _mm512_fmadd_ps(_mm512_add_ps(a0, b0), vs, t0); t1 = _mm512_fmadd_ps(_mm512_add_ps(a1, b1), vs, t1);     \
      t2 = _mm512_fmadd_ps(_mm512_add_ps(a2, b2), vs, t2); t3 = _mm512_fmadd_ps(_mm512_add_ps(a3, b3), vs, t3);     \
    }
    if (xb) {
      /* Raw decode with the block scales already folded into xb: one pass over the whole row, no per-block
       * epilogue; the common factor 2^(120 - xs_shift) is applied once at the end. */
      const float pw = ldexpf(1.0f, 120 - g->xs_shift); /* 2^e, |e| <= 60 (r1_qgemm): exact */
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
      long p = 0;
      for (; p + 32 <= K; p += 32) {
        PF_GROUP(1, 32);
        const __m512 x0 = _mm512_loadu_ps(xb + p), x1 = _mm512_loadu_ps(xb + p + 16);
        a0 = _mm512_fmadd_ps(x0, e4m3x16_raw(w0 + p), a0); b0 = _mm512_fmadd_ps(x1, e4m3x16_raw(w0 + p + 16), b0);
        a1 = _mm512_fmadd_ps(x0, e4m3x16_raw(w1 + p), a1); b1 = _mm512_fmadd_ps(x1, e4m3x16_raw(w1 + p + 16), b1);
        a2 = _mm512_fmadd_ps(x0, e4m3x16_raw(w2 + p), a2); b2 = _mm512_fmadd_ps(x1, e4m3x16_raw(w2 + p + 16), b2);
        a3 = _mm512_fmadd_ps(x0, e4m3x16_raw(w3 + p), a3); b3 = _mm512_fmadd_ps(x1, e4m3x16_raw(w3 + p + 16), b3);
      }
      for (; p + 16 <= K; p += 16) {
        const __m512 x0 = _mm512_loadu_ps(xb + p);
        a0 = _mm512_fmadd_ps(x0, e4m3x16_raw(w0 + p), a0); a1 = _mm512_fmadd_ps(x0, e4m3x16_raw(w1 + p), a1);
        a2 = _mm512_fmadd_ps(x0, e4m3x16_raw(w2 + p), a2); a3 = _mm512_fmadd_ps(x0, e4m3x16_raw(w3 + p), a3);
      }
      for (; p < K; p++) {
        const float s = srow[p / BLK];
        tot[0] += x[p] * (e4m3_tab[w0[p]] * s); tot[1] += x[p] * (e4m3_tab[w1[p]] * s);
        tot[2] += x[p] * (e4m3_tab[w2[p]] * s); tot[3] += x[p] * (e4m3_tab[w3[p]] * s);
      }
      const __m512 vs = _mm512_set1_ps(pw);
      t0 = _mm512_mul_ps(_mm512_add_ps(a0, b0), vs); t1 = _mm512_mul_ps(_mm512_add_ps(a1, b1), vs);
      t2 = _mm512_mul_ps(_mm512_add_ps(a2, b2), vs); t3 = _mm512_mul_ps(_mm512_add_ps(a3, b3), vs);
    } else {
      QG_FP8_BLOCK(e4m3x16, x, s * 256.0f)
    }
#undef QG_FP8_BLOCK
  }
  out[0] = tot[0] + _mm512_reduce_add_ps(t0); out[1] = tot[1] + _mm512_reduce_add_ps(t1);
  out[2] = tot[2] + _mm512_reduce_add_ps(t2); out[3] = tot[3] + _mm512_reduce_add_ps(t3);
  return 1;
}

/* Per-thread copy of x for the raw fp8 GEMV: xb[p] = x[p] * 2^xs_shift * scale_inv[row block, p / 128]. Rebuilt
 * when a thread's groups enter another 128-row block (N / 128 times over the whole call, ~1/128 of the work). */
static _Thread_local float *xb_buf;
static _Thread_local size_t xb_cap;

T5 static void small_range_avx512(const qctx *g, long g0, long g1) {
  if (g->M != 1) { small_range_avx2(g, g0, g1); return; }
  const float *xb = NULL;
  long cur_rb = -1;
  if (g->Xs && xb_cap < (size_t)g->K) {
    free(xb_buf);
    xb_buf = aligned_alloc(64, ((size_t)g->K * sizeof(float) + 63) / 64 * 64);
    xb_cap = xb_buf ? (size_t)g->K : 0;
  }
  for (long gi = g0; gi < g1; gi++) {
    const long j = gi * QR;
    const int nr = (int)min_l(QR, g->N - j);
    if (g->Xs && xb_buf && j / BLK != cur_rb) {
      cur_rb = j / BLK;
      const float *srow = g->S + cur_rb * g->sk;
      const double f = ldexp(1.0, g->xs_shift);
      for (long kb = 0; kb < g->K; kb += BLK) {
        /* x * scale is exact in double (24 x 24 significant bits), so xb rounds once, to f32. */
        const __m512d vs = _mm512_set1_pd((double)srow[kb / BLK] * f);
        const long ke = min_l(g->K, kb + BLK);
        long p = kb;
        for (; p + 8 <= ke; p += 8)
          _mm256_storeu_ps(xb_buf + p, _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtps_pd(_mm256_loadu_ps(g->X + p)), vs)));
        for (; p < ke; p++) xb_buf[p] = (float)((double)g->X[p] * ((double)srow[kb / BLK] * f));
      }
      xb = xb_buf;
    }
    float out[QR];
    if (!gemv_group_avx512(g, j, nr, out, xb)) gemv_group_avx2(g, j, nr, out);
    for (int r = 0; r < nr; r++) g->Y[j + r] = out[r] + (g->bias ? g->bias[j + r] : 0.0f);
  }
}
#endif /* R1_X86 */

/* ---------------- portable path ---------------- */
static void small_range_scalar(const qctx *g, long g0, long g1) {
  const long M = g->M, N = g->N, K = g->K;
  float tile[QR * QKC];
  float acc[QG_SMALL_M * QR];
  for (long gi = g0; gi < g1; gi++) {
    const long j = gi * QR;
    const int nr = (int)min_l(QR, N - j);
    for (long i = 0; i < M * QR; i++) acc[i] = 0.0f;
    for (long k0 = 0; k0 < K; k0 += QKC) {
      const long kc = min_l(QKC, K - k0);
      for (int r = 0; r < nr; r++) decode_row_scalar(g, j + r, k0, kc, tile + r * QKC);
      for (long i = 0; i < M; i++) {
        const float *x = g->X + i * K + k0;
        for (int r = 0; r < nr; r++) {
          const float *t = tile + r * QKC;
          float s = 0.0f;
          for (long p = 0; p < kc; p++) s += x[p] * t[p];
          acc[i * QR + r] += s;
        }
      }
    }
    for (long i = 0; i < M; i++)
      for (int r = 0; r < nr; r++) g->Y[i * N + j + r] = acc[i * QR + r] + (g->bias ? g->bias[j + r] : 0.0f);
  }
}

static void small_chunk(void *vctx, long g0, long g1, int tid) {
  (void)tid;
  const qctx *g = vctx;
  if (g->qsmall) {
    const r1_qsmall a = {.fmt = g->fmt, .M = g->M, .N = g->N, .K = g->K, .sk = g->sk, .X = g->X, .Xb = g->Xb,
                         .W = g->W, .S = g->S, .bias = g->bias, .Y = g->Y};
    r1_qsmall_rows(&a, g0, g1);
    return;
  }
#ifdef R1_X86
  if (g->isa >= R1_ISA_AVX512) { small_range_avx512(g, g0, g1); return; }
  if (g->isa >= R1_ISA_AVX2) { small_range_avx2(g, g0, g1); return; }
#endif
  small_range_scalar(g, g0, g1);
}

/* ---------------- dequantization (prefill panels, and qdequant) ---------------- */
typedef struct { const qctx *g; long r0; float *dst; } dq_ctx;
static void dq_chunk(void *vctx, long a, long b, int tid) {
  (void)tid;
  const dq_ctx *d = vctx;
  const long K = d->g->K;
  for (long r = a; r < b; r++) {
    float *dst = d->dst + r * K;
#ifdef R1_X86
    if (d->g->isa >= R1_ISA_AVX2) { decode_row_avx2(d->g, d->r0 + r, 0, K, dst); continue; }
#endif
    decode_row_scalar(d->g, d->r0 + r, 0, K, dst);
  }
}
static void dequant_rows(const qctx *g, long r0, long r1, float *dst) {
  dq_ctx d = {g, r0, dst};
  const long rows = r1 - r0;
  if (rows * g->K >= 65536) r1_parallel_for(rows, max_l(1, 16384 / max_l(g->K, 1)), dq_chunk, &d);
  else dq_chunk(&d, 0, rows, 0);
}

static int env_no_raw(void) {
  static int v = -1;
  if (v < 0) v = getenv("R1_QGEMM_NO_RAW") != NULL; /* tuning hook: fp8 GEMV through the fp16 route only */
  return v;
}

static int env_small_m(void) {
  static int v = -1;
  if (v < 0) {
    const char *e = getenv("R1_QGEMM_SMALL_M"); /* tuning hook: largest M for the fused path (1..16) */
    long t = e ? atol(e) : QG_SMALL_M;
    v = (int)(t < 1 ? 1 : t > QG_SMALL_M ? QG_SMALL_M : t);
  }
  return v;
}

static void qctx_init(qctx *g, int fmt, long M, long N, long K, const float *X, const void *W, const float *S,
                      const float *bias, float *Y) {
  pthread_once(&tab_once, tab_init);
  *g = (qctx){.fmt = fmt, .isa = r1_isa(), .M = M, .N = N, .K = K, .sk = cdiv(K, BLK), .X = X, .W = W, .S = S,
              .bias = bias, .Y = Y, .small_m = env_small_m(),
              .raw_ok = !env_no_raw()};
}

static _Thread_local float *panel_buf;
static _Thread_local size_t panel_cap;
/* Packed formats multiply bf16-rounded activations (qsmall.h): xr_buf holds them as f32 (exact), xh_buf as bf16. */
static _Thread_local float *xr_buf;
static _Thread_local uint16_t *xh_buf;
static _Thread_local size_t xr_cap;

static int env_no_qsmall(void) {
  static int v = -1;
  if (v < 0) v = getenv("R1_QGEMM_NO_QSMALL") != NULL; /* tuning hook: the older tile path for M >= 2 */
  return v;
}

static int env_no_gemv_vbmi(void) {
  static int v = -1;
  if (v < 0) v = getenv("R1_QGEMM_NO_GEMV_VBMI") != NULL; /* tuning hook: the fp8 GEMV without the table decode */
  return v;
}
/* x for r1_qsmall_gemv, in its order */
static _Thread_local uint16_t *xp_buf;
static _Thread_local size_t xp_cap;
typedef struct { r1_qsmall a; const uint16_t *xp; } qgemv_ctx;
static void qgemv_chunk(void *vctx, long g0, long g1, int tid) {
  (void)tid;
  const qgemv_ctx *c = vctx;
  r1_qsmall_gemv(&c->a, c->xp, g0, g1);
}

int r1_qgemm(int fmt, long M, long N, long K, const float *X, const void *W, const float *S,
             const float *bias, float *Y) {
  if (M <= 0 || N <= 0) return 1;
  if (fmt == R1_QW_BF16P) return r1_qpanel_gemm(M, N, K, X, (const uint16_t *)W, bias, Y);
  if (fmt == R1_QW_F32P) return r1_qpanel_f32_gemm(M, N, K, X, (const float *)W, bias, Y);
  if (fmt == R1_QW_E4M3P) return r1_qpanel8_gemm(M, N, K, X, (const uint8_t *)W, S, bias, Y);
  if (fmt == R1_QW_F32 && (M < 2 || M > QG_SMALL_M)) {
    /* f32 outside the small-M tile path: the GEMV and the packed GEMM of gemm.c serve it directly. */
    r1_sgemm_big(M, N, K, X, (const float *)W, Y);
    if (bias)
      for (long i = 0; i < M; i++)
        for (long j = 0; j < N; j++) Y[i * N + j] += bias[j];
    return 1;
  }
  if (fmt != R1_QW_F32 && K > 0) {
    /* Round the activations to bf16 once, for every path below (GEMV, small M, prefill panels), so a row's
     * result does not depend on how many rows share the call. */
    const size_t n = (size_t)M * (size_t)K;
    if (xr_cap < n) {
      free(xr_buf);
      free(xh_buf);
      xr_buf = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
      xh_buf = aligned_alloc(64, (n * sizeof(uint16_t) + 63) / 64 * 64);
      xr_cap = xr_buf && xh_buf ? n : 0;
    }
    if (!xr_cap) return 0; /* out of memory: the caller reports it (Y untouched) */
    r1_round_bf16(X, xh_buf, (long)n);
    for (size_t i = 0; i < n; i++) xr_buf[i] = bf16_f32(xh_buf[i]);
    X = xr_buf;
  }
  qctx g;
  qctx_init(&g, fmt, M, N, K, X, W, S, bias, Y);
  g.Xb = fmt != R1_QW_F32 ? xh_buf : NULL;
  g.qsmall = M >= 2 && r1_qsmall_ok(fmt) && !env_no_qsmall();
  if (K <= 0) {
    for (long i = 0; i < M; i++)
      for (long j = 0; j < N; j++) Y[i * N + j] = bias ? bias[j] : 0.0f;
    return 1;
  }
  /* fp8 GEMV on AVX512_BF16 + VBMI: weights decoded to bf16 in registers (qsmall.c r1_qsmall_gemv), x stored once
   * in the kernel's order. */
  if (M == 1 && r1_qsmall_gemv_ok(fmt) && !env_no_gemv_vbmi()) {
    const long xl = r1_qsmall_gemv_xlen(K);
    if (xp_cap < (size_t)xl) {
      free(xp_buf);
      xp_buf = aligned_alloc(64, ((size_t)xl * sizeof(uint16_t) + 63) / 64 * 64);
      xp_cap = xp_buf ? (size_t)xl : 0;
    }
    if (xp_cap) {
      r1_qsmall_gemv_x(xh_buf, K, xp_buf);
      qgemv_ctx c = {{.fmt = fmt, .M = 1, .N = N, .K = K, .sk = g.sk, .W = W, .S = S, .bias = bias, .Y = Y}, xp_buf};
      const long groups = cdiv(N, QR);
      if (N * K >= 65536) r1_parallel_for(groups, max_l(1, 32768 / (QR * K)), qgemv_chunk, &c);
      else qgemv_chunk(&c, 0, groups, 0);
      return 1;
    }
  }
#ifdef R1_X86
  /* fp8 GEMV on AVX-512: the bit-moving decode needs x pre-scaled (see e4m3x16_raw), and the block scales are
   * folded into per-row-block copies of x (small_range_avx512). 2^xs_shift brings max |x| * max scale to just under
   * 2^120, so |x * scale * w_raw| < 2^120 * 448 * 2^-120 < 2^9 (no overflow) while small terms stay far above
   * f32's subnormal range. */
  if (M == 1 && fmt == R1_QW_E4M3 && g.isa >= R1_ISA_AVX512 && N >= QR && g.raw_ok) {
    float amax = 0.0f, smax = 0.0f;
    for (long p = 0; p < K; p++) { const float a = fabsf(X[p]); amax = a > amax ? a : amax; }
    for (long i = 0, ns = cdiv(N, BLK) * g.sk; i < ns; i++) { const float a = fabsf(S[i]); smax = a > smax ? a : smax; }
    const double big = (double)amax * (double)smax;
    if (big > 0.0 && isfinite(big)) {
      int e;
      frexp(big, &e); /* big < 2^e */
      /* |e| <= 60 keeps the final factor 2^e exact; otherwise the fp16 route. */
      if (e >= -60 && e <= 60) {
        g.xs_shift = 120 - e;
        g.Xs = X;
      }
    }
  }
#endif
  /* Packed formats with bf16 dot products (qsmall.c): every M, prefill included — at 64-256 rows the vdpbf16ps
   * kernel runs at 1.7-2x the f32 GEMM on dequantized panels (measured per thread on AVX512_BF16: 166-193 vs
   * ~97 GFLOP/s for bf16). f32 weights keep the packed GEMM above 16 rows (it wins from ~128 rows). */
  if (M <= g.small_m || (g.qsmall && fmt != R1_QW_F32)) {
    const long groups = cdiv(N, QR);
    /* Many rows (a batched prefill): slabs of QG_SLAB rows, each over all of W, so a slab of X (bf16, <= 2.5 MB
     * at K = 4864) stays in cache while W streams past it, instead of every W group streaming all of X. */
    const long slab = g.qsmall ? QG_SLAB : M;
    for (long i0 = 0; i0 < M; i0 += slab) {
      qctx s = g;
      s.M = min_l(slab, M - i0);
      s.X = g.X + i0 * K;
      s.Xb = g.Xb ? g.Xb + i0 * K : NULL;
      s.Y = g.Y + i0 * N;
      /* ~32K multiply-adds per chunk at least: below that a thread wake-up costs more than it saves. */
      const long grain = max_l(1, 32768 / (QR * K * s.M));
      if (N * K * s.M >= 65536) r1_parallel_for(groups, grain, small_chunk, &s);
      else small_chunk(&s, 0, groups, 0);
    }
    return 1;
  }
  /* Prefill: panels of W rows dequantized to f32 (~8 MiB, a multiple of 16 rows), then the f32 GEMM. */
  long rows = max_l(16, ((2L << 20) / K) / 16 * 16);
  rows = min_l(rows, N);
  const size_t need_f = (size_t)rows * (size_t)K;
  if (panel_cap < need_f) {
    free(panel_buf);
    panel_buf = aligned_alloc(64, (need_f * sizeof(float) + 63) / 64 * 64);
    panel_cap = panel_buf ? need_f : 0;
  }
  if (!panel_buf) { /* out of memory: the fused path is correct for any M, only slower */
    for (long i0 = 0; i0 < M; i0 += QG_SMALL_M) {
      qctx s;
      const long m = min_l(QG_SMALL_M, M - i0);
      qctx_init(&s, fmt, m, N, K, X + i0 * K, W, S, bias, Y + i0 * N);
      s.small_m = QG_SMALL_M;
      r1_parallel_for(cdiv(N, QR), 1, small_chunk, &s);
    }
    return 1;
  }
  for (long n0 = 0; n0 < N; n0 += rows) {
    const long nb = min_l(rows, N - n0);
    dequant_rows(&g, n0, n0 + nb, panel_buf);
    r1_sgemm(0, 1, M, nb, K, 1.0f, X, K, panel_buf, K, 0.0f, Y + n0, N);
  }
  if (bias)
    for (long i = 0; i < M; i++)
      for (long j = 0; j < N; j++) Y[i * N + j] += bias[j];
  return 1;
}

void r1_qdequant(int fmt, long N, long K, const void *W, const float *S, long r0, long r1, float *dst) {
  if (r1 <= r0 || K <= 0) return;
  if (fmt == R1_QW_BF16P) {
    r1_qpanel_dequant(N, K, (const uint16_t *)W, r0, r1, dst);
    return;
  }
  if (fmt == R1_QW_F32P) {
    r1_qpanel_f32_dequant(N, K, (const float *)W, r0, r1, dst);
    return;
  }
  if (fmt == R1_QW_E4M3P) {
    r1_qpanel8_dequant(N, K, (const uint8_t *)W, S, r0, r1, dst);
    return;
  }
  qctx g;
  qctx_init(&g, fmt, 0, N, K, NULL, W, S, NULL, NULL);
  dequant_rows(&g, r0, r1, dst);
}

/* ---------------- N-API ---------------- */
#define QBEGIN(NAME, N) \
  call_t C_ = {env, NAME}; call_t *C = &C_; napi_value argv[N]; size_t argc = (N); \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL; \
  if (argc < (size_t)(N)) { fail(C, 0, "expected %d arguments, got %zu", (N), argc); return NULL; }

static int is_nullish(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) == napi_ok && (t == napi_null || t == napi_undefined);
}

/* Weights and scales: a Uint16Array means bf16, a Uint8Array E4M3 codes (scaleInv then required, with
 * ceil(N/128) * ceil(K/128) entries), a Float32Array f32 (panels only); layout 1 = 16-row panels (qpanel.h),
 * 0 = row-major [N, K].
 * Returns the format, or -1 after throwing. */
static int weights_in(call_t *C, napi_value wv, napi_value sv, long layout, long N, long K, arr_t *w, arr_t *s);
static int arg_weights(call_t *C, napi_value wv, napi_value sv, napi_value lv, long N, long K, arr_t *w, arr_t *s) {
  long layout = 0;
  if (!arg_long(C, lv, &layout, "layout", 0, 1)) return -1;
  return weights_in(C, wv, sv, layout, N, K, w, s);
}
static int weights_in(call_t *C, napi_value wv, napi_value sv, long layout, long N, long K, arr_t *w, arr_t *s) {
  if (!arg_arr(C, wv, w, "w")) return -1;
  long nk;
  if (!mul2(C, N, K, &nk)) return -1;
  int fmt;
  if (w->type == napi_uint16_array) fmt = layout ? R1_QW_BF16P : R1_QW_BF16;
  else if (w->type == napi_uint8_array) fmt = layout ? R1_QW_E4M3P : R1_QW_E4M3;
  else if (w->type == napi_float32_array && layout) fmt = R1_QW_F32P;
  else return fail(C, 0, layout ? "panel layout (1) needs bf16 weights in a Uint16Array, E4M3 codes in a Uint8Array or f32 weights in a Float32Array" : "w must be a Uint16Array (bf16) or Uint8Array (E4M3 codes); f32 weights come in panels (layout 1) only"), -1;
  if (fmt == R1_QW_BF16P || fmt == R1_QW_F32P || fmt == R1_QW_E4M3P) {
    /* rows padded to 16; K as it is (f32), to even (bf16), to a multiple of 4 (E4M3) */
    const long kp = fmt == R1_QW_F32P ? K : fmt == R1_QW_BF16P ? K + (K & 1) : cdiv(K, 4) * 4;
    if (!mul2(C, cdiv(N, R1_QP_ROWS) * R1_QP_ROWS, kp, &nk)) return -1;
    if (w->len != nk)
      return fail(C, 2, "w has %ld values; [%ld, %ld] in 16-row panels needs %ld", w->len, N, K, nk), -1;
  }
  if (!need(C, w, 0, nk, "w")) return -1;
  s->data = NULL;
  s->len = 0;
  if (fmt == R1_QW_E4M3 || fmt == R1_QW_E4M3P) {
    if (is_nullish(C->env, sv)) return fail(C, 0, "scaleInv is required for E4M3 weights"), -1;
    if (!arg_typed(C, sv, s, "scaleInv", napi_float32_array)) return -1;
    long ns;
    if (!mul2(C, cdiv(N, BLK), cdiv(K, BLK), &ns)) return -1;
    if (s->len != ns)
      return fail(C, 1, "scaleInv has %ld entries; [%ld, %ld] in 128x128 blocks needs [%ld, %ld] = %ld", s->len, N, K,
                  cdiv(N, BLK), cdiv(K, BLK), ns), -1;
  }
  return fmt;
}

/* qgemm(y: Float32Array, x: Float32Array, w: Uint16Array | Uint8Array, scaleInv: Float32Array | null,
 *       bias: Float32Array | null, M, N, K, layout): y[M,N] = x[M,K] . W[N,K]^T (+ bias[N]) */
napi_value r1_napi_qgemm(napi_env env, napi_callback_info info) {
  QBEGIN("qgemm", 9);
  arr_t y, x, w, s, b = {0};
  long M = 0, N = 0, K = 0;
  if (!arg_typed(C, argv[0], &y, "y", napi_float32_array) || !arg_typed(C, argv[1], &x, "x", napi_float32_array) ||
      !arg_long(C, argv[5], &M, "M", 0, MAX_SIZE) || !arg_long(C, argv[6], &N, "N", 0, MAX_SIZE) ||
      !arg_long(C, argv[7], &K, "K", 0, MAX_SIZE))
    return NULL;
  const int fmt = arg_weights(C, argv[2], argv[3], argv[8], N, K, &w, &s);
  if (fmt < 0) return NULL;
  const int has_bias = !is_nullish(env, argv[4]);
  if (has_bias && !arg_typed(C, argv[4], &b, "bias", napi_float32_array)) return NULL;
  long mn, mk;
  if (!mul2(C, M, N, &mn) || !mul2(C, M, K, &mk)) return NULL;
  if (!need(C, &y, 0, mn, "y") || !need(C, &x, 0, mk, "x") || (has_bias && !need(C, &b, 0, N, "bias"))) return NULL;
  if (!r1_qgemm(fmt, M, N, K, x.data, w.data, s.data, has_bias ? b.data : NULL, y.data))
    fail(C, 0, "out of memory for the bf16-rounded activations (%ld x %ld)", M, K);
  return NULL;
}

/* qpanelGlu(y: Float32Array, x: Float32Array, w: Uint16Array | Float32Array | Uint8Array, scaleInv: Float32Array |
 * null, M, N, K): y[M, N] = silu(x[M, K] . Wg^T) * (x . Wu^T) where w is W = [Wg; Wu] ([2N, K]) in the 16-row panel
 * layout (r1_qpanel_glu); returns false (y untouched) where that format's panel kernels do not run here or N is not a
 * multiple of 16 (fp8: 128) */
napi_value r1_napi_qpanel_glu(napi_env env, napi_callback_info info) {
  QBEGIN("qpanelGlu", 7);
  arr_t y, x, w, s;
  long M = 0, N = 0, K = 0, N2, mn, mk;
  if (!arg_typed(C, argv[0], &y, "y", napi_float32_array) || !arg_typed(C, argv[1], &x, "x", napi_float32_array) ||
      !arg_long(C, argv[4], &M, "M", 0, MAX_SIZE) || !arg_long(C, argv[5], &N, "N", 0, MAX_SIZE) ||
      !arg_long(C, argv[6], &K, "K", 0, MAX_SIZE) || !mul2(C, N, 2, &N2))
    return NULL;
  const int fmt = weights_in(C, argv[2], argv[3], 1, N2, K, &w, &s);
  if (fmt < 0) return NULL;
  if (!mul2(C, M, N, &mn) || !mul2(C, M, K, &mk)) return NULL;
  if (!need(C, &y, 0, mn, "y") || !need(C, &x, 0, mk, "x")) return NULL;
  const int r = r1_qpanel_glu(fmt, M, N, K, x.data, w.data, s.data, y.data);
  if (r == 0) {
    fail(C, 0, "out of memory for the bf16-rounded activations (%ld x %ld)", M, K);
    return NULL;
  }
  napi_value out;
  napi_get_boolean(env, r > 0, &out);
  return out;
}

/* qdequant(dst: Float32Array, w, scaleInv | null, N, K, r0, r1, layout): dst[(r1 - r0) x K] = rows [r0, r1) of W in f32 */
napi_value r1_napi_qdequant(napi_env env, napi_callback_info info) {
  QBEGIN("qdequant", 8);
  arr_t d, w, s;
  long N = 0, K = 0, r0 = 0, r1 = 0;
  if (!arg_typed(C, argv[0], &d, "dst", napi_float32_array) || !arg_long(C, argv[3], &N, "N", 0, MAX_SIZE) ||
      !arg_long(C, argv[4], &K, "K", 0, MAX_SIZE))
    return NULL;
  if (!arg_long(C, argv[5], &r0, "r0", 0, N) || !arg_long(C, argv[6], &r1, "r1", r0, N)) return NULL;
  const int fmt = arg_weights(C, argv[1], argv[2], argv[7], N, K, &w, &s);
  if (fmt < 0) return NULL;
  long cnt;
  if (!mul2(C, r1 - r0, K, &cnt) || !need(C, &d, 0, cnt, "dst")) return NULL;
  r1_qdequant(fmt, N, K, w.data, s.data, r0, r1, d.data);
  return NULL;
}

/* qpanelPack(dst: Uint16Array | Float32Array | Uint8Array, w: Float32Array | Uint8Array, N, K): dst = the 16-row
 * panel layout of w [N, K]: f32 values rounded to bf16 (a Uint16Array dst) or kept (a Float32Array dst), or E4M3
 * codes reordered (a Uint8Array dst and w) */
napi_value r1_napi_qpanel_pack(napi_env env, napi_callback_info info) {
  QBEGIN("qpanelPack", 4);
  arr_t d, w;
  long N = 0, K = 0, nk, len;
  if (!arg_arr(C, argv[0], &d, "dst") || !arg_long(C, argv[2], &N, "N", 0, MAX_SIZE) ||
      !arg_long(C, argv[3], &K, "K", 0, MAX_SIZE))
    return NULL;
  const int f32 = d.type == napi_float32_array, e4m3 = d.type == napi_uint8_array;
  if (!f32 && !e4m3 && d.type != napi_uint16_array) {
    fail(C, 0, "dst must be a Uint16Array (bf16 panels), a Float32Array (f32 panels) or a Uint8Array (E4M3 panels)");
    return NULL;
  }
  if (!arg_typed(C, argv[1], &w, "w", e4m3 ? napi_uint8_array : napi_float32_array)) return NULL;
  const long kp = f32 ? K : e4m3 ? cdiv(K, 4) * 4 : K + (K & 1);
  if (!mul2(C, N, K, &nk) || !mul2(C, cdiv(N, R1_QP_ROWS) * R1_QP_ROWS, kp, &len)) return NULL;
  if (!need(C, &w, 0, nk, "w")) return NULL;
  if (d.len != len) {
    fail(C, 0, "dst has %ld values; [%ld, %ld] in 16-row panels needs %ld", d.len, N, K, len);
    return NULL;
  }
  if (f32) r1_qpanel_f32_pack(w.data, N, K, (float *)d.data);
  else if (e4m3) r1_qpanel8_pack((const uint8_t *)w.data, N, K, (uint8_t *)d.data);
  else r1_qpanel_pack(w.data, N, K, (uint16_t *)d.data);
  return NULL;
}

/* qpanelPreferred(format?: 'bf16' | 'f32' | 'fp8'): true when weights of that format (default bf16) should be
 * packed in panels: their panel kernels run here (bf16: AVX512_BF16; f32: AVX-512; fp8: AVX512_BF16 + VBMI) */
napi_value r1_napi_qpanel_preferred(napi_env env, napi_callback_info info) {
  napi_value argv[1], v;
  size_t argc = 1;
  char f[8] = "bf16";
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc >= 1 && !is_nullish(env, argv[0])) {
    size_t n = 0;
    if (napi_get_value_string_utf8(env, argv[0], f, sizeof f, &n) != napi_ok ||
        (strcmp(f, "bf16") != 0 && strcmp(f, "f32") != 0 && strcmp(f, "fp8") != 0)) {
      napi_throw_type_error(env, NULL, "qpanelPreferred: the format must be 'bf16', 'f32' or 'fp8'");
      return NULL;
    }
  }
  const int ok = strcmp(f, "f32") == 0 ? r1_qpanel_f32_preferred() : strcmp(f, "fp8") == 0 ? r1_qpanel8_preferred() : r1_qpanel_preferred();
  napi_get_boolean(env, ok != 0, &v);
  return v;
}
