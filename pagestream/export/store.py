"""Write a document's searchable PDF to the object store (e.g. when its OCR completes)."""

from __future__ import annotations

import uuid
from typing import Any

from pagestream.export.pdf import searchable_pdf
from pagestream.export.source import load_document


def searchable_pdf_key(document_id: uuid.UUID | str) -> str:
    """Where a document's searchable PDF is stored: ``exports/<id>/searchable.pdf``."""
    return f"exports/{document_id}/searchable.pdf"


def store_searchable_pdf(engine: Any, store: Any, document_id: uuid.UUID) -> str:
    """Build the document's searchable PDF from its stored layout and bytes, store it, return its URI.

    Idempotent (same key, same bytes for the same layout); meant to be called once a document
    reaches ``completed``/``partial`` when the deployment asks for it (a setting).
    """
    pdf = searchable_pdf(load_document(engine, store, document_id))
    return str(store.put(searchable_pdf_key(document_id), pdf, "application/pdf"))
