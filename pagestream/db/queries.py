"""Read queries of the query API (pages, OCR layout, full-text search) and document deletion.

Every value from a client reaches PostgreSQL as a bound parameter; the text-search query is
parsed by ``websearch_to_tsquery`` (which never raises on user syntax) and matched against the
GIN-indexed ``pages.tsv`` column.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, bindparam, delete, exists, select, text

from pagestream.db import translate_errors
from pagestream.db.errors import DocumentNotFoundError
from pagestream.db.outbox import write_event
from pagestream.db.schema import documents, page_attempts, pages
from pagestream.events.models import DocumentDeletedV1, utcnow

#: Private-use characters that delimit highlighted terms in snippets (the API turns them into markup).
HIGHLIGHT_START = "\ue000"
HIGHLIGHT_STOP = "\ue001"

_HEADLINE_OPTIONS = (
    f"StartSel={HIGHLIGHT_START}, StopSel={HIGHLIGHT_STOP}, MaxWords=30, MinWords=10, "
    'MaxFragments=2, FragmentDelimiter=" … "'
)

_PAGE_COLUMNS = (
    pages.c.id,
    pages.c.page_number,
    pages.c.status,
    pages.c.source,
    pages.c.engine,
    pages.c.engine_version,
    pages.c.rotation,
    pages.c.mean_confidence,
    pages.c.sheet_number,
    pages.c.sheet_title,
    pages.c.scale,
    pages.c.error_reason,
    pages.c.error_detail,
    pages.c.attempts,
    pages.c.ocr_seconds,
    pages.c.started_at,
    pages.c.completed_at,
)

# One statement: rank matching pages with the GIN index, keep the best documents, and build
# snippets (ts_headline is costly) only for the few best pages of those documents.
_SEARCH_SQL = text("""
WITH q AS (SELECT websearch_to_tsquery('english', :q) AS query),
hits AS (
    SELECT p.id, p.document_id, p.page_number, ts_rank(p.tsv, q.query) AS rank
    FROM pages p, q
    WHERE p.tsv @@ q.query
),
docs AS (
    SELECT document_id, max(rank) AS rank, count(*) AS matching_pages
    FROM hits GROUP BY document_id
    ORDER BY max(rank) DESC, count(*) DESC, document_id
    LIMIT :limit
),
best AS (
    SELECT h.*, row_number() OVER (PARTITION BY h.document_id ORDER BY h.rank DESC, h.page_number) AS n
    FROM hits h JOIN docs USING (document_id)
)
SELECT d.id AS document_id, d.filename, d.status, d.page_count, docs.rank, docs.matching_pages,
       best.id AS page_id, best.page_number, best.rank AS page_rank,
       ts_headline('english', p.text, q.query, :options) AS snippet
FROM docs
JOIN documents d ON d.id = docs.document_id
JOIN best ON best.document_id = docs.document_id AND best.n <= :pages_per_document
JOIN pages p ON p.id = best.id
CROSS JOIN q
ORDER BY docs.rank DESC, docs.matching_pages DESC, d.id, best.rank DESC, best.page_number
""").bindparams(bindparam("q"), bindparam("limit"), bindparam("options"), bindparam("pages_per_document"))


def list_pages(engine: Engine, document_id: uuid.UUID) -> list[dict[str, Any]]:
    """The stored pages of a document (completed or failed), in page order."""
    with translate_errors("list pages"), engine.connect() as conn:
        rows = (
            conn.execute(
                select(*_PAGE_COLUMNS).where(pages.c.document_id == document_id).order_by(pages.c.page_number)
            )
            .mappings()
            .all()
        )
    return [dict(r) for r in rows]


def get_page(engine: Engine, page_id: uuid.UUID) -> dict[str, Any] | None:
    """A page row with its text and layout (blocks, lines, words), or None."""
    with translate_errors("get page"), engine.connect() as conn:
        row = (
            conn.execute(
                select(*_PAGE_COLUMNS, pages.c.document_id, pages.c.layout, pages.c.text).where(
                    pages.c.id == page_id
                )
            )
            .mappings()
            .first()
        )
    return dict(row) if row else None


@dataclass(frozen=True)
class SearchHit:
    """One document matching a search, with its best pages."""

    document_id: uuid.UUID
    filename: str | None
    status: str
    page_count: int | None
    rank: float
    matching_pages: int
    pages: list[dict[str, Any]]


def search_pages(engine: Engine, query: str, *, limit: int, pages_per_document: int = 3) -> list[SearchHit]:
    """Documents whose pages match ``query`` (web-search syntax), best first, with snippets."""
    with translate_errors("search"), engine.connect() as conn:
        rows = (
            conn.execute(
                _SEARCH_SQL,
                {
                    "q": query,
                    "limit": limit,
                    "options": _HEADLINE_OPTIONS,
                    "pages_per_document": pages_per_document,
                },
            )
            .mappings()
            .all()
        )
    hits: dict[uuid.UUID, SearchHit] = {}
    for r in rows:
        hit = hits.get(r["document_id"])
        if hit is None:
            hit = hits[r["document_id"]] = SearchHit(
                document_id=r["document_id"],
                filename=r["filename"],
                status=r["status"],
                page_count=r["page_count"],
                rank=float(r["rank"]),
                matching_pages=r["matching_pages"],
                pages=[],
            )
        hit.pages.append(
            {
                "page_id": r["page_id"],
                "page_number": r["page_number"],
                "rank": float(r["page_rank"]),
                "snippet": r["snippet"],
            }
        )
    return list(hits.values())


def delete_document(engine: Engine, document_id: uuid.UUID, *, traceparent: str | None) -> str | None:
    """Delete the document and its pages, writing ``document.deleted.v1`` in the same transaction.

    Returns the document's storage URI when no other document references it (the caller then
    deletes the stored bytes), or None when the bytes are shared (content-addressed storage).
    """
    with translate_errors("delete document"), engine.begin() as conn:
        uri = conn.execute(
            select(documents.c.storage_uri).where(documents.c.id == document_id).with_for_update()
        ).scalar()
        if uri is None:
            raise DocumentNotFoundError(f"document {document_id} not found")
        conn.execute(delete(documents).where(documents.c.id == document_id))  # pages: ON DELETE CASCADE
        conn.execute(delete(page_attempts).where(page_attempts.c.document_id == document_id))
        shared = conn.execute(select(exists().where(and_(documents.c.storage_uri == uri)))).scalar()
        write_event(
            conn, DocumentDeletedV1(document_id=document_id, deleted_at=utcnow()), traceparent=traceparent
        )
    return None if shared else uri


def storage_referenced(engine: Engine, uri: str) -> bool:
    """Whether any document row references the stored object at ``uri``."""
    with translate_errors("check storage reference"), engine.connect() as conn:
        return bool(conn.execute(select(exists().where(documents.c.storage_uri == uri))).scalar())
