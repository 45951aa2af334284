/* Found by tests/fuzz/fuzz_api.c (class params_nonfinite / data_init_nonfinite).
   nf__actnorm_data_init computes, in double, s = max(sd, 1e-6), p[j] = -log(s) and
   p[D + j] = -mean / s, and stores them as nf_real with no check. When |mean| / s is
   beyond the largest float (values about 1e33 whose spread is below 1e-6 of them: a
   constant column, or a single row), the shift becomes -inf.
   (1) nf_flow_data_init on rows {1e33, 1e33} -> NF_OK, shift = -inf; log_prob(0) is -inf.
   (2) nf_fit with standardize = 0 and batch = 1 initialises ActNorm from one row (sd = 0):
       NF_OK, shift = -inf, every step rejected (and nf_flow_error still holds "loss is not
       finite" after the NF_OK). The best-parameter copy is taken after the data init, so
       it does not undo it.
   What should:   NF_ERR_RANGE (nothing written) when the start is not representable in
                  nf_real; nf_fit passes that error on.
   Exit status 1 while either happens, 0 when fixed.
   cc -std=c99 -Wall -Wextra -pedantic actnorm_data_init_inf.c -lm */
#define NFLOW_IMPLEMENTATION
#include "../../../nflow.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

static nf_flow *actnorm_flow(void) {
    nf_flow_desc d; nf_layer_desc l; nf_flow *f;
    nf_flow_desc_init(&d, 1);
    memset(&l, 0, sizeof l); l.kind = NF_LAYER_ACTNORM;
    nf_flow_desc_add(&d, &l);
    return nf_flow_create(&f, &d) == NF_OK ? f : NULL;
}
int main(void) {
    nf_real y[4] = {(nf_real)1e33, (nf_real)1e33, (nf_real)3e33, (nf_real)1.5e33}, y0[1] = {0}, lp[1];
    nf_flow *f; nf_fit_options o; nf_result r; const nf_real *p; int bad = 0;
    if (!(f = actnorm_flow())) return 2;
    r = nf_flow_data_init(f, y, NULL, 2);
    p = nf_flow_params(f);
    printf("(1) nf_flow_data_init -> %d, scale %g, shift %g", (int)r, (double)p[0], (double)p[1]);
    if (r == NF_OK && nf_flow_log_prob(f, y0, 1, lp) == NF_OK) printf(", log_prob(0) %g", (double)lp[0]);
    printf("\n");
    bad |= r == NF_OK && (!isfinite((double)p[0]) || !isfinite((double)p[1]));
    nf_flow_destroy(f);

    if (!(f = actnorm_flow())) return 2;
    nf_fit_options_default(&o); o.max_epochs = 1; o.batch = 1; o.standardize = 0; o.val_fraction = 0;
    r = nf_fit(f, y, 4, NULL, &o, NULL);
    p = nf_flow_params(f);
    printf("(2) nf_fit -> %d, scale %g, shift %g, nf_flow_error \"%s\"\n", (int)r, (double)p[0], (double)p[1], nf_flow_error(f));
    bad |= r == NF_OK && (!isfinite((double)p[0]) || !isfinite((double)p[1]));
    nf_flow_destroy(f);
    return bad;
}
