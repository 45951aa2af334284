/* Seen in nflow.h while writing tests/fuzz/fuzz_api.c, confirmed here.
   nf__dom_inv, NF_DOMAIN_LOWER: y = lo + NF_EXP(u). For u > 88.7 (float) exp overflows and
   y = +inf; the guard "if (!(v > lo))" does not catch +inf. nf_flow_inverse then returns
   NF_OK with y = +inf (not a point of the domain: nf_flow_in_domain says 1 for it only
   because inf > lo), and nf_flow_sample does the same when a sample's latent lands that
   far out (a trained flow with a large scale on that dimension).
   What happens:  nf_flow_inverse(z = 100) on a flow with domain (0, inf): NF_OK, y = inf.
   What should:   a finite y (clamp to the largest nf_real, as the interval case clamps to
                  just inside hi), or an error (NF_ERR_RANGE) for the row.
   Exit status 1 while the bug is there, 0 when fixed.
   cc -std=c99 -Wall -Wextra -pedantic inverse_lower_domain_inf.c -lm */
#define NFLOW_IMPLEMENTATION
#include "../../../nflow.h"
#include <math.h>
#include <stdio.h>

int main(void) {
    nf_flow_desc d; nf_flow *f; nf_domain dom; nf_real z[1], y[1], ld[1]; nf_result r;
    dom.kind = NF_DOMAIN_LOWER; dom.lo = 0; dom.hi = 0; dom.cut = 0; dom.fixed_cut = 0;
    nf_flow_desc_init(&d, 1); d.domains = &dom;
    if (nf_flow_create(&f, &d) != NF_OK) return 2;
    z[0] = 100;
    r = nf_flow_inverse(f, z, 1, y, ld);
    printf("inverse(z = 100), domain (0, inf): rc %d, y %g, logdet %g, in_domain %d\n", (int)r, (double)y[0], (double)ld[0], nf_flow_in_domain(f, y));
    nf_flow_destroy(f);
    return r == NF_OK && !isfinite((double)y[0]);
}
