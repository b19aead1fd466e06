"""Recording page results and document progress, idempotently, in one transaction per batch.

Progress is tracked in the same transaction as its effect (``processed_events``), so a
redelivered event changes nothing. Document rows are locked in id order before their
counters are recomputed, so concurrent batches never both miss the last page.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, func, select, text

from pagestream.db import translate_errors
from pagestream.db.outbox import INSERT_AND_DELETE_EVENT_SQL, event_sql_params
from pagestream.db.schema import documents, pages
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


#: Every column a page outcome writes (a failed page leaves the result columns NULL).
_PAGE_COLUMNS = (
    "id",
    "document_id",
    "page_number",
    "event_id",
    "status",
    "text",
    "layout",
    "source",
    "engine",
    "engine_version",
    "rotation",
    "mean_confidence",
    "sheet_number",
    "sheet_title",
    "scale",
    "attempts",
    "ocr_seconds",
    "started_at",
    "completed_at",
    "error_reason",
    "error_detail",
)
_KEY_COLUMNS = ("id", "document_id", "page_number")
#: Upsert of one page: a success replaces a failure; nothing replaces a success (redelivery, late retry).
_UPSERT_PAGE_SQL = (
    f"INSERT INTO pages ({', '.join(_PAGE_COLUMNS)}) VALUES ("  # noqa: S608 - identifiers are module constants; values are bound parameters
    + ", ".join("%(layout)s::jsonb" if c == "layout" else f"%({c})s" for c in _PAGE_COLUMNS)
    + ") ON CONFLICT (document_id, page_number) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _PAGE_COLUMNS if c not in _KEY_COLUMNS)
    + " WHERE pages.status = 'failed' AND EXCLUDED.status = 'completed'"
)
#: The batch's dedupe records in one statement; the ids it returns are the events not seen before.
_RECORD_EVENTS_SQL = (
    "INSERT INTO processed_events (consumer, event_id, processed_at) "
    "SELECT %(consumer)s, e, %(at)s FROM unnest(%(ids)s::uuid[]) AS e "
    "ON CONFLICT DO NOTHING RETURNING event_id"
)
#: Page counts of the batch's documents in one statement.
_COUNT_PAGES_SQL = (
    "SELECT document_id, status, count(*) FROM pages WHERE document_id = ANY(%(ids)s::uuid[]) "
    "GROUP BY document_id, status"
)


def layout_json(layout: Any) -> str:
    """A page layout (without its text) as JSON text fit for jsonb.

    pydantic writes it in one pass; only a layout holding a NUL (``\\u0000``, refused by jsonb)
    or a lone surrogate (refused by the serializer) takes the slow path through ``storable``.
    The common case so skips a recursive copy of every word and a second serialization.
    """
    try:
        text = layout.model_dump_json(exclude={"text"})
    except ValueError:  # pydantic's serialization error: a lone surrogate
        text = None
    if text is None or "\\u0000" in text:
        text = json.dumps(storable(layout.model_dump(mode="json", exclude={"text"})))
    return text


def _page_values(o: PageOutcome) -> dict[str, Any]:
    """The ``_UPSERT_PAGE_SQL`` parameters of an outcome (strings made storable)."""
    e = o.event
    values: dict[str, Any] = dict.fromkeys(_PAGE_COLUMNS)
    values.update(
        id=str(e.page_id), document_id=str(e.document_id), page_number=e.page_number, event_id=str(o.event_id)
    )
    if isinstance(e, PageOcrCompletedV1):
        lay = e.layout
        tb = lay.title_block
        values.update(
            status="completed",
            text=storable(lay.text),
            layout=layout_json(lay),
            source=storable(lay.source),
            engine=storable(lay.engine),
            engine_version=storable(lay.engine_version),
            rotation=lay.rotation,
            mean_confidence=lay.mean_confidence,
            sheet_number=storable(tb.sheet_number) if tb else None,
            sheet_title=storable(tb.sheet_title) if tb else None,
            scale=storable(tb.scale) if tb else None,
            attempts=e.attempt,
            ocr_seconds=lay.ocr_seconds,
            started_at=e.started_at,
            completed_at=e.completed_at,
        )
        return values
    values.update(
        status="failed",
        text="",
        error_reason=storable(e.reason),
        error_detail=storable(e.detail),
        attempts=e.attempts,
        completed_at=e.failed_at,
    )
    return values


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
        # One statement for the batch's dedupe records, one per page (prepared driver SQL: issue 15,
        # per-page statement cost), one for the page counts of every document touched.
        fresh = {
            str(r[0])
            for r in conn.exec_driver_sql(
                _RECORD_EVENTS_SQL,
                {"consumer": consumer, "at": utcnow(), "ids": [str(o.event_id) for o in outcomes]},
            )
        }
        touched: set[uuid.UUID] = set()
        for o in outcomes:
            event_id = str(o.event_id)
            if event_id not in fresh:  # seen before, or earlier in this batch
                result.duplicates += 1
                continue
            fresh.discard(event_id)
            if o.event.document_id not in locked:
                # deleted (or never committed): nothing to attach the page to
                result.unknown_documents += 1
                continue
            conn.exec_driver_sql(_UPSERT_PAGE_SQL, _page_values(o))
            result.applied += 1
            touched.add(o.event.document_id)
        counts: dict[uuid.UUID, dict[str, int]] = {doc_id: {} for doc_id in touched}
        if touched:
            for doc_id, status, n in conn.exec_driver_sql(
                _COUNT_PAGES_SQL, {"ids": [str(d) for d in touched]}
            ):
                counts[uuid.UUID(str(doc_id))][status] = n
        for doc_id in sorted(touched):
            _, status, page_count, received_at = locked[doc_id]
            finished = advance_document(
                conn,
                doc_id,
                status=status,
                page_count=page_count,
                received_at=received_at,
                traceparent=_trace_for(outcomes, doc_id),
                counts=counts[doc_id],
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
    counts: dict[str, int] | None = None,
) -> tuple[uuid.UUID, str, float | None] | None:
    """Recount a (locked) document's pages and move it on; on reaching a final state (or a better
    one), write ``document.ocr-completed.v1`` to the outbox. Returns (id, status, e2e s) then.

    ``counts`` (pages by status, counted in this transaction) saves the recount when the caller
    counted a whole batch's documents at once."""
    if status == "completed":
        return None  # nothing replaces a success
    now = utcnow()
    if counts is None:
        counts = dict(
            conn.execute(
                select(pages.c.status, func.count())
                .where(pages.c.document_id == doc_id)
                .group_by(pages.c.status)
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
        event_params = event_sql_params(
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
    # The update (and the event, when the document is done) in one round trip of driver SQL.
    columns = sorted(values)
    update_sql = (
        f"UPDATE documents SET {', '.join(f'{c} = %({c})s' for c in columns)} WHERE id = %(document_id)s"  # noqa: S608 - identifiers are module constants; values are bound parameters
    )
    params = {**values, "document_id": str(doc_id)}
    if finished is None:
        conn.exec_driver_sql(update_sql, params)
    else:
        conn.exec_driver_sql(f"{update_sql}; {INSERT_AND_DELETE_EVENT_SQL}", {**params, **event_params})
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
