#!/usr/bin/env bash
# Executed instructions per log_prob evaluation and per sample on an emulated
# Cortex-M4F (and M0), for the flow of tests/mcu (RealNVP 6 x 24, 2-D). Counts are
# exact and repeatable (a QEMU TCG plugin counts every executed instruction); they
# are instructions, not cycles. Needs ../shared/tools/mcu/insncount.c for the plugin.
# Method: build the firmware with 1 and with 11 repetitions of the 16-row batch,
# subtract, divide by 10 x 16.
set -eu
cd "$(dirname "$0")/.."
B=build/mcu
[ -f "$B/moons_flow.c" ] || bash tests/mcu/run.sh >/dev/null
PLUGIN_SRC=../shared/tools/mcu/insncount.c
gcc -shared -fPIC -O2 -o "$B/libinsncount.so" "$PLUGIN_SRC"
count() {   # name cpu ld machine stack lp_reps s_reps
    local elf="$B/count.elf"
    arm-none-eabi-gcc $2 -std=c99 -Os -ffunction-sections -fdata-sections -DNFLOW_NO_TRAINING -DNFLOW_NO_STDIO -DNF_MAX_LAYERS=8 \
        -DLP_REPS=$6 -DS_REPS=$7 -I$B -specs=rdimon.specs -nostartfiles -Ltests/mcu -T$3 -Wl,--gc-sections \
        -Wl,--defsym=__STACK_SIZE=$5 tests/mcu/fw_main.c $B/moons_flow.c tests/mcu/startup.c -lm -o "$elf"
    qemu-system-arm -M $4 -nographic -monitor none -semihosting-config enable=on,target=native \
        -plugin "$B/libinsncount.so,out=$B/count.txt" -kernel "$elf" </dev/null >/dev/null
    grep -oE '[0-9]+' "$B/count.txt" | tail -1
}
for target in "cortex-m4f|-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16|mps2_an386.ld|mps2-an386|0x2000" \
              "cortex-m0|-mcpu=cortex-m0 -mthumb -mfloat-abi=soft|microbit.ld|microbit|0x1000"; do
    IFS='|' read -r name cpu ld mach stack <<<"$target"
    base=$(count "$name" "$cpu" "$ld" "$mach" "$stack" 1 1)
    lp=$(count "$name" "$cpu" "$ld" "$mach" "$stack" 11 1)
    sa=$(count "$name" "$cpu" "$ld" "$mach" "$stack" 1 11)
    echo "$name: $(( (lp - base) / 160 )) instructions per log_prob row, $(( (sa - base) / 160 )) per sample (batch of 16 rows; total run $base)"
done
