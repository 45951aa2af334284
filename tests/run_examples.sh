#!/usr/bin/env bash
# Builds every example and runs it with small settings (--quick); prints ok/FAIL lines.
set -u
cd "$(dirname "$0")/.."
B=build/tests/examples
mkdir -p "$B"
for src in examples/*.c; do
    name=$(basename "$src" .c)
    if ! gcc -std=c99 -O2 -Wall -Wextra -pedantic -Werror "$src" -o "$B/$name" -lm >"$B/$name.build.log" 2>&1; then
        echo "FAIL example_${name}_builds"; sed 's/^/#   /' "$B/$name.build.log" | head -20; continue
    fi
    echo "ok example_${name}_builds"
    if "$B/$name" --quick --out "$B" >"$B/$name.log" 2>&1; then
        echo "ok example_${name}_runs"
    else
        echo "FAIL example_${name}_runs"; tail -20 "$B/$name.log" | sed 's/^/#   /'
    fi
done
# the demo's pictures are real PNG files
for png in two_moons pushforward training_curves; do
    if [ "$(head -c 8 "$B/$png.png" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]; then
        echo "ok example_writes_${png}_png"; else echo "FAIL example_writes_${png}_png"; fi
done
