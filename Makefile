# The two commands of the README:
#   make demo   install what is missing, build, run baseline + search on optimizations.json,
#               end with the path of the report
#   make test   install what is missing, build (plain and ASan+UBSan), run the whole suite
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
DEMO_RESULTS ?= results/demo

.PHONY: all deps test-deps build build-asan demo test test-plain test-asan test-fuzz bench bench-llama clean

all: build

deps:
	scripts/install-deps.sh --nsys

# the tests also render the report in a real browser, run a real Slurm and read the
# reports Nsight Compute ships
test-deps:
	scripts/install-deps.sh --nsys --ncu --browser --slurm

build:
	cmake -S . -B $(BUILD) -DKNOB_WERROR=ON
	cmake --build $(BUILD) -j $(JOBS)

build-asan:
	cmake -S . -B $(ASAN_BUILD) -DKNOB_WERROR=ON -DKNOB_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
	cmake --build $(ASAN_BUILD) -j $(JOBS)

# Runs the main job twice on the default config: the baseline, then the search.
demo: deps build
	rm -rf $(DEMO_RESULTS)
	$(BUILD)/knobengine --config optimizations.json --results $(DEMO_RESULTS)
	$(BUILD)/knobengine --config optimizations.json --results $(DEMO_RESULTS)
	@echo "The report: $(DEMO_RESULTS)/search/latest/report.html (and report.md beside it)"

test: test-deps test-plain test-asan test-fuzz

test-plain: build
	ctest --test-dir $(BUILD) --output-on-failure -j 2

# The sanitizer build runs the suite with C, Lua and the real binaries (knobengine and
# knobsim) under ASan+UBSan. Left out: the timing-sensitive knobsim tests, and the nsys
# tests, whose injection library cannot share a process with the ASan runtime.
test-asan: build-asan
	ASAN_OPTIONS=detect_leaks=1:exitcode=66 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(ASAN_BUILD) --output-on-failure -j 2 -E '^e2e_(sim|nsys)$$'

# libFuzzer targets (SSE parser, config loader), each run for a bounded time.
test-fuzz:
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DKNOB_FUZZ=ON -DKNOB_WERROR=ON -DCMAKE_BUILD_TYPE=Debug
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	ctest --test-dir $(FUZZ_BUILD) --output-on-failure

# Benchmarks print figures; they are not pass/fail. Installs wrk (and nsys) if missing,
# and the peers it is compared with (AIPerf, GuideLLM, Optuna: pinned, from PyPI, into
# build-peers/; neither demo nor test needs them).
bench: build
	scripts/install-deps.sh --nsys --bench
	scripts/install-peers.sh || echo "make bench: the peers are not installed; their rows print n/a" >&2
	cmake --build $(BUILD) --target bench

# knobengine searching a real CPU inference engine (llama-cpp-python's server and a
# random-weight model it writes): bench/llama_cpu.py, findings in docs/benchmarks.md.
bench-llama: build
	scripts/install-deps.sh --nsys --bench
	scripts/install-peers.sh --only-llama
	python3 bench/llama_cpu.py $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
