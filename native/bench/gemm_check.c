/* Standalone correctness check of r1_sgemm against a double-precision naive product.
 * Build: gcc -O2 -std=gnu11 -pthread -Inative -I/usr/include/node native/bench/gemm_check.c native/gemm.c native/threads.c native/cpu.c -o /tmp/gemm_check -lm
 * Run under R1_ISA=scalar|avx2|avx512 and R1_THREADS=1|2|3 to cover each kernel and team size. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gemm.h"
#include "threads.h"
#include "cpu.h"

static unsigned long long rng = 88172645463325252ULL;
static float frand(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f; }

static int check(int ta, int tb, long m, long n, long k, float alpha, float beta, int st) {
  long lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5, ldc = n + 2;
  long arows = ta ? k : m, brows = tb ? n : k;
  float *A = malloc(sizeof(float) * (arows * lda + 1)), *B = malloc(sizeof(float) * (brows * ldb + 1));
  float *C = malloc(sizeof(float) * (m * ldc + 1)), *C0 = malloc(sizeof(float) * (m * ldc + 1));
  for (long i = 0; i < arows * lda; i++) A[i] = frand();
  for (long i = 0; i < brows * ldb; i++) B[i] = frand();
  for (long i = 0; i < m * ldc; i++) C0[i] = C[i] = beta == 0.0f ? NAN : frand();
  (st ? r1_sgemm_st : r1_sgemm)(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
  int bad = 0;
  for (long i = 0; i < m && !bad; i++)
    for (long j = 0; j < ldc; j++) {
      if (j >= n) { /* padding between rows must be untouched */
        if (memcmp(&C[i * ldc + j], &C0[i * ldc + j], 4) != 0) { bad = 1; printf("padding clobbered\n"); break; }
        continue;
      }
      double s = 0, sa = 0;
      for (long p = 0; p < k; p++) {
        double a = ta ? A[p * lda + i] : A[i * lda + p], b = tb ? B[j * ldb + p] : B[p * ldb + j];
        s += a * b; sa += fabs(a * b);
      }
      double ref = alpha * s + (beta == 0.0f ? 0.0 : beta * (double)C0[i * ldc + j]);
      double tol = 1e-5 * (fabs(alpha) * sa + fabs(beta) + 1) + 1e-6;
      if (!(fabs(C[i * ldc + j] - ref) <= tol)) {
        printf("MISMATCH ta=%d tb=%d m=%ld n=%ld k=%ld alpha=%g beta=%g at (%ld,%ld): got %g want %g\n", ta, tb, m, n, k, alpha, beta, i, j, C[i * ldc + j], ref);
        bad = 1; break;
      }
    }
  free(A); free(B); free(C); free(C0);
  return bad;
}

int main(int argc, char **argv) {
  int big_only = argc > 1 && argv[1][0] == 'b';
  printf("isa=%s threads=%d\n", r1_isa_name(r1_isa()), r1_num_threads());
  long sizes[] = {1, 2, 3, 5, 6, 7, 12, 13, 16, 17, 31, 33, 64, 97, 130, 200, 300};
  int ns = sizeof sizes / sizeof *sizes, fails = 0, count = 0;
  for (int a = 0; a < (big_only ? 0 : ns); a++)
    for (int b = 0; b < ns; b += 2)
      for (int c = 0; c < ns; c += 3) {
        long m = sizes[a], n = sizes[(b + a) % ns], k = sizes[(c + 2 * a) % ns];
        for (int t = 0; t < 4; t++) {
          float alpha = (t & 1) ? 0.5f : 1.0f, beta = (t == 0) ? 0.0f : (t == 1 ? 1.0f : (t == 2 ? -0.75f : 0.0f));
          fails += check(t & 1, (t >> 1) & 1, m, n, k, alpha, beta, (a + b) & 1);
          count++;
        }
      }
  /* big shapes crossing every block boundary, and GEMV shapes */
  long big[][3] = {{300, 4200, 700}, {3000, 20, 4000} /* two row super-blocks */, {1, 4864, 896}, {1, 3, 2000}, {777, 1, 901}, {1, 1, 1}, {5, 9000, 3}, {2, 2, 0}, {520, 33, 1030}};
  for (unsigned i = 0; i < sizeof big / sizeof *big; i++)
    for (int t = 0; t < 4; t++) {
      fails += check(t & 1, t >> 1, big[i][0], big[i][1], big[i][2], 1.0f, t == 3 ? 2.0f : 0.0f, 0);
      count++;
    }
  printf("%d/%d cases failed\n", fails, count);
  return fails != 0;
}
