"""API key authentication: one check shared by every router and by the web viewer's login.

A key is sent as ``X-API-Key`` or as ``Authorization: Bearer``; both are declared as OpenAPI
security schemes so clients (and the contract test) know to send one. ``PAGESTREAM_AUTH=disabled``
(the embedded stack) lets every request through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from pagestream.api.problems import ApiProblem
from pagestream.db import Engine
from pagestream.db.apikeys import verify_key
from pagestream.settings import Settings

#: the signature routers depend on: raises ``ApiProblem(401)`` unless the request holds a valid key
KeyCheck = Callable[..., None]

_API_KEY = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="ApiKey",
    description="an API key (create one with `pagestream apikey create`)",
)
_BEARER = HTTPBearer(auto_error=False, scheme_name="Bearer", description="the same API key as a bearer token")


def key_check(settings: Settings, engine: Engine) -> KeyCheck:
    """The dependency that authenticates a request against the ``api_keys`` table of ``engine``."""

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

    return require_key
