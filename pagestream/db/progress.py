"""Recording page results and document progress, idempotently, in one transaction per batch.

Progress is tracked in the same transaction as its effect (``processed_events``), so a
redelivered event changes nothing. Document rows are locked in id order before their
counters are recomputed, so concurrent batches never both miss the last page.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from pagestream.db import translate_errors
from pagestream.db.outbox import write_event
from pagestream.db.schema import documents, pages, processed_events
from pagestream.events.models import DocumentOcrCompletedV1, PageOcrCompletedV1, PageOcrFailedV1, utcnow

FINAL = ("completed", "partial", "failed")


@dataclass(frozen=True)
class PageOutcome:
    """One page event to record, with its event id and trace context."""

    event_id: uuid.UUID
    event: PageOcrCompletedV1 | PageOcrFailedV1
    traceparent: str | None = None


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    unknown_documents: int = 0
    finished: list[tuple[uuid.UUID, str, float | None]] = field(default_factory=list)  # id, status, e2e s


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(value: Any) -> Any:
    """``value`` with every string fit for PostgreSQL text and jsonb: NUL removed, lone UTF-16
    surrogates (which no UTF-8 database can hold) replaced by U+FFFD."""
    if isinstance(value, str):
        if "\x00" in value:
            value = value.replace("\x00", "")
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


def _page_values(o: PageOutcome) -> dict:
    return storable(_raw_page_values(o))


def _raw_page_values(o: PageOutcome) -> dict:
    e = o.event
    base = {
        "id": e.page_id,
        "document_id": e.document_id,
        "page_number": e.page_number,
        "event_id": o.event_id,
    }
    if isinstance(e, PageOcrCompletedV1):
        lay = e.layout
        tb = lay.title_block
        return {
            **base,
            "status": "completed",
            "text": lay.text,
            "layout": lay.model_dump(mode="json", exclude={"text"}),
            "source": lay.source,
            "engine": lay.engine,
            "engine_version": lay.engine_version,
            "rotation": lay.rotation,
            "mean_confidence": lay.mean_confidence,
            "sheet_number": tb.sheet_number if tb else None,
            "sheet_title": tb.sheet_title if tb else None,
            "scale": tb.scale if tb else None,
            "attempts": e.attempt,
            "ocr_seconds": lay.ocr_seconds,
            "started_at": e.started_at,
            "completed_at": e.completed_at,
            "error_reason": None,
            "error_detail": None,
        }
    return {
        **base,
        "status": "failed",
        "text": "",
        "error_reason": e.reason,
        "error_detail": e.detail,
        "attempts": e.attempts,
        "completed_at": e.failed_at,
    }


def apply_page_outcomes(
    engine: Engine, outcomes: list[PageOutcome], *, consumer: str = "persist"
) -> BatchResult:
    """Upsert pages and advance their documents; write ``document.ocr-completed.v1`` on finish."""
    result = BatchResult()
    if not outcomes:
        return result
    with translate_errors("persist batch"), engine.begin() as conn:
        doc_ids = sorted({o.event.document_id for o in outcomes})
        locked = {
            r[0]: r
            for r in conn.execute(
                select(documents.c.id, documents.c.status, documents.c.page_count, documents.c.received_at)
                .where(documents.c.id.in_(doc_ids))
                .order_by(documents.c.id)
                .with_for_update()
            ).all()
        }
        touched: set[uuid.UUID] = set()
        for o in outcomes:
            fresh = conn.execute(
                pg_insert(processed_events)
                .values(consumer=consumer, event_id=o.event_id, processed_at=utcnow())
                .on_conflict_do_nothing()
                .returning(processed_events.c.event_id)
            ).first()
            if fresh is None:
                result.duplicates += 1
                continue
            if o.event.document_id not in locked:
                # deleted (or never committed): nothing to attach the page to
                result.unknown_documents += 1
                continue
            values = _page_values(o)
            stmt = pg_insert(pages).values(**values)
            update_cols = {
                k: stmt.excluded[k] for k in values if k not in ("id", "document_id", "page_number")
            }
            # a success replaces a failure; nothing replaces a success (redelivery, late retry)
            stmt = stmt.on_conflict_do_update(
                index_elements=[pages.c.document_id, pages.c.page_number],
                set_=update_cols,
                where=(pages.c.status == "failed") & (stmt.excluded.status == "completed"),
            )
            conn.execute(stmt)
            result.applied += 1
            touched.add(o.event.document_id)
        for doc_id in sorted(touched):
            _, status, page_count, received_at = locked[doc_id]
            finished = advance_document(
                conn,
                doc_id,
                status=status,
                page_count=page_count,
                received_at=received_at,
                traceparent=_trace_for(outcomes, doc_id),
            )
            if finished is not None:
                result.finished.append(finished)
    return result


def advance_document(
    conn: Connection,
    doc_id: uuid.UUID,
    *,
    status: str,
    page_count: int | None,
    received_at: datetime | None,
    traceparent: str | None,
    reason: str | None = None,
) -> tuple[uuid.UUID, str, float | None] | None:
    """Recount a (locked) document's pages and move it on; on reaching a final state (or a better
    one), write ``document.ocr-completed.v1`` to the outbox. Returns (id, status, e2e s) then."""
    if status == "completed":
        return None  # nothing replaces a success
    now = utcnow()
    counts: dict[str, int] = dict(
        conn.execute(
            select(pages.c.status, func.count()).where(pages.c.document_id == doc_id).group_by(pages.c.status)
        ).all()
    )
    done, failed = counts.get("completed", 0), counts.get("failed", 0)
    values: dict = {"pages_done": done, "pages_failed": failed, "updated_at": now}
    if status == "received":
        values["status"] = "processing"
        values["ocr_started_at"] = now
    final = page_count is not None and done + failed >= page_count
    new_status: Literal["completed", "partial", "failed"] | None = (
        ("completed" if failed == 0 else ("failed" if done == 0 else "partial")) if final else None
    )
    finished = None
    # first final state, or a late success improving a partial/failed document (final implies a page_count)
    if new_status is not None and page_count is not None and new_status != status:
        error = (
            None
            if failed == 0
            else f"{failed} of {page_count} pages failed" + (f": {reason}" if reason else "")
        )
        values.update(status=new_status, completed_at=now, error=error)
        write_event(
            conn,
            DocumentOcrCompletedV1(
                document_id=doc_id,
                status=new_status,
                page_count=page_count,
                pages_done=done,
                pages_failed=failed,
                received_at=received_at,
                completed_at=now,
                error=error,
            ),
            traceparent=traceparent,
        )
        e2e = (now - received_at).total_seconds() if isinstance(received_at, datetime) else None
        finished = (doc_id, new_status, e2e)
    conn.execute(update(documents).where(documents.c.id == doc_id).values(**values))
    return finished


def _trace_for(outcomes: list[PageOutcome], doc_id: uuid.UUID) -> str | None:
    for o in outcomes:
        if o.event.document_id == doc_id and o.traceparent:
            return o.traceparent
    return None


def purge_processed_events(engine: Engine, older_than_days: int = 14) -> int:
    """Forget dedupe records older than any plausible redelivery window."""
    with translate_errors("purge processed events"), engine.begin() as conn:
        res = conn.execute(
            text("DELETE FROM processed_events WHERE processed_at < now() - make_interval(days => :d)"),
            {"d": older_than_days},
        )
        return res.rowcount or 0
