#define _POSIX_C_SOURCE 199309L
/* gemm_blas: GFLOP/s of nf_gemm at the flow shapes against OpenBLAS, single thread, the
   two timed in turn inside each round so that a burst of load from elsewhere hits both;
   the table gives the median and (best) round and the ratio of medians.
   make bench-gemm-blas (needs libopenblas-dev); on AMD run OpenBLAS 0.3.21 with
   OPENBLAS_CORETYPE=Haswell (its Zen kernel is slower; the Makefile rule sets it).
   Usage: gemm_blas [rounds] [filter: fwd|dX|dW|big] */
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cblas.h>

/* CPU time of this thread: the machine is shared, and time while another process runs on
   our core is not ours (GN_WALL=1 at build: wall-clock time instead) */
static double now(void) {
    struct timespec t;
#if defined(GN_WALL) || !defined(CLOCK_THREAD_CPUTIME_ID)
    clock_gettime(CLOCK_MONOTONIC, &t);
#else
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
#endif
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}
static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }

typedef struct shape { const char *what; int ta, tb, M, N, K; } shape;
/* the products of bench_flows.c's P1..P4 (RealNVP, 2 hidden layers) and a few more
   narrow outputs: forward x W (M = batch), dX = dY W^T, dW = X^T dY (K = batch) */
static const shape shapes[] = {
    {"fwd  P1 in ", 0, 0, 256, 64, 1},   {"fwd  P1 hid", 0, 0, 256, 64, 64},   {"fwd  P1 out", 0, 0, 256, 2, 64},
    {"fwd  P2 in ", 0, 0, 512, 256, 1},  {"fwd  P2 hid", 0, 0, 512, 256, 256}, {"fwd  P2 out", 0, 0, 512, 2, 256},
    {"fwd  P3 in ", 0, 0, 256, 128, 8},  {"fwd  P3 hid", 0, 0, 256, 128, 128}, {"fwd  P3 out", 0, 0, 256, 16, 128},
    {"fwd  P4 in ", 0, 0, 512, 256, 32}, {"fwd  P4 hid", 0, 0, 512, 256, 256}, {"fwd  P4 out", 0, 0, 512, 64, 256},
    {"fwd  n4    ", 0, 0, 512, 4, 256},  {"fwd  n128  ", 0, 0, 512, 128, 256},
    {"dX   P1 out", 0, 1, 256, 64, 2},   {"dX   P1 hid", 0, 1, 256, 64, 64},   {"dX   P1 in ", 0, 1, 256, 1, 64},
    {"dX   P2 out", 0, 1, 512, 256, 2},  {"dX   P2 hid", 0, 1, 512, 256, 256}, {"dX   P2 in ", 0, 1, 512, 1, 256},
    {"dX   P3 out", 0, 1, 256, 128, 16}, {"dX   P3 hid", 0, 1, 256, 128, 128}, {"dX   P3 in ", 0, 1, 256, 8, 128},
    {"dX   P4 out", 0, 1, 512, 256, 64}, {"dX   P4 hid", 0, 1, 512, 256, 256}, {"dX   P4 in ", 0, 1, 512, 32, 256},
    {"dW   P1 in ", 1, 0, 1, 64, 256},   {"dW   P1 hid", 1, 0, 64, 64, 256},   {"dW   P1 out", 1, 0, 64, 2, 256},
    {"dW   P2 in ", 1, 0, 1, 256, 512},  {"dW   P2 hid", 1, 0, 256, 256, 512}, {"dW   P2 out", 1, 0, 256, 2, 512},
    {"dW   P3 in ", 1, 0, 8, 128, 256},  {"dW   P3 hid", 1, 0, 128, 128, 256}, {"dW   P3 out", 1, 0, 128, 16, 256},
    {"dW   P4 in ", 1, 0, 32, 256, 512}, {"dW   P4 hid", 1, 0, 256, 256, 512}, {"dW   P4 out", 1, 0, 256, 64, 512},
    {"dW   n4    ", 1, 0, 256, 4, 512},  {"dW   n128  ", 1, 0, 256, 128, 512},
    {"big  fwd   ", 0, 0, 512, 256, 256}, {"big  A*B^T ", 0, 1, 512, 256, 256}, {"big  A^T*B ", 1, 0, 512, 256, 256}};

#define NIMPL 2
static const char *impl_name[NIMPL] = {"nf_gemm", "openblas"};

static void call(int impl, const shape *s, const nf_real *A, const nf_real *B, nf_real *C, int acc) {
    int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
    if (impl == 0) nf_gemm(s->ta, s->tb, s->M, s->N, s->K, A, lda, B, ldb, C, s->N, acc);
    else {
#ifdef NFLOW_DOUBLE
        cblas_dgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans, s->M, s->N, s->K,
                    1.0, A, lda, B, ldb, acc ? 1.0 : 0.0, C, s->N);
#else
        cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans, s->M, s->N, s->K,
                    1.0f, A, lda, B, ldb, acc ? 1.0f : 0.0f, C, s->N);
#endif
    }
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 31, ns = (int)(sizeof shapes / sizeof *shapes), si, im, r, have[NIMPL] = {1, 1};
    const char *filter = argc > 2 ? argv[2] : NULL;
    double sum_ratio = 0; int n_ratio = 0;
    unsigned long long seed = 1;
    openblas_set_num_threads(1);
    printf("# OpenBLAS %s, core %s\n", openblas_get_config(), openblas_get_corename());
    printf("# %s; nf_gemm: vector bytes %d, tile %d x %d, KC %d; GFLOP/s = 2MNK/time; median (best) of %d rounds\n",
           sizeof(nf_real) == 4 ? "float" : "double", (int)(NF__GN_VL * sizeof(nf_real)), NF__GN_MR, 2 * NF__GN_VL, NF__GN_KC, rounds);
    printf("%-12s %5s %14s", "shape", "form", "M x N x K");
    for (im = 0; im < NIMPL; ++im) if (have[im]) printf(" %16s", impl_name[im]);
    printf("   nf/blas\n");
    for (si = 0; si < ns; ++si) {
        const shape *s = &shapes[si];
        size_t na = (size_t)s->M * s->K, nb = (size_t)s->K * s->N, nc = (size_t)s->M * s->N, i;
        nf_real *A, *B, *C;
        double flops = 2.0 * s->M * s->N * s->K, t[NIMPL][101], med[NIMPL];
        int reps, acc = s->what[0] == 'd';   /* backward accumulates into the gradient */
        if (filter && !strstr(s->what, filter)) continue;
        A = (nf_real *)malloc(na * sizeof *A); B = (nf_real *)malloc(nb * sizeof *B); C = (nf_real *)malloc(nc * sizeof *C);
        for (i = 0; i < na; ++i) { seed = seed * 6364136223846793005ull + 1442695040888963407ull; A[i] = (nf_real)((double)(seed >> 40) / 16777216.0 - 0.5); }
        for (i = 0; i < nb; ++i) { seed = seed * 6364136223846793005ull + 1442695040888963407ull; B[i] = (nf_real)((double)(seed >> 40) / 16777216.0 - 0.5); }
        memset(C, 0, nc * sizeof *C);
        reps = (int)(4e6 / flops) + 1;   /* >= 4 MFLOP per timed group: >= 50 us, well above the clock's grain */
        if (rounds > 101) rounds = 101;
        for (im = 0; im < NIMPL; ++im) if (have[im]) for (i = 0; i < 3; ++i) call(im, s, A, B, C, acc);   /* warm-up */
        for (r = 0; r < rounds; ++r)
            for (im = 0; im < NIMPL; ++im) {
                double t0; int k;
                if (!have[im]) continue;
                if (acc) memset(C, 0, nc * sizeof *C);   /* keep accumulated values small */
                t0 = now();
                for (k = 0; k < reps; ++k) call(im, s, A, B, C, acc);
                t[im][r] = (now() - t0) / reps;
            }
        printf("%-12s %5s %4d x%4d x%4d", s->what, s->ta ? "A^T*B" : s->tb ? "A*B^T" : "A*B", s->M, s->N, s->K);
        for (im = 0; im < NIMPL; ++im) {
            if (!have[im]) continue;
            qsort(t[im], (size_t)rounds, sizeof(double), cmpd);
            med[im] = flops / t[im][rounds / 2] * 1e-9;
            printf(" %7.1f (%6.1f)", med[im], flops / t[im][0] * 1e-9);
        }
        printf("   %5.2f", med[0] / med[1]); sum_ratio += med[0] / med[1]; ++n_ratio;
        printf("\n");
        fflush(stdout);
        free(A); free(B); free(C);
    }
    if (n_ratio) printf("# mean nf_gemm/openblas over the shapes: %.2f\n", sum_ratio / n_ratio);
    return 0;
}
