/* bimodal_1d: the change of variables in one dimension.

   A flow y = g(z) with z ~ N(0, 1) has density
       p_Y(y) = p_X(g^-1(y)) |d g^-1 / dy|.
   In 1-D an affine coupling is only a shift and a scale, so it can never turn one
   Gaussian bump into two. This example uses nflow's monotone layer,
   z = e^a y + sum_k e^b_k tanh(e^c_k y + d_k), which can: its slope is large where
   the data are dense (there |dg^-1/dy| lifts the density) and small in between.
   It fits a two-component Gaussian mixture and writes OUT/change_of_variables_1d.png:
   base density p_X(z) | the map y = g(z) | p_Y(y) learned (orange) and true (gray),
   with the factor |dg^-1/dy| (blue).
   Usage: bimodal_1d [--out DIR] [--quick] */
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"
#include "png.h"
#include <stdio.h>
#include <string.h>

static const double W1 = 0.35, M1 = -2.0, S1 = 0.4, M2 = 1.5, S2 = 0.6;
static double true_pdf(double y) {
    double a = (y - M1) / S1, b = (y - M2) / S2, c = 1 / sqrt(2 * 3.14159265358979);
    return W1 * c / S1 * exp(-0.5 * a * a) + (1 - W1) * c / S2 * exp(-0.5 * b * b);
}

int main(int argc, char **argv) {
    const char *out = "build"; int quick = 0, i; size_t n = 5000; char path[512];
    nf_rng rng; nf_real *y; nf_flow_desc d; nf_layer_desc l; nf_flow *f; nf_fit_options o; nf_fit_report rep;
    enum { G = 400 }; nf_real grid[G], lp[G], z[G], ld[G]; double lo = -4.5, hi = 4.5, mass = 0, tv = 0;
    for (i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else { fprintf(stderr, "usage: %s [--out DIR] [--quick]\n", argv[0]); return 2; }
    }
    y = (nf_real *)malloc(sizeof(nf_real) * n);
    nf_rng_seed(&rng, 3);
    for (i = 0; i < (int)n; ++i)
        y[i] = nf_rng_uniform(&rng) < W1 ? (nf_real)(M1 + S1 * nf_rng_normal(&rng)) : (nf_real)(M2 + S2 * nf_rng_normal(&rng));

    nf_flow_desc_init(&d, 1);                        /* two monotone layers around an ActNorm */
    memset(&l, 0, sizeof l);
    l.kind = NF_LAYER_MONOTONE; l.hidden = 12; nf_flow_desc_add(&d, &l);
    l.kind = NF_LAYER_ACTNORM;                nf_flow_desc_add(&d, &l);
    l.kind = NF_LAYER_MONOTONE; l.hidden = 12; nf_flow_desc_add(&d, &l);
    if (nf_flow_create(&f, &d) != NF_OK) return 1;
    nf_fit_options_default(&o);
    o.batch = 256; o.max_epochs = quick ? 5 : 300; o.patience = 30; o.adam.lr = 1e-2;
    o.adam.schedule = NF_SCHED_COSINE; o.adam.total_steps = (long)o.max_epochs * (long)(n * 9 / 10 / 256); o.adam.min_lr_frac = 0.05;
    if (nf_fit(f, y, n, NULL, &o, &rep) != NF_OK) { fprintf(stderr, "fit: %s\n", nf_flow_error(f)); return 1; }
    printf("fitted a 1-D flow (%zu parameters) to a two-Gaussian mixture: %ld epochs, validation NLL %.4f nats\n",
           nf_flow_num_params(f), rep.epochs, rep.best_val_loss);

    for (i = 0; i < G; ++i) grid[i] = (nf_real)(lo + (i + 0.5) * (hi - lo) / G);
    nf_flow_log_prob(f, grid, G, lp);          /* log p_Y(y) */
    nf_flow_forward(f, grid, G, z, ld);        /* z = g^-1(y) and log|dg^-1/dy| */
    for (i = 0; i < G; ++i) {
        double p = exp((double)lp[i]), h = (hi - lo) / G;
        mass += p * h; tv += 0.5 * fabs(p - true_pdf((double)grid[i])) * h;
    }
    printf("integral of p_Y over [%.1f, %.1f]: %.4f;  total variation to the true density: %.4f\n", lo, hi, mass, tv);
    printf("\n  y      p_Y learned   p_Y true    z = g^-1(y)  |dg^-1/dy|\n");
    for (i = 0; i < G; i += 25)
        printf("%6.2f   %9.4f   %9.4f   %10.4f   %9.4f\n", (double)grid[i], exp((double)lp[i]), true_pdf((double)grid[i]), (double)z[i], exp((double)ld[i]));
    printf("\n");
    for (i = 0; i < G; i += 10) {   /* an ASCII plot: # learned, | true */
        int a = (int)(exp((double)lp[i]) * 120), b = (int)(true_pdf((double)grid[i]) * 120), k;
        printf("%6.2f ", (double)grid[i]);
        for (k = 0; k <= (a > b ? a : b); ++k) putchar(k == b ? '|' : k < a ? '#' : ' ');
        putchar('\n');
    }

    {   /* the picture: three panels of 230 x 180, each with its axes */
        static const unsigned char gray[3] = {150, 150, 150}, orange[3] = {230, 110, 20}, blue[3] = {31, 119, 180}, black[3] = {40, 40, 40};
        static const unsigned char key[3][3] = {{230, 110, 20}, {150, 150, 150}, {31, 119, 180}};
        static const char *const keys[3] = {"p_Y learned", "p_Y true", "|dg^-1/dy|, scaled"};
        int PW = 230, PH = 180, ml = 48, gap = 52; canvas c = canvas_new(ml + 3 * PW + 2 * gap + 12, 34 + PH + 36, 255);
        double pmax = 0.7, jmax = 0, jtop;   /* headroom above the bumps for the legend */
        plot base = plot_make(ml, 34, PW, PH, lo, hi, 0, pmax), map = base, dens = base;
        map.x0 += PW + gap; map.ylo = lo; map.yhi = hi;
        dens.x0 += 2 * (PW + gap);
        for (i = 0; i < G; ++i) if (exp((double)ld[i]) > jmax) jmax = exp((double)ld[i]);
        jtop = jmax / (0.6 * pmax);   /* |dg^-1/dy| drawn up to 60% of the panel's height */
        plot_frame(&c, &base, NULL); plot_frame(&c, &map, NULL); plot_frame(&c, &dens, NULL);
        plot_title(&c, &base, "base density p_X(z)", 2, NULL); plot_xaxis(&c, &base, "z", 0); plot_yaxis(&c, &base, "p_X(z)", 0);
        plot_title(&c, &map, "the map y = g(z)", 2, NULL); plot_xaxis(&c, &map, "z", 0); plot_yaxis(&c, &map, "y", 0);
        plot_title(&c, &dens, "density p_Y(y)", 2, NULL); plot_xaxis(&c, &dens, "y", 0); plot_yaxis(&c, &dens, "p_Y(y)", 0);
        for (i = 1; i < G; ++i) {
            double y0 = (double)grid[i - 1], y1 = (double)grid[i];
            double z0 = lo + (i - 0.5) * (hi - lo) / G, z1 = lo + (i + 0.5) * (hi - lo) / G;
            double b0 = exp(-0.5 * z0 * z0) / sqrt(2 * 3.14159265358979), b1 = exp(-0.5 * z1 * z1) / sqrt(2 * 3.14159265358979);
            /* panel 1: base density p_X(z) */
            plot_line(&c, &base, z0, b0, z1, b1, black, 1);
            /* panel 2: the map y = g(z), drawn as the graph of z = g^-1(y) with axes swapped */
            plot_line(&c, &map, (double)z[i - 1], y0, (double)z[i], y1, black, 1);
            /* panel 3: p_Y learned and true, and |dg^-1/dy| scaled to the panel */
            plot_line(&c, &dens, y0, true_pdf(y0), y1, true_pdf(y1), gray, 1);
            plot_line(&c, &dens, y0, exp((double)ld[i - 1]) / jtop, y1, exp((double)ld[i]) / jtop, blue, 0.8);
            plot_line(&c, &dens, y0, exp((double)lp[i - 1]), y1, exp((double)lp[i]), orange, 1);
        }
        canvas_legend(&c, dens.x0 + 4, dens.y0 + 4, 3, keys, key, TEXT_LEFT | TEXT_TOP);
        snprintf(path, sizeof path, "%s/change_of_variables_1d.png", out);
        if (png_write(path, &c)) { fprintf(stderr, "cannot write %s\n", path); return 1; }
        printf("\nwrote %s (p_X(z) | y = g(z) | p_Y(y) learned orange, true gray, |dg^-1/dy| blue)\n", path);
        canvas_free(&c);
    }
    nf_flow_destroy(f); free(y);
    return 0;
}
