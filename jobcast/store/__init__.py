"""The job store: every Postgres verb of jobcast, over one asyncpg pool.

``Store`` is the one entry point; each aggregate's verbs live in their own module
(owners, uploads, jobs, attempts, interaction, keys and limits, live data, deliveries,
the sweep, stats, admin) and run the named statements of ``jobcast/queries.sql``.
Answers are the frozen dataclasses of ``jobcast/model.py`` (``rows`` maps them);
driver errors that mean "Postgres is not there" become ``StorageUnavailable`` (``base``).
"""

from __future__ import annotations

from jobcast.model import StepCheckpoint
from jobcast.store.admin import Admin, AdminQuery, PausedType
from jobcast.store.attempts import Attempts, Held
from jobcast.store.base import StoreBase
from jobcast.store.batches import Batches, BatchJob, BatchJobState
from jobcast.store.deliveries import Deliveries
from jobcast.store.interaction import ExpiredInput, Interaction
from jobcast.store.jobs import Jobs
from jobcast.store.keys import AppKey, JobScope, Keys, NewAppKey
from jobcast.store.limits import KeyLimitRow, Limits
from jobcast.store.lists import Cursor, ListQuery, Lists
from jobcast.store.live import LiveData, RunStepChange
from jobcast.store.new_jobs import Created, NewJob, NewJobs
from jobcast.store.owners import Owners, hash_token
from jobcast.store.retries import Retries
from jobcast.store.schema import Install, apply_schema
from jobcast.store.stats import Stats
from jobcast.store.sweep import Sweep
from jobcast.store.uploads import NewUpload, Uploads


class Store(
    Install,
    Owners,
    Keys,
    Uploads,
    Batches,
    NewJobs,
    Jobs,
    Lists,
    Interaction,
    Attempts,
    Retries,
    Limits,
    LiveData,
    Deliveries,
    Sweep,
    Stats,
    Admin,
):
    """jobcast's Postgres: the source of truth for owners, jobs, steps and events."""


__all__ = [
    "AdminQuery",
    "AppKey",
    "BatchJob",
    "BatchJobState",
    "Created",
    "Cursor",
    "ExpiredInput",
    "Held",
    "JobScope",
    "KeyLimitRow",
    "ListQuery",
    "LiveData",
    "NewAppKey",
    "NewJob",
    "NewUpload",
    "PausedType",
    "RunStepChange",
    "StepCheckpoint",
    "Store",
    "StoreBase",
    "apply_schema",
    "hash_token",
]
