/* bf16, f32 and FP8 E4M3 weights in 16-row panels (API in qpanel.h).
 *
 * Why: with W stored row-major [N, K], a register-blocked product keeps one accumulator per (W row, X row) whose 16
 * lanes hold partial sums over K; every output then costs a horizontal sum, and at K = 896 (most of a Qwen2.5-0.5B
 * layer) those reductions and the accumulator spills took ~15% of a batch-16 product (native/qsmall.c: 72% of the
 * core's vdpbf16ps peak at K = 896 against 86% at K = 4864). AVX512_BF16's vdpbf16ps multiplies bf16 *pairs*: lane l
 * gets a[2l] b[2l] + a[2l+1] b[2l+1]. Store W as panels of 16 rows where, for each pair of K indices (2p, 2p+1), the
 * 16 rows' two weights sit next to each other (64 bytes = one zmm):
 *     panel q, pair p, row c, half h  ->  P[((q K2 + p) 16 + c) 2 + h] = W[16 q + c, 2 p + h]
 * (K2 = ceil(K / 2); rows past N and the K index past an odd K are zero). Then the product is an outer product: one
 * zmm of W times the broadcast 32-bit pair (x[2p], x[2p+1]) of an X row adds into the 16 outputs of that row
 * directly. No horizontal sums, no epilogue beyond the stores, and a panel is one contiguous stream of K2 * 64 bytes
 * (long sequential reads suit the hardware prefetchers better than four 1.8 KB rows at a time).
 *
 * Kernels (AVX512_BF16, picked at run time):
 *   M = 1   four panels at a time, two accumulator chains each, prefetched 1 KiB ahead (memory-bound: one vdpbf16ps
 *           per 64 bytes);
 *   M >= 2  register blocks of up to 8 X rows x 3 panels (48 columns): 24 accumulators; per pair 3 W loads and 8
 *           broadcasts feed 24 vdpbf16ps. X rows come in slabs of QP_SLAB (a batched prefill), each slab over all of W.
 * Elsewhere (AVX2, scalar, or R1_ISA capped) the same layout is multiplied by dequantizing 16-row panels to f32 and
 * calling the f32 GEMM (gemm.c): correct everywhere, fast only where the packer chooses this layout, which it does
 * only when r1_qpanel_preferred() says the kernels above will run.
 *
 * Activations are rounded to bf16 (nearest even) first, as on every packed path (qsmall.h); vdpbf16ps treats bf16
 * subnormal inputs as zero (|x| < 2^-126), like qsmall.c's kernels. Products of two bf16 values are exact in f32. *
 * The same panels for two more formats (a panel row is 64 bytes in all, so the kernels are shared: qpanel_kern.h):
 *   f32   one K index per panel row, P[(q K + k) 16 + c] = W[16 q + c, k]; the kernels with f32 FMAs on the f32
 *         activations as they are (AVX-512F). Row-major f32 at batch 16 went through qsmall.c's dot-product blocks
 *         at ~145 GFLOP/s in the engine; the panels ~2x that.
 *   fp8   E4M3 codes of two K pairs per 64-byte group (see the fp8 section), decoded to bf16 by two GFNI byte maps
 *         (by table, AVX512_VBMI, for groups holding a zero or subnormal code, or on CPUs without GFNI:
 *         e4m3_bf16.h, qpanel_e4m3.h) with 128 x 128 block scales: M = 1 decodes in registers; M >= 2 decodes each
 *         128-wide block of a strip once into an L1 buffer and runs the bf16 kernel over it for every row block
 *         (the decode paid once per weight, as the row-major path's 4-row tiles did, but without their horizontal
 *         sums).
 */
#define _GNU_SOURCE
#include "qpanel.h"

#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "gemm.h"
#include "qsmall.h"
#include "threads.h"
#include "e4m3_bf16.h"
#include "fp8.h"
#include "qgemm.h"
#include "kernels.h"

#define PR R1_QP_ROWS /* rows per panel */
#define MRP 8         /* X rows per register block */
#define NRP 3         /* panels per register block */
#define QP_SLAB 256   /* X rows per pass over W */
#ifndef QP_KC
#define QP_KC 320 /* K pairs per chunk of a strip, at most (60 KB of weights), when K is longer than QP_K1 pairs */
#endif
#ifndef QP_K1
#define QP_K1 512 /* K pairs (96 KB of weights per strip) done as one chunk */
#endif
#ifndef QP_PF_HINT
#define QP_PF_HINT _MM_HINT_T0
#endif

static inline long min_l(long a, long b) { return a < b ? a : b; }
static inline long max_l(long a, long b) { return a > b ? a : b; }
static inline long cdiv(long a, long b) { return (a + b - 1) / b; }

/* The GLU driver's per-thread scratch: [QP_SLAB, 2 GLU_SUB 16] floats (a slab's rows x the gate and up columns of
 * GLU_SUB output panels), or NULL when out of memory. */
#define GLU_SUB 48
static _Thread_local float *glu_buf;
static float *glu_scratch(void) {
  if (!glu_buf) glu_buf = aligned_alloc(64, sizeof(float) * QP_SLAB * 2 * GLU_SUB * PR);
  return glu_buf;
}

long r1_qpanel_len(long N, long K) { return cdiv(N, PR) * PR * (K + (K & 1)); }

int r1_qpanel_native(void) { return r1_isa() >= R1_ISA_AVX512BF16; }

static int panels_off(void) {
  static int off = -1;
  if (off < 0) off = getenv("R1_QGEMM_NO_PANELS") != NULL; /* tuning hook: keep every format row-major (f32: plain) */
  return off;
}
int r1_qpanel_preferred(void) { return !panels_off() && r1_qpanel_native(); }

/* ---------------- packing and dequantization (portable) ---------------- */
typedef struct {
  const void *w; /* f32 values (bf16, f32 panels) or E4M3 codes */
  long N, K;
  void *dst;
} pack_ctx;

static void pack_range(void *v, long q0, long q1, int tid) {
  (void)tid;
  const pack_ctx *c = v;
  const long K = c->K, K2 = cdiv(K, 2);
  uint16_t *row = malloc(sizeof(uint16_t) * (size_t)max_l(K, 1));
  if (!row) abort();
  for (long q = q0; q < q1; q++) {
    uint16_t *P = (uint16_t *)c->dst + q * K2 * 2 * PR;
    memset(P, 0, sizeof(uint16_t) * (size_t)(K2 * 2 * PR));
    for (long r = 0; r < PR && q * PR + r < c->N; r++) {
      r1_round_bf16((const float *)c->w + (q * PR + r) * K, row, K);
      for (long k = 0; k < K; k++) P[((k >> 1) * PR + r) * 2 + (k & 1)] = row[k];
    }
  }
  free(row);
}

void r1_qpanel_pack(const float *w, long N, long K, uint16_t *dst) {
  if (N <= 0 || K <= 0) return;
  pack_ctx c = {w, N, K, dst};
  r1_parallel_for(cdiv(N, PR), 1, pack_range, &c);
}

void r1_qpanel_dequant(long N, long K, const uint16_t *P, long r0, long r1, float *dst) {
  const long K2 = cdiv(K, 2);
  for (long n = max_l(r0, 0); n < min_l(r1, N); n++) {
    const uint16_t *pq = P + (n / PR) * K2 * 2 * PR + (n % PR) * 2;
    float *o = dst + (n - r0) * K;
    for (long k = 0; k < K; k++) {
      const uint32_t u = (uint32_t)pq[(k >> 1) * 2 * PR + (k & 1)] << 16;
      memcpy(o + k, &u, 4);
    }
  }
}

/* ---------------- kernels ---------------- */
typedef struct {
  long M, N, K2;
  const uint32_t *X; /* [M, K2] steps: bf16 pairs or f32 values */
  const char *P;     /* the panels (64 bytes per step and panel) */
  const float *bias;
  float *Y;
  long prefetch;     /* M = 1: prefetch distance in bytes; M > 1: whether the first block prefetches (first slab) */
  const float *S;    /* fp8: scale_inv [ceil(N / 128), sk]; else NULL */
  long sk;
  long y0;           /* M = 1: the panel whose outputs go to Y's first columns (the GLU's scratch); else 0 */
} pctx;

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define T5 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c")))
#define T5F __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c"))) /* the f32 kernels: no BF16 needed */
#define AI static inline __attribute__((always_inline))

/* Columns [j0, j0 + 16) of a row: y = acc (+ bias), the first `valid` lanes only. */
T5F AI void store16(float *y, const float *bias, long valid, __m512 acc) {
  const __mmask16 m = valid >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1u);
  if (bias) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, bias));
  _mm512_mask_storeu_ps(y, m, acc);
}
/* y += acc, the first `valid` lanes (a later K chunk). */
T5F AI void add16(float *y, long valid, __m512 acc) {
  const __mmask16 m = valid >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1u);
  _mm512_mask_storeu_ps(y, m, _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, y)));
}

/* y = acc * s + (add ? y : bias, or 0 without one), the first `valid` lanes (a chunk's sums times its fp8 block
 * scale): one explicit FMA, so the rounding is the same in every kernel shape — left to the compiler, the multiply
 * and the add were contracted in some instantiations and not in others, and an output's last bit depended on which
 * register block computed it (how the panels fell to the threads, or which other matrices shared the product). */
T5F AI void store16s(float *y, const float *bias, long valid, __m512 acc, __m512 s, int add) {
  const __mmask16 m = valid >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1u);
  const __m512 c = add ? _mm512_maskz_loadu_ps(m, y) : bias ? _mm512_maskz_loadu_ps(m, bias) : _mm512_setzero_ps();
  _mm512_mask_storeu_ps(y, m, _mm512_fmadd_ps(acc, s, c));
}

/* M = 1 (gemv_panels_n, gemv_range): y = x . W^T, GP panels at a time, each read with a software prefetch pfd bytes
 * ahead (0: none).
 * Why four panels and a prefetch: at K = 896 a panel is 28 KB, and streaming two of them at a time left the two
 * threads at 34-47 GB/s where the bandwidth probe read 47-53 (S1's layer set from DRAM, Zen 5-class VM). Four
 * concurrent streams per thread keep more misses in flight (+19%), and prefetching each stream 1 KiB ahead, across the
 * 4 KiB pages where the hardware prefetchers stop, gave +36% in all over two panels without (paired alternating
 * runs on bench qgemm's s1 set; distances 1-2 KiB best, 3-4 KiB ~5% less, 8 panels no better than 4). Then reading
 * the four panels from four separate runs of the thread's panels (gemv_range), so each stream is one long sequential
 * read, +11% more: 61.6 against 55.3 GB/s where the probe (native k_read_probe) read 70; at a probe of 80, 70 GB/s
 * with the 1 KiB prefetch and 56 without. */
#define GP 4
#ifndef QP_GEMV_PF
#define QP_GEMV_PF 1024 /* bytes */
#endif
/* fp8 panels with the GFNI decode: 2 KiB. With fewer operations per byte the stream wants more bytes in flight
 * (scratch driver over the native sources, S1's layer set from DRAM, distances alternated within one process, 3
 * runs: 1 / 2 / 3 KiB 71.0 / 78.6 / 77.4, 59.6 / 65.6 / 64.6, 56.4 / 62.2 / 61.3 GB/s; bf16 in the same way
 * 69.3 / 69.9 / 64.8: 1 KiB kept there). */
#ifndef QP_GEMV_PF8
#define QP_GEMV_PF8 2048 /* bytes */
#endif
static long pf_env(const char *name, long dflt) {
  const char *e = getenv(name);
  const long v = e ? atol(e) : dflt;
  return v < 0 ? 0 : v;
}
static long gemv_pf_bytes(void) {
  static long v = -1; /* tuning hook: R1_QP_GEMV_PF=bytes (0 = off), read once */
  if (v < 0) v = pf_env("R1_QP_GEMV_PF", QP_GEMV_PF);
  return v;
}
static long gemv_pf8_bytes(void) {
  static long v = -1; /* tuning hook: R1_QP_GEMV_PF8=bytes (0 = off), read once */
  if (v < 0) v = pf_env("R1_QP_GEMV_PF8", r1_cpu_gfni() ? QP_GEMV_PF8 : QP_GEMV_PF);
  return v;
}
/* M >= 2 (panels3o, strips): the first row block of each chunk prefetches QP_PF bytes ahead in its own panel
 * streams. Why the prefetch runs in the streams being read: the earlier design requested the *next* chunk (~86 KB ahead), a
 * share per block, so the weights would stream during the blocks that compute from cache; on the Zen 5-class VM that
 * did nothing (no prefetch at all measured the same), while 2 KiB ahead in the first block's own streams made S1's
 * layer set from DRAM ~13% faster at M = 16 (paired runs: ~445 -> ~505 GFLOP/s; M = 4, 8, 12: +15-18%; M = 64: +3%;
 * 1 KiB +7%, 4 KiB +9%). */
#ifndef QP_PF
#define QP_PF 2048 /* bytes */
#endif
/* Up to 16 rows, the three panels of a block come from three runs of the thread's panels (strip_range), as the GEMV
 * reads them: paired alternating runs on bench qgemm's s1 set from DRAM, M = 8: f32 panels 49-56 -> 59-71 GB/s, bf16
 * 44-48 -> 52-64; M = 16 +0-20% (noisy). One block of 16 rows x 1 panel instead (one stream per thread, read while
 * computing): 22 GB/s at M = 16 against 35. QP_RUNS 0 keeps adjacent strips. */
#ifndef QP_RUNS
#define QP_RUNS 1
#endif

#define QD_GEMV_PF gemv_pf_bytes()
#define QK_SUF bf16
#define QK_T T5
#define QK_MADD(a, x, w) _mm512_dpbf16_ps(a, (__m512bh)(x), (__m512bh)(w))
#include "qpanel_kern.h"
#undef QK_SUF
#undef QK_T
#undef QK_MADD
#define QK_SUF f32
#define QK_T T5F
#define QK_MADD(a, x, w) _mm512_fmadd_ps(_mm512_castsi512_ps(w), _mm512_castsi512_ps(x), a)
#include "qpanel_kern.h"
#undef QK_SUF
#undef QK_T
#undef QK_MADD
#undef QD_GEMV_PF

/* ---- fp8 (E4M3) panels: the codes decoded to bf16 (e4m3_bf16.h), then the bf16 kernels' arithmetic ---- */
#define SB (R1_QW_BLOCK / 2) /* steps per 128-wide scale block */
#define QD_GEMV_PF gemv_pf8_bytes()
#define QE_GFNI 0
#define QE_T R1_T5V
#define KN(name) name##_e4m3
#include "qpanel_e4m3.h"
#undef KN
#undef QE_T
#undef QE_GFNI
#define QE_GFNI 1
#define QE_T R1_T5G
#define KN(name) name##_e4m3g
#include "qpanel_e4m3.h"
#undef KN
#undef QE_T
#undef QE_GFNI
#undef QD_GEMV_PF
#else
/* unreachable: r1_qpanel_native(), _f32_native() and 8_native() are 0 off x86 */
#define RUN_FAST_STUB(F)                                                                                           \
  static void run_fast_##F(long M, long N, long K2, const uint32_t *X, const char *P, const float *S, long sk,      \
                           const float *bias, float *Y) {                                                          \
    (void)M; (void)N; (void)K2; (void)X; (void)P; (void)S; (void)sk; (void)bias; (void)Y;                          \
    abort();                                                                                                       \
  }
RUN_FAST_STUB(bf16)
RUN_FAST_STUB(f32)
RUN_FAST_STUB(e4m3)
RUN_FAST_STUB(e4m3g)
#define RUN_GLU_STUB(F)                                                                                            \
  static void run_glu_##F(long M, long N, long K2, const uint32_t *X, const char *P, const float *S, long sk,       \
                          float *Y) {                                                                              \
    (void)M; (void)N; (void)K2; (void)X; (void)P; (void)S; (void)sk; (void)Y;                                      \
    abort();                                                                                                       \
  }
RUN_GLU_STUB(bf16)
RUN_GLU_STUB(f32)
RUN_GLU_STUB(e4m3)
RUN_GLU_STUB(e4m3g)
#endif

/* ---------------- the product ---------------- */
static _Thread_local uint16_t *xb_buf;
static _Thread_local float *xf_buf, *wf_buf;
static _Thread_local size_t xb_cap, xf_cap, wf_cap;

static int grow(void **buf, size_t *cap, size_t need, size_t elem) {
  if (*cap >= need) return 1;
  free(*buf);
  *buf = aligned_alloc(64, (need * elem + 63) / 64 * 64);
  *cap = *buf ? need : 0;
  return *buf != NULL;
}

/* (*buf)[M, Kp] = X [M, K] rounded to bf16 (nearest even), each row zero-padded from K to Kp (the pad meets the
 * layout's zero weights); 0 when out of memory. */
static int round_rows(const float *X, long M, long K, long Kp, uint16_t **buf, size_t *cap) {
  if (!grow((void **)buf, cap, (size_t)M * (size_t)Kp, sizeof(uint16_t))) return 0;
  for (long i = 0; i < M; i++) {
    r1_round_bf16(X + i * K, *buf + i * Kp, K);
    for (long k = K; k < Kp; k++) (*buf)[i * Kp + k] = 0;
  }
  return 1;
}

/* The portable product of every panel format (no kernels here, or R1_ISA capped): X rounded to bf16 values (f32; f32
 * weights take X as it is), W dequantized a block of rows at a time, the f32 GEMM. fmt: R1_QW_BF16P, _F32P or
 * _E4M3P (S: its scales). */
static int portable_gemm(int fmt, long M, long N, long K, const float *X, const void *P, const float *S,
                         const float *bias, float *Y) {
  const long rows = min_l(cdiv(N, PR) * PR, max_l(PR, ((1L << 20) / K) / PR * PR));
  if (!grow((void **)&wf_buf, &wf_cap, (size_t)rows * (size_t)K, sizeof(float))) return 0;
  if (fmt != R1_QW_F32P) {
    if (!grow((void **)&xf_buf, &xf_cap, (size_t)M * (size_t)K, sizeof(float))) return 0;
    uint16_t h[256];
    for (long i = 0; i < M * K; i += 256) {
      const long n = min_l(256, M * K - i);
      r1_round_bf16(X + i, h, n);
      for (long t = 0; t < n; t++) {
        const uint32_t u = (uint32_t)h[t] << 16;
        memcpy(xf_buf + i + t, &u, 4);
      }
    }
    X = xf_buf;
  }
  for (long n0 = 0; n0 < N; n0 += rows) {
    const long nb = min_l(rows, N - n0);
    if (fmt == R1_QW_BF16P) r1_qpanel_dequant(N, K, (const uint16_t *)P, n0, n0 + nb, wf_buf);
    else if (fmt == R1_QW_F32P) r1_qpanel_f32_dequant(N, K, (const float *)P, n0, n0 + nb, wf_buf);
    else r1_qpanel8_dequant(N, K, (const uint8_t *)P, S, n0, n0 + nb, wf_buf);
    r1_sgemm(0, 1, M, nb, K, 1.0f, X, K, wf_buf, K, 0.0f, Y + n0, N);
  }
  if (bias)
    for (long i = 0; i < M; i++)
      for (long j = 0; j < N; j++) Y[i * N + j] += bias[j];
  return 1;
}

int r1_qpanel_gemm(long M, long N, long K, const float *X, const uint16_t *P, const float *bias, float *Y) {
  if (M <= 0 || N <= 0) return 1;
  if (K <= 0) {
    for (long i = 0; i < M; i++)
      for (long j = 0; j < N; j++) Y[i * N + j] = bias ? bias[j] : 0.0f;
    return 1;
  }
  const long K2 = cdiv(K, 2);
  if (r1_qpanel_native()) {
    /* X rounded to bf16, rows padded to an even length (the pad pairs with W's zero pad) */
    if (!round_rows(X, M, K, 2 * K2, &xb_buf, &xb_cap)) return 0;
    run_fast_bf16(M, N, K2, (const uint32_t *)xb_buf, (const char *)P, NULL, 0, bias, Y);
    return 1;
  }
  return portable_gemm(R1_QW_BF16P, M, N, K, X, P, NULL, bias, Y);
}

/* ---------------- f32 panels ---------------- */
long r1_qpanel_f32_len(long N, long K) { return cdiv(N, PR) * PR * K; }

int r1_qpanel_f32_native(void) { return r1_isa() >= R1_ISA_AVX512; }

int r1_qpanel_f32_preferred(void) { return !panels_off() && r1_qpanel_f32_native(); }

static void pack32_range(void *v, long q0, long q1, int tid) {
  (void)tid;
  const pack_ctx *c = v;
  const long K = c->K;
  for (long q = q0; q < q1; q++) {
    float *P = (float *)c->dst + q * K * PR;
    const long rows = min_l(PR, c->N - q * PR);
    if (rows < PR) memset(P, 0, sizeof(float) * (size_t)(K * PR));
    for (long r = 0; r < rows; r++) {
      const float *src = (const float *)c->w + (q * PR + r) * K;
      for (long k = 0; k < K; k++) P[k * PR + r] = src[k];
    }
  }
}

void r1_qpanel_f32_pack(const float *w, long N, long K, float *dst) {
  if (N <= 0 || K <= 0) return;
  pack_ctx c = {w, N, K, dst};
  r1_parallel_for(cdiv(N, PR), 1, pack32_range, &c);
}

void r1_qpanel_f32_dequant(long N, long K, const float *P, long r0, long r1, float *dst) {
  for (long n = max_l(r0, 0); n < min_l(r1, N); n++) {
    const float *pq = P + (n / PR) * K * PR + (n % PR);
    float *o = dst + (n - r0) * K;
    for (long k = 0; k < K; k++) o[k] = pq[k * PR];
  }
}

int r1_qpanel_f32_gemm(long M, long N, long K, const float *X, const float *P, const float *bias, float *Y) {
  if (M <= 0 || N <= 0) return 1;
  if (K <= 0) {
    for (long i = 0; i < M; i++)
      for (long j = 0; j < N; j++) Y[i * N + j] = bias ? bias[j] : 0.0f;
    return 1;
  }
  if (r1_qpanel_f32_native()) { /* the activations as they are: one step per K index */
    run_fast_f32(M, N, K, (const uint32_t *)X, (const char *)P, NULL, 0, bias, Y);
    return 1;
  }
  return portable_gemm(R1_QW_F32P, M, N, K, X, P, NULL, bias, Y);
}

/* ---------------- fp8 (E4M3) panels ---------------- */
/* Layout: panels of 16 rows; K in pairs (steps) as for bf16, K padded with zero codes to a multiple of 4 (K4) so the
 * steps come in groups of two: 64 bytes per group, stored in the order that the in-lane byte unpacks of the decoded
 * low and high bytes (decode_group) turn into the two steps' bf16 panel rows: byte 16 l + 8 s + i of group g holds
 * the code of step 2 g + s, word w = 8 l + i, i.e. row 16 q + w / 2, K index 2 (2 g + s) + w % 2. */
static long k4(long K) { return cdiv(K, 4) * 4; }
long r1_qpanel8_len(long N, long K) { return cdiv(N, PR) * PR * k4(K); }

int r1_qpanel8_native(void) {
  static int ok = -1; /* R1_QSMALL_NO_VBMI (testing: a CPU without AVX512_VBMI) turns it off, as for qsmall.c */
  if (ok < 0) ok = r1_isa() >= R1_ISA_AVX512BF16 && r1_cpu_vbmi() && !getenv("R1_QSMALL_NO_VBMI");
  return ok;
}
int r1_qpanel8_preferred(void) { return !panels_off() && r1_qpanel8_native(); }

/* Offset of W[n, k] in the layout (ps: panel bytes) */
static inline long p8_off(long n, long k, long ps) {
  const long p = k >> 1, g = p >> 1, s = p & 1, w = 2 * (n % PR) + (k & 1);
  return (n / PR) * ps + 64 * g + 16 * (w >> 3) + 8 * s + (w & 7);
}

static void pack8_range(void *v, long q0, long q1, int tid) {
  (void)tid;
  const pack_ctx *c = v;
  const uint8_t *codes = c->w;
  uint8_t *dst = c->dst;
  const long K = c->K, ps = PR * k4(K);
  memset(dst + q0 * ps, 0, (size_t)((q1 - q0) * ps));
  for (long n = q0 * PR; n < min_l(q1 * PR, c->N); n++)
    for (long k = 0; k < K; k++) dst[p8_off(n, k, ps)] = codes[n * K + k];
}
void r1_qpanel8_pack(const uint8_t *codes, long N, long K, uint8_t *dst) {
  if (N <= 0 || K <= 0) return;
  pack_ctx c = {codes, N, K, dst};
  r1_parallel_for(cdiv(N, PR), 1, pack8_range, &c);
}

void r1_qpanel8_dequant(long N, long K, const uint8_t *P, const float *S, long r0, long r1, float *dst) {
  const long ps = PR * k4(K), sk = cdiv(K, R1_QW_BLOCK);
  uint8_t row[R1_QW_BLOCK];
  for (long n = max_l(r0, 0); n < min_l(r1, N); n++) {
    float *o = dst + (n - r0) * K;
    for (long kb = 0; kb < K; kb += R1_QW_BLOCK) {
      const long kn = min_l(R1_QW_BLOCK, K - kb);
      for (long k = 0; k < kn; k++) row[k] = P[p8_off(n, kb + k, ps)];
      r1_fp8_decode(o + kb, row, kn, R1_FP8_E4M3);
      const float s = S[(n / R1_QW_BLOCK) * sk + kb / R1_QW_BLOCK];
      for (long k = 0; k < kn; k++) o[kb + k] *= s;
    }
  }
}

static _Thread_local uint16_t *x8_buf;
static _Thread_local size_t x8_cap;

int r1_qpanel8_gemm(long M, long N, long K, const float *X, const uint8_t *P, const float *S, const float *bias, float *Y) {
  if (M <= 0 || N <= 0) return 1;
  if (K <= 0) {
    for (long i = 0; i < M; i++)
      for (long j = 0; j < N; j++) Y[i * N + j] = bias ? bias[j] : 0.0f;
    return 1;
  }
  const long K4 = k4(K), sk = cdiv(K, R1_QW_BLOCK);
  if (r1_qpanel8_native()) {
    /* X rounded to bf16, rows zero-padded to K4 (the pad meets W's zero codes) */
    if (!round_rows(X, M, K, K4, &x8_buf, &x8_cap)) return 0;
    (r1_cpu_gfni() ? run_fast_e4m3g : run_fast_e4m3)(M, N, K4 / 2, (const uint32_t *)x8_buf, (const char *)P, S, sk, bias, Y);
    return 1;
  }
  return portable_gemm(R1_QW_E4M3P, M, N, K, X, P, S, bias, Y);
}

/* ---------------- GLU: silu(X Wg^T) * (X Wu^T) in one call over W = [Wg; Wu] ---------------- */
int r1_qpanel_glu(int fmt, long M, long N, long K, const float *X, const void *P, const float *S, float *Y) {
  const int native = fmt == R1_QW_BF16P ? r1_qpanel_native() : fmt == R1_QW_F32P ? r1_qpanel_f32_native()
                     : fmt == R1_QW_E4M3P ? r1_qpanel8_native() : 0;
  if (!native || N % (fmt == R1_QW_E4M3P ? R1_QW_BLOCK : PR) != 0) return -1;
  if (M <= 0 || N <= 0) return 1;
  if (K <= 0) { /* silu(0) * 0 */
    memset(Y, 0, sizeof(float) * (size_t)(M * N));
    return 1;
  }
  if (!glu_scratch()) return 0;
  if (fmt == R1_QW_F32P) {
    run_glu_f32(M, N, K, (const uint32_t *)X, (const char *)P, NULL, 0, Y);
    return 1;
  }
  /* X rounded to bf16 as the products round it, rows zero-padded to the layout's K (even; fp8: a multiple of 4) */
  const long Kp = fmt == R1_QW_E4M3P ? k4(K) : K + (K & 1);
  uint16_t **buf = fmt == R1_QW_E4M3P ? &x8_buf : &xb_buf;
  if (!round_rows(X, M, K, Kp, buf, fmt == R1_QW_E4M3P ? &x8_cap : &xb_cap)) return 0;
  if (fmt == R1_QW_E4M3P)
    (r1_cpu_gfni() ? run_glu_e4m3g : run_glu_e4m3)(M, N, Kp / 2, (const uint32_t *)*buf, (const char *)P, S, cdiv(K, R1_QW_BLOCK), Y);
  else run_glu_bf16(M, N, Kp / 2, (const uint32_t *)*buf, (const char *)P, NULL, 0, Y);
  return 1;
}
