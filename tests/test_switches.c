/* A build with every feature switch (tests/run.sh compiles this file with them): what
   stays works, and a flow that needs a removed part is refused with NF_ERR_UNSUPPORTED
   rather than computed wrongly, nf_flow_desc_check naming the switch. */
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"
#include <stdio.h>
#include <string.h>

static int g_pass, g_fail;
static void check(int ok, const char *name) { if (ok) { g_pass++; printf("ok %s\n", name); } else { g_fail++; printf("FAIL %s\n", name); } }
/* refused with NF_ERR_UNSUPPORTED, and the check names the switch */
static void refused(const nf_flow_desc *d, const char *sw, const char *name) {
    nf_flow *f = NULL; char msg[256]; nf_result r = nf_flow_create(&f, d), rc = nf_flow_desc_check(d, msg, sizeof msg);
    check(r == NF_ERR_UNSUPPORTED && rc == r && strstr(msg, sw) != NULL, name);
    if (rc != NF_OK) printf("#   %s\n", msg);
}

#ifdef NFLOW_NO_THREADS
static void par_serial(void *pool, int n, nf_task_fn task, void *arg) { int i; (void)pool; for (i = 0; i < n; ++i) task(arg, i); }
#endif
int main(void) {
    nf_flow_desc d; nf_layer_desc l; nf_flow *f; nf_rng rng; nf_real y[64 * 2], z[64 * 2], lp[64]; double rt = 1; int k;
    static const int removed[5] = {NF_LAYER_LU_LINEAR, NF_LAYER_MONOTONE, NF_LAYER_SPLINE_COUPLING, NF_LAYER_AUTOREGRESSIVE, NF_LAYER_ACTNORM};
    static const char *const sw[5] = {"NFLOW_NO_LU", "NFLOW_NO_MONOTONE", "NFLOW_NO_SPLINE", "NFLOW_NO_AUTOREGRESSIVE", "NFLOW_NO_ACTNORM"};
    nf_domain dom[2];
    nf_rng_seed(&rng, 1);
    nf_flow_desc_realnvp(&d, 2, 4, 8);
    check(nf_flow_create(&f, &d) == NF_OK, "switched_build_realnvp_creates");
    nf_flow_sample(f, &rng, 64, y, lp);
    nf_flow_forward(f, y, 64, z, NULL);
    check(nf_flow_roundtrip_error(f, y, 64, &rt) == NF_OK && rt < 1e-5 && nf_flow_log_prob(f, y, 64, lp) == NF_OK, "switched_build_realnvp_works");
#ifdef NFLOW_NO_THREADS
    check(nf_flow_set_parallel(f, NULL, NULL, 1) == NF_OK && nf_flow_set_parallel(f, par_serial, NULL, 2) == NF_ERR_ARG, "removed_threads_refused");
#endif
    nf_flow_destroy(f);
    for (k = 0; k < 5; ++k) {
        char nm[64];
        nf_flow_desc_init(&d, 2); memset(&l, 0, sizeof l); l.kind = removed[k]; nf_flow_desc_add(&d, &l);
        snprintf(nm, sizeof nm, "removed_kind_%d_refused", removed[k]);
        refused(&d, sw[k], nm);
    }
    nf_flow_desc_realnvp(&d, 2, 2, 8); d.context_dim = 1;
    refused(&d, "NFLOW_NO_CONTEXT", "removed_context_refused");
    nf_flow_desc_realnvp(&d, 2, 2, 8); d.base = NF_BASE_DIAG_GAUSSIAN;
    refused(&d, "NFLOW_NO_DIAG_BASE", "removed_learnable_base_refused");
    memset(dom, 0, sizeof dom); dom[1].kind = NF_DOMAIN_LOWER;
    nf_flow_desc_realnvp(&d, 2, 2, 8); d.domains = dom;
    refused(&d, "NFLOW_NO_DOMAINS", "removed_domains_refused");
    nf_flow_desc_realnvp(&d, 2, 2, 8); d.layers[0].activation = NF_ACT_SOFTPLUS;
    refused(&d, "NFLOW_ACTIVATIONS", "activation_outside_NFLOW_ACTIVATIONS_refused");
    printf("# %d passed, %d failed\n", g_pass, g_fail);
    return g_fail != 0;
}
