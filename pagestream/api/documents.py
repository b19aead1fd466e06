"""Documents: upload, list, status, recognized text, deletion.

The routes are sync functions on the sync (psycopg2) engine, run in FastAPI's thread pool.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.params import Depends as DependsParam
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from pagestream.api.models import REFERENCE_MAX_LENGTH, DocumentList, DocumentView, UploadedDocument
from pagestream.api.problems import ApiProblem, problem_responses
from pagestream.api.uploads import UPLOAD_OPENAPI, UploadForm, upload_form
from pagestream.db import Engine, queries
from pagestream.db.documents import get_document, get_text, list_documents
from pagestream.db.errors import DocumentNotFoundError
from pagestream.errors import PagestreamError
from pagestream.events.envelope import new_traceparent
from pagestream.events.models import DocumentOptions, DocumentStatus
from pagestream.intake import RejectedDocument
from pagestream.storage import ObjectStore
from pagestream.submission import DocumentIntake

log = logging.getLogger(__name__)

#: a cursor is URL-safe base64 (unpadded), as ``next_cursor`` returns it
CURSOR_PATTERN = "^[A-Za-z0-9_-]+$"
NO_DOCUMENT = "no document with that id"


def document_view(doc: dict[str, Any], base_url: str = "") -> dict[str, Any]:
    """The public JSON shape of a document (``DocumentView``), from its row.

    A plain dict because the upload route answers it as is (``JSONResponse``, with its own status
    and ``Location``); the read routes validate it into a ``DocumentView``.
    """
    did = str(doc["id"])
    page_count = doc.get("page_count")
    return {
        "id": did,
        "status": doc["status"],
        "status_url": f"{base_url}/v1/documents/{did}",
        "filename": doc.get("filename"),
        "media_type": doc["media_type"],
        "size_bytes": doc["size_bytes"],
        "sha256": doc["sha256"],
        "page_count": page_count,
        "pages_done": doc.get("pages_done", 0),
        "pages_failed": doc.get("pages_failed", 0),
        "progress": (doc.get("pages_done", 0) + doc.get("pages_failed", 0)) / page_count
        if page_count
        else 0.0,
        "error": doc.get("error"),
        "page_errors": doc.get("page_errors", []),
        "title_blocks": doc.get("title_blocks", []),
        "client_reference": doc.get("client_reference"),
        "options": doc.get("options") or {},
        "received_at": iso(doc.get("received_at")),
        "ocr_started_at": iso(doc.get("ocr_started_at")),
        "completed_at": iso(doc.get("completed_at")),
    }


def iso(v: datetime | None) -> str | None:
    """A timestamp as the API shows it (ISO 8601), or null."""
    return v.isoformat() if v else None


def _encode_cursor(doc: dict[str, Any]) -> str:
    raw = json.dumps([doc["received_at"].isoformat(), str(doc["id"])]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts, did = json.loads(raw)
        return datetime.fromisoformat(ts), uuid.UUID(did)
    except (ValueError, TypeError) as e:
        raise ApiProblem(
            400, "Bad cursor", "cursor is not one this API returned; start again without it"
        ) from e


def document_or_404(engine: Engine, document_id: uuid.UUID) -> dict[str, Any]:
    """The document's row; 404 (as a problem) when there is none."""
    try:
        return get_document(engine, document_id)
    except DocumentNotFoundError as e:
        raise ApiProblem(404, "Document not found", f"no document with id {document_id}") from e


def documents_router(
    engine: Engine, store: ObjectStore, intake: DocumentIntake, auth: Sequence[DependsParam]
) -> APIRouter:
    """Upload, list, status, text and deletion of documents, behind ``auth``."""
    router = APIRouter(tags=["documents"])

    upload_responses: dict[int | str, dict[str, Any]] = {
        200: {
            "model": UploadedDocument,
            "description": "already accepted (same bytes, or same Idempotency-Key): "
            "the existing document, with `duplicate: true`",
        },
        **problem_responses(
            400,
            401,
            413,
            415,
            422,
            503,
            s400="the multipart body cannot be parsed (malformed, or more parts than the form has)",
            s413="the upload, its page count or its image size exceeds a limit (the detail names it)",
            s422="invalid form or header, or a damaged or empty document",
        ),
    }

    @router.post(
        "/v1/documents",
        status_code=202,
        dependencies=auth,
        openapi_extra=UPLOAD_OPENAPI,
        response_model=UploadedDocument,
        responses=upload_responses,
        summary="Upload a document (PDF or image) for OCR",
    )
    def upload(
        request: Request,
        form: Annotated[UploadForm, Depends(upload_form)],
        force: Annotated[bool, Query(description="accept identical bytes again as a new document")] = False,
        idempotency_key: Annotated[
            str | None,
            Header(
                min_length=1,
                max_length=REFERENCE_MAX_LENGTH,
                description="a retry with the same key returns the first document instead of a new one",
            ),
        ] = None,
    ) -> JSONResponse:
        try:
            options = DocumentOptions(force_ocr=form.force_ocr, engine=form.engine, languages=form.languages)
            result = intake.submit(
                form.data,
                channel="http",
                filename=form.filename,
                idempotency_key=idempotency_key,
                client_reference=form.client_reference,
                options=options,
                password=form.password,
                force=force,
                traceparent=request.headers.get("traceparent"),
            )
        except RejectedDocument as e:
            raise ApiProblem(e.status_code, "Document rejected", e.detail) from e
        body = document_view(result.document)
        body["duplicate"] = not result.created
        return JSONResponse(
            body, status_code=202 if result.created else 200, headers={"Location": body["status_url"]}
        )

    @router.get(
        "/v1/documents",
        dependencies=auth,
        response_model=DocumentList,
        responses=problem_responses(400, 401, 422, 503, s400="`cursor` is not one this API returned"),
        summary="List documents, newest first (keyset pagination)",
    )
    def documents(
        status: Annotated[DocumentStatus | None, Query(description="only documents in this status")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=200,
                json_schema_extra={"pattern": CURSOR_PATTERN},
                description="`next_cursor` of the previous page (400 when it is not one)",
            ),
        ] = None,
    ) -> DocumentList:
        before = _decode_cursor(cursor) if cursor else None
        rows = list_documents(engine, status=status, limit=limit + 1, before=before)
        page, more = rows[:limit], len(rows) > limit
        return DocumentList(
            items=[DocumentView.model_validate(document_view(r)) for r in page],
            next_cursor=_encode_cursor(page[-1]) if more and page else None,
        )

    @router.get(
        "/v1/documents/{document_id}",
        dependencies=auth,
        response_model=DocumentView,
        responses=problem_responses(401, 404, 422, 503, s404=NO_DOCUMENT),
        summary="A document's status and progress",
    )
    def document(document_id: uuid.UUID) -> DocumentView:
        return DocumentView.model_validate(document_view(document_or_404(engine, document_id)))

    @router.get(
        "/v1/documents/{document_id}/text",
        dependencies=auth,
        response_class=PlainTextResponse,
        responses={
            200: {
                "description": "the recognized text, pages separated by form feeds",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            **problem_responses(401, 404, 422, 503, s404=NO_DOCUMENT),
        },
        summary="A document's recognized text",
    )
    def document_text(document_id: uuid.UUID) -> PlainTextResponse:
        document_or_404(engine, document_id)
        pages = get_text(engine, document_id)
        return PlainTextResponse("\f".join(t for _, t in pages))

    @router.delete(
        "/v1/documents/{document_id}",
        dependencies=auth,
        status_code=204,
        responses={
            204: {"description": "deleted, with its pages and (unless shared) its stored bytes"},
            **problem_responses(401, 404, 422, 503, s404=NO_DOCUMENT),
        },
        summary="Delete a document",
    )
    def delete(request: Request, document_id: uuid.UUID) -> Response:
        try:
            traceparent = request.headers.get("traceparent") or new_traceparent()
            uri = queries.delete_document(engine, document_id, traceparent=traceparent)
        except DocumentNotFoundError as e:
            raise ApiProblem(404, "Document not found", f"no document with id {document_id}") from e
        # content-addressed bytes: remove them only when no other document still points at them
        if uri is not None and store.handles(uri) and not queries.storage_referenced(engine, uri):
            try:
                store.delete(uri)
            except PagestreamError as e:
                log.warning(
                    "document deleted but its stored bytes could not be removed: %s",
                    e,
                    extra={"document_id": str(document_id)},
                )
        log.info(
            "document deleted", extra={"document_id": str(document_id), "bytes_removed": uri is not None}
        )
        return Response(status_code=204)

    return router
