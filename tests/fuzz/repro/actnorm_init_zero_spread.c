/* Found by tests/fuzz/fuzz_api.c (class logp_neginf_inside_inf).
   ActNorm's data-dependent start divides by the input's spread, floored at 1e-6
   (nf__actnorm_data_init: s = max(sd, 1e-6), scale e^-log s = 1e6). A column with no
   spread over the initialisation rows gets a scale of a million, and each further ActNorm
   layer sees that column constant again (zero after the one below) and multiplies by
   another million.
   (1) nf_fit initialises ActNorm from its first minibatch (nf_fit_ctx: "nf__data_init(f,
       fb.batch, .., B)"), B = o->batch rows. With batch = 1 that is a single row: every
       column has sd = 0, every ActNorm layer scales by 1e6. After one epoch on 200 rows of
       N(0, 1) data, log_prob of the training rows is about -2e12 (one ActNorm layer),
       -2e24 (two), and with three most steps are rejected as non-finite. NF_OK throughout.
   (2) nf_flow_data_init on rows whose first column is constant, four ActNorm layers: a
       row one unit away in that column has log_prob = -inf (z = 1e24, z^2 overflows)
       although it lies inside the domain (two layers: -5e23).
   What should:   a spread that is zero (or below the floor) gets scale 1 (shift only), as
                  nf_fit already does for a constant context column; and nf_fit initialises
                  from more than one minibatch when the batch is small (all training rows,
                  or at least a few hundred).
   Exit status 1 while either happens, 0 when fixed.
   cc -std=c99 -Wall -Wextra -pedantic actnorm_init_zero_spread.c -lm */
#define NFLOW_IMPLEMENTATION
#include "../../../nflow.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    static nf_real y[200 * 2];
    nf_flow_desc d; nf_layer_desc l; nf_flow *f; nf_fit_options o; nf_result r; nf_real lp[4]; nf_rng g; int i, bad = 0;
    nf_rng_seed(&g, 3);
    for (i = 0; i < 400; ++i) y[i] = nf_rng_normal(&g);
    /* (1) ActNorm + affine coupling, nf_fit with batch 1 */
    nf_flow_desc_init(&d, 2);
    memset(&l, 0, sizeof l); l.kind = NF_LAYER_ACTNORM; nf_flow_desc_add(&d, &l);
    memset(&l, 0, sizeof l); l.kind = NF_LAYER_AFFINE_COUPLING; l.hidden = 8; nf_flow_desc_add(&d, &l);
    if (nf_flow_create(&f, &d) != NF_OK) return 2;
    nf_fit_options_default(&o); o.max_epochs = 1; o.batch = 1;
    r = nf_fit(f, y, 200, NULL, &o, NULL);
    nf_flow_log_prob(f, y, 4, lp);
    printf("(1) nf_fit(batch 1) -> %d, ActNorm log-scales %g %g, log_prob of training rows %g %g %g %g\n", (int)r,
           (double)nf_flow_params(f)[0], (double)nf_flow_params(f)[1], (double)lp[0], (double)lp[1], (double)lp[2], (double)lp[3]);
    bad |= r == NF_OK && lp[0] < -1e6;
    nf_flow_destroy(f);
    /* (2) four ActNorm layers, data_init with a constant first column */
    {   nf_real rows[3 * 2] = {2, 0.5f, 2, -0.5f, 2, 1.5f}, q[2] = {3, 0.5f};
        nf_flow_desc_init(&d, 2);
        memset(&l, 0, sizeof l); l.kind = NF_LAYER_ACTNORM;
        for (i = 0; i < 4; ++i) nf_flow_desc_add(&d, &l);
        if (nf_flow_create(&f, &d) != NF_OK) return 2;
        r = nf_flow_data_init(f, rows, NULL, 3);
        nf_flow_log_prob(f, q, 1, lp);
        printf("(2) nf_flow_data_init (first column constant) -> %d; log_prob(3, 0.5) = %g, in_domain %d\n", (int)r, (double)lp[0], nf_flow_in_domain(f, q));
        bad |= r == NF_OK && !isfinite((double)lp[0]);
        nf_flow_destroy(f);
    }
    return bad;
}
