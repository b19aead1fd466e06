"""RFC 9457 problem details for every error the API returns, and their OpenAPI declarations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

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
