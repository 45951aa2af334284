/* mcmc_ref.c - long HMC runs that give the reference moments of the models without an
   exact answer (gp_poisson25, hier_logit26), and a validation run on a model with one.

   gcc -std=c99 -O2 -DNFLOW_DOUBLE bench/posteriors/mcmc_ref.c -o mcmc_ref -lm
   ./mcmc_ref MODEL [chains 16] [draws per chain 25000] [seed 1]

   Sampler: static-length HMC in nflow's unconstrained coordinates (log-Jacobian added),
   whitened by an affine map u = c + L w. Each chain starts at u ~ N(0, I) with the
   identity metric (no mode search: a hierarchical density is unbounded as its scale
   goes to 0) and warms up in windows of
   200, 400, ..., 3,200 steps; after each window the covariance of its second half (shrunk
   slightly towards its diagonal) becomes the metric; then 1,000 more steps. The step size
   is tuned by dual averaging (target acceptance 0.8) in every window, then fixed. The number of
   leapfrog steps is uniform in [0.5, 1.5] * 1.6 / step (jittered integration time; at
   most 2,000).
   Diagnostics over the chains (split in halves): R-hat (split, classic) and the effective
   sample size from the multi-chain autocorrelation with Geyer's initial-positive-pair
   truncation (BDA3 11.5). Prints the moments, the diagnostics and, for reference models,
   the C lines for models_ref.h; for a model with exact moments, their z-scores. */
#define NFLOW_IMPLEMENTATION
#include "unconstrained.h"
#include <stdio.h>
#include <stdlib.h>

typedef struct { const bm_model *m; int n; double c[BM_MAX_DIM], l[BM_MAX_DIM * BM_MAX_DIM]; } chart;

static void w_to_u(const chart *ch, const double *w, double *u) {
    int i, j, n = ch->n;
    for (i = 0; i < n; ++i) { u[i] = ch->c[i]; for (j = 0; j <= i; ++j) u[i] += ch->l[i * n + j] * w[j]; }
}
/* log p and gradient in whitened coordinates w */
static double wlogp(const chart *ch, const double *w, double *gw) {
    double u[BM_MAX_DIM], gu[BM_MAX_DIM], lp;
    int i, j, n = ch->n;
    w_to_u(ch, w, u);
    lp = bm_ulogp(ch->m, u, gu);
    for (j = 0; j < n; ++j) { gw[j] = 0; for (i = j; i < n; ++i) gw[j] += ch->l[i * n + j] * gu[i]; }
    return lp;
}
static void u_to_w(const chart *ch, const double *u, double *w) {
    int i, j, n = ch->n;
    for (i = 0; i < n; ++i) { w[i] = u[i] - ch->c[i]; for (j = 0; j < i; ++j) w[i] -= ch->l[i * n + j] * w[j]; w[i] /= ch->l[i * n + i]; }
}

/* one HMC transition from w (in place); returns the acceptance probability */
static double hmc_step(const chart *ch, nf_rng *rng, double *w, double *lp, double *g, double eps, int *diverged) {
    double p[BM_MAX_DIM], wn[BM_MAX_DIM], gn[BM_MAX_DIM], lpn, h0 = 0, h1 = 0, a;
    int i, s, n = ch->n, nl = (int)fmin(ceil((0.5 + (double)nf_rng_uniform(rng)) * 1.6 / eps), 2000);
    for (i = 0; i < n; ++i) { p[i] = nf_rng_normal(rng); h0 += 0.5 * p[i] * p[i]; wn[i] = w[i]; gn[i] = g[i]; }
    h0 -= *lp;
    lpn = *lp;
    for (s = 0; s < nl; ++s) {
        for (i = 0; i < n; ++i) { p[i] += 0.5 * eps * gn[i]; wn[i] += eps * p[i]; }
        lpn = wlogp(ch, wn, gn);
        if (!isfinite(lpn)) break;
        for (i = 0; i < n; ++i) p[i] += 0.5 * eps * gn[i];
    }
    for (i = 0; i < n; ++i) h1 += 0.5 * p[i] * p[i];
    h1 -= lpn;
    a = isfinite(h1) ? exp(fmin(0, h0 - h1)) : 0;
    *diverged = !(h1 - h0 < 1000);
    if ((double)nf_rng_uniform(rng) < a) { for (i = 0; i < n; ++i) { w[i] = wn[i]; g[i] = gn[i]; } *lp = lpn; }
    return a;
}

/* warm-up with dual averaging of the step size; keeps the u draws of its second half */
static double warmup(const chart *ch, nf_rng *rng, double *w, double *lp, double *g, double eps, int iters, double *keep) {
    double mu = log(10 * eps), hbar = 0, lbar = 0, a, le;
    int t, dv, i;
    for (t = 1; t <= iters; ++t) {
        a = hmc_step(ch, rng, w, lp, g, eps, &dv);
        hbar = (1 - 1.0 / (t + 10)) * hbar + (0.8 - a) / (t + 10);
        le = mu - sqrt((double)t) / 0.05 * hbar;
        eps = exp(le);
        lbar = pow(t, -0.75) * le + (1 - pow(t, -0.75)) * lbar;
        if (keep && t > iters / 2) w_to_u(ch, w, keep + (size_t)(t - iters / 2 - 1) * ch->n);
    }
    (void)i;
    return exp(lbar);
}

/* split R-hat and multi-chain ESS of x[chain][draw] (stride between draws: st) */
static void diagnose(const double *x, int chains, int draws, int st, double *rhat, double *ess) {
    int m = 2 * chains, nn = draws / 2, c, t, k;
    double *mean = malloc(sizeof(double) * m), *var = malloc(sizeof(double) * m), w = 0, b = 0, gm = 0, vp, rho_sum = 0, pr, prev = 1e300;
    for (c = 0; c < m; ++c) {
        const double *y = x + ((size_t)(c / 2) * draws + (size_t)(c % 2) * nn) * st;
        double s = 0, s2 = 0;
        for (t = 0; t < nn; ++t) s += y[(size_t)t * st];
        mean[c] = s / nn;
        for (t = 0; t < nn; ++t) s2 += (y[(size_t)t * st] - mean[c]) * (y[(size_t)t * st] - mean[c]);
        var[c] = s2 / (nn - 1);
        w += var[c] / m; gm += mean[c] / m;
    }
    for (c = 0; c < m; ++c) b += (mean[c] - gm) * (mean[c] - gm) / (m - 1);   /* B / n */
    vp = (nn - 1.0) / nn * w + b;
    *rhat = sqrt(vp / w);
    /* rho_t = 1 - (W - mean_c acov_c(t)) / var+, summed in pairs while positive and decreasing */
    for (k = 0; ; k += 2) {
        double r[2];
        int q;
        for (q = 0; q < 2; ++q) {
            double acov = 0;
            int lag = k + q;
            for (c = 0; c < m; ++c) {
                const double *y = x + ((size_t)(c / 2) * draws + (size_t)(c % 2) * nn) * st;
                double s = 0;
                for (t = 0; t + lag < nn; ++t) s += (y[(size_t)t * st] - mean[c]) * (y[(size_t)(t + lag) * st] - mean[c]);
                acov += s / nn / m;
            }
            r[q] = 1 - (w - acov) / vp;
        }
        pr = r[0] + r[1];
        if (pr < 0 || k + 2 >= nn) break;
        if (pr > prev) pr = prev;                 /* initial monotone sequence */
        prev = pr;
        rho_sum += pr;
    }
    *ess = (double)m * nn / (-1 + 2 * rho_sum);
    free(mean); free(var);
}

int main(int argc, char **argv) {
    const bm_model *m;
    int win, chains = argc > 2 ? atoi(argv[2]) : 16, draws = argc > 3 ? atoi(argv[3]) : 25000, n, c, t, j, i, dv, ndiv = 0;
    unsigned seed = argc > 4 ? (unsigned)atoi(argv[4]) : 1;
    static double lmode[BM_MAX_DIM * BM_MAX_DIM];
    double mode[BM_MAX_DIM], *xs, *keep, w[BM_MAX_DIM], g[BM_MAX_DIM], u[BM_MAX_DIM], lp, eps, acc = 0;
    double mean[BM_MAX_DIM], sd[BM_MAX_DIM], rh[BM_MAX_DIM], es[BM_MAX_DIM], maxr = 0, mine = 1e300;
    if (argc < 2 || !(m = bm_model_find(argv[1]))) { fprintf(stderr, "usage: mcmc_ref MODEL [chains] [draws] [seed]\n"); return 2; }
    n = m->dim;
    xs = malloc(sizeof(double) * (size_t)chains * draws * n);
    keep = malloc(sizeof(double) * 1600 * n);
    /* no mode search: a hierarchical model's joint density is unbounded as a scale goes to
       0, so every chain starts at u ~ N(0, I) with the identity metric and learns its own */
    for (j = 0; j < n; ++j) { mode[j] = 0; for (i = 0; i < n; ++i) lmode[j * n + i] = i == j; }
    for (c = 0; c < chains; ++c) {
        chart ch;
        nf_rng rng;
        nf_rng_seed(&rng, seed * 1000u + (unsigned)c);
        ch.m = m; ch.n = n;
        memcpy(ch.c, mode, sizeof(double) * n); memcpy(ch.l, lmode, sizeof(double) * n * n);
        for (j = 0; j < n; ++j) w[j] = nf_rng_normal(&rng);
        lp = wlogp(&ch, w, g);
        /* warm-up windows of 100, 200, 400, 800, 1600 steps; after each, the chain's own
           covariance over that window (shrunk a little towards the diagonal) becomes the metric */
        eps = 0.5;
        for (win = 100; win <= 1600; win *= 2) {
            static double cov[BM_MAX_DIM * BM_MAX_DIM], nl[BM_MAX_DIM * BM_MAX_DIM];
            double mu[BM_MAX_DIM] = {0}, sh = win / (win + 5.0);
            eps = warmup(&ch, &rng, w, &lp, g, eps, 2 * win, keep);
            for (t = 0; t < win; ++t) for (j = 0; j < n; ++j) mu[j] += keep[t * n + j] / win;
            for (i = 0; i < n; ++i) for (j = 0; j < n; ++j) {
                double s = 0;
                for (t = 0; t < win; ++t) s += (keep[t * n + i] - mu[i]) * (keep[t * n + j] - mu[j]);
                cov[i * n + j] = sh * s / (win - 1) + (i == j ? (1 - sh) * s / (win - 1) + 1e-8 : 0);
            }
            w_to_u(&ch, w, u);
            if (bm_cholesky(cov, n, nl)) { memcpy(ch.c, mu, sizeof(double) * n); memcpy(ch.l, nl, sizeof(double) * n * n); }
            u_to_w(&ch, u, w);
            lp = wlogp(&ch, w, g);
        }
        eps = warmup(&ch, &rng, w, &lp, g, eps, 1000, NULL);
        for (t = 0; t < draws; ++t) {
            double x[BM_MAX_DIM];
            acc += hmc_step(&ch, &rng, w, &lp, g, eps, &dv) / ((double)chains * draws);
            ndiv += dv;
            w_to_u(&ch, w, u);
            bm_u_to_x(m, u, x, NULL, NULL);
            memcpy(xs + ((size_t)c * draws + t) * n, x, sizeof(double) * n);
        }
        fprintf(stderr, "chain %d: step %.4f\n", c, eps);
    }
    for (j = 0; j < n; ++j) {
        double s = 0, s2 = 0, tot = (double)chains * draws;
        for (c = 0; c < chains; ++c) for (t = 0; t < draws; ++t) s += xs[((size_t)c * draws + t) * n + j];
        mean[j] = s / tot;
        for (c = 0; c < chains; ++c) for (t = 0; t < draws; ++t) {
            double d = xs[((size_t)c * draws + t) * n + j] - mean[j];
            s2 += d * d;
        }
        sd[j] = sqrt(s2 / (tot - 1));
        diagnose(xs + j, chains, draws, n, &rh[j], &es[j]);
        if (rh[j] > maxr) maxr = rh[j];
        if (es[j] < mine) mine = es[j];
    }
    printf("%s: %d chains x %d draws, acceptance %.3f, %d divergent, max R-hat %.5f, min ESS %.0f\n",
           m->name, chains, draws, acc, ndiv, maxr, mine);
    for (j = 0; j < n; ++j) {
        printf("  %-16s mean %12.6f sd %10.6f  mcse %.2g  R-hat %.5f  ESS %.0f", m->names[j], mean[j], sd[j],
               sd[j] / sqrt(es[j]), rh[j], es[j]);
        if (strcmp(m->ref_source, "exact") == 0 || strncmp(m->ref_source, "exact", 5) == 0)
            printf("  z(mean) %+.2f  sd ratio %.4f", (mean[j] - m->ref_mean[j]) / (sd[j] / sqrt(es[j])), sd[j] / m->ref_sd[j]);
        printf("\n");
    }
    printf("/* %s: %d chains x %d HMC draws, max split R-hat %.4f, min ESS %.0f, %d divergent */\n",
           m->name, chains, draws, maxr, mine, ndiv);
    printf("static const double bm__X_mean[%d] = {", n);
    for (j = 0; j < n; ++j) printf("%s%.8g", j ? ", " : "", mean[j]);
    printf("};\nstatic const double bm__X_sd[%d] = {", n);
    for (j = 0; j < n; ++j) printf("%s%.8g", j ? ", " : "", sd[j]);
    printf("};\n");
    free(xs); free(keep);
    return 0;
}
