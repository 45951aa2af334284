/* Firmware for bench/mcu_size.sh: a 2-D flow evaluated (16 rows) and sampled (16 rows)
   on the chip, its weights either
     SIZE_CONST  exported as C by nf_flow_export_c: const data in flash, a static
                 workspace of SIZE_FLOW_WORKSPACE_BYTES, nf_flow_init_const; or
     SIZE_LOAD   read at run time from a model file embedded as bytes (size_model.h):
                 nf_flow_load_desc, nf_flow_init in a static buffer of SIZE_RAM bytes,
                 nf_flow_load_into. Prints the bytes the flow needs, so the script can
                 rebuild with SIZE_RAM exact.
   The stack's high-water mark is taken before the only printf.
   nflow's implementation is compiled in its own object (bench/mcu_size_impl.c), so the
   linker map attributes its code; the feature switches come from the command line.
   The stack is painted at the start of main and its high-water mark printed at the end.
   LP_REPS: passes over the 16 rows, to count instructions per row. Exit status 0 if
   everything returned NF_OK and the log-densities are finite. */
#include <stdint.h>
#include <stdio.h>
#include "nflow.h"
#include "size_points.h"
#ifdef SIZE_CONST
#include "size_flow.h"
static unsigned char flow_mem[SIZE_FLOW_WORKSPACE_BYTES];
#else
#include "size_model.h"
#ifndef SIZE_RAM
#define SIZE_RAM 16384
#endif
static unsigned char flow_mem[SIZE_RAM];
#endif
#ifndef LP_REPS
#define LP_REPS 1
#endif

extern char __StackLimit[], __StackTop[];   /* tests/mcu/layout.ld */
#define PAINT 0x5AFEC0DEu
static __attribute__((noinline)) void stack_paint(void) {
    volatile uint32_t *p = (volatile uint32_t *)(void *)__StackLimit;
    uintptr_t stop = ((uintptr_t)&p - 256) & ~(uintptr_t)3;
    while ((uintptr_t)p < stop) *p++ = PAINT;
}
static unsigned long stack_used(void) {
    const volatile uint32_t *p = (const volatile uint32_t *)(void *)__StackLimit;
    while ((uintptr_t)p < (uintptr_t)__StackTop && *p == PAINT) ++p;
    return (unsigned long)((uintptr_t)__StackTop - (uintptr_t)p);
}

int main(void) {
    nf_flow *f; nf_rng rng; nf_real lp[NPTS], s[NPTS * 2], slp[NPTS]; size_t need = 0; int i, rep; nf_result r;
    static char out[128];   /* newlib would malloc stdout's buffer */
    stack_paint();
    setvbuf(stdout, out, _IOLBF, sizeof out);
#ifdef SIZE_CONST
    nf_flow_size_const(&size_flow_desc, &need);
    r = SIZE_FLOW_INIT(&f, flow_mem, sizeof flow_mem);
#else
    {   nf_flow_desc d;
        if ((r = nf_flow_load_desc(size_model, SIZE_MODEL_BYTES, &d, NULL, 0)) != NF_OK) { printf("load_desc: %s\n", nf_result_string(r)); return 2; }
        d.chunk = 4;   /* rows per inference chunk: a runtime knob, small for a small RAM */
        nf_flow_size(&d, &need);
        if (need > sizeof flow_mem) { printf("size: the loaded flow needs %lu bytes of RAM, more than SIZE_RAM\n", (unsigned long)need); return 3; }
        if ((r = nf_flow_init(&f, &d, flow_mem, sizeof flow_mem)) == NF_OK) r = nf_flow_load_into(f, size_model, SIZE_MODEL_BYTES);
    }
#endif
    if (r != NF_OK) { printf("init: %s\n", nf_result_string(r)); return 2; }
    for (rep = 0; rep < LP_REPS; ++rep) r = nf_flow_log_prob(f, size_points, NPTS, lp);
    if (r != NF_OK) return 4;
    nf_rng_seed(&rng, 42);
    if ((r = nf_flow_sample(f, &rng, NPTS, s, slp)) != NF_OK) return 5;
    for (i = 0; i < NPTS; ++i) if (!(lp[i] > -1e30f && lp[i] < 1e30f)) return 6;
    {   unsigned long stack = stack_used();   /* before printf adds its own */
        printf("size: the flow needs %lu bytes of RAM (buffer %lu); log p[0] x 1000 = %ld; stack high-water %lu bytes\n",
               (unsigned long)need, (unsigned long)sizeof flow_mem, (long)(lp[0] * 1000), stack); }
    return 0;
}
