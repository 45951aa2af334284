/* Found by tests/fuzz/fuzz_api.c (class logp_nan).
   An affine coupling accepts any clamp in [0, 1e30) (nf__coupling_plan: "!(ld->clamp >= 0
   && ld->clamp < 1e30f)"). For clamp < 1/FLT_MAX (~2.9e-39: a denormal such as 1e-40 or
   1.4e-45) nf__coupling_apply computes ic = 1 / L->clamp = inf, and the conditioner's raw
   log-scale, 0 for a fresh flow (zero output layer), times ic is 0 * inf = NaN: every
   log_prob, forward, inverse and sample is NaN with NF_OK. The tape does the same
   (nf_t_scale(.., 1 / L->clamp) in nf__coupling_st), so training steps diverge.
   What happens:  fresh RealNVP-style flow, clamp = 1e-40f: nf_flow_log_prob -> NF_OK, NaN.
   What should:   nf_flow_create rejects the clamp (NF_ERR_ARG below some minimum, e.g.
                  1e-6, or anything whose reciprocal is not a finite nf_real), or the layer
                  computes clamp * tanh(raw / clamp), which is finite for every raw.
   Exit status 1 while the bug is there, 0 when fixed.
   cc -std=c99 -Wall -Wextra -pedantic affine_tiny_clamp_nan.c -lm */
#define NFLOW_IMPLEMENTATION
#include "../../../nflow.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    nf_flow_desc d; nf_layer_desc l; nf_flow *f; nf_real y[2] = {0.5f, -0.25f}, lp[1]; nf_result r;
    nf_flow_desc_init(&d, 2);
    memset(&l, 0, sizeof l); l.kind = NF_LAYER_AFFINE_COUPLING; l.hidden = 4; l.clamp = 1e-40f;
    nf_flow_desc_add(&d, &l);
    r = nf_flow_create(&f, &d);
    printf("nf_flow_create(clamp = 1e-40) -> %d\n", (int)r);
    if (r != NF_OK) return 0;
    r = nf_flow_log_prob(f, y, 1, lp);
    printf("nf_flow_log_prob -> %d, log_prob %g\n", (int)r, (double)lp[0]);
    nf_flow_destroy(f);
    return r == NF_OK && !isfinite((double)lp[0]);
}
