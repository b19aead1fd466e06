"""Errors of the exports (searchable PDF, hOCR, ALTO, page images)."""

from __future__ import annotations

from typing import ClassVar

from pagestream.errors import PagestreamError


class ExportError(PagestreamError):
    """An export could not be built from the stored document and layout."""

    retryable: ClassVar[bool] = False
    reason: ClassVar[str] = "export_failed"


class SourceUnreadableError(ExportError):
    """The stored document bytes cannot be opened (corrupt, or encrypted without its password)."""

    reason: ClassVar[str] = "source_unreadable"
