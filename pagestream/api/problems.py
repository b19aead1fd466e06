"""RFC 9457 problem details for every error the API returns, their OpenAPI declarations, and the
exception handlers that turn each kind of failure into one."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from pagestream import metrics
from pagestream.api.limits import UPLOAD_PATH, RequestTooLarge
from pagestream.db.errors import DatabaseUnavailableError
from pagestream.errors import PagestreamError

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"


class Problem(BaseModel):
    """An error (RFC 9457): what went wrong (``title``), and what to do about it (``detail``)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(
        "about:blank", description="always about:blank: the status code says what kind of error"
    )
    title: str = Field(description="short summary of the kind of error")
    status: int = Field(ge=400, le=599, description="the HTTP status code")
    detail: str = Field(description="what was wrong with this request, and how to fix it")
    instance: str = Field(description="the request path")


#: What each error status means on this API (the route may say more precisely).
_MEANING: dict[int, str] = {
    400: "the request cannot be parsed (malformed body, bad cursor)",
    401: "API key missing, unknown or revoked",
    404: "no such resource",
    405: "method not allowed on this path",
    409: "conflicts with the resource's state",
    413: "request or document too large",
    415: "the upload is not a PDF or image",
    422: "invalid request: a parameter or body field breaks the constraints stated here",
    500: "server error",
    503: "a dependency (database, broker, object store) is unavailable; retry shortly",
}


def problem(description: str) -> dict[str, Any]:
    """An OpenAPI response whose body is a ``Problem`` (as ``application/problem+json``)."""
    return {
        "description": description,
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def problem_responses(*statuses: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for these error statuses; ``described`` overrides a meaning (``s404="no such page"``)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        out[status] = problem(described.get(f"s{status}", _MEANING[status]))
    return out


class ApiProblem(Exception):  # noqa: N818 - a problem document, per RFC 9457
    """An error answered as problem+json with a precise ``detail``."""

    def __init__(self, status: int, title: str, detail: str, **extra: object):
        super().__init__(detail)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra


def problem_response(
    request: Request,
    status: int,
    title: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, object] | None = None,
) -> JSONResponse:
    """A ``Problem`` answer; ``extra`` adds members (RFC 9457 extensions), ``headers`` e.g. ``Allow``."""
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **(extra or {}),
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods of every route whose path matches ``path`` (the ``Allow`` of a 405).

    Routes of included routers count too: FastAPI keeps those nested (``iter_route_contexts``
    walks them), so ``app.routes`` alone would answer an empty ``Allow`` on their paths.
    """
    methods: set[str] = set()
    for route in iter_route_contexts(app.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and route.methods and regex.match(path):
            methods |= route.methods
    return sorted(methods)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error as a ``Problem``: ours, FastAPI's and Starlette's, and unexpected failures of
    pagestream's own code (retryable ones 503, so clients retry; the others 500)."""

    @app.exception_handler(ApiProblem)
    async def _problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(request, exc.status, exc.title, exc.detail, extra=exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not only those of the first route matching it
            headers["Allow"] = ", ".join(allowed_methods(app, request.url.path))
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

    @app.exception_handler(PagestreamError)
    async def _pagestream_error(request: Request, exc: PagestreamError) -> JSONResponse:
        status = 503 if exc.retryable else 500
        log.error("request failed: %s", exc, extra={"reason": exc.reason})
        return problem_response(
            request, status, "Server error", f"{exc.reason}: the request could not be completed"
        )
