/* png_check: reads PNG files as a viewer would and reports on them, for
   tests/run_pictures.sh (a C decoder, so the suite needs nothing but a compiler).

   png_check FILE...    one line per file:
                          "png FILE W H COLOURS NONBG_PERMILLE" when every chunk's CRC,
                          the zlib stream (Adler-32 included) and the filters decode;
                          COLOURS counts distinct RGB values, NONBG_PERMILLE the pixels
                          (per thousand) not of the most common colour, the background;
                          "bad FILE: reason" otherwise (exit status 1).
   png_check --self-test  checks examples/png.h (font, text placement, ticks, a written
                          picture decoded back pixel for pixel, a damaged CRC refused);
                          prints "ok name" / "FAIL name".

   Reads 8-bit gray, gray+alpha, RGB and RGBA, not interlaced: any deflate stream
   (stored, fixed or dynamic Huffman blocks), filters 0-4. Alpha is ignored. */
#include "../examples/png.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct image { int w, h; unsigned char *rgb; } image;

static unsigned long be32(const unsigned char *p) {
    return (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 | (unsigned long)p[2] << 8 | p[3];
}

/* ---- inflate (RFC 1951) ---- */
typedef struct inflater {
    const unsigned char *in; size_t n, pos; unsigned long bits; int nbits;
    unsigned char *out; size_t cap, len, max; const char *err;   /* max: the most output allowed */
} inflater;
typedef struct huffman { short count[16], symbol[320]; } huffman;   /* canonical code: codes per length, symbols by code */

static int need_bits(inflater *s, int n) {   /* the next n bits, LSB first; -1 past the end */
    unsigned long v;
    while (s->nbits < n) {
        if (s->pos >= s->n) { s->err = "deflate stream ends early"; return -1; }
        s->bits |= (unsigned long)s->in[s->pos++] << s->nbits; s->nbits += 8;
    }
    v = s->bits & ((1UL << n) - 1); s->bits >>= n; s->nbits -= n;
    return (int)v;
}
/* Builds the code from code lengths; 0 if the lengths over-subscribe the code. */
static int huffman_build(huffman *h, const unsigned char *len, int n) {
    short offs[16]; int i, left = 1;
    memset(h->count, 0, sizeof h->count);
    for (i = 0; i < n; ++i) h->count[len[i]]++;
    h->count[0] = 0;
    for (i = 1; i < 16; ++i) { left = 2 * left - h->count[i]; if (left < 0) return 0; }
    offs[1] = 0;
    for (i = 1; i < 15; ++i) offs[i + 1] = (short)(offs[i] + h->count[i]);
    for (i = 0; i < n; ++i) if (len[i]) h->symbol[offs[len[i]]++] = (short)i;
    return 1;
}
/* one symbol: read a bit at a time, walking the canonical code length by length */
static int huffman_decode(inflater *s, const huffman *h) {
    int code = 0, first = 0, index = 0, l;
    for (l = 1; l < 16; ++l) {
        int b = need_bits(s, 1), count = h->count[l];
        if (b < 0) return -1;
        code |= b;
        if (code - first < count) return h->symbol[index + code - first];
        index += count; first = (first + count) << 1; code <<= 1;
    }
    s->err = "invalid Huffman code"; return -1;
}
static int put_byte(inflater *s, unsigned char b) {
    if (s->len == s->max) { s->err = "more pixel data than the image holds"; return 0; }
    if (s->len == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 65536; unsigned char *p = (unsigned char *)realloc(s->out, cap);
        if (!p) { s->err = "out of memory"; return 0; }
        s->out = p; s->cap = cap;
    }
    s->out[s->len++] = b;
    return 1;
}
static int inflate_codes(inflater *s, const huffman *lit, const huffman *dist) {
    static const short lbase[29] = {3,4,5,6,7,8,9,10,11,13,15,17,19,23,27,31,35,43,51,59,67,83,99,115,131,163,195,227,258};
    static const short lextra[29] = {0,0,0,0,0,0,0,0,1,1,1,1,2,2,2,2,3,3,3,3,4,4,4,4,5,5,5,5,0};
    static const short dbase[30] = {1,2,3,4,5,7,9,13,17,25,33,49,65,97,129,193,257,385,513,769,1025,1537,2049,3073,4097,6145,8193,12289,16385,24577};
    static const short dextra[30] = {0,0,0,0,1,1,2,2,3,3,4,4,5,5,6,6,7,7,8,8,9,9,10,10,11,11,12,12,13,13};
    for (;;) {
        int sym = huffman_decode(s, lit), len, d, e;
        if (sym < 0) return 0;
        if (sym < 256) { if (!put_byte(s, (unsigned char)sym)) return 0; continue; }
        if (sym == 256) return 1;
        sym -= 257;
        if (sym >= 29) { s->err = "bad length symbol"; return 0; }
        if ((e = need_bits(s, lextra[sym])) < 0) return 0;
        len = lbase[sym] + e;
        if ((sym = huffman_decode(s, dist)) < 0) return 0;
        if (sym >= 30) { s->err = "bad distance symbol"; return 0; }
        if ((e = need_bits(s, dextra[sym])) < 0) return 0;
        d = dbase[sym] + e;
        if ((size_t)d > s->len) { s->err = "distance reaches before the start"; return 0; }
        while (len--) if (!put_byte(s, s->out[s->len - d])) return 0;
    }
}
static int inflate_fixed(inflater *s) {
    unsigned char len[320]; huffman lit, dist; int i;
    for (i = 0; i < 144; ++i) len[i] = 8;
    for (; i < 256; ++i) len[i] = 9;
    for (; i < 280; ++i) len[i] = 7;
    for (; i < 288; ++i) len[i] = 8;
    huffman_build(&lit, len, 288);
    for (i = 0; i < 30; ++i) len[i] = 5;
    huffman_build(&dist, len, 30);
    return inflate_codes(s, &lit, &dist);
}
static int inflate_dynamic(inflater *s) {
    static const unsigned char order[19] = {16,17,18,0,8,7,9,6,10,5,11,4,12,3,13,2,14,1,15};
    unsigned char len[320]; huffman lencode, lit, dist; int nlen, ndist, ncode, i, n;
    if ((nlen = need_bits(s, 5)) < 0 || (ndist = need_bits(s, 5)) < 0 || (ncode = need_bits(s, 4)) < 0) return 0;
    nlen += 257; ndist += 1; ncode += 4;
    if (nlen > 286 || ndist > 30) { s->err = "bad code counts"; return 0; }
    memset(len, 0, sizeof len);
    for (i = 0; i < ncode; ++i) { int b = need_bits(s, 3); if (b < 0) return 0; len[order[i]] = (unsigned char)b; }
    if (!huffman_build(&lencode, len, 19)) { s->err = "bad code-length code"; return 0; }
    for (n = 0; n < nlen + ndist;) {
        int sym = huffman_decode(s, &lencode), rep, val = 0;
        if (sym < 0) return 0;
        if (sym < 16) { len[n++] = (unsigned char)sym; continue; }
        if (sym == 16) { if (n == 0) { s->err = "repeat with nothing before"; return 0; } val = len[n - 1]; rep = need_bits(s, 2); if (rep < 0) return 0; rep += 3; }
        else if (sym == 17) { rep = need_bits(s, 3); if (rep < 0) return 0; rep += 3; }
        else { rep = need_bits(s, 7); if (rep < 0) return 0; rep += 11; }
        if (n + rep > nlen + ndist) { s->err = "code lengths overrun"; return 0; }
        while (rep--) len[n++] = (unsigned char)val;
    }
    if (!huffman_build(&lit, len, nlen) || !huffman_build(&dist, len + nlen, ndist)) { s->err = "bad literal or distance code"; return 0; }
    return inflate_codes(s, &lit, &dist);
}
static int inflate_stored(inflater *s) {
    unsigned len, nlen;
    s->bits = 0; s->nbits = 0;   /* to the byte boundary */
    if (s->pos + 4 > s->n) { s->err = "stored block header cut"; return 0; }
    len = s->in[s->pos] | (unsigned)s->in[s->pos + 1] << 8; nlen = s->in[s->pos + 2] | (unsigned)s->in[s->pos + 3] << 8;
    s->pos += 4;
    if ((len ^ 0xffffu) != nlen) { s->err = "stored block length check"; return 0; }
    if (s->pos + len > s->n) { s->err = "stored block cut"; return 0; }
    while (len--) if (!put_byte(s, s->in[s->pos++])) return 0;
    return 1;
}
/* a zlib stream: header, deflate blocks, Adler-32 of the output */
static int zlib_inflate(inflater *s) {
    int last, type; unsigned long a = 1, b = 0; size_t i;
    if (s->n < 6 || (s->in[0] & 15) != 8 || ((unsigned)s->in[0] << 8 | s->in[1]) % 31 != 0 || (s->in[1] & 32)) { s->err = "bad zlib header"; return 0; }
    s->pos = 2;
    do {
        if ((last = need_bits(s, 1)) < 0 || (type = need_bits(s, 2)) < 0) return 0;
        if (type == 0) { if (!inflate_stored(s)) return 0; }
        else if (type == 1) { if (!inflate_fixed(s)) return 0; }
        else if (type == 2) { if (!inflate_dynamic(s)) return 0; }
        else { s->err = "bad block type"; return 0; }
    } while (!last);
    if (s->pos + 4 > s->n) { s->err = "no Adler-32"; return 0; }
    for (i = 0; i < s->len; ++i) { a = (a + s->out[i]) % 65521; b = (b + a) % 65521; }
    if (be32(s->in + s->pos) != (b << 16 | a)) { s->err = "Adler-32 mismatch"; return 0; }
    return 1;
}

/* ---- PNG ---- */
static int paeth(int a, int b, int c) {
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}
/* Decodes a PNG held in memory; returns NULL or the reason it is refused. */
static const char *png_decode(const unsigned char *d, size_t n, image *im) {
    static const int channels[7] = {1, 0, 3, 0, 2, 0, 4};
    unsigned char *idat = NULL; size_t idat_n = 0, pos = 8, row, y, x; int ct = -1, bpp = 0, seen_end = 0, k;
    inflater s; const char *err = NULL;
    im->rgb = NULL; im->w = im->h = 0;
    if (n < 8 || memcmp(d, "\211PNG\r\n\032\n", 8) != 0) return "no PNG signature";
    png__crc_init();
    while (pos < n && !seen_end) {
        unsigned long len; const unsigned char *type;
        if (pos + 12 > n) { err = "chunk header cut"; goto out; }
        len = be32(d + pos); type = d + pos + 4;
        if (len > n - pos - 12) { err = "chunk runs past the end of the file"; goto out; }
        if (png__crc(0, type, len + 4) != be32(d + pos + 8 + len)) { err = "chunk CRC mismatch"; goto out; }
        if (pos == 8 && memcmp(type, "IHDR", 4) != 0) { err = "first chunk is not IHDR"; goto out; }
        if (!memcmp(type, "IHDR", 4)) {
            const unsigned char *h = type + 4;
            if (len != 13) { err = "IHDR length"; goto out; }
            im->w = (int)be32(h); im->h = (int)be32(h + 4); ct = h[9];
            if (im->w <= 0 || im->h <= 0 || im->w > 20000 || im->h > 20000) { err = "implausible size"; goto out; }
            if (h[8] != 8 || ct > 6 || !channels[ct] || h[12] != 0) { err = "unsupported format (8-bit gray/RGB(A), not interlaced only)"; goto out; }
            bpp = channels[ct];
        } else if (!memcmp(type, "IDAT", 4)) {
            unsigned char *p = (unsigned char *)realloc(idat, idat_n + len + 1);
            if (!p) { err = "out of memory"; goto out; }
            idat = p; memcpy(idat + idat_n, type + 4, len); idat_n += len;
        } else if (!memcmp(type, "IEND", 4)) seen_end = 1;
        else if (!(type[0] & 32)) { err = "unknown critical chunk"; goto out; }
        pos += 12 + len;
    }
    if (!seen_end) { err = "no IEND chunk"; goto out; }
    if (pos != n) { err = "bytes after IEND"; goto out; }
    if (!idat_n) { err = "no IDAT chunk"; goto out; }
    row = (size_t)im->w * bpp;
    memset(&s, 0, sizeof s); s.in = idat; s.n = idat_n; s.max = (row + 1) * im->h;
    if (!zlib_inflate(&s)) { err = s.err; free(s.out); goto out; }
    if (s.len != (row + 1) * im->h) { err = "decompressed size does not match the image size"; free(s.out); goto out; }
    for (y = 0; y < (size_t)im->h; ++y) {   /* undo the filters in place */
        unsigned char *r = s.out + y * (row + 1) + 1, *up = y ? r - row - 1 : NULL; int f = r[-1];
        for (x = 0; x < row; ++x) {
            int a = x >= (size_t)bpp ? r[x - bpp] : 0, b = up ? up[x] : 0, c = up && x >= (size_t)bpp ? up[x - bpp] : 0;
            switch (f) {
            case 0: break;
            case 1: r[x] = (unsigned char)(r[x] + a); break;
            case 2: r[x] = (unsigned char)(r[x] + b); break;
            case 3: r[x] = (unsigned char)(r[x] + (a + b) / 2); break;
            case 4: r[x] = (unsigned char)(r[x] + paeth(a, b, c)); break;
            default: err = "bad filter type"; free(s.out); goto out;
            }
        }
    }
    im->rgb = (unsigned char *)malloc((size_t)im->w * im->h * 3);
    if (!im->rgb) { err = "out of memory"; free(s.out); goto out; }
    for (y = 0; y < (size_t)im->h; ++y) for (x = 0; x < (size_t)im->w; ++x) {
        const unsigned char *p = s.out + y * (row + 1) + 1 + x * bpp; unsigned char *q = im->rgb + (y * im->w + x) * 3;
        for (k = 0; k < 3; ++k) q[k] = bpp >= 3 ? p[k] : p[0];
    }
    free(s.out);
out:
    free(idat);
    return err;
}
static unsigned char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb"); unsigned char *d = NULL; long m;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (m = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 && (d = (unsigned char *)malloc((size_t)m + 1))) {
        *n = fread(d, 1, (size_t)m, f);
        if (*n != (size_t)m) { free(d); d = NULL; }
    }
    fclose(f);
    return d;
}

static int cmp_ulong(const void *a, const void *b) {
    unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;
    return x < y ? -1 : x > y;
}
/* distinct colours and the share (per thousand) of pixels not of the most common one */
static void colour_stats(const image *im, long *colours, long *nonbg_permille) {
    size_t n = (size_t)im->w * im->h, i, run = 0, best = 0; unsigned long *v = (unsigned long *)malloc(sizeof(unsigned long) * n);
    *colours = 0; *nonbg_permille = 0;
    if (!v) return;
    for (i = 0; i < n; ++i) v[i] = (unsigned long)im->rgb[3 * i] << 16 | (unsigned long)im->rgb[3 * i + 1] << 8 | im->rgb[3 * i + 2];
    qsort(v, n, sizeof *v, cmp_ulong);
    for (i = 0; i < n; ++i) {
        if (i == 0 || v[i] != v[i - 1]) { ++*colours; run = 0; }
        if (++run > best) best = run;
    }
    *nonbg_permille = (long)((n - best) * 1000 / n);
    free(v);
}

/* ---- self-test of examples/png.h ---- */
static int failures;
static void check(int cond, const char *name) { printf("%s %s\n", cond ? "ok" : "FAIL", name); if (!cond) failures++; }
/* the bounding box of pixels that differ from the background (gray 255) */
static void ink_box(const canvas *c, int *x0, int *y0, int *x1, int *y1) {
    int x, y; *x0 = *y0 = 1 << 30; *x1 = *y1 = -1;
    for (y = 0; y < c->h; ++y) for (x = 0; x < c->w; ++x) {
        const unsigned char *p = c->px + ((size_t)y * c->w + x) * 3;
        if (p[0] == 255 && p[1] == 255 && p[2] == 255) continue;
        if (x < *x0) *x0 = x;
        if (y < *y0) *y0 = y;
        if (x > *x1) *x1 = x;
        if (y > *y1) *y1 = y;
    }
}
static int self_test(const char *dir) {
    static const unsigned char ink[3] = {0, 0, 0}, red[3] = {200, 30, 30};
    char path[512]; int i, j, ok, x0, y0, x1, y1; double t[PLOT_MAX_TICKS]; int dec, n;
    /* the font: every printable character but the space has ink, inside 5 bits, and no two are alike */
    ok = png__font[0] == 0;
    for (i = 1; i < 95; ++i) {
        unsigned long long g = png__font[i];
        if (!g) ok = 0;
        for (j = 0; j < 8; ++j) if ((g >> (8 * j)) & 0xe0) ok = 0;
        for (j = 0; j < i; ++j) if (png__font[j] == g) ok = 0;
    }
    check(ok, "png_h_font_has_95_distinct_glyphs");
    /* text lands where its alignment says, at any scale, turned or not */
    ok = 1;
    for (i = 1; i <= 3; ++i) {
        canvas c = canvas_new(300, 300, 255); int w = canvas_text_width("Hg", i);
        canvas_text(&c, 150, 100, "Hg", i, ink, TEXT_RIGHT | TEXT_BASELINE);   /* H: cap height, g: descender */
        ink_box(&c, &x0, &y0, &x1, &y1);
        if (x1 != 149 || x0 != 150 - w || y1 != 100 + i - 1 || y0 != 100 - 7 * i) ok = 0;
        memset(c.px, 255, (size_t)300 * 300 * 3);
        canvas_text(&c, 100, 200, "HH", i, ink, TEXT_UP | TEXT_LEFT | TEXT_TOP);   /* reads upwards from y = 200 */
        ink_box(&c, &x0, &y0, &x1, &y1);
        if (x0 != 100 || x1 != 100 + 7 * i - 1 || y1 != 199 || y0 != 200 - w) ok = 0;
        canvas_free(&c);
    }
    check(ok, "png_h_text_placement");
    /* ticks: 1-2-5 steps inside the range, labels with the decimals they need */
    n = plot_ticks(-2.5, 2.5, 5, t, &dec);
    check(n == 5 && t[0] == -2 && t[4] == 2 && dec == 0, "png_h_ticks_integers");
    n = plot_ticks(0, 0.55, 6, t, &dec);
    check(n == 6 && fabs(t[5] - 0.5) < 1e-12 && dec == 1, "png_h_ticks_decimals");
    n = plot_ticks(-0.05, 0.3, 3, t, &dec);   /* the first tick is ceil(-0.25) * 0.2, which is -0 */
    check(n == 2 && t[0] == 0 && !signbit(t[0]) && dec == 1, "png_h_ticks_zero_is_not_negative");
    n = plot_ticks(12, 1480, 4, t, &dec);
    check(n == 2 && t[0] == 500 && t[1] == 1000, "png_h_ticks_hundreds");
    /* a picture written by png_write decodes back to the same pixels, and a damaged CRC is refused */
    {
        canvas c = canvas_new(97, 61, 245); plot p = plot_make(20, 8, 70, 40, 0, 1, 0, 1); unsigned char *d; size_t nd = 0; image im;
        for (i = 0; i < 97 * 61 * 3; ++i) if (i % 7 == 0) c.px[i] = (unsigned char)(i * 31);
        plot_frame(&c, &p, NULL); plot_line(&c, &p, -1, 0, 2, 1, red, 1); plot_title(&c, &p, "round trip", 1, NULL);
        snprintf(path, sizeof path, "%s/png_check_roundtrip.png", dir);
        ok = png_write(path, &c) == 0 && (d = read_file(path, &nd)) != NULL;
        if (ok) {
            const char *e = png_decode(d, nd, &im);
            ok = !e && im.w == 97 && im.h == 61 && !memcmp(im.rgb, c.px, (size_t)97 * 61 * 3);
            free(im.rgb);
            check(ok, "png_h_writes_what_it_drew");
            d[8 + 8 + 5] ^= 1;   /* a bit of IHDR's height */
            e = png_decode(d, nd, &im); free(im.rgb);
            check(e && strstr(e, "CRC"), "png_check_refuses_a_damaged_crc");
            free(d);
        } else check(0, "png_h_writes_what_it_drew");
        canvas_free(&c);
    }
    return failures != 0;
}

int main(int argc, char **argv) {
    int i, status = 0;
    if (argc >= 2 && !strcmp(argv[1], "--self-test")) return self_test(argc >= 3 ? argv[2] : ".");
    if (argc < 2) { fprintf(stderr, "usage: %s FILE... | --self-test [DIR]\n", argv[0]); return 2; }
    for (i = 1; i < argc; ++i) {
        size_t n = 0; unsigned char *d = read_file(argv[i], &n); image im; const char *e; long colours, nonbg;
        if (!d) { printf("bad %s: cannot read\n", argv[i]); status = 1; continue; }
        e = png_decode(d, n, &im);
        if (e) { printf("bad %s: %s\n", argv[i], e); status = 1; }
        else {
            colour_stats(&im, &colours, &nonbg);
            printf("png %s %d %d %ld %ld\n", argv[i], im.w, im.h, colours, nonbg);
        }
        free(im.rgb); free(d);
    }
    return status;
}
