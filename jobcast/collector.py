"""The garbage collector's pace in jobcast's long-lived processes (web and worker).

CPython collects its youngest generation every 700 allocations net and its middle one
every tenth time; every tenth of those it scans the oldest generation whole, every
object the process holds. A web process taking thousands of websockets keeps a few
dozen objects a socket for as long as the socket is open, so its heap only grows while
they come: benchmark 4 (10,000 sockets) saw 18 full scans in its web process, 4.7 s of
CPU over a ramp of about 16 s, each longer than the last. Here the oldest generation is
scanned every hundredth time instead: 3 full scans, 1.6 s, in the same run, and the
handshakes took about a third less CPU. What dies young (a request's objects, an
event's) is collected exactly as often as before; only cycles that lived long wait
longer to be freed.
"""

from __future__ import annotations

import gc

# middle-generation collections between two scans of the oldest (CPython's default: 10)
FULL_SCAN_EVERY = 100


def pace_collector() -> None:
    """Scan the oldest generation every ``FULL_SCAN_EVERY`` middle collections."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_SCAN_EVERY)
