"""Document rows: creation (row + outbox event in one transaction) and reads."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, insert, or_, select

from pagestream.db import translate_errors
from pagestream.db.errors import DocumentNotFoundError
from pagestream.db.outbox import write_event
from pagestream.db.schema import documents, pages
from pagestream.events.models import DocumentCommittedV1, DocumentOptions, utcnow


@dataclass(frozen=True)
class NewDocument:
    """What ingest knows about an accepted upload."""

    sha256: str
    media_type: str
    size_bytes: int
    storage_uri: str
    page_count: int | None
    filename: str | None = None
    client_reference: str | None = None
    idempotency_key: str | None = None
    options: DocumentOptions = DocumentOptions()
    #: a reason the document cannot be processed as submitted (e.g. encrypted): stored as
    #: a ``failed`` document (bytes kept, resubmission possible), no OCR event emitted
    unprocessable: str | None = None


def create_document(engine: Engine, doc: NewDocument, *, traceparent: str | None) -> dict[str, Any]:
    """Insert the document and its ``document.committed.v1`` outbox row in ONE transaction."""
    doc_id = uuid.uuid4()
    now = utcnow()
    with translate_errors("create document"), engine.begin() as conn:
        status = "failed" if doc.unprocessable else "received"
        conn.execute(
            insert(documents).values(
                id=doc_id,
                sha256=doc.sha256,
                media_type=doc.media_type,
                size_bytes=doc.size_bytes,
                filename=doc.filename,
                storage_uri=doc.storage_uri,
                status=status,
                page_count=doc.page_count,
                error=doc.unprocessable,
                options=doc.options.model_dump(mode="json"),
                client_reference=doc.client_reference,
                idempotency_key=doc.idempotency_key,
                received_at=now,
                updated_at=now,
                completed_at=now if doc.unprocessable else None,
            )
        )
        if not doc.unprocessable:
            assert doc.page_count is not None
            write_event(
                conn,
                DocumentCommittedV1(
                    document_id=doc_id,
                    sha256=doc.sha256,
                    media_type=doc.media_type,
                    size_bytes=doc.size_bytes,
                    page_count=doc.page_count,
                    storage_uri=doc.storage_uri,
                    filename=doc.filename,
                    client_reference=doc.client_reference,
                    options=doc.options,
                    received_at=now,
                ),
                traceparent=traceparent,
            )
    return get_document(engine, doc_id)


def find_existing(
    engine: Engine, *, sha256: str | None = None, idempotency_key: str | None = None
) -> dict[str, Any] | None:
    """The newest document with this idempotency key, else with these bytes (not failed)."""
    with translate_errors("find document"), engine.connect() as conn:
        if idempotency_key:
            row = (
                conn.execute(select(documents).where(documents.c.idempotency_key == idempotency_key))
                .mappings()
                .first()
            )
            if row:
                return dict(row)
        if sha256:
            row = (
                conn.execute(
                    select(documents)
                    .where(and_(documents.c.sha256 == sha256, documents.c.status != "failed"))
                    .order_by(documents.c.received_at.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
            if row:
                return dict(row)
    return None


def get_document(engine: Engine, document_id: uuid.UUID) -> dict[str, Any]:
    """The document row with its title-block fields (from its pages); DocumentNotFoundError if absent."""
    with translate_errors("get document"), engine.connect() as conn:
        row = conn.execute(select(documents).where(documents.c.id == document_id)).mappings().first()
        if row is None:
            raise DocumentNotFoundError(f"document {document_id} not found")
        out = dict(row)
        failed = (
            conn.execute(
                select(pages.c.page_number, pages.c.error_reason, pages.c.error_detail)
                .where(and_(pages.c.document_id == document_id, pages.c.status == "failed"))
                .order_by(pages.c.page_number)
            )
            .mappings()
            .all()
        )
        out["page_errors"] = [dict(r) for r in failed]
        sheets = (
            conn.execute(
                select(pages.c.page_number, pages.c.sheet_number, pages.c.sheet_title, pages.c.scale)
                .where(
                    and_(
                        pages.c.document_id == document_id,
                        or_(
                            pages.c.sheet_number.is_not(None),
                            pages.c.sheet_title.is_not(None),
                            pages.c.scale.is_not(None),
                        ),
                    )
                )
                .order_by(pages.c.page_number)
            )
            .mappings()
            .all()
        )
        out["title_blocks"] = [dict(r) for r in sheets]
        return out


def get_text(engine: Engine, document_id: uuid.UUID) -> list[tuple[int, str]]:
    """(page_number, text) of every stored page, in page order."""
    get_document(engine, document_id)
    with translate_errors("get text"), engine.connect() as conn:
        rows = conn.execute(
            select(pages.c.page_number, pages.c.text)
            .where(pages.c.document_id == document_id)
            .order_by(pages.c.page_number)
        ).all()
    return [(r[0], r[1]) for r in rows]


def list_documents(
    engine: Engine, *, status: str | None, limit: int, before: tuple[datetime, uuid.UUID] | None
) -> list[dict[str, Any]]:
    """Newest first, keyset-paginated by (received_at, id)."""
    q = select(documents)
    if status:
        q = q.where(documents.c.status == status)
    if before:
        ts, did = before
        q = q.where(
            or_(documents.c.received_at < ts, and_(documents.c.received_at == ts, documents.c.id < did))
        )
    q = q.order_by(documents.c.received_at.desc(), documents.c.id.desc()).limit(limit)
    with translate_errors("list documents"), engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings().all()]
