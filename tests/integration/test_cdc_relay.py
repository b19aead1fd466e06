"""The cdc relay: exactly the committed outbox inserts reach Kafka, in order, with CloudEvents headers."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import text

from pagestream.cdc.slot import connect, slot_stats
from pagestream.events.envelope import header_map
from pagestream.events.topics import DOCUMENT_DELETED
from tests.integration.pipeline_fixtures import drain, wait_until


def _outbox_insert(conn, aggregate: str, payload: dict, traceparent: str | None = None) -> str:  # type: ignore[no-untyped-def]
    eid = str(uuid.uuid4())
    conn.execute(
        text(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, traceparent, occurredat) "
            "VALUES (:id, 'document', :agg, 'document.deleted.v1', CAST(:p AS jsonb), :tp, '2026-11-23T00:00:00+00:00')"
        ),
        {"id": eid, "agg": aggregate, "p": json.dumps(payload), "tp": traceparent},
    )
    return eid


def _deleted_payload(doc: str) -> dict:
    return {"document_id": doc, "deleted_at": "2026-11-23T00:00:00Z"}


def test_only_committed_inserts_are_published_in_order(engine, relay, consumer_factory):  # type: ignore[no-untyped-def]
    consumer = consumer_factory(DOCUMENT_DELETED)
    doc = str(uuid.uuid4())
    # a rolled-back transaction never produces a record
    with engine.connect() as conn:
        tx = conn.begin()
        rolled_back = _outbox_insert(conn, doc, _deleted_payload(doc))
        tx.rollback()
    # an open transaction produces nothing until it commits
    conn = engine.connect()
    tx = conn.begin()
    first = _outbox_insert(
        conn, doc, _deleted_payload(doc), traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    )
    second = _outbox_insert(conn, doc, {**_deleted_payload(doc), "deleted_at": "2026-11-23T00:00:01Z"})
    early = drain(consumer, lambda rs: any(r.key == doc.encode() for r in rs), 3.0)
    assert not [r for r in early if r.key == doc.encode()], (
        "a record was published before its transaction committed"
    )
    tx.commit()
    conn.close()
    records = [
        r
        for r in drain(consumer, lambda rs: sum(r.key == doc.encode() for r in rs) >= 2, 20.0)
        if r.key == doc.encode()
    ]
    ids = [header_map(r.headers)["ce_id"] for r in records]
    assert ids == [first, second]
    assert rolled_back not in ids
    h = header_map(records[0].headers)
    assert h["ce_type"] == "document.deleted.v1"
    assert h["ce_specversion"] == "1.0"
    assert h["ce_subject"] == doc
    assert h["id"] == first
    assert h["traceparent"].startswith("00-aaaa")
    assert json.loads(records[0].value) == _deleted_payload(doc)


def test_flush_lsn_advances_and_large_unicode_payload_is_intact(engine, relay, consumer_factory, migrated):  # type: ignore[no-untyped-def]
    consumer = consumer_factory(DOCUMENT_DELETED)
    doc = str(uuid.uuid4())
    big = {"document_id": doc, "deleted_at": "2026-11-23T00:00:00Z", "note": "ünïcødé ✓ 文字 " * 40_000}
    with engine.begin() as conn:
        eid = _outbox_insert(conn, doc, big)
    records = [
        r
        for r in drain(consumer, lambda rs: any(r.key == doc.encode() for r in rs), 20.0)
        if r.key == doc.encode()
    ]
    assert len(records) == 1 and header_map(records[0].headers)["ce_id"] == eid
    assert json.loads(records[0].value) == big
    # once acknowledged, the slot's confirmed flush LSN catches up with the WAL
    pg = connect(migrated.database_dsn())
    try:

        def caught_up() -> bool:
            stats = slot_stats(pg, migrated.cdc_slot)
            return stats is not None and stats.lag_bytes < 64 * 1024

        wait_until(caught_up, 20, "slot flush LSN to catch up")
    finally:
        pg.close()
