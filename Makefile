# nflow: `make demo` runs the main example, `make test` runs every test.
CC      ?= gcc
CFLAGS  ?= -std=c99 -O2 -march=native -Wall -Wextra -pedantic
LDLIBS  = -lm
BUILD   = build

.PHONY: all demo test bench clean examples

all: examples

$(BUILD):
	mkdir -p $(BUILD)

$(BUILD)/%: examples/%.c nflow.h examples/png.h | $(BUILD)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

examples: $(BUILD)/two_moons $(BUILD)/bimodal_1d

demo: $(BUILD)/two_moons
	./$(BUILD)/two_moons

test:
	bash tests/run.sh

$(BUILD)/bench_gemm: bench/bench_gemm.c nflow.h | $(BUILD)
	$(CC) -std=c99 -O3 -march=native $< -o $@ $(LDLIBS)

bench: $(BUILD)/bench_gemm
	./$(BUILD)/bench_gemm

clean:
	rm -rf $(BUILD)
