/* mpi_train: data-parallel training of an amortized posterior on many processes (MPI).

   The model of examples/ringdown.c: a black-hole ringdown h(t) = A exp(-t/tau) cos(2 pi f t)
   in white Gaussian noise, and a conditional flow q(theta | d) for theta = (A, f, tau)
   trained on simulated (theta, d) pairs. Here the simulations are split into shards, one
   per process; each process simulates and keeps only its own. Every training step:
     1. each process draws its share of the global minibatch from its shard and computes
        the loss and its gradient there (nf_trainer_loss_grad_ctx);
     2. the gradients are summed over the processes (MPI_Allreduce) and divided by their
        number: the mean of equal shares' mean gradients is the gradient of the whole
        minibatch;
     3. every process takes the same AdamW step from that gradient (nf_trainer_apply).
   The parameters are never sent during training, yet stay identical on every process (a
   checksum is compared after every step). Three things must agree before the first step:
   the standardisation (mean and sd of all shards together: sums reduced with
   MPI_Allreduce, two passes, in double), the ActNorm initialisation (every process
   initialises on the same rows, rank 0's first ones) and the initial weights (broadcast
   from rank 0).

   Simulation i is seeded by i (and --seed) alone, so the simulations do not depend on the
   number of processes: 4 processes train on the same 200,000 simulations as 1 (the
   minibatches differ).

   Build and run (Debian: apt-get install libopenmpi-dev openmpi-bin):
       mpicc -DNFLOW_MPI -std=c99 -O3 -march=native examples/mpi_train.c -o build/mpi_train -lm
       mpirun -np 4 build/mpi_train --save ringdown.nflw
   Without NFLOW_MPI any C99 compiler builds it and it runs as one process.

   Usage: mpi_train [--quick] [--sims N] [--batch B] [--steps S] [--shards S] [--act relu|tanh]
                    [--seed N] [--time] [--save FILE] [--compare FILE] [--out DIR]
     --sims N        training simulations in all (200000; 8192 with --quick); N/10 more
                     are held out to measure the NLL
     --batch B       rows of the global minibatch (512; 256 with --quick), B/S per shard
     --steps S       Adam steps (4000; 150 with --quick), cosine learning-rate decay
     --shards S      split the simulations into S shards (default: one per process); a
                     process holds S/P of them and its minibatch is the union of their
                     shares. One process with --shards 2 takes the steps 2 processes
                     take, on one combined minibatch: the reference of tests/mpi/run.sh
     --act A         the couplings' activation: relu (default, as ringdown.c) or tanh. In
                     float, runs that add the same gradients in another order (2 processes
                     against 1) drift apart with ReLU: an input within rounding of 0 turns
                     a row's gradient on or off. With tanh they agree to rounding
     --seed N        simulations, initial weights and minibatch draws (1)
     --time          seconds per step (gradient, allreduce, Adam), then stop
     --save FILE     rank 0 writes the trained model (an nflow model file)
     --compare FILE  after training, compare with the model in FILE (parameters,
                     standardisation, held-out NLL): "ok"/"FAIL" lines
     --out DIR       accepted for uniformity with the other examples (writes nothing)
   Checks print "ok name (detail)" or "FAIL name (detail)"; the exit status is 1 if any
   failed. */
#define _POSIX_C_SOURCE 199309L
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef NFLOW_MPI
#include <mpi.h>
#ifdef NFLOW_DOUBLE
#define MPI_NF_REAL MPI_DOUBLE   /* nf_real's MPI type */
#else
#define MPI_NF_REAL MPI_FLOAT
#endif
#endif

#define K 40            /* data samples per simulation (the context) */
#define FS 100.0
#define SIGMA 0.4
#define NPAR 3
#define PI 3.14159265358979323846
/* Tolerances of the checks, 2 processes against one process on the combined minibatch
   (--quick, seeds 1-20; the worst measured in parentheses). Double: every difference is
   rounding (~1e-15). Float: the gradient is the same up to rounding (3.4e-6 of the largest
   component); the trained weights agree to rounding with tanh (parameters 7.5e-7, held-out
   NLL 3.6e-7) but drift apart with ReLU (1.5e-3, 6e-6: see --act). */
#ifdef NFLOW_DOUBLE
#define GRAD_TOL 1e-12    /* of the largest gradient component */
#define STD_TOL 1e-12     /* of the standard deviation */
#define PARAM_TOL(act) ((void)(act), 1e-12)
#define NLL_TOL(act) ((void)(act), 1e-12)
#else
#define GRAD_TOL 1e-4
#define STD_TOL 1e-6
#define PARAM_TOL(act) ((act) == NF_ACT_TANH ? 1e-5 : 1e-2)
#define NLL_TOL(act) ((act) == NF_ACT_TANH ? 5e-6 : 1e-4)
#endif
static const double LO[NPAR] = {0.5, 5.0, 0.05}, HI[NPAR] = {2.0, 15.0, 0.30};   /* A, f (Hz), tau (s) */

/* ---- the few collectives training needs; without NFLOW_MPI one process, and they do nothing */
static int g_rank = 0, g_size = 1;
static void comm_init(int *argc, char ***argv) {
#ifdef NFLOW_MPI
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
#else
    (void)argc; (void)argv;
#endif
}
static void comm_end(void) {
#ifdef NFLOW_MPI
    MPI_Finalize();
#endif
}
/* a fatal error on one process must stop them all: the others would wait in a collective */
static void die(const char *what, const char *why) {
    fprintf(stderr, "mpi_train (rank %d): %s: %s\n", g_rank, what, why);
#ifdef NFLOW_MPI
    if (g_size > 1) MPI_Abort(MPI_COMM_WORLD, 1);
    MPI_Finalize();
#endif
    exit(1);
}
static double wall(void) {
#ifdef NFLOW_MPI
    return MPI_Wtime();
#else
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
#endif
}
/* x <- the sum of x over all processes, in place (counts are int: big arrays go in pieces) */
static void sum_reals(nf_real *x, size_t n) {
#ifdef NFLOW_MPI
    while (n > 0) {
        int c = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        MPI_Allreduce(MPI_IN_PLACE, x, c, MPI_NF_REAL, MPI_SUM, MPI_COMM_WORLD);
        x += c; n -= (size_t)c;
    }
#else
    (void)x; (void)n;
#endif
}
static void sum_doubles(double *x, int n) {
#ifdef NFLOW_MPI
    MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
#else
    (void)x; (void)n;
#endif
}
static void bcast_reals(nf_real *x, size_t n) {   /* from rank 0 */
#ifdef NFLOW_MPI
    while (n > 0) {
        int c = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        MPI_Bcast(x, c, MPI_NF_REAL, 0, MPI_COMM_WORLD);
        x += c; n -= (size_t)c;
    }
#else
    (void)x; (void)n;
#endif
}
/* 1 on every process if every process passed the same h: the max of h and of ~h give the
   max and the min of h in one reduction */
static int all_same(uint64_t h) {
#ifdef NFLOW_MPI
    unsigned long long v[2]; v[0] = h; v[1] = ~h;
    MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    return v[0] == (unsigned long long)~v[1];
#else
    (void)h; return 1;
#endif
}
static void barrier(void) {
#ifdef NFLOW_MPI
    MPI_Barrier(MPI_COMM_WORLD);
#endif
}
static int all_ok(int ok) {   /* logical and over the processes */
#ifdef NFLOW_MPI
    MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
#endif
    return ok;
}

/* ---- simulations ----------------------------------------------------------------------- */
static uint64_t mix64(uint64_t x) {   /* splitmix64's finaliser: simulation i's seed */
    x += 0x9e3779b97f4a7c15ULL; x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL; x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}
/* simulation i: theta from the uniform prior (strictly inside the box in nf_real, as the
   flow's domains require), then the ringdown plus noise */
static uint64_t g_seed = 1;
static void simulate(uint64_t i, nf_real *th, nf_real *d) {
    nf_rng r; double t[NPAR]; int j, k, inside;
    nf_rng_seed(&r, mix64(i ^ (g_seed << 40)));
    do {
        for (inside = 1, j = 0; j < NPAR; ++j) {
            t[j] = LO[j] + (HI[j] - LO[j]) * (double)nf_rng_uniform(&r);
            th[j] = (nf_real)t[j];
            inside &= th[j] > (nf_real)LO[j] && th[j] < (nf_real)HI[j];
        }
    } while (!inside);
    for (k = 0; k < K; ++k) {
        double tk = k / FS;
        d[k] = (nf_real)(t[0] * exp(-tk / t[2]) * cos(2 * PI * t[1] * tk) + SIGMA * (double)nf_rng_normal(&r));
    }
}

/* One shard: a contiguous range of the training simulations, then its range of the
   held-out ones; minibatches walk its training rows in a shuffled order, reshuffled after
   each pass. */
typedef struct shard {
    size_t n, nv;          /* training and held-out rows */
    nf_real *th, *d;       /* (n + nv) x NPAR and (n + nv) x K; held-out rows last */
    size_t *order, pos;
    nf_rng rng;            /* this shard's minibatch draws */
} shard;

static void shuffle(size_t *idx, size_t n, nf_rng *r) {
    size_t i;
    for (i = n; i > 1; --i) { size_t k = (size_t)(nf_rng_u32(r) % (uint32_t)i), t = idx[i - 1]; idx[i - 1] = idx[k]; idx[k] = t; }
}
/* shard s of S: training simulations [s N / S, (s + 1) N / S), held-out ones N + [s V / S, (s + 1) V / S) */
static void shard_make(shard *sh, int s, int S, size_t N, size_t V) {
    size_t a = N * (size_t)s / (size_t)S, b = N * (size_t)(s + 1) / (size_t)S;
    size_t va = V * (size_t)s / (size_t)S, vb = V * (size_t)(s + 1) / (size_t)S, i;
    sh->n = b - a; sh->nv = vb - va; sh->pos = 0;
    sh->th = (nf_real *)malloc((sh->n + sh->nv) * NPAR * sizeof(nf_real));
    sh->d = (nf_real *)malloc((sh->n + sh->nv) * K * sizeof(nf_real));
    sh->order = (size_t *)malloc(sh->n * sizeof(size_t));
    if (!sh->th || !sh->d || !sh->order) die("shard", "out of memory");
    for (i = 0; i < sh->n; ++i) { simulate(a + i, sh->th + i * NPAR, sh->d + i * K); sh->order[i] = i; }
    for (i = 0; i < sh->nv; ++i) simulate(N + va + i, sh->th + (sh->n + i) * NPAR, sh->d + (sh->n + i) * K);
    nf_rng_seed(&sh->rng, mix64((g_seed << 40) ^ (1000u + (uint64_t)s)));
    shuffle(sh->order, sh->n, &sh->rng);
}
static void shard_free(shard *sh) { free(sh->th); free(sh->d); free(sh->order); }
/* the next b rows of the shard's order into th (b x NPAR) and d (b x K) */
static void shard_batch(shard *sh, size_t b, nf_real *th, nf_real *d) {
    size_t k;
    for (k = 0; k < b; ++k) {
        size_t i;
        if (sh->pos == sh->n) { shuffle(sh->order, sh->n, &sh->rng); sh->pos = 0; }
        i = sh->order[sh->pos++];
        memcpy(th + k * NPAR, sh->th + i * NPAR, NPAR * sizeof(nf_real));
        memcpy(d + k * K, sh->d + i * K, K * sizeof(nf_real));
    }
}

/* ---- what must agree before training ----------------------------------------------------- */
/* The flow's standardisation from every shard's training rows: theta after the interval
   domain's map u = log(y - lo) - log(hi - y) (the flow standardises u), the data as they
   are. Two passes in double; each shard's sums are formed apart and then added, so one
   process holding two shards adds the same numbers two processes do. */
#define NCOL (NPAR + K)
static double column(const shard *sh, size_t i, int j) {
    double y;
    if (j >= NPAR) return (double)sh->d[i * K + (j - NPAR)];
    y = (double)sh->th[i * NPAR + j];
    return log(y - LO[j]) - log(HI[j] - y);
}
static void global_standardization(nf_flow *f, const shard *sh, int m) {
    double tot[NCOL + 1], mean[NCOL], n; nf_real mu[NCOL], sd[NCOL]; int s, j, pass; size_t i; nf_result r;
    for (pass = 0; pass < 2; ++pass) {
        memset(tot, 0, sizeof tot);
        for (s = 0; s < m; ++s) {
            double part[NCOL];
            memset(part, 0, sizeof part);
            for (i = 0; i < sh[s].n; ++i)
                for (j = 0; j < NCOL; ++j) {
                    double v = column(&sh[s], i, j);
                    part[j] += pass == 0 ? v : (v - mean[j]) * (v - mean[j]);
                }
            for (j = 0; j < NCOL; ++j) tot[j] += part[j];
            tot[NCOL] += (double)sh[s].n;
        }
        sum_doubles(tot, NCOL + 1);
        n = tot[NCOL];
        for (j = 0; j < NCOL; ++j) {
            if (pass == 0) mean[j] = tot[j] / n;
            else { mu[j] = (nf_real)mean[j]; sd[j] = (nf_real)sqrt(tot[j] / n); }
        }
    }
    if ((r = nf_flow_set_standardization(f, mu, sd)) != NF_OK) die("standardisation", nf_flow_error(f));
}
/* ActNorm: every process initialises from the same rows (rank 0's first b, broadcast), so
   every flow records its ActNorm layers as initialised; then rank 0's weights are
   broadcast, so all processes start bit-identical whatever their libm. */
static void same_start(nf_flow *f, const shard *first, size_t b) {
    nf_real *th = (nf_real *)malloc(b * (NPAR + K) * sizeof(nf_real)), *d = th + b * NPAR; nf_result r;
    if (!th) die("ActNorm initialisation", "out of memory");
    if (g_rank == 0) { memcpy(th, first->th, b * NPAR * sizeof(nf_real)); memcpy(d, first->d, b * K * sizeof(nf_real)); }
    bcast_reals(th, b * (NPAR + K));
    if ((r = nf_flow_data_init(f, th, d, b)) != NF_OK) die("ActNorm initialisation", nf_flow_error(f));
    bcast_reals(nf_flow_params(f), nf_flow_num_params(f));
    free(th);
}

/* held-out NLL in nats per simulation, over every shard's held-out rows (collective) */
static double heldout_nll(nf_flow *f, const shard *sh, int m) {
    enum { CH = 1024 }; static nf_real lp[CH]; double a[2] = {0, 0}; int s; size_t i, k;
    for (s = 0; s < m; ++s) {
        double part = 0;
        for (i = 0; i < sh[s].nv; i += CH) {
            size_t R = sh[s].nv - i < CH ? sh[s].nv - i : CH, row = sh[s].n + i; nf_result r;
            r = nf_flow_log_prob_ctx(f, sh[s].th + row * NPAR, R, sh[s].d + row * K, R, lp);
            if (r != NF_OK) die("held-out log-density", nf_flow_error(f));
            for (k = 0; k < R; ++k) part -= (double)lp[k];
        }
        a[0] += part; a[1] += (double)sh[s].nv;
    }
    sum_doubles(a, 2);
    return a[0] / a[1];
}

static void describe(nf_flow_desc *d, nf_domain *dom, int blocks, int hidden, int act) {
    int i, j;
    memset(dom, 0, NPAR * sizeof *dom);
    for (j = 0; j < NPAR; ++j) { dom[j].kind = NF_DOMAIN_INTERVAL; dom[j].lo = LO[j]; dom[j].hi = HI[j]; }
    nf_flow_desc_init(d, NPAR); d->context_dim = K; d->domains = dom;
    for (i = 0; i < blocks; ++i) {   /* ActNorm, affine coupling, fixed permutation */
        nf_layer_desc l; memset(&l, 0, sizeof l);
        l.kind = NF_LAYER_ACTNORM; nf_flow_desc_add(d, &l);
        l.kind = NF_LAYER_AFFINE_COUPLING; l.hidden = hidden; l.activation = act;
        l.parity = i & 1; l.mask = (i >> 1) & 1; nf_flow_desc_add(d, &l);
        l.kind = NF_LAYER_PERMUTE; l.seed = (uint32_t)i; nf_flow_desc_add(d, &l);
    }
}

/* A checksum of the parameter bytes, compared across processes after every step: FNV-1a
   over 4-byte words (each step is a bijection of the state, so one differing word always
   shows). 0.2 ms for the full model's 715 KB, where nf_crc32 (bit by bit) takes 7.7 ms. */
static uint64_t params_hash(nf_flow *f) {
    const unsigned char *p = (const unsigned char *)nf_flow_params(f);
    size_t n = nf_flow_num_params(f) * sizeof(nf_real), i; uint64_t h = 0xcbf29ce484222325ULL;
    for (i = 0; i + 4 <= n; i += 4) { uint32_t w; memcpy(&w, p + i, 4); h = (h ^ w) * 0x100000001b3ULL; }
    for (; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* The heart of it: every process's gradient becomes the mean of all of theirs. Each
   process's is the mean over its equal share of the minibatch, so the mean of the means is
   the gradient of the whole minibatch. */
static void average_gradient(nf_trainer *tr, size_t np) {
    nf_real *g = nf_trainer_grad(tr); size_t i;
    sum_reals(g, np);
    for (i = 0; i < np; ++i) g[i] /= (nf_real)g_size;
}

/* ---- one data-parallel step -------------------------------------------------------------- */
typedef struct step_times { double grad, grad_cpu, allreduce, adam; } step_times;   /* seconds */
/* Draws this process's minibatch (b rows from each of its m shards, into th and d), then
   gradient, allreduce, Adam. Returns the local minibatch's loss (NaN if it failed). A
   process whose minibatch fails poisons the sum with NaN, so every process refuses the
   same step: *applied is the same everywhere, and no process is left waiting. */
static double step(nf_trainer *tr, nf_flow *f, shard *sh, int m, size_t b, nf_real *th, nf_real *d,
                   int *applied, step_times *tm) {
    nf_real *g = nf_trainer_grad(tr); size_t np = nf_flow_num_params(f), i; double loss = 0, t0, t1, t2;
    int s; nf_result r; clock_t c0;
    for (s = 0; s < m; ++s) shard_batch(&sh[s], b, th + (size_t)s * b * NPAR, d + (size_t)s * b * K);
    t0 = wall(); c0 = clock();
    r = nf_trainer_loss_grad_ctx(tr, th, d, NULL, (size_t)m * b, &loss);
    c0 = clock() - c0;
    if (r != NF_OK) {
        fprintf(stderr, "mpi_train (rank %d): minibatch after %ld Adam steps: %s (the step is skipped on every process)\n",
                g_rank, nf_trainer_steps(tr), nf_flow_error(f));
        for (i = 0; i < np; ++i) g[i] = (nf_real)NAN;
        loss = NAN;
    }
    t1 = wall();
    average_gradient(tr, np);
    t2 = wall();
    *applied = nf_trainer_apply(tr) == NF_OK;
    if (tm) {
        tm->grad += t1 - t0; tm->grad_cpu += (double)c0 / CLOCKS_PER_SEC;
        tm->allreduce += t2 - t1; tm->adam += wall() - t2;
    }
    return loss;
}

static int g_pass = 0, g_fail = 0;
static void check(int ok, const char *name, const char *detail) {
    if (ok) g_pass++; else g_fail++;
    if (g_rank == 0) printf("%s %s (%s)\n", ok ? "ok" : "FAIL", name, detail);
}

/* The claim itself, checked once before training when there are several processes: the
   gradient averaged over the processes equals the gradient of their minibatches put
   together. Each shard's first b rows are gathered on rank 0, which computes the whole
   minibatch's gradient with a second trainer. Float sums in another order agree to a few
   units of rounding; a sum instead of a mean, or a missing share, is off by a factor.
   (Before any Adam step: only the gradient array moves.) */
static void check_gradient(nf_trainer *tr, nf_flow *f, const shard *sh, int m, size_t b, int S) {
    size_t np = nf_flow_num_params(f), rows = (size_t)m * b, i, s;
    nf_real *mine, *all = NULL, *g = nf_trainer_grad(tr);
    double err = 0, gmax = 0; int ok = 1; char msg[200];
    if (g_size == 1) return;   /* one process: the same rows, the same gradient */
    mine = (nf_real *)malloc(rows * (NPAR + K) * sizeof(nf_real));
    if (!mine) die("gradient check", "out of memory");
    for (s = 0; s < (size_t)m; ++s) {
        memcpy(mine + s * b * NPAR, sh[s].th, b * NPAR * sizeof(nf_real));
        memcpy(mine + rows * NPAR + s * b * K, sh[s].d, b * K * sizeof(nf_real));
    }
    if (nf_trainer_loss_grad_ctx(tr, mine, mine + rows * NPAR, NULL, rows, NULL) != NF_OK)
        die("gradient check", nf_flow_error(f));
    average_gradient(tr, np);
    if (g_rank == 0) {
        all = (nf_real *)malloc((size_t)S * b * (NPAR + K) * sizeof(nf_real));
        if (!all) die("gradient check", "out of memory");
    }
#ifdef NFLOW_MPI
    if (rows * (NPAR + K) > (size_t)INT_MAX) die("gradient check", "minibatch too large to gather");
    MPI_Gather(mine, (int)(rows * (NPAR + K)), MPI_NF_REAL,
               all, (int)(rows * (NPAR + K)), MPI_NF_REAL, 0, MPI_COMM_WORLD);
#else
    memcpy(all, mine, rows * (NPAR + K) * sizeof(nf_real));
#endif
    if (g_rank == 0) {   /* process p's block: its theta rows, then its data rows; into one theta and one data array */
        size_t n = (size_t)S * b, p, P = (size_t)g_size; nf_real *th, *d; nf_trainer *t2;
        th = (nf_real *)malloc(n * (NPAR + K) * sizeof(nf_real));
        if (!th) die("gradient check", "out of memory");
        d = th + n * NPAR;
        for (p = 0; p < P; ++p) {
            memcpy(th + p * rows * NPAR, all + p * rows * (NPAR + K), rows * NPAR * sizeof(nf_real));
            memcpy(d + p * rows * K, all + p * rows * (NPAR + K) + rows * NPAR, rows * K * sizeof(nf_real));
        }
        if (nf_trainer_create(&t2, f, NULL, n) != NF_OK || nf_trainer_loss_grad_ctx(t2, th, d, NULL, n, NULL) != NF_OK)
            die("gradient check", nf_flow_error(f));
        for (i = 0; i < np; ++i) {
            double e = fabs((double)g[i] - (double)nf_trainer_grad(t2)[i]);
            if (e > err) err = e;
            if (fabs((double)nf_trainer_grad(t2)[i]) > gmax) gmax = fabs((double)nf_trainer_grad(t2)[i]);
        }
        ok = err <= GRAD_TOL * gmax;
        nf_trainer_destroy(t2); free(th); free(all);
    }
    free(mine);
    sprintf(msg, "on %lu rows: largest difference %.2g of the largest component %.3g; tolerance %.0e of it",
            (unsigned long)((size_t)S * b), err, gmax, GRAD_TOL);
    check(all_ok(ok), "averaged_gradient_is_the_whole_minibatch_gradient", msg);
}

/* --compare FILE: the model another run saved against this one (every process loads it) */
static void compare(nf_flow *f, const char *path, shard *sh, int m, double my_nll, int act) {
    FILE *fp = fopen(path, "rb"); nf_flow *o = NULL; nf_result r; char msg[256];
    nf_real mu[NCOL], sd[NCOL], omu[NCOL], osd[NCOL], *p = nf_flow_params(f), *q;
    double dp = 0, pmax = 0, ds = 0, nll; size_t i, np = nf_flow_num_params(f); int j;
    if (!fp) die(path, "cannot open");
    r = nf_flow_load_file(&o, fp);
    fclose(fp);
    if (r != NF_OK) die(path, nf_result_string(r));
    if (nf_flow_num_params(o) != np) die(path, "a different architecture");
    q = nf_flow_params(o);
    for (i = 0; i < np; ++i) {
        double e = fabs((double)p[i] - (double)q[i]);
        if (e > dp) dp = e;
        if (fabs((double)p[i]) > pmax) pmax = fabs((double)p[i]);
    }
    nf_flow_get_standardization(f, mu, sd); nf_flow_get_standardization(o, omu, osd);
    for (j = 0; j < NCOL; ++j) {
        double e = fabs((double)mu[j] - (double)omu[j]) / (double)sd[j] + fabs((double)sd[j] - (double)osd[j]) / (double)sd[j];
        if (e > ds) ds = e;
    }
    nll = heldout_nll(o, sh, m);
    sprintf(msg, "largest difference %.2g of the standard deviation; tolerance %.0e", ds, STD_TOL);
    check(ds <= STD_TOL, "same_standardisation", msg);
    sprintf(msg, "largest |difference| %.3g, largest |parameter| %.3g, %lu parameters; tolerance %.0e", dp, pmax, (unsigned long)np, PARAM_TOL(act));
    check(dp <= PARAM_TOL(act), "same_parameters", msg);
    sprintf(msg, "%.6f here, %.6f in %s: difference %.2g nats; tolerance %.0e", my_nll, nll, path, fabs(my_nll - nll), NLL_TOL(act));
    check(fabs(my_nll - nll) <= NLL_TOL(act), "same_heldout_nll", msg);
    nf_flow_destroy(o);
}

int main(int argc, char **argv) {
    int quick = 0, timing = 0, act = NF_ACT_RELU, S = 0, m, s, blocks, hidden, applied;
    long steps = -1, st, skipped = 0, bad_steps = 0;
    long sims = -1, batch = -1; const char *save = NULL, *against = NULL; size_t N, V, b; double t0, nll0, nll1;
    nf_flow_desc desc; nf_domain dom[NPAR]; nf_flow *f; nf_trainer *tr; nf_adam_config ac; shard *sh;
    nf_real *th, *d; step_times tm; char msg[256];
    comm_init(&argc, &argv);
    for (s = 1; s < argc; ++s) {
        if (!strcmp(argv[s], "--quick")) quick = 1;
        else if (!strcmp(argv[s], "--time")) timing = 1;
        else if (!strcmp(argv[s], "--sims") && s + 1 < argc) sims = atol(argv[++s]);
        else if (!strcmp(argv[s], "--batch") && s + 1 < argc) batch = atol(argv[++s]);
        else if (!strcmp(argv[s], "--steps") && s + 1 < argc) steps = atol(argv[++s]);
        else if (!strcmp(argv[s], "--shards") && s + 1 < argc) S = atoi(argv[++s]);
        else if (!strcmp(argv[s], "--act") && s + 1 < argc && (!strcmp(argv[s + 1], "relu") || !strcmp(argv[s + 1], "tanh")))
            act = !strcmp(argv[++s], "relu") ? NF_ACT_RELU : NF_ACT_TANH;
        else if (!strcmp(argv[s], "--seed") && s + 1 < argc) g_seed = (uint64_t)atol(argv[++s]);
        else if (!strcmp(argv[s], "--save") && s + 1 < argc) save = argv[++s];
        else if (!strcmp(argv[s], "--compare") && s + 1 < argc) against = argv[++s];
        else if (!strcmp(argv[s], "--out") && s + 1 < argc) ++s;   /* writes no files */
        else {
            if (g_rank == 0)
                fprintf(stderr, "usage: %s [--quick] [--sims N] [--batch B] [--steps S] [--shards S] [--act relu|tanh]\n"
                                "       [--seed N] [--time] [--save FILE] [--compare FILE] [--out DIR]\n", argv[0]);
            comm_end(); return 2;
        }
    }
    if (sims < 0) sims = quick ? 8192 : 200000;
    if (batch < 0) batch = quick ? 256 : 512;
    if (steps < 0) steps = timing ? 100 : quick ? 150 : 4000;
    if (S == 0) S = g_size;
    blocks = quick ? 4 : 8; hidden = quick ? 32 : 128;
    if (S < g_size || S % g_size) die("--shards", "must be a multiple of the number of processes");
    if (batch < S || batch % S) die("--batch", "must be a multiple of the number of shards");
    if (sims < 2L * S) die("--sims", "too few for the shards");
    N = (size_t)sims; V = N / 10; m = S / g_size; b = (size_t)batch / (size_t)S;

    /* this process's shards: simulated here, kept here */
    t0 = wall();
    sh = (shard *)malloc((size_t)m * sizeof(shard));
    th = (nf_real *)malloc((size_t)m * b * NPAR * sizeof(nf_real)); d = (nf_real *)malloc((size_t)m * b * K * sizeof(nf_real));
    if (!sh || !th || !d) die("buffers", "out of memory");
    for (s = 0; s < m; ++s) shard_make(&sh[s], g_rank * m + s, S, N, V);
    if (g_rank == 0) {
        if (g_size > 1)
            printf("mpi_train: %d processes; each simulated and keeps only its shard of the %lu simulations (~%lu). Every step\n"
                   "each one computes the gradient on %lu rows of its shard, MPI_Allreduce averages the %d gradients into the\n"
                   "gradient of the whole %ld-row minibatch, and all processes take the same Adam step.\n",
                   g_size, (unsigned long)N, (unsigned long)(N / (size_t)g_size), (unsigned long)((size_t)m * b), g_size, batch);
        else
            printf("mpi_train: 1 process holding %d shard%s of the %lu simulations, training on a %ld-row minibatch per step%s\n",
                   m, m > 1 ? "s" : "", (unsigned long)N, batch,
                   m > 1 ? " made of an equal share of each shard: the steps that many processes would take" : "");
        printf("simulated in %.1f s; model: ringdown, q(A, f, tau | %d data samples), %d x (ActNorm, affine coupling of width %d (%s), permutation)\n",
               wall() - t0, K, blocks, hidden, act == NF_ACT_RELU ? "ReLU" : "tanh");
    }
    describe(&desc, dom, blocks, hidden, act);
    desc.seed = g_seed;
    if (nf_flow_create(&f, &desc) != NF_OK) die("flow", "cannot create");
    global_standardization(f, sh, m);
    same_start(f, &sh[0], b);   /* rank 0 holds shard 0 */
    nf_adam_config_default(&ac);
    ac.lr = 1e-3; ac.schedule = NF_SCHED_COSINE; ac.total_steps = steps; ac.min_lr_frac = 0.02;
    if (nf_trainer_create(&tr, f, &ac, (size_t)m * b) != NF_OK) die("trainer", nf_flow_error(f));

    if (timing) {   /* a few steps to warm up, then the measured ones */
        double best = HUGE_VAL, ms = 1e3 / (double)steps;
        for (st = 0; st < 5; ++st) step(tr, f, sh, m, b, th, d, &applied, NULL);
        memset(&tm, 0, sizeof tm);
        t0 = wall();
        for (st = 0; st < steps; ++st) step(tr, f, sh, m, b, th, d, &applied, &tm);
        t0 = wall() - t0;
        for (st = 0; st < 20; ++st) {   /* the allreduce alone, every process ready: its cost without waiting */
            double t1;
            barrier();
            t1 = wall(); average_gradient(tr, nf_flow_num_params(f)); t1 = wall() - t1;
            if (t1 < best) best = t1;
        }
        if (g_rank == 0)
            printf("time: %d process%s, global batch %ld (%lu rows per process), %lu parameters, %ld steps: %.2f ms per step\n"
                   "  gradient %.2f ms (%.2f ms of CPU), MPI_Allreduce %.2f ms (waiting for the slowest process included;\n"
                   "  alone, best of 20: %.2f ms), Adam %.2f ms, minibatch copy %.2f ms\n",
                   g_size, g_size > 1 ? "es" : "", batch, (unsigned long)((size_t)m * b), (unsigned long)nf_flow_num_params(f), steps,
                   t0 * ms, tm.grad * ms, tm.grad_cpu * ms, tm.allreduce * ms, 1e3 * best, tm.adam * ms,
                   (t0 - tm.grad - tm.allreduce - tm.adam) * ms);
        nf_trainer_destroy(tr); nf_flow_destroy(f);
        for (s = 0; s < m; ++s) shard_free(&sh[s]);
        free(sh); free(th); free(d);
        comm_end();
        return 0;
    }

    check_gradient(tr, f, sh, m, b, S);
    nll0 = heldout_nll(f, sh, m);
    if (g_rank == 0) printf("held-out NLL before training: %.3f nats (%lu held-out simulations)\n", nll0, (unsigned long)V);
    if (!all_same(params_hash(f))) bad_steps++;
    memset(&tm, 0, sizeof tm);
    {
        double lsum[2] = {0, 0}, t1; long every = steps >= 10 ? steps / 10 : 1;
        t0 = 0;   /* seconds in training steps, evaluation and checks excluded */
        for (st = 1; st <= steps; ++st) {
            double l;
            t1 = wall();
            l = step(tr, f, sh, m, b, th, d, &applied, &tm);
            t0 += wall() - t1;
            if (!applied) skipped++;
            if (applied && !isnan(l)) { lsum[0] += l; lsum[1] += 1; }
            if (!all_same(params_hash(f))) bad_steps++;   /* the parameters' checksum, every step */
            if (st % every == 0 || st == steps) {
                double v = heldout_nll(f, sh, m);
                sum_doubles(lsum, 2);
                if (g_rank == 0)
                    printf("step %5ld  lr %.2e  training NLL %7.3f  held-out NLL %7.3f  (%.1f s)\n",
                           st, nf_adam_lr(&ac, st - 1), lsum[1] > 0 ? lsum[0] / lsum[1] : 0.0, v, t0);
                lsum[0] = lsum[1] = 0;
            }
        }
    }
    nll1 = heldout_nll(f, sh, m);
    if (g_rank == 0) {
        printf("%ld steps in %.1f s, %.1f ms per step", steps, t0, 1e3 * t0 / (double)steps);
        if (g_size > 1)
            printf(" (%.0f%% of it in MPI_Allreduce of %lu gradient values, waiting for the slowest process included)",
                   100.0 * tm.allreduce / t0, (unsigned long)nf_flow_num_params(f));
        printf("; held-out NLL %.3f -> %.3f nats\n", nll0, nll1);
    }
    sprintf(msg, "checksum of the parameters compared on %d process%s before the first step and after each of %ld: %ld differed",
            g_size, g_size > 1 ? "es" : "", steps, bad_steps);
    if (g_size > 1) check(bad_steps == 0, "parameters_identical_on_every_process", msg);
    sprintf(msg, "%.3f -> %.3f nats over %lu held-out simulations after %ld steps, %ld skipped; must fall by 1 nat, none skipped",
            nll0, nll1, (unsigned long)V, steps, skipped);
    check(nll1 < nll0 - 1.0 && skipped == 0, "heldout_nll_improves", msg);
    if (save && g_rank == 0) {
        FILE *fp = fopen(save, "wb");
        if (!fp || nf_flow_save_file(f, fp) != NF_OK || fclose(fp) != 0) die(save, "cannot write the model");
        printf("rank 0 wrote the trained model to %s\n", save);
    }
    if (against) compare(f, against, sh, m, nll1, act);
    nf_trainer_destroy(tr); nf_flow_destroy(f);
    for (s = 0; s < m; ++s) shard_free(&sh[s]);
    free(sh); free(th); free(d);
    s = all_ok(g_fail == 0);
    comm_end();
    return s ? 0 : 1;
}
