# The two commands a fresh clone needs: `make demo` and `make test`.
# Both create the virtual env (.venv) and install the project into it first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-oldest bench clean

# Running needs only the package; the test extras (pytest, SeaweedFS, Playwright) come
# with `make test`, so `make demo` on a fresh clone installs (and byte-compiles) far less.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-compile -e .  # modules compile on first import
	touch $@

$(BIN)/.installed-test: $(BIN)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/runner demo

test: $(BIN)/.installed-test
	$(BIN)/pytest

# The engine tests (and the first-hour steps of the fleet) on the oldest Python the
# package claims: Debian 12's /usr/bin/python3 (3.11.2) in CI, in a venv of its own.
PYTHON_OLDEST ?= /usr/bin/python3
OLDEST_VENV   ?= .venv-oldest
ENGINE_TESTS  := tests/test_engines.py tests/test_engine_processes.py tests/test_engine_import.py \
                 tests/test_first_hour_fleet.py

$(OLDEST_VENV)/.installed-test: pyproject.toml
	$(PYTHON_OLDEST) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

test-oldest: $(OLDEST_VENV)/.installed-test
	$(OLDEST_VENV)/bin/python --version
	$(OLDEST_VENV)/bin/pytest -q $(ENGINE_TESTS)

# Issue 13's and 24's speed goals P1–P7 side by side, issue 23's fair share off vs on, then
# issue 24's API and schedule goals (benchmarks/README.md); e.g. `make bench BENCH_ARGS=--quick`
# (all quick; `--json` too: four JSON documents, one after the other) or
# `BENCH_ARGS="--only P1,P3" FAIR_ARGS="--repeats 1" API_ARGS="--clients 1" SCHED_ARGS=--full`
# (the schedules bench runs 1,000 schedules unless told --full: 10,000). All always run; the
# status is non-zero when any misses a goal or fails.
FAIR_ARGS  ?= $(filter --quick --json,$(BENCH_ARGS))
API_ARGS   ?= $(filter --quick --json,$(BENCH_ARGS))
SCHED_ARGS ?= $(filter --quick --json,$(BENCH_ARGS))
bench: $(BIN)/.installed
	@status=0; \
	$(BIN)/python benchmarks/bench_speed.py $(BENCH_ARGS) || status=$$?; \
	$(BIN)/python benchmarks/bench_fair_share.py $(FAIR_ARGS) || status=$$?; \
	$(BIN)/python benchmarks/bench_api.py $(API_ARGS) || status=$$?; \
	$(BIN)/python benchmarks/bench_schedules.py $(SCHED_ARGS) || status=$$?; \
	exit $$status

clean:
	rm -rf $(VENV) $(OLDEST_VENV) .pytest_cache *.egg-info
