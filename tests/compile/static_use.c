/* NFLOW_STATIC: everything private to this file, no warnings for the unused parts. */
#define NFLOW_STATIC
#define NFLOW_IMPLEMENTATION
#include "../../nflow.h"
int main(void) { nf_rng r; nf_rng_seed(&r, 1); return nf_rng_u32(&r) == 0; }
