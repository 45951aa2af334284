/* Issue 18 item 1: an NFLOW_NO_DOMAINS build has identity stubs for the domain maps, so a
   model with a bounded parameter would load and compute wrong densities (log p of the
   half-line model at (0.5, 2) was -1.96 instead of -1.38, NF_OK). Such a file must be
   refused, naming the switch; models without domains still load. The models come from a
   full build linked beside this one (tests/nodomains_make.c).
   Item 6: with no flow to hold a message, nf_flow_load_check names the switch (a valid
   spline model in an NFLOW_NO_SPLINE build was NF_ERR_CORRUPT "model architecture
   inconsistent"); nf_flow_desc_check names the field of a bad description. */
#define NFLOW_STATIC
#define NFLOW_NO_DOMAINS
#define NFLOW_NO_SPLINE
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"
#include <stdio.h>
#include <string.h>

size_t nodomains_make_model(unsigned char *buf, size_t cap, int with_domain);
static int g_pass, g_fail;
static void check(int ok, const char *name, const char *why) {
    if (ok) { g_pass++; printf("ok %s\n", name); } else { g_fail++; printf("FAIL %s: %s\n", name, why ? why : ""); }
}

int main(void) {
    static unsigned char buf[1 << 16]; size_t n; nf_flow *f = NULL, *g = NULL; nf_flow_desc d; nf_domain dom[2]; nf_result r;
    n = nodomains_make_model(buf, sizeof buf, 1);
    if (n == 0) { check(0, "item1_model_written", NULL); return 1; }
    r = nf_flow_load(&f, buf, n);
    check(r == NF_ERR_UNSUPPORTED && f == NULL, "item1_no_domains_build_refuses_a_domain_model", nf_result_string(r));
    r = nf_flow_load_desc(buf, n, &d, dom, 2);
    check(r == NF_ERR_UNSUPPORTED, "item1_load_desc_refuses_too", nf_result_string(r));
    nf_flow_desc_realnvp(&d, 2, 2, 8);
    nf_flow_create(&g, &d);
    r = nf_flow_load_into(g, buf, n);
    check(r == NF_ERR_UNSUPPORTED && strstr(nf_flow_error(g), "NFLOW_NO_DOMAINS") != NULL, "item1_load_into_names_the_switch", nf_flow_error(g));
    n = nodomains_make_model(buf, sizeof buf, 0);
    r = nf_flow_load_into(g, buf, n);
    check(r == NF_OK, "item1_model_without_domains_still_loads", nf_flow_error(g));
    nf_flow_destroy(g);
    {   char msg[256]; nf_flow *h = NULL; nf_layer_desc l;
        n = nodomains_make_model(buf, sizeof buf, 1);
        r = nf_flow_load_check(buf, n, msg, sizeof msg);
        check(r == NF_ERR_UNSUPPORTED && strstr(msg, "NFLOW_NO_DOMAINS") && strstr(msg, "dimension 0"), "item6_load_check_names_no_domains", msg);
        n = nodomains_make_model(buf, sizeof buf, 2);
        r = nf_flow_load(&h, buf, n);
        check(r == NF_ERR_UNSUPPORTED && h == NULL, "item6_spline_model_in_no_spline_build_is_unsupported_not_corrupt", nf_result_string(r));
        r = nf_flow_load_check(buf, n, msg, sizeof msg);
        check(r == NF_ERR_UNSUPPORTED && strstr(msg, "NFLOW_NO_SPLINE") && strstr(msg, "layer "), "item6_load_check_names_no_spline", msg);
        buf[30] ^= 1;   /* a damaged file: still a message */
        r = nf_flow_load_check(buf, n, msg, sizeof msg);
        check(r != NF_OK && msg[0] != 0, "item6_load_check_damaged_file_has_a_message", msg);
        nf_flow_desc_realnvp(&d, 2, 2, 8);
        d.layers[0].hidden = -3;
        r = nf_flow_create(&h, &d);
        if (r != NF_ERR_ARG) snprintf(msg, sizeof msg, "nf_flow_create: %s", nf_result_string(r));
        check(r == NF_ERR_ARG && nf_flow_desc_check(&d, msg, sizeof msg) == r && strstr(msg, "layer 0") && strstr(msg, "hidden"),
              "item6_desc_check_names_layer_and_field", msg);
        nf_flow_desc_init(&d, 2); memset(&l, 0, sizeof l); l.kind = 999; nf_flow_desc_add(&d, &l);
        r = nf_flow_desc_check(&d, msg, sizeof msg);
        check(r == NF_ERR_ARG && strstr(msg, "unknown layer kind") && strstr(msg, "layer 0"), "item6_desc_check_unknown_kind", msg);
        nf_flow_desc_realnvp(&d, 2, 2, 8);
        check(nf_flow_desc_check(&d, msg, sizeof msg) == NF_OK && msg[0] == 0, "item6_desc_check_valid_is_ok", msg);
    }
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail != 0;
}
