"""Fixtures for pipeline tests: a migrated database, topics, consumers, running services."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from pagestream.cdc.relay import OutboxRelay
from pagestream.db import make_engine, migrate
from pagestream.events.topics import ALL_TOPICS
from pagestream.kafka.admin import ensure_topics
from pagestream.kafka.consumer import ConsumedRecord, EventConsumer
from pagestream.settings import Settings


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


def wait_until(cond: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> object:
    """Poll ``cond`` until truthy (returning its value), or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


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


def drain(consumer: EventConsumer, until: Callable[[list[ConsumedRecord]], bool], timeout: float) -> list[ConsumedRecord]:
    """Collect records until ``until(records)`` holds or ``timeout`` passes."""
    out: list[ConsumedRecord] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(out):
        out.extend(consumer.consume(500, 0.2))
    return out
