/* Host side, in double: each test point's log-density from the same model file as the
   host's float numbers (expected.h), written as OUT lp_slack.h: lp_slack[i] = 2 |host
   float - double|. The float evaluation itself is that far from the exact value (1.3e-5
   at a spline-MAF point), so a device whose own float rounding differs (another libm)
   may differ from the host by about that much and more than the fixed 1e-5.
   Build with -DNFLOW_DOUBLE -IDIR (DIR holds moons_model.h and expected.h). */
#define NFLOW_IMPLEMENTATION
#include "../../nflow.h"
#include <stdio.h>
#include "moons_model.h"
#include "expected.h"
int main(void) {
    nf_flow *f; nf_real x[2 * NPTS], lp[NPTS]; int i; nf_result r;
    if ((r = nf_flow_load(&f, moons_model, MOONS_MODEL_BYTES)) != NF_OK) { fprintf(stderr, "gen_ref: %s\n", nf_result_string(r)); return 1; }
    for (i = 0; i < 2 * NPTS; ++i) x[i] = pts[i];
    if (nf_flow_log_prob(f, x, NPTS, lp) != NF_OK) { fprintf(stderr, "gen_ref: %s\n", nf_flow_error(f)); return 1; }
    printf("/* computed on the host by gen_ref.c: 2 |float - double| of each want_logp */\nstatic const float lp_slack[NPTS] = {");
    for (i = 0; i < NPTS; ++i) printf("%s%.3g", i ? ", " : "", 2 * fabs((double)want_logp[i] - lp[i]));
    printf("};\n");
    nf_flow_destroy(f);
    return 0;
}
