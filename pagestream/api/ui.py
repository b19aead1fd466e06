"""The web viewer at ``/ui``: static HTML/JS/CSS (no build step) over the public API.

Behind the same API keys as the API: the browser sends its key once (``POST /ui/session``), gets
it back as an HttpOnly cookie scoped to ``/ui`` for the pages and assets, and keeps it in
``sessionStorage`` to send as ``X-API-Key`` on its API calls. With ``PAGESTREAM_AUTH=disabled``
(the embedded stack) the viewer opens directly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Cookie, Form
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from pagestream.api.problems import ApiProblem

STATIC = Path(__file__).parent / "static"
COOKIE = "pagestream_ui_key"
_ASSETS = {"viewer.js": "text/javascript", "viewer.css": "text/css"}
_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}


def ui_router(require_key: Callable[..., None]) -> APIRouter:
    """Routes of the viewer; ``require_key`` is the API's own key check."""
    router = APIRouter(include_in_schema=False)

    def allowed(key: str | None) -> bool:
        try:
            require_key(x_api_key=key, authorization=None)
            return True
        except ApiProblem:
            return False

    def login(message: str = "", status: int = 401) -> HTMLResponse:
        page = (STATIC / "login.html").read_text().replace("{{message}}", message)
        return HTMLResponse(page, status_code=status, headers=_NO_STORE)

    @router.get("/ui", response_class=HTMLResponse)
    def index(key: Annotated[str | None, Cookie(alias=COOKIE)] = None) -> Response:
        if not allowed(key):
            return login()
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=_NO_STORE)

    @router.post("/ui/session")
    def session(key: Annotated[str, Form(max_length=500)]) -> Response:
        if not allowed(key.strip()):
            return login("That API key is unknown or revoked.")
        r = RedirectResponse("/ui", status_code=303)
        r.set_cookie(COOKIE, key.strip(), httponly=True, samesite="strict", path="/ui")
        return r

    @router.get("/ui/static/{name}")
    def asset(name: str, key: Annotated[str | None, Cookie(alias=COOKIE)] = None) -> Response:
        if name not in _ASSETS:
            return Response("not found", status_code=404, media_type="text/plain")
        if not allowed(key):
            return Response("API key required", status_code=401, media_type="text/plain")
        return FileResponse(STATIC / name, media_type=_ASSETS[name], headers={"Cache-Control": "no-cache"})

    return router
