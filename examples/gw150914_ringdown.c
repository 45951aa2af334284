/* gw150914_ringdown: the remnant black hole of GW150914, from the detectors' strain.

   After the merger the remnant rings like a bell: damped sinusoids whose frequencies and
   damping times are set by its mass and spin (Kerr quasinormal modes). This example fits
   the (2,2,0) tone, and the (2,2,0) tone with its first overtone, to 0.2 s of LIGO Hanford
   and Livingston strain from the peak on (t0 = GPS 1126259462.423 at H1, as Isi et al.
   2019), with the exact time-domain Gaussian likelihood of noise estimated away from the
   event (examples/gw150914_ringdown.h has the physics and its sources), by nf_infer:
   a flow fitted to the posterior, checked by importance sampling or flow-driven MCMC.
   It prints, per model, the verdict, the detector-frame mass and spin (median, 90%
   interval), the amplitudes, the log evidence against noise alone, the number of
   likelihood evaluations and the time; the Jensen-Shannon divergence of the flow's mass
   and spin marginals against the exact ones (amplitudes integrated analytically, mass and
   spin on a grid: gw_grid); the log Bayes factor overtone vs fundamental by both; and
   writes OUT/gw150914_ringdown.png, a corner plot of (M, chi, A_220, A_221).
   Data: LIGO Scientific Collaboration and Virgo Collaboration, Gravitational Wave Open
   Science Center (CC BY 4.0), see examples/data/gw150914/README.md.
   Usage: gw150914_ringdown [--quick] [--out DIR] [--data DIR]
   --quick: the fundamental-only model with a short check, no picture (make test). */
#define _POSIX_C_SOURCE 199309L
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"
#include "gw150914_ringdown.h"
#include "png.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS 8000          /* posterior samples per model */
#define GM 420           /* grid cells in M (35 .. 140) */
#define GC 210           /* and in chi (0 .. 0.99) */
#define JB 42            /* bins of the JS comparison: whole grid cells in each (GM / 10, GC / 5) */

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec; }

typedef struct { double med[4], lo[4], hi[4], logz, logz_se, js_m, js_c, grid_logz, secs; long evals; nf_result r; int method; } result_t;
static double g_pm[GM], g_pc[GC];   /* the last model's exact marginals, for the picture */

/* one model: nf_infer, then the summaries against the exact grid */
static result_t run_model(const gw_analysis *an, int nmodes, int quick, nf_real *s, double *col, double *tmp) {
    result_t res; gw_model m; nf_domain dom[GW_MAX_DIM]; nf_flow_desc d; nf_flow *f; nf_infer_options o; nf_infer_report rep;
    static double pm[GM], pc[GC]; double hm[JB], hc[JB], gm[JB], gc[JB], t0; int D, j, k; size_t i, n = quick ? 2000 : NS;
    memset(&res, 0, sizeof res);
    gw_model_init(&m, an, nmodes);
    D = m.dim;
    gw_domains(&m, dom);
    nf_flow_desc_posterior(&d, D, 8, 96);   /* 6 x 64 left the overtone to long MCMC (k-hat 0.61) */
    d.domains = dom;
    if (nf_flow_create(&f, &d) != NF_OK) { res.r = NF_ERR_NOMEM; return res; }
    nf_infer_options_default(&o);
    o.ess_min = quick ? 400 : 4000;   /* JS of the marginals from ESS n is ~ bins / (n 2 ln 2) bits: 2000 left 0.011 */
    if (quick) o.check_draws = 2000;
    t0 = now();
    res.r = nf_infer(f, gw_log_density, &m, &o, &rep, s, n);
    res.secs = now() - t0;
    res.evals = rep.evals; res.logz = rep.log_z; res.logz_se = rep.log_z_se; res.method = rep.method;
    printf("\n%s: %s%s%s\n", nmodes == 1 ? "fundamental (2,2,0) only" : "fundamental + first overtone (2,2,1)", nf_result_string(res.r),
           res.r ? ": " : "", res.r ? nf_flow_error(f) : "");
    printf("  nf_infer: %ld likelihood evaluations (search %ld, fit %ld, check %ld, MCMC %ld), %.1f s; %d mode(s), %ld reverse-KL steps\n",
           rep.evals, rep.evals_search, rep.evals_fit, rep.evals_check, rep.evals_mcmc, res.secs, rep.modes, rep.steps);
    printf("  check: Pareto k-hat %.3f, ESS %.0f of %.0f draws; samples by %s%s\n", rep.khat, rep.ess, rep.ess / (rep.ess_fraction > 0 ? rep.ess_fraction : 1),
           rep.method == NF_INFER_IMPORTANCE ? "importance resampling" : rep.method == NF_INFER_MCMC ? "flow-driven MCMC" : "none", "");
    if (rep.method == NF_INFER_MCMC) printf("  MCMC: split R-hat %.4f, ESS %.0f, acceptance %.2f (flow) / %.2f (local)\n", rep.rhat, rep.mcmc_ess, rep.accept_global, rep.accept_local);
    if (res.r != NF_OK && res.r != NF_ERR_CHECK_FAILED) { nf_flow_destroy(f); return res; }
    for (k = 0; k < 2 + nmodes; ++k) {   /* M, chi, then each tone's amplitude */
        for (i = 0; i < n; ++i) {
            double x[GW_MAX_DIM], amp, ph;
            for (j = 0; j < D; ++j) x[j] = (double)s[i * D + j];
            if (k < 2) col[i] = x[k]; else { gw_amp_phase(x, k - 2, &amp, &ph); col[i] = amp; }
        }
        res.med[k] = gw_quantile(col, n, 0.5, tmp); res.lo[k] = gw_quantile(col, n, 0.05, tmp); res.hi[k] = gw_quantile(col, n, 0.95, tmp);
    }
    printf("  M   = %.1f [%.1f, %.1f] Msun (detector frame; median [5%%, 95%%])\n", res.med[0], res.lo[0], res.hi[0]);
    printf("  chi = %.2f [%.2f, %.2f]\n", res.med[1], res.lo[1], res.hi[1]);
    printf("  A_220 = %.2f [%.2f, %.2f] x 1e-21", res.med[2], res.lo[2], res.hi[2]);
    if (nmodes == 2) printf(", A_221 = %.2f [%.2f, %.2f] x 1e-21", res.med[3], res.lo[3], res.hi[3]);
    printf("\n  log evidence against noise: %.3f +- %.3f (importance sampling)\n", res.logz, res.logz_se);
    /* the exact marginals of M and chi on the grid, binned coarser for the JS divergence */
    res.grid_logz = gw_grid(&m, GM, GC, pm, pc, NULL);
    for (k = 0; k < JB; ++k) { hm[k] = hc[k] = gm[k] = gc[k] = 0; }
    for (j = 0; j < GM; ++j) gm[j * JB / GM] += pm[j];
    for (j = 0; j < GC; ++j) gc[j * JB / GC] += pc[j];
    for (i = 0; i < n; ++i) {
        double M = (double)s[i * D], c = (double)s[i * D + 1];
        int bm = (int)((M - an->set.m_min) / (an->set.m_max - an->set.m_min) * JB), bc = (int)((c - an->set.chi_min) / (an->set.chi_max - an->set.chi_min) * JB);
        if (bm >= 0 && bm < JB) hm[bm] += 1.0 / (double)n;
        if (bc >= 0 && bc < JB) hc[bc] += 1.0 / (double)n;
    }
    res.js_m = gw_js_bits(hm, gm, JB); res.js_c = gw_js_bits(hc, gc, JB);
    memcpy(g_pm, pm, sizeof pm); memcpy(g_pc, pc, sizeof pc);
    printf("  exact (grid %d x %d in M and chi, amplitudes integrated): log evidence %.3f; flow vs exact marginals: JS %.4f bits (M), %.4f bits (chi), %d bins each\n",
           GM, GC, res.grid_logz, res.js_m, res.js_c, JB);
    nf_flow_destroy(f);
    return res;
}

/* corner plot of (M, chi, A_220, A_221) from the overtone model's samples */
static int corner(const char *path, const nf_real *s, size_t n, int D, const gw_settings *st) {
    enum { NP = 4, P = 150 };
    static const char *names[NP] = {"M (Msun, det. frame)", "chi (spin)", "A_220 (1e-21)", "A_221 (1e-21)"};
    static const char *const keys[2] = {"nf_infer samples", "exact (grid, amplitudes integrated)"};
    static const unsigned char ink[3] = {40, 40, 40}, orange[3] = {230, 110, 20}, frame[3] = {225, 225, 225}, blue[3] = {31, 119, 180};
    static const unsigned char colours[2][3] = {{230, 110, 20}, {31, 119, 180}};
    double lo[NP], hi[NP], *v = (double *)malloc(sizeof(double) * n * NP), *tmp = (double *)malloc(sizeof(double) * n);
    int ml = 70, mt = 40, step = P + 8, a, b, k; size_t i; canvas c; int err;
    if (!v || !tmp) return 1;
    for (i = 0; i < n; ++i) {
        double x[GW_MAX_DIM], ph; int j;
        for (j = 0; j < D; ++j) x[j] = (double)s[i * D + j];
        v[i * NP] = x[0]; v[i * NP + 1] = x[1];
        gw_amp_phase(x, 0, &v[i * NP + 2], &ph); gw_amp_phase(x, 1, &v[i * NP + 3], &ph);
    }
    for (a = 0; a < NP; ++a) {   /* panel ranges: the 0.2% and 99.8% points, chi and M within the prior */
        for (i = 0; i < n; ++i) tmp[i] = v[i * NP + a];
        qsort(tmp, n, sizeof(double), gw__cmp);
        lo[a] = tmp[n / 500]; hi[a] = tmp[n - 1 - n / 500];
        if (a == 1) { lo[a] = st->chi_min; hi[a] = st->chi_max; }
        if (a == 0) { lo[a] = lo[a] < st->m_min ? st->m_min : lo[a] - 2; hi[a] = hi[a] + 2; }
        if (a >= 2) lo[a] = 0;
    }
    free(tmp);
    c = canvas_new(ml + NP * step + 10, mt + NP * step + 40, 255);
    for (a = 0; a < NP; ++a) for (b = 0; b <= a; ++b) {
        int x0 = ml + b * step, y0 = mt + a * step;
        plot pl = plot_make(x0, y0, P, P, lo[b], hi[b], lo[a], hi[a]);
        canvas_rect(&c, x0, y0, x0 + P, y0 + P, frame);
        canvas_rect(&c, x0 + 1, y0 + 1, x0 + P - 1, y0 + P - 1, (const unsigned char *)"\xfa\xfa\xfa");
        if (a == b) {   /* histogram, 40 bins */
            double h[40] = {0}, mx = 0;
            for (i = 0; i < n; ++i) { k = (int)((v[i * NP + a] - lo[a]) / (hi[a] - lo[a]) * 40); if (k >= 0 && k < 40) h[k] += 1; }
            for (k = 0; k < 40; ++k) if (h[k] > mx) mx = h[k];
            for (k = 0; k < 40; ++k) {
                int px = x0 + 1 + k * (P - 2) / 40, pw = (P - 2) / 40;
                canvas_rect(&c, px, y0 + P - 1 - (int)(h[k] / (mx > 0 ? mx : 1) * (P - 6)), px + pw, y0 + P - 1, orange);
            }
            if (a < 2) {   /* the exact marginal as a line, in the same 40 bins */
                double e[40] = {0}, emx = 0; int cells = a == 0 ? GM : GC; double clo = a == 0 ? st->m_min : st->chi_min, chi_ = a == 0 ? st->m_max : st->chi_max;
                for (k = 0; k < cells; ++k) {
                    double mid = clo + (k + 0.5) * (chi_ - clo) / cells; int bb = (int)((mid - lo[a]) / (hi[a] - lo[a]) * 40);
                    if (bb >= 0 && bb < 40) e[bb] += a == 0 ? g_pm[k] : g_pc[k];
                }
                for (k = 0; k < 40; ++k) if (e[k] > emx) emx = e[k];
                for (k = 0; k < 40; ++k) {
                    double tot = 0; size_t q;
                    for (q = 0; q < 40; ++q) tot += h[q];
                    {   int px = x0 + 1 + k * (P - 2) / 40, pw = (P - 2) / 40;   /* both as fractions, on the histogram's scale */
                        double ey = e[k] * tot / (mx > 0 ? mx : 1);
                        canvas_line(&c, px, y0 + P - 1 - ey * (P - 6), px + pw, y0 + P - 1 - ey * (P - 6), blue, 1);
                    }
                }
                (void)emx;
            }
        } else {
            for (i = 0; i < n; ++i) {
                double u = (v[i * NP + b] - lo[b]) / (hi[b] - lo[b]), w = (v[i * NP + a] - lo[a]) / (hi[a] - lo[a]);
                if (u > 0 && u < 1 && w > 0 && w < 1) canvas_blend(&c, x0 + (int)(u * P), y0 + P - 1 - (int)(w * P), orange, 0.12);
            }
            if (b == 0) plot_yaxis(&c, &pl, names[a], 5);
        }
        if (a == NP - 1) plot_xaxis(&c, &pl, names[b], 5);
    }
    canvas_text(&c, ml, 12, "GW150914 ringdown: (2,2,0) + (2,2,1) tones", 2, ink, TEXT_LEFT | TEXT_TOP);
    canvas_legend(&c, ml + 2 * step, mt + 4, 2, keys, colours, TEXT_LEFT | TEXT_TOP);
    canvas_text(&c, ml + 2 * step, mt + 40, "LIGO H1 + L1 strain, 0.2 s at 2048 Hz from the peak", 1, ink, TEXT_LEFT | TEXT_TOP);
    canvas_text(&c, ml + 2 * step, mt + 54, "A: amplitude of h+ of each tone", 1, ink, TEXT_LEFT | TEXT_TOP);
    canvas_text(&c, ml + 2 * step, mt + 68, "data: LIGO/Virgo, GWOSC (CC BY 4.0)", 1, ink, TEXT_LEFT | TEXT_TOP);
    err = png_write(path, &c);
    canvas_free(&c); free(v);
    return err;
}

int main(int argc, char **argv) {
    const char *out = "build", *data = "examples/data/gw150914"; int quick = 0, a; gw_analysis an; result_t r1, r2; double t0 = now(), ta;
    nf_real *s = (nf_real *)malloc(sizeof(nf_real) * NS * GW_MAX_DIM); double *col = (double *)malloc(sizeof(double) * NS * 2);
    char path[512];
    for (a = 1; a < argc; ++a) {
        if (!strcmp(argv[a], "--quick")) quick = 1;
        else if (!strcmp(argv[a], "--out") && a + 1 < argc) out = argv[++a];
        else if (!strcmp(argv[a], "--data") && a + 1 < argc) data = argv[++a];
    }
    if (!s || !col) return 1;
    if (gw_analysis_init(&an, data, NULL) != 0) { fprintf(stderr, "cannot read the strain in %s\n", data); return 1; }
    ta = now();
    printf("GW150914 ringdown: H1 + L1, %d samples each (%.2f s at %.0f Hz) from t0 = GPS %.3f (H1); noise from off-source data (%.2f s)\n",
           an.n, an.n * an.dt, 1 / an.dt, an.set.t0_h1, ta - t0);
    r1 = run_model(&an, 1, quick, s, col, col + NS);
    if (quick) {
        int ok = r1.r == NF_OK && r1.js_m < 0.05 && r1.js_c < 0.05 && fabs(r1.logz - r1.grid_logz) < 3 * r1.logz_se + 0.05;
        printf("\n%s: quick run %s (verdict, JS < 0.05 bits, log evidence within 3 se of the grid)\n", ok ? "ok" : "FAIL", ok ? "agrees" : "disagrees");
        gw_analysis_free(&an); free(s); free(col);
        return ok ? 0 : 1;
    }
    r2 = run_model(&an, 2, quick, s, col, col + NS);
    printf("\nlog Bayes factor, overtone vs fundamental only: %.2f +- %.2f (nf_infer), %.2f (exact grid)\n",
           r2.logz - r1.logz, sqrt(r1.logz_se * r1.logz_se + r2.logz_se * r2.logz_se), r2.grid_logz - r1.grid_logz);
    printf("whole example: %.1f s\n", now() - t0);
    snprintf(path, sizeof path, "%s/gw150914_ringdown.png", out);
    if (r2.r == NF_OK || r2.r == NF_ERR_CHECK_FAILED) {
        if (corner(path, s, NS, GW_DIM(2), &an.set)) { fprintf(stderr, "cannot write %s\n", path); return 1; }
        printf("wrote %s\n", path);
    }
    gw_analysis_free(&an); free(s); free(col);
    return r1.r == NF_OK && r2.r == NF_OK ? 0 : 2;
}
