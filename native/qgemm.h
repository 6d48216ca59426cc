/* Packed-weight matrix products for inference: Y[M,N] = X[M,K] . W^T (+ bias), W [N,K] row-major stored as
 *   R1_QW_BF16: bfloat16 bit patterns (uint16, the top half of an IEEE f32), or
 *   R1_QW_E4M3: FP8 E4M3fn codes (uint8) with f32 dequantization factors scale_inv per 128 x 128 block,
 *               row-major [ceil(N/128), ceil(K/128)]: w[n,k] = decode(code[n,k]) * scale_inv[n/128, k/128]
 *               (the DeepSeek-V3 `weight_scale_inv` convention, src/quant/blockwise.ts).
 * The dequantization is fused into the product (no f32 copy of W for small M); see qgemm.c. */
#ifndef R1_QGEMM_H
#define R1_QGEMM_H
#include <node_api.h>
#include <stdint.h>

/* R1_QW_F32: plain f32 rows (no scales). Used by gemm.c for f32 products with 2..16 rows and a transposed B
 * (a decode step of a batch against [out, in] weights): streaming each W row once for all rows of X beats
 * the packed GEMM, whose B-panel packing costs as much as the arithmetic at such small M. */
enum { R1_QW_BF16 = 0, R1_QW_E4M3 = 1, R1_QW_F32 = 2, R1_QW_BF16P = 3 /* bf16 in 16-row panels (qpanel.h) */,
       R1_QW_F32P = 4 /* f32 in 16-row panels (qpanel.h) */, R1_QW_E4M3P = 5 /* E4M3 in 16-row panels (qpanel.h) */ };
/* Largest M the fused small-M path serves. */
#define R1_QW_SMALL_M 16
#define R1_QW_BLOCK 128

/* X, Y contiguous row-major (ldx = K, ldy = N). scale_inv ignored for bf16; bias may be NULL. Multithreaded. */
/* Returns 0 (Y untouched) when the bf16-rounded copy of X for a packed format cannot be allocated, else 1. */
int r1_qgemm(int fmt, long M, long N, long K, const float *X, const void *W, const float *scale_inv,
             const float *bias, float *Y);
/* Dequantize rows [r0, r1) of W into dst (row-major, (r1 - r0) x K). Multithreaded. */
void r1_qdequant(int fmt, long N, long K, const void *W, const float *scale_inv, long r0, long r1, float *dst);

/* N-API entry points (registered in addon.c). */
napi_value r1_napi_qgemm(napi_env env, napi_callback_info info);
napi_value r1_napi_qdequant(napi_env env, napi_callback_info info);
napi_value r1_napi_qpanel_pack(napi_env env, napi_callback_info info);
napi_value r1_napi_qpanel_preferred(napi_env env, napi_callback_info info);
napi_value r1_napi_qpanel_glu(napi_env env, napi_callback_info info);
#endif
