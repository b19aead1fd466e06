"""What every export is built from: the stored document bytes and the stored page layouts.

``SourceDocument`` is plain data (the exports are pure functions of it); ``load_document`` reads
it from the database and the object store.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from pagestream.layout import PageLayout


@dataclass(frozen=True)
class SourcePage:
    """One page: its number (1-based) and its layout, ``None`` when it has no OCR result."""

    page_number: int
    layout: PageLayout | None
    page_id: str | None = None


@dataclass(frozen=True)
class SourceDocument:
    """A document's original bytes and the pages recognized so far, in page order."""

    document_id: str
    data: bytes
    media_type: str
    filename: str | None = None
    pages: list[SourcePage] = field(default_factory=list)

    def page(self, page_number: int) -> SourcePage | None:
        return next((p for p in self.pages if p.page_number == page_number), None)


def layout_from_row(row: dict[str, Any]) -> PageLayout | None:
    """The ``PageLayout`` of a stored page row (``pages.layout`` keeps everything but the text)."""
    if row.get("status") != "completed" or not row.get("layout"):
        return None
    return PageLayout.model_validate({**row["layout"], "text": row.get("text") or ""})


def load_document(engine: Any, store: Any, document_id: uuid.UUID) -> SourceDocument:
    """The document's bytes (object store) and its stored pages (database).

    Raises ``DocumentNotFoundError`` for an unknown id and the store's ``ObjectNotFoundError``
    when the bytes are gone.
    """
    from pagestream.db.documents import get_document
    from pagestream.db.exports import page_layouts

    doc = get_document(engine, document_id)
    rows = page_layouts(engine, document_id)
    data = store.get(doc["storage_uri"])
    pages = [
        SourcePage(page_number=r["page_number"], layout=layout_from_row(r), page_id=str(r["id"]))
        for r in rows
    ]
    return SourceDocument(
        document_id=str(document_id),
        data=data,
        media_type=doc["media_type"],
        filename=doc.get("filename"),
        pages=pages,
    )
