/* The drivers of qpanel.c's panel kernels, included once per format after its KN(gemv_panels_n) and KN(panels3o)
 * (QK_SUF, QK_T and KN as in qpanel_kern.h; QD_GEMV_PF the format's GEMV prefetch distance): which panels each
 * thread takes and in what order, and the slabs of X rows. */
/* Panels [q0, q1) of one thread: split into GP equal runs read side by side (stream v walks run v from its first
 * panel to its last, so each stream is one long sequential read, and the prefetch runs on into the stream's next
 * panel); the panels left over (fewer than GP), contiguous. */
QK_T static void KN(gemv_range)(void *v, long q0, long q1, int tid) {
  (void)tid;
  const pctx *c = v;
  const long pfd = c->prefetch;
  const long L = (q1 - q0) / GP;
  for (long i = 0; i < L; i++) KN(gemv_panels_n)(c, q0 + i, L, GP, pfd);
  long q = q0 + GP * L;
  switch (q1 - q) {
    case 3: KN(gemv_panels_n)(c, q, 1, 3, pfd); break;
    case 2: KN(gemv_panels_n)(c, q, 1, 2, pfd); break;
    case 1: KN(gemv_panels_n)(c, q, 1, 1, pfd); break;
    default: break;
  }
}

/* Panels [b, b + n) for all rows of the slab, NRP at a time, panel q's outputs at Yb + (q - b) 16 (row stride ldy;
 * the first valid0 - (q - b) 16 columns stored, with bias0 + (q - b) 16 if bias0). Up to 16 rows (one pass over the
 * weights per product: decode), as the GEMV reads them: the panels split into NRP equal runs, block i taking panel i
 * of each run, so each of the three streams is one long sequential read and the in-stream prefetch runs on into the
 * run's next panel (the 0-2 panels left over as a strip); more rows (prefill), strips of adjacent panels. */
QK_T static void KN(strips)(const pctx *c, long b, long n, float *Yb, long ldy, long valid0, const float *bias0) {
  long q = b;
  if (c->M <= 2 * MRP && QP_RUNS) {
    const long L = n / NRP;
    for (long i = 0; i < L; i++)
      KN(panels3o)(c, b + i, NRP, L, Yb + i * PR, ldy, L * PR, valid0 - i * PR, bias0 ? bias0 + i * PR : NULL);
    q = b + NRP * L;
  }
  for (; q < b + n; q += NRP) {
    const long o = (q - b) * PR;
    KN(panels3o)(c, q, (int)min_l(NRP, b + n - q), 1, Yb + o, ldy, PR, valid0 - o, bias0 ? bias0 + o : NULL);
  }
}
/* Panels [q0, q1) of one thread into Y. The threads get equal shares of panels (S1's 56-panel projections: 28 each,
 * where whole strips split 10 / 9). */
QK_T static void KN(strip_range)(void *v, long q0, long q1, int tid) {
  (void)tid;
  const pctx *c = v;
  const long j0 = q0 * PR;
  KN(strips)(c, q0, q1 - q0, c->Y + j0, c->N, c->N - j0, c->bias ? c->bias + j0 : NULL);
}
/* X's rows in slabs of QP_SLAB, each over all of W: fn over `units` (of `macs` multiply-adds per row each) on the
 * calling thread and the pool, ~32K multiply-adds a chunk at least (the first slab prefetches; see QP_PF). */
static void KN(slabs)(const pctx *c, long units, long macs, r1_range_fn fn) {
  for (long i0 = 0; i0 < c->M; i0 += QP_SLAB) {
    pctx s = *c;
    s.M = min_l(QP_SLAB, c->M - i0);
    s.X = c->X + i0 * c->K2;
    s.Y = c->Y + i0 * c->N;
    s.prefetch = i0 == 0;
    if (units * macs * s.M >= 65536) r1_parallel_for(units, max_l(NRP, 32768 / (macs * s.M)), fn, &s);
    else fn(&s, 0, units, 0);
  }
}
/* One row (M = 1): fn over `units` (of `macs` multiply-adds each) with the GEMV's prefetch distance, on the calling
 * thread and the pool, ~64K multiply-adds a chunk at least (below that a thread wake-up costs more than it saves). */
static void KN(one_row)(pctx *c, long units, long macs, r1_range_fn fn) {
  c->prefetch = QD_GEMV_PF;
  if (units * macs >= 65536) r1_parallel_for(units, max_l(GP, 65536 / macs), fn, c);
  else fn(c, 0, units, 0);
}
/* Y[M, N] = X[M, K2 steps] . panels^T (+ bias), on the calling thread and the pool (S, sk: fp8 block scales). */
static void KN(run_fast)(long M, long N, long K2, const uint32_t *X, const char *P, const float *S, long sk,
                         const float *bias, float *Y) {
  pctx c = {M, N, K2, X, P, bias, Y, 0, S, sk, 0};
  if (M == 1) KN(one_row)(&c, cdiv(N, PR), PR * 2 * K2, KN(gemv_range));
  else KN(slabs)(&c, cdiv(N, PR), PR * 2 * K2, KN(strip_range));
}

/* GLU (r1_qpanel_glu): Y [M, N] = silu(X . gate^T) * (X . up^T) with W = [gate; up] (2N rows: P = N / 16 gate
 * panels, then P up panels). A thread's share of output panels [q0, q1) goes GLU_SUB at a time: the gate panels
 * [a, a + n) and then the up panels [a + P, a + P + n) as strip_range reads them (the same blocks, streams and
 * prefetches as the two products), into a per-thread scratch [M, 2 n 16] instead of Y, and k_silu_mul_serial writes
 * Y's columns from it on the same core. Each sum is the product's own (the same kernels in the same order) and silu is
 * k_silu_mul's, so the values equal the two products followed by k_silu_mul, while the gate and up outputs never
 * leave the core that computed them (k_silu_mul read them from both cores' caches) and one call replaces three. One
 * row: the GEMV's kernel instead of the blocks (the same sums as the GEMV product), QP_SLAB GLU_SUB panels at a time. */
QK_T static void KN(glu_range)(void *v, long q0, long q1, int tid) {
  const pctx *c = v;
  const long M = c->M, N = c->N, P = N / PR, sub = M == 1 ? QP_SLAB * GLU_SUB : GLU_SUB;
  float *sc = glu_scratch();
  if (!sc) abort();
  for (long a = q0; a < q1; a += sub) {
    const long n = min_l(sub, q1 - a), ld = 2 * n * PR;
    if (M == 1) { /* the GEMV's kernel, streams and prefetch (gemv_range), its outputs put in the scratch by y0 */
      pctx g = *c;
      g.N = 2 * N; /* the GEMV's bounds are W's rows */
      g.Y = sc; g.y0 = a;
      KN(gemv_range)(&g, a, a + n, tid); /* gate */
      g.Y = sc + n * PR; g.y0 = a + P;
      KN(gemv_range)(&g, a + P, a + P + n, tid); /* up */
    } else {
      KN(strips)(c, a, n, sc, ld, n * PR, NULL);              /* gate */
      KN(strips)(c, a + P, n, sc + n * PR, ld, n * PR, NULL); /* up */
    }
    for (long i = 0; i < M; i++) k_silu_mul_serial(c->Y + i * N + a * PR, sc + i * ld, sc + i * ld + n * PR, n * PR);
  }
}
static void KN(run_glu)(long M, long N, long K2, const uint32_t *X, const char *P, const float *S, long sk, float *Y) {
  pctx c = {M, N, K2, X, P, NULL, Y, 0, S, sk, 0};
  if (M == 1) KN(one_row)(&c, N / PR, PR * 4 * K2, KN(glu_range));
  else KN(slabs)(&c, N / PR, PR * 4 * K2, KN(glu_range));
}
