/* mcu_export: the desktop half of putting a flow on a microcontroller.

   1. train a RealNVP on two moons here, on the desktop;
   2. export it as C source: OUT/moons_flow.c (weights as const arrays, so they stay
      in flash) and OUT/moons_flow.h (description, sizes, an init macro);
   3. build examples/firmware/main.c with those files for the chip (no heap: the
      flow lives in a static buffer of MOONS_FLOW_WORKSPACE_BYTES).

   `make mcu-example` does all three and runs the firmware on an emulated Cortex-M4F.
   Usage: mcu_export [--out DIR] [--quick] */
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *out = "build"; int quick = 0, i; char cpath[512], hpath[512];
    static nf_real y[8000 * 2]; nf_rng rng; nf_flow_desc d; nf_flow *f; nf_fit_options o; nf_fit_report rep;
    FILE *c, *h; nf_result r;
    for (i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else { fprintf(stderr, "usage: %s [--out DIR] [--quick]\n", argv[0]); return 2; }
    }
    nf_rng_seed(&rng, 1);
    for (i = 0; i < 8000; ++i) {
        double t = 3.14159265358979 * (double)nf_rng_uniform(&rng); int up = (int)(nf_rng_u32(&rng) & 1);
        y[2 * i] = (nf_real)((up ? cos(t) : 1 - cos(t)) + 0.05 * (double)nf_rng_normal(&rng));
        y[2 * i + 1] = (nf_real)((up ? sin(t) : 0.5 - sin(t)) + 0.05 * (double)nf_rng_normal(&rng));
    }
    nf_flow_desc_realnvp(&d, 2, 6, 32);   /* small enough for a Cortex-M0's 256 KiB flash */
    if (nf_flow_create(&f, &d) != NF_OK) return 1;
    nf_fit_options_default(&o); o.max_epochs = quick ? 2 : 40; o.adam.lr = 3e-3;
    if ((r = nf_fit(f, y, 8000, NULL, &o, &rep)) != NF_OK) { fprintf(stderr, "%s\n", nf_flow_error(f)); return 1; }
    printf("trained: validation NLL %.4f nats (data units), %lu parameters = %lu bytes of flash\n",
           rep.best_val_loss, (unsigned long)nf_flow_num_params(f), (unsigned long)(nf_flow_num_params(f) * sizeof(nf_real)));
    snprintf(cpath, sizeof cpath, "%s/moons_flow.c", out);
    snprintf(hpath, sizeof hpath, "%s/moons_flow.h", out);
    c = fopen(cpath, "w"); h = fopen(hpath, "w");
    if (!c || !h) { fprintf(stderr, "cannot write to %s\n", out); return 1; }
    r = nf_flow_export_c(f, "moons_flow", 4, c, h);   /* 4 rows per inference chunk: tiny RAM */
    fclose(c); fclose(h);
    if (r != NF_OK) { fprintf(stderr, "export: %s\n", nf_result_string(r)); return 1; }
    printf("wrote %s and %s\n", cpath, hpath);
    printf("build the firmware, for example for a Cortex-M4F:\n"
           "  arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -Os \\\n"
           "    -DNFLOW_NO_TRAINING -DNFLOW_NO_STDIO -DNF_MAX_LAYERS=8 -I. -I%s \\\n"
           "    examples/firmware/main.c %s <your startup code and linker script> -lm\n", out, cpath);
    nf_flow_destroy(f);
    return 0;
}
