/* Found by tests/fuzz/fuzz_api.c (class outside_domain).
   nf__dom_inv, NF_DOMAIN_INTERVAL, keeps y off the edges with
       if (!(v > lo)) v = lo + P * NF__EPS;   if (!(v < hi)) v = hi - P * NF__EPS;
   but P * EPS is below half an ulp of lo (or hi) whenever the interval is narrower than
   about |lo|, and the sum rounds back onto the edge. An ordinary interval such as
   (100, 101) in float: a latent of -20 (or +20) gives y = 100 (101) exactly, which is
   outside the open interval: nf_flow_inverse and nf_flow_sample return NF_OK with a point
   whose log_prob is -inf and that nf_flow_in_domain rejects (nf_fit would then refuse
   the flow's own samples as training data).
   What happens:  domain (100, 101), no layers: inverse(z = -20) -> NF_OK, y = 100,
                  in_domain 0, log_prob(y) = -inf; inverse(z = 20) -> y = 101, the same.
   What should:   y strictly inside: the nearest nf_real above lo / below hi (nextafter
                  toward the interior, or lo + max(P * EPS, ulp(lo)) computed so that it
                  cannot round back).
   Exit status 1 while the bug is there, 0 when fixed.
   cc -std=c99 -Wall -Wextra -pedantic interval_inverse_on_edge.c -lm */
#define NFLOW_IMPLEMENTATION
#include "../../../nflow.h"
#include <stdio.h>

int main(void) {
    nf_flow_desc d; nf_flow *f; nf_domain dom; nf_real z[2] = {-20, 20}, y[2], lp[2]; nf_result r; int i, bad = 0;
    dom.kind = NF_DOMAIN_INTERVAL; dom.lo = 100; dom.hi = 101; dom.cut = 0; dom.fixed_cut = 0;
    nf_flow_desc_init(&d, 1); d.domains = &dom;
    if (nf_flow_create(&f, &d) != NF_OK) return 2;
    r = nf_flow_inverse(f, z, 2, y, NULL);
    for (i = 0; r == NF_OK && i < 2; ++i) {
        int in = nf_flow_in_domain(f, &y[i]);
        nf_flow_log_prob(f, &y[i], 1, &lp[i]);
        printf("inverse(z = %g) -> y = %.9g, in_domain %d, log_prob(y) %g\n", (double)z[i], (double)y[i], in, (double)lp[i]);
        bad |= !in;
    }
    nf_flow_destroy(f);
    return bad;
}
