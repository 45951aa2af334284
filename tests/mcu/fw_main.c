/* Firmware side: the exported flow, weights in flash, evaluated and sampled with a
   static workspace and no heap. Compares with the host's numbers (expected.h).
   FW_LOAD: the same flow read at run time from its model file embedded as bytes
   (moons_model.h): nf_flow_load_desc, nf_flow_init in a static buffer, nf_flow_load_into,
   in the inference-only build with every layer kind (the loader stays in it). */
#include <stdio.h>
static unsigned long g_heap_calls;   /* the flow must never use the allocator */
static void *no_malloc(void) { g_heap_calls++; return 0; }
#define NF_MALLOC(sz, u) ((void)(sz), (void)(u), no_malloc())
#define NF_REALLOC(p, sz, u) ((void)(p), (void)(sz), (void)(u), no_malloc())
#define NF_FREE(p, u) ((void)(p), (void)(u), (void)g_heap_calls)
#ifndef FW_LOAD
#define MOONS_FLOW_ONLY          /* the exported header switches off what this flow does not use */
#include "moons_flow.h"
#endif
#define NFLOW_IMPLEMENTATION
#include "nflow.h"
#include "expected.h"
#include "lp_slack.h"   /* the host float's own error at each point (gen_ref.c) */
#ifdef FW_LOAD
#include "moons_model.h"
#ifndef FW_LOAD_RAM
#define FW_LOAD_RAM 32768
#endif
static nf_flow_desc desc;   /* static: a description is large for a small stack */
#endif

#ifndef LP_REPS
#define LP_REPS 1   /* > 1 only to count instructions per evaluation (bench/mcu_count.sh) */
#endif
#ifndef S_REPS
#define S_REPS 1
#endif

#ifdef FW_LOAD
static union { double align; unsigned char b[FW_LOAD_RAM]; } flow_mem;
#else
static unsigned char workspace[MOONS_FLOW_WORKSPACE_BYTES];
#endif

/* |got - want| beyond a slack, relative to max(|want|, 1) (absolute below 1); *worst gets
   the largest of these, *raw the largest without the slack */
static void track(float got, float want, float slack, float *worst, float *raw) {
    float d = fabsf(got - want), m = fabsf(want), den = m > 1.0f ? m : 1.0f;
    if (d / den > *raw) *raw = d / den;
    if (d > slack && (d - slack) / den > *worst) *worst = (d - slack) / den;
}

int main(void) {
    nf_flow *f; nf_rng rng; nf_real lp[NPTS], s[NSAMP * 2], slp[NSAMP]; size_t need = 0;
    float worst_lp = 0, worst_s = 0, raw_lp = 0, raw_s = 0; int i, rep; nf_result r;
#ifdef FW_LOAD
    r = nf_flow_load_desc(moons_model, MOONS_MODEL_BYTES, &desc, NULL, 0);   /* the moons have no domains */
    desc.chunk = 4;   /* rows per inference chunk: a runtime knob, small for a small RAM */
    if (r == NF_OK) r = nf_flow_size(&desc, &need);
    if (r == NF_OK) r = nf_flow_init(&f, &desc, flow_mem.b, sizeof flow_mem.b);
    if (r == NF_OK) r = nf_flow_load_into(f, moons_model, MOONS_MODEL_BYTES);
    printf("mcu: loaded a %lu-byte model file: %s; the flow takes %lu bytes of RAM (weights included), %lu parameters\n",
           (unsigned long)MOONS_MODEL_BYTES, nf_result_string(r), (unsigned long)need, r == NF_OK ? (unsigned long)nf_flow_num_params(f) : 0ul);
    if (r != NF_OK) return 2;
#else
    nf_flow_size_const(&moons_flow_desc, &need);
    r = MOONS_FLOW_INIT(&f, workspace, sizeof workspace);
    printf("mcu: init %s, static workspace %lu bytes (nf_flow_size_const: %lu), %d parameters in flash\n",
           nf_result_string(r), (unsigned long)sizeof workspace, (unsigned long)need, MOONS_FLOW_NUM_PARAMS);
    if (r != NF_OK || need != sizeof workspace) return 2;   /* the macro is exact on this target */
#endif
    for (rep = 0; rep < LP_REPS; ++rep) r = nf_flow_log_prob(f, pts, NPTS, lp);
    if (r != NF_OK) return 3;
    for (rep = 0; rep < S_REPS; ++rep) {
        nf_rng_seed(&rng, SAMPLE_SEED);
        r = nf_flow_sample(f, &rng, NSAMP, s, slp);
    }
    if (r != NF_OK) return 4;
    for (i = 0; i < NPTS; ++i) track(lp[i], want_logp[i], lp_slack[i], &worst_lp, &raw_lp);   /* slack: the host float's own error */
    for (i = 0; i < NSAMP; ++i) {
        /* a sample's log p may differ by what the sample's own difference can explain: another
           libm moves a sample by an ulp or so, and where log p is steep (|grad| 43 at a spline
           flow's sample) a log-det taken at the moved point changes beyond 1e-5 (1.2e-5 seen);
           the slack is |d log p/dx| |dx| per coordinate, from the host's gradient */
        float dx0 = s[2 * i] - want_samples[2 * i], dx1 = s[2 * i + 1] - want_samples[2 * i + 1];
        track(slp[i], want_sample_logp[i], fabsf(want_sample_grad[2 * i] * dx0) + fabsf(want_sample_grad[2 * i + 1] * dx1), &worst_s, &raw_s);
        track(s[2 * i], want_samples[2 * i], 0, &worst_s, &raw_s);
        track(s[2 * i + 1], want_samples[2 * i + 1], 0, &worst_s, &raw_s);
    }
    printf("mcu: log_prob[0] %.6f (host %.6f), sample[0] (%.6f, %.6f) (host (%.6f, %.6f))\n",
           (double)lp[0], (double)want_logp[0], (double)s[0], (double)s[1], (double)want_samples[0], (double)want_samples[1]);
    printf("mcu: max relative error: log_prob %.3g, samples %.3g beyond the slack (raw: %.3g, %.3g); heap calls %lu\n",
           (double)worst_lp, (double)worst_s, (double)raw_lp, (double)raw_s, g_heap_calls);
    return worst_lp <= 1e-5f && worst_s <= 1e-5f && g_heap_calls == 0 ? 0 : 1;
}
