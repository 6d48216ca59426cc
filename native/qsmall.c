/* Register-blocked small-M products on AVX-512 (API in qsmall.h).
 *
 * Why: a batched decode step multiplies M = 2..16 rows of activations by every weight matrix. At that M the
 * product is compute-bound (16 rows x 2 flop per weight) yet far too small for the packed GEMM (gemm.c), whose
 * panel packing costs as much as the arithmetic. The old small-M path decoded W into an L1 tile and then ran M
 * separate dot products over it with accumulators in memory: ~55-60 GFLOP/s on 2 cores. Here each group of 4 W rows
 * is streamed once (straight from the weights for f32 and bf16) and multiplied against up to 6 X rows at a time with
 * all 4 x 6 accumulators in zmm registers: per k step 4 W loads + 6 X loads feed 24 FMAs (or 24 vdpbf16ps, 2
 * multiply-adds per lane), so the FMA ports, not the loads, set the pace.
 *
 * Formats:
 *   f32   W rows as they are; f32 FMA; the result is the f32 dot product (summed in 16 lanes, then across lanes).
 *   bf16  W rows as they are, X rounded to bf16 (round-to-nearest-even, once per call, by the caller): vdpbf16ps
 *         multiplies bf16 pairs exactly and adds into f32 lanes (AVX512_BF16; the instruction treats bf16
 *         subnormal inputs as zero, which for activations means |x| < 2^-126). Twice the f32 FMA rate.
 *   fp8   each 128-wide stretch of a 4-row group's E4M3 codes is decoded to bf16 (exact: E4M3 has 3 mantissa bits;
 *         decoded as value * 2^-8 through the fp16 route of qgemm.c, which keeps E4M3 subnormals normal in bf16)
 *         into an L1 tile, multiplied with vdpbf16ps as above, and each 128-wide partial sum is folded into the f32
 *         total times 2^8 * scale_inv of its block. The decode is paid once per weight for all M rows.
 * Rounding activations to bf16 for packed weights is what PyTorch's bf16 inference and llama.cpp's F16/BF16 dot
 * products do; qgemm.c applies the same rounding on every path (any M, any ISA), so a sequence gets the same
 * logits alone or in a batch up to f32 summation order.
 */
#define _GNU_SOURCE
#include "qsmall.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "qgemm.h"
#include "e4m3_bf16.h"

#define QR 4  /* W rows per group */
#define MRX 6 /* X rows per register block */
#define BLK R1_QW_BLOCK
#ifndef QS_PF_HINT
#define QS_PF_HINT _MM_HINT_T2 /* into L2: more misses in flight than L1 allows (T0 measured 10-20% slower at M = 16) */
#endif
#ifndef QS_PF_ROWS
#define QS_PF_ROWS 4 /* prefetch distance in W rows (one group ahead) */
#endif

static inline long min_l(long a, long b) { return a < b ? a : b; }

uint8_t r1_e4m3_bf16_tables[256] __attribute__((aligned(64))); /* e4m3_bf16.h */
__attribute__((constructor)) static void e4m3_bf16_tables(void) {
  for (int c = 0; c < 128; c++) {
    const int e = (c >> 3) & 15, m = c & 7;
    const float v = e == 0 ? ldexpf((float)m, -9 - 8) : ldexpf((float)(8 + m), e - 10 - 8); /* value * 2^-8 */
    uint32_t u;
    memcpy(&u, &v, 4);
    r1_e4m3_bf16_tables[c] = (uint8_t)(u >> 16);
    r1_e4m3_bf16_tables[128 + c] = (uint8_t)(u >> 24);
  }
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
/* The loop below, 16 (AVX-512) or 8 (AVX2) values at a time, bit for bit: the rounding is integer arithmetic on the
 * f32 bits, NaNs are selected by compare. Every packed product rounds its activations here (S1 at batch 16: ~4 M
 * values per decode step, on the calling thread before the product's threads start: ~2 ms scalar). */
__attribute__((target("avx512f,avx512bw"))) static long round_bf16_avx512(const float *src, uint16_t *dst, long n) {
  const __m512i absm = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
  const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1), qbit = _mm512_set1_epi32(0x40);
  long i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i u = _mm512_loadu_si512((const void *)(src + i));
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, absm), inf);
    const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, bias), _mm512_and_si512(_mm512_srli_epi32(u, 16), one)), 16);
    const __m512i h = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), qbit));
    _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtepi32_epi16(h));
  }
  return i;
}
__attribute__((target("avx2"))) static long round_bf16_avx2(const float *src, uint16_t *dst, long n) {
  const __m256i absm = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
  const __m256i bias = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1), qbit = _mm256_set1_epi32(0x40);
  long i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i u = _mm256_loadu_si256((const __m256i *)(src + i));
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, absm), inf); /* both operands < 2^31: signed compare */
    const __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, bias), _mm256_and_si256(_mm256_srli_epi32(u, 16), one)), 16);
    const __m256i h = _mm256_blendv_epi8(r, _mm256_or_si256(_mm256_srli_epi32(u, 16), qbit), nan);
    /* 32-bit lanes holding 16-bit values -> 8 uint16 (packus saturates unsigned: the values are < 2^16) */
    const __m128i lo = _mm256_castsi256_si128(h), hi = _mm256_extracti128_si256(h, 1);
    _mm_storeu_si128((__m128i *)(dst + i), _mm_packus_epi32(lo, hi));
  }
  return i;
}
#endif

void r1_round_bf16(const float *src, uint16_t *dst, long n) {
  long i = 0;
#if defined(__x86_64__) || defined(__i386__)
  if (n >= 8) {
    const int isa = r1_isa();
    if (isa >= R1_ISA_AVX512) i = round_bf16_avx512(src, dst, n);
    else if (isa >= R1_ISA_AVX2) i = round_bf16_avx2(src, dst, n);
  }
#endif
  for (; i < n; i++) {
    uint32_t u;
    memcpy(&u, &src[i], 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) dst[i] = (uint16_t)((u >> 16) | 0x40); /* NaN: keep it a (quiet) NaN */
    else dst[i] = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

int r1_qsmall_ok(int fmt) {
  const int isa = r1_isa();
  if (fmt == R1_QW_F32) return isa >= R1_ISA_AVX512;
  return isa >= R1_ISA_AVX512BF16;
}

#define T5 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c")))
#define AI static inline __attribute__((always_inline))

/* The 24 accumulators a<r><i>: W row r (0..3) x X row i (0..5). Blocks with fewer X rows (MR < 6) never touch the
 * others, and MR is a compile-time constant in every instantiation, so they vanish. */
#define ACC_DECL                                                                                                   \
  __m512 a00 = _mm512_setzero_ps(), a10 = a00, a20 = a00, a30 = a00, a01 = a00, a11 = a00, a21 = a00, a31 = a00, \
         a02 = a00, a12 = a00, a22 = a00, a32 = a00, a03 = a00, a13 = a00, a23 = a00, a33 = a00, a04 = a00,        \
         a14 = a00, a24 = a00, a34 = a00, a05 = a00, a15 = a00, a25 = a00, a35 = a00;
#define FOR_X(M) M(0) M(1) M(2) M(3) M(4) M(5)
/* fold 0: tot[r * 6 + i] = a<r><i> (the only K chunk, unit scale: no zeroing of tot, no multiply); 1: = a * vs (the
 * first chunk); 2: += a * vs. */
#define FOLD_ONE(r, i)                                                                                             \
  tot[r * MRX + i] = fold == 0 ? a##r##i                                                                           \
                     : fold == 1 ? _mm512_mul_ps(a##r##i, vs) : _mm512_fmadd_ps(a##r##i, vs, tot[r * MRX + i]);
#define FOLD1(i)                                                                                                   \
  if (MR > i) { FOLD_ONE(0, i) FOLD_ONE(1, i) FOLD_ONE(2, i) FOLD_ONE(3, i) }
#define XPTRS(T, xr)                                                                                               \
  const T *x0 = xr[0], *x1 = xr[MR > 1 ? 1 : 0], *x2 = xr[MR > 2 ? 2 : 0], *x3 = xr[MR > 3 ? 3 : 0],            \
          *x4 = xr[MR > 4 ? 4 : 0], *x5 = xr[MR > 5 ? 5 : 0];                                                      \
  (void)x1; (void)x2; (void)x3; (void)x4; (void)x5;

/* Software prefetch of the next group's W rows (pf, or NULL), one cache line per row per k step, issued while the
 * first X block streams this group: at M = 16 a weight is used 16 times, so the hardware prefetcher alone lets the
 * first pass over each group stall on DRAM (measured: 54 vs 95 GFLOP/s per thread, f32, weights in DRAM vs cache). */
#define PREFETCH_NEXT(p)                                                                                           \
  if (pf) {                                                                                                        \
    const long q_ = (p) / pfdiv;                                                                                   \
    _mm_prefetch((const char *)(pf[0] + q_), QS_PF_HINT); _mm_prefetch((const char *)(pf[1] + q_), QS_PF_HINT);   \
    _mm_prefetch((const char *)(pf[2] + q_), QS_PF_HINT); _mm_prefetch((const char *)(pf[3] + q_), QS_PF_HINT);   \
  }

/* f32: for p in [0, kc): a<r><i> += x_i[p] * w_r[p]; then tot += a * vs. */
#define STEP_F32(i)                                                                                                \
  if (MR > i) {                                                                                                    \
    const __m512 xv = LX(x##i + p);                                                                                \
    a0##i = _mm512_fmadd_ps(xv, w0, a0##i); a1##i = _mm512_fmadd_ps(xv, w1, a1##i);                                \
    a2##i = _mm512_fmadd_ps(xv, w2, a2##i); a3##i = _mm512_fmadd_ps(xv, w3, a3##i);                                \
  }
T5 AI void mk_f32(const int MR, const float *const *xr, const float *const *wr, long kc, __m512 *tot, __m512 vs,
                  int fold, const float *const *pf, int pfdiv) {
  XPTRS(float, xr)
  const float *r0 = wr[0], *r1 = wr[1], *r2 = wr[2], *r3 = wr[3];
  ACC_DECL
  long p = 0;
#define LX(ptr) _mm512_loadu_ps(ptr)
  for (; p + 16 <= kc; p += 16) {
    PREFETCH_NEXT(p);
    const __m512 w0 = _mm512_loadu_ps(r0 + p), w1 = _mm512_loadu_ps(r1 + p), w2 = _mm512_loadu_ps(r2 + p),
                 w3 = _mm512_loadu_ps(r3 + p);
    FOR_X(STEP_F32)
  }
#undef LX
  if (p < kc) {
    const __mmask16 m = (__mmask16)((1u << (kc - p)) - 1u);
#define LX(ptr) _mm512_maskz_loadu_ps(m, ptr)
    const __m512 w0 = LX(r0 + p), w1 = LX(r1 + p), w2 = LX(r2 + p), w3 = LX(r3 + p);
    FOR_X(STEP_F32)
#undef LX
  }
  FOR_X(FOLD1)
}

/* bf16 pairs: 32 values per register, vdpbf16ps adds x[2l] w[2l] + x[2l+1] w[2l+1] into lane l. */
#define STEP_BF(i)                                                                                                 \
  if (MR > i) {                                                                                                    \
    const __m512bh xv = (__m512bh)LX(x##i + p);                                                                    \
    a0##i = _mm512_dpbf16_ps(a0##i, xv, w0); a1##i = _mm512_dpbf16_ps(a1##i, xv, w1);                              \
    a2##i = _mm512_dpbf16_ps(a2##i, xv, w2); a3##i = _mm512_dpbf16_ps(a3##i, xv, w3);                              \
  }
T5 AI void mk_bf16(const int MR, const uint16_t *const *xr, const uint16_t *const *wr, long kc, __m512 *tot,
                   __m512 vs, int fold, const uint16_t *const *pf, int pfdiv) {
  XPTRS(uint16_t, xr)
  const uint16_t *r0 = wr[0], *r1 = wr[1], *r2 = wr[2], *r3 = wr[3];
  ACC_DECL
  long p = 0;
#define LX(ptr) _mm512_loadu_si512((const void *)(ptr))
  for (; p + 32 <= kc; p += 32) {
    PREFETCH_NEXT(p);
    const __m512bh w0 = (__m512bh)LX(r0 + p), w1 = (__m512bh)LX(r1 + p), w2 = (__m512bh)LX(r2 + p),
                   w3 = (__m512bh)LX(r3 + p);
    FOR_X(STEP_BF)
  }
#undef LX
  if (p < kc) {
    const __mmask32 m = (__mmask32)((1ull << (kc - p)) - 1ull);
#define LX(ptr) _mm512_maskz_loadu_epi16(m, (const void *)(ptr))
    const __m512bh w0 = (__m512bh)LX(r0 + p), w1 = (__m512bh)LX(r1 + p), w2 = (__m512bh)LX(r2 + p),
                   w3 = (__m512bh)LX(r3 + p);
    FOR_X(STEP_BF)
#undef LX
  }
  FOR_X(FOLD1)
}

#define MK_SWITCH(FN, mr, ...)                                                                                     \
  switch (mr) {                                                                                                    \
    case 1: FN(1, __VA_ARGS__); break;                                                                             \
    case 2: FN(2, __VA_ARGS__); break;                                                                             \
    case 3: FN(3, __VA_ARGS__); break;                                                                             \
    case 4: FN(4, __VA_ARGS__); break;                                                                             \
    case 5: FN(5, __VA_ARGS__); break;                                                                             \
    default: FN(6, __VA_ARGS__); break;                                                                            \
  }
T5 static void mk_f32_any(int mr, const float *const *xr, const float *const *wr, long kc, __m512 *tot, __m512 vs,
                          int fold, const float *const *pf, int pfdiv) {
  MK_SWITCH(mk_f32, mr, xr, wr, kc, tot, vs, fold, pf, pfdiv)
}
T5 static void mk_bf16_any(int mr, const uint16_t *const *xr, const uint16_t *const *wr, long kc, __m512 *tot,
                           __m512 vs, int fold, const uint16_t *const *pf, int pfdiv) {
  MK_SWITCH(mk_bf16, mr, xr, wr, kc, tot, vs, fold, pf, pfdiv)
}

/* 16 E4M3 codes (masked to n <= 16) -> f32 equal to value * 2^-8 (the fp16 route of qgemm.c's header). */
T5 AI __m512 e4m3x16_h(const uint8_t *p, __mmask16 m) {
  __m256i s = _mm256_cvtepi8_epi16(_mm_maskz_loadu_epi8(m, p));
  return _mm512_cvtph_ps(_mm256_and_si256(_mm256_slli_epi16(s, 7), _mm256_set1_epi16((short)0xBFFF)));
}
/* Decode codes [0, kc) of one row (kc <= 128) into bf16 dst, zero-filled to a multiple of 32; pf: the same stretch
 * of the next group's row, prefetched (or NULL). */
T5 static void decode_bf16_block(const uint8_t *w, long kc, uint16_t *dst, const uint8_t *pf) {
  for (long p = 0; p < kc; p += 32) {
    if (pf && (p & 63) == 0) _mm_prefetch((const char *)(pf + p), QS_PF_HINT);
    const long n = kc - p;
    const __mmask16 m0 = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
    const __mmask16 m1 = n >= 32 ? (__mmask16)0xFFFF : n <= 16 ? 0 : (__mmask16)((1u << (n - 16)) - 1u);
    const __m512 lo = e4m3x16_h(w + p, m0), hi = e4m3x16_h(w + p + 16, m1);
    _mm512_storeu_si512((void *)(dst + p), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
  }
}

/* E4M3 -> bf16 by table (AVX512_VBMI; the tables and helpers in e4m3_bf16.h): ~7 operations per 64 weights
 * instead of ~24. Two more byte permutes (vbmi_idx) interleave the low and high bytes into words in order. */
static uint8_t vbmi_idx[2][64] __attribute__((aligned(64)));
__attribute__((constructor)) static void vbmi_index_tables(void) {
  for (int h = 0; h < 2; h++)
    for (int t = 0; t < 32; t++) {
      vbmi_idx[h][2 * t] = (uint8_t)(32 * h + t);          /* low byte of word 32 h + t: lo[32 h + t] */
      vbmi_idx[h][2 * t + 1] = (uint8_t)(64 + 32 * h + t); /* high byte: hi[32 h + t] */
    }
}
#define T5V __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx512vbmi,avx2,fma,f16c")))
T5V static void decode_bf16_block_vbmi(const uint8_t *w, long kc, uint16_t *dst, const uint8_t *pf) {
  __m512i t[4];
  e4m3_bf16_tabs(t);
  const __m512i i0 = _mm512_load_si512((const void *)vbmi_idx[0]), i1 = _mm512_load_si512((const void *)vbmi_idx[1]);
  for (long p = 0; p < kc; p += 64) {
    if (pf) _mm_prefetch((const char *)(pf + p), QS_PF_HINT);
    const long n = kc - p;
    const __mmask64 m = n >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << n) - 1);
    const __m512i c = _mm512_maskz_loadu_epi8(m, w + p); /* past kc: code 0 -> +0 */
    __m512i lo, hi;
    e4m3_bf16_bytes(c, t, &lo, &hi);
    _mm512_storeu_si512((void *)(dst + p), _mm512_permutex2var_epi8(lo, i0, hi));
    _mm512_storeu_si512((void *)(dst + p + 32), _mm512_permutex2var_epi8(lo, i1, hi));
  }
}

/* The sums of 4 accumulators (W rows 0..3 of one X row) as one __m128: 256-bit halves added, then two rounds of
 * hadd — about half the operations of four separate reductions (which cost up to a quarter of the time at K = 896). */
T5 AI __m256 half_sum(__m512 a) {
  return _mm256_add_ps(_mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
}
T5 AI __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d) {
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(half_sum(a), half_sum(b)), _mm256_hadd_ps(half_sum(c), half_sum(d)));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}
/* M = 1 fp8 (E4M3) GEMV with the weights decoded in registers. The two table lookups give the low and high bytes of
 * 64 weights' bf16 (value * 2^-8, as above); vpunpcklbw / vpunpckhbw interleave them into words within each 128-bit
 * lane (one in-lane shuffle each, against a two-source byte permute), so a register holds the weights of codes
 * 0-7, 16-23, 32-39, 48-55 of a 64-code chunk and the other the rest. x is stored once per call in that same order
 * (r1_qsmall_gemv_x), which leaves the dot products unchanged: per 64 weights one load, four shuffles, one ternary
 * logic op and two vdpbf16ps, against 16-20 operations for the bit-moving f32 decode of qgemm.c. The block scale
 * (times 2^8) multiplies each 128-wide partial sum, as on the M >= 2 path, so both give the same sums up to order. */
static const uint8_t pair_order[64] = {0,  1,  2,  3,  4,  5,  6,  7,  16, 17, 18, 19, 20, 21, 22, 23, 32, 33, 34, 35, 36, 37,
                                       38, 39, 48, 49, 50, 51, 52, 53, 54, 55, 8,  9,  10, 11, 12, 13, 14, 15, 24, 25, 26, 27,
                                       28, 29, 30, 31, 40, 41, 42, 43, 44, 45, 46, 47, 56, 57, 58, 59, 60, 61, 62, 63};
int r1_qsmall_gemv_ok(int fmt) {
  static int ok = -1; /* decided once: called on every fp8 GEMV */
  if (ok < 0) ok = r1_qsmall_ok(R1_QW_E4M3) && r1_cpu_vbmi() && !getenv("R1_QSMALL_NO_VBMI"); /* as rows() */
  return fmt == R1_QW_E4M3 && ok;
}
long r1_qsmall_gemv_xlen(long K) { return (K + 63) / 64 * 64; }
void r1_qsmall_gemv_x(const uint16_t *xb, long K, uint16_t *xp) {
  for (long c = 0; c < K; c += 64)
    for (int t = 0; t < 64; t++) xp[c + t] = c + pair_order[t] < K ? xb[c + pair_order[t]] : 0;
}
/* Prefetch: each row QS_GEMV_PFD bytes ahead. Measured before the interleaved runs (below), with groups of adjacent rows:
 * S1's down projection from DRAM, 2 threads (bench qgemm --m 1 --cases down --set-mb 384): no prefetch 12.5-17.5 GB/s,
 * 512 B ahead 29.3, 1 KiB 30.4, 2 KiB 27.2, 4 KiB 22.4 (the f32-decode kernel without prefetch: 21-23.6). */
#ifndef QS_GEMV_PFD
#define QS_GEMV_PFD 1024
#endif
/* Rows j[0..3] (repeats allowed: the copies' results are discarded by the caller) -> o[0..3]; each row prefetched
 * QS_GEMV_PFD bytes ahead. */
T5V static inline __attribute__((always_inline)) void gemv4_e4m3(const r1_qsmall *a, const uint16_t *xp, const __m512i *t,
                                                                const long *j, float *o) {
  const long K = a->K;
  const uint8_t *W = (const uint8_t *)a->W;
  const uint8_t *w0 = W + j[0] * K, *w1 = W + j[1] * K, *w2 = W + j[2] * K, *w3 = W + j[3] * K;
  const float *s0 = a->S + (j[0] / BLK) * a->sk, *s1 = a->S + (j[1] / BLK) * a->sk, *s2 = a->S + (j[2] / BLK) * a->sk,
              *s3 = a->S + (j[3] / BLK) * a->sk;
#define GV_ROW(R)                                                                                                   \
  {                                                                                                                 \
    __m512i lo, hi;                                                                                                 \
    e4m3_bf16_bytes(_mm512_maskz_loadu_epi8(m, w##R + p), t, &lo, &hi);                                             \
    a##R = _mm512_dpbf16_ps(a##R, (__m512bh)_mm512_unpacklo_epi8(lo, hi), (__m512bh)x0);                           \
    b##R = _mm512_dpbf16_ps(b##R, (__m512bh)_mm512_unpackhi_epi8(lo, hi), (__m512bh)x1);                           \
  }
  __m512 t0 = _mm512_setzero_ps(), t1 = t0, t2 = t0, t3 = t0;
  for (long kb = 0; kb < K; kb += BLK) {
    const long ke = min_l(K, kb + BLK);
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    for (long p = kb; p < ke; p += 64) {
      _mm_prefetch((const char *)(w0 + p + QS_GEMV_PFD), QS_PF_HINT); _mm_prefetch((const char *)(w1 + p + QS_GEMV_PFD), QS_PF_HINT);
      _mm_prefetch((const char *)(w2 + p + QS_GEMV_PFD), QS_PF_HINT); _mm_prefetch((const char *)(w3 + p + QS_GEMV_PFD), QS_PF_HINT);
      const long n = ke - p;
      const __mmask64 m = n >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << n) - 1); /* past K: code 0 -> +0 */
      const __m512i x0 = _mm512_load_si512((const void *)(xp + p)), x1 = _mm512_load_si512((const void *)(xp + p + 32));
      GV_ROW(0) GV_ROW(1) GV_ROW(2) GV_ROW(3)
    }
    /* 2^8 undoes the decode's 2^-8 exactly */
    t0 = _mm512_fmadd_ps(_mm512_add_ps(a0, b0), _mm512_set1_ps(s0[kb / BLK] * 256.0f), t0);
    t1 = _mm512_fmadd_ps(_mm512_add_ps(a1, b1), _mm512_set1_ps(s1[kb / BLK] * 256.0f), t1);
    t2 = _mm512_fmadd_ps(_mm512_add_ps(a2, b2), _mm512_set1_ps(s2[kb / BLK] * 256.0f), t2);
    t3 = _mm512_fmadd_ps(_mm512_add_ps(a3, b3), _mm512_set1_ps(s3[kb / BLK] * 256.0f), t3);
  }
#undef GV_ROW
  _mm_storeu_ps(o, hsum4(t0, t1, t2, t3));
}
/* Groups [g0, g1) of 4 rows, i.e. rows [4 g0, min(4 g1, N)): those rows in 4 equal runs read side by side (rows
 * r0 + i + r L), so each run is one long sequential stream and the per-row prefetch runs on into the run's next row;
 * the 0-3 rows left over as one group. Why: groups of 4 adjacent rows (896 bytes each for S1) read S1's layer set
 * from DRAM at 32 GB/s where the probe (native k_read_probe) read 67; the runs read 49 at a probe of 73, and 85
 * against 64 from cache (a 14 MiB set): the access pattern, not the decode, was the limit. */
T5V static void gemv_e4m3_vbmi(const r1_qsmall *a, const uint16_t *xp, long g0, long g1) {
  __m512i t[4];
  e4m3_bf16_tabs(t);
  const long r0 = g0 * QR, r1 = min_l(g1 * QR, a->N), L = (r1 - r0) / QR;
  float o[QR];
  for (long i = 0; i < L; i++) {
    const long j[QR] = {r0 + i, r0 + L + i, r0 + 2 * L + i, r0 + 3 * L + i};
    gemv4_e4m3(a, xp, t, j, o);
    for (int r = 0; r < QR; r++) a->Y[j[r]] = o[r] + (a->bias ? a->bias[j[r]] : 0.0f);
  }
  const long j0 = r0 + QR * L;
  if (j0 < r1) { /* the 1-3 rows left over */
    const int nr = (int)(r1 - j0);
    const long j[QR] = {j0, j0 + (nr > 1 ? 1 : 0), j0 + (nr > 2 ? 2 : 0), j0}; /* missing rows: a copy */
    gemv4_e4m3(a, xp, t, j, o);
    for (int r = 0; r < nr; r++) a->Y[j0 + r] = o[r] + (a->bias ? a->bias[j0 + r] : 0.0f);
  }
}
void r1_qsmall_gemv(const r1_qsmall *a, const uint16_t *xp, long g0, long g1) { gemv_e4m3_vbmi(a, xp, g0, g1); }

/* Y[i0 + i, j + r] = sum of tot[r * 6 + i] (+ bias[j + r]). */
T5 static void store_block(const r1_qsmall *a, long i0, int mr, long j, int nr, const __m512 *tot) {
  float b4[QR] = {0, 0, 0, 0};
  if (a->bias)
    for (int r = 0; r < nr; r++) b4[r] = a->bias[j + r];
  const __m128 vb = _mm_loadu_ps(b4);
  for (int i = 0; i < mr; i++) {
    const __m128 v = _mm_add_ps(hsum4(tot[i], tot[MRX + i], tot[2 * MRX + i], tot[3 * MRX + i]), vb);
    float *y = a->Y + (i0 + i) * (a->ldy ? a->ldy : a->N) + j;
    float o[QR];
    _mm_storeu_ps(o, v);
    for (int r = 0; r < nr; r++) y[r] = a->accumulate ? y[r] + o[r] : o[r];
  }
}

T5 void r1_qsmall_rows(const r1_qsmall *a, long g0, long g1) {
  const long M = a->M, N = a->N, K = a->K;
  const long ldx = a->ldx ? a->ldx : K, ldw = a->ldw ? a->ldw : K;
  __m512 tot[((QS_MAX_M + MRX - 1) / MRX) * QR * MRX] __attribute__((aligned(64)));
  uint16_t tile[QR][BLK] __attribute__((aligned(64)));
  static int no_vbmi = -1; /* testing hook: R1_QSMALL_NO_VBMI set = the fp16-route decode */
  if (no_vbmi < 0) no_vbmi = getenv("R1_QSMALL_NO_VBMI") != NULL;
  const int vbmi = a->fmt == R1_QW_E4M3 && !no_vbmi && r1_cpu_vbmi();
  const __m512 one = _mm512_set1_ps(1.0f);
  for (long gi = g0; gi < g1; gi++) {
    const long j = gi * QR;
    const int nr = (int)min_l(QR, N - j);
    for (long c0 = 0; c0 < M; c0 += QS_MAX_M) {
      const long cm = min_l(QS_MAX_M, M - c0);
      /* X rows [c0, c0 + cm) in register blocks of at most 6 rows, sizes as even as possible (16 -> 6, 5, 5);
       * block b covers rows [c0 + bs[b], c0 + bs[b] + bm[b]). */
      const int nb = (int)((cm + MRX - 1) / MRX);
      int bs[(QS_MAX_M + MRX - 1) / MRX], bm[(QS_MAX_M + MRX - 1) / MRX];
      for (int b = 0, s = 0; b < nb; b++) {
        bm[b] = (int)((cm - s + (nb - b) - 1) / (nb - b));
        bs[b] = s;
        s += bm[b];
      }
      /* tot: written by each block's kernel (fold 0 / 1), so it needs no zeroing */
      if (a->fmt == R1_QW_F32) {
        const float *W = (const float *)a->W;
        const float *wr[QR], *pf[QR];
        for (int r = 0; r < QR; r++) {
          wr[r] = W + (j + (r < nr ? r : 0)) * ldw; /* missing rows: a copy, discarded */
          pf[r] = W + min_l(j + QS_PF_ROWS + r, N - 1) * ldw;
        }
        for (int b = 0; b < nb; b++) {
          /* The next group's rows are prefetched a 1/nb share per block (block b: [b K / nb, (b + 1) K / nb)), so W
           * keeps streaming while the later blocks compute on the cached group. */
          const long o = b * K / nb;
          const float *pk[QR] = {pf[0] + o, pf[1] + o, pf[2] + o, pf[3] + o};
          const float *xr[MRX];
          for (int i = 0; i < MRX; i++) xr[i] = a->X + (c0 + bs[b] + (i < bm[b] ? i : 0)) * ldx;
          mk_f32_any(bm[b], xr, wr, K, tot + b * QR * MRX, one, 0, c0 == 0 ? pk : NULL, nb);
        }
      } else if (a->fmt == R1_QW_BF16) {
        const uint16_t *W = (const uint16_t *)a->W;
        const uint16_t *wr[QR], *pf[QR];
        for (int r = 0; r < QR; r++) {
          wr[r] = W + (j + (r < nr ? r : 0)) * K;
          pf[r] = W + min_l(j + QS_PF_ROWS + r, N - 1) * K;
        }
        for (int b = 0; b < nb; b++) {
          const long o = b * K / nb; /* as for f32 */
          const uint16_t *pk[QR] = {pf[0] + o, pf[1] + o, pf[2] + o, pf[3] + o};
          const uint16_t *xr[MRX];
          for (int i = 0; i < MRX; i++) xr[i] = a->Xb + (c0 + bs[b] + (i < bm[b] ? i : 0)) * K;
          mk_bf16_any(bm[b], xr, wr, K, tot + b * QR * MRX, one, 0, c0 == 0 ? pk : NULL, nb);
        }
      } else {
        const uint8_t *W = (const uint8_t *)a->W;
        const float *srow = a->S + (j / BLK) * a->sk;
        const uint16_t *wr[QR] = {tile[0], tile[1], tile[2], tile[3]};
        for (long kb = 0; kb < K; kb += BLK) {
          const long kc = min_l(BLK, K - kb);
          for (int r = 0; r < QR; r++)
            (vbmi ? decode_bf16_block_vbmi : decode_bf16_block)(W + (j + (r < nr ? r : 0)) * K + kb, kc, tile[r],
                              c0 == 0 ? W + min_l(j + QS_PF_ROWS + r, N - 1) * K + kb : NULL);
          const __m512 vs = _mm512_set1_ps(srow[kb / BLK] * 256.0f); /* 2^8 undoes the decode's 2^-8 exactly */
          for (int b = 0; b < nb; b++) {
            const uint16_t *xr[MRX];
            for (int i = 0; i < MRX; i++) xr[i] = a->Xb + (c0 + bs[b] + (i < bm[b] ? i : 0)) * K + kb;
            mk_bf16_any(bm[b], xr, wr, kc, tot + b * QR * MRX, vs, kb == 0 ? 1 : 2, NULL, 1);
          }
        }
      }
      for (int b = 0; b < nb; b++) store_block(a, c0 + bs[b], bm[b], j, nr, tot + b * QR * MRX);
    }
  }
}

/* Broadcast kernel (NN and TN forms): C[i0 + i, j0 + 16 v + l] (v < 4 registers, masked at the right edge) =
 * sum_p a(i, p) B[p, j0 + 16 v + l], a(i, p) = A[(i0 + i) lda + p] (NN) or A[p lda + i0 + i] (TN). */
#define BC_ACC(i)                                                                                                  \
  if (MR > i) {                                                                                                    \
    const __m512 av = _mm512_set1_ps(TA ? ap[p * lda + i] : ap[i * lda + p]);                                      \
    c0##i = _mm512_fmadd_ps(av, b0, c0##i); c1##i = _mm512_fmadd_ps(av, b1, c1##i);                                \
    c2##i = _mm512_fmadd_ps(av, b2, c2##i); c3##i = _mm512_fmadd_ps(av, b3, c3##i);                                \
  }
#define BC_STORE1(v, i)                                                                                            \
  {                                                                                                                \
    float *cp = C + (i0 + i) * ldc + j0 + 16 * v;                                                                  \
    if (acc) c##v##i = _mm512_add_ps(c##v##i, _mm512_maskz_loadu_ps(m##v, cp));                                    \
    _mm512_mask_storeu_ps(cp, m##v, c##v##i);                                                                      \
  }
#define BC_STORE(i)                                                                                                \
  if (MR > i) { BC_STORE1(0, i) BC_STORE1(1, i) BC_STORE1(2, i) BC_STORE1(3, i) }
T5 AI void mk_bc(const int MR, const int TA, long i0, long j0, long n, long k, const float *A, long lda,
                 const float *B, long ldb, int acc, float *C, long ldc) {
  const long w = n - j0;
  const __mmask16 m0 = w >= 16 ? 0xFFFF : w <= 0 ? 0 : (__mmask16)((1u << w) - 1u);
  const __mmask16 m1 = w >= 32 ? 0xFFFF : w <= 16 ? 0 : (__mmask16)((1u << (w - 16)) - 1u);
  const __mmask16 m2 = w >= 48 ? 0xFFFF : w <= 32 ? 0 : (__mmask16)((1u << (w - 32)) - 1u);
  const __mmask16 m3 = w >= 64 ? 0xFFFF : w <= 48 ? 0 : (__mmask16)((1u << (w - 48)) - 1u);
  const float *ap = TA ? A + i0 : A + i0 * lda;
  const __m512 z = _mm512_setzero_ps();
  __m512 c00 = z, c10 = z, c20 = z, c30 = z, c01 = z, c11 = z, c21 = z, c31 = z, c02 = z, c12 = z, c22 = z, c32 = z,
         c03 = z, c13 = z, c23 = z, c33 = z, c04 = z, c14 = z, c24 = z, c34 = z, c05 = z, c15 = z, c25 = z, c35 = z;
  for (long p = 0; p < k; p++) {
    const float *bp = B + p * ldb + j0;
    const __m512 b0 = _mm512_maskz_loadu_ps(m0, bp), b1 = _mm512_maskz_loadu_ps(m1, bp + 16),
                 b2 = _mm512_maskz_loadu_ps(m2, bp + 32), b3 = _mm512_maskz_loadu_ps(m3, bp + 48);
    FOR_X(BC_ACC)
  }
  FOR_X(BC_STORE)
}
#define BC_CASE(MRV)                                                                                               \
  case MRV:                                                                                                        \
    if (ta) mk_bc(MRV, 1, i0, j0, n, k, A, lda, B, ldb, acc, C, ldc);                                              \
    else mk_bc(MRV, 0, i0, j0, n, k, A, lda, B, ldb, acc, C, ldc);                                                 \
    break;

/* Broadcast-kernel driver: column strips of W_ (a strip of B, k x W_ floats, stays in L1/L2 for all rows) outside,
 * row blocks of at most 6 rows inside, sizes as even as possible; CASE(mr) runs one block. */
#define BC_STRIPS(W_, CASE)                                                                                        \
  for (long j0 = 0; j0 < n; j0 += (W_)) {                                                                          \
    const int nb = (int)((m + MRX - 1) / MRX);                                                                     \
    for (int b = 0, s = 0; b < nb; b++) {                                                                          \
      const int mr = (int)((m - s + (nb - b) - 1) / (nb - b));                                                     \
      const long i0 = s;                                                                                           \
      s += mr;                                                                                                     \
      switch (mr) { CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) default: CASE(6) }                                     \
    }                                                                                                              \
  }

/* ---------------- AVX2 + FMA versions (16 ymm registers) ----------------
 * NT: 4 W rows x 3 X rows of 8-lane accumulators (12) + 3 X + 1 W registers; NN/TN: 6 rows x 16 columns (12
 * accumulators) + 2 B + 1 broadcast. Same structure and tails (masked loads) as the AVX-512 kernels above. */
#define T2S __attribute__((target("avx2,fma")))
T2S AI __m256i tailmask8(long w) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(w < 8 ? (w < 0 ? 0 : w) : 8)), idx);
}
T2S AI float hsum8s(__m256 v) {
  __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  a = _mm_add_ps(a, _mm_movehl_ps(a, a));
  return _mm_cvtss_f32(_mm_add_ss(a, _mm_movehdup_ps(a)));
}
#define NT2_STEP(i)                                                                                                \
  if (MR > i) {                                                                                                    \
    a0##i = _mm256_fmadd_ps(x##i##v, w0, a0##i); a1##i = _mm256_fmadd_ps(x##i##v, w1, a1##i);                      \
    a2##i = _mm256_fmadd_ps(x##i##v, w2, a2##i); a3##i = _mm256_fmadd_ps(x##i##v, w3, a3##i);                      \
  }
/* Y[i0 + i, j + r] (=, +=) sum_p X[i0 + i, p] W[j + r, p] for i < MR (<= 3), r < nr (<= 4). */
T2S AI void nt2_block(const int MR, const float *X, long ldx, long i0, const float *W, long ldw, long j, int nr, long K,
                      float *Y, long ldy, int acc) {
  const float *x0 = X + i0 * ldx, *x1 = X + (i0 + (MR > 1 ? 1 : 0)) * ldx, *x2 = X + (i0 + (MR > 2 ? 2 : 0)) * ldx;
  const float *r0 = W + j * ldw, *r1 = W + (j + (nr > 1 ? 1 : 0)) * ldw, *r2 = W + (j + (nr > 2 ? 2 : 0)) * ldw,
              *r3 = W + (j + (nr > 3 ? 3 : 0)) * ldw;
  const __m256 z = _mm256_setzero_ps();
  __m256 a00 = z, a10 = z, a20 = z, a30 = z, a01 = z, a11 = z, a21 = z, a31 = z, a02 = z, a12 = z, a22 = z, a32 = z;
  long p = 0;
  for (; p + 8 <= K; p += 8) {
    const __m256 x0v = _mm256_loadu_ps(x0 + p), x1v = _mm256_loadu_ps(x1 + p), x2v = _mm256_loadu_ps(x2 + p);
    const __m256 w0 = _mm256_loadu_ps(r0 + p), w1 = _mm256_loadu_ps(r1 + p), w2 = _mm256_loadu_ps(r2 + p),
                 w3 = _mm256_loadu_ps(r3 + p);
    NT2_STEP(0) NT2_STEP(1) NT2_STEP(2)
  }
  if (p < K) {
    const __m256i m = tailmask8(K - p);
    const __m256 x0v = _mm256_maskload_ps(x0 + p, m), x1v = _mm256_maskload_ps(x1 + p, m),
                 x2v = _mm256_maskload_ps(x2 + p, m);
    const __m256 w0 = _mm256_maskload_ps(r0 + p, m), w1 = _mm256_maskload_ps(r1 + p, m),
                 w2 = _mm256_maskload_ps(r2 + p, m), w3 = _mm256_maskload_ps(r3 + p, m);
    NT2_STEP(0) NT2_STEP(1) NT2_STEP(2)
  }
  const __m256 av[3][4] = {{a00, a10, a20, a30}, {a01, a11, a21, a31}, {a02, a12, a22, a32}};
  for (int i = 0; i < MR; i++)
    for (int r = 0; r < nr; r++) {
      float *y = Y + (i0 + i) * ldy + j + r;
      const float v = hsum8s(av[i][r]);
      *y = acc ? *y + v : v;
    }
}
#define BC2_ACC(i)                                                                                                 \
  if (MR > i) {                                                                                                    \
    const __m256 av = _mm256_broadcast_ss(TA ? ap + p * lda + i : ap + i * lda + p);                               \
    c0##i = _mm256_fmadd_ps(av, b0, c0##i); c1##i = _mm256_fmadd_ps(av, b1, c1##i);                                \
  }
#define BC2_STORE(i)                                                                                               \
  if (MR > i) {                                                                                                    \
    float *cp = C + (i0 + i) * ldc + j0;                                                                           \
    if (acc) {                                                                                                     \
      c0##i = _mm256_add_ps(c0##i, _mm256_maskload_ps(cp, m0));                                                    \
      c1##i = _mm256_add_ps(c1##i, _mm256_maskload_ps(cp + 8, m1));                                                \
    }                                                                                                              \
    _mm256_maskstore_ps(cp, m0, c0##i);                                                                            \
    _mm256_maskstore_ps(cp + 8, m1, c1##i);                                                                        \
  }
T2S AI void bc2_block(const int MR, const int TA, long i0, long j0, long n, long k, const float *A, long lda,
                      const float *B, long ldb, int acc, float *C, long ldc) {
  const __m256i m0 = tailmask8(n - j0), m1 = tailmask8(n - j0 - 8);
  const float *ap = TA ? A + i0 : A + i0 * lda;
  const __m256 z = _mm256_setzero_ps();
  __m256 c00 = z, c10 = z, c01 = z, c11 = z, c02 = z, c12 = z, c03 = z, c13 = z, c04 = z, c14 = z, c05 = z, c15 = z;
  if (n - j0 >= 16) { /* full strip: plain loads (vmaskmovps is slow on AMD cores) */
    for (long p = 0; p < k; p++) {
      const float *bp = B + p * ldb + j0;
      const __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
      FOR_X(BC2_ACC)
    }
  } else {
    for (long p = 0; p < k; p++) {
      const float *bp = B + p * ldb + j0;
      const __m256 b0 = _mm256_maskload_ps(bp, m0), b1 = _mm256_maskload_ps(bp + 8, m1);
      FOR_X(BC2_ACC)
    }
  }
  FOR_X(BC2_STORE)
}
#define NT2_CASE(MRV)                                                                                              \
  case MRV: nt2_block(MRV, A, lda, i0, B, ldb, j, nr, k, C, ldc, acc); break;
#define BC2_CASE(MRV)                                                                                              \
  case MRV:                                                                                                        \
    if (ta) bc2_block(MRV, 1, i0, j0, n, k, A, lda, B, ldb, acc, C, ldc);                                          \
    else bc2_block(MRV, 0, i0, j0, n, k, A, lda, B, ldb, acc, C, ldc);                                             \
    break;
T2S static void small_sgemm_avx2(int ta, int tb, long m, long n, long k, const float *A, long lda, const float *B,
                                 long ldb, int acc, float *C, long ldc) {
  if (!ta && tb) {
    for (long j = 0; j < n; j += QR) {
      const int nr = (int)min_l(QR, n - j);
      for (long i0 = 0; i0 < m; i0 += 3) {
        switch ((int)min_l(3, m - i0)) { NT2_CASE(1) NT2_CASE(2) default: NT2_CASE(3) }
      }
    }
    return;
  }
  BC_STRIPS(16, BC2_CASE)
}

/* AVX-512 NT/NN/TN small products (m, n, k > 0; acc = beta 1). */
T5 static void small_sgemm_avx512(int ta, int tb, long m, long n, long k, const float *A, long lda, const float *B,
                                   long ldb, int acc, float *C, long ldc) {
  if (!ta && tb) {
    const r1_qsmall a = {.fmt = R1_QW_F32, .M = m, .N = n, .K = k, .X = A, .W = B, .Y = C, .ldx = lda, .ldw = ldb,
                         .ldy = ldc, .accumulate = acc};
    r1_qsmall_rows(&a, 0, (n + QR - 1) / QR);
    return;
  }
  BC_STRIPS(64, BC_CASE)
}

/* The dispatcher carries no target attribute: it runs on AVX2-only CPUs too, so nothing AVX-512 may be compiled
 * into it; the kernels live in the targeted functions it calls. */
int r1_small_sgemm(int ta, int tb, long m, long n, long k, const float *A, long lda, const float *B, long ldb,
                   float beta, float *C, long ldc) {
  if ((ta && tb) || (beta != 0.0f && beta != 1.0f) || r1_isa() < R1_ISA_AVX2) return 0;
  if (m <= 0 || n <= 0) return 1;
  if (k <= 0) {
    if (beta == 0.0f)
      for (long i = 0; i < m; i++) memset(C + i * ldc, 0, sizeof(float) * (size_t)n);
    return 1;
  }
  const int acc = beta == 1.0f;
  if (r1_isa() < R1_ISA_AVX512) {
    /* AVX2: NT and NN with up to 64 rows only (measured on Zen 4 capped to AVX2, 32 rows: NT ~65-90 vs 51-65,
     * NN 85-92 vs 76-79 GFLOP/s for the packed GEMM; TN with a short k lost, 48-57 vs 80-98: left to it). */
    if (ta || m > 64) return 0;
    small_sgemm_avx2(ta, tb, m, n, k, A, lda, B, ldb, acc, C, ldc);
    return 1;
  }
  small_sgemm_avx512(ta, tb, m, n, k, A, lda, B, ldb, acc, C, ldc);
  return 1;
}
#else
int r1_small_sgemm(int ta, int tb, long m, long n, long k, const float *A, long lda, const float *B, long ldb,
                   float beta, float *C, long ldc) {
  (void)ta; (void)tb; (void)m; (void)n; (void)k; (void)A; (void)lda; (void)B; (void)ldb; (void)beta; (void)C; (void)ldc;
  return 0;
}
int r1_qsmall_ok(int fmt) {
  (void)fmt;
  return 0;
}
void r1_qsmall_rows(const r1_qsmall *a, long g0, long g1) {
  (void)a; (void)g0; (void)g1;
}
int r1_qsmall_gemv_ok(int fmt) {
  (void)fmt;
  return 0;
}
long r1_qsmall_gemv_xlen(long K) { return K; }
void r1_qsmall_gemv_x(const uint16_t *xb, long K, uint16_t *xp) { (void)xb; (void)K; (void)xp; }
void r1_qsmall_gemv(const r1_qsmall *a, const uint16_t *xp, long g0, long g1) { (void)a; (void)xp; (void)g0; (void)g1; }
#endif
