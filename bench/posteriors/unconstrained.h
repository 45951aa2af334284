/* unconstrained.h - helpers shared by quadrature.c and mcmc_ref.c (build with NFLOW_DOUBLE):
   a model's density in nflow's unconstrained coordinates, small dense linear algebra, and
   a Newton search for the mode. Not part of the benchmark interface (that is models.h). */
#ifndef BM_UNCONSTRAINED_H
#define BM_UNCONSTRAINED_H
#include "models.h"
#ifndef NFLOW_DOUBLE
#error "build the reference programs with -DNFLOW_DOUBLE"
#endif

/* x from u as nflow maps domains (LOWER: x = lo + e^u; INTERVAL: x = lo + (hi - lo) sigmoid(u));
   returns log |dx/du|; dx[j] = dx_j/du_j, dlj[j] = d log|dx_j/du_j| / du_j (either may be NULL) */
static inline double bm_u_to_x(const bm_model *m, const double *u, double *x, double *dx, double *dlj) {
    double lj = 0, s, w;
    int j;
    for (j = 0; j < m->dim; ++j) {
        const nf_domain *d = &m->domains[j];
        if (d->kind == NF_DOMAIN_LOWER) {
            x[j] = d->lo + exp(u[j]); lj += u[j];
            if (dx) dx[j] = exp(u[j]);
            if (dlj) dlj[j] = 1;
        } else if (d->kind == NF_DOMAIN_INTERVAL) {
            s = u[j] > 0 ? 1 / (1 + exp(-u[j])) : exp(u[j]) / (1 + exp(u[j]));
            w = d->hi - d->lo;
            x[j] = d->lo + w * s;
            lj += log(w) - bm__softplus(-u[j]) - bm__softplus(u[j]);
            if (dx) dx[j] = w * s * (1 - s);
            if (dlj) dlj[j] = 1 - 2 * s;
        } else {
            x[j] = u[j];
            if (dx) dx[j] = 1;
            if (dlj) dlj[j] = 0;
        }
    }
    return lj;
}
static inline void bm_x_to_u(const bm_model *m, const double *x, double *u) {
    int j;
    for (j = 0; j < m->dim; ++j) {
        const nf_domain *d = &m->domains[j];
        if (d->kind == NF_DOMAIN_LOWER) u[j] = log(x[j] - d->lo);
        else if (d->kind == NF_DOMAIN_INTERVAL) u[j] = log(x[j] - d->lo) - log(d->hi - x[j]);
        else u[j] = x[j];
    }
}
/* log density in u (log-Jacobian added) and its gradient gu (may be NULL) */
static double bm_ulogp(const bm_model *m, const double *u, double *gu) {
    double x[BM_MAX_DIM], dx[BM_MAX_DIM], dlj[BM_MAX_DIM], g[BM_MAX_DIM], lp, lj;
    int j;
    lj = bm_u_to_x(m, u, x, dx, dlj);
    m->log_density(x, 1, m->dim, &lp, gu ? g : NULL, m->user);
    if (gu) for (j = 0; j < m->dim; ++j) gu[j] = g[j] * dx[j] + dlj[j];
    return lp + lj;
}

/* lower Cholesky factor of the symmetric n x n a (row-major) into l; 0 if not positive */
static int bm_cholesky(const double *a, int n, double *l) {
    int i, j, k;
    double s;
    for (i = 0; i < n; ++i)
        for (j = 0; j <= i; ++j) {
            s = a[i * n + j];
            for (k = 0; k < j; ++k) s -= l[i * n + k] * l[j * n + k];
            if (i == j) { if (!(s > 0)) return 0; l[i * n + i] = sqrt(s); }
            else l[i * n + j] = s / l[j * n + j];
        }
    for (i = 0; i < n; ++i) for (j = i + 1; j < n; ++j) l[i * n + j] = 0;
    return 1;
}
/* solve (L L') x = b in place */
static void bm_chol_solve(const double *l, int n, double *b) {
    int i, k;
    for (i = 0; i < n; ++i) { for (k = 0; k < i; ++k) b[i] -= l[i * n + k] * b[k]; b[i] /= l[i * n + i]; }
    for (i = n - 1; i >= 0; --i) { for (k = i + 1; k < n; ++k) b[i] -= l[k * n + i] * b[k]; b[i] /= l[i * n + i]; }
}
/* negative Hessian of log p in u by central differences of the analytic gradient */
static void bm_neg_hessian(const bm_model *m, const double *u, double *h) {
    double up[BM_MAX_DIM], gp[BM_MAX_DIM], gm[BM_MAX_DIM], e = 1e-5;
    int i, j, n = m->dim;
    for (j = 0; j < n; ++j) {
        for (i = 0; i < n; ++i) up[i] = u[i];
        up[j] = u[j] + e; bm_ulogp(m, up, gp);
        up[j] = u[j] - e; bm_ulogp(m, up, gm);
        for (i = 0; i < n; ++i) h[i * n + j] = -(gp[i] - gm[i]) / (2 * e);
    }
    for (i = 0; i < n; ++i) for (j = 0; j < i; ++j) h[i * n + j] = h[j * n + i] = 0.5 * (h[i * n + j] + h[j * n + i]);
}
/* Newton's method with backtracking from u (in place); on return cov_l is the lower
   Cholesky factor of the inverse negative Hessian at the mode. Returns log p at the mode. */
static inline double bm_find_mode(const bm_model *m, double *u, double *cov_l) {
    static double h[BM_MAX_DIM * BM_MAX_DIM], l[BM_MAX_DIM * BM_MAX_DIM];
    double g[BM_MAX_DIM], step[BM_MAX_DIM], un[BM_MAX_DIM], f, fn, t, lam;
    int it, i, j, n = m->dim;
    f = bm_ulogp(m, u, g);
    for (it = 0; it < 200; ++it) {
        bm_neg_hessian(m, u, h);
        for (lam = 0; ; lam = lam ? lam * 10 : 1e-6) {
            for (i = 0; i < n; ++i) h[i * n + i] += lam;
            if (bm_cholesky(h, n, l)) break;
        }
        for (i = 0; i < n; ++i) step[i] = g[i];
        bm_chol_solve(l, n, step);
        for (t = 1; t > 1e-12; t *= 0.5) {
            for (i = 0; i < n; ++i) un[i] = u[i] + t * step[i];
            fn = bm_ulogp(m, un, NULL);
            if (fn >= f) break;
        }
        if (!(t > 1e-12)) break;
        for (i = 0; i < n; ++i) u[i] = un[i];
        fn = bm_ulogp(m, u, g);
        if (fn - f < 1e-13 * (1 + fabs(f)) && t == 1) { f = fn; break; }
        f = fn;
    }
    /* covariance = H^-1: its Cholesky factor via the inverse columns */
    bm_neg_hessian(m, u, h);
    bm_cholesky(h, n, l);
    {
        static double c[BM_MAX_DIM * BM_MAX_DIM];
        double col[BM_MAX_DIM];
        for (j = 0; j < n; ++j) {
            for (i = 0; i < n; ++i) col[i] = i == j;
            bm_chol_solve(l, n, col);
            for (i = 0; i < n; ++i) c[i * n + j] = col[i];
        }
        for (i = 0; i < n; ++i) for (j = 0; j < i; ++j) c[i * n + j] = c[j * n + i] = 0.5 * (c[i * n + j] + c[j * n + i]);
        bm_cholesky(c, n, cov_l);
    }
    return f;
}
#endif
