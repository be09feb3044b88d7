"""An example job type, as an app would write it in a module of its own.

Run it with jobcast:

    PYTHONPATH=examples JOBCAST_JOB_MODULES=wordcount make run

docs/job-types.md walks through it line by line.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobcast.errors import PermanentError
from jobcast.registry import JobContext, JobType, Step


class WordCountInput(BaseModel):
    """What a visitor sends: validated by jobcast before the job is accepted (else 422)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=200_000, description="The text to count.")
    top: int = Field(10, ge=1, le=100, description="How many of the commonest words to list.")


STEPS = (
    Step("split", "Split into words", weight=1, estimate_s=0.2),
    Step("count", "Count words", weight=3, estimate_s=0.5),
    Step("report", "Write the report", weight=1, estimate_s=0.1),
)


async def count_words(job: JobContext, params: WordCountInput) -> dict[str, Any]:
    async with job.step("split"):
        words = re.findall(r"[\w']+", params.text.lower())
        if not words:
            raise PermanentError("the text has no words in it")
    async with job.step("count"):
        counts: Counter[str] = Counter()
        chunk = max(1, len(words) // 10)
        for start in range(0, len(words), chunk):
            counts.update(words[start : start + chunk])
            await job.progress(
                100 * min(len(words), start + chunk) / len(words),
                f"Counted {min(len(words), start + chunk)} of {len(words)} words",
            )
            await asyncio.sleep(0)  # let a cancel or a heartbeat in
    async with job.step("report"):
        return {
            "words": len(words),
            "distinct": len(counts),
            "top": [{"word": w, "count": c} for w, c in counts.most_common(params.top)],
        }


JOB_TYPES = (
    JobType(
        name="word_count",
        title="Word count",
        input_model=WordCountInput,
        run=count_words,
        steps=STEPS,
        timeout_s=60,
        max_attempts=2,
        concurrency=4,
        result_ttl_s=3 * 86_400,
        estimate=lambda params: 0.8 + len(params.text) / 1_000_000,
    ),
)
