# The one door: make run, make test, make check, make bench.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .jobcast/venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# the exact versions tested; pyproject.toml holds the ranges (make lock remakes this)
LOCK := requirements.lock
PIP_INSTALL := -m pip install --quiet --disable-pip-version-check
# the other supported Pythons, whose unit suite make test-matrix runs
MATRIX ?= 3.12 3.13
# A process's start is mostly its imports, so Python's bytecode is made ahead: the venv's
# packages as they are installed, jobcast's own modules before each run, test and bench.
# Where PYTHONDONTWRITEBYTECODE is set no process writes it, and each compiled every
# module it imported again: a worker took 3.6 s to start instead of 0.7 s.
BYTECODE := $(PY) -m compileall -q -j 0 jobcast server workers examples bench
# Debian packages the suite drives (command:package): the browser tests, and the
# topology tests (PgBouncer, nginx), promtool the alert rules; Sentinel runs on
# redis-server --sentinel
SYSTEM_PACKAGES := chromium:chromium pgbouncer:pgbouncer nginx:nginx-light promtool:prometheus

.PHONY: run test check install browser tools lock test-matrix test-install clean

$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13) and "jobcast needs Python 3.11, 3.12 or 3.13")'
	$(PYTHON) -m venv $(VENV)
	@# uv (a wheel from PyPI, the version the lock names) installs the lock in seconds, pip in
	@# minutes; pip is the fallback where uv cannot reach the index
	$(PY) $(PIP_INSTALL) "$$(grep '^uv==' $(LOCK))"
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -r $(LOCK) \
	  || $(PY) $(PIP_INSTALL) -r $(LOCK)
	$(PY) $(PIP_INSTALL) --no-deps -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## make run: find or start Postgres and Redis, apply schema.sql, run web + worker
run: install
	@$(BYTECODE)
	$(PY) -m jobcast.dev

## Debian's chromium drives the browser tests (playwright cannot download its own here);
## pgbouncer and nginx the topology tests. Installed as root when missing; otherwise the
## browser tests fail and the topology tests skip, each saying what to install.
tools:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do cmd=$${pair%%:*}; \
	  command -v $$cmd >/dev/null || [ -x /usr/sbin/$$cmd ] || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    { apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; } \
	      || echo "apt-get could not install$$missing: the tests that need them skip"; \
	  else echo "some tests need:$$missing (sudo apt-get install$$missing)"; fi; fi

browser: tools

## make test: the whole suite against real Postgres and Redis (found or started), but
## the install tests (make test-install: each extra in a fresh venv, a minute or more).
## In TEST_WORKERS processes (pytest-xdist): most of a test's time is processes starting
## and waiting, so more workers than cores pay (on 2 cores: 620 s in 2, 486 s in 3); each
## module runs whole on one worker (loadfile), so its stack is launched once.
## TEST_WORKERS=0: serial.
TEST_WORKERS ?= 3
PYTEST_ARGS ?= -m "not install" -n $(TEST_WORKERS) --dist loadfile
test: install tools
	@$(BYTECODE)
	$(PY) -m pytest $(PYTEST_ARGS)

## make test-install: build the package and install each extra in a fresh venv
test-install: install
	$(PY) -m pytest -q -m install tests/integration/test_install.py

## make lock: remake requirements.lock, the newest versions pyproject.toml's ranges allow
lock: install
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
	  --upgrade --quiet -o $(LOCK)

## make test-matrix: the unit suite on each other supported Python, in a venv of its own
## (.jobcast/venv-3.12 ...) installed from the same lock
test-matrix: install
	@for v in $(MATRIX); do \
	  py=""; for p in python$$v $$HOME/.pyenv/versions/$$v*/bin/python$$v; do \
	    $$p -c '' 2>/dev/null && { py=$$p; break; }; done; \
	  [ -n "$$py" ] || { echo "python$$v is not installed"; exit 1; }; \
	  venv=.jobcast/venv-$$v; \
	  if [ ! $$venv/.installed -nt $(LOCK) ] || [ ! $$venv/.installed -nt pyproject.toml ]; then \
	    $$py -m venv $$venv \
	      && $(VENV)/bin/uv pip install -q --compile-bytecode --python $$venv/bin/python -r $(LOCK) \
	      && $(VENV)/bin/uv pip install -q --python $$venv/bin/python --no-deps -e '.[dev]' \
	      && touch $$venv/.installed || exit 1; fi; \
	  echo "== Python $$v: unit suite"; \
	  $$venv/bin/python -m pytest -q -p no:cacheprovider -n auto tests/unit || exit 1; \
	done

clean:
	rm -rf .jobcast test-artifacts

include bench/bench.mk

## make check: lint and types
check: install
	$(VENV)/bin/ruff check jobcast server workers tests examples bench
	$(VENV)/bin/ruff format --check jobcast server workers tests examples bench
	$(VENV)/bin/mypy
