#!/usr/bin/env bash
# Executed instructions on emulated microcontrollers, exact and repeatable: the project's
# own QEMU TCG plugin (tests/mcu/insncount.c, built here with the host compiler) counts
# every guest instruction. Instructions, not cycles: QEMU models no pipeline, flash wait
# states or FPU latency.
#  1. per log_prob row and per sample, on a Cortex-M4F and a Cortex-M0, for the flow of
#     tests/mcu (RealNVP 6 x 24, 2-D; built by tests/mcu/run.sh if missing): the firmware
#     tests/mcu/fw_main.c with 1 and with 11 passes over its 16-row batches, the
#     difference over 10 x 16;
#  2. per training step of examples/firmware/train_on_device.c (RealNVP 4 x 16, batches
#     of 8 rows, Adam): the firmware with 100 and with 200 steps, the difference over 100
#     (held-out evaluations only at the end, the same in both), on a Cortex-M4F, a
#     Cortex-M3 without FPU (QEMU mps2-an385) and RISC-V rv32imafc when its toolchain is
#     there (RV=0 skips it). Needs the trainer-sizing change of nflow.h that lets a trainer
#     fit in 64 KiB; NFLOW_DIR picks another nflow.h.
set -eu
cd "$(dirname "$0")/.."
B=build/mcu
C=build/mcu-count
mkdir -p "$B" "$C"
INC="-I${NFLOW_DIR:-.}"
[ -f "$B/moons_flow.c" ] || bash tests/mcu/run.sh >/dev/null || true
[ -f "$B/moons_flow.c" ] || { echo "mcu_count: tests/mcu/run.sh did not export the flow (see its output)"; exit 1; }
cc -std=c99 -O2 -Wall -Wextra -shared -fPIC -o "$C/libinsncount.so" tests/mcu/insncount.c

# run_count ELF QEMU-COMMAND...: prints the instructions executed (any exit status)
run_count() {
    local elf=$1; shift
    rm -f "$C/count.txt"
    timeout 300 "$@" -plugin "$C/libinsncount.so,out=$C/count.txt" -kernel "$elf" </dev/null >"$C/run.log" 2>&1 || true
    sed -n 's/^insns \([0-9]*\)$/\1/p' "$C/count.txt" 2>/dev/null | grep . || { echo "mcu_count: no count from $elf" >&2; tail -5 "$C/run.log" >&2; return 1; }
}
ARM_QEMU="qemu-system-arm -nographic -monitor none -semihosting-config enable=on,target=native -M"
M4F="-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16"
M0="-mcpu=cortex-m0 -mthumb -mfloat-abi=soft"
M3="-mcpu=cortex-m3 -mthumb -mfloat-abi=soft"

echo "## log_prob and sample (tests/mcu flow: RealNVP 6 x 24, 2-D, exported as C)"
fw_count() {   # cpu ld machine stack lp_reps s_reps
    arm-none-eabi-gcc $1 -std=c99 -Os -ffunction-sections -fdata-sections -DNFLOW_NO_TRAINING -DNFLOW_NO_STDIO -DNF_MAX_LAYERS=8 \
        -DLP_REPS=$5 -DS_REPS=$6 $INC -I$B -specs=rdimon.specs -nostartfiles -Ltests/mcu -T$2 -Wl,--gc-sections \
        -Wl,--defsym=__STACK_SIZE=$4 tests/mcu/fw_main.c $B/moons_flow.c tests/mcu/startup.c -lm -o "$C/fw.elf"
    run_count "$C/fw.elf" $ARM_QEMU $3
}
for target in "cortex-m4f|$M4F|mps2_an386.ld|mps2-an386|0x2000" "cortex-m0|$M0|microbit.ld|microbit|0x1000"; do
    IFS='|' read -r name cpu ld mach stack <<<"$target"
    base=$(fw_count "$cpu" "$ld" "$mach" "$stack" 1 1)
    lp=$(fw_count "$cpu" "$ld" "$mach" "$stack" 11 1)
    sa=$(fw_count "$cpu" "$ld" "$mach" "$stack" 1 11)
    echo "$name: $(( (lp - base) / 160 )) instructions per log_prob row, $(( (sa - base) / 160 )) per sample (batch of 16 rows; whole run $base)"
done

echo "## training step (examples/firmware/train_on_device.c: RealNVP 4 x 16, 8 rows per step, Adam)"
TRAIN_DEFS="-DNFLOW_NO_STDIO -DNF_MAX_LAYERS=8 -DNFLOW_NO_LU -DNFLOW_NO_MONOTONE -DNFLOW_NO_SPLINE -DNFLOW_NO_AUTOREGRESSIVE
            -DNFLOW_NO_ACTNORM -DNFLOW_NO_DOMAINS -DNFLOW_NO_CONTEXT -DNFLOW_NO_DIAG_BASE -DNFLOW_NO_LOADER -DNFLOW_NO_IMPORTANCE -DNFLOW_NO_THREADS
            -DNFLOW_ACTIVATIONS=0x2u -DTOD_EVAL_EVERY=1000000"
arm_train_count() {   # cpu machine steps
    arm-none-eabi-gcc $1 -std=c99 -Os -ffunction-sections -fdata-sections $TRAIN_DEFS -DTOD_STEPS=$3 $INC \
        examples/firmware/train_on_device.c tests/mcu/startup.c -specs=rdimon.specs -nostartfiles -Ltests/mcu -Tmps2_an386_64k.ld \
        -Wl,--gc-sections -Wl,--defsym=__STACK_SIZE=0x1800 -lm -o "$C/train.elf"
    run_count "$C/train.elf" $ARM_QEMU $2 && trained
}
trained() {   # the run above trained (a trainer that does not fit fails at creation)
    grep -q '^result:' "$C/run.log" || { echo "mcu_count: the training firmware failed:" >&2; head -5 "$C/run.log" >&2; return 1; }
}
rv_train_count() {    # steps
    sed 's/^\( *RAM (rw) *: ORIGIN = 0x80040000, LENGTH = \)16K/\164K/' tests/mcu/riscv/virt_rv32.ld >"$C/virt_rv32_64k.ld"
    riscv64-unknown-elf-gcc -march=rv32imafc -mabi=ilp32f --specs=picolibc.specs -std=c99 -Os -ffunction-sections -fdata-sections \
        $TRAIN_DEFS -DTOD_STEPS=$1 $INC examples/firmware/train_on_device.c tests/mcu/riscv/startup_rv.c -nostartfiles \
        -T"$C/virt_rv32_64k.ld" -Wl,--gc-sections -Wl,--defsym=__STACK_SIZE=0x1800 -lm -o "$C/train_rv.elf"
    run_count "$C/train_rv.elf" qemu-system-riscv32 -M virt -cpu rv32,d=false -bios none -nographic -monitor none && trained
}
report_train() {   # name count100 count200
    echo "$1: $(( ($3 - $2) / 100 )) instructions per training step ($(( ($3 - $2) / 800 )) per minibatch row); setup, data and the final evaluation and verdicts: $(( 2 * $2 - $3 ))"
}
for target in "cortex-m4f|$M4F|mps2-an386" "cortex-m3 (no FPU)|$M3|mps2-an385"; do
    IFS='|' read -r name cpu mach <<<"$target"
    report_train "$name" "$(arm_train_count "$cpu" "$mach" 100)" "$(arm_train_count "$cpu" "$mach" 200)"
done
if [ "${RV:-1}" != 0 ] && command -v riscv64-unknown-elf-gcc >/dev/null && command -v qemu-system-riscv32 >/dev/null; then
    report_train "rv32imafc" "$(rv_train_count 100)" "$(rv_train_count 200)"
fi
