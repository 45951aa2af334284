/* All three allocator hooks replaced, as a firmware build does: the implementation must
   still compile warning-free (it once called strtod with <stdlib.h> included only for the
   default malloc, an implicit declaration under -Werror). No libc allocator is named. */
#include <stddef.h>
static unsigned char pool[1 << 16];
static size_t used;
static void *bump(size_t n) {   /* a bump allocator: never frees */
    void *p;
    n = (n + 15u) & ~(size_t)15u;
    if (n > sizeof pool - used) return NULL;
    p = pool + used; used += n;
    return p;
}
#define NF_MALLOC(sz, u) ((void)(u), bump(sz))
#define NF_REALLOC(p, sz, u) ((void)(p), (void)(sz), (void)(u), (void *)NULL)
#define NF_FREE(p, u) ((void)(p), (void)(u))
#define NFLOW_IMPLEMENTATION
#include "../../nflow.h"
int main(void) {
    nf_flow_desc d; nf_flow *f = NULL; nf_real y[2] = {0, 0}, lp;
    nf_result r = nf_flow_desc_realnvp(&d, 2, 2, 8);
    if (r == NF_OK) r = nf_flow_create(&f, &d);
    if (r == NF_OK) r = nf_flow_log_prob(f, y, 1, &lp);
    return r == NF_OK && lp < 0 ? 0 : 1;
}
