"""jobcast's benchmarks: the service next to its raw parts, in one run on one machine.

``python -m bench`` (``make bench``) runs them all and writes docs/benchmarks.md;
``--quick`` (``make bench-quick``) runs smaller counts in under two minutes and writes
.jobcast/benchmarks-quick.md instead, so that it never replaces the full figures.
Each benchmark is one module with ``run(ctx, section)``; ``harness`` holds what
they share, ``report`` writes the page, ``rawarq`` and ``bare`` are the baselines
that run as processes of their own.
"""
