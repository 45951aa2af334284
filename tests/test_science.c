/* Conditional flows, parameter domains, the periodic wrap, reverse-KL fitting with
   importance-sampling diagnostics, and model files carrying all of them. Double build. */
#define NFLOW_DOUBLE
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#define PI 3.14159265358979323846
static int g_pass, g_fail;
static void check(int ok, const char *name, const char *fmt, double a, double b) {
    if (ok) { g_pass++; printf("ok %s\n", name); }
    else { g_fail++; printf("FAIL %s: ", name); printf(fmt, a, b); printf("\n"); }
}
static void randomize(nf_flow *f, nf_rng *r, double s) {
    size_t i; for (i = 0; i < nf_flow_num_params(f); ++i) nf_flow_params(f)[i] = s * nf_rng_normal(r);
}

/* ------------------------------------------------------------ conditional flows */
static void test_conditional(void) {
    nf_flow_desc d; nf_flow *f; nf_rng rng; int i, j; double e = 0, e2 = 0;
    nf_real y[200 * 2], ctx[200 * 3], lp[200], lp2[200], z[200 * 2], y2[200 * 2], shared[3] = {0.3, -1.0, 2.0}, rep[200 * 3];
    nf_rng_seed(&rng, 1);
    nf_flow_desc_realnvp(&d, 2, 4, 16); d.context_dim = 3;
    nf_flow_create(&f, &d); randomize(f, &rng, 0.3);
    for (i = 0; i < 600; ++i) ctx[i] = nf_rng_normal(&rng);
    nf_flow_sample_ctx(f, &rng, 200, ctx, 200, y, lp);
    nf_flow_log_prob_ctx(f, y, 200, ctx, 200, lp2);
    for (i = 0; i < 200; ++i) if (fabs(lp[i] - lp2[i]) > e) e = fabs(lp[i] - lp2[i]);
    check(e < 1e-10, "conditional_sample_logp_equals_log_prob", "diff %g", e, 0);
    nf_flow_forward_ctx(f, y, 200, ctx, 200, z, NULL);
    nf_flow_inverse_ctx(f, z, 200, ctx, 200, y2, NULL);
    for (i = 0; i < 400; ++i) if (fabs(y[i] - y2[i]) > e2) e2 = fabs(y[i] - y2[i]);
    check(e2 < 1e-12, "conditional_roundtrip", "max err %g", e2, 0);
    for (i = 0; i < 200; ++i) for (j = 0; j < 3; ++j) rep[i * 3 + j] = shared[j];
    nf_flow_log_prob_ctx(f, y, 200, shared, 1, lp);
    nf_flow_log_prob_ctx(f, y, 200, rep, 200, lp2);
    check(memcmp(lp, lp2, sizeof lp) == 0, "conditional_shared_context_equals_repeated", "%g %g", 0, 0);
    nf_flow_log_prob_ctx(f, y, 200, ctx, 200, lp);
    check(fabs(lp[0] - lp2[0]) > 1e-6, "context_changes_density", "%g %g", lp[0], lp2[0]);
    {   /* the log-det of y -> z at fixed context against a numerical Jacobian */
        double J[4], h = 1e-6, ld_num, worst = 0; nf_real yp[2], zp[2], zm[2], ld[1]; int a, b, row;
        for (row = 0; row < 5; ++row) {
            for (b = 0; b < 2; ++b) {
                memcpy(yp, y + 2 * row, sizeof yp); yp[b] += h; nf_flow_forward_ctx(f, yp, 1, ctx + 3 * row, 1, zp, NULL);
                yp[b] -= 2 * h; nf_flow_forward_ctx(f, yp, 1, ctx + 3 * row, 1, zm, NULL);
                for (a = 0; a < 2; ++a) J[a * 2 + b] = (zp[a] - zm[a]) / (2 * h);
            }
            nf_flow_forward_ctx(f, y + 2 * row, 1, ctx + 3 * row, 1, zp, ld);
            ld_num = log(fabs(J[0] * J[3] - J[1] * J[2]));
            if (fabs(ld_num - ld[0]) > worst) worst = fabs(ld_num - ld[0]);
        }
        check(worst < 1e-6, "conditional_logdet_vs_numeric_jacobian", "err %g", worst, 0);
    }
    check(nf_flow_log_prob(f, y, 10, lp) == NF_ERR_NULL, "conditional_flow_needs_context", "%g %g", 0, 0);
    check(nf_flow_log_prob_ctx(f, y, 10, ctx, 3, lp) == NF_ERR_SHAPE, "context_rows_must_be_1_or_n", "%g %g", 0, 0);
    ctx[4] = NAN;
    check(nf_flow_log_prob_ctx(f, y, 10, ctx, 10, lp) == NF_ERR_NONFINITE && nf_flow_error_row(f) == 1, "nan_context_names_row", "%g %g", 0, 0);
    nf_flow_destroy(f);
    {   /* a plain flow refuses a context */
        nf_flow_desc_realnvp(&d, 2, 2, 8); nf_flow_create(&f, &d);
        check(nf_flow_log_prob_ctx(f, y, 10, shared, 1, lp) == NF_ERR_ARG, "plain_flow_refuses_context", "%g %g", 0, 0);
        nf_flow_destroy(f);
    }
}

/* p(y | c) = N(y; (c, -c/2), 0.3^2 I): learned from pairs, checked at unseen contexts */
static void test_conditional_training(void) {
    enum { N = 6000 };
    static nf_real y[N * 2], c[N];
    nf_flow_desc d; nf_flow *f; nf_fit_options o; nf_fit_report rep; nf_rng rng; int i, k;
    static const double unseen[3] = {-1.37, 0.21, 1.83};
    double worst_mean = 0, worst_nll = 0;
    nf_rng_seed(&rng, 2);
    for (i = 0; i < N; ++i) {
        c[i] = 4 * nf_rng_uniform(&rng) - 2;
        y[2 * i] = c[i] + 0.3 * nf_rng_normal(&rng);
        y[2 * i + 1] = -0.5 * c[i] + 0.3 * nf_rng_normal(&rng);
    }
    nf_flow_desc_realnvp(&d, 2, 4, 32); d.context_dim = 1;
    nf_flow_create(&f, &d);
    nf_fit_options_default(&o);   /* the defaults, untuned: mean error 0.032 (hand-set batch 200, lr 3e-3: 0.055) */
    check(nf_fit_ctx(f, y, c, N, NULL, &o, &rep) == NF_OK, "fit_ctx_runs", "%g %g", 0, 0);
    for (k = 0; k < 3; ++k) {
        nf_real s[2000 * 2], lp[2000], cc = (nf_real)unseen[k]; double m0 = 0, m1 = 0, nll = 0, tn = 0;
        nf_flow_sample_ctx(f, &rng, 2000, &cc, 1, s, lp);
        for (i = 0; i < 2000; ++i) { m0 += s[2 * i] / 2000; m1 += s[2 * i + 1] / 2000; }
        if (fabs(m0 - cc) > worst_mean) worst_mean = fabs(m0 - cc);
        if (fabs(m1 + 0.5 * cc) > worst_mean) worst_mean = fabs(m1 + 0.5 * cc);
        /* the learned density at fresh points from the true conditional vs the true NLL */
        for (i = 0; i < 2000; ++i) { s[2 * i] = cc + 0.3 * nf_rng_normal(&rng); s[2 * i + 1] = -0.5 * cc + 0.3 * nf_rng_normal(&rng); }
        nf_flow_log_prob_ctx(f, s, 2000, &cc, 1, lp);
        for (i = 0; i < 2000; ++i) {
            double a = (s[2 * i] - cc) / 0.3, b = (s[2 * i + 1] + 0.5 * cc) / 0.3;
            nll -= lp[i] / 2000; tn += (0.5 * (a * a + b * b) + log(2 * PI * 0.09)) / 2000;
        }
        if (nll - tn > worst_nll) worst_nll = nll - tn;
    }
    check(worst_mean < 0.06, "conditional_samples_at_unseen_contexts", "max |mean error| %g", worst_mean, 0);
    check(worst_nll < 0.08, "conditional_nll_at_unseen_contexts_near_truth", "NLL excess %g nats", worst_nll, 0);
    printf("# conditional: unseen contexts, max mean error %.4f, NLL excess over truth %.4f nats\n", worst_mean, worst_nll);
    nf_flow_destroy(f);
}

/* ------------------------------------------------------------ domains */
static void test_domains(void) {
    nf_domain dom[4]; nf_flow_desc d; nf_flow *f; nf_rng rng; int i, inside = 1;
    static nf_real s[20000 * 4], lp[20000];
    double ld_err = -1;
    memset(dom, 0, sizeof dom);
    dom[0].kind = NF_DOMAIN_INTERVAL; dom[0].lo = 0; dom[0].hi = 2;
    dom[1].kind = NF_DOMAIN_LOWER; dom[1].lo = 1;
    dom[2].kind = NF_DOMAIN_PERIODIC; dom[2].lo = 0; dom[2].hi = 2 * PI; dom[2].cut = 1.0;
    dom[3].kind = NF_DOMAIN_REAL;
    nf_rng_seed(&rng, 3);
    nf_flow_desc_realnvp(&d, 4, 4, 16); d.domains = dom;
    nf_flow_create(&f, &d); randomize(f, &rng, 0.3);
    nf_flow_sample(f, &rng, 20000, s, lp);
    for (i = 0; i < 20000; ++i) {
        if (!(s[4 * i] > 0 && s[4 * i] < 2 && s[4 * i + 1] > 1 && s[4 * i + 2] >= 0 && s[4 * i + 2] < 2 * PI)) inside = 0;
        if (!nf_flow_in_domain(f, s + 4 * i)) inside = 0;
    }
    check(inside, "domain_samples_always_inside", "%g %g", 0, 0);
    nf_flow_logdet_error(f, s, 10, 1e-6, &ld_err);
    check(ld_err >= 0 && ld_err < 1e-5, "domain_logdet_vs_numeric_jacobian", "err %g", ld_err, 0);
    {   /* sample log-probs agree with log_prob */
        nf_real lp2[100]; double e = 0;
        nf_flow_log_prob(f, s, 100, lp2);
        for (i = 0; i < 100; ++i) if (fabs(lp[i] - lp2[i]) > e) e = fabs(lp[i] - lp2[i]);
        check(e < 1e-8, "domain_sample_logp_equals_log_prob", "diff %g", e, 0);
    }
    {   /* outside: -inf, never NaN; forward and training refuse with the row */
        nf_real bad[3 * 4] = {1, 2, 0.5, 0,  -0.5, 2, 0.5, 0,  1, 0.5, 0.5, 0}, l3[3], z[12];
        nf_trainer *t;
        nf_flow_log_prob(f, bad, 3, l3);
        check(l3[0] > -1e300 && l3[1] == -HUGE_VAL && l3[2] == -HUGE_VAL, "outside_domain_log_prob_is_minus_inf", "%g %g", l3[1], l3[2]);
        check(nf_flow_forward(f, bad, 3, z, NULL) == NF_ERR_ARG && nf_flow_error_row(f) == 1, "outside_domain_forward_names_row", "%g %g", 0, 0);
        nf_trainer_create(&t, f, NULL, 3);
        check(nf_train_step(t, bad, NULL, 3, NULL) == NF_ERR_ARG && nf_flow_error_row(f) == 1, "outside_domain_training_names_row", "%g %g", 0, 0);
        nf_trainer_destroy(t);
    }
    {   /* the periodic dimension wraps: y and y + 2 pi have the same density */
        nf_real a[4] = {1, 2, 0.5, 0}, b[4] = {1, 2, 0.5 + 2 * PI, 0}, la, lb;
        nf_flow_log_prob(f, a, 1, &la); nf_flow_log_prob(f, b, 1, &lb);
        check(fabs(la - lb) < 1e-9, "periodic_density_wraps", "%g vs %g", la, lb);
    }
    nf_flow_destroy(f);
}

/* 1-D flows on each domain integrate to 1 over it (change of variables is exact) */
static void test_domain_normalisation(void) {
    static const int kinds[3] = {NF_DOMAIN_INTERVAL, NF_DOMAIN_LOWER, NF_DOMAIN_PERIODIC};
    static const char *names[3] = {"domain_interval_integrates_to_1", "domain_half_line_integrates_to_1", "domain_periodic_integrates_to_1"};
    nf_rng rng; int k, i;
    nf_rng_seed(&rng, 4);
    for (k = 0; k < 3; ++k) {
        nf_domain dom; nf_flow_desc d; nf_layer_desc l; nf_flow *f; double sum = 0; enum { G = 200000 };
        static nf_real y[G], lp[G];
        memset(&dom, 0, sizeof dom); dom.kind = kinds[k]; dom.lo = -1; dom.hi = 3; dom.cut = 0.5;
        nf_flow_desc_init(&d, 1); d.domains = &dom;
        memset(&l, 0, sizeof l); l.kind = NF_LAYER_MONOTONE; l.hidden = 4; nf_flow_desc_add(&d, &l);
        l.kind = NF_LAYER_ACTNORM; nf_flow_desc_add(&d, &l);
        nf_flow_create(&f, &d); randomize(f, &rng, 0.3);
        if (kinds[k] == NF_DOMAIN_LOWER) {   /* y = lo + e^t, t on a wide grid: dy = e^t dt */
            for (i = 0; i < G; ++i) y[i] = -1 + exp(-40 + 80.0 * (i + 0.5) / G);
            nf_flow_log_prob(f, y, G, lp);
            for (i = 0; i < G; ++i) sum += exp(lp[i]) * (y[i] + 1) * 80.0 / G;
        } else {
            for (i = 0; i < G; ++i) y[i] = -1 + 4.0 * (i + 0.5) / G;
            nf_flow_log_prob(f, y, G, lp);
            for (i = 0; i < G; ++i) sum += exp(lp[i]) * 4.0 / G;
        }
        check(fabs(sum - 1) < 2e-3, names[k], "integral %g", sum, 0);
        nf_flow_destroy(f);
    }
}

/* Data concentrated across the wrap point (a wrapped normal around 0 on [0, 2 pi)):
   the fitted density must be continuous across 0 = 2 pi, with the cut in the gap. */
static void test_periodic_wrap(void) {
    enum { N = 6000 };
    static nf_real y[N];
    nf_domain dom; nf_flow_desc d; nf_layer_desc l; nf_flow *f; nf_fit_options o; nf_fit_report rep; nf_rng rng; int i;
    nf_real probe[2] = {0.02, 2 * PI - 0.02}, lp[2]; double truth;
    nf_rng_seed(&rng, 5);
    for (i = 0; i < N; ++i) { double t = 0.4 * nf_rng_normal(&rng); y[i] = t - 2 * PI * floor(t / (2 * PI)); }
    memset(&dom, 0, sizeof dom); dom.kind = NF_DOMAIN_PERIODIC; dom.lo = 0; dom.hi = 2 * PI;
    nf_flow_desc_init(&d, 1); d.domains = &dom;
    memset(&l, 0, sizeof l); l.kind = NF_LAYER_MONOTONE; l.hidden = 8; nf_flow_desc_add(&d, &l);
    l.kind = NF_LAYER_ACTNORM; nf_flow_desc_add(&d, &l);
    l.kind = NF_LAYER_MONOTONE; nf_flow_desc_add(&d, &l);
    nf_flow_create(&f, &d);
    nf_fit_options_default(&o); o.max_epochs = 60; o.adam.lr = 1e-2; o.patience = 15;
    nf_fit(f, y, N, NULL, &o, &rep);
    check(fabs(nf_flow_domains(f)[0].cut - PI) < 0.6, "periodic_cut_placed_in_the_gap", "cut %g", nf_flow_domains(f)[0].cut, 0);
    nf_flow_log_prob(f, probe, 2, lp);
    truth = -0.5 * 0.02 * 0.02 / 0.16 - log(0.4 * sqrt(2 * PI));   /* wrapped normal ~ normal here */
    check(fabs(lp[0] - lp[1]) < 0.15, "periodic_no_cliff_at_wrap", "log p(0.02) %g vs log p(2pi - 0.02) %g", lp[0], lp[1]);
    check(fabs(lp[0] - truth) < 0.2 && fabs(lp[1] - truth) < 0.2, "periodic_density_right_at_wrap", "log p %g, truth %g", lp[0], truth);
    printf("# periodic wrap: cut at %.3f, log p(0.02) = %.3f, log p(2pi-0.02) = %.3f, truth %.3f\n", nf_flow_domains(f)[0].cut, lp[0], lp[1], truth);
    nf_flow_destroy(f);
}

/* ------------------------------------------------------------ reverse KL */
/* p~(x) = exp(-x^T S^-1 x / 2), S = [[1, 0.8 s], [0.8 s, s^2]], s = 2: log Z = log(2 pi sqrt(det S)) */
static const double S11 = 1, S12 = 1.6, S22 = 4;
static int gauss_target(const nf_real *x, size_t n, int dim, nf_real *logp, nf_real *grad, void *user) {
    double det = S11 * S22 - S12 * S12, i11 = S22 / det, i12 = -S12 / det, i22 = S11 / det; size_t i;
    (void)dim; (void)user;
    for (i = 0; i < n; ++i) {
        double a = x[2 * i], b = x[2 * i + 1], g0 = i11 * a + i12 * b, g1 = i12 * a + i22 * b;
        logp[i] = -0.5 * (a * g0 + b * g1);
        if (grad) { grad[2 * i] = -g0; grad[2 * i + 1] = -g1; }
    }
    return 0;
}
static int failing_target(const nf_real *x, size_t n, int dim, nf_real *logp, nf_real *grad, void *user) {
    (void)x; (void)n; (void)dim; (void)logp; (void)grad; (void)user;
    return 1;
}
static void test_reverse_kl(void) {
    nf_flow_desc d; nf_flow *f; nf_trainer *t; nf_adam_config c; nf_rng rng; nf_is_report rep; int i; double loss = 0;
    double truth = log(2 * PI * sqrt(S11 * S22 - S12 * S12));
    nf_rng_seed(&rng, 6);
    nf_flow_desc_realnvp(&d, 2, 4, 32); d.base = NF_BASE_DIAG_GAUSSIAN;
    nf_flow_create(&f, &d);
    nf_adam_config_default(&c); c.lr = 2e-3;
    nf_trainer_create(&t, f, &c, 256);
    for (i = 0; i < 1500; ++i) nf_train_step_kl(t, &rng, 256, gauss_target, NULL, &loss);
    nf_flow_importance(f, &rng, 20000, gauss_target, NULL, &rep);
    check(fabs(rep.log_z - truth) < 0.05, "reverse_kl_log_evidence_known_gaussian", "log Z %g, truth %g", rep.log_z, truth);
    check(fabs(-loss - truth) < 0.1, "reverse_kl_elbo_near_log_z", "-loss %g, truth %g", -loss, truth);
    check(rep.ess_fraction > 0.5 && rep.log_z_se < 0.02, "importance_sampling_ess_and_se", "ESS fraction %g, se %g", rep.ess_fraction, rep.log_z_se);
    printf("# reverse KL: log Z = %.4f +- %.4f (truth %.4f), ESS %.0f of %lu, final -ELBO %.4f\n", rep.log_z, rep.log_z_se, truth, rep.ess, (unsigned long)rep.n, loss);
    nf_trainer_destroy(t); nf_flow_destroy(f);
    {   /* the KL gradient against central differences (fixed draws, lr 0) */
        nf_adam_config z; double worst = 0, lp, lm; size_t k, np;
        nf_flow_desc_realnvp(&d, 2, 2, 6); d.base = NF_BASE_DIAG_GAUSSIAN; d.layers[0].activation = NF_ACT_TANH; d.layers[1].activation = NF_ACT_TANH;
        nf_flow_create(&f, &d); randomize(f, &rng, 0.3);
        nf_adam_config_default(&z); z.lr = 0;
        nf_trainer_create(&t, f, &z, 16);
        nf_rng_seed(&rng, 77); nf_train_step_kl(t, &rng, 16, gauss_target, NULL, &loss);
        np = nf_flow_num_params(f);
        {
            nf_real *g = (nf_real *)malloc(np * sizeof(nf_real));
            memcpy(g, nf_trainer_grad(t), np * sizeof(nf_real));
            for (k = 0; k < np; k += 3) {
                nf_real keep = nf_flow_params(f)[k]; double num, e;
                nf_flow_params(f)[k] = keep + 1e-6; nf_rng_seed(&rng, 77); nf_train_step_kl(t, &rng, 16, gauss_target, NULL, &lp);
                nf_flow_params(f)[k] = keep - 1e-6; nf_rng_seed(&rng, 77); nf_train_step_kl(t, &rng, 16, gauss_target, NULL, &lm);
                nf_flow_params(f)[k] = keep;
                num = (lp - lm) / 2e-6;
                e = fabs(num - g[k]) / (fabs(num) + fabs(g[k]) > 1e-6 ? fabs(num) + fabs(g[k]) : 1e-6);
                if (e > worst) worst = e;
            }
            free(g);
        }
        check(worst < 1e-5, "reverse_kl_gradient_vs_central_differences", "max rel err %g", worst, 0);
        nf_trainer_destroy(t); nf_flow_destroy(f);
    }
    {   /* a target that returns an error stops the step with a clear code */
        nf_flow_desc_realnvp(&d, 2, 2, 8);
        nf_flow_create(&f, &d); nf_trainer_create(&t, f, NULL, 8);
        check(nf_train_step_kl(t, &rng, 8, failing_target, NULL, &loss) == NF_ERR_ARG && nf_trainer_steps(t) == 0,
              "reverse_kl_failing_target_is_an_error", "%g %g", 0, 0);
        nf_trainer_destroy(t); nf_flow_destroy(f);
    }
}

/* ------------------------------------------------------------ model files */
static void test_files(void) {
    nf_domain dom[3]; nf_flow_desc d; nf_flow *f, *g; nf_rng rng; size_t n; unsigned char *buf; int i;
    nf_real y[50 * 3], c[50 * 2], l1[50], l2[50];
    memset(dom, 0, sizeof dom);
    dom[0].kind = NF_DOMAIN_INTERVAL; dom[0].lo = -1; dom[0].hi = 1;
    dom[1].kind = NF_DOMAIN_PERIODIC; dom[1].lo = 0; dom[1].hi = 1; dom[1].cut = 0.25; dom[1].fixed_cut = 1;
    nf_rng_seed(&rng, 8);
    nf_flow_desc_realnvp(&d, 3, 3, 8); d.domains = dom; d.context_dim = 2;
    nf_flow_create(&f, &d); randomize(f, &rng, 0.3);
    for (i = 0; i < 100; ++i) c[i] = nf_rng_normal(&rng);
    nf_flow_sample_ctx(f, &rng, 50, c, 50, y, NULL);
    nf_flow_save_size(f, &n); buf = (unsigned char *)malloc(n); nf_flow_save(f, buf, n, &n);
    check(nf_flow_load(&g, buf, n) == NF_OK, "load_conditional_flow_with_domains", "%g %g", 0, 0);
    nf_flow_log_prob_ctx(f, y, 50, c, 50, l1); nf_flow_log_prob_ctx(g, y, 50, c, 50, l2);
    check(memcmp(l1, l2, sizeof l1) == 0 && nf_flow_context_dim(g) == 2 && nf_flow_domains(g)[1].kind == NF_DOMAIN_PERIODIC
          && nf_flow_domains(g)[1].cut == 0.25 && nf_flow_domains(g)[1].fixed_cut == 1, "file_keeps_context_and_domains", "%g %g", 0, 0);
    nf_flow_destroy(g);
    buf[56 + 3 * 36] = 9;   /* an unknown domain kind, checksum repaired */
    { uint32_t crc = nf_crc32(0, buf, n - 4); int q; for (q = 0; q < 4; ++q) buf[n - 4 + q] = (unsigned char)(crc >> (8 * q)); }
    check(nf_flow_load(&g, buf, n) == NF_ERR_CORRUPT, "bad_domain_in_file_is_corrupt", "%g %g", 0, 0);
    free(buf); nf_flow_destroy(f);
}

int main(void) {
    printf("# science tests (double)\n");
    test_conditional();
    test_conditional_training();
    test_domains();
    test_domain_normalisation();
    test_periodic_wrap();
    test_reverse_kl();
    test_files();
    printf("# %d passed, %d failed\n", g_pass, g_fail);
    return g_fail != 0;
}
