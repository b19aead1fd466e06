"""The reconciler's database side: PostgreSQL is the truth, Kafka is transport.

A document that is not final and has not progressed for ``stall_seconds`` (or whose events
the broker lost: last touched before the broker's topics began) gets its missing pages
re-requested *through the outbox*, the same committed-only path that started it. After
``max_rounds`` such re-drives, its missing pages are recorded as failed with the reason and
the document reaches its final state (``partial`` or ``failed``), with its
``document.ocr-completed.v1`` event. A late result still upgrades it (persist).

One round runs under a transaction-scoped advisory lock, so replicas never re-drive the same
documents twice at once; rows are taken with ``SKIP LOCKED`` so persist is never blocked.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, RowMapping, and_, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from pagestream.db import translate_errors
from pagestream.db.outbox import write_event
from pagestream.db.progress import advance_document
from pagestream.db.schema import documents, page_attempts, pages
from pagestream.events.models import (
    DocumentCommittedV1,
    DocumentOptions,
    PageOcrRequestedV1,
    page_id_for,
    utcnow,
)

#: pg advisory lock key of the reconciler ("pagestream-reconciler")
LOCK_KEY = 0x70617373_7265636F
UNFINISHED = ("received", "processing")
_FAILURE_NAMESPACE = uuid.UUID("a3c1f0d2-7b4e-4c59-8e21-5f6d9b0c3e47")


@dataclass
class ReconcileRound:
    """What one round did."""

    ran: bool = False  # False: another replica holds the lock
    redriven: list[tuple[uuid.UUID, list[int]]] = field(default_factory=list)
    finished: list[tuple[uuid.UUID, str]] = field(default_factory=list)


def reconcile_once(
    engine: Engine,
    *,
    stall_seconds: float,
    max_rounds: int,
    broker_epoch: datetime | None = None,
    limit: int = 200,
    traceparent: str | None = None,
) -> ReconcileRound:
    """Re-drive or finish the documents that stopped progressing (one bounded batch)."""
    out = ReconcileRound()
    now = utcnow()
    cutoff = now - timedelta(seconds=stall_seconds)
    stalled = documents.c.updated_at < cutoff
    if broker_epoch is not None:
        stalled = or_(stalled, documents.c.updated_at < broker_epoch)
    with translate_errors("reconcile"), engine.begin() as conn:
        if not conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": LOCK_KEY}).scalar():
            return out
        out.ran = True
        rows = (
            conn.execute(
                select(documents)
                .where(and_(documents.c.status.in_(UNFINISHED), stalled))
                .order_by(documents.c.updated_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            .mappings()
            .all()
        )
        for doc in rows:
            have = {
                r[0]
                for r in conn.execute(select(pages.c.page_number).where(pages.c.document_id == doc["id"]))
            }
            page_count = doc["page_count"] or 0
            missing = [n for n in range(1, page_count + 1) if n not in have]
            if doc["reconcile_rounds"] >= max_rounds or not missing:
                out.finished.append(_finish(conn, doc, missing, stall_seconds, max_rounds, traceparent))
            else:
                _redrive(conn, doc, missing, traceparent)
                out.redriven.append((doc["id"], missing))
    return out


def _redrive(conn: Connection, doc: RowMapping, missing: list[int], traceparent: str | None) -> None:
    options = DocumentOptions.model_validate(doc["options"] or {})
    for n in missing:
        write_event(
            conn,
            PageOcrRequestedV1(
                page_id=page_id_for(doc["id"], n),
                document_id=doc["id"],
                page_number=n,
                page_count=doc["page_count"],
                storage_uri=doc["storage_uri"],
                media_type=doc["media_type"],
                sha256=doc["sha256"],
                options=options,
            ),
            traceparent=traceparent,
        )
    conn.execute(
        update(documents)
        .where(documents.c.id == doc["id"])
        .values(
            reconcile_rounds=documents.c.reconcile_rounds + 1,
            last_reconciled_at=utcnow(),
            updated_at=utcnow(),
        )
    )


def _finish(
    conn: Connection,
    doc: RowMapping,
    missing: list[int],
    stall_seconds: float,
    max_rounds: int,
    traceparent: str | None,
) -> tuple[uuid.UUID, str]:
    reason = (
        f"no result after {doc['reconcile_rounds']} re-drives, {stall_seconds:.0f} s apart "
        "(its events were lost or its workers kept failing); reprocess the document to try again"
    )
    now = utcnow()
    for n in missing:
        conn.execute(
            pg_insert(pages)
            .values(
                id=page_id_for(doc["id"], n),
                document_id=doc["id"],
                page_number=n,
                status="failed",
                text="",
                error_reason="no_progress",
                error_detail=f"page {n}: {reason}",
                attempts=max(1, doc["reconcile_rounds"]),
                event_id=uuid.uuid5(_FAILURE_NAMESPACE, f"{doc['id']}/{n}"),
                completed_at=now,
            )
            .on_conflict_do_nothing()
        )
    status = doc["status"]
    if doc["page_count"] is None:  # cannot happen for an accepted document; never leave it hanging anyway
        conn.execute(
            update(documents)
            .where(documents.c.id == doc["id"])
            .values(status="failed", error=f"no page count; {reason}", completed_at=now, updated_at=now)
        )
        return doc["id"], "failed"
    advance_document(
        conn,
        doc["id"],
        status=status,
        page_count=doc["page_count"],
        received_at=doc["received_at"],
        traceparent=traceparent,
        reason="no progress" if missing else None,
    )
    final = conn.execute(select(documents.c.status).where(documents.c.id == doc["id"])).scalar()
    return doc["id"], str(final)


def overdue_documents(engine: Engine, *, older_than_seconds: float) -> int:
    """How many accepted documents are not final although received longer ago than the bound."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    with translate_errors("count overdue documents"), engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(documents)
                .where(and_(documents.c.status.in_(UNFINISHED), documents.c.received_at < cutoff))
            ).scalar()
            or 0
        )


def reprocess_document(
    engine: Engine,
    document_id: uuid.UUID,
    *,
    engine_name: str | None = None,
    languages: str | None = None,
    force_ocr: bool | None = None,
    traceparent: str | None = None,
) -> dict:
    """Run a document through OCR again from scratch, through the outbox (``document.committed.v1``).

    Its pages and attempts are forgotten and its status goes back to ``received``; options given
    here replace the stored ones. Raises ``DocumentNotFoundError``, or ``DocumentNotReprocessableError``
    for a document that was never processable (e.g. encrypted without a password).
    """
    from pagestream.db.errors import DocumentNotFoundError, DocumentNotReprocessableError

    now = utcnow()
    with translate_errors("reprocess document"), engine.begin() as conn:
        doc = (
            conn.execute(select(documents).where(documents.c.id == document_id).with_for_update())
            .mappings()
            .first()
        )
        if doc is None:
            raise DocumentNotFoundError(f"document {document_id} not found")
        if not doc["page_count"]:
            raise DocumentNotReprocessableError(
                f"document {document_id} cannot be reprocessed: {doc['error'] or 'it has no pages'}; submit it again"
            )
        options = DocumentOptions.model_validate(doc["options"] or {})
        update_opts = {
            k: v
            for k, v in (("engine", engine_name), ("languages", languages), ("force_ocr", force_ocr))
            if v is not None
        }
        options = options.model_copy(update=update_opts)
        conn.execute(pages.delete().where(pages.c.document_id == document_id))
        conn.execute(page_attempts.delete().where(page_attempts.c.document_id == document_id))
        conn.execute(
            update(documents)
            .where(documents.c.id == document_id)
            .values(
                status="received",
                pages_done=0,
                pages_failed=0,
                error=None,
                completed_at=None,
                ocr_started_at=None,
                options=options.model_dump(mode="json"),
                reconcile_rounds=0,
                last_reconciled_at=None,
                updated_at=now,
            )
        )
        write_event(
            conn,
            DocumentCommittedV1(
                document_id=document_id,
                sha256=doc["sha256"],
                media_type=doc["media_type"],
                size_bytes=doc["size_bytes"],
                page_count=doc["page_count"],
                storage_uri=doc["storage_uri"],
                filename=doc["filename"],
                client_reference=doc["client_reference"],
                options=options,
                received_at=doc["received_at"],
            ),
            traceparent=traceparent,
        )
    return {"id": document_id, "status": "received", "options": options.model_dump(mode="json")}
