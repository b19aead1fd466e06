"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

PROBLEM = "application/problem+json"


class ApiProblem(Exception):  # noqa: N818 - a problem document, per RFC 9457
    """An error answered as problem+json with a precise ``detail``."""

    def __init__(self, status: int, title: str, detail: str, **extra: object):
        super().__init__(detail)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra


def problem_response(request: Request, status: int, title: str, detail: str, **extra: object) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail,
            "instance": request.url.path, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)
