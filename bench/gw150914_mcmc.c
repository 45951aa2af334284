/* gw150914_mcmc: flow-free reference posteriors and evidences for the GW150914 ringdown
   (examples/gw150914_ringdown.h), for the (2,2,0) model and the (2,2,0) + (2,2,1) model.

   1. Exact: the quadratures are integrated analytically (Gaussian prior, linear model) and
      (M, chi) on a midpoint grid: log evidence (against noise alone) and the M and chi
      marginals. Checked against a grid of half the resolution.
   2. MCMC on the full density (gw_log_posterior, the function nflow is given): adaptive
      Metropolis (Haario et al. 2001: Gaussian proposal with the chain's own covariance
      times 2.38^2 / d, adapted during burn-in only, then frozen), C independent chains from
      over-dispersed starts. Split R-hat (Gelman et al., BDA3) over 2C half-chains, ESS
      (Geyer's initial monotone sequence, summed over chains), Jensen-Shannon divergence of
      the M and chi histograms against the exact grid marginals (bits, on the grid's cells).
   3. Independent evidence: importance sampling of the full density with a Student-t (5 dof)
      proposal centred on the MCMC samples (covariance x 1.5^2): log Z, its standard error
      and the effective sample size.
   Prints medians and 90% intervals of M, chi, the amplitudes; writes the chains' samples
   (thinned) to OUT/gw150914_mcmc_{220,220_221}.txt.
   Usage: gw150914_mcmc [--data DIR] [--out DIR] [--chains C] [--iter N] [--quick] [--scan]
          --scan also prints the grid evidence for amplitude prior widths 5, 10, 20 and for
          start times shifted by -1 .. +1 ms. */
#define _POSIX_C_SOURCE 199309L
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"
#include "../examples/gw150914_ringdown.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec; }

/* ---- random numbers (xoshiro256**, Box-Muller) ---- */
typedef struct { unsigned long long s[4]; int has; double spare; } rng_t;
static unsigned long long rotl(unsigned long long x, int k) { return (x << k) | (x >> (64 - k)); }
static unsigned long long rnext(rng_t *r) {
    unsigned long long *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45);
    return res;
}
static void rseed(rng_t *r, unsigned long long seed) {
    int i; for (i = 0; i < 4; ++i) { seed += 0x9E3779B97F4A7C15ULL; { unsigned long long z = seed; z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL; z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL; r->s[i] = z ^ (z >> 31); } }
    r->has = 0;
}
static double runif(rng_t *r) { return ((double)(rnext(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
static double rnorm(rng_t *r) {
    double u, v;
    if (r->has) { r->has = 0; return r->spare; }
    u = runif(r); v = runif(r);
    r->spare = sqrt(-2 * log(u)) * sin(2 * GW_PI * v); r->has = 1;
    return sqrt(-2 * log(u)) * cos(2 * GW_PI * v);
}

/* ---- small linear algebra ---- */
static int chol(int d, const double *a, double *l) {   /* a, l: d x d row-major */
    int i, j, k;
    for (i = 0; i < d; ++i) for (j = 0; j <= i; ++j) {
        double s = a[i * d + j];
        for (k = 0; k < j; ++k) s -= l[i * d + k] * l[j * d + k];
        if (i == j) { if (!(s > 0)) return -1; l[i * d + i] = sqrt(s); } else l[i * d + j] = s / l[j * d + j];
    }
    for (i = 0; i < d; ++i) for (j = i + 1; j < d; ++j) l[i * d + j] = 0;
    return 0;
}

static double quantile_sorted(const double *s, long n, double q) {
    double pos = q * (double)(n - 1); long i = (long)pos; double f = pos - (double)i;
    return i + 1 < n ? s[i] * (1 - f) + s[i + 1] * f : s[n - 1];
}

/* integrated autocorrelation time, Geyer's initial monotone positive sequence */
static double iact(const double *x, long n) {
    double m = 0, v = 0, tau = -1, prev = 1e300; long i, lag;
    for (i = 0; i < n; ++i) m += x[i] / (double)n;
    for (i = 0; i < n; ++i) v += (x[i] - m) * (x[i] - m) / (double)n;
    if (!(v > 0)) return 1;
    for (lag = 0; lag + 1 < n; lag += 2) {
        double r0 = 0, r1 = 0, g;
        for (i = 0; i + lag < n; ++i) r0 += (x[i] - m) * (x[i + lag] - m);
        for (i = 0; i + lag + 1 < n; ++i) r1 += (x[i] - m) * (x[i + lag + 1] - m);
        g = (r0 + r1) / ((double)n * v);
        if (g <= 0) break;
        if (g > prev) g = prev;
        prev = g;
        tau += 2 * g;
        if (lag > n / 2) break;
    }
    return tau < 1 ? 1 : tau;
}

/* split R-hat of parameter j over chains (samples[c][t * dim + j], t < n) */
static double split_rhat(double **s, int nc, long n, int dim, int j) {
    long h = n / 2, t; int c, q, m = 2 * nc; double W = 0, B, mm = 0, *mean = (double *)malloc(sizeof(double) * m);
    for (c = 0; c < nc; ++c) for (q = 0; q < 2; ++q) {
        double mu = 0, var = 0;
        for (t = 0; t < h; ++t) mu += s[c][(q * h + t) * dim + j] / (double)h;
        for (t = 0; t < h; ++t) { double d = s[c][(q * h + t) * dim + j] - mu; var += d * d / (double)(h - 1); }
        mean[2 * c + q] = mu; W += var / m; mm += mu / m;
    }
    B = 0; for (q = 0; q < m; ++q) B += (mean[q] - mm) * (mean[q] - mm) / (m - 1);   /* B / h */
    free(mean);
    return sqrt(((double)(h - 1) / (double)h * W + B) / W);
}

typedef struct { long evals; double seconds; } cost_t;

/* Adaptive Metropolis chain: burn iterations adapting, then n stored iterations. */
static void am_chain(const gw_model *m, rng_t *r, long burn, long n, double *out, long *accepted, cost_t *cost) {
    int d = m->dim, i, j; long t, acc = 0;
    double x[GW_MAX_DIM], y[GW_MAX_DIM], lp, ly, L[GW_MAX_DIM * GW_MAX_DIM], C[GW_MAX_DIM * GW_MAX_DIM];
    double mean[GW_MAX_DIM], S[GW_MAX_DIM * GW_MAX_DIM], scale = 2.38 * 2.38 / d; long ns = 0;
    double t0 = now();
    /* over-dispersed start: M, chi uniform over most of the box, amplitudes N(0, 3^2) */
    do {
        x[0] = 40 + 90 * runif(r); x[1] = 0.05 + 0.9 * runif(r);
        for (j = 2; j < d; ++j) x[j] = 3 * rnorm(r);
        lp = gw_log_posterior(m, x, NULL); ++cost->evals;
    } while (!isfinite(lp));
    memset(C, 0, sizeof C);
    { static const double s0[GW_MAX_DIM] = {3.0, 0.05, 0.3, 0.3, 0.3, 0.3}; for (j = 0; j < d; ++j) C[j * d + j] = s0[j] * s0[j]; }
    chol(d, C, L);
    memset(mean, 0, sizeof mean); memset(S, 0, sizeof S);
    for (t = 0; t < burn + n; ++t) {
        double z[GW_MAX_DIM];
        for (j = 0; j < d; ++j) z[j] = rnorm(r);
        for (i = 0; i < d; ++i) { y[i] = x[i]; for (j = 0; j <= i; ++j) y[i] += L[i * d + j] * z[j]; }
        ly = gw_log_posterior(m, y, NULL); ++cost->evals;
        if (ly - lp >= 0 || runif(r) < exp(ly - lp)) { memcpy(x, y, sizeof x); lp = ly; if (t >= burn) ++acc; }
        if (t < burn) {
            /* running moments of the second half of what has been seen so far (restart at t = burn/4, burn/2) */
            if (t == burn / 4 || t == burn / 2) { ns = 0; memset(mean, 0, sizeof mean); memset(S, 0, sizeof S); }
            ++ns;
            for (i = 0; i < d; ++i) { double dx = x[i] - mean[i]; mean[i] += dx / (double)ns; for (j = 0; j < d; ++j) S[i * d + j] += dx * (x[j] - mean[j]); }
            if (ns > 200 && t % 200 == 0) {
                for (i = 0; i < d; ++i) for (j = 0; j < d; ++j) C[i * d + j] = scale * S[i * d + j] / (double)(ns - 1) + (i == j ? 1e-10 : 0);
                if (chol(d, C, L) != 0) { for (i = 0; i < d; ++i) for (j = 0; j < d; ++j) C[i * d + j] = i == j ? 1e-4 : 0; chol(d, C, L); }
            }
        } else memcpy(out + (t - burn) * d, x, sizeof(double) * d);
    }
    *accepted = acc;
    cost->seconds += now() - t0;
}

typedef struct { double logz, pm[420], pc[200]; int nm, nc; } gridres;

static void run_model(gw_analysis *a, int nmodes, int chains, long iter, const char *outdir, unsigned long long seed, double *logz_out) {
    gw_model m; gridres g, g2; cost_t cost = {0, 0}; double **s, t0, worst_rhat = 0, ess_min = 1e300;
    long burn = iter / 3, n = iter, t, acc_total = 0, tot; int c, j, d;
    static const char *tag[3] = {"", "220", "220_221"};
    double *all, *col;
    gw_model_init(&m, a, nmodes); d = m.dim;
    printf("\n== model %s (dim %d) ==\n", nmodes == 1 ? "(2,2,0)" : "(2,2,0)+(2,2,1)", d);
    /* exact grid */
    t0 = now();
    g.nm = 420; g.nc = 200; g.logz = gw_grid(&m, g.nm, g.nc, g.pm, g.pc, NULL);
    g2.nm = 210; g2.nc = 100; g2.logz = gw_grid(&m, g2.nm, g2.nc, g2.pm, g2.pc, NULL);
    printf("grid: log Z = %.4f (420 x 200 cells), %.4f (210 x 100); %.1f s for both\n", g.logz, g2.logz, now() - t0);
    {
        double hm = 105.0 / g.nm, hc = 0.99 / g.nc;
        printf("grid: M   median %.2f  90%% [%.2f, %.2f] Msun\n", gw_grid_quantile(g.pm, g.nm, 35, hm, 0.5), gw_grid_quantile(g.pm, g.nm, 35, hm, 0.05), gw_grid_quantile(g.pm, g.nm, 35, hm, 0.95));
        printf("grid: chi median %.3f  90%% [%.3f, %.3f]\n", gw_grid_quantile(g.pc, g.nc, 0, hc, 0.5), gw_grid_quantile(g.pc, g.nc, 0, hc, 0.05), gw_grid_quantile(g.pc, g.nc, 0, hc, 0.95));
    }
    *logz_out = g.logz;
    /* MCMC */
    s = (double **)malloc(sizeof(double *) * chains);
    for (c = 0; c < chains; ++c) {
        rng_t r; long acc;
        rseed(&r, seed + 1000003ULL * (unsigned long long)c + 17ULL * (unsigned long long)nmodes);
        s[c] = (double *)malloc(sizeof(double) * (size_t)n * d);
        am_chain(&m, &r, burn, n, s[c], &acc, &cost);
        acc_total += acc;
    }
    tot = n * chains;
    printf("mcmc: %d chains x (%ld burn-in + %ld kept), acceptance %.3f, %ld evaluations in %.1f s (%.2f us each)\n",
           chains, burn, n, (double)acc_total / (double)tot, cost.evals, cost.seconds, 1e6 * cost.seconds / (double)cost.evals);
    col = (double *)malloc(sizeof(double) * (size_t)tot);
    all = (double *)malloc(sizeof(double) * (size_t)n);
    for (j = 0; j < d; ++j) {
        double rh = split_rhat(s, chains, n, d, j), ess = 0;
        for (c = 0; c < chains; ++c) { for (t = 0; t < n; ++t) all[t] = s[c][t * d + j]; ess += (double)n / iact(all, n); }
        for (c = 0; c < chains; ++c) for (t = 0; t < n; ++t) col[c * n + t] = s[c][t * d + j];
        qsort(col, (size_t)tot, sizeof(double), gw__cmp);
        printf("mcmc: %-7s median %9.4f  90%% [%9.4f, %9.4f]  split-Rhat %.4f  ESS %.0f\n", gw_param_name(j),
               quantile_sorted(col, tot, 0.5), quantile_sorted(col, tot, 0.05), quantile_sorted(col, tot, 0.95), rh, ess);
        if (rh > worst_rhat) worst_rhat = rh;
        if (ess < ess_min) ess_min = ess;
    }
    {   /* amplitudes A_k = |a_k| */
        int k;
        for (k = 0; k < nmodes; ++k) {
            double mu = 0, var = 0;
            for (c = 0; c < chains; ++c) for (t = 0; t < n; ++t) { double A, ph; gw_amp_phase(s[c] + t * d, k, &A, &ph); col[c * n + t] = A; mu += A / (double)tot; }
            for (t = 0; t < tot; ++t) var += (col[t] - mu) * (col[t] - mu) / (double)tot;
            qsort(col, (size_t)tot, sizeof(double), gw__cmp);
            printf("mcmc: A_%s  median %9.4f  90%% [%9.4f, %9.4f] (1e-21, h+ amplitude)  mean/sd %.2f\n", k ? "221" : "220",
                   quantile_sorted(col, tot, 0.5), quantile_sorted(col, tot, 0.05), quantile_sorted(col, tot, 0.95), mu / sqrt(var));
        }
    }
    printf("mcmc: worst split-Rhat %.4f, smallest ESS %.0f (%s)\n", worst_rhat, ess_min, worst_rhat < 1.01 ? "Rhat < 1.01" : "Rhat NOT below 1.01: run longer");
    {   /* JS divergence of the MCMC marginals against the exact grid marginals */
        double hm[420], hc[200]; int i;
        memset(hm, 0, sizeof hm); memset(hc, 0, sizeof hc);
        for (c = 0; c < chains; ++c) for (t = 0; t < n; ++t) {
            int im = (int)((s[c][t * d] - 35) / 105.0 * g.nm), ic = (int)(s[c][t * d + 1] / 0.99 * g.nc);
            if (im >= 0 && im < g.nm) hm[im] += 1.0 / (double)tot;
            if (ic >= 0 && ic < g.nc) hc[ic] += 1.0 / (double)tot;
        }
        printf("JS(mcmc || grid): M %.5f bits, chi %.5f bits (on %d and %d cells)\n", gw_js_bits(hm, g.pm, g.nm), gw_js_bits(hc, g.pc, g.nc), g.nm, g.nc);
        /* coarser: 42 and 20 bins (less sampling noise) */
        { double a1[42], b1[42], a2[20], b2[20];
          memset(a1, 0, sizeof a1); memset(b1, 0, sizeof b1); memset(a2, 0, sizeof a2); memset(b2, 0, sizeof b2);
          for (i = 0; i < g.nm; ++i) { a1[i / 10] += hm[i]; b1[i / 10] += g.pm[i]; }
          for (i = 0; i < g.nc; ++i) { a2[i / 10] += hc[i]; b2[i / 10] += g.pc[i]; }
          printf("JS(mcmc || grid): M %.5f bits, chi %.5f bits (on 42 and 20 bins)\n", gw_js_bits(a1, b1, 42), gw_js_bits(a2, b2, 20)); }
    }
    {   /* importance sampling with a Student-t proposal fitted to the MCMC samples */
        double mu[GW_MAX_DIM] = {0}, C[GW_MAX_DIM * GW_MAX_DIM] = {0}, L[GW_MAX_DIM * GW_MAX_DIM], logdetL = 0, nu = 5;
        long nis = 200000, i2; int i, k; double mx = -1e300, *lw = (double *)malloc(sizeof(double) * nis), sw = 0, sw2 = 0;
        rng_t r; cost_t ic = {0, 0}; double tt = now();
        for (c = 0; c < chains; ++c) for (t = 0; t < n; ++t) for (j = 0; j < d; ++j) mu[j] += s[c][t * d + j] / (double)tot;
        for (c = 0; c < chains; ++c) for (t = 0; t < n; ++t) for (i = 0; i < d; ++i) for (j = 0; j < d; ++j)
            C[i * d + j] += (s[c][t * d + i] - mu[i]) * (s[c][t * d + j] - mu[j]) / (double)tot * 2.25;
        chol(d, C, L);
        for (i = 0; i < d; ++i) logdetL += log(L[i * d + i]);
        rseed(&r, seed ^ 0xABCDEFULL);
        for (i2 = 0; i2 < nis; ++i2) {
            double z[GW_MAX_DIM], x[GW_MAX_DIM], q2 = 0, w = 0, lq, lp;
            for (j = 0; j < d; ++j) { z[j] = rnorm(&r); q2 += z[j] * z[j]; }
            for (k = 0; k < (int)nu; ++k) { double e = rnorm(&r); w += e * e; }           /* chi^2_nu */
            for (i = 0; i < d; ++i) { x[i] = mu[i]; for (j = 0; j <= i; ++j) x[i] += L[i * d + j] * z[j] * sqrt(nu / w); }
            q2 *= nu / w;   /* Mahalanobis distance^2 of x */
            lq = lgamma((nu + d) / 2) - lgamma(nu / 2) - 0.5 * d * log(nu * GW_PI) - logdetL - 0.5 * (nu + d) * log(1 + q2 / nu);
            lp = gw_log_posterior(&m, x, NULL); ++ic.evals;
            lw[i2] = lp - lq; if (lw[i2] > mx) mx = lw[i2];
        }
        for (i2 = 0; i2 < nis; ++i2) { double w = exp(lw[i2] - mx); sw += w; sw2 += w * w; }
        {   double mean = sw / nis, var = sw2 / nis - mean * mean, ess = sw * sw / sw2;
            printf("importance sampling (Student-t proposal, %ld draws, %.1f s): log Z = %.4f +- %.4f, ESS %.0f (%.1f%%); grid %.4f\n",
                   nis, now() - tt, mx + log(mean), sqrt(var / nis) / mean, ess, 100 * ess / nis, g.logz); }
        free(lw);
    }
    if (outdir) {   /* save thinned samples */
        char path[1024]; FILE *fp; long thin = tot / 20000 > 0 ? tot / 20000 : 1;
        snprintf(path, sizeof path, "%s/gw150914_mcmc_%s.txt", outdir, tag[nmodes]);
        fp = fopen(path, "w");
        if (fp) {
            fprintf(fp, "# GW150914 ringdown, model %s, adaptive Metropolis, thinned by %ld; columns:", tag[nmodes], thin);
            for (j = 0; j < d; ++j) fprintf(fp, " %s", gw_param_name(j));
            fprintf(fp, "\n");
            for (c = 0; c < chains; ++c) for (t = 0; t < n; t += thin) { for (j = 0; j < d; ++j) fprintf(fp, j ? " %.9g" : "%.9g", s[c][t * d + j]); fprintf(fp, "\n"); }
            fclose(fp);
            printf("samples: %s\n", path);
        } else printf("samples: cannot write %s\n", path);
    }
    for (c = 0; c < chains; ++c) free(s[c]);
    free(s); free(col); free(all);
}

int main(int argc, char **argv) {
    const char *dir = "examples/data/gw150914", *out = "build"; int chains = 8, i, scan = 0; long iter = 150000;
    gw_analysis a; double z1, z2, t0;
    for (i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--chains") && i + 1 < argc) chains = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iter") && i + 1 < argc) iter = atol(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) iter = 20000;
        else if (!strcmp(argv[i], "--scan")) scan = 1;
        else { fprintf(stderr, "usage: %s [--data DIR] [--out DIR] [--chains C] [--iter N] [--quick] [--scan]\n", argv[0]); return 2; }
    }
    if (chains < 2) chains = 2;
    t0 = now();
    if (gw_analysis_init(&a, dir, NULL) != 0) { fprintf(stderr, "cannot load or condition the data in %s\n", dir); return 1; }
    printf("GW150914 ringdown: t0(H1) = %.4f, t0(L1) = %.7f, %d samples per detector at %.0f Hz (T = %.2f s)\n",
           a.set.t0_h1, a.det[1].t0, a.n, a.fs, a.set.duration);
    printf("antenna: H1 F+ %.6f Fx %.6f; L1 F+ %.6f Fx %.6f; Welch segments H1 %d L1 %d; setup %.2f s\n",
           a.det[0].fp, a.det[0].fc, a.det[1].fp, a.det[1].fc, a.det[0].nseg, a.det[1].nseg, now() - t0);
    {   /* cost of one evaluation (with and without gradient) */
        gw_model m; int k; for (k = 1; k <= 2; ++k) {
            double x[GW_MAX_DIM] = {70, 0.7, 1, -1, 1, 1}, g[GW_MAX_DIM], s = 0, ta, tb; int r, R = 20000;
            gw_model_init(&m, &a, k);
            ta = now(); for (r = 0; r < R; ++r) { x[0] = 60 + 1e-3 * r; s += gw_log_posterior(&m, x, NULL); }
            tb = now(); for (r = 0; r < R; ++r) { x[0] = 60 + 1e-3 * r; s += gw_log_posterior(&m, x, g); }
            printf("cost (%d tone%s, dim %d): %.2f us per evaluation, %.2f us with gradient (checksum %.3g)\n", k, k > 1 ? "s" : "", m.dim,
                   1e6 * (tb - ta) / R, 1e6 * (now() - tb) / R, s);
        }
    }
    run_model(&a, 1, chains, iter, out, 20251204ULL, &z1);
    run_model(&a, 2, chains, iter, out, 20251204ULL, &z2);
    printf("\nlog Bayes factor (2,2,0)+(2,2,1) vs (2,2,0): %.4f (grid, exact; amplitude prior sd %.0f e-21)\n", z2 - z1, a.set.amp_sigma);
    if (scan) {
        gw_model m1, m2; double sig[3] = {5, 10, 20}, dt[5] = {-1e-3, -5e-4, 0, 5e-4, 1e-3}; int k;
        for (k = 0; k < 3; ++k) {
            a.set.amp_sigma = sig[k]; gw_model_init(&m1, &a, 1); gw_model_init(&m2, &a, 2);
            z1 = gw_grid(&m1, 210, 100, NULL, NULL, NULL); z2 = gw_grid(&m2, 210, 100, NULL, NULL, NULL);
            printf("scan: amplitude prior sd %4.1f e-21: log Z (2,2,0) %.3f, +(2,2,1) %.3f, log BF %.3f\n", sig[k], z1, z2, z2 - z1);
        }
        a.set.amp_sigma = 10;
        for (k = 0; k < 5; ++k) {
            gw_analysis b; gw_settings st; double pm[210], pc[100];
            gw_settings_default(&st); st.t0_h1 += dt[k];
            if (gw_analysis_init(&b, dir, &st) != 0) continue;
            gw_model_init(&m1, &b, 1); gw_model_init(&m2, &b, 2);
            z1 = gw_grid(&m1, 210, 100, NULL, NULL, NULL); z2 = gw_grid(&m2, 210, 100, pm, pc, NULL);
            printf("scan: t0(H1) %+5.1f ms: log Z (2,2,0) %.3f, +(2,2,1) %.3f, log BF %.3f; 2-tone M median %.1f chi median %.3f\n", 1e3 * dt[k], z1, z2, z2 - z1,
                   gw_grid_quantile(pm, 210, 35, 0.5, 0.5), gw_grid_quantile(pc, 100, 0, 0.0099, 0.5));
            gw_analysis_free(&b);
        }
    }
    gw_analysis_free(&a);
    return 0;
}
