/* r1ts fused f32 kernels (the native side of src/tensor/backend.ts; that file's doc comments are the spec).
 *
 * Every function here trusts its arguments: addon.c checks types and bounds before calling.
 * Pointers are already offset to element 0 of each operand. Strides and sizes are in elements.
 * Kernels pick AVX2+FMA or portable C code at run time through r1_isa() (R1_ISA=scalar forces C),
 * and run on the r1 thread pool (threads.h) once the work is large enough. */
#ifndef R1_KERNELS_H
#define R1_KERNELS_H
#include <stdint.h>

#define R1_MAX_DIMS 16

/* Op codes: the order must match the tables in src/tensor/backends/native.ts. */
enum {
  U_NEG, U_EXP, U_LOG, U_SQRT, U_RSQRT, U_ABS, U_SQUARE, U_SIGMOID, U_TANH, U_RELU, U_SILU,
  U_GELU, U_GELU_TANH, U_POW, U_ADDS, U_MULS, U_CLAMP, U_COUNT
};
enum { G_SIGMOID, G_TANH, G_RELU, G_SILU, G_GELU, G_GELU_TANH, G_COUNT };
enum { B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MAX, B_MIN, B_COUNT };
enum { C_EQ, C_NE, C_LT, C_LE, C_GT, C_GE, C_COUNT };
enum { R_SUM, R_MAX, R_MIN, R_COUNT };
/* cast element codes */
enum { T_F32, T_F64, T_BF16, T_F16 };

/* A strided operand over a shared logical shape (pointer already at the operand's offset). */
typedef struct {
  void *p;
  long st[R1_MAX_DIMS];
} r1_operand;

void k_copy(const long *shape, int ndim, r1_operand *dst, r1_operand *src, int esize);
void k_cast(void *dst, int dt, const void *src, int st, long n);
void k_unary(int op, float *dst, const float *src, long n, float s, float s2);
void k_unary_grad(int op, float *dx, const float *x, const float *dy, long n);
/* dst contiguous over shape. */
void k_binary(int op, float *dst, const long *shape, int ndim, r1_operand *a, r1_operand *b);
void k_compare(int op, uint8_t *dst, const long *shape, int ndim, r1_operand *a, r1_operand *b);
void k_where(float *dst, const long *shape, int ndim, r1_operand *c, r1_operand *a, r1_operand *b);
void k_reduce(int op, float *dst, const float *src, long outer, long n, long inner);
void k_read_probe(float *dst, const float *src, long n, int streams); /* bandwidth probe: dst[thread] = its sum */
void k_argreduce(int is_min, int32_t *dst, const float *src, long outer, long n, long inner);
void k_matmul(float *c, const float *a, long aBatchStride, long lda, int transA,
              const float *b, long bBatchStride, long ldb, int transB,
              long batch, long m, long n, long k, int accumulate);
void k_softmax(float *dst, const float *src, long rows, long cols, int log);
void k_softmax_grad(float *dx, const float *y, const float *dy, long rows, long cols, int log);
void k_rmsnorm(float *y, float *rstd, const float *x, const float *w, long rows, long cols, float eps);
void k_rmsnorm_grad(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd,
                    long rows, long cols);
void k_rope(float *dst, const float *x, const float *cos, const float *sin, const int32_t *pos,
            long T, long H, long D, long R, int interleaved, int inverse);
void k_xent(float *loss, float *lse, const float *logits, const int32_t *targets, long rows, long V, long ignore);
void k_greedy_pick(int32_t *ids, float *loss, float *lse, const float *logits, long rows, long V);
void k_xent_grad(float *dlogits, const float *logits, const float *lse, const int32_t *targets, const float *dloss,
                 long rows, long V, long ignore);
/* mask: NULL or pointer at mask offset with 4 strides (b, h, i, j). */
void k_attention(float *out, float *lse, const float *q, const float *k, const float *v,
                 const float *mask, const long *mst,
                 long B, long Hq, long Hkv, long Sq, long Sk, long Dk, long Dv, float scale, int causal,
                 const long *kv_strides /* [kRow, kHead, vRow, vHead] or NULL = dense */);
/* Ragged inference attention with the cache append (kernels.c): geom holds [n, past, cap] per sequence; q [N, Hq, Dk],
 * knew [N, Hkv, Dk], vnew [N, Hkv, Dv] (unused with vink: values are the first Dv columns of the key rows),
 * kc[s] [Hkv, cap, Dk], vc[s] [Hkv, cap, Dv], out [N, Hq, Dv]. bf16: the caches hold bf16 bit patterns (uint16; new rows
 * rounded to nearest even, read back exactly), else f32. */
void k_attention_ragged(float *out, const float *q, const float *knew, const float *vnew, void *const *kc,
                        void *const *vc, const long *geom, long nseg, long Hq, long Hkv, long Dk, long Dv,
                        float scale, int vink, int bf16);
void k_attention_grad(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                      const float *v, const float *out, const float *lse, const float *mask, const long *mst,
                      long B, long Hq, long Hkv, long Sq, long Sk, long Dk, long Dv, float scale, int causal);
void k_silu_mul(float *y, const float *a, const float *b, long n);
/* The same values, computed on the calling thread only (qpanel.c's GLU epilogue runs it inside a thread's share). */
void k_silu_mul_serial(float *y, const float *a, const float *b, long n);
void k_silu_mul_grad(float *da, float *db, const float *a, const float *b, const float *dy, long n);
void k_index_select(void *dst, const void *src, const int32_t *idx, long outer, long nSrc, long nIdx, long inner, int esize);
void k_index_add(float *dst, const float *src, const int32_t *idx, long outer, long nDst, long nIdx, long inner);
void k_gather(void *dst, const void *src, const int32_t *idx, long outer, long nSrc, long nIdx, long inner, int esize);
void k_scatter(float *dst, const float *src, const int32_t *idx, long outer, long nDst, long nIdx, long inner, int accumulate);
void k_topk(float *values, int32_t *indices, const float *src, long rows, long n, long k, int largest);
void k_adamw(float *p, const float *g, float *m, float *v, long n,
             double lr, double b1, double b2, double eps, double wd, double bc1, double bc2);
#endif
