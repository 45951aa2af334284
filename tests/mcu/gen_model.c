/* Host side of the microcontroller test: trains a small flow on two moons, exports it as
   C source (OUT/moons_flow.c, .h) and writes OUT/expected.h with test points, their
   log-densities and samples from a fixed seed, all computed on the host, for the
   firmware to reproduce, and OUT/moons_model.h: the same flow's model file (nf_flow_save)
   as a byte array, for the firmware that loads its weights at run time (FW_LOAD).
   Usage: gen_model OUTDIR [realnvp|nsf|maf]
   (maf: a MAF whose sampling takes dim passes, so both directions run on the device) */
#define NFLOW_IMPLEMENTATION
#include "../../nflow.h"
#include <stdio.h>
#include <string.h>

#define NPTS 16
#define NSAMP 16

int main(int argc, char **argv) {
    const char *out = argc > 1 ? argv[1] : ".", *kind = argc > 2 ? argv[2] : "realnvp"; char path[512];
    nf_rng rng; static nf_real y[4000 * 2]; nf_real pts[NPTS * 2], lp[NPTS], s[NSAMP * 2], slp[NSAMP], sgrad[NSAMP * 2];
    nf_flow_desc d; nf_flow *f; nf_trainer *t; nf_adam_config c; int i; double loss = 0; FILE *fc, *fh, *fe;
    nf_rng_seed(&rng, 2026);
    for (i = 0; i < 4000; ++i) {   /* two moons, noise 0.05 */
        double a = 3.14159265358979 * (double)nf_rng_uniform(&rng); int up = (int)(nf_rng_u32(&rng) & 1);
        y[2 * i] = (nf_real)((up ? cos(a) : 1 - cos(a)) + 0.05 * (double)nf_rng_normal(&rng));
        y[2 * i + 1] = (nf_real)((up ? sin(a) : 0.5 - sin(a)) + 0.05 * (double)nf_rng_normal(&rng));
    }
    if (!strcmp(kind, "nsf")) nf_flow_desc_nsf(&d, 2, 4, 16, 6);
    else if (!strcmp(kind, "maf")) nf_flow_desc_maf(&d, 2, 4, 16, NF_TRANSFORM_SPLINE, 0);
    else nf_flow_desc_realnvp(&d, 2, 6, 24);
    if (nf_flow_create(&f, &d) != NF_OK) return 1;
    {   /* standardisation lives in the flow and travels with the export */
        nf_real m[2] = {(nf_real)0.5, (nf_real)0.25}, sd[2] = {(nf_real)0.87, (nf_real)0.5};
        nf_flow_set_standardization(f, m, sd);
    }
    nf_adam_config_default(&c); c.lr = 3e-3;
    nf_trainer_create(&t, f, &c, 200);
    for (i = 0; i < 800; ++i) nf_train_step(t, y + 2 * ((i * 200) % 4000), NULL, 200, &loss);
    nf_trainer_destroy(t);
    printf("host: trained %s on two moons, last loss %.4f, %lu parameters\n", kind, loss, (unsigned long)nf_flow_num_params(f));

    snprintf(path, sizeof path, "%s/moons_flow.c", out); fc = fopen(path, "w");
    snprintf(path, sizeof path, "%s/moons_flow.h", out); fh = fopen(path, "w");
    if (!fc || !fh || nf_flow_export_c(f, "moons_flow", 4, fc, fh) != NF_OK) { fprintf(stderr, "export failed\n"); return 1; }
    fclose(fc); fclose(fh);
    {   /* the model file as bytes */
        static unsigned char buf[1 << 16]; size_t n = 0, k;
        snprintf(path, sizeof path, "%s/moons_model.h", out); fc = fopen(path, "w");
        if (!fc || nf_flow_save(f, buf, sizeof buf, &n) != NF_OK) { fprintf(stderr, "save failed\n"); return 1; }
        fprintf(fc, "/* the flow's model file (nf_flow_save), written by gen_model.c */\n#define MOONS_MODEL_BYTES %lu\n"
                    "static const unsigned char moons_model[MOONS_MODEL_BYTES] = {", (unsigned long)n);
        for (k = 0; k < n; ++k) fprintf(fc, "%s%s%u", k ? "," : "", k % 24 ? "" : "\n    ", (unsigned)buf[k]);
        fprintf(fc, "\n};\n");
        fclose(fc);
    }

    /* points where the density lives: data rows (far outside it, log p of -1000 differs by
       a few float ulps between libms: not what a device is for) */
    for (i = 0; i < 2 * NPTS; ++i) pts[i] = y[i + 2 * 1000];
    nf_flow_log_prob(f, pts, NPTS, lp);
    nf_rng_seed(&rng, 42);
    nf_flow_sample(f, &rng, NSAMP, s, slp);
    {   /* d log p / dx at each sample: where log p is steep (|grad| 40 at a sample of the
           spline flow), a sample the device's libm moves by an ulp has another log p */
        nf_adam_config ac; nf_real lpg[NSAMP];
        nf_adam_config_default(&ac);
        if (nf_trainer_create(&t, f, &ac, NSAMP) != NF_OK || nf_flow_log_prob_grad(t, s, NSAMP, lpg, sgrad) != NF_OK) return 1;
        nf_trainer_destroy(t);
    }
    snprintf(path, sizeof path, "%s/expected.h", out); fe = fopen(path, "w");
    if (!fe) return 1;
    fprintf(fe, "/* computed on the host by gen_model.c */\n#define NPTS %d\n#define NSAMP %d\n#define SAMPLE_SEED 42\n", NPTS, NSAMP);
    fprintf(fe, "static const float pts[NPTS * 2] = {"); for (i = 0; i < 2 * NPTS; ++i) fprintf(fe, "%s%.9g", i ? ", " : "", (double)pts[i]);
    fprintf(fe, "};\nstatic const float want_logp[NPTS] = {"); for (i = 0; i < NPTS; ++i) fprintf(fe, "%s%.9g", i ? ", " : "", (double)lp[i]);
    fprintf(fe, "};\nstatic const float want_samples[NSAMP * 2] = {"); for (i = 0; i < 2 * NSAMP; ++i) fprintf(fe, "%s%.9g", i ? ", " : "", (double)s[i]);
    fprintf(fe, "};\nstatic const float want_sample_logp[NSAMP] = {"); for (i = 0; i < NSAMP; ++i) fprintf(fe, "%s%.9g", i ? ", " : "", (double)slp[i]);
    fprintf(fe, "};\nstatic const float want_sample_grad[NSAMP * 2] = {"); for (i = 0; i < 2 * NSAMP; ++i) fprintf(fe, "%s%.9g", i ? ", " : "", (double)sgrad[i]);
    fprintf(fe, "};\n");
    fclose(fe);
    nf_flow_destroy(f);
    return 0;
}
