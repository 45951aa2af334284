# nflow: `make demo` runs the main example, `make test` runs every test.
CC      ?= gcc
CFLAGS  ?= -std=c99 -O3 -march=native -Wall -Wextra -pedantic
LDLIBS  = -lm
BUILD   = build

.PHONY: bench-posteriors all demo test test-mcu bench-mcu bench-scaling bench-gemm-blas fuzz bench bench-compare clean examples mcu-example docs web test-web test-mpi test-cross mpi

all: examples

$(BUILD):
	mkdir -p $(BUILD)

$(BUILD)/%: examples/%.c nflow.h examples/png.h | $(BUILD)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

EXAMPLES = two_moons bimodal_1d teach_steps variational gw_posterior ringdown mcu_export toy2d gw150914_ringdown gw150914_t0
$(BUILD)/gw150914_ringdown $(BUILD)/gw150914_t0: examples/gw150914_ringdown.h
examples: $(addprefix $(BUILD)/,$(EXAMPLES))

demo: $(BUILD)/two_moons
	./$(BUILD)/two_moons

test:
	bash tests/run.sh

# flows exported from the host, run on emulated Cortex-M4F, Cortex-M0 and RISC-V (QEMU)
test-mcu:
	bash tests/mcu/run.sh; a=$$?; bash tests/mcu/run_riscv.sh; b=$$?; bash tests/mcu/run_train.sh; c=$$?; \
	[ $$a -eq 0 ] && [ $$b -eq 0 ] && [ $$c -eq 0 ]

# executed instructions per log_prob row, sample and training step (QEMU plugin), and
# .text/RAM of the firmware configurations (arm-none-eabi-size)
bench-mcu:
	bash bench/mcu_count.sh; bash bench/mcu_size.sh

# the browser lesson: nflow.h compiled to WebAssembly, page in build/web/
web:
	bash web/build.sh

# the lesson page in headless Chromium (QUICK=1: fewer steps)
test-web:
	bash tests/web/run.sh $(if $(QUICK),--quick,)

# data-parallel training on Open MPI (2 processes)
test-mpi:
	bash tests/mpi/run.sh

# data-parallel training on MPI (needs an MPI compiler: Debian's libopenmpi-dev):
# make mpi, then mpirun -np 4 build/mpi_train
MPICC ?= mpicc
$(BUILD)/mpi_train: examples/mpi_train.c nflow.h | $(BUILD)
	$(MPICC) -DNFLOW_MPI $(CFLAGS) $< -o $@ $(LDLIBS)
mpi: $(BUILD)/mpi_train

# model files and a quick unit-test subset on 32-bit, ARM and big-endian targets (qemu-user)
test-cross:
	bash tests/cross/run.sh

FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/run.sh
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/run_api.sh

# train on the desktop, export C source, build firmware, run it on an emulated Cortex-M4F
MCU_CPU = -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16
mcu-example: $(BUILD)/mcu_export
	./$(BUILD)/mcu_export --out $(BUILD)
	cp nflow.h $(BUILD)/
	arm-none-eabi-gcc $(MCU_CPU) -std=c99 -Os -ffunction-sections -fdata-sections \
	  -DNFLOW_NO_TRAINING -DNFLOW_NO_STDIO -DNF_MAX_LAYERS=8 -I$(BUILD) \
	  examples/firmware/main.c $(BUILD)/moons_flow.c tests/mcu/startup.c \
	  -specs=rdimon.specs -nostartfiles -Ltests/mcu -Tmps2_an386.ld -Wl,--gc-sections -lm -o $(BUILD)/firmware.elf
	arm-none-eabi-size $(BUILD)/firmware.elf
	qemu-system-arm -M mps2-an386 -nographic -monitor none -semihosting-config enable=on,target=native -kernel $(BUILD)/firmware.elf

# regenerate the pictures in docs/ (DOCS_OUT=dir DOCS_FLAGS=--quick: elsewhere, fast)
DOCS_OUT ?= docs
docs: examples
	mkdir -p $(DOCS_OUT)
	./$(BUILD)/two_moons --out $(DOCS_OUT) $(DOCS_FLAGS)
	./$(BUILD)/bimodal_1d --out $(DOCS_OUT) $(DOCS_FLAGS)
	./$(BUILD)/variational --out $(DOCS_OUT) $(DOCS_FLAGS)
	./$(BUILD)/gw_posterior examples/data/gw170814_posterior.csv --out $(DOCS_OUT) $(DOCS_FLAGS)
	./$(BUILD)/toy2d --out $(DOCS_OUT) $(DOCS_FLAGS)
	./$(BUILD)/gw150914_ringdown --out $(DOCS_OUT)   # always the full run: ~10-25 s
	./$(BUILD)/gw150914_t0 --out $(DOCS_OUT)   # always the full run: ~1 min

$(BUILD)/bench_gemm: bench/bench_gemm.c nflow.h | $(BUILD)
	$(CC) -std=c99 -O3 -march=native $< -o $@ $(LDLIBS)

$(BUILD)/bench_flows: bench/bench_flows.c nflow.h | $(BUILD)
	$(CC) -std=c99 -O3 -march=native $< -o $@ $(LDLIBS)

# nf_gemm against OpenBLAS at the flow shapes (needs libopenblas-dev)
$(BUILD)/gemm_blas: bench/gemm_blas.c nflow.h | $(BUILD)
	$(CC) -std=c99 -O3 -march=native $< -o $@ -lopenblas $(LDLIBS)
bench-gemm-blas: $(BUILD)/gemm_blas
	OPENBLAS_CORETYPE=$${OPENBLAS_CORETYPE:-$$(grep -q avx512f /proc/cpuinfo && echo SkylakeX || echo Haswell)} ./$(BUILD)/gemm_blas

bench: $(BUILD)/bench_gemm $(BUILD)/bench_flows
	./$(BUILD)/bench_gemm
	./$(BUILD)/bench_flows

$(BUILD)/scaling: bench/scaling.c nflow.h examples/png.h | $(BUILD)
	$(CC) -std=c99 -O3 -march=native $< -o $@ $(LDLIBS)

# nflow and PyTorch side by side (needs python3-torch and libopenblas0-openmp)
# nf_infer on every benchmark posterior with defaults, 3 seeds, double (bench/posteriors/README.md)
bench-posteriors: | $(BUILD)
	$(CC) -std=c99 -O3 -march=native -DNFLOW_DOUBLE bench/posteriors/bench_infer.c -o $(BUILD)/bench_infer $(LDLIBS)
	./$(BUILD)/bench_infer --seeds 3

bench-compare: $(BUILD)/bench_flows
	/usr/bin/python3 bench/compare.py

# one training step's time over batch, width, dimension and depth sweeps, nflow and
# PyTorch interleaved: build/scaling.md and docs/scaling.png
bench-scaling: $(BUILD)/scaling
	/usr/bin/python3 bench/compare.py --scaling

clean:
	rm -rf $(BUILD)
