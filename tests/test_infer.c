/* nf_infer and its parts (issue 19): Pareto smoothing, the score, importance sampling in any
   dimension, and the verdicts: NF_OK only when a check passed, with moments and evidence
   against exact answers; NF_ERR_CHECK_FAILED for a fit too short or a flow too small; clear
   errors for a failing or NaN target. Float and double. --quick: the fast subset. */
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#define PI 3.14159265358979323846
#define IS_DOUBLE (sizeof(nf_real) == 8)
static int g_pass, g_fail;
static void check(int ok, const char *name, const char *fmt, double a, double b) {
    if (ok) { g_pass++; printf("ok %s\n", name); }
    else { g_fail++; printf("FAIL %s: ", name); printf(fmt ? fmt : "", a, b); printf("\n"); }
}

/* ---- targets with exact answers ---- */
#define MAXD 26
/* a correlated Gaussian: log p~ = -(x - mu)^T P (x - mu) / 2; log Z = D/2 log 2 pi - log det P / 2 */
typedef struct { int D; double mu[MAXD], P[MAXD * MAXD], C[MAXD * MAXD], logz; } gauss_t;
static int gauss(const nf_real *x, size_t n, int D, nf_real *lp, nf_real *g, void *u) {
    gauss_t *G = (gauss_t *)u; size_t i; int a, b;
    if (D != G->D) return 1;
    for (i = 0; i < n; ++i) {
        double s = 0, d[MAXD];
        for (a = 0; a < D; ++a) d[a] = (double)x[i * D + a] - G->mu[a];
        for (a = 0; a < D; ++a) {
            double t = 0;
            for (b = 0; b < D; ++b) t += G->P[a * D + b] * d[b];
            s += d[a] * t;
            if (g) g[i * D + a] = (nf_real)-t;
        }
        lp[i] = (nf_real)(-0.5 * s);
    }
    return 0;
}
/* precision of a collinear regression-like posterior: X^T X with correlated, unevenly
   scaled columns, and its inverse (the covariance) by Gauss-Jordan */
static void make_gauss(gauss_t *G, int D, unsigned seed) {
    nf_rng r; int a, b, k; double X[60 * MAXD], A[MAXD * 2 * MAXD];
    nf_rng_seed(&r, seed);
    G->D = D;
    for (k = 0; k < 60; ++k) {
        double common = (double)nf_rng_normal(&r);
        for (a = 0; a < D; ++a) X[k * D + a] = (0.9 * common + 0.3 * (double)nf_rng_normal(&r)) * (a % 3 == 0 ? 10.0 : a % 3 == 1 ? 1.0 : 0.1);
    }
    for (a = 0; a < D; ++a) for (b = 0; b < D; ++b) {
        double s = 0;
        for (k = 0; k < 60; ++k) s += X[k * D + a] * X[k * D + b];
        G->P[a * D + b] = s;
    }
    for (a = 0; a < D; ++a) G->mu[a] = 60.0 * (a == 0) + 0.5 * a;
    for (a = 0; a < D; ++a) for (b = 0; b < 2 * D; ++b) A[a * 2 * D + b] = b < D ? G->P[a * D + b] : (double)(b - D == a);
    G->logz = 0.5 * D * log(2 * PI);
    for (k = 0; k < D; ++k) {   /* Gauss-Jordan (P is positive definite: no pivoting needed) */
        double piv = A[k * 2 * D + k];
        G->logz -= 0.5 * log(piv);
        for (b = 0; b < 2 * D; ++b) A[k * 2 * D + b] /= piv;
        for (a = 0; a < D; ++a) if (a != k) {
            double m = A[a * 2 * D + k];
            for (b = 0; b < 2 * D; ++b) A[a * 2 * D + b] -= m * A[k * 2 * D + b];
        }
    }
    for (a = 0; a < D; ++a) for (b = 0; b < D; ++b) G->C[a * D + b] = A[a * 2 * D + D + b];
}
/* banana: a ~ N(0, 1), b | a ~ N(a^2, 0.5^2); log Z = log(2 pi 0.5); E b = 1, sd b = 1.5 */
static int banana(const nf_real *x, size_t n, int D, nf_real *lp, nf_real *g, void *u) {
    size_t i; (void)u;
    if (D != 2) return 1;
    for (i = 0; i < n; ++i) {
        double a = x[2 * i], b = x[2 * i + 1], c = b - a * a;
        lp[i] = (nf_real)(-0.5 * a * a - 2 * c * c);
        if (g) { g[2 * i] = (nf_real)(-a + 8 * c * a); g[2 * i + 1] = (nf_real)(-4 * c); }
    }
    return 0;
}
/* two separated modes, weights 0.7 and 0.3: N((-3, 0), I) and N((3, 1), 0.5^2 I); log Z = 0 */
static int bimodal(const nf_real *x, size_t n, int D, nf_real *lp, nf_real *g, void *u) {
    size_t i; (void)u;
    if (D != 2) return 1;
    for (i = 0; i < n; ++i) {
        double a0 = x[2 * i] + 3, a1 = x[2 * i + 1], b0 = (x[2 * i] - 3) / 0.5, b1 = (x[2 * i + 1] - 1) / 0.5;
        double l1 = log(0.7) - 0.5 * (a0 * a0 + a1 * a1) - log(2 * PI), l2 = log(0.3) - 0.5 * (b0 * b0 + b1 * b1) - log(2 * PI * 0.25);
        double m = l1 > l2 ? l1 : l2, w1 = exp(l1 - m), w2 = exp(l2 - m);
        lp[i] = (nf_real)(m + log(w1 + w2));
        if (g) { g[2 * i] = (nf_real)((w1 * -a0 + w2 * -b0 / 0.5) / (w1 + w2)); g[2 * i + 1] = (nf_real)((w1 * -a1 + w2 * -b1 / 0.5) / (w1 + w2)); }
    }
    return 0;
}
/* Gamma(3, 1) x Beta(2, 5), normalised (log Z = 0), on (0, inf) x (0, 1): -inf outside */
static int gammabeta(const nf_real *x, size_t n, int D, nf_real *lp, nf_real *g, void *u) {
    size_t i; (void)u;
    if (D != 2) return 1;
    for (i = 0; i < n; ++i) {
        double a = x[2 * i], b = x[2 * i + 1];
        if (!(a > 0) || !(b > 0 && b < 1)) { lp[i] = (nf_real)-HUGE_VAL; if (g) g[2 * i] = g[2 * i + 1] = 0; continue; }
        lp[i] = (nf_real)(2 * log(a) - a - log(2.0) + log(b) + 4 * log(1 - b) + log(30.0));
        if (g) { g[2 * i] = (nf_real)(2 / a - 1); g[2 * i + 1] = (nf_real)(1 / b - 4 / (1 - b)); }
    }
    return 0;
}
static int failing(const nf_real *x, size_t n, int D, nf_real *lp, nf_real *g, void *u) {
    int *calls = (int *)u; (void)x; (void)D; (void)g;
    if (++*calls > 3) return 7;
    { size_t i; for (i = 0; i < n; ++i) lp[i] = 0; if (g) memset(g, 0, n * (size_t)D * sizeof(nf_real)); }
    return 0;
}
static int nan_after(const nf_real *x, size_t n, int D, nf_real *lp, nf_real *g, void *u) {
    size_t i; (void)u;
    gauss(x, n, D, lp, g, u);
    for (i = 0; i < n; ++i) if (x[i * D] > (nf_real)1.5) lp[i] = (nf_real)NAN;
    return 0;
}

/* LU first, then affine couplings with half masks and permutations */
static nf_flow *posterior_flow(int D, int L, int H, const nf_domain *dom) {
    nf_flow_desc d; nf_flow *f;
    if (nf_flow_desc_posterior(&d, D, L, H) != NF_OK) return NULL;
    d.domains = dom;
    return nf_flow_create(&f, &d) == NF_OK ? f : NULL;
}

static void moments(const nf_real *s, size_t n, int D, double *m, double *sd) {
    size_t i; int j;
    for (j = 0; j < D; ++j) { m[j] = 0; sd[j] = 0; }
    for (i = 0; i < n; ++i) for (j = 0; j < D; ++j) m[j] += (double)s[i * D + j] / (double)n;
    for (i = 0; i < n; ++i) for (j = 0; j < D; ++j) sd[j] += ((double)s[i * D + j] - m[j]) * ((double)s[i * D + j] - m[j]) / (double)n;
    for (j = 0; j < D; ++j) sd[j] = sqrt(sd[j]);
}

static void test_psis(void) {
    static double lw[4000], keep[4000]; nf_rng r; double kh; int i;
    const double ks[3] = {0.3, 0.7, 1.2}; double got[3];
    nf_rng_seed(&r, 3);
    for (i = 0; i < 3; ++i) {   /* weights U^-k: a Pareto tail of shape k */
        int t;
        for (t = 0; t < 4000; ++t) { double v = (double)nf_rng_uniform(&r); lw[t] = -ks[i] * log(v > 0 ? v : 1e-12); }
        nf_psis(lw, 4000, &got[i]);
    }
    printf("# psis: k 0.3 -> %.3f, 0.7 -> %.3f, 1.2 -> %.3f\n", got[0], got[1], got[2]);
    check(got[0] < 0.5 && got[1] > 0.5 && got[1] < 0.9 && got[2] > 0.9, "psis_khat_tracks_the_tail_shape", "k-hat for k = 0.7: %g, for 1.2: %g", got[1], got[2]);
    for (i = 0; i < 4000; ++i) keep[i] = lw[i] = i == 5 ? -HUGE_VAL : 2 * (double)nf_rng_normal(&r);
    nf_psis(lw, 4000, &kh);
    {   double mx = -HUGE_VAL; int same = 0, capped = 1;
        for (i = 0; i < 4000; ++i) if (keep[i] > mx) mx = keep[i];
        for (i = 0; i < 4000; ++i) { same += lw[i] == keep[i]; capped &= lw[i] <= mx; }
        check(lw[5] == -HUGE_VAL && capped && same >= 4000 - 190 && same < 4000, "psis_smooths_only_the_tail_keeps_zero_weights_caps_at_max", "unchanged %g of 4000 (tail 190), capped %g", (double)same, (double)capped);
    }
    check(nf_psis(NULL, 10, &kh) == NF_ERR_NULL && nf_psis(lw, 1, &kh) == NF_ERR_ARG, "psis_bad_arguments", NULL, 0, 0);
}

/* the score against central differences of log q, with domains (interval and half-line) */
static void test_score(void) {
    static nf_domain dom[3]; nf_flow *f; nf_trainer *t; nf_real y[4 * 3] = {0.5, 2.0, -1, 1.5, 0.1, 2, -0.5, 4.0, 0.3, 1.9, 0.9, -2};
    nf_real g[4 * 3], lp[4], outrow[3] = {-2, 1, 0}; size_t i; int j; double worst = 0, h = IS_DOUBLE ? 1e-6 : 1e-2;
    dom[0].kind = NF_DOMAIN_INTERVAL; dom[0].lo = -1; dom[0].hi = 2; dom[1].kind = NF_DOMAIN_LOWER; dom[1].lo = 0;
    f = posterior_flow(3, 4, 16, dom);
    {   nf_rng r; nf_real *p = nf_flow_params(f); nf_rng_seed(&r, 9);
        for (i = 0; i < nf_flow_num_params(f); ++i) p[i] = (nf_real)0.2 * nf_rng_normal(&r); }
    nf_trainer_create(&t, f, NULL, 8);
    check(nf_flow_log_prob_grad(t, y, 4, lp, g) == NF_OK, "score_runs", NULL, 0, 0);
    for (i = 0; i < 4; ++i) {
        nf_real l0; nf_flow_log_prob(f, y + i * 3, 1, &l0);
        if (fabs((double)(l0 - lp[i])) > (IS_DOUBLE ? 1e-9 : 1e-4) * (1 + fabs((double)l0))) worst = 1e9;
        for (j = 0; j < 3; ++j) {
            nf_real yp[3], ym[3], a, b; double num;
            memcpy(yp, y + i * 3, sizeof yp); memcpy(ym, y + i * 3, sizeof ym);
            yp[j] += (nf_real)h; ym[j] -= (nf_real)h;
            nf_flow_log_prob(f, yp, 1, &a); nf_flow_log_prob(f, ym, 1, &b);
            num = ((double)a - (double)b) / ((double)yp[j] - (double)ym[j]);
            {   double e = fabs(num - (double)g[i * 3 + j]) / (1 + fabs(num));
                if (e > worst) worst = e; }
        }
    }
    printf("# score: worst relative difference from central differences %.2e\n", worst);
    check(worst < (IS_DOUBLE ? 1e-5 : 2e-2), "score_matches_central_differences_with_domains", "worst %g", worst, 0);
    nf_flow_log_prob_grad(t, outrow, 1, lp, g);
    check(lp[0] == (nf_real)-HUGE_VAL && g[0] == 0 && g[1] == 0 && g[2] == 0, "score_outside_domain_is_minus_inf_zero_gradient", NULL, 0, 0);
    nf_trainer_destroy(t); nf_flow_destroy(f);
}

/* nf_flow_importance above 16 dimensions (it refused them) */
static void test_importance_any_dim(void) {
    static gauss_t G; nf_flow *f; nf_rng r; nf_is_report rep; nf_result res; int a;
    memset(&G, 0, sizeof G); G.D = 20;
    for (a = 0; a < 20; ++a) { G.P[a * 20 + a] = 1; G.mu[a] = 0; }
    G.logz = 10 * log(2 * PI);
    f = posterior_flow(20, 2, 8, NULL);
    nf_rng_seed(&r, 1);
    res = nf_flow_importance(f, &r, 2000, gauss, &G, &rep);
    check(res == NF_OK && fabs(rep.log_z - G.logz) < 1e-3 && rep.khat < 0.5, "importance_in_20_dims", "result %g, log Z error %g", (double)res, rep.log_z - G.logz);
    nf_flow_destroy(f);
}

static void test_infer_gauss(void) {
    static gauss_t G; static nf_real s[4000 * MAXD]; nf_flow *f; nf_infer_report rep; nf_result r; int D = 26, j;
    double m[MAXD], sd[MAXD], werr = 0, wsd = 0;
    make_gauss(&G, D, 11);
    f = posterior_flow(D, 4, 32, NULL);
    r = nf_infer(f, gauss, &G, NULL, &rep, s, 4000);
    moments(s, 4000, D, m, sd);
    for (j = 0; j < D; ++j) {
        double t = sqrt(G.C[j * D + j]), e = fabs(m[j] - G.mu[j]) / t, q = fabs(sd[j] / t - 1);
        if (e > werr) werr = e;
        if (q > wsd) wsd = q;
    }
    printf("# collinear 26-D Gaussian (intercept 60, scales 0.1 .. 10): %s, %ld evaluations, %ld steps, k-hat %.3f, ESS %.0f, log Z %.4f +- %.4f (exact %.4f), worst |mean error| %.3f sd, worst |sd ratio - 1| %.3f\n",
           nf_result_string(r), rep.evals, rep.steps, rep.khat, rep.ess, rep.log_z, rep.log_z_se, G.logz, werr, wsd);
    check(r == NF_OK && rep.method == NF_INFER_IMPORTANCE, "infer_collinear_gaussian_passes", "%s", 0, 0);
    check(werr < 0.1 && wsd < 0.1, "infer_collinear_gaussian_moments", "mean error %g sd, sd ratio error %g", werr, wsd);
    check(fabs(rep.log_z - G.logz) < 3 * rep.log_z_se + 1e-3, "infer_collinear_gaussian_log_z", "log Z error %g, se %g", rep.log_z - G.logz, rep.log_z_se);
    check(rep.steps == 0 && rep.evals < 20000, "infer_exact_laplace_start_needs_no_fit", "steps %g, evaluations %g", (double)rep.steps, (double)rep.evals);
    nf_flow_destroy(f);
}

static void test_infer_banana_bimodal(void) {
    static nf_real s[4000 * 2]; nf_flow *f; nf_infer_report rep; nf_infer_options o; nf_result r; double m[2], sd[2], w = 0; int i;
    f = posterior_flow(2, 6, 32, NULL);
    /* b = a^2 + N(0, 1/4) is heavy-tailed (kurtosis ~12): at ESS n its sd has a standard error of
       ~sqrt(11 / n) / 2, 5% at the default 1000 (so a 10% tolerance failed ~1 seed in 20 through
       MCMC: 1.333 in double at seed 1), 2.6% at 4000 */
    nf_infer_options_default(&o); o.ess_min = 4000;
    r = nf_infer(f, banana, NULL, &o, &rep, s, 4000);
    moments(s, 4000, 2, m, sd);
    printf("# banana: %s, %ld evaluations, k-hat %.3f, means %.3f %.3f (0, 1), sds %.3f %.3f (1, 1.5), log Z %.4f +- %.4f (exact %.4f)\n",
           nf_result_string(r), rep.evals, rep.khat, m[0], m[1], sd[0], sd[1], rep.log_z, rep.log_z_se, log(PI));
    check(r == NF_OK && fabs(m[0]) < 0.1 && fabs(m[1] - 1) < 0.15 && fabs(sd[0] - 1) < 0.1 && fabs(sd[1] / 1.5 - 1) < 0.1, "infer_banana", "mean b %g, sd b %g", m[1], sd[1]);
    check(fabs(rep.log_z - log(PI)) < 3 * rep.log_z_se + 2e-3, "infer_banana_log_z", "error %g, se %g", rep.log_z - log(PI), rep.log_z_se);
    nf_flow_destroy(f);
    f = posterior_flow(2, 6, 32, NULL);
    r = nf_infer(f, bimodal, NULL, NULL, &rep, s, 4000);
    for (i = 0; i < 4000; ++i) w += s[2 * i] > 0 ? 1.0 / 4000 : 0;
    printf("# two modes (0.7 / 0.3): %s, %d modes found, weight of the second %.3f, log Z %.4f +- %.4f (exact 0)\n", nf_result_string(r), rep.modes, w, rep.log_z, rep.log_z_se);
    check(r == NF_OK && fabs(w - 0.3) < 0.05, "infer_two_modes_weights", "weight %g", w, 0);
    check(fabs(rep.log_z) < 3 * rep.log_z_se + 2e-3, "infer_two_modes_log_z", "log Z %g, se %g", rep.log_z, rep.log_z_se);
    nf_flow_destroy(f);
}

/* support: a target that is -inf outside (0, inf) x (0, 1); once with the flow's domains, once
   without (draws outside are left out of the fit, weight 0 in the check) */
static void test_infer_support(void) {
    static nf_real s[4000 * 2]; static nf_domain dom[2]; nf_flow *f; nf_infer_report rep; nf_result r; double m[2], sd[2]; int k;
    dom[0].kind = NF_DOMAIN_LOWER; dom[0].lo = 0; dom[1].kind = NF_DOMAIN_INTERVAL; dom[1].lo = 0; dom[1].hi = 1;
    for (k = 0; k < 2; ++k) {
        nf_infer_options o; nf_infer_options_default(&o);
        if (k == 1) { o.init = s; o.n_init = 1; s[0] = 3; s[1] = (nf_real)0.3; }
        f = posterior_flow(2, 6, 32, k == 0 ? dom : NULL);
        r = nf_infer(f, gammabeta, NULL, &o, &rep, s, 4000);
        moments(s, 4000, 2, m, sd);
        printf("# gamma x beta %s domains: %s (%s), %ld evaluations, %ld outside the support, k-hat %.3f, R-hat %.3f, means %.3f %.3f (3, 0.286), sds %.3f %.3f (1.732, 0.160), log Z %.4f +- %.4f\n",
               k == 0 ? "with" : "without", nf_result_string(r), r ? nf_flow_error(f) : "", rep.evals, rep.outside, rep.khat, rep.rhat, m[0], m[1], sd[0], sd[1], rep.log_z, rep.log_z_se);
        if (r == NF_OK)
            check(fabs(m[0] - 3) < 0.17 && fabs(m[1] - 2.0 / 7) < 0.016 && fabs(sd[0] / sqrt(3.0) - 1) < 0.1 && fabs(sd[1] / 0.1597 - 1) < 0.1,
                  k == 0 ? "infer_bounded_support_with_domains" : "infer_bounded_support_without_domains", "means %g %g", m[0], m[1]);
        else
            check(r == NF_ERR_CHECK_FAILED, k == 0 ? "infer_bounded_support_with_domains" : "infer_bounded_support_without_domains", "result %g", (double)r, 0);
        if (k == 1) check(rep.outside > 0, "infer_counts_draws_outside_the_support", NULL, 0, 0);
        nf_flow_destroy(f);
    }
}

/* verdicts: a budget too small, a flow too small without MCMC: never NF_OK; with MCMC the
   small flow's samples are corrected */
static void test_infer_verdicts(void) {
    static nf_real s[4000 * 2]; nf_flow *f; nf_infer_report rep; nf_infer_options o; nf_result r; double m[2], sd[2];
    f = posterior_flow(2, 1, 2, NULL);
    nf_infer_options_default(&o); o.chains = 0;
    r = nf_infer(f, banana, NULL, &o, &rep, s, 4000);
    printf("# banana, flow of 1 coupling x 2 units, no MCMC: %s (%s)\n", nf_result_string(r), nf_flow_error(f));
    check(r == NF_ERR_CHECK_FAILED && strstr(nf_flow_error(f), "k-hat") != NULL, "infer_flow_too_small_is_not_ok", "result %g", (double)r, 0);
    nf_flow_destroy(f);
    /* a small flow (2 couplings x 8 units: k-hat above 0.5 for some seeds) with MCMC: the
       chains' draws are the answer (seed 2 goes through MCMC; measured) */
    f = posterior_flow(2, 2, 8, NULL);
    nf_infer_options_default(&o); o.seed = 2;
    r = nf_infer(f, banana, NULL, &o, &rep, s, 4000);
    moments(s, 4000, 2, m, sd);
    printf("# banana, 2 couplings x 8 units, with MCMC: %s, method %d, R-hat %.3f, ESS %.0f, acceptance %.2f / %.2f, %ld evaluations; means %.3f %.3f, sds %.3f %.3f\n",
           nf_result_string(r), rep.method, rep.rhat, rep.mcmc_ess, rep.accept_global, rep.accept_local, rep.evals, m[0], m[1], sd[0], sd[1]);
    check(r == NF_OK && fabs(m[0]) < 0.1 && fabs(m[1] - 1) < 0.15 && fabs(sd[1] / 1.5 - 1) < 0.1, "infer_small_flow_checked_answer", "method %g, sd b %g", (double)rep.method, sd[1]);
    nf_flow_destroy(f);
    f = posterior_flow(2, 6, 32, NULL);
    nf_infer_options_default(&o); o.max_evals = 2000;
    r = nf_infer(f, banana, NULL, &o, &rep, s, 100);
    printf("# banana with 2,000 evaluations: %s (%s), used %ld\n", nf_result_string(r), nf_flow_error(f), rep.evals);
    check(r == NF_ERR_CHECK_FAILED && rep.evals <= 2000, "infer_budget_too_small_is_not_ok", "result %g, evaluations %g", (double)r, (double)rep.evals);
    nf_flow_destroy(f);
}

/* a heavy tail: a ~ Student-t with nu = 1.5 (no variance), b | a ~ N(a / 2, 1), c, d ~ N(0, 1);
   P(|a| > 3) = 0.133548 (quadrature in a = sqrt(nu) tan t, checked against the t density's
   normaliser sqrt(nu pi) Gamma(nu / 2) / Gamma((nu + 1) / 2) to 3e-9) */
static int heavy(const nf_real *x, size_t n, int D, nf_real *lp, nf_real *g, void *u) {
    size_t i; const double nu = 1.5; (void)u;
    if (D != 4) return 1;
    for (i = 0; i < n; ++i) {
        const nf_real *r = x + i * 4; double a = r[0], q = 1 + a * a / nu, e = r[1] - 0.5 * a;
        lp[i] = (nf_real)(-0.5 * (nu + 1) * log(q) - 0.5 * e * e - 0.5 * ((double)r[2] * r[2] + (double)r[3] * r[3]));
        if (g) { g[i * 4] = (nf_real)(-(nu + 1) * a / (nu * q) + 0.5 * e); g[i * 4 + 1] = (nf_real)-e; g[i * 4 + 2] = -r[2]; g[i * 4 + 3] = -r[3]; }
    }
    return 0;
}
/* the MCMC's refits: a small flow (2 couplings x 8 units) fitted by reverse KL has tails far
   too light for a t_1.5 (k-hat > 1); its chains need local moves to reach the tail and then
   sit there. With the refits they pass with the right tail mass; without, the same run
   fails its check within the budget (measured: seeds 1-4 in double, 0 of 4 pass without,
   4 of 4 with, 148k-191k evaluations; the budget here is 250k) */
static void test_infer_refits(void) {
    static nf_real s[4000 * 4]; nf_flow *f; nf_infer_report rep; nf_infer_options o; nf_result r; double tail; int k, i;
    for (k = 0; k < 2; ++k) {
        f = posterior_flow(4, 2, 8, NULL);
        nf_infer_options_default(&o); o.seed = 2; o.ess_min = 4000; o.max_evals = 250000; o.refits = k ? 4 : 0;
        r = nf_infer(f, heavy, NULL, &o, &rep, s, 4000);
        for (tail = 0, i = 0; i < 4000; ++i) tail += fabs((double)s[i * 4]) > 3 ? 1.0 / 4000 : 0;
        printf("# t_1.5 tail, refits <= %d: %s, %ld evaluations (MCMC %ld), k-hat %.3f, R-hat %.4f, ESS %.0f, %d refits, P(|a| > 3) %.4f (0.1335)\n",
               o.refits, nf_result_string(r), rep.evals, rep.evals_mcmc, rep.khat, rep.rhat, rep.mcmc_ess, rep.refits, tail);
        if (k == 0) check(r == NF_ERR_CHECK_FAILED && rep.refits == 0, "infer_mcmc_without_refits_fails_a_heavy_tail", "result %g, refits %g", (double)r, (double)rep.refits);
        else check(r == NF_OK && rep.method == NF_INFER_MCMC && rep.refits > 0 && fabs(tail - 0.133548) < 0.02, "infer_mcmc_refits_reach_a_heavy_tail",
                   "refits %g, P(|a| > 3) %g", (double)rep.refits, tail);
        nf_flow_destroy(f);
    }
}

/* the MCMC's delayed rejection keeps the target: for random points x, u1, u2, gradients and
   densities, p(x) K(x -> u1 refused -> u2) = p(u2) K(u2 -> u1 refused -> x), where
   K = q1(u1 | .) (1 - a1(., u1)) q2(.. | .) a2, a2 = min(1, e^nf__dr_logr) */
static double dr_side(double px, double p1, double p2, const nf_real *x, const nf_real *gx, const nf_real *u1,
                      const nf_real *g1, const nf_real *u2, const nf_real *g2, int D, double h, double h2) {
    double a1 = p1 - px + nf__mala_lq(u1, g1, x, D, h) - nf__mala_lq(x, gx, u1, D, h), r;
    r = nf__dr_logr(px, p1, p2, x, gx, u1, g1, u2, g2, D, h, h2);
    if (!(r > -HUGE_VAL)) return -HUGE_VAL;
    return px + nf__mala_lq(x, gx, u1, D, h) + log(1 - exp(a1 < 0 ? a1 : 0)) + nf__mala_lq(x, gx, u2, D, h2) + (r < 0 ? r : 0);
}
static void test_infer_delayed_rejection_balance(void) {
    nf_rng r; int k, j, D = 3, both = 0; double worst = 0;
    nf_rng_seed(&r, 5);
    for (k = 0; k < 2000; ++k) {
        nf_real x[3], u1[3], u2[3], gx[3], g1[3], g2[3]; double px, p1, p2, h = 0.3 + (double)nf_rng_uniform(&r), h2 = h / 5, l, rr;
        for (j = 0; j < D; ++j) {
            x[j] = nf_rng_normal(&r); u1[j] = x[j] + (nf_real)h * nf_rng_normal(&r); u2[j] = x[j] + (nf_real)h2 * nf_rng_normal(&r);
            gx[j] = nf_rng_normal(&r); g1[j] = nf_rng_normal(&r); g2[j] = nf_rng_normal(&r);
        }
        px = (double)nf_rng_normal(&r); p1 = px - 3 * (double)nf_rng_uniform(&r); p2 = px + (double)nf_rng_normal(&r);
        l = dr_side(px, p1, p2, x, gx, u1, g1, u2, g2, D, h, h2);
        rr = dr_side(p2, p1, px, u2, g2, u1, g1, x, gx, D, h, h2);
        if (l > -HUGE_VAL && rr > -HUGE_VAL) { ++both; if (fabs(l - rr) > worst) worst = fabs(l - rr); }
        else if (l > -HUGE_VAL || rr > -HUGE_VAL) worst = HUGE_VAL;   /* a move one way and never back */
    }
    printf("# delayed rejection: detailed balance on %d of 2000 random triples, worst log mismatch %.3g\n", both, worst);
    check(both > 500 && worst < 1e-9, "infer_mcmc_delayed_rejection_keeps_the_target", "worst %g", worst, 0);
}

static void test_infer_errors(void) {
    static gauss_t G; nf_flow *f; nf_infer_report rep; nf_infer_options o; nf_result r; int calls = 0; nf_real s[2], keep[4096];
    size_t np;
    memset(&G, 0, sizeof G); G.D = 2; G.P[0] = G.P[3] = 1;
    f = posterior_flow(2, 2, 8, NULL);
    r = nf_infer(f, failing, &calls, NULL, &rep, s, 1);
    check(r == NF_ERR_ARG && strstr(nf_flow_error(f), "callback failed") != NULL, "infer_failing_target_stops_with_a_clear_error", "result %g", (double)r, 0);
    r = nf_infer(f, nan_after, &G, NULL, &rep, s, 1);
    printf("# NaN target: %s\n", nf_flow_error(f));
    check(r == NF_ERR_NONFINITE && strstr(nf_flow_error(f), "NaN") != NULL && strstr(nf_flow_error(f), " at (") != NULL, "infer_nan_target_names_the_point", "result %g", (double)r, 0);
    np = nf_flow_num_params(f);
    memcpy(keep, nf_flow_params(f), np * sizeof(nf_real));
    check(np < 4096 && nf_infer(NULL, gauss, &G, NULL, &rep, s, 1) == NF_ERR_NULL && nf_infer(f, NULL, &G, NULL, &rep, s, 1) == NF_ERR_NULL
          && nf_infer(f, gauss, &G, NULL, &rep, NULL, 1) == NF_ERR_NULL, "infer_null_arguments", NULL, 0, 0);
    nf_infer_options_default(&o); o.batch = 1;
    r = nf_infer(f, gauss, &G, &o, &rep, s, 1);
    check(r == NF_ERR_ARG && strstr(nf_flow_error(f), "batch") != NULL, "infer_bad_option_names_the_field", "result %g", (double)r, 0);
    nf_infer_options_default(&o); o.khat_max = 0;
    check(nf_infer(f, gauss, &G, &o, &rep, s, 1) == NF_ERR_ARG && strstr(nf_flow_error(f), "khat_max") != NULL, "infer_bad_khat_max_names_the_field", NULL, 0, 0);
    check(memcmp(keep, nf_flow_params(f), np * sizeof(nf_real)) == 0, "infer_refused_options_leave_the_flow", NULL, 0, 0);
    nf_flow_destroy(f);
}

int main(int argc, char **argv) {
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    printf("# nf_infer tests, nf_real = %s%s\n", IS_DOUBLE ? "double" : "float", quick ? " (quick)" : "");
    test_psis();
    test_infer_delayed_rejection_balance();
    test_score();
    test_importance_any_dim();
    test_infer_errors();
    test_infer_gauss();
    if (!quick) {
        test_infer_banana_bimodal();
        test_infer_support();
        test_infer_verdicts();
        test_infer_refits();
    }
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail != 0;
}
