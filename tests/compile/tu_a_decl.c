/* The other half of tu_a.c without the implementation (for the configuration-mismatch
   link test: the implementation comes from an object built another way). */
#include "../../nflow.h"
int tu_a_dim(void);
int tu_a_dim(void) { nf_flow_desc d; nf_flow_desc_realnvp(&d, 3, 2, 8); return d.dim; }
