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
# issue 18 item 11: the training curves start at epoch 1 with the first epoch's real loss
# (they started at "epoch 0, NLL 0": a 1-based epoch stored at its own index)
if awk -F, 'NR == 2 { ok = ($1 == 1 && $2 > 0.5 && $3 > 0.5) } NR > 2 && $2 <= 0 { ok = 0 } END { exit !(ok && NR >= 3) }' "$B/training_curves.csv" 2>/dev/null &&
   grep -q "^epoch   1 .*train NLL *$(awk -F, 'NR == 2 { printf "%.4f", $2 }' "$B/training_curves.csv")" "$B/two_moons.log"; then
    echo "ok example_training_curves_start_at_epoch_1_with_its_loss"
else echo "FAIL example_training_curves_start_at_epoch_1_with_its_loss"; head -3 "$B/training_curves.csv" 2>&1 | sed 's/^/#   /'; fi
# issue 18 item 12: an exported flow compiled against a header of another description
# layout must fail to compile, naming the re-export; against this header it compiles
G=$B/layout_guard; mkdir -p "$G"
sed 's/^#define NF_DESC_LAYOUT [0-9]*/#define NF_DESC_LAYOUT 999/' nflow.h > "$G/nflow.h"
cp "$B/moons_flow.h" "$B/moons_flow.c" "$G/" 2>/dev/null
if gcc -std=c99 -Wall -Wextra -pedantic -Werror -I. -c "$B/moons_flow.c" -o "$G/ok.o" >"$G/ok.log" 2>&1 &&
   ! gcc -std=c99 -I"$G" -c "$G/moons_flow.c" -o "$G/bad.o" >"$G/bad.log" 2>&1 && grep -q 'export it again with this nflow.h' "$G/bad.log"; then
    echo "ok export_refuses_another_description_layout"
else echo "FAIL export_refuses_another_description_layout"; head -5 "$G/ok.log" "$G/bad.log" | sed 's/^/#   /'; fi
