"""jobcast's benchmarks: the service next to its raw parts, in one run on one machine.

``python -m bench`` (``make bench``) runs them all and writes docs/benchmarks.md;
``--quick`` (``make bench-quick``) runs smaller counts in under two minutes.
Each benchmark is one module with ``run(ctx, section)``; ``harness`` holds what
they share, ``report`` writes the page, ``rawarq`` and ``bare`` are the baselines
that run as processes of their own.
"""
