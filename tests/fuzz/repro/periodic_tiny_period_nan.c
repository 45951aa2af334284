/* Found by tests/fuzz/fuzz_api.c (class logp_nan).
   nf__domain_check accepts a periodic (or interval) domain whenever hi > lo and hi - lo is
   finite in nf_real; a period of 1e-40 (a float denormal) passes. nf__dom_fwd then computes
   t -= P * floor(t / P) with t = y - cut: t / P overflows to +-inf for any ordinary y, the
   reduction gives inf, t is clamped to P - tmin where tmin = P * EPS underflowed to 0, and
   u = log(t) - log(P - t) = log(P) - log(0) = +inf: log_prob is NaN with NF_OK (and with
   a period of, say, 1e-30 the same happens for |y - cut| > 3e8).
   What happens:  dim 1, periodic [0, 1e-40), cut 0: nf_flow_log_prob(0.5) -> NF_OK, NaN.
   What should:   nf_flow_create refuses the domain (NF_ERR_RANGE: the period must be a
                  normal number, and P * EPS must not underflow), and nf__dom_fwd keeps
                  t / P finite (reduce with fmod, or refuse |y - cut| / P beyond 2^24).
   Exit status 1 while the bug is there, 0 when fixed.
   cc -std=c99 -Wall -Wextra -pedantic periodic_tiny_period_nan.c -lm */
#define NFLOW_IMPLEMENTATION
#include "../../../nflow.h"
#include <math.h>
#include <stdio.h>

int main(void) {
    nf_flow_desc d; nf_flow *f; nf_domain dom; nf_real y[1] = {0.5f}, lp[1]; nf_result r;
    dom.kind = NF_DOMAIN_PERIODIC; dom.lo = 0; dom.hi = 1e-40; dom.cut = 0; dom.fixed_cut = 1;
    nf_flow_desc_init(&d, 1); d.domains = &dom;
    r = nf_flow_create(&f, &d);
    printf("nf_flow_create(periodic [0, 1e-40)) -> %d\n", (int)r);
    if (r != NF_OK) return 0;
    r = nf_flow_log_prob(f, y, 1, lp);
    printf("nf_flow_log_prob(0.5) -> %d, %g\n", (int)r, (double)lp[0]);
    nf_flow_destroy(f);
    return r == NF_OK && !isfinite((double)lp[0]);
}
