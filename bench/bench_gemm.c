#define _POSIX_C_SOURCE 199309L
/* bench_gemm: GFLOP/s of nf_gemm, single thread, median of repeats, for the three
   forms training uses: A*B (forward), A*B^T (input gradient), A^T*B (weight gradient).
   Sizes are M x N x K as (rows, outputs, inputs) of a dense layer's batch. */
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }

int main(void) {
    static const int sizes[][3] = {{256, 64, 64}, {512, 128, 128}, {512, 256, 256}};
    static const char *forms[] = {"A*B  ", "A*B^T", "A^T*B"};
    nf_rng r; int s, f, i;
    nf_rng_seed(&r, 1);
    printf("nf_gemm, %s, one thread; GFLOP/s = 2 M N K / time, median of 15 runs\n", sizeof(nf_real) == 4 ? "float" : "double");
    printf("%-16s %-6s %10s\n", "M x N x K", "form", "GFLOP/s");
    for (s = 0; s < 3; ++s) {
        int M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
        nf_real *A = (nf_real *)malloc(sizeof(nf_real) * M * K), *B = (nf_real *)malloc(sizeof(nf_real) * K * N), *C = (nf_real *)malloc(sizeof(nf_real) * M * N);
        for (i = 0; i < M * K; ++i) A[i] = nf_rng_normal(&r);
        for (i = 0; i < K * N; ++i) B[i] = nf_rng_normal(&r);
        for (f = 0; f < 3; ++f) {
            double t[15], flops = 2.0 * M * N * K; int rep, reps = (int)(2e8 / flops) + 1;
            for (rep = 0; rep < 15; ++rep) {
                double t0 = now(); int k;
                for (k = 0; k < reps; ++k) {
                    if (f == 0) nf_gemm(0, 0, M, N, K, A, K, B, N, C, N, 0);
                    else if (f == 1) nf_gemm(0, 1, M, N, K, A, K, B, K, C, N, 0);   /* B stored N x K */
                    else nf_gemm(1, 0, M, N, K, A, M, B, N, C, N, 0);               /* A stored K x M */
                }
                t[rep] = (now() - t0) / reps;
            }
            qsort(t, 15, sizeof t[0], cmp);
            printf("%4d x %3d x %3d  %s %10.1f\n", M, N, K, forms[f], flops / t[7] * 1e-9);
            fflush(stdout);
        }
        free(A); free(B); free(C);
    }
    return 0;
}
