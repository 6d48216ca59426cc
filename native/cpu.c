/* Runtime CPU feature detection (API in cpu.h).
 * The addon is compiled without -march (binding.gyp), so SIMD kernels carry
 * __attribute__((target(...))) and are chosen here at run time. __builtin_cpu_supports (libgcc)
 * checks CPUID and also that the OS saves the wider registers (XGETBV), so "avx2"/"avx512f" being
 * reported means the instructions are safe to execute. */
#include "cpu.h"

#include <stdlib.h>
#include <string.h>

static int detect(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  /* Our AVX2 kernels also use FMA3; AVX-512 kernels need only the F subset. */
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    if (__builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
      return R1_ISA_AVX512BF16;
    return R1_ISA_AVX512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return R1_ISA_AVX2;
#endif
  return R1_ISA_SCALAR;
}

int r1_isa(void) {
  static int cached = -1; /* racy first call is harmless: every thread computes the same value */
  if (cached >= 0) return cached;
  int isa = detect();
  const char *cap = getenv("R1_ISA");
  if (cap && *cap) {
    int c = isa;
    if (strcmp(cap, "scalar") == 0) c = R1_ISA_SCALAR;
    else if (strcmp(cap, "avx2") == 0) c = R1_ISA_AVX2;
    else if (strcmp(cap, "avx512") == 0) c = R1_ISA_AVX512;
    else if (strcmp(cap, "avx512bf16") == 0) c = R1_ISA_AVX512BF16;
    if (c < isa) isa = c; /* a cap only lowers: never enable what the CPU lacks */
  }
  cached = isa;
  return isa;
}

const char *r1_isa_name(int isa) {
  switch (isa) {
    case R1_ISA_AVX512BF16: return "avx512bf16";
    case R1_ISA_AVX512: return "avx512";
    case R1_ISA_AVX2: return "avx2";
    default: return "scalar";
  }
}

int r1_cpu_gfni(void) {
#if defined(__x86_64__) || defined(__i386__)
  static int cached = -1;
  if (cached < 0) cached = r1_isa() >= R1_ISA_AVX512BF16 && __builtin_cpu_supports("gfni") && !getenv("R1_NO_GFNI");
  return cached;
#else
  return 0;
#endif
}

int r1_cpu_vbmi(void) {
#if defined(__x86_64__) || defined(__i386__)
  static int cached = -1;
  if (cached < 0) cached = r1_isa() >= R1_ISA_AVX512BF16 && __builtin_cpu_supports("avx512vbmi");
  return cached;
#else
  return 0;
#endif
}
