/* libFuzzer target for the public API: the input bytes describe a flow (every layer
   setting and domain taken from the bytes, invalid values included), a pool of data
   rows drawn from a palette of awkward values, and a sequence of calls with fuzzed
   arguments. Properties checked (abort() with a message on stderr):
     - no crash, no sanitizer report, no leak (ASan/UBSan/LSan do this);
     - every call returns a valid nf_result (0 .. NF_RESULT_COUNT-1);
     - a failing call leaves a non-empty nf_flow_error(f) (the message is cleared before
       each call, so a stale one does not count); calls on a const flow (save, export)
       cannot write it and are exempt;
     - a call that returns NF_OK wrote only finite values: log-densities, latents,
       samples, log-dets, losses, gradients, parameters, standardisation, reports.
       log_prob may be -inf exactly for rows outside an interval or half-line domain
       (nf_flow_in_domain says so), and must be -inf there;
     - samples and inverses lie inside the domains (periodic: in [lo, hi));
     - a saved and reloaded flow (nf_flow_load, and nf_flow_load_into a flow built from
       nf_flow_get_desc) gives bit-identical log_prob and samples;
     - exported C source contains no nan/inf literal.

   Build:  clang -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined tests/fuzz/fuzz_api.c -lm
   Seeds:  gcc -std=c99 -DFUZZ_API_SEEDS tests/fuzz/fuzz_api.c -lm && ./a.out DIR
   (tests/fuzz/run_api.sh does both). -DNFLOW_DOUBLE fuzzes the double build.

   Known-issue classes: NFLOW_FUZZ_KNOWN="class,class" in the environment turns the
   named check classes into a stderr note instead of an abort, so that fuzzing can go
   on past a finding that is already reported. NFLOW_FUZZ_TRACE=1 prints every call.

   INPUT FORMAT (bytes past the end read as 0)
     flow:    dim (1 + b % 8), context_dim (b % 4), base, seed, chunk, how to build
              (create, or size + init in caller memory, maybe too small),
              n_layers (b % 7), per layer: kind (1 .. NF_LAYER_KIND_COUNT-1, or invalid),
              hidden, depth, activation, clamp, mask, parity, seed (palettes below),
              domains (NULL or per dimension kind, lo, hi, cut, fixed_cut);
     data:    rows (1 + b % 16), then rows x dim values from the value palette (edges of
              the column's domain included), 64 context rows, 16 weights, rng seed;
     calls:   up to MAX_OPS, each an opcode byte and its arguments; then always a final
              log_prob of every row and a save/reload comparison.
   Caps: dim <= 8, context <= 3, <= 6 layers, hidden <= 32 (0: the default, 64 for
   couplings), depth <= 3, <= 16 data rows, batches <= 16, samples <= 40,
   importance draws <= 130. */
#define NFLOW_IMPLEMENTATION
#include "../../nflow.h"
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef NFLOW_DOUBLE
#define R_NEXT(x, to) nextafter((x), (to))
#define R_MAXV DBL_MAX
#define R_TRUE_MIN 4.9406564584124654e-324
#else
#define R_NEXT(x, to) nextafterf((x), (to))
#define R_MAXV FLT_MAX
#define R_TRUE_MIN 1.40129846e-45f
#endif

#define MAX_D 8
#define MAX_C 3
#define MAX_ROWS 16
#define CTX_ROWS 64
#define MAX_OUT 160       /* rows of output scratch */
#define MAX_OPS 24

/* ---- reporting ------------------------------------------------------------------ */
static int g_trace = -1;
static const char *g_known;
static const char *g_op = "start";

static int known(const char *cls) {
    const char *p; size_t n = strlen(cls);
    if (!g_known) return 0;
    for (p = g_known; (p = strstr(p, cls)) != NULL; p += n)
        if ((p == g_known || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return 1;
    return 0;
}
static void trace(const char *fmt, ...) {
    va_list ap;
    if (g_trace < 0) { const char *e = getenv("NFLOW_FUZZ_TRACE"); g_trace = e && *e && *e != '0'; g_known = getenv("NFLOW_FUZZ_KNOWN"); }
    if (!g_trace) return;
    va_start(ap, fmt); vfprintf(stderr, fmt, ap); va_end(ap);
    fputc('\n', stderr);
}
/* a property failed: abort unless the class is a known, reported issue (known ones are
   printed the first 3 times per class) */
static void fail(const char *cls, const char *fmt, ...) {
    static char seen[32][40]; static int count[32], n_seen;
    va_list ap; int k, is_known = known(cls);
    if (is_known) {
        for (k = 0; k < n_seen && strcmp(seen[k], cls) != 0; ++k) {}
        if (k == n_seen && n_seen < 32) { snprintf(seen[n_seen], sizeof seen[0], "%s", cls); ++n_seen; }
        if (k < 32 && ++count[k] > 3 && !g_trace) return;
    }
    fprintf(stderr, "fuzz_api: [%s] in %s: ", cls, g_op);
    va_start(ap, fmt); vfprintf(stderr, fmt, ap); va_end(ap);
    fputc('\n', stderr);
    if (!is_known) abort();
}

/* ---- the byte reader ------------------------------------------------------------ */
typedef struct fz { const uint8_t *p; size_t n, i; } fz;
static unsigned u8(fz *z) { return z->i < z->n ? z->p[z->i++] : 0u; }
static int pick(fz *z, int n) { return (int)(u8(z) % (unsigned)n); }
static uint32_t u32(fz *z) { uint32_t v = 0; int k; for (k = 0; k < 4; ++k) v |= (uint32_t)u8(z) << (8 * k); return v; }
static uint64_t u64(fz *z) { uint64_t v = u32(z); return v | (uint64_t)u32(z) << 32; }
#define PICK(z, pal) ((pal)[pick((z), (int)(sizeof(pal) / sizeof((pal)[0])))])

/* ---- palettes ---------------------------------------------------------------------- */
static const int base_pal[] = {0, 1, 0, 1, 0, 1, 2, -1};
static const int chunk_pal[] = {0, 0, 0, 1, 2, 3, 5, 17, 64, 256, 1000, -1, (1 << 20) + 1};
static const int hidden_pal[] = {1, 2, 3, 4, 5, 8, 16, 32, 1, 2, 3, 4, 0, -1, 65537, 257};
static const int depth_pal[] = {1, 1, 2, 2, 3, 0, -1, 65};
static const int act_pal[] = {0, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6, 7, -1};
static const int maskpar_pal[] = {0, 1, 0, 1, 0, 1, 2, -1};
/* spline and autoregressive settings; index 0 is the default (0) */
static const int bins_pal[] = {0, 2, 3, 4, 8, 5, 16, 64, 0, 1, 65, -1};
static const int transformer_pal[] = {0, 1, 0, 1, 2, -1};
static const int inverse_pal[] = {0, 1, 0, 1, 2, -1};
static const int order_pal[] = {0, 1, 2, 0, 1, 2, 3, -1};
static float float_pal(fz *z, const float *v, int n) {
    int k = pick(z, n + 2);
    if (k == n) return (float)NAN;
    if (k == n + 1) return (float)INFINITY;
    return v[k];
}
static float tail_pal(fz *z) {
    static const float v[] = {0.0f, 3.0f, 1.0f, 0.5f, 10.0f, 1e-3f, 100.0f, 1e-30f, 1e-40f, -1.0f, 1e5f, 1e6f, 5e5f};
    return float_pal(z, v, (int)(sizeof v / sizeof v[0]));
}
static float minwh_pal(fz *z) {
    static const float v[] = {0.0f, 1e-3f, 0.1f, 0.3f, 0.49f, 0.5f, 1e-7f, 1e-30f, 1e-40f, -0.1f, 1.0f, 0.0f};
    return float_pal(z, v, (int)(sizeof v / sizeof v[0]));
}
static float mind_pal(fz *z) {
    static const float v[] = {0.0f, 1e-3f, 0.5f, 0.9999999f, 1e-7f, 1e-30f, 1e-40f, 1.0f, -1.0f, 0.0f, 0.25f};
    return float_pal(z, v, (int)(sizeof v / sizeof v[0]));
}
static float clamp_pal(fz *z) {
    static const float v[] = {0.0f, 3.0f, 1.0f, 0.5f, 5.0f, 1e-3f, 3.0f, 0.0f, 1e-20f, 1e-30f, 1e-38f, 1e-40f,
                              1.4e-45f, -1.0f, 1e29f, 1e30f, 0.0f, 2.0f};
    int k = pick(z, 20);
    if (k == 18) return (float)NAN;
    if (k == 19) return (float)INFINITY;
    return v[k];
}
/* domain bounds (double) */
static double dpal(fz *z) {
    static const double v[] = {0, 1, -1, 2, -3, 0.5, 6.283185307179586, 100, 1e-3, -1e-3, 0, 1, -2, 3.5,
                               1e30, -1e30, 1e300, 5e-324, 1e9, 1e-40, -1e9};
    int k = pick(z, 24);
    if (k == 21) return NAN;
    if (k == 22) return INFINITY;
    if (k == 23) return -INFINITY;
    return v[k];
}
static double delta_pal(fz *z) {
    static const double v[] = {1, 2, 0.5, 6.283185307179586, 10, 1, 2, 1e-3, 1e-6, 1e-30, 1e-45, 0, -1, 1e30, 1e300};
    int k = pick(z, 16);
    return k == 15 ? NAN : v[k];
}

static void gen_domain(fz *z, nf_domain *m) {
    static const int kind_pal[] = {0, 1, 2, 3, 1, 2, 3, 0, 1, 3, 4, -1};
    static const int fixed_pal[] = {0, 1, 0, 1, 0, 2, -1};
    static const double frac_pal[] = {0.5, 0.25, 0.75, 0, 1, 0.999, 1.5, -0.5};
    memset(m, 0, sizeof *m);
    m->kind = PICK(z, kind_pal);
    m->lo = dpal(z);
    m->hi = pick(z, 4) ? m->lo + delta_pal(z) : dpal(z);
    m->cut = pick(z, 4) ? m->lo + (m->hi - m->lo) * PICK(z, frac_pal) : dpal(z);
    m->fixed_cut = PICK(z, fixed_pal);
}

/* A data value for a column with domain m: ordinary values (inside bounded domains
   about half the time), or one of the awkward ones: NaN, +-Inf, denormals, +-1e30,
   +-max, 0, -0, the domain's exact edges and cut, their float neighbours on both
   sides, points just inside and outside, raw bit patterns. */
static nf_real gen_val(fz *z, const nf_domain *m) {
    unsigned b = u8(z);
    double lo = -1, hi = 1, cut = 0;
    nf_real rlo, rhi, rcut;
    if (m && (m->kind == NF_DOMAIN_INTERVAL || m->kind == NF_DOMAIN_LOWER || m->kind == NF_DOMAIN_PERIODIC) && isfinite(m->lo)) {
        lo = m->lo;
        hi = m->kind == NF_DOMAIN_LOWER ? m->lo + 10 : m->hi;
        cut = m->kind == NF_DOMAIN_PERIODIC ? m->cut : (lo + hi) / 2;
        if (b < 128 && (b & 1)) return (nf_real)(lo + (hi - lo) * ((double)(b >> 1) + 0.5) / 64.0);
    }
    if (b < 128) return (nf_real)(((double)b - 64.0) / 8.0);
    rlo = (nf_real)lo; rhi = (nf_real)hi; rcut = (nf_real)cut;
    switch ((b - 128) % 32) {
    case 0: return 0;
    case 1: return (nf_real)-0.0;
    case 2: return (nf_real)NAN;
    case 3: return (nf_real)INFINITY;
    case 4: return (nf_real)-INFINITY;
    case 5: return R_TRUE_MIN;
    case 6: return -R_TRUE_MIN;
    case 7: return (nf_real)1e30;
    case 8: return (nf_real)-1e30;
    case 9: return R_MAXV;
    case 10: return -R_MAXV;
    case 11: return (nf_real)1e-30;
    case 12: return rlo;
    case 13: return R_NEXT(rlo, (nf_real)INFINITY);
    case 14: return R_NEXT(rlo, (nf_real)-INFINITY);
    case 15: return rhi;
    case 16: return R_NEXT(rhi, (nf_real)INFINITY);
    case 17: return R_NEXT(rhi, (nf_real)-INFINITY);
    case 18: return rcut;
    case 19: return R_NEXT(rcut, (nf_real)INFINITY);
    case 20: return R_NEXT(rcut, (nf_real)-INFINITY);
    case 21: return (nf_real)(lo - (hi - lo) * 1e-3);
    case 22: return (nf_real)(hi + (hi - lo) * 1e-3);
    case 23: return (nf_real)(lo + (hi - lo) * 1e-6);
    case 24: return (nf_real)(hi - (hi - lo) * 1e-6);
    case 25: { uint32_t u = u32(z); float f; memcpy(&f, &u, 4); return (nf_real)f; }
    case 26: { uint64_t u = u64(z); double d; memcpy(&d, &u, 8); return (nf_real)d; }
    case 27: return (nf_real)1e15;
    case 28: return (nf_real)-1e15;
    case 29: return (nf_real)((lo + hi) / 2);
    case 30: return (nf_real)(cut + (hi - lo));
    default: return (nf_real)(cut - (hi - lo));
    }
}
static nf_real gen_ctx(fz *z) {
    unsigned b = u8(z);
    if (b < 200) return (nf_real)(((double)b - 100.0) / 16.0);
    switch (b % 8) {
    case 0: return (nf_real)NAN;
    case 1: return (nf_real)INFINITY;
    case 2: return (nf_real)1e30;
    case 3: return (nf_real)-1e30;
    case 4: return R_TRUE_MIN;
    case 5: return R_MAXV;
    case 6: return (nf_real)1e15;
    default: return 0;
    }
}
static nf_real gen_weight(fz *z) {
    switch (pick(z, 20)) {
    case 0: case 1: case 2: case 3: case 4: case 5: return 1;
    case 6: return NF__R(0.5);
    case 7: return 2;
    case 8: case 9: return 0;
    case 10: return (nf_real)NAN;
    case 11: return -1;
    case 12: return (nf_real)INFINITY;
    case 13: return (nf_real)1e30;
    case 14: return R_TRUE_MIN;
    case 15: return (nf_real)1e-30;
    case 16: return (nf_real)-0.0;
    case 17: return R_MAXV;
    case 18: return 3;
    default: return NF__R(0.25);
    }
}
/* a latent/misc value: the data palette without a domain */
static nf_real gen_any(fz *z) { return gen_val(z, NULL); }

/* ---- the state of one run --------------------------------------------------------- */
typedef struct run {
    fz *z;
    nf_flow *f;
    nf_trainer *tr;
    int D, C, n_rows;
    nf_real y[MAX_ROWS * MAX_D];
    nf_real ctx[CTX_ROWS * MAX_C + 1];
    nf_real w[MAX_ROWS];
    nf_real out[MAX_OUT * MAX_D], out2[MAX_OUT * MAX_D], lp[MAX_OUT], lp2[MAX_OUT];
    nf_rng rng;
    int tr_bad;      /* the trainer's Adam config is out of range (lr NaN, beta1 = 1, ...) */
    int adam_bad;    /* the config of the call being checked is */
    int poisoned;    /* the flow's parameters are no longer finite: stop this input */
    int in_data_init;   /* checking after nf_flow_data_init (repro/actnorm_data_init_inf.c) */
    int mask_dirty;  /* nf_trainer_apply ran on a changed gradient of a flow with autoregressive
                        layers (repro/trainer_apply_breaks_ar_mask.c) */
    int huge_grad;   /* the caller's gradient for nf_trainer_apply holds |g| > 1e19 */
    int std_by_fit;  /* nf_fit set the standardisation (not nf_flow_set_standardization) */
} run;

static int finite_r(nf_real x) { return isfinite((double)x); }

static void clr(run *s) { if (s->f) { s->f->err[0] = 0; s->f->err_row = -1; } }

/* every call: a valid result, and a message when it failed */
static void check_rc(run *s, nf_result r, int has_msg) {
    trace("  %s -> %d (%s) %s", g_op, (int)r, (int)r >= 0 && r < NF_RESULT_COUNT ? nf_result_string(r) : "?",
          r != NF_OK && s->f ? nf_flow_error(s->f) : "");
    if ((int)r < 0 || r >= NF_RESULT_COUNT) fail("bad_result", "returned %d", (int)r);
    if (r != NF_OK && has_msg && s->f) {
        const char *e = nf_flow_error(s->f);
        if (!e || !e[0]) fail("empty_error", "returned %d (%s) and left nf_flow_error empty", (int)r, nf_result_string(r));
    }
}

static void check_vec(const char *cls, const nf_real *v, size_t n, const char *what) {
    size_t i;
    for (i = 0; i < n; ++i)
        if (!finite_r(v[i])) { fail(cls, "NF_OK but %s[%lu] = %g", what, (unsigned long)i, (double)v[i]); return; }
}
/* parameter i belongs to an ActNorm layer (its data-dependent start: repro/actnorm_data_init_inf.c) */
static int actnorm_param(run *s, size_t i) {
    int k;
    for (k = 0; k < s->f->n_layers; ++k)
        if (s->f->layers[k].kind == NF_LAYER_ACTNORM && i >= s->f->layers[k].poff && i < s->f->layers[k].poff + s->f->layers[k].np) return 1;
    return 0;
}
static void check_params(run *s) {
    nf_real mean[MAX_D + MAX_C], sd[MAX_D + MAX_C]; int j;
    const nf_real *p = nf_flow_params(s->f);
    size_t i;
    for (i = 0; p && i < nf_flow_num_params(s->f); ++i)
        if (!finite_r(p[i])) {
            s->poisoned = 1;
            fail(s->adam_bad ? "adam_config_unchecked" : s->huge_grad ? "adam_huge_gradient" :
                 s->in_data_init || actnorm_param(s, i) ? "data_init_nonfinite" : "params_nonfinite",
                 "NF_OK but params[%lu] = %g", (unsigned long)i, (double)p[i]);
            break;
        }
    /* a step with an out-of-range config that went through: the parameters are whatever
       it made them; what follows would only repeat the finding */
    if (s->adam_bad) s->poisoned = 1;
    nf_flow_get_standardization(s->f, mean, sd);
    for (j = 0; j < s->D + s->C; ++j)
        if (!finite_r(mean[j]) || !finite_r(sd[j]) || !(sd[j] > 0))
            fail("std_bad", "standardisation %d: mean %g, std %g", j, (double)mean[j], (double)sd[j]);
}

/* Overflow: a true value beyond the largest nf_real (the density of y = -1e30 under a
   standard normal is e^-5e59) comes out as +-inf. Such results get their own classes,
   so that the other checks go on when they are known: overflow_extreme_input when the
   input row or its context holds a value of magnitude > 1e6, overflow_extreme_state when
   the flow's standardisation is that far from 1 (overflow_extreme_std) or a parameter is
   beyond +-30 (overflow_extreme_params). NaN is never excused. */
#define EXTREME 1e6
static int row_extreme(const nf_real *v, int k) {
    int j;
    for (j = 0; v && j < k; ++j) if (!(fabs((double)v[j]) <= EXTREME)) return 1;
    return 0;
}
/* an ActNorm layer started from a column without spread: log-scale at the floor's
   -log(1e-6) = 13.8 (repro/actnorm_init_zero_spread.c) */
static int actnorm_floored(run *s) {
    int k, j;
    for (k = 0; k < s->f->n_layers; ++k)
        if (s->f->layers[k].kind == NF_LAYER_ACTNORM)
            for (j = 0; j < s->D; ++j) if (s->f->params[s->f->layers[k].poff + (size_t)j] > NF__R(13.5)) return 1;
    return 0;
}
/* 1: the standardisation is extreme (large), 3: a standard deviation is tiny, 2: a
   parameter is extreme */
static int state_extreme(run *s) {
    nf_real mean[MAX_D + MAX_C], sd[MAX_D + MAX_C]; int j; size_t i, np = nf_flow_num_params(s->f);
    const nf_real *p = s->f->params;
    nf_flow_get_standardization(s->f, mean, sd);
    for (j = 0; j < s->D + s->C; ++j) if (!(sd[j] >= 1 / EXTREME)) return 3;
    for (j = 0; j < s->D + s->C; ++j)
        if (!(fabs((double)mean[j]) <= EXTREME) || !(sd[j] <= EXTREME)) return 1;
    for (i = 0; i < np; ++i) if (!(fabs((double)p[i]) <= 30)) return 2;   /* exp(30) ~ 1e13 */
    return 0;
}
static const char *row_str(const nf_real *y, int D) {
    static char buf[512]; int j, n = 0;
    for (j = 0; j < D && n < 400; ++j) n += snprintf(buf + n, sizeof buf - (size_t)n, "%s%.9g", j ? ", " : "", (double)y[j]);
    return buf;
}
/* the inputs a row of output came from: its data/latent row and its context row */
typedef struct rows_in { const nf_real *in; int in_cols; const nf_real *ctx; size_t ctx_rows; } rows_in;
static int input_extreme(run *s, const rows_in *ri, size_t i) {
    if (ri->in && row_extreme(ri->in + i * (size_t)ri->in_cols, ri->in_cols)) return 1;
    if (ri->ctx && s->C && row_extreme(ri->ctx + (ri->ctx_rows == 1 ? 0 : i) * (size_t)s->C, s->C)) return 1;
    return 0;
}
/* a periodic dimension whose period is not a normal number, or that the row's value is
   so many periods away from the cut that (y - cut) / P overflows
   (repro/periodic_tiny_period_nan.c) */
static int periodic_overflow(run *s, const nf_real *row) {
    const nf_domain *dm = nf_flow_domains(s->f); int j;
    for (j = 0; dm && j < s->D; ++j)
        if (dm[j].kind == NF_DOMAIN_PERIODIC) {
            double P = (double)((nf_real)dm[j].hi - (nf_real)dm[j].lo);
            if (!(P >= (double)FLT_MIN) || (row && !(fabs((double)row[j] - dm[j].cut) / P < 1e30))) return 1;
        }
    return 0;
}
static void fail_value(run *s, const char *cls, const rows_in *ri, size_t i, nf_real v, const char *what) {
    char name[64];
    int st = state_extreme(s);
    if (periodic_overflow(s, ri->in && ri->in_cols == s->D ? ri->in + i * (size_t)s->D : NULL)) snprintf(name, sizeof name, "periodic_tiny_period");
    else if (st == 3 && !s->std_by_fit) snprintf(name, sizeof name, "set_std_tiny");   /* repro/set_std_tiny_nan.c */
    else if (isnan((double)v)) snprintf(name, sizeof name, input_extreme(s, ri, i) ? "nan_extreme_input" : st ? "nan_extreme_state" : "%s_nan", cls);
    else if (input_extreme(s, ri, i)) snprintf(name, sizeof name, "overflow_extreme_input");
    else if (st) snprintf(name, sizeof name, "%s", st == 2 ? "overflow_extreme_params" : !s->std_by_fit ? "overflow_extreme_std" :
                                           st == 1 ? "overflow_fit_large_std" : "overflow_fit_small_std");
    else if (actnorm_floored(s)) snprintf(name, sizeof name, "actnorm_zero_spread");
    else snprintf(name, sizeof name, "%s_inf", cls);
    {   nf_real mean[MAX_D + MAX_C], sd[MAX_D + MAX_C];
        nf_flow_get_standardization(s->f, mean, sd);
        char in[512];
        snprintf(in, sizeof in, "%s", ri->in ? row_str(ri->in + i * (size_t)ri->in_cols, ri->in_cols) : "none");
        fail(name, "NF_OK but %s of row %lu = %g (input row: %s; context: %s; std[0] %g, mean[0] %g)", what, (unsigned long)i, (double)v, in,
             ri->ctx && s->C ? row_str(ri->ctx + (ri->ctx_rows == 1 ? 0 : i) * (size_t)s->C, s->C) : "none", (double)sd[0], (double)mean[0]); }
}
/* the class of a non-finite summary (round-trip error, log-det error) over rows in[0..n):
   the causes fail_value tells apart, checked over every row */
static const char *summary_class(run *s, const nf_real *in, size_t n, const char *cls) {
    size_t i; int st = state_extreme(s);
    for (i = 0; in && i < n; ++i) if (periodic_overflow(s, in + i * (size_t)s->D)) return "periodic_tiny_period";
    if (periodic_overflow(s, NULL)) return "periodic_tiny_period";
    if (st == 3 && !s->std_by_fit) return "set_std_tiny";
    for (i = 0; in && i < n; ++i) if (row_extreme(in + i * (size_t)s->D, s->D)) return "overflow_extreme_input";
    if (st == 2) return "overflow_extreme_params";
    if (st) return !s->std_by_fit ? "overflow_extreme_std" : st == 1 ? "overflow_fit_large_std" : "overflow_fit_small_std";
    if (actnorm_floored(s)) return "actnorm_zero_spread";
    return cls;
}
/* n rows of k output values each: finite */
static void check_rows(run *s, const char *cls, const nf_real *out, size_t n, int k, const rows_in *ri, const char *what) {
    size_t i; int j;
    for (i = 0; i < n; ++i)
        for (j = 0; j < k; ++j)
            if (!finite_r(out[i * (size_t)k + j])) { fail_value(s, cls, ri, i, out[i * (size_t)k + j], what); return; }
}
/* strictly inside the domain (the library's own test), periodic ones in [lo, hi) */
static int inside(run *s, const nf_real *row) {
    const nf_domain *dm = nf_flow_domains(s->f); int j;
    if (!nf_flow_in_domain(s->f, row)) return 0;
    for (j = 0; dm && j < s->D; ++j)
        if (dm[j].kind == NF_DOMAIN_PERIODIC && !(row[j] >= (nf_real)dm[j].lo && row[j] < (nf_real)dm[j].hi)) return 0;
    return 1;
}
/* points the flow produced (samples, inverses): finite and inside the domain */
static void check_points(run *s, const char *cls, const nf_real *y, size_t n, const rows_in *ri, const char *what) {
    size_t i; int j; const nf_domain *dm = nf_flow_domains(s->f);
    for (i = 0; dm && i < n; ++i)   /* repro/inverse_lower_domain_inf.c */
        for (j = 0; j < s->D; ++j)
            if (dm[j].kind == NF_DOMAIN_LOWER && isinf((double)y[i * (size_t)s->D + j]) && y[i * (size_t)s->D + j] > 0) {
                fail("lower_domain_inf", "NF_OK but %s row %lu: +inf in a half-line dimension", what, (unsigned long)i);
                return;
            }
    check_rows(s, cls, y, n, s->D, ri, what);
    for (i = 0; dm && i < n; ++i)   /* repro/interval_inverse_on_edge.c */
        for (j = 0; j < s->D; ++j)
            if (dm[j].kind == NF_DOMAIN_INTERVAL && (y[i * (size_t)s->D + j] == (nf_real)dm[j].lo || y[i * (size_t)s->D + j] == (nf_real)dm[j].hi)) {
                fail("interval_edge", "NF_OK but %s row %lu: %.9g is an edge of the interval (%.17g, %.17g)", what, (unsigned long)i,
                     (double)y[i * (size_t)s->D + j], dm[j].lo, dm[j].hi);
                return;
            }
    for (i = 0; i < n; ++i)
        if (!inside(s, y + i * (size_t)s->D)) { fail("outside_domain", "NF_OK but %s row %lu (%s) is outside the domain", what, (unsigned long)i, row_str(y + i * (size_t)s->D, s->D)); return; }
}
/* log-densities of data rows: finite, or -inf exactly where the row is outside */
static void check_logp(run *s, const nf_real *lp, size_t n, const rows_in *ri, const char *what) {
    size_t i;
    for (i = 0; i < n; ++i) {
        const nf_real *y = ri->in + i * (size_t)s->D;
        int in = nf_flow_in_domain(s->f, y);
        if (in && !finite_r(lp[i])) fail_value(s, lp[i] < 0 ? "logp_neginf_inside" : "logp", ri, i, lp[i], what);
        if (!in && !(isinf((double)lp[i]) && lp[i] < 0))
            fail("logp_outside_not_neginf", "NF_OK but %s[%lu] = %g for a row outside the domain (%s)", what, (unsigned long)i, (double)lp[i], row_str(y, s->D));
    }
}

/* rows [off, off + n) of the pool; n = 0 now and then */
static size_t pick_rows(run *s, size_t *off) {
    unsigned b = u8(s->z);
    *off = (size_t)(b % (unsigned)s->n_rows);
    if (b == 255) return 0;
    return 1 + (size_t)pick(s->z, (int)(s->n_rows - *off));
}
/* a context argument for n rows: usually right (byte 0 too), sometimes NULL, shared or wrong */
static const nf_real *pick_ctx(run *s, size_t off, size_t n, size_t *ctx_rows, int allow_shared) {
    int b = pick(s->z, 10);
    *ctx_rows = n;
    if (s->C == 0) return b == 9 ? s->ctx : NULL;
    if (b == 9) return NULL;
    if (b == 8 && allow_shared) { *ctx_rows = 1; return s->ctx + off * (size_t)s->C; }
    if (b == 7 && allow_shared) { *ctx_rows = n + 1; return s->ctx; }
    return s->ctx + off * (size_t)s->C;
}

/* ---- targets for reverse KL and importance sampling ---------------------------------- */
typedef struct target { int mode, row, calls, fail_after, C; nf_real val; } target;
static nf_real target_val(fz *z) {
    switch (pick(z, 10)) {
    case 0: return (nf_real)NAN;
    case 1: return (nf_real)INFINITY;
    case 2: return (nf_real)-INFINITY;
    case 3: return (nf_real)1e30;
    case 4: return (nf_real)-1e30;
    case 5: return R_TRUE_MIN;
    case 6: return R_MAXV;
    case 7: return 0;
    default: return -3;
    }
}
static void gen_target(fz *z, target *t) {
    t->mode = pick(z, 8); t->row = pick(z, 64); t->calls = 0; t->fail_after = pick(z, 4) != 3 ? -1 : pick(z, 3); t->C = 0;
    t->val = target_val(z);
}
/* a standard normal (mode 0, 5-7), with one value or gradient replaced (1, 2), an error
   (3), every value replaced (4: -inf everywhere is a zero density) */
static void target_fill(target *t, const nf_real *x, const nf_real *c, int C, size_t n, int dim, nf_real *logp, nf_real *grad) {
    size_t i; int j;
    for (i = 0; i < n; ++i) {
        nf_real acc = 0;
        for (j = 0; j < dim; ++j) {
            nf_real v = x[i * (size_t)dim + j];
            acc += v * v;
            if (grad) grad[i * (size_t)dim + j] = -v;
        }
        logp[i] = NF__R(-0.5) * acc;
        for (j = 0; c && j < C; ++j) logp[i] += NF__R(0.01) * c[i * (size_t)C + j];   /* every context value is read */
        if (t->mode == 4) logp[i] = t->val;
    }
    if (t->mode == 1) logp[(size_t)t->row % n] = t->val;
    if (t->mode == 2 && grad) grad[((size_t)t->row % n) * (size_t)dim] = t->val;
}
static int target_fn(const nf_real *x, size_t n, int dim, nf_real *logp, nf_real *grad, void *user) {
    target *t = (target *)user;
    t->calls++;
    if (t->mode == 3 || (t->fail_after >= 0 && t->calls > t->fail_after)) return 1;
    target_fill(t, x, NULL, 0, n, dim, logp, grad);
    return 0;
}
static int target_ctx_fn(const nf_real *x, const nf_real *ctx, size_t n, int dim, nf_real *logp, nf_real *grad, void *user) {
    target *t = (target *)user;
    t->calls++;
    if (t->mode == 3 || (t->fail_after >= 0 && t->calls > t->fail_after)) return 1;
    target_fill(t, x, ctx, t->C, n, dim, logp, grad);
    return 0;
}

/* ---- the calls ------------------------------------------------------------------------ */
static int odd_unused_setting(const nf_flow_desc *d);
/* a domain field its kind does not use is not finite (repro/export_c_unused_nan.c) */
static int odd_unused_domain(run *s) {
    const nf_domain *dm = nf_flow_domains(s->f); int j;
    for (j = 0; dm && j < s->D; ++j) {
        int k = dm[j].kind;
        if ((k == NF_DOMAIN_REAL && !isfinite(dm[j].lo)) || (k != NF_DOMAIN_INTERVAL && k != NF_DOMAIN_PERIODIC && !isfinite(dm[j].hi)) ||
            (k != NF_DOMAIN_PERIODIC && !isfinite(dm[j].cut))) return 1;
    }
    return 0;
}
/* returns 1 for a config out of range (repro/adam_config_unchecked.c) */
static int adam_config(fz *z, nf_adam_config *c, const nf_adam_config **cp) {
    int k = pick(z, 20);
    nf_adam_config_default(c);
    *cp = c;
    switch (k) {
    case 10: c->lr = 0.1; break;
    case 11: c->clip_norm = 1e-3; c->weight_decay = 0.1; break;
    case 12: c->schedule = NF_SCHED_COSINE; c->total_steps = 3; break;
    case 13: c->schedule = NF_SCHED_STEP; c->step_every = 1; c->step_gamma = 0.1; break;
    case 14: c->lr = 1e30; break;                 /* invalid from here on */
    case 15: c->beta1 = 1; break;
    case 16: c->lr = NAN; break;
    case 17: c->eps = 0; c->beta2 = 1; break;
    case 18: c->lr = -1; c->weight_decay = 1e30; break;
    case 19: *cp = NULL; break;
    default: break;
    }
    return k >= 14 && k <= 18;
}

static void op_trainer(run *s) {
    static const size_t mb_pal[] = {1, 2, 3, 4, 8, 16, 4, 8, 0};
    nf_adam_config c; const nf_adam_config *cp; size_t mb = PICK(s->z, mb_pal); nf_result r;
    int bad = adam_config(s->z, &c, &cp);
    if (s->tr) { nf_trainer_destroy(s->tr); s->tr = NULL; }
    if (cp) trace("  adam: lr %g beta1 %g beta2 %g eps %g wd %g clip %g sched %d max_batch %lu", c.lr, c.beta1, c.beta2, c.eps, c.weight_decay, c.clip_norm, c.schedule, (unsigned long)mb);
    g_op = "nf_trainer_create"; clr(s);
    r = nf_trainer_create(&s->tr, s->f, cp, mb);
    check_rc(s, r, 1);
    if (r == NF_OK && !s->tr) fail("null_output", "NF_OK but no trainer");
    s->tr_bad = bad;
    if (r != NF_OK && s->tr) fail("leak", "error but a trainer was returned");
}

static void op_data_init(run *s) {
    size_t off, n = pick_rows(s, &off), cr; const nf_real *c = pick_ctx(s, off, n, &cr, 0); nf_result r;
    g_op = "nf_flow_data_init"; clr(s);
    r = nf_flow_data_init(s->f, s->y + off * s->D, c, n);
    check_rc(s, r, 1);
    if (r == NF_OK) { s->in_data_init = 1; check_params(s); s->in_data_init = 0; }
}

/* train step, step_ctx, loss_grad, loss_grad_ctx */
static void op_step(run *s, int grad_only) {
    size_t off, n = pick_rows(s, &off), cr; const nf_real *c = pick_ctx(s, off, n, &cr, 0);
    const nf_real *w = pick(s->z, 3) ? NULL : s->w + off; int use_ctx = c || pick(s->z, 2); double loss = 0; nf_result r;
    if (!s->tr) return;
    if (grad_only) {
        g_op = use_ctx ? "nf_trainer_loss_grad_ctx" : "nf_trainer_loss_grad"; clr(s);
        r = use_ctx ? nf_trainer_loss_grad_ctx(s->tr, s->y + off * s->D, c, w, n, &loss) : nf_trainer_loss_grad(s->tr, s->y + off * s->D, w, n, &loss);
    } else {
        g_op = use_ctx ? "nf_train_step_ctx" : "nf_train_step"; clr(s);
        r = use_ctx ? nf_train_step_ctx(s->tr, s->y + off * s->D, c, w, n, &loss) : nf_train_step(s->tr, s->y + off * s->D, w, n, &loss);
    }
    check_rc(s, r, 1);
    if (r != NF_OK) return;
    if (!isfinite(loss)) fail("loss_nonfinite", "NF_OK but loss = %g", loss);
    if (grad_only) check_vec("grad_nonfinite", nf_trainer_grad(s->tr), nf_flow_num_params(s->f), "gradient");
    s->adam_bad = s->tr_bad; check_params(s); s->adam_bad = 0;
}

static void op_apply(run *s) {
    nf_result r; size_t np = nf_flow_num_params(s->f);
    int k = pick(s->z, 4); nf_real v = gen_any(s->z); size_t at = (size_t)u8(s->z);
    if (!s->tr) return;
    if (k == 0 && np) nf_trainer_grad(s->tr)[at % np] = v;   /* a caller-changed gradient */
    g_op = "nf_trainer_apply"; clr(s);
    r = nf_trainer_apply(s->tr);
    check_rc(s, r, 1);
    s->huge_grad = k == 0 && np && fabs((double)v) > 1e19;   /* its square overflows float (repro/adam_huge_gradient_nan.c) */
    if (r == NF_OK && k == 0 && np) {
        int l;
        for (l = 0; l < s->f->n_layers; ++l) if (s->f->layers[l].kind == NF_LAYER_AUTOREGRESSIVE) s->mask_dirty = 1;
    }
    if (r == NF_OK) { s->adam_bad = s->tr_bad; check_params(s); s->adam_bad = 0; }
    s->huge_grad = 0;
}

static void op_kl(run *s) {
    static const size_t n_pal[] = {1, 2, 3, 4, 8, 4, 0, 17};
    size_t n = PICK(s->z, n_pal), cr; target t; double loss = 0; nf_result r; const nf_real *c; int use_ctx;
    gen_target(s->z, &t);
    t.C = s->C;
    c = pick_ctx(s, 0, n, &cr, 1);
    use_ctx = s->C ? pick(s->z, 5) != 0 : pick(s->z, 5) == 0;
    if (!s->tr) return;
    if (use_ctx) {
        g_op = "nf_train_step_kl_ctx"; clr(s);
        r = nf_train_step_kl_ctx(s->tr, &s->rng, n, c, cr, target_ctx_fn, &t, &loss);
    } else {
        g_op = "nf_train_step_kl"; clr(s);
        r = nf_train_step_kl(s->tr, &s->rng, n, target_fn, &t, &loss);
    }
    check_rc(s, r, 1);
    if (r != NF_OK) return;
    if (!isfinite(loss)) fail("loss_nonfinite", "NF_OK but KL loss = %g", loss);
    s->adam_bad = s->tr_bad; check_params(s); s->adam_bad = 0;
}

typedef struct fit_user { int stop, bad_config; } fit_user;
static int fit_cb(const nf_fit_progress *p, void *user) {
    const fit_user *u = (const fit_user *)user;
    if (isnan(p->train_loss) || isnan(p->val_loss) || isnan(p->best_val_loss) || isnan(p->lr))
        fail(u->bad_config ? "adam_config_unchecked" : "fit_progress_nan", "progress: train %g val %g best %g lr %g", p->train_loss, p->val_loss, p->best_val_loss, p->lr);
    return u->stop;
}
static void op_fit(run *s) {
    static const int batch_pal[] = {1, 2, 3, 4, 8, 256, 4, 0, -1};
    static const int epochs_pal[] = {1, 1, 1, 1, 0, 2, -1};
    static const int patience_pal[] = {0, 1, 20, -1};
    static const double vf_pal[] = {0, 0.1, 0.5, 0.1, 0, 0.9, 0.99, 1.0, -0.1};
    size_t off, n = pick_rows(s, &off), cr; const nf_real *c = pick_ctx(s, off, n, &cr, 0);
    const nf_real *w = pick(s->z, 3) ? NULL : s->w + off; nf_fit_options o; nf_fit_report rep; nf_result r;
    fit_user fu; int use_ctx = c || pick(s->z, 2), k, use_opt;
    const nf_adam_config *cp; int bad; nf_real m0[MAX_D + MAX_C], s0[MAX_D + MAX_C], m1[MAX_D + MAX_C], s1[MAX_D + MAX_C];
    nf_fit_options_default(&o);
    memset(m0, 0, sizeof m0); memset(s0, 0, sizeof s0); memset(m1, 0, sizeof m1); memset(s1, 0, sizeof s1);
    o.batch = PICK(s->z, batch_pal); o.max_epochs = PICK(s->z, epochs_pal); o.patience = PICK(s->z, patience_pal);
    k = pick(s->z, 10); o.val_fraction = k < 9 ? vf_pal[k] : NAN;
    o.standardize = pick(s->z, 3) ? 1 : pick(s->z, 3); o.refit = pick(s->z, 2); o.seed = u8(s->z);
    bad = adam_config(s->z, &o.adam, &cp);
    if (!cp) nf_adam_config_default(&o.adam);
    fu.stop = pick(s->z, 2); fu.bad_config = bad;
    if (pick(s->z, 2)) { o.callback = fit_cb; o.user = &fu; }
    /* NULL options are the defaults, 200 epochs: only for a small flow on a few rows */
    use_opt = pick(s->z, 8) != 7 || nf_flow_num_params(s->f) > 300 || n > 4;
    memset(&rep, 0, sizeof rep);
    nf_flow_get_standardization(s->f, m0, s0);
    g_op = use_ctx ? "nf_fit_ctx" : "nf_fit"; clr(s);
    r = use_ctx ? nf_fit_ctx(s->f, s->y + off * s->D, c, n, w, use_opt ? &o : NULL, &rep)
                : nf_fit(s->f, s->y + off * s->D, n, w, use_opt ? &o : NULL, &rep);
    check_rc(s, r, 1);
    nf_flow_get_standardization(s->f, m1, s1);
    if (memcmp(m0, m1, sizeof m0) != 0 || memcmp(s0, s1, sizeof s0) != 0) s->std_by_fit = 1;
    if (r != NF_OK) return;
    s->adam_bad = bad && use_opt;
    check_params(s);
    s->adam_bad = 0;
    /* HUGE_VAL is how the report says "none" (no step taken in the last epoch, no
       validation loss yet) */
    if (isnan(rep.train_loss) || isnan(rep.val_loss) || isnan(rep.best_val_loss) || rep.train_loss == -HUGE_VAL ||
        rep.val_loss == -HUGE_VAL || rep.best_val_loss == -HUGE_VAL)
        fail("fit_report", "NF_OK but report: steps %ld train %g val %g best %g", rep.steps, rep.train_loss, rep.val_loss, rep.best_val_loss);
    if (rep.best_epoch > 0 && !isfinite(rep.best_val_loss)) fail("fit_report", "best epoch %ld with best_val_loss %g", rep.best_epoch, rep.best_val_loss);
}

static void op_log_prob(run *s, size_t off, size_t n) {
    size_t cr; const nf_real *c = pick_ctx(s, off, n, &cr, 1); int use_ctx = c || pick(s->z, 3) == 0; nf_result r;
    g_op = use_ctx ? "nf_flow_log_prob_ctx" : "nf_flow_log_prob"; clr(s);
    r = use_ctx ? nf_flow_log_prob_ctx(s->f, s->y + off * s->D, n, c, cr, s->lp) : nf_flow_log_prob(s->f, s->y + off * s->D, n, s->lp);
    check_rc(s, r, 1);
    if (r == NF_OK) { rows_in ri; ri.in = s->y + off * s->D; ri.in_cols = s->D; ri.ctx = c; ri.ctx_rows = cr; check_logp(s, s->lp, n, &ri, "logp"); }
}

static void op_sample(run *s) {
    static const size_t n_pal[] = {1, 2, 3, 5, 8, 16, 40, 0};
    size_t n = PICK(s->z, n_pal), cr; const nf_real *c = pick_ctx(s, 0, n, &cr, 1);
    int want_lp = pick(s->z, 4) != 0, use_ctx = c || pick(s->z, 3) == 0; nf_result r; rows_in ri;
    g_op = use_ctx ? "nf_flow_sample_ctx" : "nf_flow_sample"; clr(s);
    r = use_ctx ? nf_flow_sample_ctx(s->f, &s->rng, n, c, cr, s->out, want_lp ? s->lp : NULL)
                : nf_flow_sample(s->f, &s->rng, n, s->out, want_lp ? s->lp : NULL);
    check_rc(s, r, 1);
    if (r != NF_OK) return;
    ri.in = NULL; ri.in_cols = 0; ri.ctx = c; ri.ctx_rows = cr;
    check_points(s, "sample", s->out, n, &ri, "sample");
    if (want_lp) check_rows(s, "sample_logp", s->lp, n, 1, &ri, "sample logp");
}

static void op_forward(run *s, int inverse) {
    size_t off, n = pick_rows(s, &off), cr; const nf_real *c = pick_ctx(s, off, n, &cr, 1);
    int want_ld = pick(s->z, 4) != 0, use_ctx = c || pick(s->z, 3) == 0; nf_result r; rows_in ri;
    const nf_real *in = s->y + off * s->D;
    if (inverse) {
        g_op = use_ctx ? "nf_flow_inverse_ctx" : "nf_flow_inverse"; clr(s);
        r = use_ctx ? nf_flow_inverse_ctx(s->f, in, n, c, cr, s->out, want_ld ? s->lp : NULL)
                    : nf_flow_inverse(s->f, in, n, s->out, want_ld ? s->lp : NULL);
    } else {
        g_op = use_ctx ? "nf_flow_forward_ctx" : "nf_flow_forward"; clr(s);
        r = use_ctx ? nf_flow_forward_ctx(s->f, in, n, c, cr, s->out, want_ld ? s->lp : NULL)
                    : nf_flow_forward(s->f, in, n, s->out, want_ld ? s->lp : NULL);
    }
    check_rc(s, r, 1);
    if (r != NF_OK) return;
    ri.in = in; ri.in_cols = s->D; ri.ctx = c; ri.ctx_rows = cr;
    if (inverse) check_points(s, "inverse", s->out, n, &ri, "inverse y");
    else check_rows(s, "forward", s->out, n, s->D, &ri, "forward z");
    if (want_ld) check_rows(s, inverse ? "inverse_logdet" : "forward_logdet", s->lp, n, 1, &ri, "logdet");
}

static void op_roundtrip(run *s) {
    size_t off, n = pick_rows(s, &off); double e = 0; nf_result r;
    g_op = "nf_flow_roundtrip_error"; clr(s);
    r = nf_flow_roundtrip_error(s->f, s->y + off * s->D, n, &e);
    check_rc(s, r, 1);
    /* +inf is how the check says "not finite at all" (nf_flow_roundtrip_error: "a non-finite
       round trip is the worst"); NaN or a negative error would be wrong */
    if (r == NF_OK && !(e >= 0)) fail(summary_class(s, s->y + off * s->D, n, "roundtrip_nonfinite"), "NF_OK but max_err = %g", e);
}

static void op_logdet(run *s) {
    static const double h_pal[] = {1e-2, 1e-3, 1e-2, 1e-4, 1e-6, 1, 0, -1, 1e30};
    size_t off, n = pick_rows(s, &off); double e = 0, h; nf_result r; int k = pick(s->z, 10);
    h = k < 9 ? h_pal[k] : NAN;
    if (n > 4) n = 4;
    g_op = "nf_flow_logdet_error"; clr(s);
    r = nf_flow_logdet_error(s->f, s->y + off * s->D, n, h, &e);
    check_rc(s, r, 1);
    if (r == NF_OK && !(e >= 0)) fail(summary_class(s, s->y + off * s->D, n, "logdet_error_nonfinite"), "NF_OK but max_err = %g (h %g)", e, h);   /* +inf: as above */
}

static void op_importance(run *s) {
    static const size_t n_pal[] = {2, 3, 10, 64, 65, 130, 0, 1};
    size_t n = PICK(s->z, n_pal); target t; nf_is_report rep; nf_result r;
    gen_target(s->z, &t);
    memset(&rep, 0, sizeof rep);
    g_op = "nf_flow_importance"; clr(s);
    r = nf_flow_importance(s->f, &s->rng, n, target_fn, &t, &rep);
    check_rc(s, r, 1);
    if (r == NF_OK && (!isfinite(rep.log_z) || !isfinite(rep.log_z_se) || !isfinite(rep.ess) || !isfinite(rep.ess_fraction)))
        fail(summary_class(s, NULL, 0, "importance_nonfinite"), "NF_OK but log_z %g se %g ess %g frac %g", rep.log_z, rep.log_z_se, rep.ess, rep.ess_fraction);
}

static void op_stage(run *s) {
    size_t off, n = pick_rows(s, &off); int L = nf_flow_get_desc(s->f)->n_layers, inv = pick(s->z, 2), k;
    int kp[5]; nf_result r; rows_in ri;
    kp[0] = 0; kp[1] = 1; kp[2] = L; kp[3] = L + 1; kp[4] = -1;
    k = kp[pick(s->z, 5)];
    if (inv) {
        g_op = "nf_flow_inverse_stage"; clr(s);
        r = nf_flow_inverse_stage(s->f, s->y + off * s->D, n, k, s->out);
    } else {
        g_op = "nf_flow_forward_stage"; clr(s);
        r = nf_flow_forward_stage(s->f, s->y + off * s->D, n, k, s->out, s->lp);
    }
    check_rc(s, r, 1);
    if (r != NF_OK) return;
    ri.in = s->y + off * s->D; ri.in_cols = s->D; ri.ctx = NULL; ri.ctx_rows = 0;
    check_rows(s, "stage", s->out, n, s->D, &ri, "stage output");
    if (!inv) check_rows(s, "stage_logdet", s->lp, n, 1, &ri, "stage logdet");
}

static void op_base_logp(run *s) {
    size_t off, n = pick_rows(s, &off); nf_result r;
    g_op = "nf_flow_base_log_prob"; clr(s);
    r = nf_flow_base_log_prob(s->f, s->y + off * s->D, n, s->lp);
    check_rc(s, r, 1);
    if (r == NF_OK) { rows_in ri; ri.in = s->y + off * s->D; ri.in_cols = s->D; ri.ctx = NULL; ri.ctx_rows = 0; check_rows(s, "base_logp", s->lp, n, 1, &ri, "base logp"); }
}

static void op_set_std(run *s) {
    nf_real mean[MAX_D + MAX_C], sd[MAX_D + MAX_C]; int j, reset = pick(s->z, 6) == 0; nf_result r;
    for (j = 0; j < s->D + s->C; ++j) {
        static const double sd_pal[] = {1, 0.5, 2, 1e-3, 10, 1, 0, -1, 1e-40, 1e30, 1e-30, 1e-20};
        static const double mu_pal[] = {0, 1, -1, 5, 0.25, 1e3, 1e30, -1e30, 0};
        int k = pick(s->z, 14);
        sd[j] = k < 12 ? (nf_real)sd_pal[k] : k == 12 ? (nf_real)NAN : (nf_real)INFINITY;
        k = pick(s->z, 10);
        mean[j] = k < 9 ? (nf_real)mu_pal[k] : (nf_real)NAN;
    }
    for (j = 0; !reset && j < s->D + s->C; ++j) trace("  standardisation %d: mean %g std %g", j, (double)mean[j], (double)sd[j]);
    g_op = "nf_flow_set_standardization"; clr(s);
    r = reset ? nf_flow_set_standardization(s->f, NULL, NULL) : nf_flow_set_standardization(s->f, mean, sd);
    check_rc(s, r, 1);
    if (r == NF_OK) { check_params(s); s->std_by_fit = 0; }
}

static void op_grad_check(run *s) {
    static const double h_pal[] = {1e-2, 1e-3, 1e-4, 1, 0, 1e30};
    size_t off, n = pick_rows(s, &off); double e = 0, h = PICK(s->z, h_pal); size_t mp = (size_t)pick(s->z, 4); nf_result r;
    if (!s->tr) return;
    if (mp == 0 && nf_flow_num_params(s->f) > 200) mp = 3;   /* 0 checks every parameter: small flows only */
    g_op = "nf_trainer_grad_check"; clr(s);
    r = nf_trainer_grad_check(s->tr, s->y + off * s->D, n, h, mp, &e);
    check_rc(s, r, 1);
    if (r == NF_OK && !isfinite(e)) fail("grad_check_nonfinite", "NF_OK but max_rel_err = %g", e);
    if (r == NF_OK) { s->adam_bad = s->tr_bad; check_params(s); s->adam_bad = 0; }
}

/* C source: no token nan/inf/infinity (they would not compile) */
static void scan_export(FILE *fp, const char *what, const char *cls) {
    long len; char *buf, *p; size_t got;
    if (fseek(fp, 0, SEEK_END) != 0 || (len = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0) { fail("export_io", "cannot read back %s", what); return; }
    buf = (char *)malloc((size_t)len + 1);
    if (!buf) return;
    got = fread(buf, 1, (size_t)len, fp);
    buf[got] = 0;
    for (p = buf; *p; ) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_') {
            char *q = p; size_t k, n;
            char tok[16];
            while ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '_') ++q;
            n = (size_t)(q - p);
            if (n < sizeof tok) {
                for (k = 0; k < n; ++k) tok[k] = (char)(p[k] >= 'A' && p[k] <= 'Z' ? p[k] + 32 : p[k]);
                tok[n] = 0;
                if ((p == buf || !((p[-1] >= '0' && p[-1] <= '9') || p[-1] == '.')) &&
                    (!strcmp(tok, "nan") || !strcmp(tok, "inf") || !strcmp(tok, "infinity") || !strcmp(tok, "nanf") || !strcmp(tok, "inff")))
                    fail(cls, "%s contains '%s'", what, tok);
            }
            p = q;
        } else if (*p >= '0' && *p <= '9') {   /* a number: skip it with its exponent */
            while ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == 'f' || *p == 'u' || *p == 'U' || *p == 'L' || *p == 'x' ||
                   ((*p == '-' || *p == '+') && (p[-1] == 'e' || p[-1] == 'E'))) ++p;
        } else {
            ++p;
        }
    }
    free(buf);
}
static void op_export(run *s) {
    static const char *names[] = {"flow", "my_flow2", "F", "9bad", "", "a-b",
                                  "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk",
                                  "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl"};
    static const int chunk_pal2[] = {1, 16, 256, 3, 0, -1, (1 << 20) + 1};
    const char *name = PICK(s->z, names); int chunk = PICK(s->z, chunk_pal2); FILE *c, *h; nf_result r;
    c = tmpfile(); h = tmpfile();
    if (c && h) {
        g_op = "nf_flow_export_c"; clr(s);
        r = nf_flow_export_c(s->f, name, chunk, c, h);
        check_rc(s, r, 0);   /* const flow: no message */
        if (r == NF_OK) {   /* repro/export_c_unused_nan.c: unused fields printed as they are */
            const char *cls = odd_unused_setting(nf_flow_get_desc(s->f)) || odd_unused_domain(s) ? "export_unused_field" : "export_nonfinite";
            scan_export(c, "exported .c", cls); scan_export(h, "exported .h", cls);
        }
    }
    if (c) fclose(c);
    if (h) fclose(h);
}

/* log_prob (and a sample) of f and g on the same rows (non-finite values replaced by 0,
   a zero context): bit-identical */
static void compare_flows(run *s, nf_flow *g, const char *how) {
    static nf_real y[MAX_ROWS * MAX_D], c[MAX_ROWS * MAX_C + 1];
    nf_real lpf[MAX_ROWS], lpg[MAX_ROWS]; nf_result rf, rg; nf_rng r1, r2; size_t n = (size_t)s->n_rows, i;
    for (i = 0; i < n * (size_t)s->D; ++i) y[i] = finite_r(s->y[i]) ? s->y[i] : 0;
    memset(c, 0, sizeof c);
    rf = nf_flow_log_prob_ctx(s->f, y, n, s->C ? c : NULL, n, lpf);
    rg = nf_flow_log_prob_ctx(g, y, n, s->C ? c : NULL, n, lpg);
    if (rf != rg) fail("reload_mismatch", "%s: log_prob returned %d, reloaded %d", how, (int)rf, (int)rg);
    else if (rf == NF_OK && memcmp(lpf, lpg, n * sizeof(nf_real)) != 0)
        for (i = 0; i < n; ++i)
            if (memcmp(&lpf[i], &lpg[i], sizeof(nf_real)) != 0) {
                fail(s->mask_dirty ? "apply_ar_mask" : "reload_mismatch", "%s: log_prob row %lu: %.9g saved, %.9g reloaded", how, (unsigned long)i, (double)lpf[i], (double)lpg[i]);
                break;
            }
    nf_rng_seed(&r1, 77); nf_rng_seed(&r2, 77);
    rf = nf_flow_sample_ctx(s->f, &r1, 8, s->C ? c : NULL, 1, s->out, s->lp);
    rg = nf_flow_sample_ctx(g, &r2, 8, s->C ? c : NULL, 1, s->out2, s->lp2);
    if (rf != rg) fail("reload_mismatch", "%s: sample returned %d, reloaded %d", how, (int)rf, (int)rg);
    else if (rf == NF_OK && (memcmp(s->out, s->out2, 8 * (size_t)s->D * sizeof(nf_real)) != 0 || memcmp(s->lp, s->lp2, 8 * sizeof(nf_real)) != 0))
        fail(s->mask_dirty ? "apply_ar_mask" : "reload_mismatch", "%s: samples differ (first %.9g vs %.9g)", how, (double)s->out[0], (double)s->out2[0]);
}
/* a layer setting the kind ignores that the loader would refuse (repro/save_unused_negative_field.c) */
static int odd_unused_setting(const nf_flow_desc *d) {
    int i;
    for (i = 0; i < d->n_layers; ++i) {
        const nf_layer_desc *l = &d->layers[i];
        if (l->hidden < 0 || l->depth < 0 || l->activation < 0 || l->mask < 0 || l->parity < 0 || l->bins < 0 ||
            l->transformer < 0 || l->inverse < 0 || l->order < 0 || !isfinite((double)l->clamp) || l->clamp < 0 ||
            !isfinite((double)l->tail_bound) || l->tail_bound < 0 || !isfinite((double)l->min_width) || l->min_width < 0 ||
            !isfinite((double)l->min_height) || l->min_height < 0 || !isfinite((double)l->min_derivative) || l->min_derivative < 0) return 1;
    }
    return 0;
}
static void op_save_load(run *s) {
    size_t need = 0, wr = 0; unsigned char *buf; nf_result r; nf_flow *g = NULL;
    g_op = "nf_flow_save_size";
    r = nf_flow_save_size(s->f, &need);
    check_rc(s, r, 0);
    if (r != NF_OK) return;
    buf = (unsigned char *)malloc(need + 1);
    if (!buf) return;
    g_op = "nf_flow_save (too small)";
    r = nf_flow_save(s->f, buf, need - 1, &wr);
    check_rc(s, r, 0);
    if (r == NF_OK) fail("save_small", "NF_OK with a buffer one byte short");
    g_op = "nf_flow_save";
    r = nf_flow_save(s->f, buf, need + 1, &wr);
    check_rc(s, r, 0);
    if (r != NF_OK) { fail("save_failed", "save failed: %s", nf_result_string(r)); free(buf); return; }
    if (wr != need) fail("save_size", "wrote %lu bytes, save_size said %lu", (unsigned long)wr, (unsigned long)need);
    g_op = "nf_flow_load";
    r = nf_flow_load(&g, buf, wr);
    check_rc(s, r, 0);
    if (r != NF_OK) fail(r == NF_ERR_CORRUPT && odd_unused_setting(nf_flow_get_desc(s->f)) ? "save_unused_field" : "reload_failed",
                         "a saved flow does not load: %s", nf_result_string(r));
    else { compare_flows(s, g, "nf_flow_load"); nf_flow_destroy(g); }
    g = NULL;
    {   /* through a FILE */
        FILE *fp = tmpfile();
        if (fp) {
            g_op = "nf_flow_save_file";
            r = nf_flow_save_file(s->f, fp);
            check_rc(s, r, 0);
            if (r == NF_OK) {
                rewind(fp);
                g_op = "nf_flow_load_file";
                r = nf_flow_load_file(&g, fp);
                check_rc(s, r, 0);
                if (r != NF_OK) fail(r == NF_ERR_CORRUPT && odd_unused_setting(nf_flow_get_desc(s->f)) ? "save_unused_field" : "reload_failed",
                                     "nf_flow_load_file of nf_flow_save_file: %s", nf_result_string(r));
                else { compare_flows(s, g, "nf_flow_load_file"); nf_flow_destroy(g); }
                g = NULL;
            }
            fclose(fp);
        }
    }
    g_op = "nf_flow_create (from nf_flow_get_desc)";
    r = nf_flow_create(&g, nf_flow_get_desc(s->f));
    if (r != NF_OK) fail("recreate_failed", "nf_flow_create(nf_flow_get_desc(f)) failed: %s", nf_result_string(r));
    else {
        g_op = "nf_flow_load_into";
        r = nf_flow_load_into(g, buf, wr);
        if ((int)r < 0 || r >= NF_RESULT_COUNT) fail("bad_result", "returned %d", (int)r);
        if (r != NF_OK) fail(r == NF_ERR_CORRUPT && odd_unused_setting(nf_flow_get_desc(s->f)) ? "save_unused_field" : "reload_failed",
                             "load_into a flow of the same description: %s (%s)", nf_result_string(r), nf_flow_error(g));
        else compare_flows(s, g, "nf_flow_load_into");
        nf_flow_destroy(g);
    }
    free(buf);
}

/* The flow's weights as constants (nf_flow_init_const): the same densities and samples,
   bit for bit, and every writer refuses. */
static void op_const(run *s) {
    const nf_flow_desc *d = nf_flow_get_desc(s->f); size_t bytes = 0; void *mem; nf_flow *g = NULL; nf_result r;
    nf_real mean[MAX_D + MAX_C], sd[MAX_D + MAX_C], y0[MAX_D]; int shortby = pick(s->z, 4) == 0;
    g_op = "nf_flow_size_const";
    r = nf_flow_size_const(d, &bytes);
    check_rc(s, r, 0);
    if (r != NF_OK) { fail("const_size", "nf_flow_size_const of a flow's own description: %s", nf_result_string(r)); return; }
    mem = malloc(bytes);
    if (!mem) return;
    nf_flow_get_standardization(s->f, mean, sd);
    g_op = "nf_flow_init_const";
    r = nf_flow_init_const(&g, d, s->f->params, nf_flow_num_params(s->f), mean, sd, mem, bytes - (shortby ? 65 : 0));
    if ((int)r < 0 || r >= NF_RESULT_COUNT) fail("bad_result", "returned %d", (int)r);
    if (r != NF_OK && !shortby) fail("const_init", "nf_flow_init_const of a flow's own description and weights: %s", nf_result_string(r));
    if (r == NF_OK) {
        nf_trainer *t = NULL; double loss;
        compare_flows(s, g, "nf_flow_init_const");
        memset(y0, 0, sizeof y0);
        g_op = "nf_flow_set_standardization (constant flow)"; g->err[0] = 0;
        r = nf_flow_set_standardization(g, NULL, NULL);
        if (r == NF_OK || !g->err[0]) fail("const_writable", "set_standardization on a constant flow -> %d, \"%s\"", (int)r, g->err);
        g_op = "nf_flow_data_init (constant flow)"; g->err[0] = 0;
        r = nf_flow_data_init(g, y0, NULL, 1);
        if (r == NF_OK || !g->err[0]) fail("const_writable", "data_init on a constant flow -> %d, \"%s\"", (int)r, g->err);
        if (nf_flow_params(g)) fail("const_writable", "nf_flow_params of a constant flow is not NULL");
        g_op = "nf_trainer_create (constant flow)"; g->err[0] = 0;
        r = nf_trainer_create(&t, g, NULL, 2);
        if (r != NF_OK && !g->err[0]) fail("empty_error", "trainer_create on a constant flow -> %d without a message", (int)r);
        if (r == NF_OK) {
            g_op = "nf_train_step (constant flow)"; g->err[0] = 0;
            r = nf_train_step(t, y0, NULL, 1, &loss);
            if (r == NF_OK || !g->err[0]) fail("const_writable", "train_step on a constant flow -> %d, \"%s\"", (int)r, g->err);
            nf_trainer_destroy(t);
        }
    }
    free(mem);
}

/* A required pointer left NULL: NF_ERR_NULL (or another error), and a message. */
static void op_null(run *s) {
    nf_result r = NF_OK; double e; nf_is_report rep; target t; int k = pick(s->z, 12);
    size_t n = 1 + (size_t)pick(s->z, s->n_rows);
    const nf_real *c = s->C ? s->ctx : NULL;
    gen_target(s->z, &t); t.mode = 0; t.fail_after = -1;
    clr(s);
    switch (k) {
    case 0: g_op = "nf_flow_log_prob_ctx (y NULL)"; r = nf_flow_log_prob_ctx(s->f, NULL, n, c, n, s->lp); break;
    case 1: g_op = "nf_flow_log_prob_ctx (logp NULL)"; r = nf_flow_log_prob_ctx(s->f, s->y, n, c, n, NULL); break;
    case 2: g_op = "nf_flow_sample_ctx (rng NULL)"; r = nf_flow_sample_ctx(s->f, NULL, n, c, n, s->out, s->lp); break;
    case 3: g_op = "nf_flow_forward_ctx (z NULL)"; r = nf_flow_forward_ctx(s->f, s->y, n, c, n, NULL, s->lp); break;
    case 4: g_op = "nf_flow_inverse_ctx (z NULL)"; r = nf_flow_inverse_ctx(s->f, NULL, n, c, n, s->out, s->lp); break;
    case 5: g_op = "nf_flow_roundtrip_error (max_err NULL)"; r = nf_flow_roundtrip_error(s->f, s->y, n, NULL); break;
    case 6: g_op = "nf_flow_logdet_error (max_err NULL)"; r = nf_flow_logdet_error(s->f, s->y, n, 1e-2, NULL); break;
    case 7: g_op = "nf_flow_importance (rng NULL)"; r = nf_flow_importance(s->f, NULL, 10, target_fn, &t, &rep); break;
    case 8: g_op = "nf_flow_importance (report NULL)"; r = nf_flow_importance(s->f, &s->rng, 10, target_fn, &t, NULL); break;
    case 9: g_op = "nf_flow_data_init (y NULL)"; r = nf_flow_data_init(s->f, NULL, c, n); break;
    case 10: g_op = "nf_fit_ctx (y NULL)"; r = nf_fit_ctx(s->f, NULL, c, n, NULL, NULL, NULL); break;
    default:
        if (!s->tr) return;
        if (pick(s->z, 2)) { g_op = "nf_train_step_kl (rng NULL)"; r = nf_train_step_kl(s->tr, NULL, 1, target_fn, &t, &e); }
        else { g_op = "nf_train_step_ctx (y NULL)"; r = nf_train_step_ctx(s->tr, NULL, c, NULL, 1, &e); }
        break;
    }
    if ((int)r < 0 || r >= NF_RESULT_COUNT) fail("bad_result", "returned %d", (int)r);
    if (r == NF_OK) fail("null_accepted", "NF_OK with a NULL pointer");
    else if (!s->f->err[0]) fail("empty_error_null_arg", "returned %d (%s) and left nf_flow_error empty", (int)r, nf_result_string(r));
}

/* ---- one input -------------------------------------------------------------------------- */
static int build_flow(run *s, nf_flow_desc *d, nf_domain *dom, void **mem) {
    fz *z = s->z; int i, how, preset; nf_result r;
    nf_flow_desc_init(d, 1 + pick(z, MAX_D));
    d->context_dim = pick(z, MAX_C + 1);
    d->base = PICK(z, base_pal);
    d->seed = u8(z);
    d->chunk = PICK(z, chunk_pal);
    how = pick(z, 8);
    preset = pick(z, 12);
    preset = preset < 9 ? 0 : preset - 8;   /* 1 realnvp, 2 nsf, 3 maf */
    d->n_layers = preset ? 0 : pick(z, 7);
    for (i = 0; i < d->n_layers; ++i) {
        nf_layer_desc *l = &d->layers[i]; unsigned b = u8(z);
        static const int bad_kind[] = {0, NF_LAYER_KIND_COUNT, -1, 1000};
        memset(l, 0, sizeof *l);
        l->kind = b < 240 ? 1 + (int)(b % (unsigned)(NF_LAYER_KIND_COUNT - 1)) : bad_kind[b % 4];
        l->hidden = PICK(z, hidden_pal);
        if (l->hidden == 257 && l->kind != NF_LAYER_MONOTONE) l->hidden = -2;   /* 257: too many for monotone (cap 256) */
        l->depth = PICK(z, depth_pal);
        l->activation = PICK(z, act_pal);
        l->clamp = clamp_pal(z);
        l->mask = PICK(z, maskpar_pal);
        l->parity = PICK(z, maskpar_pal);
        l->seed = u8(z);
        l->bins = PICK(z, bins_pal);
        l->tail_bound = tail_pal(z);
        l->min_width = minwh_pal(z);
        l->min_height = minwh_pal(z);
        l->min_derivative = mind_pal(z);
        l->transformer = PICK(z, transformer_pal);
        l->inverse = PICK(z, inverse_pal);
        l->order = PICK(z, order_pal);
    }
    if (preset) {   /* the presets (they reset the description: the header fields go after) */
        static const int count_pal[] = {1, 2, 3, 4, 0, -1};
        static const int preset_hidden_pal[] = {4, 1, 2, 3, 8, 16, 32, 0, -1};
        int nl = PICK(z, count_pal), hid = PICK(z, preset_hidden_pal), bins = PICK(z, bins_pal), tf = PICK(z, transformer_pal), inv = PICK(z, inverse_pal);
        int dim = d->dim, ctx = d->context_dim, base = d->base, chunk = d->chunk; uint64_t seed = d->seed;
        nf_result rp = preset == 1 ? nf_flow_desc_realnvp(d, dim, nl, hid) : preset == 2 ? nf_flow_desc_nsf(d, dim, nl, hid, bins)
                                                                          : nf_flow_desc_maf(d, dim, nl, hid, tf, inv);
        trace("preset %d (%d layers, hidden %d, bins %d, transformer %d, inverse %d) -> %d", preset, nl, hid, bins, tf, inv, (int)rp);
        if ((int)rp < 0 || rp >= NF_RESULT_COUNT) fail("bad_result", "preset returned %d", (int)rp);
        d->context_dim = ctx; d->base = base; d->chunk = chunk; d->seed = seed;
    }
    if (pick(z, 4)) {
        for (i = 0; i < d->dim; ++i) gen_domain(z, &dom[i]);
        d->domains = dom;
    }
    trace("flow: dim %d ctx %d base %d chunk %d layers %d domains %s", d->dim, d->context_dim, d->base, d->chunk, d->n_layers, d->domains ? "yes" : "no");
    for (i = 0; i < d->n_layers; ++i)
        trace("  layer %d: kind %d hidden %d depth %d act %d clamp %g mask %d parity %d seed %u bins %d tail %g min_w %g min_h %g min_d %g transformer %d inverse %d order %d",
              i, d->layers[i].kind, d->layers[i].hidden, d->layers[i].depth, d->layers[i].activation, (double)d->layers[i].clamp, d->layers[i].mask,
              d->layers[i].parity, (unsigned)d->layers[i].seed, d->layers[i].bins, (double)d->layers[i].tail_bound, (double)d->layers[i].min_width,
              (double)d->layers[i].min_height, (double)d->layers[i].min_derivative, d->layers[i].transformer, d->layers[i].inverse, d->layers[i].order);
    for (i = 0; d->domains && i < d->dim; ++i)
        trace("  domain %d: kind %d lo %.17g hi %.17g cut %.17g fixed %d", i, dom[i].kind, dom[i].lo, dom[i].hi, dom[i].cut, dom[i].fixed_cut);
    if (how < 7) {
        g_op = "nf_flow_create";
        r = nf_flow_create(&s->f, d);
    } else {   /* caller memory, sometimes one byte short, at an odd address */
        size_t bytes = 0; int shortby = pick(z, 2), skew = pick(z, 2) * 3;
        g_op = "nf_flow_size";
        r = nf_flow_size(d, &bytes);
        if (r == NF_OK) {
            *mem = malloc(bytes + (size_t)skew);
            if (!*mem) return 0;
            g_op = "nf_flow_init";
            /* nf_flow_size counts 64 bytes of alignment slack: a block one byte short may
               or may not be enough, depending on its address */
            r = nf_flow_init(&s->f, d, (unsigned char *)*mem + skew, bytes - (size_t)shortby);
        }
    }
    check_rc(s, r, 0);
    if (r != NF_OK) { if (s->f) fail("null_output", "error but a flow was returned"); s->f = NULL; return 0; }
    if (!s->f) { fail("null_output", "NF_OK but no flow"); return 0; }
    for (i = 0; i < d->n_layers; ++i)   /* repro/affine_tiny_clamp_nan.c: every output is NaN */
        if ((d->layers[i].kind == NF_LAYER_AFFINE_COUPLING || (d->layers[i].kind == NF_LAYER_AUTOREGRESSIVE && d->layers[i].transformer == NF_TRANSFORM_AFFINE)) &&
            d->layers[i].clamp > 0 && !finite_r(1 / (nf_real)d->layers[i].clamp)) {
            fail("affine_tiny_clamp", "nf_flow_create accepted clamp %g, whose reciprocal overflows", (double)d->layers[i].clamp);
            s->poisoned = 1;
        }
    return 1;
}

/* Each call is a frame of 1 + ARG_BYTES bytes (opcode, then its arguments, zeros past
   what it reads), so that a mutation inside one call does not shift the next ones. */
#define ARG_BYTES 24
static void run_ops(run *s) {
    fz *top = s->z, sub; int op;
    for (op = 0; op < MAX_OPS && top->i < top->n && !s->poisoned; ++op) {
        int code = pick(top, 22);
        sub.p = top->p + top->i; sub.n = top->n - top->i < ARG_BYTES ? top->n - top->i : ARG_BYTES; sub.i = 0;
        top->i += sub.n;
        s->z = &sub;
        trace("op %d: %d", op, code);
        switch (code) {
        case 0: op_data_init(s); break;
        case 1: op_trainer(s); break;
        case 2: case 3: op_step(s, 0); break;
        case 4: op_step(s, 1); break;
        case 5: op_apply(s); break;
        case 6: op_kl(s); break;
        case 7: op_fit(s); break;
        case 8: { size_t off, n = pick_rows(s, &off); op_log_prob(s, off, n); } break;
        case 9: op_sample(s); break;
        case 10: op_forward(s, 0); break;
        case 11: op_forward(s, 1); break;
        case 12: op_roundtrip(s); break;
        case 13: op_logdet(s); break;
        case 14: op_importance(s); break;
        case 15: op_save_load(s); break;
        case 16: op_export(s); break;
        case 17: op_stage(s); break;
        case 18: if (pick(s->z, 2)) op_base_logp(s); else op_set_std(s); break;
        case 19: op_grad_check(s); break;
        case 20: op_const(s); break;
        default: op_null(s); break;
        }
        s->z = top;
    }
}

/* every row with its non-finite values replaced by 0, all of them at once */
static void final_log_prob(run *s) {
    static nf_real y[MAX_ROWS * MAX_D], c[MAX_ROWS * MAX_C + 1];
    size_t n = (size_t)s->n_rows, i; nf_result r;
    for (i = 0; i < n * (size_t)s->D; ++i) y[i] = finite_r(s->y[i]) ? s->y[i] : 0;
    for (i = 0; i < n * (size_t)s->C; ++i) c[i] = finite_r(s->ctx[i]) ? s->ctx[i] : 0;
    g_op = "nf_flow_log_prob_ctx (final, finite rows)"; clr(s);
    r = nf_flow_log_prob_ctx(s->f, y, n, s->C ? c : NULL, n, s->lp);
    check_rc(s, r, 1);
    if (r == NF_OK) { rows_in ri; ri.in = y; ri.in_cols = s->D; ri.ctx = s->C ? c : NULL; ri.ctx_rows = n; check_logp(s, s->lp, n, &ri, "logp"); }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static run s;   /* big buffers: not on the stack */
    fz z; nf_flow_desc d; nf_domain dom[MAX_D]; void *mem = NULL; int i, j;
    trace("---- input of %lu bytes", (unsigned long)size);
    memset(&s, 0, sizeof s);
    z.p = data; z.n = size; z.i = 0;
    s.z = &z;
    g_op = "start";
    if (!build_flow(&s, &d, dom, &mem)) { free(mem); return 0; }
    if (s.poisoned) { nf_flow_destroy(s.f); free(mem); return 0; }
    s.D = nf_flow_dim(s.f); s.C = nf_flow_context_dim(s.f);
    if (s.D != d.dim || s.C != d.context_dim) fail("desc", "dim %d ctx %d, asked %d %d", s.D, s.C, d.dim, d.context_dim);
    s.n_rows = 1 + pick(&z, MAX_ROWS);
    for (i = 0; i < s.n_rows; ++i)
        for (j = 0; j < s.D; ++j) s.y[i * s.D + j] = gen_val(&z, &nf_flow_domains(s.f)[j]);
    for (i = 0; i < CTX_ROWS * s.C; ++i) s.ctx[i] = i < s.n_rows * s.C ? gen_ctx(&z) : s.ctx[i % (s.n_rows * s.C)];
    for (i = 0; i < MAX_ROWS; ++i) s.w[i] = gen_weight(&z);
    nf_rng_seed(&s.rng, u8(&z));
    run_ops(&s);
    if (!s.poisoned) { final_log_prob(&s); op_save_load(&s); }
    if (s.tr) nf_trainer_destroy(s.tr);
    nf_flow_destroy(s.f);
    free(mem);
    return 0;
}

#ifdef FUZZ_API_SEEDS
/* Seed inputs: one per layer kind (ordinary data, a few calls of every kind), one per
   domain kind, and a conditional flow. Bytes mirror the format above. */
static void put(unsigned char *b, size_t *n, unsigned v) { b[(*n)++] = (unsigned char)v; }
static void seed_file(const char *dir, const char *name, const unsigned char *b, size_t n) {
    char path[512]; FILE *fp;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    fp = fopen(path, "wb");
    if (fp) { fwrite(b, 1, n, fp); fclose(fp); }
}
static size_t seed(unsigned char *b, int dim, int ctx, int kind, int domkind, int ops_variant) {
    size_t n = 0; int i, j;
    put(b, &n, (unsigned)(dim - 1)); put(b, &n, (unsigned)ctx); put(b, &n, 0); put(b, &n, 7);
    put(b, &n, 0);        /* chunk: default */
    put(b, &n, 0);        /* nf_flow_create */
    put(b, &n, 0);        /* no preset */
    put(b, &n, kind ? 2 : 0);
    for (i = 0; i < (kind ? 2 : 0); ++i) {
        put(b, &n, (unsigned)(kind - 1)); put(b, &n, 3 /* hidden 4 */); put(b, &n, 2 /* depth 2 */);
        put(b, &n, 2 /* tanh */); put(b, &n, 1 /* clamp 3 */); put(b, &n, (unsigned)(i & 1)); put(b, &n, (unsigned)(i & 1)); put(b, &n, 9);
        put(b, &n, 3 /* bins 4 */); put(b, &n, 0); put(b, &n, 0); put(b, &n, 0); put(b, &n, 0);   /* spline defaults */
        put(b, &n, (unsigned)(i & 1) /* affine, spline */); put(b, &n, (unsigned)(kind & 1) /* MAF or IAF */); put(b, &n, (unsigned)i /* order */);
    }
    if (domkind >= 0) {
        put(b, &n, 1);    /* domains */
        for (j = 0; j < dim; ++j) {
            put(b, &n, (unsigned)(j == 0 ? domkind : 0));
            put(b, &n, 0 /* lo 0 */); put(b, &n, 1); put(b, &n, 0 /* hi = lo + 1 */);
            put(b, &n, 1); put(b, &n, 0 /* cut at the middle */); put(b, &n, 1 /* fixed */);
        }
    } else {
        put(b, &n, 0);    /* no domains */
    }
    put(b, &n, 11);       /* 12 rows */
    for (i = 0; i < 12 * dim; ++i) put(b, &n, (unsigned)((i * 37 + 11) % 128));
    for (i = 0; i < 12 * ctx; ++i) put(b, &n, (unsigned)(80 + (i * 13) % 40));
    for (i = 0; i < MAX_ROWS; ++i) put(b, &n, 0);   /* weights 1 */
    put(b, &n, 5);        /* rng */
    {   /* frames: opcode, then its argument bytes (zero-padded to ARG_BYTES) */
        static const unsigned char ops[][8] = {
            {1, 4},              /* trainer, max_batch 8 */
            {0, 0, 11},          /* data_init on 12 rows */
            {2, 0, 7, 0, 1},     /* train_step on 8 rows, weights */
            {3, 0, 7, 0, 2},     /* train_step (no weights) */
            {4, 0, 7, 0, 2},     /* loss_grad */
            {5, 1},              /* apply */
            {6, 3, 0},           /* KL on 4 draws, standard normal target */
            {7, 0, 11, 0, 1},    /* fit */
            {8, 0, 11},          /* log_prob */
            {9, 4},              /* sample 8 */
            {10, 0, 11},         /* forward */
            {11, 0, 11},         /* inverse */
            {12, 0, 11},         /* roundtrip */
            {13, 0, 3},          /* logdet check */
            {14, 3},             /* importance, 64 draws */
            {15},                /* save / load */
            {16},                /* export */
            {17, 0, 11, 1, 2},   /* stage */
            {18, 1},             /* base log_prob */
            {19, 0, 3, 0, 1},    /* grad check */
            {20, 1},             /* constant flow */
            {21, 2}};            /* a NULL argument */
        size_t k, first = (size_t)ops_variant % 3;
        for (k = first; k < sizeof ops / sizeof ops[0]; ++k) {
            put(b, &n, ops[k][0]);
            for (i = 0; i < ARG_BYTES; ++i) put(b, &n, i < 7 ? ops[k][i + 1] : 0);
        }
    }
    return n;
}
int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : ".";
    unsigned char b[4096]; char name[64]; int k, dk;
    for (k = 0; k < NF_LAYER_KIND_COUNT; ++k) {
        snprintf(name, sizeof name, "kind%d", k);
        seed_file(dir, name, b, seed(b, 3, 0, k, -1, k));
    }
    for (dk = 0; dk < NF_DOMAIN_KIND_COUNT; ++dk) {
        snprintf(name, sizeof name, "domain%d", dk);
        seed_file(dir, name, b, seed(b, 2, 0, 1 + dk % (NF_LAYER_KIND_COUNT - 1), dk, dk));
    }
    seed_file(dir, "conditional", b, seed(b, 2, 2, NF_LAYER_AFFINE_COUPLING, 1, 0));
    seed_file(dir, "conditional_lu", b, seed(b, 4, 1, NF_LAYER_LU_LINEAR, 3, 1));
    seed_file(dir, "monotone_1d", b, seed(b, 1, 0, NF_LAYER_MONOTONE, 2, 2));
    return 0;
}
#endif
