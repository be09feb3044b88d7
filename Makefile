# The one door: make run, make test, make check, make bench.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .jobcast/venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test check install browser clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "jobcast needs Python 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## make run: find or start Postgres and Redis, apply schema.sql, run web + worker
run: install
	$(PY) -m jobcast.dev

## Debian's chromium drives the browser tests (playwright cannot download its own here)
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "browser tests need chromium: sudo apt-get install chromium"; fi; }

## make test: the whole suite against real Postgres and Redis (found or started)
test: install browser
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf .jobcast test-artifacts

include bench/bench.mk

## make check: lint and types
check: install
	$(VENV)/bin/ruff check jobcast server workers tests examples bench
	$(VENV)/bin/ruff format --check jobcast server workers examples
	$(VENV)/bin/mypy
