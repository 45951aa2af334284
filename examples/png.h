/* png.h - a tiny RGB canvas, text, plots and a PNG writer for the nflow examples (no dependency).

   canvas     canvas_new, canvas_free, canvas_blend, canvas_rect, canvas_line, colormap
   text       canvas_text (a built-in 5x7 font, 5x8 with descenders, printable ASCII, any
              integer scale, left/centre/right, top/middle/baseline, or turned to read
              upwards), canvas_text_width
   plots      plot (a rectangle of the canvas mapped to a data box): plot_frame, plot_line
              (clipped), plot_scatter, plot_heat, plot_ticks (1-2-5 steps), plot_xaxis and
              plot_yaxis (ticks, their values, the axis name), plot_grid, plot_title,
              canvas_legend
   file       png_write: 8-bit RGB. Its deflate stream uses the fixed Huffman code and only
              two match distances, one pixel back and one row up: plain, but flat plot
              areas (and text on them) shrink a hundredfold.
   Include in one file; everything is static. */
#ifndef NF_EXAMPLES_PNG_H
#define NF_EXAMPLES_PNG_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#if defined(__GNUC__) || defined(__clang__)
#define PNG_FN static __attribute__((unused))   /* each example uses only some helpers */
#else
#define PNG_FN static
#endif

/* ---- canvas ---------------------------------------------------------------------- */

typedef struct canvas { int w, h; unsigned char *px; } canvas;

PNG_FN canvas canvas_new(int w, int h, unsigned char gray) {
    canvas c; c.w = w; c.h = h;
    c.px = (unsigned char *)malloc((size_t)w * h * 3);
    if (c.px) memset(c.px, gray, (size_t)w * h * 3);
    return c;
}
PNG_FN void canvas_free(canvas *c) { free(c->px); c->px = NULL; }
/* alpha-blend one pixel */
PNG_FN void canvas_blend(canvas *c, int x, int y, const unsigned char rgb[3], double a) {
    unsigned char *p; int k;
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
    p = c->px + ((size_t)y * c->w + x) * 3;
    for (k = 0; k < 3; ++k) p[k] = (unsigned char)(p[k] * (1 - a) + rgb[k] * a + 0.5);
}
PNG_FN void canvas_rect(canvas *c, int x0, int y0, int x1, int y1, const unsigned char rgb[3]) {
    int x, y;
    for (y = y0; y < y1; ++y) for (x = x0; x < x1; ++x) canvas_blend(c, x, y, rgb, 1);
}
/* a line by DDA, for grids and curves */
PNG_FN void canvas_line(canvas *c, double x0, double y0, double x1, double y1, const unsigned char rgb[3], double a) {
    double dx = x1 - x0, dy = y1 - y0, n = fabs(dx) > fabs(dy) ? fabs(dx) : fabs(dy); int i;
    if (n < 1) n = 1;
    if (n > 4000) return;   /* a wild segment: skip rather than paint the panel */
    for (i = 0; i <= (int)n; ++i) canvas_blend(c, (int)(x0 + dx * i / n + 0.5), (int)(y0 + dy * i / n + 0.5), rgb, a);
}

/* perceptual-ish colormap (a few viridis anchors, linearly interpolated), t in [0, 1] */
PNG_FN void colormap(double t, unsigned char rgb[3]) {
    static const double a[6][3] = {{68,1,84},{65,68,135},{42,120,142},{34,168,132},{122,209,81},{253,231,37}};
    int i; double f;
    if (!(t > 0)) t = 0;
    if (t > 1) t = 1;
    f = t * 5; i = (int)f; if (i > 4) i = 4; f -= i;
    rgb[0] = (unsigned char)(a[i][0] + (a[i + 1][0] - a[i][0]) * f);
    rgb[1] = (unsigned char)(a[i][1] + (a[i + 1][1] - a[i][1]) * f);
    rgb[2] = (unsigned char)(a[i][2] + (a[i + 1][2] - a[i][2]) * f);
}

/* ---- text ------------------------------------------------------------------------ */

/* The font: one glyph per printable ASCII character, 32 (space) to 126 (~), drawn for
   these examples. A glyph is 8 rows of 5 pixels, one byte per row from the top (the
   most significant byte), bit 4 the leftmost pixel. Rows 0-6 hold capitals and digits,
   lowercase letters are 5 rows high (rows 2-6), row 7 holds descenders (g j p q y , ;)
   and the underscore. Characters advance 6 pixels (times the scale). */
#define PNG_GLYPH_W 5
#define PNG_GLYPH_H 8
#define PNG_CAP_H 7
#define PNG_ADVANCE 6
static const unsigned long long png__font[95] = {
    0x0000000000000000ULL, 0x0404040404000400ULL, 0x0a0a0a0000000000ULL, 0x0a0a1f0a1f0a0a00ULL,  /* space ! " # */
    0x040f140e051e0400ULL, 0x1819020408130300ULL, 0x0c12140815120d00ULL, 0x0404040000000000ULL,  /* $ % & ' */
    0x0204080808040200ULL, 0x0804020202040800ULL, 0x0004150e15040000ULL, 0x0004041f04040000ULL,  /* ( ) * + */
    0x0000000000040408ULL, 0x0000001f00000000ULL, 0x00000000000c0c00ULL, 0x0101020408101000ULL,  /* , - . / */
    0x0e11131519110e00ULL, 0x040c040404040e00ULL, 0x0e11010204081f00ULL, 0x0e11010601110e00ULL,  /* 0 1 2 3 */
    0x02060a121f020200ULL, 0x1f101e0101110e00ULL, 0x0608101e11110e00ULL, 0x1f01020408080800ULL,  /* 4 5 6 7 */
    0x0e11110e11110e00ULL, 0x0e11110f01020c00ULL, 0x000c0c000c0c0000ULL, 0x000c0c000c0c0408ULL,  /* 8 9 : ; */
    0x0204081008040200ULL, 0x00001f001f000000ULL, 0x0804020102040800ULL, 0x0e11010204000400ULL,  /* < = > ? */
    0x0e11171517100e00ULL, 0x0e11111f11111100ULL, 0x1e11111e11111e00ULL, 0x0e11101010110e00ULL,  /* @ A B C */
    0x1c12111111121c00ULL, 0x1f10101e10101f00ULL, 0x1f10101e10101000ULL, 0x0e11101711110f00ULL,  /* D E F G */
    0x1111111f11111100ULL, 0x0e04040404040e00ULL, 0x0702020202120c00ULL, 0x1112141814121100ULL,  /* H I J K */
    0x1010101010101f00ULL, 0x111b151511111100ULL, 0x1111191513111100ULL, 0x0e11111111110e00ULL,  /* L M N O */
    0x1e11111e10101000ULL, 0x0e11111115120d00ULL, 0x1e11111e14121100ULL, 0x0f10100e01011e00ULL,  /* P Q R S */
    0x1f04040404040400ULL, 0x1111111111110e00ULL, 0x11111111110a0400ULL, 0x1111111515150a00ULL,  /* T U V W */
    0x11110a040a111100ULL, 0x11110a0404040400ULL, 0x1f01020408101f00ULL, 0x0e08080808080e00ULL,  /* X Y Z [ */
    0x1010080402010100ULL, 0x0e02020202020e00ULL, 0x040a110000000000ULL, 0x000000000000001fULL,  /* \ ] ^ _ */
    0x0804000000000000ULL, 0x00000e010f110f00ULL, 0x10101e1111111e00ULL, 0x00000e1010110e00ULL,  /* ` a b c */
    0x01010f1111110f00ULL, 0x00000e111f100e00ULL, 0x0609081c08080800ULL, 0x00000f11110f010eULL,  /* d e f g */
    0x1010161911111100ULL, 0x04000c0404040e00ULL, 0x020006020202120cULL, 0x1010121418141200ULL,  /* h i j k */
    0x0c04040404040e00ULL, 0x00001a1515151500ULL, 0x0000161911111100ULL, 0x00000e1111110e00ULL,  /* l m n o */
    0x00001e11111e1010ULL, 0x00000f11110f0101ULL, 0x0000161910101000ULL, 0x00000f100e011e00ULL,  /* p q r s */
    0x08081c0808090600ULL, 0x0000111111130d00ULL, 0x00001111110a0400ULL, 0x0000111115150a00ULL,  /* t u v w */
    0x0000110a040a1100ULL, 0x00001111110f010eULL, 0x00001f0204081f00ULL, 0x0304040804040300ULL,  /* x y z { */
    0x0404040404040404ULL, 0x1804040204041800ULL, 0x0000081502000000ULL   /* | } ~ */
};

/* canvas_text's align: one horizontal and one vertical choice or'ed together, plus TEXT_UP to turn it */
enum {
    TEXT_LEFT = 0, TEXT_CENTER = 1, TEXT_RIGHT = 2,   /* x is the text's start, middle or end */
    TEXT_TOP = 0, TEXT_MIDDLE = 4, TEXT_BASELINE = 8, /* y is the top of the capitals, their middle, the baseline */
    TEXT_UP = 16                                      /* turned a quarter anticlockwise: reads upwards */
};
/* the length of s drawn at this scale, in pixels (characters outside 32..126 draw as '?') */
PNG_FN int canvas_text_width(const char *s, int scale) {
    size_t n = strlen(s);
    return n ? (int)(n * PNG_ADVANCE - 1) * scale : 0;
}
/* Draws s (one line) in rgb, each font pixel a scale x scale block; align as above.
   Returns the text's length in pixels. */
PNG_FN int canvas_text(canvas *c, int x, int y, const char *s, int scale, const unsigned char rgb[3], int align) {
    int len = canvas_text_width(s, scale), h = PNG_CAP_H * scale, du, dv, i, r, k, a, b;
    if (scale < 1) return 0;
    du = (align & 3) == TEXT_CENTER ? len / 2 : (align & 3) == TEXT_RIGHT ? len : 0;
    dv = (align & 12) == TEXT_MIDDLE ? h / 2 : (align & 12) == TEXT_BASELINE ? h : 0;
    for (i = 0; s[i]; ++i) {
        int ch = (unsigned char)s[i];
        unsigned long long g = png__font[(ch >= 32 && ch <= 126 ? ch : '?') - 32];
        for (r = 0; r < PNG_GLYPH_H; ++r) for (k = 0; k < PNG_GLYPH_W; ++k) {
            int u, v;   /* the font pixel's place along and across the text */
            if (!(((g >> (8 * (PNG_GLYPH_H - 1 - r))) >> (PNG_GLYPH_W - 1 - k)) & 1)) continue;
            u = i * PNG_ADVANCE * scale + k * scale - du; v = r * scale - dv;
            for (a = 0; a < scale; ++a) for (b = 0; b < scale; ++b) {
                if (align & TEXT_UP) canvas_blend(c, x + v + b, y - u - a - 1, rgb, 1);
                else canvas_blend(c, x + u + a, y + v + b, rgb, 1);
            }
        }
    }
    return len;
}

/* ---- plots ----------------------------------------------------------------------- */

/* A plot: the canvas rectangle [x0, x0 + w) x [y0, y0 + h) showing the data box
   [xlo, xhi] x [ylo, yhi], y upwards. */
typedef struct plot { int x0, y0, w, h; double xlo, xhi, ylo, yhi; } plot;

PNG_FN plot plot_make(int x0, int y0, int w, int h, double xlo, double xhi, double ylo, double yhi) {
    plot p; p.x0 = x0; p.y0 = y0; p.w = w; p.h = h; p.xlo = xlo; p.xhi = xhi; p.ylo = ylo; p.yhi = yhi;
    return p;
}
/* data to canvas coordinates (continuous: pixel column k spans [k, k + 1)) */
PNG_FN double plot_x(const plot *p, double v) { return p->x0 + (v - p->xlo) / (p->xhi - p->xlo) * p->w; }
PNG_FN double plot_y(const plot *p, double v) { return p->y0 + p->h - (v - p->ylo) / (p->yhi - p->ylo) * p->h; }

/* a one-pixel gray border around the plot, and the inside filled with bg (NULL: left as is) */
PNG_FN void plot_frame(canvas *c, const plot *p, const unsigned char bg[3]) {
    static const unsigned char border[3] = {200, 200, 200};
    canvas_rect(c, p->x0 - 1, p->y0 - 1, p->x0 + p->w + 1, p->y0, border);
    canvas_rect(c, p->x0 - 1, p->y0 + p->h, p->x0 + p->w + 1, p->y0 + p->h + 1, border);
    canvas_rect(c, p->x0 - 1, p->y0, p->x0, p->y0 + p->h, border);
    canvas_rect(c, p->x0 + p->w, p->y0, p->x0 + p->w + 1, p->y0 + p->h, border);
    if (bg) canvas_rect(c, p->x0, p->y0, p->x0 + p->w, p->y0 + p->h, bg);
}
/* Clips the segment a-b to [x0, x1] x [y0, y1] (Liang-Barsky); 0 if nothing is left. */
static int png__clip(double *ax, double *ay, double *bx, double *by, double x0, double y0, double x1, double y1) {
    double dx = *bx - *ax, dy = *by - *ay, t0 = 0, t1 = 1, p[4], q[4]; int i;
    if (!(fabs(*ax) < 1e9 && fabs(*ay) < 1e9 && fabs(*bx) < 1e9 && fabs(*by) < 1e9)) return 0;   /* also NaN */
    p[0] = -dx; q[0] = *ax - x0; p[1] = dx; q[1] = x1 - *ax;
    p[2] = -dy; q[2] = *ay - y0; p[3] = dy; q[3] = y1 - *ay;
    for (i = 0; i < 4; ++i) {
        double r;
        if (p[i] == 0) { if (q[i] < 0) return 0; continue; }
        r = q[i] / p[i];
        if (p[i] < 0) { if (r > t1) return 0; if (r > t0) t0 = r; }
        else { if (r < t0) return 0; if (r < t1) t1 = r; }
    }
    *bx = *ax + t1 * dx; *by = *ay + t1 * dy; *ax += t0 * dx; *ay += t0 * dy;
    return 1;
}
/* a line between two data points, clipped to the plot */
PNG_FN void plot_line(canvas *c, const plot *p, double xa, double ya, double xb, double yb, const unsigned char rgb[3], double alpha) {
    double ax = plot_x(p, xa), ay = plot_y(p, ya), bx = plot_x(p, xb), by = plot_y(p, yb), e = 1e-6;
    if (!png__clip(&ax, &ay, &bx, &by, p->x0, p->y0, p->x0 + p->w - e, p->y0 + p->h - e)) return;
    canvas_line(c, ax - 0.5, ay - 0.5, bx - 0.5, by - 0.5, rgb, alpha);   /* canvas_line rounds to pixel centres */
}
/* scatter of n 2-D points (row-major doubles), points outside the plot left out */
PNG_FN void plot_scatter(canvas *c, const plot *p, const double *xy, size_t n, const unsigned char rgb[3], double a) {
    size_t i;
    for (i = 0; i < n; ++i) {
        double fx = floor(plot_x(p, xy[2 * i])), fy = floor(plot_y(p, xy[2 * i + 1]));
        int x, y;
        if (!(fx >= p->x0 && fx < p->x0 + p->w && fy >= p->y0 && fy < p->y0 + p->h)) continue;
        x = (int)fx; y = (int)fy;
        canvas_blend(c, x, y, rgb, a);
        canvas_blend(c, x + 1, y, rgb, a * 0.5); canvas_blend(c, x, y + 1, rgb, a * 0.5);
    }
}
/* heat map of a w x h grid of values in [0, 1] filling the plot, row 0 at the top */
PNG_FN void plot_heat(canvas *c, const plot *p, const double *v) {
    int i, j; unsigned char rgb[3];
    for (i = 0; i < p->h; ++i) for (j = 0; j < p->w; ++j) {
        colormap(v[(size_t)i * p->w + j], rgb);
        canvas_blend(c, p->x0 + j, p->y0 + i, rgb, 1);
    }
}

#define PLOT_MAX_TICKS 16
/* At most max_n (<= PLOT_MAX_TICKS) round ticks in [lo, hi], a step of 1, 2 or 5 times a
   power of ten apart. Writes them to t and the decimals their labels need to *dec;
   returns how many. */
PNG_FN int plot_ticks(double lo, double hi, int max_n, double *t, int *dec) {
    double span = hi - lo, step, mag, f, first; int n = 0, k;
    *dec = 0;
    if (!(span > 0) || span > 1e300 || max_n < 1) return 0;
    if (max_n > PLOT_MAX_TICKS) max_n = PLOT_MAX_TICKS;
    step = span / max_n; mag = pow(10, floor(log10(step))); f = step / mag;
    step = (f <= 1 + 1e-9 ? 1 : f <= 2 + 1e-9 ? 2 : f <= 5 + 1e-9 ? 5 : 10) * mag;
    first = ceil(lo / step - 1e-9);
    for (k = 0; n < max_n + 1 && n < PLOT_MAX_TICKS; ++k) {
        double v = (first + k) * step;
        if (v > hi + 1e-9 * step) break;
        t[n++] = fabs(v) < 1e-9 * step ? 0 : v;   /* no "-0" */
    }
    if (step < 1) *dec = (int)ceil(-log10(step) - 1e-9);
    return n;
}
static void png__label(char *buf, size_t n, double v, int dec) { snprintf(buf, n, "%.*f", dec, v); }
/* The most ticks (up to max_n, 0: 10) whose labels keep clear of each other along an
   axis of len pixels, at least len / 8 apart; across = 0 for labels side by side (x),
   1 for stacked (y). */
static int png__axis_ticks(double lo, double hi, int len, int max_n, int across, double *t, int *dec) {
    int n, m, i;
    for (n = max_n > 0 ? max_n : 10; n >= 1; --n) {
        double room;
        m = plot_ticks(lo, hi, n, t, dec);
        if (m < 2) return m;
        room = (t[1] - t[0]) / (hi - lo) * len;
        if (room < len / 8.0) continue;   /* no more than about 8 intervals */
        if (across) { if (room >= PNG_CAP_H + 9) return m; continue; }
        for (i = 0; i < m; ++i) {
            char b[48]; png__label(b, sizeof b, t[i], *dec);
            if (canvas_text_width(b, 1) + 6 > room) break;
        }
        if (i == m) return m;
    }
    return plot_ticks(lo, hi, 1, t, dec);
}
static const unsigned char png__ink[3] = {40, 40, 40}, png__tick_ink[3] = {90, 90, 90}, png__tick_mark[3] = {150, 150, 150};
/* Ticks under the plot, their values (kept within a pixel of the plot's sides, so that
   plots side by side can each have an axis) and, if name is not NULL, the axis name
   centred below them; max_ticks 0: as many as fit. Returns the height used under the plot. */
PNG_FN int plot_xaxis(canvas *c, const plot *p, const char *name, int max_ticks) {
    double t[PLOT_MAX_TICKS]; int dec, n = png__axis_ticks(p->xlo, p->xhi, p->w, max_ticks, 0, t, &dec), i, yb = p->y0 + p->h;
    for (i = 0; i < n; ++i) {
        char b[48]; int x = (int)floor(plot_x(p, t[i])), lx, lw;
        if (x >= p->x0 + p->w) x = p->x0 + p->w - 1;
        png__label(b, sizeof b, t[i], dec);
        lw = canvas_text_width(b, 1); lx = x - lw / 2;   /* centred, but no more than a pixel beyond the plot */
        if (lx + lw > p->x0 + p->w + 1) lx = p->x0 + p->w + 1 - lw;
        if (lx < p->x0 - 1) lx = p->x0 - 1;
        canvas_rect(c, x, yb + 1, x + 1, yb + 4, png__tick_mark);
        canvas_text(c, lx, yb + 6, b, 1, png__tick_ink, TEXT_LEFT | TEXT_TOP);
    }
    if (name) canvas_text(c, p->x0 + p->w / 2, yb + 19, name, 1, png__ink, TEXT_CENTER | TEXT_TOP);
    return name ? 19 + PNG_GLYPH_H : 6 + PNG_GLYPH_H;
}
/* Ticks left of the plot, their values (kept within a pixel of its top and bottom) and,
   if name is not NULL, the axis name turned to read upwards left of them. Returns the
   width used left of the plot. */
PNG_FN int plot_yaxis(canvas *c, const plot *p, const char *name, int max_ticks) {
    double t[PLOT_MAX_TICKS]; int dec, n = png__axis_ticks(p->ylo, p->yhi, p->h, max_ticks, 1, t, &dec), i, wmax = 0;
    for (i = 0; i < n; ++i) {
        char b[48]; int y = (int)floor(plot_y(p, t[i])), ly, w;
        if (y >= p->y0 + p->h) y = p->y0 + p->h - 1;
        png__label(b, sizeof b, t[i], dec);
        ly = y - PNG_CAP_H / 2;   /* centred, but no more than a pixel beyond the plot */
        if (ly + PNG_CAP_H > p->y0 + p->h + 1) ly = p->y0 + p->h + 1 - PNG_CAP_H;
        if (ly < p->y0 - 1) ly = p->y0 - 1;
        canvas_rect(c, p->x0 - 4, y, p->x0 - 1, y + 1, png__tick_mark);
        w = canvas_text(c, p->x0 - 6, ly, b, 1, png__tick_ink, TEXT_RIGHT | TEXT_TOP);
        if (w > wmax) wmax = w;
    }
    if (!name) return 6 + wmax;
    canvas_text(c, p->x0 - 6 - wmax - 4 - PNG_GLYPH_H, p->y0 + p->h / 2, name, 1, png__ink, TEXT_UP | TEXT_CENTER | TEXT_TOP);
    return 6 + wmax + 4 + PNG_GLYPH_H;
}
/* grid lines at the ticks plot_xaxis / plot_yaxis would draw with these max_ticks;
   a negative max_ticks leaves that direction out */
PNG_FN void plot_grid(canvas *c, const plot *p, int max_xticks, int max_yticks, const unsigned char rgb[3]) {
    double t[PLOT_MAX_TICKS]; int dec, n, i;
    if (max_xticks >= 0) {
        n = png__axis_ticks(p->xlo, p->xhi, p->w, max_xticks, 0, t, &dec);
        for (i = 0; i < n; ++i) { int x = (int)floor(plot_x(p, t[i])); if (x < p->x0 + p->w) canvas_rect(c, x, p->y0, x + 1, p->y0 + p->h, rgb); }
    }
    if (max_yticks >= 0) {
        n = png__axis_ticks(p->ylo, p->yhi, p->h, max_yticks, 1, t, &dec);
        for (i = 0; i < n; ++i) { int y = (int)floor(plot_y(p, t[i])); if (y < p->y0 + p->h) canvas_rect(c, p->x0, y, p->x0 + p->w, y + 1, rgb); }
    }
}
/* a title centred above the plot, in rgb (NULL: dark gray) */
PNG_FN void plot_title(canvas *c, const plot *p, const char *title, int scale, const unsigned char rgb[3]) {
    canvas_text(c, p->x0 + p->w / 2, p->y0 - 4 - scale * (PNG_GLYPH_H - PNG_CAP_H), title, scale, rgb ? rgb : png__ink, TEXT_CENTER | TEXT_BASELINE);
}
/* A boxed legend: a square of each colour and its label, one entry a line. (x, y) is the
   corner named by align (TEXT_LEFT/CENTER/RIGHT with TEXT_TOP/MIDDLE/BASELINE, the
   last meaning the bottom edge). */
PNG_FN void canvas_legend(canvas *c, int x, int y, int n, const char *const labels[], const unsigned char rgb[][3], int align) {
    static const unsigned char bg[3] = {255, 255, 255}, border[3] = {190, 190, 190};
    int i, w = 0, h = 6 + 12 * n, pad = 5;
    for (i = 0; i < n; ++i) { int tw = canvas_text_width(labels[i], 1); if (tw > w) w = tw; }
    w += 2 * pad + 12;
    if ((align & 3) == TEXT_CENTER) x -= w / 2; else if ((align & 3) == TEXT_RIGHT) x -= w;
    if ((align & 12) == TEXT_MIDDLE) y -= h / 2; else if ((align & 12) == TEXT_BASELINE) y -= h;
    canvas_rect(c, x, y, x + w, y + h, border);
    canvas_rect(c, x + 1, y + 1, x + w - 1, y + h - 1, bg);
    for (i = 0; i < n; ++i) {
        int ty = y + 4 + 12 * i;
        canvas_rect(c, x + pad, ty, x + pad + 8, ty + 8, rgb[i]);
        canvas_text(c, x + pad + 12, ty + 1, labels[i], 1, png__ink, TEXT_LEFT | TEXT_TOP);
    }
}

/* ---- PNG file -------------------------------------------------------------------- */

static unsigned long png__crc_table[256];
PNG_FN void png__crc_init(void) {
    unsigned long c; int n, k;
    for (n = 0; n < 256; n++) {
        c = (unsigned long)n;
        for (k = 0; k < 8; k++) c = c & 1 ? 0xedb88320UL ^ (c >> 1) : c >> 1;
        png__crc_table[n] = c;
    }
}
PNG_FN unsigned long png__crc(unsigned long crc, const unsigned char *b, size_t n) {
    size_t i; crc ^= 0xffffffffUL;
    for (i = 0; i < n; i++) crc = png__crc_table[(crc ^ b[i]) & 0xff] ^ (crc >> 8);
    return crc ^ 0xffffffffUL;
}
static void png__u32(unsigned char *p, unsigned long v) {
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16); p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}
PNG_FN void png__chunk(FILE *f, const char *type, const unsigned char *data, size_t n) {
    unsigned char hdr[8]; unsigned long crc;
    png__u32(hdr, (unsigned long)n); memcpy(hdr + 4, type, 4);
    fwrite(hdr, 1, 8, f);
    if (n) fwrite(data, 1, n, f);
    crc = png__crc(0, hdr + 4, 4); crc = png__crc(crc, data, n);
    png__u32(hdr, crc); fwrite(hdr, 1, 4, f);
}
/* deflate with the fixed Huffman code (RFC 1951, 3.2.6), bits written LSB first */
typedef struct png__bits { unsigned char *p; size_t n; unsigned long acc; int nbits; } png__bits;
static void png__put(png__bits *b, unsigned long v, int n) {   /* n bits of v, LSB first */
    b->acc |= v << b->nbits; b->nbits += n;
    while (b->nbits >= 8) { b->p[b->n++] = (unsigned char)b->acc; b->acc >>= 8; b->nbits -= 8; }
}
static void png__huff(png__bits *b, unsigned code, int len) {  /* Huffman codes go MSB first */
    unsigned r = 0; int i;
    for (i = 0; i < len; ++i) r |= ((code >> i) & 1u) << (len - 1 - i);
    png__put(b, r, len);
}
static void png__lit(png__bits *b, int c) {
    if (c < 144) png__huff(b, 0x30u + (unsigned)c, 8);
    else if (c < 256) png__huff(b, 0x190u + (unsigned)(c - 144), 9);
    else if (c < 280) png__huff(b, (unsigned)(c - 256), 7);
    else png__huff(b, 0xc0u + (unsigned)(c - 280), 8);
}
static void png__match(png__bits *b, int len, int dist) {
    static const int lbase[29] = {3,4,5,6,7,8,9,10,11,13,15,17,19,23,27,31,35,43,51,59,67,83,99,115,131,163,195,227,258};
    static const int lext[29] = {0,0,0,0,0,0,0,0,1,1,1,1,2,2,2,2,3,3,3,3,4,4,4,4,5,5,5,5,0};
    static const int dbase[30] = {1,2,3,4,5,7,9,13,17,25,33,49,65,97,129,193,257,385,513,769,1025,1537,2049,3073,4097,6145,8193,12289,16385,24577};
    static const int dext[30] = {0,0,0,0,1,1,2,2,3,3,4,4,5,5,6,6,7,7,8,8,9,9,10,10,11,11,12,12,13,13};
    int i = 28, j = 29;
    while (lbase[i] > len) --i;
    png__lit(b, 257 + i); png__put(b, (unsigned long)(len - lbase[i]), lext[i]);
    while (dbase[j] > dist) --j;
    png__huff(b, (unsigned)j, 5); png__put(b, (unsigned long)(dist - dbase[j]), dext[j]);
}
/* Returns 0 on success. */
PNG_FN int png_write(const char *path, const canvas *c) {
    size_t row = (size_t)c->w * 3 + 1, raw_n = row * c->h, i, y;
    unsigned char *raw = (unsigned char *)malloc(raw_n), ihdr[13];
    png__bits b; unsigned long a = 1, s2 = 0; FILE *f;
    b.p = (unsigned char *)malloc(raw_n + raw_n / 4 + 64); b.n = 0; b.acc = 0; b.nbits = 0;
    if (!raw || !b.p) { free(raw); free(b.p); return 1; }
    png__crc_init();
    for (y = 0; y < (size_t)c->h; ++y) { raw[y * row] = 0; memcpy(raw + y * row + 1, c->px + y * (row - 1), row - 1); }
    b.p[b.n++] = 0x78; b.p[b.n++] = 0x01;        /* zlib header */
    png__put(&b, 1, 1); png__put(&b, 1, 2);      /* one final block, fixed Huffman */
    for (i = 0; i < raw_n;) {
        size_t best = 0, bd = 0, cand[2]; int q;
        cand[0] = 3; cand[1] = row;               /* one pixel back, one row up */
        for (q = 0; q < 2; ++q) {
            size_t d = cand[q], len = 0;
            if (d > i || d > 32768) continue;
            while (len < 258 && i + len < raw_n && raw[i + len] == raw[i + len - d]) ++len;
            if (len > best) { best = len; bd = d; }
        }
        if (best >= 3) { png__match(&b, (int)best, (int)bd); i += best; }
        else { png__lit(&b, raw[i]); ++i; }
    }
    png__lit(&b, 256);                           /* end of block */
    if (b.nbits) png__put(&b, 0, 8 - b.nbits);
    for (i = 0; i < raw_n; ++i) { a = (a + raw[i]) % 65521; s2 = (s2 + a) % 65521; }
    png__u32(b.p + b.n, (s2 << 16) | a); b.n += 4;
    png__u32(ihdr, (unsigned long)c->w); png__u32(ihdr + 4, (unsigned long)c->h);
    ihdr[8] = 8; ihdr[9] = 2; ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0;
    f = fopen(path, "wb");
    if (!f) { free(raw); free(b.p); return 1; }
    fwrite("\211PNG\r\n\032\n", 1, 8, f);
    png__chunk(f, "IHDR", ihdr, 13);
    png__chunk(f, "IDAT", b.p, b.n);
    png__chunk(f, "IEND", NULL, 0);
    free(raw); free(b.p);
    return fclose(f) != 0;
}
#endif
