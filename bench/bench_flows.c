/* bench_flows: the performance protocol (issue 5), single thread, float.
   RealNVP, L = 8 affine couplings with alternating checkerboard masks, conditioner
   MLP with 2 hidden ReLU layers of width H, output [shift | raw log-scale],
   log-scale = tanh(raw) (clamp 1), last layer zero-initialised; standard normal base;
   Adam, lr 1e-3. A step = forward, mean NLL, backward, Adam update on one minibatch.
     P1 D=2 H=64 batch 256   P2 D=2 H=256 batch 512   P3 D=16 H=128 batch 256   P4 D=64 H=256 batch 512
   The same sizes with other layers (issue 12): Pn-NSF is nf_flow_desc_nsf(&d, D, 8, H, 8)
   (since issue 18 item 15: spline and affine couplings taking turns, 8 bins, tail bound 5,
   an LU layer between couplings, softplus conditioners), Pn-MAF is
   nf_flow_desc_maf(&d, D, 8, H, NF_TRANSFORM_AFFINE, 0) (MADE conditioners, clamp 3);
   MAF samples in D sequential passes, so its sampling is not timed.
   Data: D = 2 two moons (noise 0.05, standardised); D > 2 a fixed-seed Gaussian mixture.
   Prints a table and one JSON line per config. Usage: bench_flows [--quick] [P1 P2 P3-NSF ...]
   (no names: every row below). */
#define _POSIX_C_SOURCE 199309L
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return (double)t.tv_sec + (double)t.tv_nsec * 1e-9; }
static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }
static double median(double *v, int n) { qsort(v, (size_t)n, sizeof *v, cmpd); return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]); }

/* The FMA peak of one core in nf_real, measured here so that "% of peak" needs nothing
   outside this file (the method of shared/tools/perf/peak_fma.c): 12 independent chains
   c = c * a + b in the vectors of nflow's matrix kernel (nf__gv: 16 floats with AVX-512,
   8 with AVX), contracted to fused multiply-adds; the best of 15 runs of ~2 ms each. The
   machine's speed drifts, so it is measured again before every config. Without the
   kernel's vectors (plain C) it measures scalar multiply-adds. */
#if defined(__GNUC__) && !defined(__clang__)
#define PEAK_FN __attribute__((noinline, optimize("fp-contract=fast")))
#else
#define PEAK_FN __attribute__((noinline))
#endif
#ifndef NF__GN_VB
#define NF__GN_VB ((int)sizeof(nf_real))
#endif
static PEAK_FN double peak_run(long iters, nf_real *sink) {
#if defined(__clang__)
#pragma STDC FP_CONTRACT ON
#endif
    nf__gv a, b, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, s; long it; double t0, t; int l;
    nf_real ta[NF__GN_VB / sizeof(nf_real)];
    for (l = 0; l < (int)(NF__GN_VB / sizeof(nf_real)); ++l) ta[l] = (nf_real)(0.999999 - 1e-9 * l);
    memcpy(&a, ta, sizeof a);
    for (l = 0; l < (int)(NF__GN_VB / sizeof(nf_real)); ++l) ta[l] = (nf_real)1e-7;
    memcpy(&b, ta, sizeof b);
    c0 = b; c1 = b + 1; c2 = b + 2; c3 = b + 3; c4 = b + 4; c5 = b + 5;   /* distinct chains: equal ones */
    c6 = b + 6; c7 = b + 7; c8 = b + 8; c9 = b + 9; c10 = b + 10; c11 = b + 11;   /* would be merged */
    t0 = now();
    for (it = 0; it < iters; ++it) {
        c0 = c0 * a + b; c1 = c1 * a + b; c2 = c2 * a + b; c3 = c3 * a + b; c4 = c4 * a + b; c5 = c5 * a + b;
        c6 = c6 * a + b; c7 = c7 * a + b; c8 = c8 * a + b; c9 = c9 * a + b; c10 = c10 * a + b; c11 = c11 * a + b;
    }
    t = now() - t0;
    s = ((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7)) + ((c8 + c9) + (c10 + c11));
    memcpy(ta, &s, sizeof s);
    for (l = 0; l < (int)(NF__GN_VB / sizeof(nf_real)); ++l) *sink += ta[l];
    return (double)iters * 12 * 2 * (double)(NF__GN_VB / sizeof(nf_real)) / t * 1e-9;
}
static double peak_gflops(void) {
    double best = 0; nf_real sink = 0; int r;
    long iters = 24000L * 64 / NF__GN_VB;   /* ~2 ms at the AVX-512 peak of a 3 GHz core */
    for (r = 0; r < 15; ++r) { double g = peak_run(iters, &sink); if (g > best) best = g; }
    return sink == sink ? best : -best;   /* the chains' sum is used: nothing is optimised away */
}

static void make_data(int D, size_t n, nf_real *y) {
    nf_rng r; size_t i; int j;
    nf_rng_seed(&r, 1234);
    if (D == 2) {
        for (i = 0; i < n; ++i) {
            double t = 3.14159265358979 * (double)nf_rng_uniform(&r); int up = (int)(nf_rng_u32(&r) & 1);
            y[2 * i] = (nf_real)((up ? cos(t) : 1 - cos(t)) + 0.05 * (double)nf_rng_normal(&r));
            y[2 * i + 1] = (nf_real)((up ? sin(t) : 0.5 - sin(t)) + 0.05 * (double)nf_rng_normal(&r));
        }
        for (j = 0; j < 2; ++j) {   /* standardise */
            double m = 0, v = 0;
            for (i = 0; i < n; ++i) m += y[2 * i + j];
            m /= (double)n;
            for (i = 0; i < n; ++i) v += (y[2 * i + j] - m) * (y[2 * i + j] - m);
            v = sqrt(v / (double)n);
            for (i = 0; i < n; ++i) y[2 * i + j] = (nf_real)((y[2 * i + j] - m) / v);
        }
    } else {   /* 8-component mixture, random means in [-2, 2]^D, scales 0.3 .. 0.8 */
        double mu[8][64], sd[8];
        int k;
        for (k = 0; k < 8; ++k) { for (j = 0; j < D; ++j) mu[k][j] = 4 * (double)nf_rng_uniform(&r) - 2; sd[k] = 0.3 + 0.5 * (double)nf_rng_uniform(&r); }
        for (i = 0; i < n; ++i) {
            k = (int)(nf_rng_u32(&r) % 8);
            for (j = 0; j < D; ++j) y[i * D + j] = (nf_real)(mu[k][j] + sd[k] * (double)nf_rng_normal(&r));
        }
    }
}

enum { REALNVP, NSF, MAF };
typedef struct cfg { const char *name; int D, H, batch, kind; } cfg;

/* multiply-adds of coupling/MADE layer L's linear layers per row (2 hidden layers of H) */
static double layer_macs(const cfg *C, int L) {
    int nk = (C->D + (L % 2 == 0 ? 1 : 0)) / 2, nt = C->D - nk;
    if (C->D == 2) { nk = 1; nt = 1; }
    if (C->kind == MAF) return (double)C->D * C->H + (double)C->H * C->H + (double)C->H * 2 * C->D;
    return (double)nk * C->H + (double)C->H * C->H + (double)C->H * (C->kind == NSF ? 3 * 8 - 1 : 2) * nt;
}

int main(int argc, char **argv) {
    enum { NCFG = 9 };
    static const cfg cfgs[NCFG] = {{"P1", 2, 64, 256, REALNVP}, {"P2", 2, 256, 512, REALNVP}, {"P3", 16, 128, 256, REALNVP},
                                   {"P4", 64, 256, 512, REALNVP}, {"P2-NSF", 2, 256, 512, NSF}, {"P3-NSF", 16, 128, 256, NSF},
                                   {"P4-NSF", 64, 256, 512, NSF}, {"P3-MAF", 16, 128, 256, MAF}, {"P4-MAF", 64, 256, 512, MAF}};
    int quick = 0, want[NCFG] = {0}, any = 0, c, i;
    for (i = 1; i < argc; ++i) {
        int found = 0;
        if (!strcmp(argv[i], "--quick")) { quick = 1; continue; }
        for (c = 0; c < NCFG; ++c) if (!strcmp(argv[i], cfgs[c].name)) { want[c] = 1; any = 1; found = 1; }
        if (!found) { fprintf(stderr, "bench_flows: unknown config %s\n", argv[i]); return 1; }
    }
    printf("nflow %s, %s, one thread. Medians of %d timed runs after warm-up.\n", NFLOW_VERSION_STRING,
           sizeof(nf_real) == 4 ? "float32" : "float64", quick ? 3 : 7);
    printf("GFLOP/s counts the linear layers' multiply-adds (2 flops each; a step is 3 products, log_prob 1);\n"
           "%%peak is against the FMA peak measured just before each config (\"peak\", %d-byte vectors).\n",
           (int)NF__GN_VB);
    printf("%-6s %4s %4s %6s %7s %10s %8s %6s %11s %8s %6s %10s %12s %9s\n", "cfg", "D", "H", "batch", "peak", "steps/s",
           "GFLOP/s", "%peak", "logprob10k", "GFLOP/s", "%peak", "sample10k", "train bytes", "vs min");
    for (c = 0; c < NCFG; ++c) {
        const cfg *C = &cfgs[c]; nf_flow_desc d; nf_flow *f; nf_trainer *t; nf_adam_config ac;
        size_t n = 20000, np; nf_real *y, *out, *lp; double runs[9], steps_per_s, macs = 0, gflops, lp_ms, lp_gflops, s_ms, loss, peak;
        int nrun = quick ? 3 : 7, r, L, steps_per_run;
        size_t train_bytes, min_bytes = 0; nf_rng rng;
        if (any && !want[c]) continue;
        y = (nf_real *)malloc(sizeof(nf_real) * n * C->D);
        out = (nf_real *)malloc(sizeof(nf_real) * 10000 * C->D);
        lp = (nf_real *)malloc(sizeof(nf_real) * 10000);
        make_data(C->D, n, y);
        if (C->kind == REALNVP) {
            nf_flow_desc_realnvp(&d, C->D, 8, C->H);
            for (L = 0; L < 8; ++L) d.layers[L].clamp = 1;   /* log-scale = tanh(raw) */
        } else if (C->kind == NSF) nf_flow_desc_nsf(&d, C->D, 8, C->H, 8);
        else nf_flow_desc_maf(&d, C->D, 8, C->H, NF_TRANSFORM_AFFINE, 0);
        if (nf_flow_create(&f, &d) != NF_OK) { fprintf(stderr, "bench_flows: cannot create %s\n", C->name); return 1; }
        nf_adam_config_default(&ac); ac.lr = 1e-3;
        nf_trainer_create(&t, f, &ac, (size_t)C->batch);
        np = nf_flow_num_params(f);
        for (L = 0; L < 8; ++L) {   /* multiply-adds of the linear layers per row */
            int nk = (C->D + (L % 2 == 0 ? 1 : 0)) / 2, nt = C->D - nk;
            if (C->D == 2) { nk = 1; nt = 1; }
            macs += layer_macs(C, L);
            /* RealNVP: what backward must keep per row: each linear's input and output, s, e^s, z */
            min_bytes += (size_t)C->batch * sizeof(nf_real) * (size_t)(nk + 2 * C->H + 2 * nt + 3 * nt + C->D);
        }
        min_bytes = C->kind == REALNVP ? min_bytes + 4 * np * sizeof(nf_real) : 0;
        peak = peak_gflops();
        steps_per_run = (int)(2e9 / (6 * macs * C->batch)) + 5;   /* about 0.1 s per run at ~100 GFLOP/s */
        if (quick) steps_per_run = steps_per_run / 4 + 2;
        for (i = 0; i < steps_per_run; ++i)   /* warm-up */
            nf_train_step(t, y + (size_t)((i * C->batch) % (int)(n - C->batch)) * C->D, NULL, (size_t)C->batch, &loss);
        for (r = 0; r < nrun; ++r) {
            double t0 = now();
            for (i = 0; i < steps_per_run; ++i)
                nf_train_step(t, y + (size_t)((i * C->batch) % (int)(n - C->batch)) * C->D, NULL, (size_t)C->batch, &loss);
            runs[r] = steps_per_run / (now() - t0);
        }
        steps_per_s = median(runs, nrun);
        gflops = 6 * macs * C->batch * steps_per_s * 1e-9;
        for (r = 0; r < nrun; ++r) { double t0 = now(); nf_flow_log_prob(f, y, 10000, lp); runs[r] = (now() - t0) * 1e3; }
        lp_ms = median(runs, nrun);
        lp_gflops = 2 * macs * 10000 / lp_ms * 1e-6;
        { double p2 = peak_gflops(); peak = p2 > peak ? p2 : peak; }   /* the faster of before and after */
        for (r = 0; r < nrun && C->kind != MAF; ++r) { double t0 = now(); nf_rng_seed(&rng, 7); nf_flow_sample(f, &rng, 10000, out, NULL); runs[r] = (now() - t0) * 1e3; }
        s_ms = C->kind != MAF ? median(runs, nrun) : -1;
        train_bytes = nf_trainer_bytes(t) + np * sizeof(nf_real);
        {   /* MAF's sampling and non-RealNVP minimum bytes: "-" here, null in the JSON */
            char sbuf[32] = "-", mbuf[32] = "-", sjs[32] = "null", mjs[32] = "null";
            if (s_ms >= 0) { sprintf(sbuf, "%.2fms", s_ms); sprintf(sjs, "%.3f", s_ms); }
            if (min_bytes) { sprintf(mbuf, "%.2fx", (double)train_bytes / (double)min_bytes); sprintf(mjs, "%lu", (unsigned long)min_bytes); }
            printf("%-6s %4d %4d %6d %7.1f %10.1f %8.1f %5.0f%% %9.2fms %8.1f %5.0f%% %8s %12lu %9s\n", C->name, C->D, C->H,
                   C->batch, peak, steps_per_s, gflops, 100 * gflops / peak, lp_ms, lp_gflops, 100 * lp_gflops / peak, sbuf,
                   (unsigned long)train_bytes, mbuf);
            printf("{\"impl\": \"nflow\", \"config\": \"%s\", \"peak_gflops\": %.2f, \"steps_per_s\": %.2f, \"gflops\": %.2f, "
                   "\"pct_peak\": %.1f, \"logprob_10k_ms\": %.3f, \"logprob_gflops\": %.2f, \"logprob_pct_peak\": %.1f, "
                   "\"sample_10k_ms\": %s, \"train_bytes\": %lu, \"min_bytes\": %s, \"final_loss\": %.4f}\n",
                   C->name, peak, steps_per_s, gflops, 100 * gflops / peak, lp_ms, lp_gflops, 100 * lp_gflops / peak, sjs,
                   (unsigned long)train_bytes, mjs, loss);
        }
        fflush(stdout);
        nf_trainer_destroy(t); nf_flow_destroy(f); free(y); free(out); free(lp);
    }
    return 0;
}
