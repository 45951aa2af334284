/* Found by tests/fuzz/fuzz_api.c (class params_nonfinite).
   nf_trainer_create (and nf_fit / nf_fit_ctx through o->adam) take the nf_adam_config as
   it is. With beta1 = 1, nf_adam_update computes c1 = 1 / (1 - pow(beta1, t)) = inf and
   m * c1 = 0 * inf = NaN: the step returns NF_OK and every parameter is NaN (the
   finiteness check in nf__loss_grad runs before the update, not after). lr = NaN, beta2
   = 1 with eps = 0, or a negative lr do the same or worse.
   What happens:  nf_train_step -> NF_OK, params NaN; nf_fit (max_epochs 1, no validation)
                  -> NF_OK, params NaN.
   What should:   nf_trainer_create / nf_fit return NF_ERR_ARG for a config out of range
                  (lr finite and >= 0, 0 <= beta1, beta2 < 1, eps >= 0 finite, weight_decay
                  and clip_norm finite and >= 0, ...), with a message.
   Exit status 1 while the bug is there, 0 when fixed.
   cc -std=c99 -Wall -Wextra -pedantic adam_config_unchecked.c -lm */
#define NFLOW_IMPLEMENTATION
#include "../../../nflow.h"
#include <math.h>
#include <stdio.h>

static int params_finite(nf_flow *f) {
    size_t i; const nf_real *p = nf_flow_params(f);
    for (i = 0; i < nf_flow_num_params(f); ++i) if (!isfinite((double)p[i])) return 0;
    return 1;
}
int main(void) {
    nf_flow_desc d; nf_flow *f; nf_trainer *t; nf_adam_config c; nf_fit_options o; nf_result r; double loss;
    nf_real y[8] = {0.1f, -0.3f, 1.2f, 0.4f, -0.7f, 0.2f, 0.5f, -1.1f};
    int bad = 0;
    nf_flow_desc_realnvp(&d, 2, 2, 4);
    if (nf_flow_create(&f, &d) != NF_OK) return 2;
    nf_adam_config_default(&c); c.beta1 = 1;
    r = nf_trainer_create(&t, f, &c, 4);
    printf("nf_trainer_create(beta1 = 1) -> %d\n", (int)r);
    if (r == NF_OK) {
        r = nf_train_step(t, y, NULL, 4, &loss);
        printf("nf_train_step -> %d, params finite: %d\n", (int)r, params_finite(f));
        bad |= r == NF_OK && !params_finite(f);
        nf_trainer_destroy(t);
    }
    nf_flow_destroy(f);
    if (nf_flow_create(&f, &d) != NF_OK) return 2;
    nf_fit_options_default(&o); o.max_epochs = 1; o.val_fraction = 0; o.adam.lr = NAN;
    r = nf_fit(f, y, 4, NULL, &o, NULL);
    printf("nf_fit(adam.lr = NaN) -> %d, params finite: %d\n", (int)r, params_finite(f));
    bad |= r == NF_OK && !params_finite(f);
    nf_flow_destroy(f);
    return bad;
}
