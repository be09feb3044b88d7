"""The text a client may send: what Postgres can store. ``Text`` for the strings of a
request's models, ``unstorable`` for one read by hand; ``UNSTORABLE_TEXT`` is the kind of
validation error a refused one raises.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

# Postgres text and jsonb cannot hold NUL; a lone surrogate is not UTF-8 at all
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_TEXT = "unstorable_text"


def unstorable(value: str) -> str | None:
    """The first character of ``value`` that cannot be stored, or None when all can."""
    found = _UNSTORABLE.search(value)
    return None if found is None else found.group()


def _storable(value: str) -> str:
    bad = unstorable(value)
    if bad is not None:
        raise PydanticCustomError(
            UNSTORABLE_TEXT,
            "contains {char}, which cannot be stored",
            {"char": f"U+{ord(bad):04X}"},
        )
    return value


# A string from a client: one that Postgres can store (no NUL, no lone surrogate). The
# schema says so too, so that generated requests (schemathesis) try a NUL. Lone surrogates
# cannot be written in a JSON schema pattern, nor sent as UTF-8: they are left out of it.
Text = Annotated[
    str, AfterValidator(_storable), Field(json_schema_extra={"pattern": "^[^\\x00]*$"})
]
