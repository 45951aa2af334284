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
    printf("%-6s %4s %4s %6s %10s %9s %7s %12s %12s %12s %9s\n", "cfg", "D", "H", "batch", "steps/s", "GFLOP/s", "%peak",
           "logprob10k", "sample10k", "train bytes", "vs min");
    for (c = 0; c < NCFG; ++c) {
        const cfg *C = &cfgs[c]; nf_flow_desc d; nf_flow *f; nf_trainer *t; nf_adam_config ac;
        size_t n = 20000, np; nf_real *y, *out, *lp; double runs[9], steps_per_s, macs = 0, gflops, lp_ms, s_ms, loss;
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
        for (r = 0; r < nrun && C->kind != MAF; ++r) { double t0 = now(); nf_rng_seed(&rng, 7); nf_flow_sample(f, &rng, 10000, out, NULL); runs[r] = (now() - t0) * 1e3; }
        s_ms = C->kind != MAF ? median(runs, nrun) : -1;
        train_bytes = nf_trainer_bytes(t) + np * sizeof(nf_real);
        {   /* MAF's sampling and non-RealNVP minimum bytes: "-" here, null in the JSON */
            char sbuf[32] = "-", mbuf[32] = "-", sjs[32] = "null", mjs[32] = "null";
            if (s_ms >= 0) { sprintf(sbuf, "%.2fms", s_ms); sprintf(sjs, "%.3f", s_ms); }
            if (min_bytes) { sprintf(mbuf, "%.2fx", (double)train_bytes / (double)min_bytes); sprintf(mjs, "%lu", (unsigned long)min_bytes); }
            printf("%-6s %4d %4d %6d %10.1f %9.1f %6.0f%% %10.2fms %12s %12lu %9s\n", C->name, C->D, C->H, C->batch, steps_per_s,
                   gflops, 100 * gflops / 117.0, lp_ms, sbuf, (unsigned long)train_bytes, mbuf);
            printf("{\"impl\": \"nflow\", \"config\": \"%s\", \"steps_per_s\": %.2f, \"gflops\": %.2f, \"logprob_10k_ms\": %.3f, "
                   "\"sample_10k_ms\": %s, \"train_bytes\": %lu, \"min_bytes\": %s, \"final_loss\": %.4f}\n",
                   C->name, steps_per_s, gflops, lp_ms, sjs, (unsigned long)train_bytes, mjs, loss);
        }
        fflush(stdout);
        nf_trainer_destroy(t); nf_flow_destroy(f); free(y); free(out); free(lp);
    }
    return 0;
}
