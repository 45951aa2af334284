/* libmodels.c - models.h as a shared library for other samplers (emcee_run.py, ctypes).

   gcc -std=c99 -O2 -DNFLOW_DOUBLE -fPIC -shared bench/posteriors/libmodels.c -o libmodels.so -lm

   Every evaluation goes through the model's nf_log_density_fn, the very function nflow
   calls. bm_cost_us simulates an expensive model: each evaluated point busy-waits that
   many microseconds (so emcee and nflow pay the same per point); bm_evals counts points. */
#define _POSIX_C_SOURCE 199309L
#ifndef NFLOW_DOUBLE
#error "build libmodels.c with -DNFLOW_DOUBLE"
#endif
#define NFLOW_IMPLEMENTATION
#include "models.h"
#include <time.h>

double bm_cost_us = 0;                 /* simulated cost per evaluated point, microseconds */
unsigned long long bm_evals = 0;       /* points evaluated since load (or the last reset) */

static void bm__burn(size_t n) {
    struct timespec t0, t;
    double need = bm_cost_us * 1e-6 * (double)n, el;
    if (!(need > 0)) return;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        clock_gettime(CLOCK_MONOTONIC, &t);
        el = (double)(t.tv_sec - t0.tv_sec) + 1e-9 * (double)(t.tv_nsec - t0.tv_nsec);
    } while (el < need);
}

static const bm_model *get(int i) { return bm_model_at(i); }

int bm_count(void) { return bm_model_count(); }
const char *bm_name(int i) { return get(i) ? get(i)->name : NULL; }
const char *bm_what(int i) { return get(i) ? get(i)->what : NULL; }
const char *bm_ref_source(int i) { return get(i) ? get(i)->ref_source : NULL; }
int bm_dim(int i) { return get(i) ? get(i)->dim : -1; }
const char *bm_param_name(int i, int j) { return get(i) && j >= 0 && j < get(i)->dim ? get(i)->names[j] : NULL; }
/* the domain kind (NF_DOMAIN_*), bounds into lo/hi */
int bm_domain(int i, int j, double *lo, double *hi) {
    if (!get(i) || j < 0 || j >= get(i)->dim) return -1;
    *lo = get(i)->domains[j].lo; *hi = get(i)->domains[j].hi;
    return get(i)->domains[j].kind;
}
int bm_logp(int i, const double *x, size_t n, double *logp) {
    if (!get(i)) return -1;
    bm__burn(n); bm_evals += n;
    return get(i)->log_density(x, n, get(i)->dim, logp, NULL, get(i)->user);
}
int bm_logp_grad(int i, const double *x, size_t n, double *logp, double *grad) {
    if (!get(i)) return -1;
    bm__burn(n); bm_evals += n;
    return get(i)->log_density(x, n, get(i)->dim, logp, grad, get(i)->user);
}
double bm_ref_mean(int i, int j) { return get(i)->ref_mean[j]; }
double bm_ref_sd(int i, int j) { return get(i)->ref_sd[j]; }
double bm_ref_log_z(int i) { return get(i)->ref_log_z; }
int bm_n_comp(int i) { return get(i)->n_comp; }
double bm_comp_weight(int i, int k) { return get(i)->comp_weight[k]; }
int bm_component(int i, const double *x) { return get(i)->component ? get(i)->component(x) : -1; }
int bm_n_derived(int i) { return get(i)->n_derived; }
const char *bm_derived_name(int i, int j) { return get(i)->derived_names[j]; }
void bm_derive(int i, const double *x, double *out) { get(i)->derive(x, out); }
double bm_derived_mean(int i, int j) { return get(i)->derived_mean[j]; }
double bm_derived_sd(int i, int j) { return get(i)->derived_sd[j]; }
