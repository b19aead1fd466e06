"""External producers: ``document.submit.v1`` commands → documents (committed through the
relay), rejections with the client's reference, and dead letters for undecodable records."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from pagestream.events.envelope import decode_record, header_map, make_record
from pagestream.events.models import (
    DocumentCommittedV1,
    DocumentOptions,
    DocumentRejectedV1,
    DocumentSubmitV1,
)
from pagestream.events.topics import (
    DOCUMENT_COMMITTED,
    DOCUMENT_REJECTED,
    DOCUMENT_SUBMIT,
    DOCUMENT_SUBMIT_DLQ,
)
from pagestream.kafka.consumer import ConsumedRecord
from pagestream.kafka.producer import EventProducer
from pagestream.settings import Settings
from pagestream.storage import LocalObjectStore, open_store
from pagestream.workers.submit_consumer import SubmitCommandConsumer
from tests.integration.fabricate import pdf_bytes
from tests.integration.pipeline_fixtures import drain, running_submit_consumer


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Log at INFO as the service does, so a bad log call fails here and not in production."""
    caplog.set_level(logging.INFO, logger="pagestream")


@pytest.fixture(scope="module")
def submit_consumer(migrated: Settings, engine: Engine) -> Iterator[SubmitCommandConsumer]:
    with running_submit_consumer(migrated, engine, open_store(migrated), "submit-consumer") as consumer:
        yield consumer


@pytest.fixture(scope="module")
def producer(migrated: Settings) -> Iterator[EventProducer]:
    p = EventProducer(migrated, client_id="test-submit-producer")
    yield p
    p.close(10)


@pytest.fixture
def incoming(migrated: Settings) -> Path:
    """A directory inside the allowed root (the local object store's directory)."""
    store = open_store(migrated)
    assert isinstance(store, LocalObjectStore)
    d = store.root / "incoming"
    d.mkdir(exist_ok=True)
    return d


def _events(records: list[ConsumedRecord], kind: type) -> list[Any]:
    return [
        e
        for e in (decode_record(r.value, r.headers).data for r in records if r.topic != DOCUMENT_SUBMIT_DLQ)
        if isinstance(e, kind)
    ]


def test_submit_command_creates_a_committed_document(
    submit_consumer: SubmitCommandConsumer,
    relay: Any,
    producer: EventProducer,
    consumer_factory: Any,
    engine: Engine,
    incoming: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ref = f"order-{uuid.uuid4()}"
    path = incoming / f"{ref}.pdf"
    path.write_bytes(pdf_bytes(f"submitted over kafka {ref}"))
    cmd = DocumentSubmitV1(uri=path.as_uri(), client_reference=ref, options=DocumentOptions(force_ocr=True))
    key, value, headers, _ = make_record(cmd)
    assert key == ref
    # the same command delivered twice (a producer retry) makes one document
    producer.produce(DOCUMENT_SUBMIT, key, value, headers)
    producer.produce(DOCUMENT_SUBMIT, key, value, headers)
    assert producer.flush(10) == 0

    committed = consumer_factory(DOCUMENT_COMMITTED)
    records = drain(
        committed, lambda rs: any(e.client_reference == ref for e in _events(rs, DocumentCommittedV1)), 30
    )
    mine = [e for e in _events(records, DocumentCommittedV1) if e.client_reference == ref]
    assert len(mine) == 1
    assert (mine[0].filename, mine[0].page_count, mine[0].options.force_ocr) == (path.name, 1, True)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, status FROM documents WHERE client_reference = :r"), {"r": ref}
        ).all()
    assert [(r[0], r[1]) for r in rows] == [(mine[0].document_id, "received")]
    assert submit_consumer.ready
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_bad_commands_are_rejected_with_the_client_reference(
    submit_consumer: SubmitCommandConsumer, producer: EventProducer, consumer_factory: Any, incoming: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    not_pdf = incoming / f"{run}.pdf"
    not_pdf.write_text("just some text, not a document\n")
    cases = {
        f"outside-{run}": ("file:///etc/hostname", 403, "uri_not_allowed", "outside the directory"),
        f"escape-{run}": (f"{incoming.as_uri()}/../../../../etc/passwd", 403, "uri_not_allowed", "outside"),
        f"notpdf-{run}": (not_pdf.as_uri(), 415, "unsupported_media_type", "not a PDF or image"),
        f"missing-{run}": (f"{incoming.as_uri()}/nope-{run}.pdf", 404, "object_not_found", "no file"),
        f"s3-{run}": ("s3://bucket/key.pdf", 400, "bad_uri", "S3 object store"),
        f"scheme-{run}": ("https://example.com/a.pdf", 400, "bad_uri", "s3://bucket/key or file:///"),
    }
    for ref, (uri, *_) in cases.items():
        producer.publish_sync(DocumentSubmitV1(uri=uri, client_reference=ref), topic=DOCUMENT_SUBMIT)

    rejected = consumer_factory(DOCUMENT_REJECTED)

    def mine(rs: list[ConsumedRecord]) -> dict[str, DocumentRejectedV1]:
        return {e.client_reference: e for e in _events(rs, DocumentRejectedV1) if e.client_reference in cases}

    got = mine(drain(rejected, lambda rs: len(mine(rs)) == len(cases), 30))
    assert set(got) == set(cases)
    for ref, (uri, status, reason, detail) in cases.items():
        e = got[ref]
        assert (e.uri, e.status_code, e.reason) == (uri, status, reason), ref
        assert detail in e.detail, (ref, e.detail)


def test_undecodable_commands_go_to_the_dlq(
    submit_consumer: SubmitCommandConsumer, producer: EventProducer, consumer_factory: Any
) -> None:
    run = uuid.uuid4().hex
    ce = [("ce_id", str(uuid.uuid4()).encode()), ("ce_source", b"/test"), ("ce_specversion", b"1.0")]
    bad = {
        f"notjson-{run}": (b"{not json", [*ce, ("ce_type", b"document.submit.v1")]),
        f"nouri-{run}": (b'{"client_reference": "x"}', [*ce, ("ce_type", b"document.submit.v1")]),
        f"notype-{run}": (b'{"uri": "file:///x"}', ce),
        f"wrongtype-{run}": (b'{"uri": "file:///x"}', [*ce, ("ce_type", b"document.deleted.v1")]),
    }
    for key, (value, headers) in bad.items():
        producer.produce(DOCUMENT_SUBMIT, key, value, headers)
    assert producer.flush(10) == 0

    dlq = consumer_factory(DOCUMENT_SUBMIT_DLQ)

    def mine(rs: list[ConsumedRecord]) -> dict[str, ConsumedRecord]:
        return {r.key.decode(): r for r in rs if r.key and r.key.decode() in bad}

    got = mine(drain(dlq, lambda rs: len(mine(rs)) == len(bad), 30))
    assert set(got) == set(bad)
    for key, rec in got.items():
        h = header_map(rec.headers)
        assert rec.value == bad[key][0]  # the original record, intact
        assert h["pagestream_dlq_reason"] and h["pagestream_dlq_source"].startswith(DOCUMENT_SUBMIT)
    assert (
        "unexpected document.deleted.v1"
        in header_map(got[f"wrongtype-{run}"].headers)["pagestream_dlq_detail"]
    )
    assert submit_consumer.ready
