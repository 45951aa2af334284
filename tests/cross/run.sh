#!/usr/bin/env bash
# make test-cross: nflow on a 32-bit (i386, armhf), a 64-bit ARM (aarch64) and a
# big-endian (s390x) target, the last three under qemu-user.
#   - on every target: the model-file tests (tests/test_io.c) and the unit tests without
#     the training runs (tests/test_nflow.c --quick), float and double; on i386 also
#     under AddressSanitizer + UndefinedBehaviorSanitizer
#   - model files across targets: tests/cross/xfile.c saves a flow with fixed weights on
#     each target; the files must be byte-identical to x86-64's, and x86-64's file loaded
#     on the target (and the target's loaded on x86-64) must give x86-64's log-probs
#   - the uniform and normal random streams and the seeded initial weights bit-identical
#     to x86-64's
#   - training is not bit-identical across targets (the matrix kernel's tile and libm
#     differ): 100 Adam steps from fixed weights on fixed data must end within a measured
#     tolerance of x86-64's loss (TRAIN_TOL_* below)
# Installs nothing: a missing toolchain is one FAIL line naming the Debian packages.
# Builds into build/cross/. Prints ok/FAIL lines, per-target timings and a closing
# "N passed, M failed". JOBS=n targets in parallel (default 2); CROSS_TARGETS="i386 s390x"
# runs only those.
set -u
cd "$(dirname "$0")/../.." || exit 1
B=$PWD/build/cross
S=$B/src        # the sources, copied once: every target builds the same header
JOBS=${JOBS:-2}
WARN="-Wall -Wextra -pedantic -Werror"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
# Log-probs of a loaded model, relative to max(|x86-64's|, 1). The issue asks for 1e-6
# in double (measured: 6e-16 on i386, 0 elsewhere). Float: measured 2.6e-7 (i386, x87)
# and 1.9e-7 (s390x), 0 elsewhere; 1e-5 is 40x that.
LP_TOL_DOUBLE=1e-6
LP_TOL_FLOAT=1e-5
# Final mean NLL after 100 Adam steps, relative to x86-64. Measured with gcc 12 and
# qemu 7.2 over 10 data/weight variants of this run on each target (FMA contraction on
# and off): float worst 4.6e-7 (armhf; this run: 4e-10 to 7e-8), double worst 2.8e-16.
# Float: 10x the worst. Double: 1e-13, 350x the worst and still far below what a real
# fault moves (a 0.1% change of the learning rate: 2e-5 to 2e-4; one step fewer: 1e-3).
TRAIN_TOL_FLOAT=5e-6
TRAIN_TOL_DOUBLE=1e-13
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "ok $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && [ -f "$2" ] && head -12 "$2" | sed 's/^/#   /'; return 0; }
now() { echo "${EPOCHREALTIME:-$(date +%s.%N)}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

rm -rf "$B"
mkdir -p "$S/tests/cross"
# test programs run in $S, where they find tests/data as in the repository
if ! { cp nflow.h "$S/" && cp tests/test_io.c tests/test_nflow.c "$S/tests/" && cp tests/cross/xfile.c "$S/tests/cross/" &&
       mkdir -p "$S/tests/compile" && cp tests/compile/impl.c "$S/tests/compile/" &&
       { ! [ -d tests/data ] || cp -R tests/data "$S/tests/"; }; }; then
    echo "FAIL cross_sources_copied"; echo "0 passed, 1 failed"; exit 1
fi

# ---- targets: name, compiler, how to run, Debian packages ---------------------------
TARGETS=${CROSS_TARGETS:-s390x armhf aarch64 i386}   # longest first
cc_of() {
    case $1 in
        x86_64) echo "gcc" ;;
        i386|i386_san) echo "gcc -m32" ;;
        aarch64) echo "aarch64-linux-gnu-gcc" ;;
        s390x) echo "s390x-linux-gnu-gcc" ;;
        armhf) echo "arm-linux-gnueabihf-gcc" ;;
    esac
}
qemu_of() {   # the emulator binary (qemu-user, or qemu-user-static's *-static)
    local q
    case $1 in aarch64) q=qemu-aarch64 ;; s390x) q=qemu-s390x ;; armhf) q=qemu-arm ;; *) return 0 ;; esac
    command -v "$q" >/dev/null 2>&1 && { echo "$q"; return 0; }
    command -v "$q-static" >/dev/null 2>&1 && { echo "$q-static"; return 0; }
    echo "$q"
}
sysroot_of() {
    case $1 in aarch64) echo /usr/aarch64-linux-gnu ;; s390x) echo /usr/s390x-linux-gnu ;; armhf) echo /usr/arm-linux-gnueabihf ;; esac
}
pkgs_of() {
    case $1 in
        x86_64) echo "gcc" ;;
        i386) echo "libc6-dev-i386 lib32gcc-12-dev" ;;
        i386_san) echo "lib32asan8 lib32ubsan1" ;;
        aarch64) echo "gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user" ;;
        s390x) echo "gcc-s390x-linux-gnu libc6-dev-s390x-cross qemu-user" ;;
        armhf) echo "gcc-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user" ;;
    esac
}
# run a target's program: run TARGET PROGRAM ARGS...
run_on() {
    local t=$1; shift
    case $t in
        x86_64) "$@" ;;
        i386|i386_san) if [ "$I386_QEMU" = 1 ]; then nice timeout 900 qemu-i386 "$@"; else "$@"; fi ;;
        *) nice timeout 900 "$(qemu_of "$t")" -L "$(sysroot_of "$t")" "$@" ;;
    esac
}

# ---- toolchains: compile and run a probe on each target ----------------------------
printf 'int main(void) { return 0; }\n' >"$B/probe.c"
probe() {   # probe TARGET [extra flags]
    local t=$1; shift
    # shellcheck disable=SC2046
    $(cc_of "$t") -std=c99 "$@" "$B/probe.c" -o "$B/probe_$t" -lm >"$B/probe_$t.log" 2>&1 && run_on "$t" "$B/probe_$t" >>"$B/probe_$t.log" 2>&1
}
missing=""; have=""
I386_QEMU=0
probe x86_64 || missing="$missing $(pkgs_of x86_64)"
for t in $TARGETS; do
    if probe "$t"; then have="$have $t"
    elif [ "$t" = i386 ] && [ -x "$B/probe_i386" ] && command -v qemu-i386 >/dev/null 2>&1; then
        # some VM kernels cannot execute i386 binaries (CI's among them): qemu-user runs them,
        # and AddressSanitizer's shadow memory does not work there, so UBSan alone
        I386_QEMU=1
        if probe i386; then have="$have $t"; echo "# this kernel cannot run i386 binaries: i386 under qemu-i386, UBSan without ASan"
        else missing="$missing $(pkgs_of "$t")"; fi
    else missing="$missing $(pkgs_of "$t")"; fi
done
I386_SAN=0
[ "$I386_QEMU" = 1 ] && SAN="-fsanitize=undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
case " $have " in *" i386 "*)
    # shellcheck disable=SC2086
    if probe i386 -m32 $SAN; then I386_SAN=1; else missing="$missing $(pkgs_of i386_san)"; fi ;;
esac
if [ -n "$missing" ]; then
    # shellcheck disable=SC2086
    missing=$(echo $missing | tr ' ' '\n' | awk '!seen[$0]++' | tr '\n' ' ')
    bad "cross_toolchains_missing (apt-get install -y ${missing% })"
else
    ok cross_toolchains_present
fi
if ! [ -x "$B/probe_x86_64" ]; then echo "$pass passed, $fail failed"; exit 1; fi

# ---- one target: builds, the test programs, xfile --------------------------------------
# Writes $B/TARGET/report (ok/FAIL/# lines, then "@tally PASS FAIL").
target_job() {
    local t=$1 D=$B/$1 cc; cc=$(cc_of "$1")
    local p=0 f=0 t0 tb tr
    mkdir -p "$D"
    exec >"$D/report" 2>&1
    cd "$S" || exit 1
    jok()  { p=$((p + 1)); echo "ok $1"; }
    jbad() { f=$((f + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && [ -f "$2" ] && head -12 "$2" | sed 's/^/#   /'; return 0; }
    build() {   # build NAME FLAGS SOURCE
        local n=$1 flags=$2 src=$3
        # shellcheck disable=SC2086
        if nice $cc -std=c99 $flags "$src" -o "$D/$n" -lm >"$D/build_$n.log" 2>&1; then jok "cross_${t}_build_$n"; else jbad "cross_${t}_build_$n" "$D/build_$n.log"; fi
    }
    prog() {   # prog NAME ARGS: runs a test program, counts its ok/FAIL lines
        local n=$1 s rc np nf; shift
        [ -x "$D/$n" ] || return 0
        s=$(now)
        run_on "$t" "$D/$n" "$@" >"$D/$n.out" 2>&1; rc=$?
        np=$(grep -c '^ok ' "$D/$n.out"); nf=$(grep -c '^FAIL ' "$D/$n.out")
        p=$((p + np)); f=$((f + nf))
        grep '^FAIL ' "$D/$n.out" | sed "s/^FAIL /FAIL [$t $n] /"
        echo "# [$t $n] $np passed, $nf failed ($(since "$s") s)"
        if [ "$rc" -ne 0 ] && [ "$nf" -eq 0 ]; then jbad "cross_${t}_${n}_exited_with_status_$rc" "$D/$n.out"; fi
        if [ "$np" -eq 0 ] && [ "$nf" -eq 0 ] && [ "$rc" -eq 0 ]; then jbad "cross_${t}_${n}_ran_no_check"; fi
    }
    t0=$(now)
    if [ "$t" = i386_san ]; then
        # i386 under the sanitizers: a job of its own, in parallel with the others (under
        # qemu-i386 the four sanitizer runs took as long as all the other targets together)
        build asan_io_float     "-O1 $SAN" "$S/tests/test_io.c"
        build asan_io_double    "-O1 $SAN -DNFLOW_DOUBLE" "$S/tests/test_io.c"
        build asan_unit_float   "-O1 $SAN" "$S/tests/test_nflow.c"
        build asan_unit_double  "-O1 $SAN -DNFLOW_DOUBLE" "$S/tests/test_nflow.c"
    elif [ "$t" != x86_64 ]; then
        # the implementation under -Wconversion -Wsign-conversion (aarch64: the NEON kernel);
        # not -Wdouble-promotion on s390x, whose gcc evaluates float in double under -std=c99
        local dp=-Wdouble-promotion; [ "$t" = s390x ] && dp=""
        # shellcheck disable=SC2086
        if nice $cc -std=c99 -O2 $WARN -Wshadow $dp -Wconversion -Wsign-conversion -c "$S/tests/compile/impl.c" -o "$D/wconv.o" >"$D/build_wconv.log" 2>&1
        then jok "cross_${t}_header_wconversion"; else jbad "cross_${t}_header_wconversion" "$D/build_wconv.log"; fi
        build io_float   "-O2 $WARN" "$S/tests/test_io.c"
        build io_double  "-O2 $WARN -DNFLOW_DOUBLE" "$S/tests/test_io.c"
        build unit_float  "-O2 $WARN" "$S/tests/test_nflow.c"
        build unit_double "-O2 $WARN -DNFLOW_DOUBLE" "$S/tests/test_nflow.c"
    fi
    if [ "$t" != i386_san ]; then
        build xfile_float  "-O2 $WARN" "$S/tests/cross/xfile.c"
        build xfile_double "-O2 $WARN -DNFLOW_DOUBLE" "$S/tests/cross/xfile.c"
    fi
    tb=$(since "$t0"); t0=$(now)
    prog io_float
    prog io_double
    prog unit_float --quick
    prog unit_double --quick
    if [ -x "$D/asan_unit_float" ]; then
        export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1
        prog asan_io_float
        prog asan_io_double
        prog asan_unit_float --quick
        prog asan_unit_double --quick
    fi
    # xfile: what this build is, its model files, the x86-64 files loaded here, training
    local prec
    if [ -x "$D/xfile_double" ]; then run_on "$t" "$D/xfile_double" info >"$D/info.out" 2>&1 || jbad "cross_${t}_xfile_info" "$D/info.out"; fi
    for prec in float double; do
        [ -x "$D/xfile_$prec" ] || continue
        run_on "$t" "$D/xfile_$prec" save "$D/model_$prec.nfm" >"$D/save_$prec.log" 2>&1 || jbad "cross_${t}_saves_model_$prec" "$D/save_$prec.log"
        run_on "$t" "$D/xfile_$prec" load "$D/model_$prec.nfm" >"$D/lp_own_$prec.out" 2>"$D/lp_own_$prec.log"
        if [ "$t" != x86_64 ] && [ -f "$B/x86_64/model_$prec.nfm" ]; then
            run_on "$t" "$D/xfile_$prec" load "$B/x86_64/model_$prec.nfm" >"$D/lp_x86_$prec.out" 2>"$D/lp_x86_$prec.log"
        fi
        run_on "$t" "$D/xfile_$prec" train >"$D/train_$prec.out" 2>"$D/train_$prec.log"
        run_on "$t" "$D/xfile_$prec" rng >"$D/rng_$prec.out" 2>"$D/rng_$prec.log"
    done
    tr=$(since "$t0")
    echo "@time $t $tb $tr"
    echo "@tally $p $f"
}

# ---- compare helpers -----------------------------------------------------------------
# max relative difference of two "index value" files; fails unless every value is a
# finite number, the indices match, and the difference is within tol
lp_diff() {   # lp_diff REF GOT TOL -> prints the max relative difference
    awk -v tol="$3" '
        function num(s) { return s ~ /^-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$/ }
        NR == FNR { if (!num($2)) bad = 1; r[$1] = $2; n++; next }
        { if (!($1 in r) || !num($2)) { bad = 1; next }
          d = $2 - r[$1]; if (d < 0) d = -d; a = r[$1]; if (a < 0) a = -a; if (a < 1) a = 1
          if (d / a > m) m = d / a; c++ }
        END { if (bad || n == 0 || c != n) { printf "?: values missing or not finite"; exit 1 }
              printf "%.2g", m; exit (m > tol) }' "$1" "$2" 2>/dev/null
}
val() { awk -v k="$1" '$1 == k { print $2; exit }' "$2" 2>/dev/null; }   # val KEY FILE
rel() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; s = b < 0 ? -b : b; printf "%.2g", d / (s > 0 ? s : 1) }'; }
within() { awk -v x="$1" -v t="$2" 'BEGIN { exit !(x <= t) }'; }
isnum() { [[ "$1" =~ ^-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$ ]]; }

# ---- x86-64 first (the reference), then the targets, JOBS at a time -------------------
T0=$(now)
target_job x86_64 &
wait $!
if ! [ -x "$B/x86_64/xfile_float" ] || ! [ -x "$B/x86_64/xfile_double" ]; then
    grep -v '^@' "$B/x86_64/report"
    bad "cross_header_builds_on_x86_64 (nothing to compare against: no target was built)"
    echo "$pass passed, $fail failed"
    exit 1
fi
# longest first: under qemu-i386, i386's sanitizer job, then i386; then the rest in order
SANJOB=""; [ "$I386_SAN" = 1 ] && SANJOB=i386_san
order="$SANJOB"
case " $have " in *" i386 "*) order="$order i386" ;; esac
for t in $have; do [ "$t" = i386 ] || order="$order $t"; done
for t in $order; do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
    target_job "$t" &
done
wait

X=$B/x86_64
for t in x86_64 $have $SANJOB; do
    D=$B/$t
    echo "# ---- $t"
    grep -v '^@' "$D/report"
    read -r tp tf < <(awk '$1 == "@tally" { print $2, $3 }' "$D/report")
    pass=$((pass + ${tp:-0})); fail=$((fail + ${tf:-0}))
    [ -n "${tp:-}" ] || bad "cross_${t}_job_finished" "$D/report"
    [ "$t" = i386_san ] && continue   # test programs only: no model files of its own
    # what the build is: 32-bit, big-endian, ...
    if [ "$t" != x86_64 ]; then
        info=$([ -f "$D/info.out" ] && tr '\n' ' ' <"$D/info.out")
        case $t in
            i386|armhf) want="pointer_bits 32 byte_order little" ;;
            aarch64) want="pointer_bits 64 byte_order little" ;;
            s390x) want="pointer_bits 64 byte_order big" ;;
        esac
        case "$info" in "$want "*) ok "cross_${t}_is_${want// /_}" ;; *) bad "cross_${t}_is_${want// /_} (got: $info)" ;; esac
        echo "# [$t] $info"
    fi
    for prec in float double; do
        tol=$LP_TOL_DOUBLE; [ "$prec" = float ] && tol=$LP_TOL_FLOAT
        if [ "$t" = x86_64 ]; then
            if [ -s "$D/model_$prec.nfm" ] && d=$(lp_diff "$D/lp_own_$prec.out" "$D/lp_own_$prec.out" 0); then
                ok "cross_x86_64_saves_and_loads_model_$prec"; else bad "cross_x86_64_saves_and_loads_model_$prec" "$D/lp_own_$prec.log"; fi
            continue
        fi
        [ -x "$D/xfile_$prec" ] || continue
        if [ -s "$D/model_$prec.nfm" ] && cmp -s "$D/model_$prec.nfm" "$X/model_$prec.nfm"; then
            ok "cross_${t}_model_file_${prec}_byte_identical_to_x86_64"
        else bad "cross_${t}_model_file_${prec}_byte_identical_to_x86_64" "$D/save_$prec.log"; fi
        if d=$(lp_diff "$X/lp_own_$prec.out" "$D/lp_x86_$prec.out" "$tol"); then
            ok "cross_${t}_loads_x86_64_model_${prec}_log_probs_within_$tol (max rel diff $d)"
        else bad "cross_${t}_loads_x86_64_model_${prec}_log_probs_within_$tol (max rel diff ${d:-?})" "$D/lp_x86_$prec.log"; fi
        if [ -s "$D/model_$prec.nfm" ] && [ -x "$X/xfile_$prec" ]; then
            "$X/xfile_$prec" load "$D/model_$prec.nfm" >"$D/lp_on_x86_$prec.out" 2>"$D/lp_on_x86_$prec.log"
        fi
        if d=$(lp_diff "$X/lp_own_$prec.out" "$D/lp_on_x86_$prec.out" "$tol"); then
            ok "cross_x86_64_loads_${t}_model_${prec}_log_probs_within_$tol (max rel diff $d)"
        else bad "cross_x86_64_loads_${t}_model_${prec}_log_probs_within_$tol (max rel diff ${d:-?})" "$D/lp_on_x86_$prec.log"; fi
    done
done

echo "# ---- random streams and seeded initial weights"
for prec in float double; do
    for t in $have; do
        D=$B/$t
        [ -x "$D/xfile_$prec" ] || continue
        for kk in uniform:rng_uniform_stream normal:rng_normal_stream init:seeded_init_weights; do
            k=${kk#*:}
            a=$(val "${kk%%:*}_crc" "$D/rng_$prec.out"); x=$(val "${kk%%:*}_crc" "$X/rng_$prec.out")
            if [ -n "$a" ] && [ "$a" = "$x" ]; then ok "cross_${t}_${k}_${prec}_bit_identical_to_x86_64"
            else bad "cross_${t}_${k}_${prec}_bit_identical_to_x86_64 (crc ${a:-none}, x86-64 ${x:-none})" "$D/rng_$prec.log"; fi
        done
    done
done

echo "# ---- training: 100 Adam steps of a RealNVP from fixed weights on fixed data"
for prec in float double; do
    tol=$TRAIN_TOL_DOUBLE; [ "$prec" = float ] && tol=$TRAIN_TOL_FLOAT
    xf=$(val first_loss "$X/train_$prec.out"); xn=$(val final_nll "$X/train_$prec.out")
    if isnum "${xn:-}" && isnum "${xf:-}"; then
        echo "# [x86_64 train_$prec] first batch loss $xf, final NLL $xn"
    else bad "cross_x86_64_training_${prec}_runs" "$X/train_$prec.log"; continue; fi
    for t in $have; do
        D=$B/$t
        [ -x "$D/xfile_$prec" ] || continue
        tf=$(val first_loss "$D/train_$prec.out"); tn=$(val final_nll "$D/train_$prec.out")
        if ! isnum "${tn:-}" || ! isnum "${tf:-}"; then bad "cross_${t}_training_${prec}_runs" "$D/train_$prec.log"; continue; fi
        d0=$(rel "$tf" "$xf"); d=$(rel "$tn" "$xn")
        echo "# [$t train_$prec] first batch loss $tf (rel diff $d0), final NLL $tn (rel diff $d)"
        if within "$d" "$tol"; then ok "cross_${t}_training_100_steps_${prec}_loss_within_${tol}_of_x86_64 (rel diff $d)"
        else bad "cross_${t}_training_100_steps_${prec}_loss_within_${tol}_of_x86_64 (rel diff $d)"; fi
    done
done

echo "# ---- timings (s; $JOBS targets at a time on $(nproc 2>/dev/null || echo ?) cores)"
for t in x86_64 $have $SANJOB; do
    awk -v t="$t" '$1 == "@time" { printf "# %-8s build %6.1f   run %6.1f\n", t, $3, $4 }' "$B/$t/report"
done
echo "# total $(since "$T0") s"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
