# make bench / make bench-quick: measure jobcast next to its raw parts and write
# docs/benchmarks.md. Included from the Makefile, which defines PY and install.

.PHONY: bench bench-quick

## make bench: every benchmark at full size (about five minutes)
bench: install
	$(PY) -m bench

## make bench-quick: the same with smaller counts (under two minutes)
bench-quick: install
	$(PY) -m bench --quick
