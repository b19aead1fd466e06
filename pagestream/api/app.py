"""The HTTP API served by ingest: uploads, document status, pages, OCR layout, text, search,
deletion, and health/metrics.

The endpoints are sync functions on the sync (psycopg2) engine, run in FastAPI's thread pool.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

from pagestream import metrics
from pagestream.api.dlq import dlq_router
from pagestream.api.exports import exports_router
from pagestream.api.limits import UPLOAD_PATH, RequestBodyLimit, RequestTooLarge
from pagestream.api.models import (
    REFERENCE_MAX_LENGTH,
    DocumentList,
    DocumentPages,
    DocumentView,
    PageOcr,
    SearchResults,
    UploadedDocument,
)
from pagestream.api.operations import operations_router
from pagestream.api.problems import ApiProblem, Problem, problem, problem_response, problem_responses
from pagestream.api.ui import ui_router
from pagestream.api.uploads import UPLOAD_OPENAPI, UploadForm, upload_form
from pagestream.db import Engine, make_engine, ping, queries
from pagestream.db.apikeys import verify_key
from pagestream.db.documents import get_document, get_text, list_documents
from pagestream.db.errors import DatabaseUnavailableError, DocumentNotFoundError
from pagestream.db.queries import HIGHLIGHT_START, HIGHLIGHT_STOP, SearchHit
from pagestream.errors import PagestreamError
from pagestream.events.envelope import new_traceparent
from pagestream.events.models import DocumentOptions, DocumentStatus, page_id_for
from pagestream.intake import RejectedDocument
from pagestream.settings import Settings
from pagestream.storage import ObjectStore, open_store
from pagestream.submission import DocumentIntake

log = logging.getLogger(__name__)


def document_view(doc: dict[str, Any], base_url: str = "") -> dict[str, Any]:
    """The public JSON shape of a document."""
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
        "received_at": _iso(doc.get("received_at")),
        "ocr_started_at": _iso(doc.get("ocr_started_at")),
        "completed_at": _iso(doc.get("completed_at")),
    }


def page_view(page: dict[str, Any], base_url: str = "") -> dict[str, Any]:
    """The public JSON shape of one page row (without its OCR layout)."""
    pid = str(page["id"])
    failed = page["status"] == "failed"
    has_ocr = page["status"] == "completed"
    return {
        "id": pid,
        "page_number": page["page_number"],
        "status": page["status"],
        "source": page.get("source"),
        "engine": page.get("engine"),
        "engine_version": page.get("engine_version"),
        "rotation": page.get("rotation"),
        "confidence": page.get("mean_confidence"),
        "title_block": {
            "sheet_number": page.get("sheet_number"),
            "sheet_title": page.get("sheet_title"),
            "scale": page.get("scale"),
        },
        "error": {"reason": page.get("error_reason"), "detail": page.get("error_detail")} if failed else None,
        "attempts": page.get("attempts"),
        "timings": {
            "started_at": _iso(page.get("started_at")),
            "completed_at": _iso(page.get("completed_at")),
            "ocr_seconds": page.get("ocr_seconds"),
        },
        "ocr_url": f"{base_url}/v1/pages/{pid}/ocr" if has_ocr else None,
    }


def _pending_page(document_id: uuid.UUID, page_number: int) -> dict[str, Any]:
    """A page not recorded yet (queued or being recognized)."""
    return page_view(
        {"id": page_id_for(document_id, page_number), "page_number": page_number, "status": "pending"}
    )


def _snippet_html(snippet: str) -> str:
    """``ts_headline`` output as safe HTML: page text escaped, matched terms in ``<mark>``."""
    return (
        html.escape(snippet, quote=False)
        .replace(HIGHLIGHT_START, "<mark>")
        .replace(HIGHLIGHT_STOP, "</mark>")
    )


def search_view(hit: SearchHit, base_url: str = "") -> dict[str, Any]:
    """The public JSON shape of one search result."""
    did = str(hit.document_id)
    return {
        "document_id": did,
        "document_url": f"{base_url}/v1/documents/{did}",
        "filename": hit.filename,
        "status": hit.status,
        "page_count": hit.page_count,
        "rank": hit.rank,
        "matching_pages": hit.matching_pages,
        "pages": [
            {
                "page_number": p["page_number"],
                "page_id": str(p["page_id"]),
                "rank": p["rank"],
                "snippet": _snippet_html(p["snippet"]),
                "ocr_url": f"{base_url}/v1/pages/{p['page_id']}/ocr",
            }
            for p in hit.pages
        ],
    }


def _iso(v: datetime | None) -> str | None:
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


#: a search query must hold something other than (ASCII) whitespace, and no NUL character
SEARCH_PATTERN = "^[^\\x00]*[^\\x00 \\t\\n\\r\\f\\v][^\\x00]*$"
#: a cursor is URL-safe base64 (unpadded), as ``next_cursor`` returns it
CURSOR_PATTERN = "^[A-Za-z0-9_-]+$"

_API_KEY = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="ApiKey",
    description="an API key (create one with `pagestream apikey create`)",
)
_BEARER = HTTPBearer(auto_error=False, scheme_name="Bearer", description="the same API key as a bearer token")


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, saying what the handlers really do.

    FastAPI's defaults are corrected here: validation errors are ``Problem`` documents (not
    ``HTTPValidationError``), and an optional query or header parameter is absent, never ``null``
    (a query string cannot send a JSON null).
    """
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for ops in doc.get("paths", {}).values():
        for op in ops.values():
            for param in op.get("parameters", []):
                schema = param.get("schema", {})
                variants = [v for v in schema.get("anyOf", []) if v != {"type": "null"}]
                if "anyOf" in schema and len(variants) == 1:
                    del schema["anyOf"]
                    schema.update(variants[0])
            for status, response in op.get("responses", {}).items():
                content = response.get("content", {})
                if status.startswith(("4", "5")) and "application/json" in content:
                    response.update(problem(response.get("description", "error")))
    app.openapi_schema = doc
    return doc


def _allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods of every route whose path matches ``path`` (the ``Allow`` of a 405)."""
    methods: set[str] = set()
    for route in app.routes:
        if isinstance(route, APIRoute) and route.path_regex.match(path):
            methods |= route.methods or set()
    return sorted(methods)


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    store: ObjectStore | None = None,
    checks: Mapping[str, Callable[[], bool]] | None = None,
) -> FastAPI:
    """Build the API. Connections are made lazily (first request), never at import.

    ``checks`` are extra readiness probes (name → healthy?) reported by ``/readyz``,
    e.g. the ``document.submit.v1`` command consumer running beside the API.
    """
    engine = engine or make_engine(settings.database_dsn(), application_name="pagestream-ingest")
    store = store or open_store(settings)
    intake = DocumentIntake(settings, engine, store)
    app = FastAPI(
        title="pagestream",
        version="1",
        description="Document OCR pipeline: upload, status, pages, OCR layout, text, search.",
    )
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    app.state.engine = engine
    app.state.max_upload_bytes = settings.max_upload_bytes  # read by the upload form dependency
    if settings.auth == "disabled":
        log.warning(
            "API authentication is DISABLED (PAGESTREAM_AUTH=disabled): anyone who reaches the port can use it"
        )

    @app.exception_handler(ApiProblem)
    async def _problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(request, exc.status, exc.title, exc.detail, extra=exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not only those of the first route matching it
            headers["Allow"] = ", ".join(_allowed_methods(app, request.url.path))
        return problem_response(request, exc.status_code, "HTTP error", str(exc.detail), headers=headers)

    @app.exception_handler(RequestTooLarge)
    async def _too_large(request: Request, exc: RequestTooLarge) -> JSONResponse:
        if request.method == "POST" and request.url.path.rstrip("/") == UPLOAD_PATH:
            metrics.DOCUMENTS_REJECTED.labels("http", "413").inc()
        return problem_response(request, 413, "Request too large", str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return problem_response(request, 422, "Invalid request", errs)

    @app.exception_handler(DatabaseUnavailableError)
    async def _db_down(request: Request, exc: DatabaseUnavailableError) -> JSONResponse:
        return problem_response(
            request, 503, "Database unavailable", "the database is unreachable; retry shortly"
        )

    # Bodies are capped before anything parses them (inside _metrics, so 413s are counted there too).
    app.add_middleware(RequestBodyLimit, max_upload_bytes=settings.max_upload_bytes)

    @app.middleware("http")
    async def _metrics(request: Request, call_next: Any) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.HTTP_REQUESTS.labels(request.method, path, str(response.status_code)).inc()
        metrics.HTTP_SECONDS.labels(request.method, path).observe(time.perf_counter() - start)
        return response

    def require_key(
        x_api_key: Annotated[str | None, Security(_API_KEY)] = None,
        authorization: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
    ) -> None:
        """The API key check: ``X-API-Key``, else ``Authorization: Bearer``; 401 without a valid one."""
        if settings.auth == "disabled":
            return
        key = x_api_key or (authorization.credentials.strip() if authorization else None)
        if not key:
            raise ApiProblem(
                401,
                "API key required",
                "send an API key in the X-API-Key header (create one with `pagestream apikey create`)",
            )
        if not verify_key(engine, key):
            raise ApiProblem(401, "Invalid API key", "the API key is unknown or revoked")

    auth = [Depends(require_key)]
    # outputs (searchable PDF, hOCR/ALTO, page images) and the web viewer at /ui
    app.include_router(exports_router(engine, store, require_key))
    app.include_router(ui_router(require_key))

    def _doc_or_404(document_id: uuid.UUID) -> dict[str, Any]:
        try:
            return get_document(engine, document_id)
        except DocumentNotFoundError as e:
            raise ApiProblem(404, "Document not found", f"no document with id {document_id}") from e

    no_document = "no document with that id"
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

    @app.post(
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

    @app.get(
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
    ) -> dict[str, Any]:
        before = _decode_cursor(cursor) if cursor else None
        rows = list_documents(engine, status=status, limit=limit + 1, before=before)
        page, more = rows[:limit], len(rows) > limit
        return {
            "items": [document_view(r) for r in page],
            "next_cursor": _encode_cursor(page[-1]) if more and page else None,
        }

    @app.get(
        "/v1/documents/{document_id}",
        dependencies=auth,
        response_model=DocumentView,
        responses=problem_responses(401, 404, 422, 503, s404=no_document),
        summary="A document's status and progress",
    )
    def document(document_id: uuid.UUID) -> dict[str, Any]:
        return document_view(_doc_or_404(document_id))

    @app.get(
        "/v1/documents/{document_id}/text",
        dependencies=auth,
        response_class=PlainTextResponse,
        responses={
            200: {
                "description": "the recognized text, pages separated by form feeds",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            **problem_responses(401, 404, 422, 503, s404=no_document),
        },
        summary="A document's recognized text",
    )
    def document_text(document_id: uuid.UUID) -> PlainTextResponse:
        _doc_or_404(document_id)
        pages = get_text(engine, document_id)
        return PlainTextResponse("\f".join(t for _, t in pages))

    @app.get(
        "/v1/documents/{document_id}/pages",
        dependencies=auth,
        response_model=DocumentPages,
        responses=problem_responses(401, 404, 422, 503, s404=no_document),
        summary="Every page of a document with its status",
    )
    def document_pages(document_id: uuid.UUID) -> dict[str, Any]:
        doc = _doc_or_404(document_id)
        stored = {p["page_number"]: page_view(p) for p in queries.list_pages(engine, document_id)}
        count = doc.get("page_count") or 0
        items = [stored.get(n) or _pending_page(document_id, n) for n in range(1, count + 1)]
        items += [v for n, v in sorted(stored.items()) if n > count]
        return {
            "document_id": str(document_id),
            "status": doc["status"],
            "page_count": doc.get("page_count"),
            "pages": items,
        }

    @app.get(
        "/v1/pages/{page_id}/ocr",
        dependencies=auth,
        response_model=PageOcr,
        responses=problem_responses(
            401, 404, 422, 503, s404="no such page, or it has no OCR result (pending or failed)"
        ),
        summary="A recognized page's OCR layout",
    )
    def page_ocr(page_id: uuid.UUID) -> dict[str, Any]:
        page = queries.get_page(engine, page_id)
        if page is None:
            raise ApiProblem(
                404,
                "Page not found",
                f"no recognized page with id {page_id} (it may still be pending, or its document was deleted)",
            )
        if page["status"] != "completed" or page.get("layout") is None:
            raise ApiProblem(
                404,
                "No OCR result",
                f"page {page['page_number']} of document {page['document_id']} failed "
                f"({page.get('error_reason')}): {page.get('error_detail')}",
            )
        return {
            **page["layout"],
            "text": page["text"],
            "page_id": str(page_id),
            "document_id": str(page["document_id"]),
            "page_number": page["page_number"],
        }

    @app.get(
        "/v1/search",
        dependencies=auth,
        response_model=SearchResults,
        responses=problem_responses(401, 422, 503),
        summary="Full-text search over recognized pages",
    )
    def search(
        q: Annotated[
            str,
            Query(
                min_length=1,
                max_length=1000,
                json_schema_extra={"pattern": SEARCH_PATTERN},
                description='web-search syntax: words, "a phrase", or, -not; not blank, no NUL character',
            ),
        ],
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> dict[str, Any]:
        # SEARCH_PATTERN, checked here to say which part of it the query breaks
        if "\x00" in q:
            raise ApiProblem(422, "Invalid request", "query.q: the search query contains a NUL character")
        if not q.strip(" \t\n\r\f\v"):
            raise ApiProblem(422, "Invalid request", "query.q: the search query is blank")
        hits = queries.search_pages(engine, q, limit=limit)
        return {"query": q, "items": [search_view(h) for h in hits]}

    @app.delete(
        "/v1/documents/{document_id}",
        dependencies=auth,
        status_code=204,
        responses={
            204: {"description": "deleted, with its pages and (unless shared) its stored bytes"},
            **problem_responses(401, 404, 422, 503, s404=no_document),
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

    app.include_router(operations_router(engine, auth))
    app.include_router(dlq_router(settings, auth))

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    last_ready: dict[str, Any] = {"at": 0.0, "ok": False, "error": None}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        if time.monotonic() - last_ready["at"] > 2.0:
            err = ping(engine)
            last_ready.update(ok=err is None, error=err, at=time.monotonic())
        parts = {name: bool(check()) for name, check in (checks or {}).items()}
        ok = last_ready["ok"] and all(parts.values())
        error = last_ready["error"] or (
            ", ".join(f"{n}: not ready" for n, v in parts.items() if not v) or None
        )
        return JSONResponse(
            {"ready": ok, "error": error, "checks": {"database": last_ready["ok"], **parts}},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        return Response(metrics.render_metrics(), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(PagestreamError)
    async def _pagestream_error(request: Request, exc: PagestreamError) -> JSONResponse:
        status = 503 if exc.retryable else 500
        log.error("request failed: %s", exc, extra={"reason": exc.reason})
        return problem_response(
            request, status, "Server error", f"{exc.reason}: the request could not be completed"
        )

    return app
