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

/* ---- hand-made model files (the format, written out here) ---------------------- */
typedef struct { unsigned char *p; size_t n, cap; } wbuf;
static void w8(wbuf *b, unsigned v) { if (b->n < b->cap) b->p[b->n] = (unsigned char)v; b->n++; }
static void w32(wbuf *b, uint32_t v) { int i; for (i = 0; i < 4; ++i) w8(b, (v >> (8 * i)) & 255u); }
static void w64(wbuf *b, uint64_t v) { w32(b, (uint32_t)v); w32(b, (uint32_t)(v >> 32)); }
static void wf32(wbuf *b, float v) { uint32_t u; memcpy(&u, &v, 4); w32(b, u); }
static void wf64(wbuf *b, double v) { uint64_t u; memcpy(&u, &v, 8); w64(b, u); }
/* patches the total size and appends the CRC */
static size_t finish(wbuf *b) {
    int i; uint32_t crc;
    for (i = 0; i < 8; ++i) b->p[16 + i] = (unsigned char)((uint64_t)(b->n + 4) >> (8 * i));
    crc = nf_crc32(0, b->p, b->n); w32(b, crc);
    return b->n;
}
static void header(wbuf *b, uint32_t version, uint32_t rb, uint32_t dim, uint32_t nl, uint32_t chunk) {
    static const unsigned char magic[8] = {'N', 'F', 'L', 'W', '\r', '\n', 0x1a, '\n'};
    int i; for (i = 0; i < 8; ++i) w8(b, magic[i]);
    w32(b, version); w32(b, rb); w64(b, 0);
    w32(b, dim); w32(b, 0); w32(b, nl); w32(b, chunk); w32(b, 0); w32(b, 0); w64(b, 1);
}
static void layer(wbuf *b, uint32_t kind, uint32_t hidden, uint32_t depth) {
    w32(b, kind); w32(b, hidden); w32(b, depth); w32(b, 0); w32(b, 0); w32(b, 0); w32(b, 0); w32(b, 0); wf32(b, 0);
}

/* Every value-level and size-level attack on the loader, and files of format version 1. */
static void test_hostile_files(void) {
    static unsigned char big[(2 * 2 + 327682) * 4 + 4096];
    wbuf b; size_t n, k; nf_flow *g = NULL; nf_result r; char msg[200];
    /* 1. An affine coupling of width 65536 and depth 2 on 2-D data has 4,295,294,978
          parameters; a 32-bit build that multiplied unchecked computed them modulo 2^32
          and accepted a file of that many weights. Must be refused on every platform. */
    uint32_t h = 65536, wrapped = h + h + h * h + h + h * 2 + 2;   /* the 32-bit count: 327,682 */
    b.p = big; b.n = 0; b.cap = sizeof big;
    header(&b, 1, 4, 2, 1, 0); layer(&b, NF_LAYER_AFFINE_COUPLING, h, 2);
    for (k = 0; k < 2; ++k) { w32(&b, 0); wf64(&b, 0); wf64(&b, 0); wf64(&b, 0); }
    w64(&b, wrapped);
    for (k = 0; k < 2; ++k) wf32(&b, 0);
    for (k = 0; k < 2; ++k) wf32(&b, 1);
    for (k = 0; k < wrapped; ++k) wf32(&b, 0);
    n = finish(&b);
    r = nf_flow_load(&g, big, n);
    snprintf(msg, sizeof msg, "got %s (size_t is %u bytes)", nf_result_string(r), (unsigned)sizeof(size_t));
    check(r == NF_ERR_CORRUPT && g == NULL, "crafted_size_overflow_file_refused", msg);
    /* 2. A small valid model whose stored chunk is 2^20 rows: the loader must not allocate
          for it (the old loader allocated and zeroed 32 GiB for a 49 KB file) */
    b.n = 0;
    header(&b, 1, 4, 2, 1, 1u << 20); layer(&b, NF_LAYER_AFFINE_COUPLING, 64, 2);
    for (k = 0; k < 2; ++k) { w32(&b, 0); wf64(&b, 0); wf64(&b, 0); wf64(&b, 0); }
    w64(&b, 1 * 64 + 64 + 64 * 64 + 64 + 64 * 2 + 2);
    for (k = 0; k < 2; ++k) wf32(&b, 0);
    for (k = 0; k < 2; ++k) wf32(&b, 1);
    for (k = 0; k < 1 * 64 + 64 + 64 * 64 + 64 + 64 * 2 + 2; ++k) wf32(&b, 0.01f);
    n = finish(&b);
    r = nf_flow_load(&g, big, n);
    if (r == NF_OK) {
        size_t bytes = 0; nf_flow_size(nf_flow_get_desc(g), &bytes);
        snprintf(msg, sizeof msg, "chunk %d, flow %lu bytes for a %lu-byte file", nf_flow_get_desc(g)->chunk, (unsigned long)bytes, (unsigned long)n);
        check(bytes <= 32 * n + 65536 && nf_flow_get_desc(g)->chunk <= 256, "stored_chunk_cannot_inflate_allocation", msg);
        printf("# huge stored chunk: %s\n", msg);
        nf_flow_destroy(g);
    } else check(0, "stored_chunk_cannot_inflate_allocation", nf_result_string(r));
    /* 3. Values this build cannot hold: a standard deviation of 1e-300 (0 in float) and a
          weight of 1e300 (Inf in float) are load errors there; a double build takes them. */
    for (k = 0; k < 2; ++k) {
        b.n = 0;
        header(&b, 1, 8, 1, 0, 0);
        w32(&b, 0); wf64(&b, 0); wf64(&b, 0); wf64(&b, 0);
        w64(&b, 0);
        wf64(&b, k == 0 ? 0.0 : 1e300); wf64(&b, k == 0 ? 1e-300 : 1.0);   /* mean, std */
        n = finish(&b);
        r = nf_flow_load(&g, big, n);
        snprintf(msg, sizeof msg, "got %s", nf_result_string(r));
        if (sizeof(nf_real) == 4) check(r == NF_ERR_RANGE && g == NULL, k == 0 ? "double_file_tiny_std_is_range_error_in_float" : "double_file_huge_value_is_range_error_in_float", msg);
        else { check(r == NF_OK, k == 0 ? "double_file_tiny_std_loads_in_double" : "double_file_huge_value_loads_in_double", msg); nf_flow_destroy(g); }
    }
    /* 4. Files written by nflow 0.1.0 (format version 1; tests/data/README.md) still load
          and give the log-densities recorded when they were written. */
    {
        static const double want_f[5] = {-24.649667739868164, -27.463382720947266, -13.095578193664551, -4.096381664276123, -6.9768190383911133};
        static const double want_d[5] = {-34.188130283213845, -24.143681461011361, -13.76840589008531, -5.8918208293138212, -14.175748297554241};
        const char *files[2] = {"tests/data/model_v1_float.nfl", "tests/data/model_v1_double.nfl"};
        int w;
        for (w = 0; w < 2; ++w) {
            FILE *fp = fopen(files[w], "rb"); nf_real y[15], c[10], lp[5]; int i; double e = 0;
            const double *want = w ? want_d : want_f;
            if (!fp) { check(0, w ? "version1_double_file_loads" : "version1_float_file_loads", files[w]); continue; }
            n = fread(big, 1, sizeof big, fp); fclose(fp);
            r = nf_flow_load(&g, big, n);
            check(r == NF_OK, w ? "version1_double_file_loads" : "version1_float_file_loads", nf_result_string(r));
            if (r != NF_OK) continue;
            for (i = 0; i < 5; ++i) {
                y[3*i] = (nf_real)(-2.0 + i); y[3*i+1] = (nf_real)(0.3 + i); y[3*i+2] = (nf_real)(0.5 * i - 1);
                c[2*i] = (nf_real)(0.2 * i); c[2*i+1] = (nf_real)(1 - 0.3 * i);
            }
            nf_flow_log_prob_ctx(g, y, 5, c, 5, lp);
            for (i = 0; i < 5; ++i) if (fabs((double)lp[i] - want[i]) / fabs(want[i]) > e) e = fabs((double)lp[i] - want[i]) / fabs(want[i]);
            snprintf(msg, sizeof msg, "max rel diff %g", e);
            /* same precision: the same arithmetic; the other precision: its rounding */
            check(e < ((sizeof(nf_real) == 8) == (w == 1) ? 1e-6 : 1e-4), w ? "version1_double_file_same_log_prob" : "version1_float_file_same_log_prob", msg);
            nf_flow_destroy(g);
        }
    }
}

/* nf_flow_load_into refuses a model of another architecture and names the field. */
static void test_load_into_mismatch(void) {
    nf_flow_desc d; nf_layer_desc l; nf_flow *f, *h; unsigned char *buf; size_t n; nf_domain dom[2]; int c;
    static const char *names[6] = {"activation", "parity", "seed", "clamp", "domain hi", "hidden"};
    memset(dom, 0, sizeof dom); dom[1].kind = NF_DOMAIN_INTERVAL; dom[1].lo = 0; dom[1].hi = 1;
    nf_flow_desc_init(&d, 2); d.domains = dom;
    memset(&l, 0, sizeof l);
    l.kind = NF_LAYER_AFFINE_COUPLING; l.hidden = 8; l.activation = NF_ACT_TANH; nf_flow_desc_add(&d, &l);
    l.kind = NF_LAYER_PERMUTE; l.seed = 3; nf_flow_desc_add(&d, &l);
    nf_flow_create(&f, &d);
    nf_flow_save_size(f, &n); buf = (unsigned char *)malloc(n); nf_flow_save(f, buf, n, &n);
    {   /* the same architecture written with explicit defaults loads */
        nf_flow_desc e2 = d; e2.layers[0].depth = 2;
        nf_flow_create(&h, &e2);
        check(nf_flow_load_into(h, buf, n) == NF_OK, "load_into_same_architecture_explicit_defaults", nf_flow_error(h));
        nf_flow_destroy(h);
    }
    for (c = 0; c < 6; ++c) {
        nf_flow_desc e2 = d; nf_domain dom2[2]; char nm[80]; nf_result r;
        memcpy(dom2, dom, sizeof dom); e2.domains = dom2;
        if (c == 0) e2.layers[0].activation = NF_ACT_RELU;
        if (c == 1) e2.layers[0].parity = 1;
        if (c == 2) e2.layers[1].seed = 4;
        if (c == 3) e2.layers[0].clamp = 2;
        if (c == 4) dom2[1].hi = 2;
        if (c == 5) e2.layers[0].hidden = 8, e2.layers[0].depth = 3;
        nf_flow_create(&h, &e2);
        r = nf_flow_load_into(h, buf, n);
        snprintf(nm, sizeof nm, "load_into_refuses_other_%s", names[c]);
        check(r == NF_ERR_SHAPE && strstr(nf_flow_error(h), c == 5 ? "depth" : names[c]) != NULL, nm, nf_flow_error(h));
        if (c == 0) printf("# %s\n", nf_flow_error(h));
        nf_flow_destroy(h);
    }
    free(buf); nf_flow_destroy(f);
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
        memcpy(b, buf, n); b[8] = 99;
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
        nf_flow_load_desc(buf, n, &d, NULL, 0);
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
    test_hostile_files();
    test_load_into_mismatch();
    printf("# %d passed, %d failed\n", g_pass, g_fail);
    return g_fail != 0;
}
