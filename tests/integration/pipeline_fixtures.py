"""Fixtures for pipeline tests: a migrated database, topics, consumers, running services."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from pagestream.cdc.relay import OutboxRelay
from pagestream.db import make_engine, migrate
from pagestream.events.topics import ALL_TOPICS
from pagestream.kafka.admin import ensure_topics
from pagestream.kafka.consumer import ConsumedRecord, EventConsumer
from pagestream.settings import Settings
from tests.waiting import wait_until


@pytest.fixture(scope="session")
def migrated(settings: Settings) -> Settings:
    """The session database with every migration applied and the topics created."""
    migrate(settings.database_dsn())
    ensure_topics(settings, ALL_TOPICS)
    return settings


@pytest.fixture(scope="session")
def engine(migrated: Settings):  # type: ignore[no-untyped-def]
    eng = make_engine(migrated.database_dsn())
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def relay(migrated: Settings) -> Iterator[OutboxRelay]:
    """One cdc relay streaming for the whole session."""
    r = OutboxRelay(migrated.model_copy(update={"cdc_heartbeat_seconds": 1.0}))
    stop = threading.Event()
    t = threading.Thread(target=r.run, args=(stop,), daemon=True, name="relay")
    t.start()
    wait_until(lambda: r.ready, 30, "relay ready")
    yield r
    stop.set()
    t.join(15)


@pytest.fixture
def consumer_factory(migrated: Settings) -> Iterator[Callable[..., EventConsumer]]:
    """Consumers in fresh groups (so each test reads topics from the start); closed afterwards."""
    made: list[EventConsumer] = []

    def make(*topics: str, group: str | None = None) -> EventConsumer:
        c = EventConsumer(migrated, group or f"test-{uuid.uuid4()}", topics)
        c.start()
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@contextmanager
def running_submit_consumer(settings: Settings, engine: Any, store: Any, name: str) -> Iterator[Any]:
    """A ``SubmitCommandConsumer`` running in a thread until the block ends (then it must stop)."""
    from pagestream.submission import DocumentIntake
    from pagestream.workers.submit_consumer import SubmitCommandConsumer

    consumer = SubmitCommandConsumer(settings, DocumentIntake(settings, engine, store), store)
    stop = threading.Event()
    t = threading.Thread(target=consumer.run, args=(stop,), daemon=True, name=name)
    t.start()
    wait_until(lambda: consumer.ready, 30, "submit consumer running")
    try:
        yield consumer
    finally:
        stop.set()
        t.join(15)
    assert not t.is_alive()


def drain(
    consumer: EventConsumer, until: Callable[[list[ConsumedRecord]], bool], timeout: float
) -> list[ConsumedRecord]:
    """Collect records until ``until(records)`` holds or ``timeout`` passes."""
    out: list[ConsumedRecord] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(out):
        out.extend(consumer.consume(500, 0.2))
    return out


@dataclass
class RunningStack:
    """A fully embedded stack (own broker, PostgreSQL, object store, all four services)."""

    supervisor: Any
    settings: Settings
    api_url: str
    metrics_urls: dict[str, str]
    ready_urls: dict[str, str]


def _ready(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1.0) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="session")
def running_stack() -> Iterator[RunningStack]:
    """The real `pagestream up` supervisor, in a thread, on a private state dir."""
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from pagestream.events.topics import PAGE_OCR_COMPLETED, PAGE_OCR_FAILED
    from pagestream.stack.broker import UNVALIDATED_TOPICS_ENV
    from pagestream.stack.supervisor import StackSupervisor

    # /var/tmp so the postgres user can reach the data dir when the tests run as root
    state = Path(tempfile.mkdtemp(prefix="pagestream-test-stack-", dir="/var/tmp"))
    state.chmod(0o755)
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "STORAGE_URL", "PAGESTREAM_API_URL")
    }
    environ.update(
        PAGESTREAM_OCR_WORKERS="2",
        PAGESTREAM_CDC_HEARTBEAT_SECONDS="1",
        OMP_THREAD_LIMIT="1",
        PAGESTREAM_EXPORT_PDF_ON_COMPLETION="true",
    )
    # The embedded broker refuses records that do not match their topic's schema; persist's input topics
    # stay open because test_liveness_pipeline feeds persist poison an unvalidating broker would accept.
    environ[UNVALIDATED_TOPICS_ENV] = f"{PAGE_OCR_COMPLETED},{PAGE_OCR_FAILED}"
    sup = StackSupervisor(state, environ, fast_database=True)
    t = threading.Thread(target=sup.run, kwargs={"install_signal_handlers": False}, daemon=True, name="stack")
    t.start()
    try:

        def parts() -> dict | None:
            st = sup.state() if sup.api_url else None
            if not st:
                return None
            svc = {n: p for n, p in st["parts"].items() if p.get("kind") == "service"}
            return svc if len(svc) == 4 and all(_ready(p["ready_url"]) for p in svc.values()) else None

        svc = wait_until(parts, 180, "the embedded stack to be ready", interval=0.5)
        assert isinstance(svc, dict)
        yield RunningStack(
            supervisor=sup,
            settings=sup.settings(),
            api_url=sup.api_url,
            metrics_urls={n: p["metrics_url"] for n, p in svc.items()},
            ready_urls={n: p["ready_url"] for n, p in svc.items()},
        )
    finally:
        sup.request_stop()
        t.join(90)
        shutil.rmtree(state, ignore_errors=True)
