/* Found by tests/fuzz/fuzz_api.c (class params_nonfinite), on nflow.h after the first
   round of fixes.
   nf_adam_update works in nf_real: v = b2 v + (1 - b2) g g overflows to inf once |g| is
   above ~1.8e19 (float), and m c1 / (sqrt(v c2) + eps) is then inf / inf = NaN when m c1
   overflows as well (|g| = FLT_MAX: m = 0.1 g, c1 = 10), or 0 otherwise: the parameter
   ignores this gradient, and since v stays inf it never moves again. The finiteness check before the update (nf_trainer_apply, nf__loss_grad)
   looks at g, which is finite, so the step returns NF_OK and writes NaN parameters.
   nf_trainer_apply with a caller's gradient is the easy way in; nf_train_step gets there
   when the loss gradient itself is that large.
   What happens:  RealNVP, loss_grad, gradient[15] = FLT_MAX, nf_trainer_apply -> NF_OK,
                  params[15] = NaN. (gradient[15] = 1e20: NF_OK, params[15] frozen.)
   What should:   Adam's moments in double (or g scaled before squaring), and the
                  parameters checked after the update (NF_ERR_DIVERGED, nothing written,
                  if the step would make any of them non-finite).
   Exit status 1 while the bug is there, 0 when fixed.
   cc -std=c99 -Wall -Wextra -pedantic adam_huge_gradient_nan.c -lm */
#define NFLOW_IMPLEMENTATION
#include "../../../nflow.h"
#include <float.h>
#include <math.h>
#include <stdio.h>

int main(void) {
    nf_flow_desc d; nf_flow *f; nf_trainer *t; double loss; nf_result r; size_t i; int bad = 0;
    nf_real y[4] = {0.1f, 0.2f, -0.3f, 0.4f};
    nf_flow_desc_realnvp(&d, 2, 2, 4);
    if (nf_flow_create(&f, &d) != NF_OK || nf_trainer_create(&t, f, NULL, 2) != NF_OK) return 2;
    if (nf_trainer_loss_grad(t, y, NULL, 2, &loss) != NF_OK) return 2;
    nf_trainer_grad(t)[15] = FLT_MAX;
    r = nf_trainer_apply(t);
    printf("gradient[15] = FLT_MAX: nf_trainer_apply -> %d, params[15] = %g\n", (int)r, (double)nf_flow_params(f)[15]);
    for (i = 0; i < nf_flow_num_params(f); ++i) bad |= r == NF_OK && !isfinite((double)nf_flow_params(f)[i]);
    nf_trainer_destroy(t); nf_flow_destroy(f);
    return bad;
}
