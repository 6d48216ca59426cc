/* Runtime CPU feature detection for kernel dispatch. */
#ifndef R1_CPU_H
#define R1_CPU_H
/* Levels are ordered: each includes the ones below. R1_ISA_AVX512BF16 = AVX-512 F/BW/VL plus AVX512_BF16
 * (vdpbf16ps: bf16 pair dot products into f32, twice the f32 FMA rate; Zen 4+, Cooper Lake, Sapphire Rapids+). */
enum { R1_ISA_SCALAR = 0, R1_ISA_AVX2 = 1, R1_ISA_AVX512 = 2, R1_ISA_AVX512BF16 = 3 };
/* Best ISA supported by this CPU, capped by env R1_ISA=scalar|avx2|avx512|avx512bf16 when set. */
int r1_isa(void);
const char *r1_isa_name(int isa);
/* 1 when AVX512_VBMI (byte permutes: vpermi2b) is usable alongside R1_ISA_AVX512BF16 (Zen 4, Ice Lake+; not
 * Cooper Lake). Follows the R1_ISA cap. */
int r1_cpu_vbmi(void);
/* 1 when GFNI (vgf2p8affineqb: an 8x8 bit-matrix map of every byte) is usable alongside R1_ISA_AVX512BF16 (Zen 4,
 * Ice Lake+). Follows the R1_ISA cap; env R1_NO_GFNI set turns it off (testing the table path). */
int r1_cpu_gfni(void);
#endif
