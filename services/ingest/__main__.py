"""Run ingest: ``python -m services.ingest`` (HTTP on PAGESTREAM_HTTP_PORT, plus the
``document.submit.v1`` command consumer in a background thread)."""

from __future__ import annotations

import logging
import threading

import uvicorn

from pagestream.api.app import create_app
from pagestream.db import make_engine
from pagestream.logging import setup_logging
from pagestream.settings import load_settings
from pagestream.storage import open_store
from pagestream.submission import DocumentIntake
from pagestream.workers.submit_consumer import SubmitCommandConsumer

log = logging.getLogger("services.ingest")


def main() -> None:
    settings = load_settings()
    setup_logging("ingest", settings.log_level)
    engine = make_engine(settings.database_dsn(), application_name="pagestream-ingest")
    store = open_store(settings)
    submit_consumer = SubmitCommandConsumer(settings, DocumentIntake(settings, engine, store), store)
    stop = threading.Event()
    consumer_thread = threading.Thread(target=_run_consumer, args=(submit_consumer, stop), daemon=True,
                                       name="submit-consumer")
    app = create_app(settings, engine=engine, store=store, checks={"submit_consumer": lambda: (
        submit_consumer.ready and consumer_thread.is_alive())})
    consumer_thread.start()
    try:
        uvicorn.run(app, host=settings.http_host, port=settings.http_port or 8000, log_config=None,
                    access_log=False, timeout_graceful_shutdown=10)
    finally:
        stop.set()
        consumer_thread.join(15)
        engine.dispose()


def _run_consumer(consumer: SubmitCommandConsumer, stop: threading.Event) -> None:
    """The consumer thread; a crash is logged and shows in /readyz (the thread is gone)."""
    try:
        consumer.run(stop)
    except Exception:
        log.exception("document.submit.v1 consumer stopped")


if __name__ == "__main__":
    main()
