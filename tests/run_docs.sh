#!/usr/bin/env bash
# Docs that cannot rot: every ```c block of README.md and the quick start in the
# header's top comment are compiled (-Werror) and run.
set -u
cd "$(dirname "$0")/.."
B=build/tests/docs
mkdir -p "$B"
rm -f "$B"/readme_*.c
awk -v dir="$B" '
    /^```c$/ { n++; f = sprintf("%s/readme_%d.c", dir, n); inblk = 1; next }
    /^```/   { inblk = 0; next }
    inblk    { print > f }' README.md
# the header quick start: the indented block between QUICK START and WHAT A FLOW IS
awk '/^   QUICK START/ { on = 1; next } /^   WHAT A FLOW IS/ { on = 0 } on' nflow.h | sed 's/^       //' > "$B/header_quickstart.c"
for src in "$B"/readme_*.c "$B/header_quickstart.c"; do
    [ -f "$src" ] || continue
    name=$(basename "$src" .c)
    if [ "$(grep -c 'main' "$src")" -eq 0 ]; then echo "FAIL doc_${name}_has_main"; continue; fi
    cp nflow.h "$B/"
    if gcc -std=c99 -O2 -Wall -Wextra -pedantic -Werror -I"$B" "$src" -o "$B/$name" -lm >"$B/$name.log" 2>&1 \
       && g++ -std=c++11 -O1 -Wall -Wextra -Werror -I"$B" -x c++ "$src" -o "$B/${name}_cxx" >>"$B/$name.log" 2>&1; then
        echo "ok doc_${name}_compiles_as_c_and_cxx"
    else
        echo "FAIL doc_${name}_compiles_as_c_and_cxx"; head -20 "$B/$name.log" | sed 's/^/#   /'; continue
    fi
    if timeout 120 "$B/$name" >"$B/$name.out" 2>&1; then echo "ok doc_${name}_runs"; else echo "FAIL doc_${name}_runs"; tail -5 "$B/$name.out" | sed 's/^/#   /'; fi
done
