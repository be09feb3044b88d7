"""A type's first ETA, before it has any history (a real, empty Postgres), comes from its
steps' declared estimates, also where only some steps declare one."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from jobcast.eta import Estimator
from jobcast.registry import JobType, Step
from jobcast.store import Store


class _Feed(BaseModel):
    url: str = "https://feed.example/products.csv"


async def _run(job: Any, params: _Feed) -> None:
    return None


def _import(steps: tuple[Step, ...], **options: Any) -> JobType:
    return JobType("product_import", "Product import", _Feed, _run, steps=steps, **options)


async def test_every_step_declares_an_estimate(store: Store) -> None:
    feed = _import(
        (Step("download", "Download", estimate_s=4), Step("parse", "Parse", estimate_s=2))
    )
    assert await Estimator(store).total(feed, {}) == pytest.approx(6.0)


async def test_undeclared_steps_go_at_the_declared_steps_pace(store: Store) -> None:
    # no type estimate (the default of a second): the declared 20 s for weight 2 is 10 s a weight
    feed = _import(
        (
            Step("download", "Download", weight=2, estimate_s=20),
            Step("parse", "Parse", weight=1),
            Step("save", "Save", weight=3),
        )
    )
    steps = await Estimator(store).steps(feed, {})
    assert steps == pytest.approx({"download": 20.0, "parse": 10.0, "save": 30.0})
    assert await Estimator(store).total(feed, {}) == pytest.approx(60.0)


async def test_undeclared_steps_share_what_the_type_estimate_leaves(store: Store) -> None:
    feed = _import(
        (
            Step("download", "Download", estimate_s=5),
            Step("parse", "Parse", weight=1),
            Step("save", "Save", weight=3),
        ),
        estimate=lambda _params: 25.0,
    )
    steps = await Estimator(store).steps(feed, {})
    assert steps == pytest.approx({"download": 5.0, "parse": 5.0, "save": 15.0})
