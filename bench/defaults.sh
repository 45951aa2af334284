#!/usr/bin/env bash
# defaults.sh: chooses nf_fit's defaults by measurement (issue 10, item 11).
#
# For every data set of bench/defaults.c it
#   1. tunes the fit of a fixed model by coordinate search, starting from the current
#      defaults (max_epochs 1000 in place of 200, so that patience decides): lr, batch,
#      patience, schedule (constant, or cosine over a budget of 100/200/400 epochs), weight
#      decay, clip_norm, one coordinate at a time (ordered ones walked from the current value
#      while they improve), each value measured as the held-out test NLL without the worst
#      0.1% of the test rows (test_trim; METRIC=test_nll for the plain mean), mean over
#      SPLITS train/test splits; up to two passes;
#   2. measures the current defaults and the candidate defaults below;
#   3. prints one table: test NLL (nats per row, mean over splits) of the current defaults,
#      the best tuned setting and each candidate, the gap of each to the best, and the
#      training time of the proposed defaults.
# Every run is appended to build/dflt/runs.log and reused when the same setting comes
# again, so an interrupted sweep continues where it stopped.
#
# Usage: bench/defaults.sh [all|tune|table] [DATASET ...]     (default: all, every data set)
#   SPLITS=3       splits (and seeds) per setting
#   PRESET=nsf     the flow preset for the multi-dimensional sets (default realnvp); the
#                  1-D set keeps its monotone model. Results are kept apart per preset.
#   FRESH=1        forget build/dflt/runs.log first
#   NOBUILD=1      reuse build/dflt/defaults as it is (one binary for a whole study while
#                  nflow.h changes)
set -u
cd "$(dirname "$0")/.."
B=build/dflt; BIN=$B/defaults; LOG=$B/runs.log
SPLITS=${SPLITS:-3}; PRESET=${PRESET:-realnvp}; METRIC=${METRIC:-test_trim}
MODE=${1:-all}; [ $# -gt 0 ] && shift
DATASETS=${*:-bimodal moons gw10 gw14 mix12}
mkdir -p $B
[ "${FRESH:-0}" = 1 ] && rm -f $LOG
touch $LOG

# The settings: "lr= batch= patience= sched= wd= clip=", sched constN (constant lr,
# max_epochs N) or cosN (cosine decay to 0 over N epochs' steps, max_epochs N).
CURRENT="lr=1e-3 batch=128 patience=20 sched=cos200 wd=0 clip=0"   # nf_fit_options_default since 0.2.0
OLD="lr=1e-3 batch=256 patience=20 sched=const200 wd=0 clip=0"       # 0.1.0's, in the table as cand1
START="lr=1e-3 batch=256 patience=20 sched=const1000 wd=0 clip=0"
# Candidate defaults, measured on every data set (PROPOSED is the one the table times).
PROPOSED="$CURRENT"
CANDIDATES="$OLD|lr=1e-3 batch=256 patience=20 sched=cos200 wd=0 clip=0|lr=3e-3 batch=256 patience=20 sched=cos200 wd=0 clip=0|lr=3e-3 batch=256 patience=40 sched=cos400 wd=0 clip=5"

values() {   # values of one coordinate for a data set
    case $1 in
        lr)       if [ "$2" = bimodal ]; then echo "3e-4 1e-3 3e-3 1e-2"; else echo "3e-4 1e-3 3e-3"; fi ;;
        batch)    echo "64 128 256 512" ;;
        patience) echo "10 20 40" ;;
        sched)    echo "const1000 cos100 cos200 cos400" ;;
        wd)       echo "0 1e-4 1e-3" ;;
        clip)     echo "0 5" ;;
    esac
}

build() {
    local extra=""
    [ "${NOBUILD:-0}" = 1 ] && [ -x $BIN ] && return
    grep -q 'nf_flow_desc_nsf' nflow.h && extra="$extra -DDEFAULTS_HAVE_NSF"
    grep -q 'nf_flow_desc_maf' nflow.h && extra="$extra -DDEFAULTS_HAVE_MAF"
    if ! gcc -std=c99 -O3 -march=native -Wall -Wextra -pedantic $extra bench/defaults.c -o $BIN.tmp -lm; then
        echo "# building with$extra failed; building without the new presets" >&2
        gcc -std=c99 -O3 -march=native -Wall -Wextra -pedantic bench/defaults.c -o $BIN.tmp -lm || exit 1
    fi
    mv $BIN.tmp $BIN   # a new file: a sweep still running keeps its binary
}

opts_of() {  # setting -> command-line options
    local s k v o=""
    for s in $1; do
        k=${s%%=*}; v=${s#*=}
        case $k in
            lr) o="$o --lr $v" ;; batch) o="$o --batch $v" ;; patience) o="$o --patience $v" ;;
            wd) o="$o --wd $v" ;; clip) o="$o --clip $v" ;;
            sched) case $v in const*) o="$o --sched const --max-epochs ${v#const}" ;;
                              cos*)   o="$o --sched cosine --max-epochs ${v#cos}" ;; esac ;;
        esac
    done
    echo "$o"
}
preset_of() { if [ "$1" = bimodal ]; then echo monotone; else echo "$PRESET"; fi; }
key_of() { echo "$1/$(preset_of $1)/s$SPLITS/$(echo $2 | tr ' ' ',')"; }
get() {      # field of a setting
    local s; for s in $2; do [ "${s%%=*}" = "$1" ] && echo "${s#*=}"; done
}
set_field() {  # setting with one field replaced
    local s o=""; for s in $3; do if [ "${s%%=*}" = "$1" ]; then o="$o $1=$2"; else o="$o $s"; fi; done
    echo $o
}

measure() {  # data setting -> its METRIC, mean over splits (runs it unless the log has it)
    local key line
    key=$(key_of "$1" "$2")
    line=$(grep -F "mean tag=$key " $LOG | grep -F " $METRIC=" | tail -1)
    if [ -z "$line" ]; then
        echo "# run $key" >&2
        nice -n 5 $BIN --data "$1" --preset "$(preset_of $1)" --splits $SPLITS --tag "$key" $(opts_of "$2") >> $LOG || { echo "# FAILED $key" >&2; echo inf; return; }
        line=$(grep -F "mean tag=$key " $LOG | tail -1)
    fi
    echo "$line" | sed "s/.* $METRIC=\([^ ]*\).*/\1/"
}
field_of_run() {  # data setting field -> that field of the mean line
    grep -F "mean tag=$(key_of "$1" "$2") " $LOG | tail -1 | sed "s/.* $3=\([^ ]*\).*/\1/"
}
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 < b + 0) }'; }

try() {      # tune's step: measure setting $2; keep it if better than the best so far
    local m
    m=$(measure $1 "$2")
    echo "# $1 $3: $m (best $bestv)" >&2
    if lt "$m" "$bestv"; then best="$2"; bestv=$m; return 0; fi
    return 1
}
tune() {     # coordinate search; writes $B/tuned_<data>_<preset>.txt
    local d=$1 pass c vals n i j cur changed old
    best="$START"; bestv=$(measure $d "$best")
    for pass in 1 2; do
        changed=0
        for c in lr batch patience sched wd clip; do
            old="$best"
            vals=($(values $c $d)); n=${#vals[@]}
            if [ $c = sched ] || [ $c = clip ]; then   # unordered: every value
                for ((j = 0; j < n; ++j)); do
                    [ "${vals[j]}" = "$(get $c "$old")" ] || try $d "$(set_field $c ${vals[j]} "$old")" "pass $pass $c=${vals[j]}"
                done
            else                                      # ordered: walk each way while it improves
                cur=$(get $c "$best"); i=-1
                for ((j = 0; j < n; ++j)); do [ "${vals[j]}" = "$cur" ] && i=$j; done
                for ((j = i + 1; j < n; ++j)); do try $d "$(set_field $c ${vals[j]} "$best")" "pass $pass $c=${vals[j]}" || break; done
                if [ "$best" = "$old" ]; then
                    for ((j = i - 1; j >= 0; --j)); do try $d "$(set_field $c ${vals[j]} "$best")" "pass $pass $c=${vals[j]}" || break; done
                fi
            fi
            [ "$best" != "$old" ] && changed=1
        done
        [ $changed = 0 ] && break
    done
    echo "$best" > $B/tuned_${d}_$(preset_of $d).txt
    echo "# $d tuned: $best -> $bestv" >&2
}

field() {    # field of the mean line of data/setting
    grep -F "mean tag=$(key_of "$1" "$2") " $LOG | grep -F " $METRIC=" | tail -1 | sed "s/.* $3=\([^ ]*\).*/\1/"
}
row() {      # one table row: data label setting best
    local m; m=$(measure $1 "$3")
    printf "%-8s %-9s %9.4f %9.4f %+7.3f %10s %7s %7s %7s  %s\n" $1 $2 "$(field $1 "$3" test_nll)" "$m" \
        "$(awk -v a=$m -v b=$4 'BEGIN { print a - b }')" "$(field $1 "$3" test_worst)" "$(field $1 "$3" epochs)" \
        "$(field $1 "$3" wall)" "$(field $1 "$3" cpu)" "$3"
}
table() {
    local d t best bestv cand i truth
    printf "\nheld-out test NLL, nats per row, mean over %s splits; preset %s (bimodal: monotone)\n" "$SPLITS" "$PRESET"
    printf "  test_nll: mean over all test rows; %s: the search's measure; gap: %s - tuned's\n" $METRIC $METRIC
    printf "  worst: the worst test row's NLL; epochs, wall_s, cpu_s: per fit, mean over splits\n\n"
    printf "%-8s %-9s %9s %9s %7s %10s %7s %7s %7s  %s\n" data setting test_nll $METRIC gap worst epochs wall_s cpu_s "lr batch patience schedule wd clip"
    for d in $DATASETS; do
        t=$B/tuned_${d}_$(preset_of $d).txt
        [ -f $t ] || { echo "$d: not tuned yet (run: bench/defaults.sh tune $d)"; continue; }
        measure $d "$CURRENT" > /dev/null
        for cand in $(echo "$CANDIDATES" | tr ' ' '_' | tr '|' ' '); do measure $d "$(echo $cand | tr '_' ' ')" > /dev/null; done
        # the tuned setting: the best of every setting measured on this data set
        best=$(grep -F "mean tag=$d/$(preset_of $d)/s$SPLITS/" $LOG | grep -F " $METRIC=" |
               sed "s/.*tag=[^ ]*\/s$SPLITS\/\([^ ]*\) .* $METRIC=\([^ ]*\).*/\2 \1/" | sort -g | head -1)
        bestv=${best%% *}; best=$(echo ${best#* } | tr ',' ' ')
        row $d current "$CURRENT" $bestv
        row $d tuned "$best" $bestv
        i=0; for cand in $(echo "$CANDIDATES" | tr ' ' '_' | tr '|' ' '); do
            i=$((i + 1)); cand=$(echo $cand | tr '_' ' ')
            if [ "$cand" = "$PROPOSED" ]; then row $d proposed "$cand" $bestv; else row $d cand$i "$cand" $bestv; fi
        done
        truth=$(grep -F "tag=$(key_of $d "$CURRENT") " $LOG | grep -v '^mean' | sed 's/.*truth=\([^ ]*\).*/\1/' |
                awk '$1 == "nan" { nan = 1 } { s += $1; n++ } END { if (!nan && n) printf "%.4f", s / n }')
        [ -n "$truth" ] && printf "%-8s %-9s %9s\n" $d truth $truth
    done
    echo "current: $CURRENT;  proposed: $PROPOSED"
    echo "coordinate search ended at:"; for d in $DATASETS; do t=$B/tuned_${d}_$(preset_of $d).txt; [ -f $t ] && echo "  $d: $(cat $t)"; done
    awk '/^tag=/ { for (i = 1; i <= NF; i++) { split($i, a, "="); if (a[1] == "wall") w += a[2]; if (a[1] == "cpu") c += a[2] } n++ }
         END { printf "runs in %s: %d fits, %.0f s wall, %.0f s cpu\n", FILENAME, n, w, c }' $LOG
}

T0=$(date +%s)
build
case $MODE in
    all)   for d in $DATASETS; do tune $d; done; table ;;
    tune)  for d in $DATASETS; do tune $d; done ;;
    table) table ;;
    *) echo "usage: $0 [all|tune|table] [DATASET ...]" >&2; exit 2 ;;
esac
echo "this invocation: $(( $(date +%s) - T0 )) s"
