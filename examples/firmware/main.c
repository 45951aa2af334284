/* The device half: a flow exported by examples/mcu_export.c, weights in flash, its
   bookkeeping and workspace in one static buffer, no heap. Prints a few densities
   and samples over semihosting (printf); a product would use them instead. */
#include <stdio.h>
#define NFLOW_IMPLEMENTATION
#include "nflow.h"          /* built with NFLOW_NO_TRAINING, NFLOW_NO_STDIO, NF_MAX_LAYERS=8 */
#include "moons_flow.h"

static unsigned char flow_memory[MOONS_FLOW_WORKSPACE_BYTES];

int main(void) {
    nf_flow *f; nf_rng rng; nf_real y[4 * 2], lp[4];
    static const nf_real probe[4 * 2] = {0, 1, 1, 0, 0.5f, 0.25f, 2, -0.5f};
    int i;
    if (MOONS_FLOW_INIT(&f, flow_memory, sizeof flow_memory) != NF_OK) return 1;
    if (nf_flow_log_prob(f, probe, 4, lp) != NF_OK) return 1;
    for (i = 0; i < 4; ++i) printf("log p(%5.2f, %5.2f) = %8.3f\n", (double)probe[2 * i], (double)probe[2 * i + 1], (double)lp[i]);
    nf_rng_seed(&rng, 42);
    if (nf_flow_sample(f, &rng, 4, y, lp) != NF_OK) return 1;
    for (i = 0; i < 4; ++i) printf("sample (%6.3f, %6.3f), log p = %7.3f\n", (double)y[2 * i], (double)y[2 * i + 1], (double)lp[i]);
    printf("RAM for the flow: %u bytes; weights in flash: %u bytes\n", (unsigned)sizeof flow_memory, (unsigned)(MOONS_FLOW_NUM_PARAMS * sizeof(nf_real)));
    return 0;
}
