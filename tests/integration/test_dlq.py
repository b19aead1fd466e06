"""Dead letters you can work with, against the real broker: list with depth, show records with why
they were given up on, redrive them to where they came from (once), by library, CLI and API."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from pagestream.api.app import create_app
from pagestream.db.apikeys import create_key
from pagestream.events.topics import DLQ_TOPICS, DOCUMENT_OCR_JOB_SUBMITTED_DLQ
from pagestream.kafka.admin import ensure_topics
from pagestream.kafka.consumer import ConsumedRecord, EventConsumer
from pagestream.kafka.dlq import REDRIVEN_FROM_HEADER, DeadLetterQueues, dead_letter
from pagestream.kafka.errors import RecordTooLargeError
from pagestream.kafka.producer import EventProducer
from pagestream.settings import Settings
from tests.integration.pipeline_fixtures import drain

PROBLEM = "application/problem+json"


@pytest.fixture
def producer(migrated: Settings) -> Iterator[EventProducer]:
    p = EventProducer(migrated)
    yield p
    p.close()


def _topics(settings: Settings) -> tuple[str, str, str]:
    """A fresh source topic, its retry topic, and a fresh DLQ topic."""
    tag = uuid.uuid4().hex[:10]
    source, dlq = f"pagestream.test-{tag}.v1", f"pagestream.test-{tag}.dlq"
    ensure_topics(settings, [source, source + ".retry", dlq])
    return source, source + ".retry", dlq


def _produce_and_read(
    producer: EventProducer,
    consumer_factory: Callable[..., EventConsumer],
    topic: str,
    values: list[tuple[str, bytes]],
) -> list[ConsumedRecord]:
    """Produce ``(key, value)`` records to ``topic`` and read them back (with their real offsets)."""
    for key, value in values:
        producer.produce(
            topic, key, value, [("ce_type", b"pagestream.test.v1"), ("traceparent", b"00-abc-def-01")]
        )
    assert producer.flush(30) == 0
    keys = [k.encode() for k, _ in values]
    mine = lambda rs: [r for r in rs if r.key in keys]  # noqa: E731
    got = mine(drain(consumer_factory(topic), lambda rs: len(mine(rs)) >= len(values), 30))
    assert len(got) == len(values)
    return sorted(got, key=lambda r: keys.index(r.key))  # type: ignore[arg-type]


def _dead_letter_some(
    producer: EventProducer,
    consumer_factory: Callable[..., EventConsumer],
    source: str,
    retry: str,
    dlq: str,
    reason: str,
    prefix: str,
) -> list[str]:
    """Three records from ``source`` and one from its retry topic, dead-lettered; returns their keys."""
    keys = [f"{prefix}-{i}" for i in range(4)]
    recs = _produce_and_read(
        producer,
        consumer_factory,
        source,
        [(k, json.dumps({"page": i, "text": "héllo"}).encode()) for i, k in enumerate(keys[:3])],
    )
    recs += _produce_and_read(producer, consumer_factory, retry, [(keys[3], b"\x00\x1b[31mnot json\xff")])
    for i, rec in enumerate(recs):
        dead_letter(
            producer,
            rec,
            dlq,
            reason,
            f"page result is 2 MB (attempt {i})",
            error=RecordTooLargeError("too large"),
            attempts=i + 1,
        )
    return keys


def test_list_show_redrive_once(
    migrated: Settings, producer: EventProducer, consumer_factory: Callable[..., EventConsumer]
) -> None:
    source, retry, dlq = _topics(migrated)
    keys = _dead_letter_some(producer, consumer_factory, source, retry, dlq, "record_too_large", "k")
    producer.produce(dlq, "orphan", b"{}", [])  # written by hand: no source, cannot be redriven
    assert producer.flush(30) == 0

    with DeadLetterQueues(migrated) as q:
        [listed] = q.topics([dlq])
        assert (listed.depth, listed.pending) == (5, 5)

        shown = {r.key: r for r in q.read(dlq, limit=50)}
        assert set(shown) == {*keys, "orphan"}
        first = shown["k-0"]
        assert (first.reason, first.error_class, first.attempts) == (
            "record_too_large",
            "RecordTooLargeError",
            1,
        )
        assert first.detail == "page result is 2 MB (attempt 0)"
        assert first.source is not None and first.source.startswith(f"{source}[")
        assert first.redrive_topic == source and first.failed_at and first.pending
        assert dict(first.headers) == {"ce_type": "pagestream.test.v1", "traceparent": "00-abc-def-01"}
        assert first.value_json == {"page": 0, "text": "héllo"}
        from_retry = shown["k-3"]
        assert from_retry.source.startswith(f"{retry}[") and from_retry.redrive_topic == source  # type: ignore[union-attr]
        assert from_retry.value_json is None and from_retry.attempts == 4
        assert "\x1b" not in from_retry.value_preview and "\x00" not in from_retry.value_preview
        assert "not json" in from_retry.value_preview
        assert shown["orphan"].redrive_topic is None
        assert len(q.read(dlq, limit=2)) == 2
        at = q.read(dlq, partition=first.partition, start_offset=first.offset)
        assert at[0].key == "k-0" and all(
            r.partition == first.partition and r.offset >= first.offset for r in at
        )
        assert q.read(dlq, partition=first.partition, start_offset=first.offset + 1000) == []

        dry = q.redrive(dlq, dry_run=True)
        assert (dry.scanned, dry.redriven, len(dry.skipped)) == (5, 4, 1)
        assert q.topics([dlq])[0].pending == 5  # a dry run marks nothing

        done = q.redrive(dlq)
        assert (done.scanned, done.redriven, done.targets) == (5, 4, {source: 4})
        assert [s.why for s in done.skipped] == ["no pagestream_dlq_source header"]
        assert q.topics([dlq])[0].pending == 0
        assert not any(r.pending for r in q.read(dlq, limit=50))

        again = q.redrive(dlq)
        assert (again.scanned, again.redriven) == (0, 0)

    back = drain(consumer_factory(source), lambda rs: len(rs) >= 7, 30)
    redriven = [r for r in back if any(k == REDRIVEN_FROM_HEADER for k, _ in r.headers)]
    assert sorted(r.key.decode() for r in redriven) == keys  # type: ignore[union-attr]
    for r in redriven:
        names = [k for k, _ in r.headers]
        assert not any(n.startswith("pagestream_dlq_") for n in names)
        assert names[:2] == ["ce_type", "traceparent"]
        assert dict(r.headers)[REDRIVEN_FROM_HEADER].decode().startswith(f"{dlq}[")
    assert {r.key: r.value for r in redriven}[b"k-3"] == b"\x00\x1b[31mnot json\xff"  # value untouched


def test_redrive_by_reason_passes_over_the_others(
    migrated: Settings, producer: EventProducer, consumer_factory: Callable[..., EventConsumer]
) -> None:
    source, retry, dlq = _topics(migrated)
    wanted = _dead_letter_some(producer, consumer_factory, source, retry, dlq, "ocr_timeout", "a")
    _dead_letter_some(producer, consumer_factory, source, retry, dlq, "record_too_large", "b")
    with DeadLetterQueues(migrated) as q:
        s = q.redrive(dlq, reason="ocr_timeout")
        assert (s.scanned, s.redriven, s.passed_over) == (8, 4, 4)
        assert s.reasons == {"ocr_timeout": 4, "record_too_large": 4}
        assert q.topics([dlq])[0].pending == 0
        assert q.redrive(dlq, reason="record_too_large").redriven == 0  # passed over means handled
    back = drain(consumer_factory(source), lambda rs: len(rs) >= 10, 30)
    assert sorted(r.key.decode() for r in back if r.headers[-1][0] == REDRIVEN_FROM_HEADER) == wanted  # type: ignore[union-attr]


# --- CLI and API, on a real DLQ topic shared with other tests: records told apart by key / reason ---


@pytest.fixture
def shared_dlq(
    migrated: Settings, producer: EventProducer, consumer_factory: Callable[..., EventConsumer]
) -> tuple[str, str, list[str], str]:
    """Four records dead-lettered to a real DLQ topic for a reason no other test uses."""
    source, retry, _ = _topics(migrated)
    reason = f"test_{uuid.uuid4().hex[:8]}"
    keys = _dead_letter_some(
        producer,
        consumer_factory,
        source,
        retry,
        DOCUMENT_OCR_JOB_SUBMITTED_DLQ,
        reason,
        uuid.uuid4().hex[:8],
    )
    return source, reason, keys, DOCUMENT_OCR_JOB_SUBMITTED_DLQ


def test_cli_ls_show_redrive(
    migrated: Settings,
    shared_dlq: tuple[str, str, list[str], str],
    consumer_factory: Callable[..., EventConsumer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pagestream.cli import dlq as cli_dlq
    from pagestream.cli import main

    source, reason, keys, dlq = shared_dlq
    monkeypatch.setattr(cli_dlq, "cli_settings", lambda: migrated)
    runner = CliRunner()

    r = runner.invoke(main, ["dlq", "ls", "--json"])
    assert r.exit_code == 0, r.output
    listed = {t["topic"]: t for t in json.loads(r.output)}
    assert set(listed) == set(DLQ_TOPICS)
    assert listed[dlq]["depth"] >= 4 and listed[dlq]["pending"] >= 4
    r = runner.invoke(main, ["dlq", "ls"])
    assert r.exit_code == 0 and dlq in r.output and "PENDING" in r.output

    r = runner.invoke(main, ["dlq", "show", dlq, "--limit", "10000", "--json"])
    assert r.exit_code == 0, r.output
    mine = {d["key"]: d for d in json.loads(r.output) if d["reason"] == reason}
    assert set(mine) == set(keys)
    assert mine[keys[0]]["error_class"] == "RecordTooLargeError" and mine[keys[0]]["attempts"] == 1
    r = runner.invoke(main, ["dlq", "show", dlq, "--pending", "--limit", "10000"])
    assert r.exit_code == 0 and f"reason:      {reason} (RecordTooLargeError)" in r.output
    assert "\x1b" not in r.output
    assert runner.invoke(main, ["dlq", "show", "pagestream.document.committed.v1"]).exit_code == 2

    r = runner.invoke(main, ["dlq", "redrive", dlq, "--reason", reason], input="n\n")
    assert r.exit_code == 1 and "would be redriven: 4" in r.output  # asked, declined: nothing happened
    r = runner.invoke(main, ["dlq", "redrive", dlq, "--reason", reason, "--yes"])
    assert r.exit_code == 0, r.output
    assert f"redriven: 4 (4 to {source})" in r.output
    r = runner.invoke(main, ["dlq", "redrive", dlq, "--reason", reason, "--yes"])
    assert r.exit_code == 0 and "redriven: 0" in r.output

    back = drain(consumer_factory(source), lambda rs: len(rs) >= 7, 30)
    assert sorted(x.key.decode() for x in back if x.headers[-1][0] == REDRIVEN_FROM_HEADER) == keys  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def client(migrated: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(
        create_app(migrated, engine=engine), headers={"X-API-Key": create_key(engine, "dlq")[1]}
    ) as c:
        yield c


def _problem(r: Any, status: int) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)


def test_api(
    migrated: Settings,
    engine: Engine,
    client: TestClient,
    shared_dlq: tuple[str, str, list[str], str],
    consumer_factory: Callable[..., EventConsumer],
) -> None:
    source, reason, keys, dlq = shared_dlq
    with TestClient(create_app(migrated, engine=engine)) as anonymous:
        _problem(anonymous.get("/v1/dlq"), 401)
        _problem(anonymous.post(f"/v1/dlq/{dlq}/redrive", json={}), 401)

    r = client.get("/v1/dlq")
    assert r.status_code == 200, r.text
    topics = {t["topic"]: t for t in r.json()["topics"]}
    assert set(topics) == set(DLQ_TOPICS) and topics[dlq]["pending"] >= 4

    r = client.get(f"/v1/dlq/{dlq}", params={"limit": 10000, "pending": True})
    assert r.status_code == 200, r.text
    mine = {d["key"]: d for d in r.json()["records"] if d["reason"] == reason}
    assert set(mine) == set(keys)
    rec = mine[keys[1]]
    assert (rec["error_class"], rec["attempts"], rec["redrive_topic"]) == ("RecordTooLargeError", 2, source)
    assert rec["value_json"] == {"page": 1, "text": "héllo"}
    assert ["ce_type", "pagestream.test.v1"] in rec["headers"]

    _problem(client.get("/v1/dlq/pagestream.document.committed.v1"), 404)
    _problem(client.post("/v1/dlq/nope.dlq/redrive", json={}), 404)
    _problem(client.get(f"/v1/dlq/{dlq}", params={"limit": 0}), 422)

    r = client.post(f"/v1/dlq/{dlq}/redrive", json={"reason": reason, "dry_run": True})
    assert r.status_code == 200 and r.json()["redriven"] == 4 and r.json()["dry_run"] is True
    r = client.post(f"/v1/dlq/{dlq}/redrive", json={"reason": reason})
    assert r.status_code == 200, r.text
    assert (r.json()["redriven"], r.json()["targets"]) == (4, {source: 4})
    assert client.post(f"/v1/dlq/{dlq}/redrive", json={"reason": reason}).json()["redriven"] == 0

    back = drain(consumer_factory(source), lambda rs: len(rs) >= 7, 30)
    assert sorted(x.key.decode() for x in back if x.headers[-1][0] == REDRIVEN_FROM_HEADER) == keys  # type: ignore[union-attr]

    spec = client.get("/openapi.json").json()
    redrive = spec["paths"]["/v1/dlq/{topic}/redrive"]["post"]
    assert "application/json" in redrive["responses"]["200"]["content"]
    assert PROBLEM in redrive["responses"]["404"]["content"]
    assert spec["paths"]["/v1/dlq/{topic}"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]
