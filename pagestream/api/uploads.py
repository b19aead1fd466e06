"""Reading the ``POST /v1/documents`` multipart form: after authentication, streamed, bounded.

FastAPI parses declared ``File``/``Form`` parameters *before* running any dependency, so the
API key would be checked only after the whole body was spooled. The upload route therefore
declares no body parameters: this reader runs as a dependency placed after the key check.
The file part streams into a spool file (memory up to 1 MiB, then disk) and is read once,
with a cap, into the one in-memory copy intake works on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import Request

from pagestream.api.limits import MAX_FORM_FIELD_BYTES
from pagestream.api.problems import ApiProblem

_TEXT_FIELDS = ("password", "engine", "languages", "client_reference")
_BOOL = TypeAdapter(bool)

#: The form as OpenAPI sees it (the route declares no body parameters; see the module docstring).
UPLOAD_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {
                "file": {"type": "string", "format": "binary",
                         "description": "a PDF or an image (PNG, JPEG, TIFF, GIF, WebP, BMP)"},
                "password": {"type": "string", "description": "password of an encrypted PDF"},
                "force_ocr": {"type": "boolean", "default": False},
                "engine": {"type": "string", "description": "override the configured OCR engine"},
                "languages": {"type": "string", "description": "Tesseract language codes, e.g. 'eng+deu'"},
                "client_reference": {"type": "string"},
            },
        }}},
    },
}


@dataclass(frozen=True)
class UploadForm:
    """The upload's bytes (one copy) and its form fields."""

    data: bytes
    filename: str | None
    password: str | None = None
    force_ocr: bool = False
    engine: str | None = None
    languages: str | None = None
    client_reference: str | None = None


async def read_upload_form(request: Request, max_upload_bytes: int) -> UploadForm:
    """Parse the multipart form; raise ``ApiProblem`` (413/422) with what to fix."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiProblem(422, "Invalid request",
                         "file: send the document as multipart/form-data with the file in a part named `file` "
                         "(e.g. curl -F file=@scan.pdf)")
    form = await request.form(max_files=1, max_fields=len(_TEXT_FIELDS) + 2, max_part_size=MAX_FORM_FIELD_BYTES)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiProblem(422, "Invalid request", "file: Field required (a multipart part named `file` holding "
                                                     "the document)")
        data = await upload.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            from pagestream import metrics

            metrics.DOCUMENTS_REJECTED.labels("http", "413").inc()
            raise ApiProblem(413, "Upload too large",
                             f"upload exceeds the limit of {max_upload_bytes} bytes (PAGESTREAM_MAX_UPLOAD_BYTES); "
                             "split the document and resubmit the parts")
        text: dict[str, str | None] = {}
        for name in _TEXT_FIELDS:
            value = form.get(name)
            if isinstance(value, UploadFile):
                raise ApiProblem(422, "Invalid request", f"{name}: must be a text field, not a file")
            text[name] = value or None
        force_ocr = form.get("force_ocr")
        if isinstance(force_ocr, UploadFile):
            raise ApiProblem(422, "Invalid request", "force_ocr: must be a text field, not a file")
        try:
            force = bool(force_ocr) and _BOOL.validate_python(force_ocr)
        except ValidationError as e:
            raise ApiProblem(422, "Invalid request", f"force_ocr: {force_ocr!r} is not a boolean; send true or false") from e
        return UploadForm(data=data, filename=upload.filename, force_ocr=force, **text)
    finally:
        await form.close()  # removes the spool file


async def upload_form(request: Request) -> UploadForm:
    """FastAPI dependency for the upload route; declared after the API key check, so it runs after it."""
    return await read_upload_form(request, request.app.state.max_upload_bytes)
