"""Helpers for the cdc tests (no tests here): a private broker + PostgreSQL, outbox writers, a collector."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extras

from pagestream.cdc.relay import OutboxRelay
from pagestream.cdc.slot import prepare
from pagestream.db import migrate
from pagestream.events.envelope import header_map
from pagestream.events.topics import ALL_TOPICS, DOCUMENT_DELETED
from pagestream.kafka.admin import ensure_topics
from pagestream.kafka.consumer import ConsumedRecord, EventConsumer
from pagestream.settings import Settings
from pagestream.stack.broker import TansuBroker
from pagestream.stack.postgres import PrivatePostgres

EVENT_TYPE = "document.deleted.v1"


@dataclass
class PrivateStack:
    """A broker and a PostgreSQL of one test module: restarting them disturbs no other test."""

    pg: PrivatePostgres
    broker: TansuBroker
    settings: Settings


@contextmanager
def private_stack(base: Path, **overrides: Any) -> Iterator[PrivateStack]:
    """Start a Tansu broker and a fast PrivatePostgres under ``base``, migrated, topics created."""
    pg = PrivatePostgres(base / "postgres", fast=True)
    broker = TansuBroker(base / "broker")
    try:
        pg.start()
        broker.start()
        settings = Settings(
            KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
            DATABASE_URL=pg.url,
            STORAGE_URL=f"file://{base / 'objects'}",
            PAGESTREAM_STATE_DIR=base,
            PAGESTREAM_TOPIC_PARTITIONS=2,
        ).model_copy(update=overrides)
        migrate(settings.database_dsn())
        ensure_topics(settings, ALL_TOPICS)
        prepare(
            settings.database_dsn(), settings.cdc_slot, settings.cdc_publication
        )  # as `pagestream migrate`
        yield PrivateStack(pg, broker, settings)
    finally:
        broker.stop()
        pg.destroy()


@contextmanager
def running_relay(settings: Settings) -> Iterator[OutboxRelay]:
    """An OutboxRelay streaming in a thread until the block ends."""
    relay = OutboxRelay(settings)
    stop = threading.Event()
    t = threading.Thread(target=relay.run, args=(stop,), daemon=True, name="test-relay")
    t.start()
    try:
        yield relay
    finally:
        stop.set()
        t.join(20)


def payload(agg: str, seq: int, **extra: Any) -> dict[str, Any]:
    return {"document_id": agg, "deleted_at": "2026-11-23T00:00:00Z", "seq": seq, **extra}


def write_txn(cur: Any, events: list[tuple[str, dict[str, Any]]], *, keep: bool = False) -> list[str]:
    """Insert (and, like db.outbox, delete) outbox rows in the cursor's open transaction; their ids."""
    rows = [(str(uuid.uuid4()), agg, json.dumps(p)) for agg, p in events]
    psycopg2.extras.execute_values(
        cur,
        "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, traceparent, occurredat) "
        "VALUES %s",
        [(eid, "document", agg, EVENT_TYPE, p, None, "2026-11-23T00:00:00+00:00") for eid, agg, p in rows],
        template="(%s, %s, %s, %s, %s::jsonb, %s, %s)",
        page_size=1000,
    )
    if not keep:
        cur.execute("DELETE FROM outbox WHERE id = ANY(%s::uuid[])", ([r[0] for r in rows],))
    return [r[0] for r in rows]


@dataclass
class Collector:
    """Consumes topics in a thread (fresh group, from the start) and keeps every record."""

    settings: Settings
    topics: tuple[str, ...] = (DOCUMENT_DELETED,)
    records: list[ConsumedRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._consumer = EventConsumer(self.settings, f"cdc-test-{uuid.uuid4()}", self.topics)
        self._consumer.start()
        self._thread = threading.Thread(target=self._run, daemon=True, name="collector")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self._consumer.consume(1000, 0.1)
            except Exception:
                time.sleep(0.2)
                continue
            with self._lock:
                self.records.extend(batch)

    def snapshot(self) -> list[ConsumedRecord]:
        with self._lock:
            return list(self.records)

    def ids(self) -> list[str]:
        return [header_map(r.headers)["ce_id"] for r in self.snapshot()]

    def wait_for(self, ids: set[str], timeout: float) -> set[str]:
        """Wait until every id in ``ids`` arrived; return the ones still missing."""
        deadline = time.monotonic() + timeout
        missing = set(ids)
        while missing and time.monotonic() < deadline:
            missing -= set(self.ids())
            time.sleep(0.1)
        return missing

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()


def first_occurrence_by_key(records: list[ConsumedRecord]) -> dict[str, list[str]]:
    """Per record key, event ids in the order of their first arrival (redeliveries ignored)."""
    seen: set[str] = set()
    out: dict[str, list[str]] = {}
    for r in records:
        eid = header_map(r.headers)["ce_id"]
        if eid in seen:
            continue
        seen.add(eid)
        out.setdefault((r.key or b"").decode(), []).append(eid)
    return out
