/* Host half of bench/mcu_size.sh: trains a small 2-D RealNVP (4 couplings x 16, the
   architecture examples/firmware/train_on_device.c trains on the chip) on two moons and
   writes, into OUTDIR, the firmware's three inputs:
     size_flow.c, size_flow.h   the flow exported as C (weights as const data, in flash)
     size_model.h               the same flow's model file as a byte array (xxd -i style),
                                for a firmware that loads weights at run time
     size_points.h              16 data rows to evaluate
   Usage: mcu_size_gen OUTDIR */
#define NFLOW_IMPLEMENTATION
#include "nflow.h"
#include <stdio.h>

#define NPTS 16

static int write_bytes(const char *path, const unsigned char *b, size_t n) {
    FILE *fp = fopen(path, "w"); size_t i;
    if (!fp) return 1;
    fprintf(fp, "/* a model file (nf_flow_save) as bytes: written by bench/mcu_size_gen.c */\n");
    fprintf(fp, "#define SIZE_MODEL_BYTES %lu\nstatic const unsigned char size_model[SIZE_MODEL_BYTES] = {", (unsigned long)n);
    for (i = 0; i < n; ++i) fprintf(fp, "%s%s0x%02x", i ? "," : "", i % 16 ? "" : "\n    ", b[i]);
    fprintf(fp, "\n};\n");
    return fclose(fp) != 0;
}

int main(int argc, char **argv) {
    const char *out = argc > 1 ? argv[1] : "."; char path[512];
    static nf_real y[2000 * 2]; static unsigned char model[64 * 1024];
    nf_rng rng; nf_flow_desc d; nf_flow *f; nf_trainer *t; nf_adam_config c;
    size_t n = 0; double loss = 0; int i; FILE *fc, *fh;
    nf_rng_seed(&rng, 11);
    for (i = 0; i < 2000; ++i) {   /* two moons, noise 0.05 */
        double a = 3.14159265358979 * (double)nf_rng_uniform(&rng); int up = (int)(nf_rng_u32(&rng) & 1);
        y[2 * i] = (nf_real)((up ? cos(a) : 1 - cos(a)) + 0.05 * (double)nf_rng_normal(&rng));
        y[2 * i + 1] = (nf_real)((up ? sin(a) : 0.5 - sin(a)) + 0.05 * (double)nf_rng_normal(&rng));
    }
    nf_flow_desc_realnvp(&d, 2, 4, 16);
    if (nf_flow_create(&f, &d) != NF_OK) return 1;
    {   nf_real m[2] = {(nf_real)0.5, (nf_real)0.25}, s[2] = {(nf_real)0.87, (nf_real)0.5};
        nf_flow_set_standardization(f, m, s); }
    nf_adam_config_default(&c); c.lr = 3e-3;
    if (nf_trainer_create(&t, f, &c, 100) != NF_OK) return 1;
    for (i = 0; i < 400; ++i) nf_train_step(t, y + 2 * ((i * 100) % 2000), NULL, 100, &loss);
    nf_trainer_destroy(t);
    printf("mcu_size_gen: RealNVP 4 x 16 trained on two moons, loss %.3f, %lu parameters\n", loss, (unsigned long)nf_flow_num_params(f));

    snprintf(path, sizeof path, "%s/size_flow.c", out); fc = fopen(path, "w");
    snprintf(path, sizeof path, "%s/size_flow.h", out); fh = fopen(path, "w");
    if (!fc || !fh || nf_flow_export_c(f, "size_flow", 4, fc, fh) != NF_OK) { fprintf(stderr, "export failed\n"); return 1; }
    fclose(fc); fclose(fh);
    if (nf_flow_save(f, model, sizeof model, &n) != NF_OK) { fprintf(stderr, "save failed\n"); return 1; }
    snprintf(path, sizeof path, "%s/size_model.h", out);
    if (write_bytes(path, model, n)) return 1;
    snprintf(path, sizeof path, "%s/size_points.h", out); fc = fopen(path, "w");
    if (!fc) return 1;
    fprintf(fc, "#define NPTS %d\nstatic const nf_real size_points[NPTS * 2] = {", NPTS);
    for (i = 0; i < 2 * NPTS; ++i) fprintf(fc, "%s%.9g", i ? ", " : "", (double)y[2 * 500 + i]);
    fprintf(fc, "};\n");
    fclose(fc);
    nf_flow_destroy(f);
    return 0;
}
