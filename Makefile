# The two commands a fresh clone needs: `make demo` and `make test`.
# Both create the virtual env (.venv) and install the project into it first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test bench clean

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

# Issue 13's speed goals P1–P5 side by side (benchmarks/README.md); e.g.
# `make bench BENCH_ARGS=--quick` or `BENCH_ARGS="--only P1,P3 --json"`.
bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_speed.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info
