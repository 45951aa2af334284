#!/usr/bin/env bash
# make test-mcu: a flow trained on the host, exported as C, built for a Cortex-M4F
# (QEMU mps2-an386) and a Cortex-M0 with 16 KiB RAM (QEMU microbit), run under
# semihosting; each must match the host within 1e-5 relative (plus, per value, the host
# float's own error against double, gen_ref.c, and for a sample's log p the change its
# ulp-sized move explains, from the host's gradient). Prints ok/FAIL lines
# and a closing "N passed, M failed" when run alone.
set -u
cd "$(dirname "$0")/../.."
B=build/mcu
H=tests/mcu
mkdir -p "$B"
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "ok $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && tail -20 "$2" | sed 's/^/#   /'; }
for tool in arm-none-eabi-gcc qemu-system-arm; do
    command -v $tool >/dev/null || { echo "FAIL mcu_toolchain_missing ($tool: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)"; echo "0 passed, 1 failed"; exit 1; }
done
# gen_ref DIR: the double-precision reference of DIR's test points (DIR/lp_slack.h)
gen_ref() { gcc -std=c99 -O2 -Wall -Wextra -DNFLOW_DOUBLE -I"$1" $H/gen_ref.c -o "$1/gen_ref" -lm && "$1/gen_ref" > "$1/lp_slack.h"; }
if gcc -std=c99 -O2 -Wall -Wextra $H/gen_model.c -o "$B/gen_model" -lm >"$B/gen.log" 2>&1 && "$B/gen_model" "$B" >>"$B/gen.log" 2>&1 \
   && gen_ref "$B" >>"$B/gen.log" 2>&1; then
    ok mcu_host_trains_and_exports; else bad mcu_host_trains_and_exports "$B/gen.log"; echo "$pass passed, $fail failed"; exit 1; fi
sed 's/^/# /' "$B/gen.log"
cp nflow.h "$B/"
# the newer kinds too: a spline coupling flow and a spline MAF (whose sampling runs dim
# sequential passes), each exported into its own directory
for k in nsf maf; do
    mkdir -p "$B/$k"; cp nflow.h "$B/$k/"
    if "$B/gen_model" "$B/$k" $k >"$B/$k/gen.log" 2>&1 && gen_ref "$B/$k" >>"$B/$k/gen.log" 2>&1; then ok "mcu_host_trains_and_exports_$k"; sed 's/^/# /' "$B/$k/gen.log"
    else bad "mcu_host_trains_and_exports_$k" "$B/$k/gen.log"; fi
done
# the exported sources compile warning-free as C and C++ on the host too (also under
# -Wconversion -Wsign-conversion)
XW="-Wconversion -Wsign-conversion"
if gcc -std=c99 -Wall -Wextra -pedantic -Werror $XW -DNFLOW_NO_TRAINING -I"$B" -c "$B/moons_flow.c" -o "$B/moons_host.o" >"$B/export_c.log" 2>&1 \
   && g++ -std=c++11 -Wall -Wextra -Werror $XW -DNFLOW_NO_TRAINING -I"$B" -x c++ -c "$B/moons_flow.c" -o "$B/moons_host_cxx.o" >>"$B/export_c.log" 2>&1; then
    ok mcu_export_compiles_c_and_cxx; else bad mcu_export_compiles_c_and_cxx "$B/export_c.log"; fi
# the implementation for the firmware under -Wconversion -Wsign-conversion -Wdouble-promotion
# -Werror: Cortex-M4F inference-only and with training, Cortex-M0
MW="-std=c99 -Os -Wall -Wextra -pedantic -Werror -Wshadow -Wdouble-promotion $XW -DNFLOW_NO_STDIO -DNF_MAX_LAYERS=8 -c tests/compile/impl.c"
M4F="-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16"
if arm-none-eabi-gcc $M4F $MW -DNFLOW_NO_TRAINING -o "$B/wconv_m4f.o" >"$B/wconv.log" 2>&1 \
   && arm-none-eabi-gcc $M4F $MW -o "$B/wconv_m4f_train.o" >>"$B/wconv.log" 2>&1 \
   && arm-none-eabi-gcc -mcpu=cortex-m0 -mthumb -mfloat-abi=soft $MW -DNFLOW_NO_TRAINING -o "$B/wconv_m0.o" >>"$B/wconv.log" 2>&1; then
    ok mcu_header_wconversion; else bad mcu_header_wconversion "$B/wconv.log"; fi

build_run() {   # name cpu-flags linker-script qemu-machine stack [model-dir [extra flags]]
    local name=$1 cpu=$2 ld=$3 mach=$4 stack=$5 M=${6:-$B} elf="$B/$1.elf"
    local flags="$cpu -std=c99 -Os -ffunction-sections -fdata-sections -Wall -Wextra -DNFLOW_NO_TRAINING -DNFLOW_NO_STDIO -DNF_MAX_LAYERS=8 -I$M ${7:-}"
    if arm-none-eabi-gcc $flags -specs=rdimon.specs -nostartfiles -L$H -T$ld -Wl,--gc-sections -Wl,--defsym=__STACK_SIZE=$stack \
         -Wl,-Map="$B/$name.map" $H/fw_main.c "$M/moons_flow.c" $H/startup.c -lm -o "$elf" >"$B/$name.build.log" 2>&1; then
        ok "mcu_${name}_builds"
    else bad "mcu_${name}_builds" "$B/$name.build.log"; return; fi
    arm-none-eabi-size "$elf" | sed "s/^/# [$name] /"
    timeout 120 qemu-system-arm -M "$mach" -nographic -monitor none -semihosting-config enable=on,target=native \
        -kernel "$elf" </dev/null >"$B/$name.run.log" 2>&1
    local rc=$?
    sed "s/^/# [$name] /" "$B/$name.run.log"
    if [ $rc -eq 0 ]; then ok "mcu_${name}_matches_host"; else bad "mcu_${name}_matches_host (exit $rc)" "$B/$name.run.log"; fi
}
build_run cortex_m4f "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16" mps2_an386.ld mps2-an386 0x2000
build_run cortex_m0 "-mcpu=cortex-m0 -mthumb -mfloat-abi=soft" microbit.ld microbit 0x1000
# the model-file loader on the device: the same flow's file embedded as bytes, loaded into
# a static buffer at run time (its 4,188 weights need RAM: the M4F, not the 16 KiB M0)
build_run cortex_m4f_loader "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16" mps2_an386.ld mps2-an386 0x2000 "$B" -DFW_LOAD
for k in nsf maf; do
    [ -f "$B/$k/moons_flow.c" ] || continue
    build_run cortex_m4f_$k "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16" mps2_an386.ld mps2-an386 0x2000 "$B/$k"
    build_run cortex_m0_$k "-mcpu=cortex-m0 -mthumb -mfloat-abi=soft" microbit.ld microbit 0x1000 "$B/$k"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
