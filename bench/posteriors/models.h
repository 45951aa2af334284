/* models.h - benchmark posteriors for nflow's inference (bench/posteriors/README.md).

   It includes ../../nflow.h without NFLOW_IMPLEMENTATION (so one unit of the program
   must define it, as for any nflow user); works with nf_real float or double
   (NFLOW_DOUBLE). Every density is computed in double and has nflow's
   nf_log_density_fn signature:

       bm_model_at(i)->log_density(x, n, dim, logp, grad, user)

   x holds n rows of dim values in the model's natural constrained coordinates (the
   domains table says which are bounded: nflow maps them itself). logp[i] gets the log
   density including every normalising constant of priors and likelihood (so that the
   integral is the model evidence, ref_log_z); grad (if not NULL) gets d logp / d x,
   analytic. Outside the support: logp = -inf and a zero gradient. Returns 0, or -1
   when dim is not the model's.

   Reference moments (ref_mean, ref_sd) are in the same coordinates. Where the model
   uses other coordinates than its source (eight schools, garch, the Gaussian mixture),
   derive() maps a point to the source's quantities and derived_mean/derived_sd are
   the source's reference moments of those. Models with two well-separated modes give
   their weights and component(), which says which mode a point belongs to.

   Data and reference numbers live in models_data.h (written by make_data.py); the
   MCMC references of gp_poisson25 and hier_logit26 were printed by mcmc_ref.c and the
   quadrature log Z values by quadrature.c. No model gives a starting point. */
#ifndef BM_MODELS_H
#define BM_MODELS_H
#include <math.h>
#include <stddef.h>
#include <string.h>
#include "../../nflow.h"

#define BM_MAX_DIM 32

typedef struct bm_model {
    const char *name;
    const char *what;                       /* one line: what the posterior is */
    int dim;
    const char *const *names;               /* dim parameter names */
    const nf_domain *domains;               /* dim domains */
    nf_log_density_fn log_density;
    void *user;                             /* passed as the density's user pointer */
    const double *ref_mean, *ref_sd;        /* dim each */
    double ref_log_z;                       /* NAN when no independent value exists */
    const char *ref_source;                 /* how the references were obtained */
    int n_comp;                             /* > 0 for separated-mode mixtures */
    const double *comp_weight;              /* n_comp weights */
    int (*component)(const double *x);      /* which mode x (dim values) belongs to */
    int n_derived;                          /* > 0: the source's quantities */
    const char *const *derived_names;
    void (*derive)(const double *x, double *out);
    const double *derived_mean, *derived_sd;
    const char *draws;                      /* thinned reference draws (relative to
                                               bench/posteriors/, model coordinates), or NULL */
} bm_model;

#include "models_data.h"

/* ---- shared pieces ------------------------------------------------------------------ */
#define BM__LOG2PI 1.83787706640934548356
#define BM__LOGPI 1.14472988584940017414
#define BM__LOG2 0.69314718055994530942

static double bm__lnorm(double x, double m, double s) {       /* log N(x | m, s^2) */
    double z = (x - m) / s;
    return -0.5 * BM__LOG2PI - log(s) - 0.5 * z * z;
}
static double bm__lhalfcauchy(double x, double s) {           /* log 2 Cauchy(x | 0, s), x > 0 */
    return BM__LOG2 - BM__LOGPI - log(s) - log1p((x / s) * (x / s));
}
static double bm__dhalfcauchy(double x, double s) { return -2 * x / (s * s + x * x); }
static double bm__softplus(double t) { return t > 0 ? t + log1p(exp(-t)) : log1p(exp(t)); }

static int bm__in_domain(const nf_domain *d, double v) {
    if (!(v == v)) return 0;
    switch (d->kind) {
    case NF_DOMAIN_LOWER: return v > d->lo;
    case NF_DOMAIN_INTERVAL: return v > d->lo && v < d->hi;
    default: return 1;
    }
}

/* One row: returns log p(x) and, when g is not NULL, its gradient (both in double). */
typedef double (*bm__row_fn)(const double *x, double *g);

/* The nf_log_density_fn body every model shares: row by row in double, -inf outside. */
static int bm__batch(bm__row_fn row, int D, const nf_domain *dom, const nf_real *x, size_t n,
                     int dim, nf_real *logp, nf_real *grad) {
    double xd[BM_MAX_DIM], gd[BM_MAX_DIM], lp;
    size_t i;
    int j, inside;
    if (dim != D) return -1;
    for (i = 0; i < n; ++i) {
        inside = 1;
        for (j = 0; j < D; ++j) {
            xd[j] = (double)x[i * (size_t)D + (size_t)j];
            inside &= bm__in_domain(&dom[j], xd[j]);
        }
        for (j = 0; j < D; ++j) gd[j] = 0;
        lp = inside ? row(xd, grad ? gd : NULL) : -INFINITY;
        logp[i] = (nf_real)lp;
        if (grad) for (j = 0; j < D; ++j) grad[i * (size_t)D + (size_t)j] = (nf_real)(inside ? gd[j] : 0);
    }
    return 0;
}
#define BM__BATCH(fn, D, dom)                                                              \
    static int fn##_density(const nf_real *x, size_t n, int dim, nf_real *logp, nf_real *grad, \
                            void *user) {                                                  \
        (void)user;                                                                        \
        return bm__batch(fn, D, dom, x, n, dim, logp, grad);                               \
    }

#define BM__R {NF_DOMAIN_REAL, 0, 0, 0, 0}
#define BM__POS {NF_DOMAIN_LOWER, 0, 0, 0, 0}
#define BM__UNIT {NF_DOMAIN_INTERVAL, 0, 1, 0, 0}

/* ---- eight_schools_noncentered (posteriordb) ------------------------------------------
   x = theta_trans[1..8], mu, tau > 0;  theta_j = mu + tau theta_trans_j
   log p = sum_j [log N(theta_trans_j | 0, 1) + log N(y_j | theta_j, sigma_j)]
         + log N(mu | 0, 5) + log HalfCauchy(tau | 5)
   (Stan's cauchy(0, 5) on tau > 0 drops the half-Cauchy's factor 2; it is kept here.) */
static double bm__es(const double *x, double *g) {
    double mu = x[8], tau = x[9], lp = bm__lnorm(mu, 0, 5) + bm__lhalfcauchy(tau, 5), r;
    int j;
    if (g) { g[8] = -mu / 25; g[9] = bm__dhalfcauchy(tau, 5); }
    for (j = 0; j < 8; ++j) {
        lp += bm__lnorm(x[j], 0, 1) + bm__lnorm(bm__es_y[j], mu + tau * x[j], bm__es_sigma[j]);
        r = (bm__es_y[j] - mu - tau * x[j]) / (bm__es_sigma[j] * bm__es_sigma[j]);
        if (g) { g[j] = -x[j] + r * tau; g[8] += r; g[9] += r * x[j]; }
    }
    return lp;
}
static const nf_domain bm__es_dom[10] = {BM__R, BM__R, BM__R, BM__R, BM__R, BM__R, BM__R, BM__R, BM__R, BM__POS};
BM__BATCH(bm__es, 10, bm__es_dom)
static const char *const bm__es_names[10] = {"theta_trans[1]", "theta_trans[2]", "theta_trans[3]",
    "theta_trans[4]", "theta_trans[5]", "theta_trans[6]", "theta_trans[7]", "theta_trans[8]", "mu", "tau"};
static const char *const bm__es_dnames[10] = {"theta[1]", "theta[2]", "theta[3]", "theta[4]",
    "theta[5]", "theta[6]", "theta[7]", "theta[8]", "mu", "tau"};
static void bm__es_derive(const double *x, double *out) {
    int j;
    for (j = 0; j < 8; ++j) out[j] = x[8] + x[9] * x[j];
    out[8] = x[8]; out[9] = x[9];
}

/* ---- arK (posteriordb): AR(5) time series, T = 200 ------------------------------------
   x = alpha, beta[1..5], sigma > 0
   log p = log N(alpha | 0, 10) + sum_k log N(beta_k | 0, 10) + log HalfCauchy(sigma | 2.5)
         + sum_{t=6}^{200} log N(y_t | alpha + sum_k beta_k y_{t-k}, sigma) */
static double bm__ark(const double *x, double *g) {
    double s = x[6], lp = bm__lnorm(x[0], 0, 10) + bm__lhalfcauchy(s, 2.5), m, e, ss = 0;
    int t, k;
    for (k = 1; k <= 5; ++k) lp += bm__lnorm(x[k], 0, 10);
    if (g) for (k = 0; k < 6; ++k) g[k] = -x[k] / 100;
    for (t = 5; t < 200; ++t) {
        m = x[0];
        for (k = 1; k <= 5; ++k) m += x[k] * bm__ark_y[t - k];
        e = bm__ark_y[t] - m;
        ss += e * e;
        if (g) { g[0] += e / (s * s); for (k = 1; k <= 5; ++k) g[k] += e * bm__ark_y[t - k] / (s * s); }
    }
    lp += -195 * (0.5 * BM__LOG2PI + log(s)) - 0.5 * ss / (s * s);
    if (g) g[6] = bm__dhalfcauchy(s, 2.5) - 195 / s + ss / (s * s * s);
    return lp;
}
static const nf_domain bm__ark_dom[7] = {BM__R, BM__R, BM__R, BM__R, BM__R, BM__R, BM__POS};
BM__BATCH(bm__ark, 7, bm__ark_dom)
static const char *const bm__ark_names[7] = {"alpha", "beta[1]", "beta[2]", "beta[3]", "beta[4]", "beta[5]", "sigma"};

/* ---- garch11 (posteriordb): GARCH(1,1) volatility, T = 200 ----------------------------
   Stan's parameters are mu, alpha0 > 0, alpha1 in (0,1), beta1 in (0, 1 - alpha1), flat
   (improper) priors. nflow's domains cannot bound beta1 by alpha1, so the model uses
   r = beta1 / (1 - alpha1) in (0, 1); the Jacobian d beta1 / d r = 1 - alpha1 enters:
   x = mu, alpha0, alpha1, r
   log p = log(1 - alpha1) + sum_t log N(y_t | mu, sigma_t),  sigma_1 = 0.5,
   sigma_t^2 = alpha0 + alpha1 (y_{t-1} - mu)^2 + beta1 sigma_{t-1}^2.
   With flat priors p integrates to Z = integral of the likelihood over the constrained
   (mu, alpha0, alpha1, beta1). Derivatives of sigma_t^2 are carried forward in t. */
static double bm__garch(const double *x, double *g) {
    double mu = x[0], a0 = x[1], a1 = x[2], b = x[3] * (1 - a1);
    double s = BM__GARCH_SIGMA1 * BM__GARCH_SIGMA1, ds[4] = {0, 0, 0, 0}, gs[4] = {0, 0, 0, 0};
    double lp = log(1 - a1), e, dl, prev;
    int t, k;
    for (t = 0; t < 200; ++t) {
        if (t > 0) {
            prev = bm__garch_y[t - 1] - mu;
            ds[0] = -2 * a1 * prev + b * ds[0];            /* d s_t / d mu, alpha0, alpha1, beta1 */
            ds[1] = 1 + b * ds[1];
            ds[2] = prev * prev + b * ds[2];
            ds[3] = s + b * ds[3];
            s = a0 + a1 * prev * prev + b * s;
        }
        e = bm__garch_y[t] - mu;
        lp += -0.5 * (BM__LOG2PI + log(s) + e * e / s);
        dl = -0.5 / s + 0.5 * e * e / (s * s);             /* d term / d s_t */
        for (k = 0; k < 4; ++k) gs[k] += dl * ds[k];
        gs[0] += e / s;
    }
    if (g) {
        g[0] = gs[0]; g[1] = gs[1];
        g[2] = gs[2] - x[3] * gs[3] - 1 / (1 - a1);
        g[3] = gs[3] * (1 - a1);
    }
    return lp;
}
static const nf_domain bm__garch_dom[4] = {BM__R, BM__POS, BM__UNIT, BM__UNIT};
BM__BATCH(bm__garch, 4, bm__garch_dom)
static const char *const bm__garch_names[4] = {"mu", "alpha0", "alpha1", "r"};
static const char *const bm__garch_dnames[4] = {"mu", "alpha0", "alpha1", "beta1"};
static void bm__garch_derive(const double *x, double *out) {
    out[0] = x[0]; out[1] = x[1]; out[2] = x[2]; out[3] = x[3] * (1 - x[2]);
}

/* ---- low_dim_gauss_mix (posteriordb): 2-component mixture fitted to N = 1000 points -----
   Stan's ordered mu[1] < mu[2] becomes mu1 and d = mu2 - mu1 > 0 (a linear map, Jacobian 1):
   x = mu1, d, sigma1 > 0, sigma2 > 0, theta in (0,1)
   log p = log 2 + log N(mu1 | 0, 2) + log N(mu2 | 0, 2)      (the N(0,2)^2 prior restricted
         + sum_k log 2 N(sigma_k | 0, 2)                        to mu1 < mu2: factor 2;
         + log Beta(theta | 5, 5)                               half-normal sigmas: factor 2;
         + sum_n log(theta N(y_n | mu1, sigma1) + (1 - theta) N(y_n | mu2, sigma2))
   Stan drops both factors 2; they are kept so that the prior integrates to 1. */
static double bm__gm(const double *x, double *g) {
    double m1 = x[0], m2 = x[0] + x[1], s1 = x[2], s2 = x[3], th = x[4];
    double lp = 3 * BM__LOG2 + bm__lnorm(m1, 0, 2) + bm__lnorm(m2, 0, 2) + bm__lnorm(s1, 0, 2)
              + bm__lnorm(s2, 0, 2) + 4 * log(th) + 4 * log1p(-th) + log(630.0);   /* 1/B(5,5) = 630 */
    double gm1 = -m1 / 4, gm2 = -m2 / 4, gs1 = -s1 / 4, gs2 = -s2 / 4, gth = 4 / th - 4 / (1 - th);
    double la, lb, mx, l, w1, w2, y;
    int i;
    for (i = 0; i < 1000; ++i) {
        y = bm__gm_y[i];
        la = log(th) + bm__lnorm(y, m1, s1);
        lb = log1p(-th) + bm__lnorm(y, m2, s2);
        mx = la > lb ? la : lb;
        l = mx + log(exp(la - mx) + exp(lb - mx));
        lp += l;
        w1 = exp(la - l); w2 = exp(lb - l);
        gm1 += w1 * (y - m1) / (s1 * s1);
        gm2 += w2 * (y - m2) / (s2 * s2);
        gs1 += w1 * (-1 / s1 + (y - m1) * (y - m1) / (s1 * s1 * s1));
        gs2 += w2 * (-1 / s2 + (y - m2) * (y - m2) / (s2 * s2 * s2));
        gth += w1 / th - w2 / (1 - th);
    }
    if (g) { g[0] = gm1 + gm2; g[1] = gm2; g[2] = gs1; g[3] = gs2; g[4] = gth; }
    return lp;
}
static const nf_domain bm__gm_dom[5] = {BM__R, BM__POS, BM__POS, BM__POS, BM__UNIT};
BM__BATCH(bm__gm, 5, bm__gm_dom)
static const char *const bm__gm_names[5] = {"mu[1]", "d", "sigma[1]", "sigma[2]", "theta"};
static const char *const bm__gm_dnames[5] = {"mu[1]", "mu[2]", "sigma[1]", "sigma[2]", "theta"};
static void bm__gm_derive(const double *x, double *out) {
    out[0] = x[0]; out[1] = x[0] + x[1]; out[2] = x[2]; out[3] = x[3]; out[4] = x[4];
}

/* ---- kidiq_momiq (posteriordb): kid_score ~ beta1 + beta2 mom_iq, N = 434 --------------
   x = beta1, beta2, sigma > 0; flat (improper) priors on beta as in Stan:
   log p = log HalfCauchy(sigma | 2.5) + sum_i log N(kid_score_i | beta1 + beta2 mom_iq_i, sigma) */
static double bm__kid(const double *x, double *g) {
    double s = x[2], e, ss = 0, g0 = 0, g1 = 0;
    int i;
    for (i = 0; i < 434; ++i) {
        e = bm__kid_score[i] - x[0] - x[1] * bm__kid_momiq[i];
        ss += e * e; g0 += e; g1 += e * bm__kid_momiq[i];
    }
    if (g) { g[0] = g0 / (s * s); g[1] = g1 / (s * s); g[2] = bm__dhalfcauchy(s, 2.5) - 434 / s + ss / (s * s * s); }
    return bm__lhalfcauchy(s, 2.5) - 434 * (0.5 * BM__LOG2PI + log(s)) - 0.5 * ss / (s * s);
}
static const nf_domain bm__kid_dom[3] = {BM__R, BM__R, BM__POS};
BM__BATCH(bm__kid, 3, bm__kid_dom)
static const char *const bm__kid_names[3] = {"beta[1]", "beta[2]", "sigma"};

/* ---- gmm2d, gmm10d: two well-separated Gaussians with weights 0.7 / 0.3 ----------------
   log p = log Z + log sum_k w_k N(x | m_k, L_k L_k'),  Z = e^1.5 (2-D), e^-2 (10-D);
   component 1: 2-D correlation 0.5; 10-D AR(1) correlation 0.5^|i-j|, unit variances;
   component 2: 2-D [[0.25, -0.3], [-0.3, 2.25]]; 10-D diagonal, sds 0.5 .. 1.85.
   Means and Cholesky factors in models_data.h; >= 9 sds apart in either metric. */
static double bm__gauss_comp(const double *x, int D, const double *m, const double *L, double *g) {
    double z[BM_MAX_DIM], q = 0, ld = 0, t;
    int i, j;
    for (i = 0; i < D; ++i) {                           /* z = L^-1 (x - m) */
        t = x[i] - m[i];
        for (j = 0; j < i; ++j) t -= L[i * D + j] * z[j];
        z[i] = t / L[i * D + i];
        q += z[i] * z[i]; ld += log(L[i * D + i]);
    }
    if (g) for (i = D - 1; i >= 0; --i) {               /* g = -L^-T z = -Sigma^-1 (x - m) */
        t = z[i];
        for (j = i + 1; j < D; ++j) t -= L[j * D + i] * g[j];
        g[i] = t / L[i * D + i];
    }
    if (g) for (i = 0; i < D; ++i) g[i] = -g[i];
    return -0.5 * D * BM__LOG2PI - ld - 0.5 * q;
}
static double bm__mix2(const double *x, double *g, int D, const double *w, const double *m,
                       const double *L, double logz) {
    double g1[BM_MAX_DIM], g2[BM_MAX_DIM], a, b, mx, l;
    int i;
    a = log(w[0]) + bm__gauss_comp(x, D, m, L, g ? g1 : NULL);
    b = log(w[1]) + bm__gauss_comp(x, D, m + D, L + D * D, g ? g2 : NULL);
    mx = a > b ? a : b;
    l = mx + log(exp(a - mx) + exp(b - mx));
    if (g) for (i = 0; i < D; ++i) g[i] = exp(a - l) * g1[i] + exp(b - l) * g2[i];
    return logz + l;
}
static int bm__mix2_which(const double *x, int D, const double *w, const double *m, const double *L) {
    return log(w[0]) + bm__gauss_comp(x, D, m, L, NULL) >= log(w[1]) + bm__gauss_comp(x, D, m + D, L + D * D, NULL) ? 0 : 1;
}
static double bm__gmm2d(const double *x, double *g) {
    return bm__mix2(x, g, 2, bm__gmm2d_w, bm__gmm2d_m, bm__gmm2d_L, BM__GMM2D_LOGZ);
}
static int bm__gmm2d_which(const double *x) { return bm__mix2_which(x, 2, bm__gmm2d_w, bm__gmm2d_m, bm__gmm2d_L); }
static double bm__gmm10d(const double *x, double *g) {
    return bm__mix2(x, g, 10, bm__gmm10d_w, bm__gmm10d_m, bm__gmm10d_L, BM__GMM10D_LOGZ);
}
static int bm__gmm10d_which(const double *x) { return bm__mix2_which(x, 10, bm__gmm10d_w, bm__gmm10d_m, bm__gmm10d_L); }
static const nf_domain bm__real_dom[BM_MAX_DIM] = {BM__R};
BM__BATCH(bm__gmm2d, 2, bm__real_dom)
BM__BATCH(bm__gmm10d, 10, bm__real_dom)
static const char *const bm__xy_names[2] = {"x[1]", "x[2]"};
static const char *const bm__x10_names[10] = {"x[1]", "x[2]", "x[3]", "x[4]", "x[5]", "x[6]", "x[7]", "x[8]", "x[9]", "x[10]"};

/* ---- funnel10: Neal's funnel ---------------------------------------------------------
   x = v, x[1..9];  log p = log N(v | 0, 3) + sum_i log N(x_i | 0, e^(v/2)),  Z = 1.
   Exact: means 0, sd(v) = 3, sd(x_i) = sqrt(E e^v) = e^(9/4). */
static double bm__funnel(const double *x, double *g) {
    double v = x[0], ev = exp(-v), q = 0;
    int i;
    for (i = 1; i < 10; ++i) { q += x[i] * x[i]; if (g) g[i] = -x[i] * ev; }
    if (g) g[0] = -v / 9 - 4.5 + 0.5 * q * ev;
    return bm__lnorm(v, 0, 3) - 9 * (0.5 * BM__LOG2PI + 0.5 * v) - 0.5 * q * ev;
}
BM__BATCH(bm__funnel, 10, bm__real_dom)
static const char *const bm__funnel_names[10] = {"v", "x[1]", "x[2]", "x[3]", "x[4]", "x[5]", "x[6]", "x[7]", "x[8]", "x[9]"};
static const double bm__funnel_mean[10] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
#define BM__E94 9.4877358363585262         /* e^(9/4) */
static const double bm__funnel_sd[10] = {3, BM__E94, BM__E94, BM__E94, BM__E94, BM__E94, BM__E94, BM__E94, BM__E94, BM__E94};

/* ---- blr26: conjugate Bayesian linear regression, 25 collinear unscaled predictors -----
   x = b[0] (intercept), b[1..25];  known noise sd 1;
   log p = log N(b0 | 0, 100) + sum_j log N(b_j | 0, 10) + sum_i log N(y_i | b0 + X_i b, 1)
   Exact Gaussian posterior and evidence (make_data.py). */
static double bm__blr(const double *x, double *g) {
    double lp = bm__lnorm(x[0], 0, BM__BLR_PRIOR_SD0), m, e, s2 = BM__BLR_SIGMA * BM__BLR_SIGMA;
    int i, j;
    const double *xi;
    if (g) g[0] = -x[0] / (BM__BLR_PRIOR_SD0 * BM__BLR_PRIOR_SD0);
    for (j = 1; j <= BM__BLR_P; ++j) {
        lp += bm__lnorm(x[j], 0, BM__BLR_PRIOR_SD);
        if (g) g[j] = -x[j] / (BM__BLR_PRIOR_SD * BM__BLR_PRIOR_SD);
    }
    for (i = 0; i < BM__BLR_N; ++i) {
        xi = bm__blr_x + i * BM__BLR_P;
        m = x[0];
        for (j = 0; j < BM__BLR_P; ++j) m += xi[j] * x[j + 1];
        e = bm__blr_y[i] - m;
        lp += bm__lnorm(e, 0, BM__BLR_SIGMA);
        if (g) { g[0] += e / s2; for (j = 0; j < BM__BLR_P; ++j) g[j + 1] += e * xi[j] / s2; }
    }
    return lp;
}
BM__BATCH(bm__blr, 26, bm__real_dom)
static const char *const bm__blr_names[26] = {"b[0]", "b[1]", "b[2]", "b[3]", "b[4]", "b[5]", "b[6]",
    "b[7]", "b[8]", "b[9]", "b[10]", "b[11]", "b[12]", "b[13]", "b[14]", "b[15]", "b[16]", "b[17]",
    "b[18]", "b[19]", "b[20]", "b[21]", "b[22]", "b[23]", "b[24]", "b[25]"};

/* ---- gp_poisson25: latent Gaussian process with Poisson counts ------------------------
   24 points s_i = 0.5 i; kernel k(s, s') = alpha^2 exp(-|s - s'| / 2) (Matern-1/2), so f is
   an AR(1) sequence with rho = e^-0.25 and its prior has a closed-form precision.
   x = alpha > 0, f[1..24];  h = f - 1
   log p = log LogNormal(alpha | 0, 0.5) + log N(f | 1, alpha^2 K) + sum_i log Poisson(y_i | e^f_i)
   log N(f | 1, alpha^2 K) = -12 log 2pi - 24 log alpha - 11.5 log(1 - rho^2) - Q / (2 alpha^2),
   Q = h_1^2 + sum_{i>1} (h_i - rho h_{i-1})^2 / (1 - rho^2).
   Reference: long HMC runs (mcmc_ref.c). */
static double bm__gp(const double *x, double *g) {
    const int n = BM__GP_N;
    const double rho = exp(-BM__GP_DX / BM__GP_ELL), c = 1 - rho * rho;
    double a = x[0], la = log(a), q, e, lp, dq[BM__GP_N];
    const double *f = x + 1;
    int i;
    q = (f[0] - BM__GP_MU0) * (f[0] - BM__GP_MU0);
    dq[0] = 2 * (f[0] - BM__GP_MU0);
    for (i = 1; i < n; ++i) {
        e = (f[i] - BM__GP_MU0) - rho * (f[i - 1] - BM__GP_MU0);
        q += e * e / c;
        dq[i] = 2 * e / c;
        dq[i - 1] -= 2 * rho * e / c;
    }
    lp = -la + bm__lnorm(la, 0, 0.5)
       - n * (0.5 * BM__LOG2PI + la) - 0.5 * (n - 1) * log(c) - 0.5 * q / (a * a);
    lp -= BM__GP_LOGFACT;                                   /* sum_i log y_i! */
    for (i = 0; i < n; ++i) lp += bm__gp_y[i] * f[i] - exp(f[i]);
    if (g) {
        g[0] = -1 / a - la / (0.25 * a) - n / a + q / (a * a * a);
        for (i = 0; i < n; ++i) g[i + 1] = -0.5 * dq[i] / (a * a) + bm__gp_y[i] - exp(f[i]);
    }
    return lp;
}
static const nf_domain bm__gp_dom[25] = {BM__POS};        /* alpha > 0, the rest real */
BM__BATCH(bm__gp, 25, bm__gp_dom)
static const char *const bm__gp_names[25] = {"alpha", "f[1]", "f[2]", "f[3]", "f[4]", "f[5]", "f[6]",
    "f[7]", "f[8]", "f[9]", "f[10]", "f[11]", "f[12]", "f[13]", "f[14]", "f[15]", "f[16]", "f[17]",
    "f[18]", "f[19]", "f[20]", "f[21]", "f[22]", "f[23]", "f[24]"};

/* ---- hier_logit26: hierarchical binomial-logit model, centered, 24 groups -------------
   x = theta[1..24], mu, tau > 0
   log p = log N(mu | 0, 2) + log HalfNormal(tau | 1) + sum_j log N(theta_j | mu, tau)
         + sum_j [log C(n_j, y_j) + y_j theta_j - n_j log(1 + e^theta_j)]   (log C in models_data.h)
   Reference: long HMC runs (mcmc_ref.c). */
static double bm__hl(const double *x, double *g) {
    const int J = BM__HL_J;
    double mu = x[J], tau = x[J + 1], d, p;
    double lp = bm__lnorm(mu, 0, 2) + BM__LOG2 + bm__lnorm(tau, 0, 1);
    int j;
    if (g) { g[J] = -mu / 4; g[J + 1] = -tau; }
    for (j = 0; j < J; ++j) {
        d = x[j] - mu;
        lp += bm__lnorm(x[j], mu, tau) + bm__hl_logc[j] + bm__hl_y[j] * x[j] - bm__hl_n[j] * bm__softplus(x[j]);
        if (g) {
            p = 1 / (1 + exp(-x[j]));
            g[j] = -d / (tau * tau) + bm__hl_y[j] - bm__hl_n[j] * p;
            g[J] += d / (tau * tau);
            g[J + 1] += -1 / tau + d * d / (tau * tau * tau);
        }
    }
    return lp;
}
static const nf_domain bm__hl_dom[26] = {BM__R, BM__R, BM__R, BM__R, BM__R, BM__R, BM__R, BM__R,
    BM__R, BM__R, BM__R, BM__R, BM__R, BM__R, BM__R, BM__R, BM__R, BM__R, BM__R, BM__R, BM__R, BM__R,
    BM__R, BM__R, BM__R, BM__POS};
BM__BATCH(bm__hl, 26, bm__hl_dom)
static const char *const bm__hl_names[26] = {"theta[1]", "theta[2]", "theta[3]", "theta[4]", "theta[5]",
    "theta[6]", "theta[7]", "theta[8]", "theta[9]", "theta[10]", "theta[11]", "theta[12]", "theta[13]",
    "theta[14]", "theta[15]", "theta[16]", "theta[17]", "theta[18]", "theta[19]", "theta[20]", "theta[21]",
    "theta[22]", "theta[23]", "theta[24]", "mu", "tau"};

/* ---- MCMC and quadrature references (printed by mcmc_ref.c and quadrature.c) ----------- */
#include "models_ref.h"

/* ---- the table ------------------------------------------------------------------------ */
#define BM__NOMIX 0, NULL, NULL
#define BM__NODER 0, NULL, NULL, NULL, NULL
static const bm_model bm__models[] = {
    {"eight_schools_noncentered", "posteriordb: hierarchical normal, noncentered, half-Cauchy tau",
     10, bm__es_names, bm__es_dom, bm__es_density, NULL, bm__es_mean, bm__es_sd, BM__ES_LOGZ,
     "NUTS draws (posteriordb, 10,000), theta_trans = (theta - mu) / tau; log Z: 1-D quadrature over tau",
     BM__NOMIX, 10, bm__es_dnames, bm__es_derive, bm__es_derived_mean, bm__es_derived_sd,
     "data/eight_schools_noncentered.csv"},
    {"arK", "posteriordb: AR(5) time series",
     7, bm__ark_names, bm__ark_dom, bm__ark_density, NULL, bm__ark_mean, bm__ark_sd, BM__ARK_LOGZ,
     "NUTS draws (posteriordb, 10,000); log Z: Gaussian in (alpha, beta) given sigma, 1-D quadrature over sigma",
     BM__NOMIX, BM__NODER, "data/arK.csv"},
    {"garch11", "posteriordb: GARCH(1,1), beta1 = r (1 - alpha1)",
     4, bm__garch_names, bm__garch_dom, bm__garch_density, NULL, bm__garch_mean, bm__garch_sd, BM__GARCH_LOGZ,
     "NUTS draws (posteriordb, 10,000), r = beta1 / (1 - alpha1); log Z: 4-D trapezoid quadrature",
     BM__NOMIX, 4, bm__garch_dnames, bm__garch_derive, bm__garch_derived_mean, bm__garch_derived_sd,
     "data/garch11.csv"},
    {"low_dim_gauss_mix", "posteriordb: 2-component normal mixture, mu2 = mu1 + d",
     5, bm__gm_names, bm__gm_dom, bm__gm_density, NULL, bm__gm_mean, bm__gm_sd, BM__GM_LOGZ,
     "NUTS draws (posteriordb, 10,000), d = mu[2] - mu[1]; log Z: 5-D Gauss-Hermite quadrature",
     BM__NOMIX, 5, bm__gm_dnames, bm__gm_derive, bm__gm_derived_mean, bm__gm_derived_sd,
     "data/low_dim_gauss_mix.csv"},
    {"kidiq_momiq", "posteriordb: linear regression on an unscaled predictor",
     3, bm__kid_names, bm__kid_dom, bm__kid_density, NULL, bm__kid_mean, bm__kid_sd, BM__KID_LOGZ,
     "NUTS draws (posteriordb, 10,000); log Z: 3-D trapezoid quadrature, checked against beta integrated exactly",
     BM__NOMIX, BM__NODER, "data/kidiq_momiq.csv"},
    {"gmm2d", "synthetic: 2 separated Gaussians, weights 0.7 / 0.3, different covariances",
     2, bm__xy_names, bm__real_dom, bm__gmm2d_density, NULL, bm__gmm2d_mean, bm__gmm2d_sd, BM__GMM2D_LOGZ,
     "exact", 2, bm__gmm2d_w, bm__gmm2d_which, BM__NODER, NULL},
    {"gmm10d", "synthetic: 2 separated Gaussians in 10-D, weights 0.7 / 0.3, AR(1) vs diagonal",
     10, bm__x10_names, bm__real_dom, bm__gmm10d_density, NULL, bm__gmm10d_mean, bm__gmm10d_sd, BM__GMM10D_LOGZ,
     "exact", 2, bm__gmm10d_w, bm__gmm10d_which, BM__NODER, NULL},
    {"funnel10", "synthetic: Neal's funnel, v ~ N(0, 3^2), x_i ~ N(0, e^v), 9 x's",
     10, bm__funnel_names, bm__real_dom, bm__funnel_density, NULL, bm__funnel_mean, bm__funnel_sd, 0.0,
     "exact", BM__NOMIX, BM__NODER, NULL},
    {"blr26", "synthetic: linear regression, intercept + 25 collinear unscaled predictors (corr 0.95-0.99)",
     26, bm__blr_names, bm__real_dom, bm__blr_density, NULL, bm__blr_mean, bm__blr_sd, BM__BLR_LOGZ,
     "exact (conjugate)", BM__NOMIX, BM__NODER, NULL},
    {"gp_poisson25", "synthetic: latent GP (exponential kernel) with Poisson counts, amplitude alpha",
     25, bm__gp_names, bm__gp_dom, bm__gp_density, NULL, bm__gp_mean, bm__gp_sd, NAN,
     "HMC (mcmc_ref.c): " BM__GP_REF_NOTE, BM__NOMIX, BM__NODER, NULL},
    {"hier_logit26", "synthetic: centered hierarchical binomial-logit model, 24 groups",
     26, bm__hl_names, bm__hl_dom, bm__hl_density, NULL, bm__hl_mean, bm__hl_sd, NAN,
     "HMC (mcmc_ref.c): " BM__HL_REF_NOTE, BM__NOMIX, BM__NODER, NULL},
};

/* how many models, and the i-th (NULL when out of range) */
static inline int bm_model_count(void) { return (int)(sizeof bm__models / sizeof bm__models[0]); }
static inline const bm_model *bm_model_at(int i) { return i >= 0 && i < bm_model_count() ? &bm__models[i] : NULL; }
static inline const bm_model *bm_model_find(const char *name) {
    int i;
    for (i = 0; i < bm_model_count(); ++i) if (strcmp(name, bm__models[i].name) == 0) return &bm__models[i];
    return NULL;
}
#endif
