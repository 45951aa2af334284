/* Writes seed model files for the fuzzer: every layer kind, both bases. */
#define NFLOW_IMPLEMENTATION
#include "../../nflow.h"
#include <stdio.h>
#include <string.h>

static void write_model(const char *dir, const char *name, nf_flow_desc *d) {
    nf_flow *f; char path[512]; FILE *fp;
    if (nf_flow_create(&f, d) != NF_OK) return;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    fp = fopen(path, "wb");
    if (fp) { nf_flow_save_file(f, fp); fclose(fp); }
    nf_flow_destroy(f);
}
int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : ".";
    nf_flow_desc d; nf_layer_desc l; int k;
    nf_flow_desc_realnvp(&d, 2, 2, 4); write_model(dir, "realnvp.nfl", &d);
    for (k = NF_LAYER_AFFINE_COUPLING; k < NF_LAYER_KIND_COUNT; ++k) {
        char name[32];
        nf_flow_desc_init(&d, 3); d.base = k & 1;
        memset(&l, 0, sizeof l); l.kind = k; l.hidden = 3; l.depth = 1; l.seed = 5;
        nf_flow_desc_add(&d, &l);
        snprintf(name, sizeof name, "layer%d.nfl", k);
        write_model(dir, name, &d);
    }
    {   /* a conditional flow with every kind of domain */
        nf_domain dom[4]; memset(dom, 0, sizeof dom);
        dom[0].kind = NF_DOMAIN_INTERVAL; dom[0].lo = 0; dom[0].hi = 1;
        dom[1].kind = NF_DOMAIN_LOWER; dom[1].lo = -2;
        dom[2].kind = NF_DOMAIN_PERIODIC; dom[2].lo = 0; dom[2].hi = 6.28; dom[2].cut = 3;
        nf_flow_desc_realnvp(&d, 4, 2, 4); d.context_dim = 3; d.domains = dom;
        write_model(dir, "conditional_domains.nfl", &d);
    }
    return 0;
}
