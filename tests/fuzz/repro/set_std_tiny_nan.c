/* Found by tests/fuzz/fuzz_api.c (class logp_nan, then set_std_tiny).
   nf_flow_set_standardization accepts any finite std > 0, denormals included. With
   std = 1e-40 (float) an ordinary row standardises to (y - mean) / std = inf, and the
   layers turn inf into NaN (a coupling's conditioner multiplies it by weights of both
   signs: inf - inf). nf_flow_log_prob then returns NF_OK with NaN; with no layers it is
   -inf for a point inside the domain. (The loader refuses such a file only when the
   std is 0 in float: "a standard deviation that is 0 in float".)
   What happens:  RealNVP, dim 2, std = {1e-40, 1}: nf_flow_set_standardization -> NF_OK;
                  nf_flow_log_prob((1, 1)) -> NF_OK, NaN.
   What should:   nf_flow_set_standardization refuses a std whose reciprocal is not a
                  finite nf_real (below FLT_MIN, say, or 1/std not finite), NF_ERR_ARG or
                  NF_ERR_RANGE; the loader the same.
   Exit status 1 while the bug is there, 0 when fixed.
   cc -std=c99 -Wall -Wextra -pedantic set_std_tiny_nan.c -lm */
#define NFLOW_IMPLEMENTATION
#include "../../../nflow.h"
#include <math.h>
#include <stdio.h>

int main(void) {
    nf_flow_desc d; nf_flow *f; nf_real mean[2] = {0, 0}, sd[2] = {(nf_real)1e-40, 1}, y[2] = {1, 1}, lp[1]; nf_result r;
    nf_flow_desc_realnvp(&d, 2, 2, 4);
    if (nf_flow_create(&f, &d) != NF_OK) return 2;
    {   /* a trained-looking flow: nonzero output weights */
        nf_real *p = nf_flow_params(f); size_t i;
        for (i = 0; i < nf_flow_num_params(f); ++i) p[i] = (nf_real)(0.3 * sin((double)i * 1.7));
    }
    r = nf_flow_set_standardization(f, mean, sd);
    printf("nf_flow_set_standardization(std = {1e-40, 1}) -> %d\n", (int)r);
    if (r != NF_OK) { nf_flow_destroy(f); return 0; }
    r = nf_flow_log_prob(f, y, 1, lp);
    printf("nf_flow_log_prob((1, 1)) -> %d, %g\n", (int)r, (double)lp[0]);
    nf_flow_destroy(f);
    return r == NF_OK && !isfinite((double)lp[0]);
}
