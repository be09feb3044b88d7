"""The worker process's resources, opened once in arq's ``on_startup``."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass

from jobcast.registry import Registry
from jobcast.settings import Settings
from jobcast.store import Store


@dataclass(frozen=True)
class WorkerState:
    settings: Settings
    store: Store
    registry: Registry
    exit_stack: AsyncExitStack
