# Custos — top-level entry points. `make demo` and `make test` work on a fresh Debian 12 machine.
BUILD ?= build
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
JOBS ?= $(shell nproc)
# ccache, when the machine has it, only speeds rebuilds; CI's fresh machine builds without it.
LAUNCHER := $(if $(shell command -v ccache),-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)

.PHONY: all deps configure build test test-unit test-sanitize fuzz demo bench format check-format clean

all: build

deps:
	@scripts/deps.sh

configure: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(LAUNCHER) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

# Every test: unit, invariants, canary, integration, conformance vectors (ctest), the layering
# check, the ThreadSanitizer run of the concurrency tests, and a bounded libFuzzer run.
test: build
	@scripts/check_layering.sh
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 300
	@$(MAKE) --no-print-directory test-sanitize
	@$(MAKE) --no-print-directory fuzz

test-unit: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 300

# ThreadSanitizer build of the tests that exercise concurrency (kernel, budget, audit, server).
test-sanitize: deps
	@cmake -S . -B $(TSAN_BUILD) -G Ninja -DCUSTOS_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug $(LAUNCHER) >/dev/null
	@cmake --build $(TSAN_BUILD) -j $(JOBS) --target custos_budget_test custos_audit_test custos_kernel_test \
	  custos_server_test
	@cd $(TSAN_BUILD) && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
	  ctest --output-on-failure -j $(JOBS) --timeout 600 -L 'budget|audit|kernel|server' -E 'Crash|Kill'

# libFuzzer targets (token parser, Datalog parser, log reader, checkpoint parser): clang build with
# ASan + UBSan, ~3 minutes of fuzzing from a corpus of the repository's samples and vectors.
fuzz: deps
	@scripts/fuzz.sh $(FUZZ_BUILD)

demo: build
	@$(BUILD)/custos demo

bench: build
	@scripts/bench.sh $(BUILD)

# Our C++ only: npm installs under tests/ (node_modules, Node's own headers) are not ours to format.
SOURCES = find include src tests bench fuzz -name node_modules -prune -o \( -name '*.h' -o -name '*.cc' \) -print

format:
	@$(SOURCES) | xargs clang-format -i

check-format:
	@$(SOURCES) | xargs clang-format --dry-run --Werror

clean:
	rm -rf $(BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
