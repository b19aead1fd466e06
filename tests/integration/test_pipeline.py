"""The whole pipeline on the real embedded stack, and its defining property:
OCR starts only from committed document rows."""

from __future__ import annotations

import hashlib
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from pagestream.client import ApiClient
from pagestream.db import make_engine
from pagestream.db.outbox import write_event
from pagestream.db.schema import documents, pages
from pagestream.events.envelope import header_map
from pagestream.events.models import DocumentCommittedV1, utcnow
from pagestream.events.topics import DOCUMENT_COMMITTED
from pagestream.kafka.consumer import EventConsumer
from pagestream.storage import content_key, open_store
from tests.integration.pipeline_fixtures import RunningStack, wait_until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def stack_engine(running_stack: RunningStack):  # type: ignore[no-untyped-def]
    eng = make_engine(running_stack.settings.database_dsn())
    yield eng
    eng.dispose()


def _page_rows(engine, doc_id: uuid.UUID) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(pages).where(pages.c.document_id == doc_id)
        ).scalar_one()


def test_examples_are_recognized_end_to_end(running_stack: RunningStack, stack_engine) -> None:  # type: ignore[no-untyped-def]
    with ApiClient(running_stack.api_url) as client:
        submitted = {
            p.name: client.submit(p, force=True)
            for p in sorted(EXAMPLES.iterdir())
            if p.suffix in (".pdf", ".png")
        }
        done = {name: client.wait(d["id"], 240) for name, d in submitted.items()}
        texts = {name: client.text(d["id"]) for name, d in done.items()}
    for name, d in done.items():
        assert d["status"] == "completed", (name, d)
        assert d["pages_done"] == d["page_count"]
        assert _page_rows(stack_engine, uuid.UUID(d["id"])) == d["page_count"]
    assert "Dear Ms. Alvarez" in texts["scanned-letter.png"]
    report = texts["born-digital-report.pdf"]
    assert report.count("\f") == done["born-digital-report.pdf"]["page_count"] - 1
    drawing = done["drawing-A-101.pdf"]
    assert drawing["title_blocks"] == [
        {
            "page_number": 1,
            "sheet_number": "A-101",
            "sheet_title": "FIRST FLOOR PLAN",
            "scale": '1/4" = 1\'-0"',
        }
    ]


def test_only_committed_documents_are_processed(running_stack: RunningStack, stack_engine) -> None:  # type: ignore[no-untyped-def]
    """An open transaction produces no Kafka record and no OCR; a rolled-back one never
    does; once committed, exactly one set of page results is stored."""
    settings = running_stack.settings
    data = (EXAMPLES / "scanned-letter.png").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    uri = open_store(settings).put(content_key(sha), data, "image/png")
    consumer = EventConsumer(settings, f"test-{uuid.uuid4()}", [DOCUMENT_COMMITTED])
    consumer.start()

    def new_doc(conn) -> uuid.UUID:  # type: ignore[no-untyped-def]
        doc_id, now = uuid.uuid4(), utcnow()
        conn.execute(
            insert(documents).values(
                id=doc_id,
                sha256=sha,
                media_type="image/png",
                size_bytes=len(data),
                storage_uri=uri,
                status="received",
                page_count=1,
                received_at=now,
                updated_at=now,
            )
        )
        write_event(
            conn,
            DocumentCommittedV1(
                document_id=doc_id,
                sha256=sha,
                media_type="image/png",
                size_bytes=len(data),
                page_count=1,
                storage_uri=uri,
                received_at=now,
            ),
            traceparent=None,
        )
        return doc_id

    seen: set[str] = set()

    def collect(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for r in consumer.consume(100, 0.2):
                seen.add(header_map(r.headers)["ce_subject"])

    try:
        with stack_engine.connect() as rolled_conn:
            tx = rolled_conn.begin()
            rolled_back = new_doc(rolled_conn)
            tx.rollback()
        open_conn = stack_engine.connect()
        tx = open_conn.begin()
        pending = new_doc(open_conn)
        collect(6.0)  # the relay heartbeats every second: plenty of time to leak, if it could
        assert str(pending) not in seen, "a document.committed record was published before COMMIT"
        assert str(rolled_back) not in seen
        assert _page_rows(stack_engine, pending) == 0
        tx.commit()
        open_conn.close()

        def completed() -> bool:
            with stack_engine.connect() as conn:
                return (
                    conn.execute(select(documents.c.status).where(documents.c.id == pending)).scalar_one()
                    == "completed"
                )

        wait_until(completed, 120, "the committed document to complete", interval=0.2)
        collect(1.0)
        assert str(pending) in seen
        assert str(rolled_back) not in seen
        assert _page_rows(stack_engine, pending) == 1
        with stack_engine.connect() as conn:
            assert (
                conn.execute(
                    select(func.count()).select_from(documents).where(documents.c.id == rolled_back)
                ).scalar_one()
                == 0
            )
    finally:
        consumer.close()
