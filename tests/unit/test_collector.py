"""The collector's pace: a heap that only grows (a web process taking sockets) is scanned
whole a tenth as often, and what dies young is collected as before."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from jobcast.collector import FULL_SCAN_EVERY, pace_collector


@pytest.fixture
def threshold() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    try:
        yield before
    finally:
        gc.set_threshold(*before)


def full_scans_while_growing(objects: int) -> int:
    """How often the oldest generation is scanned while ``objects`` long-lived containers
    are made (as a socket's objects are, kept until it closes)."""
    scans = 0

    def count(phase: str, info: dict[str, Any]) -> None:
        nonlocal scans
        if phase == "start" and info["generation"] == 2:
            scans += 1

    kept: list[list[int]] = []
    gc.collect()
    gc.callbacks.append(count)
    try:
        for i in range(objects):
            kept.append([i])
    finally:
        gc.callbacks.remove(count)
    return scans


def test_a_growing_heap_is_scanned_whole_far_less_often(threshold: tuple[int, int, int]) -> None:
    gc.set_threshold(700, 10, 10)  # CPython's default
    default = full_scans_while_growing(1_500_000)
    pace_collector()
    assert gc.get_threshold() == (700, 10, FULL_SCAN_EVERY)
    paced = full_scans_while_growing(1_500_000)
    assert default >= 5, default
    assert paced <= default // 5, (paced, default)


def test_the_young_generations_keep_their_pace(threshold: tuple[int, int, int]) -> None:
    gc.set_threshold(900, 15, 10)
    pace_collector()
    assert gc.get_threshold() == (900, 15, FULL_SCAN_EVERY)
