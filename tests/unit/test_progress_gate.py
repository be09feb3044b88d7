"""The progress gate on its own: which reports of an attempt are written, and in what order."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from workers.persistence import AttemptLost
from workers.progress import ProgressGate, Report


class Writes:
    """What the gate wrote, in order, with a way to wait for the n-th write."""

    def __init__(self, fail_with: BaseException | None = None, takes_s: float = 0.0) -> None:
        self.reports: list[Report] = []
        self.fail_with = fail_with
        self.takes_s = takes_s  # how long each write takes (a slow Postgres)
        self.spans: list[tuple[float, float]] = []  # (start, end) of each write
        self._changed = asyncio.Condition()

    async def write(self, report: Report) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        started = time.monotonic()
        if self.takes_s:
            await asyncio.sleep(self.takes_s)
        self.spans.append((started, time.monotonic()))
        async with self._changed:
            self.reports.append(report)
            self._changed.notify_all()

    async def until(self, count: int) -> None:
        async with asyncio.timeout(5), self._changed:
            await self._changed.wait_for(lambda: len(self.reports) >= count)

    @property
    def messages(self) -> list[str | None]:
        return [r.message for r in self.reports]


def report(i: int) -> Report:
    return Report(float(i), "work", str(i))


async def test_with_no_window_every_report_is_written_at_once() -> None:
    writes = Writes()
    gate = ProgressGate(0.0, writes.write)
    for i in range(1, 101):
        await gate.report(report(i))
        assert len(writes.reports) == i  # written before the report returned
    assert writes.messages == [str(i) for i in range(1, 101)]


async def test_a_burst_writes_its_first_at_once_and_its_last_when_the_window_ends() -> None:
    writes = Writes()
    # a window the burst ends well inside, even on a machine busy with other tests (the
    # burst takes a few milliseconds; 50 ms was once not enough)
    gate = ProgressGate(0.5, writes.write)
    started = time.monotonic()
    for i in range(1, 1001):
        await gate.report(report(i))
    assert writes.messages == ["1"]  # the rest are kept: the latest replaces the one before
    await writes.until(2)
    assert time.monotonic() - started >= 0.45
    assert writes.messages == ["1", "1000"]


async def test_with_slow_writes_each_window_starts_when_the_last_write_ended() -> None:
    writes = Writes(takes_s=0.02)
    gate = ProgressGate(0.05, writes.write)
    started = time.monotonic()
    i = 0
    # a job reporting every millisecond until the gate has written seven times (half a
    # second here; longer where a busy machine holds the test up, which only adds to gaps)
    while len(writes.spans) < 7 and time.monotonic() - started < 10:
        i += 1
        await gate.report(report(i))
        await asyncio.sleep(0.001)
    took_s = time.monotonic() - started
    await gate.flush()
    gaps = [start - end for (_, end), (start, _) in itertools.pairwise(writes.spans)]
    assert len(writes.reports) <= took_s / 0.07 + 2, (len(writes.reports), took_s)
    assert len(gaps) >= 6 and min(gaps[:-1]) >= 0.045, gaps  # the flush may come at any time
    assert writes.messages[-1] == str(i)


async def test_another_write_of_the_attempt_writes_the_kept_report_first() -> None:
    writes = Writes()
    gate = ProgressGate(60.0, writes.write)  # a window that never ends within the test
    for i in range(1, 11):
        await gate.report(report(i))
    order: list[str] = []
    async with gate.held():
        order.append(f"kept written: {writes.messages}")
        order.append("the step's own write")
    assert order == ["kept written: ['1', '10']", "the step's own write"]
    async with gate.held():  # nothing kept now: nothing written again
        pass
    assert writes.messages == ["1", "10"]


async def test_a_report_after_a_quiet_window_is_written_at_once() -> None:
    writes = Writes()
    gate = ProgressGate(0.02, writes.write)
    await gate.report(report(1))
    await gate.report(report(2))  # kept
    await writes.until(2)
    await asyncio.sleep(0.03)  # a job busy with other work for longer than the window
    await gate.report(report(3))
    assert writes.messages == ["1", "2", "3"]


async def test_a_background_write_that_fails_is_raised_at_the_next_report() -> None:
    writes = Writes()
    gate = ProgressGate(0.02, writes.write)
    await gate.report(report(1))
    writes.fail_with = AttemptLost("cancelled meanwhile")
    await gate.report(report(2))  # kept; its write, at the window's end, fails

    async def failed() -> None:
        while True:
            try:
                await gate.report(report(3))
            except AttemptLost:
                return
            await asyncio.sleep(0.005)

    await asyncio.wait_for(failed(), 5)
    assert writes.messages == ["1"]


async def test_closing_drops_a_kept_report() -> None:
    writes = Writes()
    gate = ProgressGate(0.01, writes.write)
    await gate.report(report(1))
    await gate.report(report(2))
    gate.close()
    await asyncio.sleep(0.05)  # past the window: nothing may come now
    assert writes.messages == ["1"]


@pytest.mark.parametrize("window_s", [0.0, 0.01])
async def test_reports_are_written_in_the_order_they_were_made(window_s: float) -> None:
    writes = Writes()
    gate = ProgressGate(window_s, writes.write)
    for i in range(1, 301):
        await gate.report(report(i))
        if i % 30 == 0:
            await asyncio.sleep(0.004)
    await gate.flush()
    written = [int(m or 0) for m in writes.messages]
    assert written == sorted(set(written)) and written[-1] == 300
