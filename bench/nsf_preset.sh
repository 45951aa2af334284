#!/usr/bin/env bash
# nsf_preset.sh: the sweep behind bench/nsf_preset.md (which spline-coupling stack
# nf_flow_desc_nsf should build). Every run is one (data set, recipe, split) fit of
# bench/nsf_preset.c with nf_fit's defaults; runs are appended to build/nsfp/runs.log and
# skipped when already there, so an interrupted sweep continues.
#
# Usage: bench/nsf_preset.sh run DATASETS SPLITS RECIPE...   fit every recipe on every set
#        bench/nsf_preset.sh table DATASETS [RECIPE...]       mean +- sd over the logged
#                                                             splits, and the paired gap to MAF
#   JOBS=2        fits in parallel
#   NOBUILD=1     keep build/nsfp/nsf_preset as it is (one binary for a whole study)
# e.g. bench/nsf_preset.sh run "gw10 es10" "0 1 2" nsf maf "mix=lu,mask=half,alt=0"
set -u
cd "$(dirname "$0")/.."
B=build/nsfp; BIN=$B/nsf_preset; LOG=$B/runs.log
mkdir -p $B; touch $LOG
MODE=${1:-table}; shift || true

build() {
    [ "${NOBUILD:-0}" = 1 ] && [ -x $BIN ] && return
    gcc -std=c99 -O3 -march=native -Wall -Wextra -pedantic bench/nsf_preset.c -o $BIN.tmp -lm || exit 1
    mv $BIN.tmp $BIN
}

case $MODE in
run)
    DS=$1; SPLITS=$2; shift 2
    build
    for r in "$@"; do for d in $DS; do for s in $SPLITS; do
        grep -qF " data=$d recipe=$r split=$s " $LOG || printf '%s\t%s\t%s\n' "$d" "$r" "$s"
    done; done; done |
    xargs -P "${JOBS:-2}" -d '\n' -n 1 sh -c 'IFS="	"; set -- $1; '"$BIN"' --data "$1" --recipe "$2" --split "$3" --tag run >> '"$LOG"'' sh
    ;;
table)
    DS=$1; shift
    for d in $DS; do
        awk -v d="$d" -v want="$*" '
            function val(k,  i, a) { for (i = 1; i <= NF; ++i) { split($i, a, "="); if (a[1] == k) return substr($i, length(k) + 2) } return "" }
            BEGIN { nw = split(want, w, " "); for (i = 1; i <= nw; ++i) keep[w[i]] = 1 }
            $0 ~ (" data=" d " ") {
                r = val("recipe"); if (nw && !(r in keep) && r != "maf") next; s = val("split"); key = r SUBSEP s
                if (key in seen) next; seen[key] = 1
                t = val("test_trim") + 0; n[r]++; sum[r] += t; sq[r] += t * t; cpu[r] += val("cpu"); ep[r] += val("epochs")
                nll[r] += val("test_nll"); par[r] = val("params"); tr[r, s] = t; if (!(r in order)) { order[r] = ++no; names[no] = r }
            }
            END {
                printf "%-44s %8s %6s %3s %8s %6s %8s %8s %6s %6s\n", "recipe (" d ")", "trim", "sd", "n", "vs maf", "sd", "nll", "params", "cpu s", "epochs"
                for (i = 1; i <= no; ++i) {
                    r = names[i]; m = sum[r] / n[r]; sd = n[r] > 1 ? sqrt((sq[r] - n[r] * m * m) / (n[r] - 1)) : 0
                    if (sd != sd) sd = 0
                    k = 0; ds = 0; ds2 = 0
                    for (key in tr) { split(key, a, SUBSEP); if (a[1] == r && (("maf" SUBSEP a[2]) in tr)) { dd = tr[key] - tr["maf", a[2]]; k++; ds += dd; ds2 += dd * dd } }
                    dm = k ? ds / k : 0; dsd = k > 1 ? sqrt((ds2 - k * dm * dm) / (k - 1)) : 0; if (dsd != dsd) dsd = 0
                    printf "%-44s %8.4f %6.4f %3d %+8.4f %6.4f %8.4f %8d %6.1f %6.1f\n", r, m, sd, n[r], dm, dsd, nll[r] / n[r], par[r], cpu[r] / n[r], ep[r] / n[r]
                }
            }' $LOG
        echo
    done
    ;;
*) sed -n 2,14p "$0"; exit 2 ;;
esac
