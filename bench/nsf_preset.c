/* nsf_preset: which spline-coupling stack should nf_flow_desc_nsf build? One run fits one
   recipe to one data set on one train/test split with nf_fit's defaults (untouched) and
   prints one line: held-out NLL (nats per row, mean over the test rows), the same without
   the worst 0.1% of the test rows (test_trim, the README's GW170814 metric), parameter
   count, epochs, wall and CPU seconds. bench/nsf_preset.sh runs the sweep; the findings are
   in bench/nsf_preset.md. Uses the public API only.

   Data sets (--data):
     gw10, gw14  the GW170814 posterior (examples/data/gw170814_posterior.csv) exactly as
                 bench/defaults.c and the README's table: the same columns, domains and
                 80/20 split (rows shuffled with nf_rng seed 1000 + split)
     es10        posteriordb eight_schools_noncentered reference draws (theta[1..8], mu,
                 tau; tau > 0 as NF_DOMAIN_LOWER), 10,000 draws
     ark7        posteriordb arK reference draws (alpha, beta[1..5], sigma; sigma > 0)
     posteriordb sets: 80/20 split, rows shuffled with nf_rng seed 5000 + split
     (--pdb DIR: the folder holding the posteriordb sets, default /work/shared/data/posteriordb)

   Recipes (--recipe): a preset name, or comma-separated key=value settings of a custom
   spline-coupling stack:
     nsf          nf_flow_desc_nsf(D, L, H, K) as the header has it now
     maf          nf_flow_desc_maf(D, L, H, NF_TRANSFORM_AFFINE, 0)
     maf-spline   nf_flow_desc_maf(D, L, H, NF_TRANSFORM_SPLINE, 0)
     realnvp      nf_flow_desc_realnvp(D, L, H)
     (L, H, K and act below apply to presets too: "maf,H=16,act=softplus")
     custom keys (defaults in brackets): L couplings [8], H hidden [32], depth [2],
       K bins [8], B tail bound [5], mask checker|half [checker],
       alt 1|0: alternate the parity [1], mix none|lu|perm|rev: layer after each coupling
       but the last [none], an 0|1: ActNorm before each coupling [0],
       act relu|tanh|lrelu|softplus [the layer's default, ReLU], last lu|an|none: one more layer at the latent
       end [none], tk spline|affine|alt|alts: the coupling kind (alt: affine at even steps,
       spline at odd; alts: spline at even steps, affine at odd) [spline],
       pre 0|1: an affine coupling with the same mask before each
       spline coupling [0], mw X: spline min_width and min_height [1e-3], md X: spline
       min_derivative [1e-3]
     e.g. --recipe "mix=lu,mask=half,alt=0"   (L, H, K of a preset from the same keys)
   Options: --split K (0) --splits N (1; splits K .. K+N-1, seed = split) --max-epochs N
     (a screen at fewer epochs; nf_fit's cosine schedule then spans that budget)
     --tag TEXT --trace 1 (each epoch's losses to stderr) --threads N (nf_flow_set_parallel through OpenMP when built with it)
   Usage: nsf_preset --data gw10 --recipe nsf --splits 3 */
#define _POSIX_C_SOURCE 200809L
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>

#define PI 3.14159265358979323846
#define MAXD 16

static double wall_now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec; }
static double cpu_now(void) { struct timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec; }

/* ---- data ---------------------------------------------------------------------------------- */
typedef struct table { int dim; long n; double *x; nf_domain dom[MAXD]; } table;   /* n x dim, row-major */
typedef struct split_data { int dim; size_t n_fit, n_test; nf_real *fit, *test; } split_data;

/* numbers of a CSV with a header line; skip the first `skip` columns, keep `cols` */
static int csv_read(const char *path, const char *head, int skip, int cols, table *t) {
    FILE *fp = fopen(path, "r"); char line[8192]; long cap = 1024;
    if (!fp) return 1;
    if (!fgets(line, sizeof line, fp) || strncmp(line, head, strlen(head)) != 0) { fclose(fp); return 1; }
    t->dim = cols; t->n = 0; t->x = (double *)malloc(sizeof(double) * (size_t)cols * (size_t)cap);
    while (t->x && fgets(line, sizeof line, fp)) {
        char *p = line, *end; int j;
        if (t->n == cap) { cap *= 2; t->x = (double *)realloc(t->x, sizeof(double) * (size_t)cols * (size_t)cap); if (!t->x) break; }
        for (j = 0; j < skip + cols; ++j) {
            double v = strtod(p, &end);
            if (end == p) { fclose(fp); return 1; }
            if (j >= skip) t->x[t->n * cols + (j - skip)] = v;
            p = end + (*end == ',');
        }
        t->n++;
    }
    fclose(fp);
    return t->x == NULL;
}

/* GW170814: the columns, tc in ms and the domains of examples/gw_posterior.c */
static int gw_table(const char *csv, int ten, table *t) {
    static const int cols10[10] = {1, 2, 3, 5, 6, 8, 9, 10, 12, 13};
    table all; nf_domain dom[14]; int j, D = ten ? 10 : 14; long i;
    memset(&all, 0, sizeof all);
    if (csv_read(csv, "tc,mass1,mass2", 0, 14, &all)) return 1;
    for (i = 0; i < all.n; ++i) all.x[i * 14] = (all.x[i * 14] - 1186741861.5) * 1e3;
    memset(dom, 0, sizeof dom);
    for (j = 0; j < 14; ++j) dom[j].kind = NF_DOMAIN_INTERVAL;
    dom[0].kind = NF_DOMAIN_REAL;
    dom[1].lo = dom[2].lo = 10; dom[1].hi = dom[2].hi = 80;
    dom[3].lo = dom[6].lo = 0; dom[3].hi = dom[6].hi = 0.99;
    dom[5].hi = dom[8].hi = dom[10].hi = PI;
    dom[9].lo = 10; dom[9].hi = 1500;
    dom[13].lo = -PI / 2; dom[13].hi = PI / 2;
    dom[4].kind = dom[7].kind = dom[11].kind = dom[12].kind = NF_DOMAIN_PERIODIC;
    dom[4].hi = dom[7].hi = dom[11].hi = dom[12].hi = 2 * PI;
    t->dim = D; t->n = all.n; t->x = (double *)malloc(sizeof(double) * (size_t)D * (size_t)all.n);
    for (i = 0; i < all.n; ++i) for (j = 0; j < D; ++j) t->x[i * D + j] = all.x[i * 14 + (ten ? cols10[j] : j)];
    for (j = 0; j < D; ++j) t->dom[j] = dom[ten ? cols10[j] : j];
    free(all.x);
    return 0;
}

/* a posteriordb folder's reference draws (first column: chain); column `pos` is > 0 */
static int pdb_table(const char *dir, const char *name, const char *head, int cols, int pos, table *t) {
    char path[1024]; int j;
    snprintf(path, sizeof path, "%s/%s/reference_draws.csv", dir, name);
    if (csv_read(path, head, 1, cols, t)) return 1;
    memset(t->dom, 0, sizeof t->dom);
    for (j = 0; j < cols; ++j) t->dom[j].kind = NF_DOMAIN_REAL;
    t->dom[pos].kind = NF_DOMAIN_LOWER; t->dom[pos].lo = 0;
    return 0;
}

/* shuffle rows with nf_rng(seed), the first 80% to fit, the rest to test (as defaults.c) */
static void make_split(const table *t, uint64_t seed, split_data *s) {
    size_t *idx = (size_t *)malloc(sizeof(size_t) * (size_t)t->n), k; long i; int j, D = t->dim; nf_rng r;
    for (i = 0; i < t->n; ++i) idx[i] = (size_t)i;
    nf_rng_seed(&r, seed);
    for (i = t->n - 1; i > 0; --i) { size_t q = nf_rng_u32(&r) % (uint32_t)(i + 1), tmp = idx[i]; idx[i] = idx[q]; idx[q] = tmp; }
    s->dim = D; s->n_test = (size_t)t->n / 5; s->n_fit = (size_t)t->n - s->n_test;
    s->fit = (nf_real *)malloc(sizeof(nf_real) * (size_t)D * (size_t)t->n);
    s->test = s->fit + s->n_fit * (size_t)D;
    for (k = 0; k < (size_t)t->n; ++k) for (j = 0; j < D; ++j) s->fit[k * (size_t)D + (size_t)j] = (nf_real)t->x[idx[k] * (size_t)D + (size_t)j];
    free(idx);
}

/* ---- recipes ------------------------------------------------------------------------------- */
typedef struct recipe {
    char preset[16];          /* nsf maf maf-spline realnvp, or "" for a custom stack */
    int L, H, depth, K, mask, alt, mix, an, act, last, tk, pre;
    double B, mw, md;
} recipe;
enum { MIX_NONE, MIX_LU, MIX_PERM, MIX_REV };
enum { LAST_NONE, LAST_LU, LAST_AN };

static int parse_recipe(const char *s, recipe *r) {
    char buf[512], *tok, *save = NULL;
    memset(r, 0, sizeof *r);
    r->L = 8; r->H = 32; r->depth = 2; r->K = 8; r->B = 5; r->mask = NF_MASK_CHECKER; r->alt = 1; r->act = 0;   /* 0: the layer's default (ReLU) */
    r->tk = NF_LAYER_SPLINE_COUPLING;
    snprintf(buf, sizeof buf, "%s", s);
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '='), *v;
        if (!eq) {
            if (strcmp(tok, "nsf") && strcmp(tok, "maf") && strcmp(tok, "maf-spline") && strcmp(tok, "realnvp")) return 1;
            snprintf(r->preset, sizeof r->preset, "%s", tok);
            continue;
        }
        *eq = 0; v = eq + 1;
        if (!strcmp(tok, "L")) r->L = atoi(v);
        else if (!strcmp(tok, "H")) r->H = atoi(v);
        else if (!strcmp(tok, "depth")) r->depth = atoi(v);
        else if (!strcmp(tok, "K")) r->K = atoi(v);
        else if (!strcmp(tok, "B")) r->B = atof(v);
        else if (!strcmp(tok, "alt")) r->alt = atoi(v);
        else if (!strcmp(tok, "an")) r->an = atoi(v);
        else if (!strcmp(tok, "mask")) { if (!strcmp(v, "half")) r->mask = NF_MASK_HALF; else if (!strcmp(v, "checker")) r->mask = NF_MASK_CHECKER; else return 1; }
        else if (!strcmp(tok, "mix")) {
            if (!strcmp(v, "none")) r->mix = MIX_NONE; else if (!strcmp(v, "lu")) r->mix = MIX_LU;
            else if (!strcmp(v, "perm")) r->mix = MIX_PERM; else if (!strcmp(v, "rev")) r->mix = MIX_REV; else return 1;
        }
        else if (!strcmp(tok, "last")) {
            if (!strcmp(v, "none")) r->last = LAST_NONE; else if (!strcmp(v, "lu")) r->last = LAST_LU;
            else if (!strcmp(v, "an")) r->last = LAST_AN; else return 1;
        }
        else if (!strcmp(tok, "act")) {
            if (!strcmp(v, "relu")) r->act = NF_ACT_RELU; else if (!strcmp(v, "tanh")) r->act = NF_ACT_TANH;
            else if (!strcmp(v, "lrelu")) r->act = NF_ACT_LEAKY_RELU; else if (!strcmp(v, "softplus")) r->act = NF_ACT_SOFTPLUS; else return 1;
        }
        else if (!strcmp(tok, "tk")) {
            if (!strcmp(v, "affine")) r->tk = NF_LAYER_AFFINE_COUPLING; else if (!strcmp(v, "spline")) r->tk = NF_LAYER_SPLINE_COUPLING;
            else if (!strcmp(v, "alt")) r->tk = -1; else if (!strcmp(v, "alts")) r->tk = -2; else return 1;
        }
        else if (!strcmp(tok, "pre")) r->pre = atoi(v);
        else if (!strcmp(tok, "mw")) r->mw = atof(v);
        else if (!strcmp(tok, "md")) r->md = atof(v);
        else return 1;
    }
    return 0;
}

static int add(nf_flow_desc *d, int kind, uint32_t seed) {
    nf_layer_desc l; memset(&l, 0, sizeof l); l.kind = kind; l.seed = seed;
    return nf_flow_desc_add(d, &l) != NF_OK;
}
static int build(const recipe *r, int D, nf_flow_desc *d) {
    int i;
    if (r->preset[0]) {   /* a preset; act= (if given) sets every conditioner's activation */
        nf_result e = !strcmp(r->preset, "nsf") ? nf_flow_desc_nsf(d, D, r->L, r->H, r->K)
                    : !strcmp(r->preset, "maf") ? nf_flow_desc_maf(d, D, r->L, r->H, NF_TRANSFORM_AFFINE, 0)
                    : !strcmp(r->preset, "maf-spline") ? nf_flow_desc_maf(d, D, r->L, r->H, NF_TRANSFORM_SPLINE, 0)
                    : nf_flow_desc_realnvp(d, D, r->L, r->H);
        if (r->act) for (i = 0; i < d->n_layers; ++i) if (d->layers[i].hidden) d->layers[i].activation = r->act;
        return e != NF_OK;
    }
    nf_flow_desc_init(d, D);
    for (i = 0; i < r->L; ++i) {
        nf_layer_desc l; memset(&l, 0, sizeof l);
        if (r->an && add(d, NF_LAYER_ACTNORM, 0)) return 1;
        l.kind = r->tk >= 0 ? r->tk : ((i & 1) == (r->tk == -1)) ? NF_LAYER_SPLINE_COUPLING : NF_LAYER_AFFINE_COUPLING;
        l.hidden = r->H; l.depth = r->depth; l.activation = r->act; l.mask = r->mask;
        l.parity = r->alt ? (i & 1) : 0;
        if (r->pre && l.kind == NF_LAYER_SPLINE_COUPLING) {
            l.kind = NF_LAYER_AFFINE_COUPLING;
            if (nf_flow_desc_add(d, &l) != NF_OK) return 1;
            l.kind = NF_LAYER_SPLINE_COUPLING;
        }
        if (l.kind == NF_LAYER_SPLINE_COUPLING) {
            l.bins = r->K; l.tail_bound = (float)r->B;
            l.min_width = l.min_height = (float)r->mw; l.min_derivative = (float)r->md;
        }
        if (nf_flow_desc_add(d, &l) != NF_OK) return 1;
        if (i + 1 < r->L) {
            if (r->mix == MIX_LU && add(d, NF_LAYER_LU_LINEAR, (uint32_t)i)) return 1;
            if (r->mix == MIX_PERM && add(d, NF_LAYER_PERMUTE, (uint32_t)i)) return 1;
            if (r->mix == MIX_REV && add(d, NF_LAYER_REVERSE, 0)) return 1;
        }
    }
    if (r->last == LAST_LU && add(d, NF_LAYER_LU_LINEAR, 99u)) return 1;
    if (r->last == LAST_AN && add(d, NF_LAYER_ACTNORM, 0)) return 1;
    return 0;
}

/* ---- one fit ------------------------------------------------------------------------------- */
typedef struct result { double nll, trim, wall, cpu; long epochs, best_epoch, steps; size_t params; } result;
static int g_trace;   /* --trace 1: each epoch's train and validation NLL to stderr */
static int trace_cb(const nf_fit_progress *p, void *user) {
    (void)user;
    fprintf(stderr, "epoch %3ld train %.4f val %.4f best %.4f lr %.2e\n", p->epoch, p->train_loss, p->val_loss, p->best_val_loss, p->lr);
    return 0;
}
static int cmp_real(const void *a, const void *b) { nf_real x = *(const nf_real *)a, y = *(const nf_real *)b; return x < y ? -1 : x > y; }

static int fit_one(const split_data *s, const nf_domain *dom, const recipe *rc, uint64_t seed, int max_epochs, int threads, result *out) {
    nf_flow_desc d; nf_flow *f; nf_fit_options o; nf_fit_report rep; nf_real *lp; size_t i, drop; double t0, c0, sum = 0, tsum = 0; nf_result r;
    if (build(rc, s->dim, &d)) { fprintf(stderr, "recipe does not build\n"); return 1; }
    d.seed = seed; d.domains = dom;
    if ((r = nf_flow_create(&f, &d)) != NF_OK) { fprintf(stderr, "create: %s\n", nf_result_string(r)); return 1; }
#ifdef NFLOW_OPENMP
    if (threads > 1) nf_flow_set_parallel(f, nf_parallel_openmp, NULL, threads);
    else nf_flow_set_parallel(f, NULL, NULL, 1);
#else
    (void)threads;
#endif
    nf_fit_options_default(&o);
    o.seed = seed;
    if (max_epochs > 0) o.max_epochs = max_epochs;
    if (g_trace) o.callback = trace_cb;
    t0 = wall_now(); c0 = cpu_now();
    r = nf_fit(f, s->fit, s->n_fit, NULL, &o, &rep);
    out->wall = wall_now() - t0; out->cpu = cpu_now() - c0;
    if (r != NF_OK) { fprintf(stderr, "fit: %s\n", nf_flow_error(f)); nf_flow_destroy(f); return 1; }
    lp = (nf_real *)malloc(sizeof(nf_real) * s->n_test);
    if ((r = nf_flow_log_prob(f, s->test, s->n_test, lp)) != NF_OK) fprintf(stderr, "log_prob: %s (row %ld)\n", nf_flow_error(f), nf_flow_error_row(f));
    for (i = 0; i < s->n_test; ++i) sum -= (double)lp[i];
    qsort(lp, s->n_test, sizeof *lp, cmp_real);
    drop = (s->n_test + 999) / 1000;   /* the worst 0.1% of the rows, at least one */
    for (i = drop; i < s->n_test; ++i) tsum -= (double)lp[i];
    out->nll = sum / (double)s->n_test; out->trim = tsum / (double)(s->n_test - drop);
    out->epochs = rep.epochs; out->best_epoch = rep.best_epoch; out->steps = rep.steps;
    out->params = nf_flow_num_params(f);
    free(lp); nf_flow_destroy(f);
    return 0;
}

int main(int argc, char **argv) {
    const char *data = NULL, *rtext = "nsf", *tag = "-", *pdb = "/work/shared/data/posteriordb", *csv = "examples/data/gw170814_posterior.csv";
    int split0 = 0, splits = 1, max_epochs = 0, threads = 1, i, k; recipe rc; table t; uint64_t split_base;
    double m = 0, m2 = 0, tm = 0, tm2 = 0, wsum = 0, csum = 0, esum = 0;
    for (i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--data")) data = v; else if (!strcmp(a, "--recipe")) rtext = v;
        else if (!strcmp(a, "--tag")) tag = v; else if (!strcmp(a, "--pdb")) pdb = v; else if (!strcmp(a, "--csv")) csv = v;
        else if (!strcmp(a, "--split")) split0 = atoi(v); else if (!strcmp(a, "--splits")) splits = atoi(v);
        else if (!strcmp(a, "--max-epochs")) max_epochs = atoi(v); else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--trace")) g_trace = atoi(v);
        else break;
    }
    if (i < argc || !data || splits < 1 || parse_recipe(rtext, &rc)) {
        fprintf(stderr, "usage: %s --data gw10|gw14|es10|ark7 --recipe RECIPE [--split K] [--splits N] [--max-epochs N] [--tag T]\n", argv[0]);
        return 2;
    }
    memset(&t, 0, sizeof t);
    if (!strcmp(data, "gw10") || !strcmp(data, "gw14")) { if (gw_table(csv, !strcmp(data, "gw10"), &t)) goto bad; split_base = 1000; }
    else if (!strcmp(data, "es10")) {
        if (pdb_table(pdb, "eight_schools-eight_schools_noncentered", "chain,theta[1]", 10, 9, &t)) goto bad;
        split_base = 5000;
    } else if (!strcmp(data, "ark7")) {
        if (pdb_table(pdb, "arK-arK", "chain,alpha", 7, 6, &t)) goto bad;
        split_base = 5000;
    } else goto bad;
    for (k = 0; k < splits; ++k) {
        split_data s; result r; int sp = split0 + k;
        make_split(&t, split_base + (uint64_t)sp, &s);
        if (fit_one(&s, t.dom, &rc, (uint64_t)sp, max_epochs, threads, &r)) return 1;
        printf("tag=%s data=%s recipe=%s split=%d params=%lu test_nll=%.4f test_trim=%.4f epochs=%ld best_epoch=%ld steps=%ld wall=%.2f cpu=%.2f\n",
               tag, data, rtext, sp, (unsigned long)r.params, r.nll, r.trim, r.epochs, r.best_epoch, r.steps, r.wall, r.cpu);
        fflush(stdout);
        m += r.nll; m2 += r.nll * r.nll; tm += r.trim; tm2 += r.trim * r.trim; wsum += r.wall; csum += r.cpu; esum += (double)r.epochs;
        free(s.fit);
    }
    if (splits > 1) {
        double a = m / splits, b = tm / splits;
        printf("mean tag=%s data=%s recipe=%s splits=%d test_nll=%.4f sd=%.4f test_trim=%.4f trim_sd=%.4f epochs=%.1f wall=%.2f cpu=%.2f\n",
               tag, data, rtext, splits, a, sqrt(fmax(0, (m2 - splits * a * a) / (splits - 1))), b,
               sqrt(fmax(0, (tm2 - splits * b * b) / (splits - 1))), esum / splits, wsum / splits, csum / splits);
    }
    free(t.x);
    return 0;
bad:
    fprintf(stderr, "cannot load data set %s\n", data);
    return 1;
}
