# One virtual environment in .venv; every target installs what it needs first (idempotent).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
DEMO_OUT ?= demo-out
# pip byte-compiles each wheel's modules on one core: ~100 s of a fresh install on 2 cores.
# COMPILE does it afterwards on every core, leaving out the packages' own test suites (a quarter
# of the files; nothing imports them). Like pip, it passes over files it cannot compile (torch
# ships one for Python 3.12 only).
PIP := $(PY) -m pip install -q --no-compile
COMPILE := $(PY) -m compileall -qq -j 0 -x '/tests/' $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || true

.PHONY: install install-test test test-quick lint demo bench bench-stream-full member-full clean browser

install: $(STAMP)
install-test: $(TEST_STAMP)

# torch 2.13.0 first: on a CPU machine it resolves to the CPU build; an unpinned torch pulled in
# by the project would fetch a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e .
	$(COMPILE)
	touch $(STAMP)

# The test extra (pytest, playwright, onnx/onnxruntime) only where tests or benchmarks run.
$(TEST_STAMP): $(STAMP)
	$(PIP) -e ".[test]"
	$(COMPILE)
	touch $(TEST_STAMP)

# Debian's chromium for the dashboard's browser test (apt-get; skipped when already there).
browser:
	bash .ci/install-browser

# Lint first (ruff: errors, style, import order; black: formatting), then every tier (training,
# cluster, serve, browser); the 15 slowest tests are listed at the end.
test: install-test browser lint
	$(PY) -m pytest -q --durations=15

lint: install-test
	$(VENV)/bin/ruff check raymtl tests benchmarks jobs
	$(VENV)/bin/black --check --quiet raymtl tests benchmarks jobs

# The quick loop while working: everything but the tiers that train or start clusters.
test-quick: install-test
	$(PY) -m pytest -q -m "not training and not cluster and not serve and not browser"

demo: install
	$(VENV)/bin/raymtl demo --out $(DEMO_OUT)

bench: install-test
	$(PY) -m benchmarks.run_all

# Paper-size data path (not in CI): the full synthetic data and its FEATURES, made once under
# $(FULL_OUT); then the stream benchmark, or one member end to end (small network, one epoch a stage).
FULL_OUT ?= bench-out/full
$(FULL_OUT)/features/manifest.json: | install
	$(VENV)/bin/raymtl synth --out $(FULL_OUT)/raw --size full --seed 5
	$(VENV)/bin/raymtl featurize --esc $(FULL_OUT)/raw/esc50 --tut-dev $(FULL_OUT)/raw/tut2017-dev \
		--tut-eval $(FULL_OUT)/raw/tut2017-eval --out $(FULL_OUT)/features --overwrite

bench-stream-full: install-test $(FULL_OUT)/features/manifest.json
	$(PY) -m benchmarks.bench_stream --size full --features $(FULL_OUT)/features

member-full: install-test $(FULL_OUT)/features/manifest.json
	$(PY) -m benchmarks.bench_member --features $(FULL_OUT)/features --out $(FULL_OUT)/member

clean:
	rm -rf $(VENV) $(DEMO_OUT) bench-out .pytest_cache
