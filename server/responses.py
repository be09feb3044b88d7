"""JSON answers: a model of jobcast.schemas serialized by pydantic, anything else with
jobcast's own encoder (UUIDs and datetimes included)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.responses import Response

from jobcast.model import dumps


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def model_json(model: BaseModel) -> bytes:
    """A model as JSON, serialized by pydantic straight to bytes (no dict of it made on the
    way): what ``model_dump_json`` writes, without the text it decodes to."""
    return model.__pydantic_serializer__.to_json(model)


def model_response(
    model: BaseModel, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A pydantic model of ``jobcast.schemas`` as the answer's body (``model_json``)."""
    return Response(
        model_json(model),
        status_code=status_code,
        headers=headers,
        media_type=JSONResponse.media_type,
    )
