/* Model files: round trips, float <-> double, and a loader that survives every
   truncation and every single-bit flip. Built in float and double, and under ASan
   (which also proves no failed load leaks). */
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

static int g_pass, g_fail;
static void check(int ok, const char *name, const char *detail) {
    if (ok) { g_pass++; printf("ok %s\n", name); } else { g_fail++; printf("FAIL %s %s\n", name, detail ? detail : ""); }
}

static nf_flow *small_flow(int D, nf_rng *rng) {
    nf_flow_desc d; nf_layer_desc l; nf_flow *f; size_t i; nf_real m[8], s[8]; int j;
    nf_flow_desc_init(&d, D); d.base = NF_BASE_DIAG_GAUSSIAN; d.seed = 77;
    memset(&l, 0, sizeof l);
    l.kind = NF_LAYER_AFFINE_COUPLING; l.hidden = 4; l.depth = 1; l.activation = NF_ACT_TANH; l.clamp = 2.5f; nf_flow_desc_add(&d, &l);
    l.kind = NF_LAYER_ACTNORM; nf_flow_desc_add(&d, &l);
    l.kind = NF_LAYER_LU_LINEAR; l.seed = 3; nf_flow_desc_add(&d, &l);
    l.kind = NF_LAYER_MONOTONE; l.hidden = 2; nf_flow_desc_add(&d, &l);
    if (nf_flow_create(&f, &d) != NF_OK) return NULL;
    for (i = 0; i < nf_flow_num_params(f); ++i) nf_flow_params(f)[i] = (nf_real)(0.3 * nf_rng_normal(rng));
    for (j = 0; j < D; ++j) { m[j] = (nf_real)(j - 1); s[j] = (nf_real)(0.5 + j); }
    nf_flow_set_standardization(f, m, s);
    return f;
}

/* Re-encode a native model file with reals of `width` bytes (the format, written out by hand). */
static unsigned char *reencode(const unsigned char *src, size_t n, int width, size_t *out_n) {
    uint32_t rb = (uint32_t)src[12] | (uint32_t)src[13] << 8, nl = src[32], dim = src[24];
    size_t hdr = 56 + (size_t)nl * 36 + (size_t)dim * 28 + 8, nreal = (n - 4 - hdr) / rb, i, m;
    unsigned char *dst; uint32_t crc;
    m = hdr + nreal * (size_t)width + 4;
    dst = (unsigned char *)malloc(m);
    memcpy(dst, src, hdr);
    dst[12] = (unsigned char)width;
    for (i = 0; i < 8; ++i) dst[16 + i] = (unsigned char)((uint64_t)m >> (8 * i));
    for (i = 0; i < nreal; ++i) {
        double v; float fv; uint64_t u = 0; int k;
        for (k = 0; k < (int)rb; ++k) u |= (uint64_t)src[hdr + i * rb + k] << (8 * k);
        if (rb == 4) { uint32_t u32 = (uint32_t)u; memcpy(&fv, &u32, 4); v = fv; } else memcpy(&v, &u, 8);
        if (width == 4) { uint32_t u32; fv = (float)v; memcpy(&u32, &fv, 4); u = u32; } else memcpy(&u, &v, 8);
        for (k = 0; k < width; ++k) dst[hdr + i * (size_t)width + k] = (unsigned char)(u >> (8 * k));
    }
    crc = nf_crc32(0, dst, m - 4);
    for (i = 0; i < 4; ++i) dst[m - 4 + i] = (unsigned char)(crc >> (8 * i));
    *out_n = m;
    return dst;
}

int main(void) {
    nf_rng rng; nf_flow *f, *g = NULL; size_t n, wr, k, i; unsigned char *buf; nf_result r;
    nf_real y[50 * 3], lp1[50], lp2[50]; int ok, D = 3; char msg[160];
    long errs[NF_RESULT_COUNT] = {0};
    nf_rng_seed(&rng, 9);
    printf("# model file tests, nf_real = %s\n", sizeof(nf_real) == 8 ? "double" : "float");
    f = small_flow(D, &rng);
    for (i = 0; i < 150; ++i) y[i] = nf_rng_normal(&rng);
    nf_flow_save_size(f, &n);
    buf = (unsigned char *)malloc(n);
    r = nf_flow_save(f, buf, n, &wr);
    check(r == NF_OK && wr == n, "save_writes_predicted_size", NULL);
    check(nf_flow_save(f, buf, n - 1, &wr) == NF_ERR_ARENA_FULL, "save_into_small_buffer_is_error", NULL);
    nf_flow_save(f, buf, n, &wr);
    r = nf_flow_load(&g, buf, n);
    check(r == NF_OK, "load_roundtrip", nf_result_string(r));
    if (r == NF_OK) {
        nf_real m1[3], s1[3], m2[3], s2[3];
        nf_flow_get_standardization(f, m1, s1); nf_flow_get_standardization(g, m2, s2);
        check(memcmp(nf_flow_params(f), nf_flow_params(g), nf_flow_num_params(f) * sizeof(nf_real)) == 0 &&
              memcmp(m1, m2, sizeof m1) == 0 && memcmp(s1, s2, sizeof s1) == 0, "roundtrip_bit_exact_weights", NULL);
        nf_flow_log_prob(f, y, 50, lp1); nf_flow_log_prob(g, y, 50, lp2);
        check(memcmp(lp1, lp2, sizeof lp1) == 0, "roundtrip_bit_exact_log_prob", NULL);
        {   /* save of the loaded flow is byte-identical */
            unsigned char *b2 = (unsigned char *)malloc(n);
            nf_flow_save(g, b2, n, &wr);
            check(memcmp(buf, b2, n) == 0, "save_load_save_identical_bytes", NULL);
            free(b2);
        }
        nf_flow_destroy(g);
    }
    {   /* the other precision: converted on load */
        size_t m; unsigned char *other = reencode(buf, n, sizeof(nf_real) == 4 ? 8 : 4, &m);
        r = nf_flow_load(&g, other, m);
        check(r == NF_OK, "load_other_precision_file", nf_result_string(r));
        if (r == NF_OK) {
            double e = 0;
            nf_flow_log_prob(f, y, 50, lp1); nf_flow_log_prob(g, y, 50, lp2);
            for (i = 0; i < 50; ++i) if (fabs((double)lp1[i] - (double)lp2[i]) > e) e = fabs((double)lp1[i] - (double)lp2[i]);
            snprintf(msg, sizeof msg, "max diff %g", e);
            check(e < 1e-4, "other_precision_same_density", msg);
            nf_flow_destroy(g);
        }
        free(other);
    }
    {   /* FILE round trip */
        FILE *fp = tmpfile();
        check(fp && nf_flow_save_file(f, fp) == NF_OK, "save_file", NULL);
        if (fp) {
            rewind(fp);
            r = nf_flow_load_file(&g, fp);
            check(r == NF_OK && memcmp(nf_flow_params(f), nf_flow_params(g), nf_flow_num_params(f) * sizeof(nf_real)) == 0, "load_file_roundtrip", nf_result_string(r));
            if (r == NF_OK) nf_flow_destroy(g);
            fclose(fp);
        }
    }
    /* every truncation */
    ok = 1;
    for (k = 0; k < n; ++k) {
        g = (nf_flow *)1;
        r = nf_flow_load(&g, buf, k);
        if (r == NF_OK || g != NULL) ok = 0;
        errs[r]++;
    }
    snprintf(msg, sizeof msg, "(%lu lengths: %ld truncated, %ld bad magic)", (unsigned long)n, errs[NF_ERR_TRUNCATED], errs[NF_ERR_BAD_MAGIC]);
    check(ok && errs[NF_ERR_TRUNCATED] == (long)n, "every_truncation_is_an_error_truncated", msg);
    printf("# truncations: %lu lengths, all rejected %s\n", (unsigned long)n, msg);
    /* every single-bit flip */
    memset(errs, 0, sizeof errs); ok = 1;
    for (k = 0; k < n * 8; ++k) {
        buf[k / 8] ^= (unsigned char)(1u << (k % 8));
        g = (nf_flow *)1;
        r = nf_flow_load(&g, buf, n);
        if (r == NF_OK || g != NULL) ok = 0;
        errs[r]++;
        buf[k / 8] ^= (unsigned char)(1u << (k % 8));
    }
    snprintf(msg, sizeof msg, "(%lu flips: checksum %ld, magic %ld, version %ld, truncated %ld, corrupt %ld)", (unsigned long)n * 8,
             errs[NF_ERR_CHECKSUM], errs[NF_ERR_BAD_MAGIC], errs[NF_ERR_VERSION], errs[NF_ERR_TRUNCATED], errs[NF_ERR_CORRUPT]);
    check(ok, "every_single_bit_flip_is_an_error", msg);
    printf("# bit flips %s\n", msg);
    check(nf_flow_load(&g, buf, n) == NF_OK, "buffer_intact_after_flips", NULL);
    nf_flow_destroy(g);
    /* each kind of damage has its own code */
    {
        unsigned char *b = (unsigned char *)malloc(n); uint32_t crc; int q;
        memcpy(b, buf, n); b[0] = 'X';
        check(nf_flow_load(&g, b, n) == NF_ERR_BAD_MAGIC, "bad_magic_code", NULL);
        memcpy(b, buf, n); b[8] = 2;
        check(nf_flow_load(&g, b, n) == NF_ERR_VERSION, "future_version_code", NULL);
        memcpy(b, buf, n); b[8] = 0;
        check(nf_flow_load(&g, b, n) == NF_ERR_VERSION, "version_zero_code", NULL);
        check(nf_flow_load(&g, buf, n - 1) == NF_ERR_TRUNCATED, "truncated_code", NULL);
        memcpy(b, buf, n); b[n - 20] ^= 0x10;
        check(nf_flow_load(&g, b, n) == NF_ERR_CHECKSUM, "checksum_code", NULL);
        /* consistent checksum, inconsistent architecture: 2 layers claimed, weights for 4 */
        memcpy(b, buf, n); b[32] = 2;
        crc = nf_crc32(0, b, n - 4); for (q = 0; q < 4; ++q) b[n - 4 + q] = (unsigned char)(crc >> (8 * q));
        check(nf_flow_load(&g, b, n) == NF_ERR_CORRUPT, "inconsistent_architecture_code", NULL);
        memcpy(b, buf, n); b[56] = 42;   /* unknown layer kind */
        crc = nf_crc32(0, b, n - 4); for (q = 0; q < 4; ++q) b[n - 4 + q] = (unsigned char)(crc >> (8 * q));
        check(nf_flow_load(&g, b, n) == NF_ERR_CORRUPT, "unknown_layer_kind_code", NULL);
        check(nf_flow_load(&g, NULL, n) == NF_ERR_NULL && nf_flow_load(NULL, buf, n) == NF_ERR_NULL, "load_null_args", NULL);
        free(b);
    }
    {   /* load_into checks that the flow matches */
        nf_flow_desc d; nf_flow *h;
        nf_flow_desc_realnvp(&d, 3, 4, 4);
        nf_flow_create(&h, &d);
        check(nf_flow_load_into(h, buf, n) == NF_ERR_SHAPE, "load_into_mismatched_flow", NULL);
        nf_flow_destroy(h);
    }
    {   /* constant flows: no heap, weights untouched, same densities; writers refuse */
        nf_flow_desc d; size_t need = 0; void *mem; nf_flow *c; const nf_real *src = nf_flow_params(f);
        nf_real m[3], s[3];
        nf_flow_get_standardization(f, m, s);
        nf_flow_load_desc(buf, n, &d);
        nf_flow_size_const(&d, &need);
        mem = malloc(need);
        r = nf_flow_init_const(&c, &d, src, nf_flow_num_params(f), m, s, mem, need);
        check(r == NF_OK, "init_const", nf_result_string(r));
        if (r == NF_OK) {
            nf_flow_log_prob(f, y, 50, lp1); nf_flow_log_prob(c, y, 50, lp2);
            check(memcmp(lp1, lp2, sizeof lp1) == 0, "const_flow_same_log_prob", NULL);
            check(nf_flow_set_standardization(c, m, s) == NF_ERR_READONLY && nf_flow_params(c) == NULL, "const_flow_is_read_only", NULL);
#ifndef NFLOW_NO_TRAINING
            { nf_trainer *t; check(nf_trainer_create(&t, c, NULL, 8) == NF_OK && nf_train_step(t, y, NULL, 8, NULL) == NF_ERR_READONLY, "const_flow_refuses_training", NULL); nf_trainer_destroy(t); }
#endif
        }
        check(nf_flow_init_const(&c, &d, src, nf_flow_num_params(f) + 1, m, s, mem, need) == NF_ERR_SHAPE, "init_const_param_count_checked", NULL);
        check(nf_flow_init_const(&c, &d, src, nf_flow_num_params(f), m, s, mem, need / 2) == NF_ERR_ARENA_FULL, "init_const_small_memory", NULL);
        free(mem);
    }
    free(buf);
    nf_flow_destroy(f);
    printf("# %d passed, %d failed\n", g_pass, g_fail);
    return g_fail != 0;
}
