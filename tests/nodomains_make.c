/* Half of test_nodomains: a full build (static, so it links beside the NFLOW_NO_DOMAINS
   one) that writes model files for the other half to load. */
#define NFLOW_STATIC
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"
#include <string.h>

size_t nodomains_make_model(unsigned char *buf, size_t cap, int with_domain);
/* a 2-D RealNVP; with_domain 1: y0 on the half-line (0, inf); 2: a 2-D NSF instead */
size_t nodomains_make_model(unsigned char *buf, size_t cap, int with_domain) {
    nf_flow_desc d; nf_flow *f; nf_domain dom[2]; size_t n = 0;
    memset(dom, 0, sizeof dom);
    dom[0].kind = NF_DOMAIN_LOWER; dom[0].lo = 0;
    if (with_domain == 2) nf_flow_desc_nsf(&d, 2, 2, 8, 4);
    else nf_flow_desc_realnvp(&d, 2, 2, 8);
    if (with_domain == 1) d.domains = dom;
    if (nf_flow_create(&f, &d) != NF_OK) return 0;
    if (nf_flow_save(f, buf, cap, &n) != NF_OK) n = 0;
    nf_flow_destroy(f);
    return n;
}
