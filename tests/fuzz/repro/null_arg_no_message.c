/* Found by tests/fuzz/fuzz_api.c (class empty_error_null_arg). Minor.
   The manual (ERRORS) says nf_flow_error(f) gives a message with detail when a call
   fails. A few calls return NF_ERR_NULL for a NULL argument other than the flow without
   writing one, so nf_flow_error(f) is empty (or still holds an older call's message):
     nf_flow_importance   "if (!f || !rng || !target || !rep) return NF_ERR_NULL;"
     nf_train_step_kl(_ctx) via nf__train_step_kl: "if (!rng) return NF_ERR_NULL;"
   (nf_flow_importance's "if (!nf__mul(...)) return NF_ERR_OVERFLOW;" has no message
   either.) Every other call tried here names the problem.
   What should:   nf__fail(f, NF_ERR_NULL, "rng is NULL", -1) and the like whenever f is
                  there to hold it.
   Prints each call, its result and its message; exit status 1 if any message is empty.
   cc -std=c99 -Wall -Wextra -pedantic null_arg_no_message.c -lm */
#define NFLOW_IMPLEMENTATION
#include "../../../nflow.h"
#include <stdio.h>

static int target(const nf_real *x, size_t n, int dim, nf_real *logp, nf_real *grad, void *user) {
    size_t i; int j; (void)user;
    for (i = 0; i < n; ++i) { logp[i] = 0; for (j = 0; j < dim; ++j) { logp[i] -= x[i * dim + j] * x[i * dim + j] / 2; if (grad) grad[i * dim + j] = -x[i * dim + j]; } }
    return 0;
}
static int show(nf_flow *f, const char *what, nf_result r) {
    const char *e = nf_flow_error(f);
    printf("%-40s -> %2d  \"%s\"\n", what, (int)r, e);
    return r != NF_OK && !e[0];
}
int main(void) {
    nf_flow_desc d; nf_flow *f; nf_trainer *t; nf_rng rng; nf_is_report rep; double e;
    nf_real y[2] = {0.1f, 0.2f}, lp[1], z[2]; int bad = 0;
    nf_flow_desc_realnvp(&d, 2, 2, 4);
    if (nf_flow_create(&f, &d) != NF_OK || nf_trainer_create(&t, f, NULL, 4) != NF_OK) return 2;
    nf_rng_seed(&rng, 1);
#define TRY(what, call) do { f->err[0] = 0; bad |= show(f, what, call); } while (0)   /* the message is cleared first */
    TRY("nf_flow_importance(rng NULL)", nf_flow_importance(f, NULL, 10, target, NULL, &rep));
    TRY("nf_flow_importance(target NULL)", nf_flow_importance(f, &rng, 10, NULL, NULL, &rep));
    TRY("nf_flow_importance(report NULL)", nf_flow_importance(f, &rng, 10, target, NULL, NULL));
    TRY("nf_train_step_kl(rng NULL)", nf_train_step_kl(t, NULL, 2, target, NULL, &e));
    TRY("nf_flow_sample(rng NULL)", nf_flow_sample(f, NULL, 1, z, lp));
    TRY("nf_flow_log_prob(y NULL)", nf_flow_log_prob(f, NULL, 1, lp));
    TRY("nf_flow_roundtrip_error(max_err NULL)", nf_flow_roundtrip_error(f, y, 1, NULL));
    TRY("nf_train_step(y NULL)", nf_train_step(t, NULL, NULL, 1, &e));
    TRY("nf_fit(y NULL)", nf_fit(f, NULL, 2, NULL, NULL, NULL));
    nf_trainer_destroy(t); nf_flow_destroy(f);
    return bad;
}
