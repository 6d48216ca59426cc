/* bf16 weights in 16-row panels with interleaved K pairs (and f32 weights in 16-row panels), and their product
 * Y = X . W^T (+ bias) (qpanel.c). */
#ifndef R1_QPANEL_H
#define R1_QPANEL_H
#include <stdint.h>

#define R1_QP_ROWS 16

/* Elements (uint16) of the panel layout of W [N, K]: ceil(N / 16) * 16 rows x K rounded up to even. */
long r1_qpanel_len(long N, long K);
/* 1 when this process runs the AVX512_BF16 panel kernels (otherwise the portable dequantize + f32 GEMM path). */
int r1_qpanel_native(void);
/* 1 when packers should choose the panel layout: the kernels run here and R1_QGEMM_NO_PANELS is unset. */
int r1_qpanel_preferred(void);
/* dst[r1_qpanel_len(N, K)] = the panel layout of the f32 matrix w [N, K], each value rounded to bf16 (nearest even). */
void r1_qpanel_pack(const float *w, long N, long K, uint16_t *dst);
/* Rows [r0, r1) of W as f32, row-major, (r1 - r0) x K. */
void r1_qpanel_dequant(long N, long K, const uint16_t *P, long r0, long r1, float *dst);
/* Y[M, N] = bf16(X)[M, K] . W^T (+ bias); X, Y contiguous. Returns 0 (Y untouched) when out of memory, else 1. */
int r1_qpanel_gemm(long M, long N, long K, const float *X, const uint16_t *P, const float *bias, float *Y);

/* f32 weights in 16-row panels: P[(q K + k) 16 + c] = W[16 q + c, k] (rows past N zero), one 64-byte panel row per K
 * index, multiplied by the same kernels with f32 FMAs on AVX-512 (no rounding of X: f32 x f32, f32 sums). */
/* Elements (float) of the f32 panel layout: ceil(N / 16) * 16 rows x K. */
long r1_qpanel_f32_len(long N, long K);
/* 1 when the AVX-512 f32 panel kernels run here; _preferred: and R1_QGEMM_NO_PANELS is unset. */
int r1_qpanel_f32_native(void);
int r1_qpanel_f32_preferred(void);
void r1_qpanel_f32_pack(const float *w, long N, long K, float *dst);
void r1_qpanel_f32_dequant(long N, long K, const float *P, long r0, long r1, float *dst);
/* Y[M, N] = X[M, K] . W^T (+ bias); returns 0 (Y untouched) when out of memory, else 1. */
int r1_qpanel_f32_gemm(long M, long N, long K, const float *X, const float *P, const float *bias, float *Y);

/* FP8 E4M3 codes in 16-row panels (K pairs as for bf16, two pairs per 64-byte group in the order of qpanel.c's
 * decode), with the 128 x 128 block scales S [ceil(N / 128), ceil(K / 128)] as for row-major fp8. The product decodes
 * to bf16 by table (AVX512_BF16 + AVX512_VBMI) and multiplies with vdpbf16ps; X is rounded to bf16 as on every packed
 * path. */
/* Bytes of the layout: ceil(N / 16) * 16 rows x K rounded up to a multiple of 4. */
long r1_qpanel8_len(long N, long K);
int r1_qpanel8_native(void);
int r1_qpanel8_preferred(void);
/* dst[r1_qpanel8_len(N, K)] = the panel layout of the row-major codes [N, K] */
void r1_qpanel8_pack(const uint8_t *codes, long N, long K, uint8_t *dst);
void r1_qpanel8_dequant(long N, long K, const uint8_t *P, const float *S, long r0, long r1, float *dst);
int r1_qpanel8_gemm(long M, long N, long K, const float *X, const uint8_t *P, const float *S, const float *bias, float *Y);

/* GLU of two same-shape products: Y[M, N] = silu(X . Wg^T) * (X . Wu^T), where P is [Wg; Wu] ([2N, K]) in the panel
 * layout of fmt (R1_QW_BF16P, R1_QW_F32P, R1_QW_E4M3P with S its 128 x 128 block scales), N a multiple of 16 (fp8:
 * of 128). For M >= 2 each output is the f32 that r1_qgemm of the whole W followed by k_silu_mul gives (M = 1 runs
 * the same kernels, whose sums may differ in the last bit from the GEMV's). Returns 1 done, 0 out of memory (Y
 * untouched), -1 when this format's panel kernels do not run here or N does not fit (the caller multiplies and
 * applies silu itself). */
int r1_qpanel_glu(int fmt, long M, long N, long K, const float *X, const void *P, const float *S, float *Y);
#endif
