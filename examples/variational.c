/* variational: fit a flow to a density known only up to its normaliser, by reverse KL.

   Minimises E_q[log q(x) - log p~(x)] over the flow q, drawing x = g(z) on the tape
   (nf_train_step_kl), then uses q as an importance-sampling proposal to estimate
   log Z = log of the integral of p~, with its standard error and the effective
   sample size (nf_flow_importance). Two targets:
     - a correlated Gaussian, p~(x) = exp(-x^T S^-1 x / 2): log Z = log(2 pi sqrt(det S));
     - a banana, p~(x) = exp(-x1^2 / 2 - (x2 - b x1^2 + b)^2 / 2): also log Z = log 2 pi
       (the shear has unit Jacobian), but curved, which an affine map cannot fit.
   Writes OUT/variational_banana.png (target density | flow samples).
   Usage: variational [--out DIR] [--quick] */
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"
#include "png.h"
#include <stdio.h>
#include <string.h>
#include <time.h>

#define PI 3.14159265358979323846
static const double S11 = 1, S12 = 1.6, S22 = 4, BEND = 0.5;

static int gaussian(const nf_real *x, size_t n, int dim, nf_real *logp, nf_real *grad, void *user) {
    double det = S11 * S22 - S12 * S12, i11 = S22 / det, i12 = -S12 / det, i22 = S11 / det; size_t i;
    (void)dim; (void)user;
    for (i = 0; i < n; ++i) {
        double a = x[2 * i], b = x[2 * i + 1], g0 = i11 * a + i12 * b, g1 = i12 * a + i22 * b;
        logp[i] = (nf_real)(-0.5 * (a * g0 + b * g1));
        if (grad) { grad[2 * i] = (nf_real)-g0; grad[2 * i + 1] = (nf_real)-g1; }
    }
    return 0;
}
static int banana(const nf_real *x, size_t n, int dim, nf_real *logp, nf_real *grad, void *user) {
    size_t i; (void)dim; (void)user;
    for (i = 0; i < n; ++i) {
        double a = x[2 * i], r = x[2 * i + 1] - BEND * a * a + BEND;
        logp[i] = (nf_real)(-0.5 * a * a - 0.5 * r * r);
        if (grad) { grad[2 * i] = (nf_real)(-a + 2 * BEND * a * r); grad[2 * i + 1] = (nf_real)-r; }
    }
    return 0;
}

static nf_flow *fit(const char *name, nf_log_density_fn target, double truth, int steps, nf_rng *rng) {
    nf_flow_desc d; nf_flow *f; nf_trainer *t; nf_adam_config c; nf_is_report rep; int i; double loss = 0, t0;
    nf_flow_desc_realnvp(&d, 2, 6, 64); d.base = NF_BASE_DIAG_GAUSSIAN;
    if (nf_flow_create(&f, &d) != NF_OK) return NULL;
    nf_adam_config_default(&c); c.lr = 2e-3; c.schedule = NF_SCHED_COSINE; c.total_steps = steps; c.min_lr_frac = 0.05;
    nf_trainer_create(&t, f, &c, 512);
    t0 = (double)clock() / CLOCKS_PER_SEC;
    for (i = 0; i < steps; ++i) {
        if (nf_train_step_kl(t, rng, 512, target, NULL, &loss) != NF_OK) printf("  step %d rejected: %s\n", i, nf_flow_error(f));
        if (i % (steps / 5) == 0) printf("  %-10s step %5d  -ELBO %.4f\n", name, i, loss);
    }
    nf_flow_importance(f, rng, 100000, target, NULL, &rep);
    printf("%-10s %d reverse-KL steps in %.1f s: -ELBO %.4f; importance sampling (n = %lu): log Z = %.4f +- %.4f, "
           "truth %.4f, error %.4f; ESS %.0f (%.1f%%)\n", name, steps, (double)clock() / CLOCKS_PER_SEC - t0, loss,
           (unsigned long)rep.n, rep.log_z, rep.log_z_se, truth, rep.log_z - truth, rep.ess, 100 * rep.ess_fraction);
    nf_trainer_destroy(t);
    return f;
}

int main(int argc, char **argv) {
    const char *out = "build"; int quick = 0, i, j, steps; nf_rng rng; nf_flow *g, *b; char path[512];
    for (i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else { fprintf(stderr, "usage: %s [--out DIR] [--quick]\n", argv[0]); return 2; }
    }
    steps = quick ? 50 : 2000;
    nf_rng_seed(&rng, 11);
    g = fit("gaussian", gaussian, log(2 * PI * sqrt(S11 * S22 - S12 * S12)), steps, &rng);
    b = fit("banana", banana, log(2 * PI), steps, &rng);
    if (!g || !b) return 1;
    {   /* picture: the banana's density and the flow's samples on [-4, 4] x [-3, 7] */
        static const unsigned char orange[3] = {230, 110, 20}, white[3] = {255, 255, 255};
        int S = 260, ml = 46, mt = 30, gap = 16; canvas c = canvas_new(ml + 2 * S + gap + 12, mt + S + 34, 245);
        plot p = plot_make(ml, mt, S, S, -4, 4, -3, 7); double *v = (double *)malloc(sizeof(double) * S * S), mx = 0;
        nf_real pt[2], lp[1], *s = (nf_real *)malloc(sizeof(nf_real) * 2 * 5000); double *sd = (double *)malloc(sizeof(double) * 2 * 5000);
        for (i = 0; i < S; ++i) for (j = 0; j < S; ++j) {
            pt[0] = (nf_real)(-4 + 8.0 * (j + 0.5) / S); pt[1] = (nf_real)(7 - 10.0 * (i + 0.5) / S);
            banana(pt, 1, 2, lp, NULL, NULL);
            v[i * S + j] = exp((double)lp[0]); if (v[i * S + j] > mx) mx = v[i * S + j];
        }
        for (i = 0; i < S * S; ++i) v[i] = sqrt(v[i] / mx);   /* sqrt shows the tails */
        plot_frame(&c, &p, NULL); plot_heat(&c, &p, v);
        plot_title(&c, &p, "target density", 2, NULL);
        plot_xaxis(&c, &p, "x1  (colour: sqrt p~)", 0); plot_yaxis(&c, &p, "x2", 0);
        nf_flow_sample(b, &rng, 5000, s, NULL);
        for (i = 0; i < 2 * 5000; ++i) sd[i] = (double)s[i];
        p.x0 += S + gap;
        plot_frame(&c, &p, white); plot_scatter(&c, &p, sd, 5000, orange, 0.4);
        plot_title(&c, &p, "flow samples", 2, orange);
        plot_xaxis(&c, &p, "x1", 0);
        snprintf(path, sizeof path, "%s/variational_banana.png", out);
        if (png_write(path, &c)) { fprintf(stderr, "cannot write %s\n", path); return 1; }
        printf("wrote %s (banana target density | samples from the fitted flow)\n", path);
        canvas_free(&c); free(v); free(s); free(sd);
    }
    nf_flow_destroy(g); nf_flow_destroy(b);
    return 0;
}
