/* Firmware side: the exported flow, weights in flash, evaluated and sampled with a
   static workspace and no heap. Compares with the host's numbers (expected.h). */
#include <stdio.h>
static unsigned long g_heap_calls;   /* the flow must never use the allocator */
static void *no_malloc(void) { g_heap_calls++; return 0; }
#define NF_MALLOC(sz, u) ((void)(sz), (void)(u), no_malloc())
#define NF_REALLOC(p, sz, u) ((void)(p), (void)(sz), (void)(u), no_malloc())
#define NF_FREE(p, u) ((void)(p), (void)(u), (void)g_heap_calls)
#define MOONS_FLOW_ONLY          /* the exported header switches off what this flow does not use */
#include "moons_flow.h"
#define NFLOW_IMPLEMENTATION
#include "nflow.h"
#include "expected.h"

#ifndef LP_REPS
#define LP_REPS 1   /* > 1 only to count instructions per evaluation (bench/mcu_count.sh) */
#endif
#ifndef S_REPS
#define S_REPS 1
#endif

static unsigned char workspace[MOONS_FLOW_WORKSPACE_BYTES];

static float relerr(float got, float want) {
    float d = got - want, m = want < 0 ? -want : want;
    if (d < 0) d = -d;
    return d / (m > 1.0f ? m : 1.0f);   /* relative, absolute below 1 */
}

int main(void) {
    nf_flow *f; nf_rng rng; nf_real lp[NPTS], s[NSAMP * 2], slp[NSAMP]; size_t need = 0;
    float worst_lp = 0, worst_s = 0; int i, rep; nf_result r;
    nf_flow_size_const(&moons_flow_desc, &need);
    r = MOONS_FLOW_INIT(&f, workspace, sizeof workspace);
    printf("mcu: init %s, static workspace %lu bytes (nf_flow_size_const: %lu), %d parameters in flash\n",
           nf_result_string(r), (unsigned long)sizeof workspace, (unsigned long)need, MOONS_FLOW_NUM_PARAMS);
    if (r != NF_OK || need != sizeof workspace) return 2;   /* the macro is exact on this target */
    for (rep = 0; rep < LP_REPS; ++rep) r = nf_flow_log_prob(f, pts, NPTS, lp);
    if (r != NF_OK) return 3;
    for (rep = 0; rep < S_REPS; ++rep) {
        nf_rng_seed(&rng, SAMPLE_SEED);
        r = nf_flow_sample(f, &rng, NSAMP, s, slp);
    }
    if (r != NF_OK) return 4;
    for (i = 0; i < NPTS; ++i) { float e = relerr(lp[i], want_logp[i]); if (e > worst_lp) worst_lp = e; }
    for (i = 0; i < NSAMP; ++i) {
        float e = relerr(slp[i], want_sample_logp[i]);
        if (e > worst_s) worst_s = e;
        e = relerr(s[2 * i], want_samples[2 * i]); if (e > worst_s) worst_s = e;
        e = relerr(s[2 * i + 1], want_samples[2 * i + 1]); if (e > worst_s) worst_s = e;
    }
    printf("mcu: log_prob[0] %.6f (host %.6f), sample[0] (%.6f, %.6f) (host (%.6f, %.6f))\n",
           (double)lp[0], (double)want_logp[0], (double)s[0], (double)s[1], (double)want_samples[0], (double)want_samples[1]);
    printf("mcu: max relative error: log_prob %.3g, samples %.3g; heap calls %lu\n", (double)worst_lp, (double)worst_s, g_heap_calls);
    return worst_lp <= 1e-5f && worst_s <= 1e-5f && g_heap_calls == 0 ? 0 : 1;
}
