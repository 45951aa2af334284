#!/usr/bin/env bash
# make test-mcu, RISC-V part: the flow that tests/mcu/gen_model.c trains on the host and
# exports as C, built at -Os with tests/mcu/fw_main.c for rv32imac (soft float, like a
# GD32VF103 or an ESP32-C6) and rv32imafc (single-precision FPU, like a CH32V307), with
# our own startup code and linker script (tests/mcu/riscv/), and run on QEMU's virt
# board as a microcontroller with 256 KiB of flash and 16 KiB of RAM. Log-densities and
# samples must match the host within 1e-5 relative, with no heap. Then checks that the
# harness can fail (a host value off by 3e-5, a stack overflow) and that only the
# rv32imafc image has float instructions. Last, exact executed-instruction counts per
# row (QEMU -icount with minstret; RV_COUNT=0 skips them). Run from anywhere; prints
# ok/FAIL lines and a closing "N passed, M failed" when run alone.
set -u
cd "$(dirname "$0")/../.."
B=build/mcu-riscv
H=tests/mcu
R=tests/mcu/riscv
APT="gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc"
mkdir -p "$B"
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "ok $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && tail -20 "$2" | sed 's/^/#   /'; }

missing=""
for tool in riscv64-unknown-elf-gcc qemu-system-riscv32; do
    command -v $tool >/dev/null || missing="$missing $tool"
done
if [ -z "$missing" ] && ! riscv64-unknown-elf-gcc --specs=picolibc.specs -E -x c /dev/null -o /dev/null 2>/dev/null; then
    missing=" picolibc"
fi
if [ -n "$missing" ]; then
    echo "FAIL mcu_riscv_toolchain_missing (no$missing: apt-get install $APT)"
    echo "0 passed, 1 failed"; exit 1
fi

if gcc -std=c99 -O2 -Wall -Wextra $H/gen_model.c -o "$B/gen_model" -lm >"$B/gen.log" 2>&1 && "$B/gen_model" "$B" >>"$B/gen.log" 2>&1 \
   && gcc -std=c99 -O2 -Wall -Wextra -DNFLOW_DOUBLE -I"$B" $H/gen_ref.c -o "$B/gen_ref" -lm >>"$B/gen.log" 2>&1 && "$B/gen_ref" > "$B/lp_slack.h"; then
    ok mcu_riscv_host_trains_and_exports
else bad mcu_riscv_host_trains_and_exports "$B/gen.log"; echo "$pass passed, $fail failed"; exit 1; fi
sed 's/^/# /' "$B/gen.log"

# rv_build ELF MARCH MABI [gcc flags]: fw_main.c + the exported flow + our startup
rv_build() {
    local elf=$1 march=$2 mabi=$3; shift 3
    riscv64-unknown-elf-gcc -march="$march" -mabi="$mabi" --specs=picolibc.specs -std=c99 -Os \
        -ffunction-sections -fdata-sections -Wall -Wextra -pedantic -Werror \
        -DNFLOW_NO_TRAINING -DNFLOW_NO_STDIO -DNF_MAX_LAYERS=8 "$@" -I. -I"$B" \
        -nostartfiles -T$R/virt_rv32.ld -Wl,-Map="${elf%.elf}.map" \
        $H/fw_main.c "$B/moons_flow.c" $R/startup_rv.c -lm -o "$elf"
}
# rv_run ELF QEMU_CPU [qemu flags]: exit status is the firmware's (99: a trap)
rv_run() {
    local elf=$1 cpu=$2; shift 2
    timeout 60 qemu-system-riscv32 -M virt -cpu "$cpu" -bios none -nographic -monitor none "$@" -kernel "$elf" </dev/null
}
# the cores: QEMU's rv32 with the extensions each target lacks switched off, so a
# stray float instruction in the soft-float build would trap
TARGETS="rv32imac|ilp32|rv32,f=false,d=false
rv32imafc|ilp32f|rv32,d=false"

built=""
while IFS='|' read -r name mabi cpu; do
    elf="$B/$name.elf"
    if rv_build "$elf" "$name" "$mabi" >"$B/$name.build.log" 2>&1; then
        ok "mcu_riscv_${name}_builds"; built="$built $name"
    else bad "mcu_riscv_${name}_builds" "$B/$name.build.log"; continue; fi
    riscv64-unknown-elf-size "$elf" | sed "s/^/# [$name] /"
    riscv64-unknown-elf-size "$elf" | awk -v n="$name" 'NR == 2 { printf "# [%s] flash %d bytes (code, constants, .data image); RAM %d bytes static + the 4096-byte stack, of 16384\n", n, $1 + $2, $2 + $3 }'
    riscv64-unknown-elf-nm -S -t d "$elf" | awk -v n="$name" '$3 ~ /^[tT]$/ && $4 ~ /^nf_/ && $4 !~ /^nf_rv_/ { s += $2 } END { printf "# [%s] nflow code linked in: %d bytes\n", n, s }'
    rv_run "$elf" "$cpu" >"$B/$name.run.log" 2>&1
    rc=$?
    sed "s/^/# [$name] /" "$B/$name.run.log"
    if [ $rc -eq 0 ]; then ok "mcu_riscv_${name}_matches_host"; else bad "mcu_riscv_${name}_matches_host (exit $rc)" "$B/$name.run.log"; fi
done <<<"$TARGETS"

# The harness must be able to fail. expect NAME WANT_RC WANT_TEXT LOG: the run's exit
# status and a line of its output.
expect() {
    if [ "$5" -eq "$2" ] && grep -q "$3" "$4"; then ok "$1"; else bad "$1 (exit $5, wanted $2 and '$3')" "$4"; fi
}
case " $built " in *" rv32imac "*)
    # one host log-density moved by 3e-5 relative to max(|value|, 1), as fw_main measures:
    # just over the 1e-5 tolerance
    mkdir -p "$B/perturbed"
    awk '/want_logp\[NPTS\] = \{/ {
             i = index($0, "{"); n = split(substr($0, i + 1), v, ", ")
             a = v[6] < 0 ? -v[6] : v[6]; v[6] = sprintf("%.9g", v[6] + 3e-5 * (a > 1 ? a : 1)); s = substr($0, 1, i)
             for (k = 1; k <= n; ++k) s = s (k > 1 ? ", " : "") v[k]
             print s; next }
         { print }' "$B/expected.h" >"$B/perturbed/expected.h"
    log="$B/perturbed.log"
    if cmp -s "$B/expected.h" "$B/perturbed/expected.h"; then bad "mcu_riscv_detects_a_mismatch (expected.h not perturbed)"
    elif rv_build "$B/perturbed.elf" rv32imac ilp32 -iquote "$B/perturbed" >"$log" 2>&1; then
        rv_run "$B/perturbed.elf" rv32,f=false,d=false >"$log" 2>&1
        expect mcu_riscv_detects_a_mismatch 1 "max relative error: log_prob" "$log" $?
    else bad mcu_riscv_detects_a_mismatch "$log"; fi
    # 512 bytes of stack: the overflow is a store into the PMP-locked flash, a trap
    log="$B/small_stack.log"
    if rv_build "$B/small_stack.elf" rv32imac ilp32 -Wl,--defsym=__STACK_SIZE=0x200 >"$log" 2>&1; then
        rv_run "$B/small_stack.elf" rv32,f=false,d=false >"$log" 2>&1
        expect mcu_riscv_stack_overflow_traps 99 "MCU FAULT mcause=0x00000007" "$log" $?
    else bad mcu_riscv_stack_overflow_traps "$log"; fi
esac
# float arithmetic instructions in each image: none in the soft-float one (which also
# ran on a core without F), the FPU's in the other
nfloat() { riscv64-unknown-elf-objdump -d "$1" | grep -cE '[[:space:]]f(add|sub|mul|div|sqrt|madd|msub|nmadd|nmsub)\.s[[:space:]]'; }
case " $built " in *" rv32imac rv32imafc "*)
    soft=$(nfloat "$B/rv32imac.elf"); hard=$(nfloat "$B/rv32imafc.elf")
    echo "# float arithmetic instructions: $soft in rv32imac, $hard in rv32imafc"
    if [ "$soft" -eq 0 ] && [ "$hard" -gt 0 ]; then ok mcu_riscv_fpu_only_in_rv32imafc
    else bad "mcu_riscv_fpu_only_in_rv32imafc ($soft float instructions in rv32imac, $hard in rv32imafc)"; fi
esac

# Executed instructions (QEMU -icount shift=0 makes minstret count them exactly): the
# firmware with 1 and with 11 passes over the 16-row batches; the difference over 160.
count() {   # name mabi cpu lp_reps s_reps
    rv_build "$B/count.elf" "$1" "$2" -DNF_RV_COUNT -DLP_REPS="$4" -DS_REPS="$5" >"$B/count.log" 2>&1 &&
        rv_run "$B/count.elf" "$3" -icount shift=0 >>"$B/count.log" 2>&1 &&
        sed -n 's/^rv: main executed \([0-9]*\) instructions.*/\1/p' "$B/count.log" | grep .
}
if [ "${RV_COUNT:-1}" != 0 ]; then
    while IFS='|' read -r name mabi cpu; do
        case " $built " in *" $name "*) ;; *) continue ;; esac
        if base=$(count "$name" "$mabi" "$cpu" 1 1) && lp=$(count "$name" "$mabi" "$cpu" 11 1) && sa=$(count "$name" "$mabi" "$cpu" 1 11); then
            echo "# [$name] executed instructions: $(( (lp - base) / 160 )) per log_prob row, $(( (sa - base) / 160 )) per sample (main in total: $base)"
        else bad "mcu_riscv_${name}_instruction_count" "$B/count.log"; fi
    done <<<"$TARGETS"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
