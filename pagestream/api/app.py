"""The HTTP API served by ingest, assembled from one router per resource.

documents (upload, list, status, text, delete), pages (a document's pages, a page's OCR layout),
search, outputs (searchable PDF, hOCR/ALTO, page images), operations (reprocess), dead letters,
the web viewer at ``/ui``, and the probes and metrics. Every JSON route declares a pydantic
response model and its error statuses, so the OpenAPI document states every answer, and
``tests/integration/test_openapi_contract.py`` holds the server to it.

The routes are sync functions on the sync (psycopg2) engine, run in FastAPI's thread pool.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from fastapi import Depends, FastAPI

from pagestream.api.auth import key_check
from pagestream.api.dlq import dlq_router
from pagestream.api.documents import documents_router
from pagestream.api.exports import exports_router
from pagestream.api.health import health_router
from pagestream.api.limits import RequestBodyLimit
from pagestream.api.observe import RequestMetrics
from pagestream.api.openapi import openapi_document
from pagestream.api.operations import operations_router
from pagestream.api.pages import pages_router
from pagestream.api.problems import install_problem_handlers
from pagestream.api.search import search_router
from pagestream.api.ui import ui_router
from pagestream.db import Engine, make_engine
from pagestream.settings import Settings
from pagestream.storage import ObjectStore, open_store
from pagestream.submission import DocumentIntake

log = logging.getLogger(__name__)


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
    install_problem_handlers(app)

    # Bodies are capped before anything parses them (inside _metrics, so 413s are counted there too).
    app.add_middleware(RequestBodyLimit, max_upload_bytes=settings.max_upload_bytes)

    app.add_middleware(RequestMetrics)  # outermost: counts what the body limit refuses too

    require_key = key_check(settings, engine)
    auth = [Depends(require_key)]
    app.include_router(exports_router(engine, store, require_key))
    app.include_router(ui_router(require_key))
    app.include_router(documents_router(engine, store, intake, auth))
    app.include_router(pages_router(engine, auth))
    app.include_router(search_router(engine, auth))
    app.include_router(operations_router(engine, auth))
    app.include_router(dlq_router(settings, auth))
    app.include_router(health_router(engine, checks))
    return app
