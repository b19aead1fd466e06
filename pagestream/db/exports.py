"""Reads for the exports (searchable PDF, hOCR, ALTO, viewer): every page's layout and text."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, select

from pagestream.db import translate_errors
from pagestream.db.schema import pages


def page_layouts(engine: Engine, document_id: uuid.UUID) -> list[dict[str, Any]]:
    """``id, page_number, status, text, layout`` of each stored page of a document, in page order."""
    with translate_errors("read page layouts"), engine.connect() as conn:
        rows = (
            conn.execute(
                select(pages.c.id, pages.c.page_number, pages.c.status, pages.c.text, pages.c.layout)
                .where(pages.c.document_id == document_id)
                .order_by(pages.c.page_number)
            )
            .mappings()
            .all()
        )
    return [dict(r) for r in rows]


def page_layout(engine: Engine, page_id: uuid.UUID) -> dict[str, Any] | None:
    """``id, document_id, page_number, status, text, layout`` of one page, or None."""
    with translate_errors("read page layout"), engine.connect() as conn:
        row = (
            conn.execute(
                select(
                    pages.c.id,
                    pages.c.document_id,
                    pages.c.page_number,
                    pages.c.status,
                    pages.c.text,
                    pages.c.layout,
                ).where(pages.c.id == page_id)
            )
            .mappings()
            .first()
        )
    return dict(row) if row else None
