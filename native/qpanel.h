/* bf16 weights in 16-row panels with interleaved K pairs, and their product Y = X . W^T (+ bias) (qpanel.c). */
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
#endif
