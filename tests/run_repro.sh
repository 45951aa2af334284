#!/usr/bin/env bash
# Every bug the API fuzzer found has a program in tests/fuzz/repro/ that exits 0 once it
# is fixed (1 while the bug is there): built with sanitizers, each one is a check.
set -u
cd "$(dirname "$0")/.."
B=build/tests/repro
mkdir -p "$B"
build_one() {
    rm -f "$B/$(basename "$1" .c)"
    gcc -std=c99 -O0 -g -Wall -Wextra -pedantic -Werror -fsanitize=address,undefined -fno-sanitize-recover=all \
        "$1" -o "$B/$(basename "$1" .c)" -lm >"$B/$(basename "$1" .c).log" 2>&1
}
export -f build_one; export B
ls tests/fuzz/repro/*.c | xargs -P 2 -I{} bash -c 'build_one {}'
for src in tests/fuzz/repro/*.c; do
    n=$(basename "$src" .c)
    if [ ! -x "$B/$n" ]; then echo "FAIL repro_${n}_builds"; sed 's/^/#   /' "$B/$n.log" | head -10; continue; fi
    if (cd "$B" && ASAN_OPTIONS=detect_leaks=1 timeout 300 "./$n") >>"$B/$n.log" 2>&1; then echo "ok repro_$n"
    else echo "FAIL repro_$n"; sed 's/^/#   /' "$B/$n.log" | tail -10; fi
done
