/* scaling: how one training step's time grows with batch, width, dimension and depth
   (issue 12 item 6), single thread, float.
   The model is bench_flows' RealNVP: L affine couplings with alternating checkerboard
   masks, conditioner MLP with 2 hidden ReLU layers of width H, log-scale = tanh(raw)
   (clamp 1), last layer zero-initialised, standard normal base, Adam lr 1e-3. A step =
   forward, mean NLL, backward, Adam update on one minibatch of B rows. Data: a fixed-seed
   8-component Gaussian mixture in D dimensions (16384 rows, minibatches taken in turn).
   The sweeps vary one of B, H, D, L around B = 256, H = 128, D = 16, L = 8:
     batch 64 .. 4096   width 32 .. 512   dim 2 .. 128   depth 2 .. 32   (powers of 2)
   A point's figure: 3 warm-up steps (at least 0.05 s), then steps timed one by one until
   at least 7 and `budget` seconds; the median step time in ms.
   Usage:
     scaling [--quick]             every sweep, nflow only: a table
     scaling --point B H D L [budget]   one point: a JSON line
     scaling --serve               reads "B H D L budget" lines from stdin, answers each
                                   with a JSON line (bench/compare.py --scaling drives
                                   this and bench/scaling_peer.py in turn)
     scaling --plot in.tsv out.png the four log-log panels from compare.py's table */
#define _POSIX_C_SOURCE 199309L
#define NFLOW_IMPLEMENTATION
#include "../nflow.h"
#include "../examples/png.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return (double)t.tv_sec + (double)t.tv_nsec * 1e-9; }
static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }
static double median(double *v, int n) { qsort(v, (size_t)n, sizeof *v, cmpd); return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]); }

/* ---- measuring ------------------------------------------------------------------- */

enum { NDATA = 16384, MAXSTEPS = 400 };

/* n rows of an 8-component mixture: means in [-2, 2]^D, scales 0.3 .. 0.8 */
static void make_data(int D, nf_real *y) {
    nf_rng r; int i, j, k; double *mu = (double *)malloc(sizeof(double) * 8 * D), sd[8];
    nf_rng_seed(&r, 1234);
    for (k = 0; k < 8; ++k) { for (j = 0; j < D; ++j) mu[k * D + j] = 4 * (double)nf_rng_uniform(&r) - 2; sd[k] = 0.3 + 0.5 * (double)nf_rng_uniform(&r); }
    for (i = 0; i < NDATA; ++i) {
        k = (int)(nf_rng_u32(&r) % 8);
        for (j = 0; j < D; ++j) y[(size_t)i * D + j] = (nf_real)(mu[k * D + j] + sd[k] * (double)nf_rng_normal(&r));
    }
    free(mu);
}

/* median ms per training step at one point; *steps gets how many were timed. 0 on failure. */
static double point_ms(int B, int H, int D, int L, double budget, int *steps) {
    nf_flow_desc d; nf_flow *f = NULL; nf_trainer *t = NULL; nf_adam_config ac;
    nf_real *y = (nf_real *)malloc(sizeof(nf_real) * NDATA * D);
    double times[MAXSTEPS], loss, t0, ms = 0; int i, n = 0;
    if (!y || B > NDATA / 2 || L > NF_MAX_LAYERS) { free(y); return 0; }
    make_data(D, y);
    nf_flow_desc_realnvp(&d, D, L, H);
    for (i = 0; i < L; ++i) d.layers[i].clamp = 1;   /* log-scale = tanh(raw) */
    nf_adam_config_default(&ac); ac.lr = 1e-3;
    if (nf_flow_create(&f, &d) != NF_OK || nf_trainer_create(&t, f, &ac, (size_t)B) != NF_OK) goto done;
#define STEP(i) nf_train_step(t, y + (size_t)(((size_t)(i) * B) % (NDATA - B)) * D, NULL, (size_t)B, &loss)
    t0 = now();
    for (i = 0; i < 3 || now() - t0 < 0.05; ++i) STEP(i);   /* warm-up */
    t0 = now();
    while (n < MAXSTEPS && (n < 7 || now() - t0 < budget)) {
        double s = now();
        STEP(i + n);
        times[n++] = (now() - s) * 1e3;
    }
#undef STEP
    ms = median(times, n);
done:
    *steps = n;
    nf_trainer_destroy(t); nf_flow_destroy(f); free(y);
    return ms;
}

static void point_json(int B, int H, int D, int L, double budget) {
    int steps; double ms = point_ms(B, H, D, L, budget, &steps);
    printf("{\"impl\": \"nflow\", \"batch\": %d, \"width\": %d, \"dim\": %d, \"depth\": %d, \"ms\": %.4f, \"steps\": %d}\n",
           B, H, D, L, ms, steps);
    fflush(stdout);
}

/* ---- the figure ------------------------------------------------------------------ */

enum { MAXPTS = 16 };
typedef struct sweep { const char *name, *label; int n; double x[MAXPTS], a[MAXPTS], b[MAXPTS]; } sweep;

/* 1-2-5 ticks (or 1-3 ticks, or decades, whichever gives 2 to 7) within [lo, hi] */
static int log_ticks(double lo, double hi, double *t) {
    static const double sets[3][3] = {{1, 2, 5}, {1, 3, 0}, {1, 0, 0}};
    int s, n = 0, e, k;
    for (s = 0; s < 3; ++s) {
        n = 0;
        for (e = (int)floor(log10(lo)) - 1; e <= (int)ceil(log10(hi)); ++e)
            for (k = 0; k < 3 && sets[s][k] > 0; ++k) {
                double v = sets[s][k] * pow(10, e);
                if (v >= lo && v <= hi && n < 12) t[n++] = v;
            }
        if (n <= 7) break;
    }
    return n;
}

static const unsigned char ink[3] = {40, 40, 40}, soft[3] = {90, 90, 90}, grid[3] = {232, 232, 232}, white[3] = {255, 255, 255};
static const unsigned char cols[2][3] = {{31, 119, 180}, {230, 110, 20}};

/* a curve in a log-log panel: 3-pixel line and square markers */
static void curve(canvas *c, const plot *p, const double *x, const double *y, int n, const unsigned char rgb[3]) {
    int i, dx, dy;
    for (i = 0; i < n; ++i) {
        double px, py;
        if (!(y[i] > 0)) continue;
        px = plot_x(p, log10(x[i])); py = plot_y(p, log10(y[i]));
        if (i + 1 < n && y[i + 1] > 0) {
            double qx = plot_x(p, log10(x[i + 1])), qy = plot_y(p, log10(y[i + 1]));
            for (dx = -1; dx <= 1; ++dx) for (dy = -1; dy <= 1; ++dy) if (!dx || !dy) canvas_line(c, px + dx, py + dy, qx + dx, qy + dy, rgb, 0.9);
        }
        canvas_rect(c, (int)px - 3, (int)py - 3, (int)px + 4, (int)py + 4, rgb);
    }
}

static void panel(canvas *c, int x0, int y0, int w, int h, const sweep *s, int have_b) {
    double lo = 1e300, hi = 0, t[12]; char buf[64], title[96]; int i, n;
    double rmin = 1e300, rmax = 0;
    plot p;
    for (i = 0; i < s->n; ++i) {
        if (s->a[i] > 0) { if (s->a[i] < lo) lo = s->a[i]; if (s->a[i] > hi) hi = s->a[i]; }
        if (have_b && s->b[i] > 0) { if (s->b[i] < lo) lo = s->b[i]; if (s->b[i] > hi) hi = s->b[i]; }
        if (have_b && s->a[i] > 0 && s->b[i] > 0) { double r = s->b[i] / s->a[i]; if (r < rmin) rmin = r; if (r > rmax) rmax = r; }
    }
    if (!(hi > 0)) return;
    lo /= 1.35; hi *= 1.35;
    p = plot_make(x0, y0, w, h, log10(s->x[0]) - 0.15, log10(s->x[s->n - 1]) + 0.15, log10(lo), log10(hi));
    plot_frame(c, &p, white);
    n = log_ticks(lo, hi, t);
    for (i = 0; i < n; ++i) {   /* y: ms per step */
        int y = (int)floor(plot_y(&p, log10(t[i])));
        canvas_rect(c, p.x0, y, p.x0 + p.w, y + 1, grid);
        canvas_rect(c, p.x0 - 4, y, p.x0 - 1, y + 1, soft);
        snprintf(buf, sizeof buf, "%g", t[i]);
        canvas_text(c, p.x0 - 6, y, buf, 1, soft, TEXT_RIGHT | TEXT_MIDDLE);
    }
    for (i = 0; i < s->n; ++i) {   /* x: the sweep's points */
        int x = (int)floor(plot_x(&p, log10(s->x[i])));
        canvas_rect(c, x, p.y0, x + 1, p.y0 + p.h, grid);
        canvas_rect(c, x, p.y0 + p.h + 1, x + 1, p.y0 + p.h + 4, soft);
        snprintf(buf, sizeof buf, "%g", s->x[i]);
        canvas_text(c, x, p.y0 + p.h + 6, buf, 1, soft, TEXT_CENTER | TEXT_TOP);
    }
    canvas_text(c, p.x0 + p.w / 2, p.y0 + p.h + 19, s->label, 1, ink, TEXT_CENTER | TEXT_TOP);
    canvas_text(c, p.x0 - 44, p.y0 + p.h / 2, "ms per step", 1, ink, TEXT_UP | TEXT_CENTER | TEXT_TOP);
    snprintf(title, sizeof title, "%s", s->name);
    plot_title(c, &p, title, 2, ink);
    if (have_b) curve(c, &p, s->x, s->b, s->n, cols[1]);
    curve(c, &p, s->x, s->a, s->n, cols[0]);
    if (rmax > 0) {
        snprintf(buf, sizeof buf, "PyTorch time / nflow time: %.1fx to %.1fx", rmin, rmax);
        canvas_text(c, p.x0 + p.w - 6, p.y0 + p.h - 6, buf, 1, ink, TEXT_RIGHT | TEXT_BASELINE);
    }
}

/* reads compare.py's scaling table: "#" lines (the first two are printed as footers),
   then "sweep x nflow_ms torch_ms" rows, sweeps in the order batch, width, dim, depth */
static int plot_file(const char *in, const char *out) {
    static const char *names[4] = {"batch", "width", "dim", "depth"};
    static const char *titles[4] = {"batch B (D=16, H=128, L=8)", "width H (D=16, B=256, L=8)",
                                    "dimension D (H=128, B=256, L=8)", "depth L (D=16, H=128, B=256)"};
    static const char *labels[4] = {"rows per minibatch", "conditioner width", "data dimension", "couplings"};
    static const char *keys[2] = {"nflow", "PyTorch"};
    sweep sw[4]; char line[512], foot[2][400] = {"", ""}; int nfoot = 0, k, have_b = 0;
    FILE *f = fopen(in, "r"); canvas c; int W = 1000, PW = 400, PH = 250, ml = 80, gx = 100, mt = 78, gy = 86;   /* panel size, margins, gaps */
    if (!f) { fprintf(stderr, "scaling: cannot read %s\n", in); return 1; }
    for (k = 0; k < 4; ++k) { sw[k].name = titles[k]; sw[k].label = labels[k]; sw[k].n = 0; }
    while (fgets(line, sizeof line, f)) {
        char name[32], bs[32]; double x, a;
        line[strcspn(line, "\r\n")] = 0;
        if (line[0] == '#') { if (nfoot < 2) { snprintf(foot[nfoot], sizeof foot[0], "%s", line + (line[1] == ' ' ? 2 : 1)); ++nfoot; } continue; }
        if (sscanf(line, "%31s %lf %lf %31s", name, &x, &a, bs) != 4) continue;
        for (k = 0; k < 4; ++k) if (!strcmp(name, names[k]) && sw[k].n < MAXPTS) {
            sweep *s = &sw[k];
            s->x[s->n] = x; s->a[s->n] = a; s->b[s->n] = atof(bs);
            if (s->b[s->n] > 0) have_b = 1;
            s->n++;
        }
    }
    fclose(f);
    c = canvas_new(W, mt + 20 + 2 * PH + gy + 84, 245);
    if (!c.px) return 1;
    canvas_text(&c, W / 2, 14, "one training step (RealNVP, float32, one thread), log-log", 2, ink, TEXT_CENTER | TEXT_TOP);
    canvas_legend(&c, W / 2, 36, have_b ? 2 : 1, keys, cols, TEXT_CENTER | TEXT_TOP);
    for (k = 0; k < 4; ++k) if (sw[k].n > 1) panel(&c, ml + (k % 2) * (PW + gx), mt + 20 + (k / 2) * (PH + gy), PW, PH, &sw[k], have_b);
    for (k = 0; k < nfoot; ++k) canvas_text(&c, 12, c.h - 32 + 13 * k, foot[k], 1, soft, TEXT_LEFT | TEXT_TOP);
    if (png_write(out, &c) != 0) { fprintf(stderr, "scaling: cannot write %s\n", out); canvas_free(&c); return 1; }
    canvas_free(&c);
    printf("wrote %s\n", out);
    return 0;
}

/* ---- the sweeps, nflow alone ----------------------------------------------------- */

int main(int argc, char **argv) {
    static const int full[4][8] = {{64, 128, 256, 512, 1024, 2048, 4096, 0}, {32, 64, 128, 256, 512, 0}, {2, 4, 8, 16, 32, 64, 128, 0}, {2, 4, 8, 16, 32, 0}};
    static const int brief[4][8] = {{64, 512, 4096, 0}, {32, 128, 512, 0}, {2, 16, 128, 0}, {2, 8, 32, 0}};
    static const char *names[4] = {"batch", "width", "dim", "depth"};
    int quick = argc > 1 && !strcmp(argv[1], "--quick"), s, i;
    if (argc >= 4 && !strcmp(argv[1], "--plot")) return plot_file(argv[2], argv[3]);
    if (argc >= 6 && !strcmp(argv[1], "--point")) { point_json(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), argc > 6 ? atof(argv[6]) : 0.5); return 0; }
    if (argc >= 2 && !strcmp(argv[1], "--serve")) {
        char line[256]; int B, H, D, L; double budget;
        while (fgets(line, sizeof line, stdin))
            if (sscanf(line, "%d %d %d %d %lf", &B, &H, &D, &L, &budget) == 5) point_json(B, H, D, L, budget);
        return 0;
    }
    if (argc > 1 && !quick) { fprintf(stderr, "usage: scaling [--quick] | --point B H D L [budget] | --serve | --plot in.tsv out.png\n"); return 1; }
    printf("nflow %s, %s, one thread: median ms per training step (RealNVP; B=256 H=128 D=16 L=8 unless swept)\n",
           NFLOW_VERSION_STRING, sizeof(nf_real) == 4 ? "float32" : "float64");
    printf("%-6s %6s %10s %7s\n", "sweep", "value", "ms/step", "steps");
    for (s = 0; s < 4; ++s)
        for (i = 0; (quick ? brief : full)[s][i]; ++i) {
            int v = (quick ? brief : full)[s][i], B = s == 0 ? v : 256, H = s == 1 ? v : 128, D = s == 2 ? v : 16, L = s == 3 ? v : 8, n;
            double ms = point_ms(B, H, D, L, quick ? 0.15 : 0.5, &n);
            printf("%-6s %6d %10.3f %7d\n", names[s], v, ms, n);
            fflush(stdout);
        }
    return 0;
}
