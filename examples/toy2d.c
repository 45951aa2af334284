/* toy2d: RealNVP, a neural spline flow and a masked autoregressive flow on the standard
   2-D densities of the flow literature, with the same number of parameters each.

   Data sets (generated here): two moons, concentric rings, a checkerboard, a pinwheel,
   8 Gaussians, two spirals. Each model is built from its preset (nf_flow_desc_realnvp,
   nf_flow_desc_nsf, nf_flow_desc_maf) with the width that brings it to the parameter
   budget, and fitted with nf_fit's defaults: no tuning. Prints the held-out negative
   log-likelihood (nats per point, data coordinates) as a Markdown table and writes
   OUT/toy_grid.png: one column per data set; rows data, RealNVP, NSF, MAF.
   Usage: toy2d [--out DIR] [--quick] [--budget N]   (N parameters, default 20000) */
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"
#include "png.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PI 3.14159265358979323846
#define NSETS 6
#define NMODELS 3
static const char *set_names[NSETS] = {"two moons", "rings", "checkerboard", "pinwheel", "8 gaussians", "two spirals"};
static const char *model_names[NMODELS] = {"RealNVP", "NSF", "MAF"};

static double nrm(nf_rng *r) { return (double)nf_rng_normal(r); }
static double uni(nf_rng *r) { return (double)nf_rng_uniform(r); }
/* one point of data set s */
static void draw(int s, nf_rng *r, double *x, double *y) {
    double a, rad, t;
    switch (s) {
    case 0:   /* two moons */
        t = PI * uni(r);
        if (nf_rng_u32(r) & 1) { *x = cos(t); *y = sin(t); } else { *x = 1 - cos(t); *y = 0.5 - sin(t); }
        *x = 1.5 * (*x - 0.5) + 0.08 * nrm(r); *y = 1.5 * (*y - 0.25) + 0.08 * nrm(r);
        break;
    case 1:   /* two concentric rings */
        rad = (nf_rng_u32(r) & 1) ? 1.0 : 2.0; a = 2 * PI * uni(r);
        *x = rad * cos(a) + 0.08 * nrm(r); *y = rad * sin(a) + 0.08 * nrm(r);
        break;
    case 2: { /* checkerboard: uniform on the 8 dark squares of a 4 x 4 board on [-2, 2]^2 */
        int k = (int)(nf_rng_u32(r) % 8), row = k / 2, col = 2 * (k % 2) + (row % 2);
        *x = -2 + col + uni(r); *y = -2 + row + uni(r);
        break; }
    case 3: { /* pinwheel: 5 arms, each a Gaussian bent by its radius */
        int k = (int)(nf_rng_u32(r) % 5); double u = 1 + 0.3 * nrm(r), v = 0.1 * nrm(r);
        a = 2 * PI * k / 5 + 0.25 * exp(u);
        *x = 1.5 * (u * cos(a) - v * sin(a)); *y = 1.5 * (u * sin(a) + v * cos(a));
        break; }
    case 4:   /* 8 Gaussians on a circle */
        a = PI / 4 * (double)(nf_rng_u32(r) % 8);
        *x = 2 * cos(a) + 0.1 * nrm(r); *y = 2 * sin(a) + 0.1 * nrm(r);
        break;
    default: { /* two spirals */
        double n = sqrt(uni(r)) * 3 * PI, sgn = (nf_rng_u32(r) & 1) ? 1 : -1;
        *x = sgn * (-cos(n) * n) / 3 + 0.1 * nrm(r); *y = sgn * (sin(n) * n) / 3 + 0.1 * nrm(r);
        break; }
    }
}
static void make_set(int s, nf_rng *r, size_t n, nf_real *out) {
    size_t i; double x, y;
    for (i = 0; i < n; ++i) { draw(s, r, &x, &y); out[2 * i] = (nf_real)x; out[2 * i + 1] = (nf_real)y; }
}

/* model m with conditioner width h (L = 8 each: 8 couplings or autoregressive layers; the
   NSF preset adds an LU layer between consecutive couplings) */
static void model_desc(int m, int h, nf_flow_desc *d) {
    if (m == 0) nf_flow_desc_realnvp(d, 2, 8, h);
    else if (m == 1) nf_flow_desc_nsf(d, 2, 8, h, 8);
    else nf_flow_desc_maf(d, 2, 8, h, NF_TRANSFORM_AFFINE, 0);
}
static size_t model_params(int m, int h) {
    nf_flow_desc d; nf_flow *f; size_t n = 0;
    model_desc(m, h, &d);
    if (nf_flow_create(&f, &d) == NF_OK) { n = nf_flow_num_params(f); nf_flow_destroy(f); }
    return n;
}
/* the width whose parameter count is closest to the budget (counts grow with width) */
static int width_for(int m, size_t budget) {
    int lo = 2, hi = 1024;
    while (hi - lo > 1) { int mid = (lo + hi) / 2; if (model_params(m, mid) <= budget) lo = mid; else hi = mid; }
    return fabs((double)model_params(m, hi) - (double)budget) < fabs((double)model_params(m, lo) - (double)budget) ? hi : lo;
}

static const unsigned char ink[3] = {40, 40, 40}, blue[3] = {31, 119, 180}, white[3] = {255, 255, 255};

int main(int argc, char **argv) {
    const char *out = "build"; int quick = 0, s, m, i, j, G = 120, width[NMODELS]; size_t budget = 20000;
    size_t n_train, n_test = 5000; double nll[NSETS][NMODELS], secs[NSETS][NMODELS];
    static double dens[NSETS][NMODELS][120 * 120]; static double pts[NSETS][3000 * 2];
    char path[512];
    for (i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--budget") && i + 1 < argc) budget = (size_t)atol(argv[++i]);
        else { fprintf(stderr, "usage: %s [--out DIR] [--quick] [--budget N]\n", argv[0]); return 2; }
    }
    n_train = quick ? 3000 : 20000;
    if (quick) { n_test = 1000; budget = budget > 5000 ? 5000 : budget; }
    for (m = 0; m < NMODELS; ++m) width[m] = width_for(m, budget);
    printf("toy2d: %lu training points (nf_fit holds 10%% out for validation), %lu held out; budget %lu parameters\n",
           (unsigned long)n_train, (unsigned long)n_test, (unsigned long)budget);
    for (m = 0; m < NMODELS; ++m)
        printf("  %-8s L = 8, width %3d: %lu parameters\n", model_names[m], width[m], (unsigned long)model_params(m, width[m]));
    for (s = 0; s < NSETS; ++s) {
        nf_rng rng; nf_real *y = (nf_real *)malloc(sizeof(nf_real) * 2 * (n_train + n_test)), *yt, *lp, *grid;
        nf_rng_seed(&rng, 100 + (uint64_t)s);
        make_set(s, &rng, n_train + n_test, y); yt = y + 2 * n_train;
        for (i = 0; i < 3000; ++i) { pts[s][2 * i] = y[2 * i]; pts[s][2 * i + 1] = y[2 * i + 1]; }
        lp = (nf_real *)malloc(sizeof(nf_real) * (n_test > (size_t)G ? n_test : (size_t)G));
        grid = (nf_real *)malloc(sizeof(nf_real) * 2 * G);
        for (m = 0; m < NMODELS; ++m) {
            nf_flow_desc d; nf_flow *f; nf_fit_options o; nf_fit_report rep; clock_t t0 = clock(); double sum = 0;
            model_desc(m, width[m], &d);
            if (nf_flow_create(&f, &d) != NF_OK) { fprintf(stderr, "cannot create %s\n", model_names[m]); return 1; }
            nf_fit_options_default(&o);
            if (quick) o.max_epochs = 4;
            if (nf_fit(f, y, n_train, NULL, &o, &rep) != NF_OK) { fprintf(stderr, "%s on %s: %s\n", model_names[m], set_names[s], nf_flow_error(f)); return 1; }
            secs[s][m] = (double)(clock() - t0) / CLOCKS_PER_SEC;
            nf_flow_log_prob(f, yt, n_test, lp);
            for (i = 0; i < (int)n_test; ++i) sum -= (double)lp[i];
            nll[s][m] = sum / (double)n_test;
            for (i = 0; i < G; ++i) {   /* the density on [-4, 4]^2, row 0 at the top */
                for (j = 0; j < G; ++j) { grid[2 * j] = (nf_real)(-4 + 8 * (j + 0.5) / G); grid[2 * j + 1] = (nf_real)(4 - 8 * (i + 0.5) / G); }
                nf_flow_log_prob(f, grid, (size_t)G, lp);
                for (j = 0; j < G; ++j) dens[s][m][i * G + j] = exp((double)lp[j]);
            }
            printf("  %-13s %-8s held-out NLL %.4f  (%ld epochs, best %ld, %.1f s)\n", set_names[s], model_names[m], nll[s][m], rep.epochs, rep.best_epoch, secs[s][m]);
            fflush(stdout);
            nf_flow_destroy(f);
        }
        free(y); free(lp); free(grid);
    }
    printf("\n| data set |");
    for (m = 0; m < NMODELS; ++m) printf(" %s |", model_names[m]);
    printf("\n|---|");
    for (m = 0; m < NMODELS; ++m) printf("---|");
    printf("\n");
    for (s = 0; s < NSETS; ++s) {
        int best = 0;
        for (m = 1; m < NMODELS; ++m) if (nll[s][m] < nll[s][best]) best = m;
        printf("| %s |", set_names[s]);
        for (m = 0; m < NMODELS; ++m) printf(m == best ? " **%.3f** |" : " %.3f |", nll[s][m]);
        printf("\n");
    }
    {   /* the picture: columns data sets, rows data and the three models */
        int S = G, gap = 10, ml = 70, mt = 24, W = ml + NSETS * (S + gap) + 6, H = mt + 4 * (S + gap + 14) + 6, rc;
        canvas c = canvas_new(W, H, 245); double v[120 * 120];
        for (s = 0; s < NSETS; ++s) {
            int x0 = ml + s * (S + gap); plot p = plot_make(x0, mt + 14, S, S, -4, 4, -4, 4); char t[64];
            plot_frame(&c, &p, white); plot_scatter(&c, &p, pts[s], quick ? 1000 : 3000, blue, 0.35);
            plot_title(&c, &p, set_names[s], 1, ink);
            for (m = 0; m < NMODELS; ++m) {
                double mx = 0;
                p = plot_make(x0, mt + 14 + (m + 1) * (S + gap + 14), S, S, -4, 4, -4, 4);
                for (i = 0; i < S * S; ++i) if (dens[s][m][i] > mx) mx = dens[s][m][i];
                for (i = 0; i < S * S; ++i) v[i] = mx > 0 ? sqrt(dens[s][m][i] / mx) : 0;
                plot_frame(&c, &p, NULL); plot_heat(&c, &p, v);
                snprintf(t, sizeof t, "NLL %.3f", nll[s][m]);
                plot_title(&c, &p, t, 1, ink);
            }
        }
        canvas_text(&c, 6, mt + 14 + S / 2, "data", 1, blue, TEXT_LEFT | TEXT_MIDDLE);
        for (m = 0; m < NMODELS; ++m) canvas_text(&c, 6, mt + 14 + (m + 1) * (S + gap + 14) + S / 2, model_names[m], 1, ink, TEXT_LEFT | TEXT_MIDDLE);
        canvas_text(&c, W / 2, 4, "equal parameter budgets; held-out NLL, nats per point (lower is better)", 1, ink, TEXT_CENTER | TEXT_TOP);
        snprintf(path, sizeof path, "%s/toy_grid.png", out);
        rc = png_write(path, &c);
        canvas_free(&c);
        if (rc) { fprintf(stderr, "cannot write %s\n", path); return 1; }
        printf("\nwrote %s\n", path);
    }
    return 0;
}
