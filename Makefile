# lungcad: `make test` and `make demo` work on a fresh clone (they create .venv themselves).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
SCAN ?=
DEMO_OUT ?= demo_out

.PHONY: setup test lint format demo bench golden-update clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test,export]'
	touch $@

setup: $(VENV)/.installed

lint: setup
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

format: setup
	$(BIN)/ruff check --fix src tests benchmarks scripts
	$(BIN)/ruff format src tests benchmarks scripts

test: lint
	$(BIN)/python -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo 'pytest collected no tests' >&2; exit 1; fi; exit $$rc

demo: setup
	$(BIN)/python scripts/demo.py $(if $(SCAN),--scan $(SCAN)) --out $(DEMO_OUT)

# Rewrites tests/golden/expected/*.json from the current code (prints the differences first); only for an
# intended change, explained in the commit.  Tests never rewrite them.
golden-update: setup
	$(BIN)/python -m tests.golden.update

bench: setup
	$(BIN)/python benchmarks/bench_intake.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache .ruff_cache
