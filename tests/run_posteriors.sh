#!/usr/bin/env bash
# Inference from a likelihood: the benchmark posteriors' densities against central
# differences (bench/posteriors/check_models.c), a fast subset of the nf_infer benchmark
# (three posteriors, one seed: a verdict of NF_OK must come with an answer within the
# tolerances), and the GW150914 ringdown's physics (tests/test_gw150914.c). ok/FAIL lines.
set -u
cd "$(dirname "$0")/.."
B=build/tests/posteriors
mkdir -p "$B"
W="-std=c99 -O2 -Wall -Wextra -pedantic -Werror"
run() {   # name, command...: counts the program's own ok/FAIL lines, or one line for its status
    local n=$1; shift
    "$@" >"$B/$n.out" 2>&1; local rc=$?
    grep -E '^(ok|FAIL) ' "$B/$n.out" | sed "s/^\(ok\|FAIL\) /\1 ${n}_/"
    grep -q -E '^(ok|FAIL) ' "$B/$n.out" || { [ $rc -eq 0 ] && echo "ok $n" || { echo "FAIL $n (status $rc)"; tail -20 "$B/$n.out" | sed 's/^/#   /'; }; }
    [ $rc -ne 0 ] && grep -q -E '^(ok|FAIL) ' "$B/$n.out" && ! grep -q '^FAIL ' "$B/$n.out" && echo "FAIL $n exited with status $rc"
    return 0
}
for cfg in float double; do
    fl=""; [ $cfg = double ] && fl="-DNFLOW_DOUBLE"
    if gcc $W $fl bench/posteriors/check_models.c -o "$B/check_models_$cfg" -lm >"$B/check_models_$cfg.log" 2>&1; then
        run check_models_$cfg "$B/check_models_$cfg" bench/posteriors/
    else echo "FAIL check_models_${cfg}_builds"; head -20 "$B/check_models_$cfg.log" | sed 's/^/#   /'; fi
done
if gcc -std=c99 -O2 -march=native -Wall -Wextra -Werror -DNFLOW_DOUBLE bench/posteriors/bench_infer.c -o "$B/bench_infer" -lm >"$B/bench_infer.log" 2>&1; then
    if "$B/bench_infer" --quick >"$B/bench_infer.out" 2>&1; then
        echo "ok bench_infer_quick_no_wrong_answer_with_nf_ok"
    else echo "FAIL bench_infer_quick_no_wrong_answer_with_nf_ok"; sed 's/^/#   /' "$B/bench_infer.out"; fi
    grep -E '^[a-z]' "$B/bench_infer.out" | grep -v '^model' | sed 's/^/# /'
else echo "FAIL bench_infer_builds"; head -20 "$B/bench_infer.log" | sed 's/^/#   /'; fi
if gcc $W tests/test_gw150914.c -o "$B/test_gw150914" -lm >"$B/test_gw150914.log" 2>&1; then
    run gw150914 "$B/test_gw150914"
else echo "FAIL test_gw150914_builds"; head -20 "$B/test_gw150914.log" | sed 's/^/#   /'; fi
