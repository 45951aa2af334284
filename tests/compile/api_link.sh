#!/usr/bin/env bash
# For each build configuration: every function the header declares in that configuration
# must be defined. The declarations are read from the preprocessed header, a program
# takes the address of each one, and it must link against the implementation built the
# same way. Prints ok/FAIL lines. Usage: api_link.sh BUILD_DIR
set -u
cd "$(dirname "$0")/../.."
B=${1:-build/tests}/api_link
mkdir -p "$B"
configs=("default:" "double:-DNFLOW_DOUBLE" "no_training:-DNFLOW_NO_TRAINING" "no_stdio:-DNFLOW_NO_STDIO"
         "no_training_no_stdio:-DNFLOW_NO_TRAINING -DNFLOW_NO_STDIO" "double_no_training:-DNFLOW_DOUBLE -DNFLOW_NO_TRAINING"
         "every_switch:-DNFLOW_NO_LU -DNFLOW_NO_MONOTONE -DNFLOW_NO_SPLINE -DNFLOW_NO_AUTOREGRESSIVE -DNFLOW_NO_ACTNORM -DNFLOW_NO_DOMAINS -DNFLOW_NO_CONTEXT -DNFLOW_NO_DIAG_BASE -DNFLOW_NO_LOADER -DNFLOW_NO_IMPORTANCE -DNFLOW_NO_THREADS"
         "every_switch_inference_only:-DNFLOW_NO_LU -DNFLOW_NO_MONOTONE -DNFLOW_NO_SPLINE -DNFLOW_NO_AUTOREGRESSIVE -DNFLOW_NO_ACTNORM -DNFLOW_NO_DOMAINS -DNFLOW_NO_CONTEXT -DNFLOW_NO_DIAG_BASE -DNFLOW_NO_LOADER -DNFLOW_NO_IMPORTANCE -DNFLOW_NO_THREADS -DNFLOW_NO_TRAINING -DNFLOW_NO_STDIO -DNFLOW_ACTIVATIONS=2" "openmp:-fopenmp -DNFLOW_OPENMP")
for c in "${configs[@]}"; do
    name=${c%%:*}; flags=${c#*:}
    printf '#include "nflow.h"\n' > "$B/decl_$name.c"
    # NFDEF expands to extern: collect "extern ... nf_name(" from the preprocessed API half
    fns=$(gcc -std=c99 -E -P -I. $flags "$B/decl_$name.c" | tr '\n' ' ' \
          | grep -oE 'extern [^;{}()]*[^a-zA-Z0-9_]nf_[a-z0-9_]+ *\(' | grep -oE 'nf_[a-z0-9_]+ *\($' | tr -d ' (' | sort -u)
    n=$(echo "$fns" | grep -c .)
    {
        printf '#include "nflow.h"\n#include <stdio.h>\ntypedef void (*any_fn)(void);\nstatic const any_fn fns[] = {\n'
        for f in $fns; do printf '    (any_fn)%s,\n' "$f"; done
        printf '};\nint main(void) {\n    size_t i, k = 0;\n    for (i = 0; i < sizeof fns / sizeof fns[0]; ++i) k += fns[i] != 0;\n'
        printf '    printf("%%lu functions linked\\n", (unsigned long)k);\n    return k == sizeof fns / sizeof fns[0] ? 0 : 1;\n}\n'
    } > "$B/use_$name.c"
    printf '#define NFLOW_IMPLEMENTATION\n#include "nflow.h"\n' > "$B/impl_$name.c"
    if [ "$n" -lt 20 ]; then echo "FAIL api_link_$name (only $n declarations found: the parser is broken)"; continue; fi
    if gcc -std=c99 -Wall -Wextra -pedantic -Werror -I. $flags "$B/use_$name.c" "$B/impl_$name.c" -o "$B/link_$name" -lm >"$B/$name.log" 2>&1 \
       && "$B/link_$name" >>"$B/$name.log" 2>&1; then
        echo "ok api_link_${name} ($n functions declared and defined)"
    else
        echo "FAIL api_link_${name}"; grep -m5 -E 'undefined|error' "$B/$name.log" | sed 's/^/#   /'
    fi
done
