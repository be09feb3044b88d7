"""JSON answers, written with jobcast's own encoder (UUIDs and datetimes included)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.responses import Response

from jobcast.model import dumps


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def model_response(
    model: BaseModel, status_code: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A pydantic model of ``jobcast.schemas`` as the answer's body."""
    return JSONResponse(model.model_dump(mode="json"), status_code=status_code, headers=headers)
