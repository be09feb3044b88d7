# make bench / make bench-quick: measure jobcast next to its raw parts and its peers and
# write docs/benchmarks.md. Included from the Makefile, which defines PY, VENV and install.

.PHONY: bench bench-quick bench-peers

# the peers (procrastinate, SAQ, Celery): the `bench` extra, at the versions of its own lock;
# installed into the venv when missing or older than the lock, never by make install
BENCH_LOCK := bench/requirements.lock
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(BENCH_LOCK) $(STAMP)
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -r $(BENCH_LOCK) \
	  || $(PY) $(PIP_INSTALL) -r $(BENCH_LOCK)
	@touch $(BENCH_STAMP)

bench-peers: $(BENCH_STAMP)

## make bench: every benchmark at full size (about twenty minutes on 2 cores)
bench: install tools bench-peers
	@$(BYTECODE)
	$(PY) -m bench

## make bench-quick: the same with smaller counts, under two minutes, as a check; writes
## .jobcast/benchmarks-quick.md, never over the full figures in docs/benchmarks.md
bench-quick: install tools bench-peers
	@$(BYTECODE)
	$(PY) -m bench --quick

## make bench-lock: remake bench/requirements.lock within requirements.lock's versions
bench-lock: install
	$(VENV)/bin/uv pip compile pyproject.toml --extra bench --universal --python-version 3.11 \
	  --quiet -c $(LOCK) -o $(BENCH_LOCK)
