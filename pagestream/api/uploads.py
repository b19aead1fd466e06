"""Reading the ``POST /v1/documents`` multipart form: after authentication, streamed, bounded.

FastAPI parses declared ``File``/``Form`` parameters *before* running any dependency, so the
API key would be checked only after the whole body was spooled. The upload route therefore
declares no body parameters: this reader runs as a dependency placed after the key check.
The file part streams into a spool file (memory up to 1 MiB, then disk) and is read once,
with a cap, into the one in-memory copy intake works on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, get_args

from starlette.datastructures import UploadFile
from starlette.requests import Request

from pagestream.api.limits import MAX_FORM_FIELD_BYTES
from pagestream.api.models import LANGUAGES_MAX_LENGTH, LANGUAGES_PATTERN, REFERENCE_MAX_LENGTH, EngineName
from pagestream.api.problems import ApiProblem

_TEXT_FIELDS = ("password", "engine", "languages", "client_reference")
#: what the upload may be (detected by content; the part's own Content-Type is not relied on)
ACCEPTED_MEDIA_TYPES = (
    "application/pdf",
    "image/png",
    "image/jpeg",
    "image/tiff",
    "image/gif",
    "image/webp",
    "image/bmp",
)
PASSWORD_MAX_LENGTH = 1000
#: stored text cannot hold NUL characters (PostgreSQL refuses them)
NO_NUL = "^[^\\x00]*$"

#: The form as OpenAPI sees it (the route declares no body parameters; see the module docstring).
#: ``read_upload_form`` enforces every constraint stated here.
UPLOAD_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "additionalProperties": False,
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "minLength": 1,
                            "description": "a PDF or an image (PNG, JPEG, TIFF, GIF, WebP, BMP), recognized by its "
                            "content: anything else is answered 415, a damaged or empty one 422",
                        },
                        "password": {
                            "type": "string",
                            "maxLength": PASSWORD_MAX_LENGTH,
                            "description": "password of an encrypted PDF",
                        },
                        "force_ocr": {
                            "type": "boolean",
                            "default": False,
                            "description": "OCR pages even when they have a text layer",
                        },
                        "engine": {
                            "type": "string",
                            "enum": list(get_args(EngineName)),
                            "description": "override the configured OCR engine",
                        },
                        "languages": {
                            "type": "string",
                            "pattern": LANGUAGES_PATTERN,
                            "maxLength": LANGUAGES_MAX_LENGTH,
                            "description": "Tesseract language codes, e.g. 'eng+deu'",
                        },
                        "client_reference": {
                            "type": "string",
                            "maxLength": REFERENCE_MAX_LENGTH,
                            "pattern": NO_NUL,
                            "description": "your own reference, returned with the document",
                        },
                    },
                },
                "encoding": {"file": {"contentType": ", ".join(ACCEPTED_MEDIA_TYPES)}},
            }
        },
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
    """Parse the multipart form; raise ``ApiProblem`` (413/415/422) with what to fix."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiProblem(
            415,
            "Unsupported request body",
            "file: send the document as multipart/form-data with the file in a part named `file` "
            "(e.g. curl -F file=@scan.pdf)",
        )
    form = await request.form(
        max_files=1, max_fields=len(_TEXT_FIELDS) + 2, max_part_size=MAX_FORM_FIELD_BYTES
    )
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiProblem(
                422,
                "Invalid request",
                "file: Field required (a multipart part named `file` holding the document)",
            )
        data = await upload.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            from pagestream import metrics

            metrics.DOCUMENTS_REJECTED.labels("http", "413").inc()
            raise ApiProblem(
                413,
                "Upload too large",
                f"upload exceeds the limit of {max_upload_bytes} bytes (PAGESTREAM_MAX_UPLOAD_BYTES); "
                "split the document and resubmit the parts",
            )
        unknown = sorted(set(form.keys()) - {"file", "force_ocr", *_TEXT_FIELDS})
        if unknown:
            raise ApiProblem(
                422,
                "Invalid request",
                f"{', '.join(map(repr, unknown))}: not a field of this form; "
                f"the fields are file, force_ocr, {', '.join(_TEXT_FIELDS)}",
            )
        text: dict[str, str | None] = {}
        for name in _TEXT_FIELDS:
            value = form.get(name)
            if isinstance(value, UploadFile):
                raise ApiProblem(422, "Invalid request", f"{name}: must be a text field, not a file")
            if value is not None:
                _check_text(name, value)
            text[name] = value or None
        force_ocr = form.get("force_ocr")
        if isinstance(force_ocr, UploadFile):
            raise ApiProblem(422, "Invalid request", "force_ocr: must be a text field, not a file")
        if force_ocr not in (None, "true", "false"):  # a boolean, as multipart sends JSON's true and false
            raise ApiProblem(
                422, "Invalid request", f"force_ocr: {force_ocr!r} is not a boolean; send true or false"
            )
        force = force_ocr == "true"
        return UploadForm(data=data, filename=upload.filename, force_ocr=force, **text)
    finally:
        await form.close()  # removes the spool file


def _check_text(name: str, value: str) -> None:
    """The constraints UPLOAD_OPENAPI states for the text field ``name``."""
    if name == "password" and len(value) > PASSWORD_MAX_LENGTH:
        raise ApiProblem(422, "Invalid request", f"password: longer than {PASSWORD_MAX_LENGTH} characters")
    if name == "engine" and value not in get_args(EngineName):
        raise ApiProblem(
            422,
            "Invalid request",
            f"engine: {value!r} is not an OCR engine; choose one of {', '.join(get_args(EngineName))}",
        )
    if name == "languages" and (
        len(value) > LANGUAGES_MAX_LENGTH or not re.fullmatch(LANGUAGES_PATTERN, value)
    ):
        raise ApiProblem(
            422, "Invalid request", f"languages: {value!r} is not language codes joined by '+' (e.g. eng+deu)"
        )
    if name == "client_reference" and len(value) > REFERENCE_MAX_LENGTH:
        raise ApiProblem(
            422, "Invalid request", f"client_reference: longer than {REFERENCE_MAX_LENGTH} characters"
        )
    if name == "client_reference" and "\x00" in value:
        raise ApiProblem(422, "Invalid request", "client_reference: contains a NUL character")


async def upload_form(request: Request) -> UploadForm:
    """FastAPI dependency for the upload route; declared after the API key check, so it runs after it."""
    return await read_upload_form(request, request.app.state.max_upload_bytes)
