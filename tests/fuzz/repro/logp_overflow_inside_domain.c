/* Found by tests/fuzz/fuzz_api.c (class overflow_extreme_input).
   log_prob of a finite point far out in a real (unbounded) dimension is -inf with NF_OK,
   though the point is inside the domain: nf__base_logp (nflow.h) sums z*z in nf_real,
   and in float z = -1e30 gives z*z = inf. The true value, -5e59, is not a float, so -inf
   is the nearest float; but the manual says "points outside get log_prob = -inf", and a
   caller who reads -inf as "outside the support" is misled. The sum also overflows when
   the true value is representable: dim 8, every z = 7e18: acc = 8 * 4.9e37 = 3.9e38 >
   FLT_MAX, so log_prob = -inf though -0.5 * acc = -1.96e38 is a float.
   What happens:  (1) y = -1e30: NF_OK, log_prob = -inf, nf_flow_in_domain = 1;
                  (2) dim 8, y_j = 7e18: NF_OK, log_prob = -inf.
   What should:   (2) a finite result (accumulate the squares in double, or scale);
                  (1) either documented ("-inf also when the density underflows nf_real")
                  or an error (NF_ERR_RANGE) for the row.
   Exit status 1 while (2) happens, 0 when fixed (prints both).
   cc -std=c99 -Wall -Wextra -pedantic logp_overflow_inside_domain.c -lm */
#define NFLOW_IMPLEMENTATION
#include "../../../nflow.h"
#include <math.h>
#include <stdio.h>

int main(void) {
    nf_flow_desc d; nf_flow *f; nf_real y[8], lp[1]; nf_result r; int j, bad;
    nf_flow_desc_init(&d, 1);   /* no layers: log p = log N(y; 0, 1) */
    if (nf_flow_create(&f, &d) != NF_OK) return 2;
    y[0] = (nf_real)-1e30;
    r = nf_flow_log_prob(f, y, 1, lp);
    printf("(1) y = -1e30: rc %d, log_prob %g, in_domain %d\n", (int)r, (double)lp[0], nf_flow_in_domain(f, y));
    nf_flow_destroy(f);
    nf_flow_desc_init(&d, 8);
    if (nf_flow_create(&f, &d) != NF_OK) return 2;
    for (j = 0; j < 8; ++j) y[j] = (nf_real)7e18;
    r = nf_flow_log_prob(f, y, 1, lp);
    printf("(2) dim 8, y_j = 7e18: rc %d, log_prob %g (true value %g)\n", (int)r, (double)lp[0], -0.5 * 8 * 7e18 * 7e18 - 4 * 1.8378770664093453);
    bad = r == NF_OK && !isfinite((double)lp[0]);
    nf_flow_destroy(f);
    return bad;
}
