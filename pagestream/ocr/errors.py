"""Errors of the OCR layer (rendering, engines)."""

from __future__ import annotations

from pagestream.errors import InputError, PagestreamError, TransientError


class OcrError(PagestreamError):
    """OCR of a page failed."""

    reason = "ocr_error"


class EngineUnavailableError(OcrError, TransientError):
    """The engine cannot be reached or is throttling; retry later with backoff."""

    reason = "engine_unavailable"


class PageTimeoutError(OcrError, TransientError):
    """OCR of one page exceeded its time budget."""

    reason = "page_timeout"


class UnreadablePageError(OcrError, InputError):
    """The page cannot be rendered or decoded; retrying will not help."""

    reason = "unreadable_page"


class EngineConfigurationError(OcrError):
    """The engine is misconfigured (missing language data, missing credentials)."""

    reason = "engine_configuration"


class LanguageNotInstalledError(EngineConfigurationError, InputError):
    """A requested OCR language has no model here (or is not a language, like ``osd``).

    Not retryable: the same page asks for the same language again. The message names the missing
    language and the installed ones, so the document can be resubmitted with ``languages`` fixed.
    """

    reason = "language_not_installed"
