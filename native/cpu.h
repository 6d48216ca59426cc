/* Runtime CPU feature detection for kernel dispatch. */
#ifndef R1_CPU_H
#define R1_CPU_H
enum { R1_ISA_SCALAR = 0, R1_ISA_AVX2 = 1, R1_ISA_AVX512 = 2 };
/* Best ISA supported by this CPU, capped by env R1_ISA=scalar|avx2|avx512 when set. */
int r1_isa(void);
const char *r1_isa_name(int isa);
#endif
