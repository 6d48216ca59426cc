/* Grouped GEMM: many independent products of different row counts in one call, the groups spread over the thread
 * pool and each product run single-threaded (r1_sgemm_st). Why: DeepSeekMoE's routed experts are hundreds of small
 * GEMMs (e.g. 32 rows each at 256 experts); run one after another, each pays its own packing set-up and a thread-pool
 * wake-up for a few MFLOP, and the layer's time grows with the expert count although its FLOPs do not. Parallelising
 * across the groups keeps every core on whole products instead.
 *
 * gemmGrouped(cs, cOffs, as, aOffs, lda, transA, bs, bOffs, ldb, transB, ms, n, ks, ldc, accumulate):
 *   for each group g with ms[g] > 0:  C_g = op(A_g) op(B_g) (+ C_g if accumulate), m = ms[g], k = ks[g], where
 *   A_g starts at as[g][aOffs[g]] (m x k, or k x m stored when transA, row stride lda), B_g at bs[g][bOffs[g]]
 *   (k x n, or n x k when transB, row stride ldb), C_g at cs[g][cOffs[g]] (m x n, row stride ldc).
 *   cs/as/bs are JS arrays of Float32Arrays (the same array may appear for several groups). Every extent is checked
 *   before any product runs. */
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "glue.h"
#include "threads.h"

typedef struct {
  long G, n, lda, ldb, ldc;
  int ta, tb, acc;
  const long *m, *k;
  float **c;
  const float **a, **b;
  const long *start; /* group boundaries per thread chunk: groups [start[t], start[t + 1]) */
} grp_ctx;

static void grp_chunk(void *vctx, long t0, long t1, int tid) {
  (void)tid;
  const grp_ctx *g = vctx;
  for (long t = t0; t < t1; t++)
    for (long i = g->start[t]; i < g->start[t + 1]; i++)
      if (g->m[i] > 0 && g->n > 0) {
        if (g->k[i] == 0) {
          if (!g->acc)
            for (long r = 0; r < g->m[i]; r++) memset(g->c[i] + r * g->ldc, 0, sizeof(float) * (size_t)g->n);
          continue;
        }
        r1_sgemm_st(g->ta, g->tb, g->m[i], g->n, g->k[i], 1.0f, g->a[i], g->lda, g->b[i], g->ldb, g->acc ? 1.0f : 0.0f, g->c[i], g->ldc);
      }
}

static int group_arrays(call_t *C, napi_value list, long G, arr_t *out, const char *name) {
  napi_env env = C->env;
  uint32_t len = 0;
  bool is_arr = false;
  if (napi_is_array(env, list, &is_arr) != napi_ok || !is_arr) return fail(C, 0, "%s must be an array of Float32Array", name);
  if (napi_get_array_length(env, list, &len) != napi_ok || (long)len != G) return fail(C, 1, "%s has %u entries, expected %ld (one per group)", name, len, G);
  for (long i = 0; i < G; i++) {
    napi_value v;
    if (napi_get_element(env, list, (uint32_t)i, &v) != napi_ok) return fail(C, 0, "%s[%ld] unreadable", name, i);
    if (!arg_typed(C, v, &out[i], name, napi_float32_array)) return 0;
  }
  return 1;
}

napi_value r1_napi_gemm_grouped(napi_env env, napi_callback_info info) {
  call_t C_ = {env, "gemmGrouped"};
  call_t *C = &C_;
  napi_value argv[15];
  size_t argc = 15;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 15) { fail(C, 0, "expected 15 arguments, got %zu", argc); return NULL; }
  arr_t ms, ks, co, ao, bo;
  long n = 0, lda = 0, ldb = 0, ldc = 0;
  int ta = 0, tb = 0, acc = 0;
  if (!arg_typed(C, argv[10], &ms, "ms", napi_int32_array) || !arg_typed(C, argv[1], &co, "cOffs", napi_int32_array) ||
      !arg_typed(C, argv[3], &ao, "aOffs", napi_int32_array) || !arg_typed(C, argv[7], &bo, "bOffs", napi_int32_array) ||
      !arg_long(C, argv[4], &lda, "lda", 0, MAX_SIZE) || !arg_bool(C, argv[5], &ta, "transA") ||
      !arg_long(C, argv[8], &ldb, "ldb", 0, MAX_SIZE) || !arg_bool(C, argv[9], &tb, "transB") ||
      !arg_long(C, argv[11], &n, "n", 0, MAX_SIZE) || !arg_typed(C, argv[12], &ks, "ks", napi_int32_array) ||
      !arg_long(C, argv[13], &ldc, "ldc", 0, MAX_SIZE) || !arg_bool(C, argv[14], &acc, "accumulate"))
    return NULL;
  const long G = ms.len;
  if (ks.len != G || co.len != G || ao.len != G || bo.len != G) { fail(C, 1, "ms, ks, cOffs, aOffs and bOffs must have one entry per group (%ld)", G); return NULL; }
  const int32_t *mv = ms.data, *kv = ks.data, *cov = co.data, *aov = ao.data, *bov = bo.data;
  arr_t *arrs = calloc((size_t)(3 * G + 1), sizeof(arr_t));
  long *m = calloc((size_t)G + 1, sizeof(long)), *kk = calloc((size_t)G + 1, sizeof(long));
  float **cp = calloc((size_t)G + 1, sizeof(float *));
  const float **ap = calloc((size_t)G + 1, sizeof(float *)), **bp = calloc((size_t)G + 1, sizeof(float *));
  int nt = r1_num_threads();
  long *start = calloc((size_t)nt + 1, sizeof(long));
  napi_value ret = NULL;
  if (!arrs || !m || !kk || !cp || !ap || !bp || !start) { fail(C, 0, "out of memory"); goto done; }
  arr_t *ca = arrs, *aa = arrs + G, *ba = arrs + 2 * G;
  if (!group_arrays(C, argv[0], G, ca, "cs") || !group_arrays(C, argv[2], G, aa, "as") || !group_arrays(C, argv[6], G, ba, "bs")) goto done;
  if (n > 0 && ldc < n) { fail(C, 1, "ldc (%ld) < n (%ld)", ldc, n); goto done; }
  if (!tb && n > 0 && ldb < n) { fail(C, 1, "ldb (%ld) < n (%ld)", ldb, n); goto done; }
  double total = 0;
  for (long i = 0; i < G; i++) {
    m[i] = mv[i];
    kk[i] = kv[i];
    const long k = kk[i];
    if (m[i] < 0 || k < 0 || cov[i] < 0 || aov[i] < 0 || bov[i] < 0) { fail(C, 1, "group %ld: negative size or offset", i); goto done; }
    if (m[i] == 0 || n == 0) continue;
    if (ta ? m[i] > lda : k > lda) { fail(C, 1, "group %ld: lda (%ld) shorter than a row of A", i, lda); goto done; }
    if (tb && k > ldb) { fail(C, 1, "group %ld: ldb (%ld) < k (%ld) with transB", i, ldb, k); goto done; }
    /* Extents: last element index + 1 of each operand. */
    const long a_ext = ta ? (k > 0 ? (k - 1) * lda + m[i] : 0) : (m[i] - 1) * lda + k;
    const long b_ext = tb ? (n - 1) * ldb + k : (k > 0 ? (k - 1) * ldb + n : 0);
    const long c_ext = (m[i] - 1) * ldc + n;
    if (!need(C, &aa[i], aov[i], a_ext, "as[g]") || !need(C, &ba[i], bov[i], b_ext, "bs[g]") || !need(C, &ca[i], cov[i], c_ext, "cs[g]")) goto done;
    ap[i] = (const float *)aa[i].data + aov[i];
    bp[i] = (const float *)ba[i].data + bov[i];
    cp[i] = (float *)ca[i].data + cov[i];
    total += (double)m[i] * (double)(k > 0 ? k : 1);
  }
  /* Contiguous runs of groups with about equal rows per thread chunk. */
  {
    long t = 1;
    double run = 0;
    for (long i = 0; i < G && t < nt; i++) {
      run += (double)m[i] * (double)(kk[i] > 0 ? kk[i] : 1);
      if (run >= total * (double)t / nt) start[t++] = i + 1;
    }
    for (; t <= nt; t++) start[t] = G;
    grp_ctx g = {G, n, lda, ldb, ldc, ta, tb, acc, m, kk, cp, ap, bp, start};
    if (nt > 1 && total * (double)n >= 1e6) r1_parallel_for(nt, 1, grp_chunk, &g);
    else grp_chunk(&g, 0, nt, 0);
  }
done:
  free(arrs); free(m); free(kk); free(cp); free(ap); free(bp); free(start);
  return ret;
}
