/* gw150914_ringdown.h - the ringdown of GW150914: data, noise model, Kerr quasinormal
   modes, antenna patterns and the exact time-domain Gaussian likelihood, as a posterior
   over (remnant mass, spin, mode amplitudes) for nflow.   Header-only C99; MIT or public
   domain like nflow.h.  The strain it reads is CC BY 4.0 (examples/data/gw150914/README.md).

   Include it after nflow.h (it uses nf_real, nf_domain and NF_DOMAIN_*; without nflow.h
   only the double-precision part is compiled). Every function is static: include it in as
   many files as you like.

   WHAT IT COMPUTES
     Data: 24 s of LIGO Hanford (H1) and Livingston (L1) strain at 4096 Hz around GW150914,
     shipped as float32 in examples/data/gw150914/. Conditioning (gw_analysis_init):
       strain in units of 1e-21; mean removed; 1 s half-Hann tapers at both ends; one FFT
       (zero-padded to 2^17) in which the spectrum is multiplied by 1 / (1 + (f_min/f)^8)
       (the zero-phase response of a 4th-order Butterworth high-pass at f_min = 20 Hz run
       forward and backward, as filtfilt) and set to zero above 1024 Hz (a brick-wall
       anti-alias filter at the new Nyquist frequency); then every 2nd sample (2048 Hz),
       keeping in each detector the sample nearest to that detector's start time t0_det.
     Noise: per detector, a Welch PSD of off-source data (1 s Hann segments, 50% overlap,
       median average with its bias correction; segments within 2 s of the ends or
       overlapping [t0 - 4 s, t0 + 2 s] are excluded), set below f_min to 10 times its
       largest value there, and turned into the autocovariance rho(k dt) by inverse FFT.
     Likelihood: the N = round(T fs) = 410 samples (T = 0.2 s) from t0_det on, with the
       Toeplitz covariance C_ij = rho(|i - j| dt):
           log L = -1/2 (d - h)^T C^-1 (d - h) - 1/2 log det(2 pi C)     summed over H1, L1
       C's Cholesky factor L (C = L L^T), the whitened data L^-1 d and the Levinson
       reflection coefficients of C are computed once. A damped sinusoid sampled on the
       grid is a geometric sequence z^n, and L^-1 z^n follows from the Levinson
       recursion in O(N) (a lattice filter run on one complex number), so a likelihood
       evaluation costs O(N) per mode and detector, not O(N^2).
     Model ("aligned", circularly polarised l = |m| = 2 tones, cos(inclination) = -1 as in
       Isi et al. 2019): tone k with complex amplitude a_k = ax_k + i ay_k (units 1e-21):
           h+ = Re(conj(a_k) e^{s_k t}) = e^{-t/tau_k} (ax_k cos(2 pi f_k t) + ay_k sin(2 pi f_k t))
           hx = -Im(conj(a_k) e^{s_k t}),   s_k = -1/tau_k + 2 pi i f_k,   t = t_sample - t0_det
       so A_k = |a_k| is the amplitude of h+ (Isi et al. 2019's A; twice the `ringdown`
       package's A) and phi_k = arg(a_k) its phase, h+ = A e^{-t/tau} cos(2 pi f t - phi).
       Detector strain h = F+ h+ + Fx hx = Re(conj(a_k) (F+ + i Fx) e^{s_k t}).
       f_k, tau_k from (M, chi) by the Berti, Cardoso & Will (2006) fits (Table VIII).
     Posterior parameters x (GW_DIM(nmodes) = 2 + 2 nmodes; nmodes 1: (2,2,0) only,
       nmodes 2: (2,2,0) + (2,2,1)):
           x = (M [Msun, detector frame], chi, ax_220, ay_220 [, ax_221, ay_221])
       prior: M flat on [35, 140], chi flat on [0, 0.99], each quadrature N(0, sigma^2),
       sigma = 10 (1e-20 strain: the `ringdown` package's Gaussian prior with
       A_scale = 5e-21 in its amplitude convention). All normalised.
     gw_log_density (an nf_log_density_fn) returns
           log L(x) - log L_noise + log prior(x)
       i.e. the log-likelihood ratio against noise alone plus the normalised log prior, so
       its evidence is the Bayes factor signal-vs-noise and the difference of two models'
       evidences is their log Bayes factor. gw_analysis.log_l_noise is the constant.

   USE
       gw_analysis a; gw_model m;
       if (gw_analysis_init(&a, "examples/data/gw150914", NULL) != 0) ...  (NULL: defaults)
       gw_model_init(&m, &a, 2);                       2 tones: dim 6
       nf_domain dom[GW_MAX_DIM]; gw_domains(&m, dom);
       ... nf_infer(..., GW_DIM(2), gw_log_density, &m, ...)
       gw_analysis_free(&a);
   gw_log_density reads the analysis only (thread-safe) and uses ~72 KB of stack per call.
   gw_param_name(j) and gw_param_unit(j) name x[j]. gw_grid gives the exact evidence and
   the exact M and chi marginals (amplitudes integrated analytically, M and chi on a grid).

   SOURCES (see bench/gw150914_NOTES.md)
     t0 = 1126259462.423 (H1, the peak of the strain, Isi et al. 2019, PRL 123, 111102);
     ra = 1.95, dec = -1.27, psi = 0.82 rad (ibid., as used by the `ringdown` package's
     GW150914 examples and Isi & Farr 2022); 2048 Hz, T = 0.2 s, f_min = 20 Hz (Isi & Farr
     2022, github.com/maxisi/gw150914-ringdown); M in [35, 140] Msun, chi in [0, 0.99]
     (same; also gwastro/gw150914-overtone). Detector geometry: LIGO-P000006 / LAL's
     LALDetectors.h. QNM fits: E. Berti, V. Cardoso, C. M. Will, PRD 73, 064030 (2006),
     Table VIII. GMST: IAU 1982 (Meeus, Astronomical Algorithms, eq. 12.4). */
#ifndef GW150914_RINGDOWN_H
#define GW150914_RINGDOWN_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* every function is static inline: unused ones cost nothing and draw no warning */
#define GWDEF static inline
#define GW_PI 3.14159265358979323846
#define GW_TSUN 4.925490947641267e-06        /* G Msun / c^3 in s */
#define GW_C_SI 299792458.0
#define GW_FS_RAW 4096.0
#define GW_MAX_N 1024                        /* most samples per detector segment */
#define GW_MAX_MODES 2
#define GW_MAX_DIM (2 + 2 * GW_MAX_MODES)
#define GW_DIM(nmodes) (2 + 2 * (nmodes))
#define GW_STRAIN_UNIT 1e-21                  /* strain and amplitudes are in these units */
enum { GW_H1 = 0, GW_L1 = 1, GW_NDET = 2 };

/* The shipped cut: GPS [1126259448, 1126259472), 98,304 float32 samples per detector. */
#define GW_DATA_GPS_START 1126259448.0
#define GW_DATA_SAMPLES 98304

/* ---- detectors, sidereal time, antenna patterns ------------------------------------ */

/* Geodetic vertex (WGS-84) and arm directions: LIGO-P000006 (Althouse et al. 2001) as
   tabulated in LAL's LALDetectors.h. Azimuths clockwise from North, altitudes above the
   local horizontal, radians. */
typedef struct gw_site {
    const char *name;
    double lat, lon, height;                    /* rad, rad, m */
    double az_x, alt_x, az_y, alt_y;            /* rad */
} gw_site;

static const gw_site gw_sites[GW_NDET] = {
    {"H1", (46.0 + 27.0 / 60 + 18.528 / 3600) * GW_PI / 180, -(119.0 + 24.0 / 60 + 27.5657 / 3600) * GW_PI / 180,
     142.554, 5.65487724844, -6.195e-4, 4.08408092164, 1.25e-5},
    {"L1", (30.0 + 33.0 / 60 + 46.4196 / 3600) * GW_PI / 180, -(90.0 + 46.0 / 60 + 27.2654 / 3600) * GW_PI / 180,
     -6.574, 4.40317772346, -3.121e-4, 2.83238139666, -6.107e-4},
};

/* local East, North and Up unit vectors (Earth-fixed) at geodetic (lat, lon) */
GWDEF void gw__enu(double lat, double lon, double e[3], double n[3], double u[3]) {
    e[0] = -sin(lon);            e[1] = cos(lon);             e[2] = 0;
    n[0] = -sin(lat) * cos(lon); n[1] = -sin(lat) * sin(lon); n[2] = cos(lat);
    u[0] = cos(lat) * cos(lon);  u[1] = cos(lat) * sin(lon);  u[2] = sin(lat);
}
/* Earth-fixed Cartesian position of the vertex, m (WGS-84 ellipsoid) */
GWDEF void gw_site_vertex(int det, double r[3]) {
    const gw_site *s = &gw_sites[det];
    double a = 6378137.0, f = 1.0 / 298.257223563, e2 = f * (2 - f);
    double nn = a / sqrt(1 - e2 * sin(s->lat) * sin(s->lat));
    r[0] = (nn + s->height) * cos(s->lat) * cos(s->lon);
    r[1] = (nn + s->height) * cos(s->lat) * sin(s->lon);
    r[2] = (nn * (1 - e2) + s->height) * sin(s->lat);
}
/* unit vectors along the arms */
GWDEF void gw_site_arms(int det, double x[3], double y[3]) {
    const gw_site *s = &gw_sites[det]; double e[3], n[3], u[3]; int i;
    gw__enu(s->lat, s->lon, e, n, u);
    for (i = 0; i < 3; ++i) {
        x[i] = cos(s->alt_x) * (sin(s->az_x) * e[i] + cos(s->az_x) * n[i]) + sin(s->alt_x) * u[i];
        y[i] = cos(s->alt_y) * (sin(s->az_y) * e[i] + cos(s->az_y) * n[i]) + sin(s->alt_y) * u[i];
    }
}
/* detector tensor D = (x x^T - y y^T) / 2 */
GWDEF void gw_site_tensor(int det, double d[3][3]) {
    double x[3], y[3]; int i, j;
    gw_site_arms(det, x, y);
    for (i = 0; i < 3; ++i) for (j = 0; j < 3; ++j) d[i][j] = 0.5 * (x[i] * x[j] - y[i] * y[j]);
}

/* Greenwich mean sidereal time (rad, in [0, 2 pi)) at a GPS time. UTC = GPS - 17 s (the
   leap seconds from 2015-07-01 to 2016-12-31; other epochs are refused with NAN), UT1 taken
   as UTC (|UT1 - UTC| < 0.9 s moves the sky by < 7e-5 rad). */
GWDEF double gw_gmst(double gps) {
    double jd, t, th;
    if (!(gps >= 1119744016.0 && gps < 1167264017.0)) return NAN;
    jd = 2444244.5 + (gps - 17.0) / 86400.0;          /* GPS epoch 1980-01-06 is JD 2444244.5 */
    t = (jd - 2451545.0) / 36525.0;
    th = 280.46061837 + 360.98564736629 * (jd - 2451545.0) + 0.000387933 * t * t - t * t * t / 38710000.0;
    th = fmod(th, 360.0); if (th < 0) th += 360.0;
    return th * GW_PI / 180.0;
}

/* Antenna patterns F+, Fx of detector det for a source at (ra, dec), polarisation angle psi
   (radiation-frame convention of LAL's XLALComputeDetAMResponse), at sidereal time gmst. */
GWDEF void gw_antenna(int det, double ra, double dec, double psi, double gmst, double *fp, double *fc) {
    double d[3][3], xv[3], yv[3], dx[3], dy[3], gha = gmst - ra; int i, j;
    double cp = cos(psi), sp = sin(psi), cg = cos(gha), sg = sin(gha), cd = cos(dec), sd = sin(dec);
    gw_site_tensor(det, d);
    xv[0] = -cp * sg - sp * cg * sd; xv[1] = -cp * cg + sp * sg * sd; xv[2] = sp * cd;
    yv[0] = sp * sg - cp * cg * sd;  yv[1] = sp * cg + cp * sg * sd;  yv[2] = cp * cd;
    for (i = 0; i < 3; ++i) { dx[i] = 0; dy[i] = 0; for (j = 0; j < 3; ++j) { dx[i] += d[i][j] * xv[j]; dy[i] += d[i][j] * yv[j]; } }
    *fp = 0; *fc = 0;
    for (i = 0; i < 3; ++i) { *fp += xv[i] * dx[i] - yv[i] * dy[i]; *fc += xv[i] * dy[i] + yv[i] * dx[i]; }
}

/* Arrival time at the detector minus arrival time at the Earth's centre, s. */
GWDEF double gw_time_delay(int det, double ra, double dec, double gmst) {
    double r[3], n[3];
    gw_site_vertex(det, r);
    n[0] = cos(dec) * cos(ra - gmst); n[1] = cos(dec) * sin(ra - gmst); n[2] = sin(dec);   /* towards the source */
    return -(r[0] * n[0] + r[1] * n[1] + r[2] * n[2]) / GW_C_SI;
}

/* ---- Kerr quasinormal modes: Berti, Cardoso & Will (2006) fits ---------------------- */

/* Table VIII of BCW 2006 (arXiv:gr-qc/0512160), s = 2, l = m = 2, n = 0 and 1:
       M omega_R = f1 + f2 (1 - chi)^f3,   Q = omega_R / (2 |omega_I|) = q1 + q2 (1 - chi)^q3.
   Accurate to ~1.5% against exact (Leaver) frequencies over chi in [0, 0.99]. */
static const double gw_bcw[2][6] = {
    {1.5251, -1.1568, 0.1292, 0.7000, 1.4187, -0.4990},     /* (2,2,0) */
    {1.3673, -1.0260, 0.1628, 0.1000, 0.5436, -0.4731},     /* (2,2,1) */
};

/* Dimensionless M omega_R and Q of tone n (0 or 1) at spin chi, and their chi-derivatives
   (dF, dQ may be NULL). */
GWDEF void gw_qnm_fit(int n, double chi, double *F, double *Q, double *dF, double *dQ) {
    const double *c = gw_bcw[n]; double u = 1 - chi;
    double pf = pow(u, c[2]), pq = pow(u, c[5]);
    *F = c[0] + c[1] * pf;
    *Q = c[3] + c[4] * pq;
    if (dF) *dF = -c[1] * c[2] * pf / u;
    if (dQ) *dQ = -c[4] * c[5] * pq / u;
}

/* Frequency f (Hz) and damping time tau (s) of tone n for detector-frame mass M (Msun) and
   spin chi; grad (may be NULL) gets df/dM, df/dchi, dtau/dM, dtau/dchi. */
GWDEF void gw_qnm(int n, double M, double chi, double *f, double *tau, double grad[4]) {
    double F, Q, dF, dQ, mt = M * GW_TSUN;
    gw_qnm_fit(n, chi, &F, &Q, &dF, &dQ);
    *f = F / (2 * GW_PI * mt);
    *tau = 2 * mt * Q / F;                 /* Q = pi f tau */
    if (grad) {
        grad[0] = -*f / M;               grad[1] = dF / (2 * GW_PI * mt);
        grad[2] = *tau / M;              grad[3] = 2 * mt * (dQ * F - Q * dF) / (F * F);
    }
}

/* s = -1/tau + 2 pi i f (1/s) and its derivatives in M and chi, as (re, im) pairs */
GWDEF void gw__qnm_s(int n, double M, double chi, double s[2], double ds_dm[2], double ds_dchi[2]) {
    double F, Q, dF, dQ, k = 1.0 / (2 * M * GW_TSUN);
    gw_qnm_fit(n, chi, &F, &Q, &dF, &dQ);
    s[0] = -k * F / Q;  s[1] = 2 * k * F;                    /* s = k F (-1/Q + 2i) */
    ds_dm[0] = -s[0] / M; ds_dm[1] = -s[1] / M;
    ds_dchi[0] = k * (-dF / Q + F * dQ / (Q * Q)); ds_dchi[1] = 2 * k * dF;
}

/* ---- FFT (radix 2, in place) and data conditioning --------------------------------- */

GWDEF void gw__fft(double *re, double *im, long n, int inverse) {
    long i, j, k, m;
    for (i = 1, j = 0; i < n; ++i) {                 /* bit reversal */
        long bit = n >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j ^= bit;
        if (i < j) { double t = re[i]; re[i] = re[j]; re[j] = t; t = im[i]; im[i] = im[j]; im[j] = t; }
    }
    for (m = 2; m <= n; m <<= 1) {
        double ang = (inverse ? 2 : -2) * GW_PI / (double)m;
        for (k = 0; k < m / 2; ++k) {
            double wr = cos(ang * (double)k), wi = sin(ang * (double)k);
            for (i = k; i < n; i += m) {
                long p = i + m / 2;
                double tr = wr * re[p] - wi * im[p], ti = wr * im[p] + wi * re[p];
                re[p] = re[i] - tr; im[p] = im[i] - ti; re[i] += tr; im[i] += ti;
            }
        }
    }
}

typedef struct gw_settings {
    double t0_h1;              /* GPS start of the analysis in H1 (s) */
    double ra, dec, psi;       /* sky position and polarisation angle (rad) */
    double duration;           /* analysis segment T (s) */
    double f_min;              /* high-pass / PSD patch frequency (Hz) */
    int decimate;              /* 4096 Hz / decimate = analysis rate (2: 2048 Hz) */
    double welch_seg;          /* Welch segment length (s) */
    double excl_before, excl_after;   /* off-source: no PSD segment in [t0 - before, t0 + after] */
    double edge;               /* conditioned data within this of either end are not used (s) */
    double m_min, m_max, chi_min, chi_max;   /* flat priors */
    double amp_sigma;          /* Gaussian prior standard deviation of each quadrature (1e-21) */
} gw_settings;

GWDEF void gw_settings_default(gw_settings *s) {
    s->t0_h1 = 1126259462.423; s->ra = 1.95; s->dec = -1.27; s->psi = 0.82;
    s->duration = 0.2; s->f_min = 20.0; s->decimate = 2; s->welch_seg = 1.0;
    s->excl_before = 4.0; s->excl_after = 2.0; s->edge = 2.0;
    s->m_min = 35.0; s->m_max = 140.0; s->chi_min = 0.0; s->chi_max = 0.99;
    s->amp_sigma = 10.0;
}

typedef struct gw_detector_data {
    double t0;                 /* analysis start in this detector, GPS */
    double delta;              /* time of the first analysed sample minus t0 (s, |delta| <= 1/8192) */
    double fp, fc;             /* antenna patterns */
    double d[GW_MAX_N];        /* analysed data (1e-21) */
    double w[GW_MAX_N];        /* whitened data L^-1 d */
    double acf[GW_MAX_N];      /* noise autocovariance rho(k dt), (1e-21)^2 */
    double kappa[GW_MAX_N];    /* Levinson reflection coefficients, kappa[0] unused */
    double isqrt_e[GW_MAX_N];  /* 1 / sqrt(prediction-error variance) = 1 / L_nn */
    double *chol;              /* n x n lower Cholesky factor of C (row-major, owned) */
    double log_det;            /* log det C */
    double *cond;              /* the whole conditioned series at fs (owned) */
    long ncond, i0;            /* its length; index of the first analysed sample */
    double cond_t0;            /* GPS time of cond[0] */
    int nseg;                  /* Welch segments averaged */
} gw_detector_data;

typedef struct gw_analysis {
    gw_settings set;
    int n;                     /* samples per detector */
    double fs, dt;             /* analysis rate */
    double gmst, t_geo;        /* sidereal time and geocentre time of the start */
    double log_l_noise;        /* log L of the data under noise alone (strain in 1e-21) */
    gw_detector_data det[GW_NDET];
} gw_analysis;

GWDEF void gw_analysis_free(gw_analysis *a) {
    int k;
    for (k = 0; k < GW_NDET; ++k) { free(a->det[k].chol); free(a->det[k].cond); a->det[k].chol = a->det[k].cond = NULL; }
}

/* Reads n float32 samples (little-endian) of path into out (double, times scale). */
GWDEF int gw__read_f32(const char *path, long n, double scale, double *out) {
    FILE *fp = fopen(path, "rb"); unsigned char b[4]; long i;
    if (!fp) return -1;
    for (i = 0; i < n; ++i) {
        unsigned long u; unsigned int u32; float f;
        if (fread(b, 1, 4, fp) != 4) { fclose(fp); return -1; }
        u = (unsigned long)b[0] | (unsigned long)b[1] << 8 | (unsigned long)b[2] << 16 | (unsigned long)b[3] << 24;
        u32 = (unsigned int)u;
        memcpy(&f, &u32, sizeof f);
        out[i] = (double)f * scale;
    }
    if (fgetc(fp) != EOF) { fclose(fp); return -1; }      /* exactly n samples */
    fclose(fp);
    return 0;
}

/* Median bias of chi^2_2 periodograms (as scipy.signal.welch): median / mean. */
GWDEF double gw__median_bias(int n) {
    double b = 1; int i;
    for (i = 1; i <= (n - 1) / 2; ++i) b += 1.0 / (2 * i + 1) - 1.0 / (2 * i);
    return b;
}
GWDEF int gw__cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

/* Conditions raw 4096 Hz data x (n samples starting at GPS t_start) into a->det[k].cond. */
GWDEF int gw__condition(gw_analysis *a, int k, const double *x, long n, double t_start) {
    const gw_settings *s = &a->set; gw_detector_data *dd = &a->det[k];
    long nfft = 1, i, ntap = (long)GW_FS_RAW, ir, p; double mean = 0, *re, *im;
    int ds = s->decimate;
    while (nfft < n) nfft <<= 1;
    re = (double *)calloc((size_t)nfft, sizeof(double)); im = (double *)calloc((size_t)nfft, sizeof(double));
    if (!re || !im) { free(re); free(im); return -1; }
    for (i = 0; i < n; ++i) mean += x[i] / (double)n;
    for (i = 0; i < n; ++i) {
        double w = 1;
        if (i < ntap) w = 0.5 * (1 - cos(GW_PI * (double)i / (double)ntap));
        else if (i >= n - ntap) w = 0.5 * (1 - cos(GW_PI * (double)(n - 1 - i) / (double)ntap));
        re[i] = (x[i] - mean) * w;
    }
    gw__fft(re, im, nfft, 0);
    for (i = 0; i <= nfft / 2; ++i) {
        double f = (double)i * GW_FS_RAW / (double)nfft, h;
        if (i == 0 || f > GW_FS_RAW / (2.0 * ds)) h = 0;
        else h = 1.0 / (1.0 + pow(s->f_min / f, 8));
        re[i] *= h; im[i] *= h;
        if (i > 0 && i < nfft / 2) { re[nfft - i] *= h; im[nfft - i] *= h; }
    }
    gw__fft(re, im, nfft, 1);
    ir = (long)floor((dd->t0 - t_start) * GW_FS_RAW + 0.5);      /* raw sample nearest t0_det */
    p = ir % ds;
    dd->ncond = (n - p + ds - 1) / ds;
    dd->cond = (double *)malloc(sizeof(double) * (size_t)dd->ncond);
    if (!dd->cond) { free(re); free(im); return -1; }
    for (i = 0; i < dd->ncond; ++i) dd->cond[i] = re[p + i * ds] / (double)nfft;
    dd->cond_t0 = t_start + (double)p / GW_FS_RAW;
    dd->i0 = (ir - p) / ds;
    dd->delta = (double)ir / GW_FS_RAW - (dd->t0 - t_start);
    free(re); free(im);
    return 0;
}

/* Welch PSD of the off-source conditioned data -> autocovariance dd->acf[0..n-1]. */
GWDEF int gw__noise(gw_analysis *a, int k) {
    const gw_settings *s = &a->set; gw_detector_data *dd = &a->det[k];
    long nper = (long)floor(s->welch_seg * a->fs + 0.5), step = nper / 2, st, edge = (long)(s->edge * a->fs);
    long nbin = nper / 2 + 1, maxseg = dd->ncond / step + 1, j, m;
    double *re, *im, *per, *psd, *col, wsum = 0, bias, pmax = 0;
    int nseg = 0;
    { long q = 1; while (q < nper) q <<= 1; if (q != nper) return -1; }          /* power of 2 */
    re = (double *)malloc(sizeof(double) * (size_t)nper); im = (double *)malloc(sizeof(double) * (size_t)nper);
    per = (double *)malloc(sizeof(double) * (size_t)(nbin * maxseg)); psd = (double *)malloc(sizeof(double) * (size_t)nbin);
    col = (double *)malloc(sizeof(double) * (size_t)maxseg);
    if (!re || !im || !per || !psd || !col) { free(re); free(im); free(per); free(psd); free(col); return -1; }
    for (j = 0; j < nper; ++j) { double w = 0.5 * (1 - cos(2 * GW_PI * (double)j / (double)nper)); wsum += w * w; }
    for (st = edge; st + nper <= dd->ncond - edge; st += step) {
        double ta = dd->cond_t0 + (double)st / a->fs, tb = ta + (double)nper / a->fs, mean = 0;
        if (tb > dd->t0 - s->excl_before && ta < dd->t0 + s->excl_after) continue;
        for (j = 0; j < nper; ++j) mean += dd->cond[st + j] / (double)nper;
        for (j = 0; j < nper; ++j) { re[j] = (dd->cond[st + j] - mean) * 0.5 * (1 - cos(2 * GW_PI * (double)j / (double)nper)); im[j] = 0; }
        gw__fft(re, im, nper, 0);
        for (j = 0; j < nbin; ++j) {
            double pw = (re[j] * re[j] + im[j] * im[j]) / (a->fs * wsum);
            if (j > 0 && j < nper / 2) pw *= 2;                   /* one-sided */
            per[nseg * nbin + j] = pw;
        }
        ++nseg;
    }
    dd->nseg = nseg;
    if (nseg < 3) { free(re); free(im); free(per); free(psd); free(col); return -1; }
    bias = gw__median_bias(nseg);
    for (j = 0; j < nbin; ++j) {
        int q;
        for (q = 0; q < nseg; ++q) col[q] = per[q * nbin + j];
        qsort(col, (size_t)nseg, sizeof(double), gw__cmp);
        psd[j] = (nseg % 2 ? col[nseg / 2] : 0.5 * (col[nseg / 2 - 1] + col[nseg / 2])) / bias;
    }
    for (j = 0; j < nbin; ++j) if ((double)j * a->fs / (double)nper < s->f_min && psd[j] > pmax) pmax = psd[j];
    for (j = 0; j < nbin; ++j) if ((double)j * a->fs / (double)nper < s->f_min) psd[j] = 10 * pmax;
    /* rho(m dt) = fs/2 * irfft(psd)[m] (one-sided density -> two-sided, periodic over nper) */
    for (m = 0; m < a->n; ++m) {
        double acc = psd[0] + ((m % 2) ? -psd[nper / 2] : psd[nper / 2]);
        for (j = 1; j < nper / 2; ++j) acc += 2 * psd[j] * cos(2 * GW_PI * (double)((j * m) % nper) / (double)nper);
        dd->acf[m] = 0.5 * a->fs * acc / (double)nper;
    }
    free(re); free(im); free(per); free(psd); free(col);
    return 0;
}

/* Cholesky factor of the Toeplitz covariance, whitened data, Levinson coefficients. */
GWDEF int gw__factor(gw_analysis *a, int k) {
    gw_detector_data *dd = &a->det[k]; int n = a->n, i, j, q;
    double *L, *pa, *pb, e;
    L = dd->chol = (double *)calloc((size_t)n * (size_t)n, sizeof(double));
    if (!L) return -1;
    for (j = 0; j < n; ++j) {
        double s = dd->acf[0];
        for (q = 0; q < j; ++q) s -= L[j * n + q] * L[j * n + q];
        if (!(s > 0)) return -1;
        L[j * n + j] = sqrt(s);
        for (i = j + 1; i < n; ++i) {
            double t = dd->acf[i - j];
            for (q = 0; q < j; ++q) t -= L[i * n + q] * L[j * n + q];
            L[i * n + j] = t / L[j * n + j];
        }
    }
    dd->log_det = 0;
    for (i = 0; i < n; ++i) {
        double t = dd->d[i];
        for (q = 0; q < i; ++q) t -= L[i * n + q] * dd->w[q];
        dd->w[i] = t / L[i * n + i];
        dd->log_det += 2 * log(L[i * n + i]);
    }
    /* Levinson-Durbin: predictor a (a[0] = 1), error e, reflection kappa */
    pa = (double *)calloc((size_t)n, sizeof(double)); pb = (double *)calloc((size_t)n, sizeof(double));
    if (!pa || !pb) { free(pa); free(pb); return -1; }
    pa[0] = 1; e = dd->acf[0]; dd->isqrt_e[0] = 1 / sqrt(e); dd->kappa[0] = 0;
    for (i = 1; i < n; ++i) {
        double acc = dd->acf[i], kap;
        for (q = 1; q < i; ++q) acc += pa[q] * dd->acf[i - q];
        kap = -acc / e;
        for (q = 1; q < i; ++q) pb[q] = pa[q] + kap * pa[i - q];
        for (q = 1; q < i; ++q) pa[q] = pb[q];
        pa[i] = kap;
        e *= 1 - kap * kap;
        if (!(e > 0)) { free(pa); free(pb); return -1; }
        dd->kappa[i] = kap; dd->isqrt_e[i] = 1 / sqrt(e);
    }
    free(pa); free(pb);
    return 0;
}

/* Loads dir/H1_GW150914_4096Hz_24s.f32 and L1_..., conditions them, estimates the noise and
   factors the covariances. set NULL: gw_settings_default. Returns 0, or -1 (missing or
   short file, bad settings, out of memory, a covariance that is not positive definite). */
GWDEF int gw_analysis_init(gw_analysis *a, const char *dir, const gw_settings *set) {
    static const char *files[GW_NDET] = {"H1_GW150914_4096Hz_24s.f32", "L1_GW150914_4096Hz_24s.f32"};
    double *raw; int k; double tg;
    memset(a, 0, sizeof *a);
    if (set) a->set = *set; else gw_settings_default(&a->set);
    if (a->set.decimate < 1 || a->set.decimate > 8 || !(a->set.duration > 0) || !(a->set.f_min > 0)) return -1;
    a->fs = GW_FS_RAW / a->set.decimate; a->dt = 1.0 / a->fs;
    a->n = (int)floor(a->set.duration * a->fs + 0.5);
    if (a->n < 2 || a->n > GW_MAX_N) return -1;
    /* start times: geocentre time from H1's, then each detector's (two passes for gmst) */
    a->gmst = gw_gmst(a->set.t0_h1);
    if (a->gmst != a->gmst) return -1;
    for (k = 0; k < 2; ++k) {
        tg = a->set.t0_h1 - gw_time_delay(GW_H1, a->set.ra, a->set.dec, a->gmst);
        a->gmst = gw_gmst(tg);
    }
    a->t_geo = a->set.t0_h1 - gw_time_delay(GW_H1, a->set.ra, a->set.dec, a->gmst);
    raw = (double *)malloc(sizeof(double) * GW_DATA_SAMPLES);
    if (!raw) return -1;
    a->log_l_noise = 0;
    for (k = 0; k < GW_NDET; ++k) {
        gw_detector_data *dd = &a->det[k]; char path[1024]; int i;
        dd->t0 = a->t_geo + gw_time_delay(k, a->set.ra, a->set.dec, a->gmst);
        if (k == GW_H1) dd->t0 = a->set.t0_h1;                       /* exact, not re-rounded */
        gw_antenna(k, a->set.ra, a->set.dec, a->set.psi, a->gmst, &dd->fp, &dd->fc);
        if (snprintf(path, sizeof path, "%s/%s", dir, files[k]) >= (int)sizeof path) { free(raw); gw_analysis_free(a); return -1; }
        if (gw__read_f32(path, GW_DATA_SAMPLES, 1.0 / GW_STRAIN_UNIT, raw) != 0 ||
            gw__condition(a, k, raw, GW_DATA_SAMPLES, GW_DATA_GPS_START) != 0) { free(raw); gw_analysis_free(a); return -1; }
        if (dd->i0 < (long)(a->set.edge * a->fs) || dd->i0 + a->n > dd->ncond - (long)(a->set.edge * a->fs)) { free(raw); gw_analysis_free(a); return -1; }
        for (i = 0; i < a->n; ++i) dd->d[i] = dd->cond[dd->i0 + i];
        if (gw__noise(a, k) != 0 || gw__factor(a, k) != 0) { free(raw); gw_analysis_free(a); return -1; }
        for (i = 0; i < a->n; ++i) a->log_l_noise -= 0.5 * dd->w[i] * dd->w[i];
        a->log_l_noise -= 0.5 * (dd->log_det + a->n * log(2 * GW_PI));
    }
    free(raw);
    return 0;
}

/* Whitens a real sequence v (n samples) with L: out = L^-1 v. O(n^2). */
GWDEF void gw_whiten(const gw_analysis *a, int k, const double *v, double *out) {
    const double *L = a->det[k].chol; int n = a->n, i, q;
    for (i = 0; i < n; ++i) {
        double t = v[i];
        for (q = 0; q < i; ++q) t -= L[i * n + q] * out[q];
        out[i] = t / L[i * n + i];
    }
}

/* ---- the posterior ------------------------------------------------------------------ */

typedef struct gw_model {
    const gw_analysis *a;
    int nmodes;                /* 1: (2,2,0); 2: (2,2,0) + (2,2,1) */
    int dim;                   /* GW_DIM(nmodes) */
    double log_prior_const;    /* log of the prior's normalisation (density at a = 0) */
} gw_model;

GWDEF int gw_model_init(gw_model *m, const gw_analysis *a, int nmodes) {
    const gw_settings *s = &a->set;
    if (nmodes < 1 || nmodes > GW_MAX_MODES) return -1;
    m->a = a; m->nmodes = nmodes; m->dim = GW_DIM(nmodes);
    m->log_prior_const = -log(s->m_max - s->m_min) - log(s->chi_max - s->chi_min)
                         - nmodes * log(2 * GW_PI * s->amp_sigma * s->amp_sigma);
    return 0;
}

GWDEF const char *gw_param_name(int j) {
    static const char *nm[GW_MAX_DIM] = {"M", "chi", "ax_220", "ay_220", "ax_221", "ay_221"};
    return j >= 0 && j < GW_MAX_DIM ? nm[j] : "?";
}
GWDEF const char *gw_param_unit(int j) {
    static const char *u[GW_MAX_DIM] = {"Msun (detector frame)", "1", "1e-21", "1e-21", "1e-21", "1e-21"};
    return j >= 0 && j < GW_MAX_DIM ? u[j] : "?";
}
/* Amplitude and phase of tone k from a parameter row: h+ = A e^{-t/tau} cos(2 pi f t - phi) */
GWDEF void gw_amp_phase(const double *x, int k, double *amp, double *phase) {
    *amp = sqrt(x[2 + 2 * k] * x[2 + 2 * k] + x[3 + 2 * k] * x[3 + 2 * k]);
    *phase = atan2(x[3 + 2 * k], x[2 + 2 * k]);
}

/* Whitened tone: W_n = L^-1 (e^{s t_n})_n, t_n = n dt + delta, by the Levinson lattice, and
   (if dw) dW_n/ds. Complex numbers as interleaved (re, im). */
GWDEF void gw__whitened_tone(const gw_detector_data *dd, int n, double dt, const double s[2], double *w, double *dw) {
    double zr, zi, cr, ci, er, ar = 1, ai = 0, br = 1, bi = 0, dar = 0, dai = 0, dbr = 0, dbi = 0;
    double delta = dd->delta; int i;
    er = exp(s[0] * dt); zr = er * cos(s[1] * dt); zi = er * sin(s[1] * dt);           /* z = e^{s dt} */
    er = exp(s[0] * delta); cr = er * cos(s[1] * delta); ci = er * sin(s[1] * delta);  /* c = e^{s delta} */
    for (i = 0; i < n; ++i) {
        double g = dd->isqrt_e[i], pr = cr * ar - ci * ai, pi_ = cr * ai + ci * ar;   /* c alpha */
        if (i > 0) {
            double kap = dd->kappa[i];
            double ur = zr * ar - zi * ai, ui = zr * ai + zi * ar;                     /* z alpha */
            if (dw) {
                double vr = ar + zr * dar - zi * dai, vi = ai + zr * dai + zi * dar;   /* d(z alpha)/dz */
                dar = vr + kap * dbr; dai = vi + kap * dbi;
                dbr += kap * vr; dbi += kap * vi;
            }
            ar = ur + kap * br; ai = ui + kap * bi;
            br += kap * ur; bi += kap * ui;
            pr = cr * ar - ci * ai; pi_ = cr * ai + ci * ar;
        }
        w[2 * i] = g * pr; w[2 * i + 1] = g * pi_;
        if (dw) {   /* dW/ds = delta W + c dt z dalpha/dz / sqrt(E) */
            double qr = zr * dar - zi * dai, qi = zr * dai + zi * dar;
            double tr = cr * qr - ci * qi, ti = cr * qi + ci * qr;
            dw[2 * i] = delta * w[2 * i] + g * dt * tr;
            dw[2 * i + 1] = delta * w[2 * i + 1] + g * dt * ti;
        }
    }
}

/* log L(x) - log L_noise and its gradient (grad may be NULL) for parameters x (double,
   dim entries). No prior, no support check. */
GWDEF double gw_log_likelihood_ratio(const gw_model *m, const double *x, double *grad) {
    const gw_analysis *a = m->a; int n = a->n, nm = m->nmodes, k, j, i;
    double s[GW_MAX_MODES][2], dsm[GW_MAX_MODES][2], dsc[GW_MAX_MODES][2], total = 0;
    double W[GW_MAX_MODES][2 * GW_MAX_N], dW[GW_MAX_MODES][2 * GW_MAX_N], h[GW_MAX_N];
    if (grad) for (j = 0; j < m->dim; ++j) grad[j] = 0;
    for (k = 0; k < nm; ++k) gw__qnm_s(k, x[0], x[1], s[k], dsm[k], dsc[k]);
    for (j = 0; j < GW_NDET; ++j) {
        const gw_detector_data *dd = &a->det[j];
        double pr[GW_MAX_MODES], pim[GW_MAX_MODES];       /* conj(P) = conj(a) (F+ + i Fx) */
        for (k = 0; k < nm; ++k) {
            double ax = x[2 + 2 * k], ay = x[3 + 2 * k];
            pr[k] = ax * dd->fp + ay * dd->fc; pim[k] = ax * dd->fc - ay * dd->fp;
            gw__whitened_tone(dd, n, a->dt, s[k], W[k], grad ? dW[k] : NULL);
        }
        for (i = 0; i < n; ++i) {
            double v = 0;
            for (k = 0; k < nm; ++k) v += pr[k] * W[k][2 * i] - pim[k] * W[k][2 * i + 1];
            h[i] = v;
            total += dd->w[i] * v - 0.5 * v * v;
        }
        if (grad) {
            for (k = 0; k < nm; ++k) {
                double swr = 0, swi = 0, sdr = 0, sdi = 0, gr, gi;
                for (i = 0; i < n; ++i) {
                    double r = dd->w[i] - h[i];
                    swr += r * W[k][2 * i]; swi += r * W[k][2 * i + 1];
                    sdr += r * dW[k][2 * i]; sdi += r * dW[k][2 * i + 1];
                }
                /* h = Re(conj(a) Fc W) with Fc = F+ + i Fx: d/dax = Re(Fc S), d/day = Im(Fc S) */
                grad[2 + 2 * k] += dd->fp * swr - dd->fc * swi;
                grad[3 + 2 * k] += dd->fp * swi + dd->fc * swr;
                /* d/dtheta = Re(conj(P) ds/dtheta sum r dW/ds) */
                gr = pr[k] * sdr - pim[k] * sdi; gi = pr[k] * sdi + pim[k] * sdr;
                grad[0] += gr * dsm[k][0] - gi * dsm[k][1];
                grad[1] += gr * dsc[k][0] - gi * dsc[k][1];
            }
        }
    }
    return total;
}

/* 1 if x is inside the prior's support (M, chi within their closed intervals, all finite). */
GWDEF int gw_in_support(const gw_model *m, const double *x) {
    const gw_settings *s = &m->a->set; int j;
    for (j = 0; j < m->dim; ++j) if (!(x[j] == x[j]) || x[j] - x[j] != 0) return 0;
    return x[0] >= s->m_min && x[0] <= s->m_max && x[1] >= s->chi_min && x[1] <= s->chi_max;
}

/* log posterior up to the evidence: log L - log L_noise + log prior (normalised); -inf
   (gradient 0) outside the support. */
GWDEF double gw_log_posterior(const gw_model *m, const double *x, double *grad) {
    double lp, s2 = m->a->set.amp_sigma * m->a->set.amp_sigma; int j;
    if (!gw_in_support(m, x)) {
        if (grad) for (j = 0; j < m->dim; ++j) grad[j] = 0;
        return -HUGE_VAL;
    }
    lp = gw_log_likelihood_ratio(m, x, grad) + m->log_prior_const;
    for (j = 2; j < m->dim; ++j) { lp -= 0.5 * x[j] * x[j] / s2; if (grad) grad[j] -= x[j] / s2; }
    return lp;
}

/* ---- exact evidence on a grid ---------------------------------------------------------- */

/* log of the likelihood ratio integrated over the quadratures (Gaussian prior, exact) at
   (M, chi): log int L/L_noise N(a; 0, sigma^2) da
           = 1/2 u^T (G + I/sigma^2)^-1 u - 1/2 log det(I + sigma^2 G),
   G and u the whitened basis's Gram matrix and projections of the whitened data. */
GWDEF double gw_log_marginal_amp(const gw_model *m, double M, double chi) {
    const gw_analysis *a = m->a; int n = a->n, nm = m->nmodes, D = 2 * nm, j, k, i, p, q;
    double G[2 * GW_MAX_MODES][2 * GW_MAX_MODES], u[2 * GW_MAX_MODES], B[2 * GW_MAX_MODES][GW_MAX_N];
    double W[2 * GW_MAX_N], s[2], t1[2], t2[2], s2 = a->set.amp_sigma * a->set.amp_sigma, quad = 0, logdet = 0;
    double Lc[2 * GW_MAX_MODES][2 * GW_MAX_MODES], y[2 * GW_MAX_MODES];
    memset(G, 0, sizeof G); memset(u, 0, sizeof u);
    for (j = 0; j < GW_NDET; ++j) {
        const gw_detector_data *dd = &a->det[j];
        for (k = 0; k < nm; ++k) {
            gw__qnm_s(k, M, chi, s, t1, t2);
            gw__whitened_tone(dd, n, a->dt, s, W, NULL);
            for (i = 0; i < n; ++i) {   /* basis for ax: Re((F+ + i Fx) W), for ay: Im(...) */
                B[2 * k][i] = dd->fp * W[2 * i] - dd->fc * W[2 * i + 1];
                B[2 * k + 1][i] = dd->fp * W[2 * i + 1] + dd->fc * W[2 * i];
            }
        }
        for (p = 0; p < D; ++p) {
            for (i = 0; i < n; ++i) u[p] += B[p][i] * dd->w[i];
            for (q = 0; q <= p; ++q) { double t = 0; for (i = 0; i < n; ++i) t += B[p][i] * B[q][i]; G[p][q] += t; }
        }
    }
    /* Cholesky of A = G + I/sigma^2 (lower triangle of G is filled) */
    for (p = 0; p < D; ++p) for (q = 0; q <= p; ++q) {
        double t = G[p][q] + (p == q ? 1.0 / s2 : 0);
        for (i = 0; i < q; ++i) t -= Lc[p][i] * Lc[q][i];
        if (p == q) { if (!(t > 0)) return -HUGE_VAL; Lc[p][p] = sqrt(t); } else Lc[p][q] = t / Lc[q][q];
    }
    for (p = 0; p < D; ++p) { double t = u[p]; for (i = 0; i < p; ++i) t -= Lc[p][i] * y[i]; y[p] = t / Lc[p][p]; quad += y[p] * y[p]; }
    for (p = 0; p < D; ++p) logdet += 2 * log(Lc[p][p]);       /* det(G + I/s2) */
    return 0.5 * quad - 0.5 * (logdet + D * log(s2));           /* det(I + s2 G) = s2^D det(A) */
}

/* The exact posterior on a midpoint grid of nm x nc cells over the (M, chi) prior box.
   Returns log Z (log evidence against noise alone, same normalisation as gw_log_density);
   pm[nm], pc[nc] (may be NULL) get the M and chi marginal masses of the cells; logz_cell
   (nm * nc, may be NULL) each cell's log integrand. */
GWDEF double gw_grid(const gw_model *m, int nm, int nc, double *pm, double *pc, double *logz_cell) {
    const gw_settings *s = &m->a->set; int i, j; double mx = -HUGE_VAL, acc = 0, *lz;
    double dm = (s->m_max - s->m_min) / nm, dc = (s->chi_max - s->chi_min) / nc;
    lz = logz_cell ? logz_cell : (double *)malloc(sizeof(double) * (size_t)nm * (size_t)nc);
    if (!lz) return NAN;
    for (i = 0; i < nm; ++i) for (j = 0; j < nc; ++j) {
        double v = gw_log_marginal_amp(m, s->m_min + (i + 0.5) * dm, s->chi_min + (j + 0.5) * dc);
        lz[i * nc + j] = v; if (v > mx) mx = v;
    }
    if (pm) for (i = 0; i < nm; ++i) pm[i] = 0;
    if (pc) for (j = 0; j < nc; ++j) pc[j] = 0;
    for (i = 0; i < nm; ++i) for (j = 0; j < nc; ++j) {
        double w = exp(lz[i * nc + j] - mx);
        acc += w; if (pm) pm[i] += w; if (pc) pc[j] += w;
    }
    if (pm) for (i = 0; i < nm; ++i) pm[i] /= acc;
    if (pc) for (j = 0; j < nc; ++j) pc[j] /= acc;
    if (!logz_cell) free(lz);
    return mx + log(acc / ((double)nm * (double)nc));   /* prior is flat over the box: mean */
}

/* ---- comparing posteriors (the examples and bench/gw150914_mcmc.c) ---------------------- */

/* Jensen-Shannon divergence in bits of two histograms over n bins (each sums to 1). */
GWDEF double gw_js_bits(const double *p, const double *q, int n) {
    double s = 0; int i;
    for (i = 0; i < n; ++i) {
        double m = 0.5 * (p[i] + q[i]);
        if (p[i] > 0) s += 0.5 * p[i] * log2(p[i] / m);
        if (q[i] > 0) s += 0.5 * q[i] * log2(q[i] / m);
    }
    return s;
}
/* The q-quantile of n samples, the nearest order statistic (tmp: n doubles, sorted copy). */
GWDEF double gw_quantile(const double *v, size_t n, double q, double *tmp) {
    memcpy(tmp, v, n * sizeof(double));
    qsort(tmp, n, sizeof(double), gw__cmp);
    return tmp[(size_t)(q * (double)(n - 1) + 0.5)];
}
/* The q-quantile of a binned density: cell masses p[0..n-1] of width h from lo, linear
   within a cell. */
GWDEF double gw_grid_quantile(const double *p, int n, double lo, double h, double q) {
    double c = 0; int i;
    for (i = 0; i < n; ++i) { if (c + p[i] >= q) return lo + h * ((double)i + (q - c) / p[i]); c += p[i]; }
    return lo + h * n;
}

/* ---- nflow interface ------------------------------------------------------------------ */
#ifdef NFLOW_H
/* Domains of the parameters: M and chi NF_DOMAIN_INTERVAL (the prior box), amplitudes real. */
GWDEF void gw_domains(const gw_model *m, nf_domain *dom) {
    int j;
    memset(dom, 0, sizeof(nf_domain) * (size_t)m->dim);
    dom[0].kind = NF_DOMAIN_INTERVAL; dom[0].lo = m->a->set.m_min; dom[0].hi = m->a->set.m_max;
    dom[1].kind = NF_DOMAIN_INTERVAL; dom[1].lo = m->a->set.chi_min; dom[1].hi = m->a->set.chi_max;
    for (j = 2; j < m->dim; ++j) dom[j].kind = NF_DOMAIN_REAL;
}

/* nf_log_density_fn: user is a gw_model *; dim must be its dim (else returns 1). Each row is
   converted to double and evaluated by gw_log_posterior. */
GWDEF int gw_log_density(const nf_real *x, size_t n, int dim, nf_real *logp, nf_real *grad, void *user) {
    const gw_model *m = (const gw_model *)user; size_t r; int j;
    double xd[GW_MAX_DIM] = {0}, gd[GW_MAX_DIM] = {0};
    if (!m || dim != m->dim) return 1;
    for (r = 0; r < n; ++r) {
        double v;
        for (j = 0; j < dim; ++j) xd[j] = (double)x[r * (size_t)dim + (size_t)j];
        v = gw_log_posterior(m, xd, grad ? gd : NULL);
        logp[r] = (nf_real)v;
        if (grad) for (j = 0; j < dim; ++j) grad[r * (size_t)dim + (size_t)j] = (nf_real)gd[j];
    }
    return 0;
}
#endif

#endif /* GW150914_RINGDOWN_H */
