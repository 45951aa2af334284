/* Found by tests/fuzz/fuzz_api.c (class export_nonfinite).
   Fields that a domain kind or a layer kind does not use may hold anything (nf_flow_create
   ignores them: hi of NF_DOMAIN_REAL and NF_DOMAIN_LOWER, cut of all but periodic; clamp,
   tail_bound, min_* of kinds without those maps). nf_flow_export_c prints them with %.17g
   and %.9ef, so a NaN or infinity among them comes out as "nan", "inf", "nanf" or "inff":
   the generated .c file does not compile.
   Cases: (1) dim 2 with domains {LOWER lo 0 hi NaN, REAL}; (2) a PERMUTE layer, clamp = inf.
   What happens:  nf_flow_export_c -> NF_OK, and the .c file holds "nan" (1) / "inff" (2).
   What should:   print each kind's canonical values (unused fields 0), or refuse such
                  descriptions in nf_flow_create.
   Exit status 1 while the bug is there, 0 when fixed.
   cc -std=c99 -Wall -Wextra -pedantic export_c_unused_nan.c -lm */
#define NFLOW_IMPLEMENTATION
#include "../../../nflow.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 1 if the text written to fp has a nan/inf token */
static int has_nonfinite(FILE *fp) {
    long n; char *b, *p; int bad = 0;
    fseek(fp, 0, SEEK_END); n = ftell(fp); fseek(fp, 0, SEEK_SET);
    b = (char *)calloc((size_t)n + 1, 1);
    if (!b || fread(b, 1, (size_t)n, fp) != (size_t)n) { free(b); return 0; }
    for (p = b; *p; ++p)
        if ((p == b || p[-1] == ' ' || p[-1] == '{' || p[-1] == '-' || p[-1] == ',') &&
            (!strncmp(p, "nan", 3) || !strncmp(p, "inf", 3))) { printf("    ... %.40s\n", p > b + 20 ? p - 20 : b); bad = 1; break; }
    free(b);
    return bad;
}
static int export_has_nonfinite(const nf_flow_desc *d, const char *what) {
    nf_flow *f; FILE *c = tmpfile(), *h = tmpfile(); nf_result r; int bad = 0;
    if (!c || !h) return 0;
    if (nf_flow_create(&f, d) != NF_OK) { printf("%s: create refuses it (fixed)\n", what); fclose(c); fclose(h); return 0; }
    r = nf_flow_export_c(f, "flow", 16, c, h);
    printf("%s: nf_flow_export_c -> %d\n", what, (int)r);
    if (r == NF_OK) bad = has_nonfinite(c);
    nf_flow_destroy(f); fclose(c); fclose(h);
    return bad;
}
int main(void) {
    nf_flow_desc d; nf_domain dom[2]; nf_layer_desc l; int bad = 0;
    memset(dom, 0, sizeof dom);
    dom[0].kind = NF_DOMAIN_LOWER; dom[0].lo = 0; dom[0].hi = NAN;
    dom[1].kind = NF_DOMAIN_REAL;
    nf_flow_desc_init(&d, 2); d.domains = dom;
    bad |= export_has_nonfinite(&d, "(1) LOWER domain, hi = NaN");
    nf_flow_desc_init(&d, 2);
    memset(&l, 0, sizeof l); l.kind = NF_LAYER_PERMUTE; l.clamp = (float)INFINITY;
    nf_flow_desc_add(&d, &l);
    bad |= export_has_nonfinite(&d, "(2) PERMUTE layer, clamp = inf");
    return bad;
}
