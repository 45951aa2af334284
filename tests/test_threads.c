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
#include <math.h>

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

enum { N = 1024 };
static nf_real y[N * 4], ctx[N * 2], wts[N];

/* everything a flow computes, as one byte string: log_prob, sample, forward, inverse, and
   the parameters after 6 training steps (batches of 1024, 601 weighted and 300 rows) */
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
    /* an odd batch with weights (two shards), and one too small to shard */
    if (e == NF_OK) e = nf_train_step_ctx(t, y, c, wts, 601, NULL);
    if (e == NF_OK) e = nf_train_step_ctx(t, y + 4 * 7, c ? c + 2 * 7 : NULL, NULL, 300, NULL);
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
    for (i = 0; i < N; ++i) wts[i] = nf_rng_uniform(&r) + (nf_real)0.1;
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
        /* every form large enough to be cut (NF__PAR_MIN multiply-adds) */
        static nf_real A[257 * 4200], B[300 * 300], C1[300 * 300], C2[300 * 300];
        int ta, tb, acc, bad = 0;
        for (i = 0; i < 257 * 4200; ++i) A[i] = nf_rng_normal(&r);
        for (i = 0; i < 300 * 300; ++i) { B[i] = nf_rng_normal(&r); C1[i] = nf_rng_normal(&r); }
        for (p = 0; p < np; ++p)
            for (ta = 0; ta < 2; ++ta) for (tb = 0; tb < 2; ++tb) for (acc = 0; acc < 2; ++acc) {
                int M = 257, Nn = tb ? 8 : 131, K = tb ? 4200 : 290;
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
    {   /* rows in parallel: row counts that do not divide into chunks or threads, rows
           outside the domain (-inf) and the error's row, the same with any threads */
        static const size_t ns[5] = {1, 7, 255, 1001, 3000};
        static nf_real yy[3000 * 4], lp1[3000], lp2[3000], z1[3000 * 4], z2[3000 * 4];
        nf_flow_desc d; nf_domain dom[4]; nf_flow *f; int bad = 0, split = 0, q;
        memset(dom, 0, sizeof dom);
        dom[1].kind = NF_DOMAIN_LOWER; dom[1].lo = -3;   /* rows with y1 <= -3 are outside */
        nf_flow_desc_realnvp(&d, 4, 4, 256); d.domains = dom;
        for (i = 0; i < 3000 * 4; ++i) yy[i] = nf_rng_normal(&r);
        if (nf_flow_create(&f, &d) != NF_OK) bad = 1000;
        else {
            for (p = 0; p < np && !bad; ++p)
                for (q = 0; q < 5 && !bad; ++q) {
                    size_t n = ns[q]; nf_result e1, e2; long row1, row2;
                    nf_flow_set_parallel(f, NULL, NULL, 1);
                    e1 = nf_flow_log_prob(f, yy, n, lp1); row1 = nf_flow_error_row(f);
                    nf_flow_set_parallel(f, pars[p].run, pars[p].pool, pars[p].threads);
                    g_calls = 0;
                    e2 = nf_flow_log_prob(f, yy, n, lp2); row2 = nf_flow_error_row(f);
                    split += g_calls > 0;
                    if (e1 != NF_OK || e2 != NF_OK || row1 != row2 || memcmp(lp1, lp2, n * sizeof(nf_real))) bad = 1 + q;
                    /* forward refuses the first row outside the domain, whichever task finds it */
                    nf_flow_set_parallel(f, NULL, NULL, 1);
                    e1 = nf_flow_forward(f, yy, n, z1, NULL); row1 = nf_flow_error_row(f);
                    nf_flow_set_parallel(f, pars[p].run, pars[p].pool, pars[p].threads);
                    e2 = nf_flow_forward(f, yy, n, z2, NULL); row2 = nf_flow_error_row(f);
                    if (e1 != e2 || row1 != row2 || (e1 == NF_OK && memcmp(z1, z2, n * 4 * sizeof(nf_real)))) bad = 10 + q;
                }
            /* the data has rows outside the domain: log_prob's -inf, forward's error row */
            {   size_t k, first = 3000; int outside = 0;
                for (k = 0; k < 3000; ++k) if (yy[k * 4 + 1] <= -3) { if (first == 3000) first = k; ++outside; }
                nf_flow_set_parallel(f, pars[1].run, NULL, 2);
                if (!outside || nf_flow_forward(f, yy, 3000, z2, NULL) != NF_ERR_ARG || nf_flow_error_row(f) != (long)first) bad = 100;
                nf_flow_log_prob(f, yy, 3000, lp2);
                for (k = 0; k < 3000; ++k) if ((yy[k * 4 + 1] <= -3) != (lp2[k] == (nf_real)-HUGE_VAL)) bad = 101;
            }
            nf_flow_destroy(f);
        }
        check(!bad && split > 0, "rows_in_parallel_odd_counts_domains_and_error_rows_bit_identical", bad ? "differs" : "nothing was split");
    }
    {   /* a batch of 2 x 256 rows or more is two shards: its loss and gradient are the
           (weighted) means of those of four unsharded quarters, up to rounding; an NSF
           stack (LU layers: log-dets that do not depend on rows, counted once) with
           context, unweighted and weighted */
        nf_flow_desc d; nf_flow *f; nf_trainer *t; int wtd, bad = 0; double worst = 0, lworst = 0;
        static nf_real gs[1 << 18], gq[1 << 18];
        nf_flow_desc_nsf(&d, 4, 3, 64, 8); d.context_dim = 2;
        if (nf_flow_create(&f, &d) != NF_OK || nf_trainer_create(&t, f, NULL, 800) != NF_OK) bad = 1;
        else {
            size_t np = nf_flow_num_params(f), j;
            for (wtd = 0; wtd < 2 && !bad; ++wtd) {
                double L, Lq = 0, Wt = 0, Wk[4], Lk, gmax = 0;
                const nf_real *wv = wtd ? wts : NULL;
                for (k = 0; k < 800; ++k) Wt += wv ? (double)wv[k] : 1.0;
                if (np > (1 << 18) || nf_trainer_loss_grad_ctx(t, y, ctx, wv, 800, &L) != NF_OK) { bad = 2; break; }
                memcpy(gs, nf_trainer_grad(t), np * sizeof(nf_real));
                for (j = 0; j < np; ++j) gq[j] = 0;
                for (k = 0; k < 4 && !bad; ++k) {
                    int q2; Wk[k] = 0;
                    for (q2 = 0; q2 < 200; ++q2) Wk[k] += wv ? (double)wv[k * 200 + q2] : 1.0;
                    if (nf_trainer_loss_grad_ctx(t, y + 4 * 200 * k, ctx + 2 * 200 * k, wv ? wv + 200 * k : NULL, 200, &Lk) != NF_OK) { bad = 3; break; }
                    Lq += Wk[k] / Wt * Lk;
                    for (j = 0; j < np; ++j) gq[j] += (nf_real)(Wk[k] / Wt) * nf_trainer_grad(t)[j];
                }
                for (j = 0; j < np; ++j) if (fabs((double)gq[j]) > gmax) gmax = fabs((double)gq[j]);
                for (j = 0; j < np; ++j) {
                    double e = fabs((double)gs[j] - (double)gq[j]) / (gmax > 0 ? gmax : 1);
                    if (e > worst) worst = e;
                }
                if (fabs(L - Lq) > lworst) lworst = fabs(L - Lq);
            }
            nf_trainer_destroy(t); nf_flow_destroy(f);
        }
        {   char det[96]; sprintf(det, "bad %d, gradient rel. error %.2g, loss error %.2g", bad, worst, lworst);
            printf("# shard check: %s\n", det); check(!bad && worst < (sizeof(nf_real) == 4 ? 1e-4 : 1e-10) && lworst < (sizeof(nf_real) == 4 ? 1e-4 : 1e-10),
                  "two_shards_equal_the_mean_of_unsharded_quarters", det); }
    }
    printf("# %d passed, %d failed\n", g_pass, g_fail);
    return g_fail != 0;
}
