/* png.h - a tiny RGB canvas and PNG writer for the nflow examples (no dependency).
   The PNG's deflate stream uses the fixed Huffman code and only two match distances,
   one pixel back and one row up: plain, but flat plot areas shrink a hundredfold.
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

/* A plotting panel: a square region of the canvas mapped to a data box. */
typedef struct panel { int x0, y0, size; double lo, hi; } panel;
PNG_FN int panel_px(const panel *p, double v) { return p->x0 + (int)((v - p->lo) / (p->hi - p->lo) * p->size); }
PNG_FN int panel_py(const panel *p, double v) { return p->y0 + p->size - 1 - (int)((v - p->lo) / (p->hi - p->lo) * p->size); }
PNG_FN void panel_frame(canvas *c, const panel *p) {
    static const unsigned char white[3] = {255, 255, 255}, gray[3] = {200, 200, 200};
    canvas_rect(c, p->x0 - 1, p->y0 - 1, p->x0 + p->size + 1, p->y0 + p->size + 1, gray);
    canvas_rect(c, p->x0, p->y0, p->x0 + p->size, p->y0 + p->size, white);
}
/* scatter of n 2-D points (row-major doubles) */
PNG_FN void panel_scatter(canvas *c, const panel *p, const double *xy, size_t n, const unsigned char rgb[3], double a) {
    size_t i;
    for (i = 0; i < n; ++i) {
        int x = panel_px(p, xy[2 * i]), y = panel_py(p, xy[2 * i + 1]);
        if (x < p->x0 || x >= p->x0 + p->size || y < p->y0 || y >= p->y0 + p->size) continue;
        canvas_blend(c, x, y, rgb, a);
        canvas_blend(c, x + 1, y, rgb, a * 0.5); canvas_blend(c, x, y + 1, rgb, a * 0.5);
    }
}
/* heat map of a size x size grid of values in [0, 1], row 0 at the top */
PNG_FN void panel_heat(canvas *c, const panel *p, const double *v) {
    int i, j; unsigned char rgb[3];
    for (i = 0; i < p->size; ++i) for (j = 0; j < p->size; ++j) {
        colormap(v[(size_t)i * p->size + j], rgb);
        canvas_blend(c, p->x0 + j, p->y0 + i, rgb, 1);
    }
}
#endif
