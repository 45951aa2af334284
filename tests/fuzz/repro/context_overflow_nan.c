/* Found by tests/fuzz/fuzz_api.c (class nan_extreme_input).
   A finite but huge context value (here FLT_MAX) overflows inside the
   conditioner MLP (nf__mlp: hidden = act(x W + b) reaches inf), and the output layer
   then computes 0 * inf = NaN even where its weights are zero: a freshly created
   conditional flow, whose density does not depend on the context at all (zero output
   layer: every coupling is the identity), returns NF_OK with log_prob = NaN for an
   ordinary data row. The same happens with huge data values in a coupling's kept
   features, and with a standardisation that makes ordinary values huge
   (repro/set_std_tiny_nan.c): no inference call checks that what it computed is finite.
   What happens:  RealNVP dim 2 (width 64), context_dim 3, fresh: log_prob_ctx(y = (0.5, -0.5),
                  c = (FLT_MAX, FLT_MAX, FLT_MAX)) -> NF_OK, NaN; nf_flow_sample_ctx: NaN samples.
   What should:   an error for the row (NF_ERR_RANGE, "not representable ...", with
                  nf_flow_error_row) whenever an inference result is not finite and the
                  row is inside the domain: one pass over the outputs; or refuse context
                  and data values whose magnitude the network cannot carry.
   Exit status 1 while the bug is there, 0 when fixed.
   cc -std=c99 -Wall -Wextra -pedantic context_overflow_nan.c -lm */
#define NFLOW_IMPLEMENTATION
#include "../../../nflow.h"
#include <float.h>
#include <math.h>
#include <stdio.h>

int main(void) {
    nf_flow_desc d; nf_flow *f; nf_real y[2] = {0.5f, -0.5f}, c[3] = {FLT_MAX, FLT_MAX, FLT_MAX}, lp[1], s[2]; nf_rng rng;
    nf_result r, r2; int bad;
    nf_flow_desc_realnvp(&d, 2, 2, 64); d.context_dim = 3;
    if (nf_flow_create(&f, &d) != NF_OK) return 2;
    r = nf_flow_log_prob_ctx(f, y, 1, c, 1, lp);
    printf("log_prob_ctx(c = 3 x FLT_MAX) -> %d, %g\n", (int)r, (double)lp[0]);
    nf_rng_seed(&rng, 1);
    r2 = nf_flow_sample_ctx(f, &rng, 1, c, 1, s, NULL);
    printf("sample_ctx(c = 3 x FLT_MAX) -> %d, (%g, %g)\n", (int)r2, (double)s[0], (double)s[1]);
    bad = (r == NF_OK && !isfinite((double)lp[0])) || (r2 == NF_OK && !(isfinite((double)s[0]) && isfinite((double)s[1])));
    nf_flow_destroy(f);
    return bad;
}
