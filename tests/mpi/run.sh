#!/usr/bin/env bash
# make test-mpi: data-parallel training on Open MPI with examples/mpi_train.c, 2 processes.
#   - the example builds warning-free with mpicc -DNFLOW_MPI (float and double) and with
#     plain gcc, no MPI at all (the single-process reference)
#   - mpirun -np 2, in float (tanh couplings) and in double (ReLU): the gradient averaged with MPI_Allreduce equals
#     the gradient of the two minibatches put together; the parameters are identical on
#     both processes before the first step and after every step (a checksum); the held-out NLL
#     improves; rank 0 saves the model
#   - one process without MPI, --shards 2: the same simulations and initial weights, each
#     step on the union of the two processes' minibatches. Its standardisation,
#     parameters and held-out NLL must match the 2-process model within the tolerances in
#     examples/mpi_train.c (float: measured spread over 20 seeds, with margin; double:
#     1e-12, where the measured agreement is ~1e-15)
# Installs nothing: without mpicc or mpirun, one FAIL line naming the Debian packages.
# Prints ok/FAIL lines and a closing "N passed, M failed"; builds into build/tests/mpi.
set -u
cd "$(dirname "$0")/../.." || exit 1
B=build/tests/mpi
mkdir -p "$B"
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "ok $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && [ -f "$2" ] && tail -15 "$2" | sed 's/^/#   /'; return 0; }
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ] && exit 0; exit 1; }

if ! command -v mpicc >/dev/null 2>&1 || ! command -v mpirun >/dev/null 2>&1; then
    bad "mpi_toolchain_found (no mpicc or mpirun: apt-get install libopenmpi-dev openmpi-bin)"
    finish
fi
# Open MPI will not start as root unless told so (CI containers run as root)
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi

SRC=examples/mpi_train.c
WARN="-std=c99 -O2 -Wall -Wextra -pedantic -Werror"
build() { local n=$1; shift; if "$@" >"$B/$n.log" 2>&1; then ok "$n"; else bad "$n" "$B/$n.log"; fi; }
build mpi_train_builds_with_mpicc        mpicc -DNFLOW_MPI $WARN "$SRC" -o "$B/mpi_train" -lm
build mpi_train_builds_with_mpicc_double mpicc -DNFLOW_MPI -DNFLOW_DOUBLE $WARN "$SRC" -o "$B/mpi_train_double" -lm
build mpi_train_builds_without_mpi        gcc $WARN "$SRC" -o "$B/one" -lm
build mpi_train_builds_without_mpi_double gcc -DNFLOW_DOUBLE $WARN "$SRC" -o "$B/one_double" -lm

# run: label, expected number of ok lines, command... The example's own ok/FAIL lines are
# counted with the label in front; a crash, a hang (100 s) or missing checks are a FAIL.
run() {
    local n=$1 want=$2 log="$B/$1.log"; shift 2
    timeout 100 "$@" >"$log" 2>&1; local rc=$?
    local p f; p=$(grep -c '^ok ' "$log"); f=$(grep -c '^FAIL ' "$log")
    grep -E '^(ok|FAIL) ' "$log" | sed -E "s/^(ok|FAIL) /\1 ${n}_/"
    pass=$((pass + p)); fail=$((fail + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then bad "${n}_exits_cleanly (status $rc)" "$log"
    elif [ "$p" -lt "$want" ] && [ "$f" -eq 0 ]; then bad "${n}_ran_its_checks (ok lines: $p of $want)" "$log"; fi
}
# float with tanh couplings (with ReLU, float runs that add in another order drift apart:
# see --act in the example); double with the default ReLU
for prec in float double; do
    sfx=""; act="--act tanh"; [ "$prec" = double ] && sfx=_double && act=""
    if [ -x "$B/mpi_train$sfx" ] && [ -x "$B/one$sfx" ]; then
        rm -f "$B/np2_$prec.nflw"
        run "np2_$prec" 3 mpirun --oversubscribe -np 2 "$B/mpi_train$sfx" --quick $act --save "$B/np2_$prec.nflw"
        run "one_process_$prec" 4 "$B/one$sfx" --quick $act --shards 2 --compare "$B/np2_$prec.nflw"
    fi
done
finish
