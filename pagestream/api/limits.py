"""Request body caps, enforced before anything parses a body.

A pure ASGI middleware (not ``BaseHTTPMiddleware``, so bodies keep streaming): a declared
``Content-Length`` over the cap is answered 413 at once, without reading a byte of the body;
a body without one (chunked) is counted as it streams and stopped with 413 when it crosses
the cap. Uploads get ``max_upload_bytes`` plus room for the multipart envelope; every other
route gets a small JSON-sized cap.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pagestream import metrics

#: Room for the multipart envelope around the file: boundaries, part headers, the small form fields.
MULTIPART_OVERHEAD_BYTES = 256 * 1024
#: Largest non-file form field (password, engine, languages, client_reference…).
MAX_FORM_FIELD_BYTES = 64 * 1024
#: Cap for any request that is not an upload (JSON bodies of the other routes).
MAX_OTHER_BODY_BYTES = 1024 * 1024

UPLOAD_PATH = "/v1/documents"


class RequestTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body crosses its cap; answered 413."""

    def __init__(self, detail: str) -> None:
        super().__init__(status_code=413, detail=detail)


def _human(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


class RequestBodyLimit:
    """Caps request bodies before any parsing (see the module docstring)."""

    def __init__(
        self, app: ASGIApp, *, max_upload_bytes: int, other_limit: int = MAX_OTHER_BODY_BYTES
    ) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.other_limit = other_limit

    def limit_for(self, scope: Scope) -> tuple[int, bool]:
        """(cap in bytes, is it the upload route)."""
        if scope.get("method") == "POST" and scope.get("path", "").rstrip("/") == UPLOAD_PATH:
            return self.max_upload_bytes + MULTIPART_OVERHEAD_BYTES, True
        return self.other_limit, False

    def detail(self, size: int | None, limit: int, upload: bool) -> str:
        what = f"request body is {size} bytes" if size is not None else "request body exceeds the limit"
        if upload:
            return (
                f"{what}; uploads are limited to {self.max_upload_bytes} bytes ({_human(self.max_upload_bytes)}, "
                f"PAGESTREAM_MAX_UPLOAD_BYTES) plus {_human(MULTIPART_OVERHEAD_BYTES)} of multipart form; "
                "split the document, or ask the operator to raise the limit"
            )
        return f"{what}; this endpoint accepts at most {limit} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, upload = self.limit_for(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            if upload:
                metrics.DOCUMENTS_REJECTED.labels("http", "413").inc()
            await _send_413(scope, send, self.detail(declared, limit, upload))
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestTooLarge(self.detail(None, limit, upload))
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except RequestTooLarge as e:  # raised where nothing turned it into a response
            if started:
                raise
            if upload:
                metrics.DOCUMENTS_REJECTED.labels("http", "413").inc()
            await _send_413(scope, send, str(e.detail))


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_413(scope: Scope, send: Send, detail: str) -> None:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": "Request too large",
        "status": 413,
        "detail": detail,
        "instance": scope.get("path", ""),
    }
    raw = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(raw)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})
