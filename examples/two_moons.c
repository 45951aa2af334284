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
typedef struct run { double t0; double train[MAX_EPOCHS], val[MAX_EPOCHS]; int epochs; long last_step; } run;

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
    if (p->epoch < MAX_EPOCHS) { r->train[p->epoch] = p->train_loss; r->val[p->epoch] = p->val_loss; r->epochs = (int)p->epoch + 1; }
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

static int write_main_picture(const char *path, const double *data, size_t nd, const double *samp, size_t ns, const double *dens, int G) {
    static const unsigned char blue[3] = {31, 119, 180}, orange[3] = {230, 110, 20};
    canvas c = canvas_new(3 * G + 40, G + 20, 245); panel p; int i, rc; double mx = 0, *v;
    p.y0 = 10; p.size = G; p.lo = -2.5; p.hi = 2.5;
    p.x0 = 10; panel_frame(&c, &p); panel_scatter(&c, &p, data, nd, blue, 0.35);
    p.x0 = 20 + G; panel_frame(&c, &p); panel_scatter(&c, &p, samp, ns, orange, 0.35);
    p.x0 = 30 + 2 * G;
    v = (double *)malloc(sizeof(double) * G * G);
    for (i = 0; i < G * G; ++i) if (dens[i] > mx) mx = dens[i];
    for (i = 0; i < G * G; ++i) v[i] = sqrt(dens[i] / mx);   /* sqrt shows the tails */
    panel_heat(&c, &p, v);
    rc = png_write(path, &c);
    free(v); canvas_free(&c);
    return rc;
}

/* base samples and a grid of lines, pushed through the layers one stage at a time */
static int write_pushforward(const char *path, nf_flow *f, nf_rng *rng) {
    static const unsigned char dot[3] = {230, 110, 20}, gridc[3] = {60, 60, 160};
    int L = (int)nf_flow_get_desc(f)->n_layers, S = 180, k, i, j, lines = 13, per = 120, rc;
    size_t ns = 2000, ng = (size_t)lines * per * 2;
    nf_real *z = (nf_real *)malloc(sizeof(nf_real) * 2 * ns), *y = (nf_real *)malloc(sizeof(nf_real) * 2 * ns);
    nf_real *gz = (nf_real *)malloc(sizeof(nf_real) * 2 * ng), *gy = (nf_real *)malloc(sizeof(nf_real) * 2 * ng);
    double *buf = (double *)malloc(sizeof(double) * 2 * (ns > ng ? ns : ng));
    canvas c = canvas_new((L + 1) * (S + 10) + 10, S + 20, 245); panel p;
    for (i = 0; i < (int)(2 * ns); ++i) z[i] = nf_rng_normal(rng);
    for (i = 0; i < lines; ++i) for (j = 0; j < per; ++j) {   /* horizontal then vertical lines in [-3, 3] */
        double a = -3 + 6.0 * i / (lines - 1), b = -3 + 6.0 * j / (per - 1);
        size_t h = ((size_t)i * per + j) * 2, v = ((size_t)(lines + i) * per + j) * 2;
        gz[h] = (nf_real)b; gz[h + 1] = (nf_real)a; gz[v] = (nf_real)a; gz[v + 1] = (nf_real)b;
    }
    p.y0 = 10; p.size = S; p.lo = -3.2; p.hi = 3.2;
    for (k = 0; k <= L; ++k) {
        p.x0 = 10 + k * (S + 10);
        panel_frame(&c, &p);
        nf_flow_inverse_stage(f, gz, ng, k, gy);
        for (i = 0; i < 2 * lines; ++i) for (j = 0; j + 1 < per; ++j) {
            size_t a = ((size_t)i * per + j) * 2;
            double x0 = gy[a], y0 = gy[a + 1], x1 = gy[a + 2], y1 = gy[a + 3];
            if (fabs(x0) > 3.2 || fabs(y0) > 3.2 || fabs(x1) > 3.2 || fabs(y1) > 3.2) continue;
            canvas_line(&c, panel_px(&p, x0), panel_py(&p, y0), panel_px(&p, x1), panel_py(&p, y1), gridc, 0.35);
        }
        nf_flow_inverse_stage(f, z, ns, k, y);
        to_double(y, 2 * ns, buf);
        panel_scatter(&c, &p, buf, ns, dot, 0.5);
    }
    rc = png_write(path, &c);
    canvas_free(&c); free(z); free(y); free(gz); free(gy); free(buf);
    return rc;
}

static int write_curves(const char *path, const run *r) {
    static const unsigned char blue[3] = {31, 119, 180}, orange[3] = {230, 110, 20}, gray[3] = {215, 215, 215};
    int W = 480, H = 260, i; double lo = 1e9, hi = -1e9; canvas c; int rc;
    if (r->epochs < 2) return 0;
    for (i = 0; i < r->epochs; ++i) {
        if (r->train[i] < lo) lo = r->train[i];
        if (r->val[i] < lo) lo = r->val[i];
        if (i >= r->epochs / 8 && r->train[i] > hi) hi = r->train[i];   /* the first epochs go off the top */
        if (i >= r->epochs / 8 && r->val[i] > hi) hi = r->val[i];
    }
    hi += 0.1 * (hi - lo) + 0.01; lo -= 0.1 * (hi - lo) + 0.01;
    c = canvas_new(W, H, 255);
    for (i = 0; i < 5; ++i) canvas_line(&c, 0, H * i / 5.0, W, H * i / 5.0, gray, 1);
    for (i = 1; i < r->epochs; ++i) {
        double x0 = (double)(i - 1) / (r->epochs - 1) * (W - 1), x1 = (double)i / (r->epochs - 1) * (W - 1);
        if (r->train[i - 1] > hi || r->val[i - 1] > hi) continue;   /* clipped at the top */
        canvas_line(&c, x0, (hi - r->train[i - 1]) / (hi - lo) * (H - 1), x1, (hi - r->train[i]) / (hi - lo) * (H - 1), blue, 1);
        canvas_line(&c, x0, (hi - r->val[i - 1]) / (hi - lo) * (H - 1), x1, (hi - r->val[i]) / (hi - lo) * (H - 1), orange, 1);
    }
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
    memset(&hist, 0, sizeof hist); hist.t0 = now();
    r = nf_fit(f, y, n, NULL, &o, &rep);
    tfit = now() - hist.t0;
    if (r != NF_OK) { fprintf(stderr, "fit: %s\n", nf_flow_error(f)); return 1; }
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

    nf_flow_destroy(f);
    free(y); free(s); free(lp); free(dd); free(sd); free(dens);
    return 0;
}
