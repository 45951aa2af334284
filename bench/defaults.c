/* defaults: measures nf_fit's options on fixed data sets (issue 10, item 11: "defaults
   measured, not guessed"). One run = one data set, one train/test split, one seed, one
   setting of the options; it prints one line with the held-out test NLL (nats per row,
   mean over the test rows, which the fit never sees), the same without the worst 0.1% of
   the test rows (test_trim: robust to a single row the flow puts at log p = -4e4), the
   median and worst row, and the training time.
   bench/defaults.sh runs the sweep and prints the tables.

   Data sets (--data):
     gw14     the shipped GW170814 posterior (examples/data/gw170814_posterior.csv), all 14
              parameters, with the domains examples/gw_posterior.c declares; tc in ms after
              GPS 1186741861.5. A random 20% of the rows (by --split) is the test set; nf_fit
              gets the other 80% and holds out its own validation fraction of them.
     gw10     the same, 10 parameters: mass1 mass2 spin1_a spin1_polar spin2_a spin2_polar
              distance inclination ra dec (tc, the spin azimuths and the polarisation
              dropped; ra keeps a periodic domain)
     moons    two moons (noise 0.05, as tests/test_nflow.c), 4000 rows to fit, 10000 to
              test, drawn with seed --split
     bimodal  the 1-D two-Gaussian mixture of examples/bimodal_1d.c, 5000 rows to fit,
              10000 to test
     mix12    12-D mixture of 6 Gaussians with random means and random full covariances
              (the mixture is fixed; the rows are drawn with seed --split), 10000 rows to
              fit, 10000 to test
   For the synthetic sets the line also gives the true density's test NLL (the floor).

   Models (--preset; --couplings L and --hidden H override the data set's choice):
     realnvp  nf_flow_desc_realnvp(dim, L, H) (gw14, gw10, mix12: L 8 H 32; moons: L 6 H 32)
     glow     L times (ActNorm, affine coupling of width H, LU linear), as gw_posterior.c
     monotone monotone(H), ActNorm, monotone(H), as bimodal_1d.c (bimodal: H 12, the default
              preset there)
     nsf      nf_flow_desc_nsf(dim, L, H, --bins K (0: the preset's 8)); --tail B sets the
              spline tail bound (0: the preset's 3), also for maf-spline
     maf      nf_flow_desc_maf(dim, L, H, NF_TRANSFORM_AFFINE, 0)
     maf-spline nf_flow_desc_maf(dim, L, H, NF_TRANSFORM_SPLINE, 0)
              (nsf and maf* need a nflow.h that has them: built with -DDEFAULTS_HAVE_NSF and
              -DDEFAULTS_HAVE_MAF, which defaults.sh sets when nflow.h declares them)

   Options of the fit (each starts from nf_fit_options_default):
     --lr X --batch N --patience N --max-epochs N --val-fraction X --wd X --clip X
     --sched const|cosine   cosine decays over max_epochs x (steps per epoch), to
                            lr x --min-lr-frac (0)
     --split K  data split / data seed (0)     --seed S  fit and initialisation seed (= split)
     --splits N runs splits K .. K+N-1 (seed = split each) and prints their mean
     --csv PATH the posterior file     --dump FILE the last run's test log p, one row a line
   Usage: defaults --data gw14 [options]
*/
#define _POSIX_C_SOURCE 199309L
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>

#define PI 3.14159265358979323846
#define GW_NP 14
static const double TC0 = 1186741861.5;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return (double)t.tv_sec + (double)t.tv_nsec * 1e-9; }
static double cpu_now(void) { struct timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return (double)t.tv_sec + (double)t.tv_nsec * 1e-9; }

/* ---- data ------------------------------------------------------------------------------ */
typedef struct dataset {
    int dim;
    size_t n_fit, n_test;
    nf_real *fit, *test;          /* n_fit x dim, n_test x dim */
    nf_domain dom[GW_NP];
    int has_dom;
    double truth_nll;             /* test NLL under the true density (synthetic), else NAN */
} dataset;

/* the posterior's 14 parameters (tc as ms after TC0); returns rows, or -1 */
static long gw_read(const char *path, double **out) {
    FILE *fp = fopen(path, "r"); char line[4096]; long n = 0, cap = 1024; double *d;
    if (!fp) return -1;
    if (!fgets(line, sizeof line, fp) || strncmp(line, "tc,mass1,mass2", 14) != 0) { fclose(fp); return -1; }
    d = (double *)malloc(sizeof(double) * GW_NP * (size_t)cap);
    if (!d) { fclose(fp); return -1; }
    while (fgets(line, sizeof line, fp)) {
        char *p = line, *end; int j;
        if (n == cap) {
            double *nd = (double *)realloc(d, sizeof(double) * GW_NP * (size_t)(cap * 2));
            if (!nd) { free(d); fclose(fp); return -1; }
            d = nd; cap *= 2;
        }
        for (j = 0; j < GW_NP; ++j) {
            d[n * GW_NP + j] = strtod(p, &end);
            if (end == p) { fclose(fp); free(d); return -1; }
            p = end + (*end == ',');
        }
        d[n * GW_NP] = (d[n * GW_NP] - TC0) * 1e3;
        n++;
    }
    fclose(fp);
    *out = d;
    return n;
}

/* the domains of examples/gw_posterior.c */
static void gw_domains(nf_domain *dom) {
    int j;
    memset(dom, 0, sizeof(nf_domain) * GW_NP);
    for (j = 0; j < GW_NP; ++j) dom[j].kind = NF_DOMAIN_INTERVAL;
    dom[0].kind = NF_DOMAIN_REAL;                               /* tc (ms) */
    dom[1].lo = dom[2].lo = 10; dom[1].hi = dom[2].hi = 80;     /* detector-frame masses */
    dom[3].lo = dom[6].lo = 0; dom[3].hi = dom[6].hi = 0.99;    /* spin magnitudes */
    dom[5].hi = dom[8].hi = dom[10].hi = PI;                    /* polar angles, inclination */
    dom[9].lo = 10; dom[9].hi = 1500;                           /* distance, Mpc */
    dom[13].lo = -PI / 2; dom[13].hi = PI / 2;                  /* declination */
    dom[4].kind = dom[7].kind = dom[11].kind = dom[12].kind = NF_DOMAIN_PERIODIC;
    dom[4].hi = dom[7].hi = dom[11].hi = dom[12].hi = 2 * PI;
}

static int gw_load(dataset *ds, const char *csv, int ten, unsigned split) {
    static const int cols10[10] = {1, 2, 3, 5, 6, 8, 9, 10, 12, 13};
    static const int cols14[14] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
    const int *cols = ten ? cols10 : cols14; int D = ten ? 10 : 14, j;
    double *raw = NULL; long n = gw_read(csv, &raw), i; size_t *idx, k; nf_rng rng; nf_domain all[GW_NP];
    if (n < 100) { fprintf(stderr, "cannot read posterior samples from %s\n", csv); return 1; }
    idx = (size_t *)malloc(sizeof(size_t) * (size_t)n);
    for (i = 0; i < n; ++i) idx[i] = (size_t)i;
    nf_rng_seed(&rng, 1000u + split);
    for (i = n - 1; i > 0; --i) { size_t r = nf_rng_u32(&rng) % (uint32_t)(i + 1), t = idx[i]; idx[i] = idx[r]; idx[r] = t; }
    ds->dim = D; ds->n_test = (size_t)n / 5; ds->n_fit = (size_t)n - ds->n_test;
    ds->fit = (nf_real *)malloc(sizeof(nf_real) * (size_t)D * (size_t)n);
    ds->test = ds->fit + ds->n_fit * (size_t)D;
    for (k = 0; k < (size_t)n; ++k)   /* the first n_fit shuffled rows to fit, the rest to test */
        for (j = 0; j < D; ++j) ds->fit[k * (size_t)D + (size_t)j] = (nf_real)raw[idx[k] * GW_NP + (size_t)cols[j]];
    gw_domains(all);
    for (j = 0; j < D; ++j) ds->dom[j] = all[cols[j]];
    ds->has_dom = 1; ds->truth_nll = NAN;
    free(raw); free(idx);
    return 0;
}

static void moons_row(nf_rng *r, nf_real *y) {
    double t = PI * (double)nf_rng_uniform(r);
    int up = (int)(nf_rng_u32(r) & 1);
    y[0] = (nf_real)((up ? cos(t) : 1 - cos(t)) + 0.05 * (double)nf_rng_normal(r));
    y[1] = (nf_real)((up ? sin(t) : 0.5 - sin(t)) + 0.05 * (double)nf_rng_normal(r));
}
static void moons_load(dataset *ds, unsigned split) {
    nf_rng r; size_t i, n;
    ds->dim = 2; ds->n_fit = 4000; ds->n_test = 10000; n = ds->n_fit + ds->n_test;
    ds->fit = (nf_real *)malloc(sizeof(nf_real) * 2 * n); ds->test = ds->fit + 2 * ds->n_fit;
    nf_rng_seed(&r, 2000u + split);
    for (i = 0; i < n; ++i) moons_row(&r, ds->fit + 2 * i);
    ds->has_dom = 0; ds->truth_nll = NAN;   /* no closed form */
}

/* examples/bimodal_1d.c's mixture */
static const double BW1 = 0.35, BM1 = -2.0, BS1 = 0.4, BM2 = 1.5, BS2 = 0.6;
static double bimodal_logpdf(double y) {
    double a = (y - BM1) / BS1, b = (y - BM2) / BS2, c = 1 / sqrt(2 * PI);
    return log(BW1 * c / BS1 * exp(-0.5 * a * a) + (1 - BW1) * c / BS2 * exp(-0.5 * b * b));
}
static void bimodal_load(dataset *ds, unsigned split) {
    nf_rng r; size_t i, n; double s = 0;
    ds->dim = 1; ds->n_fit = 5000; ds->n_test = 10000; n = ds->n_fit + ds->n_test;
    ds->fit = (nf_real *)malloc(sizeof(nf_real) * n); ds->test = ds->fit + ds->n_fit;
    nf_rng_seed(&r, 3000u + split);
    for (i = 0; i < n; ++i)
        ds->fit[i] = nf_rng_uniform(&r) < BW1 ? (nf_real)(BM1 + BS1 * nf_rng_normal(&r)) : (nf_real)(BM2 + BS2 * nf_rng_normal(&r));
    for (i = 0; i < ds->n_test; ++i) s -= bimodal_logpdf((double)ds->test[i]);
    ds->has_dom = 0; ds->truth_nll = s / (double)ds->n_test;
}

/* 12-D, 6 Gaussians: means N(0, 2^2 I); covariance L L^T with L lower triangular,
   diagonal 0.3 .. 1.0, below it N(0, 0.35^2); weights 0.5 .. 1.5, normalised. The
   mixture comes from a fixed seed; --split only changes the rows drawn. */
enum { MD = 12, MK = 6 };
typedef struct mixture { double w[MK], mu[MK][MD], L[MK][MD][MD], logdet[MK]; } mixture;
static void mix_make(mixture *m) {
    nf_rng r; int k, a, b; double ws = 0;
    nf_rng_seed(&r, 12061);
    memset(m, 0, sizeof *m);
    for (k = 0; k < MK; ++k) {
        m->w[k] = 0.5 + (double)nf_rng_uniform(&r); ws += m->w[k];
        for (a = 0; a < MD; ++a) m->mu[k][a] = 2.0 * (double)nf_rng_normal(&r);
        m->logdet[k] = 0;
        for (a = 0; a < MD; ++a) {
            for (b = 0; b < a; ++b) m->L[k][a][b] = 0.35 * (double)nf_rng_normal(&r);
            m->L[k][a][a] = 0.3 + 0.7 * (double)nf_rng_uniform(&r);
            m->logdet[k] += log(m->L[k][a][a]);
        }
    }
    for (k = 0; k < MK; ++k) m->w[k] /= ws;
}
static double mix_logpdf(const mixture *m, const nf_real *y) {
    double lk[MK], mx = -HUGE_VAL, s = 0; int k, a, b;
    for (k = 0; k < MK; ++k) {   /* solve L v = y - mu */
        double v[MD], q = 0;
        for (a = 0; a < MD; ++a) {
            double t = (double)y[a] - m->mu[k][a];
            for (b = 0; b < a; ++b) t -= m->L[k][a][b] * v[b];
            v[a] = t / m->L[k][a][a]; q += v[a] * v[a];
        }
        lk[k] = log(m->w[k]) - 0.5 * q - m->logdet[k] - 0.5 * MD * log(2 * PI);
        if (lk[k] > mx) mx = lk[k];
    }
    for (k = 0; k < MK; ++k) s += exp(lk[k] - mx);
    return mx + log(s);
}
static void mix_load(dataset *ds, unsigned split) {
    static mixture m; nf_rng r; size_t i, n; int a, b; double s = 0;
    mix_make(&m);
    ds->dim = MD; ds->n_fit = 10000; ds->n_test = 10000; n = ds->n_fit + ds->n_test;
    ds->fit = (nf_real *)malloc(sizeof(nf_real) * MD * n); ds->test = ds->fit + MD * ds->n_fit;
    nf_rng_seed(&r, 4000u + split);
    for (i = 0; i < n; ++i) {
        double u = (double)nf_rng_uniform(&r), c = 0, z[MD]; int k = MK - 1, j;
        for (j = 0; j < MK; ++j) { c += m.w[j]; if (u < c) { k = j; break; } }
        for (a = 0; a < MD; ++a) z[a] = (double)nf_rng_normal(&r);
        for (a = 0; a < MD; ++a) {
            double t = m.mu[k][a];
            for (b = 0; b <= a; ++b) t += m.L[k][a][b] * z[b];
            ds->fit[i * MD + (size_t)a] = (nf_real)t;
        }
    }
    for (i = 0; i < ds->n_test; ++i) s -= mix_logpdf(&m, ds->test + i * MD);
    ds->has_dom = 0; ds->truth_nll = s / (double)ds->n_test;
}

/* ---- models ------------------------------------------------------------------------------ */
static double g_tail;   /* --tail B: the spline presets' tail bound (0: the preset's) */
static int build_desc(nf_flow_desc *d, const char *preset, int D, int L, int H, int bins) {
    nf_layer_desc l; int i;
    (void)bins;
    if (!strcmp(preset, "realnvp")) return nf_flow_desc_realnvp(d, D, L, H) != NF_OK;
    if (!strcmp(preset, "glow")) {   /* as examples/gw_posterior.c */
        nf_flow_desc_init(d, D);
        for (i = 0; i < L; ++i) {
            memset(&l, 0, sizeof l);
            l.kind = NF_LAYER_ACTNORM; if (nf_flow_desc_add(d, &l) != NF_OK) return 1;
            l.kind = NF_LAYER_AFFINE_COUPLING; l.hidden = H; l.parity = i & 1; l.mask = (i / 2) & 1;
            if (nf_flow_desc_add(d, &l) != NF_OK) return 1;
            l.kind = NF_LAYER_LU_LINEAR; l.seed = (uint32_t)i; if (nf_flow_desc_add(d, &l) != NF_OK) return 1;
        }
        return 0;
    }
    if (!strcmp(preset, "monotone")) {   /* as examples/bimodal_1d.c */
        nf_flow_desc_init(d, D);
        memset(&l, 0, sizeof l);
        l.kind = NF_LAYER_MONOTONE; l.hidden = H; nf_flow_desc_add(d, &l);
        l.kind = NF_LAYER_ACTNORM;                nf_flow_desc_add(d, &l);
        l.kind = NF_LAYER_MONOTONE; l.hidden = H; nf_flow_desc_add(d, &l);
        return 0;
    }
#ifdef DEFAULTS_HAVE_NSF
    if (!strcmp(preset, "nsf")) {
        int i;
        if (nf_flow_desc_nsf(d, D, L, H, bins) != NF_OK) return 1;
        if (g_tail > 0) for (i = 0; i < d->n_layers; ++i) d->layers[i].tail_bound = (float)g_tail;
        return 0;
    }
#endif
#ifdef DEFAULTS_HAVE_MAF
    if (!strcmp(preset, "maf")) return nf_flow_desc_maf(d, D, L, H, NF_TRANSFORM_AFFINE, 0) != NF_OK;
    if (!strcmp(preset, "maf-spline")) {
        int i;
        if (nf_flow_desc_maf(d, D, L, H, NF_TRANSFORM_SPLINE, 0) != NF_OK) return 1;
        if (g_tail > 0) for (i = 0; i < d->n_layers; ++i) d->layers[i].tail_bound = (float)g_tail;
        return 0;
    }
#endif
    fprintf(stderr, "unknown or unavailable preset %s\n", preset);
    return 1;
}

/* ---- one run ------------------------------------------------------------------------------- */
typedef struct run_out { double test_nll, test_trim, test_med, test_max, val_nll, wall, cpu; long epochs, best_epoch, steps; size_t n_params; } run_out;
static int cmp_real(const void *a, const void *b) { nf_real x = *(const nf_real *)a, y = *(const nf_real *)b; return x < y ? -1 : x > y; }
static const char *g_dump;   /* --dump FILE: the test rows' log p, one per line */

static int run_one(const dataset *ds, const char *preset, int L, int H, int bins, const nf_fit_options *base, int cosine,
                   double min_lr_frac, uint64_t seed, run_out *ro) {
    nf_flow_desc d; nf_flow *f; nf_fit_options o = *base; nf_fit_report rep; nf_real *lp; size_t i, n_val, n_tr, B;
    double t0, c0, s = 0; nf_result r;
    if (build_desc(&d, preset, ds->dim, L, H, bins)) return 1;
    d.seed = seed;
    if (ds->has_dom) d.domains = ds->dom;
    if ((r = nf_flow_create(&f, &d)) != NF_OK) { fprintf(stderr, "create: %s\n", nf_result_string(r)); return 1; }
    o.seed = seed;
    if (cosine) {   /* over the whole budget: max_epochs x steps per epoch, as nf_fit splits */
        n_val = (size_t)((double)ds->n_fit * o.val_fraction);
        if (n_val >= ds->n_fit) n_val = ds->n_fit - 1;
        n_tr = ds->n_fit - n_val; B = (size_t)o.batch < n_tr ? (size_t)o.batch : n_tr;
        o.adam.schedule = NF_SCHED_COSINE; o.adam.min_lr_frac = min_lr_frac;
        o.adam.total_steps = (long)o.max_epochs * (long)((n_tr + B - 1) / B);
    }
    t0 = now(); c0 = cpu_now();
    r = nf_fit(f, ds->fit, ds->n_fit, NULL, &o, &rep);
    ro->wall = now() - t0; ro->cpu = cpu_now() - c0;
    if (r != NF_OK) { fprintf(stderr, "fit: %s\n", nf_flow_error(f)); nf_flow_destroy(f); return 1; }
    lp = (nf_real *)malloc(sizeof(nf_real) * ds->n_test);
    nf_flow_log_prob(f, ds->test, ds->n_test, lp);
    for (i = 0; i < ds->n_test; ++i) s -= (double)lp[i];   /* a -inf log p (outside the support) stays inf */
    ro->test_nll = s / (double)ds->n_test;
    if (g_dump) {
        FILE *fp = fopen(g_dump, "w");
        if (fp) { for (i = 0; i < ds->n_test; ++i) fprintf(fp, "%.6g\n", (double)lp[i]); fclose(fp); }
    }
    qsort(lp, ds->n_test, sizeof *lp, cmp_real);   /* the median and the worst row */
    ro->test_med = -(double)lp[ds->n_test / 2]; ro->test_max = -(double)lp[0];
    {   /* without the worst 0.1% of the rows (at least one): one row at log p = -4e4 moves
           the mean of 10000 rows by 4 nats */
        size_t drop = (ds->n_test + 999) / 1000; double t = 0;
        for (i = drop; i < ds->n_test; ++i) t -= (double)lp[i];
        ro->test_trim = t / (double)(ds->n_test - drop);
    }
    ro->val_nll = rep.best_val_loss; ro->epochs = rep.epochs; ro->best_epoch = rep.best_epoch; ro->steps = rep.steps;
    ro->n_params = nf_flow_num_params(f);
    free(lp); nf_flow_destroy(f);
    return 0;
}

static void usage(const char *p) {
    fprintf(stderr, "usage: %s --data gw14|gw10|moons|bimodal|mix12 [--preset realnvp|glow|monotone|nsf|maf|maf-spline]\n"
                    "  [--couplings L] [--hidden H] [--bins K] [--lr X] [--batch N] [--patience N] [--max-epochs N]\n"
                    "  [--val-fraction X] [--sched const|cosine] [--min-lr-frac X] [--wd X] [--clip X]\n"
                    "  [--split K] [--seed S] [--splits N] [--csv PATH] [--tag TEXT] [--dump FILE]\n", p);
}

int main(int argc, char **argv) {
    const char *data = NULL, *preset = NULL, *csv = "examples/data/gw170814_posterior.csv", *tag = "-";
    int L = 0, H = 0, bins = 0, cosine = 0, splits = 1, i, k; long seed = -1; unsigned split0 = 0; double min_lr_frac = 0;
    double sum = 0, sum2 = 0, tsum = 0, tsum2 = 0, worst = -HUGE_VAL, wsum = 0, csum = 0, esum = 0;
    nf_fit_options o;
    nf_fit_options_default(&o);
    for (i = 1; i < argc; ++i) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) { usage(argv[0]); return 2; }
        if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--preset")) preset = v;
        else if (!strcmp(a, "--csv")) csv = v;
        else if (!strcmp(a, "--tag")) tag = v;
        else if (!strcmp(a, "--dump")) g_dump = v;
        else if (!strcmp(a, "--couplings")) L = atoi(v);
        else if (!strcmp(a, "--hidden")) H = atoi(v);
        else if (!strcmp(a, "--bins")) bins = atoi(v);
        else if (!strcmp(a, "--tail")) g_tail = atof(v);
        else if (!strcmp(a, "--lr")) o.adam.lr = atof(v);
        else if (!strcmp(a, "--batch")) o.batch = atoi(v);
        else if (!strcmp(a, "--patience")) o.patience = atoi(v);
        else if (!strcmp(a, "--max-epochs")) o.max_epochs = atoi(v);
        else if (!strcmp(a, "--val-fraction")) o.val_fraction = atof(v);
        else if (!strcmp(a, "--wd")) o.adam.weight_decay = atof(v);
        else if (!strcmp(a, "--clip")) o.adam.clip_norm = atof(v);
        else if (!strcmp(a, "--min-lr-frac")) min_lr_frac = atof(v);
        else if (!strcmp(a, "--sched")) {
            if (!strcmp(v, "cosine")) cosine = 1; else if (!strcmp(v, "const")) cosine = 0; else { usage(argv[0]); return 2; }
        }
        else if (!strcmp(a, "--split")) split0 = (unsigned)atoi(v);
        else if (!strcmp(a, "--seed")) seed = atol(v);
        else if (!strcmp(a, "--splits")) splits = atoi(v);
        else { usage(argv[0]); return 2; }
        ++i;
    }
    if (!data || splits < 1) { usage(argv[0]); return 2; }
    if (!preset) preset = !strcmp(data, "bimodal") ? "monotone" : "realnvp";
    if (!L) L = !strcmp(data, "moons") ? 6 : 8;
    if (!H) H = !strcmp(data, "bimodal") ? 12 : 32;
    for (k = 0; k < splits; ++k) {
        dataset ds; run_out ro; unsigned split = split0 + (unsigned)k; int bad;
        memset(&ds, 0, sizeof ds);
        if (!strcmp(data, "gw14") || !strcmp(data, "gw10")) { if (gw_load(&ds, csv, !strcmp(data, "gw10"), split)) return 1; }
        else if (!strcmp(data, "moons")) moons_load(&ds, split);
        else if (!strcmp(data, "bimodal")) bimodal_load(&ds, split);
        else if (!strcmp(data, "mix12")) mix_load(&ds, split);
        else { usage(argv[0]); return 2; }
        bad = run_one(&ds, preset, L, H, bins, &o, cosine, min_lr_frac, seed >= 0 && splits == 1 ? (uint64_t)seed : split, &ro);
        free(ds.fit);
        if (bad) return 1;
        printf("tag=%s data=%s preset=%s L=%d H=%d params=%lu split=%u lr=%g batch=%d patience=%d max_epochs=%d "
               "sched=%s wd=%g clip=%g test_nll=%.4f test_trim=%.4f val_nll=%.4f truth=%.4f test_median=%.4f test_worst=%.4g epochs=%ld best_epoch=%ld steps=%ld wall=%.2f cpu=%.2f\n",
               tag, data, preset, L, H, (unsigned long)ro.n_params, split, o.adam.lr, o.batch, o.patience, o.max_epochs,
               cosine ? "cosine" : "const", o.adam.weight_decay, o.adam.clip_norm, ro.test_nll, ro.test_trim, ro.val_nll, ds.truth_nll, ro.test_med, ro.test_max,
               ro.epochs, ro.best_epoch, ro.steps, ro.wall, ro.cpu);
        fflush(stdout);
        sum += ro.test_nll; sum2 += ro.test_nll * ro.test_nll; tsum += ro.test_trim; tsum2 += ro.test_trim * ro.test_trim;
        if (ro.test_max > worst) worst = ro.test_max;
        wsum += ro.wall; csum += ro.cpu; esum += (double)ro.epochs;
    }
    if (splits > 1) {
        double m = sum / splits, sd = sqrt(fmax(0, (sum2 - splits * m * m) / (splits - 1)));
        double tm = tsum / splits, tsd = sqrt(fmax(0, (tsum2 - splits * tm * tm) / (splits - 1)));
        printf("mean tag=%s data=%s splits=%d test_nll=%.4f sd=%.4f test_trim=%.4f trim_sd=%.4f test_worst=%.4g epochs=%.1f wall=%.2f cpu=%.2f\n",
               tag, data, splits, m, sd, tm, tsd, worst, esum / splits, wsum / splits, csum / splits);
    }
    return 0;
}
