/* ...and this one only the declarations; linked together they form one program. */
#include "../../nflow.h"
#include <stdio.h>
int tu_a_dim(void);
int main(void) {
    nf_flow_desc d; nf_flow *f; nf_real y[6] = {0, 1, 2, 3, 4, 5}, lp[2];
    nf_flow_desc_realnvp(&d, tu_a_dim(), 2, 8);
    if (nf_flow_create(&f, &d) != NF_OK) return 1;
    if (nf_flow_log_prob(f, y, 2, lp) != NF_OK || !(lp[0] < 0)) return 2;
    nf_flow_destroy(f);
    printf("two translation units linked and ran\n");
    return 0;
}
