/* nflow.h - v0.3.0 - normalizing flows in one C header.   MIT or public domain, see end.

   Do this:
       #define NFLOW_IMPLEMENTATION
   before you include this file in *one* C or C++ file to create the implementation.
   Everywhere else, include it without the define.

   QUICK START (trains a RealNVP on your data, then samples and evaluates it)

       #define NFLOW_IMPLEMENTATION
       #include "nflow.h"
       int main(void) {
           static float y[1000 * 2];                 // your data: n rows x dim
           for (int i = 0; i < 1000; ++i) { y[2*i] = (float)(i % 10); y[2*i+1] = (float)(i % 7) * 0.5f; }
           nf_flow_desc d;  nf_flow *f;  nf_fit_options o;  nf_fit_report r;
           nf_flow_desc_realnvp(&d, 2, 6, 64);       // dim 2, 6 couplings, width 64
           if (nf_flow_create(&f, &d) != NF_OK) return 1;
           nf_fit_options_default(&o);  o.max_epochs = 20;
           if (nf_fit(f, y, 1000, NULL, &o, &r) != NF_OK) return 1;
           float s[10 * 2], lp[10];
           nf_rng rng;  nf_rng_seed(&rng, 42);
           nf_flow_sample(f, &rng, 10, s, lp);       // 10 samples and their log-density
           nf_flow_log_prob(f, y, 10, lp);           // log p(y) of the first 10 data rows
           nf_flow_destroy(f);
           return 0;
       }

   WHAT A FLOW IS
       An invertible map g pushes a base density p_X (a Gaussian) to the data density:
           log p_Y(y) = log p_X(g^-1(y)) + log |det d g^-1 / dy|
       nflow calls data -> latent "forward" (nf_flow_forward, z = g^-1(y)) and
       latent -> data "inverse" (nf_flow_inverse, y = g(z)). A flow is a stack of
       bijective layers whose log-determinants add.

   WHICH FLOW
       nf_flow_desc_realnvp   affine couplings: fast both ways, the default choice
       nf_flow_desc_nsf       spline and affine couplings with LU layers (neural
                              spline flow): sharp shapes (edges, rings, many modes)
                              and the best of the three on real posteriors in README.md
       nf_flow_desc_maf       autoregressive layers: inverse 0 (MAF) for fitting data,
                              density in one pass, sampling in dim passes; inverse 1
                              (IAF) for reverse-KL fitting, the other way round;
                              transformer affine or spline
       Any stack: nf_flow_desc_add with NF_LAYER_* (also ActNorm, LU linear,
       permutations, a monotone elementwise layer for 1-D data).

   CONFIGURATION (define before including)
       NFLOW_DOUBLE        nf_real is double (default: float)
       NFLOW_STATIC        all functions static (private to one translation unit)
       NFLOW_NO_STDIO      no FILE, no printf: the library never touches stdio
       NFLOW_NO_TRAINING   inference-only: no tape, optimizer or fitting, and none of the
                           development-side calls (save, export, logdet check, stages)
       NF_MALLOC(sz,u) NF_REALLOC(p,sz,u) NF_FREE(p,u)   allocator hooks (all or none);
                           u is the user pointer of the object being allocated for (may be NULL)
       NF_ASSERT(x)        internal invariant checks (default: assert.h's assert)
       NF_EXP NF_LOG NF_TANH NF_SQRT NF_FABS NF_LOG1P NF_FLOOR
                           libm hooks, default to the float or double libm functions
                           (with the defaults, the affine couplings' and tanh layers'
                           tanh and e^x use nflow's own vectorisable versions, within 4
                           eps, where the CPU has vectors and the build is not -Os)
       NF_MAX_LAYERS       most layers in one flow (default 64)
       NFLOW_NO_VECTOR_EXT plain C only in the matrix kernel (no GCC/clang vector extensions);
                           built with -Os it is one dot product per element (0.2 KB of code),
                           unless NFLOW_FAST_GEMM asks for the register-tiled one (2.2-2.7 KB)
       NFLOW_OPENMP        threads from OpenMP (compile with -fopenmp); see nf_parallel
       Pay only for what you use (a flow or model file that needs a removed part is refused
       with NF_ERR_UNSUPPORTED; nf_flow_desc_check / nf_flow_load_check name the switch):
       NFLOW_NO_LU, NFLOW_NO_MONOTONE, NFLOW_NO_SPLINE, NFLOW_NO_AUTOREGRESSIVE,
       NFLOW_NO_ACTNORM   remove a layer kind (affine/additive couplings and permutations stay)
       NFLOW_NO_DOMAINS   no bounded or periodic parameters
       NFLOW_NO_CONTEXT   no conditional flows
       NFLOW_NO_DIAG_BASE no learnable base (the standard normal only)
       NFLOW_NO_LOADER    no model-file loading (nf_flow_load*)
       NFLOW_NO_IMPORTANCE no nf_flow_importance
       NFLOW_NO_THREADS   no parallel-for (nf_flow_set_parallel accepts one thread only)
       An exported flow's header defines the set it allows when NAME_ONLY is defined.
       NFLOW_DOUBLE and NF_MAX_LAYERS must be the same in every unit: a unit built otherwise
       fails to link, naming the mismatch (unless -Wl,--gc-sections drops its only
       reference).

   API AT A GLANCE
       errors     nf_result, nf_result_string, nf_flow_error, nf_flow_error_row,
                  nf_flow_desc_check, nf_flow_load_check (no flow yet: why not)
       memory     nf_arena_init (caller memory), nf_arena_create/destroy (hooks),
                  nf_arena_alloc, nf_arena_reset
       random     nf_rng_seed, nf_rng_u32, nf_rng_uniform, nf_rng_normal
       tape       nf_tape_init, nf_tape_param, nf_tape_input, nf_tape_new, nf_tape_backward
                  and the ops nf_t_matmul nf_t_add nf_t_sub nf_t_mul nf_t_scale nf_t_exp
                  nf_t_log nf_t_tanh nf_t_sigmoid nf_t_relu nf_t_leaky_relu nf_t_softplus
                  nf_t_square nf_t_sum nf_t_sum_rows nf_t_mean nf_t_mean_rows
                  nf_t_gather_cols nf_t_scatter_cols nf_t_concat_cols nf_t_linear
       build      nf_flow_desc_realnvp, nf_flow_desc_nsf, nf_flow_desc_maf,
                  nf_flow_desc_init, nf_flow_desc_add (layers: affine/additive/spline
                  coupling, autoregressive (MAF/IAF), reverse, permute, ActNorm, LU linear,
                  monotone), desc.context_dim, desc.domains (nf_domain), nf_flow_create,
                  nf_flow_size + nf_flow_init, nf_flow_destroy
       evaluate   nf_flow_log_prob, nf_flow_sample, nf_flow_forward, nf_flow_inverse,
                  the _ctx forms for conditional flows, nf_flow_base_log_prob,
                  nf_flow_in_domain, nf_flow_importance (log Z, ESS),
                  nf_flow_forward_stage, nf_flow_inverse_stage
       data       nf_csv_read, nf_csv_parse, nf_csv_free, nf_flow_mean_log_prob (held-out score)
       train      nf_fit_options_default, nf_fit, nf_fit_ctx, nf_fit_print_progress, nf_adam_config_default,
                  nf_trainer_create, nf_train_step(_ctx), nf_train_step_kl,
                  nf_trainer_loss_grad(_ctx), nf_trainer_apply, nf_trainer_destroy, nf_adam_update,
                  nf_flow_data_init, nf_train_step_kl_ctx
       save       nf_flow_save_size, nf_flow_save, nf_flow_load, nf_flow_load_desc,
                  nf_flow_load_into, nf_flow_save_file, nf_flow_load_file, nf_crc32
       embed      nf_flow_export_c, nf_flow_size_const, nf_flow_init_const,
                  NF_FLOW_CONST_BYTES
       check      nf_flow_roundtrip_error, nf_flow_logdet_error, nf_trainer_grad_check
       kernels    nf_gemm, nf_gemm_parallel
       threads    nf_flow_set_parallel, nf_parallel (your parallel-for), nf_parallel_openmp

   MEMORY
       Nothing is allocated behind your back. nf_flow_size/nf_flow_init build a flow in
       memory you own; nf_flow_create does the same through NF_MALLOC and remembers to
       free it. Inference (log_prob, sample, forward, inverse) never allocates: it works
       in the flow's own workspace, in chunks of rows. A trainer allocates its gradients
       (two buffers when max_batch >= 512: see THREADS), Adam moments and one arena
       when created; every training step resets the arena and allocates nothing. Every
       size computation is overflow-checked.

   ERRORS
       Every fallible function returns nf_result (NF_OK == 0). Bad input (NULL, bad
       dimension, NaN/Inf data, corrupt file, out of memory) gives an error code, never
       a crash, print, exit or abort. nf_flow_error(f) gives a message with detail
       (for non-finite data: the first bad row, also in nf_flow_error_row(f)). When
       creating or loading fails there is no flow to ask: nf_flow_desc_check and
       nf_flow_load_check return the same code with a message naming the layer and
       field, or the NFLOW_NO_* switch that removed a needed part.
       No call returns NF_OK with a NaN or Inf it computed: inference checks what it
       writes, and a row whose result is not finite (an input so extreme that the
       network overflows nf_real, or a density below the smallest nf_real) is
       NF_ERR_RANGE with that row; only points outside the domain get log_prob = -inf.
       Settings that would produce one are refused up front: Adam settings (lr >= 0,
       betas in [0, 1), eps > 0, ...), an affine clamp below 1e-6, a standardisation
       std that is not a normal number, an interval or period too narrow for nf_real.
       A flow keeps (saves, exports) its description with the settings its layer kinds
       do not read set to 0, so whatever a caller left there cannot spoil a file.

   THREAD SAFETY AND THREADS
       No global state. A flow's inference calls use its workspace, so one flow must
       not be used by two threads at once; separate flows (or trainers) on separate
       threads are safe. nf_rng is a plain struct: one per thread.
       nflow starts no thread of its own (under NFLOW_OPENMP, flows use OpenMP's from
       creation; nf_flow_set_parallel(f, NULL, NULL, 1) turns that off). To spread one
       flow's work over cores, give it a parallel-for (nf_flow_set_parallel: your pool,
       or nf_parallel_openmp under NFLOW_OPENMP). Results are the same bits with any
       number of threads:
       - inference cuts the rows into one range per thread, each run through every
         layer in its own slice of the workspace (rows are computed alike whatever
         rows share their chunk);
       - a training batch of 512 rows or more is always two shards, each a forward and
         backward pass of its own whose gradients are summed: with two threads or more
         they run at once (so more than two threads do not speed training further);
         with one, one after the other (a build with NFLOW_NO_THREADS trains on one
         tape: the same model up to rounding);
       - the rest (smaller batches, reverse-KL steps, Adam) cuts large matrix products,
         element-wise passes and parameter sweeps into row or block ranges.
       Work below ~2^23 multiply-adds (~75 microseconds of a fast core) is not cut: a
       fork costs a few.

   REVISION HISTORY
       unreleased          threads count: inference cuts the rows into one range per
                           thread, a training batch of 512+ rows is two shards (trained
                           bits differ from 0.3.0 by rounding), elementwise passes and Adam
                           cut too (2 threads on Zen 5: batches of 512 train 1.82-1.95x
                           faster, log_prob 1.57-1.96x);
                           MADE layers train without a mask product;
                           nf_infer's MCMC retries a refused MALA step smaller (delayed
                           rejection: chains no longer sit where the flow maps poorly)
                           and refits the flow to slow chains' draws, then starts over
                           (options.refits, report.refits);
                           tanh and e^x of the affine couplings and tanh activations
                           vectorised (within 4 eps of the exact values);
                           weight-gradient products pack op(B) once per k block.
       0.3.0 (2026-12-04)  nf_infer: posterior samples and evidence from a log density,
                           checked (PSIS k-hat, ESS, KL) and corrected by MCMC when the
                           flow alone fails, with a verdict (NF_ERR_CHECK_FAILED);
                           nf_flow_log_prob_grad, nf_psis, nf_flow_importance in any
                           dimension; nf_flow_desc_posterior; nf_flow_load_desc takes the
                           caller's domain table; nf_flow_desc_check, nf_flow_load_check;
                           compiled-out parts are NF_ERR_UNSUPPORTED; nf_fit history and
                           nf_fit_print_progress; nf_csv_*; nf_flow_mean_log_prob;
                           NF_DESC_LAYOUT guards exported flows; trust fixes (issue 18);
                           nf_flow_desc_nsf alternates spline and affine couplings with
                           LU layers between them and softplus conditioners.
       0.2.0 (2026-11-29)  layer kinds one section each; neural spline couplings, MADE
                           autoregressive layers (MAF/IAF); matrix kernel tiled by vector
                           width; threads (nf_parallel); feature switches NFLOW_NO_*;
                           model format 3 (1 and 2 still load); trust fixes (issue 10).
       0.1.0 (2026-11-28)  first release: tape, RealNVP/NICE/ActNorm/LU/monotone layers,
                           Adam, fit, conditional flows, domains, reverse KL, model files,
                           C export for microcontrollers.
*/
#ifndef NFLOW_H
#define NFLOW_H

#define NFLOW_VERSION_MAJOR 0
#define NFLOW_VERSION_MINOR 3
#define NFLOW_VERSION_PATCH 0
#define NFLOW_VERSION_STRING "0.3.0"
/* The member order of nf_flow_desc, nf_layer_desc and nf_domain, which flows exported as
   C (positional initializers) depend on: a new number whenever it changes. An exported
   flow's header refuses to compile against a header with another number. */
#define NF_DESC_LAYOUT 1

#include <stddef.h>
#include <stdint.h>
#ifndef NFLOW_NO_STDIO
#include <stdio.h>
#endif

#ifdef NFLOW_STATIC
#if defined(__GNUC__) || defined(__clang__)
#define NFDEF static __attribute__((unused))   /* a TU may use only part of the API */
#else
#define NFDEF static
#endif
#else
#define NFDEF extern
#endif

#ifdef NFLOW_DOUBLE
typedef double nf_real;
#else
typedef float nf_real;
#endif

#ifndef NF_MAX_LAYERS
#define NF_MAX_LAYERS 64   /* a plain decimal number: it is pasted into a symbol name below */
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Every unit that includes this header refers to a symbol named after its configuration,
   and the implementation defines the one for its own: units built with another
   NFLOW_DOUBLE or NF_MAX_LAYERS (which change nf_real and nf_flow_desc) fail to link with
   "undefined reference to nflow_config_double_max_layers_64" or the like, instead of
   corrupting memory at run time. */
#ifdef NFLOW_DOUBLE
#define NF__CONFIG_PREC double
#else
#define NF__CONFIG_PREC float
#endif
#define NF__CONFIG_SYM2(p, n) nflow_config_##p##_max_layers_##n
#define NF__CONFIG_SYM1(p, n) NF__CONFIG_SYM2(p, n)
#define NF__CONFIG_SYMBOL NF__CONFIG_SYM1(NF__CONFIG_PREC, NF_MAX_LAYERS)
#ifndef NFLOW_STATIC
extern const char NF__CONFIG_SYMBOL;
#if defined(__GNUC__) || defined(__clang__)
static const char *const nf__config_check __attribute__((used)) = &NF__CONFIG_SYMBOL;
#else
static const char *const nf__config_check = &NF__CONFIG_SYMBOL;
#endif
#endif

/* ---- errors --------------------------------------------------------------- */
/* One list makes both the codes and their messages. */
#define NF__RESULTS(X) \
    X(NF_OK,              "ok") \
    X(NF_ERR_NOMEM,       "out of memory") \
    X(NF_ERR_NULL,        "a required pointer is NULL") \
    X(NF_ERR_ARG,         "invalid argument") \
    X(NF_ERR_SHAPE,       "wrong dimensions") \
    X(NF_ERR_NONFINITE,   "non-finite value (NaN or Inf) in the input") \
    X(NF_ERR_OVERFLOW,    "size computation overflows") \
    X(NF_ERR_ARENA_FULL,  "arena too small") \
    X(NF_ERR_DIVERGED,    "non-finite loss or gradient: step rejected") \
    X(NF_ERR_BAD_MAGIC,   "not an nflow model (bad magic)") \
    X(NF_ERR_VERSION,     "unsupported model format version") \
    X(NF_ERR_TRUNCATED,   "model data truncated") \
    X(NF_ERR_CHECKSUM,    "model checksum mismatch") \
    X(NF_ERR_CORRUPT,     "model architecture inconsistent") \
    X(NF_ERR_IO,          "i/o error") \
    X(NF_ERR_READONLY,    "flow weights are read-only") \
    X(NF_ERR_RANGE,       "value not representable in this build's precision") \
    X(NF_ERR_PRECISION,   "data have lost the precision a fit needs") \
    X(NF_ERR_UNSUPPORTED, "this build compiled out a part the flow needs (an NFLOW_NO_* switch)") \
    X(NF_ERR_CHECK_FAILED, "the posterior did not pass its checks (see the report and nf_flow_error)")

typedef enum nf_result {
#define NF__ENUM(name, msg) name,
    NF__RESULTS(NF__ENUM)
#undef NF__ENUM
    NF_RESULT_COUNT
} nf_result;

NFDEF const char *nf_result_string(nf_result r);

/* ---- arena: a bump allocator for per-step values ----------------------------- */
typedef struct nf_arena {
    unsigned char *base;   /* 64-byte aligned start */
    size_t cap, used, high; /* capacity, bytes in use, high-water mark */
    int owned;             /* 1 if nf_arena_create allocated base through NF_MALLOC */
    int failed;            /* set when an allocation did not fit */
    void *block;           /* what nf_arena_create allocated (freed by nf_arena_destroy) */
    void *user;            /* passed to the allocator hooks */
} nf_arena;

NFDEF nf_result nf_arena_init(nf_arena *a, void *mem, size_t bytes);  /* caller memory */
NFDEF nf_result nf_arena_create(nf_arena *a, size_t bytes, void *user); /* via NF_MALLOC */
NFDEF void      nf_arena_destroy(nf_arena *a);
NFDEF void      nf_arena_reset(nf_arena *a);
NFDEF void     *nf_arena_alloc(nf_arena *a, size_t bytes);   /* 64-byte aligned, NULL if full */
NFDEF size_t    nf_arena_align(size_t bytes);                 /* size one allocation takes */

/* ---- random numbers: PCG32, bit-for-bit the same on every platform ---------- */
typedef struct nf_rng { uint64_t state, inc; nf_real spare; int has_spare; } nf_rng;

NFDEF void     nf_rng_seed(nf_rng *r, uint64_t seed);
NFDEF uint32_t nf_rng_u32(nf_rng *r);
NFDEF nf_real  nf_rng_uniform(nf_rng *r);   /* [0, 1) */
NFDEF nf_real  nf_rng_normal(nf_rng *r);    /* N(0, 1), polar method with a portable log */

/* ---- threads ------------------------------------------------------------------ */
/* nflow starts no thread (unless built with NFLOW_OPENMP, whose flows use OpenMP's). A
   parallel-for is yours to give: run task(arg, i) for every i in 0 .. n-1, on any
   threads, in any order, and return when all are done (pool is passed through: your
   thread pool, or NULL). threads: at most how many pieces work is cut into. Results do
   not depend on it: work is cut where no sum changes its order (rows of the matrix
   kernel, whose every element is summed in one fixed order; rows of a flow; blocks of
   parameters; a training batch's two shards, which one thread runs too), so 1 thread
   and 8 give the same bits. The manual's THREADS section says what is cut where. */
typedef void (*nf_task_fn)(void *arg, int i);
typedef void (*nf_parallel_fn)(void *pool, int n, nf_task_fn task, void *arg);
typedef struct nf_parallel { nf_parallel_fn run; void *pool; int threads; } nf_parallel;
#if defined(NFLOW_OPENMP) && defined(NFLOW_NO_THREADS)
#error "NFLOW_OPENMP and NFLOW_NO_THREADS contradict each other"
#endif
#ifdef NFLOW_OPENMP
/* NFLOW_OPENMP (compile with -fopenmp): a parallel-for on OpenMP's threads; flows use it
   from creation, with omp_get_max_threads() pieces. */
NFDEF void nf_parallel_openmp(void *pool, int n, nf_task_fn task, void *arg);
#endif

/* ---- matrix kernel ----------------------------------------------------------- */
/* C (+)= op(A) op(B), row-major; op(A) is M x K, op(B) is K x N. ta/tb: 1 = transposed.
   accumulate: 0 overwrites C, 1 adds to it. */
NFDEF void nf_gemm(int ta, int tb, int M, int N, int K, const nf_real *A, int lda,
                   const nf_real *B, int ldb, nf_real *C, int ldc, int accumulate);
/* The same with the rows of C cut into at most par->threads pieces (whole register
   tiles each) run by par->run (par NULL, one thread, or a product too small to gain:
   nf_gemm itself). Same bits as nf_gemm. */
NFDEF void nf_gemm_parallel(const nf_parallel *par, int ta, int tb, int M, int N, int K, const nf_real *A, int lda,
                            const nf_real *B, int ldb, nf_real *C, int ldc, int accumulate);

/* ---- activations, layers, bases ----------------------------------------------- */
enum { NF_ACT_RELU = 1, NF_ACT_TANH, NF_ACT_LEAKY_RELU, NF_ACT_SOFTPLUS, NF_ACT_SIGMOID,
       NF_ACT_IDENTITY };
enum { NF_LAYER_AFFINE_COUPLING = 1, NF_LAYER_ADDITIVE_COUPLING, NF_LAYER_REVERSE,
       NF_LAYER_PERMUTE, NF_LAYER_ACTNORM, NF_LAYER_LU_LINEAR, NF_LAYER_MONOTONE,
       NF_LAYER_SPLINE_COUPLING, NF_LAYER_AUTOREGRESSIVE, NF_LAYER_KIND_COUNT };
enum { NF_TRANSFORM_AFFINE = 0, NF_TRANSFORM_SPLINE = 1 };        /* autoregressive layers' maps */
enum { NF_ORDER_NATURAL = 0, NF_ORDER_REVERSED = 1, NF_ORDER_RANDOM = 2 };   /* their feature order */
enum { NF_MASK_CHECKER = 0, NF_MASK_HALF = 1 };
enum { NF_BASE_STD_NORMAL = 0, NF_BASE_DIAG_GAUSSIAN = 1 };
enum { NF_DOMAIN_REAL = 0, NF_DOMAIN_INTERVAL, NF_DOMAIN_LOWER, NF_DOMAIN_PERIODIC, NF_DOMAIN_KIND_COUNT };

/* A parameter's domain. The flow maps it to the real line first (log-det included),
   so log_prob is a density in your coordinates, samples stay strictly inside, and
   points outside get log_prob = -inf. An interval or period must be wide enough for
   nf_real: at least 16 EPS max(|lo|, |hi|), and (hi - lo) EPS a normal number
   (NF_ERR_RANGE otherwise; EPS is 2^-23 for float, 2^-52 for double).
     NF_DOMAIN_REAL      (-inf, inf)
     NF_DOMAIN_INTERVAL  (lo, hi)       u = logit((y - lo) / (hi - lo))
     NF_DOMAIN_LOWER     (lo, inf)      u = log(y - lo)
     NF_DOMAIN_PERIODIC  [lo, hi) wraps with period hi - lo: the circle is cut at `cut`
                         and unrolled, u = logit(((y - cut) mod P) / P). nf_fit puts the
                         cut where the training data are sparsest (unless fixed_cut), so
                         no cliff falls where the data cross lo/hi. */
typedef struct nf_domain {
    int kind;
    double lo, hi;
    double cut;       /* periodic: where the circle is opened */
    int fixed_cut;    /* periodic: 1 keeps `cut` (nf_fit chooses it otherwise) */
} nf_domain;

/* One layer. Zero fields mean defaults (shown). */
typedef struct nf_layer_desc {
    int kind;        /* NF_LAYER_* (required) */
    int hidden;      /* couplings, autoregressive: conditioner width (64); monotone: tanh terms per feature (8) */
    int depth;       /* couplings, autoregressive: hidden layers (2) */
    int activation;  /* couplings, autoregressive: NF_ACT_* (NF_ACT_RELU) */
    float clamp;     /* affine maps: log-scale = clamp * tanh(raw / clamp) (3; 1e-6 .. 1e30) */
    int mask;        /* couplings: NF_MASK_CHECKER (features j % 2 == parity are kept) or NF_MASK_HALF */
    int parity;      /* couplings: which half is kept (0 or 1) */
    uint32_t seed;   /* permute, LU, random order: the permutation's seed */
    int bins;        /* spline maps: bins K (8, at most 64) */
    float tail_bound;      /* spline maps: the spline lives on [-B, B], identity outside (B = 3) */
    float min_width, min_height, min_derivative;   /* spline maps: floors (1e-3 each) */
    int transformer; /* autoregressive: NF_TRANSFORM_AFFINE (default) or NF_TRANSFORM_SPLINE */
    int inverse;     /* autoregressive: 0 MAF (density in one pass, sampling in dim passes),
                        1 IAF (sampling in one pass, density in dim passes) */
    int order;       /* autoregressive: NF_ORDER_* (natural) */
} nf_layer_desc;

/* A flow: data dimension, base, layers in data -> latent order. */
typedef struct nf_flow_desc {
    int dim;
    int base;        /* NF_BASE_STD_NORMAL (default) or NF_BASE_DIAG_GAUSSIAN (learnable) */
    int n_layers;
    uint64_t seed;   /* weight initialisation seed (every value, 0 too, is its own seed) */
    int chunk;       /* rows per inference chunk, sizes the workspace (256) */
    nf_layer_desc layers[NF_MAX_LAYERS];
    int context_dim;             /* conditional flows: p(y | c), c of this length (0: none) */
    const nf_domain *domains;    /* dim entries, or NULL for all real; copied by init */
} nf_flow_desc;

typedef struct nf_flow nf_flow;   /* see nf_flow_size / nf_flow_init */
/* Private: the layout is public only so that sizeof works (NF_FLOW_CONST_BYTES).
   Use the functions; fields may change between versions. */
typedef struct nf__layer {
    int kind, act, hidden, depth;
    nf_real clamp;
    int nk, nt, nout, nin;  /* coupling: kept, transformed, conditioner outputs and inputs */
    int transform, bins;    /* the elementwise map (affine, additive, spline) and its bins */
    nf_real tail, min_w, min_h, min_d;   /* spline settings */
    int ar_inverse, seq;    /* autoregressive: IAF; needs the sequential-pass buffer */
    size_t poff, np;        /* parameters: offset into the flat array, count */
    int *keep, *trans;      /* coupling column indices; autoregressive: hidden degrees, parameter columns */
    int *perm, *iperm;      /* permutation (PERMUTE, REVERSE, LU; autoregressive: order) and its inverse */
    int initialized;        /* data-dependent initialisation done (ActNorm) */
    size_t ni;              /* index ints the layer uses */
    int width;              /* widest workspace row it needs (conditioner width) */
} nf__layer;

struct nf_flow {
    nf_flow_desc desc;
    int dim, n_layers, chunk, max_width, max_out, has_seq, ctx_dim;
    nf__layer layers[NF_MAX_LAYERS];
    size_t n_params, base_off;
    nf_real *params;
    nf_real *mean, *std;    /* standardisation: dim entries for y, then ctx_dim for the context */
    nf_domain *dom;         /* dim entries (NULL only in a constant flow without domains) */
    int has_dom;            /* some dimension is not NF_DOMAIN_REAL */
    int *iota;              /* 0, 1, ..., 2 dim - 1 (column indices for the tape) */
    nf_real *ws;            /* inference workspace: chunk rows of scratch */
    int owned, readonly;
    int fitted;             /* standardisation and periodic cuts estimated (nf_fit does it once) */
    void *block;
    nf_parallel par;        /* threads for the matrix products (threads 0: one) */
    long err_row;
    char err[192];
};

/* Bytes nf_flow_init_const needs for a flow whose inference needs n_ints ints and
   n_reals reals of workspace (nf_flow_export_c writes both counts): a compile-time
   size for a static buffer, exact on every target. */
#define NF__AL64(x) (((size_t)(x) + 63u) & ~(size_t)63u)
#define NF_FLOW_CONST_BYTES(n_ints, n_reals) \
    (NF__AL64(sizeof(nf_flow)) + NF__AL64((size_t)(n_ints) * sizeof(int)) + NF__AL64((size_t)(n_reals) * sizeof(nf_real)) + 64u)

/* Zeroes d and sets dim. */
NFDEF void nf_flow_desc_init(nf_flow_desc *d, int dim);
/* Appends a layer; returns NF_ERR_ARG when NF_MAX_LAYERS are already there. */
NFDEF nf_result nf_flow_desc_add(nf_flow_desc *d, const nf_layer_desc *layer);
/* Preset "RealNVP with L couplings of width H": affine couplings with alternating
   checkerboard masks (ReLU conditioner of depth 2). dim >= 2: in 1-D every affine
   coupling is one affine map of the whole variable, so the flow could only be a
   Gaussian; dim 1 is NF_ERR_SHAPE (use nf_flow_desc_nsf, a spline MAF or
   NF_LAYER_MONOTONE, which bend a 1-D density). */
NFDEF nf_result nf_flow_desc_realnvp(nf_flow_desc *d, int dim, int couplings, int hidden);
/* Preset "neural spline flow": L couplings with alternating checkerboard masks, a
   rational-quadratic spline coupling (K bins, 0: 8) and an affine coupling taking turns,
   spline first, with an LU linear layer between consecutive couplings (2L - 1 layers;
   L above (NF_MAX_LAYERS + 1) / 2 is NF_ERR_ARG) and softplus conditioners (so a build
   whose NFLOW_ACTIVATIONS leaves softplus out cannot create it). Splines bend the
   density; the affine couplings and LU layers move and rescale it past the splines'
   tail bound and mix every feature into every other. On real posteriors this
   scored 0.3-1.0 nats per row better than the spline-only stack it replaced, with fewer
   parameters, and beat the affine MAF on GW170814 (bench/nsf_preset.md). Tail bound 5
   (not the layer's 3: standardised real posteriors reach past 3). dim 1: L spline
   couplings only (nothing to couple on or mix; each is an elementwise spline). */
NFDEF nf_result nf_flow_desc_nsf(nf_flow_desc *d, int dim, int couplings, int hidden, int bins);
/* Preset "masked autoregressive flow": L autoregressive layers (MADE conditioners of
   width H), natural and reversed orders alternating; transformer NF_TRANSFORM_AFFINE or
   NF_TRANSFORM_SPLINE (tail bound 5, as nf_flow_desc_nsf); inverse 0 = MAF (fast
   densities, for fitting data), 1 = IAF (fast sampling, for reverse-KL fitting). With the
   affine transformer dim 1 is NF_ERR_SHAPE, as for nf_flow_desc_realnvp. */
NFDEF nf_result nf_flow_desc_maf(nf_flow_desc *d, int dim, int layers, int hidden, int transformer, int inverse);
/* Preset for nf_infer: an LU linear layer on the data side (nf_infer sets it to the
   posterior's correlations at the mode, so a Gaussian posterior is fitted from the start),
   then L affine couplings of width H with half masks, a fixed random permutation after
   every second one. dim 1: the LU layer, then L monotone layers. Needs NF_LAYER_LU_LINEAR
   (and NF_LAYER_MONOTONE for dim 1). */
NFDEF nf_result nf_flow_desc_posterior(nf_flow_desc *d, int dim, int couplings, int hidden);

NFDEF nf_result nf_flow_size(const nf_flow_desc *d, size_t *bytes);
NFDEF nf_result nf_flow_init(nf_flow **out, const nf_flow_desc *d, void *mem, size_t bytes);
/* Threads for this flow's inference and its trainers' steps (run NULL or threads <= 1:
   one thread, the default; with NFLOW_OPENMP, OpenMP's). Same results either way. */
NFDEF nf_result nf_flow_set_parallel(nf_flow *f, nf_parallel_fn run, void *pool, int threads);
NFDEF nf_result nf_flow_create(nf_flow **out, const nf_flow_desc *d);
/* Why nf_flow_create / nf_flow_init would refuse d, when there is no flow to hold the
   message: the same code (NF_OK: d is valid) and a message naming the layer and field
   ("layer 2 (spline coupling): bins must be 0 (default 8) or in 2..64"), or the
   NFLOW_NO_* switch that removed a part d needs (NF_ERR_UNSUPPORTED). */
NFDEF nf_result nf_flow_desc_check(const nf_flow_desc *d, char *msg, size_t cap);
NFDEF void      nf_flow_destroy(nf_flow *f);  /* frees only what nf_flow_create allocated */

NFDEF int            nf_flow_dim(const nf_flow *f);
NFDEF size_t         nf_flow_num_params(const nf_flow *f);
/* The flat parameter array (NULL if constant). Autoregressive layers' masked weights must
   stay zero: creation, loading and training keep them so. */
NFDEF nf_real       *nf_flow_params(nf_flow *f);
NFDEF const nf_flow_desc *nf_flow_get_desc(const nf_flow *f);
NFDEF const char    *nf_flow_error(const nf_flow *f); /* message of the last failure */
NFDEF long           nf_flow_error_row(const nf_flow *f); /* first bad row, or -1 */
/* Standardisation y_std = (y - mean) / std, applied before the layers and undone in
   sampling, log-det included. NULL, NULL resets it to the identity. For conditional
   flows the arrays hold dim + context_dim entries: the context is standardised too. */
NFDEF nf_result nf_flow_set_standardization(nf_flow *f, const nf_real *mean, const nf_real *std);
NFDEF void      nf_flow_get_standardization(const nf_flow *f, nf_real *mean, nf_real *std);

/* Batched inference on caller arrays of n rows x dim. No allocation, no tape. */
NFDEF nf_result nf_flow_log_prob(nf_flow *f, const nf_real *y, size_t n, nf_real *logp);
/* The held-out score: the mean of log p over n rows and its standard error (the rows'
   sd / sqrt(n)), in double, in chunks (no allocation, no output array). A row outside
   the flow's domain makes the mean -inf (se 0); an error names the row of y. */
NFDEF nf_result nf_flow_mean_log_prob(nf_flow *f, const nf_real *y, size_t n, double *mean, double *se);
NFDEF nf_result nf_flow_sample(nf_flow *f, nf_rng *rng, size_t n, nf_real *y, nf_real *logp /* or NULL */);
/* data -> latent: z = g^-1(y), logdet = log|det dz/dy| (logdet may be NULL) */
NFDEF nf_result nf_flow_forward(nf_flow *f, const nf_real *y, size_t n, nf_real *z, nf_real *logdet);
/* latent -> data: y = g(z), logdet = log|det dy/dz| */
NFDEF nf_result nf_flow_inverse(nf_flow *f, const nf_real *z, size_t n, nf_real *y, nf_real *logdet);
#ifndef NFLOW_NO_TRAINING
/* Stage k of the latent -> data map (for pictures and teaching): applies the inverses
   of the last k layers only. k = 0 copies z; k = number of layers is nf_flow_inverse.
   Intermediate stages are in standardised coordinates. */
NFDEF nf_result nf_flow_inverse_stage(nf_flow *f, const nf_real *z, size_t n, int k, nf_real *y);
/* The data -> latent direction stopped after the first k layers (standardisation
   included); logdet (may be NULL) gets the log|det| of that partial map. */
NFDEF nf_result nf_flow_forward_stage(nf_flow *f, const nf_real *y, size_t n, int k, nf_real *z, nf_real *logdet);
#endif
/* Base log-density of latent rows. */
NFDEF nf_result nf_flow_base_log_prob(nf_flow *f, const nf_real *z, size_t n, nf_real *logp);

/* Conditional flows: ctx holds ctx_rows rows of context_dim values; ctx_rows is n
   (one context per row) or 1 (one context shared by all rows). */
NFDEF nf_result nf_flow_log_prob_ctx(nf_flow *f, const nf_real *y, size_t n, const nf_real *ctx, size_t ctx_rows, nf_real *logp);
NFDEF nf_result nf_flow_sample_ctx(nf_flow *f, nf_rng *rng, size_t n, const nf_real *ctx, size_t ctx_rows, nf_real *y, nf_real *logp);
NFDEF nf_result nf_flow_forward_ctx(nf_flow *f, const nf_real *y, size_t n, const nf_real *ctx, size_t ctx_rows, nf_real *z, nf_real *logdet);
NFDEF nf_result nf_flow_inverse_ctx(nf_flow *f, const nf_real *z, size_t n, const nf_real *ctx, size_t ctx_rows, nf_real *y, nf_real *logdet);
NFDEF int       nf_flow_context_dim(const nf_flow *f);
/* The flow's domains (dim entries; all NF_DOMAIN_REAL if none were given). */
NFDEF const nf_domain *nf_flow_domains(const nf_flow *f);
/* 1 if row y lies inside every dimension's domain. */
NFDEF int       nf_flow_in_domain(const nf_flow *f, const nf_real *y);

/* Self-checks. max |g(g^-1(y)) - y| over the batch. */
NFDEF nf_result nf_flow_roundtrip_error(nf_flow *f, const nf_real *y, size_t n, double *max_err);
#ifndef NFLOW_NO_TRAINING
/* max over rows of |logdet(forward) - log|det J_numerical||, central differences. Dimension
   j moves by h times its scale: its standardisation sd (1 before fitting), mapped through
   its domain at y, so data in natural units (ms next to Mpc) get fitting steps; use
   h ~ 1e-6 in double, ~ 1e-2 in float.
   Allocates a dim x dim scratch through NF_MALLOC. */
NFDEF nf_result nf_flow_logdet_error(nf_flow *f, const nf_real *y, size_t n, double h, double *max_err);
#endif


/* ---- model files ---------------------------------------------------------------
   Format (versions 1 to 3), every field little-endian whatever the host:
     0   8 bytes  magic "NFLW\r\n\x1a\n"
     8   u32      format version: 2, or 3 when a layer uses a spline or autoregressive
                  setting (a flow is written in the oldest version that holds it)
     12  u32      bytes per stored real: 4 (float) or 8 (double)
     16  u64      total size of the file in bytes, checksum included
     24  u32 x 6  dim, base, n_layers, chunk, context_dim, flags (bit 0: standardisation
                  and periodic cuts fitted; version 1: always 0)
     48  u64      seed
     56  per layer, 36 bytes (68 in version 3): u32 kind, hidden, depth, activation, mask,
                  parity, seed, initialised flag; f32 clamp; version 3 adds u32 bins,
                  f32 tail_bound, min_width, min_height, min_derivative, u32 transformer,
                  inverse, order
         per dimension, 28 bytes: u32 domain kind | fixed_cut << 16, f64 lo, hi, cut
         u64      number of parameters P
         reals    standardisation mean[dim + context_dim], std[dim + context_dim], then
                  the P parameters
         u32      CRC-32 (IEEE 802.3) of every byte before it
   Versions 1 to 3 load. A float file loads into a double build and the reverse; a value
   the build cannot hold (a standard deviation that is 0 in float, a weight beyond its
   range) is NF_ERR_RANGE. The loader allocates at most 32 times the file's size plus
   64 KiB: the stored chunk (a runtime knob) is lowered to fit. Autoregressive layers'
   masked weights are not part of the model: loading sets them to zero. */
#ifndef NFLOW_NO_TRAINING   /* saving is for the side that trains */
NFDEF nf_result nf_flow_save_size(const nf_flow *f, size_t *bytes);
NFDEF nf_result nf_flow_save(const nf_flow *f, void *buf, size_t cap, size_t *written);
#endif
#ifndef NFLOW_NO_LOADER
/* Validates a whole model (checksum, architecture, values) and returns its description.
   A model with bounded or periodic parameters describes them in dim nf_domain entries
   of yours (d->domains points at them; d->dim says how many): with fewer than dim
   (or NULL), NF_ERR_ARG, d filled but d->domains NULL. Models whose parameters are all
   real need none (NULL, 0). */
NFDEF nf_result nf_flow_load_desc(const void *buf, size_t len, nf_flow_desc *d, nf_domain *domains, size_t cap);
/* Loads the weights into a flow built from that same description (no allocation). */
NFDEF nf_result nf_flow_load_into(nf_flow *f, const void *buf, size_t len);
/* nf_flow_create + nf_flow_load_into. */
NFDEF nf_result nf_flow_load(nf_flow **out, const void *buf, size_t len);
/* Why a model file would not load, when there is no flow to hold the message: the code
   nf_flow_load's checks give (NF_OK: it loads) and a message naming the layer or
   dimension and the field, or the NFLOW_NO_* switch that removed a part it needs. */
NFDEF nf_result nf_flow_load_check(const void *buf, size_t len, char *msg, size_t cap);
#endif
#if !defined(NFLOW_NO_LOADER) || !defined(NFLOW_NO_TRAINING)
NFDEF uint32_t  nf_crc32(uint32_t crc, const void *data, size_t n);
#endif

/* ---- numeric CSV ----------------------------------------------------------------
   Comma-separated numbers, one row per line ('\n' or "\r\n"); blank lines and lines
   starting with '#' are skipped; a first row that is not all numbers is a header (skipped).
   *data gets rows x cols values, row-major, allocated through NF_MALLOC (free with
   nf_csv_free). Refused, naming the line and column in msg: a cell that is not a number
   (or empty), not finite, or beyond nf_real; a row with another number of cells; no rows.
   Numbers are read by strtod, so the C locale's decimal point. */
NFDEF nf_result nf_csv_parse(const char *text, size_t len, nf_real **data, size_t *rows, int *cols, char *msg, size_t cap);
#ifndef NFLOW_NO_STDIO
NFDEF nf_result nf_csv_read(const char *path, nf_real **data, size_t *rows, int *cols, char *msg, size_t cap);
#endif
NFDEF void      nf_csv_free(nf_real *data);

/* ---- flows with constant weights (firmware: weights in flash, no heap) ----------
   The caller's memory holds only the flow's bookkeeping and inference workspace;
   params, mean and std stay where they are (read-only). */
NFDEF nf_result nf_flow_size_const(const nf_flow_desc *d, size_t *bytes);
NFDEF nf_result nf_flow_init_const(nf_flow **out, const nf_flow_desc *d, const nf_real *params, size_t n_params,
                                   const nf_real *mean, const nf_real *std, void *mem, size_t bytes);

#ifndef NFLOW_NO_STDIO
#ifndef NFLOW_NO_LOADER
NFDEF nf_result nf_flow_load_file(nf_flow **out, FILE *fp);   /* at most 1 GiB */
#endif
#ifndef NFLOW_NO_TRAINING
NFDEF nf_result nf_flow_save_file(const nf_flow *f, FILE *fp);
/* Writes name.c and name.h sources (to c_out and h_out): the description, weights and
   standardisation as const data, and NAME_WORKSPACE_BYTES for nf_flow_init_const.
   chunk: rows per inference chunk on the target (small chunk, small RAM). */
NFDEF nf_result nf_flow_export_c(const nf_flow *f, const char *name, int chunk, FILE *c_out, FILE *h_out);
#endif
#endif

/* An unnormalised log-density p~ for variational fitting and importance sampling: fill
   logp[i] = log p~(x_i) and, when grad is not NULL, grad[i * dim + j] = d log p~ / d x_ij;
   return 0 on success (anything else stops the call with NF_ERR_ARG). */
typedef int (*nf_log_density_fn)(const nf_real *x, size_t n, int dim, nf_real *logp, nf_real *grad, void *user);
/* The same for a conditional density p~(x | c): ctx holds one context row per x row. */
typedef int (*nf_log_density_ctx_fn)(const nf_real *x, const nf_real *ctx, size_t n, int dim, nf_real *logp, nf_real *grad, void *user);
/* Importance sampling with the flow as proposal for an unnormalised density p~ (any dim):
   weights w = p~(x) / q(x) over n samples. log_z estimates log of p~'s normaliser,
   log_z_se its standard error (delta method), ess the effective sample size
   (sum w)^2 / sum w^2 of the raw weights, khat the Pareto k-hat of their tail (PSIS: above
   0.7 the estimates are not to be trusted). Allocates about n (dim + 4) reals through
   NF_MALLOC. */
typedef struct nf_is_report { double log_z, log_z_se, ess, ess_fraction, khat; size_t n; } nf_is_report;
#ifndef NFLOW_NO_IMPORTANCE
NFDEF nf_result nf_flow_importance(nf_flow *f, nf_rng *rng, size_t n, nf_log_density_fn target, void *user, nf_is_report *rep);
/* Pareto-smoothed importance sampling (Vehtari, Simpson, Gelman, Yao, Gabry 2015/2024) on n
   log weights, in place: the largest min(n/5, 3 sqrt(n)) are replaced by the expected order
   statistics of a generalized Pareto fit to them (Zhang and Stephens 2009, with the weakly
   informative prior), capped at the largest raw weight; -inf (zero weight) stays. khat: the
   fit's shape (below 0.5 good, above 0.7 unreliable). Allocates n (size_t + double). */
NFDEF nf_result nf_psis(double *log_w, size_t n, double *khat);
#endif

#ifndef NFLOW_NO_TRAINING
/* ---- autodiff tape -------------------------------------------------------------
   Reverse mode over whole row-major 2-D tensors. Step values live in an arena;
   parameters point at caller-owned value and gradient arrays. Ops record on the tape
   and return NULL on failure (the tape's err says why; later ops pass the NULL on). */
typedef struct nf_tensor nf_tensor;
struct nf_tensor {
    int rows, cols;
    nf_real *val;          /* rows x cols */
    nf_real *grad;         /* same shape; parameters: the caller's array. Intermediate nodes get
                              theirs during backward and give it back when done with it */
    int needs;             /* 1 if a gradient flows to this node */
    int op;                /* which variant of its op (internal) */
    void (*back)(nf_tensor *self);   /* the op's backward step; NULL for leaves */
    const void *aux;       /* op-specific data (internal) */
    const nf_parallel *par;   /* the tape's, for the backward step's matrix products */
    int iarg;              /* small integer argument (transposes, activation) */
    nf_real k;             /* scalar argument */
    nf_tensor *a, *b, *c;  /* inputs */
    const int *idx;        /* column indices for gather/scatter */
    nf_tensor *prev;       /* previous node on the tape */
};

typedef struct nf_tape {
    nf_arena *arena;
    nf_tensor *last;
    nf_result err;
    void *free_grads;      /* gradient buffers backward is done with, for reuse */
    const nf_parallel *par;   /* matrix products' threads (NULL: one); trainers set their flow's */
} nf_tape;

NFDEF void       nf_tape_init(nf_tape *t, nf_arena *arena);
NFDEF nf_tensor *nf_tape_param(nf_tape *t, nf_real *val, nf_real *grad, int rows, int cols);
NFDEF nf_tensor *nf_tape_input(nf_tape *t, const nf_real *val, int rows, int cols);
NFDEF nf_tensor *nf_tape_new(nf_tape *t, int rows, int cols);  /* constant, zeroed */
/* loss must be 1 x 1. Afterwards only parameters' gradients remain: intermediate
   nodes' gradient buffers are recycled as soon as backward has passed them. */
NFDEF nf_result  nf_tape_backward(nf_tape *t, nf_tensor *loss);

NFDEF nf_tensor *nf_t_matmul(nf_tape *t, nf_tensor *a, nf_tensor *b, int ta, int tb);
/* b broadcasts: same shape, 1 x cols (per feature), rows x 1 (per row) or 1 x 1. */
NFDEF nf_tensor *nf_t_add(nf_tape *t, nf_tensor *a, nf_tensor *b);
NFDEF nf_tensor *nf_t_sub(nf_tape *t, nf_tensor *a, nf_tensor *b);
NFDEF nf_tensor *nf_t_mul(nf_tape *t, nf_tensor *a, nf_tensor *b);
NFDEF nf_tensor *nf_t_scale(nf_tape *t, nf_tensor *a, nf_real k);
NFDEF nf_tensor *nf_t_exp(nf_tape *t, nf_tensor *a);
NFDEF nf_tensor *nf_t_log(nf_tape *t, nf_tensor *a);
NFDEF nf_tensor *nf_t_tanh(nf_tape *t, nf_tensor *a);
NFDEF nf_tensor *nf_t_sigmoid(nf_tape *t, nf_tensor *a);
NFDEF nf_tensor *nf_t_relu(nf_tape *t, nf_tensor *a);
NFDEF nf_tensor *nf_t_leaky_relu(nf_tape *t, nf_tensor *a, nf_real slope);
NFDEF nf_tensor *nf_t_softplus(nf_tape *t, nf_tensor *a);
NFDEF nf_tensor *nf_t_square(nf_tape *t, nf_tensor *a);
NFDEF nf_tensor *nf_t_sum(nf_tape *t, nf_tensor *a);        /* 1 x 1 */
NFDEF nf_tensor *nf_t_sum_rows(nf_tape *t, nf_tensor *a);   /* rows x 1 */
NFDEF nf_tensor *nf_t_mean(nf_tape *t, nf_tensor *a);
NFDEF nf_tensor *nf_t_mean_rows(nf_tape *t, nf_tensor *a);
/* out[:, j] = a[:, idx[j]], j < n  (idx must outlive the tape) */
NFDEF nf_tensor *nf_t_gather_cols(nf_tape *t, nf_tensor *a, const int *idx, int n);
/* out = zeros(rows, cols); out[:, idx[j]] = a[:, j] */
NFDEF nf_tensor *nf_t_scatter_cols(nf_tape *t, nf_tensor *a, const int *idx, int cols);
NFDEF nf_tensor *nf_t_concat_cols(nf_tape *t, nf_tensor *a, nf_tensor *b);
/* act(x W + b): the fused dense layer of the conditioners (b is 1 x out) */
NFDEF nf_tensor *nf_t_linear(nf_tape *t, nf_tensor *x, nf_tensor *w, nf_tensor *b, int act);

/* ---- Adam(W) ------------------------------------------------------------------ */
enum { NF_SCHED_CONSTANT = 0, NF_SCHED_COSINE, NF_SCHED_STEP };
typedef struct nf_adam_config {
    double lr, beta1, beta2, eps;
    double weight_decay;   /* decoupled (AdamW); 0 disables */
    double clip_norm;      /* global gradient-norm clip; 0 disables */
    int schedule;          /* NF_SCHED_* */
    long total_steps;      /* cosine: steps to decay over (to lr * min_lr_frac); in nf_fit, 0
                              means the whole budget: max_epochs x minibatches per epoch */
    double min_lr_frac;
    long step_every;       /* step schedule: multiply lr by step_gamma every step_every steps */
    double step_gamma;
} nf_adam_config;
NFDEF void   nf_adam_config_default(nf_adam_config *c);
NFDEF double nf_adam_lr(const nf_adam_config *c, long step);  /* scheduled lr at step (0-based) */
/* One Adam step over flat arrays; t is the 1-based step count. */
NFDEF void   nf_adam_update(const nf_adam_config *c, long t, size_t n, nf_real *p,
                            const nf_real *g, nf_real *m, nf_real *v);

/* ---- training ------------------------------------------------------------------- */
typedef struct nf_trainer nf_trainer;
/* Allocates gradients, moments and an arena sized for batches up to max_batch rows
   (from 512: two gradient buffers and room for two shards' tapes, see THREADS). */
NFDEF nf_result nf_trainer_create(nf_trainer **out, nf_flow *f, const nf_adam_config *c, size_t max_batch);
NFDEF void      nf_trainer_destroy(nf_trainer *t);
/* One Adam step on the mean (or weighted mean, w may be NULL) negative log-likelihood.
   A non-finite loss or gradient leaves the parameters untouched: NF_ERR_DIVERGED. */
NFDEF nf_result nf_train_step(nf_trainer *t, const nf_real *y, const nf_real *w, size_t n, double *loss);
/* Loss and gradient (into the trainer's gradient array) without updating. */
NFDEF nf_result nf_trainer_loss_grad(nf_trainer *t, const nf_real *y, const nf_real *w, size_t n, double *loss);
/* Reverse-KL (variational) fitting to an unnormalised density p~ (nf_log_density_fn,
   with gradient). One step draws n points x = g(z) from the flow on the tape (every layer
   kind, domains included) and minimises E_q[log q(x) - log p~(x)] (= -ELBO; log Z at the
   optimum). A target value or gradient that is not finite rejects the step
   (NF_ERR_DIVERGED). */
NFDEF nf_result nf_train_step_kl(nf_trainer *t, nf_rng *rng, size_t n, nf_log_density_fn target, void *user, double *loss);
/* Amortized variational fitting of a conditional flow q(x | c) to p~(x | c): ctx holds
   ctx_rows (1: shared, or n) context rows; the target gets one row per draw. */
NFDEF nf_result nf_train_step_kl_ctx(nf_trainer *t, nf_rng *rng, size_t n, const nf_real *ctx, size_t ctx_rows,
                                     nf_log_density_ctx_fn target, void *user, double *loss);
/* Data-dependent initialisation (Glow's ActNorm): every ActNorm layer not yet initialised
   gets the scale and shift that make its input over these rows zero-mean and unit-variance
   per feature (a feature with spread below 1e-6 is only shifted). NF_ERR_RANGE, and no
   layer changed, if a start is not representable. nf_fit does it with its first
   training rows (a batch, at least 1024); call it before a hand-written training loop. Training steps and loss evaluations never do (they have no side effects beyond
   the step). The initialised state is saved in model files. */
NFDEF nf_result nf_flow_data_init(nf_flow *f, const nf_real *y, const nf_real *ctx, size_t n);
/* Conditional flows: ctx holds one context row per data row. */
NFDEF nf_result nf_train_step_ctx(nf_trainer *t, const nf_real *y, const nf_real *ctx, const nf_real *w, size_t n, double *loss);
NFDEF nf_result nf_trainer_loss_grad_ctx(nf_trainer *t, const nf_real *y, const nf_real *ctx, const nf_real *w, size_t n, double *loss);
NFDEF nf_real  *nf_trainer_grad(nf_trainer *t);
/* One AdamW step (with clipping) from the gradient now in nf_trainer_grad: after
   nf_trainer_loss_grad(_ctx), for a gradient the caller has changed, e.g. averaged over
   processes with MPI_Allreduce. A non-finite gradient is refused (NF_ERR_DIVERGED);
   entries at an autoregressive layer's masked weights are ignored (they stay 0). */
NFDEF nf_result nf_trainer_apply(nf_trainer *t);
NFDEF long      nf_trainer_steps(const nf_trainer *t);
NFDEF size_t    nf_trainer_bytes(const nf_trainer *t);  /* gradients + moments + arena high-water */
/* Central-difference check of the loss gradient at up to max_params parameters (0: all):
   max |g - g_num| / max(|g| + |g_num|, floor), floor 1e-6 (double) or 1e-2 (float). */
NFDEF nf_result nf_trainer_grad_check(nf_trainer *t, const nf_real *y, size_t n, double h,
                                      size_t max_params, double *max_rel_err);

typedef struct nf_fit_progress {
    long step, epoch;                            /* steps taken; the epoch just finished (1-based) */
    double train_loss, val_loss, best_val_loss;  /* epoch means, nats per row */
    double lr;
} nf_fit_progress;
/* Return nonzero to stop training. */
typedef int (*nf_fit_callback)(const nf_fit_progress *p, void *user);

/* Zero is not "default" for every field: start from nf_fit_options_default. */
typedef struct nf_fit_options {
    int batch;              /* minibatch rows (128); every row is used each epoch */
    int max_epochs;         /* (200) */
    int patience;           /* stop after this many epochs without a better validation loss
                               (20); 0 never stops early */
    double val_fraction;    /* held-out fraction (0.1); 0 disables validation */
    int standardize;        /* 1: fit standardisation statistics from the data (1) */
    int refit;              /* 1: re-estimate standardisation and periodic cuts even if the
                               flow has them (0: only a flow never fitted gets them, so
                               fine-tuning does not move the model under trained layers) */
    uint64_t seed;          /* shuffling and split seed (1) */
    nf_adam_config adam;    /* nf_adam_config_default with a cosine schedule over the whole
                               budget (lr 1e-3 decaying to 0 over max_epochs epochs) */
    nf_fit_callback callback; void *user;   /* e.g. nf_fit_print_progress, user = a FILE * or NULL */
    double *history;        /* optional (NULL): epoch e's train and validation losses go to
                               history[2(e-1)] and history[2(e-1) + 1], for e <= history_cap */
    long history_cap;
} nf_fit_options;

typedef struct nf_fit_report {
    long steps, epochs;     /* steps taken, epochs run */
    long best_epoch;        /* epoch (1-based) whose parameters were kept; 0 if none */
    long rejected_steps;    /* steps whose loss or gradient was not finite (not applied) */
    long skipped_batches;   /* minibatches whose weights were all zero (no step) */
    double train_loss, val_loss, best_val_loss;
    long history_len;       /* epochs written to o->history */
} nf_fit_report;

NFDEF void      nf_fit_options_default(nf_fit_options *o);
#ifndef NFLOW_NO_STDIO
/* A ready nf_fit_callback: one line per epoch (epoch, steps, train and validation loss,
   the best so far, the learning rate) to user, a FILE * (NULL: stdout). Never stops. */
NFDEF int       nf_fit_print_progress(const nf_fit_progress *p, void *user);
#endif
/* Fit by maximum likelihood on n rows (w: optional per-row weights). The first fit of a
   flow estimates its standardisation and periodic cuts (o->refit to redo it); every exit,
   an error's too, leaves the best validation epoch's parameters in place (the initial
   ones if no epoch improved), and an error about a row names the row of y. A column whose spread is lost
   in the precision of its values (a GPS time in float) is NF_ERR_PRECISION, naming the
   column. Allocates its buffers through NF_MALLOC and frees them. */
NFDEF nf_result nf_fit(nf_flow *f, const nf_real *y, size_t n, const nf_real *w,
                       const nf_fit_options *o, nf_fit_report *rep);
/* The same for a conditional flow: (y, ctx) pairs, one context row per data row. The
   context is standardised too; periodic cuts are placed where the data are sparsest. */
NFDEF nf_result nf_fit_ctx(nf_flow *f, const nf_real *y, const nf_real *ctx, size_t n, const nf_real *w,
                           const nf_fit_options *o, nf_fit_report *rep);

/* ---- inference from a likelihood -------------------------------------------------
   nf_infer turns an unnormalised log posterior (nf_log_density_fn: log likelihood + log
   prior, with its gradient, in your coordinates; -inf outside the support) into posterior
   samples, the log evidence and a verdict:
     1. search:  L-BFGS from several starts in the flow's unconstrained coordinates (its
                 domains), a Laplace Gaussian at each distinct mode (dense Hessian from
                 gradient differences), each weighted by importance sampling;
     2. start:   the flow is placed there: standardisation at the modes' mean and sds, a
                 first NF_LAYER_LU_LINEAR set to their correlations (one mode and an LU
                 first layer: the flow is then exactly the Laplace Gaussian), otherwise
                 fitted to the modes' mixture by maximum likelihood (no target evaluation);
     3. fit:     reverse KL (draws outside the support left out; with several modes also
                 forward-KL steps on importance-weighted draws of the modes' mixture), until
                 the recent draws would pass the check below (k-hat, ESS per draw, KL gap,
                 with a margin), the ELBO stops improving after three learning-rate cuts, or
                 the budget; no fit at all if the start already passes;
     4. check:   importance sampling with a defensive proposal (the flow 0.7, the flow's map
                 over a heavy-tailed t base 0.2, the Laplace mixture 0.1: where the flow's
                 tails are too light, the check sees it) and Pareto smoothing (PSIS:
                 Vehtari, Simpson, Gelman, Yao, Gabry): k-hat, ESS, log Z and its standard
                 error, and the KL gap log Z - ELBO;
     5. correct: if the check fails, flow-driven MCMC (independence Metropolis-Hastings
                 with the defensive proposal, alternating with MALA steps in the flow's
                 latent space, a refused one retried smaller) in several chains from
                 overdispersed starts, until split rank-normalised R-hat and the smaller
                 of bulk and tail ESS pass (Vehtari, Gelman, Simpson, Carpenter, Buerkner
                 2021) or the budget ends (the traces are thinned as they grow: memory
                 stays bounded). Chains that mix too slowly (under 0.1 ESS per draw, or
                 projected short of ess_min at the budget) have the flow refitted to
                 their draws and the check's (forward KL, as flowMC does) and start over
                 from where they are, up to options.refits times.
   NF_OK only when a check passed: k-hat <= min(khat_max, 1 - 1/log10(draws)), ESS >= ess_min,
   ESS / draws >= ess_fraction_min and log Z - ELBO <= kl_max (samples: importance-resampled
   draws), or R-hat <
   rhat_max and ESS >= ess_min (samples: the chains' draws). Importance weights cannot see
   a region the flow never draws from (a tail it bends away from): k-hat alone passed
   flows whose sds were 20% short, so the importance answer needs a flow close enough
   that half its draws count; anything less goes through MCMC, whose local moves walk
   into what the flow misses. Otherwise NF_ERR_CHECK_FAILED, the report filled, the
   samples what there is, and nf_flow_error naming the failed diagnostic. Checks cannot
   see a mode that no search found and the flow never reached (give starts, options.init).
   A target that fails (returns nonzero) stops the call with NF_ERR_ARG; a NaN or +inf
   value or gradient with NF_ERR_NONFINITE naming the point; the flow keeps its last
   good parameters either way. Allocates through NF_MALLOC and frees it all. */
typedef struct nf_infer_progress {
    int stage;                 /* NF_INFER_STAGE_* */
    long evals, steps;         /* target evaluations so far; reverse-KL steps */
    double elbo, khat;         /* recent ELBO; k-hat of the recent draws */
} nf_infer_progress;
enum { NF_INFER_STAGE_SEARCH = 1, NF_INFER_STAGE_FIT, NF_INFER_STAGE_CHECK, NF_INFER_STAGE_MCMC };
/* Return nonzero to end the stage early (the checks still run). */
typedef int (*nf_infer_callback)(const nf_infer_progress *p, void *user);
enum { NF_INFER_IMPORTANCE = 1, NF_INFER_MCMC = 2 };   /* how the samples were made */

/* Zero is not "default" for every field: start from nf_infer_options_default. */
typedef struct nf_infer_options {
    long max_evals;        /* target evaluations, all stages together (1,000,000) */
    int starts;            /* mode searches (16): half from random starts, half far around
                              the best mode found by the first half */
    const nf_real *init;   /* optional start rows (n_init x dim, your coordinates) */
    size_t n_init;         /* at most starts; the other starts are random */
    double init_sd;        /* random starts: N(0, s^2) in unconstrained coordinates, s cycling
                              through init_sd x 1, 0.5, 2 (2) */
    int batch;             /* draws per reverse-KL step (64) */
    long max_steps;        /* reverse-KL steps at most (4000) */
    double lr;             /* the fit's Adam learning rate (2e-3), cut on plateaus */
    long check_draws;      /* draws of the check (0: max(4000, n_samples)) */
    double khat_max;       /* importance draws are the answer only with k-hat at most this (0.5) */
    double ess_fraction_min;   /* ... ESS / draws at least this (0.5) ... */
    double kl_max;         /* ... and the flow within this many nats of the posterior (0.1):
                              log Z - ELBO = KL(q || p). A flow that good misses no region of
                              the posterior by much; otherwise MCMC */
    double ess_min;        /* effective sample size required (1000): the samples' sds are then
                              good to about 3% */
    int chains;            /* MCMC chains when the check fails (4; 0: no MCMC) */
    int refits;            /* MCMC: times the flow may be refitted to the chains' draws when
                              they mix too slowly, the run then starting over (4; 0: never) */
    double rhat_max;       /* split R-hat accepted (1.01) */
    int warm_start;        /* 1: start from the flow as it is, no search (0) */
    uint64_t seed;         /* (1) */
    nf_infer_callback callback; void *user;
} nf_infer_options;

typedef struct nf_infer_report {
    int method;            /* NF_INFER_IMPORTANCE or NF_INFER_MCMC (0: no samples) */
    int modes;             /* distinct modes the searches found */
    long evals, evals_search, evals_fit, evals_check, evals_mcmc;   /* target evaluations (rows) */
    long steps;            /* reverse-KL steps */
    double elbo;           /* the final flow's ELBO (nats; from the check's draws inside the
                              support), so log_z - elbo estimates KL(q || p) */
    double log_z, log_z_se;   /* log evidence (importance sampling) and its standard error */
    double khat, ess, ess_fraction;   /* the check: Pareto k-hat, ESS, ESS per draw */
    double rhat, mcmc_ess; /* MCMC: worst split R-hat, smallest bulk ESS over parameters */
    double accept_global, accept_local;   /* MCMC acceptance of flow proposals and local moves */
    int refits;            /* MCMC: times the flow was refitted to the chains' draws */
    long outside;          /* draws where the target was -inf (outside its support) */
} nf_infer_report;

NFDEF void      nf_infer_options_default(nf_infer_options *o);
#ifndef NFLOW_NO_IMPORTANCE
/* Posterior samples (n_samples x dim, may be 0 with samples NULL) of the unnormalised
   log density target, and the report; the flow is left fitted to the posterior. */
NFDEF nf_result nf_infer(nf_flow *f, nf_log_density_fn target, void *user, const nf_infer_options *o,
                         nf_infer_report *rep, nf_real *samples, size_t n_samples);
#endif
/* The score: grad[i * dim + j] = d log q(y_i) / d y_ij (and logp, may be NULL, log q(y_i)) for
   n rows, through the tape of trainer t (its arena; its gradient array is overwritten, the
   parameters are not). Rows outside the domain: log q = -inf, gradient 0. For your own HMC
   or Langevin sampler on the flow's density. */
NFDEF nf_result nf_flow_log_prob_grad(nf_trainer *t, const nf_real *y, size_t n, nf_real *logp, nf_real *grad);
#endif /* NFLOW_NO_TRAINING */

#ifdef __cplusplus
}
#endif
#endif /* NFLOW_H */

/* ============================================================================ */
/*                              IMPLEMENTATION                                  */
/* ============================================================================ */
#ifdef NFLOW_IMPLEMENTATION
#ifndef NFLOW_IMPLEMENTATION_DONE
#define NFLOW_IMPLEMENTATION_DONE

#ifndef NFLOW_STATIC
const char NF__CONFIG_SYMBOL = 0;   /* see nf__config_check */
#endif

#include <string.h>
#include <math.h>
#include <stdlib.h>   /* strtod (nf_csv_parse), and malloc unless the hooks below replace it */

#if defined(NF_MALLOC) && defined(NF_FREE) && defined(NF_REALLOC)
#elif !defined(NF_MALLOC) && !defined(NF_FREE) && !defined(NF_REALLOC)
#define NF_MALLOC(sz, u)     ((void)(u), malloc(sz))
#define NF_REALLOC(p, sz, u) ((void)(u), realloc(p, sz))
#define NF_FREE(p, u)        ((void)(u), free(p))
#else
#error "nflow.h: define all of NF_MALLOC, NF_REALLOC and NF_FREE, or none of them"
#endif

#ifndef NF_ASSERT
#include <assert.h>
#define NF_ASSERT(x) assert(x)
#endif

#ifdef NFLOW_DOUBLE
#ifndef NF_EXP
#define NF__LIBM 1
#define NF_EXP   exp
#define NF_LOG   log
#define NF_TANH  tanh
#define NF_SQRT  sqrt
#define NF_FABS  fabs
#define NF_LOG1P log1p
#define NF_FLOOR floor
#endif
#else
#ifndef NF_EXP
#define NF__LIBM 1   /* the math below is libm's (Adam may then use the CPU's vector sqrt) */
#define NF_EXP   expf
#define NF_LOG   logf
#define NF_TANH  tanhf
#define NF_SQRT  sqrtf
#define NF_FABS  fabsf
#define NF_LOG1P log1pf
#define NF_FLOOR floorf
#endif
#endif

#ifdef NFLOW_DOUBLE
#define NF__EPS 2.220446049250313e-16
#define NF__TINY 2.2250738585072014e-308   /* smallest normal nf_real */
#define NF__RMAX 1.7976931348623157e308     /* largest nf_real */
#define NF__GC_FLOOR 1e-6   /* gradient check: below this, errors are absolute */
#else
#define NF__EPS 1.1920929e-7
#define NF__TINY 1.17549435e-38
#define NF__RMAX 3.40282347e38
#define NF__GC_FLOOR 1e-2   /* float losses carry ~1e-7 relative noise: /2h amplifies it */
#endif
#define NF__R(x) ((nf_real)(x))
#define NF__LOG_2PI 1.8378770664093453
#define NF__MAXDIM (1 << 20)

/* small helpers that some feature-switch combinations leave unused */
#if defined(__GNUC__) || defined(__clang__)
#define NF__HELPER static __attribute__((unused))
#else
#define NF__HELPER static
#endif
/* element functions inside loops that must vectorise: a call left in a loop stops it */
#if defined(__GNUC__) || defined(__clang__)
#define NF__ELEM static inline __attribute__((always_inline, unused))
#elif defined(_MSC_VER)
#define NF__ELEM static __forceinline
#else
#define NF__ELEM static inline
#endif
#if defined(__cplusplus) || defined(_MSC_VER)
#define NF__RESTRICT __restrict   /* C++ and MSVC's C (before /std:c11) have no restrict */
#else
#define NF__RESTRICT restrict
#endif

/* row i, column j of a row-major array with D columns (ints already checked non-negative) */
#define NF__IX(i, D, j) ((size_t)(i) * (size_t)(D) + (size_t)(j))

/* Finite = exponent bits not all ones. Read from the bits, not from comparisons, so that
   -ffast-math (which may assume no NaN or Inf and fold x != x away) cannot remove it. */
static int nf__isfinite_d(double x) {
    uint64_t u; memcpy(&u, &x, sizeof u);
    return ((u >> 52) & 0x7ffu) != 0x7ffu;
}
static int nf__isfinite(nf_real x) {
#ifdef NFLOW_DOUBLE
    return nf__isfinite_d(x);
#else
    uint32_t u; memcpy(&u, &x, sizeof u);
    return ((u >> 23) & 0xffu) != 0xffu;
#endif
}

/* -inf, from the bits (a zero density is a valid answer of a target; -ffast-math may
   assume no infinities, so comparisons cannot be trusted to see it) */
NF__HELPER int nf__is_neg_inf(double x) {
    uint64_t u; memcpy(&u, &x, sizeof u);
    return u == 0xfff0000000000000ull;
}

/* ---- errors ---------------------------------------------------------------- */
NFDEF const char *nf_result_string(nf_result r) {
    static const char *const msgs[] = {
#define NF__MSG(name, msg) msg,
        NF__RESULTS(NF__MSG)
#undef NF__MSG
    };
    if ((unsigned)r >= (unsigned)NF_RESULT_COUNT) return "unknown error";   /* enums may be unsigned (ARM EABI: short enums) */
    return msgs[r];
}

/* overflow-checked size arithmetic: returns 0 on overflow */
static int nf__mul(size_t a, size_t b, size_t *out) {
    if (a && b > (size_t)-1 / a) return 0;
    *out = a * b; return 1;
}
static int nf__add(size_t a, size_t b, size_t *out) {
    if (b > (size_t)-1 - a) return 0;
    *out = a + b; return 1;
}
/* acc + a * b, checked: *ok drops to 0 on overflow */
static size_t nf__madd(size_t acc, size_t a, size_t b, int *ok) {
    size_t t;
    if (!nf__mul(a, b, &t) || !nf__add(acc, t, &t)) { *ok = 0; return 0; }
    return t;
}

/* A tiny message builder (no snprintf: it lives in stdio). */
typedef struct nf__msgbuf { char *s; size_t n, cap; } nf__msgbuf;
static void nf__msg_str(nf__msgbuf *m, const char *s) {
    while (*s && m->n + 1 < m->cap) m->s[m->n++] = *s++;
    m->s[m->n] = 0;
}
static void nf__msg_long(nf__msgbuf *m, long v) {
    char tmp[24]; int i = 0; unsigned long u = v < 0 ? 0ul - (unsigned long)v : (unsigned long)v;
    do { tmp[i++] = (char)('0' + u % 10); u /= 10; } while (u && i < 23);
    if (v < 0) tmp[i++] = '-';
    while (i > 0 && m->n + 1 < m->cap) m->s[m->n++] = tmp[--i];
    m->s[m->n] = 0;
}

/* a number: integer part, then 6 decimals if it has a fraction (enough to tell fields apart) */
NF__HELPER void nf__msg_num(nf__msgbuf *m, double v) {
    char d[32]; int i = 0; unsigned long long ip, fr;
    if (!nf__isfinite_d(v)) { nf__msg_str(m, "non-finite"); return; }
    if (v < 0) { nf__msg_str(m, "-"); v = -v; }
    if (v >= 1.8e19) { nf__msg_str(m, "huge"); return; }
    ip = (unsigned long long)v;
    fr = (unsigned long long)((v - (double)ip) * 1e6 + 0.5);
    if (fr >= 1000000ull) { fr = 0; ++ip; }
    do { d[i++] = (char)('0' + ip % 10); ip /= 10; } while (ip);
    while (i > 0 && m->n + 1 < m->cap) m->s[m->n++] = d[--i];
    m->s[m->n] = 0;
    if (fr) {
        for (i = 0; i < 6; ++i) { d[5 - i] = (char)('0' + fr % 10); fr /= 10; }
        d[6] = 0; nf__msg_str(m, "."); nf__msg_str(m, d);
    }
}

/* ---- arena ----------------------------------------------------------------- */
#define NF__ALIGN 64
NFDEF size_t nf_arena_align(size_t bytes) {
    if (bytes > (size_t)-1 - (NF__ALIGN - 1)) return 0;
    return (bytes + NF__ALIGN - 1) & ~(size_t)(NF__ALIGN - 1);
}
NFDEF nf_result nf_arena_init(nf_arena *a, void *mem, size_t bytes) {
    size_t skip;
    if (!a) return NF_ERR_NULL;
    memset(a, 0, sizeof *a);
    if (!mem) return NF_ERR_NULL;
    skip = (NF__ALIGN - (size_t)((uintptr_t)mem % NF__ALIGN)) % NF__ALIGN;
    if (bytes < skip) return NF_ERR_ARENA_FULL;
    a->base = (unsigned char *)mem + skip;
    a->cap = bytes - skip;
    return NF_OK;
}
NFDEF nf_result nf_arena_create(nf_arena *a, size_t bytes, void *user) {
    void *mem; size_t total;
    if (!a) return NF_ERR_NULL;
    memset(a, 0, sizeof *a);
    if (!nf__add(bytes, NF__ALIGN, &total)) return NF_ERR_OVERFLOW;  /* room to align */
    mem = NF_MALLOC(total, user);
    if (!mem) return NF_ERR_NOMEM;
    nf_arena_init(a, mem, total);
    a->owned = 1; a->block = mem; a->user = user;
    return NF_OK;
}
NFDEF void nf_arena_destroy(nf_arena *a) {
    if (!a) return;
    if (a->owned && a->block) NF_FREE(a->block, a->user);
    memset(a, 0, sizeof *a);
}
NFDEF void nf_arena_reset(nf_arena *a) {
    if (!a) return;
    a->used = 0; a->failed = 0;
}
NFDEF void *nf_arena_alloc(nf_arena *a, size_t bytes) {
    size_t sz = nf_arena_align(bytes ? bytes : 1), end;
    void *p;
    if (!a || !sz || !nf__add(a->used, sz, &end) || end > a->cap) {
        if (a) a->failed = 1;
        return NULL;
    }
    p = a->base + a->used;
    a->used = end;
    if (end > a->high) a->high = end;
    return p;
}

/* ---- random numbers -------------------------------------------------------- */
/* PCG32 (O'Neill 2014, XSH-RR): 64-bit LCG state, 32-bit output. */
NFDEF uint32_t nf_rng_u32(nf_rng *r) {
    uint64_t old = r->state;
    uint32_t xs, rot;
    r->state = old * 6364136223846793005ULL + r->inc;
    xs = (uint32_t)(((old >> 18) ^ old) >> 27);
    rot = (uint32_t)(old >> 59);
    return (xs >> rot) | (xs << ((32u - rot) & 31u));
}
NFDEF void nf_rng_seed(nf_rng *r, uint64_t seed) {
    r->state = 0; r->inc = (seed << 1) | 1u;
    r->has_spare = 0; r->spare = 0;
    nf_rng_u32(r); r->state += 0x853c49e6748fea9bULL ^ seed; nf_rng_u32(r);
}
NFDEF nf_real nf_rng_uniform(nf_rng *r) {
#ifdef NFLOW_DOUBLE
    uint64_t hi = nf_rng_u32(r) >> 6, lo = nf_rng_u32(r) >> 5;   /* 26 + 27 = 53 bits */
    return (double)((hi << 27) | lo) * (1.0 / 9007199254740992.0);
#else
    return (float)(nf_rng_u32(r) >> 8) * (1.0f / 16777216.0f);
#endif
}
/* The normal stream is the same, bit for bit, on every platform: Marsaglia's polar
   method in integer arithmetic. Floating point enters only at the end, as one rounding of
   an exact integer, so excess precision (x87, FLT_EVAL_METHOD != 0), FMA contraction and
   the platform's libm cannot change it. Precision: about 30 significant bits. */
#define NF__SQRT1_2_Q62 3260954456333195553ull   /* 2^62 / sqrt(2) */
#define NF__LN2_Q32 2977044472ull                 /* ln 2 in Q32 */
/* n / d, exact. 32-bit targets have no 64-bit divide instruction, and libgcc's routine
   costs 700 bytes of flash: there, shift and subtract (the quotients here fit 33 bits). */
#if UINTPTR_MAX > 0xffffffffu
#define nf__udiv64(n, d) ((n) / (d))
#else
static uint64_t nf__udiv64(uint64_t n, uint64_t d) {
    uint64_t q = 0, r = 0; int i;
    for (i = 63; i >= 0; --i) {
        r = (r << 1) | ((n >> i) & 1u);
        if (r >= d) { r -= d; q |= (uint64_t)1 << i; }
    }
    return q;
}
#endif
/* floor(sqrt(n)), n < 2^62: a floating-point guess, one Newton step, an exact fix-up */
static uint64_t nf__isqrt(uint64_t n) {
    uint64_t g;
    if (n < 2) return n;
    g = (uint64_t)NF_SQRT((nf_real)n);
    if (g == 0) g = 1;
    g = (g + nf__udiv64(n, g)) >> 1;
    while (g * g > n) --g;
    while ((g + 1) * (g + 1) <= n) ++g;
    return g;
}
/* shifts v right until it is below 2^31; *e loses the shifts (v 2^-e keeps its value) */
static uint64_t nf__fit31(uint64_t v, int *e) {
    int sh;
    for (sh = 32; sh > 0; sh >>= 1) if (v >= ((uint64_t)1 << (31 + sh - 1))) { v >>= sh; *e -= sh; }
    while (v >= ((uint64_t)1 << 31)) { v >>= 1; --*e; }
    return v;
}
/* -2 ln(s / 2^62) = q 2^-e for 0 < s < 2^62, with ~31 significant bits even near s = 2^62.
   s / 2^62 = m 2^-E, m in [1/sqrt 2, sqrt 2); ln m = 2 atanh(t), t = (m - 1) / (m + 1),
   |t| < 0.172: t = tm 2^-(32 + L) with 31 significant bits, then seven terms of
   atanh(t) / t = 1 + t^2 / 3 + t^4 / 5 + ... in Q32. */
static uint64_t nf__neg2ln(uint64_t s, int *e) {
    static const uint64_t c[7] = {4294967296ull, 1431655765ull, 858993459ull, 613566757ull,
                                  477218588ull, 390451572ull, 330382100ull};   /* 2^32 / (2k + 1) */
    uint64_t E = 0, num, tm, t2, p, am; int k, L = 0, neg;
    while (s < ((uint64_t)1 << 61)) { s <<= 1; ++E; }
    if (s < NF__SQRT1_2_Q62) { s <<= 1; ++E; }            /* now s / 2^62 = m */
    neg = s < ((uint64_t)1 << 62);
    num = neg ? ((uint64_t)1 << 62) - s : s - ((uint64_t)1 << 62);
    if (num == 0) { *e = 32; return 2 * E * NF__LN2_Q32; }
    while (num < ((uint64_t)1 << 61)) { num <<= 1; ++L; }
    tm = nf__udiv64(num, (s + ((uint64_t)1 << 62)) >> 32);  /* t 2^(32 + L), < 2^31.3 */
    t2 = ((tm * tm) >> 32) >> (L < 63 ? 2 * L < 63 ? 2 * L : 63 : 63);   /* t^2 in Q32 */
    for (p = c[6], k = 5; k >= 0; --k) p = c[k] + ((p * t2) >> 32);
    am = (tm * p) >> 32;                                    /* atanh|t| = am 2^-(32 + L) */
    if (E == 0) { *e = 30 + L; return am; }                 /* -2 ln m = 4 atanh|t|, m < 1 */
    *e = 32;
    return neg ? 2 * E * NF__LN2_Q32 + ((am << 2) >> L) : 2 * E * NF__LN2_Q32 - ((am << 2) >> L);
}
/* 2^-n as an exact nf_real (n <= 126) */
static nf_real nf__pow2m(int n) {
    nf_real v = 1;
    while (n >= 32) { v *= NF__R(1.0 / 4294967296.0); n -= 32; }
    return v / (nf_real)((uint64_t)1 << n);
}
NFDEF nf_real nf_rng_normal(nf_rng *r) {
    int64_t a, b; uint64_t s, s2, q, inv, rr, ca, cb; int k = 0, j = 0, eq, ea = 62, eb = 62;
    nf_real x;
    if (r->has_spare) { r->has_spare = 0; return r->spare; }
    do {   /* (a, b) uniform in the square [-2^31, 2^31)^2, kept inside the disc */
        a = (int64_t)nf_rng_u32(r) - 2147483648LL;
        b = (int64_t)nf_rng_u32(r) - 2147483648LL;
        s = (uint64_t)(a * a) + (uint64_t)(b * b);
    } while (s >= ((uint64_t)1 << 62) || s == 0);
    /* (cos, sin) = (a, b) / sqrt(s) = ca 2^-ea, cb 2^-eb: s normalised so its root has 31 bits */
    for (s2 = s; s2 < ((uint64_t)1 << 60); s2 <<= 2) ++k;
    inv = nf__udiv64((uint64_t)1 << 62, nf__isqrt(s2));      /* 2^(62 - k) / sqrt(s) */
    ca = nf__fit31(((uint64_t)(a < 0 ? -a : a) << k) * inv, &ea);
    cb = nf__fit31(((uint64_t)(b < 0 ? -b : b) << k) * inv, &eb);
    /* radius sqrt(-2 ln s) = sqrt(q 2^-eq) = isqrt(q 2^2j) 2^-(j + eq / 2) */
    q = nf__neg2ln(s, &eq);
    if (eq & 1) { q <<= 1; ++eq; }
    if (q) for (; q < ((uint64_t)1 << 60); q <<= 2) ++j;
    rr = nf__isqrt(q);                                        /* < 2^31 */
    x = (nf_real)(int64_t)(cb * rr) * nf__pow2m(eb + j + eq / 2);   /* one rounding of an exact product */
    r->spare = b < 0 ? -x : x;
    r->has_spare = 1;
    x = (nf_real)(int64_t)(ca * rr) * nf__pow2m(ea + j + eq / 2);
    return a < 0 ? -x : x;
}

/* ---- matrix kernel ---------------------------------------------------------
   C (+)= op(A) op(B), row-major, the BLIS way. Panels of op(B), KC deep and two vectors
   wide, are packed contiguous (zero-padded at the right edge) and stay in L1, while a
   register tile of MR rows x 2 vectors sweeps down op(A), one scalar per row and k
   broadcast. op(A) is read in place when its rows are contiguous (A B, A B^T); for A^T it
   is packed MC rows x KC at a time, since a tile read in place would touch KC cache lines
   that fall in a few L1 sets whenever lda is a power of two. Edge rows take smaller tiles
   of the same code (8, 4, 2, 1 rows; the 1- and 2-row tiles span two panels so that they
   keep 8 FMA chains). When K is small, more panels are packed at once so that C is
   written row by row.
   The vector width is the compiler's: 64 bytes with AVX-512 (tile 12 x 2), 32 with
   AVX/AVX2 (6 x 2), 16 with NEON on aarch64 (8 x 2) or SSE2 (6 x 2); plain C scalars
   elsewhere or under NFLOW_NO_VECTOR_EXT (4 x 2, 1.1 KB of float stack, no A packing).
   Stack: two panels (16 KB with AVX2, 32 KB with AVX-512) + packed A (NF__GN_MCB, 24 KB).

   Row-split invariance: every element of C is computed in one order whatever M is and
   wherever its row sits: per k block (KC deep; for A^T B shallower when N is wide, set
   by N alone) a chain acc = acc + a*b over k ascending from 0, then C = acc (first block, no accumulate) or C = C + acc. All tiles, edge tiles and the
   transposed form (below) follow it, so a threaded version that splits the rows gives
   the same bits as one thread. The only other order is the narrow-output kernel for
   !ta (dot products in vector lanes along k); it is chosen from N and K, never M.

   Narrow outputs (N < one panel: a coupling's shift/scale layer, a small input's
   gradient) would leave the tile mostly empty:
     ta:  compute C^T = op(B)^T op(A)^T with the same tiles, written back transposed;
     !ta, N <= 8: dot products, 8 x 1, 4 x 2 or 2 x 4 of C at a time, lanes along k. */

#if !defined(NFLOW_NO_VECTOR_EXT) && (defined(__GNUC__) || defined(__clang__)) && !defined(NF__GN_VB)
#if defined(__AVX512F__)
#define NF__GN_VB 64   /* 32 zmm registers: a 12 x 2 tile is 24 accumulators */
#define NF__GN_MR 12
#elif defined(__AVX__)
#define NF__GN_VB 32   /* 16 ymm registers: 6 x 2 = 12 accumulators + 2 of B + 1 of A */
#define NF__GN_MR 6
#elif defined(__aarch64__) || defined(_M_ARM64)
#define NF__GN_VB 16   /* 32 NEON registers: 8 x 2 = 16 accumulators (12 x 2 spilled: gcc 12
                          holds the 12 scalars of A in registers of their own) */
#define NF__GN_MR 8
#elif defined(__SSE2__) || defined(__ARM_NEON) || defined(__ALTIVEC__) || defined(__wasm_simd128__)
#define NF__GN_VB 16   /* 16 registers (WebAssembly SIMD: the engine maps them to SSE/NEON) */
#define NF__GN_MR 6
#endif
#endif

/* Contraction. With vectors, c += a * b is one fused multiply-add where the target has it:
   GCC's ISO modes (-std=c99, -std=c++11) default to -ffp-contract=off, which halves the
   peak on Intel cores (mul and add share two ports); every tile contracts the same
   expression, so rows still agree. The plain C path has contraction off: there the
   compiler vectorises some tiles and not others, and a multiply vectorised apart from its
   add would round differently from one fused in a neighbouring tile (seen with gcc -O3
   -march=native). Both only for this section, restored at its end. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#ifdef NF__GN_VB
#pragma GCC optimize("fp-contract=fast")
#else
#pragma GCC optimize("fp-contract=off")
#endif
#elif defined(__clang__)
#ifdef NF__GN_VB
#pragma STDC FP_CONTRACT ON
#else
#pragma STDC FP_CONTRACT OFF
#endif
#endif

/* clang's tuning for Intel AVX-512 cores prefers 256-bit vectors and then splits explicit
   512-bit ones in two: the 12 x 2 tile became 48 ymm accumulators and spilled (clang 14,
   -march=cooperlake). min_vector_width(512) keeps them whole, as clang's intrinsics do. */
#if defined(__clang__) && defined(NF__GN_VB) && NF__GN_VB == 64
#define NF__GN_FN static __attribute__((min_vector_width(512)))
#else
#define NF__GN_FN static
#endif

#ifdef NF__GN_VB
typedef nf_real nf__gv __attribute__((vector_size(NF__GN_VB)));
#define NF__GN_VL (NF__GN_VB / (int)sizeof(nf_real))   /* reals per vector */
#define NF__GN_KC 128                                   /* two panels: 16 KB (float, AVX2) */
#define NF__GN_ALIGNED __attribute__((aligned(64)))
#else
typedef nf_real nf__gv;   /* plain C: a "vector" is one real */
#define NF__GN_VL 1
#define NF__GN_MR 4
#define NF__GN_KC 64      /* two panels of 64 x 2 reals: 1 KB of float stack */
#define NF__GN_ALIGNED
#endif
#define NF__GN_W (2 * NF__GN_VL)   /* panel width in reals */
#define NF__GN_PS (NF__GN_KC * NF__GN_W)   /* reals per packed panel */

/* Plain C built for size (-Os defines __OPTIMIZE_SIZE__: a microcontroller's firmware):
   one dot product per element of C, k ascending (the same order as the tiles, one chain
   per element: 0.2 KB of code instead of 2.6 KB). */
#if !defined(NF__GN_VB) && defined(__OPTIMIZE_SIZE__) && !defined(NFLOW_FAST_GEMM)
static void nf__gemm(int ta, int tb, int M, int N, int K, const nf_real *A, int lda,
                     const nf_real *B, int ldb, nf_real *C, int ldc, int accumulate) {
    size_t ars = ta ? 1 : (size_t)lda, acs = ta ? (size_t)lda : 1;
    size_t brs = tb ? 1 : (size_t)ldb, bcs = tb ? (size_t)ldb : 1;
    int i, j, k;
    for (i = 0; i < M; ++i)
        for (j = 0; j < N; ++j) {
            const nf_real *a = A + (size_t)i * ars, *b = B + (size_t)j * bcs; nf_real s = 0, *c = C + (size_t)i * (size_t)ldc + j;
            for (k = 0; k < K; ++k) s += a[(size_t)k * acs] * b[(size_t)k * brs];
            *c = accumulate ? *c + s : s;
        }
}
#else
/* ---- register tiles: rows x vectors, generated from one template ---------- */
#define NF__GN_R1(X, N) X(0, N)
#define NF__GN_R2(X, N) X(0, N) X(1, N)
#define NF__GN_R4(X, N) NF__GN_R2(X, N) X(2, N) X(3, N)
#define NF__GN_R6(X, N) NF__GN_R4(X, N) X(4, N) X(5, N)
#define NF__GN_R8(X, N) NF__GN_R6(X, N) X(6, N) X(7, N)
#define NF__GN_R12(X, N) NF__GN_R8(X, N) X(8, N) X(9, N) X(10, N) X(11, N)
#define NF__GN_V2(Y, i) Y(i, 0) Y(i, 1)
#define NF__GN_V4(Y, i) Y(i, 0) Y(i, 1) Y(i, 2) Y(i, 3)

#define NF__GN_DECL1(i, v) nf__gv c##i##_##v = z;
#define NF__GN_DECL(i, V) V(NF__GN_DECL1, i)
#define NF__GN_FMA1(i, v) c##i##_##v += b##v * s;
#define NF__GN_FMA(i, V) { nf_real s = a[(size_t)(i) * ars]; V(NF__GN_FMA1, i) }
#define NF__GN_OUT1(i, v) { nf_real *p = c + (size_t)(i) * rsc + (v) * NF__GN_VL; \
        if (add) { nf__gv t; memcpy(&t, p, sizeof t); t += c##i##_##v; memcpy(p, &t, sizeof t); } \
        else memcpy(p, &c##i##_##v, sizeof c##i##_##v); }
#define NF__GN_OUT(i, V) V(NF__GN_OUT1, i)

/* b holds two panels (b, b + ps) for a 4-vector tile; vector v of row k is at
   b + (v / 2) * ps + (v % 2) * NF__GN_VL. */
#define NF__GN_LOAD2 memcpy(&b0, b, sizeof b0); memcpy(&b1, b + NF__GN_VL, sizeof b1);
#define NF__GN_LOAD4 NF__GN_LOAD2 memcpy(&b2, b + ps, sizeof b2); memcpy(&b3, b + ps + NF__GN_VL, sizeof b3);
#define NF__GN_BDECL2 nf__gv b0, b1;
#define NF__GN_BDECL4 nf__gv b0, b1, b2, b3;

/* c (+)= a(rows x kc, element (i, k) at a[i * ars + k * acs]) times the packed panel(s) */
#define NF__GN_TILE(name, ROWS, V, BDECL, LOAD) \
NF__GN_FN void name(int kc, const nf_real *NF__RESTRICT a, size_t ars, size_t acs, const nf_real *NF__RESTRICT b, \
                 size_t ps, nf_real *NF__RESTRICT c, size_t rsc, int add) { \
    nf__gv z; BDECL int k; \
    (void)ps; memset(&z, 0, sizeof z); \
    { ROWS(NF__GN_DECL, V) \
      for (k = 0; k < kc; ++k, a += acs, b += NF__GN_W) { LOAD ROWS(NF__GN_FMA, V) } \
      ROWS(NF__GN_OUT, V) } \
}

#if NF__GN_MR == 12
NF__GN_TILE(nf__gn_tile12, NF__GN_R12, NF__GN_V2, NF__GN_BDECL2, NF__GN_LOAD2)
#endif
#if NF__GN_MR >= 8
NF__GN_TILE(nf__gn_tile8, NF__GN_R8, NF__GN_V2, NF__GN_BDECL2, NF__GN_LOAD2)
#elif NF__GN_MR == 6
NF__GN_TILE(nf__gn_tile6, NF__GN_R6, NF__GN_V2, NF__GN_BDECL2, NF__GN_LOAD2)
#endif
NF__GN_TILE(nf__gn_tile4, NF__GN_R4, NF__GN_V2, NF__GN_BDECL2, NF__GN_LOAD2)
NF__GN_TILE(nf__gn_tile2, NF__GN_R2, NF__GN_V2, NF__GN_BDECL2, NF__GN_LOAD2)
NF__GN_TILE(nf__gn_tile1, NF__GN_R1, NF__GN_V2, NF__GN_BDECL2, NF__GN_LOAD2)
NF__GN_TILE(nf__gn_tile2w, NF__GN_R2, NF__GN_V4, NF__GN_BDECL4, NF__GN_LOAD4)
NF__GN_TILE(nf__gn_tile1w, NF__GN_R1, NF__GN_V4, NF__GN_BDECL4, NF__GN_LOAD4)

typedef void (*nf__gn_tile_fn)(int, const nf_real *, size_t, size_t, const nf_real *, size_t, nf_real *, size_t, int);

/* Pack columns j0 .. j0 + nw - 1 of op(B) (element (k, j) at B[k * brs + j * bcs]),
   rows k0 .. k0 + kc - 1, into np panels of kc x NF__GN_W (kc * NF__GN_W reals apart),
   zero-padded to the right. */
static void nf__gn_pack(nf_real *NF__RESTRICT bp, const nf_real *NF__RESTRICT B, size_t brs, size_t bcs,
                        int k0, int kc, int j0, int nw, int np) {
    int p, k, j;
    for (p = 0; p < np; ++p) {
        nf_real *d = bp + (size_t)p * (size_t)kc * NF__GN_W;
        int jn = nw - p * NF__GN_W;
        if (jn > NF__GN_W) jn = NF__GN_W;
        if (bcs == 1) {   /* rows of op(B) contiguous: copy */
            for (k = 0; k < kc; ++k) {
                const nf_real *s = B + (size_t)(k0 + k) * brs + (size_t)(j0 + p * NF__GN_W);
                nf_real *dk = d + (size_t)k * NF__GN_W;
                if (jn == NF__GN_W) memcpy(dk, s, sizeof(nf_real) * NF__GN_W);
                else { for (j = 0; j < jn; ++j) dk[j] = s[j]; for (; j < NF__GN_W; ++j) dk[j] = 0; }
            }
        } else {          /* columns contiguous (brs == 1 for tb): transpose */
            for (j = 0; j < jn; ++j) {
                const nf_real *s = B + (size_t)(j0 + p * NF__GN_W + j) * bcs + (size_t)k0 * brs;
                for (k = 0; k < kc; ++k) d[(size_t)k * NF__GN_W + (size_t)j] = s[(size_t)k * brs];
            }
            for (; j < NF__GN_W; ++j)
                for (k = 0; k < kc; ++k) d[(size_t)k * NF__GN_W + (size_t)j] = 0;
        }
    }
}

/* The tile for the rows left (greedy: MR, then 8, 4, 2, 1); tiles of 1 or 2 rows span both
   panels when there are two. Returns the rows it takes. */
static int nf__gn_pick(int left, int np, nf__gn_tile_fn *f) {
#if NF__GN_MR == 12
    if (left >= 12) { *f = nf__gn_tile12; return 12; }
#endif
#if NF__GN_MR >= 8
    if (left >= 8) { *f = nf__gn_tile8; return 8; }
#elif NF__GN_MR == 6
    if (left >= 6) { *f = nf__gn_tile6; return 6; }
#endif
    if (left >= 4) { *f = nf__gn_tile4; return 4; }
    if (left >= 2) { *f = np == 2 ? nf__gn_tile2w : nf__gn_tile2; return 2; }
    *f = np == 2 ? nf__gn_tile1w : nf__gn_tile1; return 1;
}

#ifdef NF__GN_VB
/* op(A) column-contiguous (ta): a tile read in place touches kc cache lines of A, which all
   fall in a few L1 sets when lda is a power of two (A^T B at lda 512 ran at 65 instead of
   81 GFLOP/s on Zen 3). So op(A) is packed MC rows x KC at a time, tile by tile, k-major. */
#ifndef NF__GN_MCB
#define NF__GN_MCB 24576   /* bytes of packed op(A): 48 KB would be 5-10% faster on A^T B
                              (Zen 3) but stack is scarce in threads (musl: 128 KB) */
#endif
#define NF__GN_MC ((NF__GN_MCB / (NF__GN_KC * (int)sizeof(nf_real))) / NF__GN_MR * NF__GN_MR)
#endif

/* The blocked product in canonical order. C element (i, j) at C[i * rsc + j * csc];
   op(A) element (i, k) at A[i * ars + k * acs], op(B) element (k, j) at B[k * brs + j * bcs].
   Loops: k blocks of KC; [row blocks of MC when op(A) is packed]; groups of panels (two
   when kc = KC, more when kc is small, so that C is written row by row); tiles down the
   rows; the panels of the group. */
static void nf__gn_blocked(int M, int N, int K, const nf_real *A, size_t ars, size_t acs,
                           const nf_real *B, size_t brs, size_t bcs, nf_real *C, size_t rsc, size_t csc, int accumulate) {
    nf_real bp[2 * NF__GN_PS] NF__GN_ALIGNED;
    nf_real tmp[(NF__GN_MR > 4 ? NF__GN_MR : 4) * 2 * NF__GN_W] NF__GN_ALIGNED;
#ifdef NF__GN_MC
    nf_real ap[NF__GN_MC * NF__GN_KC] NF__GN_ALIGNED;
    int apack = ars == 1 && acs != 1;
#else
    const nf_real *ap = 0;   /* small cores: op(A) is read in place */
    const int apack = 0;
#endif
    int k0, kc, j0, i0, i1, mc, mr, pj0 = -1;   /* pj0: the panels in bp start there (this k block) */
    int kcb = NF__GN_KC;   /* k block */
#ifdef NF__GN_MC
    if (apack && csc == 1) {   /* A^T B: op(B)'s whole k block in bp when k blocks of >= 32 allow
                      it, so that it is packed once, not once per MC block of A^T (at N = 256, 6
                      times). Depends on N only, so rows split alike (not for the transposed
                      narrow form, whose N is the caller's M). */
        int np = (N + NF__GN_W - 1) / NF__GN_W, kb = (2 * NF__GN_KC / np) & ~3;
        if (np > 2 && kb >= 32) kcb = kb;
    }
#endif
    for (k0 = 0; k0 < K; k0 += kcb, pj0 = -1) {
        int add = accumulate || k0 > 0, gmax;
        size_t ps;
        kc = K - k0 < kcb ? K - k0 : kcb;
        ps = (size_t)kc * NF__GN_W;
        gmax = 2 * NF__GN_KC / kc;   /* panels the buffer holds */
        for (i1 = 0; i1 < M; i1 += mc) {   /* blocks of MC rows when op(A) is packed, else all rows */
            mc = M - i1;
#ifdef NF__GN_MC
            if (apack) {   /* k-major tiles, each row of A read once: constant-size copies for full tiles */
                int k, i, nfull, rest;
                int mcmax = NF__GN_MC * NF__GN_KC / kc / NF__GN_MR * NF__GN_MR;   /* rows ap holds at this kc */
                if (mc > mcmax) mc = mcmax;
                nfull = mc / NF__GN_MR; rest = mc - nfull * NF__GN_MR;
                for (k = 0; k < kc; ++k) {
                    const nf_real *s = A + (size_t)i1 + (size_t)(k0 + k) * acs;
                    nf_real *d = ap + (size_t)k * NF__GN_MR;
                    int t, off;
                    for (t = 0; t < nfull; ++t, s += NF__GN_MR, d += (size_t)NF__GN_MR * (size_t)kc)
                        memcpy(d, s, sizeof(nf_real) * NF__GN_MR);
                    for (off = 0, d = ap + (size_t)nfull * NF__GN_MR * (size_t)kc; off < rest; off += mr, d += (size_t)mr * (size_t)kc) {
                        nf__gn_tile_fn f;
                        mr = nf__gn_pick(rest - off, 1, &f);
                        /* constant-size copies: as a loop gcc 12 made this "rep movs", whose
                           start-up cost was 4% of a P1 training step (rest 4 of 64 rows) */
                        if (mr == 8) memcpy(d + (size_t)k * 8, s + off, sizeof(nf_real) * 8);
                        else if (mr == 6) memcpy(d + (size_t)k * 6, s + off, sizeof(nf_real) * 6);
                        else if (mr == 4) memcpy(d + (size_t)k * 4, s + off, sizeof(nf_real) * 4);
                        else if (mr == 2) memcpy(d + (size_t)k * 2, s + off, sizeof(nf_real) * 2);
                        else for (i = 0; i < mr; ++i) d[(size_t)k * (size_t)mr + (size_t)i] = s[off + i];
                    }
                }
            }
#endif
            for (j0 = 0; j0 < N; ) {
                int g = (N - j0 + NF__GN_W - 1) / NF__GN_W, nw, off = 0;
                if (g > gmax) g = gmax;
                nw = N - j0 < g * NF__GN_W ? N - j0 : g * NF__GN_W;
                /* already in bp when one group holds all of op(B)'s k block: packed once for every MC block */
                if (j0 != pj0) nf__gn_pack(bp, B, brs, bcs, k0, kc, j0, nw, g);
                pj0 = j0;
                for (i0 = i1; i0 < i1 + mc; off += mr * kc, i0 += mr) {
                    nf__gn_tile_fn f;
                    int p, pn;
                    const nf_real *a;
                    size_t tars, tacs;
                    mr = nf__gn_pick(i1 + mc - i0, 1, &f);
                    a = apack ? ap + off : A + (size_t)i0 * ars + (size_t)k0 * acs;
                    tars = apack ? 1 : ars; tacs = apack ? (size_t)mr : acs;
                    for (p = 0; p < g; p += pn) {   /* panels p (and p + 1 for the wide tiles) */
                        int cols, tw;
                        nf_real *cp = C + (size_t)i0 * rsc + (size_t)(j0 + p * NF__GN_W) * csc;
                        pn = nf__gn_pick(mr, g - p >= 2 ? 2 : 1, &f) <= 2 && g - p >= 2 ? 2 : 1;
                        tw = pn * NF__GN_W;
                        cols = nw - p * NF__GN_W < tw ? nw - p * NF__GN_W : tw;
                        if (csc == 1 && cols == tw) f(kc, a, tars, tacs, bp + (size_t)p * ps, ps, cp, rsc, add);
                        else {   /* edge or transposed C: through a small tile */
                            int i, j;
                            f(kc, a, tars, tacs, bp + (size_t)p * ps, ps, tmp, (size_t)tw, 0);
                            for (i = 0; i < mr; ++i)
                                for (j = 0; j < cols; ++j) {
                                    nf_real *d = cp + (size_t)i * rsc + (size_t)j * csc;
                                    *d = add ? *d + tmp[i * tw + j] : tmp[i * tw + j];
                                }
                        }
                    }
                }
                j0 += nw;
            }
        }
    }
}

#ifdef NF__GN_VB
/* ---- narrow outputs, !ta: C(i, j) = dot(A[i, :], op(B)(:, j)) in vector lanes ---- */
#define NF__GN_NL 8    /* widest N given to the dot kernel */
#define NF__GN_KL 256  /* k block of the dot kernel (packed op(B)^T: NF__GN_NL x NF__GN_KL) */

/* sum of a vector's lanes, halving (a fixed tree: the same for every row) */
NF__GN_FN nf_real nf__gn_hsum(const nf__gv *v) {
    nf_real t[NF__GN_VL];
    int w, l;
    memcpy(t, v, sizeof *v);
    for (w = NF__GN_VL / 2; w >= 1; w /= 2)
        for (l = 0; l < w; ++l) t[l] += t[l + w];
    return t[0];
}

/* the n < VL reals at p, zero-padded to a vector */
NF__GN_FN void nf__gn_ldp(nf__gv *v, const nf_real *p, int n) {
    nf_real t[NF__GN_VL];
    int l;
    for (l = 0; l < NF__GN_VL; ++l) t[l] = l < n ? p[l] : 0;
    memcpy(v, t, sizeof *v);
}

/* Dot kernels: R rows of A (a[r], kc long) against J columns of op(B) (b[j], kc long),
   R x J = 8 vector accumulators; out[r * J + j] = the dot. Every (row, column) is summed
   the same way in each of them and in each slot: lane l takes k = l mod VL in order (the
   last, partial vector zero-padded), then nf__gn_hsum. No scalar multiply-add: a compiler
   that vectorised some slots' scalar tails and not others could round them differently. */
#define NF__GN_D(r, j) s##r##j += x##r * y##j;
#define NF__GN_LD(v, p) memcpy(&v, (p) + k, sizeof v);
#define NF__GN_LDP(v, p) nf__gn_ldp(&v, (p) + k, kc - k);
/* the vector loop, then the last partial vector (LDP: zero-padded loads) */
#define NF__GN_DOTLOOP(BODY) for (k = 0; k + NF__GN_VL <= kc; k += NF__GN_VL) { BODY(NF__GN_LD) } \
    if (k < kc) { BODY(NF__GN_LDP) }
#define NF__GN_DOT_END(R, J) \
    for (r = 0; r < R; ++r) for (j = 0; j < J; ++j) out[r * J + j] = nf__gn_hsum(&acc[r * J + j]);
NF__GN_FN void nf__gn_dot2x4(int kc, const nf_real *const *a, const nf_real *const *b, nf_real *out) {
    nf__gv z, x0, x1, y0, y1, y2, y3, s00, s01, s02, s03, s10, s11, s12, s13, acc[8];
    int k, r, j;
    memset(&z, 0, sizeof z);
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = z;
#define NF__GN_B24(L) L(x0, a[0]) L(x1, a[1]) L(y0, b[0]) L(y1, b[1]) L(y2, b[2]) L(y3, b[3]) \
        NF__GN_D(0, 0) NF__GN_D(0, 1) NF__GN_D(0, 2) NF__GN_D(0, 3) NF__GN_D(1, 0) NF__GN_D(1, 1) NF__GN_D(1, 2) NF__GN_D(1, 3)
    NF__GN_DOTLOOP(NF__GN_B24)
    acc[0] = s00; acc[1] = s01; acc[2] = s02; acc[3] = s03; acc[4] = s10; acc[5] = s11; acc[6] = s12; acc[7] = s13;
    NF__GN_DOT_END(2, 4)
}
NF__GN_FN void nf__gn_dot4x2(int kc, const nf_real *const *a, const nf_real *const *b, nf_real *out) {
    nf__gv z, x0, x1, x2, x3, y0, y1, s00, s01, s10, s11, s20, s21, s30, s31, acc[8];
    int k, r, j;
    memset(&z, 0, sizeof z);
    s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = z;
#define NF__GN_B42(L) L(x0, a[0]) L(x1, a[1]) L(x2, a[2]) L(x3, a[3]) L(y0, b[0]) L(y1, b[1]) \
        NF__GN_D(0, 0) NF__GN_D(0, 1) NF__GN_D(1, 0) NF__GN_D(1, 1) NF__GN_D(2, 0) NF__GN_D(2, 1) NF__GN_D(3, 0) NF__GN_D(3, 1)
    NF__GN_DOTLOOP(NF__GN_B42)
    acc[0] = s00; acc[1] = s01; acc[2] = s10; acc[3] = s11; acc[4] = s20; acc[5] = s21; acc[6] = s30; acc[7] = s31;
    NF__GN_DOT_END(4, 2)
}
NF__GN_FN void nf__gn_dot8x1(int kc, const nf_real *const *a, const nf_real *const *b, nf_real *out) {
    nf__gv z, x0, x1, x2, x3, x4, x5, x6, x7, y0, s00, s10, s20, s30, s40, s50, s60, s70, acc[8];
    int k, r, j;
    memset(&z, 0, sizeof z);
    s00 = s10 = s20 = s30 = s40 = s50 = s60 = s70 = z;
#define NF__GN_B81(L) L(y0, b[0]) L(x0, a[0]) L(x1, a[1]) L(x2, a[2]) L(x3, a[3]) L(x4, a[4]) L(x5, a[5]) \
        L(x6, a[6]) L(x7, a[7]) NF__GN_D(0, 0) NF__GN_D(1, 0) NF__GN_D(2, 0) NF__GN_D(3, 0) NF__GN_D(4, 0) \
        NF__GN_D(5, 0) NF__GN_D(6, 0) NF__GN_D(7, 0)
    NF__GN_DOTLOOP(NF__GN_B81)
    acc[0] = s00; acc[1] = s10; acc[2] = s20; acc[3] = s30; acc[4] = s40; acc[5] = s50; acc[6] = s60; acc[7] = s70;
    NF__GN_DOT_END(8, 1)
}

/* !ta, N <= NF__GN_NL: C(i, j) (+)= dot(A[i, :], op(B)(:, j)), k in blocks of NF__GN_KL.
   The kernel's shape depends on N only; missing rows and columns of the last group
   repeat the last real one and are not stored. */
static void nf__gn_dots(int tb, int M, int N, int K, const nf_real *A, int lda,
                        const nf_real *B, int ldb, nf_real *C, int ldc, int accumulate) {
    nf_real pack[NF__GN_NL * NF__GN_KL] NF__GN_ALIGNED;
    nf_real out[8];
    const nf_real *ar[8], *bc[4];
    int R = N == 1 ? 8 : N == 2 ? 4 : 2, J = 8 / R;
    void (*dot)(int, const nf_real *const *, const nf_real *const *, nf_real *) =
        N == 1 ? nf__gn_dot8x1 : N == 2 ? nf__gn_dot4x2 : nf__gn_dot2x4;
    int k0, kc, i, j, j0, k, r;
    for (k0 = 0; k0 < K; k0 += NF__GN_KL) {
        int add = accumulate || k0 > 0;
        kc = K - k0 < NF__GN_KL ? K - k0 : NF__GN_KL;
        if (!tb)   /* op(B)(:, j) contiguous */
            for (j = 0; j < N; ++j)
                for (k = 0; k < kc; ++k) pack[j * NF__GN_KL + k] = B[(size_t)(k0 + k) * (size_t)ldb + (size_t)j];
        for (j0 = 0; j0 < N; j0 += J) {
            int nj = N - j0 < J ? N - j0 : J;
            for (j = 0; j < J; ++j) {
                int jj = j0 + (j < nj ? j : nj - 1);
                bc[j] = tb ? B + (size_t)jj * (size_t)ldb + k0 : pack + jj * NF__GN_KL;
            }
            for (i = 0; i < M; i += R) {
                int nr = M - i < R ? M - i : R;
                for (r = 0; r < R; ++r) ar[r] = A + (size_t)(i + (r < nr ? r : nr - 1)) * (size_t)lda + k0;
                dot(kc, ar, bc, out);
                for (r = 0; r < nr; ++r)
                    for (j = 0; j < nj; ++j) {
                        nf_real *d = C + (size_t)(i + r) * (size_t)ldc + j0 + j;
                        *d = add ? *d + out[r * J + j] : out[r * J + j];
                    }
            }
        }
    }
}
#endif

static void nf__gemm(int ta, int tb, int M, int N, int K, const nf_real *A, int lda,
                          const nf_real *B, int ldb, nf_real *C, int ldc, int accumulate) {
    /* element (i, k) of op(A) is A[i * ars + k * acs]; (k, j) of op(B) is B[k * brs + j * bcs] */
    size_t ars = ta ? 1 : (size_t)lda, acs = ta ? (size_t)lda : 1;
    size_t brs = tb ? 1 : (size_t)ldb, bcs = tb ? (size_t)ldb : 1;
    int i;
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!accumulate) for (i = 0; i < M; ++i) memset(C + (size_t)i * (size_t)ldc, 0, (size_t)N * sizeof(nf_real));
        return;
    }
#ifdef NF__GN_VB
    if (!ta && N <= NF__GN_NL && K >= 2 * NF__GN_VL) {   /* narrow, rows along k: dots */
        nf__gn_dots(tb, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
        return;
    }
#endif
    if (ta && N < NF__GN_W) {   /* narrow, op(A)^T rows contiguous: C^T = op(B)^T op(A)^T */
        nf__gn_blocked(N, M, K, B, bcs, brs, A, acs, ars, C, 1, (size_t)ldc, accumulate);
        return;
    }
    nf__gn_blocked(M, N, K, A, ars, acs, B, brs, bcs, C, (size_t)ldc, 1, accumulate);
}
#endif /* the compact kernel for -Os */

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#elif defined(__clang__)
#pragma STDC FP_CONTRACT DEFAULT
#endif

NFDEF void nf_gemm(int ta, int tb, int M, int N, int K, const nf_real *A, int lda,
                   const nf_real *B, int ldb, nf_real *C, int ldc, int accumulate) {
    nf__gemm(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

/* Below this many multiply-adds work is not worth cutting for threads: a parallel-for
   costs 3-10 microseconds to start and join (OpenMP on the project's 2-core VMs), and
   2^23 is ~75 microseconds of a 220 GFLOP/s core's work (at 2^19, training P1 and P3
   ran 0.7-0.9x as fast on two threads as on one). Counted in float: exact enough, never overflows,
   and no double arithmetic on a single-precision FPU. */
#ifndef NF__PAR_MIN
#define NF__PAR_MIN 8388608.0f
#endif
#ifndef NFLOW_NO_THREADS
#define NF__RUN_TMAX 64      /* most pieces a call cuts its work into */
#define NF__SHARD_ROWS 256   /* a training batch of twice this or more is two shards (at 2 x
                                128, P1's steps ran 6% slower on one thread, against 1.46x on two) */
#define NF__SHARDS(n) ((n) >= 2 * NF__SHARD_ROWS)
#else
#define NF__RUN_TMAX 1       /* (a microcontroller's stack) */
#define NF__SHARDS(n) 0      /* no threads to run shards at once: one tape */
#endif
/* Rows 0 .. M-1 cut into at most par->threads pieces of whole register tiles, fn(arg, r0,
   m) run on each (one call fn(arg, 0, M) when there is one thread, too few rows, or less
   than NF__PAR_MIN of work). Work that follows a product on the same rows (bias and
   activation, their backward) goes in the same piece: its data stays in the core that
   wrote it. */
typedef void (*nf__rows_fn)(void *arg, int r0, int m);
typedef struct nf__prows { nf__rows_fn fn; void *arg; int M, rows; } nf__prows;
#ifndef NFLOW_NO_THREADS
static void nf__prows_task(void *arg, int i) {
    const nf__prows *p = (const nf__prows *)arg;
    int r0 = i * p->rows, m = p->M - r0 < p->rows ? p->M - r0 : p->rows;
    if (m > 0) p->fn(p->arg, r0, m);
}
#endif
#ifndef NFLOW_NO_THREADS
static void nf__par_rows(const nf_parallel *par, int M, float work, nf__rows_fn fn, void *arg) {
    int T = par && par->run ? par->threads : 1;
    if (T > 1 && M >= 2 * NF__GN_MR && work >= NF__PAR_MIN) {
        nf__prows p; int tiles = (M + NF__GN_MR - 1) / NF__GN_MR;
        if (T > tiles) T = tiles;
        p.rows = (tiles + T - 1) / T * NF__GN_MR;
        p.fn = fn; p.arg = arg; p.M = M;
        par->run(par->pool, (M + p.rows - 1) / p.rows, nf__prows_task, &p);
        return;
    }
    fn(arg, 0, M);
}
#else   /* a direct call: the pieces may be inlined */
#define nf__par_rows(par, M, work, fn, arg) ((void)(par), (void)(work), fn(arg, 0, M))
#endif
#ifndef NFLOW_NO_TRAINING   /* (its users: the trainer's sweeps) */
/* Items 0 .. n-1 in at most par->threads pieces of whole blocks of `block` items (the
   last may be short), fn(arg, piece, i0, m) run on each; returns how many pieces (one
   below NF__PAR_MIN of work; 0 for no items). For sweeps over the parameters: per-piece
   results go to slot `piece` of the caller's arrays (NF__RUN_TMAX of them). */
typedef void (*nf__span_fn)(void *arg, int piece, size_t i0, size_t m);
typedef struct nf__pspan { nf__span_fn fn; void *arg; size_t n, step; } nf__pspan;
#ifndef NFLOW_NO_THREADS
static void nf__pspan_task(void *arg, int i) {
    const nf__pspan *p = (const nf__pspan *)arg; size_t i0 = (size_t)i * p->step;
    p->fn(p->arg, i, i0, p->n - i0 < p->step ? p->n - i0 : p->step);
}
#endif
static int nf__par_spans(const nf_parallel *par, size_t n, size_t block, float work, nf__span_fn fn, void *arg) {
#ifndef NFLOW_NO_THREADS
    int T = par && par->run && work >= NF__PAR_MIN ? (par->threads < NF__RUN_TMAX ? par->threads : NF__RUN_TMAX) : 1;
    nf__pspan p;
    if (n == 0) return 0;
    p.step = ((n + (size_t)T - 1) / (size_t)T + block - 1) / block * block;
    T = (int)((n + p.step - 1) / p.step);
    if (T > 1) { p.fn = fn; p.arg = arg; p.n = n; par->run(par->pool, T, nf__pspan_task, &p); return T; }
#else
    (void)par; (void)block; (void)work;
    if (n == 0) return 0;
#endif
    fn(arg, 0, 0, n);
    return 1;
}
#endif
typedef struct nf__gpar {
    int ta, tb, N, K, lda, ldb, ldc, acc;
    const nf_real *A, *B; nf_real *C;
} nf__gpar;
static void nf__gemm_piece(void *arg, int r0, int m) {
    const nf__gpar *g = (const nf__gpar *)arg;
    nf__gemm(g->ta, g->tb, m, g->N, g->K, g->ta ? g->A + r0 : g->A + (size_t)r0 * (size_t)g->lda, g->lda,
             g->B, g->ldb, g->C + (size_t)r0 * (size_t)g->ldc, g->ldc, g->acc);
}
NFDEF void nf_gemm_parallel(const nf_parallel *par, int ta, int tb, int M, int N, int K, const nf_real *A, int lda,
                            const nf_real *B, int ldb, nf_real *C, int ldc, int accumulate) {
    nf__gpar g;
    g.ta = ta; g.tb = tb; g.N = N; g.K = K; g.lda = lda; g.ldb = ldb; g.ldc = ldc; g.acc = accumulate;
    g.A = A; g.B = B; g.C = C;
    nf__par_rows(par, M, (float)M * (float)N * (float)K, nf__gemm_piece, &g);
}
#ifdef NFLOW_OPENMP
#include <omp.h>
NFDEF void nf_parallel_openmp(void *pool, int n, nf_task_fn task, void *arg) {
    int i; (void)pool;
#pragma omp parallel for schedule(static)
    for (i = 0; i < n; ++i) task(arg, i);
}
#endif

/* ---- activations ------------------------------------------------------------ */
/* Softplus runs on every hidden unit of a spline conditioner and on every spline knot's
   derivative; through libm's exp and log1p (a call per element, no vector form) it took
   three quarters of an NSF training step. These are its two halves without libm, in
   operations a compiler vectorises, and the same bits on every target and libm.
   e^x for x <= 0: x = k ln2 + r with |r| <= ln2/2 (ln2 split in two, so k ln2 is exact),
   e^r by its Taylor polynomial (truncation below a third of an ulp), 2^k put into the
   exponent bits. Below the smallest normal's exponent (x < -87 float, -708 double) it is 0;
   -inf gives NaN (so does +-inf into softplus: an overflow upstream stays visible). */
#ifdef NFLOW_DOUBLE
typedef long long nf__expk;
#else
typedef int nf__expk;
#endif
/* the shared core of nf__exp_nonpos and nf__exp: e^xc = p 2^k, |xc| within the exponent range */
NF__ELEM nf_real nf__exp_reduce(nf_real xc, nf__expk *k) {
    /* k = round(x / ln2) by adding 1.5 2^52 (2^23): the sum's low bits hold k. No
       float-to-int conversion, so a NaN (or -inf, which the clamp turns into NaN) gives a
       NaN result and never undefined behaviour; k back to floating point from the integer,
       so -ffast-math cannot fold the rounding away */
#ifdef NFLOW_DOUBLE
    union { uint64_t u; double d; } m;
    double kf, r;
    m.d = xc * 1.4426950408889634 + 6755399441055744.0;
    *k = (long long)(int64_t)(m.u - 0x4338000000000000ull);
    kf = (double)*k;
    r = (xc - kf * 6.93147180369123816490e-01) - kf * 1.90821492927058770002e-10;
    return 1 + r * (1 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320
        + r * (1.0 / 362880 + r * (1.0 / 3628800 + r * (1.0 / 39916800 + r * (1.0 / 479001600 + r * (1.0 / 6227020800.0)))))))))))));
#else
    union { uint32_t u; float f; } m;
    float kf, r;
    m.f = xc * 1.44269504f + 12582912.0f;
    *k = (int)(int32_t)(m.u - 0x4B400000u);
    kf = (float)*k;
    r = (xc - kf * 0.693145752f) - kf * 1.42860677e-6f;
    return 1 + r * (1 + r * (1.0f / 2 + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040 + r * (1.0f / 40320))))))));
#endif
}
/* 2^k for k within the normal exponents */
NF__ELEM nf_real nf__pow2(nf__expk k) {
#ifdef NFLOW_DOUBLE
    union { uint64_t u; double d; } m;
    m.u = (uint64_t)(k + 1023) << 52;
    return m.d;
#else
    union { uint32_t u; float f; } m;
    m.u = (uint32_t)(k + 127) << 23;
    return m.f;
#endif
}
NF__ELEM nf_real nf__exp_nonpos(nf_real x) {
#ifdef NFLOW_DOUBLE
    const double lo = -708.0;
#else
    const float lo = -87.0f;
#endif
    nf_real xc = (x < lo) * lo + (x >= lo) * x, p;
    nf__expk k;
    p = nf__exp_reduce(xc, &k);
    return p * nf__pow2(k) * (x < lo ? 0 : 1);   /* selects written as products: gcc 12 vectorises those */
}
/* log(1 + t) for t in [0, 1]: 2 atanh(s) with s = t / (2 + t) in [0, 1/3], its odd series
   (no cancellation for small t: s carries t's relative precision) */
NF__ELEM nf_real nf__log1p_unit(nf_real t) {
    nf_real s = t / (2 + t), q = s * s;
#ifdef NFLOW_DOUBLE
    nf_real p = 1 + q * (1.0 / 3 + q * (1.0 / 5 + q * (1.0 / 7 + q * (1.0 / 9 + q * (1.0 / 11 + q * (1.0 / 13 + q * (1.0 / 15 + q * (1.0 / 17
              + q * (1.0 / 19 + q * (1.0 / 21 + q * (1.0 / 23 + q * (1.0 / 25 + q * (1.0 / 27 + q * (1.0 / 29 + q * (1.0 / 31)))))))))))))));
#else
    nf_real p = 1 + q * (1.0f / 3 + q * (1.0f / 5 + q * (1.0f / 7 + q * (1.0f / 9 + q * (1.0f / 11 + q * (1.0f / 13 + q * (1.0f / 15)))))));
#endif
    return 2 * s * p;
}
/* log(1 + e^x) = max(x, 0) + log1p(e^-|x|) */
NF__ELEM nf_real nf__softplus(nf_real x) { return (x > 0 ? x : 0) + nf__log1p_unit(nf__exp_nonpos(x > 0 ? -x : x)); }
/* The affine coupling's log-scale s = c tanh(u / c) and its e^s ran through libm's tanh
   and exp, a call per element (6-10% of RealNVP P4's log_prob and training). Here in
   vectorisable operations, within a few ulps of libm (tested).
   e^x - 1 for x <= 0: near 0 its Taylor series (no cancellation: the result keeps x's
   relative precision), from -0.35 down e^x - 1 (|result| > 0.29, nothing to cancel). */
NF__ELEM nf_real nf__expm1_nonpos(nf_real x) {
    /* x below -80 is -80 (e^x - 1 is -1 in both precisions there, and the polynomial stays
       finite); the two branches selected by products, which gcc vectorises */
    nf_real xc = (x < NF__R(-80)) * NF__R(-80) + (x >= NF__R(-80)) * x, near = (nf_real)(xc > NF__R(-0.35));
#ifdef NFLOW_DOUBLE
    nf_real p = xc * (1 + xc * (1.0 / 2 + xc * (1.0 / 6 + xc * (1.0 / 24 + xc * (1.0 / 120 + xc * (1.0 / 720 + xc * (1.0 / 5040
              + xc * (1.0 / 40320 + xc * (1.0 / 362880 + xc * (1.0 / 3628800 + xc * (1.0 / 39916800 + xc * (1.0 / 479001600
              + xc * (1.0 / 6227020800.0 + xc * (1.0 / 87178291200.0))))))))))))));
#else
    nf_real p = xc * (1 + xc * (1.0f / 2 + xc * (1.0f / 6 + xc * (1.0f / 24 + xc * (1.0f / 120 + xc * (1.0f / 720 + xc * (1.0f / 5040
              + xc * (1.0f / 40320 + xc * (1.0f / 362880)))))))));
#endif
    return near * p + (1 - near) * (nf__exp_nonpos(xc) - 1);
}
/* tanh x: t = -m / (2 + m) with m = e^(-2|x|) - 1 is tanh |x|; x's sign put on it (bits:
   -0 stays -0). |x| beyond 40 is 1 in both precisions (the clamp also makes +-inf +-1);
   NaN stays NaN. */
NF__ELEM nf_real nf__tanh(nf_real x) {
    nf_real a = -NF_FABS(x), m, t;
#ifdef NFLOW_DOUBLE
    uint64_t ux, ut; const uint64_t sign = 0x8000000000000000ull;
#else
    uint32_t ux, ut; const uint32_t sign = 0x80000000u;
#endif
    a = a < NF__R(-40) ? NF__R(-40) : a;
    m = nf__expm1_nonpos(2 * a);
    t = -m / (2 + m);
    memcpy(&ux, &x, sizeof x); memcpy(&ut, &t, sizeof t);
    ut = (ut & ~sign) | (ux & sign);   /* |t| with x's sign */
    memcpy(&t, &ut, sizeof t);
    return t;
}
/* c ? a : b on the bits (a compare and a blend: gcc 12 does not vectorise a chain of
   floating-point ?: clamps; products would turn +-inf into NaN) */
NF__ELEM nf_real nf__sel(int c, nf_real a, nf_real b) {
#ifdef NFLOW_DOUBLE
    uint64_t ua, ub, m = (uint64_t)0 - (uint64_t)c;
#else
    uint32_t ua, ub, m = (uint32_t)0 - (uint32_t)c;
#endif
    memcpy(&ua, &a, sizeof a); memcpy(&ub, &b, sizeof b);
    ua = (ua & m) | (ub & ~m);
    memcpy(&a, &ua, sizeof a);
    return a;
}
/* e^x for any x: k = round(x / ln2) as in nf__exp_nonpos, 2^k applied as two powers of
   two (each a normal number) so that results overflow to inf and underflow through the
   subnormals where libm's do; -inf gives 0, +inf inf, NaN NaN */
NF__ELEM nf_real nf__exp(nf_real x) {
#ifdef NFLOW_DOUBLE
    const double lo = -750.0, hi = 710.0;
#else
    const float lo = -110.0f, hi = 89.0f;
#endif
    nf_real xc = nf__sel(x < lo, lo, x), p;
    nf__expk k, k1;
    xc = nf__sel(xc > hi, hi, xc);
    p = nf__exp_reduce(xc, &k);
    k1 = k / 2;
    return p * nf__pow2(k1) * nf__pow2(k - k1);
}
/* Code that buys speed only (same results, or the same forward values) is left out of
   size-optimised builds (-Os: microcontroller firmware, where it cost 1.3 KB of a training
   firmware's 18.6): the flat pass of same-shape binary ops, the blocked bias gradient, the
   one-node affine transformer on the tape */
#if defined(__OPTIMIZE_SIZE__)
#define NF__SPEED 0
#else
#define NF__SPEED 1
#endif
/* With libm's functions (no NF_EXP / NF_TANH hooks of the caller's), the hot paths use
   these instead: the same functions, in vectors */
#if defined(NF__LIBM) && (defined(__SSE2__) || defined(__ARM_NEON) || defined(__aarch64__) || defined(__wasm_simd128__)) && !defined(__OPTIMIZE_SIZE__)
/* ... where there are vectors to run them in, and not in size-optimised builds (a
   Cortex-M4F firmware grew 1.9 KB and ran 2% more instructions per row with them) */
#define NF__VMATH 1
#define NF__VEXP(x) nf__exp(x)
#define NF__VTANH(x) nf__tanh(x)
#else
#define NF__VMATH 0
#define NF__VEXP(x) NF_EXP(x)
#define NF__VTANH(x) NF_TANH(x)
#endif
/* NFLOW_ACTIVATIONS: the activations compiled in, a mask of 1 << NF_ACT_* (default: all);
   an exported flow's header sets it to the one its conditioners use, so that a firmware
   carries only the code of the activations it calls */
#ifndef NFLOW_ACTIVATIONS
#define NFLOW_ACTIVATIONS 0x7e
#endif
#define NF__HAS_ACT(a) (((NFLOW_ACTIVATIONS) >> (a)) & 1)
static nf_real nf__act(int act, nf_real z) {
    if (!NF__HAS_ACT(act)) return z;   /* refused by the plan: unreachable */
    switch (act) {
    case NF_ACT_RELU:       return z > 0 ? z : 0;
    case NF_ACT_TANH:       return NF__VTANH(z);
    case NF_ACT_LEAKY_RELU: return z > 0 ? z : NF__R(0.01) * z;
    case NF_ACT_SOFTPLUS:   return nf__softplus(z);
    case NF_ACT_SIGMOID:    return z >= 0 ? 1 / (1 + NF_EXP(-z)) : NF_EXP(z) / (1 + NF_EXP(z));
    default:                return z;
    }
}
#ifndef NFLOW_NO_TRAINING
/* d act / dz written in terms of the output y = act(z), so backward keeps only y */
static nf_real nf__act_grad(int act, nf_real y) {
    switch (act) {
    case NF_ACT_RELU:       return y > 0 ? NF__R(1) : NF__R(0);
    case NF_ACT_TANH:       return 1 - y * y;
    case NF_ACT_LEAKY_RELU: return y > 0 ? NF__R(1) : NF__R(0.01);
    case NF_ACT_SOFTPLUS:   return 1 - nf__exp_nonpos(-y);   /* sigmoid(z) = 1 - e^-y, y >= 0 */
    case NF_ACT_SIGMOID:    return y * (1 - y);
    default:                return 1;
    }
}
#endif
#ifndef NFLOW_NO_TRAINING
/* g *= act'(z), from the outputs y: the switch is outside the loops so they vectorise */
static void nf__act_backward(int act, const nf_real *NF__RESTRICT y, nf_real *NF__RESTRICT g, size_t n) {
    size_t i;
    switch (act) {
    case NF_ACT_IDENTITY: break;
    case NF_ACT_RELU:     for (i = 0; i < n; ++i) g[i] = y[i] > 0 ? g[i] : 0; break;
    case NF_ACT_TANH:     for (i = 0; i < n; ++i) g[i] *= 1 - y[i] * y[i]; break;
    case NF_ACT_SIGMOID:  for (i = 0; i < n; ++i) g[i] *= y[i] * (1 - y[i]); break;
    case NF_ACT_SOFTPLUS: for (i = 0; i < n; ++i) g[i] *= 1 - nf__exp_nonpos(-y[i]); break;
    default:              for (i = 0; i < n; ++i) g[i] *= nf__act_grad(act, y[i]);
    }
}
#endif
/* out[i, :] = act(out[i, :] + b) */
static void nf__bias_act(nf_real *NF__RESTRICT out, const nf_real *NF__RESTRICT b, int rows, int cols, int act) {
    int i, j;
    for (i = 0; i < rows; ++i) {
        nf_real *o = out + (size_t)i * (size_t)cols;
        switch (NF__HAS_ACT(act) || act == NF_ACT_IDENTITY ? act : NF_ACT_IDENTITY) {
        case NF_ACT_RELU:
            for (j = 0; j < cols; ++j) { nf_real z = o[j] + b[j]; o[j] = z > 0 ? z : 0; }
            break;
        case NF_ACT_IDENTITY:
            for (j = 0; j < cols; ++j) o[j] += b[j];
            break;
        case NF_ACT_SOFTPLUS:   /* its own loop, so that it vectorises */
            for (j = 0; j < cols; ++j) o[j] = nf__softplus(o[j] + b[j]);
            break;
#if NF__VMATH
        case NF_ACT_TANH:
            for (j = 0; j < cols; ++j) o[j] = NF__VTANH(o[j] + b[j]);
            break;
#endif
        default:
            for (j = 0; j < cols; ++j) o[j] = nf__act(act, o[j] + b[j]);
        }
    }
}

#ifndef NFLOW_NO_TRAINING
/* ---- tape ------------------------------------------------------------------------ */
/* Each node carries its op's backward step (n->back); op picks a variant within a family
   (which unary function, which binary op, which reduction). Layer kinds add ops of their
   own in their sections the same way. */
enum { NF__OP_ADD = 1, NF__OP_SUB, NF__OP_MUL, NF__OP_SCALE, NF__OP_EXP, NF__OP_LOG, NF__OP_TANH,
       NF__OP_SIGMOID, NF__OP_RELU, NF__OP_LEAKY, NF__OP_SOFTPLUS, NF__OP_SQUARE, NF__OP_SUM,
       NF__OP_SUM_ROWS, NF__OP_MEAN, NF__OP_MEAN_ROWS, NF__OP_GATHER, NF__OP_SCATTER };

NFDEF void nf_tape_init(nf_tape *t, nf_arena *arena) {
    if (!t) return;
    t->arena = arena; t->last = NULL; t->err = arena ? NF_OK : NF_ERR_NULL; t->free_grads = NULL; t->par = NULL;
}

static nf_tensor *nf__node(nf_tape *t, int op, void (*back)(nf_tensor *), int rows, int cols, nf_tensor *a, nf_tensor *b) {
    nf_tensor *n; nf_real *val; size_t cnt, bytes;
    if (t->err != NF_OK) return NULL;
    if (rows < 0 || cols < 0 || !nf__mul((size_t)rows, (size_t)cols, &cnt) || !nf__mul(cnt, sizeof(nf_real), &bytes)) {
        t->err = NF_ERR_OVERFLOW; return NULL;
    }
    n = (nf_tensor *)nf_arena_alloc(t->arena, sizeof(nf_tensor));
    val = (nf_real *)nf_arena_alloc(t->arena, bytes);
    if (!n || !val) { t->err = NF_ERR_ARENA_FULL; return NULL; }
    memset(n, 0, sizeof *n);
    n->rows = rows; n->cols = cols; n->op = op; n->back = back; n->a = a; n->b = b; n->par = t->par;
    n->needs = (a && a->needs) || (b && b->needs);
    n->val = val; n->prev = t->last;
    t->last = n;
    return n;
}

/* Gradient buffers for intermediate nodes, during backward only: a node's gradient is
   needed from the first backward step that writes into it (its last consumer's) until
   its own backward step, so buffers recycle through an exact-size free list kept in the
   freed blocks themselves (tensor shapes repeat layer after layer). */
typedef struct nf__freeblock { size_t bytes; struct nf__freeblock *next; } nf__freeblock;
static nf_real *nf__grad_get(nf_tape *t, size_t cnt, int zero) {
    size_t bytes = nf_arena_align(cnt * sizeof(nf_real) > sizeof(nf__freeblock) ? cnt * sizeof(nf_real) : sizeof(nf__freeblock));
    nf__freeblock **p = (nf__freeblock **)&t->free_grads; void *m;
    while (*p && (*p)->bytes != bytes) p = &(*p)->next;
    if (*p) { m = *p; *p = (*p)->next; }
    else m = nf_arena_alloc(t->arena, bytes);
    if (m && zero) memset(m, 0, cnt * sizeof(nf_real));
    return (nf_real *)m;
}
static void nf__grad_put(nf_tape *t, nf_tensor *n) {
    size_t cnt = (size_t)n->rows * (size_t)n->cols;
    nf__freeblock *b = (nf__freeblock *)(void *)n->grad;
    b->bytes = nf_arena_align(cnt * sizeof(nf_real) > sizeof(nf__freeblock) ? cnt * sizeof(nf_real) : sizeof(nf__freeblock));
    b->next = (nf__freeblock *)t->free_grads;
    t->free_grads = b;
    n->grad = NULL;
}
/* gives every input of n that wants a gradient a zeroed buffer to accumulate into;
   zeroed in the rows' pieces, so that each core first touches the rows it will add to */
static void nf__grad_zero_rows(void *arg, int r0, int m) {
    nf_tensor *x = (nf_tensor *)arg;
    memset(x->grad + (size_t)r0 * (size_t)x->cols, 0, (size_t)m * (size_t)x->cols * sizeof(nf_real));
}
static int nf__grad_inputs(nf_tape *t, nf_tensor *n) {
    nf_tensor *in[3]; int i;
    in[0] = n->a; in[1] = n->b; in[2] = n->c;
    for (i = 0; i < 3; ++i)
        if (in[i] && in[i]->needs && !in[i]->grad) {
            in[i]->grad = nf__grad_get(t, (size_t)in[i]->rows * (size_t)in[i]->cols, 0);
            if (!in[i]->grad) { t->err = NF_ERR_ARENA_FULL; return 0; }
            nf__par_rows(t->par, in[i]->rows, (float)in[i]->rows * (float)in[i]->cols * 16.0f, nf__grad_zero_rows, in[i]);
        }
    return 1;
}

NFDEF nf_tensor *nf_tape_param(nf_tape *t, nf_real *val, nf_real *grad, int rows, int cols) {
    nf_tensor *n;
    if (!t || !t->arena) return NULL;
    if (t->err != NF_OK) return NULL;
    if (!val || rows < 0 || cols < 0) { t->err = NF_ERR_ARG; return NULL; }
    n = (nf_tensor *)nf_arena_alloc(t->arena, sizeof(nf_tensor));
    if (!n) { t->err = NF_ERR_ARENA_FULL; return NULL; }
    memset(n, 0, sizeof *n);
    n->rows = rows; n->cols = cols;
    n->val = val; n->grad = grad; n->needs = grad != NULL; n->prev = t->last;   /* grad accumulates in place */
    t->last = n;
    return n;
}
NFDEF nf_tensor *nf_tape_input(nf_tape *t, const nf_real *val, int rows, int cols) {
    /* inputs are never written: the cast only lets them share the tensor type */
    return nf_tape_param(t, (nf_real *)(uintptr_t)val, NULL, rows, cols);
}
NFDEF nf_tensor *nf_tape_new(nf_tape *t, int rows, int cols) {
    nf_tensor *n;
    if (!t || !t->arena) return NULL;
    n = nf__node(t, 0, NULL, rows, cols, NULL, NULL);
    if (n) memset(n->val, 0, (size_t)rows * (size_t)cols * sizeof(nf_real));
    return n;
}

static int nf__bad(nf_tape *t, const nf_tensor *a, const nf_tensor *b, int need_b) {
    if (!t || !t->arena) return 1;
    if (t->err != NF_OK) return 1;
    if (!a || (need_b && !b)) { t->err = NF_ERR_NULL; return 1; }
    return 0;
}

static void nf__matmul_back(nf_tensor *c);
static void nf__binary_back(nf_tensor *c);
static void nf__unary_back(nf_tensor *c);
static void nf__reduce_back(nf_tensor *c);
static void nf__gather_scatter_back(nf_tensor *c);
static void nf__gather_scatter_rows(void *arg, int r0, int m);
static void nf__concat_back(nf_tensor *c);
static void nf__linear_back(nf_tensor *y);
static void nf__linear_rows(void *arg, int r0, int m);
/* C = op(A) op(B).  dA += dC op(B)^T (suitably transposed), dB += op(A)^T dC */
NFDEF nf_tensor *nf_t_matmul(nf_tape *t, nf_tensor *a, nf_tensor *b, int ta, int tb) {
    int M, K, K2, N; nf_tensor *c;
    if (nf__bad(t, a, b, 1)) return NULL;
    M = ta ? a->cols : a->rows; K = ta ? a->rows : a->cols;
    K2 = tb ? b->cols : b->rows; N = tb ? b->rows : b->cols;
    if (K != K2 || (ta && tb)) { t->err = NF_ERR_SHAPE; return NULL; }
    c = nf__node(t, 0, nf__matmul_back, M, N, a, b);
    if (!c) return NULL;
    c->iarg = (ta ? 1 : 0) | (tb ? 2 : 0);
    nf_gemm_parallel(t->par, ta, tb, M, N, K, a->val, a->cols, b->val, b->cols, c->val, N, 0);
    return c;
}
static void nf__matmul_back(nf_tensor *c) {
    nf_tensor *a = c->a, *b = c->b;
    int ta = c->iarg & 1, tb = (c->iarg >> 1) & 1;
    int M = c->rows, N = c->cols, K = ta ? a->rows : a->cols;
    if (a->grad) {
        if (!ta) nf_gemm_parallel(c->par, 0, !tb, M, K, N, c->grad, N, b->val, b->cols, a->grad, a->cols, 1); /* dA = dC op(B)^T */
        else     nf_gemm_parallel(c->par, tb, 1, K, M, N, b->val, b->cols, c->grad, N, a->grad, a->cols, 1); /* dA = op(B) dC^T */
    }
    if (b->grad) {
        if (!tb) nf_gemm_parallel(c->par, !ta, 0, K, N, M, a->val, a->cols, c->grad, N, b->grad, b->cols, 1); /* dB = op(A)^T dC */
        else     nf_gemm_parallel(c->par, 1, ta, N, K, M, c->grad, N, a->val, a->cols, b->grad, b->cols, 1); /* dB = dC^T op(A) */
    }
}

/* What an elementwise pass over c costs in the matrix kernel's multiply-adds (the unit of
   NF__PAR_MIN), for nf__par_rows. Measured on Zen 5 (a multiply-add 0.009 ns in the
   kernel): glibc's tanhf 9.4 ns an element (~1000), expf 2.1 ns (~230), an add 0.35 ns
   (~40); libm's functions are counted 512, the rest 32. */
static float nf__ew_work(const nf_tensor *c) {
    int op = c->op;
    float each = op == NF__OP_EXP || op == NF__OP_LOG || op == NF__OP_TANH || op == NF__OP_SIGMOID || op == NF__OP_SOFTPLUS ? 512.0f : 32.0f;
    return (float)c->rows * (float)c->cols * each;
}
/* Elementwise binary ops with broadcasting of b over rows and/or columns. */
static void nf__binary_rows(void *arg, int r0, int m);
static nf_tensor *nf__binary(nf_tape *t, int op, nf_tensor *a, nf_tensor *b) {
    nf_tensor *c;
    if (nf__bad(t, a, b, 1)) return NULL;
    if (!((b->rows == a->rows || b->rows == 1) && (b->cols == a->cols || b->cols == 1))) {
        t->err = NF_ERR_SHAPE; return NULL;
    }
    c = nf__node(t, op, nf__binary_back, a->rows, a->cols, a, b);
    if (!c) return NULL;
    nf__par_rows(t->par, c->rows, nf__ew_work(c), nf__binary_rows, c);
    return c;
}
static void nf__binary_rows(void *arg, int r0, int m) {
    const nf_tensor *c = (const nf_tensor *)arg, *a = c->a, *b = c->b;
    int i, j, op = c->op, n = a->cols, bs = b->cols == 1 ? 0 : 1;   /* in locals: the stores could alias them */
    if (NF__SPEED && b->rows == a->rows && b->cols == n) {   /* same shapes: one flat pass (row by row, a 2-D
                                                   flow's one-column rows cost more in set-up than in arithmetic) */
        size_t e = (size_t)r0 * (size_t)n, end = e + (size_t)m * (size_t)n;
        const nf_real *NF__RESTRICT x = a->val, *NF__RESTRICT y = b->val;
        nf_real *NF__RESTRICT z = c->val;
        if (op == NF__OP_ADD)      for (; e < end; ++e) z[e] = x[e] + y[e];
        else if (op == NF__OP_SUB) for (; e < end; ++e) z[e] = x[e] - y[e];
        else                       for (; e < end; ++e) z[e] = x[e] * y[e];
        return;
    }
    for (i = r0; i < r0 + m; ++i) {
        const nf_real *NF__RESTRICT x = a->val + (size_t)i * (size_t)n;
        const nf_real *NF__RESTRICT y = b->val + (size_t)(b->rows == 1 ? 0 : i) * (size_t)b->cols;
        nf_real *NF__RESTRICT z = c->val + (size_t)i * (size_t)n;
        if (!bs) { nf_real v = y[0];   /* a column broadcast: one value per row */
            if (op == NF__OP_ADD)      for (j = 0; j < n; ++j) z[j] = x[j] + v;
            else if (op == NF__OP_SUB) for (j = 0; j < n; ++j) z[j] = x[j] - v;
            else                       for (j = 0; j < n; ++j) z[j] = x[j] * v;
        } else {
            if (op == NF__OP_ADD)      for (j = 0; j < n; ++j) z[j] = x[j] + y[j];
            else if (op == NF__OP_SUB) for (j = 0; j < n; ++j) z[j] = x[j] - y[j];
            else                       for (j = 0; j < n; ++j) z[j] = x[j] * y[j];
        }
    }
}
/* d(a+b) = dc, d(a-b) = (dc, -dc), d(a*b) = (dc*b, dc*a); b's gradient sums over
   the broadcast axes. */
static void nf__binary_back_rows(void *arg, int r0, int m) {
    nf_tensor *c = (nf_tensor *)arg, *a = c->a, *b = c->b; int i, j, op = c->op, n = c->cols;   /* n in a local: the stores could alias c->cols */
    if (NF__SPEED && b->rows == a->rows && b->cols == n) {   /* same shapes: flat, as in nf__binary_rows (a and b
                                                   may be one tensor: no restrict on the gradients) */
        size_t e0 = (size_t)r0 * (size_t)n, end = e0 + (size_t)m * (size_t)n, e;
        const nf_real *g = c->grad, *x = a->val, *y = b->val;
        if (a->grad) {
            nf_real *ga = a->grad;
            if (op == NF__OP_MUL) for (e = e0; e < end; ++e) ga[e] += g[e] * y[e];
            else                  for (e = e0; e < end; ++e) ga[e] += g[e];
        }
        if (b->grad) {
            nf_real *gb = b->grad;
            if (op == NF__OP_MUL)      for (e = e0; e < end; ++e) gb[e] += g[e] * x[e];
            else if (op == NF__OP_SUB) for (e = e0; e < end; ++e) gb[e] -= g[e];
            else                       for (e = e0; e < end; ++e) gb[e] += g[e];
        }
        return;
    }
    for (i = r0; i < r0 + m; ++i) {
        const nf_real *g = c->grad + (size_t)i * (size_t)c->cols;
        const nf_real *x = a->val + (size_t)i * (size_t)a->cols;
        size_t boff = (size_t)(b->rows == 1 ? 0 : i) * (size_t)b->cols;
        const nf_real *y = b->val + boff;
        int bs = b->cols == 1 ? 0 : 1;
        if (a->grad) {
            nf_real *ga = a->grad + (size_t)i * (size_t)a->cols;
            if (op == NF__OP_MUL) for (j = 0; j < n; ++j) ga[j] += g[j] * y[j * bs];
            else                  for (j = 0; j < n; ++j) ga[j] += g[j];
        }
        if (b->grad) {
            nf_real *gb = b->grad + boff;
            if (op == NF__OP_MUL)      for (j = 0; j < n; ++j) gb[j * bs] += g[j] * x[j];
            else if (op == NF__OP_SUB) for (j = 0; j < n; ++j) gb[j * bs] -= g[j];
            else                       for (j = 0; j < n; ++j) gb[j * bs] += g[j];
        }
    }
}
static void nf__binary_back(nf_tensor *c) {
    /* rows in pieces, unless b's gradient sums over rows (a broadcast row): one order */
    if (c->b->grad && c->b->rows == 1 && c->rows > 1) nf__binary_back_rows(c, 0, c->rows);
    else nf__par_rows(c->par, c->rows, nf__ew_work(c), nf__binary_back_rows, c);
}
NFDEF nf_tensor *nf_t_add(nf_tape *t, nf_tensor *a, nf_tensor *b) { return nf__binary(t, NF__OP_ADD, a, b); }
NFDEF nf_tensor *nf_t_sub(nf_tape *t, nf_tensor *a, nf_tensor *b) { return nf__binary(t, NF__OP_SUB, a, b); }
NFDEF nf_tensor *nf_t_mul(nf_tape *t, nf_tensor *a, nf_tensor *b) { return nf__binary(t, NF__OP_MUL, a, b); }

/* Elementwise unary ops: y = f(x), dx += dy f'(x), f' written from x and y. */
static nf_real nf__unary_f(int op, nf_real x, nf_real k) {
    switch (op) {
    case NF__OP_SCALE:    return k * x;
    case NF__OP_EXP:      return NF__VEXP(x);
    case NF__OP_LOG:      return NF_LOG(x);
    case NF__OP_TANH:     return NF__VTANH(x);
    case NF__OP_SIGMOID:  return nf__act(NF_ACT_SIGMOID, x);
    case NF__OP_RELU:     return x > 0 ? x : 0;
    case NF__OP_LEAKY:    return x > 0 ? x : k * x;
    case NF__OP_SOFTPLUS: return nf__act(NF_ACT_SOFTPLUS, x);
    default:              return x * x;   /* NF__OP_SQUARE */
    }
}
static nf_real nf__unary_df(int op, nf_real x, nf_real y, nf_real k) {
    switch (op) {
    case NF__OP_SCALE:    return k;
    case NF__OP_EXP:      return y;               /* (e^x)' = e^x */
    case NF__OP_LOG:      return 1 / x;
    case NF__OP_TANH:     return 1 - y * y;
    case NF__OP_SIGMOID:  return y * (1 - y);
    case NF__OP_RELU:     return x > 0 ? NF__R(1) : NF__R(0);
    case NF__OP_LEAKY:    return x > 0 ? NF__R(1) : k;
    case NF__OP_SOFTPLUS: return nf__act(NF_ACT_SIGMOID, x);
    default:              return 2 * x;
    }
}
static void nf__unary_rows(void *arg, int r0, int m);
static nf_tensor *nf__unary(nf_tape *t, int op, nf_tensor *a, nf_real k) {
    nf_tensor *c;
    if (nf__bad(t, a, NULL, 0)) return NULL;
    c = nf__node(t, op, nf__unary_back, a->rows, a->cols, a, NULL);
    if (!c) return NULL;
    c->k = k;
    nf__par_rows(t->par, c->rows, nf__ew_work(c), nf__unary_rows, c);
    return c;
}
/* (the tensor's fields in locals: stores through val could alias them) */
static void nf__unary_rows(void *arg, int r0, int m) {
    const nf_tensor *c = (const nf_tensor *)arg; size_t i = (size_t)r0 * (size_t)c->cols, n = i + (size_t)m * (size_t)c->cols;
    int op = c->op; nf_real k = c->k; nf_real *NF__RESTRICT y = c->val; const nf_real *NF__RESTRICT x = c->a->val;
    switch (op) {   /* the common ones in loops of their own, which vectorise */
    case NF__OP_SCALE: for (; i < n; ++i) y[i] = k * x[i]; break;
#if NF__VMATH
    case NF__OP_EXP:   for (; i < n; ++i) y[i] = NF__VEXP(x[i]); break;
    case NF__OP_TANH:  for (; i < n; ++i) y[i] = NF__VTANH(x[i]); break;
#endif
    default:           for (; i < n; ++i) y[i] = nf__unary_f(op, x[i], k);
    }
}
static void nf__unary_back_rows(void *arg, int r0, int m) {
    const nf_tensor *c = (const nf_tensor *)arg; size_t i = (size_t)r0 * (size_t)c->cols, n = i + (size_t)m * (size_t)c->cols;
    int op = c->op; nf_real k = c->k; nf_real *NF__RESTRICT gx = c->a->grad;
    const nf_real *NF__RESTRICT gy = c->grad, *NF__RESTRICT x = c->a->val, *NF__RESTRICT y = c->val;
    switch (op) {   /* the common ones in loops of their own, which vectorise */
    case NF__OP_SCALE: for (; i < n; ++i) gx[i] += gy[i] * k; break;
    case NF__OP_EXP:   for (; i < n; ++i) gx[i] += gy[i] * y[i]; break;
    case NF__OP_TANH:  for (; i < n; ++i) gx[i] += gy[i] * (1 - y[i] * y[i]); break;
    default:           for (; i < n; ++i) gx[i] += gy[i] * nf__unary_df(op, x[i], y[i], k);
    }
}
static void nf__unary_back(nf_tensor *c) {
    if (c->a->grad) nf__par_rows(c->par, c->rows, nf__ew_work(c), nf__unary_back_rows, c);
}
NFDEF nf_tensor *nf_t_scale(nf_tape *t, nf_tensor *a, nf_real k)      { return nf__unary(t, NF__OP_SCALE, a, k); }
NFDEF nf_tensor *nf_t_exp(nf_tape *t, nf_tensor *a)                   { return nf__unary(t, NF__OP_EXP, a, 0); }
NFDEF nf_tensor *nf_t_log(nf_tape *t, nf_tensor *a)                   { return nf__unary(t, NF__OP_LOG, a, 0); }
NFDEF nf_tensor *nf_t_tanh(nf_tape *t, nf_tensor *a)                  { return nf__unary(t, NF__OP_TANH, a, 0); }
NFDEF nf_tensor *nf_t_sigmoid(nf_tape *t, nf_tensor *a)               { return nf__unary(t, NF__OP_SIGMOID, a, 0); }
NFDEF nf_tensor *nf_t_relu(nf_tape *t, nf_tensor *a)                  { return nf__unary(t, NF__OP_RELU, a, 0); }
NFDEF nf_tensor *nf_t_leaky_relu(nf_tape *t, nf_tensor *a, nf_real s) { return nf__unary(t, NF__OP_LEAKY, a, s); }
NFDEF nf_tensor *nf_t_softplus(nf_tape *t, nf_tensor *a)              { return nf__unary(t, NF__OP_SOFTPLUS, a, 0); }
NFDEF nf_tensor *nf_t_square(nf_tape *t, nf_tensor *a)                { return nf__unary(t, NF__OP_SQUARE, a, 0); }

/* Reductions: s = k * sum over all (1 x 1) or over each row (rows x 1); k = 1 or 1/count.
   ds/dx = k everywhere. */
static nf_tensor *nf__reduce(nf_tape *t, int op, nf_tensor *a) {
    nf_tensor *c; int i, j, rows = op == NF__OP_SUM || op == NF__OP_MEAN ? 1 : a ? a->rows : 0;
    if (nf__bad(t, a, NULL, 0)) return NULL;
    c = nf__node(t, op, nf__reduce_back, rows, 1, a, NULL);
    if (!c) return NULL;
    if (op == NF__OP_SUM || op == NF__OP_SUM_ROWS) c->k = 1;
    else if (op == NF__OP_MEAN) c->k = (nf_real)(1.0 / ((double)a->rows * a->cols));
    else c->k = (nf_real)(1.0 / a->cols);
    memset(c->val, 0, (size_t)rows * sizeof(nf_real));
    for (i = 0; i < a->rows; ++i) {
        const nf_real *x = a->val + (size_t)i * (size_t)a->cols; nf_real s = 0;
        for (j = 0; j < a->cols; ++j) s += x[j];
        c->val[rows == 1 ? 0 : i] += s * c->k;
    }
    return c;
}
static void nf__reduce_back(nf_tensor *c) {
    nf_tensor *a = c->a; int i, j;
    if (!a->grad) return;
    for (i = 0; i < a->rows; ++i) {
        nf_real g = c->grad[c->rows == 1 ? 0 : i] * c->k, *ga = a->grad + (size_t)i * (size_t)a->cols;
        for (j = 0; j < a->cols; ++j) ga[j] += g;
    }
}
NFDEF nf_tensor *nf_t_sum(nf_tape *t, nf_tensor *a)       { return nf__reduce(t, NF__OP_SUM, a); }
NFDEF nf_tensor *nf_t_sum_rows(nf_tape *t, nf_tensor *a)  { return nf__reduce(t, NF__OP_SUM_ROWS, a); }
NFDEF nf_tensor *nf_t_mean(nf_tape *t, nf_tensor *a)      { return nf__reduce(t, NF__OP_MEAN, a); }
NFDEF nf_tensor *nf_t_mean_rows(nf_tape *t, nf_tensor *a) { return nf__reduce(t, NF__OP_MEAN_ROWS, a); }

/* Column moves: gather out[:, j] = a[:, idx[j]]; scatter out[:, idx[j]] = a[:, j];
   concat [a | b]. Backward moves the gradient the other way. */
NFDEF nf_tensor *nf_t_gather_cols(nf_tape *t, nf_tensor *a, const int *idx, int n) {
    nf_tensor *c; int j;
    if (nf__bad(t, a, NULL, 0)) return NULL;
    if (n < 0 || (n > 0 && !idx)) { t->err = NF_ERR_ARG; return NULL; }
    for (j = 0; j < n; ++j) if (idx[j] < 0 || idx[j] >= a->cols) { t->err = NF_ERR_SHAPE; return NULL; }
    c = nf__node(t, NF__OP_GATHER, nf__gather_scatter_back, a->rows, n, a, NULL);
    if (!c) return NULL;
    c->idx = idx;
    nf__par_rows(t->par, c->rows, nf__ew_work(c), nf__gather_scatter_rows, c);
    return c;
}
/* rows of a gather or scatter (forward), or of their backward (which moves the gradient
   the other way: a scatter's backward is a gather of the gradient and vice versa) */
static void nf__gs_rows(nf_tensor *c, int r0, int m, int back) {
    nf_tensor *a = c->a; int i, j, gather = (c->op == NF__OP_GATHER) != back;
    const nf_real *src = back ? c->grad : a->val; nf_real *dst = back ? a->grad : c->val;
    int sc = back ? c->cols : a->cols, dc = back ? a->cols : c->cols, n = gather ? dc : sc;
    for (i = r0; i < r0 + m; ++i) {
        const nf_real *s = src + (size_t)i * (size_t)sc; nf_real *d = dst + (size_t)i * (size_t)dc;
        if (gather) { if (back) for (j = 0; j < n; ++j) d[j] += s[c->idx[j]]; else for (j = 0; j < n; ++j) d[j] = s[c->idx[j]]; }
        else        { if (back) for (j = 0; j < n; ++j) d[c->idx[j]] += s[j]; else for (j = 0; j < n; ++j) d[c->idx[j]] = s[j]; }
    }
}
static void nf__gather_scatter_rows(void *arg, int r0, int m) { nf__gs_rows((nf_tensor *)arg, r0, m, 0); }
static void nf__gather_scatter_back_rows(void *arg, int r0, int m) { nf__gs_rows((nf_tensor *)arg, r0, m, 1); }
NFDEF nf_tensor *nf_t_scatter_cols(nf_tape *t, nf_tensor *a, const int *idx, int cols) {
    nf_tensor *c; int j;
    if (nf__bad(t, a, NULL, 0)) return NULL;
    if (a->cols > 0 && !idx) { t->err = NF_ERR_ARG; return NULL; }
    for (j = 0; j < a->cols; ++j) if (idx[j] < 0 || idx[j] >= cols) { t->err = NF_ERR_SHAPE; return NULL; }
    c = nf__node(t, NF__OP_SCATTER, nf__gather_scatter_back, a->rows, cols, a, NULL);
    if (!c) return NULL;
    c->idx = idx;
    memset(c->val, 0, (size_t)a->rows * (size_t)cols * sizeof(nf_real));
    nf__par_rows(t->par, c->rows, nf__ew_work(c), nf__gather_scatter_rows, c);
    return c;
}
static void nf__gather_scatter_back(nf_tensor *c) {
    if (c->a->grad) nf__par_rows(c->par, c->rows, nf__ew_work(c), nf__gather_scatter_back_rows, c);
}
NFDEF nf_tensor *nf_t_concat_cols(nf_tape *t, nf_tensor *a, nf_tensor *b) {
    nf_tensor *c; int i;
    if (nf__bad(t, a, b, 1)) return NULL;
    if (a->rows != b->rows || a->cols > INT32_MAX - b->cols) { t->err = NF_ERR_SHAPE; return NULL; }
    c = nf__node(t, 0, nf__concat_back, a->rows, a->cols + b->cols, a, b);
    if (!c) return NULL;
    for (i = 0; i < a->rows; ++i) {
        memcpy(c->val + (size_t)i * (size_t)c->cols, a->val + (size_t)i * (size_t)a->cols, (size_t)a->cols * sizeof(nf_real));
        memcpy(c->val + (size_t)i * (size_t)c->cols + a->cols, b->val + (size_t)i * (size_t)b->cols, (size_t)b->cols * sizeof(nf_real));
    }
    return c;
}
static void nf__concat_back(nf_tensor *c) {
    nf_tensor *a = c->a, *b = c->b; int i, j;
    for (i = 0; i < c->rows; ++i) {
        const nf_real *g = c->grad + (size_t)i * (size_t)c->cols;
        if (a->grad) for (j = 0; j < a->cols; ++j) a->grad[(size_t)i * (size_t)a->cols + (size_t)j] += g[j];
        if (b->grad) for (j = 0; j < b->cols; ++j) b->grad[(size_t)i * (size_t)b->cols + (size_t)j] += g[a->cols + j];
    }
}

/* Dense layer y = act(x W + b).  dz = dy act'(z) (from y, in place in y's gradient),
   dx += dz W^T, dW += x^T dz, db += column sums of dz. */
NFDEF nf_tensor *nf_t_linear(nf_tape *t, nf_tensor *x, nf_tensor *w, nf_tensor *b, int act) {
    nf_tensor *y;
    if (nf__bad(t, x, w, 1) || nf__bad(t, b, NULL, 0)) return NULL;
    if (x->cols != w->rows || b->rows != 1 || b->cols != w->cols || act < NF_ACT_RELU || act > NF_ACT_IDENTITY) {
        t->err = NF_ERR_SHAPE; return NULL;
    }
    y = nf__node(t, 0, nf__linear_back, x->rows, w->cols, x, w);
    if (!y) return NULL;
    y->c = b; y->iarg = act;
    y->needs |= b->needs;   /* the bias is an input too */
    nf__par_rows(t->par, y->rows, (float)y->rows * (float)y->cols * (float)x->cols, nf__linear_rows, y);
    return y;
}
/* rows r0 .. r0+m-1 of y = act(x W + b): the product and, while they are in cache, the
   bias and activation */
static void nf__linear_rows(void *arg, int r0, int m) {
    nf_tensor *y = (nf_tensor *)arg, *x = y->a, *w = y->b; int O = y->cols, I = x->cols;
    nf_real *yr = y->val + (size_t)r0 * (size_t)O;
    nf__gemm(0, 0, m, O, I, x->val + (size_t)r0 * (size_t)I, I, w->val, O, yr, O, 0);
    nf__bias_act(yr, y->c->val, m, O, y->iarg);
}
/* backward, rows of dz: dz = dy act'(z) in place, then dx += dz W^T on the same rows */
static void nf__linear_back_rows(void *arg, int r0, int m) {
    nf_tensor *y = (nf_tensor *)arg, *x = y->a, *w = y->b; int O = y->cols, I = x->cols;
    size_t o = (size_t)r0 * (size_t)O;
    nf__act_backward(y->iarg, y->val + o, y->grad + o, (size_t)m * (size_t)O);
    if (x->grad) nf__gemm(0, 1, m, I, O, y->grad + o, O, w->val, O, x->grad + (size_t)r0 * (size_t)I, I, 1);
}
/* backward, piece p of T: rows of dW += x^T dz (whole register tiles; all of them in
   piece 0 when there are too few to cut) and columns of db += the column sums of dz, each
   summed over the rows in order (the same bits however the columns are cut) */
typedef struct nf__linb { nf_tensor *y; int T, rows; } nf__linb;
static void nf__linear_back_w(void *arg, int p) {
    const nf__linb *L = (const nf__linb *)arg; nf_tensor *y = L->y, *x = y->a, *w = y->b, *b = y->c;
    int N = y->rows, O = y->cols, I = x->cols, i, j;
    if (w->grad) {
        int i0 = p * L->rows, m = I - i0 < L->rows ? I - i0 : L->rows;
        if (m > 0) nf__gemm(1, 0, m, O, N, x->val + i0, I, y->grad, O, w->grad + (size_t)i0 * (size_t)O, O, 1);
    }
    if (b->grad && !NF__SPEED) {
        int j0 = (int)((long)O * p / L->T), j1 = (int)((long)O * (p + 1) / L->T);
        for (i = 0; i < N; ++i) {
            const nf_real *g = y->grad + (size_t)i * (size_t)O;
            for (j = j0; j < j1; ++j) b->grad[j] += g[j];
        }
    } else if (b->grad) {   /* column sums in blocks of 64 held in a local (through b->grad, every
                        row's adds waited on the previous row's stores: 5% of a P1 step); same order */
        int j0 = (int)((long)O * p / L->T), j1 = (int)((long)O * (p + 1) / L->T), jb, bw;
        nf_real acc[64];
        for (jb = j0; jb < j1; jb += bw) {
            bw = j1 - jb < 64 ? j1 - jb : 64;
            memcpy(acc, b->grad + jb, sizeof(nf_real) * (size_t)bw);
            if (bw == 64) for (i = 0; i < N; ++i) { const nf_real *g = y->grad + (size_t)i * (size_t)O + jb; for (j = 0; j < 64; ++j) acc[j] += g[j]; }
            else for (i = 0; i < N; ++i) { const nf_real *g = y->grad + (size_t)i * (size_t)O + jb; for (j = 0; j < bw; ++j) acc[j] += g[j]; }
            memcpy(b->grad + jb, acc, sizeof(nf_real) * (size_t)bw);
        }
    }
}
static void nf__linear_back(nf_tensor *y) {
    nf_tensor *x = y->a; nf__linb L; int N = y->rows, O = y->cols, I = x->cols, T = 1, tiles;
    nf__par_rows(y->par, N, (float)N * (float)O * (float)(x->grad ? I + 1 : 1), nf__linear_back_rows, y);
#ifndef NFLOW_NO_THREADS
    if (y->par && y->par->run && (float)N * (float)O * (float)(I + 1) >= NF__PAR_MIN) T = y->par->threads;
    if (T > NF__RUN_TMAX) T = NF__RUN_TMAX;
#endif
    tiles = (I + NF__GN_MR - 1) / NF__GN_MR;
    L.y = y; L.T = T;
    L.rows = I >= 2 * NF__GN_MR ? (tiles + T - 1) / T * NF__GN_MR : I;
    if (T > 1) y->par->run(y->par->pool, T, nf__linear_back_w, &L);
    else nf__linear_back_w(&L, 0);
}

NFDEF nf_result nf_tape_backward(nf_tape *t, nf_tensor *loss) {
    nf_tensor *n;
    if (!t) return NF_ERR_NULL;
    if (t->err != NF_OK) return t->err;
    if (!loss) return NF_ERR_NULL;
    if (loss->rows != 1 || loss->cols != 1) return NF_ERR_SHAPE;
    if (!loss->needs) return NF_OK;   /* nothing on the tape needs a gradient */
    if (!loss->grad && !(loss->grad = nf__grad_get(t, 1, 1))) return t->err = NF_ERR_ARENA_FULL;
    loss->grad[0] += 1;
    for (n = loss; n; n = n->prev) {
        if (!n->grad) continue;   /* nothing flowed here */
        if (!n->back) continue;   /* a leaf: its gradient stays */
        if (!nf__grad_inputs(t, n)) return t->err;
        n->back(n);
        nf__grad_put(t, n);       /* done with it: recycle */
    }
    return NF_OK;
}
#endif /* NFLOW_NO_TRAINING: tape */

/* ---- flows ------------------------------------------------------------------- */
static nf_result nf__fail(nf_flow *f, nf_result r, const char *what, long row) {
    if (f) {
        nf__msgbuf m; m.s = f->err; m.n = 0; m.cap = sizeof f->err;
        nf__msg_str(&m, nf_result_string(r));
        if (what) { nf__msg_str(&m, ": "); nf__msg_str(&m, what); }
        if (row >= 0) { nf__msg_str(&m, " (row "); nf__msg_long(&m, row); nf__msg_str(&m, ")"); }
        f->err_row = row;
    }
    return r;
}

/* An error about row k of an internal buffer, renamed as the caller's row `row` (what the
   caller can look up): the message's " (row k)" is replaced. */
static void nf__fail_rename_row(nf_flow *f, long row, const char *where) {
    size_t n = strlen(f->err), k;
    nf__msgbuf m;
    for (k = n; k > 0; --k) if (strncmp(f->err + k - 1, " (row ", 6) == 0) { n = k - 1; break; }
    m.s = f->err; m.n = n; m.cap = sizeof f->err;
    f->err[n] = 0;
    nf__msg_str(&m, " (row "); nf__msg_long(&m, row); nf__msg_str(&m, where); nf__msg_str(&m, ")");
    f->err_row = row;
}

NFDEF void nf_flow_desc_init(nf_flow_desc *d, int dim) {
    if (!d) return;
    memset(d, 0, sizeof *d);
    d->dim = dim;
}
NFDEF nf_result nf_flow_desc_add(nf_flow_desc *d, const nf_layer_desc *l) {
    if (!d || !l) return NF_ERR_NULL;
    if (d->n_layers < 0 || d->n_layers >= NF_MAX_LAYERS) return NF_ERR_ARG;
    d->layers[d->n_layers++] = *l;
    return NF_OK;
}
NFDEF nf_result nf_flow_desc_realnvp(nf_flow_desc *d, int dim, int couplings, int hidden) {
    int i;
    if (!d) return NF_ERR_NULL;
    nf_flow_desc_init(d, dim);
    if (dim == 1) return NF_ERR_SHAPE;   /* one affine map: a Gaussian, whatever the data */
    if (couplings < 1 || couplings > NF_MAX_LAYERS || hidden < 0) return NF_ERR_ARG;
    for (i = 0; i < couplings; ++i) {
        nf_layer_desc l; memset(&l, 0, sizeof l);
        l.kind = NF_LAYER_AFFINE_COUPLING; l.hidden = hidden; l.parity = i & 1;
        nf_flow_desc_add(d, &l);
    }
    return NF_OK;
}

/* Inference scratch for one chunk of R rows (carved from the flow's workspace): */
typedef struct nf__ws { nf_real *tmp, *cond, *ha, *hb, *out, *ld, *oob, *z, *ctx, *seq; const nf_parallel *par; } nf__ws;

/* ==== layer kinds: the interface ============================================================
   Each kind of layer is one section below, holding side by side its settings and their
   defaults, parameter count, initialisation, forward and inverse with log-det (inference),
   its two tape paths (data -> latent for maximum likelihood, latent -> data for reverse
   KL) and, where it has one, a data-dependent initialisation. The shared machinery (plan,
   workspace, tape, model files) reaches a kind only through its row of nf__kinds; model
   files and exported C store each layer's nf_layer_desc as it is, so a kind adds nothing
   there. Adding a kind is one section and one table row. */
#ifndef NFLOW_NO_TRAINING
typedef struct nf__tctx {
    nf_tape *tp; nf_flow *f; nf_real *grad;
    nf_tensor *ctx;            /* standardised context rows (R x C), or NULL */
    nf_tensor *ldr, *ldc;      /* log|det| so far: per row (R x 1) and constant (1 x 1) */
} nf__tctx;
/* parameters [off, off + rows cols) as a tape leaf whose gradient is the trainer's */
static nf_tensor *nf__tparam(nf__tctx *c, size_t off, int rows, int cols) {
    return nf_tape_param(c->tp, c->f->params + off, c->grad + off, rows, cols);
}
/* adds a log|det| term: per row (R x 1) or constant (1 x 1) */
static void nf__add_ld(nf__tctx *c, nf_tensor *t, int per_row) {
    nf_tensor **acc = per_row ? &c->ldr : &c->ldc;
    *acc = *acc ? nf_t_add(c->tp, *acc, t) : t;
}
#endif

typedef struct nf__kind {
    const char *name;
    /* checks the settings and fills the shape: L->np parameters, L->ni index ints,
       L->width (the widest workspace row it needs); C is the context's length */
#define NF__REFUSE(code, text) return (*why = (text), (code))
    nf_result (*plan)(const nf_layer_desc *ld, int D, int C, nf__layer *L, const char **why);   /* *why: a refusal's reason */
    void (*canon)(const nf_layer_desc *ld, nf_layer_desc *c);   /* defaults in, unused fields 0 */
    void (*setup)(nf__layer *L, const nf_layer_desc *ld, int D, int index, int *ints);
    void (*init)(const nf__layer *L, nf_real *p, int D, nf_rng *rng);   /* NULL: all zero */
    /* R rows of x in place; dir +1: data -> latent, -1: latent -> data; w->ld[r] += log|det| */
    void (*apply)(const nf_flow *f, const nf__layer *L, nf_real *x, int R, int dir, nf__ws *w);
    /* data-dependent start from the mean and sd of the layer's input (NULL: none);
       NF_ERR_RANGE, nothing written, if the start is not representable */
    nf_result (*data_init)(const nf__layer *L, nf_real *p, int D, const double *mean, const double *sd);
    /* after loading weights: zero what is not part of the model (NULL: nothing) */
    void (*fixup)(const nf__layer *L, nf_real *p);
#ifndef NFLOW_NO_TRAINING
    nf_tensor *(*tape)(nf__tctx *c, const nf__layer *L, nf_tensor *x);       /* data -> latent */
    nf_tensor *(*tape_inv)(nf__tctx *c, const nf__layer *L, nf_tensor *z);   /* latent -> data */
#endif
} nf__kind;
static const nf__kind *nf__kind_of(int kind);   /* NULL: unknown (or compiled out) */

/* The MLP conditioner of couplings: nin inputs, depth hidden layers of width hidden with
   activation act, nout outputs; weights (in x out, row-major) then bias, layer by layer. */
static nf_result nf__mlp_plan(nf__layer *L, const char **why) {
    int ok = 1, dep; size_t p, h = (size_t)L->hidden;
    p = nf__madd(h, (size_t)L->nin, h, &ok);                                   /* nin x h + h */
    for (dep = 1; dep < L->depth; ++dep) p = nf__madd(nf__madd(p, 1, h, &ok), h, h, &ok);
    p = nf__madd(nf__madd(p, 1, (size_t)L->nout, &ok), h, (size_t)L->nout, &ok);
    if (!ok) NF__REFUSE(NF_ERR_OVERFLOW, "the conditioner's size overflows");
    L->np = p; L->width = L->hidden;
    return NF_OK;
}
/* hidden layers uniform in +-1/sqrt(fan_in) (PyTorch's nn.Linear); the output layer stays
   zero, so the layer it conditions starts as the identity. Integer arithmetic and one
   rounding of an exact integer, so seeded weights are the same bits on every platform
   (x87's extended precision changed them when this was bound * (2u - 1)). */
static void nf__mlp_init(const nf__layer *L, nf_real *p, nf_rng *rng) {
    int dep, in = L->nin;
    for (dep = 0; dep < L->depth; ++dep) {
        size_t k, cnt = (size_t)in * (size_t)L->hidden + (size_t)L->hidden;
        int64_t bq = in > 0 ? (int64_t)nf__isqrt(nf__udiv64((uint64_t)1 << 62, (uint64_t)in)) : 0;   /* 2^31 / sqrt(in) */
        for (k = 0; k < cnt; ++k) {
            int64_t u = (int64_t)(nf_rng_u32(rng) >> 10) * 2 - 4194303;   /* (2v - 1) 2^22, |u| < 2^22 */
            p[k] = (nf_real)(u * bq) * nf__pow2m(53);                     /* |u bq| < 2^53 */
        }
        p += cnt; in = L->hidden;
    }
}
/* in (R x nin) -> w->out (R x nout) */
static void nf__mlp(const nf__layer *L, const nf_real *params, const nf_real *in, int R, nf__ws *w) {
    const nf_real *p = params + L->poff;
    const nf_real *x = in; int xin = L->nin, dep;
    nf_real *h = w->ha;
    for (dep = 0; dep < L->depth; ++dep) {
        nf_gemm_parallel(w->par, 0, 0, R, L->hidden, xin, x, xin, p, L->hidden, h, L->hidden, 0);
        p += (size_t)xin * (size_t)L->hidden;
        nf__bias_act(h, p, R, L->hidden, L->act);
        p += L->hidden;
        x = h; xin = L->hidden;
        h = (h == w->ha) ? w->hb : w->ha;
    }
    nf_gemm_parallel(w->par, 0, 0, R, L->nout, xin, x, xin, p, L->nout, w->out, L->nout, 0);
    nf__bias_act(w->out, p + (size_t)xin * (size_t)L->nout, R, L->nout, NF_ACT_IDENTITY);
}
#ifndef NFLOW_NO_TRAINING
/* the same on the tape: x (R x nin) -> R x nout */
static nf_tensor *nf__mlp_tape(nf__tctx *c, const nf__layer *L, nf_tensor *x) {
    size_t off = L->poff; int in = L->nin, dep;
    for (dep = 0; dep < L->depth; ++dep) {              /* h = act(h W + b) */
        x = nf_t_linear(c->tp, x, nf__tparam(c, off, in, L->hidden), nf__tparam(c, off + (size_t)in * (size_t)L->hidden, 1, L->hidden), L->act);
        off += (size_t)in * (size_t)L->hidden + (size_t)L->hidden; in = L->hidden;
    }
    return nf_t_linear(c->tp, x, nf__tparam(c, off, in, L->nout), nf__tparam(c, off + (size_t)in * (size_t)L->nout, 1, L->nout), NF_ACT_IDENTITY);
}
#endif

/* ==== elementwise transformers: z = T(y; theta) with log|dz/dy| ==============================
   The maps a conditioner parameterises, one per transformed feature. theta holds P values
   per feature, parameter-major: theta[p * n + j] for feature j of n.
     affine    P = 2: shift t, raw scale;  z = y e^s + t,  s = c tanh(raw / c)
     additive  P = 1: shift t;             z = y + t
     spline    P = 3K - 1: a monotone rational-quadratic spline (Durkan et al., "Neural
               Spline Flows", 2019) of K bins on [-B, B], the identity outside. Widths and
               heights are softmaxes of K values each, floored at min_width and min_height
               of the interval; the K - 1 inner knot derivatives are min_derivative +
               softplus(u + c0), c0 = log(e^(1 - min_derivative) - 1), and the two outer ones
               are 1: the spline meets the identity tails smoothly, and theta = 0 is the
               identity (every coupling and autoregressive layer starts there).
   In bin k (knots x_k, y_k; width w_k, height h_k; derivatives d_k, d_k+1), with
   xi = (y - x_k) / w_k, s = h_k / w_k, t = xi (1 - xi):
       z     = y_k + h_k (s xi^2 + d_k t) / (s + (d_k+1 + d_k - 2 s) t)
       dz/dy = s^2 (d_k+1 xi^2 + 2 s t + d_k (1 - xi)^2) / (s + (d_k+1 + d_k - 2 s) t)^2
   and the inverse is a root of a quadratic in xi, in the form stable for either sign. */
enum { NF__T_AFFINE = 0, NF__T_ADDITIVE, NF__T_SPLINE };
#define NF__MAXBINS 64
static int nf__tf_params(const nf__layer *L) { return L->transform == NF__T_AFFINE ? 2 : L->transform == NF__T_ADDITIVE ? 1 : 3 * L->bins - 1; }

#ifndef NFLOW_NO_SPLINE
/* one element's spline: softmax fractions (kept for backward), widths, heights, knot
   derivatives (d[0] = d[K] = 1) */
typedef struct nf__spl { nf_real sw[NF__MAXBINS], sh[NF__MAXBINS], w[NF__MAXBINS], h[NF__MAXBINS], d[NF__MAXBINS + 1]; } nf__spl;
typedef struct nf__bin { nf_real xk, wk, yk, hk, dk, dk1; } nf__bin;
static nf_real nf__spl_c0(const nf__layer *L) { return NF_LOG(NF_EXP(1 - L->min_d) - 1); }
/* softmax of K values at stride n, floored at m of the 2B interval */
static void nf__spl_sizes(const nf_real *u, int n, int K, nf_real B2, nf_real m, nf_real *frac, nf_real *size) {
    int k; nf_real mx = u[0], sum = 0;
    for (k = 1; k < K; ++k) if (u[(size_t)k * (size_t)n] > mx) mx = u[(size_t)k * (size_t)n];
    for (k = 0; k < K; ++k) sum += frac[k] = nf__exp_nonpos(u[(size_t)k * (size_t)n] - mx);   /* <= 0: no libm call */
    for (k = 0; k < K; ++k) { frac[k] /= sum; size[k] = B2 * (m + (1 - m * (nf_real)K) * frac[k]); }
}
static void nf__spl_make(const nf__layer *L, const nf_real *th, int n, nf__spl *sp) {
    int K = L->bins, k; nf_real c0 = nf__spl_c0(L);
    nf__spl_sizes(th, n, K, 2 * L->tail, L->min_w, sp->sw, sp->w);
    nf__spl_sizes(th + (size_t)K * (size_t)n, n, K, 2 * L->tail, L->min_h, sp->sh, sp->h);
    sp->d[0] = sp->d[K] = 1;
    for (k = 1; k < K; ++k) sp->d[k] = L->min_d + nf__softplus(th[(size_t)(2 * K + k - 1) * (size_t)n] + c0);
}
/* the bin holding v (found by x-knots, or by y-knots when by_y); -1 outside [-B, B] */
static int nf__spl_bin(const nf__layer *L, const nf__spl *sp, nf_real v, int by_y, nf__bin *b) {
    int k = 0, K = L->bins;
    b->xk = b->yk = -L->tail;
    if (!(v > -L->tail && v < L->tail)) return -1;
    while (k < K - 1 && v >= (by_y ? b->yk + sp->h[k] : b->xk + sp->w[k])) { b->xk += sp->w[k]; b->yk += sp->h[k]; ++k; }
    b->wk = sp->w[k]; b->hk = sp->h[k]; b->dk = sp->d[k]; b->dk1 = sp->d[k + 1];
    return k;
}
/* z of a bin at x; *ld = log dz/dx */
static nf_real nf__bin_fwd(const nf__bin *b, nf_real x, nf_real *ld) {
    nf_real xi = (x - b->xk) / b->wk, s = b->hk / b->wk, t = xi * (1 - xi), om = 1 - xi;
    nf_real den = s + (b->dk1 + b->dk - 2 * s) * t;
    nf_real q = b->dk1 * xi * xi + 2 * s * t + b->dk * om * om;
    *ld = 2 * NF_LOG(s) + NF_LOG(q) - 2 * NF_LOG(den);
    return b->yk + b->hk * (s * xi * xi + b->dk * t) / den;
}
/* x of a bin at z: the root in [0, 1] of a xi^2 + b xi + c = 0. Its two forms,
   2c / (-b - sqrt(b^2 - 4ac)) and (-b + sqrt(b^2 - 4ac)) / 2a, are equal; the first
   cancels when b < 0, the second when b > 0: take the one whose terms add. In the bin's
   upper half solve for eta = 1 - xi from the top knot instead (the map is the same with
   d_k and d_k+1 swapped): near either end b is then the end's slope term, far from zero,
   and the root is as accurate as z's rounding allows even with extreme knot slopes. */
static nf_real nf__bin_inv(const nf__bin *b, nf_real z) {
    nf_real s = b->hk / b->wk, e = b->dk1 + b->dk - 2 * s, dz = z - b->yk, d0 = b->dk;
    nf_real qa, qb, qc, disc, rt, r;
    int top = dz > b->hk / 2;
    if (top) { dz = (b->yk + b->hk) - z; d0 = b->dk1; }
    qa = b->hk * (s - d0) + dz * e; qb = b->hk * d0 - dz * e; qc = -s * dz;
    disc = qb * qb - 4 * qa * qc;
    rt = NF_SQRT(disc > 0 ? disc : NF__R(0));
    r = qb >= 0 ? 2 * qc / (-qb - rt) : (-qb + rt) / (2 * qa);
    if (!(r >= 0)) r = 0;   /* rounding at the bin's edges */
    if (!(r <= 1)) r = 1;
    return top ? (b->xk + b->wk) - r * b->wk : b->xk + r * b->wk;
}
#endif /* NFLOW_NO_SPLINE */

/* element j of n through the transformer: dir > 0 T, dir < 0 T^-1; *ld = log|d out/d in| */
static nf_real nf__tf_elem(const nf__layer *L, const nf_real *th, int n, int j, nf_real v, int dir, nf_real *ld) {
    const nf_real *tj = th + j;
    if (L->transform == NF__T_AFFINE) {
        nf_real t = tj[0], s = L->clamp * NF__VTANH(tj[n] * (1 / L->clamp));
        *ld = dir > 0 ? s : -s;
        return dir > 0 ? v * NF__VEXP(s) + t : (v - t) * NF__VEXP(-s);
    } else if (L->transform == NF__T_ADDITIVE) {
        *ld = 0;
        return dir > 0 ? v + tj[0] : v - tj[0];
    } else {
#ifndef NFLOW_NO_SPLINE
        nf__spl sp; nf__bin b; nf_real x, l;
        nf__spl_make(L, tj, n, &sp);
        if (nf__spl_bin(L, &sp, v, dir < 0, &b) < 0) { *ld = 0; return v; }   /* identity tails */
        if (dir > 0) return nf__bin_fwd(&b, v, ld);
        x = nf__bin_inv(&b, v);
        nf__bin_fwd(&b, x, &l);
        *ld = -l;
        return x;
#else
        *ld = 0; return v;   /* unreachable: spline layers are refused by the plan */
#endif
    }
}
/* features idx[0..n) of row x through the transformer (theta: the row's P n values);
   returns the row's log|det| of the direction taken */
static nf_real nf__tf_row(const nf__layer *L, const nf_real *th, int n, const int *idx, nf_real *x, int dir) {
    nf_real lsum = 0, l; int j;
    if (L->transform == NF__T_AFFINE) {   /* the hot path of RealNVP, kept tight */
#if NF__VMATH
        nf_real c = L->clamp, ic = 1 / L->clamp, sb[64], eb[64]; int j0, m;
        for (j0 = 0; j0 < n; j0 += 64) {
            m = n - j0 < 64 ? n - j0 : 64;
            for (j = 0; j < m; ++j) {   /* s and e^(+-s) of 64 features: contiguous, vectorises */
                nf_real s = c * NF__VTANH(th[n + j0 + j] * ic);
                sb[j] = s; eb[j] = NF__VEXP(dir > 0 ? s : -s);
            }
            for (j = 0; j < m; ++j) {
                nf_real t = th[j0 + j], *v = &x[idx[j0 + j]];
                if (dir > 0) *v = *v * eb[j] + t;     /* z = y e^s + t */
                else         *v = (*v - t) * eb[j];   /* y = (z - t) e^-s */
                lsum += sb[j];
            }
        }
#else   /* libm's functions, one call per element: the smallest code */
        nf_real c = L->clamp, ic = 1 / L->clamp;
        for (j = 0; j < n; ++j) {
            nf_real t = th[j], s = c * NF_TANH(th[n + j] * ic), *v = &x[idx[j]];
            if (dir > 0) *v = *v * NF_EXP(s) + t;     /* z = y e^s + t */
            else         *v = (*v - t) * NF_EXP(-s);  /* y = (z - t) e^-s */
            lsum += s;
        }
#endif
        return dir > 0 ? lsum : -lsum;
    }
    for (j = 0; j < n; ++j) { x[idx[j]] = nf__tf_elem(L, th, n, j, x[idx[j]], dir, &l); lsum += l; }
    return lsum;
}
#ifndef NFLOW_NO_TRAINING
#ifndef NFLOW_NO_SPLINE
static nf_real nf__sigmoid(nf_real x) { return x >= 0 ? 1 / (1 + NF_EXP(-x)) : NF_EXP(x) / (1 + NF_EXP(x)); }
/* Reverse sweep of nf__bin_fwd at x: seeds gz (on z) and gl (on log dz/dx); adds the
   gradients with respect to x and the bin's six values. */
static void nf__bin_back(const nf__bin *b, nf_real x, nf_real gz, nf_real gl, nf_real *gx, nf__bin *g) {
    nf_real xi = (x - b->xk) / b->wk, s = b->hk / b->wk, t = xi * (1 - xi), om = 1 - xi;
    nf_real e = b->dk1 + b->dk - 2 * s, den = s + e * t, a = s * xi * xi + b->dk * t, num = b->hk * a;
    nf_real q = b->dk1 * xi * xi + 2 * s * t + b->dk * om * om;
    nf_real gnum = gz / den, gden = -gz * num / (den * den) - 2 * gl / den;
    nf_real gs = 2 * gl / s, gq = gl / q, gxi = 0, gt = 0, ge, ga;
    g->yk += gz;
    g->dk1 += gq * xi * xi; gxi += gq * (2 * b->dk1 * xi - 2 * b->dk * om);      /* q */
    gs += gq * 2 * t; gt += gq * 2 * s; g->dk += gq * om * om;
    gs += gden; ge = gden * t; gt += gden * e;                                      /* den = s + e t */
    g->dk1 += ge; g->dk += ge; gs -= 2 * ge;                                        /* e = dk1 + dk - 2s */
    g->hk += gnum * a; ga = gnum * b->hk;                                           /* num = hk a */
    gs += ga * xi * xi; gxi += ga * 2 * s * xi; g->dk += ga * t; gt += ga * b->dk;  /* a = s xi^2 + dk t */
    gxi += gt * (1 - 2 * xi);                                                       /* t = xi (1 - xi) */
    g->hk += gs / b->wk; g->wk -= gs * s / b->wk;                                   /* s = hk / wk */
    *gx += gxi / b->wk; g->xk -= gxi / b->wk; g->wk -= gxi * xi / b->wk;            /* xi = (x - xk) / wk */
}
/* ... and on to the element's theta: knots are cumulative sums of the sizes, sizes are
   floored softmaxes, inner derivatives softplus */
static void nf__spl_theta_back(const nf__layer *L, const nf__spl *sp, const nf_real *th, int n, int k, const nf__bin *g, nf_real *gth) {
    int K = L->bins, i; nf_real gw[NF__MAXBINS], gh[NF__MAXBINS], dw = 0, dh = 0, c0 = nf__spl_c0(L);
    nf_real cw = 2 * L->tail * (1 - L->min_w * (nf_real)K), ch = 2 * L->tail * (1 - L->min_h * (nf_real)K);
    for (i = 0; i < K; ++i) { gw[i] = i < k ? g->xk : NF__R(0); gh[i] = i < k ? g->yk : NF__R(0); }   /* x_k = -B + sum_{i<k} w_i */
    gw[k] += g->wk; gh[k] += g->hk;
    for (i = 0; i < K; ++i) { gw[i] *= cw; gh[i] *= ch; dw += sp->sw[i] * gw[i]; dh += sp->sh[i] * gh[i]; }
    for (i = 0; i < K; ++i) {
        gth[(size_t)i * (size_t)n] += sp->sw[i] * (gw[i] - dw);
        gth[(size_t)(K + i) * (size_t)n] += sp->sh[i] * (gh[i] - dh);
    }
    if (k >= 1) gth[(size_t)(2 * K + k - 1) * (size_t)n] += g->dk * nf__sigmoid(th[(size_t)(2 * K + k - 1) * (size_t)n] + c0);
    if (k + 1 <= K - 1) gth[(size_t)(2 * K + k) * (size_t)n] += g->dk1 * nf__sigmoid(th[(size_t)(2 * K + k) * (size_t)n] + c0);
}
/* The spline as a tape op: o (R x (n + 1)) holds the n outputs and the row's log|det|;
   inputs x (R x n) and theta (R x P n); aux: the layer, iarg: the direction. For the
   inverse x' = F^-1(v) with l' = -log F'(x'): dv = q / F', q = g_x' - g_l' dlogF'/dx, and
   the parameters get -(q / F') dF/dp - g_l' dlogF'/dp (the implicit function theorem). */
static void nf__spline_back(nf_tensor *o) {
    nf_tensor *x = o->a, *th = o->b; const nf__layer *L = (const nf__layer *)o->aux;
    int n = x->cols, P = nf__tf_params(L), dir = o->iarg, r, j;
    for (r = 0; r < x->rows; ++r) {
        const nf_real *tr = th->val + (size_t)r * (size_t)P * (size_t)n; nf_real gl = o->grad[(size_t)r * (size_t)(n + 1) + (size_t)n];
        for (j = 0; j < n; ++j) {
            nf__spl sp; nf__bin b, g; int k; nf_real gx = 0, gy = o->grad[(size_t)r * (size_t)(n + 1) + (size_t)j];
            nf_real v = x->val[(size_t)r * (size_t)n + (size_t)j];
            nf__spl_make(L, tr + j, n, &sp);
            k = nf__spl_bin(L, &sp, v, dir < 0, &b);
            if (k < 0) { if (x->grad) x->grad[(size_t)r * (size_t)n + (size_t)j] += gy; continue; }
            memset(&g, 0, sizeof g);
            if (dir > 0) {
                nf__bin_back(&b, v, gy, gl, &gx, &g);
            } else {
                nf_real out = o->val[(size_t)r * (size_t)(n + 1) + (size_t)j], lf, lx = 0, q, dummy = 0; nf__bin ga;
                nf__bin_fwd(&b, out, &lf);
                memset(&ga, 0, sizeof ga);
                nf__bin_back(&b, out, 0, 1, &lx, &ga);     /* d log F' / dx at x' */
                q = gy - gl * lx;
                gx = q / NF_EXP(lf);
                nf__bin_back(&b, out, -gx, -gl, &dummy, &g);
            }
            if (x->grad) x->grad[(size_t)r * (size_t)n + (size_t)j] += gx;
            if (th->grad) nf__spl_theta_back(L, &sp, tr + j, n, k, &g, th->grad + (size_t)r * (size_t)P * (size_t)n + j);
        }
    }
}
static nf_tensor *nf__t_spline(nf_tape *tp, nf_tensor *x, nf_tensor *th, const nf__layer *L, int dir) {
    nf_tensor *o; int n, P, r, j;
    if (nf__bad(tp, x, th, 1)) return NULL;
    n = x->cols; P = nf__tf_params(L);
    if (th->rows != x->rows || th->cols != P * n) { tp->err = NF_ERR_SHAPE; return NULL; }
    o = nf__node(tp, 0, nf__spline_back, x->rows, n + 1, x, th);
    if (!o) return NULL;
    o->aux = L; o->iarg = dir;
    for (r = 0; r < x->rows; ++r) {
        nf_real ld = 0, l;
        for (j = 0; j < n; ++j) {
            o->val[(size_t)r * (size_t)(n + 1) + (size_t)j] = nf__tf_elem(L, th->val + (size_t)r * (size_t)P * (size_t)n, n, j, x->val[(size_t)r * (size_t)n + (size_t)j], dir, &l);
            ld += l;
        }
        o->val[(size_t)r * (size_t)(n + 1) + (size_t)n] = ld;
    }
    return o;
}
#endif /* NFLOW_NO_SPLINE */

/* The affine transformer on the tape as one node (was 13: two gathers of theta, scale, tanh,
   scale, exp, mul, add, the row sums, and for a coupling the gather of the transformed
   columns, two scatters and an add; together 10-15% of a RealNVP training step, each a pass
   over memory with its own gradient buffer). Columns idx[j] of x (R x D) are transformed
   with t = theta[:, j], s = c tanh(theta[:, n + j] / c); the other columns pass through:
       dir > 0: z = y e^s + t, log|det| = sum s;   dir < 0: y = (z - t) e^-s, log|det| = -sum s
   computed as the separate ops did (the same forward bits), with e^(+-s) and tanh kept for
   the backward step. The rows' log|det| is a node of its own (ld, created first, written by
   this one's forward, its gradient read by this one's backward). */
typedef struct nf__affn { nf_real *e, *q; const int *keep; int n, nk; } nf__affn;   /* e^(+-s), tanh(u / c): R x n each; the kept columns */
static void nf__affine_fw_rows(void *arg, int r0, int m) {
    nf_tensor *o = (nf_tensor *)arg, *x = o->a, *th = o->b, *ld = o->c; const nf__affn *A = (const nf__affn *)o->aux;
    const int *idx = o->idx; int n = A->n, D = x->cols, P = th->cols, dir = o->iarg, r, j;
    nf_real c = o->k, ic = 1 / o->k;
    size_t i, i0 = (size_t)r0 * (size_t)n, i1 = i0 + (size_t)m * (size_t)n;
    nf_real *NF__RESTRICT qa = A->q, *NF__RESTRICT ea = A->e;
    for (r = r0; r < r0 + m; ++r)   /* the rows' u side by side, then tanh and e^(+-s) in one flat pass (vectors even at n = 1) */
        memcpy(qa + (size_t)r * (size_t)n, th->val + (size_t)r * (size_t)P + n, sizeof(nf_real) * (size_t)n);
    for (i = i0; i < i1; ++i) { nf_real sj; qa[i] = NF__VTANH(ic * qa[i]); sj = c * qa[i]; ea[i] = NF__VEXP(dir > 0 ? sj : -1 * sj); }
    for (r = r0; r < r0 + m; ++r) {
        const nf_real *xr = x->val + (size_t)r * (size_t)D, *tr = th->val + (size_t)r * (size_t)P;
        nf_real *orow = o->val + (size_t)r * (size_t)D, *e = ea + (size_t)r * (size_t)n, *q = qa + (size_t)r * (size_t)n, sum = 0;
        for (j = 0; j < n; ++j) sum += c * q[j];
        if (idx) memcpy(orow, xr, sizeof(nf_real) * (size_t)D);   /* the kept columns */
        for (j = 0; j < n; ++j) {
            int col = idx ? idx[j] : j;
            orow[col] = dir > 0 ? xr[col] * e[j] + tr[j] : (xr[col] - tr[j]) * e[j];
        }
        ld->val[r] = dir > 0 ? sum : -1 * sum;
    }
}
static void nf__affine_bw_rows(void *arg, int r0, int m) {
    nf_tensor *o = (nf_tensor *)arg, *x = o->a, *th = o->b; const nf__affn *A = (const nf__affn *)o->aux;
    const int *idx = o->idx; int n = A->n, D = x->cols, P = th->cols, dir = o->iarg, r, j;
    const nf_real *dld = o->c->grad;   /* NULL: nothing used the log|det| */
    for (r = r0; r < r0 + m; ++r) {
        const nf_real *g = o->grad + (size_t)r * (size_t)D, *e = A->e + (size_t)r * (size_t)n, *q = A->q + (size_t)r * (size_t)n;
        const nf_real *xr = x->val + (size_t)r * (size_t)D, *orow = o->val + (size_t)r * (size_t)D;
        nf_real l = dld ? dld[r] : 0;
        if (th->grad) {
            nf_real *gt = th->grad + (size_t)r * (size_t)P;
            for (j = 0; j < n; ++j) {
                int col = idx ? idx[j] : j;
                /* ds: dir > 0 z = y e^s + t, dz/ds = y e^s; dir < 0 dy/ds = -y (y the output) */
                nf_real ds = dir > 0 ? g[col] * xr[col] * e[j] + l : -(g[col] * orow[col]) - l;
                gt[j] += dir > 0 ? g[col] : -(g[col] * e[j]);
                gt[n + j] += ds * (1 - q[j] * q[j]);   /* ds/du = 1 - tanh^2 */
            }
        }
        if (x->grad) {
            nf_real *gx = x->grad + (size_t)r * (size_t)D;
            for (j = 0; j < A->nk; ++j) gx[A->keep[j]] += g[A->keep[j]];
            for (j = 0; j < n; ++j) { int col = idx ? idx[j] : j; gx[col] += g[col] * e[j]; }
        }
    }
}
static void nf__affine_back(nf_tensor *o) { nf__par_rows(o->par, o->rows, (float)o->rows * (float)o->a->cols * 64.0f, nf__affine_bw_rows, o); }
static void nf__affine_ld_back(nf_tensor *o) { (void)o; }   /* read by nf__affine_back */
/* idx: the n transformed columns of x, keep the other nk (idx NULL: all, n = x->cols) */
static nf_tensor *nf__affine_tape(nf__tctx *c, const nf__layer *L, nf_tensor *x, nf_tensor *th, const int *idx, int n,
                                  const int *keep, int nk, int dir) {
    nf_tape *tp = c->tp; nf_tensor *ld, *o; nf__affn *A; size_t cnt;
    if (nf__bad(tp, x, th, 1)) return NULL;
    if (th->rows != x->rows || th->cols < 2 * n || n + nk != x->cols || (!idx && nk)) { tp->err = NF_ERR_SHAPE; return NULL; }
    ld = nf__node(tp, 0, nf__affine_ld_back, x->rows, 1, x, th);
    if (!ld) return NULL;
    ld->a = ld->b = NULL;   /* no inputs of its own: only its gradient, for o */
    o = nf__node(tp, 0, nf__affine_back, x->rows, x->cols, x, th);
    if (!o) return NULL;
    cnt = (size_t)x->rows * (size_t)n;
    A = (nf__affn *)nf_arena_alloc(tp->arena, sizeof(nf__affn));
    if (A) { A->e = (nf_real *)nf_arena_alloc(tp->arena, 2 * cnt * sizeof(nf_real) + 1); A->n = n; A->keep = keep; A->nk = nk; }
    if (!A || !A->e) { tp->err = NF_ERR_ARENA_FULL; return NULL; }
    A->q = A->e + cnt;
    o->c = ld; o->aux = A; o->idx = idx; o->k = L->clamp; o->iarg = dir;
    nf__par_rows(tp->par, o->rows, (float)o->rows * (float)x->cols * 64.0f, nf__affine_fw_rows, o);
    nf__add_ld(c, ld, 1);
    return o;
}

/* x (R x n) through the transformer on the tape; adds the rows' log|det| */
static nf_tensor *nf__tf_tape(nf__tctx *c, const nf__layer *L, nf_tensor *x, nf_tensor *th, int dir) {
    nf_tape *tp = c->tp; int n = x ? x->cols : 0;
    if (!x || !th) { if (tp->err == NF_OK) tp->err = NF_ERR_NULL; return NULL; }
    switch (L->transform) {
    case NF__T_AFFINE:
        if (NF__SPEED) return nf__affine_tape(c, L, x, th, NULL, n, NULL, 0, dir);
        {   /* size-optimised builds: the same maps in separate ops */
            nf_tensor *t = nf_t_gather_cols(tp, th, c->f->iota, n), *s, *lds, *out;
            s = nf_t_scale(tp, nf_t_tanh(tp, nf_t_scale(tp, nf_t_gather_cols(tp, th, c->f->iota + n, n), 1 / L->clamp)), L->clamp);
            if (dir > 0) {
                lds = nf_t_sum_rows(tp, s);
                out = nf_t_add(tp, nf_t_mul(tp, x, nf_t_exp(tp, s)), t);                  /* z = y e^s + t */
            } else {
                lds = nf_t_scale(tp, nf_t_sum_rows(tp, s), -1);
                out = nf_t_mul(tp, nf_t_sub(tp, x, t), nf_t_exp(tp, nf_t_scale(tp, s, -1)));   /* y = (z - t) e^-s */
            }
            nf__add_ld(c, lds, 1);
            return out;
        }
    case NF__T_ADDITIVE:
        return dir > 0 ? nf_t_add(tp, x, th) : nf_t_sub(tp, x, th);
    default:
#ifndef NFLOW_NO_SPLINE
        {   nf_tensor *out = nf__t_spline(tp, x, th, L, dir);
            nf__add_ld(c, nf_t_gather_cols(tp, out, c->f->iota + n, 1), 1);
            return nf_t_gather_cols(tp, out, c->f->iota, n); }
#else
        tp->err = NF_ERR_ARG; return NULL;
#endif
    }
}
#endif

/* ==== coupling layers: affine (RealNVP), additive (NICE), spline (NSF) ========================
   The features split into a kept part y_a and a transformed part y_b. A conditioner MLP
   reads [y_a | context] and gives the parameters of each transformed feature's map:
       z_a = y_a,   z_b = T(y_b; MLP(y_a, c))       inverse: y_b = T^-1(z_b; MLP(z_a, c))
   affine: z_b = y_b * exp(s) + t, log|det| = sum s (s = c tanh(raw / c)); additive: s = 0;
   spline: a rational-quadratic spline per feature (see the transformers above). The
   Jacobian is triangular, so its determinant is the product of the maps' slopes; neither
   direction inverts the MLP. Settings: hidden (64), depth (2), activation (ReLU), mask
   (checkerboard: feature j is kept when j % 2 == parity; half: the first ceil(D/2) are
   kept when parity is 0), parity; affine: clamp c (3); spline: bins (8), tail_bound (3),
   min_width, min_height, min_derivative (1e-3). */
static int nf__coupling_kept(const nf_layer_desc *ld, int D, int j) {
    if (D == 1) return 0;   /* a 1-D coupling is an elementwise map with a constant conditioner */
    return ld->mask == NF_MASK_HALF ? ((j < (D + 1) / 2) == (ld->parity == 0)) : (j % 2 == ld->parity);
}
/* the elementwise map's settings, shared with autoregressive layers */
static void nf__tf_canon(const nf_layer_desc *l, int transform, nf_layer_desc *c) {
    if (transform == NF__T_AFFINE) c->clamp = l->clamp != 0 ? l->clamp : 3.0f;
    if (transform != NF__T_SPLINE) return;
    c->bins = l->bins ? l->bins : 8;
    c->tail_bound = l->tail_bound != 0 ? l->tail_bound : 3.0f;
    c->min_width = l->min_width != 0 ? l->min_width : 1e-3f;
    c->min_height = l->min_height != 0 ? l->min_height : 1e-3f;
    c->min_derivative = l->min_derivative != 0 ? l->min_derivative : 1e-3f;
}
static nf_result nf__tf_plan(const nf_layer_desc *l, int transform, nf__layer *L, const char **why) {
    nf_layer_desc c; memset(&c, 0, sizeof c);
    nf__tf_canon(l, transform, &c);
    L->transform = transform;
    /* 0 is the default; a clamp below 1e-6 would make raw / clamp overflow (0 * inf) */
    if (transform == NF__T_AFFINE && !(l->clamp == 0 || (l->clamp >= 1e-6f && l->clamp < 1e30f))) NF__REFUSE(NF_ERR_ARG, "clamp must be 0 (default) or in [1e-6, 1e30)");
    L->clamp = (nf_real)c.clamp;
    if (transform != NF__T_SPLINE) return NF_OK;
#ifdef NFLOW_NO_SPLINE
    NF__REFUSE(NF_ERR_UNSUPPORTED, "a spline transformer: this build defines NFLOW_NO_SPLINE");
#endif
    if (c.bins < 2 || c.bins > NF__MAXBINS) NF__REFUSE(NF_ERR_ARG, "bins must be 0 (default 8) or in 2..64");
    if (!(c.tail_bound > 0 && c.tail_bound < 1e6f)) NF__REFUSE(NF_ERR_ARG, "tail_bound must be 0 (default 3) or in (0, 1e6)");
    if (!(c.min_width > 0 && c.min_width * (float)c.bins < 1) || !(c.min_height > 0 && c.min_height * (float)c.bins < 1))
        NF__REFUSE(NF_ERR_ARG, "min_width and min_height must be > 0 with bins x min < 1");
    if (!(c.min_derivative > 0 && c.min_derivative < 1)) NF__REFUSE(NF_ERR_ARG, "min_derivative must be in (0, 1)");
    L->bins = c.bins; L->tail = (nf_real)c.tail_bound;
    L->min_w = (nf_real)c.min_width; L->min_h = (nf_real)c.min_height; L->min_d = (nf_real)c.min_derivative;
    return NF_OK;
}
static int nf__coupling_transform(int kind) {
    return kind == NF_LAYER_AFFINE_COUPLING ? NF__T_AFFINE : kind == NF_LAYER_ADDITIVE_COUPLING ? NF__T_ADDITIVE : NF__T_SPLINE;
}
static void nf__coupling_canon(const nf_layer_desc *l, nf_layer_desc *c) {
    memset(c, 0, sizeof *c);
    c->kind = l->kind;
    c->hidden = l->hidden ? l->hidden : 64; c->depth = l->depth ? l->depth : 2;
    c->activation = l->activation ? l->activation : NF_ACT_RELU;
    c->mask = l->mask; c->parity = l->parity;
    nf__tf_canon(l, nf__coupling_transform(l->kind), c);
}
/* the conditioner's settings, shared by couplings and autoregressive layers */
static nf_result nf__net_check(const nf_layer_desc *c, const char **why) {
    if (c->hidden < 1 || c->hidden > (1 << 16)) NF__REFUSE(NF_ERR_ARG, "hidden must be 0 (default 64) or in 1..65536");
    if (c->depth < 1 || c->depth > 64) NF__REFUSE(NF_ERR_ARG, "depth must be 0 (default 2) or in 1..64");
    if (c->activation < NF_ACT_RELU || c->activation > NF_ACT_IDENTITY) NF__REFUSE(NF_ERR_ARG, "unknown activation");
    if (!NF__HAS_ACT(c->activation)) NF__REFUSE(NF_ERR_UNSUPPORTED, "an activation this build's NFLOW_ACTIVATIONS leaves out");
    return NF_OK;
}
static nf_result nf__coupling_plan(const nf_layer_desc *ld, int D, int C, nf__layer *L, const char **why) {
    nf_layer_desc c; int j; nf_result r;
    nf__coupling_canon(ld, &c);
    if ((r = nf__net_check(&c, why)) != NF_OK) return r;
    if (c.mask != NF_MASK_CHECKER && c.mask != NF_MASK_HALF) NF__REFUSE(NF_ERR_ARG, "mask must be NF_MASK_CHECKER or NF_MASK_HALF");
    if (c.parity != 0 && c.parity != 1) NF__REFUSE(NF_ERR_ARG, "parity must be 0 or 1");
    if ((r = nf__tf_plan(ld, nf__coupling_transform(ld->kind), L, why)) != NF_OK) return r;
    L->hidden = c.hidden; L->depth = c.depth; L->act = c.activation;
    for (j = 0; j < D; ++j) if (nf__coupling_kept(ld, D, j)) L->nk++; else L->nt++;
    if (L->nt == 0) NF__REFUSE(NF_ERR_ARG, "the mask transforms no dimension (a coupling needs dim >= 2)");
    L->nout = nf__tf_params(L) * L->nt;
    L->nin = L->nk + C;   /* the context enters every conditioner */
    L->ni = (size_t)D;    /* keep | trans */
    return nf__mlp_plan(L, why);
}
static void nf__coupling_setup(nf__layer *L, const nf_layer_desc *ld, int D, int index, int *ints) {
    int j, a = 0, c = 0;
    (void)index;
    L->keep = ints; L->trans = ints + L->nk;
    for (j = 0; j < D; ++j) if (nf__coupling_kept(ld, D, j)) L->keep[a++] = j; else L->trans[c++] = j;
}
static void nf__coupling_init(const nf__layer *L, nf_real *p, int D, nf_rng *rng) { (void)D; nf__mlp_init(L, p, rng); }
/* The affine transform of R rows with few transformed features (n <= 32): the log-scales
   of several rows gathered into one 64-wide buffer, so that the vectorised tanh and e^x run
   on full vectors (one row of a 2-D flow has one feature: per row they ran slower than
   libm's). Each element and each row's log-det sum as nf__tf_row computes them: same bits. */
static void nf__affine_rows(const nf__layer *L, const nf_real *out, int R, const int *idx, nf_real *x, int D, int dir, nf_real *ld) {
    nf_real c = L->clamp, ic = 1 / L->clamp, sb[64], eb[64]; int n = L->nt, nout = L->nout, per = 64 / n, r0, k, j, m;
    for (r0 = 0; r0 < R; r0 += per) {
        m = R - r0 < per ? R - r0 : per;
        for (k = 0; k < m; ++k) for (j = 0; j < n; ++j) sb[k * n + j] = out[(size_t)(r0 + k) * (size_t)nout + (size_t)(n + j)];
        for (j = 0; j < m * n; ++j) { nf_real s = c * NF__VTANH(sb[j] * ic); sb[j] = s; eb[j] = NF__VEXP(dir > 0 ? s : -s); }
        for (k = 0; k < m; ++k) {
            const nf_real *th = out + (size_t)(r0 + k) * (size_t)nout; nf_real *xr = x + (size_t)(r0 + k) * (size_t)D, lsum = 0;
            for (j = 0; j < n; ++j) {
                nf_real *v = &xr[idx[j]];
                if (dir > 0) *v = *v * eb[k * n + j] + th[j];
                else         *v = (*v - th[j]) * eb[k * n + j];
                lsum += sb[k * n + j];
            }
            ld[r0 + k] += dir > 0 ? lsum : -lsum;
        }
    }
}
static void nf__coupling_apply(const nf_flow *f, const nf__layer *L, nf_real *x, int R, int dir, nf__ws *w) {
    int D = f->dim, r, j;
    for (r = 0; r < R; ++r) {   /* conditioner input: [kept features | context] */
        nf_real *cr = w->cond + (size_t)r * (size_t)L->nin;
        for (j = 0; j < L->nk; ++j) cr[j] = x[(size_t)r * (size_t)D + (size_t)L->keep[j]];
        for (j = 0; j < f->ctx_dim; ++j) cr[L->nk + j] = w->ctx[(size_t)r * (size_t)f->ctx_dim + (size_t)j];
    }
    nf__mlp(L, f->params, w->cond, R, w);
    if (NF__VMATH && L->transform == NF__T_AFFINE && L->nt <= 32) { nf__affine_rows(L, w->out, R, L->trans, x, D, dir, w->ld); return; }
    for (r = 0; r < R; ++r) w->ld[r] += nf__tf_row(L, w->out + (size_t)r * (size_t)L->nout, L->nt, L->trans, x + (size_t)r * (size_t)D, dir);
}
#ifndef NFLOW_NO_TRAINING
static nf_tensor *nf__coupling_pass(nf__tctx *c, const nf__layer *L, nf_tensor *x, int dir) {
    nf_tape *tp = c->tp; int D = c->f->dim;
    nf_tensor *xa = nf_t_gather_cols(tp, x, L->keep, L->nk), *xb, *th, *zb;
    th = nf__mlp_tape(c, L, c->ctx ? nf_t_concat_cols(tp, xa, c->ctx) : xa);
    if (NF__SPEED && L->transform == NF__T_AFFINE) return nf__affine_tape(c, L, x, th, L->trans, L->nt, L->keep, L->nk, dir);   /* one node */
    xb = nf_t_gather_cols(tp, x, L->trans, L->nt);
    zb = nf__tf_tape(c, L, xb, th, dir);
    return nf_t_add(tp, nf_t_scatter_cols(tp, xa, L->keep, D), nf_t_scatter_cols(tp, zb, L->trans, D));
}
static nf_tensor *nf__coupling_tape(nf__tctx *c, const nf__layer *L, nf_tensor *x) { return nf__coupling_pass(c, L, x, +1); }
static nf_tensor *nf__coupling_tape_inv(nf__tctx *c, const nf__layer *L, nf_tensor *z) { return nf__coupling_pass(c, L, z, -1); }
#endif

#ifndef NFLOW_NO_AUTOREGRESSIVE
/* ==== autoregressive layers: MADE conditioner (MAF, IAF) =======================================
   One masked MLP (MADE, Germain et al. 2015) reads all D features, in an order (feature
   perm[i] sits at position i), and the context, and gives each feature's map parameters
   from the features before it only: units carry degrees (feature at position i: i + 1;
   context: 0), and a weight from degree m to degree m' exists only when m' >= m (into the
   output layer: m' > m). Masked weights are zero and stay zero: their gradient is masked.
   MAF (inverse = 0, Papamakarios et al. 2017): the network reads the data side,
       z_j = T(y_j; theta_j(y before j))   density: one pass; sampling: D passes
   IAF (inverse = 1, Kingma et al. 2016): it reads the latent side,
       y_j = T^-1(z_j; theta_j(z before j))   sampling: one pass; density: D passes
   so fit data with MAF and fit an unnormalised density by reverse KL (which samples)
   with IAF. With a context, some hidden units have degree 0 (context only), so even the
   first feature depends on the context. T is affine or spline (transformer).
   Settings: hidden (64), depth (2), activation (ReLU), transformer and its settings
   (clamp; bins, tail_bound, minimums), inverse, order (natural, reversed, random(seed)). */
static int nf__ar_transform(const nf_layer_desc *l) { return l->transformer == NF_TRANSFORM_SPLINE ? NF__T_SPLINE : NF__T_AFFINE; }
static void nf__ar_canon(const nf_layer_desc *l, nf_layer_desc *c) {
    memset(c, 0, sizeof *c);
    c->kind = l->kind;
    c->hidden = l->hidden ? l->hidden : 64; c->depth = l->depth ? l->depth : 2;
    c->activation = l->activation ? l->activation : NF_ACT_RELU;
    c->transformer = l->transformer; c->inverse = l->inverse; c->order = l->order;
    if (l->order == NF_ORDER_RANDOM) c->seed = l->seed;
    nf__tf_canon(l, nf__ar_transform(l), c);
}
static nf_result nf__ar_plan(const nf_layer_desc *ld, int D, int C, nf__layer *L, const char **why) {
    nf_layer_desc c; nf_result r; int ok = 1;
    nf__ar_canon(ld, &c);
    if ((r = nf__net_check(&c, why)) != NF_OK) return r;
    if (c.transformer != NF_TRANSFORM_AFFINE && c.transformer != NF_TRANSFORM_SPLINE) NF__REFUSE(NF_ERR_ARG, "transformer must be NF_TRANSFORM_AFFINE or NF_TRANSFORM_SPLINE");
    if (c.inverse != 0 && c.inverse != 1) NF__REFUSE(NF_ERR_ARG, "inverse must be 0 (MAF) or 1 (IAF)");
    if (c.order < NF_ORDER_NATURAL || c.order > NF_ORDER_RANDOM) NF__REFUSE(NF_ERR_ARG, "unknown order");
    if ((r = nf__tf_plan(ld, nf__ar_transform(ld), L, why)) != NF_OK) return r;
    L->hidden = c.hidden; L->depth = c.depth; L->act = c.activation; L->ar_inverse = c.inverse;
    L->nin = D + C; L->nt = D;
    L->nout = nf__tf_params(L) * D;
    L->seq = 1;   /* the direction that needs D passes builds its output in a buffer */
    /* order, its inverse, hidden degrees, each feature's parameter columns */
    L->ni = nf__madd(nf__madd(2 * (size_t)D, (size_t)c.depth, (size_t)c.hidden, &ok), (size_t)nf__tf_params(L), (size_t)D, &ok);
    if (!ok) NF__REFUSE(NF_ERR_OVERFLOW, "the layer's size overflows");
    return nf__mlp_plan(L, why);
}
static void nf__ar_setup(nf__layer *L, const nf_layer_desc *ld, int D, int index, int *ints) {
    int j, k, P = nf__tf_params(L), C = L->nin - D, top = C > 0 ? D : (D > 1 ? D - 1 : 1);
    L->perm = ints; L->iperm = ints + D; L->keep = ints + 2 * D; L->trans = L->keep + (size_t)L->depth * (size_t)L->hidden;
    for (j = 0; j < D; ++j) L->perm[j] = ld->order == NF_ORDER_REVERSED ? D - 1 - j : j;
    if (ld->order == NF_ORDER_RANDOM) {
        nf_rng prng; nf_rng_seed(&prng, (uint64_t)ld->seed * 2654435761u + (uint64_t)index + 1);
        for (j = D - 1; j > 0; --j) { int q = (int)(nf_rng_u32(&prng) % (uint32_t)(j + 1)), t = L->perm[j]; L->perm[j] = L->perm[q]; L->perm[q] = t; }
    }
    for (j = 0; j < D; ++j) L->iperm[L->perm[j]] = j;
    /* hidden degrees cycle through 0 .. D-1 with a context (degree 0 sees only the
       context), 1 .. D-1 without */
    for (k = 0; k < L->depth * L->hidden; ++k) L->keep[k] = C > 0 ? (k % L->hidden) % D : (k % L->hidden) % top + 1;
    for (j = 0; j < D; ++j) for (k = 0; k < P; ++k) L->trans[(size_t)j * (size_t)P + (size_t)k] = k * D + j;
}
/* zero the masked weights (after initialisation and loading: they are not part of the
   model; every step, of the gradient). The weight from unit i of weight-layer l's input
   to its unit o is present when o's degree is at least i's (hidden layers), or above it
   (the output o = q D + feature j, of degree iperm[j] + 1); input i < D has degree
   iperm[i] + 1, a context input 0. Row by row: i's degree once, then a select along the
   row, which vectorises. */
static void nf__ar_fixup(const nf__layer *L, nf_real *p) {
    int l, i, o, j, q, in = L->nin, D = L->nt, P = nf__tf_params(L);
    for (l = 0; l <= L->depth; ++l) {
        int out = l < L->depth ? L->hidden : L->nout;
        for (i = 0; i < in; ++i) {
            nf_real *row = p + (size_t)i * (size_t)out;
            int din = l == 0 ? (i < D ? L->iperm[i] + 1 : 0) : L->keep[(size_t)(l - 1) * (size_t)L->hidden + (size_t)i];
            if (l < L->depth) {
                const int *kd = L->keep + (size_t)l * (size_t)L->hidden;
                for (o = 0; o < out; ++o) row[o] = kd[o] >= din ? row[o] : 0;
            } else   /* output o = q D + feature j */
                for (q = 0; q < P; ++q) for (j = 0; j < D; ++j) row[q * D + j] = L->iperm[j] + 1 > din ? row[q * D + j] : 0;
        }
        p += (size_t)in * (size_t)out + (size_t)out; in = L->hidden;
    }
}
static void nf__ar_init(const nf__layer *L, nf_real *p, int D, nf_rng *rng) {
    (void)D;
    nf__mlp_init(L, p, rng);
    nf__ar_fixup(L, p);
}
static void nf__ar_apply(const nf_flow *f, const nf__layer *L, nf_real *x, int R, int dir, nf__ws *w) {
    int D = f->dim, C = f->ctx_dim, r, j, i;
    if ((dir > 0) != L->ar_inverse) {   /* one pass: the network reads x itself */
        for (r = 0; r < R; ++r) {
            memcpy(w->cond + (size_t)r * (size_t)L->nin, x + (size_t)r * (size_t)D, (size_t)D * sizeof(nf_real));
            memcpy(w->cond + (size_t)r * (size_t)L->nin + D, w->ctx + (size_t)r * (size_t)C, (size_t)C * sizeof(nf_real));
        }
        nf__mlp(L, f->params, w->cond, R, w);
        for (r = 0; r < R; ++r) w->ld[r] += nf__tf_row(L, w->out + (size_t)r * (size_t)L->nout, D, f->iota, x + (size_t)r * (size_t)D, dir);
        return;
    }
    /* D passes: the output side is built in w->seq, one feature (in order) per pass, each
       from the features before it, which are final by then */
    memset(w->seq, 0, (size_t)R * (size_t)D * sizeof(nf_real));
    for (i = 0; i < D; ++i) {
        for (r = 0; r < R; ++r) {
            memcpy(w->cond + (size_t)r * (size_t)L->nin, w->seq + (size_t)r * (size_t)D, (size_t)D * sizeof(nf_real));
            memcpy(w->cond + (size_t)r * (size_t)L->nin + D, w->ctx + (size_t)r * (size_t)C, (size_t)C * sizeof(nf_real));
        }
        nf__mlp(L, f->params, w->cond, R, w);
        j = L->perm[i];
        for (r = 0; r < R; ++r) {
            nf_real l;
            w->seq[(size_t)r * (size_t)D + (size_t)j] = nf__tf_elem(L, w->out + (size_t)r * (size_t)L->nout, D, j, x[(size_t)r * (size_t)D + (size_t)j], dir, &l);
            w->ld[r] += l;
        }
    }
    memcpy(x, w->seq, (size_t)R * (size_t)D * sizeof(nf_real));
}
#ifndef NFLOW_NO_TRAINING
/* the MADE on the tape: its weights as they are, the masked ones 0 (nf__ar_fixup after
   initialisation, loading and every update; inference relies on it too), so no mask
   product is needed; their gradients are zeroed by nf__ar_fixup after the backward pass */
static nf_tensor *nf__ar_net(nf__tctx *c, const nf__layer *L, nf_tensor **Wm, nf_tensor *x) {
    size_t off = L->poff; int in = L->nin, l;
    if (c->ctx) x = nf_t_concat_cols(c->tp, x, c->ctx);
    for (l = 0; l <= L->depth; ++l) {
        int out = l < L->depth ? L->hidden : L->nout;
        x = nf_t_linear(c->tp, x, Wm[l], nf__tparam(c, off + (size_t)in * (size_t)out, 1, out), l < L->depth ? L->act : NF_ACT_IDENTITY);
        off += (size_t)in * (size_t)out + (size_t)out; in = L->hidden;
    }
    return x;
}
static nf_tensor *nf__ar_pass(nf__tctx *c, const nf__layer *L, nf_tensor *x, int dir) {
    nf_tape *tp = c->tp; nf_tensor *Wm[65], *out; size_t off = L->poff; int in = L->nin, l, i, D = c->f->dim, P = nf__tf_params(L);
    for (l = 0; l <= L->depth; ++l) {
        int n_out = l < L->depth ? L->hidden : L->nout;
        Wm[l] = nf__tparam(c, off, in, n_out);
        off += (size_t)in * (size_t)n_out + (size_t)n_out; in = L->hidden;
    }
    if ((dir > 0) != L->ar_inverse) return nf__tf_tape(c, L, x, nf__ar_net(c, L, Wm, x), dir);   /* one pass */
    out = nf_tape_new(tp, x ? x->rows : 0, D);   /* D passes, each fixing the next feature in order */
    for (i = 0; i < D && out; ++i) {
        int j = L->perm[i];
        nf_tensor *th = nf_t_gather_cols(tp, nf__ar_net(c, L, Wm, out), L->trans + (size_t)j * (size_t)P, P);
        nf_tensor *v = nf__tf_tape(c, L, nf_t_gather_cols(tp, x, c->f->iota + j, 1), th, dir);
        out = nf_t_add(tp, out, nf_t_scatter_cols(tp, v, c->f->iota + j, D));
    }
    return out;
}
static nf_tensor *nf__ar_tape(nf__tctx *c, const nf__layer *L, nf_tensor *x) { return nf__ar_pass(c, L, x, +1); }
static nf_tensor *nf__ar_tape_inv(nf__tctx *c, const nf__layer *L, nf_tensor *z) { return nf__ar_pass(c, L, z, -1); }
#endif

#endif /* NFLOW_NO_AUTOREGRESSIVE */

/* ==== permutations: reversal and a fixed random permutation ===================================
   z_j = y_perm[j], log|det| = 0. Couplings leave their kept features alone; permutations
   between them let every feature be transformed. Settings: seed (permute). */
static void nf__perm_canon(const nf_layer_desc *l, nf_layer_desc *c) {
    memset(c, 0, sizeof *c);
    c->kind = l->kind;
    if (l->kind != NF_LAYER_REVERSE) c->seed = l->seed;
}
static nf_result nf__perm_plan(const nf_layer_desc *ld, int D, int C, nf__layer *L, const char **why) {
    (void)ld; (void)C; (void)why;
    L->ni = 2 * (size_t)D;
    return NF_OK;
}
/* perm and its inverse; a seeded shuffle unless reversing (LU uses it too) */
static void nf__perm_setup(nf__layer *L, const nf_layer_desc *ld, int D, int index, int *ints) {
    int j;
    L->perm = ints; L->iperm = ints + D;
    for (j = 0; j < D; ++j) L->perm[j] = L->kind == NF_LAYER_REVERSE ? D - 1 - j : j;
    if (L->kind != NF_LAYER_REVERSE) {
        nf_rng prng; nf_rng_seed(&prng, (uint64_t)ld->seed * 2654435761u + (uint64_t)index + 1);
        for (j = D - 1; j > 0; --j) {   /* Fisher-Yates */
            int k = (int)(nf_rng_u32(&prng) % (uint32_t)(j + 1)), t = L->perm[j];
            L->perm[j] = L->perm[k]; L->perm[k] = t;
        }
    }
    for (j = 0; j < D; ++j) L->iperm[L->perm[j]] = j;
}
static void nf__perm_apply(const nf_flow *f, const nf__layer *L, nf_real *x, int R, int dir, nf__ws *w) {
    const int *pm = dir > 0 ? L->perm : L->iperm;   /* z[j] = y[perm[j]] */
    int r, j, D = f->dim;
    for (r = 0; r < R; ++r) {
        nf_real *xr = x + (size_t)r * (size_t)D, *t = w->tmp;
        for (j = 0; j < D; ++j) t[j] = xr[pm[j]];
        memcpy(xr, t, (size_t)D * sizeof(nf_real));
    }
}
#ifndef NFLOW_NO_TRAINING
static nf_tensor *nf__perm_tape(nf__tctx *c, const nf__layer *L, nf_tensor *x) { return nf_t_gather_cols(c->tp, x, L->perm, c->f->dim); }
static nf_tensor *nf__perm_tape_inv(nf__tctx *c, const nf__layer *L, nf_tensor *z) { return nf_t_gather_cols(c->tp, z, L->iperm, c->f->dim); }
#endif

#ifndef NFLOW_NO_ACTNORM
/* ==== ActNorm (Glow) ===========================================================================
   Per-feature scale and shift, z = y exp(s) + b, log|det| = sum s; inverse
   y = (z - b) exp(-s). Parameters s (D), then b (D). Starts as the identity; nf_fit (or
   nf_flow_data_init) sets s and b once from data, so the layer's output starts
   zero-mean and unit-variance. */
static void nf__actnorm_canon(const nf_layer_desc *l, nf_layer_desc *c) { memset(c, 0, sizeof *c); c->kind = l->kind; }
static nf_result nf__actnorm_plan(const nf_layer_desc *ld, int D, int C, nf__layer *L, const char **why) {
    (void)ld; (void)C; (void)why;
    L->np = 2 * (size_t)D;
    return NF_OK;
}
static void nf__actnorm_apply(const nf_flow *f, const nf__layer *L, nf_real *x, int R, int dir, nf__ws *w) {
    const nf_real *p = f->params + L->poff; int r, j, D = f->dim; nf_real lsum = 0;
    for (j = 0; j < D; ++j) lsum += p[j];
    for (r = 0; r < R; ++r) {
        nf_real *xr = x + (size_t)r * (size_t)D;
        for (j = 0; j < D; ++j)
            xr[j] = dir > 0 ? xr[j] * NF_EXP(p[j]) + p[D + j] : (xr[j] - p[D + j]) * NF_EXP(-p[j]);
        w->ld[r] += dir > 0 ? lsum : -lsum;
    }
}
/* e^s = 1/sd, b = -mean/sd: z = (y - mean) / sd. A feature without spread (below 1e-6:
   a constant column, or one row) only gets shifted: scaling it by a million per layer
   would make every other value overflow. */
static nf_result nf__actnorm_data_init(const nf__layer *L, nf_real *p, int D, const double *mean, const double *sd) {
    int j, pass; (void)L;
    for (pass = 0; pass < 2; ++pass)   /* check all, then write */
        for (j = 0; j < D; ++j) {
            double s = sd[j] >= 1e-6 ? sd[j] : 1.0;
            nf_real ls = (nf_real)(-log(s)), b = (nf_real)(-mean[j] / s);
            if (pass == 0 && (!nf__isfinite(ls) || !nf__isfinite(b))) return NF_ERR_RANGE;
            if (pass == 1) { p[j] = ls; p[D + j] = b; }
        }
    return NF_OK;
}
#ifndef NFLOW_NO_TRAINING
static nf_tensor *nf__actnorm_tape(nf__tctx *c, const nf__layer *L, nf_tensor *x) {
    int D = c->f->dim; nf_tensor *s = nf__tparam(c, L->poff, 1, D), *b = nf__tparam(c, L->poff + (size_t)D, 1, D);
    nf__add_ld(c, nf_t_sum(c->tp, s), 0);
    return nf_t_add(c->tp, nf_t_mul(c->tp, x, nf_t_exp(c->tp, s)), b);                  /* z = y e^s + b */
}
static nf_tensor *nf__actnorm_tape_inv(nf__tctx *c, const nf__layer *L, nf_tensor *z) {
    int D = c->f->dim; nf_tensor *s = nf__tparam(c, L->poff, 1, D), *b = nf__tparam(c, L->poff + (size_t)D, 1, D);
    nf__add_ld(c, nf_t_scale(c->tp, nf_t_sum(c->tp, s), -1), 0);
    return nf_t_mul(c->tp, nf_t_sub(c->tp, z, b), nf_t_exp(c->tp, nf_t_scale(c->tp, s, -1)));   /* y = (z - b) e^-s */
}
#endif

#endif /* NFLOW_NO_ACTNORM */

#ifndef NFLOW_NO_LU
/* ==== LU-parameterised linear layer (Glow's invertible 1x1 convolution, for vectors) ===========
   z = W y with W = P L U: P a fixed random permutation (seed), L unit lower triangular,
   U upper triangular with diagonal e^s. log|det| = sum s; the inverse is two triangular
   solves. Parameters: a D x D block M holding L's strict lower and U's strict upper part,
   then s (D). Starts as W = P. */
static void nf__lu_canon(const nf_layer_desc *l, nf_layer_desc *c) { memset(c, 0, sizeof *c); c->kind = l->kind; c->seed = l->seed; }
static nf_result nf__lu_plan(const nf_layer_desc *ld, int D, int C, nf__layer *L, const char **why) {
    (void)ld; (void)C;
    if (D > 4096) NF__REFUSE(NF_ERR_SHAPE, "an LU linear layer takes dim <= 4096");
    L->np = (size_t)D * (size_t)D + (size_t)D; L->ni = 2 * (size_t)D;
    return NF_OK;
}
/* Rows go through in blocks of B, transposed into w->tmp (D x B for the input, D x B for
   the intermediate), so that every multiply-add runs across the block's rows: a vector op,
   where one row at a time is a chain of dependent scalar ones (a reduction a compiler may
   not reorder). Each row sees the same operations in the same order as alone (bit for bit
   the one-row result), and e^s is taken once per block, not per row. */
#define NF__LU_B 16
static void nf__lu_apply(const nf_flow *f, const nf__layer *L, nf_real *x, int R, int dir, nf__ws *w) {
    /* blocks of at most R / 2 rows, so that both D x B buffers fit in tmp (R x D); a
       one-row chunk works on its row in place, with tmp as the intermediate */
    int D = f->dim, r0, j, k, b, BM = R / 2 < NF__LU_B ? (R / 2 > 1 ? R / 2 : 1) : NF__LU_B;
    const nf_real *M = f->params + L->poff, *s = M + (size_t)D * (size_t)D;
    nf_real lsum = 0;
    for (j = 0; j < D; ++j) lsum += s[j];
    for (r0 = 0; r0 < R; r0 += BM) {
        int B = R - r0 < BM ? R - r0 : BM;
        nf_real *xt = R > 1 ? w->tmp : NULL, *tt = R > 1 ? w->tmp + (size_t)D * (size_t)B : w->tmp;
        if (dir > 0) {
            const nf_real *in = xt;
            if (xt) for (b = 0; b < B; ++b) for (k = 0; k < D; ++k) xt[(size_t)k * (size_t)B + (size_t)b] = x[NF__IX(r0 + b, D, k)];
            else in = x + (size_t)r0 * (size_t)D;   /* B = 1: stride 1 either way */
            for (j = 0; j < D; ++j) {       /* t = U y */
                nf_real e = NF_EXP(s[j]), *tj = tt + (size_t)j * (size_t)B;
                const nf_real *mj = M + (size_t)j * (size_t)D;
                for (b = 0; b < B; ++b) tj[b] = e * in[(size_t)j * (size_t)B + (size_t)b];
                for (k = j + 1; k < D; ++k) {
                    const nf_real m = mj[k], *ik = in + (size_t)k * (size_t)B;
                    for (b = 0; b < B; ++b) tj[b] += m * ik[b];
                }
            }
            for (j = D - 1; j >= 0; --j) {  /* t = L t, bottom-up so t stays readable */
                nf_real *tj = tt + (size_t)j * (size_t)B; const nf_real *mj = M + (size_t)j * (size_t)D;
                for (k = 0; k < j; ++k) {
                    const nf_real m = mj[k], *tk = tt + (size_t)k * (size_t)B;
                    for (b = 0; b < B; ++b) tj[b] += m * tk[b];
                }
            }
            for (b = 0; b < B; ++b)          /* z = P t */
                for (j = 0; j < D; ++j) x[NF__IX(r0 + b, D, j)] = tt[(size_t)L->perm[j] * (size_t)B + (size_t)b];
        } else {
            nf_real *out = xt ? xt : x + (size_t)r0 * (size_t)D;
            for (b = 0; b < B; ++b)          /* t = P^T z */
                for (j = 0; j < D; ++j) tt[(size_t)L->perm[j] * (size_t)B + (size_t)b] = x[NF__IX(r0 + b, D, j)];
            for (j = 0; j < D; ++j) {       /* solve L u = t (forward substitution) */
                nf_real *tj = tt + (size_t)j * (size_t)B; const nf_real *mj = M + (size_t)j * (size_t)D;
                for (k = 0; k < j; ++k) {
                    const nf_real m = mj[k], *tk = tt + (size_t)k * (size_t)B;
                    for (b = 0; b < B; ++b) tj[b] -= m * tk[b];
                }
            }
            for (j = D - 1; j >= 0; --j) {  /* solve U y = u (back substitution) */
                nf_real e = NF_EXP(-s[j]), *tj = tt + (size_t)j * (size_t)B, *oj = out + (size_t)j * (size_t)B;
                const nf_real *mj = M + (size_t)j * (size_t)D;
                for (k = j + 1; k < D; ++k) {
                    const nf_real m = mj[k], *ok = out + (size_t)k * (size_t)B;
                    for (b = 0; b < B; ++b) tj[b] -= m * ok[b];
                }
                for (b = 0; b < B; ++b) oj[b] = tj[b] * e;
            }
            if (xt) for (b = 0; b < B; ++b) for (k = 0; k < D; ++k) x[NF__IX(r0 + b, D, k)] = xt[(size_t)k * (size_t)B + (size_t)b];
        }
        for (b = 0; b < B; ++b) w->ld[r0 + b] += dir > 0 ? lsum : -lsum;
    }
}
#ifndef NFLOW_NO_TRAINING
/* W = P L U as a tape op, from M and s. Rows of W are permuted: W[i, :] = (L U)[perm[i], :].
   Backward: with G = P^T dW, dL = G U^T (strict lower), dU = L^T G (upper),
   ds = diag(dU) e^s. */
static void nf__luw_back(nf_tensor *w) {
    nf_tensor *m = w->a, *s = w->b; int D = w->rows, i, j, k;
    for (i = 0; i < D; ++i) {
        int r = w->idx[i]; const nf_real *g = w->grad + (size_t)i * (size_t)D;   /* G[r, :] */
        for (j = 0; j < r && m->grad; ++j) {   /* dL[r, j] = sum_c G[r, c] U[j, c], c >= j */
            nf_real acc = 0; int c;
            for (c = j; c < D; ++c) acc += g[c] * (c == j ? NF_EXP(s->val[j]) : m->val[(size_t)j * (size_t)D + (size_t)c]);
            m->grad[(size_t)r * (size_t)D + (size_t)j] += acc;
        }
        for (k = 0; k <= r; ++k) {   /* dU[k, c] += L[r, k] G[r, c] for c >= k */
            nf_real l = k == r ? NF__R(1) : m->val[(size_t)r * (size_t)D + (size_t)k];
            for (j = k; j < D; ++j) {
                nf_real gu = l * g[j];
                if (j == k) { if (s->grad) s->grad[k] += gu * NF_EXP(s->val[k]); }
                else if (m->grad) m->grad[(size_t)k * (size_t)D + (size_t)j] += gu;
            }
        }
    }
}
static nf_tensor *nf__t_luw(nf_tape *t, nf_tensor *m, nf_tensor *s, const int *perm) {
    nf_tensor *w; int D, i, j, k;
    if (nf__bad(t, m, s, 1)) return NULL;
    D = m->rows;
    if (m->cols != D || s->rows != 1 || s->cols != D) { t->err = NF_ERR_SHAPE; return NULL; }
    w = nf__node(t, 0, nf__luw_back, D, D, m, s);
    if (!w) return NULL;
    w->idx = perm;
    for (i = 0; i < D; ++i) {
        const nf_real *Mi = m->val + (size_t)perm[i] * (size_t)D; int r = perm[i];
        for (j = 0; j < D; ++j) {   /* (L U)[r, j] = sum_{k <= min(r, j)} L[r, k] U[k, j] */
            nf_real acc = 0; int kmax = r < j ? r : j;
            for (k = 0; k <= kmax; ++k) {
                nf_real l = k == r ? NF__R(1) : Mi[k];
                nf_real u = k == j ? NF_EXP(s->val[k]) : m->val[(size_t)k * (size_t)D + (size_t)j];
                acc += l * u;
            }
            w->val[(size_t)i * (size_t)D + (size_t)j] = acc;
        }
    }
    return w;
}
/* Y = Z W^-T (each row y = W^-1 z = U^-1 L^-1 P^T z) for W made by nf__t_luw, solved with
   its factors. Backward with G = dLoss/dY: each row of dZ is x = W^-T g = P L^-T U^-T g,
   and dW = -dZ^T Y, which W's own op turns into dM and ds. */
static void nf__lu_solve_back(nf_tensor *y) {
    nf_tensor *z = y->a, *W = y->b; const nf_real *M = W->a->val, *s = W->b->val; const int *perm = W->idx;
    int D = y->cols, r, j, k; nf_real *a = (nf_real *)(uintptr_t)y->aux;   /* D scratch reals */
    for (r = 0; r < y->rows; ++r) {
        const nf_real *g = y->grad + (size_t)r * (size_t)D, *yr = y->val + (size_t)r * (size_t)D;
        for (j = 0; j < D; ++j) {           /* U^T a = g (U^T lower, diagonal e^s) */
            nf_real acc = g[j];
            for (k = 0; k < j; ++k) acc -= M[(size_t)k * (size_t)D + (size_t)j] * a[k];
            a[j] = acc * NF_EXP(-s[j]);
        }
        for (j = D - 1; j >= 0; --j) {      /* L^T b = a (unit upper), in place */
            nf_real acc = a[j];
            for (k = j + 1; k < D; ++k) acc -= M[(size_t)k * (size_t)D + (size_t)j] * a[k];
            a[j] = acc;
        }
        for (j = 0; j < D; ++j) {           /* x = P b: x[j] = b[perm[j]] */
            nf_real xj = a[perm[j]];
            if (z->grad) z->grad[(size_t)r * (size_t)D + (size_t)j] += xj;
            if (W->grad) for (k = 0; k < D; ++k) W->grad[(size_t)j * (size_t)D + (size_t)k] -= xj * yr[k];
        }
    }
}
static nf_tensor *nf__t_lu_solve(nf_tape *t, nf_tensor *z, nf_tensor *W) {
    nf_tensor *y; int D, r, j, k; const nf_real *M, *s; const int *perm; nf_real *tmp;
    if (nf__bad(t, z, W, 1)) return NULL;
    D = W->rows;
    if (z->cols != D || W->back != nf__luw_back) { t->err = NF_ERR_SHAPE; return NULL; }
    y = nf__node(t, 0, nf__lu_solve_back, z->rows, D, z, W);
    tmp = (nf_real *)nf_arena_alloc(t->arena, (size_t)D * sizeof(nf_real));
    if (!y || !tmp) { t->err = NF_ERR_ARENA_FULL; return NULL; }
    y->aux = tmp;
    M = W->a->val; s = W->b->val; perm = W->idx;
    for (r = 0; r < z->rows; ++r) {
        const nf_real *zr = z->val + (size_t)r * (size_t)D; nf_real *yr = y->val + (size_t)r * (size_t)D;
        for (j = 0; j < D; ++j) tmp[perm[j]] = zr[j];             /* t = P^T z */
        for (j = 0; j < D; ++j)                                   /* L u = t */
            for (k = 0; k < j; ++k) tmp[j] -= M[(size_t)j * (size_t)D + (size_t)k] * tmp[k];
        for (j = D - 1; j >= 0; --j) {                            /* U y = u */
            nf_real acc = tmp[j];
            for (k = j + 1; k < D; ++k) acc -= M[(size_t)j * (size_t)D + (size_t)k] * yr[k];
            yr[j] = acc * NF_EXP(-s[j]);
        }
    }
    return y;
}
static nf_tensor *nf__lu_tape(nf__tctx *c, const nf__layer *L, nf_tensor *x) {
    int D = c->f->dim; nf_tensor *M = nf__tparam(c, L->poff, D, D), *s = nf__tparam(c, L->poff + (size_t)D * (size_t)D, 1, D);
    nf__add_ld(c, nf_t_sum(c->tp, s), 0);
    return nf_t_matmul(c->tp, x, nf__t_luw(c->tp, M, s, L->perm), 0, 1);                  /* z = W y per row */
}
static nf_tensor *nf__lu_tape_inv(nf__tctx *c, const nf__layer *L, nf_tensor *z) {
    int D = c->f->dim; nf_tensor *M = nf__tparam(c, L->poff, D, D), *s = nf__tparam(c, L->poff + (size_t)D * (size_t)D, 1, D);
    nf__add_ld(c, nf_t_scale(c->tp, nf_t_sum(c->tp, s), -1), 0);
    return nf__t_lu_solve(c->tp, z, nf__t_luw(c->tp, M, s, L->perm));                     /* y = W^-1 z per row */
}
#endif

#endif /* NFLOW_NO_LU */

#ifndef NFLOW_NO_MONOTONE
/* ==== monotone elementwise layer ===============================================================
   Each feature through its own strictly increasing map
       z = e^a y + sum_k e^b_k tanh(e^c_k y + d_k),   dz/dy = e^a + sum_k e^(b_k + c_k) (1 - tanh^2)
   log|det| = sum_j log dz_j/dy_j. The inverse is a safeguarded Newton iteration in the
   bracket y in [(z - S) / e^a, (z + S) / e^a], S = sum_k e^b_k, which always holds the
   root. What affine couplings cannot do in 1-D (make a Gaussian bimodal), this does.
   Parameters a (D), then b, c, d (D x K each). Settings: hidden = K (8). */
static void nf__mono_canon(const nf_layer_desc *l, nf_layer_desc *c) { memset(c, 0, sizeof *c); c->kind = l->kind; c->hidden = l->hidden ? l->hidden : 8; }
static nf_result nf__mono_plan(const nf_layer_desc *ld, int D, int C, nf__layer *L, const char **why) {
    (void)C;
    L->hidden = ld->hidden ? ld->hidden : 8;
    if (L->hidden < 1 || L->hidden > 256) NF__REFUSE(NF_ERR_ARG, "a monotone layer's hidden must be 0 (default 8) or in 1..256");
    L->np = (size_t)D + 3 * (size_t)D * (size_t)L->hidden;
    L->ni = 2 * (size_t)D * (size_t)L->hidden;
    L->width = 2 * L->hidden;
    return NF_OK;
}
static void nf__mono_setup(nf__layer *L, const nf_layer_desc *ld, int D, int index, int *ints) {
    int K = L->hidden, j, k; (void)ld; (void)index;
    L->keep = ints; L->trans = ints + D * K;
    for (j = 0; j < D; ++j) for (k = 0; k < K; ++k) {
        L->keep[j * K + k] = j;          /* repeat each feature K times */
        L->trans[k * D + j] = j * K + k; /* group k's column of feature j */
    }
}
/* near the identity: small bumps (b = e^-3) centred across [-2, 2] */
static void nf__mono_init(const nf__layer *L, nf_real *p, int D, nf_rng *rng) {
    nf_real *b = p + D, *d = b + 2 * (size_t)D * (size_t)L->hidden; size_t k, cnt = (size_t)D * (size_t)L->hidden;
    for (k = 0; k < cnt; ++k) { b[k] = NF__R(-3); d[k] = 2 * (2 * nf_rng_uniform(rng) - 1); }
}
/* z and dz/dy of feature j at v (its K terms: b, c, d) */
static nf_real nf__mono_eval(nf_real a, const nf_real *b, const nf_real *c, const nf_real *d, int K, nf_real v, nf_real *dz) {
    nf_real z = a * v, s = a; int k;
    for (k = 0; k < K; ++k) {
        nf_real th = NF_TANH(NF_EXP(c[k]) * v + d[k]);
        z += NF_EXP(b[k]) * th; s += NF_EXP(b[k] + c[k]) * (1 - th * th);
    }
    *dz = s;
    return z;
}
/* y with z = g(y), safeguarded Newton in the bracket */
static nf_real nf__mono_solve(nf_real a, const nf_real *b, const nf_real *c, const nf_real *d, int K, nf_real target) {
    nf_real S = 0, lo, hi, v, prev = NF__R(-1), dz; int it, k;
    for (k = 0; k < K; ++k) S += NF_EXP(b[k]);
    lo = (target - S) / a; hi = (target + S) / a; v = (lo + hi) / 2;
    for (it = 0; it < 300; ++it) {
        nf_real fv = nf__mono_eval(a, b, c, d, K, v, &dz) - target, nv;
        if (fv > 0) hi = v; else if (fv < 0) lo = v; else break;
        nv = v - fv / dz;
        /* bisect when Newton leaves the bracket or stalls (|f| not halved) */
        if (!(nv > lo && nv < hi) || (prev >= 0 && NF_FABS(fv) > NF__R(0.5) * prev)) nv = (lo + hi) / 2;
        prev = NF_FABS(fv);
        if (NF_FABS(nv - v) <= NF__R(2) * (nf_real)NF__EPS * (NF_FABS(v) + 1) || hi - lo <= (nf_real)NF__EPS * (NF_FABS(v) + 1)) { v = nv; break; }
        v = nv;
    }
    return v;
}
static void nf__mono_apply(const nf_flow *f, const nf__layer *L, nf_real *x, int R, int dir, nf__ws *w) {
    int D = f->dim, K = L->hidden, r, j;
    const nf_real *la = f->params + L->poff, *lb = la + D, *lc = lb + (size_t)D * (size_t)K, *dd = lc + (size_t)D * (size_t)K;
    for (r = 0; r < R; ++r) {
        nf_real *xr = x + (size_t)r * (size_t)D, lsum = 0, dz;
        for (j = 0; j < D; ++j) {
            const nf_real *b = lb + (size_t)j * (size_t)K, *c = lc + (size_t)j * (size_t)K, *d = dd + (size_t)j * (size_t)K;
            nf_real a = NF_EXP(la[j]);
            if (dir > 0) xr[j] = nf__mono_eval(a, b, c, d, K, xr[j], &dz);
            else { xr[j] = nf__mono_solve(a, b, c, d, K, xr[j]); nf__mono_eval(a, b, c, d, K, xr[j], &dz); }   /* slope at the solution */
            lsum += NF_LOG(dz);
        }
        w->ld[r] += dir > 0 ? lsum : -lsum;
    }
}
#ifndef NFLOW_NO_TRAINING
/* the map and its slope from generic ops (each feature's K terms gathered and summed);
   *slope gets dz/dy */
static nf_tensor *nf__mono_graph(nf__tctx *c, const nf__layer *L, nf_tensor *x, nf_tensor **slope) {
    nf_tape *tp = c->tp; int D = c->f->dim, K = L->hidden, DK = D * K, k;
    nf_tensor *la = nf__tparam(c, L->poff, 1, D), *lb = nf__tparam(c, L->poff + (size_t)D, 1, DK);
    nf_tensor *lc = nf__tparam(c, L->poff + (size_t)D + (size_t)DK, 1, DK), *dd = nf__tparam(c, L->poff + (size_t)D + 2 * (size_t)DK, 1, DK);
    nf_tensor *xr = nf_t_gather_cols(tp, x, L->keep, DK);                     /* y repeated K times */
    nf_tensor *th = nf_t_tanh(tp, nf_t_add(tp, nf_t_mul(tp, xr, nf_t_exp(tp, lc)), dd));
    nf_tensor *terms = nf_t_mul(tp, th, nf_t_exp(tp, lb));                    /* e^b tanh(.) */
    nf_tensor *one = nf_tape_new(tp, 1, 1), *bumps, *z;
    if (one) one->val[0] = 1;
    bumps = nf_t_mul(tp, nf_t_add(tp, nf_t_scale(tp, nf_t_square(tp, th), -1), one),
                     nf_t_exp(tp, nf_t_add(tp, lb, lc)));                     /* e^(b+c) (1 - tanh^2) */
    z = nf_t_mul(tp, x, nf_t_exp(tp, la));                                    /* e^a y */
    *slope = nf_t_add(tp, nf_t_gather_cols(tp, bumps, L->trans, D), nf_t_exp(tp, la));
    for (k = 0; k < K; ++k) {
        z = nf_t_add(tp, z, nf_t_gather_cols(tp, terms, L->trans + (size_t)k * (size_t)D, D));
        if (k > 0) *slope = nf_t_add(tp, *slope, nf_t_gather_cols(tp, bumps, L->trans + (size_t)k * (size_t)D, D));
    }
    return z;
}
static nf_tensor *nf__mono_tape(nf__tctx *c, const nf__layer *L, nf_tensor *x) {
    nf_tensor *slope, *z = nf__mono_graph(c, L, x, &slope);
    nf__add_ld(c, nf_t_sum_rows(c->tp, nf_t_log(c->tp, slope)), 1);
    return z;
}
/* y = g^-1(z) per feature as a tape op (Newton forward). Backward by the implicit function
   theorem: dy/dz = 1 / g'(y) and dy/dtheta = -(dg/dtheta) / g'(y), with
   dg/da = e^a y, dg/db_k = e^b_k t_k, dg/dc_k = e^(b_k + c_k) (1 - t_k^2) y,
   dg/dd_k = e^b_k (1 - t_k^2), t_k = tanh(e^c_k y + d_k). The params tensor p holds a, b,
   c, d contiguously (1 x (D + 3DK)); iarg is K. */
static void nf__mono_inv_back(nf_tensor *y) {
    nf_tensor *z = y->a, *p = y->b; int D = y->cols, K = y->iarg, r, j, k;
    const nf_real *la = p->val, *lb = la + D, *lc = lb + (size_t)D * (size_t)K, *dd = lc + (size_t)D * (size_t)K;
    for (r = 0; r < y->rows; ++r)
        for (j = 0; j < D; ++j) {
            const nf_real *b = lb + (size_t)j * (size_t)K, *c = lc + (size_t)j * (size_t)K, *d = dd + (size_t)j * (size_t)K;
            nf_real v = y->val[(size_t)r * (size_t)D + (size_t)j], a = NF_EXP(la[j]), g = y->grad[(size_t)r * (size_t)D + (size_t)j], dz, q;
            nf__mono_eval(a, b, c, d, K, v, &dz);
            q = g / dz;
            if (z->grad) z->grad[(size_t)r * (size_t)D + (size_t)j] += q;
            if (!p->grad) continue;
            p->grad[j] -= q * a * v;
            for (k = 0; k < K; ++k) {
                nf_real eb = NF_EXP(b[k]), ec = NF_EXP(c[k]), th = NF_TANH(ec * v + d[k]), sech2 = 1 - th * th;
                p->grad[(size_t)D + (size_t)j * (size_t)K + (size_t)k] -= q * eb * th;
                p->grad[(size_t)D + (size_t)D * (size_t)K + (size_t)j * (size_t)K + (size_t)k] -= q * eb * ec * sech2 * v;
                p->grad[(size_t)D + 2 * (size_t)D * (size_t)K + (size_t)j * (size_t)K + (size_t)k] -= q * eb * sech2;
            }
        }
}
static nf_tensor *nf__t_mono_inv(nf_tape *t, nf_tensor *z, nf_tensor *p, int K) {
    nf_tensor *y; int D, r, j; const nf_real *la, *lb, *lc, *dd;
    if (nf__bad(t, z, p, 1)) return NULL;
    D = z->cols;
    if (p->rows != 1 || (size_t)p->cols != (size_t)D + 3 * (size_t)D * (size_t)K) { t->err = NF_ERR_SHAPE; return NULL; }
    y = nf__node(t, 0, nf__mono_inv_back, z->rows, D, z, p);
    if (!y) return NULL;
    y->iarg = K;
    la = p->val; lb = la + D; lc = lb + (size_t)D * (size_t)K; dd = lc + (size_t)D * (size_t)K;
    for (r = 0; r < z->rows; ++r)
        for (j = 0; j < D; ++j)
            y->val[(size_t)r * (size_t)D + (size_t)j] = nf__mono_solve(NF_EXP(la[j]), lb + (size_t)j * (size_t)K, lc + (size_t)j * (size_t)K, dd + (size_t)j * (size_t)K, K, z->val[(size_t)r * (size_t)D + (size_t)j]);
    return y;
}
/* log|det dy/dz| = -sum log g'(y): the slope graph evaluated at the solved y, so the
   gradient reaches the parameters both directly and through y */
static nf_tensor *nf__mono_tape_inv(nf__tctx *c, const nf__layer *L, nf_tensor *z) {
    int D = c->f->dim; nf_tensor *slope, *y = nf__t_mono_inv(c->tp, z, nf__tparam(c, L->poff, 1, (int)L->np), L->hidden);
    (void)D;
    nf__mono_graph(c, L, y, &slope);
    nf__add_ld(c, nf_t_scale(c->tp, nf_t_sum_rows(c->tp, nf_t_log(c->tp, slope)), -1), 1);
    return y;
}
#endif

#endif /* NFLOW_NO_MONOTONE */

/* ==== the table ================================================================================
   One row per kind, in the order of NF_LAYER_*. */
#ifndef NFLOW_NO_TRAINING
#define NF__TAPES(f, i) , f, i
#else
#define NF__TAPES(f, i)
#endif
#define NF__NONE {NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL NF__TAPES(NULL, NULL)}
static const nf__kind nf__kinds[NF_LAYER_KIND_COUNT] = {
    NF__NONE,
    {"affine coupling", nf__coupling_plan, nf__coupling_canon, nf__coupling_setup, nf__coupling_init, nf__coupling_apply, NULL, NULL NF__TAPES(nf__coupling_tape, nf__coupling_tape_inv)},
    {"additive coupling", nf__coupling_plan, nf__coupling_canon, nf__coupling_setup, nf__coupling_init, nf__coupling_apply, NULL, NULL NF__TAPES(nf__coupling_tape, nf__coupling_tape_inv)},
    {"reverse", nf__perm_plan, nf__perm_canon, nf__perm_setup, NULL, nf__perm_apply, NULL, NULL NF__TAPES(nf__perm_tape, nf__perm_tape_inv)},
    {"permute", nf__perm_plan, nf__perm_canon, nf__perm_setup, NULL, nf__perm_apply, NULL, NULL NF__TAPES(nf__perm_tape, nf__perm_tape_inv)},
#ifndef NFLOW_NO_ACTNORM
    {"actnorm", nf__actnorm_plan, nf__actnorm_canon, NULL, NULL, nf__actnorm_apply, nf__actnorm_data_init, NULL NF__TAPES(nf__actnorm_tape, nf__actnorm_tape_inv)},
#else
    NF__NONE,
#endif
#ifndef NFLOW_NO_LU
    {"lu linear", nf__lu_plan, nf__lu_canon, nf__perm_setup, NULL, nf__lu_apply, NULL, NULL NF__TAPES(nf__lu_tape, nf__lu_tape_inv)},
#else
    NF__NONE,
#endif
#ifndef NFLOW_NO_MONOTONE
    {"monotone", nf__mono_plan, nf__mono_canon, nf__mono_setup, nf__mono_init, nf__mono_apply, NULL, NULL NF__TAPES(nf__mono_tape, nf__mono_tape_inv)},
#else
    NF__NONE,
#endif
#ifndef NFLOW_NO_SPLINE
    {"spline coupling", nf__coupling_plan, nf__coupling_canon, nf__coupling_setup, nf__coupling_init, nf__coupling_apply, NULL, NULL NF__TAPES(nf__coupling_tape, nf__coupling_tape_inv)},
#else
    NF__NONE,
#endif
#ifndef NFLOW_NO_AUTOREGRESSIVE
    {"autoregressive", nf__ar_plan, nf__ar_canon, nf__ar_setup, nf__ar_init, nf__ar_apply, NULL, nf__ar_fixup NF__TAPES(nf__ar_tape, nf__ar_tape_inv)},
#else
    NF__NONE,
#endif
};
#undef NF__NONE
#undef NF__TAPES
static const nf__kind *nf__kind_of(int kind) {
    return kind > 0 && kind < NF_LAYER_KIND_COUNT && nf__kinds[kind].plan ? &nf__kinds[kind] : NULL;
}

static void nf__layer_apply(const nf_flow *f, const nf__layer *L, nf_real *x, int R, int dir, nf__ws *w) {
    nf__kinds[L->kind].apply(f, L, x, R, dir, w);
}

NFDEF nf_result nf_flow_desc_nsf(nf_flow_desc *d, int dim, int couplings, int hidden, int bins) {
    int i, mixed = dim > 1;   /* 1-D: nothing to couple on or mix, so spline couplings only */
    if (!d) return NF_ERR_NULL;
    nf_flow_desc_init(d, dim);
    if (couplings < 1 || hidden < 0 || bins < 0) return NF_ERR_ARG;
    if (couplings > (mixed ? (NF_MAX_LAYERS + 1) / 2 : NF_MAX_LAYERS)) return NF_ERR_ARG;   /* 2L - 1 layers */
    for (i = 0; i < couplings; ++i) {
        nf_layer_desc l; memset(&l, 0, sizeof l);
        if (mixed && i > 0) {   /* an LU layer between couplings: every feature reaches every other */
            l.kind = NF_LAYER_LU_LINEAR; l.seed = (uint32_t)(i - 1);
            nf_flow_desc_add(d, &l);
            memset(&l, 0, sizeof l);
        }
        l.kind = mixed && (i & 1) ? NF_LAYER_AFFINE_COUPLING : NF_LAYER_SPLINE_COUPLING;
        l.hidden = hidden; l.parity = i & 1;
        if (mixed) l.activation = NF_ACT_SOFTPLUS;
        if (l.kind == NF_LAYER_SPLINE_COUPLING) { l.bins = bins; l.tail_bound = 5; }
        nf_flow_desc_add(d, &l);
    }
    return NF_OK;
}
NFDEF nf_result nf_flow_desc_maf(nf_flow_desc *d, int dim, int layers, int hidden, int transformer, int inverse) {
    int i;
    if (!d) return NF_ERR_NULL;
    nf_flow_desc_init(d, dim);
    if (dim == 1 && transformer == NF_TRANSFORM_AFFINE) return NF_ERR_SHAPE;   /* as nf_flow_desc_realnvp */
    if (layers < 1 || layers > NF_MAX_LAYERS || hidden < 0) return NF_ERR_ARG;
    for (i = 0; i < layers; ++i) {
        nf_layer_desc l; memset(&l, 0, sizeof l);
        l.kind = NF_LAYER_AUTOREGRESSIVE; l.hidden = hidden; l.transformer = transformer; l.inverse = inverse;
        l.order = i & 1 ? NF_ORDER_REVERSED : NF_ORDER_NATURAL;
        if (transformer == NF_TRANSFORM_SPLINE) l.tail_bound = 5;
        nf_flow_desc_add(d, &l);
    }
    return NF_OK;
}

NFDEF nf_result nf_flow_desc_posterior(nf_flow_desc *d, int dim, int couplings, int hidden) {
    int i; nf_layer_desc l;
    if (!d) return NF_ERR_NULL;
    nf_flow_desc_init(d, dim);
    if (couplings < 1 || couplings > NF_MAX_LAYERS / 2 - 1 || hidden < 0) return NF_ERR_ARG;
    memset(&l, 0, sizeof l); l.kind = NF_LAYER_LU_LINEAR; l.seed = 1;
    nf_flow_desc_add(d, &l);
    for (i = 0; i < couplings; ++i) {
        memset(&l, 0, sizeof l);
        if (dim == 1) { l.kind = NF_LAYER_MONOTONE; nf_flow_desc_add(d, &l); continue; }
        l.kind = NF_LAYER_AFFINE_COUPLING; l.hidden = hidden; l.mask = NF_MASK_HALF; l.parity = i & 1;
        nf_flow_desc_add(d, &l);
        if (i % 2 == 1 && i + 1 < couplings) {
            memset(&l, 0, sizeof l); l.kind = NF_LAYER_PERMUTE; l.seed = (uint32_t)i;
            nf_flow_desc_add(d, &l);
        }
    }
    return NF_OK;
}

/* A domain: NF_OK, NF_ERR_ARG if invalid, NF_ERR_RANGE if valid but not computable in
   this build's nf_real (a float build cannot tell 1e9 from 1e9 + 1). */
#if !defined(NFLOW_NO_DOMAINS) || !defined(NFLOW_NO_LOADER)
static nf_result nf__domain_check(const nf_domain *m, const char **why) {
    if (m->kind < NF_DOMAIN_REAL || m->kind >= NF_DOMAIN_KIND_COUNT) NF__REFUSE(NF_ERR_ARG, "unknown domain kind");
    if (m->fixed_cut != 0 && m->fixed_cut != 1) NF__REFUSE(NF_ERR_ARG, "fixed_cut must be 0 or 1");
    if (m->kind == NF_DOMAIN_REAL) return NF_OK;
    if (!nf__isfinite_d(m->lo)) NF__REFUSE(NF_ERR_ARG, "domain lo must be finite");
    if (m->kind != NF_DOMAIN_LOWER && !(nf__isfinite_d(m->hi) && m->hi > m->lo)) NF__REFUSE(NF_ERR_ARG, "domain hi must be finite and above lo");
    if (m->kind == NF_DOMAIN_PERIODIC && !nf__isfinite_d(m->cut)) NF__REFUSE(NF_ERR_ARG, "a periodic domain's cut must be finite");
    if (!nf__isfinite(NF__R(m->lo))) NF__REFUSE(NF_ERR_RANGE, "domain lo is beyond this precision");
    if (m->kind == NF_DOMAIN_LOWER) return NF_OK;
    if (!(NF__R(m->hi) > NF__R(m->lo)) || !nf__isfinite(NF__R(m->hi) - NF__R(m->lo))) NF__REFUSE(NF_ERR_RANGE, "domain lo and hi are not distinct, or too far apart, in this precision");
    {   /* the maps keep points P EPS inside the edges: that must be a normal number, and the
           interval must hold at least 16 values per edge's ulp (1e9 .. 1e9 + 1 in float does not) */
        double P = (double)(NF__R(m->hi) - NF__R(m->lo)), a = fabs(m->lo) > fabs(m->hi) ? fabs(m->lo) : fabs(m->hi);
        if (P * NF__EPS < NF__TINY || P < 16 * NF__EPS * a) NF__REFUSE(NF_ERR_RANGE, "domain interval too narrow for this precision (fewer than 16 values per ulp of its edges)");
    }
    if (m->kind == NF_DOMAIN_PERIODIC && !nf__isfinite(NF__R(m->cut))) NF__REFUSE(NF_ERR_RANGE, "the periodic cut is beyond this precision");
    return NF_OK;
}
#endif

/* Resolve defaults and check a description; fills the layer shapes of f when given. */
/* What a description needs: parameters, index ints, and the workspace's widest
   conditioner row (width), widest conditioner output (out, at least 2D) and whether a
   layer needs the sequential-pass buffer (seq). */
typedef struct nf__shape { size_t np, ni; int width, out, seq; } nf__shape;
/* The layer kinds a build can leave out, and the switch that does it */
static const char *nf__kind_switch(int kind) {
    switch (kind) {
    case NF_LAYER_ACTNORM: return "an ActNorm layer: this build defines NFLOW_NO_ACTNORM";
    case NF_LAYER_LU_LINEAR: return "an LU linear layer: this build defines NFLOW_NO_LU";
    case NF_LAYER_MONOTONE: return "a monotone layer: this build defines NFLOW_NO_MONOTONE";
    case NF_LAYER_SPLINE_COUPLING: return "a spline coupling: this build defines NFLOW_NO_SPLINE";
    case NF_LAYER_AUTOREGRESSIVE: return "an autoregressive layer: this build defines NFLOW_NO_AUTOREGRESSIVE";
    default: return NULL;
    }
}
/* Checks a description and gives its shape; a refusal sets *why (a static string) and
   *where (the layer, or -1 for the flow, or -2 - j for dimension j's domain). */
static nf_result nf__plan(const nf_flow_desc *d, nf_flow *f, nf__shape *sh, const char **why, int *where) {
    size_t np = 0, ni = 0; int i, D, mw, mo, seq = 0, ok = 1;
    *where = -1;
    if (!d) NF__REFUSE(NF_ERR_NULL, "the description is NULL");
    D = d->dim;
    if (D < 1 || D > NF__MAXDIM) NF__REFUSE(NF_ERR_SHAPE, "dim must be in 1..2^20");
    if (d->n_layers < 0 || d->n_layers > NF_MAX_LAYERS) NF__REFUSE(NF_ERR_ARG, "n_layers must be in 0..NF_MAX_LAYERS");
    if (d->base != NF_BASE_STD_NORMAL && d->base != NF_BASE_DIAG_GAUSSIAN) NF__REFUSE(NF_ERR_ARG, "unknown base");
    if (d->chunk < 0 || d->chunk > (1 << 20)) NF__REFUSE(NF_ERR_ARG, "chunk must be in 0..2^20");
    if (d->context_dim < 0 || d->context_dim > (1 << 16)) NF__REFUSE(NF_ERR_ARG, "context_dim must be in 0..65536");
    if (d->domains) for (i = 0; i < D; ++i) {
        *where = -2 - i;
#ifdef NFLOW_NO_DOMAINS   /* compiled out: only the real line, and none of the checks' arithmetic */
        if (d->domains[i].kind != NF_DOMAIN_REAL || d->domains[i].fixed_cut != 0)
            NF__REFUSE(NF_ERR_UNSUPPORTED, "a bounded or periodic parameter: this build defines NFLOW_NO_DOMAINS");
#else
        {
            nf_result r = nf__domain_check(&d->domains[i], why);
            if (r != NF_OK) return r;
        }
#endif
    }
    *where = -1;
#ifdef NFLOW_NO_CONTEXT
    if (d->context_dim) NF__REFUSE(NF_ERR_UNSUPPORTED, "a context (conditional flow): this build defines NFLOW_NO_CONTEXT");
#endif
#ifdef NFLOW_NO_DIAG_BASE
    if (d->base != NF_BASE_STD_NORMAL) NF__REFUSE(NF_ERR_UNSUPPORTED, "a learnable base: this build defines NFLOW_NO_DIAG_BASE");
#endif
    mw = mo = 2 * D;
    ni = 2 * (size_t)D;   /* iota */
    for (i = 0; i < d->n_layers; ++i) {
        const nf_layer_desc *ld = &d->layers[i]; const nf__kind *k = nf__kind_of(ld->kind);
        nf__layer L; nf_result r;
        *where = i;
        if (!k && nf__kind_switch(ld->kind)) NF__REFUSE(NF_ERR_UNSUPPORTED, nf__kind_switch(ld->kind));
        if (!k) NF__REFUSE(NF_ERR_ARG, "unknown layer kind");
        memset(&L, 0, sizeof L);
        L.kind = ld->kind;
        if ((r = k->plan(ld, D, d->context_dim, &L, why)) != NF_OK) return r;
        if (L.width > mw) mw = L.width;
        if (L.nout > mo) mo = L.nout;
        seq |= L.seq;
        L.poff = np;
        np = nf__madd(np, L.np, 1, &ok);
        ni = nf__madd(ni, L.ni, 1, &ok);
        if (!ok) NF__REFUSE(NF_ERR_OVERFLOW, "the flow's parameter count overflows");
        if (f) f->layers[i] = L;
    }
    *where = -1;
    if (f) f->base_off = np;
    if (d->base == NF_BASE_DIAG_GAUSSIAN) np = nf__madd(np, 2, (size_t)D, &ok);
    if (!ok || np > ((size_t)-1) / 64) NF__REFUSE(NF_ERR_OVERFLOW, "the flow's parameter count overflows");   /* room for 3 arrays of doubles and more */
    if (sh) { sh->np = np; sh->ni = ni; sh->width = mw; sh->out = mo; sh->seq = seq; }
    return NF_OK;
}

/* Workspace reals for R rows: cur, tmp, z (D each), the conditioner input (D + C), two
   hidden buffers (width), the conditioner output (out), the log-det and the
   outside-the-domain flag (1 each), the standardised context (C) and, for autoregressive
   layers, the sequential passes' output (D). */
static int nf__ws_reals(int D, int C, int R, const nf__shape *sh, size_t *out) {
    int ok = 1;
    size_t per = nf__madd(nf__madd(nf__madd(2, 4 + (sh->seq ? 1 : 0), (size_t)D, &ok), 2, (size_t)sh->width, &ok), 2, (size_t)C, &ok);
    per = nf__madd(per, 1, (size_t)sh->out, &ok);
    return ok && nf__mul(per, (size_t)R, out);
}

static size_t nf__al(size_t x) { return (x + 63) & ~(size_t)63; }

/* Layout of a flow's single block: struct | params | mean | std | domains | ints | ws
   (off[0..6] are the ends). A flow with constant weights (own = 0) keeps no params,
   mean, std or domains of its own. */
static nf_result nf__layout(const nf_flow_desc *d, int own, size_t off[7], const char **why, int *where) {
    size_t np, ni, ws, t; nf__shape sh; nf_result r;
    int R = d && d->chunk ? d->chunk : 256;
    r = nf__plan(d, NULL, &sh, why, where);
    if (r != NF_OK) return r;
    *why = "the flow's memory size overflows";
    np = sh.np; ni = sh.ni;
    if (!nf__ws_reals(d->dim, d->context_dim, R, &sh, &ws)) return NF_ERR_OVERFLOW;
    off[0] = nf__al(sizeof(nf_flow));
    if (!own) np = 0;
    if (!nf__mul(np, sizeof(nf_real), &t) || !nf__add(off[0], nf__al(t), &off[1])) return NF_ERR_OVERFLOW;
    t = own ? nf__al(((size_t)d->dim + (size_t)d->context_dim) * sizeof(nf_real)) : 0;
    if (!nf__add(off[1], t, &off[2]) || !nf__add(off[2], t, &off[3])) return NF_ERR_OVERFLOW;
    t = own ? nf__al((size_t)d->dim * sizeof(nf_domain)) : 0;   /* own flows always have a table */
    if (!nf__add(off[3], t, &off[4])) return NF_ERR_OVERFLOW;
    if (!nf__mul(ni, sizeof(int), &t) || !nf__add(off[4], nf__al(t), &off[5])) return NF_ERR_OVERFLOW;
    if (!nf__mul(ws, sizeof(nf_real), &t) || !nf__add(off[5], nf__al(t), &off[6])) return NF_ERR_OVERFLOW;
    return NF_OK;
}

static nf_result nf__size(const nf_flow_desc *d, int own, size_t *bytes) {
    size_t off[7]; nf_result r; const char *why; int where;
    if (!d || !bytes) return NF_ERR_NULL;
    r = nf__layout(d, own, off, &why, &where);
    if (r != NF_OK) return r;
    *bytes = off[6] + 64;   /* slack to align the caller's block */
    return NF_OK;
}
NFDEF nf_result nf_flow_size(const nf_flow_desc *d, size_t *bytes) { return nf__size(d, 1, bytes); }
NFDEF nf_result nf_flow_size_const(const nf_flow_desc *d, size_t *bytes) { return nf__size(d, 0, bytes); }

/* "layer 3 (spline coupling): bins must be ..." into msg */
static void nf__why_msg(nf_result r, const char *why, int where, const nf_flow_desc *d, char *msg, size_t cap) {
    nf__msgbuf m;
    if (!msg || cap == 0) return;
    m.s = msg; m.n = 0; m.cap = cap; msg[0] = 0;
    if (r == NF_OK) return;
    nf__msg_str(&m, nf_result_string(r));
    if (where >= 0) {
        const char *nm = d && where < d->n_layers && nf__kind_of(d->layers[where].kind) ? nf__kind_of(d->layers[where].kind)->name : NULL;
        nf__msg_str(&m, ": layer "); nf__msg_long(&m, where);
        if (nm) { nf__msg_str(&m, " ("); nf__msg_str(&m, nm); nf__msg_str(&m, ")"); }
    } else if (where <= -2) { nf__msg_str(&m, ": dimension "); nf__msg_long(&m, -2 - where); nf__msg_str(&m, "'s domain"); }
    if (why) { nf__msg_str(&m, ": "); nf__msg_str(&m, why); }
}
NFDEF nf_result nf_flow_desc_check(const nf_flow_desc *d, char *msg, size_t cap) {
    size_t off[7]; const char *why = NULL; int where = -1; nf_result r;
    r = nf__layout(d, 1, off, &why, &where);
    nf__why_msg(r, why, where, d, msg, cap);
    return r;
}

/* Every kind initialises its own parameters, in layer order from one stream. */
static void nf__init_params(nf_flow *f) {
    int i; nf_rng rng;
    nf_rng_seed(&rng, f->desc.seed);
    memset(f->params, 0, f->n_params * sizeof(nf_real));
    for (i = 0; i < f->n_layers; ++i) {
        const nf__kind *k = nf__kind_of(f->layers[i].kind);
        if (k->init) k->init(&f->layers[i], f->params + f->layers[i].poff, f->dim, &rng);
    }
}

/* The description a flow keeps (and saves and exports): settings its kind does not read
   are 0, whatever the caller left there; a 0 the caller gave for a default stays 0, so
   files keep their oldest version. */
static void nf__scrub_layer(nf_layer_desc *l) {
    nf_layer_desc c; const nf__kind *k = nf__kind_of(l->kind);
    k->canon(l, &c);
#define NF__KEEP(x) if (c.x == 0) l->x = 0
    NF__KEEP(hidden); NF__KEEP(depth); NF__KEEP(activation); NF__KEEP(mask); NF__KEEP(parity); NF__KEEP(seed);
    NF__KEEP(bins); NF__KEEP(transformer); NF__KEEP(inverse); NF__KEEP(order);
    NF__KEEP(clamp); NF__KEEP(tail_bound); NF__KEEP(min_width); NF__KEEP(min_height); NF__KEEP(min_derivative);
#undef NF__KEEP
}
static void nf__scrub_domain(const nf_domain *m, nf_domain *c) {
    memset(c, 0, sizeof *c);
    c->kind = m->kind;
    if (m->kind != NF_DOMAIN_REAL) c->lo = m->lo;
    if (m->kind == NF_DOMAIN_INTERVAL || m->kind == NF_DOMAIN_PERIODIC) c->hi = m->hi;
    if (m->kind == NF_DOMAIN_PERIODIC) { c->cut = m->cut; c->fixed_cut = m->fixed_cut; }
}

/* Builds the flow's bookkeeping in mem; own = 0 leaves params, mean and std unset. */
static nf_result nf__init(nf_flow **out, const nf_flow_desc *d, void *mem, size_t bytes, int own) {
    size_t off[7], skip; nf__shape sh; nf_result r; nf_flow *f; unsigned char *b;
    int i, j, D, *ints;
    if (!out) return NF_ERR_NULL;
    *out = NULL;
    if (!d || !mem) return NF_ERR_NULL;
    {   const char *why; int where;
        r = nf__layout(d, own, off, &why, &where);
        if (r != NF_OK) return r;
    }
    skip = (64 - (size_t)((uintptr_t)mem % 64)) % 64;
    if (bytes < skip || bytes - skip < off[6]) return NF_ERR_ARENA_FULL;
    b = (unsigned char *)mem + skip;
    memset(b, 0, off[6]);
    f = (nf_flow *)b;
    f->desc = *d;
    for (i = 0; i < d->n_layers; ++i) nf__scrub_layer(&f->desc.layers[i]);
    {   const char *why; int where; nf__plan(d, f, &sh, &why, &where); }
    f->dim = D = d->dim; f->n_layers = d->n_layers; f->max_width = sh.width; f->max_out = sh.out; f->has_seq = sh.seq;
    f->chunk = d->chunk ? d->chunk : 256;
    f->n_params = sh.np;
    f->ctx_dim = d->context_dim;
    f->params = (nf_real *)(b + off[0]);
    f->mean = (nf_real *)(b + off[1]);
    f->std = (nf_real *)(b + off[2]);
    /* own flows keep a table (nf_fit moves periodic cuts, loading fills it); constant
       flows read the caller's */
    f->dom = own ? (nf_domain *)(b + off[3]) : (nf_domain *)(uintptr_t)d->domains;
    if (own && d->domains) for (j = 0; j < D; ++j) nf__scrub_domain(&d->domains[j], &f->dom[j]);
    if (f->dom) for (j = 0; j < D; ++j) if (f->dom[j].kind != NF_DOMAIN_REAL) f->has_dom = 1;
    f->desc.domains = f->dom;
    ints = (int *)(b + off[4]);
    f->ws = (nf_real *)(b + off[5]);
    f->err_row = -1;
#ifdef NFLOW_OPENMP
    f->par.run = nf_parallel_openmp; f->par.threads = omp_get_max_threads();
#endif
    if (own) for (j = 0; j < D + f->ctx_dim; ++j) { f->mean[j] = 0; f->std[j] = 1; }
    f->iota = ints; for (j = 0; j < 2 * D; ++j) ints[j] = j;
    ints += 2 * D;
    for (i = 0; i < f->n_layers; ++i) {   /* index arrays: masks, permutations */
        nf__layer *L = &f->layers[i]; const nf__kind *k = nf__kind_of(L->kind);
        if (k->setup) k->setup(L, &d->layers[i], D, i, ints);
        ints += L->ni;
    }
    *out = f;
    return NF_OK;
}
NFDEF nf_result nf_flow_init(nf_flow **out, const nf_flow_desc *d, void *mem, size_t bytes) {
    nf_result r = nf__init(out, d, mem, bytes, 1);
    if (r == NF_OK) nf__init_params(*out);
    return r;
}
NFDEF nf_result nf_flow_init_const(nf_flow **out, const nf_flow_desc *d, const nf_real *params, size_t n_params,
                                   const nf_real *mean, const nf_real *std, void *mem, size_t bytes) {
    nf_result r; nf_flow *f;
    if (!out) return NF_ERR_NULL;
    *out = NULL;
    if (!params || !mean || !std) return NF_ERR_NULL;
    r = nf__init(&f, d, mem, bytes, 0);
    if (r != NF_OK) return r;
    if (f->n_params != n_params) return NF_ERR_SHAPE;
    {   size_t i; int j;   /* once, so that inference need not: finite weights, usable std */
        for (i = 0; i < n_params; ++i) if (!nf__isfinite(params[i])) return NF_ERR_NONFINITE;
        for (j = 0; j < f->dim + f->ctx_dim; ++j)
            if (!nf__isfinite(mean[j]) || !nf__isfinite(std[j]) || !(std[j] >= (nf_real)NF__TINY)) return NF_ERR_ARG;
    }
    /* read-only from here on: every writer checks f->readonly */
    f->params = (nf_real *)(uintptr_t)params;
    f->mean = (nf_real *)(uintptr_t)mean;
    f->std = (nf_real *)(uintptr_t)std;
    f->readonly = 1;
    *out = f;
    return NF_OK;
}

NFDEF nf_result nf_flow_create(nf_flow **out, const nf_flow_desc *d) {
    size_t bytes; nf_result r; void *mem;
    if (!out) return NF_ERR_NULL;
    *out = NULL;
    r = nf_flow_size(d, &bytes);
    if (r != NF_OK) return r;
    mem = NF_MALLOC(bytes, NULL);
    if (!mem) return NF_ERR_NOMEM;
    r = nf_flow_init(out, d, mem, bytes);
    if (r != NF_OK) { NF_FREE(mem, NULL); return r; }
    (*out)->owned = 1; (*out)->block = mem;
    return NF_OK;
}
NFDEF void nf_flow_destroy(nf_flow *f) {
    if (f && f->owned) NF_FREE(f->block, NULL);
}

NFDEF int nf_flow_dim(const nf_flow *f) { return f ? f->dim : 0; }
NFDEF size_t nf_flow_num_params(const nf_flow *f) { return f ? f->n_params : 0; }
NFDEF nf_real *nf_flow_params(nf_flow *f) { return f && !f->readonly ? f->params : NULL; }
NFDEF const nf_flow_desc *nf_flow_get_desc(const nf_flow *f) { return f ? &f->desc : NULL; }
NFDEF const char *nf_flow_error(const nf_flow *f) { return f ? f->err : "flow is NULL"; }
NFDEF long nf_flow_error_row(const nf_flow *f) { return f ? f->err_row : -1; }

NFDEF nf_result nf_flow_set_parallel(nf_flow *f, nf_parallel_fn run, void *pool, int threads) {
    if (!f) return NF_ERR_NULL;
#ifdef NFLOW_NO_THREADS
    if (run && threads > 1) return nf__fail(f, NF_ERR_ARG, "threads are compiled out (NFLOW_NO_THREADS)", -1);
#endif
    f->par.run = run; f->par.pool = pool; f->par.threads = run && threads > 1 ? threads : 1;
    return NF_OK;
}
NFDEF nf_result nf_flow_set_standardization(nf_flow *f, const nf_real *mean, const nf_real *std) {
    int j;
    if (!f) return NF_ERR_NULL;
    if (f->readonly) return nf__fail(f, NF_ERR_READONLY, "constant flow", -1);
    if (!mean != !std) return nf__fail(f, NF_ERR_NULL, "mean and std go together", -1);
    for (j = 0; j < f->dim + f->ctx_dim; ++j) {
        if (mean && (!nf__isfinite(mean[j]) || !nf__isfinite(std[j]) || !(std[j] >= (nf_real)NF__TINY)))
            return nf__fail(f, NF_ERR_ARG, "standardisation needs finite mean and a std that is a positive normal number", -1);
    }
    for (j = 0; j < f->dim + f->ctx_dim; ++j) { f->mean[j] = mean ? mean[j] : 0; f->std[j] = std ? std[j] : 1; }
    f->fitted = mean != NULL;   /* set by hand counts as fitted: nf_fit keeps it */
    return NF_OK;
}
NFDEF void nf_flow_get_standardization(const nf_flow *f, nf_real *mean, nf_real *std) {
    int j;
    if (!f) return;
    for (j = 0; j < f->dim + f->ctx_dim; ++j) { if (mean) mean[j] = f->mean[j]; if (std) std[j] = f->std[j]; }
}
NFDEF int nf_flow_context_dim(const nf_flow *f) { return f ? f->ctx_dim : 0; }

/* ---- inference: one layer on R rows, in place on x (R x D) ------------------ */

/* A workspace for R rows at p (nf__ws_reals(R) of them). */
static void nf__ws_carve_at(nf_flow *f, nf_real *p, size_t R, nf_real **cur, nf__ws *w) {
    size_t D = (size_t)f->dim, mw = (size_t)f->max_width;
    w->par = &f->par;
    *cur = p; p += R * D;
    w->tmp = p; p += R * D;
    w->cond = p; p += R * (D + (size_t)f->ctx_dim);
    w->z = p; p += R * D;
    w->ha = p; p += R * mw;
    w->hb = p; p += R * mw;
    w->out = p; p += R * (size_t)f->max_out;
    w->ld = p; p += R;
    w->oob = p; p += R;
    w->ctx = p; p += R * (size_t)f->ctx_dim;
    w->seq = f->has_seq ? p : NULL;
}
static void nf__ws_carve(nf_flow *f, nf_real **cur, nf__ws *w) { nf__ws_carve_at(f, f->ws, (size_t)f->chunk, cur, w); }

static nf_result nf__check_rows(nf_flow *f, const nf_real *x, size_t n, int cols, const char *what) {
    size_t i; int j;
    for (i = 0; i < n; ++i)
        for (j = 0; j < cols; ++j)
            if (!nf__isfinite(x[i * (size_t)cols + (size_t)j]))
                return nf__fail(f, NF_ERR_NONFINITE, what, (long)i);
    return NF_OK;
}

static nf_result nf__check_call(nf_flow *f, const void *in, size_t n, const void *out) {
    size_t t;
    if (!f) return NF_ERR_NULL;
    f->err[0] = 0; f->err_row = -1;
    if (!in || !out) return nf__fail(f, NF_ERR_NULL, "input or output array is NULL", -1);
    if (n == 0) return nf__fail(f, NF_ERR_ARG, "n = 0 rows", -1);
    if (!nf__mul(n, (size_t)f->dim, &t) || t > ((size_t)-1) / sizeof(nf_real))
        return nf__fail(f, NF_ERR_OVERFLOW, "n x dim overflows", -1);
    return NF_OK;
}

/* Base log-density of R latent rows. */
static void nf__base_logp(const nf_flow *f, const nf_real *z, int R, nf_real *out) {
    int r, j, D = f->dim;
    const nf_real *mu = f->params + f->base_off, *ls = mu + D;
    (void)mu; (void)ls;
    for (r = 0; r < R; ++r) {
        const nf_real *zr = z + (size_t)r * (size_t)D;
        nf_real acc = 0;   /* half the sum of squares: z^2 would overflow before the halving */
#ifndef NFLOW_NO_DIAG_BASE
        if (f->desc.base == NF_BASE_DIAG_GAUSSIAN)
            for (j = 0; j < D; ++j) { nf_real u = (zr[j] - mu[j]) * NF_EXP(-ls[j]); acc += NF__R(0.5) * u * u + ls[j]; }
        else
#endif
            for (j = 0; j < D; ++j) acc += NF__R(0.5) * zr[j] * zr[j];
        out[r] = -(acc + (nf_real)D * (NF__R(0.5) * NF__R(NF__LOG_2PI)));
    }
}

static nf_real nf__std_logdet(const nf_flow *f) {
    nf_real s = 0; int j;
    for (j = 0; j < f->dim; ++j) s -= NF_LOG(f->std[j]);
    return s;
}

/* ---- domains: y (the user's coordinates) <-> u (the real line) ------------------- */
#ifndef NFLOW_NO_DOMAINS
/* u from y and *ld = log|du/dy|; returns 0 when y is outside the domain (a flag, not an
   infinity: -ffast-math may assume there are none). A periodic dimension has no outside:
   the cut itself, and a y that rounds onto it, are moved just inside (the density there is
   ~0, finite). */
static int nf__dom_fwd(const nf_domain *m, nf_real y, nf_real *u, nf_real *ld) {
    nf_real lo = (nf_real)m->lo, hi = (nf_real)m->hi, P, t, tmin;
    *ld = 0;
    switch (m->kind) {
    case NF_DOMAIN_INTERVAL:
        if (!(y > lo && y < hi)) return 0;
        *u = NF_LOG(y - lo) - NF_LOG(hi - y);                 /* logit((y - lo) / (hi - lo)) */
        *ld = NF_LOG(hi - lo) - NF_LOG(y - lo) - NF_LOG(hi - y);
        return 1;
    case NF_DOMAIN_LOWER:
        if (!(y > lo)) return 0;
        *u = NF_LOG(y - lo);
        *ld = -*u;
        return 1;
    case NF_DOMAIN_PERIODIC:
        P = hi - lo; tmin = P * (nf_real)NF__EPS;
        t = y - (nf_real)m->cut;
        t -= P * NF_FLOOR(t / P);                              /* (y - cut) mod P, in [0, P] after rounding */
        if (!(t >= tmin)) t = tmin;
        if (!(t <= P - tmin)) t = P - tmin;
        *u = NF_LOG(t) - NF_LOG(P - t);
        *ld = NF_LOG(P) - NF_LOG(t) - NF_LOG(P - t);
        return 1;
    default:
        *u = y; *ld = 0;
        return 1;
    }
}
/* y from u, strictly inside the domain; returns log|dy/du| */
static nf_real nf__dom_inv(const nf_domain *m, nf_real u, nf_real *y) {
    nf_real lo = (nf_real)m->lo, hi = (nf_real)m->hi, P = hi - lo, s, v;
    nf_real ld = NF_LOG(P) - nf__softplus(u) - nf__softplus(-u);   /* log (hi - lo) sigma(u) sigma(-u) */
    switch (m->kind) {
    case NF_DOMAIN_INTERVAL:
        s = u > 0 ? 1 / (1 + NF_EXP(-u)) : NF_EXP(u) / (1 + NF_EXP(u));
        v = u > 0 ? hi - P * (1 - s) : lo + P * s;
        /* rounding must not reach the boundary: a step of at least an ulp of the edge
           (the domain check leaves room for it) */
        if (!(v > lo)) v = lo + (P > NF_FABS(lo) ? P : NF_FABS(lo)) * (nf_real)NF__EPS;
        if (!(v < hi)) v = hi - (P > NF_FABS(hi) ? P : NF_FABS(hi)) * (nf_real)NF__EPS;
        *y = v;
        return ld;
    case NF_DOMAIN_LOWER:
        v = lo + NF_EXP(u);
        if (!(v > lo)) v = lo + (NF_FABS(lo) + 1) * (nf_real)NF__EPS;
        *y = v;
        return u;
    case NF_DOMAIN_PERIODIC:
        s = u > 0 ? 1 / (1 + NF_EXP(-u)) : NF_EXP(u) / (1 + NF_EXP(u));
        v = (nf_real)m->cut + P * s;
        v -= P * NF_FLOOR((v - lo) / P);                       /* back into [lo, hi) */
        if (!(v >= lo && v < hi)) v = lo;
        *y = v;
        return ld;
    default:
        *y = u;
        return 0;
    }
}
#else   /* no domains: every dimension is the real line (the plan refuses others) */
static int nf__dom_fwd(const nf_domain *m, nf_real y, nf_real *u, nf_real *ld) { (void)m; *u = y; *ld = 0; return 1; }
static nf_real nf__dom_inv(const nf_domain *m, nf_real u, nf_real *y) { (void)m; *y = u; return 0; }
#endif
NFDEF const nf_domain *nf_flow_domains(const nf_flow *f) { return f ? f->dom : NULL; }
NFDEF int nf_flow_in_domain(const nf_flow *f, const nf_real *y) {
    int j; nf_real u, ld;
    if (!f || !y) return 0;
    if (f->has_dom) for (j = 0; j < f->dim; ++j) if (!nf__dom_fwd(&f->dom[j], y[j], &u, &ld)) return 0;
    return 1;
}

/* the chunk's context rows, standardised, into w->ctx */
static void nf__chunk_ctx(nf_flow *f, const nf_real *ctx, int shared, int R, nf__ws *w) {
#ifndef NFLOW_NO_CONTEXT
    int r, j, C = f->ctx_dim, D = f->dim;
    for (r = 0; r < R; ++r) {
        const nf_real *c = ctx + (shared ? 0 : (size_t)r * (size_t)C);
        for (j = 0; j < C; ++j) w->ctx[(size_t)r * (size_t)C + (size_t)j] = (c[j] - f->mean[D + j]) / f->std[D + j];
    }
#else
    (void)f; (void)ctx; (void)shared; (void)R; (void)w;
#endif
}

/* Data rows -> latent rows for one chunk, from the user's coordinates: domain map,
   standardisation, then layers 0 .. upto-1. Rows outside the domain get w->oob[r] = 1
   (and zeros, which keep the layers finite). Returns the number of such rows. */
static int nf__chunk_forward(nf_flow *f, const nf_real *y, int R, const nf_real *ctx, int shared, nf_real *cur, nf__ws *w, int upto) {
    int r, j, i, D = f->dim, bad = 0;
    nf_real ld0 = nf__std_logdet(f);
    if (f->ctx_dim) nf__chunk_ctx(f, ctx, shared, R, w);
    for (r = 0; r < R; ++r) {
        nf_real ld = ld0, dl, *c = cur + (size_t)r * (size_t)D; int in = 1;
        for (j = 0; j < D; ++j) {
            nf_real v = y[(size_t)r * (size_t)D + (size_t)j];
            if (f->has_dom && f->dom[j].kind != NF_DOMAIN_REAL) { in &= nf__dom_fwd(&f->dom[j], v, &v, &dl); ld += dl; }
            c[j] = (v - f->mean[j]) / f->std[j];
        }
        if (!in) { for (j = 0; j < D; ++j) c[j] = 0; ld = 0; ++bad; }
        w->ld[r] = ld; w->oob[r] = in ? NF__R(0) : NF__R(1);
    }
    for (i = 0; i < upto; ++i) nf__layer_apply(f, &f->layers[i], cur, R, +1, w);
    return bad;
}
static void nf__chunk_inverse(nf_flow *f, nf_real *cur, int R, const nf_real *ctx, int shared, nf_real *y, nf__ws *w) {
    int r, j, i, D = f->dim;
    nf_real ld0 = -nf__std_logdet(f);
    if (f->ctx_dim) nf__chunk_ctx(f, ctx, shared, R, w);
    for (r = 0; r < R; ++r) w->ld[r] = ld0;
    for (i = f->n_layers - 1; i >= 0; --i) nf__layer_apply(f, &f->layers[i], cur, R, -1, w);
    for (r = 0; r < R; ++r)
        for (j = 0; j < D; ++j) {
            nf_real v = cur[(size_t)r * (size_t)D + (size_t)j] * f->std[j] + f->mean[j];
            if (f->has_dom && f->dom[j].kind != NF_DOMAIN_REAL) w->ld[r] += nf__dom_inv(&f->dom[j], v, &v);
            y[(size_t)r * (size_t)D + (size_t)j] = v;
        }
}

/* Results are checked, one pass over what the call writes: a value that is not finite
   for a row inside the domain means the input is beyond what the network can carry in
   nf_real (an overflow), or a density below the smallest nf_real. Rows flagged in oob
   (outside the domain: log_prob -inf by definition) are skipped. */
static nf_result nf__check_out(nf_flow *f, const nf_real *v, int R, int cols, const nf_real *oob, size_t row0) {
    int r, j;
    for (r = 0; r < R; ++r) {
        if (oob && oob[r] != 0) continue;
        for (j = 0; j < cols; ++j)
            if (!nf__isfinite(v[(size_t)r * (size_t)cols + (size_t)j]))
                return nf__fail(f, NF_ERR_RANGE, "result not representable (the input is too extreme for this flow)", (long)(row0 + (size_t)r));
    }
    return NF_OK;
}

static nf_result nf__check_ctx(nf_flow *f, const nf_real *ctx, size_t ctx_rows, size_t n) {
    if (f->ctx_dim == 0) return ctx ? nf__fail(f, NF_ERR_ARG, "this flow takes no context", -1) : NF_OK;
    if (!ctx) return nf__fail(f, NF_ERR_NULL, "a conditional flow needs a context", -1);
    if (ctx_rows != 1 && ctx_rows != n) return nf__fail(f, NF_ERR_SHAPE, "ctx_rows must be 1 (shared) or n", -1);
    return nf__check_rows(f, ctx, ctx_rows, f->ctx_dim, "context");
}
#define NF__CHUNKS(i, R, n, f) \
    for (i = 0; i < n; i += (size_t)(f)->chunk) { int R = (int)(n - i < (size_t)(f)->chunk ? n - i : (size_t)(f)->chunk);
#define NF__CTX_AT(ctx, shared, i, f) ((ctx) ? (ctx) + ((shared) ? 0 : (i) * (size_t)(f)->ctx_dim) : NULL)

/* ---- rows in parallel -----------------------------------------------------------
   Rows are independent: every layer, and the matrix kernel, computes a row the same way
   whatever rows share its chunk (each product element is summed in one fixed order). So
   with threads, the rows are cut into T contiguous ranges, one task each, and a task runs
   all the layers on its rows through its own slice of the workspace (chunk / T rows):
   one fork per call instead of one per product, and a row's data stays in one core's
   cache. The same bits as one thread. The tasks note their first failing row; after the
   join the lowest one is reported, as one thread would. */
struct nf__run;
/* one slice: rows i .. i+R-1 through the workspace; returns 0, or the error with *row */
typedef nf_result (*nf__slice_fn)(struct nf__run *J, nf_real *cur, nf__ws *w, size_t i, int R, size_t *row);
typedef struct nf__run {
    nf_flow *f; nf__slice_fn body; int shared, T, sample; size_t n, slice;
    const nf_real *in, *ctx; nf_real *out, *aux;   /* aux: log-dets (forward, inverse) or log q (sample) */
    size_t bad[NF__RUN_TMAX]; nf_result err[NF__RUN_TMAX];   /* per task: its first failing row */
} nf__run;
static int nf__run_nonfinite(const nf_real *v, size_t cols) {
    size_t j;
    for (j = 0; j < cols; ++j) if (!nf__isfinite(v[j])) return 1;
    return 0;
}
/* the bodies, one per call (separate functions: a firmware links only those it calls) */
static nf_result nf__slice_inverse(nf__run *J, nf_real *cur, nf__ws *w, size_t i, int R, size_t *row) {   /* and sample */
    nf_flow *f = J->f; size_t D = (size_t)f->dim; int r;
    memcpy(cur, J->in + i * D, (size_t)R * D * sizeof(nf_real));   /* sample: in == out, these rows */
    if (J->sample && J->aux) nf__base_logp(f, cur, R, J->aux + i);
    nf__chunk_inverse(f, cur, R, NF__CTX_AT(J->ctx, J->shared, i, f), J->shared, J->out + i * D, w);
    for (r = 0; r < R; ++r) {
        nf_real *lq = J->aux ? J->aux + i + (size_t)r : NULL;
        if (lq && !J->sample) *lq = w->ld[r];
        else if (lq) *lq -= w->ld[r];
        if (nf__run_nonfinite(J->out + (i + (size_t)r) * D, D) || (lq ? !nf__isfinite(*lq) : !J->sample && !nf__isfinite(w->ld[r]))) {
            *row = i + (size_t)r; return NF_ERR_RANGE;
        }
    }
    return NF_OK;
}
static nf_result nf__slice_forward(nf__run *J, nf_real *cur, nf__ws *w, size_t i, int R, size_t *row) {
    nf_flow *f = J->f; size_t D = (size_t)f->dim; int r;
    nf__chunk_forward(f, J->in + i * D, R, NF__CTX_AT(J->ctx, J->shared, i, f), J->shared, cur, w, f->n_layers);
    for (r = 0; r < R; ++r) {
        nf_result e = w->oob[r] != 0 ? NF_ERR_ARG
                    : nf__run_nonfinite(cur + (size_t)r * D, D) || !nf__isfinite(w->ld[r]) ? NF_ERR_RANGE : NF_OK;
        if (e != NF_OK) { *row = i + (size_t)r; return e; }
    }
    memcpy(J->out + i * D, cur, (size_t)R * D * sizeof(nf_real));
    if (J->aux) memcpy(J->aux + i, w->ld, (size_t)R * sizeof(nf_real));
    return NF_OK;
}
static nf_result nf__slice_log_prob(nf__run *J, nf_real *cur, nf__ws *w, size_t i, int R, size_t *row) {
    nf_flow *f = J->f; nf_real *lp = J->out + i; int r;
    int bad = nf__chunk_forward(f, J->in + i * (size_t)f->dim, R, NF__CTX_AT(J->ctx, J->shared, i, f), J->shared, cur, w, f->n_layers);
    nf__base_logp(f, cur, R, lp);
    for (r = 0; r < R; ++r) {
        if (bad && w->oob[r] != 0) { lp[r] = (nf_real)-HUGE_VAL; continue; }
        lp[r] += w->ld[r];
        if (!nf__isfinite(lp[r])) { *row = i + (size_t)r; return NF_ERR_RANGE; }
    }
    return NF_OK;
}
static void nf__run_task(void *arg, int t) {
    nf__run *J = (nf__run *)arg; nf_flow *f = J->f;
    size_t lo = J->n * (size_t)t / (size_t)J->T, hi = J->n * (size_t)(t + 1) / (size_t)J->T, i, per = 0;
    nf_real *cur; nf__ws w; nf__shape sh;
    sh.width = f->max_width; sh.out = f->max_out; sh.seq = f->has_seq;
    nf__ws_reals(f->dim, f->ctx_dim, 1, &sh, &per);   /* a row's share (the flow's whole workspace fitted) */
    nf__ws_carve_at(f, f->ws + (size_t)t * J->slice * per, J->slice, &cur, &w);
    if (J->T > 1) w.par = NULL;   /* the rows are the split: no threads inside */
    J->err[t] = NF_OK; J->bad[t] = 0;
    for (i = lo; i < hi && J->err[t] == NF_OK; i += J->slice)
        J->err[t] = J->body(J, cur, &w, i, (int)(hi - i < J->slice ? hi - i : J->slice), &J->bad[t]);
}
/* Runs J over its n rows on the flow's threads (or one) and reports the lowest failing row. */
static nf_result nf__run_rows(nf_flow *f, nf__run *J) {
    int T = 1, t, first = -1;
    J->f = f;
#ifdef NFLOW_NO_THREADS
    (void)t; (void)T;
    J->T = 1; J->slice = (size_t)f->chunk;
    nf__run_task(J, 0);
    if (J->err[0] != NF_OK) first = 0;
#else
    if (f->par.run && f->par.threads > 1) {
        /* a task is worth it from ~NF__PAR_MIN multiply-adds (a row takes about one per parameter) */
        float work = (float)J->n * (float)(f->n_params > 0 ? f->n_params : 1);
        T = f->par.threads < NF__RUN_TMAX ? f->par.threads : NF__RUN_TMAX;
        if (T > f->chunk) T = f->chunk;
        if ((float)T * NF__PAR_MIN > work) T = (int)(work / NF__PAR_MIN);
        if (T < 1) T = 1;
    }
    J->T = T; J->slice = (size_t)(f->chunk / T);
    if (T > 1) f->par.run(f->par.pool, T, nf__run_task, J);
    else nf__run_task(J, 0);
    for (t = 0; t < T; ++t)
        if (J->err[t] != NF_OK && (first < 0 || J->bad[t] < J->bad[first])) first = t;
#endif
    if (first < 0) return NF_OK;
    if (J->err[first] == NF_ERR_ARG) return nf__fail(f, NF_ERR_ARG, "data outside the flow's domain", (long)J->bad[first]);
    return nf__fail(f, NF_ERR_RANGE, "result not representable (the input is too extreme for this flow)", (long)J->bad[first]);
}

NFDEF nf_result nf_flow_forward_ctx(nf_flow *f, const nf_real *y, size_t n, const nf_real *ctx, size_t ctx_rows, nf_real *z, nf_real *logdet) {
    nf__run J; nf_result r = nf__check_call(f, y, n, z);
    if (r != NF_OK) return r;
    if ((r = nf__check_rows(f, y, n, f->dim, "data")) != NF_OK || (r = nf__check_ctx(f, ctx, ctx_rows, n)) != NF_OK) return r;
    J.body = nf__slice_forward; J.sample = 0; J.n = n; J.in = y; J.ctx = ctx; J.shared = ctx_rows == 1; J.out = z; J.aux = logdet;
    return nf__run_rows(f, &J);
}
NFDEF nf_result nf_flow_inverse_ctx(nf_flow *f, const nf_real *z, size_t n, const nf_real *ctx, size_t ctx_rows, nf_real *y, nf_real *logdet) {
    nf__run J; nf_result r = nf__check_call(f, z, n, y);
    if (r != NF_OK) return r;
    if ((r = nf__check_rows(f, z, n, f->dim, "latent")) != NF_OK || (r = nf__check_ctx(f, ctx, ctx_rows, n)) != NF_OK) return r;
    J.body = nf__slice_inverse; J.sample = 0; J.n = n; J.in = z; J.ctx = ctx; J.shared = ctx_rows == 1; J.out = y; J.aux = logdet;
    return nf__run_rows(f, &J);
}
NFDEF nf_result nf_flow_forward(nf_flow *f, const nf_real *y, size_t n, nf_real *z, nf_real *logdet) {
    return nf_flow_forward_ctx(f, y, n, NULL, 0, z, logdet);
}
NFDEF nf_result nf_flow_inverse(nf_flow *f, const nf_real *z, size_t n, nf_real *y, nf_real *logdet) {
    return nf_flow_inverse_ctx(f, z, n, NULL, 0, y, logdet);
}
#ifndef NFLOW_NO_TRAINING   /* development-side: not in inference-only builds */
NFDEF nf_result nf_flow_inverse_stage(nf_flow *f, const nf_real *z, size_t n, int k, nf_real *y) {
    nf_real *cur; nf__ws w; size_t i; int l, r2, j, D; nf_result r = nf__check_call(f, z, n, y);
    if (r != NF_OK) return r;
    if (k < 0 || k > f->n_layers) return nf__fail(f, NF_ERR_ARG, "stage out of range", -1);
    if (f->ctx_dim || f->has_dom) return nf__fail(f, NF_ERR_ARG, "stages are for unconditional flows without domains", -1);
    if ((r = nf__check_rows(f, z, n, f->dim, "latent")) != NF_OK) return r;
    D = f->dim;
    nf__ws_carve(f, &cur, &w);
    NF__CHUNKS(i, R, n, f)
        memcpy(cur, z + i * (size_t)D, (size_t)R * (size_t)D * sizeof(nf_real));
        for (r2 = 0; r2 < R; ++r2) w.ld[r2] = 0;
        for (l = f->n_layers - 1; l >= f->n_layers - k; --l) nf__layer_apply(f, &f->layers[l], cur, R, -1, &w);
        for (r2 = 0; r2 < R; ++r2)
            for (j = 0; j < D; ++j) {
                nf_real v = cur[(size_t)r2 * (size_t)D + (size_t)j];
                y[(i + (size_t)r2) * (size_t)D + (size_t)j] = k == f->n_layers ? v * f->std[j] + f->mean[j] : v;
            }
        if ((r = nf__check_out(f, y + i * (size_t)D, R, D, NULL, i)) != NF_OK) return r;
    }
    return NF_OK;
}
#endif
#ifndef NFLOW_NO_TRAINING
NFDEF nf_result nf_flow_forward_stage(nf_flow *f, const nf_real *y, size_t n, int k, nf_real *z, nf_real *logdet) {
    nf_real *cur; nf__ws w; size_t i; nf_result r = nf__check_call(f, y, n, z);
    if (r != NF_OK) return r;
    if (k < 0 || k > f->n_layers) return nf__fail(f, NF_ERR_ARG, "stage out of range", -1);
    if (f->ctx_dim || f->has_dom) return nf__fail(f, NF_ERR_ARG, "stages are for unconditional flows without domains", -1);
    if ((r = nf__check_rows(f, y, n, f->dim, "data")) != NF_OK) return r;
    nf__ws_carve(f, &cur, &w);
    NF__CHUNKS(i, R, n, f)
        nf__chunk_forward(f, y + i * (size_t)f->dim, R, NULL, 0, cur, &w, k);   /* layers 0 .. k-1 */
        if ((r = nf__check_out(f, cur, R, f->dim, NULL, i)) != NF_OK || (logdet && (r = nf__check_out(f, w.ld, R, 1, NULL, i)) != NF_OK)) return r;
        memcpy(z + i * (size_t)f->dim, cur, (size_t)R * (size_t)f->dim * sizeof(nf_real));
        if (logdet) memcpy(logdet + i, w.ld, (size_t)R * sizeof(nf_real));
    }
    return NF_OK;
}
#endif
/* log p(y) = log p_X(g^-1(y)) + log|det d g^-1 / dy|; -inf outside the domain */
NFDEF nf_result nf_flow_log_prob_ctx(nf_flow *f, const nf_real *y, size_t n, const nf_real *ctx, size_t ctx_rows, nf_real *logp) {
    nf__run J; nf_result r = nf__check_call(f, y, n, logp);
    if (r != NF_OK) return r;
    if ((r = nf__check_rows(f, y, n, f->dim, "data")) != NF_OK || (r = nf__check_ctx(f, ctx, ctx_rows, n)) != NF_OK) return r;
    J.body = nf__slice_log_prob; J.sample = 0; J.n = n; J.in = y; J.ctx = ctx; J.shared = ctx_rows == 1; J.out = logp; J.aux = NULL;
    return nf__run_rows(f, &J);
}
NFDEF nf_result nf_flow_log_prob(nf_flow *f, const nf_real *y, size_t n, nf_real *logp) {
    return nf_flow_log_prob_ctx(f, y, n, NULL, 0, logp);
}
NFDEF nf_result nf_flow_mean_log_prob(nf_flow *f, const nf_real *y, size_t n, double *mean, double *se) {
    nf_real lp[128]; size_t i, k, R; double m = 0, q = 0; int outside = 0; nf_result r;
    if (mean) *mean = 0;
    if (se) *se = 0;
    if ((r = nf__check_call(f, y, n, mean)) != NF_OK) return r;
    if (!se) return nf__fail(f, NF_ERR_NULL, "se is NULL", -1);
    for (i = 0; i < n; i += R) {
        R = n - i < 128 ? n - i : 128;
        if ((r = nf_flow_log_prob(f, y + i * (size_t)f->dim, R, lp)) != NF_OK) {
            if (f->err_row >= 0) nf__fail_rename_row(f, f->err_row + (long)i, "");
            return r;
        }
        for (k = 0; k < R; ++k) {   /* Welford: one pass, no cancellation */
            double v = (double)lp[k], d;
            if (!nf__isfinite_d(v)) { outside = 1; continue; }   /* -inf: outside the domain */
            d = v - m; m += d / (double)(i + k + 1); q += d * (v - m);
        }
    }
    if (outside) { *mean = -HUGE_VAL; *se = 0; return NF_OK; }
    *mean = m;
    *se = n > 1 ? sqrt(q / (double)(n - 1) / (double)n) : 0;
    return NF_OK;
}
NFDEF nf_result nf_flow_base_log_prob(nf_flow *f, const nf_real *z, size_t n, nf_real *logp) {
    size_t i; nf_result r = nf__check_call(f, z, n, logp);
    if (r != NF_OK) return r;
    if ((r = nf__check_rows(f, z, n, f->dim, "latent")) != NF_OK) return r;
    NF__CHUNKS(i, R, n, f)
        nf__base_logp(f, z + i * (size_t)f->dim, R, logp + i);
        if ((r = nf__check_out(f, logp + i, R, 1, NULL, i)) != NF_OK) return r;
    }
    return NF_OK;
}
/* z ~ base, y = g(z); log q(y) = log p_X(z) - log|det dg/dz| */
NFDEF nf_result nf_flow_sample_ctx(nf_flow *f, nf_rng *rng, size_t n, const nf_real *ctx, size_t ctx_rows, nf_real *y, nf_real *logp) {
    nf__run J; size_t i; int j, D; const nf_real *mu, *ls; nf_result r = nf__check_call(f, y, n, y);
    if (r != NF_OK) return r;
    if (!rng) return nf__fail(f, NF_ERR_NULL, "rng is NULL (seed an nf_rng with nf_rng_seed)", -1);
    if ((r = nf__check_ctx(f, ctx, ctx_rows, n)) != NF_OK) return r;
    D = f->dim; mu = f->params + f->base_off; ls = mu + D;
    (void)mu; (void)ls;
    for (i = 0; i < n; ++i)   /* the base draws first, in order: one stream whatever the threads */
        for (j = 0; j < D; ++j) {
            nf_real e = nf_rng_normal(rng);
#ifndef NFLOW_NO_DIAG_BASE
            if (f->desc.base == NF_BASE_DIAG_GAUSSIAN) e = mu[j] + NF_EXP(ls[j]) * e;
#endif
            y[i * (size_t)D + (size_t)j] = e;
        }
    J.body = nf__slice_inverse; J.sample = 1; J.n = n; J.in = y; J.ctx = ctx; J.shared = ctx_rows == 1; J.out = y; J.aux = logp;
    return nf__run_rows(f, &J);
}
NFDEF nf_result nf_flow_sample(nf_flow *f, nf_rng *rng, size_t n, nf_real *y, nf_real *logp) {
    return nf_flow_sample_ctx(f, rng, n, NULL, 0, y, logp);
}

/* ---- self-checks --------------------------------------------------------------- */
NFDEF nf_result nf_flow_roundtrip_error(nf_flow *f, const nf_real *y, size_t n, double *max_err) {
    nf_real *cur; nf__ws w; size_t i; int j, r2, D; double m = 0;
    nf_result r = nf__check_call(f, y, n, max_err);
    if (r != NF_OK) return r;
    if ((r = nf__check_rows(f, y, n, f->dim, "data")) != NF_OK) return r;
    if (f->ctx_dim) return nf__fail(f, NF_ERR_ARG, "use a context-free flow (or check with nf_flow_forward_ctx)", -1);
    D = f->dim;
    nf__ws_carve(f, &cur, &w);
    for (i = 0; i < n; i += (size_t)f->chunk) {
        int R = (int)(n - i < (size_t)f->chunk ? n - i : (size_t)f->chunk);
        if (nf__chunk_forward(f, y + i * (size_t)D, R, NULL, 0, cur, &w, f->n_layers))
            for (r2 = 0; r2 < R; ++r2)
                if (w.oob[r2] != 0) return nf__fail(f, NF_ERR_ARG, "data outside the flow's domain", (long)(i + (size_t)r2));
        nf__chunk_inverse(f, cur, R, NULL, 0, w.z, &w);   /* w.z: R x D, unused by the layers */
        for (r2 = 0; r2 < R; ++r2)
            for (j = 0; j < D; ++j) {
                double e = fabs((double)w.z[(size_t)r2 * (size_t)D + (size_t)j] - (double)y[(i + (size_t)r2) * (size_t)D + (size_t)j]);
                if (!nf__isfinite_d(e)) e = HUGE_VAL;   /* a non-finite round trip is the worst */
                if (e > m) m = e;
            }
    }
    *max_err = m;
    return NF_OK;
}

#ifndef NFLOW_NO_TRAINING   /* development-side: not in inference-only builds */
/* log|det A| of a dim x dim matrix by LU with partial pivoting (A is destroyed). */
static double nf__logabsdet(double *A, int dim) {
    size_t D = (size_t)dim, i, j, k; double s = 0;
    for (k = 0; k < D; ++k) {
        size_t piv = k; double best = fabs(A[k * D + k]);
        for (i = k + 1; i < D; ++i) if (fabs(A[i * D + k]) > best) { best = fabs(A[i * D + k]); piv = i; }
        if (best == 0) return -HUGE_VAL;
        if (piv != k) for (j = 0; j < D; ++j) { double t = A[k * D + j]; A[k * D + j] = A[piv * D + j]; A[piv * D + j] = t; }
        s += log(best);
        for (i = k + 1; i < D; ++i) {
            double l = A[i * D + k] / A[k * D + k];
            for (j = k; j < D; ++j) A[i * D + j] -= l * A[k * D + j];
        }
    }
    return s;
}

NFDEF nf_result nf_flow_logdet_error(nf_flow *f, const nf_real *y, size_t n, double h, double *max_err) {
    size_t i, bytes; int a, b, D; double m = 0, *J; nf_real *yp, *zp, *zm, ld[1];
    nf_result r = nf__check_call(f, y, n, max_err);
    if (r != NF_OK) return r;
    if (!(h > 0)) return nf__fail(f, NF_ERR_ARG, "step h must be positive", -1);
    D = f->dim;
    if (!nf__mul((size_t)D, (size_t)D, &bytes) || !nf__mul(bytes, sizeof(double), &bytes) ||
        !nf__add(bytes, 3 * (size_t)D * sizeof(nf_real), &bytes))
        return nf__fail(f, NF_ERR_OVERFLOW, "jacobian size", -1);
    J = (double *)NF_MALLOC(bytes, NULL);
    if (!J) return nf__fail(f, NF_ERR_NOMEM, "jacobian scratch", -1);
    yp = (nf_real *)(J + (size_t)D * (size_t)D); zp = yp + D; zm = zp + D;
    for (i = 0; i < n && r == NF_OK; ++i) {
        const nf_real *yr = y + i * (size_t)D;
        for (b = 0; b < D && r == NF_OK; ++b) {       /* column b: dz/dy_b */
            /* the step follows the dimension's scale: its sd, through its domain map at y */
            double hb = h * (double)f->std[b], up, dn; nf_real u, dl = 0;
            if (f->has_dom && f->dom[b].kind != NF_DOMAIN_REAL && nf__dom_fwd(&f->dom[b], yr[b], &u, &dl)) hb *= exp(-(double)dl);
            memcpy(yp, yr, (size_t)D * sizeof(nf_real));
            yp[b] = (nf_real)((double)yr[b] + hb); up = (double)yp[b];
            r = nf_flow_forward(f, yp, 1, zp, NULL);
            yp[b] = (nf_real)((double)yr[b] - hb); dn = (double)yp[b];
            if (r == NF_OK && !(up > dn)) r = nf__fail(f, NF_ERR_ARG, "step h is below this build's resolution at y", (long)i);
            if (r == NF_OK) r = nf_flow_forward(f, yp, 1, zm, NULL);
            for (a = 0; a < D; ++a) J[(size_t)a * (size_t)D + (size_t)b] = ((double)zp[a] - (double)zm[a]) / (up - dn);   /* the step taken */
        }
        if (r == NF_OK) r = nf_flow_forward(f, yr, 1, zp, ld);
        if (r == NF_OK) {
            double e = fabs(nf__logabsdet(J, D) - (double)ld[0]);
            if (!nf__isfinite_d(e)) e = HUGE_VAL;
            if (e > m) m = e;
        }
    }
    NF_FREE(J, NULL);
    *max_err = m;
    return r;
}

#endif /* NFLOW_NO_TRAINING: logdet check */

/* ---- model files --------------------------------------------------------------- */
#define NF__FORMAT_VERSION 3u   /* the newest; 1 and 2 load too */
#define NF__FLAG_FITTED 1u        /* header flags: standardisation and periodic cuts are fitted */
#define NF__HDR_BYTES 56u
#define NF__LAYER_BYTES 36u       /* versions 1 and 2 */
#define NF__LAYER_BYTES3 68u      /* version 3: the spline and autoregressive settings too */
#ifndef NFLOW_NO_TRAINING
/* A file is written in the oldest version that holds the flow: version 2 unless a layer
   uses a setting that version 3 added (older readers keep reading older flows). */
static int nf__layer_is_v3(const nf_layer_desc *l) {
    return l->bins || l->tail_bound != 0 || l->min_width != 0 || l->min_height != 0 || l->min_derivative != 0 ||
           l->transformer || l->inverse || l->order || l->kind > NF_LAYER_MONOTONE;
}
static uint32_t nf__file_version(const nf_flow_desc *d) {
    int j;
    for (j = 0; j < d->n_layers; ++j) if (nf__layer_is_v3(&d->layers[j])) return 3;
    return 2;
}
#endif
#define NF__DOMAIN_BYTES 28u
static const unsigned char nf__magic[8] = {'N', 'F', 'L', 'W', '\r', '\n', 0x1a, '\n'};

#if !defined(NFLOW_NO_LOADER) || !defined(NFLOW_NO_TRAINING)
NFDEF uint32_t nf_crc32(uint32_t crc, const void *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data; size_t i; int k;
    crc = ~crc;
    for (i = 0; i < n; ++i) {   /* bitwise: small code, and models are small */
        crc ^= p[i];
        for (k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}
#endif

#ifndef NFLOW_NO_TRAINING
/* little-endian writer into a buffer of known size */
typedef struct nf__wr { unsigned char *p; size_t n; } nf__wr;
static void nf__put_u32(nf__wr *w, uint32_t v) { int i; for (i = 0; i < 4; ++i) w->p[w->n++] = (unsigned char)(v >> (8 * i)); }
static void nf__put_u64(nf__wr *w, uint64_t v) { int i; for (i = 0; i < 8; ++i) w->p[w->n++] = (unsigned char)(v >> (8 * i)); }
static void nf__put_f32(nf__wr *w, float v) { uint32_t u; memcpy(&u, &v, 4); nf__put_u32(w, u); }
static void nf__put_f64(nf__wr *w, double v) { uint64_t u; memcpy(&u, &v, 8); nf__put_u64(w, u); }
static void nf__put_real(nf__wr *w, nf_real v) {
    if (sizeof(nf_real) == 4) nf__put_f32(w, (float)v); else nf__put_f64(w, (double)v);
}
#endif
#ifndef NFLOW_NO_LOADER
static uint32_t nf__get_u32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t nf__get_u64(const unsigned char *p) { return (uint64_t)nf__get_u32(p) | (uint64_t)nf__get_u32(p + 4) << 32; }
static float nf__get_f32(const unsigned char *p) { uint32_t u = nf__get_u32(p); float v; memcpy(&v, &u, 4); return v; }
static double nf__get_f64(const unsigned char *p) { uint64_t u = nf__get_u64(p); double v; memcpy(&v, &u, 8); return v; }
static void nf__get_domain(const unsigned char *p, nf_domain *m) {
    uint32_t kf = nf__get_u32(p);
    m->kind = (int)(kf & 0xffffu); m->fixed_cut = (int)(kf >> 16);
    m->lo = nf__get_f64(p + 4); m->hi = nf__get_f64(p + 12); m->cut = nf__get_f64(p + 20);
}
#endif

#ifndef NFLOW_NO_TRAINING   /* development-side: not in inference-only builds */
NFDEF nf_result nf_flow_save_size(const nf_flow *f, size_t *bytes) {
    size_t t;
    if (!f || !bytes) return NF_ERR_NULL;
    t = NF__HDR_BYTES + (size_t)f->n_layers * (nf__file_version(&f->desc) >= 3 ? NF__LAYER_BYTES3 : NF__LAYER_BYTES) + (size_t)f->dim * NF__DOMAIN_BYTES + 8 + 4;
    if (f->n_params > ((size_t)-1 - t) / sizeof(nf_real) - 2 * ((size_t)f->dim + (size_t)f->ctx_dim)) return NF_ERR_OVERFLOW;
    *bytes = t + (2 * ((size_t)f->dim + (size_t)f->ctx_dim) + f->n_params) * sizeof(nf_real);
    return NF_OK;
}

NFDEF nf_result nf_flow_save(const nf_flow *f, void *buf, size_t cap, size_t *written) {
    size_t need, i; nf__wr w; nf_result r; int j; uint32_t version;
    if (!f || !buf) return NF_ERR_NULL;
    if ((r = nf_flow_save_size(f, &need)) != NF_OK) return r;
    if (cap < need) return NF_ERR_ARENA_FULL;
    version = nf__file_version(&f->desc);
    w.p = (unsigned char *)buf; w.n = 0;
    memcpy(w.p, nf__magic, 8); w.n = 8;
    nf__put_u32(&w, version);
    nf__put_u32(&w, (uint32_t)sizeof(nf_real));
    nf__put_u64(&w, (uint64_t)need);
    nf__put_u32(&w, (uint32_t)f->dim); nf__put_u32(&w, (uint32_t)f->desc.base);
    nf__put_u32(&w, (uint32_t)f->n_layers); nf__put_u32(&w, (uint32_t)f->desc.chunk);
    nf__put_u32(&w, (uint32_t)f->ctx_dim); nf__put_u32(&w, f->fitted ? NF__FLAG_FITTED : 0u);
    nf__put_u64(&w, f->desc.seed);
    for (j = 0; j < f->n_layers; ++j) {
        const nf_layer_desc *l = &f->desc.layers[j];
        nf__put_u32(&w, (uint32_t)l->kind); nf__put_u32(&w, (uint32_t)l->hidden);
        nf__put_u32(&w, (uint32_t)l->depth); nf__put_u32(&w, (uint32_t)l->activation);
        nf__put_u32(&w, (uint32_t)l->mask); nf__put_u32(&w, (uint32_t)l->parity);
        nf__put_u32(&w, l->seed); nf__put_u32(&w, (uint32_t)f->layers[j].initialized);
        nf__put_f32(&w, l->clamp);
        if (version < 3) continue;
        nf__put_u32(&w, (uint32_t)l->bins); nf__put_f32(&w, l->tail_bound);
        nf__put_f32(&w, l->min_width); nf__put_f32(&w, l->min_height); nf__put_f32(&w, l->min_derivative);
        nf__put_u32(&w, (uint32_t)l->transformer); nf__put_u32(&w, (uint32_t)l->inverse); nf__put_u32(&w, (uint32_t)l->order);
    }
    for (j = 0; j < f->dim; ++j) {
        nf_domain sc; const nf_domain *m = f->dom ? &f->dom[j] : NULL;
        if (m) { nf__scrub_domain(m, &sc); m = &sc; }
        nf__put_u32(&w, m ? (uint32_t)m->kind | (uint32_t)(m->fixed_cut ? 1 : 0) << 16 : 0);
        nf__put_f64(&w, m ? m->lo : 0); nf__put_f64(&w, m ? m->hi : 0); nf__put_f64(&w, m ? m->cut : 0);
    }
    nf__put_u64(&w, (uint64_t)f->n_params);
    for (j = 0; j < f->dim + f->ctx_dim; ++j) nf__put_real(&w, f->mean[j]);
    for (j = 0; j < f->dim + f->ctx_dim; ++j) nf__put_real(&w, f->std[j]);
    for (i = 0; i < f->n_params; ++i) nf__put_real(&w, f->params[i]);
    nf__put_u32(&w, nf_crc32(0, w.p, w.n));
    NF_ASSERT(w.n == need);
    if (written) *written = w.n;
    return NF_OK;
}

#endif
#ifndef NFLOW_NO_LOADER
/* A model file's contents, checked: its description, state flags and where its
   domains and reals are. */
typedef struct nf__model {
    nf_flow_desc d;
    uint32_t version, flags;
    int init[NF_MAX_LAYERS];          /* per layer: ActNorm initialised */
    const unsigned char *doms, *reals;
    size_t rsize, n_params, len;
    int has_dom;                      /* some parameter is bounded or periodic */
    const char *why;                  /* what a failure was about, when known */
    int where;                        /* ... in which layer (>= 0), domain (-2 - j) or -1 */
} nf__model;

/* The loader never allocates more than NF__LOAD_FACTOR times the model's bytes plus
   NF__LOAD_SLACK, whatever the file says: the stored chunk (a runtime knob) is lowered
   until the flow fits. Returns 0 when not even one row fits. */
#define NF__LOAD_FACTOR 32u
#define NF__LOAD_SLACK 65536u
static int nf__load_chunk(nf_flow_desc *d, size_t len) {
    size_t bytes, cap = len > ((size_t)-1 - NF__LOAD_SLACK) / NF__LOAD_FACTOR ? (size_t)-1 : len * NF__LOAD_FACTOR + NF__LOAD_SLACK;
    if (d->chunk < 0 || d->chunk > 256) d->chunk = 256;   /* 0 (the default) stays 0, that is 256 */
    for (;;) {
        if (nf_flow_size(d, &bytes) == NF_OK && bytes <= cap) return 1;
        if (d->chunk == 1) return 0;
        d->chunk = d->chunk ? d->chunk / 2 : 128;
    }
}

/* Checks a whole model: magic, version, size, checksum, then every count against the
   plan its description implies, and every value (finite, representable in nf_real,
   standard deviations positive). */
static nf_result nf__parse(const void *buf, size_t len, nf__model *m) {
    const unsigned char *p = (const unsigned char *)buf; uint64_t total, np64; size_t off, np, need, k, ns; nf__shape sh;
    uint32_t rb, nl, dim, cdim, j, lb; nf_result r;
    nf_flow_desc *d = &m->d;
    m->why = NULL; m->where = -1;
    if (!buf) return NF_ERR_NULL;
    if (memcmp(p, nf__magic, len < 8 ? len : 8) != 0) return NF_ERR_BAD_MAGIC;
    if (len < NF__HDR_BYTES) return NF_ERR_TRUNCATED;
    m->version = nf__get_u32(p + 8);
    if (m->version < 1 || m->version > NF__FORMAT_VERSION) return NF_ERR_VERSION;
    total = nf__get_u64(p + 16);
    if (total > (uint64_t)len) return NF_ERR_TRUNCATED;
    if (total < NF__HDR_BYTES + 12) return NF_ERR_CORRUPT;
    len = m->len = (size_t)total;   /* bytes after the model are not ours */
    if (nf_crc32(0, p, len - 4) != nf__get_u32(p + len - 4)) return NF_ERR_CHECKSUM;
    rb = nf__get_u32(p + 12);
    if (rb != 4 && rb != 8) return NF_ERR_CORRUPT;
    dim = nf__get_u32(p + 24); nl = nf__get_u32(p + 32); cdim = nf__get_u32(p + 40); m->flags = nf__get_u32(p + 44);
    if (dim < 1 || dim > NF__MAXDIM || nl > NF_MAX_LAYERS || cdim > (1u << 16)) return NF_ERR_CORRUPT;
    if (m->flags & ~(m->version >= 2 ? NF__FLAG_FITTED : 0u)) return NF_ERR_CORRUPT;
    memset(d, 0, sizeof *d);
    m->has_dom = 0;
    d->dim = (int)dim; d->base = (int)nf__get_u32(p + 28); d->n_layers = (int)nl; d->context_dim = (int)cdim;
    d->chunk = (int)(nf__get_u32(p + 36) & 0x7fffffffu); d->seed = nf__get_u64(p + 48);
    off = NF__HDR_BYTES;
    lb = m->version >= 3 ? NF__LAYER_BYTES3 : NF__LAYER_BYTES;
    /* bounded by dim <= 2^20 and nl <= NF_MAX_LAYERS: no overflow */
    if (len - 4 < off + (size_t)nl * lb + (size_t)dim * NF__DOMAIN_BYTES + 8) return NF_ERR_CORRUPT;
    for (j = 0; j < nl; ++j, off += lb) {
        nf_layer_desc *l = &d->layers[j]; uint32_t v[8]; int q;
        for (q = 0; q < 8; ++q) v[q] = nf__get_u32(p + off + 4 * q);
        for (q = 0; q < 6; ++q) if (v[q] > 0x7fffffffu) return NF_ERR_CORRUPT;
        l->kind = (int)v[0]; l->hidden = (int)v[1]; l->depth = (int)v[2]; l->activation = (int)v[3];
        l->mask = (int)v[4]; l->parity = (int)v[5]; l->seed = v[6];
        if (v[7] > 1) return NF_ERR_CORRUPT;
        m->init[j] = (int)v[7];
        l->clamp = nf__get_f32(p + off + 32);
        if (!nf__isfinite_d((double)l->clamp) || l->clamp < 0) return NF_ERR_CORRUPT;
        if (m->version >= 3) {
            float fv[4]; uint32_t iv[4];
            iv[0] = nf__get_u32(p + off + 36); iv[1] = nf__get_u32(p + off + 56); iv[2] = nf__get_u32(p + off + 60); iv[3] = nf__get_u32(p + off + 64);
            for (q = 0; q < 4; ++q) { fv[q] = nf__get_f32(p + off + 40 + 4 * q); if (!nf__isfinite_d((double)fv[q]) || fv[q] < 0) return NF_ERR_CORRUPT; }
            for (q = 0; q < 4; ++q) if (iv[q] > 0x7fffffffu) return NF_ERR_CORRUPT;
            l->bins = (int)iv[0]; l->tail_bound = fv[0]; l->min_width = fv[1]; l->min_height = fv[2]; l->min_derivative = fv[3];
            l->transformer = (int)iv[1]; l->inverse = (int)iv[2]; l->order = (int)iv[3];
        }
    }
    m->doms = p + off;
    for (j = 0; j < dim; ++j, off += NF__DOMAIN_BYTES) {
        nf_domain dm; nf__get_domain(p + off, &dm);
        if ((r = nf__domain_check(&dm, &m->why)) != NF_OK) { m->where = -2 - (int)j; return r == NF_ERR_RANGE ? r : NF_ERR_CORRUPT; }
#ifdef NFLOW_NO_DOMAINS   /* the maps are compiled out: such a model would compute wrong densities */
        if (dm.kind != NF_DOMAIN_REAL) { m->why = "a bounded or periodic parameter: this build defines NFLOW_NO_DOMAINS"; m->where = -2 - (int)j; return NF_ERR_UNSUPPORTED; }
#endif
        if (dm.kind != NF_DOMAIN_REAL) m->has_dom = 1;
    }
    if ((r = nf__plan(d, NULL, &sh, &m->why, &m->where)) != NF_OK)   /* a part this build left out, or a bad file */
        return r == NF_ERR_UNSUPPORTED ? r : NF_ERR_CORRUPT;
    m->why = NULL; m->where = -1;
    np = sh.np;
    np64 = nf__get_u64(p + off); off += 8;
    if (np64 != (uint64_t)np) return NF_ERR_CORRUPT;
    /* the reals must fill exactly what is left before the checksum */
    ns = 2 * ((size_t)dim + cdim);
    if (np > ((size_t)-1) / 8 - ns) return NF_ERR_CORRUPT;
    need = (ns + np) * rb;
    if (len - 4 - off != need) return NF_ERR_CORRUPT;
    for (k = 0; k < ns + np; ++k) {   /* finite, and finite and nonzero where zero is invalid (std) */
        double v = rb == 4 ? (double)nf__get_f32(p + off + 4 * k) : nf__get_f64(p + off + 8 * k);
        int is_std = k >= ns / 2 && k < ns;
        if (!nf__isfinite_d(v) || (is_std && !(v > 0))) return NF_ERR_CORRUPT;
        if (!nf__isfinite(NF__R(v)) || (is_std && !(NF__R(v) >= (nf_real)NF__TINY))) return NF_ERR_RANGE;   /* e.g. 1e-300 in float */
    }
    m->reals = p + off; m->rsize = rb; m->n_params = np;
    if (!nf__load_chunk(d, len)) return NF_ERR_CORRUPT;
    return NF_OK;
}

NFDEF nf_result nf_flow_load_desc(const void *buf, size_t len, nf_flow_desc *d, nf_domain *domains, size_t cap) {
    nf__model m; nf_result r; const unsigned char *dp; int j;
    if (!d) return NF_ERR_NULL;
    if ((r = nf__parse(buf, len, &m)) != NF_OK) return r;
    *d = m.d;
    if (!m.has_dom) return NF_OK;   /* all real: d->domains stays NULL */
    if (!domains || cap < (size_t)m.d.dim) return NF_ERR_ARG;   /* d->dim says how many */
    for (j = 0, dp = m.doms; j < m.d.dim; ++j, dp += NF__DOMAIN_BYTES) nf__get_domain(dp, &domains[j]);
    d->domains = domains;
    return NF_OK;
}

/* The first difference between the model's architecture and the flow's, named. */
static nf_result nf__mismatch(nf_flow *f, const char *unit, const char *field, long layer, double in_file, double in_flow) {
    nf__msgbuf mb; char *e = f->err;
    mb.s = e; mb.n = 0; mb.cap = sizeof f->err;
    nf__msg_str(&mb, "model does not match this flow: ");
    if (layer >= 0) { nf__msg_str(&mb, unit); nf__msg_str(&mb, " "); nf__msg_long(&mb, layer); nf__msg_str(&mb, " "); }
    nf__msg_str(&mb, field); nf__msg_str(&mb, " (file ");
    nf__msg_num(&mb, in_file); nf__msg_str(&mb, ", flow "); nf__msg_num(&mb, in_flow); nf__msg_str(&mb, ")");
    f->err_row = -1;
    return NF_ERR_SHAPE;
}
static nf_result nf__compare_arch(nf_flow *f, const nf__model *m, int domains) {
    const nf_flow_desc *a = &m->d, *b = &f->desc; int j; const unsigned char *dp = m->doms;
#define NF__CMP(fa, fb, name, layer) if ((fa) != (fb)) return nf__mismatch(f, "layer", name, layer, (double)(fa), (double)(fb))
#define NF__CMPD(fa, fb, name, dim) if ((fa) != (fb)) return nf__mismatch(f, "dimension", name, dim, (double)(fa), (double)(fb))
    NF__CMP(a->dim, b->dim, "dim", -1);
    NF__CMP(a->base, b->base, "base", -1);
    NF__CMP(a->context_dim, b->context_dim, "context_dim", -1);
    NF__CMP(a->n_layers, b->n_layers, "n_layers", -1);
    for (j = 0; j < a->n_layers; ++j) {
        nf_layer_desc x, y;
        nf__kinds[a->layers[j].kind].canon(&a->layers[j], &x);   /* both kinds exist: the file parsed, the flow planned */
        if (nf__kind_of(b->layers[j].kind)) nf__kinds[b->layers[j].kind].canon(&b->layers[j], &y); else y = b->layers[j];
        NF__CMP(x.kind, y.kind, "kind", j);
        NF__CMP(x.hidden, y.hidden, "hidden", j);
        NF__CMP(x.depth, y.depth, "depth", j);
        NF__CMP(x.activation, y.activation, "activation", j);
        NF__CMP(x.clamp, y.clamp, "clamp", j);
        NF__CMP(x.mask, y.mask, "mask", j);
        NF__CMP(x.parity, y.parity, "parity", j);
        NF__CMP(x.seed, y.seed, "seed", j);
        NF__CMP(x.bins, y.bins, "bins", j);
        NF__CMP(x.tail_bound, y.tail_bound, "tail_bound", j);
        NF__CMP(x.min_width, y.min_width, "min_width", j);
        NF__CMP(x.min_height, y.min_height, "min_height", j);
        NF__CMP(x.min_derivative, y.min_derivative, "min_derivative", j);
        NF__CMP(x.transformer, y.transformer, "transformer", j);
        NF__CMP(x.inverse, y.inverse, "inverse", j);
        NF__CMP(x.order, y.order, "order", j);
    }
    for (j = 0; domains && j < f->dim; ++j, dp += NF__DOMAIN_BYTES) {   /* the cut is state, unless fixed */
        nf_domain x, y; nf__get_domain(dp, &x);
        y = f->dom ? f->dom[j] : x;
        if (!f->dom) { y.kind = NF_DOMAIN_REAL; }
        NF__CMPD(x.kind, y.kind, "domain kind", j);
        if (x.kind == NF_DOMAIN_REAL) continue;
        NF__CMPD(x.lo, y.lo, "domain lo", j);
        if (x.kind != NF_DOMAIN_LOWER) NF__CMPD(x.hi, y.hi, "domain hi", j);
        if (x.kind == NF_DOMAIN_PERIODIC) {
            NF__CMPD(x.fixed_cut, y.fixed_cut, "fixed_cut", j);
            if (x.fixed_cut) NF__CMPD(x.cut, y.cut, "cut", j);
        }
    }
#undef NF__CMP
#undef NF__CMPD
    return NF_OK;
}

/* domains = 0: the flow was made from the file's own description (nf_flow_load), whose
   domain table lives in the file and is copied in here */
static nf_result nf__load_into(nf_flow *f, const void *buf, size_t len, int domains) {
    nf__model m; const unsigned char *q, *dm; size_t k; int j, C, D; nf_result r;
    if (!f) return NF_ERR_NULL;
    f->err[0] = 0; f->err_row = -1;
    if (f->readonly) return nf__fail(f, NF_ERR_READONLY, "constant flow", -1);
    if ((r = nf__parse(buf, len, &m)) != NF_OK) {
        nf__why_msg(r, m.why, m.where, &m.d, f->err, sizeof f->err);
        if (!m.why) nf__fail(f, r, "loading model", -1);
        return r;
    }
    if ((r = nf__compare_arch(f, &m, domains)) != NF_OK) return r;
    q = m.reals; C = f->ctx_dim; D = f->dim;
#define NF__RD(i) (m.rsize == 4 ? (nf_real)nf__get_f32(q + 4 * (i)) : (nf_real)nf__get_f64(q + 8 * (i)))
    for (j = 0; j < D + C; ++j) { f->mean[j] = NF__RD(j); f->std[j] = NF__RD(D + C + j); }
    for (k = 0; k < m.n_params; ++k) f->params[k] = NF__RD(2 * ((size_t)D + (size_t)C) + k);
#undef NF__RD
    for (j = 0; j < f->n_layers; ++j) {
        const nf__kind *kd = nf__kind_of(f->layers[j].kind);
        f->layers[j].initialized = m.init[j];
        if (kd->fixup) kd->fixup(&f->layers[j], f->params + f->layers[j].poff);   /* masked weights are not part of the model */
    }
    for (f->has_dom = 0, j = 0, dm = m.doms; j < D; ++j, dm += NF__DOMAIN_BYTES) {
        nf__get_domain(dm, &f->dom[j]);
        f->has_dom |= f->dom[j].kind != NF_DOMAIN_REAL;
    }
    if (m.version >= 2) f->fitted = (m.flags & NF__FLAG_FITTED) != 0;
    else for (f->fitted = 0, j = 0; j < D + C; ++j) f->fitted |= f->mean[j] != 0 || f->std[j] != 1;   /* version 1 had no flag */
    return NF_OK;
}
NFDEF nf_result nf_flow_load_into(nf_flow *f, const void *buf, size_t len) { return nf__load_into(f, buf, len, 1); }

NFDEF nf_result nf_flow_load(nf_flow **out, const void *buf, size_t len) {
    nf__model m; nf_result r;
    if (!out) return NF_ERR_NULL;
    *out = NULL;
    if ((r = nf__parse(buf, len, &m)) != NF_OK) return r;
    if ((r = nf_flow_create(out, &m.d)) != NF_OK) return r;   /* domains: copied in from the file */
    if ((r = nf__load_into(*out, buf, len, 0)) != NF_OK) { nf_flow_destroy(*out); *out = NULL; }
    return r;
}
NFDEF nf_result nf_flow_load_check(const void *buf, size_t len, char *msg, size_t cap) {
    nf__model m; nf_result r = nf__parse(buf, len, &m);
    nf__why_msg(r, m.why, m.where, r == NF_OK || m.where >= 0 ? &m.d : NULL, msg, cap);
    return r;
}
#endif /* NFLOW_NO_LOADER */

/* ---- numeric CSV ---- */
/* "line L, column C: what" into msg */
static nf_result nf__csv_fail(nf_result r, size_t line, size_t col, const char *what, const char *cell, char *msg, size_t cap) {
    nf__msgbuf m;
    if (!msg || !cap) return r;
    m.s = msg; m.n = 0; m.cap = cap; msg[0] = 0;
    nf__msg_str(&m, nf_result_string(r));
    if (line) { nf__msg_str(&m, ": line "); nf__msg_long(&m, (long)line); }
    if (col) { nf__msg_str(&m, ", column "); nf__msg_long(&m, (long)col); }
    nf__msg_str(&m, ": "); nf__msg_str(&m, what);
    if (cell) { nf__msg_str(&m, " (\""); nf__msg_str(&m, cell); nf__msg_str(&m, "\")"); }
    return r;
}
/* one cell [a, b) as a number: 0 ok, 1 not a number (or empty, or too long), 2 not finite
   or beyond nf_real; cell gets its text */
static int nf__csv_cell(const char *a, const char *b, double *v, char cell[64]) {
    size_t n; char *end;
    while (a < b && (*a == ' ' || *a == '\t')) ++a;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t')) --b;
    n = (size_t)(b - a);
    memcpy(cell, a, n < 63 ? n : 63); cell[n < 63 ? n : 63] = 0;
    if (n == 0 || n > 63) return 1;
    *v = strtod(cell, &end);
    if (end != cell + n) return 1;
    if (!nf__isfinite_d(*v) || !nf__isfinite(NF__R(*v))) return 2;
    return 0;
}
/* pass 0 counts and checks; pass 1 fills out */
static nf_result nf__csv_pass(const char *t, size_t len, int pass, nf_real *out, size_t *rows, int *cols, char *msg, size_t cap) {
    size_t pos = 0, line = 0, nr = 0; long nc = -1; int first = 1; char cell[64];
    while (pos < len) {
        size_t e = pos, c; const char *a, *p, *b; long k = 0; int bad = 0;
        while (e < len && t[e] != '\n') ++e;
        ++line;
        a = t + pos; b = t + e;
        pos = e + 1;
        if (b > a && b[-1] == '\r') --b;
        for (p = a; p < b && (*p == ' ' || *p == '\t'); ++p) {}
        if (p == b || *p == '#') continue;
        if (first) {   /* a header: some cell of the first row is not a number */
            const char *q = a;
            first = 0;
            for (;;) {
                const char *r = q; double v;
                while (r < b && *r != ',') ++r;
                if (nf__csv_cell(q, r, &v, cell) == 1) { bad = 1; break; }
                if (r == b) break;
                q = r + 1;
            }
            if (bad) continue;
        }
        for (c = 1; ; ++c) {
            const char *r = a; double v; int st;
            while (r < b && *r != ',') ++r;
            st = nf__csv_cell(a, r, &v, cell);
            if (st == 1) return nf__csv_fail(NF_ERR_ARG, line, c, cell[0] ? "not a number" : "an empty cell", cell[0] ? cell : NULL, msg, cap);
            if (st == 2) return nf__csv_fail(NF_ERR_NONFINITE, line, c, sizeof(nf_real) == 4 ? "not finite, or beyond float" : "not finite", cell, msg, cap);
            if (pass) out[nr * (size_t)nc + (size_t)k] = NF__R(v);
            ++k;
            if (r == b) break;
            a = r + 1;
        }
        if (nc < 0) {
            if (k > (1L << 20)) return nf__csv_fail(NF_ERR_SHAPE, line, 0, "more than 2^20 columns", NULL, msg, cap);
            nc = k;
        } else if (k != nc) {
            nf__msgbuf m;
            nf__csv_fail(NF_ERR_SHAPE, line, 0, "", NULL, msg, cap);
            if (msg && cap) {
                m.s = msg; m.n = strlen(msg); m.cap = cap;
                nf__msg_long(&m, k); nf__msg_str(&m, " cells where the first row has "); nf__msg_long(&m, nc);
            }
            return NF_ERR_SHAPE;
        }
        ++nr;
    }
    if (nr == 0) return nf__csv_fail(NF_ERR_ARG, 0, 0, "no rows of numbers", NULL, msg, cap);
    *rows = nr; *cols = (int)nc;
    return NF_OK;
}
NFDEF nf_result nf_csv_parse(const char *text, size_t len, nf_real **data, size_t *rows, int *cols, char *msg, size_t cap) {
    size_t nr = 0, bytes; int nc = 0; nf_result r; nf_real *out;
    if (msg && cap) msg[0] = 0;
    if (!data || !rows || !cols) return nf__csv_fail(NF_ERR_NULL, 0, 0, "data, rows or cols is NULL", NULL, msg, cap);
    *data = NULL; *rows = 0; *cols = 0;
    if (!text) return nf__csv_fail(NF_ERR_NULL, 0, 0, "text is NULL", NULL, msg, cap);
    if ((r = nf__csv_pass(text, len, 0, NULL, &nr, &nc, msg, cap)) != NF_OK) return r;
    if (!nf__mul(nr, (size_t)nc, &bytes) || !nf__mul(bytes, sizeof(nf_real), &bytes)) return nf__csv_fail(NF_ERR_OVERFLOW, 0, 0, "rows x cols overflows", NULL, msg, cap);
    out = (nf_real *)NF_MALLOC(bytes, NULL);
    if (!out) return nf__csv_fail(NF_ERR_NOMEM, 0, 0, "the data array", NULL, msg, cap);
    nf__csv_pass(text, len, 1, out, &nr, &nc, NULL, 0);
    *data = out; *rows = nr; *cols = nc;
    return NF_OK;
}
NFDEF void nf_csv_free(nf_real *data) { if (data) NF_FREE(data, NULL); }
#ifndef NFLOW_NO_STDIO
NFDEF nf_result nf_csv_read(const char *path, nf_real **data, size_t *rows, int *cols, char *msg, size_t cap) {
    FILE *fp; char *buf; long sz; size_t got; nf_result r;
    if (msg && cap) msg[0] = 0;
    if (data) *data = NULL;
    if (!path) return nf__csv_fail(NF_ERR_NULL, 0, 0, "path is NULL", NULL, msg, cap);
    fp = fopen(path, "rb");
    if (!fp) return nf__csv_fail(NF_ERR_IO, 0, 0, "cannot open", path, msg, cap);
    if (fseek(fp, 0, SEEK_END) != 0 || (sz = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0) { fclose(fp); return nf__csv_fail(NF_ERR_IO, 0, 0, "cannot size", path, msg, cap); }
    buf = (char *)NF_MALLOC((size_t)sz + 1, NULL);
    if (!buf) { fclose(fp); return nf__csv_fail(NF_ERR_NOMEM, 0, 0, "the file's bytes", NULL, msg, cap); }
    got = fread(buf, 1, (size_t)sz, fp);
    fclose(fp);
    if (got != (size_t)sz) { NF_FREE(buf, NULL); return nf__csv_fail(NF_ERR_IO, 0, 0, "short read", path, msg, cap); }
    r = nf_csv_parse(buf, got, data, rows, cols, msg, cap);
    NF_FREE(buf, NULL);
    return r;
}
#endif

#ifndef NFLOW_NO_STDIO
#ifndef NFLOW_NO_TRAINING   /* development-side: not in inference-only builds */
NFDEF nf_result nf_flow_save_file(const nf_flow *f, FILE *fp) {
    size_t n, wr; void *buf; nf_result r;
    if (!f || !fp) return NF_ERR_NULL;
    if ((r = nf_flow_save_size(f, &n)) != NF_OK) return r;
    buf = NF_MALLOC(n, NULL);
    if (!buf) return NF_ERR_NOMEM;
    r = nf_flow_save(f, buf, n, &wr);
    if (r == NF_OK && fwrite(buf, 1, wr, fp) != wr) r = NF_ERR_IO;
    NF_FREE(buf, NULL);
    return r;
}
#endif
#ifndef NFLOW_NO_LOADER
NFDEF nf_result nf_flow_load_file(nf_flow **out, FILE *fp) {
    size_t cap = 1 << 16, n = 0, got; unsigned char *buf, *nb; nf_result r;
    if (!out) return NF_ERR_NULL;
    *out = NULL;
    if (!fp) return NF_ERR_NULL;
    buf = (unsigned char *)NF_MALLOC(cap, NULL);
    if (!buf) return NF_ERR_NOMEM;
    while ((got = fread(buf + n, 1, cap - n, fp)) > 0) {
        n += got;
        if (n == cap) {
            if (cap >= ((size_t)1 << 30)) { NF_FREE(buf, NULL); return NF_ERR_ARG; }
            nb = (unsigned char *)NF_REALLOC(buf, cap * 2, NULL);
            if (!nb) { NF_FREE(buf, NULL); return NF_ERR_NOMEM; }
            buf = nb; cap *= 2;
        }
    }
    r = ferror(fp) ? NF_ERR_IO : nf_flow_load(out, buf, n);
    NF_FREE(buf, NULL);
    return r;
}
#endif

#ifndef NFLOW_NO_TRAINING   /* development-side: not in inference-only builds */
static void nf__put_real_c(FILE *fp, nf_real v) { fprintf(fp, "%.17g", (double)v); }

NFDEF nf_result nf_flow_export_c(const nf_flow *f, const char *name, int chunk, FILE *c, FILE *h) {
    const nf_flow_desc *d; size_t i, ws, n_ints; nf_flow_desc dd; int j; char up[64]; nf_result r;
    if (!f || !name || !c || !h) return NF_ERR_NULL;
    for (j = 0; name[j]; ++j) {   /* a C identifier of at most 63 characters */
        char ch = name[j];
        if (j >= 63 || !((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || (j > 0 && ch >= '0' && ch <= '9')))
            return NF_ERR_ARG;
        up[j] = (char)(ch >= 'a' && ch <= 'z' ? ch - 32 : ch);
    }
    if (j == 0) return NF_ERR_ARG;
    up[j] = 0;
    if (chunk < 1 || chunk > (1 << 20)) return NF_ERR_ARG;
    d = &f->desc; dd = *d; dd.chunk = chunk;
    {   nf__shape sh;
        const char *why; int where;
        if ((r = nf__plan(&dd, NULL, &sh, &why, &where)) != NF_OK) return r;
        if (!nf__ws_reals(dd.dim, dd.context_dim, chunk, &sh, &ws)) return NF_ERR_OVERFLOW;
        n_ints = sh.ni; }
    fprintf(h, "/* %s.h: a trained nflow flow as constant data (generated by nf_flow_export_c). */\n", name);
    fprintf(h, "#ifndef %s_H\n#define %s_H\n", up, up);
    {   /* the feature switches this flow allows, for a firmware that runs only this flow */
        static const char *const kind_sw[NF_LAYER_KIND_COUNT] = {0, 0, 0, 0, 0, "NFLOW_NO_ACTNORM", "NFLOW_NO_LU", "NFLOW_NO_MONOTONE", "NFLOW_NO_SPLINE", "NFLOW_NO_AUTOREGRESSIVE"};
        int used[NF_LAYER_KIND_COUNT] = {0}, spline = 0, k;
        for (j = 0; j < d->n_layers; ++j) {
            used[d->layers[j].kind] = 1;
            if (d->layers[j].kind == NF_LAYER_SPLINE_COUPLING || (d->layers[j].kind == NF_LAYER_AUTOREGRESSIVE && d->layers[j].transformer == NF_TRANSFORM_SPLINE)) spline = 1;
        }
        fprintf(h, "/* Define %s_ONLY before including this header in the file that compiles nflow's\n"
                   "   implementation (NFLOW_IMPLEMENTATION) to compile in only what this flow uses. */\n#ifdef %s_ONLY\n", up, up);
#define NF__SW(s) fprintf(h, "#ifndef %s\n#define %s\n#endif\n", s, s)
        NF__SW("NFLOW_NO_TRAINING"); NF__SW("NFLOW_NO_LOADER"); NF__SW("NFLOW_NO_IMPORTANCE"); NF__SW("NFLOW_NO_THREADS");
        for (k = NF_LAYER_ACTNORM; k < NF_LAYER_KIND_COUNT; ++k)
            if (kind_sw[k] && !used[k] && !(k == NF_LAYER_SPLINE_COUPLING && spline)) NF__SW(kind_sw[k]);
        if (!f->has_dom) NF__SW("NFLOW_NO_DOMAINS");
        if (!f->ctx_dim) NF__SW("NFLOW_NO_CONTEXT");
        if (d->base == NF_BASE_STD_NORMAL) NF__SW("NFLOW_NO_DIAG_BASE");
#undef NF__SW
        {   unsigned acts = 0;
            for (j = 0; j < f->n_layers; ++j) if (f->layers[j].act) acts |= 1u << f->layers[j].act;
            fprintf(h, "#ifndef NFLOW_ACTIVATIONS\n#define NFLOW_ACTIVATIONS 0x%xu   /* the conditioners' activations */\n#endif\n", acts ? acts : 2u);
        }
        fprintf(h, "#endif\n#include \"nflow.h\"\n");
    }
    fprintf(h, "#define %s_DIM %d\n#define %s_NUM_PARAMS %lu\n", up, f->dim, up, (unsigned long)f->n_params);
    fprintf(h, "/* RAM for nf_flow_init_const, exact for the target it is compiled for */\n");
    fprintf(h, "#define %s_WORKSPACE_INTS %lu\n#define %s_WORKSPACE_REALS %lu\n", up, (unsigned long)n_ints, up, (unsigned long)ws);
    fprintf(h, "#define %s_WORKSPACE_BYTES NF_FLOW_CONST_BYTES(%s_WORKSPACE_INTS, %s_WORKSPACE_REALS)\n", up, up, up);
    fprintf(h, "#if NF_MAX_LAYERS < %d\n#error \"%s needs NF_MAX_LAYERS >= %d\"\n#endif\n", f->n_layers, name, f->n_layers);
    fprintf(h, "/* written as positional initializers of nflow %s's structs: another layout must not compile */\n", NFLOW_VERSION_STRING);
    fprintf(h, "#if !defined(NF_DESC_LAYOUT) || NF_DESC_LAYOUT != %d\n#error \"%s was exported by nflow %s (description layout %d): export it again with this nflow.h\"\n#endif\n",
            NF_DESC_LAYOUT, name, NFLOW_VERSION_STRING, NF_DESC_LAYOUT);
    fprintf(h, "/* RAM: sizeof(nf_flow) grows with NF_MAX_LAYERS, 168 bytes a layer on Cortex-M (1.6 KB at 8, 10.8 KB at\n   the default 64): define NF_MAX_LAYERS %d (the least this flow needs) for every file that includes nflow.h */\n", f->n_layers);
    fprintf(h, "#ifdef __cplusplus\nextern \"C\" {\n#endif\n");
    fprintf(h, "extern const nf_flow_desc %s_desc;\nextern const nf_real %s_params[%lu];\n", name, name, (unsigned long)(f->n_params ? f->n_params : 1));
    fprintf(h, "extern const nf_real %s_mean[%d];\nextern const nf_real %s_std[%d];\n", name, f->dim + f->ctx_dim, name, f->dim + f->ctx_dim);
    fprintf(h, "#define %s_CONTEXT_DIM %d\n", up, f->ctx_dim);
    fprintf(h, "#ifdef __cplusplus\n}\n#endif\n");
    fprintf(h, "/* nf_flow *f; static unsigned char mem[%s_WORKSPACE_BYTES]; %s_INIT(&f, mem, sizeof mem); */\n", up, up);
    fprintf(h, "#define %s_INIT(f, mem, bytes) nf_flow_init_const((f), &%s_desc, %s_params, %s_NUM_PARAMS, %s_mean, %s_std, (mem), (bytes))\n",
            up, name, name, up, name, name);
    fprintf(h, "#endif\n");

    fprintf(c, "/* %s.c: generated by nf_flow_export_c; weights are exact (%%.17g of the trained values). */\n", name);
    fprintf(c, "#include \"%s.h\"\n", name);
    if (f->has_dom) {
        fprintf(c, "static const nf_domain %s_domains[%d] = {\n", name, f->dim);
        for (j = 0; j < f->dim; ++j) {
            nf_domain m; nf__scrub_domain(&f->dom[j], &m);
            fprintf(c, "    {%d, %.17g, %.17g, %.17g, %d},\n", m.kind, m.lo, m.hi, m.cut, m.fixed_cut);
        }
        fprintf(c, "};\n");
    }
    fprintf(c, "const nf_flow_desc %s_desc = {\n    %d, %d, %d, %lluULL, %d, {\n", name, d->dim, d->base, d->n_layers, (unsigned long long)d->seed, chunk);
    for (j = 0; j < d->n_layers; ++j) {
        const nf_layer_desc *l = &d->layers[j];
        fprintf(c, "        {%d, %d, %d, %d, %.9ef, %d, %d, %luu, %d, %.9ef, %.9ef, %.9ef, %.9ef, %d, %d, %d},\n",
                l->kind, l->hidden, l->depth, l->activation, (double)l->clamp, l->mask, l->parity, (unsigned long)l->seed,
                l->bins, (double)l->tail_bound, (double)l->min_width, (double)l->min_height, (double)l->min_derivative,
                l->transformer, l->inverse, l->order);
    }
    fprintf(c, "    },\n    %d, ", f->ctx_dim);
    if (f->has_dom) fprintf(c, "%s_domains\n};\n", name); else fprintf(c, "0\n};\n");
    fprintf(c, "const nf_real %s_params[%lu] = {", name, (unsigned long)(f->n_params ? f->n_params : 1));
    for (i = 0; i < f->n_params; ++i) { fputs(i == 0 ? "\n    " : i % 6 ? ", " : ",\n    ", c); nf__put_real_c(c, f->params[i]); }
    if (!f->n_params) fputs("0", c);
    fprintf(c, "\n};\nconst nf_real %s_mean[%d] = {", name, f->dim + f->ctx_dim);
    for (j = 0; j < f->dim + f->ctx_dim; ++j) { fputs(j ? ", " : "", c); nf__put_real_c(c, f->mean[j]); }
    fprintf(c, "};\nconst nf_real %s_std[%d] = {", name, f->dim + f->ctx_dim);
    for (j = 0; j < f->dim + f->ctx_dim; ++j) { fputs(j ? ", " : "", c); nf__put_real_c(c, f->std[j]); }
    fprintf(c, "};\n");
    return ferror(c) || ferror(h) ? NF_ERR_IO : NF_OK;
}
#endif
#endif /* NFLOW_NO_STDIO */

#ifndef NFLOW_NO_IMPORTANCE
/* heap sort of idx[0..n) by key[idx] ascending */
static void nf__sift(size_t *idx, const double *key, size_t a, size_t n) {
    for (;;) {
        size_t c = 2 * a + 1, t;
        if (c >= n) return;
        if (c + 1 < n && key[idx[c + 1]] > key[idx[c]]) ++c;
        if (!(key[idx[c]] > key[idx[a]])) return;
        t = idx[a]; idx[a] = idx[c]; idx[c] = t; a = c;
    }
}
static void nf__argsort(size_t *idx, const double *key, size_t n) {
    size_t i, t;
    for (i = 0; i < n; ++i) idx[i] = i;
    for (i = n / 2; i-- > 0;) nf__sift(idx, key, i, n);
    for (i = n; i-- > 1;) { t = idx[0]; idx[0] = idx[i]; idx[i] = t; nf__sift(idx, key, 0, i); }
}

/* ---- Pareto-smoothed importance sampling (Vehtari, Simpson, Gelman, Yao, Gabry) ---- */
/* Generalized Pareto fit to exceedances x[0..n) (ascending, > 0) by Zhang and Stephens
   (2009): a posterior-weighted average over a grid of theta, with the weakly
   informative prior that shrinks k towards 0.5 for small tails. */
static void nf__gpd_fit(const double *x, size_t n, double *k_out, double *sigma_out) {
    int m = 30 + (int)sqrt((double)n), j; size_t i;
    double xstar = x[(size_t)((double)n / 4 + 0.5) > 0 ? (size_t)((double)n / 4 + 0.5) - 1 : 0];
    double lmax = -HUGE_VAL, wsum = 0, th_hat = 0, k;
    double th[64 + 1024], l[64 + 1024];   /* m <= 30 + sqrt(n): n below 1e6 fits */
    if (m > 64 + 1024) m = 64 + 1024;
    for (j = 0; j < m; ++j) {
        double t = 1 / x[n - 1] + (1 - sqrt((double)m / ((double)j + 0.5))) / (3 * xstar), kk = 0;
        for (i = 0; i < n; ++i) kk += log1p(-t * x[i]);
        kk /= (double)n;
        th[j] = t;
        l[j] = (double)n * (log(-t / kk) - kk - 1);
        if (!nf__isfinite_d(l[j])) l[j] = -HUGE_VAL;
        if (l[j] > lmax) lmax = l[j];
    }
    for (j = 0; j < m; ++j) { double w = exp(l[j] - lmax); wsum += w; th_hat += w * th[j]; }
    th_hat /= wsum;
    for (k = 0, i = 0; i < n; ++i) k += log1p(-th_hat * x[i]);
    k /= (double)n;
    *sigma_out = -k / th_hat;
    *k_out = (k * (double)n + 10 * 0.5) / ((double)n + 10);   /* the prior: 10 pseudo-points at 0.5 */
}
/* PSIS on n log weights (in place: the M largest replaced by the fitted tail's expected
   order statistics, capped at the largest raw weight); *khat is the tail's shape. A log
   weight of -inf (zero weight) stays so. Scratch: idx (n), x (M). */
static void nf__psis(double *lw, size_t n, double *khat, size_t *idx, double *x) {
    size_t M, i, nz = 0, first; double mx, cut, k, sigma;
    *khat = -HUGE_VAL;
    nf__argsort(idx, lw, n);
    while (nz < n && !(lw[idx[nz]] > -HUGE_VAL)) ++nz;   /* zero weights sort first */
    if (n - nz < 10) { *khat = HUGE_VAL; return; }        /* too few to say anything */
    M = (size_t)ceil(fmin(0.2 * (double)(n - nz), 3 * sqrt((double)(n - nz))));
    if (M < 5) M = 5;
    first = n - M;                                        /* the tail: idx[first .. n) */
    mx = lw[idx[n - 1]]; cut = lw[idx[first - 1]];
    for (i = 0; i < M; ++i) x[i] = exp(lw[idx[first + i]] - mx) - exp(cut - mx);
    if (!(mx - cut > 1e-4)) { *khat = 0; return; }   /* a flat tail (weights equal up to rounding): nothing to smooth */
    for (i = 0; i < M; ++i) if (x[i] <= 0) x[i] = 1e-300;
    nf__gpd_fit(x, M, &k, &sigma);
    *khat = k;
    if (!nf__isfinite_d(k)) { *khat = HUGE_VAL; return; }
    for (i = 0; i < M; ++i) {   /* quantiles at (i + 1/2) / M, ascending like the tail */
        double p = ((double)i + 0.5) / (double)M, q;
        q = fabs(k) < 1e-9 ? -sigma * log1p(-p) : sigma * expm1(-k * log1p(-p)) / k;
        q = log(q + exp(cut - mx)) + mx;
        lw[idx[first + i]] = q < mx ? q : mx;
    }
}
NFDEF nf_result nf_psis(double *log_w, size_t n, double *khat) {
    size_t *idx; double *x; size_t bytes;
    if (!log_w || !khat) return NF_ERR_NULL;
    if (n < 2) return NF_ERR_ARG;
    if (!nf__mul(n, sizeof(size_t) + sizeof(double), &bytes)) return NF_ERR_OVERFLOW;
    idx = (size_t *)NF_MALLOC(bytes, NULL);
    if (!idx) return NF_ERR_NOMEM;
    x = (double *)(idx + n);
    nf__psis(log_w, n, khat, idx, x);
    NF_FREE(idx, NULL);
    return NF_OK;
}

NFDEF nf_result nf_flow_importance(nf_flow *f, nf_rng *rng, size_t n, nf_log_density_fn target, void *user, nf_is_report *rep) {
    double *lw, *sm, mx = 0, s1 = 0, s2 = 0, var = 0, mean; size_t i, k, bytes, nz = 0, *idx; nf_result r = NF_OK;
    nf_real *x, *lq, *lp; int D, ok = 1;
    if (!f) return NF_ERR_NULL;
    if (!rng || !target || !rep) return nf__fail(f, NF_ERR_NULL, "rng, target or report is NULL", -1);
    if (n < 2) return nf__fail(f, NF_ERR_ARG, "need at least 2 samples", -1);
    if (f->ctx_dim) return nf__fail(f, NF_ERR_ARG, "importance sampling needs a flow without context", -1);
    D = f->dim;
    /* log weights, their smoothed copy, sort indices; a chunk of 64 draws */
    bytes = nf__madd(nf__madd(0, n, 3 * sizeof(double) + sizeof(size_t), &ok), 64, ((size_t)D + 2) * sizeof(nf_real), &ok);
    if (!ok) return nf__fail(f, NF_ERR_OVERFLOW, "n samples' weights", -1);
    lw = (double *)NF_MALLOC(bytes, NULL);
    if (!lw) return nf__fail(f, NF_ERR_NOMEM, "importance weights", -1);
    sm = lw + n; idx = (size_t *)(sm + 2 * n); x = (nf_real *)(idx + n); lq = x + 64 * (size_t)D; lp = lq + 64;
    for (i = 0; i < n && r == NF_OK; i += 64) {   /* log w = log p~(x) - log q(x), x ~ q */
        size_t R = n - i < 64 ? n - i : 64;
        if ((r = nf_flow_sample(f, rng, R, x, lq)) != NF_OK) break;
        if (target(x, R, D, lp, NULL, user) != 0) { r = nf__fail(f, NF_ERR_ARG, "target callback failed", (long)i); break; }
        for (k = 0; k < R; ++k) {
            double a = (double)lp[k], v = a - (double)lq[k];
            if (nf__is_neg_inf(a)) { lw[i + k] = -HUGE_VAL; continue; }   /* p~ = 0 here: weight 0 */
            if (!nf__isfinite_d(v)) { r = nf__fail(f, NF_ERR_NONFINITE, "non-finite log weight", (long)(i + k)); break; }
            if (nz == 0 || v > mx) mx = v;
            lw[i + k] = v; ++nz;
        }
    }
    if (r == NF_OK && nz == 0) r = nf__fail(f, NF_ERR_ARG, "the target density is zero at every sample", -1);
    if (r == NF_OK) {   /* weights w = e^(log w - mx); two passes in double for the variance */
        for (i = 0; i < n; ++i) if (!nf__is_neg_inf(lw[i])) { double w = exp(lw[i] - mx); s1 += w; s2 += w * w; }
        mean = s1 / (double)n;
        for (i = 0; i < n; ++i) { double w = nf__is_neg_inf(lw[i]) ? 0 : exp(lw[i] - mx); var += (w - mean) * (w - mean); }
        var /= (double)n;
        rep->n = n;
        rep->log_z = mx + log(mean);
        rep->ess = s1 * s1 / s2;
        rep->ess_fraction = rep->ess / (double)n;
        rep->log_z_se = sqrt(var / (double)n) / mean;   /* delta method: se(Z) / Z */
        memcpy(sm, lw, n * sizeof(double));
        nf__psis(sm, n, &rep->khat, idx, sm + n);
    }
    NF_FREE(lw, NULL);
    return r;
}
#endif /* NFLOW_NO_IMPORTANCE */

#ifndef NFLOW_NO_TRAINING
/* ---- Adam(W) ---------------------------------------------------------------------- */
NFDEF void nf_adam_config_default(nf_adam_config *c) {
    if (!c) return;
    memset(c, 0, sizeof *c);
    c->lr = 1e-3; c->beta1 = 0.9; c->beta2 = 0.999; c->eps = 1e-8;
    c->schedule = NF_SCHED_CONSTANT; c->min_lr_frac = 0; c->step_gamma = 0.5;
}
/* NULL if the settings are usable, else what is wrong (every such setting would turn the
   parameters into NaN or make the update meaningless) */
static const char *nf__adam_check(const nf_adam_config *c) {
    if (!(nf__isfinite_d(c->lr) && c->lr >= 0)) return "adam: lr must be finite and >= 0";
    if (!(c->beta1 >= 0 && c->beta1 < 1) || !(c->beta2 >= 0 && c->beta2 < 1)) return "adam: beta1 and beta2 must be in [0, 1)";
    if (!(nf__isfinite_d(c->eps) && c->eps >= NF__TINY)) return sizeof(nf_real) == 4
        ? "adam: eps must be finite and >= 1.2e-38 (float's smallest normal: a smaller one rounds to 0)"
        : "adam: eps must be finite and >= 2.2e-308 (double's smallest normal)";
    if (!(nf__isfinite_d(c->weight_decay) && c->weight_decay >= 0)) return "adam: weight_decay must be finite and >= 0";
    if (!(nf__isfinite_d(c->clip_norm) && c->clip_norm >= 0)) return "adam: clip_norm must be finite and >= 0";
    if (c->schedule < NF_SCHED_CONSTANT || c->schedule > NF_SCHED_STEP || c->total_steps < 0 || c->step_every < 0)
        return "adam: unknown schedule, or a negative step count";
    if (!(c->min_lr_frac >= 0 && c->min_lr_frac <= 1) || !(nf__isfinite_d(c->step_gamma) && c->step_gamma >= 0))
        return "adam: min_lr_frac must be in [0, 1], step_gamma finite and >= 0";
    return NULL;
}
NFDEF double nf_adam_lr(const nf_adam_config *c, long step) {
    if (c->schedule == NF_SCHED_COSINE && c->total_steps > 0) {
        double x = step >= c->total_steps ? 1.0 : (double)step / (double)c->total_steps;
        return c->lr * (c->min_lr_frac + (1 - c->min_lr_frac) * 0.5 * (1 + cos(3.14159265358979323846 * x)));
    }
    if (c->schedule == NF_SCHED_STEP && c->step_every > 0)
        return c->lr * pow(c->step_gamma, (double)(step / c->step_every));
    return c->lr;
}
/* m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  p -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps),
   after the decoupled decay p *= 1 - lr wd (Loshchilov & Hutter's AdamW). */
typedef struct nf__adamk { nf_real b1, b2, eps, c1, c2, decay, step; } nf__adamk;
static void nf__adam_coefs(const nf_adam_config *c, long t, nf__adamk *k) {
    double lr = nf_adam_lr(c, t - 1);
    k->b1 = (nf_real)c->beta1; k->b2 = (nf_real)c->beta2; k->eps = (nf_real)c->eps;
    k->c1 = (nf_real)(1.0 / (1.0 - pow(c->beta1, (double)t)));
    k->c2 = (nf_real)(1.0 / (1.0 - pow(c->beta2, (double)t)));
    k->decay = (nf_real)(1.0 - lr * c->weight_decay); k->step = (nf_real)lr;
}
/* One pass over every parameter: moments and update fused, in the matrix kernel's vectors
   where the CPU has a vector square root (x86, ARM64). sqrtf itself is never vectorised
   by gcc or clang while it may set errno, and the scalar loop ran at a few ns a parameter.
   Every operation is the scalar one in the same order (IEEE sqrt and division are
   correctly rounded in either form), so the vector and scalar paths give the same bits. */
#if defined(NF__GN_VB) && defined(NF__LIBM) && (defined(__SSE2__) || defined(__aarch64__)) && !defined(NFLOW_NO_VECTOR_EXT)
#define NF__ADAM_VEC 1
#if defined(__aarch64__)
#include <arm_neon.h>
#else
#include <immintrin.h>
#endif
static nf__gv nf__vsqrt(nf__gv x) {
#if defined(__aarch64__) && defined(NFLOW_DOUBLE)
    return (nf__gv)vsqrtq_f64((float64x2_t)x);
#elif defined(__aarch64__)
    return (nf__gv)vsqrtq_f32((float32x4_t)x);
#elif NF__GN_VB == 64 && defined(NFLOW_DOUBLE)
    return (nf__gv)_mm512_maskz_sqrt_pd((__mmask8)0xff, (__m512d)x);   /* maskz: g++ 12 warns inside _mm512_sqrt_pd */
#elif NF__GN_VB == 64
    return (nf__gv)_mm512_maskz_sqrt_ps((__mmask16)0xffff, (__m512)x);
#elif NF__GN_VB == 32 && defined(NFLOW_DOUBLE)
    return (nf__gv)_mm256_sqrt_pd((__m256d)x);
#elif NF__GN_VB == 32
    return (nf__gv)_mm256_sqrt_ps((__m256)x);
#elif defined(NFLOW_DOUBLE)
    return (nf__gv)_mm_sqrt_pd((__m128d)x);
#else
    return (nf__gv)_mm_sqrt_ps((__m128)x);
#endif
}
#endif
static void nf__adam_run(const nf__adamk *k, size_t n, nf_real *NF__RESTRICT p, const nf_real *NF__RESTRICT g,
                         nf_real *NF__RESTRICT m, nf_real *NF__RESTRICT v) {
    size_t i = 0; nf_real b1 = k->b1, b2 = k->b2, a1 = 1 - k->b1, a2 = 1 - k->b2;
#ifdef NF__ADAM_VEC
    for (; i + (size_t)NF__GN_VL <= n; i += (size_t)NF__GN_VL) {
        nf__gv gi, mi, vi, pi;
        memcpy(&gi, g + i, sizeof gi); memcpy(&mi, m + i, sizeof mi);
        memcpy(&vi, v + i, sizeof vi); memcpy(&pi, p + i, sizeof pi);
        mi = b1 * mi + a1 * gi;
        vi = b2 * vi + a2 * gi * gi;
        pi = pi * k->decay - k->step * (mi * k->c1) / (nf__vsqrt(vi * k->c2) + k->eps);
        memcpy(m + i, &mi, sizeof mi); memcpy(v + i, &vi, sizeof vi); memcpy(p + i, &pi, sizeof pi);
    }
#endif
    for (; i < n; ++i) {
        nf_real gi = g[i], mi = b1 * m[i] + a1 * gi, vi = b2 * v[i] + a2 * gi * gi;
        m[i] = mi; v[i] = vi;
        p[i] = p[i] * k->decay - k->step * (mi * k->c1) / (NF_SQRT(vi * k->c2) + k->eps);
    }
}
/* p, g, m and v are distinct arrays of n reals */
NFDEF void nf_adam_update(const nf_adam_config *c, long t, size_t n, nf_real *p,
                          const nf_real *g, nf_real *m, nf_real *v) {
    nf__adamk k;
    nf__adam_coefs(c, t, &k);
    nf__adam_run(&k, n, p, g, m, v);
}
/* 1 if the step keeps every moment and parameter finite (a gradient near the largest
   nf_real squares to inf, and inf / inf is NaN): checked before anything is written */
static int nf__adam_finite(const nf_adam_config *c, long t, size_t n, const nf_real *p,
                           const nf_real *g, const nf_real *m, const nf_real *v) {
    size_t i; nf__adamk k; int ok = 1;
    nf__adam_coefs(c, t, &k);
    for (i = 0; i < n; ++i) {
        nf_real gi = g[i], mi = k.b1 * m[i] + (1 - k.b1) * gi, vi = k.b2 * v[i] + (1 - k.b2) * gi * gi;
        nf_real pi = p[i] * k.decay - k.step * (mi * k.c1) / (NF_SQRT(vi * k.c2) + k.eps);
        ok &= nf__isfinite(vi) & nf__isfinite(pi);
    }
    return ok;
}

/* ---- training ----------------------------------------------------------------------- */
struct nf_trainer;
static nf_result nf__grad_check_finite(struct nf_trainer *t);
static void nf__grad_fixup(struct nf_trainer *t);
static int nf__adam_bounded(const struct nf_trainer *t, double *gmax);
struct nf_trainer {
    nf_flow *f;
    nf_adam_config cfg;
    size_t max_batch;
    nf_real *grad, *m, *v;
    nf_arena arena;
    long t;
    void *block;
    double mmax, vmax;   /* bounds on |m| and v (no larger than the largest nf_real / 16) */
    nf_real *grad1;      /* the second shard's gradient (NULL: this trainer never shards) */
    size_t shard_bytes;  /* arena bytes a shard's tape needs (the arena holds two) */
};

/* every gradient finite, else NF_ERR_DIVERGED */
static nf_result nf__grad_check_finite(nf_trainer *t) {
    size_t i, np = t->f->n_params; int bad = 0;
    for (i = 0; i < np; ++i) bad |= !nf__isfinite(t->grad[i]);
    return bad ? nf__fail(t->f, NF_ERR_DIVERGED, "gradient is not finite", -1) : NF_OK;
}
/* max |p|, max |g| over n reals and whether any is not finite (exact: the same
   whatever ranges they are cut into) */
static int nf__adam_scan(const nf_real *p, const nf_real *g, size_t np, nf_real *pmax, nf_real *gmax) {
    size_t i = 0; nf_real pm = 0, gm = 0; int bad = 0;
#ifdef NF__GN_VB
    {   /* in vectors, on the bits: |x| is x without its sign bit, x is finite if that is below
           the exponent's all-ones, and finite |x| order as their bits do (signed integers) */
#ifdef NFLOW_DOUBLE
        typedef int64_t nf__gi __attribute__((vector_size(NF__GN_VB)));
        const int64_t abs_mask = INT64_MAX, inf_bits = 0x7ff0000000000000;
#else
        typedef int32_t nf__gi __attribute__((vector_size(NF__GN_VB)));
        const int32_t abs_mask = INT32_MAX, inf_bits = 0x7f800000;
#endif
        nf__gi pv, gv, nonfin, zero; int l;
        memset(&zero, 0, sizeof zero); pv = gv = nonfin = zero;
        for (; i + (size_t)NF__GN_VL <= np; i += (size_t)NF__GN_VL) {
            nf__gi a, b, more;
            memcpy(&a, p + i, sizeof a); memcpy(&b, g + i, sizeof b);
            a &= abs_mask; b &= abs_mask;
            nonfin |= (a >= inf_bits) | (b >= inf_bits);
            more = a > pv; pv = (a & more) | (pv & ~more);
            more = b > gv; gv = (b & more) | (gv & ~more);
        }
        for (l = 0; l < NF__GN_VL; ++l) {
            nf_real a, b; memcpy(&a, (const char *)&pv + (size_t)l * sizeof a, sizeof a); memcpy(&b, (const char *)&gv + (size_t)l * sizeof b, sizeof b);
            bad |= nonfin[l] != 0;
            pm = a > pm ? a : pm;
            gm = b > gm ? b : gm;
        }
    }
#endif
    for (; i < np; ++i) {
        nf_real a = NF_FABS(p[i]), b = NF_FABS(g[i]);
        bad |= !nf__isfinite(a); bad |= !nf__isfinite(b);
        pm = a > pm ? a : pm;
        gm = b > gm ? b : gm;
    }
    *pmax = pm; *gmax = gm;
    return bad;
}
/* Adam's passes over the parameters in pieces of whole 64-real blocks (nf__par_spans):
   each element takes the same path (vector or tail) as on one thread */
typedef struct nf__adampar { const nf__adamk *k; nf_real *p, *m, *v; const nf_real *g; int scan;
                             nf_real pm[NF__RUN_TMAX], gm[NF__RUN_TMAX]; int bad[NF__RUN_TMAX]; } nf__adampar;
static void nf__adam_span(void *arg, int piece, size_t i0, size_t n) {
    nf__adampar *A = (nf__adampar *)arg;
    if (A->scan) A->bad[piece] = nf__adam_scan(A->p + i0, A->g + i0, n, &A->pm[piece], &A->gm[piece]);
    else nf__adam_run(A->k, n, A->p + i0, A->g + i0, A->m + i0, A->v + i0);
}
static int nf__adam_pieces(const nf_parallel *par, size_t n, nf__adampar *A) {
    return nf__par_spans(par, n, 64, (float)n * 64.0f, nf__adam_span, A);
}
/* 1 if the next Adam step provably keeps every moment and parameter finite: from one
   read of the gradient and the parameters and the bounds on |m| and v. Each bound is
   kept below a 16th of the largest nf_real, far more than float rounding can add.
   *gmax: the largest |gradient| (for the moments' next bounds). */
static int nf__adam_bounded(const nf_trainer *t, double *gmax) {
    size_t np = t->f->n_params; nf_real pm = 0, gm = 0; int bad = 0, T, i;
    nf__adamk k; double lim = NF__RMAX / 16, G, mn, vn, d; nf__adampar A;
    A.p = t->f->params; A.g = t->grad; A.scan = 1;
    T = nf__adam_pieces(&t->f->par, np, &A);
    for (i = 0; i < T; ++i) { bad |= A.bad[i]; pm = A.pm[i] > pm ? A.pm[i] : pm; gm = A.gm[i] > gm ? A.gm[i] : gm; }
    *gmax = G = (double)gm;
    if (bad) return 0;
    nf__adam_coefs(&t->cfg, t->t + 1, &k);
    mn = (double)k.b1 * t->mmax + (1 - (double)k.b1) * G;
    vn = (double)k.b2 * t->vmax + (1 - (double)k.b2) * G * G;
    if (!(k.eps > 0) || !(G * G < lim) || !(mn * (double)k.c1 < lim) || !(vn * (double)k.c2 < lim)) return 0;
    d = (double)k.step * mn * (double)k.c1 / (double)k.eps;   /* the largest |change| */
    return d < lim && (double)pm * fabs((double)k.decay) + d < lim;
}

NFDEF nf_real *nf_trainer_grad(nf_trainer *t) { return t ? t->grad : NULL; }
NFDEF long nf_trainer_steps(const nf_trainer *t) { return t ? t->t : 0; }
NFDEF size_t nf_trainer_bytes(const nf_trainer *t) {
    return t ? (t->grad1 ? 4 : 3) * t->f->n_params * sizeof(nf_real) + t->arena.high : 0;
}

/* The mean (or weighted mean) negative log-likelihood of n rows on the tape.
   y NULL builds the graph on zeros (used to size the arena). *constant gets the
   data-independent part of the loss that has no gradient. A shard (wtot > 0) is part of
   a batch whose weights sum to wtot: its rows' share of the mean; the terms that do not
   depend on rows (constant log-dets) only in the first shard. */
static nf_tensor *nf__loss_shard(nf_trainer *tr, nf_tape *tp, const nf_real *y, const nf_real *ctx, const nf_real *w,
                                 int weighted, size_t n, double wtot, int first, double *constant);
static nf_tensor *nf__loss_tape(nf_trainer *tr, nf_tape *tp, const nf_real *y, const nf_real *ctx, const nf_real *w,
                                int weighted, size_t n, double *constant) {
    return nf__loss_shard(tr, tp, y, ctx, w, weighted, n, 0, 1, constant);
}
static nf_tensor *nf__loss_shard(nf_trainer *tr, nf_tape *tp, const nf_real *y, const nf_real *ctx, const nf_real *w,
                                 int weighted, size_t n, double wtot, int first, double *constant) {
    nf_flow *f = tr->f; int D = f->dim, C = f->ctx_dim, R = (int)n, i, j;
    nf_tensor *x, *logp, *loss; nf__tctx c;
    nf_real *ys = (nf_real *)nf_arena_alloc(tp->arena, n * (size_t)D * sizeof(nf_real));
    nf_real *ws = weighted ? (nf_real *)nf_arena_alloc(tp->arena, n * sizeof(nf_real)) : NULL;
    nf_real *cs = C ? (nf_real *)nf_arena_alloc(tp->arena, n * (size_t)C * sizeof(nf_real)) : NULL;
    double wsum = 0, dom_ld = 0;   /* the domain maps' log-dets: data-dependent but parameter-free */
    if (!ys || (weighted && !ws) || (C && !cs)) { tp->err = NF_ERR_ARENA_FULL; return NULL; }
    for (i = 0; i < R; ++i) {
        double wi = w ? (double)w[i] : 1.0, ldi = 0;
        for (j = 0; j < D; ++j) {
            nf_real v = y ? y[(size_t)i * (size_t)D + (size_t)j] : NF__R(0);
            nf_real dl = 0;   /* the batch was checked to lie inside the domain */
            if (y && f->has_dom && f->dom[j].kind != NF_DOMAIN_REAL && nf__dom_fwd(&f->dom[j], v, &v, &dl)) ldi += (double)dl;
            ys[(size_t)i * (size_t)D + (size_t)j] = y ? (v - f->mean[j]) / f->std[j] : NF__R(0);
        }
        for (j = 0; j < C; ++j)
            cs[(size_t)i * (size_t)C + (size_t)j] = ctx ? (ctx[(size_t)i * (size_t)C + (size_t)j] - f->mean[D + j]) / f->std[D + j] : NF__R(0);
        if (ws) ws[i] = (nf_real)wi;
        wsum += wi; dom_ld += wi * ldi;
    }
    c.tp = tp; c.f = f; c.grad = first ? tr->grad : tr->grad1; c.ldr = c.ldc = NULL;
    c.ctx = C ? nf_tape_input(tp, cs, R, C) : NULL;
    x = nf_tape_input(tp, ys, R, D);
    for (i = 0; i < f->n_layers; ++i) x = nf__kinds[f->layers[i].kind].tape(&c, &f->layers[i], x);
    if (f->desc.base == NF_BASE_DIAG_GAUSSIAN) {   /* u = (z - mu) e^-ls, log p = -u^2/2 - ls */
        nf_tensor *mu = nf__tparam(&c, f->base_off, 1, D), *ls = nf__tparam(&c, f->base_off + (size_t)D, 1, D);
        x = nf_t_mul(tp, nf_t_sub(tp, x, mu), nf_t_exp(tp, nf_t_scale(tp, ls, -1)));
        nf__add_ld(&c, nf_t_scale(tp, nf_t_sum(tp, ls), -1), 0);
    }
    logp = nf_t_scale(tp, nf_t_sum_rows(tp, nf_t_square(tp, x)), NF__R(-0.5));
    if (c.ldr) logp = nf_t_add(tp, logp, c.ldr);       /* log p_X(z) + log|det dz/dy| per row */
    if (wtot > 0) wsum = wtot;
    if (weighted) {
        nf_tensor *wt = nf_tape_input(tp, ws, R, 1);
        loss = nf_t_scale(tp, nf_t_sum(tp, nf_t_mul(tp, logp, wt)), (nf_real)(-1.0 / (wsum > 0 ? wsum : 1)));
    } else if (wtot > 0) {
        loss = nf_t_scale(tp, nf_t_sum(tp, logp), (nf_real)(-1.0 / wtot));
    } else {
        loss = nf_t_scale(tp, nf_t_mean(tp, logp), -1);
    }
    if (c.ldc && first) loss = nf_t_sub(tp, loss, c.ldc);
    *constant = (first ? 0.5 * D * NF__LOG_2PI - (double)nf__std_logdet(f) : 0) - (wsum > 0 ? dom_ld / wsum : 0);
    return loss;
}

NFDEF void nf_trainer_destroy(nf_trainer *t) {
    if (!t) return;
    nf_arena_destroy(&t->arena);
    NF_FREE(t->block, NULL);
    NF_FREE(t, NULL);
}

/* Size the arena by building the largest step's graph (weighted, max_batch rows):
   grow until it fits, then keep exactly the high-water mark. Setup only. The trials
   start at 4 KiB and grow by a quarter up to 256 KiB (then they double), so on a small
   target the largest trial (freed before the arena is made) is at most 1.25 times the
   need: a trainer fits in a microcontroller's RAM. A trial too small stops building
   where it runs out, so the small ones cost little. */
struct nf__target; struct nf__klrec;
static nf_tensor *nf__kl_tape(nf_trainer *tr, nf_tape *tp, nf_rng *rng, size_t n, const struct nf__target *tg, struct nf__klrec *rec, double *constant);
static nf_result nf__size_arena(nf_trainer *tr) {
    size_t guess = 1 << 12, need = 0; int tries;
    for (tries = 0; tries < 96; ++tries) {
        nf_tape tp; nf_tensor *loss; double c; nf_result r;
        r = nf_arena_create(&tr->arena, guess, NULL);
        if (r != NF_OK) return r;
        nf_tape_init(&tp, &tr->arena); tp.par = &tr->f->par;
        loss = nf__loss_tape(tr, &tp, NULL, NULL, NULL, 1, tr->max_batch, &c);
        if (loss) r = nf_tape_backward(&tp, loss);
        if (loss && r == NF_OK) {   /* a reverse-KL step must fit too (with a shared context's rows) */
            size_t first = tr->arena.high;
            nf_arena_reset(&tr->arena); nf_tape_init(&tp, &tr->arena); tp.par = &tr->f->par;
            if (tr->f->ctx_dim && !nf_arena_alloc(&tr->arena, tr->max_batch * (size_t)tr->f->ctx_dim * sizeof(nf_real))) tp.err = NF_ERR_ARENA_FULL;
            loss = nf__kl_tape(tr, &tp, NULL, tr->max_batch, NULL, NULL, &c);
            if (loss) r = nf_tape_backward(&tp, loss);
            if (tr->arena.high < first) tr->arena.high = first;
        }
#ifndef NFLOW_NO_THREADS
        if (loss && r == NF_OK && tp.err == NF_OK && tr->grad1) {   /* and a shard's tape */
            size_t whole = tr->arena.high;
            nf_arena_reset(&tr->arena); tr->arena.high = 0; nf_tape_init(&tp, &tr->arena);
            loss = nf__loss_shard(tr, &tp, NULL, NULL, NULL, 1, (tr->max_batch + 1) / 2 + NF__GN_MR, 1, 1, &c);
            if (loss) r = nf_tape_backward(&tp, loss);
            tr->shard_bytes = nf_arena_align(tr->arena.high) + NF__ALIGN;
            tr->arena.high = whole > 2 * tr->shard_bytes ? whole : 2 * tr->shard_bytes;
        }
#endif
        need = tr->arena.high;
        nf_arena_destroy(&tr->arena);
        if (loss && r == NF_OK && tp.err == NF_OK) break;
        if (tp.err != NF_OK && tp.err != NF_ERR_ARENA_FULL) return tp.err;
        if (guess > ((size_t)-1) / 4) return NF_ERR_OVERFLOW;
        guess += guess < ((size_t)1 << 18) ? guess / 4 : guess;
    }
    memset(tr->grad, 0, tr->f->n_params * sizeof(nf_real));
    return nf_arena_create(&tr->arena, need, NULL);
}

NFDEF nf_result nf_trainer_create(nf_trainer **out, nf_flow *f, const nf_adam_config *c, size_t max_batch) {
    nf_trainer *t; size_t bytes; nf_result r;
    if (!out) return NF_ERR_NULL;
    *out = NULL;
    if (!f) return NF_ERR_NULL;
    if (max_batch == 0 || max_batch > (size_t)INT32_MAX / (size_t)f->dim)
        return nf__fail(f, NF_ERR_ARG, "max_batch must be in 1 .. 2^31 / dim", -1);
    if (c && nf__adam_check(c)) return nf__fail(f, NF_ERR_ARG, nf__adam_check(c), -1);
    /* a step's per-row arrays (data, context, weights) must be addressable */
    if (!nf__mul(max_batch, ((size_t)f->dim + (size_t)f->ctx_dim + 1) * sizeof(nf_real), &bytes) ||
        !nf__mul(f->n_params ? f->n_params : 1, (NF__SHARDS(max_batch) ? 4 : 3) * sizeof(nf_real), &bytes))
        return nf__fail(f, NF_ERR_OVERFLOW, "trainer sizes", -1);
    t = (nf_trainer *)NF_MALLOC(sizeof(nf_trainer), NULL);
    if (!t) return nf__fail(f, NF_ERR_NOMEM, "trainer", -1);
    memset(t, 0, sizeof *t);
    t->f = f; t->max_batch = max_batch;
    if (c) t->cfg = *c; else nf_adam_config_default(&t->cfg);
    t->block = NF_MALLOC(bytes, NULL);
    if (!t->block) { NF_FREE(t, NULL); return nf__fail(f, NF_ERR_NOMEM, "trainer gradients", -1); }
    memset(t->block, 0, bytes);
    t->grad = (nf_real *)t->block; t->m = t->grad + f->n_params; t->v = t->m + f->n_params;
    if (NF__SHARDS(max_batch)) t->grad1 = t->v + f->n_params;
    r = nf__size_arena(t);
    if (r != NF_OK) { nf_trainer_destroy(t); return nf__fail(f, r, "trainer arena", -1); }
    *out = t;
    return NF_OK;
}

/* Data-dependent initialisation: every layer whose kind has one, not yet initialised, gets
   the mean and sd (two passes, in double) of its input over the rows (checked: finite,
   inside the domain), computed through the layers below it. Rows idx[0..n) of y (idx
   NULL: the first n). All or nothing: a layer whose start is not representable
   (NF_ERR_RANGE) undoes the ones before it. Scratch via NF_MALLOC. */
static nf_result nf__data_init(nf_flow *f, const nf_real *y, const nf_real *ctx, const size_t *idx, size_t n) {
    int a, D = f->dim, C = f->ctx_dim, j, pass, rr, k = 0, done[NF_MAX_LAYERS];
    size_t bytes = 0, nb = 0, r0; double *mean = NULL, *sd; nf_real *gy, *gc, *keep; nf_result r = NF_OK; int ok = 1;
    for (a = 0; a < f->n_layers; ++a)
        if (nf__kind_of(f->layers[a].kind)->data_init && !f->layers[a].initialized) nb += f->layers[a].np;
    if (nb == 0) return NF_OK;
    bytes = nf__madd(nf__madd(2 * (size_t)D * sizeof(double), (size_t)f->chunk, ((size_t)D + (size_t)C) * sizeof(nf_real), &ok),
                     nb, sizeof(nf_real), &ok);
    if (!ok) return nf__fail(f, NF_ERR_OVERFLOW, "data initialisation", -1);
    mean = (double *)NF_MALLOC(bytes, NULL);
    if (!mean) return nf__fail(f, NF_ERR_NOMEM, "data initialisation", -1);
    sd = mean + D; gy = (nf_real *)(sd + D); gc = gy + (size_t)f->chunk * (size_t)D; keep = gc + (size_t)f->chunk * (size_t)C;
    for (a = 0; a < f->n_layers && r == NF_OK; ++a) {
        nf__layer *L = &f->layers[a]; const nf__kind *kd = nf__kind_of(L->kind);
        nf_real *cur; nf__ws w;
        if (!kd->data_init || L->initialized) continue;
        for (j = 0; j < D; ++j) mean[j] = sd[j] = 0;
        nf__ws_carve(f, &cur, &w);
        for (pass = 0; pass < 2; ++pass) {
            for (r0 = 0; r0 < n; r0 += (size_t)f->chunk) {
                int R = (int)(n - r0 < (size_t)f->chunk ? n - r0 : (size_t)f->chunk);
                for (rr = 0; rr < R; ++rr) {   /* the rows, gathered */
                    size_t s = idx ? idx[r0 + (size_t)rr] : r0 + (size_t)rr;
                    memcpy(gy + (size_t)rr * (size_t)D, y + s * (size_t)D, (size_t)D * sizeof(nf_real));
                    if (C) memcpy(gc + (size_t)rr * (size_t)C, ctx + s * (size_t)C, (size_t)C * sizeof(nf_real));
                }
                nf__chunk_forward(f, gy, R, C ? gc : NULL, 0, cur, &w, a);   /* the layers below */
                for (j = 0; j < D; ++j)
                    for (rr = 0; rr < R; ++rr) {
                        double v = (double)cur[(size_t)rr * (size_t)D + (size_t)j];
                        if (pass == 0) mean[j] += v; else sd[j] += (v - mean[j]) * (v - mean[j]);
                    }
            }
            for (j = 0; j < D; ++j) { if (pass == 0) mean[j] /= (double)n; else sd[j] = sqrt(sd[j] / (double)n); }
        }
        memcpy(keep, f->params + L->poff, L->np * sizeof(nf_real));
        if ((r = kd->data_init(L, f->params + L->poff, D, mean, sd)) != NF_OK) break;
        keep += L->np; L->initialized = 1; done[k++] = a;
    }
    if (r != NF_OK) {   /* undo, newest first */
        while (k > 0) {
            nf__layer *L = &f->layers[done[--k]];
            keep -= L->np;
            memcpy(f->params + L->poff, keep, L->np * sizeof(nf_real));
            L->initialized = 0;
        }
        nf__fail(f, r, "a data-dependent start (ActNorm) is not representable: standardise the data", -1);
    }
    NF_FREE(mean, NULL);
    return r;
}

static nf_result nf__check_domain(nf_flow *f, const nf_real *y, size_t n) {
    size_t i;
    if (f->has_dom) for (i = 0; i < n; ++i)
        if (!nf_flow_in_domain(f, y + i * (size_t)f->dim)) return nf__fail(f, NF_ERR_ARG, "data outside the flow's domain", (long)i);
    return NF_OK;
}
NFDEF nf_result nf_flow_data_init(nf_flow *f, const nf_real *y, const nf_real *ctx, size_t n) {
    nf_result r;
    if ((r = nf__check_call(f, y, n, y)) != NF_OK) return r;
    if (f->readonly) return nf__fail(f, NF_ERR_READONLY, "constant flow", -1);
    if ((r = nf__check_rows(f, y, n, f->dim, "data")) != NF_OK || (r = nf__check_domain(f, y, n)) != NF_OK ||
        (r = nf__check_ctx(f, ctx, n, n)) != NF_OK) return r;
    return nf__data_init(f, y, ctx, NULL, n);
}
static nf_result nf__check_batch(nf_trainer *t, const nf_real *y, const nf_real *ctx, const nf_real *w, size_t n) {
    nf_flow *f; nf_result r; size_t i;
    if (!t) return NF_ERR_NULL;
    f = t->f;
    if ((r = nf__check_call(f, y, n, y)) != NF_OK) return r;
    if (n > t->max_batch) return nf__fail(f, NF_ERR_SHAPE, "batch larger than the trainer's max_batch", -1);
    if (f->readonly) return nf__fail(f, NF_ERR_READONLY, "cannot train read-only weights", -1);
    if ((r = nf__check_rows(f, y, n, f->dim, "data")) != NF_OK) return r;
    if ((r = nf__check_domain(f, y, n)) != NF_OK) return r;
    if ((r = nf__check_ctx(f, ctx, n, n)) != NF_OK) return r;
    if (w) {
        double s = 0;
        for (i = 0; i < n; ++i) {
            if (!nf__isfinite(w[i]) || w[i] < 0) return nf__fail(f, NF_ERR_NONFINITE, "weights must be finite and >= 0", (long)i);
            s += (double)w[i];
        }
        if (!(s > 0)) return nf__fail(f, NF_ERR_ARG, "weights sum to zero", -1);
    }
    return NF_OK;
}

#ifndef NFLOW_NO_THREADS
/* Batches of 2 NF__SHARD_ROWS rows or more are two shards (rows [0, n0) and [n0, n), n0
   the multiple of the register tile's rows nearest n / 2), each on its own tape with its
   own gradient, summed after: with threads the shards run at once, each a whole forward
   and backward pass on one core (one fork a step, where cutting every product and pass
   forks dozens of times and moves rows between cores). The shards are the same with one
   thread or many, so are the bits. */
static size_t nf__shard_split(size_t n) { return (n / 2 + NF__GN_MR / 2) / NF__GN_MR * NF__GN_MR; }
typedef struct nf__shards {
    nf_trainer *t; const nf_real *y, *ctx, *w; size_t n; double wtot; int inner;
    nf_arena a[2]; double l[2], c[2]; nf_result r[2]; int stage[2];
} nf__shards;
static void nf__shard_task(void *arg, int s) {
    nf__shards *J = (nf__shards *)arg; nf_trainer *t = J->t; nf_tape tp; nf_tensor *l;
    size_t D = (size_t)t->f->dim, C = (size_t)t->f->ctx_dim, n0 = nf__shard_split(J->n), r0 = s ? n0 : 0, m = s ? J->n - n0 : n0;
    memset(s ? t->grad1 : t->grad, 0, t->f->n_params * sizeof(nf_real));
    nf_tape_init(&tp, &J->a[s]); tp.par = J->inner ? &t->f->par : NULL;
    l = nf__loss_shard(t, &tp, J->y + r0 * D, J->ctx ? J->ctx + r0 * C : NULL, J->w ? J->w + r0 : NULL, J->w != NULL,
                       m, J->wtot, s == 0, &J->c[s]);
    J->stage[s] = 0; J->r[s] = l ? NF_OK : tp.err;
    if (l) { J->stage[s] = 1; J->r[s] = nf_tape_backward(&tp, l); J->l[s] = (double)l->val[0]; }
}
/* grad += grad1 and whether the sum is finite, in pieces (one pass instead of two) */
typedef struct nf__gsum { nf_real *g; const nf_real *g1; int bad[NF__RUN_TMAX]; } nf__gsum;
static void nf__grad_add_span(void *arg, int piece, size_t i, size_t n) {
    nf__gsum *S = (nf__gsum *)arg; size_t e = i + n; int bad = 0;
    nf_real *NF__RESTRICT g = S->g; const nf_real *NF__RESTRICT g1 = S->g1;
    for (; i < e; ++i) { nf_real x = g[i] + g1[i]; g[i] = x; bad |= !nf__isfinite(x); }   /* bits: -ffast-math proof */
    S->bad[piece] = bad;
}
static nf_result nf__loss_grad_sharded(nf_trainer *t, const nf_real *y, const nf_real *ctx, const nf_real *w, size_t n, double *loss) {
    nf__shards J; size_t i; int s, T = t->f->par.run ? t->f->par.threads : 1;
    J.t = t; J.y = y; J.ctx = ctx; J.w = w; J.n = n; J.wtot = 0;
    if (w) for (i = 0; i < n; ++i) J.wtot += (double)w[i];   /* the same sum as one tape's */
    else J.wtot = (double)n;
    nf_arena_reset(&t->arena);
    for (s = 0; s < 2; ++s) nf_arena_init(&J.a[s], t->arena.base + (size_t)s * t->shard_bytes, t->shard_bytes);
    J.inner = T < 2;   /* one thread: the shards one after the other, their products on the flow's par */
    if (T >= 2) t->f->par.run(t->f->par.pool, 2, nf__shard_task, &J);
    else { nf__shard_task(&J, 0); nf__shard_task(&J, 1); }
    for (s = 0; s < 2; ++s) {
        size_t hw = (size_t)s * t->shard_bytes + J.a[s].high;
        if (hw > t->arena.high) t->arena.high = hw;
        if (J.r[s] != NF_OK) return nf__fail(t->f, J.r[s], J.stage[s] ? "backward" : "building the loss", -1);
    }
    {   nf__gsum S; int P, p, bad = 0;
        S.g = t->grad; S.g1 = t->grad1;
        P = nf__par_spans(&t->f->par, t->f->n_params, 64, (float)t->f->n_params * 32.0f, nf__grad_add_span, &S);
        for (p = 0; p < P; ++p) bad |= S.bad[p];
        if (loss) *loss = J.l[0] + J.l[1] + J.c[0] + J.c[1];
        if (!nf__isfinite((nf_real)(J.l[0] + J.l[1]))) return nf__fail(t->f, NF_ERR_DIVERGED, "loss is not finite", -1);   /* as one tape's, in nf_real */
        return bad ? nf__fail(t->f, NF_ERR_DIVERGED, "gradient is not finite", -1) : NF_OK;
    }
}

#endif
/* Weights that are not part of the model (autoregressive masks) get no gradient. */
static void nf__grad_fixup(nf_trainer *t) {
    int j;
    for (j = 0; j < t->f->n_layers; ++j) {
        const nf__layer *L = &t->f->layers[j]; const nf__kind *k = nf__kind_of(L->kind);
        if (k->fixup) k->fixup(L, t->grad + L->poff);
    }
}
/* Loss and gradient of a checked batch; the flow is not touched. */
static nf_result nf__loss_grad(nf_trainer *t, const nf_real *y, const nf_real *ctx, const nf_real *w, size_t n, double *loss) {
    nf_tape tp; nf_tensor *l; double c; nf_result r;
    if ((r = nf__check_batch(t, y, ctx, w, n)) != NF_OK) return r;
#ifndef NFLOW_NO_THREADS
    if (t->grad1 && NF__SHARDS(n)) return nf__loss_grad_sharded(t, y, ctx, w, n, loss);
#endif
    memset(t->grad, 0, t->f->n_params * sizeof(nf_real));
    nf_arena_reset(&t->arena);
    nf_tape_init(&tp, &t->arena); tp.par = &t->f->par;
    l = nf__loss_tape(t, &tp, y, ctx, w, w != NULL, n, &c);
    if (!l) return nf__fail(t->f, tp.err, "building the loss", -1);
    if ((r = nf_tape_backward(&tp, l)) != NF_OK) return nf__fail(t->f, r, "backward", -1);
    if (loss) *loss = (double)l->val[0] + c;
    if (!nf__isfinite(l->val[0])) return nf__fail(t->f, NF_ERR_DIVERGED, "loss is not finite", -1);
    return nf__grad_check_finite(t);
}

static nf_result nf__clip_and_update(nf_trainer *t);
/* the caller sees no gradient on weights that are not part of the model (a step gets
   the same from nf__clip_and_update) */
NFDEF nf_result nf_trainer_loss_grad_ctx(nf_trainer *t, const nf_real *y, const nf_real *ctx, const nf_real *w, size_t n, double *loss) {
    nf_result r = nf__loss_grad(t, y, ctx, w, n, loss);
    if (r == NF_OK) nf__grad_fixup(t);
    return r;
}
NFDEF nf_result nf_trainer_loss_grad(nf_trainer *t, const nf_real *y, const nf_real *w, size_t n, double *loss) {
    return nf_trainer_loss_grad_ctx(t, y, NULL, w, n, loss);
}
NFDEF nf_result nf_train_step(nf_trainer *t, const nf_real *y, const nf_real *w, size_t n, double *loss) {
    return nf_train_step_ctx(t, y, NULL, w, n, loss);
}
NFDEF nf_result nf_train_step_ctx(nf_trainer *t, const nf_real *y, const nf_real *ctx, const nf_real *w, size_t n, double *loss) {
    nf_result r = nf__loss_grad(t, y, ctx, w, n, loss);
    if (r != NF_OK) return r;
    return nf__clip_and_update(t);
}
NFDEF nf_result nf_trainer_apply(nf_trainer *t) {
    nf_result r;
    if (!t) return NF_ERR_NULL;
    if (t->f->readonly) return nf__fail(t->f, NF_ERR_READONLY, "cannot train read-only weights", -1);
    if ((r = nf__grad_check_finite(t)) != NF_OK) return r;   /* the caller's gradient */
    return nf__clip_and_update(t);
}
/* global-norm clipping, then one AdamW step. Weights that are not part of the model
   (autoregressive masks) get no gradient, whatever the caller left there, so they stay 0.
   A step that would make a moment or parameter non-finite is refused, nothing written. */
static nf_result nf__clip_and_update(nf_trainer *t) {
    size_t i, np = t->f->n_params; double G;
    nf__grad_fixup(t);
    if (t->cfg.clip_norm > 0) {
        double s = 0;
        for (i = 0; i < np; ++i) s += (double)t->grad[i] * (double)t->grad[i];
        s = sqrt(s);
        if (s > t->cfg.clip_norm) {
            nf_real k = (nf_real)(t->cfg.clip_norm / s);
            for (i = 0; i < np; ++i) t->grad[i] *= k;
        }
    }
    /* all or nothing: the bounds settle the usual step in one read of the parameters and
       gradient; only when they cannot vouch for it is every element's update worked out */
    if (!nf__adam_bounded(t, &G) && !nf__adam_finite(&t->cfg, t->t + 1, np, t->f->params, t->grad, t->m, t->v))
        return nf__fail(t->f, NF_ERR_DIVERGED, "the step would overflow (gradient or learning rate too large)", -1);
    t->t++;
    {   nf__adamk k; nf__adampar A;
        nf__adam_coefs(&t->cfg, t->t, &k);
        A.k = &k; A.p = t->f->params; A.g = t->grad; A.m = t->m; A.v = t->v; A.scan = 0;
        nf__adam_pieces(&t->f->par, np, &A); }
    {   /* the moments' new bounds: m and v are convex mixes of their old values and g, g^2 */
        double b1 = t->cfg.beta1, b2 = t->cfg.beta2;
        t->mmax = b1 * t->mmax + (1 - b1) * G;
        t->vmax = b2 * t->vmax + (1 - b2) * G * G;
    }
    return NF_OK;
}

NFDEF nf_result nf_trainer_grad_check(nf_trainer *t, const nf_real *y, size_t n, double h,
                                      size_t max_params, double *max_rel_err) {
    nf_result r; size_t i, np, stride; double worst = 0;
    nf_real *g0;
    if (!t || !max_rel_err) return NF_ERR_NULL;
    if (!(h > 0)) return nf__fail(t->f, NF_ERR_ARG, "step h must be positive", -1);
    np = t->f->n_params;
    if (np == 0) { *max_rel_err = 0; return NF_OK; }
    if (!nf__mul(np, 2 * sizeof(nf_real), &i)) return NF_ERR_OVERFLOW;
    g0 = (nf_real *)NF_MALLOC(i, NULL);
    if (!g0) return nf__fail(t->f, NF_ERR_NOMEM, "gradient copy", -1);
    {   /* which parameters are part of the model: the masked weights (zero, and zero in every
           gradient) are not, and the forward map reads them as they are */
        nf_real *keep = t->grad; size_t j;
        for (j = 0; j < np; ++j) keep[j] = 1;
        nf__grad_fixup(t);
        memcpy(g0 + np, keep, np * sizeof(nf_real));
    }
    r = nf_trainer_loss_grad(t, y, NULL, n, NULL);
    if (r == NF_OK) memcpy(g0, t->grad, np * sizeof(nf_real));
    stride = max_params && np > max_params ? np / max_params : 1;
    for (i = 0; i < np && r == NF_OK; i += stride) {
        nf_real keep = t->f->params[i]; double lp = 0, lm = 0, num, den, e;
        if (g0[np + i] == 0) continue;
        t->f->params[i] = (nf_real)((double)keep + h);
        r = nf_trainer_loss_grad(t, y, NULL, n, &lp);
        t->f->params[i] = (nf_real)((double)keep - h);
        if (r == NF_OK) r = nf_trainer_loss_grad(t, y, NULL, n, &lm);
        t->f->params[i] = keep;
        num = (lp - lm) / (2 * h);
        den = fabs(num) + fabs((double)g0[i]);
        e = fabs(num - (double)g0[i]) / (den > NF__GC_FLOOR ? den : NF__GC_FLOOR);
        if (!(e <= worst)) worst = e;
    }
    if (r == NF_OK) memcpy(t->grad, g0, np * sizeof(nf_real));
    NF_FREE(g0, NULL);
    *max_rel_err = worst;
    return r;
}

/* ---- fit ------------------------------------------------------------------------------ */
NFDEF void nf_fit_options_default(nf_fit_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    /* measured (bench/defaults.sh, 5 data sets x 3 splits): within 0.041 nats per row of
       the best setting found on each, where batch 256 at a constant rate was 0.11 off */
    o->batch = 128; o->max_epochs = 200; o->patience = 20; o->val_fraction = 0.1;
    o->standardize = 1; o->refit = 0; o->seed = 1;
    nf_adam_config_default(&o->adam);
    o->adam.schedule = NF_SCHED_COSINE;   /* total_steps 0: decays to 0 over max_epochs */
}
#ifndef NFLOW_NO_STDIO
NFDEF int nf_fit_print_progress(const nf_fit_progress *p, void *user) {
    FILE *fp = user ? (FILE *)user : stdout;
    if (!p) return 0;
    fprintf(fp, "epoch %4ld  step %7ld  train %.4f  val %.4f  best %.4f  lr %.2e\n",
            p->epoch, p->step, p->train_loss, p->val_loss, p->best_val_loss, p->lr);
    fflush(fp);
    return 0;
}
#endif

/* ---- reverse KL ------------------------------------------------------------------- */
/* The caller's target: an unconditional or a conditional density, and the raw context
   rows it is evaluated at (one per draw). */
typedef struct nf__target { nf_log_density_fn fn; nf_log_density_ctx_fn fn_ctx; const nf_real *ctx; void *user; } nf__target;
/* What a reverse-KL step keeps of its draws (for nf_infer's diagnostics): x (n x dim), log q(x)
   and log p~(x) (-inf outside the target's support); the row of a non-finite value. */
typedef struct nf__klrec { nf_real *x; double *lq, *lp; long outside, bad_row; } nf__klrec;
/* The target density as a tape op: value log p~(x) per row (n x 1), computed by the
   caller's callback; backward dx += d(out) * grad log p~(x), the gradient the callback
   returned (held in b). A row where the target is -inf lies outside its support: its value
   and gradient become 0 and its mask 0, so the loss leaves it out. NaN, +inf or a
   non-finite gradient: NF_ERR_DIVERGED. */
static void nf__target_back(nf_tensor *out) {
    nf_tensor *x = out->a, *g = out->b; int i, j;
    if (!x->grad) return;
    for (i = 0; i < x->rows; ++i)
        for (j = 0; j < x->cols; ++j) x->grad[(size_t)i * (size_t)x->cols + (size_t)j] += out->grad[i] * g->val[(size_t)i * (size_t)x->cols + (size_t)j];
}
static nf_tensor *nf__t_target(nf_tape *tp, nf_tensor *x, const nf__target *tg, nf_tensor *mask, nf__klrec *rec) {
    nf_tensor *g, *out; int i, j, rc, D;
    if (nf__bad(tp, x, mask, 1)) return NULL;
    D = x->cols;
    g = nf__node(tp, 0, NULL, x->rows, D, NULL, NULL);   /* constant: the callback's gradient */
    if (!g) return NULL;
    out = nf__node(tp, 0, nf__target_back, x->rows, 1, x, g);
    if (!out) return NULL;
    if (!tg) {   /* a dry run (arena sizing) */
        memset(out->val, 0, (size_t)x->rows * sizeof(nf_real)); memset(g->val, 0, (size_t)x->rows * (size_t)D * sizeof(nf_real));
        for (i = 0; i < x->rows; ++i) mask->val[i] = 1;
        return out;
    }
    if (rec) memcpy(rec->x, x->val, (size_t)x->rows * (size_t)D * sizeof(nf_real));
    rc = tg->fn ? tg->fn(x->val, (size_t)x->rows, D, out->val, g->val, tg->user)
                : tg->fn_ctx(x->val, tg->ctx, (size_t)x->rows, D, out->val, g->val, tg->user);
    if (rc != 0) { tp->err = NF_ERR_ARG; return NULL; }
    for (i = 0; i < x->rows; ++i) {
        int bad = 0;
        if (nf__is_neg_inf((double)out->val[i])) {   /* outside the support: no loss, no gradient */
            mask->val[i] = 0; out->val[i] = 0;
            for (j = 0; j < D; ++j) g->val[NF__IX(i, D, j)] = 0;
            if (rec) { rec->lp[i] = -HUGE_VAL; rec->outside++; }
            continue;
        }
        mask->val[i] = 1;
        if (rec) rec->lp[i] = (double)out->val[i];
        if (!nf__isfinite(out->val[i])) bad = 1;
        for (j = 0; j < D; ++j) if (!nf__isfinite(g->val[NF__IX(i, D, j)])) bad = 1;
        if (bad) { tp->err = NF_ERR_DIVERGED; if (rec) rec->bad_row = i; return NULL; }
    }
    return out;
}

/* The domains' maps u -> y on the tape, column by column (nf__dom_inv; aux: the domain
   table). dy/du = exp(log|dy/du|). */
static void nf__dominv_back(nf_tensor *y) {
    nf_tensor *u = y->a; const nf_domain *dom = (const nf_domain *)y->aux; int r, j, D = y->cols;
    if (!u->grad) return;
    for (r = 0; r < y->rows; ++r)
        for (j = 0; j < D; ++j) {
            nf_real v, ld = nf__dom_inv(&dom[j], u->val[(size_t)r * (size_t)D + (size_t)j], &v);
            u->grad[(size_t)r * (size_t)D + (size_t)j] += y->grad[(size_t)r * (size_t)D + (size_t)j] * NF_EXP(ld);
        }
}
/* and their log|dy/du| summed per row (R x 1): d/du of log sigma(u) sigma(-u) is
   -tanh(u / 2); of u (half-line) is 1 */
static void nf__domld_back(nf_tensor *l) {
    nf_tensor *u = l->a; const nf_domain *dom = (const nf_domain *)l->aux; int r, j, D = u->cols;
    if (!u->grad) return;
    for (r = 0; r < u->rows; ++r)
        for (j = 0; j < D; ++j) {
            int kd = dom[j].kind;
            nf_real dl = kd == NF_DOMAIN_LOWER ? NF__R(1) : kd == NF_DOMAIN_REAL ? NF__R(0) : -NF_TANH(u->val[(size_t)r * (size_t)D + (size_t)j] / 2);
            u->grad[(size_t)r * (size_t)D + (size_t)j] += l->grad[r] * dl;
        }
}
static nf_tensor *nf__t_domain_inv(nf_tape *tp, nf_tensor *u, const nf_domain *dom, nf_tensor **ld) {
    nf_tensor *y, *l; int r, j, D;
    if (nf__bad(tp, u, NULL, 0)) return NULL;
    D = u->cols;
    y = nf__node(tp, 0, nf__dominv_back, u->rows, D, u, NULL);
    l = nf__node(tp, 0, nf__domld_back, u->rows, 1, u, NULL);
    if (!y || !l) return NULL;
    y->aux = l->aux = dom;
    for (r = 0; r < u->rows; ++r) {
        nf_real s = 0;
        for (j = 0; j < D; ++j) s += nf__dom_inv(&dom[j], u->val[(size_t)r * (size_t)D + (size_t)j], &y->val[(size_t)r * (size_t)D + (size_t)j]);
        l->val[r] = s;
    }
    *ld = l;
    return y;
}

/* mean over the n draws inside the target's support of log q(x) - log p~(x), x = g(z) on the
   tape (tg NULL: a dry run on zeros that sizes the arena). tg->ctx: n raw context rows.
   rec (may be NULL) keeps every draw's x, log q(x) and log p~(x). */
static nf_tensor *nf__kl_tape(nf_trainer *tr, nf_tape *tp, nf_rng *rng, size_t n, const nf__target *tg, nf__klrec *rec, double *constant) {
    nf_flow *f = tr->f; int D = f->dim, C = f->ctx_dim, R = (int)n, i, j, cnt = 0;
    nf_tensor *x, *eps, *logq, *sd, *mu, *loss, *mask, *lp; nf__tctx c;
    nf_real *e = (nf_real *)nf_arena_alloc(tp->arena, n * (size_t)D * sizeof(nf_real));
    nf_real *cs = C ? (nf_real *)nf_arena_alloc(tp->arena, n * (size_t)C * sizeof(nf_real)) : NULL;
    if (!e || (C && !cs)) { tp->err = NF_ERR_ARENA_FULL; return NULL; }
    for (i = 0; i < R * D; ++i) e[i] = tg ? nf_rng_normal(rng) : NF__R(0);
    for (i = 0; i < R; ++i)   /* the conditioners see the standardised context */
        for (j = 0; j < C; ++j) cs[(size_t)i * (size_t)C + (size_t)j] = tg ? (tg->ctx[(size_t)i * (size_t)C + (size_t)j] - f->mean[D + j]) / f->std[D + j] : NF__R(0);
    c.tp = tp; c.f = f; c.grad = tr->grad; c.ldr = c.ldc = NULL;
    c.ctx = C ? nf_tape_input(tp, cs, R, C) : NULL;
    eps = nf_tape_input(tp, e, R, D);
    mask = nf_tape_new(tp, R, 1);   /* 1: the target is finite there */
    /* log p_base(z) in terms of eps: -|eps|^2 / 2 (- sum log-std for the learnable base) */
    logq = nf_t_scale(tp, nf_t_sum_rows(tp, nf_t_square(tp, eps)), NF__R(-0.5));
    x = eps;
    if (f->desc.base == NF_BASE_DIAG_GAUSSIAN) {   /* z = mu + e^ls eps (reparameterised) */
        nf_tensor *pm = nf__tparam(&c, f->base_off, 1, D), *pl = nf__tparam(&c, f->base_off + (size_t)D, 1, D);
        x = nf_t_add(tp, nf_t_mul(tp, eps, nf_t_exp(tp, pl)), pm);
        nf__add_ld(&c, nf_t_sum(tp, pl), 0);   /* dz/deps: enters log q with a minus sign, as the layers' do */
    }
    for (i = f->n_layers - 1; i >= 0; --i) x = nf__kinds[f->layers[i].kind].tape_inv(&c, &f->layers[i], x);
    /* undo the standardisation: x = x std + mean (constant log-det sum log std) */
    sd = nf_tape_new(tp, 1, D); mu = nf_tape_new(tp, 1, D);
    if (sd && mu) for (j = 0; j < D; ++j) { sd->val[j] = f->std[j]; mu->val[j] = f->mean[j]; }
    x = nf_t_add(tp, nf_t_mul(tp, x, sd), mu);
    if (f->has_dom) { nf_tensor *ld = NULL; x = nf__t_domain_inv(tp, x, f->dom, &ld); if (ld) nf__add_ld(&c, ld, 1); }
    if (c.ldr) logq = nf_t_sub(tp, logq, c.ldr);        /* log q(x) = log p(z) - log|det dx/dz| */
    lp = nf__t_target(tp, x, tg, mask, rec);
    if (!lp) return NULL;
    for (i = 0; i < R; ++i) cnt += mask->val[i] != 0;
    loss = nf_t_scale(tp, nf_t_sum(tp, nf_t_mul(tp, nf_t_sub(tp, logq, lp), mask)), (nf_real)(1.0 / (cnt > 0 ? cnt : 1)));
    if (c.ldc) loss = nf_t_sub(tp, loss, c.ldc);
    *constant = -0.5 * D * NF__LOG_2PI + (double)nf__std_logdet(f);   /* -D/2 log 2 pi - sum log std */
    if (loss && rec) {
        double ldc = c.ldc ? (double)c.ldc->val[0] : 0;
        for (i = 0; i < R; ++i) rec->lq[i] = (double)logq->val[i] - ldc + *constant;
    }
    if (loss && tg && cnt == 0) { tp->err = NF_ERR_DIVERGED; return NULL; }   /* no draw inside the support */
    return loss;
}

static nf_result nf__train_step_kl(nf_trainer *t, nf_rng *rng, size_t n, nf__target *tg, size_t ctx_rows, double *loss) {
    nf_tape tp; nf_tensor *l; double c; nf_result r; size_t i, np; nf_flow *f = t->f;
    if (!rng) return nf__fail(f, NF_ERR_NULL, "rng is NULL", -1);
    if (n == 0 || n > t->max_batch) return nf__fail(f, NF_ERR_SHAPE, "n must be in 1 .. max_batch", -1);
    if (f->readonly) return nf__fail(f, NF_ERR_READONLY, "cannot train read-only weights", -1);
    if ((r = nf__check_ctx(f, tg->ctx, ctx_rows, n)) != NF_OK) return r;
    np = f->n_params;
    memset(t->grad, 0, np * sizeof(nf_real));
    nf_arena_reset(&t->arena);
    nf_tape_init(&tp, &t->arena); tp.par = &t->f->par;
    if (f->ctx_dim && ctx_rows == 1) {   /* the callback gets one context row per draw */
        nf_real *rows = (nf_real *)nf_arena_alloc(&t->arena, n * (size_t)f->ctx_dim * sizeof(nf_real));
        if (!rows) return nf__fail(f, NF_ERR_ARENA_FULL, "context rows", -1);
        for (i = 0; i < n; ++i) memcpy(rows + i * (size_t)f->ctx_dim, tg->ctx, (size_t)f->ctx_dim * sizeof(nf_real));
        tg->ctx = rows;
    }
    l = nf__kl_tape(t, &tp, rng, n, tg, NULL, &c);
    if (!l) return nf__fail(f, tp.err, tp.err == NF_ERR_DIVERGED ? "target returned NaN, +inf or a non-finite gradient, or -inf (outside its support) at every draw" : "building the KL loss", -1);
    if ((r = nf_tape_backward(&tp, l)) != NF_OK) return nf__fail(f, r, "backward", -1);
    if (loss) *loss = (double)l->val[0] + c;
    if (!nf__isfinite(l->val[0])) return nf__fail(f, NF_ERR_DIVERGED, "loss is not finite", -1);
    if ((r = nf__grad_check_finite(t)) != NF_OK) return r;
    return nf__clip_and_update(t);
}
NFDEF nf_result nf_train_step_kl(nf_trainer *t, nf_rng *rng, size_t n, nf_log_density_fn target, void *user, double *loss) {
    nf__target tg;
    if (!t || !target) return NF_ERR_NULL;
    tg.fn = target; tg.fn_ctx = NULL; tg.ctx = NULL; tg.user = user;
    return nf__train_step_kl(t, rng, n, &tg, 0, loss);
}
NFDEF nf_result nf_train_step_kl_ctx(nf_trainer *t, nf_rng *rng, size_t n, const nf_real *ctx, size_t ctx_rows,
                                     nf_log_density_ctx_fn target, void *user, double *loss) {
    nf__target tg;
    if (!t || !target) return NF_ERR_NULL;
    tg.fn = NULL; tg.fn_ctx = target; tg.ctx = ctx; tg.user = user;
    return nf__train_step_kl(t, rng, n, &tg, ctx_rows, loss);
}

/* Mean (or weighted mean) negative log-likelihood of the rows idx[0..m) of y; *wsum gets
   the weights' sum (0: no weight at all). */
static nf_result nf__eval_nll(nf_flow *f, const nf_real *y, const nf_real *ctx, const nf_real *w, const size_t *idx,
                              size_t m, nf_real *rows, nf_real *crow, nf_real *lp, size_t cap, double *out, double *wsum) {
    size_t i, k; double s = 0, ws = 0; int D = f->dim, C = f->ctx_dim; nf_result r;
    for (i = 0; i < m; i += cap) {
        size_t R = m - i < cap ? m - i : cap;
        for (k = 0; k < R; ++k) {
            memcpy(rows + k * (size_t)D, y + idx[i + k] * (size_t)D, (size_t)D * sizeof(nf_real));
            if (C) memcpy(crow + k * (size_t)C, ctx + idx[i + k] * (size_t)C, (size_t)C * sizeof(nf_real));
        }
        if ((r = nf_flow_log_prob_ctx(f, rows, R, C ? crow : NULL, R, lp)) != NF_OK) {
            if (f->err_row >= 0 && (size_t)f->err_row < R) nf__fail_rename_row(f, (long)idx[i + (size_t)f->err_row], " of the data, in the validation split");
            return r;
        }
        for (k = 0; k < R; ++k) {
            double wk = w ? (double)w[idx[i + k]] : 1.0;
            if (wk > 0) s -= wk * (double)lp[k];
            ws += wk;
        }
    }
    *out = ws > 0 ? s / ws : 0; *wsum = ws;
    return NF_OK;
}

/* Opens each periodic circle where the training rows are sparsest (the flow's density
   must vanish at the cut, so the cut belongs where there is least data to misfit): of
   64 bins, the middle of the longest circular run of the emptiest ones. */
static void nf__place_cuts(nf_flow *f, const nf_real *y, const size_t *idx, size_t m) {
    int j, b, best, run, best_run, start; unsigned long cnt[64], lo; size_t i;
    if (!f->dom) return;
    for (j = 0; j < f->dim; ++j) {
        nf_domain *d = &f->dom[j]; double P = d->hi - d->lo;
        if (d->kind != NF_DOMAIN_PERIODIC || d->fixed_cut) continue;
        memset(cnt, 0, sizeof cnt);
        for (i = 0; i < m; ++i) {
            double t = (double)y[idx[i] * (size_t)f->dim + (size_t)j] - d->lo;
            t -= P * floor(t / P);
            b = (int)(t / P * 64); if (b > 63) b = 63; if (b < 0) b = 0;
            cnt[b]++;
        }
        for (lo = cnt[0], b = 1; b < 64; ++b) if (cnt[b] < lo) lo = cnt[b];
        best = 0; best_run = 0; run = 0;
        for (b = 0; b < 128; ++b) {   /* twice round the circle: runs may cross bin 63 -> 0 */
            run = cnt[b % 64] == lo ? run + 1 : 0;
            if (run > 64) run = 64;
            if (run > best_run) { best_run = run; best = b; }
        }
        start = best - best_run + 1;   /* the run is bins start .. best */
        d->cut = d->lo + (((double)start + (double)best) / 2 + 0.5) * P / 64;
        d->cut -= P * floor((d->cut - d->lo) / P);
    }
}

/* Column j (data columns after their domain map) over rows idx[0..m): mean and standard
   deviation, two passes in double (E[x^2] - E[x]^2 cancels catastrophically for a GPS
   time). raw_* describe the values as given, before any map. */
static void nf__column_stats(const nf_flow *f, const nf_real *y, const nf_real *ctx, const size_t *idx, size_t m, int j,
                             double *mean, double *sd, double *raw_mean, double *raw_sd) {
    int pass, D = f->dim, C = f->ctx_dim; size_t i; double s[2] = {0, 0}, q[2] = {0, 0};
    for (pass = 0; pass < 2; ++pass)
        for (i = 0; i < m; ++i) {
            nf_real x = j < D ? y[idx[i] * (size_t)D + (size_t)j] : ctx[idx[i] * (size_t)C + (size_t)(j - D)], u = x, ld;
            if (j < D && f->has_dom && f->dom[j].kind != NF_DOMAIN_REAL) nf__dom_fwd(&f->dom[j], x, &u, &ld);
            if (pass == 0) { s[0] += (double)u; s[1] += (double)x; }
            else { double a = (double)u - s[0], b = (double)x - s[1]; q[0] += a * a; q[1] += b * b; }
            if (pass == 0 && i == m - 1) { s[0] /= (double)m; s[1] /= (double)m; }
        }
    *mean = s[0]; *sd = sqrt(q[0] / (double)m); *raw_mean = s[1]; *raw_sd = sqrt(q[1] / (double)m);
}

/* Fewer than this many representable values per standard deviation: the column's
   information is gone (float holds 24 bits: a GPS time of 1.2e9 s moves in steps of
   128 s, so a spread of milliseconds is all rounding). */
#define NF__MIN_LEVELS 16.0
static nf_result nf__fit_stats(nf_flow *f, const nf_real *y, const nf_real *ctx, const size_t *idx, size_t m,
                               int set_std, nf_real *mean, nf_real *sd) {
    int j, D = f->dim, C = f->ctx_dim;
    for (j = 0; j < D + C; ++j) {
        double mu, s, rmu, rs;
        nf__column_stats(f, y, ctx, idx, m, j, &mu, &s, &rmu, &rs);
        if (j < D && rs == 0) {
            nf__msgbuf mb; mb.s = f->err; mb.n = 0; mb.cap = sizeof f->err;
            nf__msg_str(&mb, nf_result_string(NF_ERR_PRECISION)); nf__msg_str(&mb, ": data column ");
            nf__msg_long(&mb, j);
            if (fabs(rmu) * NF__EPS > 1)   /* steps of this precision exceed 1 there: values may have merged */
                nf__msg_str(&mb, " is constant (its magnitude exceeds this precision's integers: if values differed before rounding, subtract an offset)");
            else nf__msg_str(&mb, " is constant in the training rows: a density needs spread (drop the column)");
            f->err_row = -1;
            return NF_ERR_PRECISION;
        }
        if (rs > 0 && rmu != 0 && rs < NF__MIN_LEVELS * fabs(rmu) * NF__EPS) {
            nf__msgbuf mb; mb.s = f->err; mb.n = 0; mb.cap = sizeof f->err;
            nf__msg_str(&mb, nf_result_string(NF_ERR_PRECISION)); nf__msg_str(&mb, j < D ? ": data column " : ": context column ");
            nf__msg_long(&mb, j < D ? j : j - D); nf__msg_str(&mb, ": spread "); nf__msg_num(&mb, rs);
            nf__msg_str(&mb, " at magnitude "); nf__msg_num(&mb, fabs(rmu));
            nf__msg_str(&mb, sizeof(nf_real) == 4 ? " is below float precision" : " is below double precision");
            nf__msg_str(&mb, ": subtract an offset (e.g. the first value) before fitting");
            f->err_row = -1;
            return NF_ERR_PRECISION;
        }
        mean[j] = (nf_real)mu; sd[j] = (nf_real)(s > 0 ? s : 1.0);   /* a constant context column: no scaling */
    }
    return set_std ? nf_flow_set_standardization(f, mean, sd) : NF_OK;
}

/* fit's scratch, one block: indices | batch rows | batch contexts | batch weights | best
   parameters | log-probs | mean | std */
typedef struct nf__fitbuf { size_t *idx; nf_real *batch, *bc, *bw, *best, *lp, *mean, *sd; void *block; } nf__fitbuf;
static nf_result nf__fit_alloc(nf_flow *f, size_t n, size_t B, nf__fitbuf *fb) {
    size_t parts[8], bytes = 0, k; int ok = 1, D = f->dim, C = f->ctx_dim; unsigned char *p;
    void **dst[8];
    parts[0] = nf__madd(0, n, sizeof(size_t), &ok);
    parts[1] = nf__madd(0, B * sizeof(nf_real), (size_t)D, &ok);   /* also the evaluation chunk's rows */
    parts[2] = nf__madd(sizeof(nf_real), B * sizeof(nf_real), (size_t)C, &ok);
    parts[3] = parts[5] = B * sizeof(nf_real);
    parts[4] = nf__madd(0, f->n_params ? f->n_params : 1, sizeof(nf_real), &ok);
    parts[6] = parts[7] = ((size_t)D + (size_t)C) * sizeof(nf_real);
    for (k = 0; k < 8; ++k) bytes = nf__madd(bytes, nf__al(parts[k]), 1, &ok);
    if (!ok) return nf__fail(f, NF_ERR_OVERFLOW, "fit buffers", -1);
    fb->block = NF_MALLOC(bytes, NULL);
    if (!fb->block) return nf__fail(f, NF_ERR_NOMEM, "fit buffers", -1);
    dst[0] = (void **)&fb->idx; dst[1] = (void **)&fb->batch; dst[2] = (void **)&fb->bc; dst[3] = (void **)&fb->bw;
    dst[4] = (void **)&fb->best; dst[5] = (void **)&fb->lp; dst[6] = (void **)&fb->mean; dst[7] = (void **)&fb->sd;
    for (p = (unsigned char *)fb->block, k = 0; k < 8; p += nf__al(parts[k]), ++k) *dst[k] = p;
    return NF_OK;
}

static void nf__shuffle_idx(size_t *idx, size_t n, nf_rng *rng) {
    size_t i;
    for (i = n; i > 1; --i) {
        size_t k = (size_t)((((uint64_t)nf_rng_u32(rng) << 32) | nf_rng_u32(rng)) % (uint64_t)i), t = idx[i - 1];
        idx[i - 1] = idx[k]; idx[k] = t;
    }
}

/* One epoch over the training rows idx[0..n_tr) in minibatches of B (the last one
   partial); batches whose weights are all zero are skipped. *mean_loss: HUGE_VAL if no
   step was taken. */
static nf_result nf__fit_epoch(nf_trainer *tr, const nf_real *y, const nf_real *ctx, const nf_real *w, nf__fitbuf *fb,
                               size_t n_tr, size_t B, nf_fit_report *rp, double *mean_loss) {
    nf_flow *f = tr->f; int D = f->dim, C = f->ctx_dim; size_t b0, k; double tl = 0; long nb = 0; nf_result r;
    for (b0 = 0; b0 < n_tr; b0 += B) {
        size_t R = n_tr - b0 < B ? n_tr - b0 : B; double l = 0, ws = 0;
        for (k = 0; k < R; ++k) {
            size_t s = fb->idx[b0 + k];
            memcpy(fb->batch + k * (size_t)D, y + s * (size_t)D, (size_t)D * sizeof(nf_real));
            if (C) memcpy(fb->bc + k * (size_t)C, ctx + s * (size_t)C, (size_t)C * sizeof(nf_real));
            if (w) { fb->bw[k] = w[s]; ws += (double)w[s]; }
        }
        if (w && !(ws > 0)) { rp->skipped_batches++; continue; }
        r = nf_train_step_ctx(tr, fb->batch, C ? fb->bc : NULL, w ? fb->bw : NULL, R, &l);
        if (r == NF_ERR_DIVERGED) { rp->rejected_steps++; continue; }
        if (r != NF_OK) {
            if (f->err_row >= 0 && (size_t)f->err_row < R) nf__fail_rename_row(f, (long)fb->idx[b0 + (size_t)f->err_row], " of the data");
            return r;
        }
        rp->steps++; tl += l; nb++;
    }
    *mean_loss = nb ? tl / (double)nb : HUGE_VAL;
    return NF_OK;
}

NFDEF nf_result nf_fit(nf_flow *f, const nf_real *y, size_t n, const nf_real *w,
                       const nf_fit_options *opt, nf_fit_report *rep) {
    return nf_fit_ctx(f, y, NULL, n, w, opt, rep);
}

static nf_result nf__fit_check(nf_flow *f, const nf_real *y, const nf_real *ctx, size_t n, const nf_real *w, const nf_fit_options *o) {
    nf_result r; size_t i;
    if ((r = nf__check_call(f, y, n, y)) != NF_OK) return r;
    if (f->readonly) return nf__fail(f, NF_ERR_READONLY, "cannot train read-only weights", -1);
    if (o->batch < 1) return nf__fail(f, NF_ERR_ARG, "fit options: batch must be >= 1 (start from nf_fit_options_default)", -1);
    if (o->max_epochs < 0) return nf__fail(f, NF_ERR_ARG, "fit options: max_epochs must be >= 0", -1);
    if (o->patience < 0) return nf__fail(f, NF_ERR_ARG, "fit options: patience must be >= 0 (0: never stop early)", -1);
    if (!(o->val_fraction >= 0 && o->val_fraction < 1)) return nf__fail(f, NF_ERR_ARG, "fit options: val_fraction must be in [0, 1)", -1);
    if (o->history_cap < 0 || (o->history_cap > 0 && !o->history)) return nf__fail(f, NF_ERR_ARG, "fit options: history_cap must be >= 0, with a history array when > 0", -1);
    if (o->standardize != 0 && o->standardize != 1) return nf__fail(f, NF_ERR_ARG, "fit options: standardize must be 0 or 1", -1);
    if (nf__adam_check(&o->adam)) return nf__fail(f, NF_ERR_ARG, nf__adam_check(&o->adam), -1);
    if (n < 2) return nf__fail(f, NF_ERR_ARG, "need at least 2 rows", -1);
    if ((r = nf__check_rows(f, y, n, f->dim, "data")) != NF_OK) return r;
    if ((r = nf__check_domain(f, y, n)) != NF_OK) return r;
    if ((r = nf__check_ctx(f, ctx, n, n)) != NF_OK) return r;
    if (w) for (i = 0; i < n; ++i)
        if (!nf__isfinite(w[i]) || w[i] < 0) return nf__fail(f, NF_ERR_NONFINITE, "weights must be finite and >= 0", (long)i);
    return NF_OK;
}

NFDEF nf_result nf_fit_ctx(nf_flow *f, const nf_real *y, const nf_real *ctx, size_t n, const nf_real *w,
                           const nf_fit_options *opt, nf_fit_report *rep) {
    nf_fit_options o; nf_trainer *tr = NULL; nf_rng rng; nf_result r; nf__fitbuf fb;
    size_t n_val, n_tr, i, B, np; long epoch, bad = 0; nf_fit_report rp; double tl, vw = 0;
    memset(&fb, 0, sizeof fb);
    if (rep) memset(rep, 0, sizeof *rep);   /* a refusal reports no steps */
    if (!f) return NF_ERR_NULL;
    if (opt) o = *opt; else nf_fit_options_default(&o);
    if ((r = nf__fit_check(f, y, ctx, n, w, &o)) != NF_OK) return r;
    np = f->n_params;
    n_val = (size_t)((double)n * o.val_fraction);
    if (n_val >= n) n_val = n - 1;
    n_tr = n - n_val;
    if (n_tr < 2) return nf__fail(f, NF_ERR_ARG, "fewer than 2 training rows after holding out val_fraction (lower it, or give more rows)", -1);
    B = (size_t)o.batch < n_tr ? (size_t)o.batch : n_tr;
    if ((r = nf__fit_alloc(f, n, B, &fb)) != NF_OK) return r;
    nf_rng_seed(&rng, o.seed);
    for (i = 0; i < n; ++i) fb.idx[i] = i;
    nf__shuffle_idx(fb.idx, n, &rng);   /* the last n_val rows are held out */
    if (!f->fitted || o.refit) {   /* on the training split, after the domain maps */
        nf__place_cuts(f, y, fb.idx, n_tr);
        if ((r = nf__fit_stats(f, y, ctx, fb.idx, n_tr, o.standardize, fb.mean, fb.sd)) != NF_OK) { NF_FREE(fb.block, NULL); return r; }
        f->fitted = 1;
    }
    /* ActNorm layers never initialised start from the first training rows: a batch, or
       1024 rows if the batch is smaller (a few rows give no spread to scale by) */
    r = nf__data_init(f, y, ctx, fb.idx, n_tr < (B > 1024 ? B : 1024) ? n_tr : (B > 1024 ? B : 1024));
    if (r != NF_OK) { NF_FREE(fb.block, NULL); return r; }
    if (o.adam.schedule == NF_SCHED_COSINE && o.adam.total_steps == 0) {   /* over the whole budget */
        double steps = (double)o.max_epochs * (double)((n_tr + B - 1) / B);
        o.adam.total_steps = steps < 2e9 ? (long)steps : 2000000000L;   /* fits any long */
    }
    r = nf_trainer_create(&tr, f, &o.adam, B);
    if (r != NF_OK) { NF_FREE(fb.block, NULL); return r; }
    memset(&rp, 0, sizeof rp);
    rp.best_val_loss = HUGE_VAL;
    memcpy(fb.best, f->params, np * sizeof(nf_real));
    for (epoch = 1; epoch <= o.max_epochs; ++epoch) {
        nf__shuffle_idx(fb.idx, n_tr, &rng);
        if ((r = nf__fit_epoch(tr, y, ctx, w, &fb, n_tr, B, &rp, &tl)) != NF_OK) break;
        rp.epochs = epoch;
        rp.train_loss = rp.val_loss = tl;
        if (n_val) {   /* a non-finite loss is just bad; an error (a row beyond nf_real once
                          standardised) stops the fit, naming the caller's row */
            double vl;
            r = nf__eval_nll(f, y, ctx, w, fb.idx + n_tr, n_val, fb.batch, fb.bc, fb.lp, B, &vl, &vw);
            if (r != NF_OK) break;
            if (vw > 0) rp.val_loss = nf__isfinite_d(vl) ? vl : HUGE_VAL;   /* no validation weight: train loss */
        }
        if (o.history && epoch <= o.history_cap) {
            o.history[(size_t)(2 * (epoch - 1))] = rp.train_loss; o.history[(size_t)(2 * (epoch - 1) + 1)] = rp.val_loss;
            rp.history_len = epoch;
        }
        if (rp.val_loss < rp.best_val_loss) {
            rp.best_val_loss = rp.val_loss; rp.best_epoch = epoch; bad = 0;
            memcpy(fb.best, f->params, np * sizeof(nf_real));
        } else {
            bad++;
        }
        if (o.callback) {
            nf_fit_progress pr;
            pr.step = rp.steps; pr.epoch = epoch; pr.train_loss = rp.train_loss;
            pr.val_loss = rp.val_loss; pr.best_val_loss = rp.best_val_loss;
            pr.lr = nf_adam_lr(&o.adam, nf_trainer_steps(tr));
            if (o.callback(&pr, o.user)) break;
        }
        if (o.patience > 0 && bad >= o.patience) break;
    }
    if (r == NF_OK && rp.steps == 0 && rp.rejected_steps > 0)
        r = nf__fail(f, NF_ERR_DIVERGED, "every training step was refused (a non-finite loss or gradient): lower adam.lr, or check the data", -1);
    /* on every exit, errors too: the best epoch's parameters, or the initial ones */
    memcpy(f->params, fb.best, np * sizeof(nf_real));
    nf_trainer_destroy(tr);
    NF_FREE(fb.block, NULL);
    if (rep) *rep = rp;
    return r;
}

/* ---- inference from a likelihood ------------------------------------------------------ */
NFDEF void nf_infer_options_default(nf_infer_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->max_evals = 1000000; o->starts = 16; o->init_sd = 2; o->batch = 64; o->max_steps = 4000;
    o->lr = 2e-3; o->khat_max = 0.5; o->ess_fraction_min = 0.5; o->kl_max = 0.1; o->ess_min = 1000; o->chains = 4; o->refits = 4; o->rhat_max = 1.01; o->seed = 1;
}
#ifndef NFLOW_NO_IMPORTANCE


/* ---- small dense linear algebra in double (row-major D x D) ---- */
/* Cholesky A = L L^T in place (lower triangle); 0 if not positive definite */
static int nf__chol(double *A, int D) {
    int i, j, k;
    for (j = 0; j < D; ++j) {
        double s = A[NF__IX(j, D, j)];
        for (k = 0; k < j; ++k) s -= A[NF__IX(j, D, k)] * A[NF__IX(j, D, k)];
        if (!(s > 0) || !nf__isfinite_d(s)) return 0;
        s = sqrt(s);
        A[NF__IX(j, D, j)] = s;
        for (i = j + 1; i < D; ++i) {
            double t = A[NF__IX(i, D, j)];
            for (k = 0; k < j; ++k) t -= A[NF__IX(i, D, k)] * A[NF__IX(j, D, k)];
            A[NF__IX(i, D, j)] = t / s;
        }
        for (k = j + 1; k < D; ++k) A[NF__IX(j, D, k)] = 0;
    }
    return 1;
}
/* eigen-decomposition of a symmetric A (destroyed) by cyclic Jacobi: values in lam, vectors
   in the columns of V */
static void nf__jacobi(double *A, int D, double *lam, double *V) {
    int i, j, k, sweep;
    for (i = 0; i < D; ++i) for (j = 0; j < D; ++j) V[NF__IX(i, D, j)] = i == j;
    for (sweep = 0; sweep < 60; ++sweep) {
        double off = 0, tot = 0;
        for (i = 0; i < D; ++i) for (j = 0; j < D; ++j) {
            double a = A[NF__IX(i, D, j)] * A[NF__IX(i, D, j)];
            tot += a; if (i != j) off += a;
        }
        if (off <= 1e-30 * tot || off == 0) break;
        for (i = 0; i < D - 1; ++i) for (j = i + 1; j < D; ++j) {
            double aij = A[NF__IX(i, D, j)], th, t, c, s;
            if (fabs(aij) < 1e-300) continue;
            th = (A[NF__IX(j, D, j)] - A[NF__IX(i, D, i)]) / (2 * aij);
            t = (th >= 0 ? 1 : -1) / (fabs(th) + sqrt(th * th + 1));
            c = 1 / sqrt(t * t + 1); s = t * c;
            for (k = 0; k < D; ++k) {   /* columns i, j */
                double a = A[NF__IX(k, D, i)], b = A[NF__IX(k, D, j)];
                A[NF__IX(k, D, i)] = c * a - s * b; A[NF__IX(k, D, j)] = s * a + c * b;
            }
            for (k = 0; k < D; ++k) {   /* rows i, j */
                double a = A[NF__IX(i, D, k)], b = A[NF__IX(j, D, k)];
                A[NF__IX(i, D, k)] = c * a - s * b; A[NF__IX(j, D, k)] = s * a + c * b;
            }
            for (k = 0; k < D; ++k) {
                double a = V[NF__IX(k, D, i)], b = V[NF__IX(k, D, j)];
                V[NF__IX(k, D, i)] = c * a - s * b; V[NF__IX(k, D, j)] = s * a + c * b;
            }
        }
    }
    for (i = 0; i < D; ++i) lam[i] = A[NF__IX(i, D, i)];
}

/* ---- the target in unconstrained coordinates --------------------------------------
   u -> y through the flow's domain maps; log p_u(u) = log p~(y(u)) + log|dy/du|. */
typedef struct nf__inf {
    nf_flow *f; nf_log_density_fn fn; void *user;
    int D; long evals, max_evals;
    int lenient;             /* search: a finite value with a non-finite gradient (nf_real overflow
                                at an extreme trial point) counts as a point outside the support */
    nf_real *y, *lp, *g;     /* callback buffers (cap rows) */
    unsigned char *oob;      /* cap flags: a row beyond nf_real */
    size_t cap;
    const char *stage;
} nf__inf;

/* y from u (double) per dimension, with log|dy/du|, dy/du and d/du log|dy/du| */
static void nf__u2y(const nf_domain *m, double u, nf_real *y, double *ld, double *dy, double *dld) {
    nf_real yr;
    double s;
    switch (m->kind) {
    case NF_DOMAIN_LOWER:
        nf__dom_inv(m, (nf_real)u, &yr);
        *y = yr; *ld = u; *dy = exp(u); *dld = 1;
        return;
    case NF_DOMAIN_INTERVAL: case NF_DOMAIN_PERIODIC:
        nf__dom_inv(m, (nf_real)u, &yr);
        s = u > 0 ? 1 / (1 + exp(-u)) : exp(u) / (1 + exp(u));
        *y = yr;
        *ld = log(m->hi - m->lo) - (u > 0 ? u + log1p(exp(-u)) : log1p(exp(u))) - (u > 0 ? log1p(exp(-u)) : -u + log1p(exp(u)));
        *dy = (m->hi - m->lo) * s * (1 - s); *dld = -tanh(u / 2);
        return;
    default:
        *y = (nf_real)u; *ld = 0; *dy = 1; *dld = 0;
    }
}

/* n rows of u: lp (log p_u, -inf outside the support) and, when g is given, its gradient.
   NF_ERR_ARG when the callback fails, NF_ERR_NONFINITE for a NaN or +inf value or a
   non-finite gradient at a finite value (the message names the row and its values). */
static nf_result nf__eval_u(nf__inf *s, const double *u, size_t n, double *lp, double *g) {
    nf_flow *f = s->f; int D = s->D, j; size_t i, k;
    for (k = 0; k < n; k += s->cap) {
        size_t R = n - k < s->cap ? n - k : s->cap;
        double lds[1];
        for (i = 0; i < R; ++i) {
            int fin = 1;
            for (j = 0; j < D; ++j) {
                double ld, dy, dld;
                nf__u2y(&f->dom[j], u[NF__IX((k + i), D, j)], &s->y[NF__IX(i, D, j)], &ld, &dy, &dld);
                fin &= nf__isfinite(s->y[NF__IX(i, D, j)]) && nf__isfinite_d(u[NF__IX((k + i), D, j)]);
            }
            s->oob[i] = !fin;   /* beyond nf_real (a search's wild trial point): not the target's to see */
            if (!fin) for (j = 0; j < D; ++j) s->y[NF__IX(i, D, j)] = i > 0 ? s->y[j] : (nf_real)(f->dom[j].kind == NF_DOMAIN_REAL ? 0 : f->dom[j].kind == NF_DOMAIN_LOWER ? f->dom[j].lo + 1 : 0.5 * (f->dom[j].lo + f->dom[j].hi));
        }
        if (s->fn(s->y, R, D, s->lp, g ? s->g : NULL, s->user) != 0) {
            nf__msgbuf mb; mb.s = f->err; mb.n = 0; mb.cap = sizeof f->err;
            nf__msg_str(&mb, "target callback failed (returned nonzero) during the "); nf__msg_str(&mb, s->stage);
            f->err_row = -1;
            return NF_ERR_ARG;
        }
        s->evals += (long)R;
        (void)lds;
        for (i = 0; i < R; ++i) {
            double v = (double)s->lp[i], acc = 0; int bad = 0;
            if (s->oob[i] || nf__is_neg_inf(v)) { lp[k + i] = -HUGE_VAL; if (g) for (j = 0; j < D; ++j) g[NF__IX((k + i), D, j)] = 0; continue; }
            if (!nf__isfinite_d(v)) bad = 1;
            for (j = 0; j < D && !bad; ++j) {
                double ld, dy, dld; nf_real yy;
                nf__u2y(&f->dom[j], u[NF__IX((k + i), D, j)], &yy, &ld, &dy, &dld);
                acc += ld;
                if (g) {
                    double gy = (double)s->g[NF__IX(i, D, j)];
                    if (!nf__isfinite_d(gy)) bad = 2;
                    g[NF__IX((k + i), D, j)] = gy * dy + dld;
                }
            }
            if (bad == 2 && s->lenient) { lp[k + i] = -HUGE_VAL; for (j = 0; j < D; ++j) g[NF__IX((k + i), D, j)] = 0; continue; }
            if (bad) {
                nf__msgbuf mb; mb.s = f->err; mb.n = 0; mb.cap = sizeof f->err;
                nf__msg_str(&mb, bad == 1 ? "target returned a NaN or +inf log-density" : "target returned a non-finite gradient");
                nf__msg_str(&mb, " during the "); nf__msg_str(&mb, s->stage); nf__msg_str(&mb, " at (");
                for (j = 0; j < D && j < 6; ++j) { if (j) nf__msg_str(&mb, ", "); if (s->y[NF__IX(i, D, j)] < 0) nf__msg_str(&mb, "-"); nf__msg_num(&mb, fabs((double)s->y[NF__IX(i, D, j)])); }
                nf__msg_str(&mb, D > 6 ? ", ...)" : ")");
                f->err_row = (long)i;
                return NF_ERR_NONFINITE;
            }
            lp[k + i] = v + acc;
        }
    }
    return NF_OK;
}

/* ---- mode search: L-BFGS on -log p_u ------------------------------------------------ */
#define NF__LBFGS_M 8
/* Maximises log p_u from u (in place). fu, g: value and gradient there. work: (2M + 3) D
   doubles. Returns 1 if it converged, 0 if it stopped (budget, no progress), -1 if the
   start has zero density, -2 if the density grows without bound (no mode). */
static int nf__lbfgs(nf__inf *s, double *u, double *fu, double *g, int max_iter, double *work, nf_result *err) {
    int D = s->D, it, j, m = 0, head = 0, q, stall = 0;
    double *S = work, *Y = S + NF__LBFGS_M * D, *d = Y + NF__LBFGS_M * D, *un = d + D, *gn = un + D;
    double rho[NF__LBFGS_M], al[NF__LBFGS_M], f0, fn, gam = 1;
    double tol = sizeof(nf_real) == 4 ? 1e-6 : 1e-10;
    *err = nf__eval_u(s, u, 1, &f0, g);
    if (*err != NF_OK) return 0;
    if (!(f0 > -HUGE_VAL)) return -1;
    for (it = 0; it < max_iter; ++it) {
        double gd = 0, a = 1, gnorm = 0;
        /* two-loop recursion: d = H grad (ascent direction) */
        for (j = 0; j < D; ++j) { d[j] = g[j]; gnorm += g[j] * g[j]; }
        gnorm = sqrt(gnorm);
        if (gnorm == 0) { *fu = f0; return 1; }
        for (q = 0; q < m; ++q) {
            int i = (head - 1 - q + NF__LBFGS_M) % NF__LBFGS_M; double t = 0;
            for (j = 0; j < D; ++j) t += S[i * D + j] * d[j];
            al[i] = rho[i] * t;
            for (j = 0; j < D; ++j) d[j] -= al[i] * Y[i * D + j];
        }
        if (m == 0) gam = 1 / gnorm < 1 ? 1 / gnorm : 1;   /* first step: at most unit length */
        for (j = 0; j < D; ++j) d[j] *= gam;
        for (q = m - 1; q >= 0; --q) {
            int i = (head - 1 - q + NF__LBFGS_M) % NF__LBFGS_M; double t = 0;
            for (j = 0; j < D; ++j) t += Y[i * D + j] * d[j];
            for (j = 0; j < D; ++j) d[j] += S[i * D + j] * (al[i] - rho[i] * t);
        }
        for (j = 0; j < D; ++j) gd += g[j] * d[j];
        if (!(gd > 0)) { for (j = 0; j < D; ++j) d[j] = g[j] / gnorm; gd = gnorm; m = 0; }   /* not ascent: restart */
        for (q = 0; q < 50; ++q, a *= 0.5) {   /* backtracking on the Armijo condition */
            for (j = 0; j < D; ++j) un[j] = u[j] + a * d[j];
            if (s->evals >= s->max_evals) { *fu = f0; return 0; }
            if ((*err = nf__eval_u(s, un, 1, &fn, gn)) != NF_OK) return 0;
            if (fn > -HUGE_VAL && fn >= f0 + 1e-4 * a * gd) break;
        }
        if (q == 50) { *fu = f0; return 1; }   /* no step gains: as good as it gets here */
        {   double sy = 0, yy = 0, ss = 0, big = 0;
            for (j = 0; j < D; ++j) {
                double sj = un[j] - u[j], yj = g[j] - gn[j];   /* for -log p: y = grad(new) - grad(old) */
                S[head * D + j] = sj; Y[head * D + j] = yj;
                sy += sj * yj; yy += yj * yj; ss += sj * sj;
                u[j] = un[j]; g[j] = gn[j];
                if (fabs(u[j]) > big) big = fabs(u[j]);
            }
            if (sy > 1e-12 * sqrt(ss * yy)) {
                rho[head] = 1 / sy; gam = sy / yy;
                head = (head + 1) % NF__LBFGS_M; if (m < NF__LBFGS_M) ++m;
            }
            if (big > 1e8 || fn > 1e300) { *fu = fn; return -2; }
            stall = fn - f0 < tol * (1 + fabs(fn)) ? stall + 1 : 0;
            f0 = fn;
            if (stall >= 4) { *fu = f0; return 1; }
        }
    }
    *fu = f0;
    return 0;
}

/* u from y in double (the inverse of nf__u2y), to know the step a rounded y really took */
static double nf__y2u(const nf_domain *m, nf_real yr) {
    double y = (double)yr, P = m->hi - m->lo, t;
    switch (m->kind) {
    case NF_DOMAIN_LOWER: return log(y - m->lo);
    case NF_DOMAIN_INTERVAL: return log(y - m->lo) - log(m->hi - y);
    case NF_DOMAIN_PERIODIC: t = y - m->cut; t -= P * floor(t / P); return log(t) - log(P - t);
    default: return y;
    }
}
/* A Gaussian around a point: mean m, covariance from the negative Hessian of log p_u by
   central differences of the gradient, made positive definite (eigenvalues to their
   magnitude, floored). L: its Cholesky factor; ldet: log det of the covariance. */
typedef struct nf__mode { double *m, *L, f, ldet, logw; int saddle; } nf__mode;
static nf_result nf__laplace(nf__inf *s, nf__mode *md, double *work) {
    int D = s->D, i, j, pass; nf_result r;
    double *H = work, *V = H + (size_t)D * (size_t)D, *lam = V + (size_t)D * (size_t)D, *h = lam + D, *up = h + D, *gp = up + D, *gm = gp + D, *sc = gm + D;
    double rel = sizeof(nf_real) == 4 ? 1e-2 : 1e-5, lmax = 0, fp, fm;
    for (j = 0; j < D; ++j) h[j] = rel;
    for (pass = 0; pass < 2; ++pass) {   /* the second pass with steps scaled to each sd */
        for (j = 0; j < D; ++j) {
            double ua, ub, l0, d0, e0; nf_real yv;
            memcpy(up, md->m, (size_t)D * sizeof(double));
            up[j] = md->m[j] + h[j];
            nf__u2y(&s->f->dom[j], up[j], &yv, &l0, &d0, &e0); ua = nf__y2u(&s->f->dom[j], yv);
            if ((r = nf__eval_u(s, up, 1, &fp, gp)) != NF_OK) return r;
            up[j] = md->m[j] - h[j];
            nf__u2y(&s->f->dom[j], up[j], &yv, &l0, &d0, &e0); ub = nf__y2u(&s->f->dom[j], yv);
            if ((r = nf__eval_u(s, up, 1, &fm, gm)) != NF_OK) return r;
            if (!(ua > ub)) { ua = md->m[j] + h[j]; ub = md->m[j] - h[j]; }   /* the step the rounded points took */
            for (i = 0; i < D; ++i) H[NF__IX(i, D, j)] = -(gp[i] - gm[i]) / (ua - ub);
            if (!(fp > -HUGE_VAL) || !(fm > -HUGE_VAL)) for (i = 0; i < D; ++i) H[NF__IX(i, D, j)] = (i == j);
        }
        for (j = 0; j < D; ++j) {
            double sd = H[NF__IX(j, D, j)] > 0 ? 1 / sqrt(H[NF__IX(j, D, j)]) : 1;
            h[j] = rel * (sd < 1e6 ? sd : 1e6);
        }
    }
    for (i = 0; i < D; ++i) for (j = 0; j < i; ++j) {   /* symmetrise */
        double a = 0.5 * (H[NF__IX(i, D, j)] + H[NF__IX(j, D, i)]);
        H[NF__IX(i, D, j)] = H[NF__IX(j, D, i)] = a;
    }
    for (j = 0; j < D; ++j) sc[j] = 1 / sqrt(fabs(H[NF__IX(j, D, j)]) > 1e-300 ? fabs(H[NF__IX(j, D, j)]) : 1);
    for (i = 0; i < D; ++i) for (j = 0; j < D; ++j) H[NF__IX(i, D, j)] *= sc[i] * sc[j];
    nf__jacobi(H, D, lam, V);
    md->saddle = 0;
    for (j = 0; j < D; ++j) { if (lam[j] <= 0) md->saddle = 1; if (fabs(lam[j]) > lmax) lmax = fabs(lam[j]); }
    for (j = 0; j < D; ++j) { lam[j] = fabs(lam[j]); if (lam[j] < 1e-8 * lmax) lam[j] = 1e-8 * lmax; if (!(lam[j] > 0)) lam[j] = 1; }
    /* covariance = Sc V diag(1/lam) V^T Sc */
    for (i = 0; i < D; ++i) for (j = 0; j <= i; ++j) {
        double a = 0; int k;
        for (k = 0; k < D; ++k) a += V[NF__IX(i, D, k)] * V[NF__IX(j, D, k)] / lam[k];
        md->L[NF__IX(i, D, j)] = md->L[NF__IX(j, D, i)] = a * sc[i] * sc[j];
    }
    if (!nf__chol(md->L, D)) return NF_ERR_RANGE;
    md->ldet = 0;
    for (j = 0; j < D; ++j) md->ldet += 2 * log(md->L[NF__IX(j, D, j)]);
    md->logw = md->f + 0.5 * md->ldet + 0.5 * D * NF__LOG_2PI;   /* Laplace evidence */
    return NF_OK;
}
/* squared Mahalanobis distance of x from mode md: |L^-1 (x - m)|^2 */
static double nf__mahal(const nf__mode *md, const double *x, int D, double *t) {
    int i, k; double s = 0;
    for (i = 0; i < D; ++i) {
        double a = x[i] - md->m[i];
        for (k = 0; k < i; ++k) a -= md->L[NF__IX(i, D, k)] * t[k];
        t[i] = a / md->L[NF__IX(i, D, i)];
        s += t[i] * t[i];
    }
    return s;
}

/* One reverse-KL step that keeps its draws (rec) and gives the draws' ELBO estimate (-inf
   when every draw fell outside the support: then nothing changes). A NaN or +inf target
   value or gradient: NF_ERR_NONFINITE with rec->bad_row; a refused step: NF_ERR_DIVERGED. */
static nf_result nf__infer_step(nf_trainer *t, nf_rng *rng, size_t n, nf__target *tg, nf__klrec *rec, double *elbo) {
    nf_tape tp; nf_tensor *l; double c, s = 0; nf_result r; size_t i, k = 0; nf_flow *f = t->f; long out0 = rec->outside;
    memset(t->grad, 0, f->n_params * sizeof(nf_real));
    nf_arena_reset(&t->arena);
    nf_tape_init(&tp, &t->arena); tp.par = &f->par;
    rec->bad_row = -1;
    *elbo = -HUGE_VAL;
    l = nf__kl_tape(t, &tp, rng, n, tg, rec, &c);
    if (!l) {
        if (tp.err == NF_ERR_DIVERGED && rec->bad_row >= 0) return NF_ERR_NONFINITE;
        if (tp.err == NF_ERR_DIVERGED && rec->outside - out0 == (long)n) return NF_OK;   /* all outside: no step */
        return tp.err != NF_OK ? tp.err : NF_ERR_ARENA_FULL;
    }
    for (i = 0; i < n; ++i) if (rec->lp[i] > -HUGE_VAL) { s += rec->lp[i] - rec->lq[i]; ++k; }
    if (k) *elbo = s / (double)k;
    if ((r = nf_tape_backward(&tp, l)) != NF_OK) return r;
    if (!nf__isfinite(l->val[0])) return NF_ERR_DIVERGED;
    if ((r = nf__grad_check_finite(t)) != NF_OK) return r;
    return nf__clip_and_update(t);
}

/* ---- MCMC diagnostics: rank-normalised split R-hat and bulk ESS (Vehtari, Gelman,
   Simpson, Carpenter, Buerkner 2021) ---- */
/* standard normal quantile: Abramowitz-Stegun 26.2.23, then two Newton steps on erfc */
static double nf__qnorm(double p) {
    double q = p < 0.5 ? p : 1 - p, t = sqrt(-2 * log(q)), x;
    int i;
    x = t - (2.515517 + 0.802853 * t + 0.010328 * t * t) / (1 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t);
    if (p < 0.5) x = -x;
    for (i = 0; i < 2; ++i) {
        double e = 0.5 * erfc(-x / 1.4142135623730951) - p, d = exp(-0.5 * x * x) / 2.5066282746310002;
        if (d > 0) x -= e / d;
    }
    return x;
}
/* v[0 .. M N) (M chains of N, chain-major) -> normal scores of their ranks, ties averaged */
static void nf__rank_normal(double *v, size_t S, size_t *idx) {
    size_t i = 0, k;
    nf__argsort(idx, v, S);
    while (i < S) {
        size_t j = i; double r, z;
        while (j + 1 < S && v[idx[j + 1]] == v[idx[i]]) ++j;
        r = 0.5 * ((double)i + (double)j) + 1;               /* average rank, 1-based */
        z = nf__qnorm((r - 0.375) / ((double)S + 0.25));
        for (k = i; k <= j; ++k) v[idx[k]] = z;
        i = j + 1;
    }
}
/* R-hat and ESS of M chains of N draws (chain-major) */
static void nf__rhat_ess_raw(const double *v, int M, size_t N, double *rhat, double *ess) {
    double W = 0, mm = 0, B = 0, vp, sum = 0, prev = HUGE_VAL; int c; size_t t, i;
    double mean[64];   /* M <= 64 (2 x 32 chains) */
    for (c = 0; c < M; ++c) {
        double s = 0, q = 0;
        for (i = 0; i < N; ++i) s += v[(size_t)c * N + i];
        mean[c] = s / (double)N;
        for (i = 0; i < N; ++i) { double d = v[(size_t)c * N + i] - mean[c]; q += d * d; }
        W += q / ((double)N - 1);
        mm += mean[c];
    }
    W /= M; mm /= M;
    for (c = 0; c < M; ++c) B += (mean[c] - mm) * (mean[c] - mm);
    B = B / (M - 1) * (double)N;
    vp = ((double)N - 1) / (double)N * W + B / (double)N;
    *rhat = W > 0 ? sqrt(vp / W) : (B > 0 ? HUGE_VAL : 1);
    if (!(vp > 0)) { *ess = 1; return; }
    for (t = 0; t + 1 < N; t += 2) {   /* Geyer: sums of pairs while positive, monotone */
        double rho[2]; int h;
        for (h = 0; h < 2; ++h) {
            double ac = 0;
            for (c = 0; c < M; ++c) {
                double a = 0; const double *x = v + (size_t)c * N;
                for (i = 0; i + t + (size_t)h < N; ++i) a += (x[i] - mean[c]) * (x[i + t + (size_t)h] - mean[c]);
                ac += a / (double)N;
            }
            ac /= M;
            rho[h] = t + (size_t)h == 0 ? 1 : 1 - (W * ((double)N - 1) / (double)N - ac) / vp;
        }
        if (rho[0] + rho[1] < 0) break;
        if (rho[0] + rho[1] > prev) rho[1] = prev - rho[0];
        prev = rho[0] + rho[1];
        sum += prev;
    }
    {   double tau = -1 + 2 * sum;
        if (tau < 1.0 / log10((double)M * (double)N)) tau = 1.0 / log10((double)M * (double)N);
        *ess = (double)M * (double)N / tau;
    }
}
/* worst (largest) R-hat over bulk and folded draws, and bulk ESS, of parameter column j of
   C chains of N draws x D (chain c starts at row c stride); split into 2C half chains.
   Scratch: 2 C N doubles, C N indices. */
static void nf__rhat_ess(const double *tr, int C, size_t N, size_t stride, int D, int j, double *rhat, double *ess, double *tail, double *v, size_t *idx) {
    size_t h = N / 2, S = (size_t)2 * (size_t)C * h, i; int c; double r1, r2, e2, med;
    for (c = 0; c < C; ++c) for (i = 0; i < 2 * h; ++i) v[(size_t)c * 2 * h + i] = tr[((size_t)c * stride + (N - 2 * h) + i) * (size_t)D + (size_t)j];
    memcpy(v + S, v, S * sizeof(double));
    nf__argsort(idx, v + S, S);
    {   /* tail ESS: of the indicators below the 5% and above the 95% quantile (slow tails
           show here first) */
        double q05 = v[S + idx[S / 20]], q95 = v[S + idx[S - 1 - S / 20]], e5, e95, rr;
        for (i = 0; i < S; ++i) v[i] = v[S + i] <= q05 ? 1 : 0;
        nf__rhat_ess_raw(v, 2 * C, h, &rr, &e5);
        for (i = 0; i < S; ++i) v[i] = v[S + i] >= q95 ? 1 : 0;
        nf__rhat_ess_raw(v, 2 * C, h, &rr, &e95);
        memcpy(v, v + S, S * sizeof(double));
        *tail = e5 < e95 ? e5 : e95;
    }
    med = v[S + idx[S / 2]];   /* folded below: |x - median| */
    nf__rank_normal(v, S, idx);
    nf__rhat_ess_raw(v, 2 * C, h, &r1, ess);
    for (i = 0; i < S; ++i) v[S + i] = fabs(v[S + i] - med);
    nf__rank_normal(v + S, S, idx);
    nf__rhat_ess_raw(v + S, 2 * C, h, &r2, &e2);
    *rhat = r1 > r2 ? r1 : r2;
}

/* ---- the driver ---------------------------------------------------------------------- */
#define NF__MAXMODES 8
typedef struct nf__ibuf {
    nf__mode mode[NF__MAXMODES];
    double *cand, *candf, *work, *g;   /* starts' end points and values; L-BFGS/Laplace scratch */
    int *cand_code;
    nf_real *kx; double *klq, *klp;    /* reverse-KL draws of the last W steps (ring) */
    nf_real *cz, *cy, *cw; double *clq, *clp, *clw, *cld;   /* the check's draws; cw: weights of a step */
    size_t *idx; double *tail;
} nf__ibuf;

/* the flow's message: a, then b */
static void nf__infer_msg(nf_flow *f, const char *a, const char *b) {
    nf__msgbuf mb; mb.s = f->err; mb.n = 0; mb.cap = sizeof f->err;
    nf__msg_str(&mb, a); nf__msg_str(&mb, b);
    f->err_row = -1;
}

/* mode[0]: the Laplace Gaussian at the best of the nc candidates so far */
static nf_result nf__laplace_best(nf__inf *s, nf__ibuf *ib, int nc, double *key) {
    int c, best = 0, D = s->D;
    for (c = 1; c < nc; ++c) if (ib->candf[c] > ib->candf[best]) best = c;
    memcpy(ib->mode[0].m, ib->cand + (size_t)best * (size_t)D, (size_t)D * sizeof(double));
    ib->mode[0].f = ib->candf[best];
    (void)key;
    return nf__laplace(s, &ib->mode[0], ib->work);
}
/* Mode search from several starts; fills ib->mode[0 .. *K). *unbounded: some search found
   the density growing without bound. */
static nf_result nf__infer_search(nf__inf *s, const nf_infer_options *o, nf_rng *rng, nf__ibuf *ib, int *K, int *unbounded) {
    nf_flow *f = s->f; int D = s->D, k, j, tries, n = o->starts, nc = 0, c; nf_result r = NF_OK; double key[64] = {0};
    int max_iter = 100 + 20 * D;
    int n1 = (n + 1) / 2, round;
    *K = 0; *unbounded = 0;
    s->stage = "mode search"; s->lenient = 1;
    /* two rounds: half the starts random at three scales (and the caller's); then, once the
       best mode and its scale are known, the other half far around it (4, 8 and 16 of its
       sds in random directions): a second mode a dozen sds away lies in their reach */
    for (round = 0; round < 2; ++round) {
    if (round == 1) {
        if (nc == 0 || n1 >= n) break;
        s->lenient = 0;
        r = nf__laplace_best(s, ib, nc, key);
        if (r == NF_ERR_RANGE) break;
        if (r != NF_OK) return r;
        s->lenient = 1;
    }
    for (k = round ? n1 : 0; k < (round ? n : n1); ++k) {
        double *u = ib->cand + (size_t)nc * (size_t)D;
        int code = -1;
        for (tries = 0; tries < 8 && code == -1; ++tries) {
            if ((size_t)k < o->n_init && tries == 0) {
                for (j = 0; j < D; ++j) {
                    nf_real v, ld;
                    nf__dom_fwd(&f->dom[j], o->init[NF__IX(k, D, j)], &v, &ld);
                    u[j] = (double)v;
                }
            } else if (round == 1) {   /* mode[0] + c L e, c cycling through 4, 8, 16 */
                double c2 = (k - n1) % 3 == 0 ? 4 : (k - n1) % 3 == 1 ? 8 : 16, *e = ib->g; int q;
                for (j = 0; j < D; ++j) e[j] = (double)nf_rng_normal(rng);
                for (j = 0; j < D; ++j) {
                    double a2 = ib->mode[0].m[j];
                    for (q = 0; q <= j; ++q) a2 += c2 * ib->mode[0].L[NF__IX(j, D, q)] * e[q];
                    u[j] = a2;
                }
            } else {
                double sc = o->init_sd * (k % 3 == 0 ? 1 : k % 3 == 1 ? 0.5 : 2);   /* three scales */
                for (j = 0; j < D; ++j) u[j] = sc * (double)nf_rng_normal(rng);
            }
            code = nf__lbfgs(s, u, &ib->candf[nc], ib->g, max_iter, ib->work, &r);
            if (r != NF_OK) return r;
            if (s->evals >= s->max_evals) break;
        }
        if (code == -2) { *unbounded = 1; continue; }
        if (code == -1) continue;
        ib->cand_code[nc++] = code;
        if (s->evals >= s->max_evals) break;
    }
    }
    {   /* distinct modes, best first: a point within reach of a kept mode is that mode */
        size_t order[64];
        for (c = 0; c < nc; ++c) key[c] = -ib->candf[c];
        nf__argsort(order, key, (size_t)nc);
        for (c = 0; c < nc && *K < NF__MAXMODES; ++c) {
            const double *u = ib->cand + order[c] * (size_t)D; int dup = 0; nf__mode *md;
            for (k = 0; k < *K && !dup; ++k) dup = nf__mahal(&ib->mode[k], u, D, ib->g) < (D > 4 ? D : 4);
            if (dup) continue;
            md = &ib->mode[*K];
            memcpy(md->m, u, (size_t)D * sizeof(double));
            md->f = ib->candf[order[c]];
            s->lenient = 0;
            r = nf__laplace(s, md, ib->work);
            if (r == NF_ERR_RANGE) continue;   /* no usable curvature here */
            if (r != NF_OK) return r;
            ++*K;
        }
    }
    {   /* weights by importance sampling from each mode's Gaussian (a spike at the end of a
           funnel gets the little mass it holds), with a broad Gaussian around the starts'
           centre as one more candidate: a density with no usable mode still gets a start */
        int kk;
        if (*K < NF__MAXMODES) {
            nf__mode *md = &ib->mode[*K];
            for (j = 0; j < D; ++j) md->m[j] = 0;
            for (j = 0; j < D * D; ++j) md->L[j] = 0;
            for (j = 0; j < D; ++j) md->L[NF__IX(j, D, j)] = o->init_sd / 2;
            md->saddle = 1;
            ++*K;
        }
        for (kk = 0; kk < *K; ++kk) {
            nf__mode *md = &ib->mode[kk]; double lw[64], mx = -HUGE_VAL, sum = 0, *u = ib->work, *e = ib->work + 64 * D, lq, ld2 = 0;
            for (j = 0; j < D; ++j) ld2 += log(md->L[NF__IX(j, D, j)]);
            for (c = 0; c < 64; ++c) {
                int i, q;
                for (j = 0; j < D; ++j) e[j] = (double)nf_rng_normal(rng);
                for (i = 0; i < D; ++i) { double a = md->m[i]; for (q = 0; q <= i; ++q) a += md->L[NF__IX(i, D, q)] * e[q]; u[NF__IX(c, D, i)] = a; }
                for (lq = 0, j = 0; j < D; ++j) lq -= 0.5 * e[j] * e[j];
                lw[c] = lq - ld2 - 0.5 * D * NF__LOG_2PI;   /* log q for now */
            }
            if ((r = nf__eval_u(s, u, 64, key, NULL)) != NF_OK) return r;
            for (c = 0; c < 64; ++c) { lw[c] = key[c] > -HUGE_VAL ? key[c] - lw[c] : -HUGE_VAL; if (lw[c] > mx) mx = lw[c]; }
            for (c = 0; c < 64; ++c) if (lw[c] > -HUGE_VAL) sum += exp(lw[c] - mx);
            md->logw = sum > 0 ? mx + log(sum / 64) : -HUGE_VAL;
        }
    }
    if (*K > 0) {   /* drop modes with negligible weight */
        double best = -HUGE_VAL; int kk = 0;
        for (k = 0; k < *K; ++k) if (ib->mode[k].logw > best) best = ib->mode[k].logw;
        for (k = 0; k < *K; ++k) if (ib->mode[k].logw > best - 12) {
            if (kk != k) { nf__mode t = ib->mode[kk]; ib->mode[kk] = ib->mode[k]; ib->mode[k] = t; }
            ++kk;
        }
        *K = kk;
    }
    return NF_OK;
}

/* draw u from the mixture of the K Laplace Gaussians */
static void nf__mix_draw(const nf__ibuf *ib, int K, int D, nf_rng *rng, double *u, double *e) {
    double tot = 0, pick, acc = 0, mx = -HUGE_VAL; int k, i, j;
    for (k = 0; k < K; ++k) if (ib->mode[k].logw > mx) mx = ib->mode[k].logw;
    for (k = 0; k < K; ++k) tot += exp(ib->mode[k].logw - mx);
    pick = (double)nf_rng_uniform(rng) * tot;
    for (k = 0; k < K - 1; ++k) { acc += exp(ib->mode[k].logw - mx); if (pick < acc) break; }
    for (j = 0; j < D; ++j) e[j] = (double)nf_rng_normal(rng);
    for (i = 0; i < D; ++i) {
        double a = ib->mode[k].m[i];
        for (j = 0; j <= i; ++j) a += ib->mode[k].L[NF__IX(i, D, j)] * e[j];
        u[i] = a;
    }
}

/* Starts the flow at the modes: weights reset (every layer the identity), standardisation
   to the mixture's mean and sds, and a first LU layer set to whiten its correlations.
   Returns 1 if the flow is then exactly the (one-mode) Laplace Gaussian. */
static int nf__infer_place(nf_flow *f, const nf__ibuf *ib, int K, double *C, double *mu) {
    int D = f->dim, i, j, k; double tot = 0, mx = -HUGE_VAL;
    nf__init_params(f);
    for (k = 0; k < K; ++k) if (ib->mode[k].logw > mx) mx = ib->mode[k].logw;
    for (k = 0; k < K; ++k) tot += exp(ib->mode[k].logw - mx);
    for (j = 0; j < D; ++j) mu[j] = 0;
    for (i = 0; i < D * D; ++i) C[i] = 0;
    for (k = 0; k < K; ++k) { double w = exp(ib->mode[k].logw - mx) / tot; for (j = 0; j < D; ++j) mu[j] += w * ib->mode[k].m[j]; }
    for (k = 0; k < K; ++k) {   /* sum_k w_k (L_k L_k^T + (m_k - mu)(m_k - mu)^T) */
        double w = exp(ib->mode[k].logw - mx) / tot; const double *L = ib->mode[k].L, *m = ib->mode[k].m; int q;
        for (i = 0; i < D; ++i) for (j = 0; j <= i; ++j) {
            double a = (m[i] - mu[i]) * (m[j] - mu[j]);
            for (q = 0; q <= j; ++q) a += L[NF__IX(i, D, q)] * L[NF__IX(j, D, q)];
            C[NF__IX(i, D, j)] += w * a;
        }
    }
    for (i = 0; i < D; ++i) for (j = 0; j < i; ++j) C[NF__IX(j, D, i)] = C[NF__IX(i, D, j)];
    for (j = 0; j < D; ++j) {
        double sd = sqrt(C[NF__IX(j, D, j)]);
        if (!(sd >= 1e3 * NF__TINY) || !nf__isfinite(NF__R(sd))) sd = 1;
        f->mean[j] = (nf_real)mu[j]; f->std[j] = (nf_real)sd;
    }
    f->fitted = 1;
#ifndef NFLOW_NO_LU
    if (f->n_layers > 0 && f->layers[0].kind == NF_LAYER_LU_LINEAR) {
        nf_real *M = f->params + f->layers[0].poff, *sl = M + (size_t)D * (size_t)D; const nf__layer *L = &f->layers[0]; int q;
        for (i = 0; i < D; ++i) for (j = 0; j < D; ++j)   /* correlations of the standardised u */
            C[NF__IX(i, D, j)] /= (double)f->std[i] * (double)f->std[j];
        if (nf__chol(C, D)) {
            /* A = Lr^-1 (lower), in place in the upper triangle's mirror: solve column by column */
            for (j = 0; j < D; ++j) {
                double *a = mu;   /* column j of A */
                for (i = 0; i < D; ++i) {
                    double t = i == j ? 1 : 0;
                    for (q = j; q < i; ++q) t -= C[NF__IX(i, D, q)] * a[q];
                    a[i] = i < j ? 0 : t / C[NF__IX(i, D, i)];
                }
                for (i = j; i < D; ++i) {   /* W = P A: L = A diag(1/A_jj), U = diag(A_jj) */
                    if (i == j) sl[j] = (nf_real)log(a[j]);
                    else M[NF__IX(i, D, j)] = (nf_real)(a[i] / a[j]);
                }
            }
            (void)L;
            return K == 1;
        }
        nf__init_params(f);
    }
#endif
    return 0;
}

/* Forward KL to the Laplace mixture (no target evaluation): the flow learns the modes and
   correlations it could not be set to directly. */
static nf_result nf__infer_pretrain(nf_flow *f, const nf__ibuf *ib, int K, nf_rng *rng, double *u, double *e) {
    nf_trainer *t = NULL; nf_adam_config ac; nf_result r; int D = f->dim, it, i, j, B = 256;
    nf_real *y; size_t bytes;
    nf_adam_config_default(&ac); ac.lr = 1e-3; ac.clip_norm = 10;
    if (!nf__mul((size_t)B * (size_t)D, sizeof(nf_real), &bytes)) return NF_ERR_OVERFLOW;
    y = (nf_real *)NF_MALLOC(bytes, NULL);
    if (!y) return NF_ERR_NOMEM;
    if ((r = nf_trainer_create(&t, f, &ac, (size_t)B)) != NF_OK) { NF_FREE(y, NULL); return r; }
    for (it = 0; it < 400 && r == NF_OK; ++it) {
        for (i = 0; i < B; ++i) {
            nf__mix_draw(ib, K, D, rng, u, e);
            for (j = 0; j < D; ++j) nf__dom_inv(&f->dom[j], (nf_real)u[j], &y[NF__IX(i, D, j)]);
        }
        r = nf_train_step(t, y, NULL, (size_t)B, NULL);
        if (r == NF_ERR_DIVERGED) r = NF_OK;   /* a rejected step changes nothing */
    }
    nf_trainer_destroy(t);
    NF_FREE(y, NULL);
    return r;
}

/* Pooled importance diagnostics of n draws' log weights: k-hat and ESS fraction (PSIS). */
static void nf__is_diag(double *lw, size_t n, size_t *idx, double *tail, double *khat, double *essf, double *logz, double *logz_se) {
    double mx = -HUGE_VAL, s1 = 0, s2 = 0, r1 = 0, var = 0, mean; size_t i, nz = 0;
    double *raw = tail + n;   /* keeps the raw weights for log Z */
    for (i = 0; i < n; ++i) { raw[i] = lw[i]; if (lw[i] > mx) mx = lw[i]; if (lw[i] > -HUGE_VAL) ++nz; }
    if (nz < 2) { *khat = HUGE_VAL; *essf = 0; *logz = -HUGE_VAL; *logz_se = HUGE_VAL; return; }
    for (i = 0; i < n; ++i) if (raw[i] > -HUGE_VAL) r1 += exp(raw[i] - mx);
    mean = r1 / (double)n;
    for (i = 0; i < n; ++i) { double w = raw[i] > -HUGE_VAL ? exp(raw[i] - mx) : 0; var += (w - mean) * (w - mean); }
    var /= (double)n - 1;
    *logz = mx + log(mean);
    *logz_se = sqrt(var / (double)n) / mean;
    nf__psis(lw, n, khat, idx, tail);
    mx = -HUGE_VAL;
    for (i = 0; i < n; ++i) if (lw[i] > mx) mx = lw[i];
    for (i = 0; i < n; ++i) if (lw[i] > -HUGE_VAL) { double w = exp(lw[i] - mx); s1 += w; s2 += w * w; }
    *essf = s1 * s1 / s2 / (double)n;
}

/* the target at n rows of y (no gradient): -inf allowed, NaN / +inf an error naming the point */
static nf_result nf__eval_y(nf__inf *s, const nf_real *y, size_t n, double *lp) {
    nf_flow *f = s->f; int D = s->D, j; size_t i, k;
    for (k = 0; k < n; k += s->cap) {
        size_t R = n - k < s->cap ? n - k : s->cap;
        if (s->fn(y + k * (size_t)D, R, D, s->lp, NULL, s->user) != 0) {
            nf__infer_msg(f, "target callback failed (returned nonzero) during the ", s->stage);
            return NF_ERR_ARG;
        }
        s->evals += (long)R;
        for (i = 0; i < R; ++i) {
            double v = (double)s->lp[i];
            if (nf__is_neg_inf(v)) { lp[k + i] = -HUGE_VAL; continue; }
            if (!nf__isfinite_d(v)) {
                nf__msgbuf mb; mb.s = f->err; mb.n = 0; mb.cap = sizeof f->err;
                nf__msg_str(&mb, "target returned a NaN or +inf log-density during the "); nf__msg_str(&mb, s->stage); nf__msg_str(&mb, " at (");
                for (j = 0; j < D && j < 6; ++j) { const nf_real *yy = y + (k + i) * (size_t)D; if (j) nf__msg_str(&mb, ", "); if (yy[j] < 0) nf__msg_str(&mb, "-"); nf__msg_num(&mb, fabs((double)yy[j])); }
                nf__msg_str(&mb, D > 6 ? ", ...)" : ")");
                f->err_row = (long)(k + i);
                return NF_ERR_NONFINITE;
            }
            lp[k + i] = v;
        }
    }
    return NF_OK;
}
/* The check's proposal is defensive (Hesterberg 1995), a mixture of three: the flow
   (weight 1 - a - b); the flow's map over a heavy-tailed multivariate t base with
   NF__DEF_NU degrees of freedom (a = NF__DEF_A): where the flow's tails are too light,
   these draws reach what the posterior holds there and their weights say so; and the
   searches' Laplace Gaussians (b = NF__DEF_B, each by its weight): a mode the fit let go
   of is still drawn from. Every draw is weighted by the whole mixture's density, so the
   estimates stay valid. */
#define NF__DEF_A 0.2
#define NF__DEF_B 0.1
#define NF__DEF_NU 4
typedef struct nf__prop {
    const nf__ibuf *ib; int K; double lw[NF__MAXMODES], b; double *t;   /* t: 2 dim scratch */
    int modes;   /* Laplace Gaussians with a real mode and 1% of the weight or more */
} nf__prop;
/* log q_mix(y) for n rows: latent z, y = g(z), ld = log|dy/dz| */
static void nf__infer_lq(const nf_flow *f, const nf__prop *P, const nf_real *z, const nf_real *y, size_t n, const double *ld, double *lq) {
    int D = f->dim, j, k; size_t i; const nf_real *mu = f->params + f->base_off, *ls = mu + D;
    double lsum = 0, ct = lgamma(0.5 * (NF__DEF_NU + D)) - lgamma(0.5 * NF__DEF_NU) - 0.5 * D * log(NF__DEF_NU * 3.14159265358979324);
    double wa = log(NF__DEF_A), wf = log(1 - NF__DEF_A - P->b), wb = P->b > 0 ? log(P->b) : -HUGE_VAL;
    int diag = f->desc.base == NF_BASE_DIAG_GAUSSIAN;
    if (diag) for (j = 0; j < D; ++j) lsum += (double)ls[j];
    for (i = 0; i < n; ++i) {
        double q = 0, a, b, m, c = -HUGE_VAL;
        for (j = 0; j < D; ++j) {
            double e = (double)z[NF__IX(i, D, j)];
            if (diag) e = (e - (double)mu[j]) * exp(-(double)ls[j]);
            q += e * e;
        }
        a = wf - 0.5 * q - 0.5 * D * NF__LOG_2PI - lsum - ld[i];
        b = wa + ct - 0.5 * (NF__DEF_NU + D) * log1p(q / NF__DEF_NU) - lsum - ld[i];
        if (P->K > 0 && P->b > 0) {   /* the Laplace Gaussians, in u, over |dy/du| */
            double *u = P->t + D, ldu = 0, best = -HUGE_VAL, acc = 0, lk[NF__MAXMODES];
            for (j = 0; j < D; ++j) {
                double l0, d0, e0; nf_real yy;
                u[j] = nf__y2u(&f->dom[j], y[NF__IX(i, D, j)]);
                nf__u2y(&f->dom[j], u[j], &yy, &l0, &d0, &e0);
                ldu += l0;
            }
            for (k = 0; k < P->K; ++k) {
                const nf__mode *md = &P->ib->mode[k];
                lk[k] = P->lw[k] - 0.5 * nf__mahal(md, u, D, P->t) - 0.5 * md->ldet - 0.5 * D * NF__LOG_2PI;
                if (lk[k] > best) best = lk[k];
            }
            for (k = 0; k < P->K; ++k) acc += exp(lk[k] - best);
            c = wb + best + log(acc) - ldu;
        }
        m = a > b ? a : b; if (c > m) m = c;
        lq[i] = m + log(exp(a - m) + exp(b - m) + (c > -HUGE_VAL ? exp(c - m) : 0));
    }
}
/* n draws from the defensive proposal: latent z, y = g(z), log q_mix(y), log|dy/dz|.
   scratch: 2 n D reals. */
static nf_result nf__infer_draw(nf_flow *f, const nf__prop *P, nf_rng *rng, size_t n, nf_real *z, nf_real *y, double *lq, double *ld, nf_real *tmp, nf_real *scratch) {
    size_t i, first = 0, nl; int j, D = f->dim, tries, k; nf_result r = NF_OK;
    const nf_real *mu = f->params + f->base_off, *ls = mu + D;
    unsigned char lap[256];   /* n <= 256: which rows come from a Laplace Gaussian */
    for (tries = 0; tries < 100; ++tries) {
        for (i = first; i < n; ++i) {
            double sc = 1, pick = (double)nf_rng_uniform(rng);
            lap[i] = P->K > 0 && pick < P->b;
            if (lap[i]) {   /* a mode by its weight, then u ~ N(m, L L^T) */
                double acc = 0, tot = 0, *u = P->t, *e = P->t + D; int q;
                for (k = 0; k < P->K; ++k) tot += exp(P->lw[k]);
                pick = (double)nf_rng_uniform(rng) * tot;
                for (k = 0; k < P->K - 1; ++k) { acc += exp(P->lw[k]); if (pick < acc) break; }
                for (j = 0; j < D; ++j) e[j] = (double)nf_rng_normal(rng);
                for (j = 0; j < D; ++j) {
                    double a = P->ib->mode[k].m[j], l0, d0, e0;
                    for (q = 0; q <= j; ++q) a += P->ib->mode[k].L[NF__IX(j, D, q)] * e[q];
                    u[j] = a;
                    nf__u2y(&f->dom[j], u[j], &y[NF__IX(i, D, j)], &l0, &d0, &e0);
                    z[NF__IX(i, D, j)] = 0;   /* found below, from y */
                }
                continue;
            }
            if (pick < P->b + NF__DEF_A) {   /* t: a normal over sqrt(chi^2_nu / nu) */
                double c = 0; int q;
                for (q = 0; q < NF__DEF_NU; ++q) { double g = (double)nf_rng_normal(rng); c += g * g; }
                sc = sqrt(NF__DEF_NU / (c > 1e-300 ? c : 1e-300));
            }
            for (j = 0; j < D; ++j) {
                double e = sc * (double)nf_rng_normal(rng);
#ifndef NFLOW_NO_DIAG_BASE
                if (f->desc.base == NF_BASE_DIAG_GAUSSIAN) e = (double)mu[j] + exp((double)ls[j]) * e;
#endif
                z[NF__IX(i, D, j)] = (nf_real)e;
            }
        }
        (void)mu; (void)ls;
        /* the flow's rows: y = g(z); the Laplace rows: z = g^-1(y). A row so far out that the
           flow overflows nf_real is drawn again (where no part of the mixture has mass to
           speak of) */
        for (nl = 0, i = 0; i < n; ++i) if (lap[i]) memcpy(scratch + nl++ * (size_t)D, y + i * (size_t)D, (size_t)D * sizeof(nf_real));
        for (i = 0; i < n; ++i) if (lap[i]) memset(z + i * (size_t)D, 0, (size_t)D * sizeof(nf_real));
        if ((r = nf_flow_inverse(f, z, n, y, tmp)) != NF_OK) {
            if (r != NF_ERR_RANGE || f->err_row < 0) return r;
            first = 0; f->err[0] = 0; f->err_row = -1;   /* draw them all again */
            continue;
        }
        for (i = 0; i < n; ++i) ld[i] = (double)tmp[i];
        if (nl) {
            size_t q = 0;
            if ((r = nf_flow_forward(f, scratch, nl, scratch + nl * (size_t)D, tmp)) != NF_OK) {
                if (r != NF_ERR_RANGE || f->err_row < 0) return r;
                first = 0; f->err[0] = 0; f->err_row = -1;   /* draw them all again */
                continue;
            }
            for (i = 0; i < n; ++i) if (lap[i]) {
                memcpy(y + i * (size_t)D, scratch + q * (size_t)D, (size_t)D * sizeof(nf_real));
                memcpy(z + i * (size_t)D, scratch + (nl + q) * (size_t)D, (size_t)D * sizeof(nf_real));
                ld[i] = -(double)tmp[q];
                ++q;
            }
        }
        break;
    }
    if (r != NF_OK) return r;
    nf__infer_lq(f, P, z, y, n, ld, lq);
    return NF_OK;
}

/* the point a target failed at, named in the flow's message */
static void nf__infer_badpoint(nf_flow *f, const char *what, const char *stage, const nf_real *y, int D) {
    nf__msgbuf mb; int j; mb.s = f->err; mb.n = 0; mb.cap = sizeof f->err;
    nf__msg_str(&mb, what); nf__msg_str(&mb, " during the "); nf__msg_str(&mb, stage); nf__msg_str(&mb, " at (");
    for (j = 0; j < D && j < 6; ++j) { if (j) nf__msg_str(&mb, ", "); if (y[j] < 0) nf__msg_str(&mb, "-"); nf__msg_num(&mb, fabs((double)y[j])); }
    nf__msg_str(&mb, D > 6 ? ", ...)" : ")");
}

/* Reverse-KL fit until the recent draws pass (k-hat < 0.5, ESS above 30% of the draws),
   the ELBO stops improving (after three learning-rate cuts), or the budget ends.
   *why: 1 passed, 2 plateau, 0 budget or steps. */
static nf_result nf__infer_fit(nf__inf *s, const nf__prop *P, const nf_infer_options *o, nf_rng *rng, nf__ibuf *ib, long budget, nf_infer_report *rp, int *why) {
    nf_flow *f = s->f; int D = s->D, B = o->batch, W = (1024 + o->batch - 1) / o->batch, slot, drops = 0, stale = 0, bn = 0, rej = 0;
    nf_trainer *t = NULL; nf_adam_config ac; nf_result r; nf__target tg; nf__klrec rec; long step;
    double elbo = -HUGE_VAL, bsum = 0, best = -HUGE_VAL, lr = o->lr, last_gain = HUGE_VAL;
    if (W < 2) W = 2;
    *why = 0;
    nf_adam_config_default(&ac); ac.lr = lr; ac.clip_norm = 100;
    if ((r = nf_trainer_create(&t, f, &ac, (size_t)B)) != NF_OK) return r;
    tg.fn = s->fn; tg.fn_ctx = NULL; tg.ctx = NULL; tg.user = s->user;
    s->stage = "fit";
    rec.x = ib->kx; rec.outside = 0;
    for (step = 0; step < o->max_steps; ++step) {
        if (s->evals + B > budget) break;
        slot = (int)(step % W);
        rec.lq = ib->klq + (size_t)slot * (size_t)B; rec.lp = ib->klp + (size_t)slot * (size_t)B;
        r = nf__infer_step(t, rng, (size_t)B, &tg, &rec, &elbo);
        s->evals += B;
        if (r == NF_ERR_ARG) { nf__infer_msg(f, "target callback failed (returned nonzero) during the ", "fit"); break; }
        if (r == NF_ERR_NONFINITE) { nf__infer_badpoint(f, "target returned a NaN or +inf log-density or a non-finite gradient", "fit", rec.x + (size_t)rec.bad_row * (size_t)D, D); f->err_row = rec.bad_row; break; }
        if (r == NF_ERR_DIVERGED) {   /* a step refused leaves the flow as it was: a smaller rate */
            r = NF_OK;
            if (++rej % 8 == 0) { lr *= 0.5; t->cfg.lr = lr; }
            if (rej > 200) break;
            for (slot = 0; slot < B; ++slot) rec.lp[slot] = rec.lq[slot] = -HUGE_VAL;   /* not draws of any q */
            continue;
        }
        if (r != NF_OK) { nf__fail(f, r, "reverse-KL step", -1); break; }
        rp->steps++;
        if (P->modes > 1 && s->evals + B <= budget) {
            /* several modes: reverse KL lets go of all but one, so every step also takes a
               maximum-likelihood step on Laplace draws weighted by p~ / q (forward KL, which
               covers every mode with its mass) */
            int i, j; size_t q; double mx = -HUGE_VAL, kh;
            for (i = 0; i < B; ++i) {
                double *u = P->t, *e = P->t + D, pick = (double)nf_rng_uniform(rng), acc = 0, tot = 0; int kk, q2;
                for (kk = 0; kk < P->K; ++kk) tot += exp(P->lw[kk]);
                pick *= tot;
                for (kk = 0; kk < P->K - 1; ++kk) { acc += exp(P->lw[kk]); if (pick < acc) break; }
                for (j = 0; j < D; ++j) e[j] = (double)nf_rng_normal(rng);
                for (j = 0; j < D; ++j) {
                    double a = P->ib->mode[kk].m[j], l0, d0, e0;
                    for (q2 = 0; q2 <= j; ++q2) a += P->ib->mode[kk].L[NF__IX(j, D, q2)] * e[q2];
                    u[j] = a;
                    nf__u2y(&f->dom[j], u[j], &ib->kx[NF__IX(i, D, j)], &l0, &d0, &e0);
                }
            }
            s->stage = "fit";
            if ((r = nf__eval_y(s, ib->kx, (size_t)B, ib->clp)) != NF_OK) break;
            for (i = 0; i < B; ++i) {   /* log q0(y): the Laplace mixture alone */
                double *u = P->t, ldu = 0, top = -HUGE_VAL, a2 = 0, lk[NF__MAXMODES]; int kk;
                for (j = 0; j < D; ++j) { double l0, d0, e0; nf_real yy; u[j] = nf__y2u(&f->dom[j], ib->kx[NF__IX(i, D, j)]); nf__u2y(&f->dom[j], u[j], &yy, &l0, &d0, &e0); ldu += l0; }
                for (kk = 0; kk < P->K; ++kk) { const nf__mode *md = &P->ib->mode[kk]; lk[kk] = P->lw[kk] - 0.5 * nf__mahal(md, u, D, P->t + D) - 0.5 * md->ldet - 0.5 * D * NF__LOG_2PI; if (lk[kk] > top) top = lk[kk]; }
                for (kk = 0; kk < P->K; ++kk) a2 += exp(lk[kk] - top);
                ib->clw[i] = ib->clp[i] > -HUGE_VAL ? ib->clp[i] - (top + log(a2) - ldu) : -HUGE_VAL;
            }
            nf__psis(ib->clw, (size_t)B, &kh, ib->idx, ib->tail);
            for (q = 0; q < (size_t)B; ++q) if (ib->clw[q] > mx) mx = ib->clw[q];
            for (q = 0; q < (size_t)B; ++q) ib->cw[q] = ib->clw[q] > -HUGE_VAL ? (nf_real)exp(ib->clw[q] - mx) : 0;
            r = nf_train_step(t, ib->kx, ib->cw, (size_t)B, NULL);
            if (r == NF_ERR_DIVERGED || r == NF_ERR_ARG) r = NF_OK;   /* refused or weightless: no change */
            if (r != NF_OK) { nf__fail(f, r, "forward-KL step", -1); break; }
            f->err[0] = 0; f->err_row = -1;
        }
        if (elbo > -HUGE_VAL) { bsum += elbo; ++bn; }
        if ((step + 1) % W == 0 && step + 1 >= 2 * W) {   /* the last W steps' draws */
            size_t n = (size_t)W * (size_t)B, i; double kh, ef, lz, lzs;
            for (i = 0; i < n; ++i) ib->clw[i] = ib->klp[i] > -HUGE_VAL && ib->klq[i] > -HUGE_VAL ? ib->klp[i] - ib->klq[i] : -HUGE_VAL;
            nf__is_diag(ib->clw, n, ib->idx, ib->tail, &kh, &ef, &lz, &lzs);
            if (o->callback) {
                nf_infer_progress pg; pg.stage = NF_INFER_STAGE_FIT; pg.evals = s->evals; pg.steps = rp->steps; pg.elbo = bn ? bsum / bn : -HUGE_VAL; pg.khat = kh;
                if (o->callback(&pg, o->user)) break;
            }
            /* stop when the recent draws would pass the check's own tests (k-hat, ESS per draw,
               and KL(q || p) = log Z - ELBO with a margin), after 200 steps: the pooled draws
               of a q still moving flatter it */
            {   double el = 0; size_t ne = 0;
                for (i = 0; i < n; ++i) if (ib->klp[i] > -HUGE_VAL && ib->klq[i] > -HUGE_VAL) { el += ib->klp[i] - ib->klq[i]; ++ne; }
                el = ne ? el / (double)ne : -HUGE_VAL;
                if (kh < o->khat_max && ef > o->ess_fraction_min && lz - el < 0.8 * o->kl_max && step + 1 >= 200) { *why = 1; break; }
            }
            (void)last_gain;
        }
        if ((step + 1) % 50 == 0 && bn > 0) {   /* plateaus: cut the rate, three times, then stop */
            double m = bsum / bn;
            last_gain = rp->elbo > -HUGE_VAL ? m - rp->elbo : HUGE_VAL;
            rp->elbo = m;
            if (m > best + 0.01) { best = m; stale = 0; }
            else if (++stale >= 3) {
                stale = 0; lr *= 0.3; t->cfg.lr = lr;
                if (++drops > 3) { *why = 2; break; }
            }
            bsum = 0; bn = 0;
        }
    }
    rp->outside += rec.outside;
    nf_trainer_destroy(t);
    return r;
}

/* The check: n draws from the flow, the target at each, PSIS. The draws' z, y, log q,
   log|dy/dz|, log p~ and smoothed log weights stay in ib. */
static nf_result nf__infer_check(nf__inf *s, const nf__prop *P, size_t n, nf__ibuf *ib, nf_rng *rng, nf_infer_report *rp) {
    nf_flow *f = s->f; int D = s->D; size_t i, k; nf_result r; double ef;
    s->stage = "check";
    for (k = 0; k < n; k += 256) {
        size_t R = n - k < 256 ? n - k : 256;
        if ((r = nf__infer_draw(f, P, rng, R, ib->cz + k * (size_t)D, ib->cy + k * (size_t)D, ib->clq + k, ib->cld + k, s->y, ib->kx)) != NF_OK) return r;
        if ((r = nf__eval_y(s, ib->cy + k * (size_t)D, R, ib->clp + k)) != NF_OK) return r;
    }
    for (i = 0; i < n; ++i) {
        ib->clw[i] = ib->clp[i] > -HUGE_VAL ? ib->clp[i] - ib->clq[i] : -HUGE_VAL;
        if (!(ib->clp[i] > -HUGE_VAL)) rp->outside++;
    }
    {   /* the flow's own ELBO from the same draws (each reweighted from the mixture to the
           flow): log Z - ELBO = KL(q || p), how far the flow itself is from the posterior */
        const nf_real *mu = f->params + f->base_off, *ls = mu + D; double num = 0, den = 0, lsum = 0; int j;
        int diag = f->desc.base == NF_BASE_DIAG_GAUSSIAN;
        if (diag) for (j = 0; j < D; ++j) lsum += (double)ls[j];
        for (i = 0; i < n; ++i) {
            double q2 = 0, lqf, w;
            if (!(ib->clp[i] > -HUGE_VAL)) continue;
            for (j = 0; j < D; ++j) { double e = (double)ib->cz[NF__IX(i, D, j)]; if (diag) e = (e - (double)mu[j]) * exp(-(double)ls[j]); q2 += e * e; }
            lqf = -0.5 * q2 - 0.5 * D * NF__LOG_2PI - lsum - ib->cld[i];
            w = exp(lqf - ib->clq[i]);
            num += w * (ib->clp[i] - lqf); den += w;
        }
        rp->elbo = den > 0 ? num / den : -HUGE_VAL;
    }
    nf__is_diag(ib->clw, n, ib->idx, ib->tail, &rp->khat, &ef, &rp->log_z, &rp->log_z_se);
    rp->ess_fraction = ef; rp->ess = ef * (double)n;
    return NF_OK;
}

/* m indices drawn by systematic resampling with weights exp(lw) */
static void nf__resample(const double *lw, size_t n, size_t m, nf_rng *rng, size_t *out) {
    double mx = -HUGE_VAL, tot = 0, step, u, acc; size_t i, k = 0;
    for (i = 0; i < n; ++i) if (lw[i] > mx) mx = lw[i];
    for (i = 0; i < n; ++i) tot += lw[i] > -HUGE_VAL ? exp(lw[i] - mx) : 0;
    step = tot / (double)m; u = (double)nf_rng_uniform(rng) * step; acc = 0;
    for (i = 0; i < n && k < m; ++i) {
        acc += lw[i] > -HUGE_VAL ? exp(lw[i] - mx) : 0;
        while (k < m && u < acc) { out[k++] = i; u += step; }
    }
    while (k < m) out[k++] = n - 1;
    for (i = m; i > 1; --i) {   /* shuffle: consecutive copies apart */
        size_t j = (size_t)(nf_rng_u32(rng) % (uint32_t)i), t = out[i - 1]; out[i - 1] = out[j]; out[j] = t;
    }
}

/* The posterior in the flow's latent space, log p~(g(z)) + log|dg/dz|, and its gradient at
   R latent rows z, through trainer t's tape (its parameter gradients are scratch). y gets
   g(z), lp log p~(y) (-inf outside the support, then lpz -inf), ld log|dg/dz|. */
static nf_result nf__latent_grad(nf__inf *s, nf_trainer *t, const nf_real *z, int R, nf_real *y, double *lp, double *ld, double *lpz, nf_real *gz) {
    nf_flow *f = s->f; int D = f->dim, i, j; nf_tape tp; nf__tctx c; nf__target tg; nf__klrec rec;
    nf_tensor *x, *zt, *mask, *lpt, *obj, *sd, *mu, *loss; nf_real *zc; double cst = 0, ldc;
    nf_arena_reset(&t->arena);
    nf_tape_init(&tp, &t->arena); tp.par = &f->par;
    zc = (nf_real *)nf_arena_alloc(&t->arena, (size_t)R * (size_t)D * sizeof(nf_real));
    if (!zc) return NF_ERR_ARENA_FULL;
    memcpy(zc, z, (size_t)R * (size_t)D * sizeof(nf_real));
    memset(gz, 0, (size_t)R * (size_t)D * sizeof(nf_real));
    tg.fn = s->fn; tg.fn_ctx = NULL; tg.ctx = NULL; tg.user = s->user;
    rec.x = y; rec.lq = ld; rec.lp = lp; rec.outside = 0; rec.bad_row = -1;   /* lq: unused scratch */
    c.tp = &tp; c.f = f; c.grad = t->grad; c.ldr = c.ldc = NULL; c.ctx = NULL;
    zt = x = nf_tape_param(&tp, zc, gz, R, D);
    mask = nf_tape_new(&tp, R, 1);
    for (i = f->n_layers - 1; i >= 0; --i) x = nf__kinds[f->layers[i].kind].tape_inv(&c, &f->layers[i], x);
    sd = nf_tape_new(&tp, 1, D); mu = nf_tape_new(&tp, 1, D);
    if (sd && mu) for (j = 0; j < D; ++j) { sd->val[j] = f->std[j]; mu->val[j] = f->mean[j]; cst += log((double)f->std[j]); }
    x = nf_t_add(&tp, nf_t_mul(&tp, x, sd), mu);
    if (f->has_dom) { nf_tensor *l = NULL; x = nf__t_domain_inv(&tp, x, f->dom, &l); if (l) nf__add_ld(&c, l, 1); }
    lpt = nf__t_target(&tp, x, &tg, mask, &rec);
    s->evals += R;
    if (!lpt) {
        if (tp.err == NF_ERR_DIVERGED && rec.bad_row >= 0) { nf__infer_badpoint(f, "target returned a NaN or +inf log-density or a non-finite gradient", "MCMC", y + (size_t)rec.bad_row * (size_t)D, D); f->err_row = rec.bad_row; return NF_ERR_NONFINITE; }
        if (tp.err == NF_ERR_ARG) { nf__infer_msg(f, "target callback failed (returned nonzero) during the ", "MCMC"); return NF_ERR_ARG; }
        return tp.err != NF_OK ? tp.err : NF_ERR_ARENA_FULL;
    }
    obj = c.ldr ? nf_t_add(&tp, lpt, c.ldr) : lpt;
    loss = nf_t_sum(&tp, nf_t_mul(&tp, obj, mask));
    if (!loss || nf_tape_backward(&tp, loss) != NF_OK) return tp.err != NF_OK ? tp.err : NF_ERR_ARENA_FULL;
    (void)zt;
    ldc = c.ldc ? (double)c.ldc->val[0] : 0;
    for (i = 0; i < R; ++i) {
        ld[i] = (c.ldr ? (double)c.ldr->val[i] : 0) + ldc + cst;
        lpz[i] = mask->val[i] != 0 ? lp[i] + ld[i] : -HUGE_VAL;
        for (j = 0; j < D; ++j) if (!nf__isfinite(gz[NF__IX(i, D, j)])) { lpz[i] = -HUGE_VAL; break; }   /* beyond nf_real: not a move */
    }
    return NF_OK;
}

/* Flow-driven MCMC (as flowMC): C chains alternate an independence Metropolis-Hastings
   step with the flow as proposal (the check's defensive mixture) and a MALA step in the
   flow's latent space, where the posterior is close to a standard normal and the local
   moves walk into what the flow misses; until split R-hat and ESS pass or the budget
   ends. A refused MALA step gets a second, smaller one (delayed rejection: Tierney and
   Mira 1999; its acceptance keeps the target): where the flow is a poor map (a tail it
   bends, where the latent density is steep), every step at the adapted size is refused
   and the independence step refuses too (the point's p / q is large); without the second
   stage a chain sat there for 1600 steps in a GW150914 run and its ESS was 127 after 1M
   evaluations. Drawing a smaller step size at random instead walked it out too, but cost
   4x in ESS on another seed: half the steps were small everywhere. Chains start from
   importance-resampled check draws. Writes m samples, spread over the chains' kept draws.
   Chains too slow for the budget refit the flow (nf__infer_refit) and start over: the
   GW150914 overtone run with the vectorised tanh / e^x (whose rounding sent its fit
   elsewhere) reached ESS 634 after 1M evaluations without, and passes in 97k with; at
   400k, 1 of 8 seeds passed without, 9 of 10 with. */
static double nf__mala_lq(const nf_real *from, const nf_real *g, const nf_real *to, int D, double h) {
    double q = 0; int j;   /* log q(to | from) of a MALA step of size h, up to a constant */
    for (j = 0; j < D; ++j) { double d = (double)to[j] - (double)from[j] - 0.5 * h * h * (double)g[j]; q += d * d; }
    return -q / (2 * h * h);
}
static double nf__log1mexp(double a) { return a > -0.6931 ? log(-expm1(a)) : log1p(-exp(a)); }   /* log(1 - e^a), a < 0 */
/* log of the second stage's acceptance ratio (Tierney and Mira 1999) at x (log density
   px, gradient gx), the refused first proposal u1 (p1: -inf outside the support), the
   second u2 (p2, finite), step sizes h and h2: the ratio of
     p(u2) q1(u1 | u2) (1 - a1(u2, u1)) q2(x | u2)  to  p(x) q1(u1 | x) (1 - a1(x, u1)) q2(u2 | x),
   a1 the first stage's acceptance; -inf where 1 - a1(u2, u1) is 0. */
static double nf__dr_logr(double px, double p1, double p2, const nf_real *x, const nf_real *gx, const nf_real *u1,
                          const nf_real *g1, const nf_real *u2, const nf_real *g2, int D, double h, double h2) {
    double a1 = p1 > -HUGE_VAL ? p1 - px + nf__mala_lq(u1, g1, x, D, h) - nf__mala_lq(x, gx, u1, D, h) : -HUGE_VAL;
    double b1 = p1 > -HUGE_VAL ? p1 - p2 + nf__mala_lq(u1, g1, u2, D, h) - nf__mala_lq(u2, g2, u1, D, h) : -HUGE_VAL;
    if (b1 >= 0 || a1 >= 0) return -HUGE_VAL;   /* (a1 >= 0: u1 was not refused) */
    return p2 - px + nf__mala_lq(u2, g2, u1, D, h) - nf__mala_lq(x, gx, u1, D, h)
           + nf__mala_lq(u2, g2, x, D, h2) - nf__mala_lq(x, gx, u2, D, h2) + nf__log1mexp(b1) - nf__log1mexp(a1);
}
/* The refit (as flowMC's training loops): NF__REFIT_STEPS forward-KL Adam steps on batches
   half of the chains' kept draws (n per chain, row (c, t) at ytr + (c Nmax + t) D), so
   that the flow covers what they found and it missed (the light tails of a reverse-KL
   fit, where an independence proposal rarely goes and a chain that got there sits), half
   of the check's draws inside the support (the proposal as it was), so that it keeps
   covering what the chains have not visited yet: trained on the chains' draws alone, a
   10-D funnel's flow lost the neck and the chains then passed R-hat and ESS with v's sd
   10% short. A failed step puts the parameters back (keep: a copy). */
#define NF__REFIT_STEPS 200
#define NF__REFIT_BATCH 128
static nf_result nf__infer_refit(nf_flow *f, nf_trainer **t2, nf_real **keep, double lr, const nf_real *ytr, size_t Nmax, int C, size_t n,
                                 const nf__ibuf *ib, size_t ncheck, nf_rng *rng, nf_real *bt) {
    int D = f->dim, e, q; size_t np = nf_flow_num_params(f), tot = n * (size_t)C; nf_result r = NF_OK; double loss;
    if (!*t2) {
        nf_adam_config ac; nf_adam_config_default(&ac); ac.lr = lr; ac.clip_norm = 100;
        if ((r = nf_trainer_create(t2, f, &ac, NF__REFIT_BATCH)) != NF_OK) return r;
        *keep = (nf_real *)NF_MALLOC(np * sizeof(nf_real), NULL);
        if (!*keep) return nf__fail(f, NF_ERR_NOMEM, "MCMC refit", -1);
    }
    memcpy(*keep, f->params, np * sizeof(nf_real));
    for (e = 0; e < NF__REFIT_STEPS && r == NF_OK; ++e) {
        for (q = 0; q < NF__REFIT_BATCH; ++q) {
            size_t k = 0; const nf_real *row = NULL; int tr;
            for (tr = 0; (q & 1) && tr < 100 && !row; ++tr) {   /* a check draw inside the support */
                k = (size_t)((double)nf_rng_uniform(rng) * (double)ncheck);
                if (k >= ncheck) k = ncheck - 1;
                if (ib->clp[k] > -HUGE_VAL) row = ib->cy + k * (size_t)D;
            }
            if (!row) {   /* a chain draw (also where 100 check draws in a row were outside) */
                k = (size_t)((double)nf_rng_uniform(rng) * (double)tot);
                if (k >= tot) k = tot - 1;
                row = ytr + ((k % (size_t)C) * Nmax + k / (size_t)C) * (size_t)D;
            }
            memcpy(bt + (size_t)q * (size_t)D, row, (size_t)D * sizeof(nf_real));
        }
        r = nf_train_step(*t2, bt, NULL, NF__REFIT_BATCH, &loss);
    }
    if (r != NF_OK) memcpy(f->params, *keep, np * sizeof(nf_real));
    return r;
}

static nf_result nf__infer_mcmc(nf__inf *s, const nf__prop *P, const nf_infer_options *o, nf__ibuf *ib, size_t ncheck, nf_rng *rng, long budget,
                                nf_infer_report *rp, nf_real *out, size_t m, int *passed) {
    nf_flow *f = s->f; int D = s->D, C = o->chains, c, j, warm = 200, w0 = 0, it, *fresh, refit_off = 0;
    size_t Nmax, n = 0, pick[32], bytes, i, thin = 1, since = 0; nf_result r = NF_OK; nf_trainer *t = NULL, *t2 = NULL; nf_real *keep = NULL;
    double h = 1.0 / pow((double)D, 1.0 / 6), accg = 0, accl = 0, tries = 0, *utr, *v, *lp, *lq, *ld, *lpz, *plp, *plq, *pld, *plpz;
    double *plp2, *pld2, *plpz2; nf_real *ytr, *z, *y, *zp, *yp, *tmp, *g, *gp, *y2, *g2; size_t *idx;
    long per_it = 4L * C;   /* flow proposals, gradients where they moved, two MALA stages */
    s->stage = "MCMC";
    *passed = 0;
    rp->rhat = HUGE_VAL; rp->mcmc_ess = 0; rp->refits = 0;
    if (budget - s->evals < per_it * (warm + 1000)) return NF_OK;
    Nmax = (size_t)((budget - s->evals) / per_it) - (size_t)warm;
    if (Nmax > 20000) Nmax = 20000;   /* a full trace is halved (every other draw kept) and thinned
                                         from then on: the chains run to the budget in bounded memory */
    Nmax &= ~(size_t)1;
    {   int ok = 1; size_t per = (size_t)D * (sizeof(double) + sizeof(nf_real)) + 2 * sizeof(double) + sizeof(size_t);
        bytes = nf__madd(nf__madd(0, Nmax * (size_t)C, per, &ok), (size_t)C, 9 * (size_t)D * sizeof(nf_real) + 11 * sizeof(double) + sizeof(int), &ok);
        if (!ok) return NF_ERR_OVERFLOW;
    }
    if ((r = nf_trainer_create(&t, f, NULL, (size_t)C)) != NF_OK) return r;
    utr = (double *)NF_MALLOC(bytes, NULL);
    if (!utr) { nf_trainer_destroy(t); return nf__fail(f, NF_ERR_NOMEM, "MCMC traces", -1); }
    v = utr + Nmax * (size_t)C * (size_t)D;                           /* diagnostics scratch: 2 C N */
    lp = v + 2 * Nmax * (size_t)C; lq = lp + C; ld = lq + C; lpz = ld + C; plp = lpz + C; plq = plp + C; pld = plq + C; plpz = pld + C;
    plp2 = plpz + C; pld2 = plp2 + C; plpz2 = pld2 + C;
    ytr = (nf_real *)(plpz2 + C);
    z = ytr + Nmax * (size_t)C * (size_t)D; y = z + (size_t)C * (size_t)D; zp = y + (size_t)C * (size_t)D; yp = zp + (size_t)C * (size_t)D; tmp = yp + (size_t)C * (size_t)D;
    g = tmp + (size_t)C * (size_t)D; gp = g + (size_t)C * (size_t)D; y2 = gp + (size_t)C * (size_t)D; g2 = y2 + (size_t)C * (size_t)D;
    idx = (size_t *)(g2 + (size_t)C * (size_t)D);             /* C N */
    fresh = (int *)(idx + Nmax * (size_t)C);
    {   /* overdispersed starts (so that R-hat can see chains that have not met): check draws
           of the heavy-tailed base, inside the support, else importance-resampled ones */
        size_t k, got = 0;
        for (k = 0; k < ncheck && got < (size_t)C; ++k) {
            double q2 = 0;
            for (j = 0; j < D; ++j) q2 += (double)ib->cz[NF__IX(k, D, j)] * (double)ib->cz[NF__IX(k, D, j)];
            if (ib->clp[k] > -HUGE_VAL && q2 > 2.0 * D) pick[got++] = k;   /* beyond the base's bulk */
        }
        if (got < (size_t)C) nf__resample(ib->clw, ncheck, (size_t)C - got, rng, pick + got);
    }
    for (c = 0; c < C; ++c) {
        memcpy(z + (size_t)c * (size_t)D, ib->cz + pick[c] * (size_t)D, (size_t)D * sizeof(nf_real));
        memcpy(y + (size_t)c * (size_t)D, ib->cy + pick[c] * (size_t)D, (size_t)D * sizeof(nf_real));
        lp[c] = ib->clp[pick[c]]; lq[c] = ib->clq[pick[c]]; ld[c] = ib->cld[pick[c]];
        fresh[c] = 0;   /* gradient at the current point not known yet */
    }
    for (it = 0; s->evals + per_it <= budget; ++it) {
        double acc = 0, ac2 = 0; int rej[32], nr = 0;
        /* independence step: x' ~ q, accepted with w(x') / w(x), w = p~ / q */
        if ((r = nf__infer_draw(f, P, rng, (size_t)C, zp, yp, plq, pld, tmp, ib->kx)) != NF_OK) break;
        if ((r = nf__eval_y(s, yp, (size_t)C, plp)) != NF_OK) break;
        for (c = 0; c < C; ++c) {
            double a = (plp[c] - plq[c]) - (lp[c] - lq[c]);
            if (plp[c] > -HUGE_VAL && (a >= 0 || (double)nf_rng_uniform(rng) < exp(a))) {
                memcpy(z + (size_t)c * (size_t)D, zp + (size_t)c * (size_t)D, (size_t)D * sizeof(nf_real));
                memcpy(y + (size_t)c * (size_t)D, yp + (size_t)c * (size_t)D, (size_t)D * sizeof(nf_real));
                lp[c] = plp[c]; lq[c] = plq[c]; ld[c] = pld[c]; fresh[c] = 0;
                if (it >= warm) accg += 1;
            }
        }
        /* MALA in latent space: z' = z + h^2/2 grad + h xi */
        for (c = 0; c < C; ++c) if (!fresh[c]) break;
        if (c < C) {   /* gradients at the current points (all chains in one call) */
            if ((r = nf__latent_grad(s, t, z, C, yp, plp, pld, lpz, g)) != NF_OK) break;
            for (c = 0; c < C; ++c) fresh[c] = 1;
        }
        for (c = 0; c < C; ++c) for (j = 0; j < D; ++j)
            zp[NF__IX(c, D, j)] = z[NF__IX(c, D, j)] + (nf_real)(0.5 * h * h * (double)g[NF__IX(c, D, j)] + h * (double)nf_rng_normal(rng));
        if ((r = nf__latent_grad(s, t, zp, C, yp, plp, pld, plpz, gp)) != NF_OK) break;
        for (c = 0; c < C; ++c) {
            double a; int in = lpz[c] > -HUGE_VAL;
            if (!(plpz[c] > -HUGE_VAL) || !in) {
                if (!in && plpz[c] > -HUGE_VAL) a = 0; else { if (in) rej[nr++] = c; continue; }
            } else {
                a = plpz[c] - lpz[c] + nf__mala_lq(zp + (size_t)c * (size_t)D, gp + (size_t)c * (size_t)D, z + (size_t)c * (size_t)D, D, h)
                                     - nf__mala_lq(z + (size_t)c * (size_t)D, g + (size_t)c * (size_t)D, zp + (size_t)c * (size_t)D, D, h);
            }
            ac2 += a >= 0 ? 1 : exp(a);
            if (a >= 0 || (double)nf_rng_uniform(rng) < exp(a)) {
                memcpy(z + (size_t)c * (size_t)D, zp + (size_t)c * (size_t)D, (size_t)D * sizeof(nf_real));
                memcpy(y + (size_t)c * (size_t)D, yp + (size_t)c * (size_t)D, (size_t)D * sizeof(nf_real));
                memcpy(g + (size_t)c * (size_t)D, gp + (size_t)c * (size_t)D, (size_t)D * sizeof(nf_real));
                lp[c] = plp[c]; ld[c] = pld[c]; lpz[c] = plpz[c]; fresh[c] = 1;
                acc += 1;
            } else if (in) rej[nr++] = c;
        }
        if (nr > 0) {   /* delayed rejection: a smaller step from where each refused chain stands */
            double h2 = h * exp(-1.1 - 3.5 * (double)nf_rng_uniform(rng));   /* h / 3 .. h / 100 */
            int q;
            for (q = 0; q < nr; ++q) for (c = rej[q], j = 0; j < D; ++j)
                tmp[NF__IX(q, D, j)] = z[NF__IX(c, D, j)] + (nf_real)(0.5 * h2 * h2 * (double)g[NF__IX(c, D, j)] + h2 * (double)nf_rng_normal(rng));
            if ((r = nf__latent_grad(s, t, tmp, nr, y2, plp2, pld2, plpz2, g2)) != NF_OK) break;
            for (q = 0; q < nr; ++q) {
                const nf_real *u2 = tmp + (size_t)q * (size_t)D, *gu2 = g2 + (size_t)q * (size_t)D; double a;
                c = rej[q];
                if (!(plpz2[q] > -HUGE_VAL)) continue;
                a = nf__dr_logr(lpz[c], plpz[c], plpz2[q], z + (size_t)c * (size_t)D, g + (size_t)c * (size_t)D,
                                zp + (size_t)c * (size_t)D, gp + (size_t)c * (size_t)D, u2, gu2, D, h, h2);
                if (a >= 0 || (double)nf_rng_uniform(rng) < exp(a)) {
                    memcpy(z + (size_t)c * (size_t)D, u2, (size_t)D * sizeof(nf_real));
                    memcpy(y + (size_t)c * (size_t)D, y2 + (size_t)q * (size_t)D, (size_t)D * sizeof(nf_real));
                    memcpy(g + (size_t)c * (size_t)D, gu2, (size_t)D * sizeof(nf_real));
                    lp[c] = plp2[q]; ld[c] = pld2[q]; lpz[c] = plpz2[q]; fresh[c] = 1;
                    acc += 1;
                }
            }
        }
        nf__infer_lq(f, P, z, y, (size_t)C, ld, lq);   /* the proposal density at the (moved) points */
        if (it < warm) { h *= exp((ac2 / C - 0.574) / sqrt(1.0 + it - w0)); continue; }   /* toward MALA's 57% */
        accl += acc; tries += C;
        if (++since < thin) continue;
        since = 0;
        if (n == Nmax) {   /* full: keep every other draw, and from now on every 2 thin-th */
            size_t tt;
            for (c = 0; c < C; ++c)
                for (tt = 0; tt < Nmax / 2; ++tt) {
                    memcpy(utr + (NF__IX(c, Nmax, tt)) * (size_t)D, utr + (NF__IX(c, Nmax, 2 * tt + 1)) * (size_t)D, (size_t)D * sizeof(double));
                    memcpy(ytr + (NF__IX(c, Nmax, tt)) * (size_t)D, ytr + (NF__IX(c, Nmax, 2 * tt + 1)) * (size_t)D, (size_t)D * sizeof(nf_real));
                }
            n = Nmax / 2; thin *= 2;
        }
        for (c = 0; c < C; ++c)   /* keep y, and u for the diagnostics */
            for (j = 0; j < D; ++j) {
                nf_real yv = y[NF__IX(c, D, j)], uv, l0;
                ytr[(NF__IX(c, Nmax, n)) * (size_t)D + (size_t)j] = yv;
                nf__dom_fwd(&f->dom[j], yv, &uv, &l0);
                utr[(NF__IX(c, Nmax, n)) * (size_t)D + (size_t)j] = (double)uv;
            }
        ++n;
        if ((n >= 400 && n % 200 == 0) || s->evals + per_it > budget) {
            double rh = 1, es = HUGE_VAL;
            for (j = 0; j < D; ++j) {
                double a, b, tl;
                nf__rhat_ess(utr, C, n, Nmax, D, j, &a, &b, &tl, v, idx);
                if (!(a <= rh)) rh = a;
                if (!(b >= es)) es = b;
                if (!(tl >= es)) es = tl;   /* the smaller of bulk and tail ESS */
            }
            rp->rhat = rh; rp->mcmc_ess = es;
            if (o->callback) {
                nf_infer_progress pg; pg.stage = NF_INFER_STAGE_MCMC; pg.evals = s->evals; pg.steps = rp->steps; pg.elbo = rp->elbo; pg.khat = rp->khat;
                if (o->callback(&pg, o->user)) break;
            }
            if (n >= 1000 && rh < o->rhat_max && es >= o->ess_min) { *passed = 1; break; }
            {   /* too slow (under 0.1 ESS per draw, or the budget's end projected short of
                   ess_min): refit the flow to the draws and start over from where the chains
                   are (a short warm-up again; the draws so far are dropped: the kernel changed) */
                double done = (double)n * (double)thin, rest = (double)(budget - s->evals) / (double)per_it;
                if (rp->refits < o->refits && !refit_off && n >= 1000 && rest > 2000 && (es < 0.1 * C * done || es * (done + rest) / done < o->ess_min)) {
                    nf_result rr = nf__infer_refit(f, &t2, &keep, o->lr / 2, ytr, Nmax, C, n, ib, ncheck, rng, ib->kx);
                    if (rr == NF_ERR_NOMEM) { r = rr; break; }
                    if (rr != NF_OK) { refit_off = 1; continue; }   /* parameters put back: go on as before */
                    ++rp->refits;
                    if ((r = nf_flow_forward(f, y, (size_t)C, z, NULL)) != NF_OK) break;   /* the chains' points in the new latent space */
                    if ((r = nf__latent_grad(s, t, z, C, y, lp, ld, lpz, g)) != NF_OK) break;
                    for (c = 0; c < C; ++c) fresh[c] = 1;
                    nf__infer_lq(f, P, z, y, (size_t)C, ld, lq);
                    n = 0; thin = 1; since = 0; accl = accg = tries = 0;
                    w0 = it + 1; warm = it + 101;
                }
            }
        }
    }
    if (n > 0 && m > 0)   /* the samples: evenly spaced over every chain's kept draws */
        for (i = 0; i < m; ++i) {
            size_t k = (size_t)((double)i * (double)(n * (size_t)C) / (double)m), cc = k % (size_t)C, tt = k / (size_t)C;
            memcpy(out + i * (size_t)D, ytr + (cc * Nmax + tt) * (size_t)D, (size_t)D * sizeof(nf_real));
        }
    rp->accept_global = tries > 0 ? accg / tries : 0;
    rp->accept_local = tries > 0 ? accl / tries : 0;
    NF_FREE(utr, NULL);
    NF_FREE(keep, NULL);
    nf_trainer_destroy(t2);
    nf_trainer_destroy(t);
    return r;
}

static const char *nf__infer_check_opts(const nf_infer_options *o, const nf_flow *f) {
    size_t i; int j;
    if (o->max_evals < 1000) return "max_evals must be at least 1000";
    if (o->starts < 1 || o->starts > 64) return "starts must be 1 .. 64";
    if (o->n_init > (size_t)o->starts) return "n_init must not exceed starts";
    if (o->n_init && !o->init) return "init is NULL with n_init > 0";
    if (!(o->init_sd > 0 && o->init_sd < 1e6)) return "init_sd must be in (0, 1e6)";
    if (o->batch < 2 || o->batch > 4096) return "batch must be 2 .. 4096";
    if (o->max_steps < 0) return "max_steps must be >= 0";
    if (!(o->lr > 0 && o->lr < 1)) return "lr must be in (0, 1)";
    if (o->check_draws < 0 || o->check_draws > 10000000) return "check_draws must be 0 .. 1e7";
    if (!(o->khat_max > 0 && o->khat_max <= 1)) return "khat_max must be in (0, 1]";
    if (!(o->ess_fraction_min >= 0 && o->ess_fraction_min <= 1)) return "ess_fraction_min must be in [0, 1]";
    if (!(o->kl_max >= 0)) return "kl_max must be >= 0";
    if (!(o->ess_min >= 0 && o->ess_min < 1e9)) return "ess_min must be in [0, 1e9)";
    if (o->chains != 0 && (o->chains < 2 || o->chains > 32)) return "chains must be 0 or 2 .. 32";
    if (o->refits < 0 || o->refits > 100) return "refits must be 0 .. 100";
    if (!(o->rhat_max > 1 && o->rhat_max < 2)) return "rhat_max must be in (1, 2)";
    if (o->warm_start != 0 && o->warm_start != 1) return "warm_start must be 0 or 1";
    for (i = 0; i < o->n_init; ++i)
        for (j = 0; j < f->dim; ++j)
            if (!nf__isfinite(o->init[i * (size_t)f->dim + (size_t)j])) return "init holds a non-finite value";
    for (i = 0; i < o->n_init; ++i) if (!nf_flow_in_domain(f, o->init + i * (size_t)f->dim)) return "an init row lies outside the flow's domain";
    return NULL;
}

NFDEF nf_result nf_infer(nf_flow *f, nf_log_density_fn target, void *user, const nf_infer_options *opt,
                         nf_infer_report *rep, nf_real *samples, size_t n_samples) {
    nf_infer_options o; nf_infer_report rp; nf__inf s; nf__ibuf ib; nf__prop P; nf_rng rng; nf_result r = NF_OK;
    int D, K = 0, unbounded = 0, exact = 0, why = 0, k, mcmc_ok = 0, W; const char *bad;
    size_t S, bytes, cap; void *blk = NULL, *cblk = NULL; long budget_fit;
    if (!f) return NF_ERR_NULL;
    f->err[0] = 0; f->err_row = -1;
    if (!target) return nf__fail(f, NF_ERR_NULL, "target is NULL", -1);
    if (n_samples && !samples) return nf__fail(f, NF_ERR_NULL, "samples is NULL", -1);
    if (f->ctx_dim) return nf__fail(f, NF_ERR_ARG, "nf_infer needs a flow without context", -1);
    if (f->readonly) return nf__fail(f, NF_ERR_READONLY, "cannot fit read-only weights", -1);
    if (opt) o = *opt; else nf_infer_options_default(&o);
    if ((bad = nf__infer_check_opts(&o, f)) != NULL) return nf__fail(f, NF_ERR_ARG, bad, -1);
    D = f->dim;
    memset(&rp, 0, sizeof rp);
    rp.khat = rp.rhat = HUGE_VAL; rp.log_z = -HUGE_VAL; rp.log_z_se = HUGE_VAL; rp.elbo = -HUGE_VAL;
    nf_rng_seed(&rng, o.seed);
    S = o.check_draws ? (size_t)o.check_draws : (n_samples > 4000 ? n_samples : 4000);
    W = (1024 + o.batch - 1) / o.batch; if (W < 2) W = 2;
    cap = (size_t)(o.batch > 256 ? o.batch : 256);
    {   /* one block: callback buffers, modes, starts, scratch, the fit's window */
        int ok = 1; size_t d = (size_t)D, nw = (size_t)W * (size_t)o.batch;
        bytes = nf__madd(0, cap, (2 * d + 1) * sizeof(nf_real), &ok);
        bytes = nf__madd(bytes, NF__MAXMODES, (d + d * d) * sizeof(double), &ok);
        bytes = nf__madd(bytes, (size_t)o.starts, (d + 1) * sizeof(double) + sizeof(int), &ok);
        bytes = nf__madd(bytes, 1, (2 * d * d + (2 * NF__LBFGS_M + 8 + 65) * d + 3 * d) * sizeof(double), &ok);
        bytes = nf__madd(bytes, nw, d * sizeof(nf_real) + 2 * sizeof(double), &ok);
        bytes = nf__madd(bytes, cap, 1, &ok);
        bytes = nf__madd(bytes, 64, 16, &ok);
        if (!ok) return nf__fail(f, NF_ERR_OVERFLOW, "inference buffers", -1);
        blk = NF_MALLOC(bytes, NULL);
        if (!blk) return nf__fail(f, NF_ERR_NOMEM, "inference buffers", -1);
        {   double *p = (double *)blk; nf_real *q;
            for (k = 0; k < NF__MAXMODES; ++k) { ib.mode[k].m = p; p += d; ib.mode[k].L = p; p += d * d; }
            ib.cand = p; p += (size_t)o.starts * d; ib.candf = p; p += o.starts;
            ib.work = p; p += 2 * d * d + (2 * NF__LBFGS_M + 8 + 65) * d; ib.g = p; p += d;
            P.t = p; p += 2 * d;
            ib.klq = p; p += nw; ib.klp = p; p += nw;
            ib.cand_code = (int *)p;
            q = (nf_real *)(ib.cand_code + o.starts + 16);
            s.y = q; q += cap * d; s.g = q; q += cap * d; s.lp = q; q += cap;
            ib.kx = q; q += nw * d;
            s.oob = (unsigned char *)q;
        }
    }
    {   /* the check's draws (also the fit's window diagnostics: S >= W batch) */
        int ok = 1; size_t n = S > (size_t)W * (size_t)o.batch ? S : (size_t)W * (size_t)o.batch;
        bytes = nf__madd(0, n, (2 * (size_t)D + 1) * sizeof(nf_real) + 6 * sizeof(double) + sizeof(size_t), &ok);
        if (!ok) { NF_FREE(blk, NULL); return nf__fail(f, NF_ERR_OVERFLOW, "check buffers", -1); }
        cblk = NF_MALLOC(bytes, NULL);
        if (!cblk) { NF_FREE(blk, NULL); return nf__fail(f, NF_ERR_NOMEM, "check buffers", -1); }
        ib.clq = (double *)cblk; ib.clp = ib.clq + n; ib.clw = ib.clp + n; ib.cld = ib.clw + n; ib.tail = ib.cld + n;   /* tail: 2n */
        ib.idx = (size_t *)(ib.tail + 2 * n); ib.cz = (nf_real *)(ib.idx + n); ib.cy = ib.cz + n * (size_t)D; ib.cw = ib.cy + n * (size_t)D;
    }
    s.f = f; s.fn = target; s.user = user; s.D = D; s.evals = 0; s.max_evals = o.max_evals; s.cap = cap; s.stage = ""; s.lenient = 0;
    P.ib = &ib; P.K = 0; P.b = 0; P.modes = 0;

    /* 1. where the posterior is */
    if (!o.warm_start) {
        r = nf__infer_search(&s, &o, &rng, &ib, &K, &unbounded);
        rp.evals_search = s.evals;
        if (r != NF_OK) goto done;
        rp.modes = K;
        if (K == 0 && !unbounded) {
            r = nf__fail(f, NF_ERR_ARG, "the target is zero (-inf) or flat at every start: give starts inside its support (options.init) or widen init_sd", -1);
            goto done;
        }
        if (K == 0) {   /* no mode (a density without bound, e.g. a funnel's neck): a broad start */
            K = 1; rp.modes = 0;
            for (k = 0; k < D; ++k) ib.mode[0].m[k] = 0;
            for (k = 0; k < D * D; ++k) ib.mode[0].L[k] = 0;
            for (k = 0; k < D; ++k) ib.mode[0].L[NF__IX(k, D, k)] = o.init_sd / 2;
            ib.mode[0].logw = 0;
        }
        exact = nf__infer_place(f, &ib, K, ib.work, ib.work + (size_t)D * (size_t)D);
        {   /* the proposal's Laplace part: every kept mode, by its weight */
            double mx = -HUGE_VAL, tot = 0;
            for (k = 0; k < K; ++k) if (ib.mode[k].logw > mx) mx = ib.mode[k].logw;
            for (k = 0; k < K; ++k) tot += exp(ib.mode[k].logw - mx);
            for (k = 0; k < K; ++k) P.lw[k] = ib.mode[k].logw - mx - log(tot);
            P.K = K; P.b = NF__DEF_B;
            for (k = 0; k < K; ++k) if (ib.mode[k].saddle == 0 && P.lw[k] > log(0.01)) ++P.modes;
        }
        if (!exact && (r = nf__infer_pretrain(f, &ib, K, &rng, ib.work, ib.work + D)) != NF_OK) { nf__fail(f, r, "fitting the flow to the modes", -1); goto done; }
    }
    /* 2. reverse KL until the recent draws pass; not at all if the start already does (an
       exact Laplace start: Adam's first steps would only add noise) */
    budget_fit = s.evals + (o.max_evals - s.evals) / 2;
    if (budget_fit > o.max_evals - (long)S) budget_fit = o.max_evals - (long)S;
    {   long e0 = s.evals; size_t n0 = (size_t)W * (size_t)o.batch;
        if (s.evals + (long)n0 <= budget_fit) {
            nf_infer_report pre = rp;
            if ((r = nf__infer_check(&s, &P, n0, &ib, &rng, &pre)) != NF_OK) goto done;
            if (pre.khat < 0.5 && pre.ess_fraction > 0.5) why = 1;
            rp.outside = pre.outside;
        }
        if (!why) r = nf__infer_fit(&s, &P, &o, &rng, &ib, budget_fit, &rp, &why);
        rp.evals_fit = s.evals - e0;
        if (r != NF_OK) goto done;
    }
    /* 3. the check: importance sampling with Pareto smoothing */
    {   long e0 = s.evals; size_t n = S;
        if ((long)n > o.max_evals - s.evals) n = (size_t)(o.max_evals - s.evals);
        if (n < 100) { r = NF_ERR_CHECK_FAILED; nf__infer_msg(f, "the evaluation budget ran out before the check: ", "raise max_evals"); goto done; }
        S = n;
        r = nf__infer_check(&s, &P, S, &ib, &rng, &rp);
        rp.evals_check = s.evals - e0;
        if (r != NF_OK) goto done;
    }
    {   double kmax = o.khat_max, th = 1 - 1 / log10((double)S);
        if (th < kmax) kmax = th;
        if (rp.khat <= kmax && rp.ess >= o.ess_min && rp.ess_fraction >= o.ess_fraction_min && rp.log_z - rp.elbo <= o.kl_max) {
            size_t i, *pick = ib.idx;   /* importance resampling (idx is free again) */
            rp.method = NF_INFER_IMPORTANCE;
            if (n_samples) {
                size_t done_n = 0;
                while (done_n < n_samples) {
                    size_t m = n_samples - done_n < S ? n_samples - done_n : S;
                    nf__resample(ib.clw, S, m, &rng, pick);
                    for (i = 0; i < m; ++i) memcpy(samples + (done_n + i) * (size_t)D, ib.cy + pick[i] * (size_t)D, (size_t)D * sizeof(nf_real));
                    done_n += m;
                }
            }
            r = NF_OK;
            goto done;
        }
        /* 4. the flow alone does not pass: flow-driven MCMC */
        if (o.chains > 0) {
            long e0 = s.evals;
            r = nf__infer_mcmc(&s, &P, &o, &ib, S, &rng, o.max_evals, &rp, samples, n_samples, &mcmc_ok);
            rp.evals_mcmc = s.evals - e0;
            if (r != NF_OK) goto done;
            if (rp.mcmc_ess > 0) rp.method = NF_INFER_MCMC;
            if (mcmc_ok) { r = NF_OK; goto done; }
        }
        if (rp.method == 0 && n_samples) {   /* what there is: importance-resampled draws */
            size_t i, *pick = ib.idx;
            rp.method = NF_INFER_IMPORTANCE;
            for (i = 0; i < n_samples; i += S) {
                size_t m = n_samples - i < S ? n_samples - i : S, q;
                nf__resample(ib.clw, S, m, &rng, pick);
                for (q = 0; q < m; ++q) memcpy(samples + (i + q) * (size_t)D, ib.cy + pick[q] * (size_t)D, (size_t)D * sizeof(nf_real));
            }
        }
        r = NF_ERR_CHECK_FAILED;
        {   nf__msgbuf mb; mb.s = f->err; mb.n = 0; mb.cap = sizeof f->err; f->err_row = -1;
            nf__msg_str(&mb, "posterior not checked: ");
            if (rp.khat > kmax) { nf__msg_str(&mb, "Pareto k-hat "); nf__msg_num(&mb, rp.khat); nf__msg_str(&mb, " > "); nf__msg_num(&mb, kmax); }
            else { nf__msg_str(&mb, "importance ESS "); nf__msg_num(&mb, floor(rp.ess)); nf__msg_str(&mb, " < "); nf__msg_num(&mb, o.ess_min); }
            if (o.chains > 0) {
                if (rp.mcmc_ess > 0) { nf__msg_str(&mb, "; MCMC R-hat "); nf__msg_num(&mb, floor(rp.rhat * 1000 + 0.5) / 1000); nf__msg_str(&mb, ", ESS "); nf__msg_num(&mb, floor(rp.mcmc_ess)); }
                else nf__msg_str(&mb, "; no budget left for MCMC");
            }
            nf__msg_str(&mb, why == 0 ? ": the fit stopped at its budget (raise max_evals or max_steps)" : ": the flow cannot match the posterior (a larger flow, or more MCMC budget)");
        }
    }
done:
    rp.evals = s.evals;
    if (rep) *rep = rp;
    NF_FREE(cblk, NULL);
    NF_FREE(blk, NULL);
    (void)unbounded;
    return r;
}

#endif /* NFLOW_NO_IMPORTANCE */

/* ---- the score: d log q / dy ------------------------------------------------------- */
NFDEF nf_result nf_flow_log_prob_grad(nf_trainer *t, const nf_real *y, size_t n, nf_real *logp, nf_real *grad) {
    nf_flow *f; size_t i0; int D, j; nf_result r;
    if (!t) return NF_ERR_NULL;
    f = t->f;
    if ((r = nf__check_call(f, y, n, grad)) != NF_OK) return r;
    if (f->ctx_dim) return nf__fail(f, NF_ERR_ARG, "nf_flow_log_prob_grad needs a flow without context", -1);
    if ((r = nf__check_rows(f, y, n, f->dim, "data")) != NF_OK) return r;
    D = f->dim;
    for (i0 = 0; i0 < n; i0 += t->max_batch) {
        int R = (int)(n - i0 < t->max_batch ? n - i0 : t->max_batch), i;
        nf_tape tp; nf_tensor *x, *lq, *loss; nf__tctx c; nf_real *ys, *gys, *a, *b, *ld0; double cst;
        nf_arena_reset(&t->arena);
        nf_tape_init(&tp, &t->arena); tp.par = &f->par;
        ys = (nf_real *)nf_arena_alloc(&t->arena, (size_t)R * (size_t)D * sizeof(nf_real));
        gys = (nf_real *)nf_arena_alloc(&t->arena, (size_t)R * (size_t)D * sizeof(nf_real));
        a = (nf_real *)nf_arena_alloc(&t->arena, (size_t)R * (size_t)D * sizeof(nf_real));
        b = (nf_real *)nf_arena_alloc(&t->arena, (size_t)R * (size_t)D * sizeof(nf_real));
        ld0 = (nf_real *)nf_arena_alloc(&t->arena, (size_t)R * sizeof(nf_real));
        if (!ys || !gys || !a || !b || !ld0) return nf__fail(f, NF_ERR_ARENA_FULL, "score scratch: make the trainer's max_batch smaller", -1);
        memset(gys, 0, (size_t)R * (size_t)D * sizeof(nf_real));
        for (i = 0; i < R; ++i) {   /* domain map: u, du/dy (a), d log|du/dy| / dy (b) */
            const nf_real *yr = y + (i0 + (size_t)i) * (size_t)D; int in = 1; nf_real l = 0;
            for (j = 0; j < D; ++j) {
                const nf_domain *m = &f->dom[j]; nf_real u = yr[j], dl = 0, p, q, lo = (nf_real)m->lo, P = (nf_real)(m->hi - m->lo);
                nf_real da = 1, db = 0;
                if (f->has_dom && m->kind != NF_DOMAIN_REAL) {
                    in &= nf__dom_fwd(m, yr[j], &u, &dl);
                    if (m->kind == NF_DOMAIN_LOWER) { da = 1 / (yr[j] - lo); db = -da; }
                    else {
                        nf_real tt = m->kind == NF_DOMAIN_INTERVAL ? yr[j] - lo : (nf_real)P / (1 + NF_EXP(-u));   /* the offset into the period */
                        p = 1 / tt; q = 1 / (P - tt); da = p + q; db = q - p;
                    }
                }
                ys[NF__IX(i, D, j)] = (u - f->mean[j]) / f->std[j];
                a[NF__IX(i, D, j)] = da / f->std[j]; b[NF__IX(i, D, j)] = db;
                l += dl;
            }
            if (!in) { for (j = 0; j < D; ++j) ys[NF__IX(i, D, j)] = 0; l = (nf_real)-HUGE_VAL; }
            ld0[i] = l;
        }
        c.tp = &tp; c.f = f; c.grad = t->grad; c.ldr = c.ldc = NULL; c.ctx = NULL;
        x = nf_tape_param(&tp, ys, gys, R, D);
        for (j = 0; j < f->n_layers; ++j) x = nf__kinds[f->layers[j].kind].tape(&c, &f->layers[j], x);
        if (f->desc.base == NF_BASE_DIAG_GAUSSIAN) {
            nf_tensor *mu = nf__tparam(&c, f->base_off, 1, D), *ls = nf__tparam(&c, f->base_off + (size_t)D, 1, D);
            x = nf_t_mul(&tp, nf_t_sub(&tp, x, mu), nf_t_exp(&tp, nf_t_scale(&tp, ls, -1)));
            nf__add_ld(&c, nf_t_scale(&tp, nf_t_sum(&tp, ls), -1), 0);
        }
        lq = nf_t_scale(&tp, nf_t_sum_rows(&tp, nf_t_square(&tp, x)), NF__R(-0.5));
        if (c.ldr) lq = nf_t_add(&tp, lq, c.ldr);
        loss = nf_t_sum(&tp, lq);   /* rows are independent: d(sum)/dy_r = d log q(y_r) / dy_r */
        if (!loss) return nf__fail(f, tp.err, "building the score", -1);
        if ((r = nf_tape_backward(&tp, loss)) != NF_OK) return nf__fail(f, r, "score backward", -1);
        cst = -0.5 * D * NF__LOG_2PI + (double)nf__std_logdet(f) + (c.ldc ? (double)c.ldc->val[0] : 0);
        for (i = 0; i < R; ++i) {
            size_t row = i0 + (size_t)i;
            if (!(ld0[i] > (nf_real)-HUGE_VAL)) {   /* outside the domain */
                if (logp) logp[row] = (nf_real)-HUGE_VAL;
                for (j = 0; j < D; ++j) grad[NF__IX(row, D, j)] = 0;
                continue;
            }
            if (logp) logp[row] = (nf_real)((double)lq->val[i] + cst + (double)ld0[i]);
            for (j = 0; j < D; ++j) grad[NF__IX(row, D, j)] = gys[NF__IX(i, D, j)] * a[NF__IX(i, D, j)] + b[NF__IX(i, D, j)];
            for (j = 0; j < D; ++j)
                if (!nf__isfinite(grad[NF__IX(row, D, j)]) || (logp && !nf__isfinite(logp[row])))
                    return nf__fail(f, NF_ERR_RANGE, "score not representable (the input is too extreme for this flow)", (long)row);
        }
    }
    return NF_OK;
}
#endif /* NFLOW_NO_TRAINING */

#endif /* NFLOW_IMPLEMENTATION_DONE */
#endif /* NFLOW_IMPLEMENTATION */

/*
------------------------------------------------------------------------------
This software is available under 2 licenses -- choose whichever you prefer.
------------------------------------------------------------------------------
ALTERNATIVE A - MIT License
Copyright (c) 2026 the nflow authors
Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:
The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
------------------------------------------------------------------------------
ALTERNATIVE B - Public Domain (www.unlicense.org)
This is free and unencumbered software released into the public domain.
Anyone is free to copy, modify, publish, use, compile, sell, or distribute this
software, either in source code form or as a compiled binary, for any purpose,
commercial or non-commercial, and by any means.
In jurisdictions that recognize copyright laws, the author or authors of this
software dedicate any and all copyright interest in the software to the public
domain. We make this dedication for the benefit of the public at large and to
the detriment of our heirs and successors. We intend this dedication to be an
overt act of relinquishment in perpetuity of all present and future rights to
this software under copyright law.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN
ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION
WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
------------------------------------------------------------------------------
*/
