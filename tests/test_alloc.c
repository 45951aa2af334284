/* Every allocation site fails in turn: a counting allocator refuses the k-th request
   for k = 0, 1, 2, ... until a whole scenario succeeds. Each failure must come back
   as an error (never a crash) and leave no block allocated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static long g_calls, g_fail_at = -1, g_live;
static void *t_malloc(size_t n) {
    if (g_calls++ == g_fail_at) return NULL;
    g_live++;
    return malloc(n);
}
static void t_free(void *p) { if (p) { g_live--; free(p); } }
static void *t_realloc(void *p, size_t n) {
    if (g_calls++ == g_fail_at) return NULL;   /* on failure the old block stays live */
    if (!p) g_live++;
    return realloc(p, n);
}
#define NF_MALLOC(sz, u) ((void)(u), t_malloc(sz))
#define NF_FREE(p, u) ((void)(u), t_free(p))
#define NF_REALLOC(p, sz, u) ((void)(u), t_realloc(p, sz))
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"

static int g_pass, g_fail;

/* Everything that allocates: arena, flow, trainer (with its arena sizing), a training
   step, fit, and the two self-checks. Returns the first error, cleaning up on the way. */
static nf_result scenario(void) {
    nf_arena a; nf_flow_desc d; nf_flow *f = NULL; nf_trainer *t = NULL; nf_result r;
    nf_real y[64 * 2]; nf_fit_options o; double e, loss; int i; nf_layer_desc l;
    for (i = 0; i < 128; ++i) y[i] = (nf_real)((i * 37 % 17) * 0.1);
    if ((r = nf_arena_create(&a, 1000, NULL)) != NF_OK) return r;
    nf_arena_destroy(&a);
    nf_flow_desc_realnvp(&d, 2, 2, 8);
    memset(&l, 0, sizeof l); l.kind = NF_LAYER_ACTNORM; nf_flow_desc_add(&d, &l);
    if ((r = nf_flow_create(&f, &d)) != NF_OK) return r;
    if ((r = nf_trainer_create(&t, f, NULL, 32)) != NF_OK) goto out;
    if ((r = nf_train_step(t, y, NULL, 32, &loss)) != NF_OK) goto out;
    if ((r = nf_trainer_grad_check(t, y, 16, 1e-2, 4, &e)) != NF_OK) goto out;
    if ((r = nf_flow_logdet_error(f, y, 4, 1e-3, &e)) != NF_OK) goto out;
    nf_fit_options_default(&o); o.max_epochs = 2; o.batch = 16;
    if ((r = nf_fit(f, y, 64, NULL, &o, NULL)) != NF_OK) goto out;
    {   /* model files through memory and FILE* */
        unsigned char buf[4096]; size_t n; nf_flow *g = NULL, *big = NULL; FILE *fp = tmpfile();
        if ((r = nf_flow_save(f, buf, sizeof buf, &n)) != NF_OK) { if (fp) fclose(fp); goto out; }
        r = nf_flow_load(&g, buf, n);
        nf_flow_destroy(g); g = NULL;
        if (r == NF_OK && fp) {   /* a model over 64 KiB makes nf_flow_load_file grow its buffer */
            nf_flow_desc bd; nf_flow_desc_realnvp(&bd, 2, 4, 64);
            r = nf_flow_create(&big, &bd);
            if (r == NF_OK) r = nf_flow_save_file(big, fp);
            rewind(fp);
            if (r == NF_OK) { r = nf_flow_load_file(&g, fp); nf_flow_destroy(g); }
            nf_flow_destroy(big);
        }
        if (fp) fclose(fp);
    }
out:
    nf_trainer_destroy(t);
    nf_flow_destroy(f);
    return r;
}

int main(void) {
    long k, total; int clean = 1, all_nomem = 1; nf_result r;
    g_fail_at = -1; g_calls = 0;
    r = scenario();
    total = g_calls;
    if (r != NF_OK || g_live != 0) { printf("FAIL alloc_baseline: %s, %ld live\n", nf_result_string(r), g_live); return 1; }
    printf("ok alloc_baseline (%ld allocations)\n", total); g_pass++;
    for (k = 0; k < total; ++k) {
        g_calls = 0; g_live = 0; g_fail_at = k;
        r = scenario();
        if (g_live != 0) { clean = 0; printf("# leak when allocation %ld fails: %ld blocks\n", k, g_live); }
        if (r != NF_ERR_NOMEM) { all_nomem = 0; printf("# allocation %ld failing gave %s\n", k, nf_result_string(r)); }
    }
    if (clean) { g_pass++; printf("ok alloc_failure_no_leak_at_every_site (%ld sites)\n", total); }
    else { g_fail++; printf("FAIL alloc_failure_no_leak_at_every_site\n"); }
    if (all_nomem) { g_pass++; printf("ok alloc_failure_reports_nomem_at_every_site\n"); }
    else { g_fail++; printf("FAIL alloc_failure_reports_nomem_at_every_site\n"); }
    printf("# %d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
