"""Fabricated documents and page results, recorded through the real persist code path."""

from __future__ import annotations

import io
import uuid

from sqlalchemy import Engine

from pagestream.db.documents import NewDocument, create_document
from pagestream.db.progress import PageOutcome
from pagestream.events.models import PageOcrCompletedV1, PageOcrFailedV1, page_id_for, utcnow
from pagestream.layout import Block, Box, Line, PageLayout, TitleBlock, Word


def new_document(engine: Engine, page_count: int, *, filename: str | None = None) -> uuid.UUID:
    """A committed document row (with its outbox event) whose bytes are never read."""
    sha = uuid.uuid4().hex * 2
    doc = create_document(
        engine,
        NewDocument(
            sha256=sha,
            media_type="application/pdf",
            size_bytes=1234,
            storage_uri=f"file:///nonexistent/{sha}",
            page_count=page_count,
            filename=filename or f"{sha[:8]}.pdf",
        ),
        traceparent=None,
    )
    return doc["id"]


def layout(text: str, *, confidence: float = 91.5, title_block: TitleBlock | None = None) -> PageLayout:
    """A one-block layout whose words carry boxes and confidences."""
    words, x = [], 10.0
    for w in text.split()[:50]:
        words.append(
            Word(text=w, box=Box.from_pixels(x, 10, x + 8 * len(w), 30, 1000, 800), confidence=confidence)
        )
        x = min(x + 8 * len(w) + 6, 990)
    box = Box.from_pixels(10, 10, 990, 30, 1000, 800)
    return PageLayout(
        text=text,
        width=1000,
        height=800,
        dpi=300,
        source="ocr",
        engine="tesseract",
        engine_version="5.test",
        mean_confidence=confidence,
        blocks=[Block(text=text, box=box, lines=[Line(text=text, box=box, words=words)])],
        title_block=title_block,
        ocr_seconds=0.25,
    )


def completed(
    document_id: uuid.UUID,
    page_number: int,
    page_count: int,
    text: str,
    *,
    event_id: uuid.UUID | None = None,
    title_block: TitleBlock | None = None,
) -> PageOutcome:
    """A ``page.ocr-completed.v1`` outcome as persist receives it."""
    now = utcnow()
    return PageOutcome(
        event_id or uuid.uuid4(),
        PageOcrCompletedV1(
            page_id=page_id_for(document_id, page_number),
            document_id=document_id,
            page_number=page_number,
            page_count=page_count,
            layout=layout(text, title_block=title_block),
            started_at=now,
            completed_at=now,
        ),
    )


def failed(
    document_id: uuid.UUID, page_number: int, page_count: int, *, event_id: uuid.UUID | None = None
) -> PageOutcome:
    """A final ``page.ocr-failed.v1`` outcome."""
    return PageOutcome(
        event_id or uuid.uuid4(),
        PageOcrFailedV1(
            page_id=page_id_for(document_id, page_number),
            document_id=document_id,
            page_number=page_number,
            page_count=page_count,
            attempts=3,
            reason="page_timeout",
            detail="OCR took longer than 120 s",
            failed_at=utcnow(),
        ),
    )


def pdf_bytes(*texts: str) -> bytes:
    """A born-digital PDF with one page per text (unique bytes per call: include a nonce in a text)."""
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(300, 200))
    for t in texts:
        c.drawString(20, 100, t)
        c.showPage()
    c.save()
    return buf.getvalue()


def png_bytes(width: int, height: int) -> bytes:
    """A blank PNG of the given size."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (width, height), 255).save(buf, format="PNG")
    return buf.getvalue()
