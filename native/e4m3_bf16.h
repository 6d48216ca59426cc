/* E4M3 codes -> bf16 by table lookup (AVX512_VBMI), shared by qsmall.c and qpanel.c.
 *
 * vpermi2b looks up 64 codes at a time in a 128-entry byte table (the code's low 7 bits; the sign is OR-ed into the
 * high byte after), once for the low and once for the high byte of the bf16 of value * 2^-8 — the scaling keeps
 * E4M3's subnormals normal in bf16, so the bf16 is exact; kernels multiply their sums by 2^8 * scale_inv. How the
 * two byte vectors become words (two-source byte permutes, or in-lane unpacks with the codes stored in a matching
 * order) is up to the caller. Code 0x7f (NaN) never reaches the kernels: packers reject it.
 */
#ifndef R1_E4M3_BF16_H
#define R1_E4M3_BF16_H
#include <stdint.h>

/* tables[0..127]: low bytes, tables[128..255]: high bytes of the bf16 of (code & 0x7f) * 2^-8 (set up in qsmall.c) */
extern uint8_t r1_e4m3_bf16_tables[256];

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define R1_T5V __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx512vbmi,avx2,fma,f16c")))
/* The low and high bytes of the bf16 of 64 codes c (tables in t[0..3]: lo, lo + 64, hi, hi + 64), sign OR-ed in. */
R1_T5V static inline __attribute__((always_inline)) void e4m3_bf16_bytes(__m512i c, const __m512i *t, __m512i *lo, __m512i *hi) {
  *lo = _mm512_permutex2var_epi8(t[0], c, t[1]);
  *hi = _mm512_ternarylogic_epi32(_mm512_permutex2var_epi8(t[2], c, t[3]), c, _mm512_set1_epi8((char)0x80), 0xF8); /* hi | (c & 0x80) */
}
R1_T5V static inline __attribute__((always_inline)) void e4m3_bf16_tabs(__m512i *t) {
  for (int i = 0; i < 4; i++) t[i] = _mm512_load_si512((const void *)(r1_e4m3_bf16_tables + 64 * i));
}
#endif
#endif
