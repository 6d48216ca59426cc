/* The fp8 (E4M3) panel kernels of qpanel.c, included once per decoder with
 *   QE_GFNI   0: every group of 64 codes decoded by table (e4m3_bf16_bytes: AVX512_VBMI byte lookups);
 *             1: by two GFNI byte maps (e4m3_bf16_bytes_gfni), and by table only where the group holds a zero or
 *                subnormal code (e4m3_small): the same bf16 words, so the same sums to the last bit, fewer operations;
 *   QE_T      the target attribute (1 needs gfni),
 *   KN(name)  the name suffix,
 * then the drivers (qpanel_drive.h) for these kernels. The codes decode to the bf16 of value * 2^-8 (exact, see
 * e4m3_bf16.h), and the bf16 kernels' arithmetic runs on them. */

/* The bf16 pairs (value * 2^-8) of the two steps of 64 codes, each in panel-row order (see the layout): by the GFNI
 * maps where `maps` (the caller found no zero or subnormal code among them), else by table. */
QE_T AI void KN(decode_codes)(__m512i c, const __m512i *t, int maps, __m512i *s0, __m512i *s1) {
  __m512i lo, hi;
#if QE_GFNI
  if (__builtin_expect(maps, 1)) e4m3_bf16_bytes_gfni(c, &lo, &hi);
  else
#else
  (void)maps;
#endif
    e4m3_bf16_bytes(c, t, &lo, &hi);
  *s0 = _mm512_unpacklo_epi8(lo, hi);
  *s1 = _mm512_unpackhi_epi8(lo, hi);
}
/* Whether the maps may decode all of c (QE_GFNI 0: never). */
QE_T AI int KN(maps_ok)(__m512i c) {
#if QE_GFNI
  return e4m3_small(c) == 0;
#else
  (void)c;
  return 0;
#endif
}

/* M = 1: as gemv_panels_n, each 64-byte group of codes decoded in registers; the sums of each 128-wide block are
 * multiplied by 2^8 * scale_inv into the totals. With GFNI, one test for the n groups of a step: a zero or subnormal
 * code in any of them sends all n through the tables (measured with the test per group instead: ~10% slower). */
QE_T AI void KN(gemv_panels_n)(const pctx *c, long q, long d, const int n, long pfd) {
  const long K2 = c->K2, ps = K2 * 32, ds = d * ps, G = K2 / 2;
  const uint32_t *x = c->X;
  const char *p0 = c->P + q * ps;
  __m512i t[4];
  e4m3_bf16_tabs(t);
  const float *sr[GP];
  __m512 tot[GP];
  for (int v = 0; v < GP; v++) {
    tot[v] = _mm512_setzero_ps();
    sr[v] = c->S + ((q + (v < n ? v : 0) * d) * PR / R1_QW_BLOCK) * c->sk;
  }
  for (long g0 = 0; g0 < G; g0 += SB / 2) {
    const long g1 = min_l(G, g0 + SB / 2);
    __m512 a[GP], b[GP];
    for (int v = 0; v < GP; v++) a[v] = b[v] = _mm512_setzero_ps();
    for (long g = g0; g < g1; g++) {
      if (pfd)
        for (int v = 0; v < n; v++) _mm_prefetch(p0 + v * ds + 64 * g + pfd, _MM_HINT_T0);
      const __m512bh x0 = (__m512bh)_mm512_set1_epi32((int)x[2 * g]), x1 = (__m512bh)_mm512_set1_epi32((int)x[2 * g + 1]);
      __m512i cv[GP], w0, w1;
      int maps = 1;
      for (int v = 0; v < n; v++) {
        cv[v] = _mm512_loadu_si512((const void *)(p0 + v * ds + 64 * g));
        maps &= KN(maps_ok)(cv[v]);
      }
      for (int v = 0; v < n; v++) {
        KN(decode_codes)(cv[v], t, maps, &w0, &w1);
        a[v] = _mm512_dpbf16_ps(a[v], x0, (__m512bh)w0);
        b[v] = _mm512_dpbf16_ps(b[v], x1, (__m512bh)w1);
      }
    }
    for (int v = 0; v < n; v++) tot[v] = _mm512_fmadd_ps(_mm512_add_ps(a[v], b[v]), _mm512_set1_ps(sr[v][g0 / (SB / 2)] * 256.0f), tot[v]);
  }
  for (int v = 0; v < n; v++) {
    const long j0 = (q + v * d) * PR;
    store16(c->Y + j0 - c->y0 * PR, c->bias ? c->bias + j0 : NULL, c->N - j0, tot[v]);
  }
}
/* M >= 2: the NR panels q, q + sd, q + 2 sd one scale block (64 steps) at a time: the block's codes decoded once into
 * an L1 buffer in the bf16 panel layout (the first slab prefetching QP_PF bytes ahead in each code stream), then the
 * bf16 kernel over the buffer for every row block, its sums times 2^8 * scale_inv. */
#define MK8(MRV)                                                                                                   \
  case MRV:                                                                                                        \
    if (nr == 3) mk_panel_bf16(MRV, 3, x, K2, kc, (const char *)buf, SB * 64, y, ldy, bias, valid, yd, kb > 0, NULL, sc); \
    else if (nr == 2) mk_panel_bf16(MRV, 2, x, K2, kc, (const char *)buf, SB * 64, y, ldy, bias, valid, yd, kb > 0, NULL, sc); \
    else mk_panel_bf16(MRV, 1, x, K2, kc, (const char *)buf, SB * 64, y, ldy, bias, valid, yd, kb > 0, NULL, sc);  \
    break;
/* Outputs to Yb as in qpanel_kern.h's panels3o. */
QE_T static void KN(panels3o)(const pctx *c, long q, int nr, long sd, float *Yb, long ldy, long yd, long valid,
                              const float *bias) {
  const long M = c->M, K2 = c->K2, ps = K2 * 32;
  const int nb = (int)cdiv(M, MRP);
  __m512i buf[NRP * SB] __attribute__((aligned(64))); /* 3 panels x 64 steps of bf16 pairs: 12 KB */
  __m512i t[4];
  e4m3_bf16_tabs(t);
  const float *sr[NRP];
  for (int v = 0; v < NRP; v++) sr[v] = c->S + ((q + (v < nr ? v : 0) * sd) * PR / R1_QW_BLOCK) * c->sk;
  for (long kb = 0; kb * SB < K2; kb++) {
    const long pa = kb * SB, kc = min_l(SB, K2 - pa);
    float sc[NRP];
    for (int v = 0; v < nr; v++) {
      sc[v] = sr[v][kb] * 256.0f;
      const char *src = c->P + (q + v * sd) * ps + 32 * pa;
      for (long g = 0; g < kc / 2; g++) {
        if (c->prefetch) _mm_prefetch(src + 64 * g + QP_PF, _MM_HINT_T0);
        const __m512i cg = _mm512_loadu_si512((const void *)(src + 64 * g));
        KN(decode_codes)(cg, t, KN(maps_ok)(cg), &buf[v * SB + 2 * g], &buf[v * SB + 2 * g + 1]);
      }
    }
    for (int b = 0, i0 = 0; b < nb; b++) {
      const int mr = (int)((M - i0 + (nb - b) - 1) / (nb - b));
      const uint32_t *x = c->X + i0 * K2 + pa;
      float *y = Yb + i0 * ldy;
      switch (mr) { MK8(1) MK8(2) MK8(3) MK8(4) MK8(5) MK8(6) MK8(7) default: MK8(8) }
      i0 += mr;
    }
  }
}
#undef MK8

#define QK_T QE_T
#include "qpanel_drive.h"
#undef QK_T
