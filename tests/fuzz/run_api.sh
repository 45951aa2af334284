#!/usr/bin/env bash
# Builds the public-API fuzz target (tests/fuzz/fuzz_api.c) and runs it for FUZZ_SECONDS
# (default 60) on a seed corpus (one input per layer kind and per domain kind, and
# conditional flows). The corpus grows in build/fuzz_api/corpus between runs; crashes
# go to build/fuzz_api/crashes/. Exit status is libFuzzer's.
#   FUZZ_SECONDS=600 bash tests/fuzz/run_api.sh
#   FUZZ_DOUBLE=1 ...          fuzz the double build instead
#   NFLOW_FUZZ_KNOWN=a,b ...   report the check classes a, b without stopping (see fuzz_api.c)
# Reproduce one input: build/fuzz_api/fuzz_api FILE (NFLOW_FUZZ_TRACE=1 prints every call).
set -eu
cd "$(dirname "$0")/../.."
B=build/fuzz_api
secs=${FUZZ_SECONDS:-60}
defs=""
[ -n "${FUZZ_DOUBLE:-}" ] && defs="-DNFLOW_DOUBLE"
mkdir -p "$B/seeds" "$B/corpus" "$B/crashes"
gcc -std=c99 -O1 $defs -DFUZZ_API_SEEDS tests/fuzz/fuzz_api.c -o "$B/make_seeds" -lm
"$B/make_seeds" "$B/seeds"
clang -std=c99 -g -O1 $defs -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all tests/fuzz/fuzz_api.c -o "$B/fuzz_api" -lm
"$B/fuzz_api" -max_total_time="$secs" -max_len=2048 -timeout=20 -rss_limit_mb=2048 \
    -artifact_prefix="$B/crashes/" -print_final_stats=1 "$B/corpus" "$B/seeds" 2>&1 | tee "$B/fuzz.log" |
    grep -E "^#[0-9]+.*(DONE|pulse)|stat::|fuzz_api: \[|ERROR|SUMMARY" || true
status=${PIPESTATUS[0]}
exit "$status"
