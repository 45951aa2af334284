/* Model files and a short training run across architectures (make test-cross).
     xfile save FILE   builds a flow with fixed, exactly representable weights (every
                       layer kind, every domain kind) and saves it
     xfile load FILE   loads a model file and prints the log-probabilities of fixed points
     xfile info        pointer size, byte order and FLT_EVAL_METHOD of this build
     xfile rng         CRC-32s of the first 100000 nf_rng_uniform and nf_rng_normal values
                       and of the seeded initial weights of RealNVPs of widths 3 to 20
                       (all promised bit-identical on every platform)
     xfile train       100 Adam steps of a small RealNVP from fixed weights on fixed data;
                       prints the first batch loss and the final mean NLL over the data
   tests/cross/run.sh saves on each target, loads every file on x86-64 and the x86-64 file
   on each target, and compares the printed numbers with x86-64's. Weights are set by
   integer formulas and points and data are exact dyadic fractions, so every target starts
   from the same bits: only the target's arithmetic and libm can differ. */
#define NFLOW_IMPLEMENTATION
#include "../../nflow.h"
#include <stdio.h>
#include <string.h>
#include <float.h>

#define D 4
#define NPTS 16

/* an exact value in [-0.25, 0.25], a multiple of 2^-11, from an integer hash of i */
static nf_real fixed_weight(size_t i) {
    uint32_t h = (uint32_t)(i * 2654435761u) >> 8;
    return (nf_real)((double)((long)(h % 1025u) - 512) / 2048.0);
}

static nf_result build(nf_flow **out) {
    static const nf_domain dom[D] = {
        {NF_DOMAIN_REAL, 0, 0, 0, 0},
        {NF_DOMAIN_INTERVAL, -4, 5, 0, 0},
        {NF_DOMAIN_LOWER, -3, 0, 0, 0},
        {NF_DOMAIN_PERIODIC, 0, 6.25, 1.5, 1}};
    nf_flow_desc d; nf_layer_desc l; nf_flow *f; nf_real mean[D], sd[D]; size_t i, np; nf_result r; int j;
    nf_flow_desc_init(&d, D);
    d.base = NF_BASE_DIAG_GAUSSIAN; d.seed = 5; d.domains = dom;
    memset(&l, 0, sizeof l);
    l.kind = NF_LAYER_AFFINE_COUPLING; l.hidden = 6; l.depth = 2; l.activation = NF_ACT_TANH; l.clamp = 2.5f;
    nf_flow_desc_add(&d, &l);
    memset(&l, 0, sizeof l); l.kind = NF_LAYER_PERMUTE; l.seed = 7; nf_flow_desc_add(&d, &l);
    memset(&l, 0, sizeof l); l.kind = NF_LAYER_ACTNORM; nf_flow_desc_add(&d, &l);
    memset(&l, 0, sizeof l);
    l.kind = NF_LAYER_ADDITIVE_COUPLING; l.hidden = 5; l.depth = 1; l.activation = NF_ACT_SOFTPLUS; l.mask = NF_MASK_HALF; l.parity = 1;
    nf_flow_desc_add(&d, &l);
    memset(&l, 0, sizeof l); l.kind = NF_LAYER_LU_LINEAR; l.seed = 3; nf_flow_desc_add(&d, &l);
    memset(&l, 0, sizeof l); l.kind = NF_LAYER_MONOTONE; l.hidden = 3; nf_flow_desc_add(&d, &l);
    memset(&l, 0, sizeof l); l.kind = NF_LAYER_REVERSE; nf_flow_desc_add(&d, &l);
    memset(&l, 0, sizeof l);
    l.kind = NF_LAYER_AFFINE_COUPLING; l.hidden = 8; l.depth = 1; l.activation = NF_ACT_LEAKY_RELU; l.parity = 1;
    nf_flow_desc_add(&d, &l);
    r = nf_flow_create(&f, &d);
    if (r != NF_OK) return r;
    np = nf_flow_num_params(f);
    for (i = 0; i < np; ++i) nf_flow_params(f)[i] = fixed_weight(i);
    for (j = 0; j < D; ++j) { mean[j] = (nf_real)(0.5 * j - 0.25); sd[j] = (nf_real)(1 + 0.25 * j); }
    r = nf_flow_set_standardization(f, mean, sd);
    if (r != NF_OK) { nf_flow_destroy(f); return r; }
    *out = f;
    return NF_OK;
}

/* points inside every domain, exact multiples of 1/64 */
static void points(nf_real *y) {
    int i;
    for (i = 0; i < NPTS; ++i) {
        y[i * D + 0] = (nf_real)((i * 13 % 33 - 16) / 8.0);
        y[i * D + 1] = (nf_real)((i * 7 % 17 - 8) / 2.0 + 0.5 / 64);
        y[i * D + 2] = (nf_real)(-3 + (i * 5 % 11 + 1) / 4.0);
        y[i * D + 3] = (nf_real)((i * 11 % 25) / 4.0 + 1.0 / 64);
    }
}

/* 512 rows of two moons in integer arithmetic (no libm): the rational parametrisation
   of the half circle, x = 2t / (1 + t^2), y = (1 - t^2) / (1 + t^2), t = k / 64, in
   units of 2^-8, with integer noise; every value is exact in float */
#define TRAIN_N 512
#define TRAIN_STEPS 100
#define TRAIN_BATCH 128
static void moons(nf_real *y) {
    nf_rng r; int i;
    nf_rng_seed(&r, 11);
    for (i = 0; i < TRAIN_N; ++i) {
        long k = (long)(nf_rng_u32(&r) % 129u) - 64, q = 64 * 64 + k * k;   /* t in [-1, 1] */
        long x = 256 * 2 * 64 * k / q, v = 256 * (64 * 64 - k * k) / q;
        long nx = (long)(nf_rng_u32(&r) >> 27) - 16, ny = (long)(nf_rng_u32(&r) >> 27) - 16;
        if (i % 2) { x = 256 - x; v = 128 - v; }   /* the lower moon, shifted */
        y[2 * i] = (nf_real)((double)(x + nx) / 256.0);
        y[2 * i + 1] = (nf_real)((double)(v + ny) / 256.0);
    }
}

/* CRC-32 of the values' bits, little-endian whatever the host */
static uint32_t crc_le(uint32_t crc, const nf_real *v, size_t n) {
    size_t i; unsigned k;
    for (i = 0; i < n; ++i) {
        unsigned char b[8]; uint64_t u;
        if (sizeof(nf_real) == 4) { uint32_t u32; memcpy(&u32, &v[i], 4); u = u32; } else memcpy(&u, &v[i], 8);
        for (k = 0; k < sizeof(nf_real); ++k) b[k] = (unsigned char)(u >> (8 * k));
        crc = nf_crc32(crc, b, sizeof(nf_real));
    }
    return crc;
}

static int train(void) {
    static nf_real y[TRAIN_N * 2], lp[TRAIN_N];
    nf_flow_desc d; nf_flow *f; nf_trainer *t; nf_adam_config c; nf_result r;
    double loss, first = 0, nll = 0; size_t i, np; int s;
    moons(y);
    nf_flow_desc_realnvp(&d, 2, 4, 16);
    d.seed = 3;
    r = nf_flow_create(&f, &d);
    if (r != NF_OK) { fprintf(stderr, "create: %s\n", nf_result_string(r)); return 1; }
    np = nf_flow_num_params(f);
    /* exact starting weights, so that only training arithmetic differs */
    for (i = 0; i < np; ++i) nf_flow_params(f)[i] = fixed_weight(i) / 2;
    nf_adam_config_default(&c); c.lr = 3e-3;
    r = nf_trainer_create(&t, f, &c, TRAIN_BATCH);
    if (r != NF_OK) { fprintf(stderr, "trainer: %s\n", nf_result_string(r)); nf_flow_destroy(f); return 1; }
    for (s = 0; s < TRAIN_STEPS && r == NF_OK; ++s) {
        r = nf_train_step(t, y + 2 * (size_t)((s * TRAIN_BATCH) % TRAIN_N), NULL, TRAIN_BATCH, &loss);
        if (s == 0) first = loss;
    }
    if (r == NF_OK) r = nf_flow_log_prob(f, y, TRAIN_N, lp);
    if (r != NF_OK) { fprintf(stderr, "step %d: %s\n", s, nf_result_string(r)); nf_trainer_destroy(t); nf_flow_destroy(f); return 1; }
    for (i = 0; i < TRAIN_N; ++i) nll -= (double)lp[i] / TRAIN_N;
    printf("first_loss %.17g\n", first);
    printf("final_nll %.17g\n", nll);
    nf_trainer_destroy(t); nf_flow_destroy(f);
    return 0;
}

static int rng(void) {
    static nf_real u[100000];
    nf_rng r; size_t i; uint32_t crc = 0; int h;
    nf_rng_seed(&r, 2026);
    for (i = 0; i < 100000; ++i) u[i] = nf_rng_uniform(&r);
    printf("uniform_crc %08lx\n", (unsigned long)crc_le(0, u, 100000));
    for (i = 0; i < 100000; ++i) u[i] = nf_rng_normal(&r);
    printf("normal_crc %08lx\n", (unsigned long)crc_le(0, u, 100000));
    /* the seeded initialisation: uniform draws times 1 / sqrt(fan_in), fan-ins 2, 3 and
       the widths (most of them not squares, so the bound is rounded) */
    for (h = 3; h <= 20; ++h) {
        nf_flow_desc d; nf_flow *f; nf_result res;
        nf_flow_desc_realnvp(&d, 5, 2, h);
        d.seed = (uint64_t)h;
        res = nf_flow_create(&f, &d);
        if (res != NF_OK) { fprintf(stderr, "create: %s\n", nf_result_string(res)); return 1; }
        crc = crc_le(crc, nf_flow_params(f), nf_flow_num_params(f));
        nf_flow_destroy(f);
    }
    printf("init_crc %08lx\n", (unsigned long)crc);
    return 0;
}

int main(int argc, char **argv) {
    nf_flow *f; nf_result r; FILE *fp;
    if (argc == 2 && strcmp(argv[1], "train") == 0) return train();
    if (argc == 2 && strcmp(argv[1], "rng") == 0) return rng();
    if (argc == 2 && strcmp(argv[1], "info") == 0) {
        const uint32_t one = 1;
        printf("pointer_bits %d\n", (int)(8 * sizeof(void *)));
        printf("byte_order %s\n", *(const unsigned char *)&one ? "little" : "big");
        printf("flt_eval_method %d\n", (int)FLT_EVAL_METHOD);
        return 0;
    }
    if (argc != 3 || (strcmp(argv[1], "save") != 0 && strcmp(argv[1], "load") != 0)) {
        fprintf(stderr, "usage: xfile save FILE | load FILE | train | rng | info\n");
        return 2;
    }
    if (strcmp(argv[1], "save") == 0) {
        r = build(&f);
        if (r != NF_OK) { fprintf(stderr, "build: %s\n", nf_result_string(r)); return 1; }
        fp = fopen(argv[2], "wb");
        r = fp ? nf_flow_save_file(f, fp) : NF_ERR_IO;
        if (fp && fclose(fp) != 0 && r == NF_OK) r = NF_ERR_IO;
        nf_flow_destroy(f);
        if (r != NF_OK) { fprintf(stderr, "save %s: %s\n", argv[2], nf_result_string(r)); return 1; }
    } else {
        nf_real y[NPTS * D], lp[NPTS]; int i;
        fp = fopen(argv[2], "rb");
        r = fp ? nf_flow_load_file(&f, fp) : NF_ERR_IO;
        if (fp) fclose(fp);
        if (r != NF_OK) { fprintf(stderr, "load %s: %s\n", argv[2], nf_result_string(r)); return 1; }
        points(y);
        r = nf_flow_log_prob(f, y, NPTS, lp);
        if (r != NF_OK) { fprintf(stderr, "log_prob: %s (%s)\n", nf_result_string(r), nf_flow_error(f)); nf_flow_destroy(f); return 1; }
        for (i = 0; i < NPTS; ++i) printf("%d %.17g\n", i, (double)lp[i]);
        nf_flow_destroy(f);
    }
    return 0;
}
