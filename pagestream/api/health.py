"""Probes and metrics for machines: ``/healthz`` (alive), ``/readyz`` (can serve), ``/metrics``.

Kept out of the OpenAPI document: orchestrators and Prometheus call them, not API clients, and
they need no API key.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from pagestream import metrics
from pagestream.db import Engine, ping

#: how long a database ping answers ``/readyz`` before the next one (probes come every few seconds)
READY_CACHE_SECONDS = 2.0


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    ready: bool = Field(
        description="true when the database and every extra check are healthy (200, else 503)"
    )
    error: str | None = Field(description="why not ready; null when ready")
    checks: dict[str, bool] = Field(description="each check (database, then the extra ones) → healthy?")


@dataclass
class _LastPing:
    """The latest database ping, reused for ``READY_CACHE_SECONDS``."""

    at: float = 0.0
    ok: bool = False
    error: str | None = None


def health_router(engine: Engine, checks: Mapping[str, Callable[[], bool]] | None = None) -> APIRouter:
    """The probes; ``checks`` are extra readiness checks (name → healthy?) beside the database."""
    router = APIRouter(include_in_schema=False)
    last = _LastPing()

    @router.get("/healthz", response_model=Health)
    def healthz() -> Health:
        return Health()

    @router.get("/readyz", response_model=Readiness)
    def readyz(response: Response) -> Readiness:
        if time.monotonic() - last.at > READY_CACHE_SECONDS:
            err = ping(engine)
            last.ok, last.error, last.at = err is None, err, time.monotonic()
        parts = {name: bool(check()) for name, check in (checks or {}).items()}
        ok = last.ok and all(parts.values())
        error = last.error or (", ".join(f"{n}: not ready" for n, v in parts.items() if not v) or None)
        response.status_code = 200 if ok else 503
        return Readiness(ready=ok, error=error, checks={"database": last.ok, **parts})

    @router.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render_metrics(), media_type=CONTENT_TYPE_LATEST)

    return router
