# One virtual environment in .venv; every target installs what it needs first (idempotent).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
DEMO_OUT ?= demo-out

.PHONY: install install-test test test-quick demo bench clean browser

install: $(STAMP)
install-test: $(TEST_STAMP)

# torch 2.13.0 first: on a CPU machine it resolves to the CPU build; an unpinned torch pulled in
# by the project would fetch a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e .
	touch $(STAMP)

# The test extra (pytest, playwright, onnx/onnxruntime) only where tests or benchmarks run.
$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install -q -e ".[test]"
	touch $(TEST_STAMP)

# Debian's chromium for the dashboard's browser test (apt-get; skipped when already there).
browser:
	bash .ci/install-browser

# Every tier (training, cluster, serve, browser); the 15 slowest tests are listed at the end.
test: install-test browser
	$(PY) -m pytest -q --durations=15

# The quick loop while working: everything but the tiers that train or start clusters.
test-quick: install-test
	$(PY) -m pytest -q -m "not training and not cluster and not serve and not browser"

demo: install
	$(VENV)/bin/raymtl demo --out $(DEMO_OUT)

bench: install-test
	$(PY) -m benchmarks.run_all

clean:
	rm -rf $(VENV) $(DEMO_OUT) bench-out .pytest_cache
