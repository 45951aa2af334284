/* Built with -ffast-math (tests/run.sh): the compiler may then assume there is no NaN or
   Inf and fold comparisons such as x != x away. nflow reads finiteness from the bits, so
   every check below must still see bad input. Prints "ok name" / "FAIL name". */
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"
#include <stdio.h>
#include <string.h>

static int g_pass, g_fail;
static void check(int ok, const char *name) {
    if (ok) { g_pass++; printf("ok %s\n", name); } else { g_fail++; printf("FAIL %s\n", name); }
}
/* NaN and Inf made from bits, so that constant folding under -ffast-math cannot touch them */
static nf_real make(int inf, int neg) {
    nf_real x;
    if (sizeof x == 4) { uint32_t u = inf ? 0x7f800000u : 0x7fc00000u; if (neg) u |= 0x80000000u; memcpy(&x, &u, 4); }
    else { uint64_t u = inf ? 0x7ff0000000000000ull : 0x7ff8000000000000ull; if (neg) u |= 0x8000000000000000ull; memcpy(&x, &u, 8); }
    return x;
}
static int nan_target(const nf_real *x, size_t n, int dim, nf_real *logp, nf_real *grad, void *user) {
    size_t i; (void)x; (void)dim; (void)user;
    for (i = 0; i < n; ++i) { logp[i] = make(0, 0); if (grad) { grad[2 * i] = 0; grad[2 * i + 1] = 0; } }
    return 0;
}

int main(void) {
    nf_flow_desc d; nf_flow *f, *fc; nf_trainer *t; nf_rng rng; nf_real y[16 * 2], out[16 * 2], w[16], c[16];
    nf_real mean[2] = {0, 0}, sd[2] = {1, 1}; int i, k;
    printf("# -ffast-math build, nf_real = %s\n", sizeof(nf_real) == 8 ? "double" : "float");
    nf_rng_seed(&rng, 1);
    for (i = 0; i < 32; ++i) y[i] = nf_rng_normal(&rng);
    for (i = 0; i < 16; ++i) { w[i] = 1; c[i] = 0; }
    nf_flow_desc_realnvp(&d, 2, 2, 8);
    nf_flow_create(&f, &d);
    d.context_dim = 1; nf_flow_create(&fc, &d);
    nf_trainer_create(&t, f, NULL, 16);
    for (k = 0; k < 3; ++k) {   /* NaN, +Inf, -Inf */
        nf_real bad = make(k > 0, k == 2); char name[64];
        y[5] = bad;
        snprintf(name, sizeof name, "fastmath_log_prob_rejects_%s", k == 0 ? "nan" : k == 1 ? "inf" : "neg_inf");
        check(nf_flow_log_prob(f, y, 16, out) == NF_ERR_NONFINITE && nf_flow_error_row(f) == 2, name);
        snprintf(name, sizeof name, "fastmath_forward_rejects_%s", k == 0 ? "nan" : k == 1 ? "inf" : "neg_inf");
        check(nf_flow_forward(f, y, 16, out, NULL) == NF_ERR_NONFINITE, name);
        snprintf(name, sizeof name, "fastmath_inverse_rejects_%s", k == 0 ? "nan" : k == 1 ? "inf" : "neg_inf");
        check(nf_flow_inverse(f, y, 16, out, NULL) == NF_ERR_NONFINITE, name);
        snprintf(name, sizeof name, "fastmath_train_step_rejects_%s", k == 0 ? "nan" : k == 1 ? "inf" : "neg_inf");
        check(nf_train_step(t, y, NULL, 16, NULL) == NF_ERR_NONFINITE, name);
        snprintf(name, sizeof name, "fastmath_fit_rejects_%s", k == 0 ? "nan" : k == 1 ? "inf" : "neg_inf");
        check(nf_fit(f, y, 16, NULL, NULL, NULL) == NF_ERR_NONFINITE, name);
        y[5] = 0;
        w[3] = bad;
        snprintf(name, sizeof name, "fastmath_weights_reject_%s", k == 0 ? "nan" : k == 1 ? "inf" : "neg_inf");
        check(nf_train_step(t, y, w, 16, NULL) == NF_ERR_NONFINITE, name);
        w[3] = 1;
        c[7] = bad;
        snprintf(name, sizeof name, "fastmath_context_rejects_%s", k == 0 ? "nan" : k == 1 ? "inf" : "neg_inf");
        check(nf_flow_log_prob_ctx(fc, y, 16, c, 16, out) == NF_ERR_NONFINITE && nf_flow_error_row(fc) == 7, name);
        c[7] = 0;
        mean[1] = bad;
        snprintf(name, sizeof name, "fastmath_standardisation_rejects_%s", k == 0 ? "nan" : k == 1 ? "inf" : "neg_inf");
        check(nf_flow_set_standardization(f, mean, sd) == NF_ERR_ARG, name);
        mean[1] = 0;
    }
    {   /* a non-finite loss from weights that overflow the conditioner: rejected, not applied */
        nf_real *p = nf_flow_params(f); size_t np = nf_flow_num_params(f), q;
        for (q = 0; q < np; ++q) p[q] = (nf_real)0.5;
        for (i = 0; i < 32; ++i) y[i] = (nf_real)(sizeof(nf_real) == 8 ? 1e300 : 1e30);
        check(nf_train_step(t, y, NULL, 16, NULL) == NF_ERR_DIVERGED, "fastmath_nonfinite_loss_is_diverged");
    }
    nf_trainer_destroy(t);
    nf_flow_destroy(f);
    nf_flow_desc_realnvp(&d, 2, 2, 8); nf_flow_create(&f, &d);
    nf_trainer_create(&t, f, NULL, 16);
    check(nf_train_step_kl(t, &rng, 16, nan_target, NULL, NULL) == NF_ERR_DIVERGED, "fastmath_nan_target_is_diverged");
    nf_trainer_destroy(t);
    {   /* a model file whose weight is NaN (checksum repaired) is refused */
        unsigned char buf[8192]; size_t n, i2; uint32_t crc;
        nf_flow_save(f, buf, sizeof buf, &n);
        for (i2 = 0; i2 < sizeof(nf_real); ++i2) { nf_real v = make(0, 0); buf[n - 4 - sizeof(nf_real) + i2] = ((unsigned char *)&v)[i2]; }
        crc = nf_crc32(0, buf, n - 4);
        for (i2 = 0; i2 < 4; ++i2) buf[n - 4 + i2] = (unsigned char)(crc >> (8 * i2));
        { nf_flow *g; check(nf_flow_load(&g, buf, n) == NF_ERR_CORRUPT, "fastmath_nan_weight_in_file_is_corrupt"); }
    }
    nf_flow_destroy(f); nf_flow_destroy(fc);
    printf("# %d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
