"""Outputs built from the stored layout and the original bytes, never by running OCR again:
searchable PDF (``searchable_pdf``), hOCR and ALTO (``hocr``, ``alto``), page images for the
viewer (``page_image``), and ``store_searchable_pdf`` for writing the PDF on completion."""

from __future__ import annotations

from pagestream.export.errors import ExportError, SourceUnreadableError
from pagestream.export.image import page_image
from pagestream.export.pdf import searchable_pdf
from pagestream.export.source import SourceDocument, SourcePage, layout_from_row, load_document
from pagestream.export.store import searchable_pdf_key, store_searchable_pdf
from pagestream.export.xml import ALTO_MEDIA_TYPE, ALTO_XSD, HOCR_MEDIA_TYPE, alto, hocr

__all__ = [
    "ALTO_MEDIA_TYPE",
    "ALTO_XSD",
    "HOCR_MEDIA_TYPE",
    "ExportError",
    "SourceDocument",
    "SourcePage",
    "SourceUnreadableError",
    "alto",
    "hocr",
    "layout_from_row",
    "load_document",
    "page_image",
    "searchable_pdf",
    "searchable_pdf_key",
    "store_searchable_pdf",
]
