/* The panel kernels of qpanel.c, included once per element format with
 *   QK_SUF          the name suffix (bf16, f32),
 *   QK_T            the target attribute,
 *   QK_MADD(a,x,w)  a += the 64-byte panel row w (__m512i) times the broadcast 32-bit step x (__m512i): vdpbf16ps on
 *                   a bf16 pair (bf16 panels) or an f32 FMA on one value (f32 panels).
 * A panel row is 64 bytes in both formats (16 rows x one K pair of bf16, or x one K index of f32), so a "step" below
 * is one panel row and K2 the steps per panel; the activations X are [M, K2] 32-bit steps (bf16 pairs, or the f32
 * values themselves). Pointers into panels are byte pointers; ps is the panel stride in bytes (K2 * 64).
 */
#define QK_CAT2(a, b) a##_##b
#define QK_CAT(a, b) QK_CAT2(a, b)
#define KN(name) QK_CAT(name, QK_SUF)

/* y[16 q' ..] for the panels q' = q, q + d, .., q + (n - 1) d (n <= GP); pfd: prefetch distance in bytes (0: none). */
QK_T AI void KN(gemv_panels_n)(const pctx *c, long q, long d, const int n, long pfd) {
  const long K2 = c->K2, ps = K2 * 64, ds = d * ps;
  const uint32_t *x = c->X;
  const char *p0 = c->P + q * ps;
  __m512 a[GP], b[GP];
  for (int v = 0; v < GP; v++) a[v] = b[v] = _mm512_setzero_ps();
  long p = 0;
  for (; p + 2 <= K2; p += 2) {
    if (pfd)
      for (int v = 0; v < n; v++) {
        _mm_prefetch(p0 + v * ds + 64 * p + pfd, _MM_HINT_T0);
        _mm_prefetch(p0 + v * ds + 64 * p + pfd + 64, _MM_HINT_T0);
      }
    const __m512i x0 = _mm512_set1_epi32((int)x[p]), x1 = _mm512_set1_epi32((int)x[p + 1]);
    for (int v = 0; v < n; v++) {
      a[v] = QK_MADD(a[v], x0, _mm512_loadu_si512((const void *)(p0 + v * ds + 64 * p)));
      b[v] = QK_MADD(b[v], x1, _mm512_loadu_si512((const void *)(p0 + v * ds + 64 * p + 64)));
    }
  }
  if (p < K2) {
    const __m512i x0 = _mm512_set1_epi32((int)x[p]);
    for (int v = 0; v < n; v++) a[v] = QK_MADD(a[v], x0, _mm512_loadu_si512((const void *)(p0 + v * ds + 64 * p)));
  }
  for (int v = 0; v < n; v++) {
    const long j0 = (q + v * d) * PR;
    store16(c->Y + j0 - c->y0 * PR, c->bias ? c->bias + j0 : NULL, c->N - j0, _mm512_add_ps(a[v], b[v]));
  }
}

/* The accumulators c<v><i>: panel v (0..2) x X row i (0..7); MR, NR are compile-time constants in every
 * instantiation, so the unused ones vanish. */
#define FOR_I(F) F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7)
#define DECL(i) __m512 c0##i = _mm512_setzero_ps(), c1##i = c0##i, c2##i = c0##i;
#define STEP(i)                                                                                                    \
  if (MR > i) {                                                                                                    \
    const __m512i xb = _mm512_set1_epi32((int)x[(i) * K2 + p]);                                                    \
    c0##i = QK_MADD(c0##i, xb, w0);                                                                                \
    if (NR > 1) c1##i = QK_MADD(c1##i, xb, w1);                                                                    \
    if (NR > 2) c2##i = QK_MADD(c2##i, xb, w2);                                                                    \
  }
#define STORE(i)                                                                                                   \
  if (MR > i) {                                                                                                    \
    float *yr = y + (i) * N;                                                                                       \
    if (sc) {                                                                                                      \
      store16s(yr, bias, valid, c0##i, s0, acc);                                                                   \
      if (NR > 1) store16s(yr + yd, bias ? bias + yd : NULL, valid - yd, c1##i, s1, acc);                          \
      if (NR > 2) store16s(yr + 2 * yd, bias ? bias + 2 * yd : NULL, valid - 2 * yd, c2##i, s2, acc);              \
    } else if (acc) {                                                                                              \
      add16(yr, valid, c0##i);                                                                                     \
      if (NR > 1) add16(yr + yd, valid - yd, c1##i);                                                               \
      if (NR > 2) add16(yr + 2 * yd, valid - 2 * yd, c2##i);                                                       \
    } else {                                                                                                       \
      store16(yr, bias, valid, c0##i);                                                                             \
      if (NR > 1) store16(yr + yd, bias ? bias + yd : NULL, valid - yd, c1##i);                                    \
      if (NR > 2) store16(yr + 2 * yd, bias ? bias + 2 * yd : NULL, valid - 2 * yd, c2##i);                        \
    }                                                                                                              \
  }
/* Y rows [0, MR) x the columns of NR panels (16 each, yd columns apart: 16 for adjacent panels) of the block
 * starting at x (row 0 of the block) and y, over steps [0, kc) from x and p0 (K2: the row stride of x in steps, ps:
 * the distance in bytes between the block's panel streams); acc: add to y (a later K chunk; the bias came with the
 * first). pf (or NULL): prefetch QP_PF bytes ahead in each of the block's panel streams, one line per panel per step
 * (the block that reads the chunk from DRAM; see strip_range). sc (or NULL): the panels' factors, applied to the sums
 * of this chunk before they are stored or added (fp8 block scales). */
QK_T AI void KN(mk_panel)(const int MR, const int NR, const uint32_t *x, long K2, long kc, const char *p0, long ps,
                          float *y, long N, const float *bias, long valid, long yd, int acc, const char *pf,
                          const float *sc) {
  const char *p1 = p0 + (NR > 1 ? ps : 0), *p2 = p0 + (NR > 2 ? 2 * ps : 0);
  FOR_I(DECL)
  for (long p = 0; p < kc; p++) {
    if (pf) {
      const char *a = pf + 64 * p;
      _mm_prefetch(a, QP_PF_HINT);
      if (NR > 1) _mm_prefetch(a + ps, QP_PF_HINT);
      if (NR > 2) _mm_prefetch(a + 2 * ps, QP_PF_HINT);
    }
    const __m512i w0 = _mm512_loadu_si512((const void *)(p0 + 64 * p));
    const __m512i w1 = NR > 1 ? _mm512_loadu_si512((const void *)(p1 + 64 * p)) : w0;
    const __m512i w2 = NR > 2 ? _mm512_loadu_si512((const void *)(p2 + 64 * p)) : w0;
    FOR_I(STEP)
  }
  const __m512 s0 = _mm512_set1_ps(sc ? sc[0] : 1.0f), s1 = _mm512_set1_ps(sc && NR > 1 ? sc[1] : 1.0f),
               s2 = _mm512_set1_ps(sc && NR > 2 ? sc[2] : 1.0f);
  (void)s1; (void)s2;
  FOR_I(STORE)
}
#undef FOR_I
#undef DECL
#undef STEP
#undef STORE
#define MK_NR(MRV)                                                                                                 \
  case MRV:                                                                                                        \
    if (nr == 3) KN(mk_panel)(MRV, 3, x, K2, kc, pk, pd, y, ldy, bias, valid, yd, pa > 0, pf, NULL);             \
    else if (nr == 2) KN(mk_panel)(MRV, 2, x, K2, kc, pk, pd, y, ldy, bias, valid, yd, pa > 0, pf, NULL);        \
    else KN(mk_panel)(MRV, 1, x, K2, kc, pk, pd, y, ldy, bias, valid, yd, pa > 0, pf, NULL);                     \
    break;

/* NR panels q, q + sd, q + 2 sd (sd = 1: a strip of adjacent panels) for all M rows: equal chunks of K (see KC
 * below), and within a chunk the X rows in blocks of at most MRP, sizes as even as possible (16 -> 8 + 8, 12 -> 6 +
 * 6): the chunk (at most 96 KB) is read from DRAM by the first block, which prefetches QP_PF bytes ahead in each of
 * its panel streams (first slab only), and from L1/L2 by the others. The outputs go to Yb (row i at Yb + i ldy), the
 * block's panels yd columns apart there, the first `valid` columns stored, with bias (or NULL) for those columns:
 * Y's own columns of panel q for a product (qpanel_drive.h strips), a scratch for the GLU driver. */
QK_T static void KN(panels3o)(const pctx *c, long q, int nr, long sd, float *Yb, long ldy, long yd, long valid,
                              const float *bias) {
  const long M = c->M, K2 = c->K2, ps = K2 * 64, pd = sd * ps; /* pd: the distance between the block's streams */
  const int nb = (int)cdiv(M, MRP);
  /* K in equal chunks: one up to QP_K1 steps, else of at most QP_KC (S1's bf16 down projection, 2432 pairs:
   * 8 x 304; measured at batch 16 against 1024-pair chunks: ~280 -> ~320 GFLOP/s, the short-K products unchanged) */
  const long KC = K2 <= QP_K1 ? K2 : cdiv(K2, cdiv(K2, QP_KC));
  const char *p0 = c->P + q * ps;
  for (long pa = 0; pa < K2; pa += KC) {
    const long kc = min_l(KC, K2 - pa);
    const char *pk = p0 + 64 * pa;
    for (int b = 0, i0 = 0; b < nb; b++) {
      const int mr = (int)((M - i0 + (nb - b) - 1) / (nb - b));
      const uint32_t *x = c->X + i0 * K2 + pa;
      float *y = Yb + i0 * ldy;
      const char *pf = c->prefetch && b == 0 ? pk + QP_PF : NULL;
      switch (mr) { MK_NR(1) MK_NR(2) MK_NR(3) MK_NR(4) MK_NR(5) MK_NR(6) MK_NR(7) default: MK_NR(8) }
      i0 += mr;
    }
  }
}

#undef MK_NR

#include "qpanel_drive.h"
#undef KN
#undef QK_CAT
#undef QK_CAT2
