/* nflow's implementation alone in one object, for bench/mcu_size.sh: whatever the linker
   keeps from this object is nflow's code and constants. The feature switches come from
   the command line and must be the same as the firmware's. */
#include <stddef.h>
#ifdef SIZE_TRAIN   /* examples/firmware/train_on_device.c's static-buffer allocator */
void *tod_malloc(size_t n);
void tod_free(void *p);
void *tod_realloc(void *p, size_t n);
#define NF_MALLOC(sz, u) ((void)(u), tod_malloc(sz))
#define NF_REALLOC(p, sz, u) ((void)(u), tod_realloc(p, sz))
#define NF_FREE(p, u) ((void)(u), tod_free(p))
#else               /* inference firmware: no heap at all */
#define NF_MALLOC(sz, u) ((void)(sz), (void)(u), (void *)0)
#define NF_REALLOC(p, sz, u) ((void)(p), (void)(sz), (void)(u), (void *)0)
#define NF_FREE(p, u) ((void)(p), (void)(u))
#endif
#define NFLOW_IMPLEMENTATION
#include "nflow.h"
