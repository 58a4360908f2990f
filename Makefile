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

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_chord.py

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info
