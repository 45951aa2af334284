/* Found by tests/fuzz/fuzz_api.c.
   A layer setting its kind does not use may hold any value: nf_flow_create ignores it.
   nf_flow_save writes the nf_layer_desc as it is, and the loader (nf__parse, called by
   nf_flow_load / nf_flow_load_desc / nf_flow_load_into) rejects the file as
   NF_ERR_CORRUPT when such a field is negative (stored as > 0x7fffffff: "v[q] >
   0x7fffffff") or when clamp is negative or not finite ("!nf__isfinite_d(l->clamp) ||
   l->clamp < 0"), though only couplings read clamp.
   Two cases: mask = -1 on a PERMUTE layer, clamp = NaN on an ActNorm layer.
   What happens:  create OK, save OK, load -> 13 (model architecture inconsistent).
   What should:   a file nf_flow_save wrote loads (save each kind's canonical description,
                  unused fields 0, as the load_into comparison already does), or
                  nf_flow_create rejects such settings.
   Exit status 1 while the bug is there, 0 when fixed.
   cc -std=c99 -Wall -Wextra -pedantic save_unused_negative_field.c -lm */
#define NFLOW_IMPLEMENTATION
#include "../../../nflow.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int roundtrip(const nf_layer_desc *l, const char *what) {
    nf_flow_desc d; nf_flow *f, *g = NULL; size_t n, wr; unsigned char *buf; nf_result r;
    nf_flow_desc_init(&d, 2);
    nf_flow_desc_add(&d, l);
    if (nf_flow_create(&f, &d) != NF_OK) { printf("%s: create refuses it (fixed)\n", what); return 0; }
    nf_flow_save_size(f, &n);
    buf = (unsigned char *)malloc(n);
    r = nf_flow_save(f, buf, n, &wr);
    printf("%s: save -> %d, ", what, (int)r);
    r = nf_flow_load(&g, buf, wr);
    printf("load -> %d (%s)\n", (int)r, nf_result_string(r));
    nf_flow_destroy(g); nf_flow_destroy(f); free(buf);
    return r != NF_OK;
}
int main(void) {
    nf_layer_desc l; int bad = 0;
    memset(&l, 0, sizeof l); l.kind = NF_LAYER_PERMUTE; l.mask = -1;
    bad |= roundtrip(&l, "permute, mask -1");
    memset(&l, 0, sizeof l); l.kind = NF_LAYER_ACTNORM; l.clamp = (float)NAN;
    bad |= roundtrip(&l, "actnorm, clamp NaN");
    return bad;
}
