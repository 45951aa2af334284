/* gw_posterior: a normalizing flow as the density of a real gravitational-wave posterior.

   Reads posterior samples of GW170814 (PyCBC Inference, De et al. 2019, arXiv:1811.09232;
   CC BY-SA 3.0 US; shipped in examples/data/ with its provenance and license), declares
   each parameter's domain (bounded, half-bounded, periodic), fits a flow with a validation
   split and reports on held-out samples:
     - mean log-likelihood of the flow against a full-covariance Gaussian fitted to the
       same training split;
     - the spread (standard deviation) of log q(x) - (loglr + logprior): the posterior is
       known up to its evidence, so for a perfect fit this is a constant and the spread 0;
     - the fraction of flow samples inside the prior domain (domains make it 100%);
   and writes OUT/gw170814_corner.png: 1-D and 2-D marginals, data (blue) against flow
   samples (orange).
   Usage: gw_posterior [CSV] [--out DIR] [--quick]
   (public posterior releases: GWOSC, https://gwosc.org, and the PyCBC O2 catalogue data) */
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"
#include "png.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NP 14
#define PI 3.14159265358979323846
static const char *names[NP] = {"tc", "mass1", "mass2", "spin1_a", "spin1_azimuthal", "spin1_polar", "spin2_a",
                                "spin2_azimuthal", "spin2_polar", "distance", "inclination", "polarization", "ra", "dec"};
static const double TC0 = 1186741861.5;   /* tc is used as milliseconds after this GPS time */

/* Reads the CSV: the 14 parameters, then loglr and logprior. Returns rows read or -1. */
static long read_csv(const char *path, double **out) {
    FILE *fp = fopen(path, "r"); char line[4096]; long n = 0, cap = 1024; double *d;
    if (!fp) return -1;
    if (!fgets(line, sizeof line, fp) || strncmp(line, "tc,mass1,mass2", 14) != 0) { fclose(fp); return -1; }
    d = (double *)malloc(sizeof(double) * 16 * cap);
    while (fgets(line, sizeof line, fp)) {
        char *p = line, *end; int j;
        if (n == cap) { cap *= 2; d = (double *)realloc(d, sizeof(double) * 16 * cap); }
        for (j = 0; j < 16; ++j) {
            d[n * 16 + j] = strtod(p, &end);
            if (end == p) { fclose(fp); free(d); return -1; }
            p = end + (*end == ',');
        }
        d[n * 16] = (d[n * 16] - TC0) * 1e3;
        n++;
    }
    fclose(fp);
    *out = d;
    return n;
}

/* log density of a full-covariance Gaussian fitted to the rows idx[0..m) (Cholesky) */
static void gauss_fit(const double *x, const int *idx, int m, double *mu, double *L) {
    int a, b, k, i; double S[NP * NP];
    for (a = 0; a < NP; ++a) { mu[a] = 0; for (i = 0; i < m; ++i) mu[a] += x[idx[i] * 16 + a] / m; }
    for (a = 0; a < NP; ++a) for (b = 0; b < NP; ++b) {
        double s = 0; for (i = 0; i < m; ++i) s += (x[idx[i] * 16 + a] - mu[a]) * (x[idx[i] * 16 + b] - mu[b]);
        S[a * NP + b] = s / m;
    }
    memset(L, 0, sizeof(double) * NP * NP);
    for (a = 0; a < NP; ++a) for (b = 0; b <= a; ++b) {
        double s = S[a * NP + b];
        for (k = 0; k < b; ++k) s -= L[a * NP + k] * L[b * NP + k];
        L[a * NP + b] = a == b ? sqrt(s) : s / L[b * NP + b];
    }
}
static double gauss_logp(const double *x, const double *mu, const double *L) {
    double v[NP], q = 0, ld = 0; int a, k;
    for (a = 0; a < NP; ++a) {
        double s = x[a] - mu[a];
        for (k = 0; k < a; ++k) s -= L[a * NP + k] * v[k];
        v[a] = s / L[a * NP + a]; q += v[a] * v[a]; ld += log(L[a * NP + a]);
    }
    return -0.5 * q - ld - 0.5 * NP * log(2 * PI);
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

int main(int argc, char **argv) {
    const char *csv = "examples/data/gw170814_posterior.csv", *out = "build"; int quick = 0, i, j, a, b;
    double *raw = NULL; long n; char path[512];
    nf_domain dom[NP]; nf_flow_desc d; nf_layer_desc l; nf_flow *f; nf_fit_options o; nf_fit_report rep; nf_rng rng;
    nf_real *y, *lp, *s; int *idx, n_tr, n_te; double t0;
    for (i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (argv[i][0] != '-') csv = argv[i];
        else { fprintf(stderr, "usage: %s [CSV] [--out DIR] [--quick]\n", argv[0]); return 2; }
    }
    n = read_csv(csv, &raw);
    if (n < 100) { fprintf(stderr, "cannot read posterior samples from %s\n", csv); return 1; }
    printf("GW170814 posterior: %ld samples of %d parameters from %s\n", n, NP, csv);

    /* the parameters' domains, from the analysis' priors */
    memset(dom, 0, sizeof dom);
    for (j = 0; j < NP; ++j) dom[j].kind = NF_DOMAIN_INTERVAL;
    dom[0].kind = NF_DOMAIN_REAL;                               /* tc (ms) */
    dom[1].lo = dom[2].lo = 10; dom[1].hi = dom[2].hi = 80;     /* detector-frame masses */
    dom[3].lo = dom[6].lo = 0; dom[3].hi = dom[6].hi = 0.99;    /* spin magnitudes */
    dom[5].hi = dom[8].hi = dom[10].hi = PI;                    /* polar angles, inclination */
    dom[9].lo = 10; dom[9].hi = 1500;                           /* distance, Mpc */
    dom[13].lo = -PI / 2; dom[13].hi = PI / 2;                  /* declination */
    dom[4].kind = dom[7].kind = dom[11].kind = dom[12].kind = NF_DOMAIN_PERIODIC;   /* azimuths, polarisation, ra */
    dom[4].hi = dom[7].hi = dom[11].hi = dom[12].hi = 2 * PI;

    /* a fixed random split: 80% to fit (nf_fit holds out a further 10% for early stopping), 20% held out */
    idx = (int *)malloc(sizeof(int) * n);
    nf_rng_seed(&rng, 170814);
    for (i = 0; i < n; ++i) idx[i] = i;
    for (i = (int)n - 1; i > 0; --i) { int k = (int)(nf_rng_u32(&rng) % (uint32_t)(i + 1)), t = idx[i]; idx[i] = idx[k]; idx[k] = t; }
    n_te = (int)(n / 5); n_tr = (int)n - n_te;
    if (quick) { n_tr = 1500; n_te = 500; }
    qsort(idx, (size_t)n_tr, sizeof(int), cmp_int);
    y = (nf_real *)malloc(sizeof(nf_real) * NP * n); lp = (nf_real *)malloc(sizeof(nf_real) * n);
    for (i = 0; i < n_tr + n_te; ++i) for (j = 0; j < NP; ++j) y[(size_t)i * NP + j] = (nf_real)raw[idx[i] * 16 + j];

    nf_flow_desc_init(&d, NP); d.domains = dom;
    for (i = 0; i < 6; ++i) {   /* ActNorm, affine coupling, LU mixing, six times */
        memset(&l, 0, sizeof l);
        l.kind = NF_LAYER_ACTNORM; nf_flow_desc_add(&d, &l);
        l.kind = NF_LAYER_AFFINE_COUPLING; l.hidden = 32; l.parity = i & 1; l.mask = (i / 2) & 1; nf_flow_desc_add(&d, &l);
        l.kind = NF_LAYER_LU_LINEAR; l.seed = (uint32_t)i; nf_flow_desc_add(&d, &l);
    }
    if (nf_flow_create(&f, &d) != NF_OK) return 1;
    nf_fit_options_default(&o);
    o.batch = 256; o.max_epochs = quick ? 3 : 300; o.patience = 25; o.adam.lr = 1e-3; o.adam.weight_decay = 1e-4;
    t0 = (double)clock() / CLOCKS_PER_SEC;
    if (nf_fit(f, y, (size_t)n_tr, NULL, &o, &rep) != NF_OK) { fprintf(stderr, "fit: %s\n", nf_flow_error(f)); return 1; }
    printf("fitted %lu parameters in %.1f s: %ld epochs, best validation NLL %.3f (epoch %ld)\n",
           (unsigned long)nf_flow_num_params(f), (double)clock() / CLOCKS_PER_SEC - t0, rep.epochs, rep.best_val_loss, rep.best_epoch);
    for (j = 0; j < NP; ++j) if (dom[j].kind == NF_DOMAIN_PERIODIC)
        printf("  %-16s periodic, circle opened at %.3f rad (where the data are sparsest)\n", names[j], nf_flow_domains(f)[j].cut);

    {   /* held-out figures */
        double mu[NP], L[NP * NP], llf = 0, llg = 0, m1 = 0, m2 = 0; int *tr = (int *)malloc(sizeof(int) * n_tr);
        for (i = 0; i < n_tr; ++i) tr[i] = idx[i];
        gauss_fit(raw, tr, n_tr, mu, L);
        nf_flow_log_prob(f, y + (size_t)n_tr * NP, (size_t)n_te, lp);
        for (i = 0; i < n_te; ++i) {
            const double *r = raw + (size_t)idx[n_tr + i] * 16;
            double dlt = (double)lp[i] - (r[14] + r[15]);   /* log q - log(unnormalised posterior) */
            llf += lp[i] / n_te; llg += gauss_logp(r, mu, L) / n_te;
            m1 += dlt / n_te; m2 += dlt * dlt / n_te;
        }
        printf("held-out mean log-likelihood (%d samples): flow %.3f, full-covariance Gaussian %.3f (flow better by %.3f nats)\n",
               n_te, llf, llg, llf - llg);
        printf("spread of log q(x) - (loglr + logprior) over held-out samples: std %.3f (0 for a perfect fit; mean %.3f = -log evidence + const)\n",
               sqrt(m2 - m1 * m1), m1);
        free(tr);
    }
    {   /* samples: all inside the prior domain, and the corner picture */
        int ns = quick ? 2000 : 8000, inside = 0, P = 60, W; canvas c;
        static const unsigned char blue[3] = {31, 119, 180}, orange[3] = {230, 110, 20};
        double lo[NP], hi[NP];
        s = (nf_real *)malloc(sizeof(nf_real) * NP * ns);
        nf_rng_seed(&rng, 14);
        nf_flow_sample(f, &rng, (size_t)ns, s, NULL);
        for (i = 0; i < ns; ++i) {
            int ok = 1;
            for (j = 0; j < NP; ++j) {
                double v = s[(size_t)i * NP + j];
                if (dom[j].kind == NF_DOMAIN_INTERVAL && !(v > dom[j].lo && v < dom[j].hi)) ok = 0;
                if (dom[j].kind == NF_DOMAIN_PERIODIC && !(v >= dom[j].lo && v < dom[j].hi)) ok = 0;
            }
            inside += ok;
        }
        printf("flow samples inside the prior domain: %d of %d (%.2f%%)\n", inside, ns, 100.0 * inside / ns);
        for (j = 0; j < NP; ++j) {   /* panel ranges from the data's 0.5% and 99.5% points */
            double *col = (double *)malloc(sizeof(double) * n_tr); int q;
            for (i = 0; i < n_tr; ++i) col[i] = y[(size_t)i * NP + j];
            for (i = 1; i < n_tr; ++i) { double v = col[i]; q = i - 1; while (q >= 0 && col[q] > v) { col[q + 1] = col[q]; q--; } col[q + 1] = v; }
            lo[j] = col[n_tr / 200]; hi[j] = col[n_tr - 1 - n_tr / 200];
            if (!(hi[j] > lo[j])) hi[j] = lo[j] + 1;
            free(col);
        }
        {   /* panel (a, b) at row a, column b; names on the diagonal, axes on the left and bottom */
            static const char *axis[NP] = {"tc", "mass1", "mass2", "spin1_a", "spin1_az", "spin1_pol", "spin2_a",
                                           "spin2_az", "spin2_pol", "distance", "inclin.", "polariz.", "ra", "dec"};
            static const char *const keys[2] = {"data: PyCBC Inference samples", "samples from the flow"};
            static const char *const notes[5] = {"diagonal: 1-D histograms, data as bars, flow as lines",
                                                 "tc: ms after GPS time 1186741861.5 s",
                                                 "mass1, mass2: detector frame, solar masses",
                                                 "distance: Mpc; angles, ra and dec: radians",
                                                 "spin az, pol: azimuthal and polar angle"};
            static const unsigned char ink[3] = {40, 40, 40}, colours[2][3] = {{31, 119, 180}, {230, 110, 20}};
            int ml = 58, mt = 18, step = P + 4, kx;
            W = ml + NP * step - 4 + 10;
            c = canvas_new(W, mt + NP * step - 4 + 36, 255);
            for (a = 0; a < NP; ++a) for (b = 0; b <= a; ++b) {
                int x0 = ml + b * step, y0 = mt + a * step;
                static const unsigned char frame[3] = {225, 225, 225};
                plot pl = plot_make(x0, y0, P, P, lo[b], hi[b], lo[a], hi[a]);
                canvas_rect(&c, x0, y0, x0 + P, y0 + P, frame);
                canvas_rect(&c, x0 + 1, y0 + 1, x0 + P - 1, y0 + P - 1, (const unsigned char *)"\xfa\xfa\xfa");
                if (a == b) {   /* 1-D histograms, 30 bins, data and flow */
                    double hd[30] = {0}, hf[30] = {0}, mx = 0; int k;
                    for (i = 0; i < n_tr; ++i) { k = (int)((y[(size_t)i * NP + a] - lo[a]) / (hi[a] - lo[a]) * 30); if (k >= 0 && k < 30) hd[k] += 1.0 / n_tr; }
                    for (i = 0; i < ns; ++i) { k = (int)((s[(size_t)i * NP + a] - lo[a]) / (hi[a] - lo[a]) * 30); if (k >= 0 && k < 30) hf[k] += 1.0 / ns; }
                    for (k = 0; k < 30; ++k) { if (hd[k] > mx) mx = hd[k]; if (hf[k] > mx) mx = hf[k]; }
                    for (k = 0; k < 30; ++k) {
                        int px = x0 + 1 + k * (P - 2) / 30, pw = (P - 2) / 30;
                        canvas_rect(&c, px, y0 + P - 1 - (int)(hd[k] / mx * (P - 4)), px + pw, y0 + P - 1, blue);
                        canvas_line(&c, px, y0 + P - 1 - hf[k] / mx * (P - 4), px + pw, y0 + P - 1 - hf[k] / mx * (P - 4), orange, 1);
                    }
                    canvas_text(&c, x0, y0 - 3, names[a], 1, ink, TEXT_LEFT | TEXT_BASELINE);   /* runs on into the empty upper triangle */
                } else {        /* 2-D scatter: data, then flow samples */
                    for (i = 0; i < n_tr; ++i) {
                        double u = (y[(size_t)i * NP + b] - lo[b]) / (hi[b] - lo[b]), v = (y[(size_t)i * NP + a] - lo[a]) / (hi[a] - lo[a]);
                        if (u > 0 && u < 1 && v > 0 && v < 1) canvas_blend(&c, x0 + (int)(u * P), y0 + P - 1 - (int)(v * P), blue, 0.25);
                    }
                    for (i = 0; i < ns; ++i) {
                        double u = (s[(size_t)i * NP + b] - lo[b]) / (hi[b] - lo[b]), v = (s[(size_t)i * NP + a] - lo[a]) / (hi[a] - lo[a]);
                        if (u > 0 && u < 1 && v > 0 && v < 1) canvas_blend(&c, x0 + (int)(u * P), y0 + P - 1 - (int)(v * P), orange, 0.15);
                    }
                    if (b == 0) plot_yaxis(&c, &pl, axis[a], 0);
                }
                if (a == NP - 1) plot_xaxis(&c, &pl, axis[b], 0);
            }
            /* the title, legend and units in the empty upper triangle */
            kx = ml + 5 * step;
            canvas_text(&c, kx, mt + 2, "GW170814 posterior, 14 parameters", 2, ink, TEXT_LEFT | TEXT_TOP);
            canvas_legend(&c, kx, mt + 28, 2, keys, colours, TEXT_LEFT | TEXT_TOP);
            for (i = 0; i < 5; ++i) canvas_text(&c, kx, mt + 66 + 12 * i, notes[i], 1, ink, TEXT_LEFT | TEXT_TOP);
        }
        snprintf(path, sizeof path, "%s/gw170814_corner.png", out);
        if (png_write(path, &c)) { fprintf(stderr, "cannot write %s\n", path); return 1; }
        printf("wrote %s (rows and columns: %s", path, names[0]);
        for (j = 1; j < NP; ++j) printf(", %s", names[j]);
        printf("; data blue, flow orange)\n");
        canvas_free(&c); free(s);
    }
    nf_flow_destroy(f); free(raw); free(idx); free(y); free(lp);
    return 0;
}
