"""A value this process reads at most so often, however many callers ask for it meanwhile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Recent(Generic[T]):
    """The last value read, handed to every caller while it is younger than they allow.

    Callers that come while it is being read wait for that read rather than start their
    own; a read that fails leaves the last value as it was (the next caller reads again).
    """

    def __init__(self) -> None:
        self._value: T | None = None
        self._read_at = float("-inf")  # monotonic
        self._reading = asyncio.Lock()

    async def get(self, read: Callable[[], Awaitable[T]], *, max_age_s: float) -> T:
        async with self._reading:
            if self._value is None or time.monotonic() - self._read_at >= max_age_s:
                self._value = await read()
                self._read_at = time.monotonic()
            return self._value
