/* test_gw150914: checks of examples/gw150914_ringdown.h (GW150914 ringdown posterior).
   Each check prints "ok name" or "FAIL name"; the last line is "N passed, M failed".
   Run from the repository root (it reads examples/data/gw150914/), or pass that folder. */
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"
#include "../examples/gw150914_ringdown.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

static int n_pass, n_fail;
static void check(int ok, const char *name, const char *fmt, double a, double b) {
    if (ok) { ++n_pass; printf("ok %s\n", name); }
    else { ++n_fail; printf("FAIL %s\n", name); printf("#   "); printf(fmt, a, b); printf("\n"); }
}

/* ---- independent reference computations ---- */

/* The detector strain of parameters x in detector k, written out with real trig functions:
   h+ = e^{-t/tau} (ax cos wt + ay sin wt), hx = -e^{-t/tau} (ax sin wt - ay cos wt)
   (h+ = A e cos(wt - phi), hx = -A e sin(wt - phi), the face-off circular tone). */
static void template_direct(const gw_analysis *a, int k, const double *x, int nmodes, double *h) {
    const gw_detector_data *dd = &a->det[k]; int i, q;
    for (i = 0; i < a->n; ++i) h[i] = 0;
    for (q = 0; q < nmodes; ++q) {
        double f, tau, ax = x[2 + 2 * q], ay = x[3 + 2 * q];
        gw_qnm(q, x[0], x[1], &f, &tau, NULL);
        for (i = 0; i < a->n; ++i) {
            double t = i * a->dt + dd->delta, e = exp(-t / tau), c = cos(2 * GW_PI * f * t), s = sin(2 * GW_PI * f * t);
            double hp = e * (ax * c + ay * s), hx = -e * (ax * s - ay * c);
            h[i] += dd->fp * hp + dd->fc * hx;
        }
    }
}

/* Solves C y = r for the dense Toeplitz covariance of detector k by Gaussian elimination
   with partial pivoting (O(n^3), no Cholesky, no Levinson); returns log|det C|. */
static double dense_solve(const gw_analysis *a, int k, const double *r, double *y) {
    int n = a->n, i, j, q; double *A = (double *)malloc(sizeof(double) * n * (n + 1)), logdet = 0;
    for (i = 0; i < n; ++i) { for (j = 0; j < n; ++j) A[i * (n + 1) + j] = a->det[k].acf[abs(i - j)]; A[i * (n + 1) + n] = r[i]; }
    for (j = 0; j < n; ++j) {
        int p = j; double piv;
        for (i = j + 1; i < n; ++i) if (fabs(A[i * (n + 1) + j]) > fabs(A[p * (n + 1) + j])) p = i;
        if (p != j) for (q = 0; q <= n; ++q) { double t = A[j * (n + 1) + q]; A[j * (n + 1) + q] = A[p * (n + 1) + q]; A[p * (n + 1) + q] = t; }
        piv = A[j * (n + 1) + j]; logdet += log(fabs(piv));
        for (i = j + 1; i < n; ++i) {
            double f = A[i * (n + 1) + j] / piv;
            for (q = j; q <= n; ++q) A[i * (n + 1) + q] -= f * A[j * (n + 1) + q];
        }
    }
    for (i = n - 1; i >= 0; --i) {
        double t = A[i * (n + 1) + n];
        for (q = i + 1; q < n; ++q) t -= A[i * (n + 1) + q] * y[q];
        y[i] = t / A[i * (n + 1) + i];
    }
    free(A);
    return logdet;
}

/* Full log-likelihood log N(d; h, C) summed over detectors, dense route. */
static double loglike_dense(const gw_analysis *a, const double *x, int nmodes) {
    double h[GW_MAX_N], r[GW_MAX_N], y[GW_MAX_N], ll = 0; int k, i;
    for (k = 0; k < GW_NDET; ++k) {
        double logdet;
        template_direct(a, k, x, nmodes, h);
        for (i = 0; i < a->n; ++i) r[i] = a->det[k].d[i] - h[i];
        logdet = dense_solve(a, k, r, y);
        for (i = 0; i < a->n; ++i) ll -= 0.5 * r[i] * y[i];
        ll -= 0.5 * (logdet + a->n * log(2 * GW_PI));
    }
    return ll;
}

/* log L ratio via the Cholesky factor (O(n^2) whitening of the direct template). */
static double loglr_cholesky(const gw_analysis *a, const double *x, int nmodes) {
    double h[GW_MAX_N], wh[GW_MAX_N], s = 0; int k, i;
    for (k = 0; k < GW_NDET; ++k) {
        template_direct(a, k, x, nmodes, h);
        gw_whiten(a, k, h, wh);
        for (i = 0; i < a->n; ++i) s += a->det[k].w[i] * wh[i] - 0.5 * wh[i] * wh[i];
    }
    return s;
}

/* The BCW (2006) Table VIII formula, typed in again here from the paper's coefficients. */
static void bcw_ref(int n, double chi, double *F, double *Q) {
    if (n == 0) { *F = 1.5251 - 1.1568 * pow(1 - chi, 0.1292); *Q = 0.7000 + 1.4187 * pow(1 - chi, -0.4990); }
    else        { *F = 1.3673 - 1.0260 * pow(1 - chi, 0.1628); *Q = 0.1000 + 0.5436 * pow(1 - chi, -0.4731); }
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "examples/data/gw150914";
    gw_analysis a; gw_model m1, m2, *mods[2];
    static const double pts[3][6] = {{70.0, 0.70, 1.2, -0.8, 2.0, 1.5}, {55.0, 0.20, -0.5, 0.7, -1.0, 0.3}, {110.0, 0.95, 3.0, 2.0, 0.5, -4.0}};
    int k, p, j;
    char name[128];

    if (gw_analysis_init(&a, dir, NULL) != 0) { printf("FAIL gw_analysis_init (data folder %s)\n0 passed, 1 failed\n", dir); return 1; }
    gw_model_init(&m1, &a, 1); gw_model_init(&m2, &a, 2); mods[0] = &m1; mods[1] = &m2;

    /* data and conditioning */
    check(a.n == 410 && a.fs == 2048.0, "segment_is_0.2s_at_2048Hz", "n %g fs %g", a.n, a.fs);
    check(fabs(a.det[0].delta) <= 0.5 / GW_FS_RAW + 1e-9 && fabs(a.det[1].delta) <= 0.5 / GW_FS_RAW + 1e-9,
          "first_sample_within_half_a_raw_sample_of_t0", "delta H1 %g L1 %g", a.det[0].delta, a.det[1].delta);
    { double worst = 0; int i;   /* the analysed samples are the conditioned series' at t0 + delta */
      for (k = 0; k < GW_NDET; ++k) {
          const gw_detector_data *dd = &a.det[k];
          worst = fmax(worst, fabs(dd->cond_t0 + (double)dd->i0 * a.dt - (dd->t0 + dd->delta)));
          for (i = 0; i < a.n; ++i) if (dd->d[i] != dd->cond[dd->i0 + i]) worst = 1;
      }
      check(worst < 1e-7, "analysed_samples_start_at_t0_plus_delta", "max time error %g s %g", worst, 0); }
    check(a.det[0].nseg >= 20 && a.det[1].nseg >= 20, "welch_uses_20+_offsource_segments", "H1 %g L1 %g", a.det[0].nseg, a.det[1].nseg);
    { gw_analysis b; int bad = gw_analysis_init(&b, "no/such/folder", NULL);
      check(bad != 0, "missing_data_is_an_error", "%g %g", bad, 0); }

    /* antenna patterns and geometry */
    for (k = 0; k < GW_NDET; ++k) {   /* a source at the detector's zenith: |F| = 1, F rotates with 2 psi */
        double e[3], nn[3], u[3], ra, dec, fp, fc, fp2, fc2, worst = 0, rot = 0; int q;
        gw__enu(gw_sites[k].lat, gw_sites[k].lon, e, nn, u);
        dec = asin(u[2]); ra = 1.0 + atan2(u[1], u[0]);        /* gmst 1.0 */
        for (q = 0; q < 5; ++q) {
            double psi = 0.37 * q;
            gw_antenna(k, ra, dec, psi, 1.0, &fp, &fc);
            gw_antenna(k, ra, dec, psi + GW_PI / 4, 1.0, &fp2, &fc2);
            if (fabs(sqrt(fp * fp + fc * fc) - 1) > worst) worst = fabs(sqrt(fp * fp + fc * fc) - 1);
            if (fabs(fp2 - fc) + fabs(fc2 + fp) > rot) rot = fabs(fp2 - fc) + fabs(fc2 + fp);
        }
        sprintf(name, "antenna_%s_zenith_unit_response", gw_sites[k].name);
        check(worst < 1e-5, name, "max ||F| - 1| %g (rot %g)", worst, rot);
        sprintf(name, "antenna_%s_rotates_with_2psi", gw_sites[k].name);
        check(rot < 1e-12, name, "max deviation %g %g", rot, 0);
        /* an in-plane source along the x arm sees F+ = 1/2 (1 - (x.y)^2 ...) at psi = 0: with X
           along y_arm-ish; simpler invariant: any source along an arm has F+^2 + Fx^2 = 1/4 */
        { double xa[3], ya[3]; gw_site_arms(k, xa, ya);
          gw_antenna(k, 1.0 + atan2(xa[1], xa[0]), asin(xa[2]), 0.3, 1.0, &fp, &fc);
          sprintf(name, "antenna_%s_source_along_arm_has_|F|=1/2", gw_sites[k].name);
          check(fabs(sqrt(fp * fp + fc * fc) - 0.5) < 1e-4, name, "|F| %g %g", sqrt(fp * fp + fc * fc), 0.5); }
    }
    /* published: the ringdown package's GW150914 example (LAL's response at ra 1.95, dec -1.27,
       psi 0.82, geocentre time 1126259462.4083147): H1 (0.578742411175, -0.450947821095),
       L1 (-0.527433432952, 0.205209608914); start times H1 .423, L1 .4160156 */
    check(fabs(a.det[0].fp - 0.578742411175002) < 1e-6 && fabs(a.det[0].fc + 0.45094782109531206) < 1e-6,
          "antenna_H1_gw150914_matches_lal", "F+ %.9f Fx %.9f", a.det[0].fp, a.det[0].fc);
    check(fabs(a.det[1].fp + 0.5274334329518102) < 1e-6 && fabs(a.det[1].fc - 0.20520960891727422) < 1e-6,
          "antenna_L1_gw150914_matches_lal", "F+ %.9f Fx %.9f", a.det[1].fp, a.det[1].fc);
    check(fabs(a.t_geo - 1126259462.4083147) < 2e-6, "geocentre_time_matches_lal", "t_geo - 1126259462 = %.7f (want %.7f)", a.t_geo - 1126259462.0, 0.4083147);
    check(fabs(a.det[1].t0 - 1126259462.4160156) < 2e-6, "L1_start_matches_lal", "t0_L1 - 1126259462 = %.7f (want %.7f)", a.det[1].t0 - 1126259462.0, 0.4160156);
    check(gw_gmst(1e9) != gw_gmst(1e9), "gmst_refuses_other_leap_second_epochs", "%g %g", gw_gmst(1e9), 0);

    /* QNM fits: (a) the published formula exactly, (b) accuracy against exact frequencies */
    { double worst = 0; int n; double chi;
      for (n = 0; n < 2; ++n) for (chi = 0; chi < 0.99; chi += 0.0725) {
          double F, Q, Fr, Qr; gw_qnm_fit(n, chi, &F, &Q, NULL, NULL); bcw_ref(n, chi, &Fr, &Qr);
          if (fabs(F / Fr - 1) > worst) worst = fabs(F / Fr - 1);
          if (fabs(Q / Qr - 1) > worst) worst = fabs(Q / Qr - 1);
      }
      check(worst < 1e-12, "qnm_fit_is_bcw_table_viii", "max rel diff %g %g", worst, 0); }
    { /* exact M omega (Leaver's continued fraction, computed for this test; agrees with the
         qnm package to 1e-14 at chi = 0.7): {n, chi, Re, Im} */
      static const double ex[6][4] = {
          {0, 0.0, 0.3736716844180418, -0.0889623156889357}, {0, 0.5, 0.4641230259759384, -0.0856388349880640},
          {0, 0.9, 0.6716142721321628, -0.0648692358757959}, {1, 0.0, 0.3467109968791635, -0.2739148752912348},
          {1, 0.5, 0.4474070374532020, -0.2602245536370362}, {1, 0.9, 0.6676575508183811, -0.1952520670556152}};
      double wf = 0, wq = 0; int q;
      for (q = 0; q < 6; ++q) {
          double F, Q; gw_qnm_fit((int)ex[q][0], ex[q][1], &F, &Q, NULL, NULL);
          if (fabs(F / ex[q][2] - 1) > wf) wf = fabs(F / ex[q][2] - 1);
          if (fabs(Q / (ex[q][2] / (2 * fabs(ex[q][3]))) - 1) > wq) wq = fabs(Q / (ex[q][2] / (2 * fabs(ex[q][3]))) - 1);
      }
      check(wf < 0.02 && wq < 0.02, "qnm_fit_within_2pct_of_exact_chi_0_0.5_0.9", "max rel err M omega %g Q %g", wf, wq);
      /* the ringdown package's test values (qnm package): M = 70, chi = 0.7 */
      { double f0, t0, f1, t1; gw_qnm(0, 70, 0.7, &f0, &t0, NULL); gw_qnm(1, 70, 0.7, &f1, &t1, NULL);
        check(fabs(f0 / 245.85210273356427 - 1) < 0.01 && fabs(t0 / 0.004267509656122605 - 1) < 0.01,
              "qnm_220_at_70Msun_0.7_within_1pct", "f %g tau %g", f0, t0);
        check(fabs(f1 / 240.57155728864586 - 1) < 0.01 && fabs(t1 / 0.001411671895902423 - 1) < 0.015,
              "qnm_221_at_70Msun_0.7_f_within_1pct_tau_1.5pct", "f %g tau %g", f1, t1); }
    }
    { double worst = 0; int n, q;   /* derivatives of f, tau */
      for (n = 0; n < 2; ++n) for (q = 0; q < 4; ++q) {
          double M = 40 + 25 * q, chi = 0.05 + 0.3 * q, g[4], fa, ta, fb, tb, hm = 1e-4 * M, hc = 1e-6;
          gw_qnm(n, M, chi, &fa, &ta, g);
          gw_qnm(n, M + hm, chi, &fa, &ta, NULL); gw_qnm(n, M - hm, chi, &fb, &tb, NULL);
          worst = fmax(worst, fabs((fa - fb) / (2 * hm) - g[0]) / fabs(g[0]));
          worst = fmax(worst, fabs((ta - tb) / (2 * hm) - g[2]) / fabs(g[2]));
          gw_qnm(n, M, chi + hc, &fa, &ta, NULL); gw_qnm(n, M, chi - hc, &fb, &tb, NULL);
          worst = fmax(worst, fabs((fa - fb) / (2 * hc) - g[1]) / fabs(g[1]));
          worst = fmax(worst, fabs((ta - tb) / (2 * hc) - g[3]) / fabs(g[3]));
      }
      check(worst < 1e-6, "qnm_derivatives_match_central_differences", "max rel err %g %g", worst, 0); }

    /* noise model */
    for (k = 0; k < GW_NDET; ++k) {
        const gw_detector_data *dd = &a.det[k]; int n = a.n, i, q; double worst = 0, wl = 0;
        for (i = 0; i < n; i += 7) for (j = 0; j <= i; j += 5) {
            double s = 0; for (q = 0; q <= j; ++q) s += dd->chol[i * n + q] * dd->chol[j * n + q];
            worst = fmax(worst, fabs(s - dd->acf[i - j]) / dd->acf[0]);
        }
        for (i = 0; i < n; ++i) wl = fmax(wl, fabs(dd->isqrt_e[i] * dd->chol[i * n + i] - 1));
        sprintf(name, "cholesky_%s_reproduces_toeplitz_covariance", gw_sites[k].name);
        check(worst < 1e-12, name, "max |L L^T - C| / C_00 %g %g", worst, 0);
        sprintf(name, "levinson_%s_errors_equal_cholesky_diagonal", gw_sites[k].name);
        check(wl < 1e-8, name, "max rel diff %g %g", wl, 0);
        { /* whitened off-source stretches (before the event, away from the edges) have unit variance */
          double v = 0, wv[GW_MAX_N]; int cnt = 0; long st;
          for (st = (long)(2.5 * a.fs); st + n < dd->i0 - (long)(4.5 * a.fs); st += n) {
              gw_whiten(&a, k, dd->cond + st, wv);
              for (i = 0; i < n; ++i) v += wv[i] * wv[i];
              cnt += n;
          }
          v /= cnt;
          sprintf(name, "whitened_offsource_%s_has_unit_variance", gw_sites[k].name);
          check(cnt >= 10 * n && v > 0.85 && v < 1.1, name, "variance %g over %g samples", v, cnt);
          /* and the on-source segment (the signal) is louder than noise */
          for (i = 0, v = 0; i < 40; ++i) v += dd->w[i] * dd->w[i];
          sprintf(name, "whitened_onsource_%s_first_20ms_louder_than_noise", gw_sites[k].name);
          check(v / 40 > 1.5, name, "variance %g %g", v / 40, 0); }
    }

    /* the noise estimate does not see the event: scrambling [t0 - 3.9 s, t0 + 1.9 s] leaves it unchanged */
    { double worst = 0, save[GW_MAX_N]; int i; long q, lo, hi;
      for (k = 0; k < GW_NDET; ++k) {
          gw_detector_data *dd = &a.det[k]; double *keep;
          lo = dd->i0 - (long)(3.9 * a.fs); hi = dd->i0 + (long)(1.9 * a.fs);
          keep = (double *)malloc(sizeof(double) * (size_t)(hi - lo));
          memcpy(keep, dd->cond + lo, sizeof(double) * (size_t)(hi - lo));
          memcpy(save, dd->acf, sizeof save);
          for (q = lo; q < hi; ++q) dd->cond[q] = 1e3 * sin(0.37 * (double)q);
          gw__noise(&a, k);
          for (i = 0; i < a.n; ++i) worst = fmax(worst, fabs(dd->acf[i] - save[i]) / save[0]);
          memcpy(dd->cond + lo, keep, sizeof(double) * (size_t)(hi - lo));
          memcpy(dd->acf, save, sizeof save);
          free(keep);
      }
      check(worst == 0, "noise_estimate_ignores_onsource_data", "max acf change %g %g", worst, 0); }

    /* likelihood: lattice (fast) vs Cholesky whitening vs dense Gaussian elimination */
    for (p = 0; p < 2; ++p) {
        gw_model *m = mods[p]; double worst_d = 0, worst_c = 0, scale = 1; int q;
        for (q = 0; q < 3; ++q) {
            double fast = gw_log_likelihood_ratio(m, pts[q], NULL);
            double dense = loglike_dense(&a, pts[q], m->nmodes) - a.log_l_noise;
            double chol = loglr_cholesky(&a, pts[q], m->nmodes);
            scale = fmax(scale, fabs(fast));
            worst_d = fmax(worst_d, fabs(fast - dense)); worst_c = fmax(worst_c, fabs(fast - chol));
        }
        sprintf(name, "loglike_%dmode_lattice_equals_dense_solve", m->nmodes);
        check(worst_d < 1e-7 * scale + 1e-6, name, "max |diff| %g (scale %g)", worst_d, scale);
        sprintf(name, "loglike_%dmode_lattice_equals_cholesky_whitening", m->nmodes);
        check(worst_c < 1e-9 * scale + 1e-9, name, "max |diff| %g (scale %g)", worst_c, scale);
    }
    { double z[6] = {70, 0.7, 0, 0, 0, 0};   /* no signal: log L = log L_noise (dense route) */
      double ld = loglike_dense(&a, z, 2);
      check(fabs(ld - a.log_l_noise) < 1e-7 * fabs(ld), "noise_loglike_constant_matches_dense", "dense %.10g header %.10g", ld, a.log_l_noise); }

    /* gradient against central differences */
    for (p = 0; p < 2; ++p) {
        gw_model *m = mods[p]; double worst = 0; int q;
        for (q = 0; q < 3; ++q) {
            double g[GW_MAX_DIM], x[GW_MAX_DIM];
            gw_log_posterior(m, pts[q], g);
            for (j = 0; j < m->dim; ++j) {
                double h = j == 0 ? 1e-4 : j == 1 ? 1e-6 : 1e-5, fa, fb, num;
                memcpy(x, pts[q], sizeof x);
                x[j] = pts[q][j] + h; fa = gw_log_posterior(m, x, NULL);
                x[j] = pts[q][j] - h; fb = gw_log_posterior(m, x, NULL);
                num = (fa - fb) / (2 * h);
                worst = fmax(worst, fabs(num - g[j]) / fmax(1.0, fabs(num)));
            }
        }
        sprintf(name, "gradient_%dmode_matches_central_differences", m->nmodes);
        check(worst < 1e-5, name, "max rel err %g %g", worst, 0);
    }

    /* priors, support, domains, the nflow callback */
    for (p = 0; p < 2; ++p) {
        gw_model *m = mods[p]; nf_domain dom[GW_MAX_DIM]; int okd, q;
        double want = -log(105.0) - log(0.99) - m->nmodes * log(2 * GW_PI * 100.0);
        static const double outside[6][2] = {{34.99, 0.5}, {140.01, 0.5}, {70, -1e-3}, {70, 0.9901}, {NAN, 0.5}, {70, NAN}};
        int all_inf = 1, inside_finite = 1;
        sprintf(name, "prior_%dmode_normalisation", m->nmodes);
        check(fabs(m->log_prior_const - want) < 1e-12, name, "%g want %g", m->log_prior_const, want);
        gw_domains(m, dom);
        okd = dom[0].kind == NF_DOMAIN_INTERVAL && dom[0].lo == 35 && dom[0].hi == 140 && dom[1].kind == NF_DOMAIN_INTERVAL && dom[1].lo == 0 && dom[1].hi == 0.99;
        for (j = 2; j < m->dim; ++j) okd = okd && dom[j].kind == NF_DOMAIN_REAL;
        sprintf(name, "domains_%dmode", m->nmodes);
        check(okd, name, "%g %g", okd, 1);
        for (q = 0; q < 6; ++q) {
            double x[GW_MAX_DIM], g[GW_MAX_DIM]; memcpy(x, pts[0], sizeof x); x[0] = outside[q][0]; x[1] = outside[q][1];
            if (!(gw_log_posterior(m, x, g) == -HUGE_VAL && g[0] == 0 && g[1] == 0)) all_inf = 0;
        }
        { double x[GW_MAX_DIM]; memcpy(x, pts[0], sizeof x); x[2] = HUGE_VAL; if (gw_log_posterior(m, x, NULL) != -HUGE_VAL) all_inf = 0; }
        for (q = 0; q < 4; ++q) {
            double x[GW_MAX_DIM]; memcpy(x, pts[1], sizeof x); x[0] = q & 1 ? 140 : 35; x[1] = q & 2 ? 0.99 : 0;
            if (!isfinite(gw_log_posterior(m, x, NULL))) inside_finite = 0;
        }
        sprintf(name, "minus_inf_outside_support_%dmode", m->nmodes);
        check(all_inf, name, "%g %g", all_inf, 1);
        sprintf(name, "finite_at_support_corners_%dmode", m->nmodes);
        check(inside_finite, name, "%g %g", inside_finite, 1);
        { nf_real xr[3 * GW_MAX_DIM], lp[3], gr[3 * GW_MAX_DIM], lp2[3]; double worst = 0; int rc, rc2, rc3;
          for (q = 0; q < 3; ++q) for (j = 0; j < m->dim; ++j) xr[q * m->dim + j] = (nf_real)pts[q][j];
          xr[2 * m->dim] = (nf_real)150;                               /* third row outside */
          rc = gw_log_density(xr, 3, m->dim, lp, gr, m);
          rc2 = gw_log_density(xr, 3, m->dim, lp2, NULL, m);
          rc3 = gw_log_density(xr, 3, m->dim + 1, lp2, NULL, m);
          for (q = 0; q < 2; ++q) {
              double xd[GW_MAX_DIM] = {0}, gd[GW_MAX_DIM] = {0}, v;
              for (j = 0; j < m->dim; ++j) xd[j] = (double)xr[q * m->dim + j];
              v = gw_log_posterior(m, xd, gd);
              worst = fmax(worst, fabs((double)lp[q] - v) / fmax(1, fabs(v)));
              worst = fmax(worst, fabs((double)lp2[q] - v) / fmax(1, fabs(v)));
              for (j = 0; j < m->dim; ++j) worst = fmax(worst, fabs((double)gr[q * m->dim + j] - gd[j]) / fmax(1, fabs(gd[j])));
          }
          sprintf(name, "nf_log_density_callback_%dmode", m->nmodes);
          check(rc == 0 && rc2 == 0 && rc3 != 0 && worst < 1e-6 && lp[2] == -HUGE_VAL, name, "rc %g worst %g", rc + rc2, worst); }
    }

    /* the amplitude integral: analytic (gw_log_marginal_amp) vs a 2-D quadrature, 1 tone */
    { double M = 75, chi = 0.75, ana = gw_log_marginal_amp(&m1, M, chi), c0[2], sd, acc = 0;
      double x[GW_MAX_DIM] = {0}, g0[GW_MAX_DIM], gx[GW_MAX_DIM], gy[GW_MAX_DIM], H[2][2], det;
      int i, q, G = 161;
      /* the integrand is Gaussian in (ax, ay): its centre and width from gradients at 3 points */
      x[0] = M; x[1] = chi; gw_log_posterior(&m1, x, g0);
      x[2] = 1; gw_log_posterior(&m1, x, gx); x[2] = 0; x[3] = 1; gw_log_posterior(&m1, x, gy); x[3] = 0;
      H[0][0] = gx[2] - g0[2]; H[0][1] = gy[2] - g0[2]; H[1][0] = gx[3] - g0[3]; H[1][1] = gy[3] - g0[3];
      det = H[0][0] * H[1][1] - H[0][1] * H[1][0];
      c0[0] = -(H[1][1] * g0[2] - H[0][1] * g0[3]) / det; c0[1] = -(-H[1][0] * g0[2] + H[0][0] * g0[3]) / det;
      sd = 1 / sqrt(fmin(-H[0][0], -H[1][1]));
      for (i = 0; i < G; ++i) for (q = 0; q < G; ++q) {   /* +-10 sd, trapezoid = midpoint for a Gaussian */
          double v; x[2] = c0[0] + sd * 10 * (2.0 * i / (G - 1) - 1); x[3] = c0[1] + sd * 10 * (2.0 * q / (G - 1) - 1);
          v = gw_log_likelihood_ratio(&m1, x, NULL) - 0.5 * (x[2] * x[2] + x[3] * x[3]) / 100.0 - log(2 * GW_PI * 100.0);
          acc += exp(v - ana);
      }
      acc *= (sd * 20 / (G - 1)) * (sd * 20 / (G - 1));
      check(fabs(log(acc)) < 1e-6, "amplitude_marginal_matches_2d_quadrature", "log(numeric / analytic) %g (analytic %g)", log(acc), ana); }

    /* the grid evidence converges with resolution */
    { double z1 = gw_grid(&m1, 105, 50, NULL, NULL, NULL), z2 = gw_grid(&m1, 210, 99, NULL, NULL, NULL);
      check(fabs(z1 - z2) < 0.01 && isfinite(z1), "grid_evidence_converged_1mode", "coarse %g fine %g", z1, z2); }

    gw_analysis_free(&a);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail != 0;
}
