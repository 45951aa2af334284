/* Threads change nothing but the time: every result computed with a parallel-for equals,
   bit for bit, the one-thread result. Three parallel-fors: one that runs the pieces in
   reverse order on one thread (any order must do), one on POSIX threads (2 workers, real
   concurrency), and, built with -fopenmp -DNFLOW_OPENMP, OpenMP's. Flows are wide enough
   (width 256, 512 rows) that the matrix products are split. */
#define _POSIX_C_SOURCE 200809L
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_pass, g_fail;
static void check(int ok, const char *name, const char *detail) {
    if (ok) { g_pass++; printf("ok %s\n", name); } else { g_fail++; printf("FAIL %s %s\n", name, detail ? detail : ""); }
}

static int g_calls;   /* how often a parallel-for was asked to split: the test must exercise it */
static void par_reverse(void *pool, int n, nf_task_fn task, void *arg) {
    int i; (void)pool; g_calls++;
    for (i = n - 1; i >= 0; --i) task(arg, i);
}
typedef struct { nf_task_fn task; void *arg; int n, first; } job;
static void *worker(void *p) {   /* tasks first, first + 2, ... */
    job *j = (job *)p; int i;
    for (i = j->first; i < j->n; i += 2) j->task(j->arg, i);
    return NULL;
}
static void par_pthreads(void *pool, int n, nf_task_fn task, void *arg) {
    pthread_t th; job a, b; (void)pool; g_calls++;
    a.task = b.task = task; a.arg = b.arg = arg; a.n = b.n = n; a.first = 0; b.first = 1;
    if (pthread_create(&th, NULL, worker, &b) != 0) { worker(&b); worker(&a); return; }
    worker(&a);
    pthread_join(th, NULL);
}

enum { N = 512 };
static nf_real y[N * 4], ctx[N * 2];

/* everything a flow computes, as one byte string: log_prob, sample, forward, inverse, and
   the parameters after 4 training steps */
typedef struct { nf_real lp[N], s[N * 4], sl[N], z[N * 4], zl[N], x[N * 4], p[1 << 20]; size_t np; } outs;
static int run(int kind, const nf_parallel *par, outs *o) {
    nf_flow_desc d; nf_flow *f; nf_trainer *t; nf_rng r; int k, D = 4, C = kind == 2 ? 2 : 0;
    nf_result e = NF_OK; const nf_real *c = C ? ctx : NULL;
    if (kind == 0) nf_flow_desc_realnvp(&d, D, 4, 256);
    else if (kind == 1) nf_flow_desc_nsf(&d, D, 3, 256, 8);
    else { nf_flow_desc_maf(&d, D, 3, 256, NF_TRANSFORM_AFFINE, 0); d.context_dim = C; }
    if (nf_flow_create(&f, &d) != NF_OK) return 0;
    if (par) nf_flow_set_parallel(f, par->run, par->pool, par->threads); else nf_flow_set_parallel(f, NULL, NULL, 1);
    if (nf_trainer_create(&t, f, NULL, N) != NF_OK) { nf_flow_destroy(f); return 0; }
    for (k = 0; k < 4 && e == NF_OK; ++k) e = nf_train_step_ctx(t, y, c, NULL, N, NULL);
    o->np = nf_flow_num_params(f);
    memcpy(o->p, nf_flow_params(f), o->np * sizeof(nf_real));
    if (e == NF_OK) e = nf_flow_log_prob_ctx(f, y, N, c, C ? N : 0, o->lp);
    nf_rng_seed(&r, 7);
    if (e == NF_OK) e = nf_flow_sample_ctx(f, &r, N, c, C ? N : 0, o->s, o->sl);
    if (e == NF_OK) e = nf_flow_forward_ctx(f, y, N, c, C ? N : 0, o->z, o->zl);
    if (e == NF_OK) e = nf_flow_inverse_ctx(f, o->z, N, c, C ? N : 0, o->x, NULL);
    nf_trainer_destroy(t); nf_flow_destroy(f);
    return e == NF_OK;
}
static int same(const outs *a, const outs *b) {
    return a->np == b->np && !memcmp(a->p, b->p, a->np * sizeof(nf_real)) && !memcmp(a->lp, b->lp, sizeof a->lp) &&
           !memcmp(a->s, b->s, sizeof a->s) && !memcmp(a->sl, b->sl, sizeof a->sl) && !memcmp(a->z, b->z, sizeof a->z) &&
           !memcmp(a->zl, b->zl, sizeof a->zl) && !memcmp(a->x, b->x, sizeof a->x);
}

int main(void) {
    static outs ref, got;
    static const char *kinds[3] = {"realnvp", "nsf", "maf_context"};
    nf_parallel pars[3]; const char *pname[3] = {"reverse_order", "pthreads", "openmp"}; int np = 2, k, p;
    nf_rng r; int i; char name[96];
    nf_rng_seed(&r, 1);
    for (i = 0; i < N * 4; ++i) y[i] = nf_rng_normal(&r);
    for (i = 0; i < N * 2; ++i) ctx[i] = nf_rng_normal(&r);
    pars[0].run = par_reverse; pars[0].pool = NULL; pars[0].threads = 3;
    pars[1].run = par_pthreads; pars[1].pool = NULL; pars[1].threads = 2;
#ifdef NFLOW_OPENMP
    pars[2].run = nf_parallel_openmp; pars[2].pool = NULL; pars[2].threads = omp_get_max_threads(); np = 3;
    {   nf_flow *f; nf_flow_desc d; nf_flow_desc_realnvp(&d, 2, 2, 8);
        check(nf_flow_create(&f, &d) == NF_OK && f->par.run == nf_parallel_openmp && f->par.threads == omp_get_max_threads(),
              "openmp_is_the_default_parallel_for", NULL);
        nf_flow_destroy(f); }
#endif
    {   /* the kernel alone: every form, rows split in pieces of whole tiles, accumulate or not */
        static nf_real A[300 * 300], B[300 * 300], C1[300 * 300], C2[300 * 300];
        int ta, tb, acc, bad = 0;
        for (i = 0; i < 300 * 300; ++i) { A[i] = nf_rng_normal(&r); B[i] = nf_rng_normal(&r); C1[i] = nf_rng_normal(&r); }
        for (p = 0; p < np; ++p)
            for (ta = 0; ta < 2; ++ta) for (tb = 0; tb < 2; ++tb) for (acc = 0; acc < 2; ++acc) {
                int M = 257, Nn = tb ? 8 : 131, K = 290;
                memcpy(C2, C1, sizeof C1);
                g_calls = 0;
                nf_gemm_parallel(&pars[p], ta, tb, M, Nn, K, A, ta ? M : K, B, tb ? K : Nn, C2, Nn, acc);
                nf_gemm(ta, tb, M, Nn, K, A, ta ? M : K, B, tb ? K : Nn, C1, Nn, acc);
                if (memcmp(C1, C2, sizeof C1) || (p < 2 && g_calls != 1)) bad++;
                memcpy(C1, C2, sizeof C1);
            }
        check(!bad, "gemm_parallel_equals_gemm_bitwise_every_form", NULL);
    }
    for (k = 0; k < 3; ++k) {
        int ok = run(k, NULL, &ref);
        sprintf(name, "%s_one_thread_runs", kinds[k]); check(ok, name, NULL);
        for (p = 0; p < np; ++p) {
            g_calls = 0;
            ok = run(k, &pars[p], &got);
            sprintf(name, "%s_%s_bit_identical_to_one_thread", kinds[k], pname[p]);
            check(ok && same(&ref, &got) && (p == 2 || g_calls > 0), name, ok ? "results differ (or nothing was split)" : "a call failed");
        }
    }
    printf("# %d passed, %d failed\n", g_pass, g_fail);
    return g_fail != 0;
}
