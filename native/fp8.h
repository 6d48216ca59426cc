/* FP8 (E4M3fn / E5M2) bulk codecs and the FP8 GEMM emulation of DeepSeek-V3 section 3.3.2.
 * Semantics are those of src/quant/fp8.ts (codecs) and src/quant/fp8-gemm.ts (GEMM), the TypeScript
 * oracles the native code is tested against bit for bit. */
#ifndef R1_FP8_H
#define R1_FP8_H
#include <node_api.h>
#include <stdint.h>

enum { R1_FP8_E4M3 = 0, R1_FP8_E5M2 = 1 };
enum { R1_ACC_NEAREST = 0, R1_ACC_TOWARD_ZERO = 1 };

/* f32/f64 -> FP8 codes, round to nearest even; saturate clamps overflow and +-inf to +-max finite,
 * otherwise overflow gives +-inf (E5M2) or +-NaN code (E4M3fn). NaN -> 0x7F. Multithreaded. */
void r1_fp8_encode_f32(uint8_t *dst, const float *src, long n, int fmt, int saturate);
void r1_fp8_encode_f64(uint8_t *dst, const double *src, long n, int fmt, int saturate);
/* FP8 codes -> f32 (exact; NaN codes give the quiet NaN 0x7FC00000). Multithreaded. */
void r1_fp8_decode(float *dst, const uint8_t *src, long n, int fmt);

/* C[M,N] = A[M,K] . B[N,K]^T over FP8 codes with block scales (row-major grids
 * [ceil(M/abr), ceil(K/abc)] and [ceil(N/bbr), ceil(K/bbc)]); see fp8.c for what is emulated. */
void r1_fp8_gemm(float *C, const uint8_t *A, const float *As, const uint8_t *B, const float *Bs,
                 long M, long N, long K, long abr, long abc, long bbr, long bbc,
                 int acc_bits, long promote_every, int round_mode, int fmt);

/* Per-tile quantization of x [rows, cols] in [br, bc] tiles: scale_inv (row-major tile grid), codes, and deq (may
 * be NULL) = the dequantized values. Semantics of quantizeTiles in src/nn/fp8-linear.ts (see fp8.c). */
void r1_fp8_quantize_tiles(const float *x, long rows, long cols, long br, long bc, int fmt, float *scale_inv,
                           uint8_t *codes, float *deq);

/* N-API entry points (registered in addon.c). */
napi_value r1_napi_fp8_encode(napi_env env, napi_callback_info info);
napi_value r1_napi_fp8_decode(napi_env env, napi_callback_info info);
napi_value r1_napi_fp8_gemm(napi_env env, napi_callback_info info);
napi_value r1_napi_fp8_quantize_tiles(napi_env env, napi_callback_info info);
#endif
