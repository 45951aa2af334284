/* Trust at the edges: the failure modes a real user hits silently, each with the test
   that would have caught it (issue 10). Built in float and double; some checks are
   precision-specific and say so. Prints "ok name" / "FAIL name: why". */
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
#define IS_DOUBLE (sizeof(nf_real) == 8)

/* The shipped GW170814 posterior: rows of (tc, mass1, distance). */
static long read_gw(double *out, long max_rows) {
    FILE *fp = fopen("examples/data/gw170814_posterior.csv", "r"); char line[1024]; long n = 0;
    if (!fp) return -1;
    if (!fgets(line, sizeof line, fp)) { fclose(fp); return -1; }
    while (n < max_rows && fgets(line, sizeof line, fp)) {
        double v[16]; int k = 0; char *p = line, *e;
        for (k = 0; k < 16; ++k) { v[k] = strtod(p, &e); if (e == p) break; p = e + (*e == ','); }
        if (k < 16) continue;
        out[3 * n] = v[0]; out[3 * n + 1] = v[1]; out[3 * n + 2] = v[9];
        ++n;
    }
    fclose(fp);
    return n;
}

/* item 6: a GPS time (1.187e9 s, spread of ms) must not silently become a constant column
   (float) or get a wrong spread from E[x^2] - E[x]^2 (double) */
static void test_gps_time_column(void) {
    static double gw[2000 * 3]; static nf_real y[2000 * 2];
    long n = read_gw(gw, 2000), i; nf_flow_desc d; nf_flow *f; nf_fit_options o; nf_fit_report rep; nf_result r;
    double m = 0, s = 0; nf_real mean[2], sd[2];
    if (n < 1000) { check(0, "gw_data_readable", "read %g rows of examples/data/gw170814_posterior.csv", (double)n, 0); return; }
    for (i = 0; i < n; ++i) { y[2 * i] = (nf_real)gw[3 * i]; y[2 * i + 1] = (nf_real)gw[3 * i + 1]; }
    nf_flow_desc_realnvp(&d, 2, 2, 16);
    nf_flow_create(&f, &d);
    nf_fit_options_default(&o); o.max_epochs = 2; o.val_fraction = 0;
    r = nf_fit(f, y, (size_t)n, NULL, &o, &rep);
    if (!IS_DOUBLE) {
        check(r == NF_ERR_PRECISION && strstr(nf_flow_error(f), "column 0") && strstr(nf_flow_error(f), "offset"),
              "float_gps_time_column_is_a_precision_error_naming_it", "result %g", (double)r, 0);
        printf("# %s\n", nf_flow_error(f));
        /* the documented remedy works: subtract an offset (ms after the first sample) */
        for (i = 0; i < n; ++i) y[2 * i] = (nf_real)((gw[3 * i] - gw[0]) * 1e3);
        r = nf_fit(f, y, (size_t)n, NULL, &o, &rep);
        check(r == NF_OK, "float_gps_time_with_offset_fits", "result %g", (double)r, 0);
    } else {
        for (i = 0; i < n; ++i) m += gw[3 * i] - gw[0];
        m /= (double)n;
        for (i = 0; i < n; ++i) s += (gw[3 * i] - gw[0] - m) * (gw[3 * i] - gw[0] - m);
        s = sqrt(s / (double)n);   /* the spread of the column, from offset values */
        nf_flow_get_standardization(f, mean, sd);
        check(r == NF_OK && fabs((double)sd[0] - s) < 1e-6 * s, "double_gps_time_column_gets_its_true_spread",
              "sd %.6g, true %.6g", (double)sd[0], s);
        printf("# GPS time column: sd %.6g s (true %.6g s)\n", (double)sd[0], s);
    }
    nf_flow_destroy(f);
}

/* item 6: importance-sampling error of log Z when the proposal equals the target, and a
   target that is zero everywhere */
static int std_normal_2d(const nf_real *x, size_t n, int dim, nf_real *logp, nf_real *grad, void *user) {
    size_t i; (void)dim; (void)grad; (void)user;
    for (i = 0; i < n; ++i) logp[i] = (nf_real)(-0.5 * ((double)x[2 * i] * x[2 * i] + (double)x[2 * i + 1] * x[2 * i + 1]) - log(2 * PI));
    return 0;
}
static int zero_density(const nf_real *x, size_t n, int dim, nf_real *logp, nf_real *grad, void *user) {
    size_t i; (void)x; (void)dim; (void)grad; (void)user;
    for (i = 0; i < n; ++i) logp[i] = (nf_real)-HUGE_VAL;
    return 0;
}
static void test_importance_edges(void) {
    nf_flow_desc d; nf_flow *f; nf_rng rng; nf_is_report rep; int k, finite = 0; double worst = 0; size_t i;
    nf_flow_desc_realnvp(&d, 2, 2, 8);
    nf_flow_create(&f, &d);
    nf_rng_seed(&rng, 77);   /* nearly the identity: q nearly equals the target, weights ~ 1 */
    for (i = 0; i < nf_flow_num_params(f); ++i) nf_flow_params(f)[i] = (nf_real)(1e-9 * (double)nf_rng_normal(&rng));
    for (k = 0; k < 20; ++k) {
        nf_rng_seed(&rng, (uint64_t)k);
        if (nf_flow_importance(f, &rng, 2000, std_normal_2d, NULL, &rep) == NF_OK && rep.log_z_se == rep.log_z_se && rep.log_z_se >= 0) finite++;
        if (fabs(rep.log_z) > worst) worst = fabs(rep.log_z);
    }
    check(finite == 20, "importance_se_finite_when_proposal_equals_target", "%g of 20 runs finite", (double)finite, 0);
    check(worst < 1e-3, "importance_log_z_near_0_when_proposal_near_target", "max |log Z| %g", worst, 0);
    nf_rng_seed(&rng, 1);
    check(nf_flow_importance(f, &rng, 500, zero_density, NULL, &rep) == NF_ERR_ARG && strstr(nf_flow_error(f), "zero"),
          "importance_zero_target_is_an_error", "%g %g", 0, 0);
    nf_flow_destroy(f);
}

/* item 7: periodic dimensions: a row exactly at the default cut fits; in float a y that
   rounds onto the cut still has a finite density */
static void test_periodic_edges(void) {
    nf_domain dom[2]; nf_flow_desc d; nf_flow *f; nf_fit_options o; nf_rng rng; int i; nf_result r;
    static nf_real y[1000 * 2]; nf_real lp[3], pts[6];
    memset(dom, 0, sizeof dom);
    dom[0].kind = NF_DOMAIN_PERIODIC; dom[0].lo = 0; dom[0].hi = 2 * PI;   /* cut 0: the default */
    nf_rng_seed(&rng, 3);
    for (i = 0; i < 1000; ++i) { y[2 * i] = (nf_real)fmod(2 * PI + 0.5 * (double)nf_rng_normal(&rng), 2 * PI); y[2 * i + 1] = nf_rng_normal(&rng); }
    y[0] = 0;   /* a phase of exactly 0: on the default cut */
    nf_flow_desc_realnvp(&d, 2, 2, 16); d.domains = dom;
    nf_flow_create(&f, &d);
    nf_fit_options_default(&o); o.max_epochs = 3;
    r = nf_fit(f, y, 1000, NULL, &o, NULL);
    check(r == NF_OK, "periodic_row_exactly_at_default_cut_fits", "result %g", (double)r, 0);
    {   /* at the cut itself, just below it (rounds onto the cut in float) and just above */
        double c = nf_flow_domains(f)[0].cut;
        pts[0] = (nf_real)c; pts[2] = (nf_real)(c - 1e-9); pts[4] = (nf_real)(c + 1e-9);
        pts[1] = pts[3] = pts[5] = 0;
        nf_flow_log_prob(f, pts, 3, lp);
        check(nf__isfinite(lp[0]) && nf__isfinite(lp[1]) && nf__isfinite(lp[2]), "periodic_density_finite_at_and_beside_cut",
              "log p at cut %g, below %g", (double)lp[0], (double)lp[1]);
    }
    nf_flow_destroy(f);
}

/* item 8: evaluating a loss changes nothing, after a parameter restore and after reverse KL */
static int banana(const nf_real *x, size_t n, int dim, nf_real *logp, nf_real *grad, void *user) {
    size_t i; (void)dim; (void)user;
    for (i = 0; i < n; ++i) {
        double a = x[2 * i], b = x[2 * i + 1] - 0.5 * a * a;
        logp[i] = (nf_real)(-0.5 * (a * a + b * b));
        if (grad) { grad[2 * i] = (nf_real)(-a + b * a); grad[2 * i + 1] = (nf_real)-b; }
    }
    return 0;
}
static void test_loss_has_no_side_effects(void) {
    nf_flow_desc d; nf_layer_desc l; nf_flow *f; nf_trainer *t; nf_rng rng; nf_real y[64 * 2], *snap; size_t np, i;
    double a = 0, b = 0; int same;
    nf_flow_desc_realnvp(&d, 2, 2, 8);
    memset(&l, 0, sizeof l); l.kind = NF_LAYER_ACTNORM; nf_flow_desc_add(&d, &l);
    nf_flow_create(&f, &d);
    np = nf_flow_num_params(f); snap = (nf_real *)malloc(np * sizeof(nf_real));
    nf_rng_seed(&rng, 4);
    for (i = 0; i < 128; ++i) y[i] = (nf_real)(3 + 2 * (double)nf_rng_normal(&rng));
    nf_trainer_create(&t, f, NULL, 64);
    memcpy(snap, nf_flow_params(f), np * sizeof(nf_real));
    nf_trainer_loss_grad(t, y, NULL, 64, &a);
    same = memcmp(snap, nf_flow_params(f), np * sizeof(nf_real)) == 0;
    nf_trainer_loss_grad(t, y, NULL, 64, &b);
    check(same && a == b, "loss_grad_leaves_fresh_actnorm_alone", "loss %g then %g", a, b);
    nf_trainer_destroy(t); nf_flow_destroy(f);
    {   /* parameters copied into a fresh flow by hand survive a loss evaluation and a step's
           initialisation: only the gradient moves them */
        nf_flow *g; nf_real *pg; nf_adam_config c;
        nf_flow_create(&f, &d); nf_flow_create(&g, &d);
        nf_flow_data_init(f, y, NULL, 64);
        nf_adam_config_default(&c); c.lr = 1e-12;   /* a step that moves nothing visible */
        pg = nf_flow_params(g);
        for (i = 0; i < np; ++i) pg[i] = nf_flow_params(f)[i];
        memcpy(snap, pg, np * sizeof(nf_real));
        nf_trainer_create(&t, g, &c, 64);
        nf_trainer_loss_grad(t, y, NULL, 64, &a);
        check(memcmp(snap, pg, np * sizeof(nf_real)) == 0, "loss_grad_after_copying_parameters_changes_nothing", "%g %g", 0, 0);
        nf_train_step(t, y, NULL, 64, &a);
        for (same = 1, i = 0; i < np; ++i) if (fabs((double)pg[i] - (double)snap[i]) > 1e-6) same = 0;
        check(same, "train_step_after_copying_parameters_keeps_them", "%g %g", 0, 0);
        check(memcmp(snap, nf_flow_params(f), np * sizeof(nf_real)) == 0 && memcmp(snap + np - 4, pg + np - 4, 0) == 0 &&
              nf_flow_params(f)[np - 4] != 0, "data_init_sets_actnorm", "%g %g", 0, 0);
        nf_trainer_destroy(t); nf_flow_destroy(f); nf_flow_destroy(g);
    }
    /* after reverse-KL training (no data: ActNorm counts as initialised) */
    nf_flow_create(&f, &d);
    nf_trainer_create(&t, f, NULL, 64);
    for (i = 0; i < 20; ++i) nf_train_step_kl(t, &rng, 64, banana, NULL, NULL);
    memcpy(snap, nf_flow_params(f), np * sizeof(nf_real));
    nf_trainer_loss_grad(t, y, NULL, 64, &a);
    check(memcmp(snap, nf_flow_params(f), np * sizeof(nf_real)) == 0, "loss_grad_after_reverse_kl_changes_nothing", "%g %g", 0, 0);
    nf_trainer_destroy(t); nf_flow_destroy(f); free(snap);
    {   /* loss_grad + apply (the data-parallel recipe) is exactly a training step */
        nf_flow *g; nf_trainer *tg;
        nf_flow_create(&f, &d); nf_flow_create(&g, &d);
        nf_trainer_create(&t, f, NULL, 64); nf_trainer_create(&tg, g, NULL, 64);
        for (i = 0; i < 3; ++i) {
            nf_train_step(t, y, NULL, 64, NULL);
            nf_trainer_loss_grad(tg, y, NULL, 64, NULL); nf_trainer_apply(tg);
        }
        check(memcmp(nf_flow_params(f), nf_flow_params(g), np * sizeof(nf_real)) == 0 && nf_trainer_steps(tg) == 3,
              "trainer_apply_after_loss_grad_equals_train_step", "%g %g", 0, 0);
        nf_trainer_grad(tg)[0] = (nf_real)HUGE_VAL;
        check(nf_trainer_apply(tg) == NF_ERR_DIVERGED && nf_trainer_steps(tg) == 3, "trainer_apply_refuses_nonfinite_gradient", "%g %g", 0, 0);
        nf_trainer_destroy(t); nf_trainer_destroy(tg); nf_flow_destroy(f); nf_flow_destroy(g);
    }
}

/* items 9 and 11: sparse weights, patience, the last partial batch, seeds, best_epoch */
typedef struct ruin { nf_flow *f; long after; long calls; nf_real *best; double best_val; } ruin;
static int ruin_after(const nf_fit_progress *p, void *user) {
    ruin *u = (ruin *)user; size_t i;
    u->calls++;
    if (p->val_loss == p->best_val_loss) memcpy(u->best, nf_flow_params(u->f), nf_flow_num_params(u->f) * sizeof(nf_real));
    if (p->epoch == u->after) for (i = 0; i < nf_flow_num_params(u->f); ++i) nf_flow_params(u->f)[i] += (nf_real)(i % 2 ? 3 : -3);
    return 0;
}
static void test_fit_mechanics(void) {
    static nf_real y[1003 * 2], w[1003]; nf_flow_desc d; nf_flow *f, *g; nf_fit_options o; nf_fit_report rep; nf_rng rng;
    int i; nf_result r; ruin u;
    nf_rng_seed(&rng, 9);
    for (i = 0; i < 1003; ++i) { y[2 * i] = nf_rng_normal(&rng); y[2 * i + 1] = (nf_real)(y[2 * i] * y[2 * i] + 0.3 * (double)nf_rng_normal(&rng)); w[i] = i % 25 == 0 ? 1 : 0; }
    nf_flow_desc_realnvp(&d, 2, 2, 16);
    /* sparse weights: 4% of the rows carry weight, most batches of 16 carry none */
    nf_flow_create(&f, &d);
    nf_fit_options_default(&o); o.batch = 16; o.max_epochs = 5; o.val_fraction = 0.2;
    r = nf_fit(f, y, 1003, w, &o, &rep);
    check(r == NF_OK && rep.epochs == 5 && rep.steps > 5 && rep.skipped_batches > 0, "fit_sparse_weights_skips_empty_batches",
          "epochs %g, steps %g", (double)rep.epochs, (double)rep.steps);
    nf_flow_destroy(f);
    /* patience P: ruin the weights after epoch 1, so no later epoch improves: exactly
       1 + P epochs run (it was 2 + P), and every row is used (1003 - 201 = 802 rows in
       batches of 100: 9 steps an epoch, the last one partial) */
    nf_flow_create(&f, &d);
    u.f = f; u.after = 1; u.calls = 0; u.best = (nf_real *)malloc(nf_flow_num_params(f) * sizeof(nf_real));
    nf_fit_options_default(&o); o.batch = 100; o.patience = 3; o.max_epochs = 50; o.val_fraction = 0.2;
    o.callback = ruin_after; o.user = &u;
    r = nf_fit(f, y, 1003, NULL, &o, &rep);
    check(r == NF_OK && rep.epochs == 4, "fit_patience_counts_epochs_without_improvement", "ran %g epochs, patience 3, want 4", (double)rep.epochs, 0);
    check(rep.steps == 4 * 9, "fit_uses_the_last_partial_batch", "%g steps, want %g", (double)rep.steps, 36);
    check(rep.best_epoch == 1 && memcmp(u.best, nf_flow_params(f), nf_flow_num_params(f) * sizeof(nf_real)) == 0,
          "fit_best_epoch_is_1_based_and_restored", "best epoch %g", (double)rep.best_epoch, 0);
    free(u.best); nf_flow_destroy(f);
    /* seeds 0 and 1 are different seeds */
    d.seed = 0; nf_flow_create(&f, &d);
    d.seed = 1; nf_flow_create(&g, &d);
    check(memcmp(nf_flow_params(f), nf_flow_params(g), nf_flow_num_params(f) * sizeof(nf_real)) != 0, "flow_seed_0_differs_from_seed_1", "%g %g", 0, 0);
    nf_flow_destroy(f); nf_flow_destroy(g);
}

/* item 10: a second fit keeps the standardisation and periodic cuts it found the first time */
static void test_fit_twice(void) {
    static nf_real y[800 * 2]; nf_domain dom[2]; nf_flow_desc d; nf_flow *f; nf_fit_options o; nf_rng rng; int i;
    nf_real pts[4] = {(nf_real)0.5, (nf_real)1, (nf_real)2, (nf_real)-1}, lp1[2], lp2[2], lp3[2]; double cut1;
    memset(dom, 0, sizeof dom);
    dom[0].kind = NF_DOMAIN_PERIODIC; dom[0].lo = 0; dom[0].hi = 2 * PI;
    nf_rng_seed(&rng, 5);
    for (i = 0; i < 800; ++i) { y[2 * i] = (nf_real)fmod(10 * PI + 1 + 0.4 * (double)nf_rng_normal(&rng), 2 * PI); y[2 * i + 1] = (nf_real)(5 + 2 * (double)nf_rng_normal(&rng)); }
    nf_flow_desc_realnvp(&d, 2, 2, 16); d.domains = dom;
    nf_flow_create(&f, &d);
    nf_fit_options_default(&o); o.max_epochs = 3;
    nf_fit(f, y, 800, NULL, &o, NULL);
    nf_flow_log_prob(f, pts, 2, lp1); cut1 = nf_flow_domains(f)[0].cut;
    for (i = 0; i < 800; ++i) { y[2 * i] = (nf_real)fmod(y[2 * i] + 2.5, 2 * PI); y[2 * i + 1] += 7; }   /* other data */
    o.max_epochs = 0;   /* no training: only what a fit estimates could move the model */
    nf_fit(f, y, 800, NULL, &o, NULL);
    nf_flow_log_prob(f, pts, 2, lp2);
    check(lp1[0] == lp2[0] && lp1[1] == lp2[1] && nf_flow_domains(f)[0].cut == cut1, "second_fit_keeps_standardisation_and_cuts",
          "log p %g then %g", (double)lp1[0], (double)lp2[0]);
    o.refit = 1;
    nf_fit(f, y, 800, NULL, &o, NULL);
    nf_flow_log_prob(f, pts, 2, lp3);
    check(lp3[0] != lp1[0] && nf_flow_domains(f)[0].cut != cut1, "refit_reestimates_when_asked", "%g %g", (double)lp3[0], (double)lp1[0]);
    nf_flow_destroy(f);
}

/* item 12: the log-det self-check on data in natural units (ms next to Mpc) must not
   report errors for a correct log-det */
static void test_logdet_check_scales(void) {
    nf_domain dom[3]; nf_flow_desc d; nf_flow *f; nf_rng rng; nf_real mean[3] = {0, 30, 0}, sd[3] = {(nf_real)0.003, 4, 1}, y[8 * 3];
    size_t i; double e = -1; nf_result r;
    memset(dom, 0, sizeof dom);
    dom[2].kind = NF_DOMAIN_INTERVAL; dom[2].lo = 10; dom[2].hi = 1500;   /* distance, Mpc */
    nf_flow_desc_realnvp(&d, 3, 4, 16); d.domains = dom;
    nf_flow_create(&f, &d);
    nf_rng_seed(&rng, 6);
    for (i = 0; i < nf_flow_num_params(f); ++i) nf_flow_params(f)[i] = (nf_real)(0.2 * (double)nf_rng_normal(&rng));
    nf_flow_set_standardization(f, mean, sd);
    for (i = 0; i < 8; ++i) { y[3 * i] = (nf_real)(0.003 * (double)nf_rng_normal(&rng)); y[3 * i + 1] = (nf_real)(30 + 4 * (double)nf_rng_normal(&rng)); y[3 * i + 2] = (nf_real)(400 + 100 * (double)nf_rng_uniform(&rng)); }
    r = nf_flow_logdet_error(f, y, 8, IS_DOUBLE ? 1e-6 : 1e-2, &e);
    check(r == NF_OK && e < (IS_DOUBLE ? 1e-6 : 2e-2), "logdet_check_steps_follow_each_dimension_scale", "max error %g nats", e, 0);
    printf("# log-det self-check on natural units: %.3g nats\n", e);
    nf_flow_destroy(f);
}

/* item 15: the training tape against inference. A flow with every layer kind, domains, a
   context and the learnable base: the maximum-likelihood loss on the tape must equal
   -mean nf_flow_log_prob, and the reverse-KL pass (latent -> data on the tape) must give
   log q(x) equal to nf_flow_log_prob at the points it drew; its gradient must match
   central differences. */
static nf_flow *every_kind_flow(nf_domain *dom) {
    nf_flow_desc d; nf_layer_desc l; nf_flow *f; nf_rng rng; size_t i; int k;
    static const int kinds[] = {NF_LAYER_ACTNORM, NF_LAYER_AFFINE_COUPLING, NF_LAYER_PERMUTE, NF_LAYER_ADDITIVE_COUPLING,
                                NF_LAYER_LU_LINEAR, NF_LAYER_REVERSE, NF_LAYER_MONOTONE, NF_LAYER_AFFINE_COUPLING,
                                NF_LAYER_SPLINE_COUPLING, NF_LAYER_AUTOREGRESSIVE, NF_LAYER_AUTOREGRESSIVE, NF_LAYER_AUTOREGRESSIVE};
    memset(dom, 0, 4 * sizeof *dom);
    dom[0].kind = NF_DOMAIN_INTERVAL; dom[0].lo = -3; dom[0].hi = 4;
    dom[1].kind = NF_DOMAIN_LOWER; dom[1].lo = -1;
    dom[2].kind = NF_DOMAIN_PERIODIC; dom[2].lo = 0; dom[2].hi = 2 * PI; dom[2].cut = 0.7; dom[2].fixed_cut = 1;
    nf_flow_desc_init(&d, 4); d.base = NF_BASE_DIAG_GAUSSIAN; d.context_dim = 2; d.domains = dom;
    for (k = 0; k < (int)(sizeof kinds / sizeof kinds[0]); ++k) {
        memset(&l, 0, sizeof l); l.kind = kinds[k]; l.hidden = l.kind == NF_LAYER_MONOTONE ? 3 : 8; l.activation = NF_ACT_TANH;
        l.parity = k & 1; l.seed = (uint32_t)k; l.bins = 4;
        if (k == 10) { l.transformer = NF_TRANSFORM_SPLINE; l.inverse = 1; l.order = NF_ORDER_REVERSED; }   /* IAF, spline */
        if (k == 11) { l.inverse = 0; l.order = NF_ORDER_RANDOM; }                                           /* MAF, affine */
        nf_flow_desc_add(&d, &l);
    }
    if (nf_flow_create(&f, &d) != NF_OK) return NULL;
    nf_rng_seed(&rng, 12);
    for (i = 0; i < nf_flow_num_params(f); ++i) nf_flow_params(f)[i] = (nf_real)(0.15 * (double)nf_rng_normal(&rng));
    for (k = 0; k < f->n_layers; ++k)   /* autoregressive layers' masked weights must stay zero */
        if (nf__kinds[f->layers[k].kind].fixup) nf__kinds[f->layers[k].kind].fixup(&f->layers[k], nf_flow_params(f) + f->layers[k].poff);
    {   nf_real m[6] = {(nf_real)0.2, (nf_real)0.5, (nf_real)-0.1, (nf_real)0.3, (nf_real)0.1, (nf_real)-0.2};
        nf_real s[6] = {(nf_real)1.3, (nf_real)0.8, (nf_real)1.1, (nf_real)0.9, (nf_real)1.2, (nf_real)0.7};
        nf_flow_set_standardization(f, m, s); }
    return f;
}
typedef struct kl_rec { nf_real *x, *c; size_t n; } kl_rec;
/* a smooth target in the user's coordinates; records where it was evaluated */
static int rec_target(const nf_real *x, const nf_real *ctx, size_t n, int dim, nf_real *logp, nf_real *grad, void *user) {
    kl_rec *r = (kl_rec *)user; size_t i; int j;
    if (r) { memcpy(r->x, x, n * (size_t)dim * sizeof(nf_real)); memcpy(r->c, ctx, n * 2 * sizeof(nf_real)); r->n = n; }
    for (i = 0; i < n; ++i) {
        double s = 0;
        for (j = 0; j < dim; ++j) { double v = (double)x[i * dim + j] - 0.3 * (double)ctx[2 * i]; s += 0.1 * v * v; if (grad) grad[i * dim + j] = (nf_real)(-0.2 * v); }
        logp[i] = (nf_real)-s;
    }
    return 0;
}
static void test_tape_equals_inference(void) {
    nf_domain dom[4]; nf_flow *f = every_kind_flow(dom); nf_trainer *t; nf_adam_config c; nf_rng rng;
    enum { N = 40 };
    nf_real y[N * 4], ctx[N * 2], lp[N], xr[N * 4], cr[N * 2]; double loss = 0, ref = 0, e, tol = IS_DOUBLE ? 1e-9 : 2e-4;
    int i; kl_rec rec; nf_result r;
    if (!f) { check(0, "every_kind_flow_builds", "%g %g", 0, 0); return; }
    nf_rng_seed(&rng, 3);
    for (i = 0; i < N; ++i) {
        y[4 * i] = (nf_real)(-2.5 + 6 * (double)nf_rng_uniform(&rng)); y[4 * i + 1] = (nf_real)(-0.5 + 3 * (double)nf_rng_uniform(&rng));
        y[4 * i + 2] = (nf_real)(2 * PI * (double)nf_rng_uniform(&rng)); y[4 * i + 3] = nf_rng_normal(&rng);
        ctx[2 * i] = nf_rng_normal(&rng); ctx[2 * i + 1] = nf_rng_normal(&rng);
    }
    nf_adam_config_default(&c); c.lr = 0;   /* steps that move nothing: the flow stays the one compared */
    nf_trainer_create(&t, f, &c, N);
    r = nf_trainer_loss_grad_ctx(t, y, ctx, NULL, N, &loss);
    nf_flow_log_prob_ctx(f, y, N, ctx, N, lp);
    for (i = 0; i < N; ++i) ref -= (double)lp[i] / N;
    e = fabs(loss - ref) / (1 + fabs(ref));
    check(r == NF_OK && e < tol, "tape_nll_equals_inference_every_kind", "rel diff %g (loss %g)", e, loss);
    printf("# tape vs inference, every kind: NLL rel diff %.3g\n", e);
    /* reverse KL: loss = mean(log q(x) - log p~(x)) at the draws x */
    rec.x = xr; rec.c = cr; rec.n = 0;
    r = nf_train_step_kl_ctx(t, &rng, N, ctx, N, rec_target, &rec, &loss);
    if (r == NF_OK && rec.n == N) {
        nf_real tp[N]; double refq = 0;
        rec_target(xr, cr, N, 4, tp, NULL, NULL);
        nf_flow_log_prob_ctx(f, xr, N, cr, N, lp);
        for (i = 0; i < N; ++i) refq += ((double)lp[i] - (double)tp[i]) / N;
        e = fabs(loss - refq) / (1 + fabs(refq));
        check(e < tol, "tape_reverse_kl_log_q_equals_inference_every_kind", "rel diff %g (loss %g)", e, loss);
        printf("# tape vs inference, every kind: reverse-KL log q rel diff %.3g\n", e);
        for (i = 0; i < N; ++i) if (!nf_flow_in_domain(f, xr + 4 * i)) break;
        check(i == N, "reverse_kl_draws_inside_domains", "row %g outside", (double)i, 0);
    } else check(0, "tape_reverse_kl_log_q_equals_inference_every_kind", "result %g", (double)r, 0);
    if (IS_DOUBLE) {   /* the reverse-KL gradient against central differences */
        nf_real *p = nf_flow_params(f), *g0; size_t np = nf_flow_num_params(f), k, stride = np / 60 + 1; double worst = 0, h = 1e-5;
        nf_real *part = (nf_real *)malloc(np * sizeof(nf_real));   /* 0: a masked MADE weight */
        int l;
        g0 = (nf_real *)malloc(np * sizeof(nf_real));
        /* the masked weights of autoregressive layers are not part of the model (0, and 0
           in every gradient; the forward map reads them as they are): not perturbed */
        for (k = 0; k < np; ++k) part[k] = 1;
        for (l = 0; l < f->n_layers; ++l) if (nf__kind_of(f->layers[l].kind)->fixup) nf__kind_of(f->layers[l].kind)->fixup(&f->layers[l], part + f->layers[l].poff);
        nf_rng_seed(&rng, 99); nf_train_step_kl_ctx(t, &rng, N, ctx, N, rec_target, NULL, &loss);
        memcpy(g0, nf_trainer_grad(t), np * sizeof(nf_real));
        for (k = 0; k < np; k += stride) {
            nf_real keep = p[k]; double lpl, lmi, num, den;
            if (part[k] == 0) continue;
            p[k] = (nf_real)((double)keep + h); nf_rng_seed(&rng, 99); nf_train_step_kl_ctx(t, &rng, N, ctx, N, rec_target, NULL, &lpl);
            p[k] = (nf_real)((double)keep - h); nf_rng_seed(&rng, 99); nf_train_step_kl_ctx(t, &rng, N, ctx, N, rec_target, NULL, &lmi);
            p[k] = keep;
            num = (lpl - lmi) / (2 * h); den = fabs(num) + fabs((double)g0[k]);
            if (fabs(num - (double)g0[k]) / (den > 1e-6 ? den : 1e-6) > worst) worst = fabs(num - (double)g0[k]) / (den > 1e-6 ? den : 1e-6);
        }
        check(worst < 1e-5, "reverse_kl_gradient_every_kind_vs_central_differences", "max rel err %g", worst, 0);
        printf("# reverse-KL gradient, every kind: max rel err %.3g\n", worst);
        free(g0); free(part);
    }
    nf_trainer_destroy(t); nf_flow_destroy(f);
}

int main(void) {
    printf("# trust tests, nf_real = %s\n", IS_DOUBLE ? "double" : "float");
    test_tape_equals_inference();
    test_gps_time_column();
    test_importance_edges();
    test_periodic_edges();
    test_loss_has_no_side_effects();
    test_fit_mechanics();
    test_fit_twice();
    test_logdet_check_scales();
    printf("# %d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
