/* The implementation compiled alone: must be warning-free in every language mode. */
#define NFLOW_IMPLEMENTATION
#include "../../nflow.h"
