# lungcad: `make test` and `make demo` work on a fresh clone (they create .venv themselves).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
SCAN ?=
DEMO_OUT ?= demo_out
# Where pip looks for torch.  Empty (the default): pip's own configuration decides, i.e. PyPI, plus any
# index or find-links that pip.conf / PIP_* variables add.  Set it to choose a build, e.g.
#   make setup TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu     (CPU only, ~200 MB)
#   make setup TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126   (CUDA 12.6; pick yours)
TORCH_INDEX_URL ?=

.PHONY: setup web system-deps test lint format demo bench bench-check bench-baseline golden-update clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL)) torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test,export,docs]'
	touch $@

setup: $(VENV)/.installed web

# The dashboard (web/, served by the API under /ui): npm ci from package-lock.json, then esbuild bundles it
# into src/lungcad/service/web_dist/ (git-ignored); redone only when its sources change.  Needs Node 18+.
WEB_DIST := src/lungcad/service/web_dist
WEB_SRC := $(shell find web/src -type f 2>/dev/null) web/build.mjs web/package.json
web/node_modules/.installed: web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $@

$(WEB_DIST)/.built: web/node_modules/.installed $(WEB_SRC)
	cd web && npm run --silent build
	touch $@

web: $(WEB_DIST)/.built

# System libraries the report needs (WeasyPrint: Pango; tests: poppler-utils, dicom3tools, and the real
# PostgreSQL / Redis servers the service tests start; chromium: the dashboard's browser tests). .ci/run installs
# them itself; on a developer machine run `make system-deps` once (as root, Debian / Ubuntu).
SYSTEM_DEPS := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 fonts-dejavu-core poppler-utils dicom3tools \
  postgresql redis-server chromium orthanc orthanc-dicomweb
system-deps:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_DEPS)

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

# The documentation site (mkdocs.yml): the reference pages are generated from the code into docs/reference/
# (scripts/gen_docs.py, also run by mkdocs as a hook), then built with --strict into site/ (both git-ignored).
# `make whitepaper` renders docs/whitepaper.md to docs/whitepaper.pdf (WeasyPrint; git-ignored).
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

whitepaper: setup
	$(BIN)/python scripts/build_whitepaper.py

# Rewrites tests/golden/expected/*.json and the report's figure goldens from the current code (prints the differences first); only for an
# intended change, explained in the commit.  Tests never rewrite them.
golden-update: setup
	$(BIN)/python -m tests.golden.update
	$(BIN)/python -m tests.report.update_figures

bench: setup
	$(BIN)/python benchmarks/bench_intake.py

# Runs every benchmark in its quick mode (same sizes, fewer repeats; ~5-10 min on 2 cores, with the real
# LIDC-IDRI-0001 series when ../shared/data is there) and fails when an ours / reference ratio is more
# than 20 % above benchmarks/baseline.json.  Results: benchmarks/results/<name>.json.  Run it on a quiet
# machine: the ratios cancel the machine's speed, not other work competing for the cores.
bench-check: setup
	$(BIN)/python benchmarks/check.py

# Records the quick run's ratios as the new baseline (commit benchmarks/baseline.json afterwards).
bench-baseline: setup
	$(BIN)/python benchmarks/check.py --update-baseline

clean:
	rm -rf $(DEMO_OUT) .pytest_cache .ruff_cache site docs/reference
