/* lesson.c: the C side of the browser lesson (web/index.html).

   A thin wrapper over nflow.h's public API, compiled to WebAssembly by web/build.sh
   and natively by tests/web/run.sh (the same file, so the browser's numbers can be
   checked against a native build). The page's JavaScript only draws: every data set,
   flow, training step, sample, density, pushforward stage and log-determinant comes
   from here.

   One lesson = a 2-D data set (train rows, and every fifth row held out for
   validation), a flow built from the KINDS table, and its trainer. Results go to an
   output buffer the page reads (ls_out; it may move after any call, so re-read the
   pointer each time). Functions return nf_result codes; ls_error says why.

   Precision: the lesson is built with NFLOW_DOUBLE (web/build.sh explains why;
   -DLS_FLOAT builds it in float for experiments). */
#if !defined(LS_FLOAT) && !defined(NFLOW_DOUBLE)
#define NFLOW_DOUBLE
#endif
#define NFLOW_NO_STDIO
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"

#ifdef __wasm__
#define LS_API(name) __attribute__((export_name(#name)))
#else
#define LS_API(name)
#endif

#define LS_LO (-3.0)   /* the page's view box is [LS_LO, LS_HI]^2 */
#define LS_HI 3.0

/* ---- flow kinds: one row each ------------------------------------------------------
   id (used in the page's URL), name, what one layer is called, the layer kind, the
   base distribution, how features are mixed between layers (0: couplings alternate
   which coordinate they keep; 1: an NF_LAYER_REVERSE between layers), and one
   sentence for the page. A new kind in nflow.h (spline couplings, autoregressive
   layers) is one more row. */
typedef struct ls_kind {
    const char *id, *name, *layer_name;
    int layer_kind, base, reverse_between;
    const char *about;
} ls_kind;

static const ls_kind ls_kinds[] = {
    {"realnvp", "RealNVP", "affine coupling", NF_LAYER_AFFINE_COUPLING, NF_BASE_STD_NORMAL, 0,
     "Affine couplings: z_b = y_b exp(s(y_a)) + t(y_a). Each layer can stretch or squeeze, log|det| = sum of s."},
    {"nice", "NICE", "additive coupling", NF_LAYER_ADDITIVE_COUPLING, NF_BASE_DIAG_GAUSSIAN, 0,
     "Additive couplings: z_b = y_b + t(y_a), every log|det| is 0; only the learnable diagonal Gaussian base can change scale."},
    {"nsf", "NSF", "spline coupling", NF_LAYER_SPLINE_COUPLING, NF_BASE_STD_NORMAL, 0,
     "Spline couplings: z_b = a monotone rational-quadratic spline of y_b whose bins come from y_a; log|det| = log of its slope. Sharper shapes than affine maps."},
    {"maf", "MAF", "autoregressive layer", NF_LAYER_AUTOREGRESSIVE, NF_BASE_STD_NORMAL, 1,
     "Masked autoregressive layers: z_2 = y_2 exp(s(y_1)) + t(y_1) and z_1 = y_1 exp(s) + t with constants; densities in one pass, samples in two."},
};
#define LS_N_KINDS ((int)(sizeof ls_kinds / sizeof ls_kinds[0]))

/* ---- data sets -------------------------------------------------------------------- */
typedef void (*ls_gen_fn)(nf_rng *r, nf_real *xy);   /* one point */

static const double ls_pi = 3.14159265358979323846;

/* two interleaved half circles, noise 0.06, centred and scaled to about unit spread */
static void ls_gen_moons(nf_rng *r, nf_real *xy) {
    double t = ls_pi * (double)nf_rng_uniform(r), x, y;
    int upper = (int)(nf_rng_u32(r) & 1u);
    x = (upper ? cos(t) : 1 - cos(t)) + 0.06 * (double)nf_rng_normal(r);
    y = (upper ? sin(t) : 0.5 - sin(t)) + 0.06 * (double)nf_rng_normal(r);
    xy[0] = (nf_real)((x - 0.5) * 1.15);
    xy[1] = (nf_real)((y - 0.25) * 1.6);
}
/* two concentric rings, radii 0.9 and 2.1, the outer holding twice the points */
static void ls_gen_rings(nf_rng *r, nf_real *xy) {
    double t = 2 * ls_pi * (double)nf_rng_uniform(r);
    double rad = (nf_rng_u32(r) % 3u == 0 ? 0.9 : 2.1) + 0.08 * (double)nf_rng_normal(r);
    xy[0] = (nf_real)(rad * cos(t)); xy[1] = (nf_real)(rad * sin(t));
}
/* a 4 x 4 checkerboard on [-2, 2]^2, uniform on the dark squares */
static void ls_gen_checker(nf_rng *r, nf_real *xy) {
    int cell = (int)(nf_rng_u32(r) % 8u), row = cell / 2, col = 2 * (cell % 2) + (row % 2);
    xy[0] = (nf_real)(-2 + col + (double)nf_rng_uniform(r));
    xy[1] = (nf_real)(-2 + row + (double)nf_rng_uniform(r));
}
/* two arms of an Archimedean spiral */
static void ls_gen_spiral(nf_rng *r, nf_real *xy) {
    double u = sqrt((double)nf_rng_uniform(r)), t = 0.4 + u * 2.6 * ls_pi, rad = 0.75 * t / ls_pi;
    double arm = (nf_rng_u32(r) & 1u) ? ls_pi : 0;
    xy[0] = (nf_real)(rad * cos(t + arm) + 0.07 * (double)nf_rng_normal(r));
    xy[1] = (nf_real)(rad * sin(t + arm) + 0.07 * (double)nf_rng_normal(r));
}

typedef struct ls_dataset { const char *id, *name; ls_gen_fn gen; } ls_dataset;
static const ls_dataset ls_datasets[] = {
    {"moons", "two moons", ls_gen_moons},
    {"rings", "concentric rings", ls_gen_rings},
    {"checkerboard", "checkerboard", ls_gen_checker},
    {"spiral", "spiral", ls_gen_spiral},
    {"draw", "draw with the mouse", NULL},   /* points come from ls_draw */
};
#define LS_N_DATASETS ((int)(sizeof ls_datasets / sizeof ls_datasets[0]))

/* ---- the lesson --------------------------------------------------------------------- */
typedef struct ls_lesson {
    nf_flow *flow;
    nf_trainer *trainer;
    int kind, depth, width, batch;
    nf_rng rng;                 /* minibatch draws and drawn points' jitter */
    nf_real *train, *val;       /* rows of 2 */
    size_t n_train, n_val, cap_train, cap_val, n_drawn;
    nf_real *batch_buf;         /* batch rows */
    nf_real *out;               /* results for the page */
    size_t out_cap;
    double loss;                /* mean training loss of the last ls_train call */
    char err[200];
    char label[96];             /* ls_layer_name's answer */
} ls_lesson;

static void ls_msg(ls_lesson *L, const char *a, const char *b) {
    size_t n = 0;
    while (*a && n + 1 < sizeof L->err) L->err[n++] = *a++;
    while (b && *b && n + 1 < sizeof L->err) L->err[n++] = *b++;
    L->err[n] = 0;
}
static nf_result ls_fail(ls_lesson *L, nf_result r, const char *what) {
    ls_msg(L, what, nf_result_string(r));
    return r;
}
/* makes room for n reals in the output buffer */
static nf_result ls_reserve(ls_lesson *L, size_t n) {
    void *p; size_t bytes;
    if (n <= L->out_cap) return NF_OK;
    if (n > ((size_t)-1) / sizeof(nf_real)) return NF_ERR_OVERFLOW;
    bytes = n * sizeof(nf_real);
    p = realloc(L->out, bytes);
    if (!p) return NF_ERR_NOMEM;
    L->out = (nf_real *)p; L->out_cap = n;
    return NF_OK;
}
static nf_result ls_push(nf_real **rows, size_t *n, size_t *cap, const nf_real *xy) {
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 1024;
        void *p = c < ((size_t)-1) / (2 * sizeof(nf_real)) ? realloc(*rows, c * 2 * sizeof(nf_real)) : NULL;
        if (!p) return NF_ERR_NOMEM;
        *rows = (nf_real *)p; *cap = c;
    }
    (*rows)[2 * *n] = xy[0]; (*rows)[2 * *n + 1] = xy[1];
    ++*n;
    return NF_OK;
}
/* every fifth point is held out for validation */
static nf_result ls_add_point(ls_lesson *L, const nf_real *xy) {
    if ((L->n_train + L->n_val) % 5 == 4) return ls_push(&L->val, &L->n_val, &L->cap_val, xy);
    return ls_push(&L->train, &L->n_train, &L->cap_train, xy);
}

/* JavaScript numbers are doubles: seeds arrive as one, whole and in [0, 2^53] */
static uint64_t ls_seed(double s) { return s >= 0 && s <= 9007199254740992.0 ? (uint64_t)s : 0; }

LS_API(ls_create) ls_lesson *ls_create(void) {
    ls_lesson *L = (ls_lesson *)calloc(1, sizeof *L);
    if (L) { nf_rng_seed(&L->rng, 1); L->batch = 256; }
    return L;
}
static void ls_drop_flow(ls_lesson *L) {
    nf_trainer_destroy(L->trainer); L->trainer = NULL;
    nf_flow_destroy(L->flow); L->flow = NULL;
}
LS_API(ls_destroy) void ls_destroy(ls_lesson *L) {
    if (!L) return;
    ls_drop_flow(L);
    free(L->train); free(L->val); free(L->batch_buf); free(L->out);
    free(L);
}
LS_API(ls_error) const char *ls_error(const ls_lesson *L) { return L ? L->err : "no lesson"; }
LS_API(ls_out) nf_real *ls_out(ls_lesson *L) { return L->out; }
LS_API(ls_real_bytes) int ls_real_bytes(void) { return (int)sizeof(nf_real); }
LS_API(ls_view_lo) double ls_view_lo(void) { return LS_LO; }
LS_API(ls_view_hi) double ls_view_hi(void) { return LS_HI; }

/* the tables, for the page's menus */
LS_API(ls_kind_count) int ls_kind_count(void) { return LS_N_KINDS; }
LS_API(ls_kind_id) const char *ls_kind_id(int i) { return i >= 0 && i < LS_N_KINDS ? ls_kinds[i].id : ""; }
LS_API(ls_kind_name) const char *ls_kind_name(int i) { return i >= 0 && i < LS_N_KINDS ? ls_kinds[i].name : ""; }
LS_API(ls_kind_about) const char *ls_kind_about(int i) { return i >= 0 && i < LS_N_KINDS ? ls_kinds[i].about : ""; }
LS_API(ls_dataset_count) int ls_dataset_count(void) { return LS_N_DATASETS; }
LS_API(ls_dataset_id) const char *ls_dataset_id(int i) { return i >= 0 && i < LS_N_DATASETS ? ls_datasets[i].id : ""; }
LS_API(ls_dataset_name) const char *ls_dataset_name(int i) { return i >= 0 && i < LS_N_DATASETS ? ls_datasets[i].name : ""; }

/* ---- data ----------------------------------------------------------------------------- */
/* Replaces the data with n points of data set `dataset` drawn with `seed` (the drawing
   data set starts empty). */
LS_API(ls_make_data) int ls_make_data(ls_lesson *L, int dataset, int n, double seed) {
    nf_rng r; nf_real xy[2]; int i; nf_result res;
    if (!L || dataset < 0 || dataset >= LS_N_DATASETS || n < 0 || n > 10000000) return NF_ERR_ARG;
    L->n_train = L->n_val = L->n_drawn = 0;
    if (!ls_datasets[dataset].gen) return NF_OK;
    nf_rng_seed(&r, ls_seed(seed));
    for (i = 0; i < n; ++i) {
        ls_datasets[dataset].gen(&r, xy);
        if ((res = ls_add_point(L, xy)) != NF_OK) return ls_fail(L, res, "data: ");
    }
    return NF_OK;
}
/* Adds `count` points scattered (sd `spread`) around (x, y): a brush for drawing data. */
LS_API(ls_draw) int ls_draw(ls_lesson *L, double x, double y, int count, double spread) {
    int i; nf_result res;
    if (!L || count < 0 || !(spread >= 0) || !(x == x && y == y)) return NF_ERR_ARG;
    for (i = 0; i < count; ++i) {
        nf_real xy[2];
        xy[0] = (nf_real)(x + spread * (double)nf_rng_normal(&L->rng));
        xy[1] = (nf_real)(y + spread * (double)nf_rng_normal(&L->rng));
        if ((res = ls_add_point(L, xy)) != NF_OK) return ls_fail(L, res, "data: ");
        ++L->n_drawn;
    }
    return NF_OK;
}
LS_API(ls_n_train) int ls_n_train(const ls_lesson *L) { return (int)L->n_train; }
LS_API(ls_n_val) int ls_n_val(const ls_lesson *L) { return (int)L->n_val; }
/* out: the training rows, then the validation rows */
LS_API(ls_data) int ls_data(ls_lesson *L) {
    nf_result r = ls_reserve(L, 2 * (L->n_train + L->n_val) + 2);
    if (r != NF_OK) return ls_fail(L, r, "data: ");
    if (L->n_train) memcpy(L->out, L->train, 2 * L->n_train * sizeof(nf_real));
    if (L->n_val) memcpy(L->out + 2 * L->n_train, L->val, 2 * L->n_val * sizeof(nf_real));
    return NF_OK;
}

/* ---- the flow --------------------------------------------------------------------------- */
/* Builds a new flow of kind `kind` with `depth` layers whose conditioners have two hidden
   layers of `width`, initialised from `seed`, and an Adam trainer with learning rate lr. */
LS_API(ls_build) int ls_build(ls_lesson *L, int kind, int depth, int width, int batch, double lr, double seed) {
    const ls_kind *k; nf_flow_desc d; nf_layer_desc l; nf_adam_config a; nf_result r; int i;
    if (!L) return NF_ERR_NULL;
    ls_drop_flow(L);
    if (kind < 0 || kind >= LS_N_KINDS || depth < 1 || width < 1 || batch < 1 || !(lr > 0))
        return ls_fail(L, NF_ERR_ARG, "build: ");
    k = &ls_kinds[kind];
    nf_flow_desc_init(&d, 2);
    d.base = k->base;
    d.seed = ls_seed(seed);
    for (i = 0; i < depth; ++i) {
        memset(&l, 0, sizeof l);
        if (k->reverse_between && i > 0) {
            l.kind = NF_LAYER_REVERSE;
            if ((r = nf_flow_desc_add(&d, &l)) != NF_OK) return ls_fail(L, r, "build: too many layers: ");
        }
        l.kind = k->layer_kind; l.hidden = width;
        l.parity = k->reverse_between ? 0 : i % 2;
        if ((r = nf_flow_desc_add(&d, &l)) != NF_OK) return ls_fail(L, r, "build: too many layers: ");
    }
    if ((r = nf_flow_create(&L->flow, &d)) != NF_OK) return ls_fail(L, r, "build: ");
    nf_adam_config_default(&a);
    a.lr = lr;
    a.clip_norm = 100;
    if ((r = nf_trainer_create(&L->trainer, L->flow, &a, (size_t)batch)) != NF_OK) { ls_drop_flow(L); return ls_fail(L, r, "trainer: "); }
    free(L->batch_buf);
    L->batch_buf = (nf_real *)malloc((size_t)batch * 2 * sizeof(nf_real));
    if (!L->batch_buf) { ls_drop_flow(L); return ls_fail(L, NF_ERR_NOMEM, "trainer: "); }
    L->kind = kind; L->depth = depth; L->width = width; L->batch = batch; L->loss = 0;
    nf_rng_seed(&L->rng, ls_seed(seed) + 1000003u);
    return NF_OK;
}
LS_API(ls_n_params) int ls_n_params(const ls_lesson *L) { return L->flow ? (int)nf_flow_num_params(L->flow) : 0; }
LS_API(ls_steps) int ls_steps(const ls_lesson *L) { return L->trainer ? (int)nf_trainer_steps(L->trainer) : 0; }
LS_API(ls_n_layers) int ls_n_layers(const ls_lesson *L) { return L->flow ? nf_flow_get_desc(L->flow)->n_layers : 0; }
/* What layer l (0-based, data -> latent order) is, for the page's labels. */
LS_API(ls_layer_name) const char *ls_layer_name(ls_lesson *L, int l) {
    const nf_flow_desc *d;
    if (!L->flow || l < 0 || l >= ls_n_layers(L)) return "";
    d = nf_flow_get_desc(L->flow);
    if (d->layers[l].kind == NF_LAYER_REVERSE) return "reverse (swaps the coordinates)";
    if (d->layers[l].kind == ls_kinds[L->kind].layer_kind) {
        char *buf = L->label;
        const char *a = ls_kinds[L->kind].layer_name, *b = d->layers[l].parity ? ", moves x1 given x2" : ", moves x2 given x1";
        size_t n = 0;
        if (ls_kinds[L->kind].reverse_between) b = "";
        while (*a && n + 1 < sizeof L->label) buf[n++] = *a++;
        while (*b && n + 1 < sizeof L->label) buf[n++] = *b++;
        buf[n] = 0;
        return buf;
    }
    return "layer";
}

/* ---- training ------------------------------------------------------------------------------ */
/* `steps` Adam steps on minibatches drawn (with replacement) from the training rows.
   ls_loss then gives their mean loss (mean negative log-likelihood, nats per point). */
LS_API(ls_train) int ls_train(ls_lesson *L, int steps) {
    double sum = 0, loss; int s, i, B; nf_result r;
    if (!L || !L->trainer) return NF_ERR_NULL;
    if (L->n_train == 0 || steps < 0) return ls_fail(L, NF_ERR_ARG, "train: no data: ");
    B = L->batch;
    for (s = 0; s < steps; ++s) {
        for (i = 0; i < B; ++i) {
            size_t row = (size_t)(nf_rng_u32(&L->rng) % (uint32_t)L->n_train);
            L->batch_buf[2 * i] = L->train[2 * row]; L->batch_buf[2 * i + 1] = L->train[2 * row + 1];
        }
        r = nf_train_step(L->trainer, L->batch_buf, NULL, (size_t)B, &loss);
        if (r != NF_OK && r != NF_ERR_DIVERGED) return ls_fail(L, r, "train: ");
        sum += loss;
    }
    if (steps > 0) L->loss = sum / steps;
    return NF_OK;
}
LS_API(ls_loss) double ls_loss(const ls_lesson *L) { return L->loss; }

/* mean negative log-likelihood of rows (a 2 x 256 row window of out as scratch) */
static double ls_mean_nll(ls_lesson *L, const nf_real *rows, size_t n) {
    double s = 0; size_t i, j;
    if (!n || ls_reserve(L, 256) != NF_OK) return 0;
    for (i = 0; i < n; i += 256) {
        size_t m = n - i < 256 ? n - i : 256;
        if (nf_flow_log_prob(L->flow, rows + 2 * i, m, L->out) != NF_OK) return 0;
        for (j = 0; j < m; ++j) s -= (double)L->out[j];
    }
    return s / (double)n;
}
/* mean negative log-likelihood on the held-out rows (and on all training rows) */
LS_API(ls_val_loss) double ls_val_loss(ls_lesson *L) { return L->flow ? ls_mean_nll(L, L->val, L->n_val) : 0; }
LS_API(ls_train_loss) double ls_train_loss(ls_lesson *L) { return L->flow ? ls_mean_nll(L, L->train, L->n_train) : 0; }

/* ---- pictures ---------------------------------------------------------------------------------- */
/* out: n samples from the flow (rows of 2). The same seed gives the same latent points,
   so a redraw shows them moving as the flow learns. */
LS_API(ls_sample) int ls_sample(ls_lesson *L, int n, double seed) {
    nf_rng r; nf_result res;
    if (!L->flow || n < 0 || n > 10000000) return NF_ERR_ARG;
    if ((res = ls_reserve(L, 2 * (size_t)n + 2)) != NF_OK) return ls_fail(L, res, "sample: ");
    nf_rng_seed(&r, ls_seed(seed));
    if ((res = nf_flow_sample(L->flow, &r, (size_t)n, L->out, NULL)) != NF_OK) return ls_fail(L, res, "sample: ");
    return NF_OK;
}
/* out: log p(y) on a G x G grid of cell centres over the view box, row 0 at the top */
LS_API(ls_density) int ls_density(ls_lesson *L, int G) {
    nf_result res; int i, j; nf_real *pts;
    if (!L->flow || G < 1 || G > 1024) return NF_ERR_ARG;
    if ((res = ls_reserve(L, (size_t)G * G + 2 * (size_t)G * G)) != NF_OK) return ls_fail(L, res, "density: ");
    pts = L->out + (size_t)G * G;
    for (i = 0; i < G; ++i)
        for (j = 0; j < G; ++j) {
            pts[2 * ((size_t)i * G + j)] = (nf_real)(LS_LO + (j + 0.5) * (LS_HI - LS_LO) / G);
            pts[2 * ((size_t)i * G + j) + 1] = (nf_real)(LS_HI - (i + 0.5) * (LS_HI - LS_LO) / G);
        }
    if ((res = nf_flow_log_prob(L->flow, pts, (size_t)G * G, L->out)) != NF_OK) return ls_fail(L, res, "density: ");
    return NF_OK;
}
/* The pushforward, stage by stage: n latent points z ~ p_X and a grid of `lines`
   horizontal and `lines` vertical lines of `per` points over [-3, 3]^2 in latent space,
   mapped by the last k layers' inverses (nf_flow_inverse_stage) for k = 0 .. L.
   out: for each k, n + 2 lines per points (rows of 2): the samples, then the lines. */
LS_API(ls_stages) int ls_stages(ls_lesson *L, int n, int lines, int per, double seed) {
    nf_rng r; nf_result res; size_t m, i, j; int k, nl; nf_real *z, *y;
    if (!L->flow || n < 0 || n > 1000000 || lines < 2 || lines > 1000 || per < 2 || per > 10000) return NF_ERR_ARG;
    nl = ls_n_layers(L);
    m = (size_t)n + 2 * (size_t)lines * (size_t)per;
    if ((res = ls_reserve(L, 2 * m * (size_t)(nl + 2))) != NF_OK) return ls_fail(L, res, "stages: ");
    y = L->out;                               /* stage 0's slot, written last */
    z = L->out + 2 * m * (size_t)(nl + 1);    /* the latent points, after the stages */
    /* base samples: sample the flow, then map back to the latent space (for NICE the
       base is the learned diagonal Gaussian, not N(0, I)) */
    nf_rng_seed(&r, ls_seed(seed));
    if ((res = nf_flow_sample(L->flow, &r, (size_t)n, y, NULL)) != NF_OK) return ls_fail(L, res, "stages: ");
    if ((res = nf_flow_forward(L->flow, y, (size_t)n, z, NULL)) != NF_OK) return ls_fail(L, res, "stages: ");
    for (i = 0; i < (size_t)lines; ++i)
        for (j = 0; j < (size_t)per; ++j) {
            double a = -3 + 6.0 * (double)i / (lines - 1), b = -3 + 6.0 * (double)j / (per - 1);
            nf_real *h = z + 2 * ((size_t)n + i * per + j), *v = z + 2 * ((size_t)n + (lines + i) * per + j);
            h[0] = (nf_real)b; h[1] = (nf_real)a; v[0] = (nf_real)a; v[1] = (nf_real)b;
        }
    for (k = 0; k <= nl; ++k)
        if ((res = nf_flow_inverse_stage(L->flow, z, m, k, L->out + 2 * m * (size_t)k)) != NF_OK) return ls_fail(L, res, "stages: ");
    return NF_OK;
}

/* The change of variables at one point y = (x, y), every term from the library:
     out[0..1]        z = g^-1(y)                             (nf_flow_forward)
     out[2]           log p_X(z)                              (nf_flow_base_log_prob)
     out[3]           log|det| of the standardisation (0 unless it was set)
     out[4 .. 3+L]    each layer's log|det d(out)/d(in)|, differences of
                      nf_flow_forward_stage's partial log-dets
     out[4+L]         log|det d g^-1/dy|, the whole map     (nf_flow_forward)
     out[5+L]         log p_Y(y)                              (nf_flow_log_prob)
     out[6+L ..]      the point after 0, 1, .., L layers (L+1 rows of 2)  */
LS_API(ls_probe) int ls_probe(ls_lesson *L, double x, double y) {
    nf_real p[2], z[2], ld, prev, stage[2]; nf_result res; int k, nl;
    if (!L->flow) return NF_ERR_NULL;
    nl = ls_n_layers(L);
    if ((res = ls_reserve(L, 6 + (size_t)nl + 2 * ((size_t)nl + 1))) != NF_OK) return ls_fail(L, res, "probe: ");
    p[0] = (nf_real)x; p[1] = (nf_real)y;
    if ((res = nf_flow_forward(L->flow, p, 1, z, &ld)) != NF_OK) return ls_fail(L, res, "probe: ");
    L->out[0] = z[0]; L->out[1] = z[1];
    if ((res = nf_flow_base_log_prob(L->flow, z, 1, L->out + 2)) != NF_OK) return ls_fail(L, res, "probe: ");
    L->out[4 + nl] = ld;
    prev = 0;
    for (k = 0; k <= nl; ++k) {
        nf_real part;
        if ((res = nf_flow_forward_stage(L->flow, p, 1, k, stage, &part)) != NF_OK) return ls_fail(L, res, "probe: ");
        L->out[3 + k] = part - prev;
        prev = part;
        L->out[6 + nl + 2 * k] = stage[0]; L->out[6 + nl + 2 * k + 1] = stage[1];
    }
    if ((res = nf_flow_log_prob(L->flow, p, 1, L->out + 5 + nl)) != NF_OK) return ls_fail(L, res, "probe: ");
    return NF_OK;
}
