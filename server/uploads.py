"""``POST /api/uploads``: files a job will read, kept in Postgres and scoped to their owner."""

from __future__ import annotations

from python_multipart.exceptions import MultipartParseError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from jobcast.errors import BadRequest
from jobcast.schemas import Model
from server.auth import owner_of
from server.openapi import endpoint, error_responses
from server.params import services_of
from server.responses import model_response

_MAX_FILES = 10


class UploadOut(Model):
    id: str
    filename: str
    content_type: str
    size: int


class Uploaded(Model):
    uploads: list[UploadOut]


@endpoint(
    "Upload files (multipart, field name `file`, up to 10) for a job to read",
    responses={201: Uploaded, **error_responses(400, 401, 413, 503)},
    tags=("uploads",),
)
async def create_uploads(request: Request) -> Response:
    services = services_of(request)
    owner_id = await owner_of(request)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise BadRequest("send the files as multipart/form-data, each in a field named file")
    try:
        form = await request.form(max_files=_MAX_FILES, max_fields=_MAX_FILES)
    except (HTTPException, MultipartParseError, ValueError) as exc:
        raise BadRequest(f"the multipart body could not be read: {exc}") from None
    try:
        files = [f for f in form.getlist("file") if isinstance(f, UploadFile)]
        if not files:
            raise BadRequest("no file: send each file in a field named file")
        stored = []
        for upload in files:
            data = await upload.read()
            # Postgres text cannot hold NUL characters: drop them from the names
            name = (upload.filename or "upload").replace("\x00", "")[:255] or "upload"
            content_type = (upload.content_type or "application/octet-stream").replace("\x00", "")[
                :100
            ]
            upload_id = await services.store.create_upload(owner_id, name, content_type, data)
            stored.append(
                UploadOut(
                    id=str(upload_id), filename=name, content_type=content_type, size=len(data)
                )
            )
    finally:
        await form.close()
    return model_response(Uploaded(uploads=stored), 201)
