"""Run ingest: ``python -m services.ingest`` (HTTP on PAGESTREAM_HTTP_PORT, plus the
``document.submit.v1`` command consumer in a background thread)."""

from __future__ import annotations

import sys
import threading

import uvicorn

from pagestream.api.app import create_app
from pagestream.db import make_engine
from pagestream.logging import setup_logging
from pagestream.runtime import start_essential_thread
from pagestream.settings import load_settings
from pagestream.storage import open_store
from pagestream.submission import DocumentIntake
from pagestream.workers.submit_consumer import SubmitCommandConsumer

#: PostgreSQL connections ingest keeps open (see ``main``).
INGEST_POOL_SIZE = 20
#: How long a thread may hold the GIL while another waits for it (see ``main``).
GIL_SWITCH_INTERVAL_SECONDS = 0.0005


def main() -> None:
    # The event loop thread (HTTP parsing, responses) and the API's worker threads (validation,
    # hashing, the database) share one GIL. When a worker holds it, the loop waits up to the switch
    # interval (5 ms by default) before it can read the next request or write a response: at
    # 8 concurrent uploads that wait held the rate below what the CPU allows. 0.5 ms hands it over sooner
    # (paired bench runs, 100 KB JPEGs, 8 clients, shared machine: 166/182/197 -> 186/220/222
    # uploads/s; CPU per upload unchanged within noise).
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECONDS)
    settings = load_settings()
    setup_logging("ingest", settings.log_level)
    # Uploads run on the API's worker threads (anyio's default: 40), each holding a connection
    # for its statements. A pool smaller than the requests in flight opens and closes an overflow
    # connection per request (SCRAM authentication and a backend fork each time: at 8 concurrent
    # uploads one in 7 paid for it, in ingest's CPU and PostgreSQL's); this one holds 20 open.
    engine = make_engine(
        settings.database_dsn(), pool_size=INGEST_POOL_SIZE, application_name="pagestream-ingest"
    )
    store = open_store(settings)
    submit_consumer = SubmitCommandConsumer(settings, DocumentIntake(settings, engine, store), store)
    stop = threading.Event()
    app = create_app(
        settings, engine=engine, store=store, checks={"submit_consumer": lambda: submit_consumer.ready}
    )
    # a dead submit consumer ends the process (the supervisor or Kubernetes restarts it)
    consumer_thread = start_essential_thread("submit-consumer", submit_consumer.run, stop)
    try:
        uvicorn.run(
            app,
            host=settings.http_host,
            port=settings.http_port or 8000,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    finally:
        stop.set()
        consumer_thread.join(15)
        engine.dispose()


if __name__ == "__main__":
    main()
