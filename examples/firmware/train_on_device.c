/* train_on_device: a sensor that learns its own normal operating density on the chip,
   then flags readings that do not fit it. No host, no network, no labels, no malloc.

   THE USE CASE
   A motor controller measures two things about its own motor: the phase current (A) and
   the winding temperature's rise over ambient (K). What "normal" looks like differs from
   unit to unit (motor, load, mounting, airflow), so a density fitted on a desktop does
   not fit every unit. Instead, after installation the controller records a few hundred
   readings of normal operation, trains a small normalizing flow on them itself, sets an
   alarm threshold from readings it held out of training, and from then on flags every
   reading whose log-density lies below the threshold: a fan that stopped (hot at
   moderate current), a detached temperature sensor (cold at high current), a bearing
   running hot at idle. Here the readings are simulated: an idle cluster and a loaded
   regime whose temperature rise grows with the square of the current.

   WHAT RUNS ON THE CHIP
   A RealNVP with 4 affine couplings of width 16 (1,352 parameters), trained from its
   seeded initial weights with nf_trainer_create / nf_train_step: TOD_STEPS Adam steps
   (default 600, cosine-decayed learning rate) on minibatches of 8 of the 384 recorded
   readings. Then the held-out negative log-likelihood, the threshold and the verdicts on
   16 new readings, four of them injected faults.

   MEMORY (the whole run fits in 64 KiB of RAM; tests/mcu/run_train.sh links it for a
   Cortex-M4F and a RISC-V core with 64 KiB and checks; measured on the Cortex-M4F:
   nflow's buffer 48 KiB of which 46.5 KiB at most in use, readings 4.8 KiB, stack
   2.7 KiB, newlib's own data 2.7 KiB):
   - everything nflow allocates (the flow with its weights and workspace, the trainer's
     gradients and Adam moments, the tape arena for a step) comes from one static buffer
     through NF_MALLOC / NF_FREE, here a stack-like bump allocator (tod_malloc below).
     A trainer sizes its arena by trial at creation; the trials are freed at once, so
     their space is reused by the arena itself.
   - the readings (training and held out) and one minibatch are static arrays;
   - printing uses integers only: newlib's float formatting would take heap for itself.
   At the end the program prints the map: each block of the buffer, its high-water mark,
   and the stack's high-water mark, measured by painting the stack with a pattern at the
   start of main and finding the deepest word that changed.

   BUILD
   Host:  cc -std=c99 -O2 -Wall -I. examples/firmware/train_on_device.c -lm
   Chip:  add -DNFLOW_NO_STDIO -DNF_MAX_LAYERS=8, and to compile in only what a RealNVP
          needs: -DNFLOW_NO_LU -DNFLOW_NO_MONOTONE -DNFLOW_NO_SPLINE
          -DNFLOW_NO_AUTOREGRESSIVE -DNFLOW_NO_ACTNORM -DNFLOW_NO_DOMAINS -DNFLOW_NO_CONTEXT
          -DNFLOW_NO_DIAG_BASE -DNFLOW_NO_LOADER -DNFLOW_NO_IMPORTANCE -DNFLOW_NO_THREADS -DNFLOW_ACTIVATIONS=0x2u
   bash tests/mcu/run_train.sh builds it so for the host, a Cortex-M4F and a RISC-V
   rv32imafc, runs the two chips under QEMU and checks them against the host: the same
   source with the same seed and data gives the same weights after 100 steps to float
   rounding (libm's last bits differ), and the same verdicts. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifndef TOD_STEPS
#define TOD_STEPS 600        /* Adam steps */
#endif
#define TOD_CHECK_STEP 100   /* the step at which tests/mcu/run_train.sh compares weights */
#ifndef TOD_EVAL_EVERY
#define TOD_EVAL_EVERY 50    /* steps between held-out evaluations (bench/mcu_count.sh: only at the end) */
#endif
#define TOD_BATCH 8          /* rows per step: the tape arena grows with it */
#define TOD_TRAIN 384        /* recorded readings used for training */
#define TOD_HELD 128         /* recorded readings held out: validation and the threshold */
#define TOD_NEW 16           /* readings to judge after training */

/* ---- one static buffer for everything nflow allocates ------------------------------ */
#ifndef TOD_HEAP_BYTES       /* pointers are bigger on a desktop, so is the tape */
#define TOD_HEAP_BYTES (sizeof(void *) <= 4 ? 49152u : 98304u)
#endif
/* A stack allocator: each block starts with a header naming the block below it. Freeing
   the top block gives its space back, together with any blocks below it freed earlier;
   freeing another block only marks it. nflow frees in reverse order of allocation. */
typedef struct tod_block { size_t below, size, freed, pad; } tod_block;
#define TOD_NONE ((size_t)-1)
static union { double align; unsigned char bytes[TOD_HEAP_BYTES]; } tod_heap;
static size_t tod_top, tod_high, tod_last = TOD_NONE;

static tod_block *tod_at(size_t off) { return (tod_block *)(void *)(tod_heap.bytes + off); }
void *tod_malloc(size_t n) {
    size_t need = sizeof(tod_block) + ((n + 7) & ~(size_t)7);
    tod_block *b;
    if (n > TOD_HEAP_BYTES || need > TOD_HEAP_BYTES - tod_top) return NULL;
    b = tod_at(tod_top);
    b->below = tod_last; b->size = n; b->freed = 0;
    tod_last = tod_top;
    tod_top += need;
    if (tod_top > tod_high) tod_high = tod_top;
    return b + 1;
}
void tod_free(void *p) {
    if (!p) return;
    ((tod_block *)p - 1)->freed = 1;
    while (tod_last != TOD_NONE && tod_at(tod_last)->freed) {   /* pop freed blocks */
        tod_top = tod_last;
        tod_last = tod_at(tod_last)->below;
    }
}
void *tod_realloc(void *p, size_t n) {   /* nflow reallocates only for files on a host */
    void *q;
    if (!p) return tod_malloc(n);
    q = tod_malloc(n);
    if (q) { size_t old = ((tod_block *)p - 1)->size; memcpy(q, p, old < n ? old : n); tod_free(p); }
    return q;
}
#define NF_MALLOC(sz, u) ((void)(u), tod_malloc(sz))
#define NF_REALLOC(p, sz, u) ((void)(u), tod_realloc(p, sz))
#define NF_FREE(p, u) ((void)(u), tod_free(p))
#ifndef TOD_NFLOW_ELSEWHERE   /* bench/mcu_size.sh compiles the library in its own object */
#define NFLOW_IMPLEMENTATION
#endif
#include "nflow.h"

/* ---- RAM nobody allocates: the stack, and libc's heap (bare metal only) ---------- */
#if defined(__arm__) && !defined(__linux__)
/* tests/mcu/layout.ld: .data, .bss, then libc's heap from `end` up to the stack */
extern char end[], __StackLimit[], __StackTop[];
#define TOD_HEAP_LO end
#define TOD_STACK_LO __StackLimit
#define TOD_STACK_HI __StackTop
#elif defined(__riscv) && !defined(__linux__)
/* tests/mcu/riscv/virt_rv32.ld: the stack at the bottom of RAM, and no heap at all */
extern char __flash_end[], __stack_top[];
#define TOD_HEAP_LO __flash_end
#define TOD_STACK_LO __flash_end
#define TOD_STACK_HI __stack_top
#endif
#ifdef TOD_STACK_LO
#define TOD_PAINT 0x5AFEC0DEu
/* Paints libc's heap region and the unused stack below this function's frame (with 256
   bytes to spare) with a pattern; whatever is written later shows as changed words. */
static __attribute__((noinline)) void tod_paint(void) {
    volatile uint32_t *p = (volatile uint32_t *)(void *)TOD_HEAP_LO;
    uintptr_t stop = ((uintptr_t)&p - 256) & ~(uintptr_t)3;
    while ((uintptr_t)p < stop) *p++ = TOD_PAINT;
}
/* the stack's high-water mark: from its top down to the deepest changed word */
static size_t tod_stack_used(void) {
    const volatile uint32_t *p = (const volatile uint32_t *)(void *)TOD_STACK_LO;
    while ((uintptr_t)p < (uintptr_t)TOD_STACK_HI && *p == TOD_PAINT) ++p;
    return (size_t)((uintptr_t)TOD_STACK_HI - (uintptr_t)p);
}
/* bytes of libc's heap region written since tod_paint */
static size_t tod_libc_heap_used(void) {
    const volatile uint32_t *p = (const volatile uint32_t *)(void *)TOD_HEAP_LO;
    size_t n = 0;
    for (; (uintptr_t)p < (uintptr_t)TOD_STACK_LO; ++p) n += *p != TOD_PAINT ? 4 : 0;
    return n;
}
#endif

/* ---- numbers without printf's %f ----------------------------------------------------- */
/* x with d decimals into b */
static const char *tod_fixed(char *b, double x, int d) {
    unsigned long scale = 1, v; int i;
    for (i = 0; i < d; ++i) scale *= 10;
    if (x != x) return strcpy(b, "nan");
    if (x > 2e9 / (double)scale || x < -2e9 / (double)scale) return strcpy(b, x < 0 ? "-huge" : "huge");
    v = (unsigned long)((x < 0 ? -x : x) * (double)scale + 0.5);
    if (d) sprintf(b, "%s%lu.%0*lu", x < 0 && v ? "-" : "", v / scale, d, v % scale);
    else sprintf(b, "%s%lu", x < 0 && v ? "-" : "", v);
    return b;
}
#ifdef TOD_REFERENCE
/* x >= 0 as m.mme-EE */
static const char *tod_sci(char *b, double x) {
    int e = 0; unsigned long v;
    if (x <= 0) return strcpy(b, "0");
    while (x >= 10) { x /= 10; ++e; }
    while (x < 1) { x *= 10; --e; }
    v = (unsigned long)(x * 100 + 0.5);
    if (v >= 1000) { v /= 10; ++e; }
    sprintf(b, "%lu.%02lue%c%02d", v / 100, v % 100, e < 0 ? '-' : '+', e < 0 ? -e : e);
    return b;
}
#endif

/* ---- the sensor ---------------------------------------------------------------------- */
/* One reading of normal operation: idle 30% of the time, otherwise under a load between
   2 and 6 A whose temperature rise grows with the square of the current. Only + - * /
   on the portable random numbers of nf_rng, so every platform makes the same data. */
static void tod_reading(nf_rng *r, nf_real *x) {
    if (nf_rng_uniform(r) < (nf_real)0.3) {
        x[0] = (nf_real)0.6 + (nf_real)0.08 * nf_rng_normal(r);
        x[1] = (nf_real)3.0 + (nf_real)0.8 * nf_rng_normal(r);
    } else {
        nf_real c = 2 + 4 * nf_rng_uniform(r);
        x[0] = c + (nf_real)0.1 * nf_rng_normal(r);
        x[1] = 3 + (nf_real)1.1 * c * c + ((nf_real)0.5 + (nf_real)0.15 * c) * nf_rng_normal(r);
    }
}
/* faults to inject: current (A), temperature rise (K) */
static const nf_real tod_faults[4][2] = {
    {3.0f, 30.0f},   /* fan stopped: hot at moderate load (normal: ~13 K) */
    {5.0f, 10.0f},   /* temperature sensor came loose: cold at high load (normal: ~30 K) */
    {0.6f, 15.0f},   /* bearing running hot while idle (normal: ~3 K) */
    {1.3f, 4.0f},    /* a current between idle and the smallest load: stalled start */
};

static nf_real tod_train[TOD_TRAIN * 2], tod_held[TOD_HELD * 2], tod_batch[TOD_BATCH * 2];
static nf_real tod_new[TOD_NEW * 2], tod_logp[TOD_HELD];

/* mean negative log-likelihood of the held-out readings, nats per reading */
static double tod_held_nll(nf_flow *f) {
    double s = 0; int i;
    if (nf_flow_log_prob(f, tod_held, TOD_HELD, tod_logp) != NF_OK) return 1e30;
    for (i = 0; i < TOD_HELD; ++i) s -= (double)tod_logp[i];
    return s / TOD_HELD;
}

#ifdef TOD_REFERENCE   /* the host's run, written by the host build with TOD_WRITE_REFERENCE */
#include TOD_REFERENCE
#endif
#ifdef TOD_WRITE_REFERENCE
static FILE *tod_ref;
static void tod_ref_reals(const char *name, const nf_real *v, size_t n) {
    size_t i;
    fprintf(tod_ref, "static const float %s[%lu] = {", name, (unsigned long)n);
    for (i = 0; i < n; ++i) fprintf(tod_ref, "%s%s%.9g", i ? "," : "", i % 8 ? "" : "\n    ", (double)v[i]);
    fprintf(tod_ref, "};\n");
}
#endif

int main(void) {
    nf_rng rng; nf_flow_desc d; nf_flow *f; nf_trainer *t; nf_adam_config c;
    double mean[2] = {0, 0}, var[2] = {0, 0}, loss = 0, nll = 0, nll_check = 0;
    nf_real m[2], s[2], threshold, new_logp[TOD_NEW];
    size_t flow_heap, setup_peak; int i, j, step, flagged = 0, wrong = 0, fails = 0;
    char b1[32], b2[32], b3[32];
    static char out[128];   /* newlib would malloc stdout's buffer on first use */
#ifdef TOD_STACK_LO
    tod_paint();
#endif
    setvbuf(stdout, out, _IOLBF, sizeof out);
    /* 1. record normal operation */
    nf_rng_seed(&rng, 2026);
    for (i = 0; i < TOD_TRAIN; ++i) tod_reading(&rng, tod_train + 2 * i);
    for (i = 0; i < TOD_HELD; ++i) tod_reading(&rng, tod_held + 2 * i);
    for (i = 0; i < TOD_TRAIN; ++i)
        for (j = 0; j < 2; ++j) mean[j] += (double)tod_train[2 * i + j] / TOD_TRAIN;
    for (i = 0; i < TOD_TRAIN; ++i)
        for (j = 0; j < 2; ++j) var[j] += ((double)tod_train[2 * i + j] - mean[j]) * ((double)tod_train[2 * i + j] - mean[j]) / TOD_TRAIN;

    /* 2. the flow, standardised to the recorded readings, and its trainer */
    nf_flow_desc_realnvp(&d, 2, 4, 16);
    d.chunk = 16;   /* inference workspace: 16 rows at a time */
    if (nf_flow_create(&f, &d) != NF_OK) { printf("flow: out of memory\n"); return 2; }
    for (j = 0; j < 2; ++j) { m[j] = (nf_real)mean[j]; s[j] = (nf_real)sqrt(var[j]); }
    nf_flow_set_standardization(f, m, s);
    flow_heap = tod_top;
    nf_adam_config_default(&c);
    c.lr = 1e-2; c.schedule = NF_SCHED_COSINE; c.total_steps = TOD_STEPS; c.min_lr_frac = 0.05;
    if (nf_trainer_create(&t, f, &c, TOD_BATCH) != NF_OK) {
        printf("trainer: %s; nflow's buffer: %lu of %lu bytes in use\n", nf_flow_error(f), (unsigned long)tod_top, (unsigned long)TOD_HEAP_BYTES);
        return 2;
    }
    setup_peak = tod_high;
    printf("device: RealNVP 4 x 16, %lu parameters; %d readings to train on, %d held out\n",
           (unsigned long)nf_flow_num_params(f), TOD_TRAIN, TOD_HELD);

    /* 3. train: minibatches drawn from the recorded readings */
    for (step = 1; step <= TOD_STEPS; ++step) {
        nf_result r;
        for (i = 0; i < TOD_BATCH; ++i) {
            uint32_t k = nf_rng_u32(&rng) % TOD_TRAIN;
            tod_batch[2 * i] = tod_train[2 * k]; tod_batch[2 * i + 1] = tod_train[2 * k + 1];
        }
        r = nf_train_step(t, tod_batch, NULL, TOD_BATCH, &loss);
        if (r != NF_OK) { printf("step %d: %s\n", step, nf_result_string(r)); return 2; }
        if (step % TOD_EVAL_EVERY == 0 || step == TOD_STEPS) {
            nll = tod_held_nll(f);
            if (step == TOD_CHECK_STEP) nll_check = nll;
            printf("step %3d: minibatch loss %s, held-out NLL %s nats\n", step, tod_fixed(b1, loss, 4), tod_fixed(b2, nll, 4));
        }
#ifdef TOD_REFERENCE   /* every weight against the host's at the same step */
        if (step == TOD_CHECK_STEP) {
            const nf_real *p = nf_flow_params(f); double worst = 0;
            for (i = 0; i < (int)nf_flow_num_params(f); ++i) {
                double h = tod_ref_params[i], e = fabs((double)p[i] - h) / (fabs(h) > 1 ? fabs(h) : 1);
                if (e > worst) worst = e;
            }
            printf("check: weights after %d steps: max |device - host| / max(|host|, 1) = %s (tolerance 1.00e-04)\n",
                   step, tod_sci(b1, worst));
            if (!(worst <= 1e-4)) { printf("FAIL weights differ from the host's\n"); fails++; }
        }
#endif
#ifdef TOD_WRITE_REFERENCE
        if (step == TOD_CHECK_STEP) {
            tod_ref = fopen(TOD_WRITE_REFERENCE, "w");
            if (!tod_ref) { printf("cannot write %s\n", TOD_WRITE_REFERENCE); return 2; }
            fprintf(tod_ref, "/* written by train_on_device.c on the host (TOD_WRITE_REFERENCE) */\n");
            tod_ref_reals("tod_ref_params", nf_flow_params(f), nf_flow_num_params(f));
        }
#endif
    }

    /* 4. the alarm threshold: the lowest log-density among the held-out normal readings,
       so about 1 normal reading in TOD_HELD + 1 raises a false alarm */
    tod_held_nll(f);
    threshold = tod_logp[0];
    for (i = 1; i < TOD_HELD; ++i) if (tod_logp[i] < threshold) threshold = tod_logp[i];
    printf("alarm threshold: log p < %s\n", tod_fixed(b1, threshold, 3));

    /* 5. new readings: 12 normal ones with 4 faults among them */
    nf_rng_seed(&rng, 7);
    for (i = 0, j = 0; i < TOD_NEW; ++i) {
        if (i % 4 == 3) { tod_new[2 * i] = tod_faults[j][0]; tod_new[2 * i + 1] = tod_faults[j][1]; ++j; }
        else tod_reading(&rng, tod_new + 2 * i);
    }
    nf_flow_log_prob(f, tod_new, TOD_NEW, new_logp);
    for (i = 0; i < TOD_NEW; ++i) {
        int fault = i % 4 == 3, flag = !(new_logp[i] >= threshold);   /* NaN or -inf: flagged */
        flagged += flag; wrong += flag != fault;
        printf("reading %2d: %s A, %s K: log p %s%s%s\n", i, tod_fixed(b1, tod_new[2 * i], 2), tod_fixed(b2, tod_new[2 * i + 1], 1),
               tod_fixed(b3, new_logp[i], 2), flag ? "  OUTLIER" : "", fault ? " (injected fault)" : "");
    }
    printf("flagged %d of %d readings; %d verdicts wrong\n", flagged, TOD_NEW, wrong);
    if (wrong) fails++;

    /* 6. the RAM map */
    printf("ram: nflow's buffer %lu bytes (static): high-water %lu during the trainer's setup, %lu in use\n",
           (unsigned long)TOD_HEAP_BYTES, (unsigned long)setup_peak, (unsigned long)tod_top);
    printf("ram:   flow %lu: weights %lu, bookkeeping + standardisation + workspace %lu\n", (unsigned long)flow_heap,
           (unsigned long)(nf_flow_num_params(f) * sizeof(nf_real)), (unsigned long)(flow_heap - nf_flow_num_params(f) * sizeof(nf_real)));
    printf("ram:   trainer %lu: gradients + Adam moments %lu, tape arena + bookkeeping %lu (a step uses %lu of the arena)\n",
           (unsigned long)(tod_top - flow_heap), (unsigned long)(3 * nf_flow_num_params(f) * sizeof(nf_real)),
           (unsigned long)(tod_top - flow_heap - 3 * nf_flow_num_params(f) * sizeof(nf_real)),
           (unsigned long)(nf_trainer_bytes(t) - 3 * nf_flow_num_params(f) * sizeof(nf_real)));
    printf("ram: readings %lu (static): train %lu, held out %lu, minibatch %lu, new %lu, log p %lu\n",
           (unsigned long)(sizeof tod_train + sizeof tod_held + sizeof tod_batch + sizeof tod_new + sizeof tod_logp),
           (unsigned long)sizeof tod_train, (unsigned long)sizeof tod_held, (unsigned long)sizeof tod_batch,
           (unsigned long)sizeof tod_new, (unsigned long)sizeof tod_logp);
#ifdef TOD_STACK_LO
    printf("ram: stack high-water %lu of %lu bytes; libc heap: %lu of %lu bytes written\n", (unsigned long)tod_stack_used(),
           (unsigned long)((uintptr_t)TOD_STACK_HI - (uintptr_t)TOD_STACK_LO), (unsigned long)tod_libc_heap_used(),
           (unsigned long)((uintptr_t)TOD_STACK_LO - (uintptr_t)TOD_HEAP_LO));
#endif
    printf("result: held-out NLL %s nats after %d steps, %s after %d\n", tod_fixed(b1, nll_check, 4), TOD_CHECK_STEP,
           tod_fixed(b2, nll, 4), TOD_STEPS);
#ifdef TOD_REFERENCE
    {
        char b4[32];
        printf("check: held-out NLL after %d steps: device %s, host %s; after %d: device %s, host %s (tolerance 0.02)\n",
               TOD_CHECK_STEP, tod_fixed(b1, nll_check, 4), tod_fixed(b2, tod_ref_nll_check, 4), TOD_STEPS,
               tod_fixed(b3, nll, 4), tod_fixed(b4, tod_ref_nll_final, 4));
        if (!(fabs(nll_check - tod_ref_nll_check) <= 0.02 && fabs(nll - tod_ref_nll_final) <= 0.02)) {
            printf("FAIL held-out NLL differs from the host's\n"); fails++;
        }
        if (flagged != tod_ref_flagged) { printf("FAIL the host flagged %d readings\n", tod_ref_flagged); fails++; }
    }
#endif
#ifdef TOD_WRITE_REFERENCE
    if (tod_ref) {
        fprintf(tod_ref, "static const double tod_ref_nll_check = %.17g, tod_ref_nll_final = %.17g;\n", nll_check, nll);
        fprintf(tod_ref, "static const int tod_ref_flagged = %d;\n", flagged);
        if (fclose(tod_ref) != 0) fails++;
    }
#endif
    nf_trainer_destroy(t);
    nf_flow_destroy(f);
    return fails ? 1 : 0;
}
