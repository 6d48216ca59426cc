/* r1ts fused f32 kernels (API in kernels.h; semantics in src/tensor/backend.ts).
 *
 * How the code is organised (why):
 * - Memory traffic dominates every kernel here except attention, so each one reads its inputs once
 *   and writes its output once (softmax/xent/rmsnorm keep a row in L1/L2 between passes).
 * - Two code paths per kernel: portable C ("_c") and AVX2+FMA ("_avx2"). binding.gyp has no -march,
 *   so AVX2 functions carry __attribute__((target("avx2,fma"))) and are picked at run time by r1_isa()
 *   (R1_ISA=scalar forces the C path). Plain loops without reductions are written once in R1_TWICE and
 *   compiled twice: GCC auto-vectorises the copy with the AVX2 target. Transcendentals and reductions
 *   use explicit intrinsics (v_exp, v_log, v_tanh below), because auto-vectorisation cannot reassociate
 *   float sums without -ffast-math and libm calls do not vectorise.
 * - The C path computes transcendentals in double through libm (the reference backend does the same in
 *   JS numbers), so it is the accuracy baseline; the AVX2 polynomials are ~1-2 ulp.
 * - Work over more than ~32K elements is split on the r1 pool (threads.h); attention uses a team with
 *   a shared atomic work counter because causal blocks have unequal cost.
 * AVX-512 CPUs run the AVX2 paths here (gemm.c has AVX-512 micro-kernels); these kernels are bandwidth
 * bound, where 512-bit vectors gain little.
 */
#define _GNU_SOURCE
#include "kernels.h"
#include "qsmall.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "gemm.h"
#include "threads.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define R1_X86 1
#define AVX2 __attribute__((target("avx2,fma")))
#define F16C __attribute__((target("avx2,fma,f16c")))
#else
#define AVX2
#endif

/* Elements per parallel chunk: work below two chunks (32K elements) stays on the calling thread. */
#define GRAIN 16384L

static inline long min_l(long a, long b) { return a < b ? a : b; }
static inline long max_l(long a, long b) { return a > b ? a : b; }

static inline int use_avx2(void) {
#ifdef R1_X86
  return r1_isa() >= R1_ISA_AVX2;
#else
  return 0;
#endif
}

/* Write a body once, get a portable copy (name_c) and an AVX2-targeted copy (name_avx2). */
#define R1_TWICE(ret, name, params, ...) \
  static ret name##_c params { __VA_ARGS__ } \
  AVX2 static ret name##_avx2 params { __VA_ARGS__ }

/* ------------------------------------------------------------------------------------------------ */
/* AVX2 vector math. Polynomials are the Cephes single-precision ones (S. Moshier, Cephes Math Library,
 * expf.c / logf.c / tanhf.c), rewritten branch-free with FMA; the GELU tail uses our own fit (see v_phi). */
#ifdef R1_X86
AVX2 static inline __m256 v_set(float x) { return _mm256_set1_ps(x); }

AVX2 static inline __m256i v_tmask(long r) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

AVX2 static inline float v_hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
AVX2 static inline float v_hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/* exp(x): x = n ln2 + r, |r| <= ln2/2, exp(r) by a degree-6 polynomial, times 2^n applied as two
 * factors 2^(n/2) so results in the subnormal range round once, correctly. Overflow gives +inf,
 * x < -104 gives 0, NaN stays NaN. The constants are shared by both SIMD widths (v_exp, v_exp512). */
#define EXP_LO -104.0f
#define EXP_HI 88.8f
#define EXP_LOG2E 1.44269504088896341f
#define EXP_LN2_HI 0.693359375f
#define EXP_LN2_LO -2.12194440e-4f
#define EXP_P0 1.9875691500e-4f
#define EXP_P1 1.3981999507e-3f
#define EXP_P2 8.3334519073e-3f
#define EXP_P3 4.1665795894e-2f
#define EXP_P4 1.6666665459e-1f
#define EXP_P5 5.0000001201e-1f
AVX2 static inline __m256 v_exp(__m256 x) {
  __m256 xc = _mm256_min_ps(_mm256_max_ps(x, v_set(EXP_LO)), v_set(EXP_HI));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, v_set(EXP_LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, v_set(EXP_LN2_HI), xc);
  r = _mm256_fnmadd_ps(n, v_set(EXP_LN2_LO), r);
  __m256 y = v_set(EXP_P0);
  y = _mm256_fmadd_ps(y, r, v_set(EXP_P1));
  y = _mm256_fmadd_ps(y, r, v_set(EXP_P2));
  y = _mm256_fmadd_ps(y, r, v_set(EXP_P3));
  y = _mm256_fmadd_ps(y, r, v_set(EXP_P4));
  y = _mm256_fmadd_ps(y, r, v_set(EXP_P5));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, v_set(1.0f)));
  __m256i ni = _mm256_cvtps_epi32(n);
  __m256i n1 = _mm256_srai_epi32(ni, 1);
  __m256i n2 = _mm256_sub_epi32(ni, n1);
  __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23));
  __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23));
  y = _mm256_mul_ps(_mm256_mul_ps(y, s1), s2);
  y = _mm256_andnot_ps(_mm256_cmp_ps(x, v_set(EXP_LO), _CMP_LT_OQ), y); /* exp(-inf) is exactly 0 */
  return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

/* log(x): x = m 2^e with m in [sqrt(1/2), sqrt(2)), log(m) by Cephes' degree-9 polynomial in m-1.
 * Subnormals are pre-scaled by 2^23; log(0) = -inf, log(<0) = NaN, log(inf) = inf. */
AVX2 static inline __m256 v_log(__m256 x) {
  const __m256 one = v_set(1.0f);
  __m256 tiny = _mm256_cmp_ps(x, v_set(1.17549435e-38f), _CMP_LT_OQ);
  __m256 xs = _mm256_blendv_ps(x, _mm256_mul_ps(x, v_set(8388608.0f)), tiny);
  __m256i bits = _mm256_castps_si256(xs);
  __m256 e = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(126)));
  e = _mm256_sub_ps(e, _mm256_and_ps(tiny, v_set(23.0f)));
  __m256 m = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x3f000000)));
  __m256 lt = _mm256_cmp_ps(m, v_set(0.707106781186547524f), _CMP_LT_OQ);
  __m256 xm = _mm256_sub_ps(_mm256_add_ps(m, _mm256_and_ps(m, lt)), one);
  e = _mm256_sub_ps(e, _mm256_and_ps(one, lt));
  __m256 z = _mm256_mul_ps(xm, xm);
  __m256 y = v_set(7.0376836292e-2f);
  y = _mm256_fmadd_ps(y, xm, v_set(-1.1514610310e-1f));
  y = _mm256_fmadd_ps(y, xm, v_set(1.1676998740e-1f));
  y = _mm256_fmadd_ps(y, xm, v_set(-1.2420140846e-1f));
  y = _mm256_fmadd_ps(y, xm, v_set(1.4249322787e-1f));
  y = _mm256_fmadd_ps(y, xm, v_set(-1.6668057665e-1f));
  y = _mm256_fmadd_ps(y, xm, v_set(2.0000714765e-1f));
  y = _mm256_fmadd_ps(y, xm, v_set(-2.4999993993e-1f));
  y = _mm256_fmadd_ps(y, xm, v_set(3.3333331174e-1f));
  y = _mm256_mul_ps(_mm256_mul_ps(y, xm), z);
  y = _mm256_fmadd_ps(e, v_set(-2.12194440e-4f), y);
  y = _mm256_fnmadd_ps(v_set(0.5f), z, y);
  __m256 r = _mm256_add_ps(xm, y);
  r = _mm256_fmadd_ps(e, v_set(0.693359375f), r);
  r = _mm256_blendv_ps(r, v_set(-INFINITY), _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_EQ_OQ));
  r = _mm256_blendv_ps(r, v_set(INFINITY), _mm256_cmp_ps(x, v_set(INFINITY), _CMP_EQ_OQ));
  r = _mm256_blendv_ps(r, v_set(NAN), _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_NGE_UQ)); /* x < 0 or NaN */
  return r;
}

/* tanh: odd polynomial for |x| < 0.625 (Cephes tanhf), else sign(x) (1 - 2/(exp(2|x|)+1)). */
AVX2 static inline __m256 v_tanh(__m256 x) {
  const __m256 sgn = v_set(-0.0f);
  __m256 ax = _mm256_andnot_ps(sgn, x);
  __m256 s = _mm256_mul_ps(x, x);
  __m256 p = v_set(-5.70498872745e-3f);
  p = _mm256_fmadd_ps(p, s, v_set(2.06390887954e-2f));
  p = _mm256_fmadd_ps(p, s, v_set(-5.37397155531e-2f));
  p = _mm256_fmadd_ps(p, s, v_set(1.33314422036e-1f));
  p = _mm256_fmadd_ps(p, s, v_set(-3.33332819422e-1f));
  __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, s), x, x);
  __m256 e = v_exp(_mm256_add_ps(ax, ax));
  __m256 big = _mm256_sub_ps(v_set(1.0f), _mm256_div_ps(v_set(2.0f), _mm256_add_ps(e, v_set(1.0f))));
  big = _mm256_or_ps(big, _mm256_and_ps(x, sgn));
  return _mm256_blendv_ps(big, small, _mm256_cmp_ps(ax, v_set(0.625f), _CMP_LT_OQ));
}

/* sigmoid(x) and 1 - sigmoid(x) = sigmoid(-x) from e = exp(-|x|): r = 1/(1+e) is the larger of the two
 * and e r the smaller, so neither side cancels (s (1-s) keeps full relative accuracy for large |x|)
 * and exp never overflows. */
AVX2 static inline __m256 v_sigmoid2(__m256 x, __m256 *oms) {
  __m256 ax = _mm256_andnot_ps(v_set(-0.0f), x);
  __m256 e = v_exp(_mm256_sub_ps(_mm256_setzero_ps(), ax));
  __m256 r = _mm256_div_ps(v_set(1.0f), _mm256_add_ps(v_set(1.0f), e));
  __m256 er = _mm256_mul_ps(e, r);
  __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
  if (oms) *oms = _mm256_blendv_ps(er, r, neg);
  return _mm256_blendv_ps(r, er, neg);
}
AVX2 static inline __m256 v_sigmoid(__m256 x) { return v_sigmoid2(x, NULL); }

/* Normal CDF Phi(x) (and pdf phi(x) if wanted), accurate in relative terms in the lower tail, which
 * exact GELU needs for x < 0: Phi(-t) = 0.5 exp(-t^2/2) R(t), R(t) = erfc(t/sqrt2) exp(t^2/2), t >= 0.
 * R is smooth and slowly varying; we fitted a degree-9 polynomial in u = 1/(1 + t/3) on [0, 14]
 * (weighted least squares on Chebyshev nodes against libm erfc in double; max relative error 3.5e-7
 * when evaluated in f32). exp(-t^2/2) gets the rounding error of t^2 back through an FMA residual. */
AVX2 static inline __m256 v_phi(__m256 x, __m256 *pdf) {
  __m256 ax = _mm256_andnot_ps(v_set(-0.0f), x);
  __m256 t = _mm256_min_ps(ax, v_set(14.0f));
  __m256 u = _mm256_div_ps(v_set(1.0f), _mm256_fmadd_ps(t, v_set(1.0f / 3.0f), v_set(1.0f)));
  __m256 R = v_set(-5.516790226e-02f);
  R = _mm256_fmadd_ps(R, u, v_set(3.074695766e-01f));
  R = _mm256_fmadd_ps(R, u, v_set(-6.463918090e-01f));
  R = _mm256_fmadd_ps(R, u, v_set(5.634147525e-01f));
  R = _mm256_fmadd_ps(R, u, v_set(-2.004264742e-01f));
  R = _mm256_fmadd_ps(R, u, v_set(2.844960690e-01f));
  R = _mm256_fmadd_ps(R, u, v_set(2.112683505e-01f));
  R = _mm256_fmadd_ps(R, u, v_set(2.696780264e-01f));
  R = _mm256_fmadd_ps(R, u, v_set(2.656479180e-01f));
  R = _mm256_fmadd_ps(R, u, v_set(1.149249056e-05f));
  __m256 x2 = _mm256_mul_ps(ax, ax);
  __m256 err = _mm256_and_ps(_mm256_fmsub_ps(ax, ax, x2), _mm256_cmp_ps(ax, v_set(14.0f), _CMP_LT_OQ));
  __m256 g = v_exp(_mm256_mul_ps(x2, v_set(-0.5f)));
  g = _mm256_fnmadd_ps(g, _mm256_mul_ps(err, v_set(0.5f)), g);
  __m256 tail = _mm256_mul_ps(_mm256_mul_ps(g, R), v_set(0.5f));
  if (pdf) *pdf = _mm256_mul_ps(g, v_set(0.398942280401432678f));
  return _mm256_blendv_ps(_mm256_sub_ps(v_set(1.0f), tail), tail, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ));
}

#define GELU_K0 0.797884560802865355f /* sqrt(2/pi) */
#define GELU_C 0.044715f
/* gelu_tanh(x) = 0.5 x (1 + tanh(u)) = x sigmoid(2u): the sigmoid form has no cancellation for x < 0. */
AVX2 static inline __m256 v_gelu_tanh_s(__m256 x, __m256 *oms) {
  __m256 x2 = _mm256_mul_ps(x, x);
  __m256 u = _mm256_mul_ps(_mm256_mul_ps(x, v_set(2.0f * GELU_K0)), _mm256_fmadd_ps(x2, v_set(GELU_C), v_set(1.0f)));
  return v_sigmoid2(u, oms);
}
#endif

/* ------------------------------------------------------------------------------------------------ */
/* Scalar math (the portable path; double precision through libm, rounded once to f32). */
static inline float s_sigmoid(float x) { return (float)(1.0 / (1.0 + exp(-(double)x))); }
static inline double d_phi(double x) { return 0.5 * erfc(-x * 0.70710678118654752440); }

static float s_unary(int op, float x, float s, float s2) {
  double d = x;
  switch (op) {
    case U_NEG: return -x;
    case U_EXP: return (float)exp(d);
    case U_LOG: return (float)log(d);
    case U_SQRT: return sqrtf(x);
    case U_RSQRT: return (float)(1.0 / sqrt(d));
    case U_ABS: return fabsf(x);
    case U_SQUARE: return x * x;
    case U_SIGMOID: return s_sigmoid(x);
    case U_TANH: return (float)tanh(d);
    case U_RELU: return x > 0 ? x : (x == x ? 0.0f : x);
    case U_SILU: return (float)(d / (1.0 + exp(-d)));
    case U_GELU: return (float)(d * d_phi(d));
    case U_GELU_TANH: {
      double u = 0.79788456080286535588 * (d + 0.044715 * d * d * d);
      return (float)(0.5 * d * (1.0 + tanh(u)));
    }
    case U_POW: return (float)pow(d, (double)s);
    case U_ADDS: return x + s;
    case U_MULS: return x * s;
    case U_CLAMP: { float y = x < s ? s : x; return y > s2 ? s2 : y; }
  }
  return NAN;
}

static float s_unary_grad(int op, float x, float dy) {
  double d = x;
  switch (op) {
    case G_SIGMOID: { double sg = 1.0 / (1.0 + exp(-d)); return (float)(dy * sg * (1.0 - sg)); }
    case G_TANH: { double t = tanh(d); return (float)(dy * (1.0 - t * t)); }
    case G_RELU: return x > 0 ? dy : 0.0f;
    case G_SILU: { double sg = 1.0 / (1.0 + exp(-d)); return (float)(dy * sg * (1.0 + d * (1.0 - sg))); }
    case G_GELU: return (float)(dy * (d_phi(d) + d * exp(-0.5 * d * d) * 0.39894228040143267794));
    case G_GELU_TANH: {
      double k0 = 0.79788456080286535588, c = 0.044715;
      double t = tanh(k0 * (d + c * d * d * d));
      return (float)(dy * (0.5 * (1.0 + t) + 0.5 * d * (1.0 - t * t) * k0 * (1.0 + 3.0 * c * d * d)));
    }
  }
  return NAN;
}

/* ------------------------------------------------------------------------------------------------ */
/* unary / unaryGrad */
typedef struct { int op; float *dst; const float *src; const float *dy; float s, s2; } ew_ctx;

static void unary_c(void *vc, long b, long e, int tid) {
  (void)tid;
  ew_ctx *c = vc;
  float *d = c->dst;
  const float *x = c->src;
  switch (c->op) { /* the cheap ops as tight loops (the compiler vectorises them with SSE2) */
    case U_NEG: for (long i = b; i < e; i++) d[i] = -x[i]; return;
    case U_ADDS: for (long i = b; i < e; i++) d[i] = x[i] + c->s; return;
    case U_MULS: for (long i = b; i < e; i++) d[i] = x[i] * c->s; return;
    case U_SQUARE: for (long i = b; i < e; i++) d[i] = x[i] * x[i]; return;
    default: for (long i = b; i < e; i++) d[i] = s_unary(c->op, x[i], c->s, c->s2);
  }
}

static void unary_grad_c(void *vc, long b, long e, int tid) {
  (void)tid;
  ew_ctx *c = vc;
  for (long i = b; i < e; i++) c->dst[i] = s_unary_grad(c->op, c->src[i], c->dy[i]);
}

#ifdef R1_X86
/* Runs EXPR (a function of the __m256 x) over [b, e); the tail goes through a zero-padded buffer so
 * every element takes the same vector code path. */
#define VMAP(EXPR) do { \
    long i = b; \
    for (; i + 8 <= e; i += 8) { __m256 x = _mm256_loadu_ps(src + i); _mm256_storeu_ps(dst + i, (EXPR)); } \
    if (i < e) { float tb[8] = {0}; long r_ = e - i; memcpy(tb, src + i, (size_t)r_ * 4); \
      __m256 x = _mm256_loadu_ps(tb); _mm256_storeu_ps(tb, (EXPR)); memcpy(dst + i, tb, (size_t)r_ * 4); } \
  } while (0)
/* Same with a second input dy (for gradients). */
#define VMAP2(EXPR) do { \
    long i = b; \
    for (; i + 8 <= e; i += 8) { __m256 x = _mm256_loadu_ps(src + i), g = _mm256_loadu_ps(dy + i); \
      _mm256_storeu_ps(dst + i, (EXPR)); } \
    if (i < e) { float tb[8] = {0}, tg[8] = {0}; long r_ = e - i; memcpy(tb, src + i, (size_t)r_ * 4); \
      memcpy(tg, dy + i, (size_t)r_ * 4); __m256 x = _mm256_loadu_ps(tb), g = _mm256_loadu_ps(tg); \
      _mm256_storeu_ps(tb, (EXPR)); memcpy(dst + i, tb, (size_t)r_ * 4); } \
  } while (0)

AVX2 static inline __m256 v_pow_half(__m256 x) {
  __m256 r = _mm256_sqrt_ps(_mm256_add_ps(x, _mm256_setzero_ps()));
  return _mm256_blendv_ps(r, v_set(INFINITY), _mm256_cmp_ps(x, v_set(-INFINITY), _CMP_EQ_OQ));
}

AVX2 static void unary_avx2(void *vc, long b, long e, int tid) {
  ew_ctx *c = vc;
  float *dst = c->dst;
  const float *src = c->src;
  const __m256 zero = _mm256_setzero_ps(), one = v_set(1.0f), sv = v_set(c->s), s2v = v_set(c->s2);
  switch (c->op) {
    case U_NEG: VMAP(_mm256_xor_ps(x, v_set(-0.0f))); return;
    case U_EXP: VMAP(v_exp(x)); return;
    case U_LOG: VMAP(v_log(x)); return;
    case U_SQRT: VMAP(_mm256_sqrt_ps(x)); return;
    case U_RSQRT: VMAP(_mm256_div_ps(one, _mm256_sqrt_ps(x))); return;
    case U_ABS: VMAP(_mm256_andnot_ps(v_set(-0.0f), x)); return;
    case U_SQUARE: VMAP(_mm256_mul_ps(x, x)); return;
    case U_SIGMOID: VMAP(v_sigmoid(x)); return;
    case U_TANH: VMAP(v_tanh(x)); return;
    case U_RELU: VMAP(_mm256_blendv_ps(_mm256_max_ps(x, zero), x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q))); return; /* -0 -> 0, NaN stays */
    case U_SILU: VMAP(_mm256_mul_ps(x, v_sigmoid(x))); return;
    case U_GELU: VMAP(_mm256_mul_ps(x, v_phi(x, NULL))); return;
    case U_GELU_TANH: VMAP(_mm256_mul_ps(x, v_gelu_tanh_s(x, NULL))); return;
    case U_ADDS: VMAP(_mm256_add_ps(x, sv)); return;
    case U_MULS: VMAP(_mm256_mul_ps(x, sv)); return;
    case U_CLAMP: VMAP(_mm256_min_ps(s2v, _mm256_max_ps(sv, x))); return;
    case U_POW:
      if (c->s == 2.0f) { VMAP(_mm256_mul_ps(x, x)); return; }
      if (c->s == 1.0f) { VMAP(x); return; }
      /* pow(x, +-0.5) differs from sqrt at -0 (gives +0) and -inf (gives +inf): x + 0 maps -0 to +0 */
      if (c->s == 0.5f) { VMAP(v_pow_half(x)); return; }
      if (c->s == -1.0f) { VMAP(_mm256_div_ps(one, x)); return; }
      if (c->s == -0.5f) { VMAP(_mm256_div_ps(one, v_pow_half(x))); return; }
      unary_c(vc, b, e, tid); /* general exponent: libm pow (exp(s log x) would lose ~|s log x| ulp) */
      return;
  }
}

AVX2 static void unary_grad_avx2(void *vc, long b, long e, int tid) {
  (void)tid;
  ew_ctx *c = vc;
  float *dst = c->dst;
  const float *src = c->src, *dy = c->dy;
  const __m256 one = v_set(1.0f), zero = _mm256_setzero_ps();
  switch (c->op) {
    case G_SIGMOID: VMAP2(({ __m256 o; __m256 s = v_sigmoid2(x, &o); _mm256_mul_ps(g, _mm256_mul_ps(s, o)); })); return;
    /* 1 - tanh^2 = 4e/(1+e)^2 with e = exp(-2|x|): no cancellation for large |x| */
    case G_TANH: VMAP2(({ __m256 e = v_exp(_mm256_mul_ps(_mm256_andnot_ps(v_set(-0.0f), x), v_set(-2.0f)));
      __m256 d = _mm256_add_ps(one, e);
      _mm256_mul_ps(g, _mm256_div_ps(_mm256_mul_ps(v_set(4.0f), e), _mm256_mul_ps(d, d))); })); return;
    case G_RELU: VMAP2(_mm256_and_ps(g, _mm256_cmp_ps(x, zero, _CMP_GT_OQ))); return;
    case G_SILU: VMAP2(({ __m256 o; __m256 s = v_sigmoid2(x, &o);
      _mm256_mul_ps(g, _mm256_mul_ps(s, _mm256_fmadd_ps(x, o, one))); })); return;
    case G_GELU: VMAP2(({ __m256 pdf; __m256 cdf = v_phi(x, &pdf); _mm256_mul_ps(g, _mm256_fmadd_ps(x, pdf, cdf)); })); return;
    case G_GELU_TANH: VMAP2(({
      __m256 o; __m256 s = v_gelu_tanh_s(x, &o), x2 = _mm256_mul_ps(x, x);
      __m256 du = _mm256_mul_ps(v_set(2.0f * GELU_K0), _mm256_fmadd_ps(x2, v_set(3.0f * GELU_C), one));
      __m256 ds = _mm256_mul_ps(_mm256_mul_ps(s, o), du);
      _mm256_mul_ps(g, _mm256_fmadd_ps(x, ds, s)); })); return;
  }
}
#endif

void k_unary(int op, float *dst, const float *src, long n, float s, float s2) {
  ew_ctx c = {op, dst, src, NULL, s, s2};
#ifdef R1_X86
  if (use_avx2()) { r1_parallel_for(n, GRAIN, unary_avx2, &c); return; }
#endif
  r1_parallel_for(n, GRAIN, unary_c, &c);
}

void k_unary_grad(int op, float *dx, const float *x, const float *dy, long n) {
  ew_ctx c = {op, dx, x, dy, 0, 0};
#ifdef R1_X86
  if (use_avx2()) { r1_parallel_for(n, GRAIN, unary_grad_avx2, &c); return; }
#endif
  r1_parallel_for(n, GRAIN, unary_grad_c, &c);
}

/* ------------------------------------------------------------------------------------------------ */
/* N-d strided iteration (copy, binary, compare, where).
 * Dims of size 1 are dropped and adjacent dims merged wherever every operand is contiguous across
 * them, so the common cases reduce to one long inner loop with stride 1 or 0. The flat index range is
 * split over threads; each chunk rebuilds its multi-index once and then walks inner rows. */
typedef void (*nd_inner_fn)(void *kctx, long len, const long *off, const long *ist);
typedef struct {
  int nd, nops;
  long shape[R1_MAX_DIMS];
  long st[4][R1_MAX_DIMS];
  nd_inner_fn fn;
  void *kctx;
} nd_plan;

/* Returns total element count (0: nothing to do). st[o] are input strides for each operand. */
static long nd_prepare(nd_plan *p, const long *shape, int ndim, int nops, long st[][R1_MAX_DIMS]) {
  long sh[R1_MAX_DIMS], s[4][R1_MAX_DIMS];
  int nd = 0;
  long total = 1;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] == 0) return 0;
    total *= shape[d];
    if (shape[d] == 1) continue;
    sh[nd] = shape[d];
    for (int o = 0; o < nops; o++) s[o][nd] = st[o][d];
    nd++;
  }
  p->nops = nops;
  if (nd == 0) { /* a scalar */
    p->nd = 1;
    p->shape[0] = 1;
    for (int o = 0; o < nops; o++) p->st[o][0] = 0;
    return 1;
  }
  /* merge from the innermost dim outwards: build reversed then flip */
  long rsh[R1_MAX_DIMS], rs[4][R1_MAX_DIMS];
  int rn = 0;
  rsh[0] = sh[nd - 1];
  for (int o = 0; o < nops; o++) rs[o][0] = s[o][nd - 1];
  rn = 1;
  for (int d = nd - 2; d >= 0; d--) {
    int ok = 1;
    for (int o = 0; o < nops; o++)
      if (s[o][d] != rs[o][rn - 1] * rsh[rn - 1]) { ok = 0; break; }
    if (ok) {
      rsh[rn - 1] *= sh[d];
    } else {
      rsh[rn] = sh[d];
      for (int o = 0; o < nops; o++) rs[o][rn] = s[o][d];
      rn++;
    }
  }
  p->nd = rn;
  for (int d = 0; d < rn; d++) {
    p->shape[d] = rsh[rn - 1 - d];
    for (int o = 0; o < nops; o++) p->st[o][d] = rs[o][rn - 1 - d];
  }
  return total;
}

static void nd_range(void *vp, long b, long e, int tid) {
  (void)tid;
  nd_plan *p = vp;
  int nd = p->nd, last = nd - 1;
  long idx[R1_MAX_DIMS], off[4], ist[4];
  long rem = b;
  for (int d = last; d >= 0; d--) { idx[d] = rem % p->shape[d]; rem /= p->shape[d]; }
  for (int o = 0; o < p->nops; o++) ist[o] = p->st[o][last];
  long pos = b;
  while (pos < e) {
    for (int o = 0; o < p->nops; o++) {
      long x = 0;
      for (int d = 0; d < nd; d++) x += idx[d] * p->st[o][d];
      off[o] = x;
    }
    long len = min_l(p->shape[last] - idx[last], e - pos);
    p->fn(p->kctx, len, off, ist);
    pos += len;
    idx[last] += len;
    for (int d = last; d > 0 && idx[d] >= p->shape[d]; d--) { idx[d] = 0; idx[d - 1]++; }
  }
}

static void nd_run(nd_plan *p, long total) {
  if (total > 0) r1_parallel_for(total, GRAIN, nd_range, p);
}

/* copy: operand 0 = dst, 1 = src; element size 1, 2, 4 or 8 bytes. */
typedef struct { char *d; const char *s; int es; } copy_ctx;
static void copy_inner(void *vc, long len, const long *off, const long *ist) {
  copy_ctx *c = vc;
  int es = c->es;
  char *d = c->d + off[0] * es;
  const char *s = c->s + off[1] * es;
  long ds = ist[0], ss = ist[1];
  if (ds == 1 && ss == 1) { memcpy(d, s, (size_t)len * es); return; }
  switch (es) {
#define CP(T) { T *dd = (T *)d; const T *sp = (const T *)s; for (long i = 0; i < len; i++) dd[i * ds] = sp[i * ss]; } break;
    case 1: CP(uint8_t)
    case 2: CP(uint16_t)
    case 4: CP(uint32_t)
    default: CP(uint64_t)
#undef CP
  }
}

void k_copy(const long *shape, int ndim, r1_operand *dst, r1_operand *src, int esize) {
  nd_plan p;
  long st[4][R1_MAX_DIMS];
  memcpy(st[0], dst->st, sizeof st[0]);
  memcpy(st[1], src->st, sizeof st[1]);
  long total = nd_prepare(&p, shape, ndim, 2, st);
  copy_ctx c = {dst->p, src->p, esize};
  p.fn = copy_inner;
  p.kctx = &c;
  nd_run(&p, total);
}

/* binary: operand 0 = dst (contiguous), 1 = a, 2 = b. */
#define BIN_LOOPS(EXPR) \
  if (sa == 1 && sb == 1) { for (long i = 0; i < len; i++) { float x = a[i], y = b[i]; d[i] = (EXPR); } } \
  else if (sa == 1 && sb == 0) { float y = b[0]; for (long i = 0; i < len; i++) { float x = a[i]; d[i] = (EXPR); } } \
  else if (sa == 0 && sb == 1) { float x = a[0]; for (long i = 0; i < len; i++) { float y = b[i]; d[i] = (EXPR); } } \
  else { for (long i = 0; i < len; i++) { float x = a[i * sa], y = b[i * sb]; d[i] = (EXPR); } }

/* maximum/minimum propagate NaN (as torch.maximum and Math.max do). */
#define FMAXN(x, y) ((x) != (x) ? (x) : ((y) != (y) ? (y) : ((x) > (y) ? (x) : (y))))
#define FMINN(x, y) ((x) != (x) ? (x) : ((y) != (y) ? (y) : ((x) < (y) ? (x) : (y))))

R1_TWICE(void, bin_inner, (int op, long len, float *restrict d, const float *restrict a, long sa,
                           const float *restrict b, long sb),
  switch (op) {
    case B_ADD: BIN_LOOPS(x + y) break;
    case B_SUB: BIN_LOOPS(x - y) break;
    case B_MUL: BIN_LOOPS(x * y) break;
    case B_DIV: BIN_LOOPS(x / y) break;
    case B_POW: BIN_LOOPS((float)pow((double)x, (double)y)) break;
    case B_MAX: BIN_LOOPS(FMAXN(x, y)) break;
    case B_MIN: BIN_LOOPS(FMINN(x, y)) break;
  })

typedef struct { int op; void *d; const void *a, *b, *c; int avx2; } bin_ctx;
static void binary_inner(void *vc, long len, const long *off, const long *ist) {
  bin_ctx *c = vc;
  float *d = (float *)c->d + off[0];
  const float *a = (const float *)c->a + off[1], *b = (const float *)c->b + off[2];
#ifdef R1_X86
  if (c->avx2) { bin_inner_avx2(c->op, len, d, a, ist[1], b, ist[2]); return; }
#endif
  bin_inner_c(c->op, len, d, a, ist[1], b, ist[2]);
}

static void contiguous_strides(long *st, const long *shape, int ndim) {
  long s = 1;
  for (int d = ndim - 1; d >= 0; d--) { st[d] = s; s *= shape[d]; }
}

void k_binary(int op, float *dst, const long *shape, int ndim, r1_operand *a, r1_operand *b) {
  nd_plan p;
  long st[4][R1_MAX_DIMS];
  contiguous_strides(st[0], shape, ndim);
  memcpy(st[1], a->st, sizeof st[1]);
  memcpy(st[2], b->st, sizeof st[2]);
  long total = nd_prepare(&p, shape, ndim, 3, st);
  bin_ctx c = {op, dst, a->p, b->p, NULL, use_avx2()};
  p.fn = binary_inner;
  p.kctx = &c;
  nd_run(&p, total);
}

#define CMP_LOOPS(EXPR) \
  if (sa == 1 && sb == 1) { for (long i = 0; i < len; i++) { float x = a[i], y = b[i]; d[i] = (EXPR); } } \
  else if (sa == 1 && sb == 0) { float y = b[0]; for (long i = 0; i < len; i++) { float x = a[i]; d[i] = (EXPR); } } \
  else { for (long i = 0; i < len; i++) { float x = a[i * sa], y = b[i * sb]; d[i] = (EXPR); } }

R1_TWICE(void, cmp_inner, (int op, long len, uint8_t *restrict d, const float *restrict a, long sa,
                           const float *restrict b, long sb),
  switch (op) {
    case C_EQ: CMP_LOOPS(x == y) break;
    case C_NE: CMP_LOOPS(x != y) break;
    case C_LT: CMP_LOOPS(x < y) break;
    case C_LE: CMP_LOOPS(x <= y) break;
    case C_GT: CMP_LOOPS(x > y) break;
    case C_GE: CMP_LOOPS(x >= y) break;
  })

static void compare_inner(void *vc, long len, const long *off, const long *ist) {
  bin_ctx *c = vc;
  uint8_t *d = (uint8_t *)c->d + off[0];
  const float *a = (const float *)c->a + off[1], *b = (const float *)c->b + off[2];
#ifdef R1_X86
  if (c->avx2) { cmp_inner_avx2(c->op, len, d, a, ist[1], b, ist[2]); return; }
#endif
  cmp_inner_c(c->op, len, d, a, ist[1], b, ist[2]);
}

void k_compare(int op, uint8_t *dst, const long *shape, int ndim, r1_operand *a, r1_operand *b) {
  nd_plan p;
  long st[4][R1_MAX_DIMS];
  contiguous_strides(st[0], shape, ndim);
  memcpy(st[1], a->st, sizeof st[1]);
  memcpy(st[2], b->st, sizeof st[2]);
  long total = nd_prepare(&p, shape, ndim, 3, st);
  bin_ctx c = {op, dst, a->p, b->p, NULL, use_avx2()};
  p.fn = compare_inner;
  p.kctx = &c;
  nd_run(&p, total);
}

R1_TWICE(void, where_loop, (long len, float *restrict d, const uint8_t *restrict k, long sk,
                            const float *restrict a, long sa, const float *restrict b, long sb),
  if (sk == 1 && sa == 1 && sb == 1) { for (long i = 0; i < len; i++) d[i] = k[i] ? a[i] : b[i]; }
  else { for (long i = 0; i < len; i++) d[i] = k[i * sk] ? a[i * sa] : b[i * sb]; })

static void where_inner(void *vc, long len, const long *off, const long *ist) {
  bin_ctx *c = vc;
  float *d = (float *)c->d + off[0];
  const uint8_t *k = (const uint8_t *)c->c + off[1];
  const float *a = (const float *)c->a + off[2], *b = (const float *)c->b + off[3];
#ifdef R1_X86
  if (c->avx2) { where_loop_avx2(len, d, k, ist[1], a, ist[2], b, ist[3]); return; }
#endif
  where_loop_c(len, d, k, ist[1], a, ist[2], b, ist[3]);
}

void k_where(float *dst, const long *shape, int ndim, r1_operand *cnd, r1_operand *a, r1_operand *b) {
  nd_plan p;
  long st[4][R1_MAX_DIMS];
  contiguous_strides(st[0], shape, ndim);
  memcpy(st[1], cnd->st, sizeof st[1]);
  memcpy(st[2], a->st, sizeof st[2]);
  memcpy(st[3], b->st, sizeof st[3]);
  long total = nd_prepare(&p, shape, ndim, 4, st);
  bin_ctx c = {0, dst, a->p, b->p, cnd->p, use_avx2()};
  p.fn = where_inner;
  p.kctx = &c;
  nd_run(&p, total);
}

/* ------------------------------------------------------------------------------------------------ */
/* Row primitives used by the fused kernels, in a C and an AVX2 flavour (picked once per call). */
typedef struct {
  float (*max)(const float *x, long n);                      /* -inf for n == 0; NaN if any NaN */
  float (*sumexp)(float *d, const float *x, long n, float m); /* sum exp(x - m); stores the terms if d */
  float (*dot)(const float *a, const float *b, long n);
  float (*dot3)(const float *a, const float *b, const float *c, long n);
  float (*sum)(const float *x, long n);
} vops_t;

static float max_c(const float *x, long n) {
  float m = -INFINITY;
  for (long i = 0; i < n; i++) m = FMAXN(x[i], m);
  return m;
}
static float sumexp_c(float *d, const float *x, long n, float m) {
  double s = 0;
  for (long i = 0; i < n; i++) {
    float e = (float)exp((double)x[i] - (double)m);
    if (d) d[i] = e;
    s += e;
  }
  return (float)s;
}
static float dot_c(const float *a, const float *b, long n) {
  double s = 0;
  for (long i = 0; i < n; i++) s += (double)a[i] * b[i];
  return (float)s;
}
static float dot3_c(const float *a, const float *b, const float *c, long n) {
  double s = 0;
  for (long i = 0; i < n; i++) s += (double)a[i] * b[i] * c[i];
  return (float)s;
}
static float sum_c(const float *x, long n) {
  double s = 0;
  for (long i = 0; i < n; i++) s += x[i];
  return (float)s;
}

#ifdef R1_X86
/* Reductions keep 4 vector accumulators (latency hiding) and fold every 4096 elements into a double,
 * so long rows (V = 150K vocabularies) keep ~f32 relative accuracy. */
#define RBLOCK 4096
AVX2 static float max_avx2(const float *x, long n) {
  __m256 m0 = v_set(-INFINITY), m1 = m0, nanacc = _mm256_setzero_ps();
  long i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
    m0 = _mm256_max_ps(m0, a);
    m1 = _mm256_max_ps(m1, b);
    nanacc = _mm256_or_ps(nanacc, _mm256_cmp_ps(a, b, _CMP_UNORD_Q));
  }
  for (; i + 8 <= n; i += 8) {
    __m256 a = _mm256_loadu_ps(x + i);
    m0 = _mm256_max_ps(m0, a);
    nanacc = _mm256_or_ps(nanacc, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
  }
  float m = v_hmax(_mm256_max_ps(m0, m1));
  if (_mm256_movemask_ps(nanacc)) return NAN;
  for (; i < n; i++) m = FMAXN(x[i], m);
  return m;
}
AVX2 static float sumexp_avx2(float *d, const float *x, long n, float m) {
  const __m256 mv = v_set(m);
  double total = 0;
  for (long b0 = 0; b0 < n; b0 += RBLOCK) {
    long e = min_l(n, b0 + RBLOCK), i = b0;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0;
    for (; i + 16 <= e; i += 16) {
      __m256 a = v_exp(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
      __m256 b = v_exp(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), mv));
      if (d) { _mm256_storeu_ps(d + i, a); _mm256_storeu_ps(d + i + 8, b); }
      s0 = _mm256_add_ps(s0, a);
      s1 = _mm256_add_ps(s1, b);
    }
    for (; i < e; i += 8) {
      long r = e - i;
      __m256i mk = v_tmask(r);
      __m256 a = v_exp(_mm256_sub_ps(_mm256_maskload_ps(x + i, mk), mv));
      a = _mm256_and_ps(a, _mm256_castsi256_ps(mk));
      if (d) _mm256_maskstore_ps(d + i, mk, a);
      s0 = _mm256_add_ps(s0, a);
    }
    total += v_hsum(_mm256_add_ps(s0, s1));
  }
  return (float)total;
}
AVX2 static float dot_avx2(const float *a, const float *b, long n) {
  double total = 0;
  for (long b0 = 0; b0 < n; b0 += RBLOCK) {
    long e = min_l(n, b0 + RBLOCK), i = b0;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (; i + 32 <= e; i += 32) {
      s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
      s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
      s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
      s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i < e; i += 8) {
      __m256i mk = v_tmask(e - i);
      s0 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, mk), _mm256_maskload_ps(b + i, mk), s0);
    }
    total += v_hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  }
  return (float)total;
}
AVX2 static float dot3_avx2(const float *a, const float *b, const float *c, long n) {
  double total = 0;
  for (long b0 = 0; b0 < n; b0 += RBLOCK) {
    long e = min_l(n, b0 + RBLOCK), i = b0;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0;
    for (; i + 16 <= e; i += 16) {
      s0 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)), _mm256_loadu_ps(c + i), s0);
      s1 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8)), _mm256_loadu_ps(c + i + 8), s1);
    }
    for (; i < e; i += 8) {
      __m256i mk = v_tmask(e - i);
      s0 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_maskload_ps(a + i, mk), _mm256_maskload_ps(b + i, mk)),
                           _mm256_maskload_ps(c + i, mk), s0);
    }
    total += v_hsum(_mm256_add_ps(s0, s1));
  }
  return (float)total;
}
AVX2 static float sum_avx2(const float *x, long n) {
  double total = 0;
  for (long b0 = 0; b0 < n; b0 += RBLOCK) {
    long e = min_l(n, b0 + RBLOCK), i = b0;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (; i + 32 <= e; i += 32) {
      s0 = _mm256_add_ps(s0, _mm256_loadu_ps(x + i));
      s1 = _mm256_add_ps(s1, _mm256_loadu_ps(x + i + 8));
      s2 = _mm256_add_ps(s2, _mm256_loadu_ps(x + i + 16));
      s3 = _mm256_add_ps(s3, _mm256_loadu_ps(x + i + 24));
    }
    for (; i < e; i += 8) s0 = _mm256_add_ps(s0, _mm256_maskload_ps(x + i, v_tmask(e - i)));
    total += v_hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  }
  return (float)total;
}
static const vops_t vops_avx2 = {max_avx2, sumexp_avx2, dot_avx2, dot3_avx2, sum_avx2};

/* AVX-512 max and sum-of-exp (softmax rows: attention, the sampler's log-sum-exp over 150K logits): v_exp's
 * algorithm on 16 lanes, the same operations lane for lane. */
#define A512 __attribute__((target("avx512f,avx2,fma")))
#define S16(c) _mm512_set1_ps(c)
A512 static inline __m512 v_exp512(__m512 x) {
  const __m512 xc = _mm512_min_ps(_mm512_max_ps(x, S16(EXP_LO)), S16(EXP_HI));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, S16(EXP_LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 r = _mm512_fnmadd_ps(n, S16(EXP_LN2_LO), _mm512_fnmadd_ps(n, S16(EXP_LN2_HI), xc));
  __m512 y = _mm512_fmadd_ps(_mm512_fmadd_ps(S16(EXP_P0), r, S16(EXP_P1)), r, S16(EXP_P2));
  y = _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_fmadd_ps(y, r, S16(EXP_P3)), r, S16(EXP_P4)), r, S16(EXP_P5));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, S16(1.0f)));
  const __m512i ni = _mm512_cvtps_epi32(n), n1 = _mm512_srai_epi32(ni, 1), n2 = _mm512_sub_epi32(ni, n1);
  const __m512i bias = _mm512_set1_epi32(127);
  y = _mm512_mul_ps(_mm512_mul_ps(y, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n1, bias), 23))),
                    _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n2, bias), 23)));
  y = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, S16(EXP_LO), _CMP_NLT_UQ), y); /* exp(-inf) is exactly 0 */
  return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}
A512 static float max_avx512(const float *x, long n) {
  __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0;
  __mmask16 nan = 0;
  long i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16);
    m0 = _mm512_max_ps(m0, a);
    m1 = _mm512_max_ps(m1, b);
    nan |= _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q);
  }
  for (; i < n; i += 16) {
    const __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
    const __m512 a = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), k, x + i);
    m0 = _mm512_max_ps(m0, a);
    nan |= _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q);
  }
  if (nan) return NAN;
  return _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
}
A512 static float sumexp_avx512(float *d, const float *x, long n, float m) {
  const __m512 mv = _mm512_set1_ps(m);
  double total = 0;
  for (long b0 = 0; b0 < n; b0 += RBLOCK) {
    const long e = min_l(n, b0 + RBLOCK);
    long i = b0;
    __m512 s0 = _mm512_setzero_ps(), s1 = s0;
    for (; i + 32 <= e; i += 32) {
      const __m512 a = v_exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), mv));
      const __m512 b = v_exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), mv));
      if (d) { _mm512_storeu_ps(d + i, a); _mm512_storeu_ps(d + i + 16, b); }
      s0 = _mm512_add_ps(s0, a);
      s1 = _mm512_add_ps(s1, b);
    }
    for (; i < e; i += 16) {
      const __mmask16 k = e - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (e - i)) - 1u);
      const __m512 a = _mm512_maskz_mov_ps(k, v_exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), mv)));
      if (d) _mm512_mask_storeu_ps(d + i, k, a);
      s0 = _mm512_add_ps(s0, a);
    }
    total += (double)_mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
  }
  return (float)total;
}
static const vops_t vops_avx512 = {max_avx512, sumexp_avx512, dot_avx2, dot3_avx2, sum_avx2};
#endif
static const vops_t vops_c = {max_c, sumexp_c, dot_c, dot3_c, sum_c};

static const vops_t *vops(void) {
#ifdef R1_X86
  if (r1_isa() >= R1_ISA_AVX512) return &vops_avx512;
  if (use_avx2()) return &vops_avx2;
#endif
  return &vops_c;
}

/* Simple loops (no reductions), vectorised by the compiler in the AVX2 copy. */
R1_TWICE(void, scale_loop, (float *restrict d, const float *restrict x, float s, long n),
  for (long i = 0; i < n; i++) d[i] = x[i] * s;)
R1_TWICE(void, shift_loop, (float *restrict d, const float *restrict x, float s, long n),
  for (long i = 0; i < n; i++) d[i] = x[i] - s;)
R1_TWICE(void, scale_in_place, (float *restrict d, float s, long n),
  for (long i = 0; i < n; i++) d[i] *= s;)

typedef struct {
  void (*scale)(float *restrict d, const float *restrict x, float s, long n);
  void (*shift)(float *restrict d, const float *restrict x, float s, long n);
  void (*scale_ip)(float *restrict d, float s, long n);
} lops_t;
static const lops_t lops_c = {scale_loop_c, shift_loop_c, scale_in_place_c};
#ifdef R1_X86
static const lops_t lops_avx2 = {scale_loop_avx2, shift_loop_avx2, scale_in_place_avx2};
#endif
static const lops_t *lops(void) {
#ifdef R1_X86
  if (use_avx2()) return &lops_avx2;
#endif
  return &lops_c;
}

/* Rows per chunk so a chunk holds about GRAIN elements. */
static long row_grain(long cols) { return cols >= GRAIN ? 1 : GRAIN / (cols > 0 ? cols : 1); }

/* ------------------------------------------------------------------------------------------------ */
/* reduce / argReduce over [outer, n, inner] */
typedef struct { int op; float *d; const float *s; int32_t *di; long outer, n, inner; } red_ctx;

static void reduce_rows(void *vc, long b, long e, int tid) { /* inner == 1 */
  (void)tid;
  red_ctx *c = vc;
  const vops_t *V = vops();
  for (long o = b; o < e; o++) {
    const float *x = c->s + o * c->n;
    if (c->op == R_SUM) c->d[o] = V->sum(x, c->n);
    else if (c->op == R_MAX) c->d[o] = V->max(x, c->n);
    else {
      float m = INFINITY;
      for (long j = 0; j < c->n; j++) m = FMINN(x[j], m);
      c->d[o] = m;
    }
  }
}

#define IBLK 256
R1_TWICE(void, reduce_cols_tile, (int op, float *restrict d, const float *restrict s, long n, long inner, long len),
  if (op == R_SUM) {
    double acc[IBLK];
    for (long i = 0; i < len; i++) acc[i] = 0;
    for (long j = 0; j < n; j++) { const float *r = s + j * inner; for (long i = 0; i < len; i++) acc[i] += r[i]; }
    for (long i = 0; i < len; i++) d[i] = (float)acc[i];
  } else if (op == R_MAX) {
    for (long i = 0; i < len; i++) d[i] = -INFINITY;
    for (long j = 0; j < n; j++) { const float *r = s + j * inner; for (long i = 0; i < len; i++) d[i] = FMAXN(r[i], d[i]); }
  } else {
    for (long i = 0; i < len; i++) d[i] = INFINITY;
    for (long j = 0; j < n; j++) { const float *r = s + j * inner; for (long i = 0; i < len; i++) d[i] = FMINN(r[i], d[i]); }
  })

static void reduce_cols(void *vc, long b, long e, int tid) { /* tiles of (outer, IBLK columns) */
  (void)tid;
  red_ctx *c = vc;
  long nt = (c->inner + IBLK - 1) / IBLK;
  int avx = use_avx2();
  for (long t = b; t < e; t++) {
    long o = t / nt, i0 = (t % nt) * IBLK, len = min_l(IBLK, c->inner - i0);
    float *d = c->d + o * c->inner + i0;
    const float *s = c->s + o * c->n * c->inner + i0;
    if (avx) reduce_cols_tile_avx2(c->op, d, s, c->n, c->inner, len);
    else reduce_cols_tile_c(c->op, d, s, c->n, c->inner, len);
  }
}

/* ------------------------------------------------------------------------------------------------ */
/* Memory read probe: each thread sums its contiguous share of src read as `streams` interleaved sequential
 * streams, 64 bytes from each in turn, each prefetched 1 KiB ahead. Why: a roofline needs the most the memory
 * system gives, and one sequential stream per thread is not it everywhere: on two threads of a Zen 5-class VM a
 * plain row sum (k_reduce) read 47-60 GB/s where 4-6 interleaved streams read 69-83 (2 streams ~55, 8 ~66). The
 * generate bench takes the faster of the row sum and 4 streams. */
typedef struct { float *dst; const float *src; long lines, nt; int streams; } probe_ctx;
#define PROBE_PF 256 /* floats: 1 KiB */
#ifdef R1_X86
AVX2 static float probe_share_avx2(const float *src, long l0, long ls, int streams) {
  __m256 a = _mm256_setzero_ps(), b = a;
  for (long i = 0; i < ls; i++)
    for (int s = 0; s < streams; s++) {
      const float *q = src + (l0 + s * ls + i) * 16;
      _mm_prefetch((const char *)(q + PROBE_PF), _MM_HINT_T0);
      a = _mm256_add_ps(a, _mm256_loadu_ps(q));
      b = _mm256_add_ps(b, _mm256_loadu_ps(q + 8));
    }
  float t[8];
  _mm256_storeu_ps(t, _mm256_add_ps(a, b));
  return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}
#endif
static void probe_chunk(void *vc, long b, long e, int tid) {
  (void)tid;
  const probe_ctx *c = vc;
  for (long t = b; t < e; t++) {
    const long per = c->lines / c->nt, l0 = t * per, ls = per / c->streams;
#ifdef R1_X86
    if (use_avx2()) { c->dst[t] = probe_share_avx2(c->src, l0, ls, c->streams); continue; }
#endif
    float acc[16] = {0};
    for (long i = 0; i < ls; i++)
      for (int s = 0; s < c->streams; s++) {
        const float *q = c->src + (l0 + s * ls + i) * 16;
        for (int k = 0; k < 16; k++) acc[k] += q[k];
      }
    float sum = 0.0f;
    for (int k = 0; k < 16; k++) sum += acc[k];
    c->dst[t] = sum;
  }
}
/* dst[t] (t < r1_num_threads()) = the sum of thread t's share; n: floats in src (whole 64-byte lines are read). */
void k_read_probe(float *dst, const float *src, long n, int streams) {
  const long nt = r1_num_threads();
  probe_ctx c = {dst, src, n / 16, nt, streams < 1 ? 1 : streams};
  r1_parallel_for(nt, 1, probe_chunk, &c);
}

void k_reduce(int op, float *dst, const float *src, long outer, long n, long inner) {
  red_ctx c = {op, dst, src, NULL, outer, n, inner};
  if (outer == 0 || inner == 0) return;
  if (inner == 1) {
    r1_parallel_for(outer, row_grain(n), reduce_rows, &c);
  } else {
    long nt = (inner + IBLK - 1) / IBLK;
    long work = n * min_l(inner, IBLK);
    r1_parallel_for(outer * nt, work >= GRAIN ? 1 : GRAIN / (work > 0 ? work : 1), reduce_cols, &c);
  }
}

/* NaN counts as the maximum (argmax takes the first NaN; argmin never picks a NaN unless all are). */
static void argreduce_range(void *vc, long b, long e, int tid) {
  (void)tid;
  red_ctx *c = vc;
  int is_min = c->op;
  const vops_t *V = vops();
  for (long t = b; t < e; t++) {
    if (!is_min && c->inner == 1 && c->n > 0) {
      /* A contiguous row (a vocabulary of logits in greedy decoding): the vectorised max, then the first element equal
       * to it; a NaN max (some element is NaN) goes to the loop below, which returns the first NaN. */
      const float *x = c->s + t * c->n;
      const float m = V->max(x, c->n);
      if (m == m) {
        long j = 0;
        while (x[j] != m) j++;
        c->di[t] = (int32_t)j;
        continue;
      }
    }
    long o = t / c->inner, i = t % c->inner;
    const float *x = c->s + o * c->n * c->inner + i;
    long best = 0;
    float bv = c->n > 0 ? x[0] : 0;
    for (long j = 1; j < c->n; j++) {
      float v = x[j * c->inner];
      int better = is_min ? (v == v && (bv != bv || v < bv)) : (bv == bv && (v != v || v > bv));
      if (better) { best = j; bv = v; }
    }
    c->di[t] = (int32_t)best;
  }
}

/* One long contiguous row (the sampler's logprob: a log-sum-exp over a 150K vocabulary per sequence) is split among
 * the threads: each part's max and sum of exp, combined in double (k_xent). */
#define SPLIT_MIN 32768
#define SPLIT_MAX_PARTS 64
typedef struct {
  const float *x; long n, parts; float m[SPLIT_MAX_PARTS]; double s[SPLIT_MAX_PARTS];
  int pick; long best[SPLIT_MAX_PARTS]; /* pick: each part's first element equal to its max */
} split_ctx;
static int split_parts(long n) {
  const int t = r1_num_threads();
  return n >= SPLIT_MIN && t > 1 ? (int)min_l(t, SPLIT_MAX_PARTS) : 1;
}

void k_argreduce(int is_min, int32_t *dst, const float *src, long outer, long n, long inner) {
  red_ctx c = {is_min, NULL, src, dst, outer, n, inner};
  r1_parallel_for(outer * inner, max_l(1, GRAIN / max_l(n, 1)), argreduce_range, &c);
}

/* ------------------------------------------------------------------------------------------------ */
/* matmul: one multithreaded GEMM per batch item, or (many small products) the batch split over
 * threads with the single-threaded GEMM. accumulate = beta 1. */
typedef struct {
  float *c; const float *a, *b; long aBS, lda, bBS, ldb, m, n, k; int tA, tB; float beta;
} mm_ctx;
static void mm_batch(void *vc, long b0, long e, int tid) {
  (void)tid;
  mm_ctx *c = vc;
  for (long b = b0; b < e; b++)
    r1_sgemm_st(c->tA, c->tB, c->m, c->n, c->k, 1.0f, c->a + b * c->aBS, c->lda, c->b + b * c->bBS, c->ldb,
                c->beta, c->c + b * c->m * c->n, c->n);
}

void k_matmul(float *c, const float *a, long aBS, long lda, int transA, const float *b, long bBS, long ldb, int transB,
              long batch, long m, long n, long k, int accumulate) {
  if (batch == 0 || m == 0 || n == 0) return;
  if (k == 0) {
    if (!accumulate) memset(c, 0, (size_t)(batch * m * n) * sizeof(float));
    return;
  }
  float beta = accumulate ? 1.0f : 0.0f;
  double flops = (double)m * n * k;
  int threads = r1_num_threads();
  if (batch > 1 && threads > 1 && flops < 2e6 && batch >= threads) {
    mm_ctx ctx = {c, a, b, aBS, lda, bBS, ldb, m, n, k, transA, transB, beta};
    r1_parallel_for(batch, max_l(1, (long)(4e5 / flops)), mm_batch, &ctx);
    return;
  }
  for (long i = 0; i < batch; i++)
    r1_sgemm(transA, transB, m, n, k, 1.0f, a + i * aBS, lda, b + i * bBS, ldb, beta, c + i * m * n, n);
}

/* ------------------------------------------------------------------------------------------------ */
/* softmax / log_softmax and their gradients (rows in parallel; each row: max, exp-sum, write). */
typedef struct { float *d; const float *x, *y, *dy; long cols; int log; } sm_ctx;

static void softmax_rows(void *vc, long b, long e, int tid) {
  (void)tid;
  sm_ctx *c = vc;
  const vops_t *V = vops();
  const lops_t *L = lops();
  long n = c->cols;
  for (long r = b; r < e; r++) {
    const float *x = c->x + r * n;
    float *d = c->d + r * n;
    float m = V->max(x, n);
    if (!c->log) {
      float s = V->sumexp(d, x, n, m);
      L->scale_ip(d, 1.0f / s, n);
    } else {
      float s = V->sumexp(NULL, x, n, m);
      L->shift(d, x, m + logf(s), n);
    }
  }
}
void k_softmax(float *dst, const float *src, long rows, long cols, int log) {
  sm_ctx c = {dst, src, NULL, NULL, cols, log};
  r1_parallel_for(rows, row_grain(cols), softmax_rows, &c);
}

R1_TWICE(void, smgrad_loop, (float *restrict dx, const float *restrict y, const float *restrict dy, float s, long n, int log),
  if (!log) { for (long i = 0; i < n; i++) dx[i] = y[i] * (dy[i] - s); }
  else { for (long i = 0; i < n; i++) dx[i] = dy[i] - expf(y[i]) * s; })

#ifdef R1_X86
AVX2 static void lsm_grad_avx2(float *dx, const float *y, const float *dy, float s, long n) {
  const __m256 sv = v_set(s);
  long i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dx + i, _mm256_fnmadd_ps(v_exp(_mm256_loadu_ps(y + i)), sv, _mm256_loadu_ps(dy + i)));
  for (; i < n; i++) dx[i] = dy[i] - expf(y[i]) * s;
}
#endif

static void softmax_grad_rows(void *vc, long b, long e, int tid) {
  (void)tid;
  sm_ctx *c = vc;
  const vops_t *V = vops();
  int avx = use_avx2();
  long n = c->cols;
  for (long r = b; r < e; r++) {
    const float *y = c->y + r * n, *dy = c->dy + r * n;
    float *dx = c->d + r * n;
    if (!c->log) {
      float s = V->dot(dy, y, n);
      if (avx) smgrad_loop_avx2(dx, y, dy, s, n, 0); else smgrad_loop_c(dx, y, dy, s, n, 0);
    } else {
      float s = V->sum(dy, n);
#ifdef R1_X86
      if (avx) { lsm_grad_avx2(dx, y, dy, s, n); continue; }
#endif
      for (long i = 0; i < n; i++) dx[i] = (float)(dy[i] - exp((double)y[i]) * s);
    }
  }
}
void k_softmax_grad(float *dx, const float *y, const float *dy, long rows, long cols, int log) {
  sm_ctx c = {dx, NULL, y, dy, cols, log};
  r1_parallel_for(rows, row_grain(cols), softmax_grad_rows, &c);
}

/* ------------------------------------------------------------------------------------------------ */
/* RMSNorm (Zhang & Sennrich 2019): forward stores rstd; backward writes dx per row and accumulates dw
 * into per-thread double partials (no races, no second pass over dy and x). */
typedef struct {
  float *y, *rstd, *dx; double *part; const float *x, *w, *dy, *rs; long cols; float eps;
} rms_ctx;

R1_TWICE(void, rms_fwd_loop, (float *restrict y, const float *restrict x, const float *restrict w, float r, long n),
  for (long i = 0; i < n; i++) y[i] = x[i] * r * w[i];)

static void rmsnorm_rows(void *vc, long b, long e, int tid) {
  (void)tid;
  rms_ctx *c = vc;
  const vops_t *V = vops();
  int avx = use_avx2();
  long n = c->cols;
  for (long r = b; r < e; r++) {
    const float *x = c->x + r * n;
    float ss = V->dot(x, x, n);
    float rs = (float)(1.0 / sqrt((double)ss / (double)n + (double)c->eps));
    c->rstd[r] = rs;
    if (avx) rms_fwd_loop_avx2(c->y + r * n, x, c->w, rs, n); else rms_fwd_loop_c(c->y + r * n, x, c->w, rs, n);
  }
}
void k_rmsnorm(float *y, float *rstd, const float *x, const float *w, long rows, long cols, float eps) {
  rms_ctx c = {y, rstd, NULL, NULL, x, w, NULL, NULL, cols, eps};
  r1_parallel_for(rows, row_grain(cols), rmsnorm_rows, &c);
}

R1_TWICE(void, rms_bwd_loop, (float *restrict dx, double *restrict dw, const float *restrict dy, const float *restrict x,
                              const float *restrict w, float rs, float k, long n),
  for (long i = 0; i < n; i++) {
    float g = dy[i] * x[i];
    dx[i] = rs * w[i] * dy[i] - x[i] * k;
    dw[i] += (double)(g * rs);
  })

static void rmsnorm_grad_rows(void *vc, long b, long e, int tid) {
  rms_ctx *c = vc;
  const vops_t *V = vops();
  int avx = use_avx2();
  long n = c->cols;
  double *dw = c->part + (long)tid * n;
  for (long r = b; r < e; r++) {
    const float *x = c->x + r * n, *dy = c->dy + r * n;
    float rs = c->rs[r];
    float mean = V->dot3(c->w, dy, x, n) / (float)n;
    float k = rs * rs * rs * mean;
    if (avx) rms_bwd_loop_avx2(c->dx + r * n, dw, dy, x, c->w, rs, k, n);
    else rms_bwd_loop_c(c->dx + r * n, dw, dy, x, c->w, rs, k, n);
  }
}
void k_rmsnorm_grad(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd,
                    long rows, long cols) {
  int T = r1_num_threads();
  double *part = calloc((size_t)T * (size_t)(cols > 0 ? cols : 1), sizeof(double));
  if (!part) { /* out of memory: fall back to one thread and one partial */
    T = 1;
    part = calloc((size_t)(cols > 0 ? cols : 1), sizeof(double));
    if (!part) abort();
  }
  rms_ctx c = {NULL, NULL, dx, part, x, w, dy, rstd, cols, 0};
  if (T == 1) rmsnorm_grad_rows(&c, 0, rows, 0);
  else r1_parallel_for(rows, row_grain(cols), rmsnorm_grad_rows, &c);
  for (long j = 0; j < cols; j++) {
    double s = 0;
    for (int t = 0; t < T; t++) s += part[(long)t * cols + j];
    dw[j] = (float)s;
  }
  free(part);
}

/* ------------------------------------------------------------------------------------------------ */
/* RoPE (Su et al., RoFormer, eq. 34): rows (t, h) in parallel; 'half' pairs (i, i + R/2) as in HF
 * Llama/Qwen rotate_half, 'interleaved' pairs (2i, 2i+1) as in DeepSeek-V3 inference/model.py. */
typedef struct {
  float *d; const float *x, *cs, *sn; const int32_t *pos; long H, D, R; int inter; float sg;
} rope_ctx;

R1_TWICE(void, rope_row, (float *d, const float *x, const float *restrict cs, const float *restrict sn, long D, long R,
                          int inter, float sg),
  long h = R / 2;
  if (!inter) {
    for (long i = 0; i < h; i++) {
      float a = x[i], b = x[i + h], c = cs[i], s = sn[i] * sg;
      d[i] = a * c - b * s;
      d[i + h] = b * c + a * s;
    }
  } else {
    for (long i = 0; i < h; i++) {
      float a = x[2 * i], b = x[2 * i + 1], c = cs[i], s = sn[i] * sg;
      d[2 * i] = a * c - b * s;
      d[2 * i + 1] = b * c + a * s;
    }
  }
  if (d != x) for (long i = R; i < D; i++) d[i] = x[i];)

static void rope_rows(void *vc, long b, long e, int tid) {
  (void)tid;
  rope_ctx *c = vc;
  int avx = use_avx2();
  long half = c->R / 2;
  for (long r = b; r < e; r++) {
    long t = r / c->H;
    const float *cs = c->cs + (long)c->pos[t] * half, *sn = c->sn + (long)c->pos[t] * half;
    if (avx) rope_row_avx2(c->d + r * c->D, c->x + r * c->D, cs, sn, c->D, c->R, c->inter, c->sg);
    else rope_row_c(c->d + r * c->D, c->x + r * c->D, cs, sn, c->D, c->R, c->inter, c->sg);
  }
}
void k_rope(float *dst, const float *x, const float *cos, const float *sin, const int32_t *pos,
            long T, long H, long D, long R, int interleaved, int inverse) {
  rope_ctx c = {dst, x, cos, sin, pos, H, D, R, interleaved, inverse ? -1.0f : 1.0f};
  r1_parallel_for(T * H, row_grain(D), rope_rows, &c);
}

/* ------------------------------------------------------------------------------------------------ */
/* Cross-entropy: one pass over each row of logits with an online logsumexp (Milakov & Gimelshein 2018,
 * "Online normalizer calculation for softmax"), applied per block of XBLK elements: the block's max is
 * found while it sits in L1, the running sum is rescaled only when the max grows, and then the block's
 * exp terms are summed — one exp per element and one read of the row from memory. */
#define XBLK 2048
typedef struct {
  float *loss, *lse, *dl; const float *x, *lsein, *dloss; const int32_t *t; long V, ign;
  int32_t *pick; /* k_greedy_pick: each row's argmax is found on the way and is its target */
} xent_ctx;

static void xent_rows(void *vc, long b, long e, int tid) {
  (void)tid;
  xent_ctx *c = vc;
  const vops_t *V = vops();
  for (long r = b; r < e; r++) {
    const float *x = c->x + r * c->V;
    float m = -INFINITY;
    double s = 0;
    long best = 0; /* with pick: the first element equal to the max so far (a later block must exceed it) */
    for (long j0 = 0; j0 < c->V; j0 += XBLK) {
      long n = min_l(XBLK, c->V - j0);
      float bm = V->max(x + j0, n);
      if (bm != bm) { m = NAN; break; }
      if (bm > m) {
        if (m != -INFINITY) s *= exp((double)m - (double)bm);
        m = bm;
        if (c->pick) for (best = j0; x[best] != bm; best++) {}
      }
      if (m == -INFINITY) continue; /* everything so far is -inf: contributes nothing */
      s += V->sumexp(NULL, x + j0, n, m);
    }
    float l = (m != m) ? NAN : (m == -INFINITY || m == INFINITY) ? m : (float)((double)m + log(s));
    c->lse[r] = l;
    if (c->pick) {
      if (m != m) for (best = 0; x[best] == x[best]; best++) {} /* as k_argreduce: the first NaN */
      c->pick[r] = (int32_t)best;
    }
    long t = c->pick ? best : c->t[r];
    c->loss[r] = (t == c->ign) ? 0.0f : l - x[t];
  }
}
/* A part of one long row: its max and sum exp(x - max), blockwise online as in xent_rows. */
static void split_lse(void *vc, long b, long e, int tid) {
  (void)tid;
  split_ctx *c = vc;
  const vops_t *V = vops();
  for (long p = b; p < e; p++) {
    const long lo = p * c->n / c->parts, hi = (p + 1) * c->n / c->parts;
    float m = -INFINITY;
    double s = 0;
    long best = lo;
    for (long j0 = lo; j0 < hi; j0 += XBLK) {
      const long n = min_l(XBLK, hi - j0);
      const float bm = V->max(c->x + j0, n);
      if (bm != bm) { m = NAN; break; }
      if (bm > m) {
        if (m != -INFINITY) s *= exp((double)m - (double)bm);
        m = bm;
        if (c->pick) for (best = j0; c->x[best] != bm; best++) {}
      }
      if (m == -INFINITY) continue;
      s += V->sumexp(NULL, c->x + j0, n, m);
    }
    c->m[p] = m;
    c->s[p] = s;
    c->best[p] = best;
  }
}
/* One long row split among the threads: lse (parts combined in double), and with pick the argmax (the first part
 * holding the max: its first element equal to it; the first NaN where there is one). */
static float split_row(const float *x, long V, int pick, long *argmax) {
  split_ctx c = {x, V, split_parts(V), {0}, {0}, pick, {0}};
  r1_parallel_for(c.parts, 1, split_lse, &c);
  float m = -INFINITY;
  int nan = 0;
  long best = 0;
  for (long p = 0; p < c.parts; p++) {
    if (c.m[p] != c.m[p]) nan = 1;
    else if (c.m[p] > m) { m = c.m[p]; best = c.best[p]; }
  }
  double s = 0;
  if (!nan && m != -INFINITY && m != INFINITY)
    for (long p = 0; p < c.parts; p++)
      if (c.m[p] != -INFINITY) s += c.s[p] * exp((double)c.m[p] - (double)m);
  if (pick) {
    if (nan) for (best = 0; x[best] == x[best]; best++) {}
    *argmax = best;
  }
  return nan ? NAN : (m == -INFINITY || m == INFINITY) ? m : (float)((double)m + log(s));
}
void k_xent(float *loss, float *lse, const float *logits, const int32_t *targets, long rows, long V, long ignore) {
  if (rows == 1 && split_parts(V) > 1) { /* one long row (the sampler's logprob): split among the threads */
    const float l = split_row(logits, V, 0, NULL);
    lse[0] = l;
    loss[0] = targets[0] == ignore ? 0.0f : l - logits[targets[0]];
    return;
  }
  xent_ctx c = {loss, lse, NULL, logits, NULL, NULL, targets, V, ignore, NULL};
  r1_parallel_for(rows, row_grain(V), xent_rows, &c);
}
/* Greedy decoding's pick for rows of logits in one pass over each: ids = the argmax (the first of equal maxima; the
 * first NaN where there is one, as k_argreduce), lse and loss = lse - logit of the pick (-logprob), as k_xent. */
void k_greedy_pick(int32_t *ids, float *loss, float *lse, const float *logits, long rows, long V) {
  if (rows == 1 && split_parts(V) > 1) { /* one long row: split among the threads, as k_xent */
    long best = 0;
    lse[0] = split_row(logits, V, 1, &best);
    ids[0] = (int32_t)best;
    loss[0] = lse[0] - logits[best];
    return;
  }
  xent_ctx c = {loss, lse, NULL, logits, NULL, NULL, ids, V, -1, ids};
  r1_parallel_for(rows, row_grain(V), xent_rows, &c);
}

#ifdef R1_X86
AVX2 static void xent_grad_row_avx2(float *d, const float *x, float l, float g, long n) {
  const __m256 lv = v_set(l), gv = v_set(g);
  long i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(d + i, _mm256_mul_ps(gv, v_exp(_mm256_sub_ps(_mm256_loadu_ps(x + i), lv))));
  if (i < n) {
    __m256i mk = v_tmask(n - i);
    _mm256_maskstore_ps(d + i, mk, _mm256_mul_ps(gv, v_exp(_mm256_sub_ps(_mm256_maskload_ps(x + i, mk), lv))));
  }
}
#endif
static void xent_grad_rows(void *vc, long b, long e, int tid) {
  (void)tid;
  xent_ctx *c = vc;
  int avx = use_avx2();
  long n = c->V;
  for (long r = b; r < e; r++) {
    float *d = c->dl + r * n;
    const float *x = c->x + r * n;
    long t = c->t[r];
    if (t == c->ign) { memset(d, 0, (size_t)n * sizeof(float)); continue; }
    float l = c->lsein[r], g = c->dloss[r];
#ifdef R1_X86
    if (avx) xent_grad_row_avx2(d, x, l, g, n);
    else
#endif
      for (long j = 0; j < n; j++) d[j] = (float)(g * exp((double)x[j] - (double)l));
    d[t] = (float)((double)g * (exp((double)x[t] - (double)l) - 1.0));
  }
  (void)avx;
}
void k_xent_grad(float *dlogits, const float *logits, const float *lse, const int32_t *targets, const float *dloss,
                 long rows, long V, long ignore) {
  xent_ctx c = {NULL, NULL, dlogits, logits, lse, dloss, targets, V, ignore, NULL};
  r1_parallel_for(rows, row_grain(V), xent_grad_rows, &c);
}

/* ------------------------------------------------------------------------------------------------ */
/* SwiGLU pieces (Shazeer 2020): y = silu(a) * b and its gradient. */
typedef struct { float *y, *da, *db; const float *a, *b, *dy; } swi_ctx;
static void silu_mul_c(void *vc, long b0, long e, int tid) {
  (void)tid;
  swi_ctx *c = vc;
  for (long i = b0; i < e; i++) {
    double a = c->a[i];
    c->y[i] = (float)(a / (1.0 + exp(-a)) * c->b[i]);
  }
}
static void silu_mul_grad_c(void *vc, long b0, long e, int tid) {
  (void)tid;
  swi_ctx *c = vc;
  for (long i = b0; i < e; i++) {
    double a = c->a[i], s = 1.0 / (1.0 + exp(-a)), g = c->dy[i];
    c->da[i] = (float)(g * c->b[i] * s * (1.0 + a * (1.0 - s)));
    c->db[i] = (float)(g * a * s);
  }
}
#ifdef R1_X86
AVX2 static void silu_mul_avx2(void *vc, long b0, long e, int tid) {
  swi_ctx *c = vc;
  long i = b0;
  for (; i + 8 <= e; i += 8) {
    __m256 a = _mm256_loadu_ps(c->a + i);
    _mm256_storeu_ps(c->y + i, _mm256_mul_ps(_mm256_mul_ps(a, v_sigmoid(a)), _mm256_loadu_ps(c->b + i)));
  }
  if (i < e) {
    __m256i mk = v_tmask(e - i);
    __m256 a = _mm256_maskload_ps(c->a + i, mk);
    _mm256_maskstore_ps(c->y + i, mk, _mm256_mul_ps(_mm256_mul_ps(a, v_sigmoid(a)), _mm256_maskload_ps(c->b + i, mk)));
  }
  (void)tid;
}
AVX2 static void silu_mul_grad_avx2(void *vc, long b0, long e, int tid) {
  swi_ctx *c = vc;
  const __m256 one = v_set(1.0f);
  for (long i = b0; i < e; i += 8) {
    __m256i mk = v_tmask(e - i); /* all lanes on until the tail */
    __m256 a = _mm256_maskload_ps(c->a + i, mk), b = _mm256_maskload_ps(c->b + i, mk), g = _mm256_maskload_ps(c->dy + i, mk);
    __m256 o, s = v_sigmoid2(a, &o);
    __m256 da = _mm256_mul_ps(_mm256_mul_ps(g, b), _mm256_mul_ps(s, _mm256_fmadd_ps(a, o, one)));
    _mm256_maskstore_ps(c->da + i, mk, da);
    _mm256_maskstore_ps(c->db + i, mk, _mm256_mul_ps(g, _mm256_mul_ps(a, s)));
  }
  (void)tid;
}
#endif
/* The same on 16 lanes, operation for operation (v_exp512 is v_exp's algorithm), so the results do not depend on the
 * ISA: 77824 values (S1's MLP at batch 16) 27 -> 14 us a call with its inputs in cache. */
A512 static void silu_mul_avx512(void *vc, long b0, long e, int tid) {
  (void)tid;
  swi_ctx *c = vc;
  for (long i = b0; i < e; i += 16) {
    const __mmask16 k = e - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (e - i)) - 1u);
    const __m512 a = _mm512_maskz_loadu_ps(k, c->a + i);
    const __m512 ex = v_exp512(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(a)));
    const __m512 r = _mm512_div_ps(S16(1.0f), _mm512_add_ps(S16(1.0f), ex));
    const __m512 sg = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_LT_OQ), _mm512_mul_ps(ex, r));
    _mm512_mask_storeu_ps(c->y + i, k, _mm512_mul_ps(_mm512_mul_ps(a, sg), _mm512_maskz_loadu_ps(k, c->b + i)));
  }
}
/* The variant k_silu_mul runs here (every element is computed on its own, so how the range is split changes nothing). */
static void (*silu_mul_fn(void))(void *, long, long, int) {
#ifdef R1_X86
  if (r1_isa() >= R1_ISA_AVX512) return silu_mul_avx512;
  if (use_avx2()) return silu_mul_avx2;
#endif
  return silu_mul_c;
}
void k_silu_mul(float *y, const float *a, const float *b, long n) {
  swi_ctx c = {y, NULL, NULL, a, b, NULL};
  r1_parallel_for(n, GRAIN, silu_mul_fn(), &c);
}
void k_silu_mul_serial(float *y, const float *a, const float *b, long n) {
  swi_ctx c = {y, NULL, NULL, a, b, NULL};
  silu_mul_fn()(&c, 0, n, 0);
}
void k_silu_mul_grad(float *da, float *db, const float *a, const float *b, const float *dy, long n) {
  swi_ctx c = {NULL, da, db, a, b, dy};
#ifdef R1_X86
  if (use_avx2()) { r1_parallel_for(n, GRAIN, silu_mul_grad_avx2, &c); return; }
#endif
  r1_parallel_for(n, GRAIN, silu_mul_grad_c, &c);
}

/* ------------------------------------------------------------------------------------------------ */
/* AdamW (Loshchilov & Hutter 2019, Algorithm 2, decoupled weight decay), in place. */
typedef struct { float *p, *m, *v; const float *g; double lr, b1, b2, eps, wd, bc1, bc2; } adam_ctx;
/* (1 - b1) etc. come in precomputed from doubles: 1.0f - 0.9f is off by 2.4e-7 relative, which the
 * near-cancelling sum b1 m + (1-b1) g would amplify. */
R1_TWICE(void, adam_loop, (float *restrict p, const float *restrict g, float *restrict m, float *restrict v, long n,
                           float lr, float b1, float omb1, float b2, float omb2, float eps, float wd, float ibc1, float ibc2),
  for (long i = 0; i < n; i++) {
    float gi = g[i];
    float mi = b1 * m[i] + omb1 * gi;
    float vi = b2 * v[i] + omb2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] - lr * (wd * p[i] + (mi * ibc1) / (sqrtf(vi * ibc2) + eps));
  })
static void adam_range(void *vc, long b, long e, int tid) {
  (void)tid;
  adam_ctx *c = vc;
  float ib1 = (float)(1.0 / c->bc1), ib2 = (float)(1.0 / c->bc2), omb1 = (float)(1.0 - c->b1), omb2 = (float)(1.0 - c->b2);
  if (use_avx2())
    adam_loop_avx2(c->p + b, c->g + b, c->m + b, c->v + b, e - b, (float)c->lr, (float)c->b1, omb1, (float)c->b2, omb2,
                   (float)c->eps, (float)c->wd, ib1, ib2);
  else
    adam_loop_c(c->p + b, c->g + b, c->m + b, c->v + b, e - b, (float)c->lr, (float)c->b1, omb1, (float)c->b2, omb2,
                (float)c->eps, (float)c->wd, ib1, ib2);
}
void k_adamw(float *p, const float *g, float *m, float *v, long n,
             double lr, double b1, double b2, double eps, double wd, double bc1, double bc2) {
  adam_ctx c = {p, m, v, g, lr, b1, b2, eps, wd, bc1, bc2};
  r1_parallel_for(n, GRAIN, adam_range, &c);
}

/* ------------------------------------------------------------------------------------------------ */
/* cast between f32 and f64 / bf16 / f16 (round to nearest even; NaN stays NaN). */
static inline uint16_t f32_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x0040u); /* quiet the NaN */
  return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}
static inline float bf16_to_f32(uint16_t h) {
  uint32_t x = (uint32_t)h << 16;
  float f;
  memcpy(&f, &x, 4);
  return f;
}
static inline uint16_t f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
  uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return sign | 0x7e00u | (uint16_t)((ax >> 13) & 0x3ffu);
  if (ax >= 0x477ff000u) return sign | 0x7c00u;     /* >= 65520 rounds to inf */
  if (ax >= 0x38800000u) {                         /* normal half: rebias 127 -> 15, round 13 bits */
    uint32_t r = ax - 0x38000000u;
    r = r + 0xfffu + ((r >> 13) & 1u);
    return sign | (uint16_t)(r >> 13);
  }
  float a;
  memcpy(&a, &ax, 4);
  return sign | (uint16_t)lrintf(a * 16777216.0f); /* subnormal: units of 2^-24, exact scaling, RNE */
}
static inline float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
  if (e == 0) {
    float v = (float)m * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  x = sign | (e == 31 ? 0x7f800000u | (m << 13) : ((e + 112u) << 23) | (m << 13));
  float f;
  memcpy(&f, &x, 4);
  return f;
}

typedef struct { void *d; const void *s; int dt, st; } cast_ctx;
R1_TWICE(void, cast_loop, (void *restrict dv, int dt, const void *restrict sv, int st, long b, long e),
  if (st == T_F32 && dt == T_F64) { double *d = dv; const float *s = sv; for (long i = b; i < e; i++) d[i] = s[i]; }
  else if (st == T_F64 && dt == T_F32) { float *d = dv; const double *s = sv; for (long i = b; i < e; i++) d[i] = (float)s[i]; }
  else if (st == T_F32 && dt == T_BF16) { uint16_t *d = dv; const float *s = sv; for (long i = b; i < e; i++) d[i] = f32_to_bf16(s[i]); }
  else if (st == T_BF16 && dt == T_F32) { float *d = dv; const uint16_t *s = sv; for (long i = b; i < e; i++) d[i] = bf16_to_f32(s[i]); }
  else if (st == T_F32 && dt == T_F16) { uint16_t *d = dv; const float *s = sv; for (long i = b; i < e; i++) d[i] = f32_to_f16(s[i]); }
  else if (st == T_F16 && dt == T_F32) { float *d = dv; const uint16_t *s = sv; for (long i = b; i < e; i++) d[i] = f16_to_f32(s[i]); }
  else if (st == dt) { int es = st == T_F64 ? 8 : st == T_F32 ? 4 : 2; memcpy((char *)dv + b * es, (const char *)sv + b * es, (size_t)(e - b) * es); })

#ifdef R1_X86
/* F16C does f32 <-> f16 in hardware with the same rounding (RNE, subnormals, NaN kept). */
F16C static int cast_f16c(void *dv, int dt, const void *sv, int st, long b, long e) {
  long i = b;
  if (st == T_F32 && dt == T_F16) {
    uint16_t *d = dv; const float *s = sv;
    for (; i + 8 <= e; i += 8)
      _mm_storeu_si128((__m128i *)(d + i), _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < e; i++) d[i] = f32_to_f16(s[i]);
    return 1;
  }
  if (st == T_F16 && dt == T_F32) {
    float *d = dv; const uint16_t *s = sv;
    for (; i + 8 <= e; i += 8) _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
    for (; i < e; i++) d[i] = f16_to_f32(s[i]);
    return 1;
  }
  return 0;
}
static int has_f16c(void) {
  static int v = -1;
  if (v < 0) { __builtin_cpu_init(); v = __builtin_cpu_supports("f16c") ? 1 : 0; }
  return v;
}
#endif

static void cast_range(void *vc, long b, long e, int tid) {
  (void)tid;
  cast_ctx *c = vc;
#ifdef R1_X86
  if (use_avx2()) {
    if (has_f16c() && cast_f16c(c->d, c->dt, c->s, c->st, b, e)) return;
    cast_loop_avx2(c->d, c->dt, c->s, c->st, b, e);
    return;
  }
#endif
  cast_loop_c(c->d, c->dt, c->s, c->st, b, e);
}
void k_cast(void *dst, int dt, const void *src, int st, long n) {
  cast_ctx c = {dst, src, dt, st};
  r1_parallel_for(n, GRAIN, cast_range, &c);
}

/* ------------------------------------------------------------------------------------------------ */
/* Index kernels on [outer, n, inner]. Selects/gathers move raw elements of any size; the scatter-adds
 * are tiled over (outer, column block) so no two threads touch the same destination element. */
typedef struct {
  char *d; const char *s; const int32_t *idx; long outer, nS, nI, inner; int es, acc;
} idx_ctx;

static void index_select_range(void *vc, long b, long e, int tid) {
  (void)tid;
  idx_ctx *c = vc;
  size_t row = (size_t)c->inner * c->es;
  for (long t = b; t < e; t++) { /* t = o * nI + j */
    long o = t / c->nI, j = t % c->nI;
    memcpy(c->d + (size_t)t * row, c->s + ((size_t)o * c->nS + c->idx[j]) * row, row);
  }
}
void k_index_select(void *dst, const void *src, const int32_t *idx, long outer, long nSrc, long nIdx, long inner, int esize) {
  idx_ctx c = {dst, src, idx, outer, nSrc, nIdx, inner, esize, 0};
  r1_parallel_for(outer * nIdx, row_grain(inner), index_select_range, &c);
}

static void gather_range(void *vc, long b, long e, int tid) {
  (void)tid;
  idx_ctx *c = vc;
  long in = c->inner, blk = c->nI * in;
  for (long t = b; t < e; t++) { /* flat dst index */
    long o = t / blk, i = t % in;
    long src = (o * c->nS + c->idx[t]) * in + i;
    switch (c->es) {
      case 1: ((uint8_t *)c->d)[t] = ((const uint8_t *)c->s)[src]; break;
      case 2: ((uint16_t *)c->d)[t] = ((const uint16_t *)c->s)[src]; break;
      case 4: ((uint32_t *)c->d)[t] = ((const uint32_t *)c->s)[src]; break;
      default: ((uint64_t *)c->d)[t] = ((const uint64_t *)c->s)[src]; break;
    }
  }
}
void k_gather(void *dst, const void *src, const int32_t *idx, long outer, long nSrc, long nIdx, long inner, int esize) {
  idx_ctx c = {dst, src, idx, outer, nSrc, nIdx, inner, esize, 0};
  r1_parallel_for(outer * nIdx * inner, GRAIN, gather_range, &c);
}

#define SBLK 512
static void index_add_range(void *vc, long b, long e, int tid) {
  (void)tid;
  idx_ctx *c = vc;
  long nb = (c->inner + SBLK - 1) / SBLK;
  float *d = (float *)c->d;
  const float *s = (const float *)c->s;
  for (long t = b; t < e; t++) {
    long o = t / nb, i0 = (t % nb) * SBLK, len = min_l(SBLK, c->inner - i0);
    for (long j = 0; j < c->nI; j++) {
      float *dr = d + (o * c->nS + c->idx[j]) * c->inner + i0;
      const float *sr = s + (o * c->nI + j) * c->inner + i0;
      for (long i = 0; i < len; i++) dr[i] += sr[i];
    }
  }
}
void k_index_add(float *dst, const float *src, const int32_t *idx, long outer, long nDst, long nIdx, long inner) {
  idx_ctx c = {(char *)dst, (const char *)src, idx, outer, nDst, nIdx, inner, 4, 0};
  long nb = (inner + SBLK - 1) / SBLK;
  long work = nIdx * min_l(inner, SBLK);
  r1_parallel_for(outer * nb, max_l(1, GRAIN / max_l(work, 1)), index_add_range, &c);
}

static void scatter_range(void *vc, long b, long e, int tid) {
  (void)tid;
  idx_ctx *c = vc;
  long nb = (c->inner + SBLK - 1) / SBLK;
  float *d = (float *)c->d;
  const float *s = (const float *)c->s;
  for (long t = b; t < e; t++) {
    long o = t / nb, i0 = (t % nb) * SBLK, len = min_l(SBLK, c->inner - i0);
    for (long j = 0; j < c->nI; j++) {
      long base = (o * c->nI + j) * c->inner + i0;
      const int32_t *ix = c->idx + base;
      const float *sr = s + base;
      float *dr = d + o * c->nS * c->inner + i0;
      if (c->acc) for (long i = 0; i < len; i++) dr[(long)ix[i] * c->inner + i] += sr[i];
      else for (long i = 0; i < len; i++) dr[(long)ix[i] * c->inner + i] = sr[i];
    }
  }
}
void k_scatter(float *dst, const float *src, const int32_t *idx, long outer, long nDst, long nIdx, long inner, int accumulate) {
  idx_ctx c = {(char *)dst, (const char *)src, idx, outer, nDst, nIdx, inner, 4, accumulate};
  long nb = (inner + SBLK - 1) / SBLK;
  long work = nIdx * min_l(inner, SBLK);
  r1_parallel_for(outer * nb, max_l(1, GRAIN / max_l(work, 1)), scatter_range, &c);
}

/* ------------------------------------------------------------------------------------------------ */
/* top-k per row: insertion into a sorted k-buffer for small k (one compare per element in the common
 * case), a full sort of the row for large k. Order: value (NaN largest), ties by lower index. */
typedef struct { float v; int32_t i; } vi_t;
static inline int before(float a, long ia, float b, long ib, int largest) {
  int an = a != a, bn = b != b;
  if (largest) {
    if (an != bn) return an;
    if (!an && a != b) return a > b;
  } else {
    if (an != bn) return bn;
    if (!an && a != b) return a < b;
  }
  return ia < ib;
}
static int cmp_desc(const void *pa, const void *pb) {
  const vi_t *a = pa, *b = pb;
  return before(a->v, a->i, b->v, b->i, 1) ? -1 : 1;
}
static int cmp_asc(const void *pa, const void *pb) {
  const vi_t *a = pa, *b = pb;
  return before(a->v, a->i, b->v, b->i, 0) ? -1 : 1;
}
typedef struct { float *vals; int32_t *inds; const float *s; long n, k; int largest; } topk_ctx;
static void topk_rows(void *vc, long b, long e, int tid) {
  (void)tid;
  topk_ctx *c = vc;
  long n = c->n, k = c->k;
  int big = k > 64;
  vi_t *buf = malloc(sizeof(vi_t) * (size_t)(big ? n : k) + 1);
  if (!buf) abort();
  for (long r = b; r < e; r++) {
    const float *x = c->s + r * n;
    long cnt = 0;
    if (big) {
      for (long j = 0; j < n; j++) { buf[j].v = x[j]; buf[j].i = (int32_t)j; }
      qsort(buf, (size_t)n, sizeof(vi_t), c->largest ? cmp_desc : cmp_asc);
      cnt = k;
    } else {
      for (long j = 0; j < n; j++) {
        float v = x[j];
        if (cnt == k && !before(v, j, buf[k - 1].v, buf[k - 1].i, c->largest)) continue;
        long p = cnt < k ? cnt : k - 1;
        while (p > 0 && before(v, j, buf[p - 1].v, buf[p - 1].i, c->largest)) { buf[p] = buf[p - 1]; p--; }
        buf[p].v = v;
        buf[p].i = (int32_t)j;
        if (cnt < k) cnt++;
      }
    }
    for (long q = 0; q < k; q++) { c->vals[r * k + q] = buf[q].v; c->inds[r * k + q] = buf[q].i; }
  }
  free(buf);
}
void k_topk(float *values, int32_t *indices, const float *src, long rows, long n, long k, int largest) {
  if (k == 0 || rows == 0) return;
  topk_ctx c = {values, indices, src, n, k, largest};
  r1_parallel_for(rows, row_grain(n), topk_rows, &c);
}

/* ------------------------------------------------------------------------------------------------ */
/* Attention: FlashAttention-2 style (Dao 2023, Algorithms 1 and 2) on the CPU.
 * Forward: work items are (b, h, block of QB queries); S = scale Q K^T for a block of KB keys comes
 * from the single-threaded GEMM, the online softmax keeps a running max m and sum l per query row and
 * rescales the output accumulator when m grows, then acc += P V (GEMM, beta 1). lse = m + log l.
 * Backward: P is recomputed from lse. Pass 1 (items over query blocks) writes dq and D_i = dout_i.out_i;
 * pass 2 (items over (b, kv head, key block)) loops over the query heads of the GQA group and writes
 * dk, dv. Every output row is owned by one item, so there are no races and no atomics on data. */
#define QB 32
#define KB 64
#ifndef ATTN_MT_WORK
#define ATTN_MT_WORK 4e6
#endif
#ifndef RATTN_MT_WORK
#define RATTN_MT_WORK 2e5
#endif

typedef struct {
  float *out, *lse, *dq, *dk, *dv, *Dbuf;
  const float *q, *k, *v, *dout, *o, *lsein, *mask;
  long ms[4];
  long B, Hq, Hkv, Sq, Sk, Dk, Dv;
  /* Forward only: element strides between keys (rows) and between (batch, kv head) pairs of k and v; the dense
   * layout is kRow = Dk, kHead = Sk Dk (likewise v). An inference KV cache with spare capacity (rows beyond Sk)
   * or the MLA latent read as values (v = the first Dv columns of k's rows) is passed in place this way. */
  long kRow, kHead, vRow, vHead;
  float scale;
  int causal;
  long nitems;
  atomic_long next;
} attn_ctx;

/* Score row r of a tile (query i, keys j0..j0+nj): add the mask, -inf beyond the causal limit.
 * Returns the number of leading visible keys (causal), all nj otherwise. */
static inline long attn_prep_row(const attn_ctx *c, float *row, long b, long h, long i, long j0, long nj) {
  if (c->mask) {
    const float *mr = c->mask + b * c->ms[0] + h * c->ms[1] + i * c->ms[2] + j0 * c->ms[3];
    long s3 = c->ms[3];
    if (s3 == 1) for (long jj = 0; jj < nj; jj++) row[jj] += mr[jj];
    else for (long jj = 0; jj < nj; jj++) row[jj] += mr[jj * s3];
  }
  long vis = nj;
  if (c->causal) {
    long lim = i + (c->Sk - c->Sq) - j0 + 1; /* keys j0 .. j0+lim-1 are visible */
    vis = lim < 0 ? 0 : (lim < nj ? lim : nj);
    for (long jj = vis; jj < nj; jj++) row[jj] = -INFINITY;
  }
  return vis;
}

/* Last key (exclusive) any query of [i0, i0+ni) can see. */
static inline long attn_kend(const attn_ctx *c, long i0, long ni) {
  if (!c->causal) return c->Sk;
  long e = i0 + ni + (c->Sk - c->Sq);
  return e < 0 ? 0 : (e > c->Sk ? c->Sk : e);
}

static void attn_fwd_team(void *vc, int tid, int nteam) {
  (void)tid; (void)nteam;
  attn_ctx *c = vc;
  const vops_t *V = vops();
  const lops_t *L = lops();
  long Dk = c->Dk, Dv = c->Dv, nqb = (c->Sq + QB - 1) / QB, group = c->Hq / c->Hkv;
  float *S = malloc(sizeof(float) * (QB * KB + QB * Dv + 2 * QB));
  if (!S) abort();
  float *acc = S + QB * KB, *m = acc + QB * Dv, *l = m + QB;
  for (;;) {
    long it = atomic_fetch_add(&c->next, 1);
    if (it >= c->nitems) break;
    long qb = it % nqb, bh = it / nqb, h = bh % c->Hq, b = bh / c->Hq, kvh = h / group;
    long i0 = qb * QB, ni = min_l(QB, c->Sq - i0);
    const float *Q = c->q + (bh * c->Sq + i0) * Dk;
    const float *K = c->k + (b * c->Hkv + kvh) * c->kHead;
    const float *Vv = c->v + (b * c->Hkv + kvh) * c->vHead;
    for (long r = 0; r < ni; r++) { m[r] = -INFINITY; l[r] = 0; }
    memset(acc, 0, sizeof(float) * (size_t)(ni * Dv));
    long kend = attn_kend(c, i0, ni);
    for (long j0 = 0; j0 < kend; j0 += KB) {
      long nj = min_l(KB, kend - j0);
      r1_sgemm_st(0, 1, ni, nj, Dk, c->scale, Q, Dk, K + j0 * c->kRow, c->kRow, 0.0f, S, KB);
      for (long r = 0; r < ni; r++) {
        float *row = S + r * KB;
        long vis = attn_prep_row(c, row, b, h, i0 + r, j0, nj);
        float bm = vis > 0 ? V->max(row, vis) : -INFINITY;
        float mn = bm > m[r] ? bm : m[r];
        if (mn == -INFINITY) { memset(row, 0, sizeof(float) * (size_t)nj); continue; }
        float alpha = m[r] == -INFINITY ? 0.0f : expf(m[r] - mn);
        float ps = V->sumexp(row, row, nj, mn); /* -inf entries become 0 */
        l[r] = l[r] * alpha + ps;
        if (alpha != 1.0f) L->scale_ip(acc + r * Dv, alpha, Dv);
        m[r] = mn;
      }
      r1_sgemm_st(0, 0, ni, Dv, nj, 1.0f, S, KB, Vv + j0 * c->vRow, c->vRow, 1.0f, acc, Dv);
    }
    float *O = c->out + (bh * c->Sq + i0) * Dv;
    float *LS = c->lse + bh * c->Sq + i0;
    for (long r = 0; r < ni; r++) {
      if (l[r] > 0 && m[r] != -INFINITY) {
        L->scale(O + r * Dv, acc + r * Dv, 1.0f / l[r], Dv);
        LS[r] = m[r] + logf(l[r]);
      } else {
        memset(O + r * Dv, 0, sizeof(float) * (size_t)Dv);
        LS[r] = -INFINITY;
      }
    }
  }
  free(S);
}

void k_attention(float *out, float *lse, const float *q, const float *k, const float *v,
                 const float *mask, const long *mst,
                 long B, long Hq, long Hkv, long Sq, long Sk, long Dk, long Dv, float scale, int causal,
                 const long *kvst) {
  attn_ctx c;
  memset(&c, 0, sizeof c);
  c.out = out; c.lse = lse; c.q = q; c.k = k; c.v = v; c.mask = mask;
  if (mask) for (int d = 0; d < 4; d++) c.ms[d] = mst[d];
  c.B = B; c.Hq = Hq; c.Hkv = Hkv; c.Sq = Sq; c.Sk = Sk; c.Dk = Dk; c.Dv = Dv; c.scale = scale; c.causal = causal;
  c.kRow = kvst ? kvst[0] : Dk; c.kHead = kvst ? kvst[1] : Sk * Dk;
  c.vRow = kvst ? kvst[2] : Dv; c.vHead = kvst ? kvst[3] : Sk * Dv;
  c.nitems = B * Hq * ((Sq + QB - 1) / QB);
  atomic_init(&c.next, 0);
  if (c.nitems == 0) return;
  /* ATTN_MT_WORK: below it one thread (measured when decode steps came here, one sequence per call: S1, 14 heads,
   * ~280 keys, ~0.5 M multiply-adds: ~100 us with two threads, the team wake-up dominating, against ~60 us with one).
   * The engine's decode steps now go to k_attention_ragged, which has its own threshold. */
  double work = (double)B * Hq * Sq * Sk * (Dk + Dv);
  int nt = work < ATTN_MT_WORK ? 1 : (int)min_l(r1_num_threads(), c.nitems);
  r1_parallel_team(nt, attn_fwd_team, &c);
}

/* Ragged inference attention (forward only): the new tokens of several sequences back to back, each attending to
 * its own KV cache, in one call. Decode steps of a batch are this shape: one query per sequence, each against a
 * different cache. Per sequence s the new keys/values are first written into the cache buffers at rows
 * [past_s, past_s + n_s) (the in-place append), then query i of s sees cache rows [0, past_s + i].
 * Work items are (sequence, kv head, block of queries); the rows of an item are its queries x the query heads of the
 * GQA group (gathered into a contiguous tile), so the group's heads share every key and value read: at decode, one
 * item is G rows against the sequence's whole cache, and K/V are read once per kv head instead of once per head. */
/* dst[c * ldd + r] = src[r * lds + c] for r < nr, c < nc (a block of keys into key-minor order); AVX-512: 16 x 16
 * tiles by unpack / 128-bit-lane shuffles (keys beyond nr in a tile become 0; columns beyond nc are not written). */
#ifdef R1_X86
#define T512 __attribute__((target("avx512f,avx2,fma")))
T512 static void transpose_block_avx512(const float *src, long lds, long nr, long nc, float *dst, long ldd) {
  for (long c0 = 0; c0 < nc; c0 += 16) {
    const long cc = min_l(16, nc - c0);
    const __mmask16 cm = (__mmask16)(cc == 16 ? 0xFFFF : (1u << cc) - 1u);
    for (long r0 = 0; r0 < nr; r0 += 16) {
      const long rr = min_l(16, nr - r0);
      __m512 r[16], t[16];
      for (int i = 0; i < 16; i++) r[i] = i < rr ? _mm512_maskz_loadu_ps(cm, src + (r0 + i) * lds + c0) : _mm512_setzero_ps();
      for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
      }
      for (int i = 0; i < 4; i++) { /* rows 4i..4i+3: columns 4l + {0, 1, 2, 3} of 128-bit lane l */
        const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
        const __m512d c = _mm512_castps_pd(t[4 * i + 1]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
      }
      for (int j = 0; j < 4; j++) { /* column j + 4l from lane l of r[j], r[4 + j], r[8 + j], r[12 + j] */
        const __m512 v0 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x44), v1 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xEE);
        const __m512 v2 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x44), v3 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xEE);
        const __m512 o[4] = {_mm512_shuffle_f32x4(v0, v2, 0x88), _mm512_shuffle_f32x4(v0, v2, 0xDD),
                             _mm512_shuffle_f32x4(v1, v3, 0x88), _mm512_shuffle_f32x4(v1, v3, 0xDD)};
        for (int l = 0; l < 4; l++)
          if (j + 4 * l < cc) _mm512_storeu_ps(dst + (c0 + j + 4 * l) * ldd + r0, o[l]);
      }
    }
  }
}
#endif

#ifdef R1_X86
/* n bf16 bit patterns -> f32, 16 at a time. */
T512 static void widen_bf16_avx512(float *dst, const uint16_t *src, long n) {
  long i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_si512((void *)(dst + i), _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + i))), 16));
  for (; i < n; i++) {
    const uint32_t u = (uint32_t)src[i] << 16;
    memcpy(dst + i, &u, 4);
  }
}
/* Scores against a bf16 key block (AVX512_BF16): S[i * ldS + j] = sum_p dot(Qw[i][p], Kt[p][j]) for i < MR, j < 64,
 * where Qw holds each row's (query, query) bf16 pairs as 32-bit words [MR, Dk2] and Kt the block's key pairs
 * transposed [Dk2, KB] (word p of key j at Kt[p * KB + j]): one vdpbf16ps per 16 keys and row multiplies two
 * dimensions, no widening of the keys and half the transposition of f32 rows. */
#define T5B __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")))
#define SC_DECL(i) __m512 s0##i = _mm512_setzero_ps(), s1##i = s0##i, s2##i = s0##i, s3##i = s0##i;
#define SC_STEP(i)                                                                                                 \
  if (MR > i) {                                                                                                    \
    const __m512bh qb = (__m512bh)_mm512_set1_epi32((int)Qw[(i) * Dk2 + p]);                                       \
    s0##i = _mm512_dpbf16_ps(s0##i, qb, k0); s1##i = _mm512_dpbf16_ps(s1##i, qb, k1);                              \
    s2##i = _mm512_dpbf16_ps(s2##i, qb, k2); s3##i = _mm512_dpbf16_ps(s3##i, qb, k3);                              \
  }
#define SC_STORE(i)                                                                                                \
  if (MR > i) {                                                                                                    \
    _mm512_storeu_ps(S + (i) * ldS, s0##i); _mm512_storeu_ps(S + (i) * ldS + 16, s1##i);                           \
    _mm512_storeu_ps(S + (i) * ldS + 32, s2##i); _mm512_storeu_ps(S + (i) * ldS + 48, s3##i);                      \
  }
#define SC_FOR(F) F(0) F(1) F(2) F(3) F(4) F(5)
T5B static inline __attribute__((always_inline)) void scores_bf16_block(const int MR, const uint32_t *Qw, long Dk2,
                                                                           const float *Kt, float *S, long ldS) {
  SC_FOR(SC_DECL)
  for (long p = 0; p < Dk2; p++) {
    const float *kr = Kt + p * KB;
    const __m512bh k0 = (__m512bh)_mm512_loadu_ps(kr), k1 = (__m512bh)_mm512_loadu_ps(kr + 16),
                   k2 = (__m512bh)_mm512_loadu_ps(kr + 32), k3 = (__m512bh)_mm512_loadu_ps(kr + 48);
    SC_FOR(SC_STEP)
  }
  SC_FOR(SC_STORE)
}
T5B static void scores_bf16(long rows, const uint32_t *Qw, long Dk2, const float *Kt, float *S, long ldS) {
  for (long r0 = 0; r0 < rows;) {
    const long left = rows - r0, nb = (left + 5) / 6, mr = (left + nb - 1) / nb; /* even blocks of <= 6 rows */
    const uint32_t *q = Qw + r0 * Dk2;
    float *o = S + r0 * ldS;
    switch (mr) {
      case 1: scores_bf16_block(1, q, Dk2, Kt, o, ldS); break;
      case 2: scores_bf16_block(2, q, Dk2, Kt, o, ldS); break;
      case 3: scores_bf16_block(3, q, Dk2, Kt, o, ldS); break;
      case 4: scores_bf16_block(4, q, Dk2, Kt, o, ldS); break;
      case 5: scores_bf16_block(5, q, Dk2, Kt, o, ldS); break;
      default: scores_bf16_block(6, q, Dk2, Kt, o, ldS); break;
    }
    r0 += mr;
  }
}
/* acc += P V over nj keys for i < rows with V's rows bf16 (row j at Vh + j * ldv, Dv values): the values are widened
 * in registers and multiplied by the unrounded probabilities in f32, so no widened copy of the block is written and
 * read back. 32 values at a time, one 64-byte load: a bf16 is the top half of an f32, so the even-indexed values are
 * the 32-bit words shifted left by 16 and the odd-indexed ones the words with the low half cleared — two ALU ops per 32
 * values. acc therefore keeps each 32-value chunk de-interleaved: acc[i * lda + c + e] holds value c + 2e and
 * acc[i * lda + c + 16 + e] value c + 2e + 1 (lda >= Dv rounded up to 32; the spare entries stay 0); rattn_team
 * maps them back. Rows in blocks of <= 8: 16 accumulators, two value vectors, one broadcast probability. */
#define PV_DECL(i) __m512 e##i = _mm512_setzero_ps(), o##i = e##i;
#define PV_LOAD(i) if (MR > i) { e##i = _mm512_loadu_ps(acc + (i) * lda + d0); o##i = _mm512_loadu_ps(acc + (i) * lda + d0 + 16); }
#define PV_STEP(i)                                                                                                 \
  if (MR > i) {                                                                                                    \
    const __m512 pb = _mm512_set1_ps(P[(i) * ldp + j]);                                                            \
    e##i = _mm512_fmadd_ps(pb, ve, e##i); o##i = _mm512_fmadd_ps(pb, vo, o##i);                                    \
  }
#define PV_STORE(i) if (MR > i) { _mm512_storeu_ps(acc + (i) * lda + d0, e##i); _mm512_storeu_ps(acc + (i) * lda + d0 + 16, o##i); }
#define PV_FOR(F) F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7)
#define T5W __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))
T5W static inline __attribute__((always_inline)) void pv_bf16_block(const int MR, long nj, const float *P, long ldp,
                                                                       const uint16_t *Vh, long ldv, long Dv, float *acc,
                                                                       long lda) {
  const __m512i hi = _mm512_set1_epi32((int)0xFFFF0000u);
  for (long d0 = 0; d0 < Dv; d0 += 32) {
    const long w = min_l(32, Dv - d0);
    const __mmask32 m = w == 32 ? 0xFFFFFFFFu : (__mmask32)((1u << w) - 1u);
    PV_FOR(PV_DECL)
    PV_FOR(PV_LOAD)
    for (long j = 0; j < nj; j++) {
      const __m512i x = _mm512_maskz_loadu_epi16(m, Vh + j * ldv + d0);
      const __m512 ve = _mm512_castsi512_ps(_mm512_slli_epi32(x, 16)), vo = _mm512_castsi512_ps(_mm512_and_si512(x, hi));
      PV_FOR(PV_STEP)
    }
    PV_FOR(PV_STORE)
  }
}
T5W static void pv_bf16(long rows, long nj, const float *P, long ldp, const uint16_t *Vh, long ldv, long Dv, float *acc, long lda) {
  for (long r0 = 0; r0 < rows;) {
    const long left = rows - r0, nb = (left + 7) / 8, mr = (left + nb - 1) / nb; /* even blocks of <= 8 rows */
    const float *p = P + r0 * ldp;
    float *a = acc + r0 * lda;
    switch (mr) {
      case 1: pv_bf16_block(1, nj, p, ldp, Vh, ldv, Dv, a, lda); break;
      case 2: pv_bf16_block(2, nj, p, ldp, Vh, ldv, Dv, a, lda); break;
      case 3: pv_bf16_block(3, nj, p, ldp, Vh, ldv, Dv, a, lda); break;
      case 4: pv_bf16_block(4, nj, p, ldp, Vh, ldv, Dv, a, lda); break;
      case 5: pv_bf16_block(5, nj, p, ldp, Vh, ldv, Dv, a, lda); break;
      case 6: pv_bf16_block(6, nj, p, ldp, Vh, ldv, Dv, a, lda); break;
      case 7: pv_bf16_block(7, nj, p, ldp, Vh, ldv, Dv, a, lda); break;
      default: pv_bf16_block(8, nj, p, ldp, Vh, ldv, Dv, a, lda); break;
    }
    r0 += mr;
  }
}
#endif

typedef struct {
  float *out;
  const float *q;
  void *const *kc; /* f32, or bf16 bit patterns when bf16 */
  void *const *vc;
  const long *q0, *n, *past, *cap, *istart;
  long nseg, Hq, Hkv, Dk, Dv, G, nq, nitems;
  int vink, bf16;
  float scale;
  atomic_long next;
} rattn_ctx;

/* One work item's geometry: sequence s, kv head kvh, queries [i0, i0 + ni) of s (global token q0), rows = ni G, the
 * cache's K (and V) rows of that head, kend = keys the last query sees. */
typedef struct {
  long s, kvh, i0, ni, rows, past, q0, kend;
  const char *K, *V; /* row 0 of the head's keys / values (f32, or bf16 when c->bf16) */
} rattn_item;
static void rattn_locate(const rattn_ctx *c, long it, rattn_item *o) {
  long lo = 0, hi = c->nseg - 1; /* the segment s with istart[s] <= it < istart[s + 1] */
  while (lo < hi) {
    const long mid = (lo + hi + 1) / 2;
    if (c->istart[mid] <= it) lo = mid; else hi = mid - 1;
  }
  const long s = lo, local = it - c->istart[s], nqb = (c->n[s] + c->nq - 1) / c->nq;
  o->s = s;
  o->kvh = local / nqb;
  o->i0 = (local % nqb) * c->nq;
  o->ni = min_l(c->nq, c->n[s] - o->i0);
  o->rows = o->ni * c->G;
  o->past = c->past[s];
  o->q0 = c->q0[s] + o->i0;
  o->kend = o->past + o->i0 + o->ni;
  const long es = c->bf16 ? 2 : 4;
  o->K = (const char *)c->kc[s] + o->kvh * c->cap[s] * c->Dk * es;
  o->V = c->vink ? o->K : (const char *)c->vc[s] + o->kvh * c->cap[s] * c->Dv * es;
}
/* Read key (and value) rows [j0, j1) before they are used: one demand load per 64-byte line of each stream, with a
 * prefetch RATTN_TOUCH_PF bytes ahead in the same stream, so the core keeps many DRAM reads in flight; the kernels'
 * own loads then find the rows in L1/L2. The caches of a batch's sequences are far larger than the CPU's caches (S1,
 * 16 sequences: ~60 MB of bf16 per step) and every item reads ~80 KB of them. Software prefetches alone did not do
 * this job on the machine this was tuned on (a 2-core Zen 5 VM; S1 shape, 16 sequences x 321 positions, caches cycled
 * from DRAM, per layer: 240 us with prefetches to L2 a tile ahead and a share of the next item per tile, with either
 * hint or the pages touched first; ~165 us with these loads alone, ~145 us with the prefetches ahead of them; 92 us
 * with the caches in L3). */
#ifndef RATTN_TOUCH_PF
#define RATTN_TOUCH_PF 1024 /* bytes ahead in each stream (512-2048 measured alike) */
#endif
static inline long rattn_touch(const rattn_ctx *c, const char *K, const char *V, long j0, long j1) {
  const long es = c->bf16 ? 2 : 4, kr = c->Dk * es, vr = c->Dv * es, nk = (j1 - j0) * kr, nv = c->vink ? 0 : (j1 - j0) * vr;
  const char *k = K + j0 * kr, *v = c->vink ? NULL : V + j0 * vr;
  long acc = 0;
  for (long b = 0; b < nk || b < nv; b += 64) {
    if (b < nk) { __builtin_prefetch(k + b + RATTN_TOUCH_PF, 0, 3); acc += k[b]; }
    if (b < nv) { __builtin_prefetch(v + b + RATTN_TOUCH_PF, 0, 3); acc += v[b]; }
  }
  return acc;
}
/* n bf16 bit patterns -> f32 (exact: a bf16 is the top half of an f32). */
static void widen_rows(float *dst, const uint16_t *src, long n) {
#ifdef R1_X86
  if (r1_isa() >= R1_ISA_AVX512) { widen_bf16_avx512(dst, src, n); return; }
#endif
  for (long i = 0; i < n; i++) dst[i] = bf16_to_f32(src[i]);
}

static void rattn_team(void *vc_, int tid, int nteam) {
  (void)tid; (void)nteam;
  rattn_ctx *c = vc_;
  const vops_t *V = vops();
  const lops_t *L = lops();
  const long Dk = c->Dk, Dv = c->Dv, G = c->G, R = c->nq * G;
  /* Scores by an NN product against the key block transposed (Kt [Dk, KB]) where AVX-512 is there: the NT product of
   * a few rows against 64 keys spends most of its time in horizontal sums (measured 16 vs ~GFLOP/s per thread). */
#ifdef R1_X86
  const int tr = r1_isa() >= R1_ISA_AVX512;
#else
  const int tr = 0;
#endif
  /* bf16 caches: the scaled queries are rounded to bf16 too (Qw), so every score is a sum of exact products; with
   * AVX512_BF16 (and an even Dk) the key block's bf16 pairs are transposed as 32-bit words and multiplied by
   * scores_bf16, else the keys are widened to f32 (Kf) for the f32 path. With AVX-512 the values are widened in
   * registers by the PV product (pv_bf16), else into Vf (the latent rows Kf for valuesInKeys); either way the
   * probabilities multiply them unrounded. */
#ifdef R1_X86
  const int dp = c->bf16 && Dk % 2 == 0 && r1_isa() >= R1_ISA_AVX512BF16;
#else
  const int dp = 0;
#endif
  const int pv = c->bf16 && tr;
  /* Keys go in chunks of KC (a multiple of KB): scores per KB-key tile into S [R, KC], then one online-softmax update
   * per row and one PV product per chunk (at decode, with ~300 keys, one chunk: no rescaling of the accumulators
   * between tiles). Where values are widened into a buffer (bf16 without AVX-512), a chunk is one tile. */
  const long KC = c->bf16 && !pv ? KB : max_l(KB, min_l(512, 32768 / R / KB * KB));
  const long lda = pv ? (Dv + 31) / 32 * 32 : Dv; /* pv_bf16's de-interleaved chunks of 32 */
  const long cvt = c->bf16 ? KB * Dk + (c->vink || pv ? 0 : KB * Dv) + (R * Dk + 1) / 2 : 0;
  float *S = malloc(sizeof(float) * (size_t)(R * KC + R * lda + R * Dk + 2 * R + (tr ? Dk * KB : 0) + cvt));
  if (!S) abort();
  float *acc = S + R * KC, *Qb = acc + R * lda, *m = Qb + R * Dk, *l = m + R, *Kt = l + R;
  float *Kf = Kt + (tr ? Dk * KB : 0), *Vf = Kf + KB * Dk;
  uint16_t *Qh = (uint16_t *)(Vf + (c->vink || pv ? 0 : KB * Dv)); /* [R, Dk] bf16 (Qw: its 32-bit pairs) */
  rattn_item cur;
  long touched = 0; /* the sum of the touched bytes, kept so the loads are not optimized away */
  for (long it; (it = atomic_fetch_add(&c->next, 1)) < c->nitems;) {
    rattn_locate(c, it, &cur);
    const long ni = cur.ni, rows = cur.rows, past = cur.past, q0 = cur.q0, i0 = cur.i0, kvh = cur.kvh;
    /* The scale goes into the gathered queries: the small-product kernels take alpha = 1 only. */
    for (long i = 0; i < ni; i++)
      L->scale(Qb + i * G * Dk, c->q + ((q0 + i) * c->Hq + kvh * G) * Dk, c->scale, G * Dk);
    if (c->bf16) {
      r1_round_bf16(Qb, Qh, rows * Dk);
      widen_rows(Qb, Qh, rows * Dk); /* the f32 path multiplies the same rounded values */
    }
    const char *K = cur.K, *Vv = cur.V;
    const long vRow = c->vink ? Dk : Dv;
    for (long r = 0; r < rows; r++) { m[r] = -INFINITY; l[r] = 0; }
    memset(acc, 0, sizeof(float) * (size_t)(rows * lda));
    const long kend = past + i0 + ni;
    for (long c0 = 0; c0 < kend; c0 += KC) {
      const long nc = min_l(KC, kend - c0);
      touched += rattn_touch(c, K, Vv, c0, c0 + nc);
      /* the chunk's value rows (row stride vRow) in f32: the cache's own (f32), a widened tile (bf16 without AVX-512,
       * where a chunk is one tile), or none (pv_bf16 reads the bf16 rows) */
      const float *Vb = c->bf16 ? NULL : (const float *)Vv + c0 * vRow;
      for (long j0 = c0; j0 < c0 + nc; j0 += KB) {
        const long nj = min_l(KB, c0 + nc - j0);
        float *St = S + (j0 - c0); /* this tile's columns of S (row stride KC) */
        const float *Kb = (const float *)K + j0 * Dk; /* this tile's key rows [nj, Dk], f32 (f32 caches) */
        if (c->bf16) {
          /* widened keys: for the f32 scores (no pair products), or as the values of valuesInKeys without pv_bf16 */
          if (!dp || (c->vink && !pv)) widen_rows(Kf, (const uint16_t *)K + j0 * Dk, nj * Dk);
          Kb = Kf;
          if (!pv) {
            if (!c->vink) widen_rows(Vf, (const uint16_t *)Vv + j0 * Dv, nj * Dv);
            Vb = c->vink ? Kf : Vf;
          }
        }
        if (dp) {
#ifdef R1_X86
          /* key j's pair p (a 32-bit word) -> Kt[p * KB + j] */
          transpose_block_avx512((const float *)((const uint16_t *)K + j0 * Dk), Dk / 2, nj, Dk / 2, Kt, KB);
          scores_bf16(rows, (const uint32_t *)Qh, Dk / 2, Kt, St, KC);
#endif
        } else if (tr) {
#ifdef R1_X86
          transpose_block_avx512(Kb, Dk, nj, Dk, Kt, KB);
#endif
          r1_sgemm_st(0, 0, rows, nj, Dk, 1.0f, Qb, Dk, Kt, KB, 0.0f, St, KC);
        } else {
          r1_sgemm_st(0, 1, rows, nj, Dk, 1.0f, Qb, Dk, Kb, Dk, 0.0f, St, KC);
        }
      }
      for (long r = 0; r < rows; r++) {
        float *row = S + r * KC;
        const long lim = past + i0 + r / G + 1 - c0; /* keys c0 .. c0+lim-1 are visible */
        const long vis = lim < 0 ? 0 : (lim < nc ? lim : nc);
        for (long jj = vis; jj < nc; jj++) row[jj] = -INFINITY;
        const float bm = vis > 0 ? V->max(row, vis) : -INFINITY;
        const float mn = bm > m[r] ? bm : m[r];
        if (mn == -INFINITY) { memset(row, 0, sizeof(float) * (size_t)nc); continue; }
        const float alpha = m[r] == -INFINITY ? 0.0f : expf(m[r] - mn);
        const float ps = V->sumexp(row, row, nc, mn);
        l[r] = l[r] * alpha + ps;
        if (alpha != 1.0f) L->scale_ip(acc + r * lda, alpha, lda);
        m[r] = mn;
      }
#ifdef R1_X86
      if (pv) pv_bf16(rows, nc, S, KC, (const uint16_t *)Vv + c0 * vRow, vRow, Dv, acc, lda);
      else
#endif
        r1_sgemm_st(0, 0, rows, Dv, nc, 1.0f, S, KC, Vb, vRow, 1.0f, acc, lda);
    }
    for (long r = 0; r < rows; r++) {
      float *O = c->out + ((q0 + r / G) * c->Hq + kvh * G + r % G) * Dv;
      const float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f; /* l = 0 is unreachable: a query always sees its own key */
      if (pv) { /* back from pv_bf16's de-interleaved chunks */
        const float *a = acc + r * lda;
        for (long d = 0; d < Dv; d++) O[d] = a[(d & ~31L) + (d & 1) * 16 + ((d & 31) >> 1)] * inv;
      } else L->scale(O, acc + r * lda, inv, Dv);
    }
  }
  volatile long sink = touched;
  (void)sink;
  free(S);
}

void k_attention_ragged(float *out, const float *q, const float *knew, const float *vnew, void *const *kc,
                        void *const *vc, const long *geom, long nseg, long Hq, long Hkv, long Dk, long Dv,
                        float scale, int vink, int bf16) {
  long *q0 = malloc(sizeof(long) * (size_t)(5 * nseg + 1));
  if (!q0) abort();
  long *n = q0 + nseg, *past = n + nseg, *cap = past + nseg, *istart = cap + nseg;
  const long G = Hq / Hkv, nq = G >= QB ? 1 : QB / G;
  long tok = 0, items = 0;
  double work = 0;
  for (long s = 0; s < nseg; s++) {
    n[s] = geom[3 * s]; past[s] = geom[3 * s + 1]; cap[s] = geom[3 * s + 2];
    q0[s] = tok;
    istart[s] = items;
    /* the append: rows [past, past + n) of every kv head */
    for (long h = 0; h < Hkv; h++)
      for (long i = 0; i < n[s]; i++) {
        const long kr = (h * cap[s] + past[s] + i) * Dk, vr = (h * cap[s] + past[s] + i) * Dv;
        const float *ks = knew + ((tok + i) * Hkv + h) * Dk, *vs = vink ? NULL : vnew + ((tok + i) * Hkv + h) * Dv;
        if (bf16) { /* rounded to nearest even (qsmall.h) */
          r1_round_bf16(ks, (uint16_t *)kc[s] + kr, Dk);
          if (!vink) r1_round_bf16(vs, (uint16_t *)vc[s] + vr, Dv);
        } else {
          memcpy((float *)kc[s] + kr, ks, sizeof(float) * (size_t)Dk);
          if (!vink) memcpy((float *)vc[s] + vr, vs, sizeof(float) * (size_t)Dv);
        }
      }
    items += Hkv * ((n[s] + nq - 1) / nq);
    work += (double)Hq * n[s] * (past[s] + n[s]) * (Dk + Dv);
    tok += n[s];
  }
  rattn_ctx c;
  memset(&c, 0, sizeof c);
  c.out = out; c.q = q; c.kc = kc; c.vc = vc; c.q0 = q0; c.n = n; c.past = past; c.cap = cap; c.istart = istart;
  c.nseg = nseg; c.Hq = Hq; c.Hkv = Hkv; c.Dk = Dk; c.Dv = Dv; c.G = G; c.nq = nq; c.nitems = items;
  c.vink = vink; c.bf16 = bf16; c.scale = scale;
  atomic_init(&c.next, 0);
  if (items > 0) {
    /* A lower bar than ATTN_MT_WORK: these calls stream caches from DRAM, and two threads keep more reads in flight
     * (measured, caches evicted: T1 shape, 16 sequences x 300 positions, 3.6 M multiply-adds: 470 -> 255 us; S1 at
     * batch 1, 0.5 M: 34 -> 22 us). */
    const int nt = work < RATTN_MT_WORK ? 1 : (int)min_l(r1_num_threads(), items);
    r1_parallel_team(nt, rattn_team, &c);
  }
  free(q0);
}

/* P row from scores: exp(s - lse), 0 where lse is -inf (a row that sees nothing). */
static inline void attn_prob_row(const vops_t *V, float *row, long nj, float lse) {
  if (lse == -INFINITY) memset(row, 0, sizeof(float) * (size_t)nj);
  else V->sumexp(row, row, nj, lse);
}

static void attn_bwd_dq_team(void *vc, int tid, int nteam) {
  (void)tid; (void)nteam;
  attn_ctx *c = vc;
  const vops_t *V = vops();
  long Dk = c->Dk, Dv = c->Dv, nqb = (c->Sq + QB - 1) / QB, group = c->Hq / c->Hkv;
  float *S = malloc(sizeof(float) * (2 * QB * KB + QB * Dk + QB));
  if (!S) abort();
  float *dP = S + QB * KB, *acc = dP + QB * KB, *Di = acc + QB * Dk;
  for (;;) {
    long it = atomic_fetch_add(&c->next, 1);
    if (it >= c->nitems) break;
    long qb = it % nqb, bh = it / nqb, h = bh % c->Hq, b = bh / c->Hq, kvh = h / group;
    long i0 = qb * QB, ni = min_l(QB, c->Sq - i0);
    const float *Q = c->q + (bh * c->Sq + i0) * Dk;
    const float *dO = c->dout + (bh * c->Sq + i0) * Dv, *O = c->o + (bh * c->Sq + i0) * Dv;
    const float *LS = c->lsein + bh * c->Sq + i0;
    const float *K = c->k + (b * c->Hkv + kvh) * c->Sk * Dk;
    const float *Vv = c->v + (b * c->Hkv + kvh) * c->Sk * Dv;
    for (long r = 0; r < ni; r++) {
      Di[r] = V->dot(dO + r * Dv, O + r * Dv, Dv);
      c->Dbuf[bh * c->Sq + i0 + r] = Di[r];
    }
    memset(acc, 0, sizeof(float) * (size_t)(ni * Dk));
    long kend = attn_kend(c, i0, ni);
    for (long j0 = 0; j0 < kend; j0 += KB) {
      long nj = min_l(KB, kend - j0);
      r1_sgemm_st(0, 1, ni, nj, Dk, c->scale, Q, Dk, K + j0 * Dk, Dk, 0.0f, S, KB);
      r1_sgemm_st(0, 1, ni, nj, Dv, 1.0f, dO, Dv, Vv + j0 * Dv, Dv, 0.0f, dP, KB);
      for (long r = 0; r < ni; r++) {
        float *row = S + r * KB, *dp = dP + r * KB;
        attn_prep_row(c, row, b, h, i0 + r, j0, nj);
        attn_prob_row(V, row, nj, LS[r]);
        float d = Di[r];
        for (long jj = 0; jj < nj; jj++) dp[jj] = row[jj] * (dp[jj] - d);
      }
      r1_sgemm_st(0, 0, ni, Dk, nj, c->scale, dP, KB, K + j0 * Dk, Dk, 1.0f, acc, Dk);
    }
    memcpy(c->dq + (bh * c->Sq + i0) * Dk, acc, sizeof(float) * (size_t)(ni * Dk));
  }
  free(S);
}

static void attn_bwd_dkv_team(void *vc, int tid, int nteam) {
  (void)tid; (void)nteam;
  attn_ctx *c = vc;
  long Dk = c->Dk, Dv = c->Dv, nkb = (c->Sk + KB - 1) / KB, group = c->Hq / c->Hkv, off = c->Sk - c->Sq;
  /* tiles are key-major here: ST[jj][r] = scale k_j . q_i */
  float *ST = malloc(sizeof(float) * (2 * KB * QB + KB * Dk + KB * Dv));
  if (!ST) abort();
  float *dPT = ST + KB * QB, *dka = dPT + KB * QB, *dva = dka + KB * Dk;
  for (;;) {
    long it = atomic_fetch_add(&c->next, 1);
    if (it >= c->nitems) break;
    long kb = it % nkb, bkv = it / nkb, kvh = bkv % c->Hkv, b = bkv / c->Hkv;
    long j0 = kb * KB, nj = min_l(KB, c->Sk - j0);
    const float *K = c->k + (bkv * c->Sk + j0) * Dk, *Vv = c->v + (bkv * c->Sk + j0) * Dv;
    memset(dka, 0, sizeof(float) * (size_t)(nj * Dk));
    memset(dva, 0, sizeof(float) * (size_t)(nj * Dv));
    /* first query that can see key j0 (causal): i + off >= j0 */
    long istart = c->causal ? max_l(0, j0 - off) : 0;
    for (long h = kvh * group; h < (kvh + 1) * group; h++) {
      long bh = b * c->Hq + h;
      for (long i0 = (istart / QB) * QB; i0 < c->Sq; i0 += QB) {
        long ni = min_l(QB, c->Sq - i0);
        const float *Q = c->q + (bh * c->Sq + i0) * Dk, *dO = c->dout + (bh * c->Sq + i0) * Dv;
        const float *LS = c->lsein + bh * c->Sq + i0, *Di = c->Dbuf + bh * c->Sq + i0;
        r1_sgemm_st(0, 1, nj, ni, Dk, c->scale, K, Dk, Q, Dk, 0.0f, ST, QB);
        r1_sgemm_st(0, 1, nj, ni, Dv, 1.0f, Vv, Dv, dO, Dv, 0.0f, dPT, QB);
        for (long jj = 0; jj < nj; jj++) {
          float *row = ST + jj * QB, *dp = dPT + jj * QB;
          long j = j0 + jj;
          for (long r = 0; r < ni; r++) {
            long i = i0 + r;
            float s = row[r];
            if (c->mask) s += c->mask[b * c->ms[0] + h * c->ms[1] + i * c->ms[2] + j * c->ms[3]];
            float p = (LS[r] == -INFINITY || (c->causal && j > i + off)) ? 0.0f : expf(s - LS[r]);
            row[r] = p;
            dp[r] = p * (dp[r] - Di[r]);
          }
        }
        r1_sgemm_st(0, 0, nj, Dv, ni, 1.0f, ST, QB, dO, Dv, 1.0f, dva, Dv);
        r1_sgemm_st(0, 0, nj, Dk, ni, c->scale, dPT, QB, Q, Dk, 1.0f, dka, Dk);
      }
    }
    memcpy(c->dk + (bkv * c->Sk + j0) * Dk, dka, sizeof(float) * (size_t)(nj * Dk));
    memcpy(c->dv + (bkv * c->Sk + j0) * Dv, dva, sizeof(float) * (size_t)(nj * Dv));
  }
  free(ST);
}

void k_attention_grad(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                      const float *v, const float *out, const float *lse, const float *mask, const long *mst,
                      long B, long Hq, long Hkv, long Sq, long Sk, long Dk, long Dv, float scale, int causal) {
  attn_ctx c;
  memset(&c, 0, sizeof c);
  c.dq = dq; c.dk = dk; c.dv = dv; c.dout = dout; c.q = q; c.k = k; c.v = v; c.o = out; c.lsein = lse; c.mask = mask;
  if (mask) for (int d = 0; d < 4; d++) c.ms[d] = mst[d];
  c.B = B; c.Hq = Hq; c.Hkv = Hkv; c.Sq = Sq; c.Sk = Sk; c.Dk = Dk; c.Dv = Dv; c.scale = scale; c.causal = causal;
  double work = (double)B * Hq * Sq * Sk * (Dk + Dv);
  int maxt = work < 1e5 ? 1 : r1_num_threads();
  c.Dbuf = malloc(sizeof(float) * (size_t)max_l(1, B * Hq * Sq));
  if (!c.Dbuf) abort();
  c.nitems = B * Hq * ((Sq + QB - 1) / QB);
  atomic_init(&c.next, 0);
  if (c.nitems > 0) r1_parallel_team((int)min_l(maxt, c.nitems), attn_bwd_dq_team, &c);
  c.nitems = B * Hkv * ((Sk + KB - 1) / KB);
  atomic_store(&c.next, 0);
  if (c.nitems > 0) r1_parallel_team((int)min_l(maxt, c.nitems), attn_bwd_dkv_team, &c);
  free(c.Dbuf);
}
