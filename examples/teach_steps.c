/* teach_steps: a tiny flow, one step at a time.

   A 2-D flow of three layers (an affine coupling, a permutation, an affine coupling)
   with random weights. For one point it prints the forward pass (data y -> latent z)
   layer by layer with each layer's log|det|, then the inverse pass back, then checks
   the total log-determinant against the log|det| of a Jacobian built by finite
   differences, and log p(y) against log p_X(z) + log|det|. Everything the README's
   formulas say, on screen.
   Usage: teach_steps [--quick] [--out DIR]   (options accepted for uniformity) */
#define NFLOW_DOUBLE
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"
#include <stdio.h>

int main(void) {
    nf_flow_desc d; nf_layer_desc l; nf_flow *f; nf_rng rng; size_t i;
    nf_real y[2] = {0.7, -1.2}, z[2], back[2], ld[1], prev = 0, lp[1], base[1];
    static const char *what[3] = {"affine coupling (keeps y0, moves y1)", "permutation (swaps the two)", "affine coupling (keeps the first, moves the second)"};
    double J[4], h = 1e-6, numeric; int k;
    nf_flow_desc_init(&d, 2);
    memset(&l, 0, sizeof l);
    l.kind = NF_LAYER_AFFINE_COUPLING; l.hidden = 8; l.activation = NF_ACT_TANH; l.parity = 0; nf_flow_desc_add(&d, &l);
    l.kind = NF_LAYER_REVERSE; nf_flow_desc_add(&d, &l);
    l.kind = NF_LAYER_AFFINE_COUPLING; l.parity = 0; nf_flow_desc_add(&d, &l);
    if (nf_flow_create(&f, &d) != NF_OK) return 1;
    nf_rng_seed(&rng, 3);
    for (i = 0; i < nf_flow_num_params(f); ++i) nf_flow_params(f)[i] = 0.5 * nf_rng_normal(&rng);   /* not the identity */

    printf("forward, data -> latent: z = g^-1(y), log|det| adds up layer by layer\n");
    printf("  start        y = (%+.6f, %+.6f)\n", y[0], y[1]);
    for (k = 1; k <= 3; ++k) {
        nf_flow_forward_stage(f, y, 1, k, z, ld);
        printf("  layer %d      (%+.6f, %+.6f)   log|det| of this layer %+.6f   %s\n", k, z[0], z[1], ld[0] - prev, what[k - 1]);
        prev = ld[0];
    }
    printf("  total log|det d g^-1 / dy| = %+.6f\n\n", ld[0]);

    printf("inverse, latent -> data: the layers undone in reverse order\n");
    for (k = 0; k <= 3; ++k) {
        nf_flow_inverse_stage(f, z, 1, k, back);
        printf("  %d layer(s) undone: (%+.6f, %+.6f)\n", k, back[0], back[1]);
    }
    printf("  max |g(g^-1(y)) - y| = %.2e\n\n", fabs(back[0] - y[0]) > fabs(back[1] - y[1]) ? fabs(back[0] - y[0]) : fabs(back[1] - y[1]));

    for (k = 0; k < 2; ++k) {   /* column k of dz/dy by central differences */
        nf_real yp[2] = {y[0], y[1]}, zp[2], zm[2];
        yp[k] += h; nf_flow_forward(f, yp, 1, zp, NULL);
        yp[k] -= 2 * h; nf_flow_forward(f, yp, 1, zm, NULL);
        J[0 * 2 + k] = (zp[0] - zm[0]) / (2 * h); J[1 * 2 + k] = (zp[1] - zm[1]) / (2 * h);
    }
    numeric = log(fabs(J[0] * J[3] - J[1] * J[2]));
    printf("numerical Jacobian dz/dy = [[%+.6f, %+.6f], [%+.6f, %+.6f]]\n", J[0], J[1], J[2], J[3]);
    printf("log|det J| numerically %+.9f, from the layers %+.9f: difference %.1e\n\n", numeric, ld[0], fabs(numeric - ld[0]));

    nf_flow_log_prob(f, y, 1, lp);
    nf_flow_base_log_prob(f, z, 1, base);
    printf("log p_Y(y) = log p_X(z) + log|det|:  %.6f = %.6f + %.6f\n", lp[0], base[0], ld[0]);
    nf_flow_destroy(f);
    return fabs(numeric - ld[0]) < 1e-6 && fabs(lp[0] - base[0] - ld[0]) < 1e-12 ? 0 : 1;
}
