"""Faults on the running embedded stack: each document still reaches a final state, with exact
page rows, nothing crash-loops, and a good document submitted right after still completes."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select

from pagestream.client import ApiClient
from pagestream.db import make_engine
from pagestream.db.schema import documents, pages
from pagestream.events.envelope import encode_headers
from pagestream.events.models import page_id_for, utcnow
from pagestream.events.topics import PAGE_OCR_COMPLETED, PAGE_OCR_FAILED, PERSIST_DLQ
from pagestream.kafka.consumer import EventConsumer
from pagestream.kafka.producer import EventProducer
from tests.integration.pipeline_fixtures import RunningStack, drain
from tests.waiting import wait_until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FINAL = ("completed", "partial", "failed")


@pytest.fixture(scope="module")
def stack_engine(running_stack: RunningStack):  # type: ignore[no-untyped-def]
    eng = make_engine(running_stack.settings.database_dsn())
    yield eng
    eng.dispose()


def dense_pdf(words: int) -> bytes:
    """One born-digital page holding ``words`` words in small print (a dense schedule or index)."""
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(2400, 2400), invariant=1)
    c.setFont("Helvetica", 5)
    per_line, n, y = 120, 0, 2380.0
    while n < words:
        line = " ".join(f"w{i:05d}" for i in range(n, min(words, n + per_line)))
        c.drawString(10, y, line)
        n += per_line
        y -= 6
    c.showPage()
    c.save()
    return buf.getvalue()


def _good_document_completes(api_url: str) -> None:
    with ApiClient(api_url) as client:
        doc = client.submit(EXAMPLES / "scanned-letter.png", force=True)
        assert client.wait(doc["id"], 180)["status"] == "completed"


def test_a_dense_page_completes_through_the_claim_check(
    running_stack: RunningStack, stack_engine: Any
) -> None:
    with ApiClient(running_stack.api_url) as client:
        doc = client.submit_bytes("dense.pdf", dense_pdf(15_000))
        done = client.wait(doc["id"], 180)
        assert done["status"] == "completed", done
        text = client.text(doc["id"])
        page = client.pages(doc["id"])["pages"][0]
        ocr = client.page_ocr(page["id"])
    words = text.split()
    assert len(words) == 15_000 and words[0] == "w00000" and words[-1] == "w14999"
    assert sum(len(ln["words"]) for b in ocr["blocks"] for ln in b["lines"]) == 15_000
    assert ocr["text"].split() == words  # the OCR view carries the page text with its layout
    results = Path(running_stack.settings.storage_url.removeprefix("file://")) / "results" / doc["id"]
    assert len(list(results.iterdir())) == 1  # the layout went through the object store, not the broker
    assert len(_pages(stack_engine, uuid.UUID(doc["id"]))) == 1


def _document(engine: Any, page_count: int) -> uuid.UUID:
    """A document row whose pages will come from records this test writes itself."""
    doc_id = uuid.uuid4()
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            insert(documents).values(
                id=doc_id,
                sha256=uuid.uuid4().hex * 2,
                media_type="application/pdf",
                size_bytes=1,
                filename="x.pdf",
                storage_uri="file:///nonexistent",
                status="processing",
                page_count=page_count,
                received_at=now,
                updated_at=now,
            )
        )
    return doc_id


def _raw(producer: EventProducer, topic: str, event_type: str, payload: str, subject: uuid.UUID) -> None:
    """Produce a record exactly as given (JSON text), bypassing our models."""
    headers = encode_headers(
        event_id=str(uuid.uuid4()), event_type=event_type, subject=str(subject), time=utcnow().isoformat()
    )
    acked: list[Any] = []
    producer.produce(
        topic, str(subject).encode(), payload.encode(), headers, on_delivery=lambda e, _: acked.append(e)
    )
    assert producer.wait_for(lambda: bool(acked), 30) and acked[0] is None


def _completed_payload(doc: uuid.UUID, n: int, count: int, text: str, attempt: int = 1) -> str:
    now = utcnow().isoformat()
    layout = {
        "text": text,
        "width": 100,
        "height": 100,
        "source": "text-layer",
        "engine": "pdfium",
        "engine_version": "t",
        "blocks": [],
    }
    return json.dumps(
        {
            "page_id": str(page_id_for(doc, n)),
            "document_id": str(doc),
            "page_number": n,
            "page_count": count,
            "attempt": attempt,
            "layout": layout,
            "started_at": now,
            "completed_at": now,
        }
    )


def _final(engine: Any, doc: uuid.UUID) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(documents).where(documents.c.id == doc)).mappings().one()
    return dict(row) if row["status"] in FINAL else None


def _pages(engine: Any, doc: uuid.UUID) -> dict[int, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(pages).where(pages.c.document_id == doc)).mappings().all()
    return {r["page_number"]: dict(r) for r in rows}


def test_persist_stores_nul_and_lone_surrogates_and_survives_poison(
    running_stack: RunningStack, stack_engine: Any
) -> None:
    """Text with NUL and lone UTF-16 surrogates is stored (cleaned); a record the database refuses
    (attempt out of integer range) and an undecodable one are dead-lettered, and their pages still
    count: the document reaches its final state and persist never restarts."""
    settings = running_stack.settings
    restarts = running_stack.supervisor.restarts("persist")
    doc = _document(stack_engine, 4)
    producer = EventProducer(settings)
    dlq = EventConsumer(settings, f"test-{uuid.uuid4()}", [PERSIST_DLQ])
    dlq.start()
    try:
        # JSON text escapes: a lone high surrogate and a NUL inside the page text
        _raw(
            producer,
            PAGE_OCR_COMPLETED,
            "page.ocr-completed.v1",
            _completed_payload(doc, 1, 4, "Status \ud83d report\x00 ok"),
            page_id_for(doc, 1),
        )
        failed = {
            "page_id": str(page_id_for(doc, 2)),
            "document_id": str(doc),
            "page_number": 2,
            "page_count": 4,
            "attempts": 1,
            "reason": "unreadable_page",
            "detail": "bad\u0000detail \udc00",
            "failed_at": utcnow().isoformat(),
        }
        _raw(producer, PAGE_OCR_FAILED, "page.ocr-failed.v1", json.dumps(failed), page_id_for(doc, 2))
        _raw(
            producer,
            PAGE_OCR_COMPLETED,
            "page.ocr-completed.v1",
            _completed_payload(doc, 3, 4, "too many attempts", attempt=2**40),
            page_id_for(doc, 3),
        )
        bad = json.loads(_completed_payload(doc, 4, 4, "x"))
        bad["layout"] = "not a layout"
        _raw(producer, PAGE_OCR_COMPLETED, "page.ocr-completed.v1", json.dumps(bad), page_id_for(doc, 4))
        try:
            final = wait_until(
                lambda: _final(stack_engine, doc), 60, "the poisoned document to reach a final state"
            )
        except AssertionError:
            log = Path(running_stack.supervisor.state()["parts"]["persist"]["log"]).read_text()[-6000:]
            raise AssertionError(f"pages: {_pages(stack_engine, doc)}\npersist log:\n{log}") from None
        rows = _pages(stack_engine, doc)
        assert final["status"] == "partial" and final["pages_done"] == 1 and final["pages_failed"] == 3
        assert rows[1]["status"] == "completed" and rows[1]["text"] == "Status \ufffd report ok"
        assert rows[2]["status"] == "failed" and rows[2]["error_detail"] == "baddetail \ufffd"
        assert rows[3]["status"] == "failed" and rows[3]["error_reason"] == "unstorable_result"
        assert rows[4]["status"] == "failed" and rows[4]["error_reason"] == "undecodable_result"
        dead = drain(
            dlq, lambda rs: {r.key for r in rs} >= {str(page_id_for(doc, n)).encode() for n in (3, 4)}, 30
        )
        assert {r.key for r in dead} >= {str(page_id_for(doc, n)).encode() for n in (3, 4)}
    finally:
        dlq.close()
        producer.close(5)
    assert running_stack.supervisor.restarts("persist") == restarts, "persist crash-looped on a poison record"
    _good_document_completes(running_stack.api_url)


def test_reprocess_runs_a_document_again_from_scratch(running_stack: RunningStack, stack_engine: Any) -> None:
    with ApiClient(running_stack.api_url) as client:
        doc = client.submit(EXAMPLES / "scanned-letter.png", force=True)
        first = client.wait(doc["id"], 180)
        assert first["status"] == "completed"
        # the stack runs with PAGESTREAM_EXPORT_PDF_ON_COMPLETION: persist stored the searchable PDF
        pdf = (
            Path(running_stack.settings.storage_url.removeprefix("file://"))
            / "exports"
            / doc["id"]
            / "searchable.pdf"
        )
        wait_until(pdf.exists, 60, "the searchable PDF written on completion")
        assert pdf.read_bytes().startswith(b"%PDF-")
        again = client.reprocess(doc["id"], languages="eng")
        assert again["status"] == "received" and again["options"]["languages"] == "eng"
        second = client.wait(doc["id"], 180)
        assert second["status"] == "completed" and second["completed_at"] > first["completed_at"], second[
            "page_errors"
        ]
        assert "Dear Ms. Alvarez" in client.text(doc["id"])
    assert len(_pages(stack_engine, uuid.UUID(doc["id"]))) == 1
    r = httpx.post(f"{running_stack.api_url}/v1/documents/{uuid.uuid4()}/reprocess", json={})
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    r = httpx.post(f"{running_stack.api_url}/v1/documents/{doc['id']}/reprocess", json={"engine": "nope"})
    assert r.status_code == 422
