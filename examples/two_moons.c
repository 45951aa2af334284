/* two_moons: train a RealNVP on the two-moons data set and look at what it learned.

   The main demo (`make demo`). Generates two moons (noise 0.05, standardised), fits
   a RealNVP with nf_fit (validation split, early stopping, best parameters kept),
   prints progress and a coarse ASCII density, and writes pictures:
     OUT/two_moons.png        data | samples from the flow | learned density
     OUT/pushforward.png      base samples and a grid pushed through each coupling
     OUT/training_curves.png  train and validation NLL per epoch
   Usage: two_moons [--out DIR] [--quick]      (DIR defaults to build) */
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"
#include "png.h"
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MAX_EPOCHS 200
typedef struct run { double t0; double loss[2 * MAX_EPOCHS]; int epochs; long last_step; } run;   /* loss: nf_fit's history */

static double now(void) { return (double)clock() / CLOCKS_PER_SEC; }

/* two interleaved half circles (as scikit-learn's make_moons), Gaussian noise */
static void make_moons(nf_rng *r, size_t n, double noise, nf_real *y) {
    size_t i;
    for (i = 0; i < n; ++i) {
        double t = 3.14159265358979 * (double)nf_rng_uniform(r);
        int upper = (int)(nf_rng_u32(r) & 1);
        y[2 * i]     = (nf_real)((upper ? cos(t) : 1 - cos(t)) + noise * (double)nf_rng_normal(r));
        y[2 * i + 1] = (nf_real)((upper ? sin(t) : 0.5 - sin(t)) + noise * (double)nf_rng_normal(r));
    }
}
static void standardise(nf_real *y, size_t n, int D) {
    int j; size_t i;
    for (j = 0; j < D; ++j) {
        double m = 0, v = 0;
        for (i = 0; i < n; ++i) m += y[i * D + j];
        m /= (double)n;
        for (i = 0; i < n; ++i) v += (y[i * D + j] - m) * (y[i * D + j] - m);
        v = sqrt(v / (double)n);
        for (i = 0; i < n; ++i) y[i * D + j] = (nf_real)((y[i * D + j] - m) / v);
    }
}

static int progress(const nf_fit_progress *p, void *user) {
    run *r = (run *)user; double dt = now() - r->t0;
    printf("epoch %3ld  step %5ld  train NLL %7.4f  val NLL %7.4f  %6.0f steps/s\n",
           p->epoch, p->step, p->train_loss, p->val_loss, dt > 0 ? (double)p->step / dt : 0.0);
    fflush(stdout);
    r->last_step = p->step;
    return 0;
}

static void to_double(const nf_real *a, size_t n, double *out) { size_t i; for (i = 0; i < n; ++i) out[i] = (double)a[i]; }

/* log-density on a G x G grid over [lo, hi]^2, row 0 at the top */
static void density_grid(nf_flow *f, int G, double lo, double hi, double *dens) {
    nf_real *pts = (nf_real *)malloc(sizeof(nf_real) * 2 * G), *lp = (nf_real *)malloc(sizeof(nf_real) * G);
    int i, j;
    for (i = 0; i < G; ++i) {
        for (j = 0; j < G; ++j) {
            pts[2 * j] = (nf_real)(lo + (j + 0.5) * (hi - lo) / G);
            pts[2 * j + 1] = (nf_real)(hi - (i + 0.5) * (hi - lo) / G);
        }
        nf_flow_log_prob(f, pts, (size_t)G, lp);
        for (j = 0; j < G; ++j) dens[(size_t)i * G + j] = exp((double)lp[j]);
    }
    free(pts); free(lp);
}

static void ascii_density(const double *dens, int G) {
    static const char ramp[] = " .:-=+*#%@";
    int rows = 22, cols = 56, i, j; double mx = 0;
    for (i = 0; i < G * G; ++i) if (dens[i] > mx) mx = dens[i];
    printf("\nlearned density p(y) on [-2.5, 2.5]^2:\n");
    for (i = 0; i < rows; ++i) {
        putchar('|');
        for (j = 0; j < cols; ++j) {
            double v = dens[(size_t)(i * G / rows) * G + (size_t)(j * G / cols)] / mx;
            putchar(ramp[(int)(sqrt(v) * 9.99)]);
        }
        printf("|\n");
    }
}

static const unsigned char blue[3] = {31, 119, 180}, orange[3] = {230, 110, 20}, white[3] = {255, 255, 255}, ink[3] = {40, 40, 40};

/* a panel title, in the colour the panel's points are drawn in; scale 2 where it fits */
static void title(canvas *c, const plot *p, const char *s, const unsigned char rgb[3]) {
    plot_title(c, p, s, canvas_text_width(s, 2) <= p->w ? 2 : 1, rgb);
}

static int write_main_picture(const char *path, const double *data, size_t nd, const double *samp, size_t ns, const double *dens, int G) {
    int ml = 46, mt = 30, gap = 16, i, rc; double mx = 0, *v;
    canvas c = canvas_new(ml + 3 * G + 2 * gap + 10, mt + G + 34, 245); plot p;
    p = plot_make(ml, mt, G, G, -2.5, 2.5, -2.5, 2.5);
    plot_frame(&c, &p, white); plot_scatter(&c, &p, data, nd, blue, 0.35);
    title(&c, &p, "data", blue); plot_xaxis(&c, &p, "y1", 0); plot_yaxis(&c, &p, "y2", 0);
    p.x0 += G + gap;
    plot_frame(&c, &p, white); plot_scatter(&c, &p, samp, ns, orange, 0.35);
    title(&c, &p, "flow samples", orange); plot_xaxis(&c, &p, "y1", 0);
    p.x0 += G + gap;
    v = (double *)malloc(sizeof(double) * G * G);
    for (i = 0; i < G * G; ++i) if (dens[i] > mx) mx = dens[i];
    for (i = 0; i < G * G; ++i) v[i] = sqrt(dens[i] / mx);   /* sqrt shows the tails */
    plot_frame(&c, &p, NULL); plot_heat(&c, &p, v);
    title(&c, &p, "learned density", ink); plot_xaxis(&c, &p, "y1  (colour: sqrt p)", 0);
    rc = png_write(path, &c);
    free(v); canvas_free(&c);
    return rc;
}

/* base samples and a grid of lines, pushed through the layers one stage at a time:
   one panel per stage, in rows of `cols` */
static int write_pushforward(const char *path, nf_flow *f, nf_rng *rng) {
    static const unsigned char dot[3] = {230, 110, 20}, gridc[3] = {60, 60, 160};
    int L = (int)nf_flow_get_desc(f)->n_layers, S = 180, k, i, j, lines = 13, per = 120, rc, cols = 1, rows;
    int ml = 36, mt = 28, gx = 14, gy = 34;
    size_t ns = 2000, ng = (size_t)lines * per * 2;
    nf_real *z = (nf_real *)malloc(sizeof(nf_real) * 2 * ns), *y = (nf_real *)malloc(sizeof(nf_real) * 2 * ns);
    nf_real *gz = (nf_real *)malloc(sizeof(nf_real) * 2 * ng), *gyv = (nf_real *)malloc(sizeof(nf_real) * 2 * ng);
    double *buf = (double *)malloc(sizeof(double) * 2 * (ns > ng ? ns : ng));
    canvas c; plot p;
    while (cols * cols < L + 1) cols++;
    rows = (L + cols) / cols;
    c = canvas_new(ml + cols * (S + gx) - gx + 10, mt + rows * (S + gy) - gy + 30, 245);
    for (i = 0; i < (int)(2 * ns); ++i) z[i] = nf_rng_normal(rng);
    for (i = 0; i < lines; ++i) for (j = 0; j < per; ++j) {   /* horizontal then vertical lines in [-3, 3] */
        double a = -3 + 6.0 * i / (lines - 1), b = -3 + 6.0 * j / (per - 1);
        size_t h = ((size_t)i * per + j) * 2, v = ((size_t)(lines + i) * per + j) * 2;
        gz[h] = (nf_real)b; gz[h + 1] = (nf_real)a; gz[v] = (nf_real)a; gz[v + 1] = (nf_real)b;
    }
    for (k = 0; k <= L; ++k) {
        char name[64];
        p = plot_make(ml + (k % cols) * (S + gx), mt + (k / cols) * (S + gy), S, S, -3.2, 3.2, -3.2, 3.2);
        plot_frame(&c, &p, white);
        if (k == 0) snprintf(name, sizeof name, "base N(0, I)");
        else snprintf(name, sizeof name, "after layer %d", k);
        title(&c, &p, name, ink);
        if (k % cols == 0) plot_yaxis(&c, &p, NULL, 0);
        if (k + cols > L) plot_xaxis(&c, &p, NULL, 0);   /* the lowest panel of its column */
        nf_flow_inverse_stage(f, gz, ng, k, gyv);
        for (i = 0; i < 2 * lines; ++i) for (j = 0; j + 1 < per; ++j) {
            size_t a = ((size_t)i * per + j) * 2;
            plot_line(&c, &p, gyv[a], gyv[a + 1], gyv[a + 2], gyv[a + 3], gridc, 0.35);
        }
        nf_flow_inverse_stage(f, z, ns, k, y);
        to_double(y, 2 * ns, buf);
        plot_scatter(&c, &p, buf, ns, dot, 0.5);
    }
    rc = png_write(path, &c);
    canvas_free(&c); free(z); free(y); free(gz); free(gyv); free(buf);
    return rc;
}

static int write_curves(const char *path, const run *r) {
    static const unsigned char gray[3] = {225, 225, 225}, cols[2][3] = {{31, 119, 180}, {230, 110, 20}};
    static const char *const names[2] = {"train", "validation"};
    /* epoch e (1-based) has train loss[2(e-1)] and validation loss[2(e-1)+1] */
    int W = 560, H = 320, i, rc, last = r->epochs > 1 ? r->epochs : 2; double lo = 1e9, hi = -1e9; canvas c; plot p;
    for (i = 0; i < 2 * r->epochs; ++i) {
        if (r->loss[i] < lo) lo = r->loss[i];
        if (i / 2 >= r->epochs / 8 && r->loss[i] > hi) hi = r->loss[i];   /* the first epochs go off the top */
    }
    if (!(hi > lo)) { lo = hi = r->epochs ? r->loss[1] : 0; hi += 1; lo -= 1; }
    hi += 0.1 * (hi - lo) + 0.01; lo -= 0.1 * (hi - lo) + 0.01;
    c = canvas_new(W, H, 255);
    p = plot_make(58, 34, W - 58 - 14, H - 34 - 40, 1, last, lo, hi);
    plot_frame(&c, &p, NULL);
    plot_grid(&c, &p, -1, 0, gray);
    plot_xaxis(&c, &p, "epoch", 0);
    plot_yaxis(&c, &p, "NLL (nats per point)", 0);
    plot_title(&c, &p, "negative log-likelihood per epoch", 2, NULL);
    for (i = 1; i < r->epochs; ++i) {   /* epoch i to i + 1, clipped at the top */
        plot_line(&c, &p, i, r->loss[2 * (i - 1)], i + 1, r->loss[2 * i], cols[0], 1);
        plot_line(&c, &p, i, r->loss[2 * (i - 1) + 1], i + 1, r->loss[2 * i + 1], cols[1], 1);
    }
    canvas_legend(&c, p.x0 + p.w - 6, p.y0 + 6, 2, names, cols, TEXT_RIGHT | TEXT_TOP);
    rc = png_write(path, &c);
    canvas_free(&c);
    return rc;
}

int main(int argc, char **argv) {
    const char *out = "build"; int quick = 0, i, G = 240; char path[512];
    size_t n = 20000, ns = 6000;
    nf_rng rng; nf_real *y, *s, *lp; double *dd, *sd, *dens, tfit, nll = 0;
    nf_flow_desc d; nf_flow *f; nf_fit_options o; nf_fit_report rep; nf_result r; run hist;
    for (i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else { fprintf(stderr, "usage: %s [--out DIR] [--quick]\n", argv[0]); return 2; }
    }
    if (quick) { n = 3000; ns = 1000; G = 80; }
    y = (nf_real *)malloc(sizeof(nf_real) * 2 * (n + ns)); s = (nf_real *)malloc(sizeof(nf_real) * 2 * ns);
    lp = (nf_real *)malloc(sizeof(nf_real) * ns);
    dd = (double *)malloc(sizeof(double) * 2 * n); sd = (double *)malloc(sizeof(double) * 2 * ns);
    dens = (double *)malloc(sizeof(double) * G * G);

    nf_rng_seed(&rng, 2026);
    make_moons(&rng, n + ns, 0.05, y);   /* n to train on, ns held out */
    standardise(y, n + ns, 2);
    printf("two moons: %zu points, noise 0.05, standardised\n", n);

    nf_flow_desc_realnvp(&d, 2, 8, 64);   /* 8 affine couplings, conditioners 2 x 64 ReLU */
    if ((r = nf_flow_create(&f, &d)) != NF_OK) { fprintf(stderr, "flow: %s\n", nf_result_string(r)); return 1; }
    printf("RealNVP: 8 couplings of width 64, %zu parameters\n\n", nf_flow_num_params(f));

    nf_fit_options_default(&o);
    o.batch = 256; o.max_epochs = quick ? 3 : 40; o.patience = 8; o.val_fraction = 0.1;
    o.adam.lr = 2e-3; o.adam.schedule = NF_SCHED_COSINE;
    o.adam.total_steps = (long)o.max_epochs * (long)((n - n / 10) / 256); o.adam.min_lr_frac = 0.05;
    o.callback = progress; o.user = &hist;
    o.history = hist.loss; o.history_cap = MAX_EPOCHS;   /* the curves, epoch by epoch */
    memset(&hist, 0, sizeof hist); hist.t0 = now();
    r = nf_fit(f, y, n, NULL, &o, &rep);
    tfit = now() - hist.t0;
    if (r != NF_OK) { fprintf(stderr, "fit: %s\n", nf_flow_error(f)); return 1; }
    hist.epochs = (int)rep.history_len;
    printf("\ntrained in %.2f s: %ld steps (%.0f steps/s), best validation NLL %.4f nats at epoch %ld\n",
           tfit, rep.steps, rep.steps / tfit, rep.best_val_loss, rep.best_epoch);

    /* held-out points: drawn with the training set, never shown to nf_fit */
    memcpy(s, y + 2 * n, sizeof(nf_real) * 2 * ns);
    nf_flow_log_prob(f, s, ns, lp);
    for (i = 0; i < (int)ns; ++i) nll -= (double)lp[i] / (double)ns;
    printf("held-out NLL on %zu unseen points: %.4f nats per point\n", ns, nll);

    to_double(y, 2 * n, dd);
    nf_rng_seed(&rng, 7);
    nf_flow_sample(f, &rng, ns, s, lp);
    to_double(s, 2 * ns, sd);
    density_grid(f, G, -2.5, 2.5, dens);
    ascii_density(dens, G);

    snprintf(path, sizeof path, "%s/two_moons.png", out);
    if (write_main_picture(path, dd, n, sd, ns, dens, G)) { fprintf(stderr, "cannot write %s\n", path); return 1; }
    printf("\nwrote %s (data | flow samples | learned density)\n", path);
    snprintf(path, sizeof path, "%s/pushforward.png", out);
    nf_rng_seed(&rng, 11);
    if (write_pushforward(path, f, &rng)) { fprintf(stderr, "cannot write %s\n", path); return 1; }
    printf("wrote %s (a Gaussian pushed through each coupling in turn)\n", path);
    snprintf(path, sizeof path, "%s/training_curves.png", out);
    if (write_curves(path, &hist)) { fprintf(stderr, "cannot write %s\n", path); return 1; }
    printf("wrote %s (train NLL blue, validation NLL orange)\n", path);
    snprintf(path, sizeof path, "%s/training_curves.csv", out);
    {   FILE *fp = fopen(path, "w");
        if (!fp) { fprintf(stderr, "cannot write %s\n", path); return 1; }
        fprintf(fp, "epoch,train_nll,val_nll\n");
        for (i = 0; i < hist.epochs; ++i) fprintf(fp, "%d,%.6f,%.6f\n", i + 1, hist.loss[2 * i], hist.loss[2 * i + 1]);
        fclose(fp);
        printf("wrote %s (the same numbers)\n", path);
    }

    nf_flow_destroy(f);
    free(y); free(s); free(lp); free(dd); free(sd); free(dens);
    return 0;
}
