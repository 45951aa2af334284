/* Defining only some allocator hooks must stop the build with #error. */
#include <stdlib.h>
#define NF_MALLOC(sz, u) malloc(sz)
#define NFLOW_IMPLEMENTATION
#include "../../nflow.h"
