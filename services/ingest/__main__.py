"""Run ingest: ``python -m services.ingest`` (HTTP on PAGESTREAM_HTTP_PORT)."""

from __future__ import annotations

import uvicorn

from pagestream.api.app import create_app
from pagestream.logging import setup_logging
from pagestream.settings import load_settings


def main() -> None:
    settings = load_settings()
    setup_logging("ingest", settings.log_level)
    app = create_app(settings)
    uvicorn.run(app, host=settings.http_host, port=settings.http_port or 8000, log_config=None,
                access_log=False, timeout_graceful_shutdown=10)


if __name__ == "__main__":
    main()
