/* lesson_native: web/lesson.c built natively, driven the way the page drives it.

   tests/web/run.sh trains the same lesson here and in the browser and compares the
   numbers; --bench times training steps for the report.
   Usage: lesson_native [--dataset ID] [--kind ID] [--depth D] [--width W] [--batch B]
                        [--lr LR] [--seed S] [--n N] [--steps S] [--chunk C]
                        [--probe X Y]... [--bench SECONDS] | --list
   Prints one JSON object: losses after training, and each probe's terms. */
#define _POSIX_C_SOURCE 199309L   /* clock_gettime */
#include "../../web/lesson.c"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int find(const char *id, int count, const char *(*name)(int)) {
    int i;
    for (i = 0; i < count; ++i) if (!strcmp(id, name(i))) return i;
    return -1;
}
/* wall-clock time, as the page's performance.now(): a loaded machine slows both alike */
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec; }

int main(int argc, char **argv) {
    const char *dataset = "moons", *kind = "realnvp";
    int depth = 6, width = 64, batch = 256, n = 2000, steps = 200, chunk = 50, i, np = 0, ds, kd, nl, k;
    double lr = 2e-3, seed = 1, bench = 0, probes[64][2];
    ls_lesson *L;
    for (i = 1; i < argc; ++i) {
        const char *a = argv[i];
        if (i + 1 >= argc && strcmp(a, "--list")) { fprintf(stderr, "%s: missing value\n", a); return 2; }
        if (!strcmp(a, "--dataset")) dataset = argv[++i];
        else if (!strcmp(a, "--kind")) kind = argv[++i];
        else if (!strcmp(a, "--depth")) depth = atoi(argv[++i]);
        else if (!strcmp(a, "--width")) width = atoi(argv[++i]);
        else if (!strcmp(a, "--batch")) batch = atoi(argv[++i]);
        else if (!strcmp(a, "--lr")) lr = strtod(argv[++i], NULL);
        else if (!strcmp(a, "--seed")) seed = strtod(argv[++i], NULL);
        else if (!strcmp(a, "--n")) n = atoi(argv[++i]);
        else if (!strcmp(a, "--steps")) steps = atoi(argv[++i]);
        else if (!strcmp(a, "--chunk")) chunk = atoi(argv[++i]);
        else if (!strcmp(a, "--bench")) bench = strtod(argv[++i], NULL);
        else if (!strcmp(a, "--list")) {   /* the tables the page's menus show */
            for (k = 0; k < ls_kind_count(); ++k) printf("kind %s\n", ls_kind_id(k));
            for (k = 0; k < ls_dataset_count(); ++k) printf("dataset %s\n", ls_dataset_id(k));
            return 0;
        } else if (!strcmp(a, "--probe") && i + 2 < argc && np < 64) {
            probes[np][0] = strtod(argv[++i], NULL); probes[np][1] = strtod(argv[++i], NULL); ++np;
        } else { fprintf(stderr, "unknown option %s\n", a); return 2; }
    }
    ds = find(dataset, ls_dataset_count(), ls_dataset_id);
    kd = find(kind, ls_kind_count(), ls_kind_id);
    if (ds < 0 || kd < 0 || chunk < 1) { fprintf(stderr, "unknown data set or kind\n"); return 2; }
    L = ls_create();
    if (!L || ls_make_data(L, ds, n, seed) || ls_build(L, kd, depth, width, batch, lr, seed)) {
        fprintf(stderr, "setup: %s\n", L ? ls_error(L) : "out of memory");
        return 1;
    }
    printf("{\"real_bytes\": %d, \"params\": %d, \"initial_train_nll\": %.17g,\n", ls_real_bytes(), ls_n_params(L), ls_train_loss(L));
    for (i = 0; i < steps; i += chunk)   /* the page trains in chunks too: ls_loss is per chunk */
        if (ls_train(L, steps - i < chunk ? steps - i : chunk)) { fprintf(stderr, "train: %s\n", ls_error(L)); return 1; }
    printf(" \"steps\": %d, \"last_chunk_loss\": %.17g, \"train_nll\": %.17g, \"val_nll\": %.17g,\n",
           ls_steps(L), ls_loss(L), ls_train_loss(L), ls_val_loss(L));
    nl = ls_n_layers(L);
    printf(" \"probes\": [");
    for (i = 0; i < np; ++i) {
        if (ls_probe(L, probes[i][0], probes[i][1])) { fprintf(stderr, "probe: %s\n", ls_error(L)); return 1; }
        printf("%s\n  {\"y\": [%.17g, %.17g], \"z\": [%.17g, %.17g], \"log_px\": %.17g, \"logdets\": [", i ? "," : "",
               probes[i][0], probes[i][1], L->out[0], L->out[1], L->out[2]);
        for (k = 0; k <= nl; ++k) printf("%s%.17g", k ? ", " : "", L->out[3 + k]);
        printf("], \"logdet\": %.17g, \"log_py\": %.17g}", L->out[4 + nl], L->out[5 + nl]);
    }
    printf("]");
    if (bench > 0) {   /* steps per second of the same lesson, one thread */
        double t0 = now(), t; long s = 0;
        do { if (ls_train(L, 10)) return 1; s += 10; t = now() - t0; } while (t < bench);
        printf(",\n \"bench_steps\": %ld, \"bench_seconds\": %.4f, \"ms_per_step\": %.5f", s, t, 1e3 * t / (double)s);
    }
    printf("}\n");
    ls_destroy(L);
    return 0;
}
