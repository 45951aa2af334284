/* check_models.c - checks every benchmark posterior in models.h.

   gcc -std=c99 -O2 -Wall -Wextra -pedantic -Werror [-DNFLOW_DOUBLE] \
       bench/posteriors/check_models.c -o check_models -lm
   ./check_models [folder of data/]      (default: ./ then bench/posteriors/)

   Per model: analytic gradient vs central differences at random points around the
   reference mean (reference sds, inside the support); a batch equals row by row (and
   without the gradient), a wrong dim is refused; points outside the support give -inf
   with a finite gradient; the thinned reference draws (if shipped) have finite log
   density everywhere and means that agree with the embedded reference; for blr26 the
   gradient vanishes at the exact posterior mean (its mode). One line per check, then
   "N passed, M failed"; exit status 1 on any failure. */
#define NFLOW_IMPLEMENTATION
#include "models.h"
#include <stdio.h>
#include <stdlib.h>

#ifdef NFLOW_DOUBLE
#define EPS_R 2.220446049250313e-16
#define H_REL 1e-4     /* finite-difference step, in reference sds */
#define TOL_ABS 1e-6   /* nats per reference sd */
#define TOL_REL 1e-5
#else
#define EPS_R 1.1920929e-07
#define H_REL 3e-3
#define TOL_ABS 2e-2
#define TOL_REL 2e-2
#endif
#define NPTS 6

static int passed, failed;
static void report(int ok, const char *check, const char *name, const char *detail) {
    if (ok) { ++passed; printf("ok %s %s%s%s\n", check, name, *detail ? " " : "", detail); }
    else { ++failed; printf("FAIL %s %s %s\n", check, name, detail); }
}

static double logp1(const bm_model *m, const nf_real *x, nf_real *g) {
    nf_real lp;
    if (m->log_density(x, 1, m->dim, &lp, g, m->user) != 0) return NAN;
    return (double)lp;
}

static int inside(const bm_model *m, int j, double v) { return bm__in_domain(&m->domains[j], v); }

/* a point around the reference mean (|z| < 2 reference sds) with room for the
   finite-difference steps inside the support */
static void random_point(const bm_model *m, nf_rng *rng, nf_real *x) {
    int j;
    double v, h;
    for (j = 0; j < m->dim; ++j) {
        h = 3 * H_REL * m->ref_sd[j];
        do {
            v = m->ref_mean[j] + m->ref_sd[j] * 2 * (2 * (double)nf_rng_uniform(rng) - 1);
        } while (!inside(m, j, v - h) || !inside(m, j, v + h));
        x[j] = (nf_real)v;
    }
}

static void check_gradient(const bm_model *m, nf_rng *rng) {
    nf_real x[BM_MAX_DIM], g[BM_MAX_DIM], gp[BM_MAX_DIM], xp, xm, keep;
    double fp, fm, fd, h, err, tol, worst = 0;
    char detail[256] = "";
    int k, j, ok = 1;
    for (k = 0; k < NPTS; ++k) {
        random_point(m, rng, x);
        if (!isfinite(logp1(m, x, g))) { ok = 0; snprintf(detail, sizeof detail, "non-finite log p at point %d", k); break; }
        for (j = 0; j < m->dim; ++j) {
            h = H_REL * m->ref_sd[j];
            keep = x[j];
            xp = x[j] = (nf_real)((double)keep + h); fp = logp1(m, x, gp);
            xm = x[j] = (nf_real)((double)keep - h); fm = logp1(m, x, gp);
            x[j] = keep;
            fd = (fp - fm) / ((double)xp - (double)xm);
            /* in nats per reference sd; rounding of log p (nf_real) allowed for */
            err = fabs(fd - (double)g[j]) * m->ref_sd[j];
            tol = TOL_ABS + TOL_REL * fabs((double)g[j]) * m->ref_sd[j]
                + 4 * EPS_R * (fabs(fp) + fabs(fm) + 1) / ((double)xp - (double)xm) * m->ref_sd[j];
            if (err / tol > worst) worst = err / tol;
            if (!(err <= tol) && ok) {
                ok = 0;
                snprintf(detail, sizeof detail, "point %d %s: analytic %.9g numeric %.9g (error %.3g sd-units, tol %.3g)",
                         k, m->names[j], (double)g[j], fd, err, tol);
            }
        }
    }
    if (ok) snprintf(detail, sizeof detail, "(worst error %.3g of tolerance)", worst);
    report(ok, "gradient", m->name, detail);
}

static void check_batch(const bm_model *m, nf_rng *rng) {
    enum { R = 7 };
    static nf_real x[R * BM_MAX_DIM], g[R * BM_MAX_DIM], g1[BM_MAX_DIM], lp[R], lp2[R], l1;
    int i, j, ok = 1;
    char detail[160] = "";
    for (i = 0; i < R; ++i) random_point(m, rng, x + i * m->dim);
    if (m->log_density(x, R, m->dim, lp, g, m->user) != 0) { ok = 0; snprintf(detail, sizeof detail, "batch call failed"); }
    if (ok && m->log_density(x, R, m->dim, lp2, NULL, m->user) != 0) { ok = 0; snprintf(detail, sizeof detail, "call without gradient failed"); }
    for (i = 0; ok && i < R; ++i) {
        if (m->log_density(x + i * m->dim, 1, m->dim, &l1, g1, m->user) != 0 || l1 != lp[i] || lp2[i] != lp[i]) {
            ok = 0; snprintf(detail, sizeof detail, "row %d: log p differs", i);
        }
        for (j = 0; ok && j < m->dim; ++j)
            if (g1[j] != g[i * m->dim + j]) { ok = 0; snprintf(detail, sizeof detail, "row %d: gradient %d differs", i, j); }
    }
    if (ok && m->log_density(x, 1, m->dim + 1, lp, g, m->user) == 0) { ok = 0; snprintf(detail, sizeof detail, "wrong dim accepted"); }
    report(ok, "batch", m->name, detail);
}

static void check_support(const bm_model *m, nf_rng *rng) {
    nf_real x[BM_MAX_DIM], g[BM_MAX_DIM], lp, keep;
    double bad[4];
    int j, k, nb, ok = 1, tested = 0, i;
    char detail[160] = "(no bounded parameter)";
    random_point(m, rng, x);
    for (j = 0; j < m->dim; ++j) {
        const nf_domain *d = &m->domains[j];
        if (d->kind == NF_DOMAIN_REAL) continue;
        nb = 0;
        bad[nb++] = d->lo; bad[nb++] = d->lo - 1 - fabs(d->lo);
        if (d->kind == NF_DOMAIN_INTERVAL) { bad[nb++] = d->hi; bad[nb++] = d->hi + 1 + fabs(d->hi); }
        keep = x[j];
        for (k = 0; k < nb; ++k) {
            x[j] = (nf_real)bad[k];
            ++tested;
            if (m->log_density(x, 1, m->dim, &lp, g, m->user) != 0 || !(isinf(lp) && lp < 0)) {
                if (ok) snprintf(detail, sizeof detail, "%s = %g: log p = %g, not -inf", m->names[j], bad[k], (double)lp);
                ok = 0;
            }
            for (i = 0; i < m->dim; ++i) if (!isfinite(g[i])) {
                if (ok) snprintf(detail, sizeof detail, "%s = %g: gradient not finite", m->names[j], bad[k]);
                ok = 0;
            }
        }
        x[j] = keep;
    }
    if (ok && tested) snprintf(detail, sizeof detail, "(%d points outside)", tested);
    report(ok, "support", m->name, detail);
}

/* the shipped thinned draws: finite log p everywhere, means within 5 standard errors */
static void check_draws(const bm_model *m, const char *dir) {
    static nf_real x[2000 * BM_MAX_DIM], lp[2000];
    double sum[BM_MAX_DIM] = {0}, v, lpsum = 0, z, worst = 0;
    char path[512], line[4096], detail[200] = "", *p;
    int n = 0, j, ok = 1, i;
    FILE *f;
    snprintf(path, sizeof path, "%s%s", dir, m->draws);
    f = fopen(path, "r");
    if (!f) { report(0, "draws", m->name, path); return; }
    if (!fgets(line, sizeof line, f)) ok = 0;                  /* header */
    while (ok && n < 2000 && fgets(line, sizeof line, f)) {
        p = line;
        strtod(p, &p);                                          /* chain */
        for (j = 0; j < m->dim; ++j) {
            if (*p != ',') { ok = 0; break; }
            v = strtod(p + 1, &p);
            x[n * m->dim + j] = (nf_real)v; sum[j] += v;
        }
        ++n;
    }
    fclose(f);
    if (!ok || n < 100) { report(0, "draws", m->name, "unreadable draw file"); return; }
    if (m->log_density(x, (size_t)n, m->dim, lp, NULL, m->user) != 0) ok = 0;
    for (i = 0; ok && i < n; ++i) {
        if (!isfinite(lp[i])) { ok = 0; snprintf(detail, sizeof detail, "draw %d has log p %g", i, (double)lp[i]); }
        lpsum += (double)lp[i];
    }
    for (j = 0; ok && j < m->dim; ++j) {
        z = fabs(sum[j] / n - m->ref_mean[j]) / (m->ref_sd[j] / sqrt((double)n));
        if (z > worst) worst = z;
        if (z > 5) { ok = 0; snprintf(detail, sizeof detail, "%s: thinned mean %g vs reference %g", m->names[j], sum[j] / n, m->ref_mean[j]); }
    }
    if (ok) snprintf(detail, sizeof detail, "(%d draws, mean log p %.4f, worst mean z %.2f)", n, lpsum / n, worst);
    report(ok, "draws", m->name, detail);
}

#ifdef NFLOW_DOUBLE
/* Gaussian posterior: the exact mean is the mode */
static void check_mode(const bm_model *m) {
    nf_real x[BM_MAX_DIM], g[BM_MAX_DIM];
    double worst = 0;
    int j;
    char detail[120];
    for (j = 0; j < m->dim; ++j) x[j] = m->ref_mean[j];
    logp1(m, x, g);
    for (j = 0; j < m->dim; ++j) if (fabs(g[j]) * m->ref_sd[j] > worst) worst = fabs(g[j]) * m->ref_sd[j];
    snprintf(detail, sizeof detail, "largest |d log p / dx| sd at the mean %.3g", worst);
    report(worst < 1e-5, "mode", m->name, detail);
}
#endif

int main(int argc, char **argv) {
    const char *dirs[3] = {"", "bench/posteriors/", NULL};
    const char *dir = "";
    char probe[512];
    FILE *f;
    nf_rng rng;
    int i, d;
    if (argc > 1) { dirs[0] = argv[1]; dirs[1] = NULL; }
    for (d = 0; dirs[d]; ++d) {
        snprintf(probe, sizeof probe, "%sdata/arK.csv", dirs[d]);
        if ((f = fopen(probe, "r")) != NULL) { fclose(f); dir = dirs[d]; break; }
    }
    nf_rng_seed(&rng, 20261204);
    for (i = 0; i < bm_model_count(); ++i) {
        const bm_model *m = bm_model_at(i);
        check_gradient(m, &rng);
        check_batch(m, &rng);
        check_support(m, &rng);
        if (m->draws) check_draws(m, dir);
#ifdef NFLOW_DOUBLE
        if (strcmp(m->name, "blr26") == 0) check_mode(m);
#endif
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
