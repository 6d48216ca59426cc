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

/* The same two byte vectors without tables (GFNI), for codes whose exponent field is not zero. The bf16 of
 * value * 2^-8 for such a code s.eeee.mmm is s | (e + 112) << 7 | m << 4, and since e < 16, e + 112 = e | 0x70: the
 * high byte is s 0 1 1 1 e3 e2 e1 and the low byte e0 m2 m1 m0 0 0 0 0, each a bit permutation of the code plus a
 * constant, i.e. an affine map over GF(2) that vgf2p8affineqb applies to 64 bytes in one operation (output bit i =
 * parity(code & matrix byte 7 - i) ^ constant bit i). Two of them replace the two 128-entry byte lookups
 * (vpermi2b) and the sign merge, which limited the fp8 GEMV: on a Zen 5-class core its L2-resident rate went from
 * ~95 to ~160 GB/s of codes. Zero and subnormal codes (exponent 0) have no implicit leading one, so the map is wrong
 * for them: e4m3_small finds them and the caller takes the table path for that group of 64 (with fine-grained
 * scales such codes are rare: ~0.01% of the codes of Gaussian weights, so ~0.7% of the groups). */
#define R1_T5G __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx512vbmi,avx2,fma,f16c,gfni")))
R1_T5G static inline __attribute__((always_inline)) void e4m3_bf16_bytes_gfni(__m512i c, __m512i *lo, __m512i *hi) {
  *lo = _mm512_gf2p8affine_epi64_epi8(c, _mm512_set1_epi64(0x0000000001020408LL), 0x00);
  *hi = _mm512_gf2p8affine_epi64_epi8(c, _mm512_set1_epi64(0x1020400000000080LL), 0x38);
}
/* The bytes of c that hold a zero or subnormal code (exponent field 0). */
R1_T5G static inline __attribute__((always_inline)) __mmask64 e4m3_small(__m512i c) {
  return _mm512_testn_epi8_mask(c, _mm512_set1_epi8(0x78));
}
#endif
#endif
