/* Golden files: a flow with every layer kind, domains, a context and the learnable base,
   built the same way every time, must save to exactly the bytes in tests/data/ and export
   exactly the same C source, and give the same log-densities. This is what keeps a
   restructuring of the header honest: nothing a user can see may change.
   Usage: test_golden            compare (prints ok/FAIL lines)
          test_golden --write     rewrite the golden files (after a deliberate format change) */
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
#define PREC (sizeof(nf_real) == 8 ? "double" : "float")

static nf_flow *golden_flow(void) {
    static nf_domain dom[4];
    nf_flow_desc d; nf_layer_desc l; nf_flow *f; int k, j; nf_real m[6], s[6];
    memset(dom, 0, sizeof dom);
    dom[0].kind = NF_DOMAIN_INTERVAL; dom[0].lo = -2; dom[0].hi = 5;
    dom[1].kind = NF_DOMAIN_LOWER; dom[1].lo = 1;
    dom[2].kind = NF_DOMAIN_PERIODIC; dom[2].lo = 0; dom[2].hi = 6.283185307179586; dom[2].cut = 2.5; dom[2].fixed_cut = 1;
    nf_flow_desc_init(&d, 4); d.base = NF_BASE_DIAG_GAUSSIAN; d.context_dim = 2; d.domains = dom; d.seed = 11; d.chunk = 32;
    memset(&l, 0, sizeof l);
    l.kind = NF_LAYER_ACTNORM; nf_flow_desc_add(&d, &l);
    l.kind = NF_LAYER_AFFINE_COUPLING; l.hidden = 7; l.depth = 2; l.activation = NF_ACT_TANH; l.clamp = 2.5f; nf_flow_desc_add(&d, &l);
    memset(&l, 0, sizeof l);
    l.kind = NF_LAYER_PERMUTE; l.seed = 5; nf_flow_desc_add(&d, &l);
    l.kind = NF_LAYER_ADDITIVE_COUPLING; l.hidden = 5; l.depth = 1; l.mask = NF_MASK_HALF; l.parity = 1; l.activation = NF_ACT_SOFTPLUS; nf_flow_desc_add(&d, &l);
    memset(&l, 0, sizeof l);
    l.kind = NF_LAYER_LU_LINEAR; l.seed = 3; nf_flow_desc_add(&d, &l);
    l.kind = NF_LAYER_REVERSE; nf_flow_desc_add(&d, &l);
    l.kind = NF_LAYER_MONOTONE; l.hidden = 3; nf_flow_desc_add(&d, &l);
    memset(&l, 0, sizeof l);
    l.kind = NF_LAYER_AFFINE_COUPLING; l.parity = 1; l.hidden = 6; l.activation = NF_ACT_LEAKY_RELU; nf_flow_desc_add(&d, &l);
    if (nf_flow_create(&f, &d) != NF_OK) return NULL;
    {   /* weights: the seeded initialisation, then every one moved by an exact dyadic amount
           (the last layers start at zero), so the file is the same on every platform */
        nf_real *p = nf_flow_params(f); size_t i;
        for (i = 0; i < nf_flow_num_params(f); ++i) p[i] += (nf_real)((double)((int)(i * 37 % 64) - 32) / 512.0);
    }
    for (k = 0, j = 0; j < 6; ++j, ++k) { m[j] = (nf_real)(0.25 * j - 0.5); s[j] = (nf_real)(0.5 + j / 4.0); }   /* dyadic: exact everywhere */
    nf_flow_set_standardization(f, m, s);
    return f;
}

/* format version 3: the spline coupling and autoregressive layers */
static nf_flow *golden_flow_v3(void) {
    nf_flow_desc d; nf_layer_desc l; nf_flow *f; int j; nf_real m[4], s[4];
    nf_flow_desc_init(&d, 3); d.context_dim = 1; d.seed = 12;
    memset(&l, 0, sizeof l);
    l.kind = NF_LAYER_SPLINE_COUPLING; l.hidden = 6; l.bins = 5; l.tail_bound = 2.5f; l.activation = NF_ACT_TANH; nf_flow_desc_add(&d, &l);
    memset(&l, 0, sizeof l);
    l.kind = NF_LAYER_AUTOREGRESSIVE; l.hidden = 7; l.depth = 1; nf_flow_desc_add(&d, &l);
    l.transformer = NF_TRANSFORM_SPLINE; l.bins = 3; l.inverse = 1; l.order = NF_ORDER_RANDOM; l.seed = 8; l.min_derivative = 0.01f; nf_flow_desc_add(&d, &l);
    if (nf_flow_create(&f, &d) != NF_OK) return NULL;
    {   nf_real *p = nf_flow_params(f); size_t i; nf_flow *g = f;
        for (i = 0; i < nf_flow_num_params(g); ++i) p[i] += (nf_real)((double)((int)(i * 29 % 64) - 32) / 512.0);
        for (j = 0; j < g->n_layers; ++j)   /* masked weights stay zero */
            if (nf__kinds[g->layers[j].kind].fixup) nf__kinds[g->layers[j].kind].fixup(&g->layers[j], p + g->layers[j].poff); }
    for (j = 0; j < 4; ++j) { m[j] = (nf_real)(j / 8.0); s[j] = (nf_real)(1 + j / 4.0); }   /* dyadic: exact everywhere */
    nf_flow_set_standardization(f, m, s);
    return f;
}

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb"); unsigned char *b; long sz;
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END); sz = ftell(fp); fseek(fp, 0, SEEK_SET);
    b = (unsigned char *)malloc(sz > 0 ? (size_t)sz : 1);
    *n = fread(b, 1, (size_t)sz, fp); fclose(fp);
    return b;
}
static void write_all(const char *path, const void *b, size_t n) {
    FILE *fp = fopen(path, "wb"); if (fp) { fwrite(b, 1, n, fp); fclose(fp); }
}
static unsigned char *file_bytes(FILE *fp, size_t *n) {
    unsigned char *b; long sz; fflush(fp); sz = ftell(fp); rewind(fp);
    b = (unsigned char *)malloc(sz > 0 ? (size_t)sz : 1); *n = fread(b, 1, (size_t)sz, fp);
    return b;
}

static void golden_v3(int write) {
    nf_flow *f = golden_flow_v3(); size_t n, gn, i; unsigned char *buf, *gold; char path[128], detail[160];
    nf_real y[5 * 3], c[5], lp[5];
    if (!f) { check(0, "golden_v3_flow_builds", NULL); return; }
    nf_flow_save_size(f, &n); buf = (unsigned char *)malloc(n);
    nf_flow_save(f, buf, n, &n);
    check(buf[8] == 3, "new_kinds_write_format_version_3", NULL);
    snprintf(path, sizeof path, "tests/data/golden_v3_%s.nfl", PREC);
    if (write) write_all(path, buf, n);
    gold = read_all(path, &gn);
    snprintf(detail, sizeof detail, "%lu bytes written, golden %lu", (unsigned long)n, (unsigned long)(gold ? gn : 0));
    check(gold && gn == n && memcmp(gold, buf, n) == 0, "v3_model_file_bytes_equal_golden", detail);
    for (i = 0; i < 5; ++i) { y[3 * i] = (nf_real)(0.7 * i - 1.4); y[3 * i + 1] = (nf_real)(1 - 0.4 * i); y[3 * i + 2] = (nf_real)(0.3 * i); c[i] = (nf_real)(0.5 * i - 1); }
    nf_flow_log_prob_ctx(f, y, 5, c, 5, lp);
    snprintf(path, sizeof path, "tests/data/golden_v3_%s_logp.txt", PREC);
    if (write) { FILE *fp = fopen(path, "w"); for (i = 0; i < 5; ++i) fprintf(fp, "%.17g\n", (double)lp[i]); fclose(fp); }
    {   FILE *fp = fopen(path, "r"); int same = fp != NULL; double v, tol = sizeof(nf_real) == 8 ? 1e-13 : 1e-6;
        for (i = 0; fp && i < 5; ++i) if (fscanf(fp, "%lf", &v) != 1 || !(fabs(v - (double)lp[i]) <= tol * fabs(v))) same = 0;
        if (fp) fclose(fp);
        check(same, "v3_log_prob_equals_golden", NULL); }
    {   /* and it loads back to the same densities, bit for bit */
        nf_flow *g; nf_real lp2[5];
        check(gold && nf_flow_load(&g, gold, gn) == NF_OK, "v3_golden_loads", NULL);
        if (gold && g) { nf_flow_log_prob_ctx(g, y, 5, c, 5, lp2); check(memcmp(lp, lp2, sizeof lp) == 0, "v3_golden_loaded_same_log_prob", NULL); nf_flow_destroy(g); }
    }
    free(gold); free(buf); nf_flow_destroy(f);
}

int main(int argc, char **argv) {
    int write = argc > 1 && strcmp(argv[1], "--write") == 0;
    nf_flow *f = golden_flow(); size_t n, gn, i; unsigned char *buf, *gold; char path[128], detail[160];
    nf_real y[6 * 4], c[6 * 2], lp[6];
    if (!f) { check(0, "golden_flow_builds", NULL); return 1; }
    printf("# golden files, nf_real = %s\n", PREC);
    golden_v3(write);
    nf_flow_save_size(f, &n); buf = (unsigned char *)malloc(n);
    nf_flow_save(f, buf, n, &n);
    snprintf(path, sizeof path, "tests/data/golden_%s.nfl", PREC);
    if (write) write_all(path, buf, n);
    gold = read_all(path, &gn);
    snprintf(detail, sizeof detail, "%lu bytes written, golden %lu", (unsigned long)n, (unsigned long)(gold ? gn : 0));
    check(gold && gn == n && memcmp(gold, buf, n) == 0, "model_file_bytes_equal_golden", detail);
    check(buf[8] == 2, "flows_without_new_settings_write_format_version_2", NULL);
    free(gold);
    {   /* exported C source */
        FILE *cf = tmpfile(), *hf = tmpfile(); size_t cn, hn, gcn, ghn; unsigned char *cb, *hb, *gc, *gh;
        nf_flow_export_c(f, "golden", 16, cf, hf);
        cb = file_bytes(cf, &cn); hb = file_bytes(hf, &hn);
        snprintf(path, sizeof path, "tests/data/golden_%s_export.c.txt", PREC);
        if (write) write_all(path, cb, cn);
        gc = read_all(path, &gcn);
        snprintf(path, sizeof path, "tests/data/golden_%s_export.h.txt", PREC);
        if (write) write_all(path, hb, hn);
        gh = read_all(path, &ghn);
        check(gc && gh && gcn == cn && ghn == hn && memcmp(gc, cb, cn) == 0 && memcmp(gh, hb, hn) == 0, "exported_c_equals_golden", NULL);
        free(cb); free(hb); free(gc); free(gh); fclose(cf); fclose(hf);
    }
    for (i = 0; i < 6; ++i) {
        y[4 * i] = (nf_real)(-1.5 + i); y[4 * i + 1] = (nf_real)(1.2 + 0.7 * i); y[4 * i + 2] = (nf_real)(0.9 * i); y[4 * i + 3] = (nf_real)(0.4 * i - 1);
        c[2 * i] = (nf_real)(0.3 * i - 0.5); c[2 * i + 1] = (nf_real)(1 - 0.2 * i);
    }
    nf_flow_log_prob_ctx(f, y, 6, c, 6, lp);
    snprintf(path, sizeof path, "tests/data/golden_%s_logp.txt", PREC);
    if (write) {
        FILE *fp = fopen(path, "w");
        for (i = 0; i < 6; ++i) fprintf(fp, "%.17g\n", (double)lp[i]);
        fclose(fp);
    }
    {
        /* not bit for bit: a reordered sum may move the last bit, nothing more */
        FILE *fp = fopen(path, "r"); int same = fp != NULL; double v, tol = sizeof(nf_real) == 8 ? 1e-13 : 1e-6;
        for (i = 0; fp && i < 6; ++i) if (fscanf(fp, "%lf", &v) != 1 || !(fabs(v - (double)lp[i]) <= tol * fabs(v))) same = 0;
        if (fp) fclose(fp);
        check(same, "log_prob_equals_golden", NULL);
    }
    free(buf); nf_flow_destroy(f);
    printf("# %d passed, %d failed\n", g_pass, g_fail);
    return g_fail != 0;
}
