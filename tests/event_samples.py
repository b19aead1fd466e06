"""One realistic instance of every event type, for schema tests (unit and broker-side)."""

from __future__ import annotations

import uuid

from pagestream.events.models import (
    ALL_EVENTS,
    DocumentCommittedV1,
    DocumentDeletedV1,
    DocumentOcrCompletedV1,
    DocumentOcrJobSubmittedV1,
    DocumentOptions,
    DocumentRejectedV1,
    DocumentSubmitV1,
    Event,
    PageOcrCompletedV1,
    PageOcrFailedV1,
    PageOcrRequestedV1,
    page_id_for,
    utcnow,
)
from pagestream.layout import Block, Box, Line, PageLayout, TitleBlock, Word


def sample_events() -> dict[str, Event]:
    """event type → a fully populated instance (optional fields set, nested models filled)."""
    doc = uuid.uuid4()
    page = page_id_for(doc, 1)
    now = utcnow()
    opts = DocumentOptions(force_ocr=True, engine="tesseract", languages="eng+deu")
    box = Box.from_pixels(10, 10, 90, 30, 1000, 800)
    layout = PageLayout(
        text="Sheet A-101",
        width=1000,
        height=800,
        dpi=300,
        source="ocr",
        engine="tesseract",
        engine_version="5.test",
        mean_confidence=91.5,
        blocks=[
            Block(
                text="Sheet A-101",
                box=box,
                lines=[
                    Line(
                        text="Sheet A-101",
                        box=box,
                        words=[
                            Word(text="Sheet", box=box, confidence=90.0),
                            Word(text="A-101", box=box, confidence=93.0),
                        ],
                    )
                ],
            )
        ],
        title_block=TitleBlock(sheet_number="A-101", sheet_title="Plan", scale="1:100"),
    )
    events: list[Event] = [
        DocumentSubmitV1(
            uri="file:///incoming/a.pdf",
            filename="a.pdf",
            client_reference="ref-1",
            idempotency_key="key-1",
            options=opts,
        ),
        DocumentCommittedV1(
            document_id=doc,
            sha256="ab" * 32,
            media_type="application/pdf",
            size_bytes=1234,
            page_count=1,
            storage_uri="file:///objects/x",
            filename="a.pdf",
            client_reference="ref-1",
            options=opts,
            received_at=now,
        ),
        DocumentRejectedV1(
            uri="https://example.com/a.pdf",
            client_reference="ref-2",
            status_code=400,
            reason="bad_uri",
            detail="use s3:// or file:///",
            rejected_at=now,
        ),
        DocumentOcrJobSubmittedV1(
            document_id=doc,
            job_id="job-1",
            storage_uri="s3://b/k",
            page_count=3,
            submitted_at=now,
            poll_attempt=2,
            not_before=now,
        ),
        DocumentOcrCompletedV1(
            document_id=doc,
            status="partial",
            page_count=2,
            pages_done=1,
            pages_failed=1,
            received_at=now,
            completed_at=now,
            error="page 2: unreadable",
        ),
        DocumentDeletedV1(document_id=doc, deleted_at=now),
        PageOcrRequestedV1(
            page_id=page,
            document_id=doc,
            page_number=1,
            page_count=1,
            storage_uri="file:///objects/x",
            media_type="application/pdf",
            sha256="ab" * 32,
            options=opts,
            attempt=2,
            not_before=now,
            last_error="timeout",
        ),
        PageOcrCompletedV1(
            page_id=page,
            document_id=doc,
            page_number=1,
            page_count=1,
            attempt=1,
            layout=layout,
            started_at=now,
            completed_at=now,
        ),
        PageOcrFailedV1(
            page_id=page,
            document_id=doc,
            page_number=1,
            page_count=1,
            attempts=3,
            reason="unreadable_page",
            detail="could not render",
            failed_at=now,
        ),
    ]
    out = {e.event_type: e for e in events}
    missing = {m.event_type for m in ALL_EVENTS} - set(out)
    assert not missing, f"add a sample for {missing} to tests/event_samples.py"
    return out
