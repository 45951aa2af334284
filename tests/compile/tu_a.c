/* Two translation units: this one holds the implementation... */
#define NFLOW_IMPLEMENTATION
#include "../../nflow.h"
#include "../../nflow.h"   /* a second include must be harmless */
int tu_a_dim(void);
int tu_a_dim(void) { nf_flow_desc d; nf_flow_desc_realnvp(&d, 3, 2, 8); return d.dim; }
