"""Document rows: creation (row + outbox event in one transaction) and reads."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, or_, select

from pagestream.db import translate_errors
from pagestream.db.errors import DocumentNotFoundError
from pagestream.db.outbox import INSERT_AND_DELETE_EVENT_SQL, event_sql_params
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


#: Columns written at creation; the rest take their server defaults.
_CREATE_COLUMNS = (
    "id",
    "sha256",
    "media_type",
    "size_bytes",
    "filename",
    "storage_uri",
    "status",
    "page_count",
    "error",
    "options",
    "client_reference",
    "idempotency_key",
    "received_at",
    "updated_at",
    "completed_at",
)
_INSERT_DOCUMENT_SQL = (
    f"INSERT INTO documents ({', '.join(_CREATE_COLUMNS)}) "  # noqa: S608 - identifiers are module constants; values are bound parameters
    f"VALUES ({', '.join(f'%({c})s' for c in _CREATE_COLUMNS)}) "
    f"RETURNING {', '.join(c.name for c in documents.c)}"
)
#: The event first, so that the statement whose result psycopg2 returns (the last) is the
#: document's RETURNING; the order inside a transaction is invisible to the cdc relay, which
#: sees the transaction only once it committed.
_CREATE_WITH_EVENT_SQL = f"{INSERT_AND_DELETE_EVENT_SQL}; {_INSERT_DOCUMENT_SQL}"


def create_document(engine: Engine, doc: NewDocument, *, traceparent: str | None) -> dict[str, Any]:
    """Insert the document and its ``document.committed.v1`` outbox row in ONE transaction.

    Ingest's hot path (issue 15): one round trip of prepared driver SQL inside the transaction
    (outbox insert + delete, document insert RETURNING the row) instead of five statements built
    per call; the new document has no pages, so its view needs no read-back.
    """
    doc_id = uuid.uuid4()
    now = utcnow()
    params: dict[str, Any] = {
        "id": str(doc_id),
        "sha256": doc.sha256,
        "media_type": doc.media_type,
        "size_bytes": doc.size_bytes,
        "filename": doc.filename,
        "storage_uri": doc.storage_uri,
        "status": "failed" if doc.unprocessable else "received",
        "page_count": doc.page_count,
        "error": doc.unprocessable,
        "options": doc.options.model_dump_json(),
        "client_reference": doc.client_reference,
        "idempotency_key": doc.idempotency_key,
        "received_at": now,
        "updated_at": now,
        "completed_at": now if doc.unprocessable else None,
    }
    sql = _INSERT_DOCUMENT_SQL
    if not doc.unprocessable:
        if doc.page_count is None:
            raise ValueError("a document to be processed must know its page count")
        event = DocumentCommittedV1(
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
        )
        params.update(event_sql_params(event, traceparent=traceparent))
        sql = _CREATE_WITH_EVENT_SQL
    with translate_errors("create document"), engine.begin() as conn:
        row = conn.exec_driver_sql(sql, params).mappings().one()
    out = dict(row)
    out["id"] = doc_id  # the driver returns uuid columns as text; the row's other readers get UUIDs
    out["page_errors"] = []
    out["title_blocks"] = []
    return out


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
