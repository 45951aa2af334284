#!/usr/bin/env bash
# What nflow costs a microcontroller firmware, as a Markdown table: Cortex-M4F and
# Cortex-M0, gcc -Os -ffunction-sections -fdata-sections, linked with --gc-sections.
# Rows:
#   1. an exported 2-D RealNVP (4 couplings x 16, weights as const data in flash):
#      evaluate and sample only (bench/mcu_size_fw.c, SIZE_CONST)
#   2. the same flow read at run time from a model file embedded as bytes
#      (nf_flow_load_desc + nf_flow_init + nf_flow_load_into into a static buffer)
#   3. the same loader firmware with nothing switched off: every layer kind, domains,
#      context, importance sampling (the inference-only build of a generic model loader)
#   4. on-device training: examples/firmware/train_on_device.c
# Attribution: nflow's implementation is compiled alone into nflow_impl.o
# (bench/mcu_size_impl.c; for row 4 the example is built with TOD_NFLOW_ELSEWHERE), and
# the ".text" columns sum the sections of that object the linker kept (from the map):
# code, and in brackets its constants (.rodata: the layer table, messages). libm and
# libgcc routines nflow calls (expf, logf, tanhf, soft-float helpers) are not in it; the
# notes under the table list them and their size.
# Static RAM: .data + .bss of the whole M4F image, with newlib's own share in brackets.
# Stack: high-water mark of the M4F run, painted at the start of main (rows 1-3: before
# the firmware's only printf; row 4 prints as it trains, so newlib's printf is in it).
# Instructions: per log_prob row (16 rows, 11 passes minus 1, over 160), exact, from
# QEMU with tests/mcu/insncount.c; row 4: per training step (100 steps vs 200).
# The feature switches of each row are configurable: ROW1_SW .. ROW4_SW (defaults below:
# rows 1, 2 and 4 switch off all the flow does not need). NFLOW_DIR: another nflow.h.
set -eu
cd "$(dirname "$0")/.."
B=build/mcu-size
INC="-I${NFLOW_DIR:-.}"
mkdir -p "$B"
for tool in arm-none-eabi-gcc qemu-system-arm; do
    command -v $tool >/dev/null || { echo "mcu_size: $tool missing (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)"; exit 1; }
done

NOT_NEEDED="-DNFLOW_NO_THREADS -DNFLOW_NO_LU -DNFLOW_NO_MONOTONE -DNFLOW_NO_SPLINE -DNFLOW_NO_AUTOREGRESSIVE -DNFLOW_NO_ACTNORM -DNFLOW_NO_DOMAINS -DNFLOW_NO_CONTEXT -DNFLOW_NO_DIAG_BASE -DNFLOW_NO_IMPORTANCE -DNFLOW_ACTIVATIONS=0x2u"
ROW1_SW=${ROW1_SW-"-DNFLOW_NO_TRAINING -DNFLOW_NO_STDIO -DNFLOW_NO_LOADER $NOT_NEEDED"}
ROW2_SW=${ROW2_SW-"-DNFLOW_NO_TRAINING -DNFLOW_NO_STDIO $NOT_NEEDED"}
ROW3_SW=${ROW3_SW-"-DNFLOW_NO_TRAINING -DNFLOW_NO_STDIO"}
ROW4_SW=${ROW4_SW-"-DNFLOW_NO_STDIO -DNFLOW_NO_LOADER $NOT_NEEDED"}
COMMON="-std=c99 -Os -ffunction-sections -fdata-sections -Wall -Wextra -DNF_MAX_LAYERS=8"
M4F="-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16"
M0="-mcpu=cortex-m0 -mthumb -mfloat-abi=soft"
QEMU="qemu-system-arm -nographic -monitor none -semihosting-config enable=on,target=native"

# the host makes the flow: exported C, model file bytes, test points
gcc -std=c99 -O2 -Wall -Wextra $INC bench/mcu_size_gen.c -o "$B/gen" -lm
"$B/gen" "$B" >"$B/gen.log"
cc -std=c99 -O2 -shared -fPIC -o "$B/libinsncount.so" tests/mcu/insncount.c

# map_sizes MAP REGEX: code rodata data bss of the kept sections whose file matches
map_sizes() {
    awk -v obj="$2" '
        function hex(x,   i, v) { v = 0; x = tolower(substr(x, 3)); for (i = 1; i <= length(x); ++i) v = v * 16 + index("0123456789abcdef", substr(x, i, 1)) - 1; return v }
        function account() { if (file ~ obj && size > 0) {
            if (name ~ /^\.text/) c += size; else if (name ~ /^\.rodata/) r += size;
            else if (name ~ /^\.data/) d += size; else if (name ~ /^(\.bss|COMMON)/) b += size } }
        /^Linker script and memory map/ { on = 1; next }
        !on { next }
        /^ [.A-Z][^ ]*$/ { name = $1; next }
        /^ [.A-Z][^ ]* +0x[0-9a-f]+ +0x[0-9a-f]+ / { name = $1; size = hex($3); file = $4; account(); name = ""; next }
        /^ +0x[0-9a-f]+ +0x[0-9a-f]+ [^ ]/ && name != "" { size = hex($2); file = $3; account(); name = ""; next }
        END { printf "%d %d %d %d\n", c, r, d, b }' "$1"
}
# the library routines nflow_impl.o calls (libm, libgcc), from the map's archive list, and
# the bytes of code and constants the library members they come from keep in the image
pulled_by_nflow() {
    awk 'function hex(x,   i, v) { v = 0; x = tolower(substr(x, 3)); for (i = 1; i <= length(x); ++i) v = v * 16 + index("0123456789abcdef", substr(x, i, 1)) - 1; return v }
         function account() { if ((file in want) && name ~ /^\.(text|rodata)/) bytes += size }
         /^Archive member included/ { arch = 1; next }
         /^(Discarded input|Memory Configuration)/ { arch = 0 }
         arch && /^[^ ]/ { member = $1 }
         arch && /nflow_impl\.o \(/ { sym = $0; sub(/.*nflow_impl\.o \(/, "", sym); sub(/\).*/, "", sym)
                                      names = names (names ? ", " : "") sym; want[member] = 1; next }
         /^Linker script and memory map/ { on = 1; next }
         !on { next }
         /^ [.][^ ]*$/ { name = $1; next }
         /^ [.][^ ]* +0x[0-9a-f]+ +0x[0-9a-f]+ / { name = $1; size = hex($3); file = $4; account(); name = ""; next }
         /^ +0x[0-9a-f]+ +0x[0-9a-f]+ [^ ]/ && name != "" { size = hex($2); file = $3; account(); name = ""; next }
         END { printf "%d B: %s\n", bytes, names }' "$1"
}
run_elf() {   # elf machine [plugin-out]
    if [ -n "${3:-}" ]; then timeout 300 $QEMU -M "$2" -plugin "$B/libinsncount.so,out=$3" -kernel "$1" </dev/null
    else timeout 300 $QEMU -M "$2" -kernel "$1" </dev/null; fi
}
count_of() { sed -n 's/^insns \([0-9]*\)$/\1/p' "$1"; }

# build ROW CPU-NAME CPU-FLAGS LD SWITCHES FW-FLAGS...: $B/$ROW-$CPU.elf and .map
build() {
    local row=$1 cpu=$2 flags=$3 ld=$4 sw=$5 o="$B/$1-$2"; shift 5
    mkdir -p "$o"
    if [ -z "${REUSE_IMPL:-}" ]; then   # a rebuild that changes only the firmware's own flags
        arm-none-eabi-gcc $flags $COMMON $sw $INC "$@" -c bench/mcu_size_impl.c -o "$o/nflow_impl.o"
        arm-none-eabi-gcc $flags $COMMON -c tests/mcu/startup.c -o "$o/startup.o"
    fi
    if [ "${row#row4}" != "$row" ]; then
        arm-none-eabi-gcc $flags $COMMON $sw $INC "$@" -DTOD_NFLOW_ELSEWHERE -c examples/firmware/train_on_device.c -o "$o/fw.o"
        set -- "$o/fw.o"
    else
        arm-none-eabi-gcc $flags $COMMON $sw $INC -I"$B" "$@" -c bench/mcu_size_fw.c -o "$o/fw.o"
        arm-none-eabi-gcc $flags $COMMON $sw $INC -I"$B" -c "$B/size_flow.c" -o "$o/size_flow.o"
        set -- "$o/fw.o" "$o/size_flow.o"
    fi
    arm-none-eabi-gcc $flags "$@" "$o/nflow_impl.o" "$o/startup.o" -specs=rdimon.specs -nostartfiles -Ltests/mcu -T"$ld" \
        -Wl,--gc-sections -Wl,--defsym=__STACK_SIZE=${STACK:-0x1000} -Wl,-Map="$B/$row-$cpu.map" -lm -o "$B/$row-$cpu.elf"
}

# the loader's RAM: built once with room to spare, it prints what the flow needs
build probe m4f "$M4F" mps2_an386.ld "$ROW2_SW" -DSIZE_LOAD -DSIZE_RAM=32768 2>"$B/build.log"
run_elf "$B/probe-m4f.elf" mps2-an386 >"$B/probe.log" || { cat "$B/probe.log"; exit 1; }
RAM=$(sed -n 's/^size: the flow needs \([0-9]*\) bytes.*/\1/p' "$B/probe.log")
build probe3 m4f "$M4F" mps2_an386.ld "$ROW3_SW" -DSIZE_LOAD -DSIZE_RAM=32768 2>>"$B/build.log"
run_elf "$B/probe3-m4f.elf" mps2-an386 >"$B/probe3.log" || { cat "$B/probe3.log"; exit 1; }
RAM3=$(sed -n 's/^size: the flow needs \([0-9]*\) bytes.*/\1/p' "$B/probe3.log")

declare -A TXT RO RAMS STK INS NOTE
row_fw_flags() {
    case $1 in row1) echo "-DSIZE_CONST" ;; row2) echo "-DSIZE_LOAD -DSIZE_RAM=$RAM" ;; row3) echo "-DSIZE_LOAD -DSIZE_RAM=$RAM3" ;; esac
}
row_sw() { case $1 in row1) echo "$ROW1_SW" ;; row2) echo "$ROW2_SW" ;; row3) echo "$ROW3_SW" ;; row4) echo "$ROW4_SW" ;; esac; }

for row in row1 row2 row3; do
    sw=$(row_sw $row); fw=$(row_fw_flags $row)
    for t in "m4f|$M4F|mps2_an386.ld|mps2-an386" "m0|$M0|microbit.ld|microbit"; do
        IFS='|' read -r cpu flags ld mach <<<"$t"
        build $row $cpu "$flags" $ld "$sw" $fw 2>>"$B/build.log"
        read -r c r d b <<<"$(map_sizes "$B/$row-$cpu.map" 'nflow_impl\.o$')"
        TXT[$row-$cpu]=$c; RO[$row-$cpu]=$r
        run_elf "$B/$row-$cpu.elf" $mach "$B/c1.txt" >"$B/$row-$cpu.log" || { echo "mcu_size: $row on $cpu failed:"; cat "$B/$row-$cpu.log"; exit 1; }
        cp "$B/$row-$cpu.elf" "$B/$row-$cpu.1.elf"
        REUSE_IMPL=1 build $row $cpu "$flags" $ld "$sw" $fw -DLP_REPS=11 2>>"$B/build.log"
        run_elf "$B/$row-$cpu.elf" $mach "$B/c11.txt" >/dev/null
        INS[$row-$cpu]=$(( ($(count_of "$B/c11.txt") - $(count_of "$B/c1.txt")) / 160 ))
        mv "$B/$row-$cpu.1.elf" "$B/$row-$cpu.elf"
        if [ $cpu = m4f ]; then
            STK[$row]=$(sed -n 's/.*stack high-water \([0-9]*\) bytes.*/\1/p' "$B/$row-$cpu.log")
            read -r _ _ ld_ lb_ <<<"$(map_sizes "$B/$row-$cpu.map" '\.a\(')"
            read -r _ _ ad ab <<<"$(map_sizes "$B/$row-$cpu.map" '.')"
            RAMS[$row]="$((ad + ab)) ($((ld_ + lb_)) newlib)"
            NOTE[$row]=$(pulled_by_nflow "$B/$row-$cpu.map")
        fi
    done
done

# row 4: the training example, 64 KiB of RAM; the M0 build is linked only to size it
row=row4; sw=$ROW4_SW
STACK=0x1800 build $row m4f "$M4F" mps2_an386_64k.ld "$sw" -DSIZE_TRAIN 2>>"$B/build.log"
read -r c r d b <<<"$(map_sizes "$B/$row-m4f.map" 'nflow_impl\.o$')"; TXT[$row-m4f]=$c; RO[$row-m4f]=$r
run_elf "$B/$row-m4f.elf" mps2-an386 >"$B/$row-m4f.log" || { echo "mcu_size: the training firmware failed:"; tail -20 "$B/$row-m4f.log"; exit 1; }
STK[$row]=$(sed -n 's/^ram: stack high-water \([0-9]*\) of.*/\1/p' "$B/$row-m4f.log")
read -r _ _ ld_ lb_ <<<"$(map_sizes "$B/$row-m4f.map" '\.a\(')"
read -r _ _ ad ab <<<"$(map_sizes "$B/$row-m4f.map" '.')"
RAMS[$row]="$((ad + ab)) ($((ld_ + lb_)) newlib)"
NOTE[$row]=$(pulled_by_nflow "$B/$row-m4f.map")
STACK=0x1800 build $row m0 "$M0" mps2_an386_64k.ld "$sw" -DSIZE_TRAIN 2>>"$B/build.log"
read -r c r d b <<<"$(map_sizes "$B/$row-m0.map" 'nflow_impl\.o$')"; TXT[$row-m0]=$c; RO[$row-m0]=$r
steps() {   # M4F instructions for N training steps (held-out evaluation only at the end)
    STACK=0x1800 build row4steps m4f "$M4F" mps2_an386_64k.ld "$sw" -DSIZE_TRAIN -DTOD_STEPS=$1 -DTOD_EVAL_EVERY=1000000 2>>"$B/build.log"
    run_elf "$B/row4steps-m4f.elf" mps2-an386 "$B/cs.txt" >"$B/row4steps.log" || true
    grep -q '^result:' "$B/row4steps.log" || { echo "mcu_size: the training firmware failed:" >&2; head -5 "$B/row4steps.log" >&2; exit 1; }
    count_of "$B/cs.txt"
}
s1=$(steps 100); s2=$(REUSE_IMPL=1 steps 200)
INS[$row-m4f]="$(( (s2 - s1) / 100 )) per training step"; INS[$row-m0]="-"

kb() { awk -v v="$1" 'BEGIN { printf "%.2f KB", v / 1024 }'; }
echo
echo "nflow on a microcontroller, measured $(date -u +%Y-%m-%d) (arm-none-eabi-gcc $(arm-none-eabi-gcc -dumpversion), -Os, --gc-sections; flow: RealNVP 4 x 16, 2-D, 1,352 parameters)"
echo
echo "| configuration | M4F nflow .text (+ consts) | M0 nflow .text (+ consts) | static RAM, M4F (newlib's) | stack high-water, M4F | instructions per log_prob row, M4F / M0 |"
echo "|---|---|---|---|---|---|"
label() { case $1 in
    row1) echo "1. exported RealNVP, evaluate + sample" ;;
    row2) echo "2. + model-file loader (weights in RAM, $RAM B)" ;;
    row3) echo "3. full inference-only build (every layer kind; loader, weights in RAM, $RAM3 B)" ;;
    row4) echo "4. on-device training (train_on_device.c)" ;; esac; }
for row in row1 row2 row3 row4; do
    echo "| $(label $row) | $(kb ${TXT[$row-m4f]}) (+${RO[$row-m4f]} B) | $(kb ${TXT[$row-m0]}) (+${RO[$row-m0]} B) | ${RAMS[$row]} B | ${STK[$row]} B | ${INS[$row-m4f]} / ${INS[$row-m0]} |"
done
echo
echo "Switches per row:"
for row in row1 row2 row3 row4; do echo "- $row: $(row_sw $row | tr -s ' \n' ' ')"; done
echo
echo "libm/libgcc routines nflow's object calls on the M4F, not in the .text columns (code + constants of the library members they pull in, some shared with the rest of the firmware):"
for row in row1 row2 row3 row4; do echo "- $row: ${NOTE[$row]}"; done
echo
echo "Largest nflow sections kept in row 1 on the M4F (bytes):"
awk '/^Linker script and memory map/ { on = 1; next } !on { next }
     /^ [.][^ ]*$/ { name = $1; next }
     /^ [.][^ ]* +0x[0-9a-f]+ +0x[0-9a-f]+ .*nflow_impl\.o$/ { print $3, $1; next }
     /^ +0x[0-9a-f]+ +0x[0-9a-f]+ .*nflow_impl\.o$/ && name != "" { print $2, name; name = "" }' "$B/row1-m4f.map" |
    while read -r hexsize name; do echo "$((hexsize)) $name"; done | sort -rn | head -15 | awk '{ printf "    %6d  %s\n", $1, $2 }'
