#!/usr/bin/env bash
# Builds the loader fuzz target and runs it for FUZZ_SECONDS (default 60) on a seed
# corpus of real model files (float and double). Exit status is libFuzzer's.
set -eu
cd "$(dirname "$0")/../.."
B=build/fuzz
secs=${FUZZ_SECONDS:-60}
mkdir -p "$B/corpus" "$B/crashes"
gcc -std=c99 -O1 tests/fuzz/make_corpus.c -o "$B/make_corpus" -lm
gcc -std=c99 -O1 -DNFLOW_DOUBLE tests/fuzz/make_corpus.c -o "$B/make_corpus_d" -lm
"$B/make_corpus" "$B/corpus"
mkdir -p "$B/corpus_d" && "$B/make_corpus_d" "$B/corpus_d" && for f in "$B"/corpus_d/*; do mv "$f" "$B/corpus/d_$(basename "$f")"; done
clang -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all tests/fuzz/fuzz_load.c -o "$B/fuzz_load" -lm
"$B/fuzz_load" -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$B/crashes/" -print_final_stats=1 "$B/corpus" 2>&1 | tee "$B/fuzz.log" | grep -E "^#[0-9]+.*(DONE|pulse)|stat::number_of_executed_units|ERROR|SUMMARY" || true
status=${PIPESTATUS[0]}
exit "$status"
