"""``create_document``: the row and its ``document.committed.v1`` event in one transaction, sent in one
round trip; what it returns is what a read of the row gives."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, select

from pagestream.db.documents import NewDocument, create_document, get_document
from pagestream.db.schema import outbox
from pagestream.events.models import DocumentOptions

TRACEPARENT = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"


def _new(**kw: Any) -> NewDocument:
    values: dict[str, Any] = {
        "sha256": "ab" * 32,
        "media_type": "application/pdf",
        "size_bytes": 4321,
        "storage_uri": "file:///nonexistent/abab",
        "page_count": 3,
        "filename": "plan.pdf",
        "client_reference": "ref-17",
        "options": DocumentOptions(force_ocr=True, languages="eng+deu"),
    }
    values.update(kw)
    return NewDocument(**values)


def test_created_document_equals_its_row_read_back(engine: Engine) -> None:
    doc = create_document(engine, _new(), traceparent=None)
    assert isinstance(doc["id"], uuid.UUID)
    assert doc == get_document(engine, doc["id"])
    assert doc["status"] == "received" and doc["pages_done"] == 0 and doc["options"]["force_ocr"] is True


def test_unprocessable_document_is_failed_with_its_reason(engine: Engine) -> None:
    doc = create_document(engine, _new(page_count=None, unprocessable="PDF is encrypted"), traceparent=None)
    assert doc == get_document(engine, doc["id"])
    assert (
        doc["status"] == "failed" and doc["error"] == "PDF is encrypted" and doc["completed_at"] is not None
    )


def test_no_outbox_row_stays(engine: Engine) -> None:
    """The event row is inserted and deleted in the creating transaction (its insert reaches the WAL,
    which test_submit_topic follows through the cdc relay to Kafka)."""
    doc = create_document(engine, _new(), traceparent=TRACEPARENT)
    with engine.connect() as conn:
        assert conn.execute(select(outbox.c.id).where(outbox.c.aggregateid == str(doc["id"]))).first() is None
