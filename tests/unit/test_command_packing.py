"""Every Redis connection jobcast opens packs its commands in hiredis, to the bytes
redis-py's own packer makes, and refuses what redis-py refuses."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from jobcast.circuit import Circuit
from jobcast.links import GatedConnection, RedisLink

COMMANDS: list[tuple[Any, ...]] = [
    ("SET", "k", "v"),
    ("CONFIG GET", "maxmemory"),  # a command name of two words goes as two arguments
    (b"ZADD", "queue", 1796418744123.0, "job", 0.1 + 0.2, 1e-7, 1e22, float("inf")),
    ("INCRBY", "k", 12345678901234567890, -5),
    (b"EVALSHA", "abc", 0, "é" * 5000, b"x" * 7000),  # beyond redis-py's buffer cutoff
    ("SET", "k", memoryview(b"a view")),
]


def _gated() -> GatedConnection:
    link = RedisLink("redis://127.0.0.1:6379/0", 1.0, 1.0, 1.0, 60)
    return GatedConnection(circuit=Circuit(link, "packing"))


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: str(a[0]))
def test_a_command_is_packed_to_redis_pys_bytes(args: tuple[Any, ...]) -> None:
    packed = b"".join(bytes(chunk) for chunk in _gated().pack_command(*args))
    assert packed == b"".join(bytes(chunk) for chunk in Connection().pack_command(*args))


@pytest.mark.parametrize("value", [None, True, object()])
def test_what_redis_py_refuses_is_refused(value: object) -> None:
    with pytest.raises(DataError):
        Connection().pack_command("SET", "k", value)
    with pytest.raises(DataError):
        _gated().pack_command("SET", "k", value)


def test_a_command_is_packed_in_one_piece() -> None:
    """redis-py's Python packer makes a piece of each value beyond 6,000 bytes; hiredis
    packs the whole command in one."""
    assert len(_gated().pack_command(b"EVALSHA", "abc", 0, b"x" * 7000)) == 1
