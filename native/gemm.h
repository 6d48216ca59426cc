/* f32 GEMM, row-major.  C[m x n] (ldc) = alpha * op(A)[m x k] * op(B)[k x n] + beta * C.
 * op(A) = A (A stored m x k, lda >= k) or A^T (transA: A stored k x m, lda >= m); likewise B.
 * beta == 0 means C is write-only (never read, so NaN garbage in C is ignored).
 * Multithreaded on the r1 pool; dispatches to AVX-512 / AVX2+FMA / scalar micro-kernels at run time. */
#ifndef R1_GEMM_H
#define R1_GEMM_H
void r1_sgemm(int transA, int transB, long m, long n, long k, float alpha,
              const float *A, long lda, const float *B, long ldb, float beta, float *C, long ldc);
/* Single-threaded variant (used when the caller already parallelises, e.g. over a batch). */
void r1_sgemm_st(int transA, int transB, long m, long n, long k, float alpha,
                 const float *A, long lda, const float *B, long ldb, float beta, float *C, long ldc);
/* C[M,N] = X[M,K] . W[N,K]^T (contiguous), multithreaded, without the small-M redirection to qgemm.c. */
void r1_sgemm_big(long M, long N, long K, const float *X, const float *W, float *C);
#endif
