"""``POST /api/uploads``: files a job will read, kept in Postgres and scoped to their owner.

Each owner has a rate of upload requests (``JOBCAST_UPLOAD_RATE_PER_MIN``, in Redis like
the submit rate) and a quota of bytes kept (``JOBCAST_MAX_UPLOAD_BYTES_PER_OWNER``, counted
in Postgres); a request's files are stored all or none.
"""

from __future__ import annotations

from python_multipart.exceptions import MultipartParseError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from jobcast.errors import BadRequest
from jobcast.schemas import Model
from jobcast.store import NewUpload
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
    responses={201: Uploaded, **error_responses(400, 401, 413, 429, 503)},
    tags=("uploads",),
)
async def create_uploads(request: Request) -> Response:
    services = services_of(request)
    settings = services.settings
    owner_id = await owner_of(request)
    await services.limiter.check(
        "upload",
        str(owner_id),
        per_min=settings.upload_rate_per_min,
        burst=settings.upload_burst,
        what="uploads",
    )
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
        new = [await _read(upload) for upload in files]
    finally:
        await form.close()
    ids = await services.store.create_uploads(
        owner_id, new, quota_bytes=settings.max_upload_bytes_per_owner
    )
    stored = [
        UploadOut(
            id=str(upload_id), filename=f.filename, content_type=f.content_type, size=len(f.data)
        )
        for upload_id, f in zip(ids, new, strict=True)
    ]
    return model_response(Uploaded(uploads=stored), 201)


async def _read(upload: UploadFile) -> NewUpload:
    # Postgres text cannot hold NUL characters: drop them from the names
    name = (upload.filename or "upload").replace("\x00", "")[:255] or "upload"
    content_type = (upload.content_type or "application/octet-stream").replace("\x00", "")
    return NewUpload(name, content_type[:100], await upload.read())
