/* quadrature.c - independent log Z (model evidence) of the posteriordb models, in double.

   gcc -std=c99 -O2 -DNFLOW_DOUBLE bench/posteriors/quadrature.c -o quadrature -lm
   ./quadrature [model]      (all five by default: about 10 minutes on one core)

   Prints the values embedded in models_ref.h and how they were checked:
   - kidiq_momiq (3-D), garch11 (4-D), low_dim_gauss_mix (5-D): tensor trapezoid rule in
     whitened unconstrained coordinates (u = mode + L w, L L' = inverse negative Hessian),
     on the box |w_k| <= R with step h, for several (h, R): the trapezoid rule converges
     geometrically for smooth integrands that decay fast, so agreement across the grids
     shows the digits that are settled.
   - kidiq_momiq again with beta integrated exactly (flat prior: Gaussian integral), leaving
     a 1-D integral over sigma; garch11 again with a separately written likelihood in
     Stan's own parameters (mu, alpha0, alpha1, beta1) and its own Jacobian bookkeeping.
   - eight_schools_noncentered and arK: the normal parameters integrated exactly given
     tau (sigma), then a 1-D trapezoid over log tau (log sigma); checked against importance
     sampling of models.h's density (multivariate-t proposal at the mode, 2e6 draws).
   The 1-D integrals use step 0.005 on a range where the integrand is below 1e-30 of its
   peak at both ends. */
#define NFLOW_IMPLEMENTATION
#include "unconstrained.h"
#include <stdio.h>

static double lse_add(double acc, double v) {              /* log(e^acc + e^v) */
    if (acc == -INFINITY) return v;
    if (v == -INFINITY) return acc;
    return acc > v ? acc + log1p(exp(v - acc)) : v + log1p(exp(acc - v));
}

/* tensor trapezoid over the whitened box: log of integral of exp(f(u)) du */
typedef double (*ufun)(const void *ctx, const double *u);
static double grid_log_z(ufun f, const void *ctx, int n, const double *mode, const double *l, double h, double r) {
    int k = (int)ceil(r / h), idx[BM_MAX_DIM], i, j;
    double u[BM_MAX_DIM], w[BM_MAX_DIM], acc = -INFINITY, logdet = 0, ref = f(ctx, mode), sum = 0;
    for (i = 0; i < n; ++i) { idx[i] = -k; logdet += log(l[i * n + i]); }
    for (;;) {
        for (i = 0; i < n; ++i) w[i] = idx[i] * h;
        for (i = 0; i < n; ++i) { u[i] = mode[i]; for (j = 0; j <= i; ++j) u[i] += l[i * n + j] * w[j]; }
        sum += exp(f(ctx, u) - ref);
        for (i = 0; i < n && ++idx[i] > k; ++i) idx[i] = -k;
        if (i == n) break;
    }
    acc = ref + log(sum);
    return acc + logdet + n * log(h);
}
static double model_f(const void *ctx, const double *u) { return bm_ulogp((const bm_model *)ctx, u, NULL); }

/* importance sampling with a multivariate t (nu = 5, scale 1.3 L) at the mode */
static void is_log_z(const bm_model *m, const double *mode, const double *l, long ndraw, double *lz, double *se) {
    const double nu = 5, sc = 1.3;
    int n = m->dim, i, j;
    double z[BM_MAX_DIM], u[BM_MAX_DIM], chi, q, lw, logdet = 0, c, acc = -INFINITY, acc2 = -INFINITY, mean;
    long t;
    nf_rng rng;
    nf_rng_seed(&rng, 99);
    for (i = 0; i < n; ++i) logdet += log(sc * l[i * n + i]);
    c = lgamma((nu + n) / 2) - lgamma(nu / 2) - 0.5 * n * log(nu * 3.14159265358979323846) - logdet;
    for (t = 0; t < ndraw; ++t) {
        for (i = 0; i < n; ++i) z[i] = nf_rng_normal(&rng);
        for (chi = 0, i = 0; i < (int)nu; ++i) { q = nf_rng_normal(&rng); chi += q * q; }
        for (q = 0, i = 0; i < n; ++i) { z[i] *= sqrt(nu / chi); q += z[i] * z[i]; }
        for (i = 0; i < n; ++i) { u[i] = mode[i]; for (j = 0; j <= i; ++j) u[i] += sc * l[i * n + j] * z[j]; }
        lw = bm_ulogp(m, u, NULL) - (c - 0.5 * (nu + n) * log1p(q / nu));
        acc = lse_add(acc, lw); acc2 = lse_add(acc2, 2 * lw);
    }
    mean = acc - log((double)ndraw);
    *lz = mean;
    /* se of log mean weight: sqrt(var(w) / N) / mean(w) */
    *se = sqrt(fmax(exp(acc2 - log((double)ndraw) - 2 * mean) - 1, 0) / ndraw);
}

/* 1-D trapezoid of exp(f(s)) over s in [a, b] */
static double line_log_z(double (*f)(double), double a, double b, double h) {
    double acc = -INFINITY, s;
    int k, n = (int)ceil((b - a) / h);
    for (k = 0; k <= n; ++k) { s = a + k * h; acc = lse_add(acc, f(s) + (k == 0 || k == n ? log(0.5) : 0)); }
    return acc + log(h);
}

/* ---- kidiq: beta integrated exactly under its flat prior ------------------------------ */
static double kid_rss, kid_logdet_xtx;
static void kid_setup(void) {
    double sx = 0, sxx = 0, sy = 0, sxy = 0, n = 434, b1, b0, e;
    int i;
    for (i = 0; i < 434; ++i) {
        sx += bm__kid_momiq[i]; sxx += bm__kid_momiq[i] * bm__kid_momiq[i];
        sy += bm__kid_score[i]; sxy += bm__kid_momiq[i] * bm__kid_score[i];
    }
    b1 = (n * sxy - sx * sy) / (n * sxx - sx * sx);
    b0 = (sy - b1 * sx) / n;
    for (kid_rss = 0, i = 0; i < 434; ++i) { e = bm__kid_score[i] - b0 - b1 * bm__kid_momiq[i]; kid_rss += e * e; }
    kid_logdet_xtx = log(n * sxx - sx * sx);
}
/* s = log sigma: log[HalfCauchy(sigma) (2 pi sigma^2)^(-(N-2)/2) |X'X|^(-1/2) e^(-RSS / 2 sigma^2) sigma] */
static double kid_line(double s) {
    double sg = exp(s);
    return bm__lhalfcauchy(sg, 2.5) - 0.5 * 432 * (BM__LOG2PI + 2 * s) - 0.5 * kid_logdet_xtx
         - 0.5 * kid_rss / (sg * sg) + s;
}

/* ---- eight schools: theta_trans and mu integrated exactly given tau -------------------
   y_j | mu, tau ~ N(mu, sigma_j^2 + tau^2), mu ~ N(0, 25): y | tau ~ N(0, D + 25 11') */
static double es_line(double s) {
    double tau = exp(s), a = 0, b = 0, q = 0, ld = 0, d;
    int j;
    for (j = 0; j < 8; ++j) {
        d = bm__es_sigma[j] * bm__es_sigma[j] + tau * tau;
        ld += log(d); a += 1 / d; b += bm__es_y[j] / d; q += bm__es_y[j] * bm__es_y[j] / d;
    }
    ld += log1p(25 * a);
    q -= 25 * b * b / (1 + 25 * a);
    return bm__lhalfcauchy(tau, 5) - 0.5 * (8 * BM__LOG2PI + ld + q) + s;
}

/* ---- arK: (alpha, beta) ~ N(0, 100 I) integrated exactly given sigma ------------------
   log N(y | 0, sigma^2 I + 100 A A') = -n/2 log(2 pi sigma^2) - 6 log 10 - 1/2 log|P|
                                        - 1/2 (y'y / sigma^2 - m' P m),
   P = A'A / sigma^2 + I / 100, m = P^-1 A'y / sigma^2 */
static double ark_ata[36], ark_aty[6], ark_yty;
static void ark_setup(void) {
    double a[6];
    int t, i, j;
    for (t = 5; t < 200; ++t) {
        a[0] = 1;
        for (i = 1; i <= 5; ++i) a[i] = bm__ark_y[t - i];
        for (i = 0; i < 6; ++i) {
            ark_aty[i] += a[i] * bm__ark_y[t];
            for (j = 0; j < 6; ++j) ark_ata[i * 6 + j] += a[i] * a[j];
        }
        ark_yty += bm__ark_y[t] * bm__ark_y[t];
    }
}
static double ark_line(double s) {
    double sg2 = exp(2 * s), p[36], l[36], m[6], ld = 0, mpm = 0;
    int i, j;
    for (i = 0; i < 36; ++i) p[i] = ark_ata[i] / sg2 + (i % 7 == 0 ? 0.01 : 0);
    bm_cholesky(p, 6, l);
    for (i = 0; i < 6; ++i) { m[i] = ark_aty[i] / sg2; ld += 2 * log(l[i * 6 + i]); }
    bm_chol_solve(l, 6, m);
    for (i = 0; i < 6; ++i) for (j = 0; j < 6; ++j) mpm += m[i] * p[i * 6 + j] * m[j];
    return bm__lhalfcauchy(exp(s), 2.5) - 0.5 * 195 * (BM__LOG2PI + 2 * s) - 6 * log(10.0) - 0.5 * ld
         - 0.5 * (ark_yty / sg2 - mpm) + s;
}

/* ---- garch11 written again in Stan's parameters, u = (mu, log a0, logit a1, logit r) ---- */
static double garch_direct(const void *ctx, const double *u) {
    double mu = u[0], a0 = exp(u[1]), a1 = 1 / (1 + exp(-u[2])), r = 1 / (1 + exp(-u[3])), b1 = r * (1 - a1);
    double sig = 0.5, lp = 0, e;
    int t;
    (void)ctx;
    for (t = 0; t < 200; ++t) {
        if (t > 0) sig = sqrt(a0 + a1 * (bm__garch_y[t - 1] - mu) * (bm__garch_y[t - 1] - mu) + b1 * sig * sig);
        e = (bm__garch_y[t] - mu) / sig;
        lp += -0.5 * log(2 * 3.14159265358979323846) - log(sig) - 0.5 * e * e;
    }
    /* d(mu, a0, a1, b1) / du: a0, a1 (1 - a1), (1 - a1) r (1 - r) */
    return lp + log(a0) + log(a1 * (1 - a1)) + log((1 - a1) * r * (1 - r));
}

static void grids(const char *name, ufun f, const void *ctx, int n, const double *mode, const double *l,
                  const double *hs, const double *rs, int nh) {
    int i;
    for (i = 0; i < nh; ++i)
        printf("  %-26s h = %.3f R = %.1f: log Z = %.6f\n", name, hs[i], rs[i], grid_log_z(f, ctx, n, mode, l, hs[i], rs[i]));
}

int main(int argc, char **argv) {
    static double l[BM_MAX_DIM * BM_MAX_DIM];
    double u[BM_MAX_DIM], lz, se;
    const bm_model *m;
    int j;
#define WANT(name) (argc < 2 || strcmp(argv[1], name) == 0)

    if (WANT("kidiq_momiq")) {
    printf("kidiq_momiq\n");
    m = bm_model_find("kidiq_momiq");
    bm_x_to_u(m, m->ref_mean, u); bm_find_mode(m, u, l);
    { double hs[4] = {0.5, 0.35, 0.25, 0.25}, rs[4] = {8, 8, 8, 10}; grids("3-D trapezoid", model_f, m, 3, u, l, hs, rs, 4); }
    kid_setup();
    printf("  %-26s h = 0.005:       log Z = %.6f\n", "beta exact, 1-D sigma", line_log_z(kid_line, 1.0, 5.0, 0.005));

    }
    if (WANT("garch11")) {
    printf("garch11\n");
    m = bm_model_find("garch11");
    bm_x_to_u(m, m->ref_mean, u); bm_find_mode(m, u, l);
    { double hs[5] = {0.6, 0.45, 0.45, 0.45, 0.35}, rs[5] = {9, 9, 11, 13, 11}; grids("4-D trapezoid (models.h)", model_f, m, 4, u, l, hs, rs, 5); }
    { double hs[1] = {0.45}, rs[1] = {13}; grids("4-D trapezoid (direct)", garch_direct, NULL, 4, u, l, hs, rs, 1); }

    }
    if (WANT("eight_schools_noncentered")) {
    printf("eight_schools_noncentered\n");
    m = bm_model_find("eight_schools_noncentered");
    printf("  %-26s h = 0.005:       log Z = %.6f\n", "exact given tau, 1-D", line_log_z(es_line, -40, 12, 0.005));
    printf("  %-26s h = 0.0025:      log Z = %.6f\n", "exact given tau, 1-D", line_log_z(es_line, -50, 14, 0.0025));
    bm_x_to_u(m, m->ref_mean, u); bm_find_mode(m, u, l);
    is_log_z(m, u, l, 2000000, &lz, &se);
    printf("  %-26s 2e6 draws:       log Z = %.6f +- %.6f\n", "importance sampling", lz, se);

    }
    if (WANT("arK")) {
    printf("arK\n");
    m = bm_model_find("arK");
    ark_setup();
    printf("  %-26s h = 0.005:       log Z = %.6f\n", "exact given sigma, 1-D", line_log_z(ark_line, -5, 1, 0.005));
    printf("  %-26s h = 0.0025:      log Z = %.6f\n", "exact given sigma, 1-D", line_log_z(ark_line, -6, 2, 0.0025));
    bm_x_to_u(m, m->ref_mean, u); bm_find_mode(m, u, l);
    is_log_z(m, u, l, 2000000, &lz, &se);
    printf("  %-26s 2e6 draws:       log Z = %.6f +- %.6f\n", "importance sampling", lz, se);

    }
    if (WANT("low_dim_gauss_mix")) {
    printf("low_dim_gauss_mix\n");
    m = bm_model_find("low_dim_gauss_mix");
    bm_x_to_u(m, m->ref_mean, u); bm_find_mode(m, u, l);
    { double hs[3] = {1.0, 0.8, 0.7}, rs[3] = {6, 6.4, 7}; grids("5-D trapezoid", model_f, m, 5, u, l, hs, rs, 3); }
    is_log_z(m, u, l, 200000, &lz, &se);
    printf("  %-26s 2e5 draws:       log Z = %.6f +- %.6f\n", "importance sampling", lz, se);
    }
    (void)j;
    return 0;
}
