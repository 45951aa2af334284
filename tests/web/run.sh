#!/usr/bin/env bash
# tests/web/run.sh: the flow lesson (web/) in a real browser (make test-web [QUICK=1]).
#
# Builds the page (web/build.sh) and the same web/lesson.c natively (lesson_native.c),
# then tests/web/run.js opens the page in Debian's headless Chromium through
# puppeteer-core and checks it against the native numbers. Prints `ok NAME` /
# `FAIL NAME` lines and a closing "web: N passed, M failed".
#   --quick   fewer training steps, screenshots into build/web/shots/ (CI: under a minute)
#   default   also writes the screenshots docs/web_lesson.png, web_layers.png, web_readout.png
# Needs: clang lld wasi-libc libclang-rt-14-dev-wasm32 chromium nodejs npm (Debian), and
# puppeteer-core from npm, installed here into tests/web/node_modules (no browser download).
set -u
cd "$(dirname "$0")/../.."
quick=""
[ "${1:-}" = "--quick" ] && quick=--quick
log=$(mktemp)
pass=0; fail=0
ok()   { echo "ok $1${2:+  ($2)}"; pass=$((pass + 1)); }
bad()  { echo "FAIL $1${2:+: $2}"; fail=$((fail + 1)); }
finish() { echo "web: $pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit $?; }

# the page (web/build.sh: -Wall -Wextra -pedantic) and the same lesson natively, side by
# side on two cores. For the comparison, the flags that matter are -ffp-contract=off (as in
# build.sh) and lesson.c's own NFLOW_DOUBLE and kernel tile.
mkdir -p build/web-native
native=build/web-native/lesson_native
nlog=$(mktemp)
trap 'rm -f "$log" "$nlog"' EXIT
nice ${CC:-gcc} -std=c99 -O3 -march=native -ffp-contract=off -Wall -Wextra -pedantic \
    tests/web/lesson_native.c -o "$native" -lm >"$nlog" 2>&1 &
cc_pid=$!
bash web/build.sh >"$log" 2>&1; wasm_rc=$?
wait $cc_pid; cc_rc=$?
if [ $wasm_rc -ne 0 ]; then bad build-wasm "$(tail -5 "$log")"
elif grep -q "warning:" "$log"; then bad build-wasm "$(grep -m3 'warning:' "$log")"
else ok build-wasm "$(tail -1 "$log" | sed 's/^web\/build.sh: //')"; fi
if [ $cc_rc -eq 0 ] && [ ! -s "$nlog" ]; then ok build-native
else bad build-native "$(head -5 "$nlog")"; fi
[ $wasm_rc -eq 0 ] && [ $cc_rc -eq 0 ] || finish

# the browser and its driver
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then bad chromium "no /usr/bin/chromium: apt-get install -y chromium"; finish; fi
if [ ! -f tests/web/node_modules/puppeteer-core/package.json ]; then
    (cd tests/web && npm ci --no-audit --no-fund --loglevel=error) >"$log" 2>&1 \
        || { bad npm "npm ci in tests/web failed: $(tail -3 "$log")"; finish; }
fi

node tests/web/run.js --native "$native" $quick --no-summary | tee "$log"
pass=$((pass + $(grep -c '^ok ' "$log"))); fail=$((fail + $(grep -c '^FAIL ' "$log")))
finish
