/* Register-blocked small-M products Y[M,N] = X[M,K] . W^T (+ bias) on AVX-512 (implementation in qsmall.c).
 * Serves qgemm.c's small-M path (batched decode: M = 2..QS_MAX_M rows against [out, in] weights) for
 *   R1_QW_F32   f32 weights, f32 activations, f32 FMA;
 *   R1_QW_BF16  bf16 weights x bf16-rounded activations with vdpbf16ps (AVX512_BF16 CPUs only);
 *   R1_QW_E4M3  E4M3 codes decoded to bf16 (exact) x bf16-rounded activations with vdpbf16ps, the 128 x 128 block
 *               scale applied to each 128-wide partial sum in f32 (AVX512_BF16 CPUs only). */
#ifndef R1_QSMALL_H
#define R1_QSMALL_H
#include <stdint.h>

/* Rows of X one pass over a W row group serves (the X rows of a call are taken in chunks of this many). */
#define QS_MAX_M 64

typedef struct {
  int fmt;             /* R1_QW_F32 | R1_QW_BF16 | R1_QW_E4M3 */
  long M, N, K, sk;    /* sk = ceil(K / 128): scale columns (fp8) */
  const float *X;      /* [M, K] f32 rows (R1_QW_F32) */
  const uint16_t *Xb;  /* [M, K] bf16 rows (R1_QW_BF16, R1_QW_E4M3) */
  const void *W;       /* [N, K] */
  long ldx, ldw, ldy;  /* row strides of X, W (elements) and Y; 0 = dense (K, K, N) */
  int accumulate;      /* Y += X . W^T instead of Y = (f32 only) */
  const float *S;      /* fp8 block scales [ceil(N/128), sk] */
  const float *bias;   /* [N] or NULL */
  float *Y;            /* [M, N] */
} r1_qsmall;

/* 1 when this process can run r1_qsmall_rows for fmt (CPU features, R1_ISA cap). */
int r1_qsmall_ok(int fmt);
/* Output rows [4 g0, min(4 g1, N)) of Y (groups of 4 W rows; a group never straddles a 128-row scale block). */
void r1_qsmall_rows(const r1_qsmall *a, long g0, long g1);
/* M = 1 with E4M3 weights, decoded in registers (AVX512_BF16 + AVX512_VBMI): 1 when this process can run it. The
 * caller stores the bf16 activations once in the kernel's order (r1_qsmall_gemv_x: xlen(K) values, zero past K;
 * 64-byte aligned), then runs the groups [g0, g1) of 4 output rows; a->Xb is not read. */
int r1_qsmall_gemv_ok(int fmt);
long r1_qsmall_gemv_xlen(long K);
void r1_qsmall_gemv_x(const uint16_t *xb, long K, uint16_t *xp);
void r1_qsmall_gemv(const r1_qsmall *a, const uint16_t *xp, long g0, long g1);
/* Single-threaded f32 C[m,n] (= or +=, beta 0 or 1) op(A) op(B) for the small shapes where the packed GEMM's panel
 * packing costs as much as the arithmetic (DeepSeekMoE's per-expert products: tens of rows). Forms: NT (dot
 * products, the qsmall kernel), NN and TN (broadcast kernel: 6 rows of C x 64 columns in registers, one row of B per
 * step); AVX2 machines: NT and NN with m <= 64 only. Returns 0 (nothing done) for TT, beta other than 0 or 1, the
 * shapes a CPU's kernels do not take, or without AVX2. */
int r1_small_sgemm(int transA, int transB, long m, long n, long k, const float *A, long lda, const float *B, long ldb,
                   float beta, float *C, long ldc);
/* dst[i] = bf16 bits of src[i] rounded to nearest even (NaN stays NaN). */
void r1_round_bf16(const float *src, uint16_t *dst, long n);
#endif
