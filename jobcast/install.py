"""One install per database: a process refuses a database another install uses.

An install is its web processes and workers: one Postgres database and one Redis
prefix (``JOBCAST_REDIS_PREFIX``) for its queue and channels. Two installs on one
database would each see the other's jobs as theirs: a job the other's workers run
looks never queued to this one's dispatcher, which queues it again on its own Redis;
its sweep takes the other's running jobs for lost. So the first process to start
records its prefix in the database, and a process with another prefix refuses to
start with one line that names both.
"""

from __future__ import annotations

import logging

import asyncpg

from jobcast.errors import ConfigError, OtherInstall, StorageUnavailable
from jobcast.settings import Settings
from jobcast.store import Store

log = logging.getLogger(__name__)


async def check_install(store: Store, settings: Settings) -> None:
    """Record this install's prefix in a new database, or refuse another install's.

    While Postgres does not answer, the check waits for the next start: the process
    starts anyway (and answers 503), as it does without Postgres.
    """
    try:
        recorded = await store.claim_install(settings.redis_prefix)
    except StorageUnavailable:
        log.warning("install not checked: Postgres does not answer at start")
        return
    except asyncpg.UndefinedTableError as exc:
        raise ConfigError(
            "the database has no install table: apply schema.sql (jobcast migrate)"
        ) from exc
    if recorded != settings.redis_prefix:
        raise OtherInstall(
            f"the database belongs to the install with JOBCAST_REDIS_PREFIX={recorded!r}, "
            f"this process has {settings.redis_prefix!r}: give each install its own database "
            f"(two installs on one database take each other's jobs), or set the same prefix; "
            "an install that moved prefix: jobcast migrate --redis-prefix-moved"
        )
