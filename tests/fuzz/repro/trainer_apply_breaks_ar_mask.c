/* Found by tests/fuzz/fuzz_api.c (class reload_mismatch).
   Autoregressive layers' masked weights "must stay zero: creation, loading and training
   keep them so" (nflow.h, nf_flow_params). nf_trainer_apply takes the gradient as the
   caller left it ("for a gradient the caller has changed") and nf__clip_and_update runs
   Adam over every parameter: a nonzero entry at a masked weight (gradient noise, a
   compressed or quantised gradient, an all-reduce over a buffer that is not exactly the
   trainer's) makes that weight nonzero. The layer is then no longer autoregressive: its
   log_prob is not a normalised density, and nf_flow_save + nf_flow_load (which zeroes
   masked weights) gives a different flow.
   What happens:  MAF dim 3; loss_grad, set every gradient entry to 0.01, nf_trainer_apply
                  -> NF_OK; log_prob of a row before save and after load differ.
   What should:   masked weights stay zero whatever the gradient: mask the gradient in
                  nf_trainer_apply (or apply the kinds' fixup after every update).
   Exit status 1 while the bug is there, 0 when fixed.
   cc -std=c99 -Wall -Wextra -pedantic trainer_apply_breaks_ar_mask.c -lm */
#define NFLOW_IMPLEMENTATION
#include "../../../nflow.h"
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    nf_flow_desc d; nf_flow *f, *g = NULL; nf_trainer *t; double loss; size_t i, n, wr; unsigned char *buf;
    nf_real y[6] = {0.3f, -0.2f, 1.0f, -0.5f, 0.7f, 0.1f}, lp1[1], lp2[1]; nf_result r; int bad;
    nf_flow_desc_maf(&d, 3, 2, 8, NF_TRANSFORM_AFFINE, 0);
    if (nf_flow_create(&f, &d) != NF_OK || nf_trainer_create(&t, f, NULL, 2) != NF_OK) return 2;
    if (nf_trainer_loss_grad(t, y, NULL, 2, &loss) != NF_OK) return 2;
    for (i = 0; i < nf_flow_num_params(f); ++i) nf_trainer_grad(t)[i] = (nf_real)0.01;   /* e.g. noise added by the caller */
    r = nf_trainer_apply(t);
    printf("nf_trainer_apply -> %d\n", (int)r);
    nf_flow_log_prob(f, y, 1, lp1);
    nf_flow_save_size(f, &n); buf = (unsigned char *)malloc(n);
    nf_flow_save(f, buf, n, &wr);
    if (nf_flow_load(&g, buf, wr) != NF_OK) return 2;
    nf_flow_log_prob(g, y, 1, lp2);
    printf("log_prob: %.9g before save, %.9g after load\n", (double)lp1[0], (double)lp2[0]);
    bad = lp1[0] != lp2[0];
    nf_flow_destroy(g); nf_trainer_destroy(t); nf_flow_destroy(f); free(buf);
    return bad;
}
