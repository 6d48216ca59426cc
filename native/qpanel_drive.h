/* The drivers of qpanel.c's panel kernels, included once per format after its KN(gemv_panels_n) and KN(panels3)
 * (QK_SUF, QK_T and KN as in qpanel_kern.h): which panels each thread takes and in what order, and the slabs of
 * X rows. */
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

/* Panels [q0, q1) of one thread, NRP at a time. Up to 16 rows (one pass over the weights per product: decode), as
 * the GEMV reads them: the panels split into NRP equal runs, block i taking panel i of each run, so each of the
 * three streams is one long sequential read and the in-stream prefetch runs on into the run's next panel (the 0-2
 * panels left over as a strip); more rows (prefill), strips of adjacent panels. The threads get equal shares of
 * panels (S1's 56-panel projections: 28 each, where whole strips split 10 / 9). */
QK_T static void KN(strip_range)(void *v, long q0, long q1, int tid) {
  (void)tid;
  const pctx *c = v;
  long q = q0;
  if (c->M <= 2 * MRP && QP_RUNS) {
    const long L = (q1 - q0) / NRP;
    for (long i = 0; i < L; i++) KN(panels3)(c, q0 + i, NRP, L);
    q = q0 + NRP * L;
  }
  for (; q < q1; q += NRP) KN(panels3)(c, q, (int)min_l(NRP, q1 - q), 1);
}
/* Y[M, N] = X[M, K2 steps] . panels^T (+ bias), on the calling thread and the pool (S, sk: fp8 block scales). */
static void KN(run_fast)(long M, long N, long K2, const uint32_t *X, const char *P, const float *S, long sk,
                         const float *bias, float *Y) {
  pctx c = {M, N, K2, X, P, bias, Y, 0, S, sk};
  if (M == 1) {
    c.prefetch = gemv_pf_bytes();
    const long units = cdiv(N, PR);
    /* ~64K multiply-adds per chunk at least: below that a thread wake-up costs more than it saves */
    const long grain = max_l(GP, 65536 / (PR * 2 * K2));
    if (N * K2 * 2 >= 65536) r1_parallel_for(units, grain, KN(gemv_range), &c);
    else KN(gemv_range)(&c, 0, units, 0);
    return;
  }
  const long panels = cdiv(N, PR);
  for (long i0 = 0; i0 < M; i0 += QP_SLAB) {
    pctx s = c;
    s.M = min_l(QP_SLAB, M - i0);
    s.X = X + i0 * K2;
    s.Y = Y + i0 * N;
    s.prefetch = i0 == 0;
    const long grain = max_l(NRP, 32768 / (PR * 2 * K2 * s.M));
    if (N * K2 * 2 * s.M >= 65536) r1_parallel_for(panels, grain, KN(strip_range), &s);
    else KN(strip_range)(&s, 0, panels, 0);
  }
}
