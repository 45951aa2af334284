#!/usr/bin/env bash
# web/build.sh: the flow lesson (web/) into build/web/ (make web): lesson.c and nflow.h
# compiled to WebAssembly, and the static page beside it. Open it with any static server
# (web/README.md).
#
# Compiler: clang --target=wasm32-wasi with Debian's wasi-libc, not emscripten.
#   simplicity  one clang call. lesson.c uses no stdio, clock or files (NFLOW_NO_STDIO), so
#               the .wasm imports nothing: worker.js instantiates it with an empty import
#               object; no generated JavaScript glue, no WASI shim, no runtime to load.
#   size        the .wasm is ~140 KB and is the whole runtime. Debian's emscripten 3.1.6
#               package is 805 MB installed (plus binaryen and llvm-14) and its output
#               brings a JavaScript loader of its own.
#   speed       the same LLVM 14 code generator: Debian's emscripten runs on clang-14 too.
#               -msimd128 (WebAssembly SIMD, in every browser since 2021) lets it
#               vectorise the matrix kernel's loops; -O3 measured faster than -O2 and -Os.
#   packages    clang lld wasi-libc libclang-rt-14-dev-wasm32 (apt-get install -y ...).
#
# Numbers: -ffp-contract=off here and in the native build of tests/web/run.sh, so that
# neither fuses a*b+c into one rounding (x86 could with FMA, WebAssembly cannot). The
# lesson runs in double precision (NFLOW_DOUBLE, set in lesson.c): libm's exp/log/tanh
# (glibc natively, wasi-libc's musl here) may differ in the last bit, and training is
# chaotic enough that float's 1e-7 differences grow to 1e-1 in a few hundred steps;
# double's 1e-16 stay below 1e-10 over the test's runs. It costs little in the browser
# (double trains at ~0.9x float's speed in V8 with the same tile). The matrix kernel's
# tile is fixed in lesson.c, so both builds also sum in the same order.
set -eu
cd "$(dirname "$0")/.."
out=build/web
CLANG=${CLANG:-clang}
SYSROOT=${WASI_SYSROOT:-/usr}   # Debian's wasi-libc: /usr/include/wasm32-wasi, /usr/lib/wasm32-wasi

if ! command -v "$CLANG" >/dev/null 2>&1 || ! command -v wasm-ld >/dev/null 2>&1 \
   || [ ! -f "$SYSROOT/lib/wasm32-wasi/libc.a" ] \
   || ! ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1; then
    echo "web/build.sh: needs clang, wasm-ld and WASI's libc:" >&2
    echo "  apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32" >&2
    exit 1
fi

mkdir -p "$out"
# reactor: a library without main; the page calls the exported ls_* functions.
# Stack: wasm-ld's default is 64 KB, below the data, and an overflow silently overwrites
# the data; the matrix kernel alone keeps a 32 KB panel (double) on the stack. 1 MB, and
# first in memory, so that an overflow traps instead.
nice "$CLANG" --target=wasm32-wasi --sysroot="$SYSROOT" -std=c99 -O3 -msimd128 -ffp-contract=off \
    -Wall -Wextra -pedantic -DNDEBUG -mexec-model=reactor \
    -Wl,--strip-all -Wl,-z,stack-size=1048576 -Wl,--stack-first \
    web/lesson.c -o "$out/lesson.wasm"
cp web/index.html web/main.js web/worker.js web/lesson.css "$out/"
echo "web/build.sh: $out/index.html, lesson.wasm $(wc -c < "$out/lesson.wasm") bytes"
