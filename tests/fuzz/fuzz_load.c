/* libFuzzer target for the model loader: any bytes must give an error or a usable
   flow, never a crash, a read out of bounds, a leak or a hang.
   clang -fsanitize=fuzzer,address,undefined tests/fuzz/fuzz_load.c -lm */
#define NFLOW_IMPLEMENTATION
#include "../../nflow.h"
#include <stdlib.h>
#include <string.h>

static void load_and_use(const uint8_t *data, size_t size) {
    nf_flow *f = NULL, *g = NULL; nf_flow_desc d; nf_domain dom[16]; size_t need; void *mem = NULL;
    /* the no-heap path (description, your memory, load_into) must agree with nf_flow_load */
    if (nf_flow_load_desc(data, size, &d, dom, 16) == NF_OK && nf_flow_size(&d, &need) == NF_OK && need < (1u << 24)
        && (mem = malloc(need)) != NULL && nf_flow_init(&g, &d, mem, need) == NF_OK && nf_flow_load_into(g, data, size) != NF_OK)
        __builtin_trap();
    if (nf_flow_load(&f, data, size) == NF_OK) {
        /* a loaded flow must work: evaluate and sample a few rows */
        nf_real y[4 * 8], lp[4]; nf_rng r; int D = nf_flow_dim(f), i;
        if (D <= 8) {
            nf_rng_seed(&r, 1);
            for (i = 0; i < 4 * D; ++i) y[i] = (nf_real)(i % 5) - 2;
            if (nf_flow_log_prob(f, y, 4, lp) == NF_OK && g) {   /* both loaders: the same densities */
                nf_real lg[4];
                if (nf_flow_log_prob(g, y, 4, lg) != NF_OK || memcmp(lp, lg, sizeof lp) != 0) __builtin_trap();
            }
            (void)nf_flow_sample(f, &r, 4, y, lp);
        }
        nf_flow_destroy(f);
    }
    free(mem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    load_and_use(data, size);
    /* Random bytes almost never carry a valid CRC-32, which would hide the parser
       behind the checksum. So also load a copy whose size and checksum fields are
       repaired: the architecture and value checks then meet arbitrary input. */
    if (size >= 28) {
        uint8_t *c = (uint8_t *)malloc(size); uint32_t crc; int i;
        memcpy(c, data, size);
        for (i = 0; i < 8; ++i) c[16 + i] = (uint8_t)((uint64_t)size >> (8 * i));
        crc = nf_crc32(0, c, size - 4);
        for (i = 0; i < 4; ++i) c[size - 4 + i] = (uint8_t)(crc >> (8 * i));
        load_and_use(c, size);
        free(c);
    }
    return 0;
}
