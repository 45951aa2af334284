/* models_ref.h - reference numbers computed offline by this folder's programs (README.md).
   Included by models.h only. */

/* log Z (quadrature.c, double precision; see its output in README.md) */
#define BM__ES_LOGZ (-31.311347)      /* tau-line after exact Gaussian integrals; IS -31.35 +- 0.05 */
#define BM__ARK_LOGZ 58.587594        /* sigma-line after exact Gaussian integrals; IS 58.5880 +- 0.0007 */
#define BM__GARCH_LOGZ (-451.0005)    /* 4-D trapezoid, h = 0.45, R = 13 (R = 9, 11: -451.0037, -451.0012) */
#define BM__GM_LOGZ (-2114.989958)    /* 5-D trapezoid, three grids agree to 1e-6; IS -2114.9908 +- 0.0018 */
#define BM__KID_LOGZ (-1881.663161)   /* 3-D trapezoid = beta exact + 1-D sigma line, to 1e-6 */

/* ./mcmc_ref gp_poisson25 32 25000 1: 32 chains x 25000 draws, acceptance 0.818, 7 divergent, max R-hat 1.00021, min ESS 133890 */
#define BM__GP_REF_NOTE "32 chains x 25,000 draws, max split R-hat 1.00021, min ESS 133890"
static const double bm__gp_mean[25] = {1.1599333, 0.18344086, 0.92438425, 0.2036891, -0.30016228, -0.2864354, -0.46975883, -0.24462761, 0.52464923, 1.1771422, 0.93704826, 0.57457042, 0.83795799, 1.4557835, 0.61367292, 0.45935401, 0.78489369, 0.71023949, 0.82232147, -0.050820541, -0.22275198, -0.54377641, -0.4823091, -0.73160217, -0.68770759};
static const double bm__gp_sd[25] = {0.36252426, 0.6508484, 0.47866914, 0.57020506, 0.69303862, 0.68059088, 0.74461462, 0.69275373, 0.51327939, 0.42993714, 0.44774786, 0.51798041, 0.46636796, 0.40212353, 0.51043314, 0.53551667, 0.4704884, 0.47791399, 0.47618313, 0.6302913, 0.65871879, 0.73616432, 0.71983964, 0.82056952, 0.88469763};

/* ./mcmc_ref hier_logit26 32 25000 1: 32 chains x 25000 draws, acceptance 0.823, 0 divergent, max R-hat 1.00002, min ESS 507858 */
#define BM__HL_REF_NOTE "32 chains x 25,000 draws, max split R-hat 1.00002, min ESS 507858"
static const double bm__hl_mean[26] = {-0.89164612, -0.5969696, 0.021204705, -1.5946681, -1.7212627, -1.5838812, -0.81052802, -1.0693185, -0.2368449, -1.8646073, 0.080977861, -1.8345386, -0.87497308, -0.36600747, -1.3235519, -0.67651463, -1.2661143, -1.7548112, -0.87124636, -0.57036999, -1.6833333, -1.8485858, -1.388936, -1.6178144, -1.0910428, 0.74497366};
static const double bm__hl_sd[26] = {0.26689351, 0.35240723, 0.25662463, 0.37482109, 0.36903753, 0.46549655, 0.31215418, 0.29879981, 0.25955735, 0.36346261, 0.2530183, 0.55687823, 0.29058119, 0.32617012, 0.33362377, 0.3780913, 0.54456446, 0.56281271, 0.2675867, 0.26518841, 0.45971381, 0.44815472, 0.44030602, 0.51104777, 0.18129223, 0.15616718};

