"""The JSON bodies of the query API (documents, pages, OCR layout, search), as OpenAPI documents them."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pagestream.engine_names import EngineName as EngineName  # the upload form validates against it
from pagestream.events.models import DocumentStatus
from pagestream.layout import PageLayout, TitleBlock

#: Tesseract language codes joined by '+', as the upload and reprocess routes accept them.
LANGUAGES_PATTERN = r"^[a-z][a-z_]{2,19}(\+[a-z][a-z_]{2,19})*$"  # eng, deu+eng, chi_sim_vert
LANGUAGES_MAX_LENGTH = 100
#: Longest ``Idempotency-Key`` and ``client_reference`` (as for ``document.submit.v1`` commands).
REFERENCE_MAX_LENGTH = 200
PageStatus = Literal["pending", "completed", "failed"]


class PageError(BaseModel):
    page_number: int
    error_reason: str | None
    error_detail: str | None


class SheetTitleBlock(BaseModel):
    """A page's title-block fields (drawings)."""

    page_number: int
    sheet_number: str | None
    sheet_title: str | None
    scale: str | None


class DocumentOptionsView(BaseModel):
    force_ocr: bool = False
    engine: str | None = None
    languages: str | None = None


class DocumentView(BaseModel):
    """A document: its status and progress, what was submitted, and where to follow it."""

    id: uuid.UUID
    status: DocumentStatus
    status_url: str = Field(description="where to poll this document")
    filename: str | None
    media_type: str
    size_bytes: int
    sha256: str
    page_count: int | None = Field(description="null until the document is inspected")
    pages_done: int
    pages_failed: int
    progress: float = Field(ge=0.0, description="finished pages (done or failed) / page_count")
    error: str | None
    page_errors: list[PageError]
    title_blocks: list[SheetTitleBlock]
    client_reference: str | None
    options: DocumentOptionsView
    received_at: str | None
    ocr_started_at: str | None
    completed_at: str | None


class UploadedDocument(DocumentView):
    duplicate: bool = Field(
        description="true when an existing document was returned (same bytes or Idempotency-Key)"
    )


class DocumentList(BaseModel):
    items: list[DocumentView] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


class PageErrorView(BaseModel):
    reason: str | None
    detail: str | None


class PageTimings(BaseModel):
    started_at: str | None
    completed_at: str | None
    ocr_seconds: float | None


class PageView(BaseModel):
    """One page: its status, how it was read, and where its OCR layout is."""

    id: uuid.UUID
    page_number: int
    status: PageStatus
    source: str | None = Field(description="'ocr' or 'text-layer'")
    engine: str | None
    engine_version: str | None
    rotation: int | None
    confidence: float | None
    title_block: TitleBlock
    error: PageErrorView | None
    attempts: int | None
    timings: PageTimings
    ocr_url: str | None = Field(description="the page's OCR layout; null unless completed")


class DocumentPages(BaseModel):
    document_id: uuid.UUID
    status: DocumentStatus
    page_count: int | None
    pages: list[PageView] = Field(description="every page in order; pages not recorded yet are pending")


class PageOcr(PageLayout):
    """A recognized page: its text and layout (blocks → lines → words, each with text, box and confidence)."""

    model_config = ConfigDict(extra="allow")

    page_id: uuid.UUID
    document_id: uuid.UUID
    page_number: int


class SearchPage(BaseModel):
    page_number: int
    page_id: uuid.UUID
    rank: float
    snippet: str = Field(description="HTML: the page text escaped, matched terms in <mark>")
    ocr_url: str


class SearchHitView(BaseModel):
    document_id: uuid.UUID
    document_url: str
    filename: str | None
    status: DocumentStatus
    page_count: int | None
    rank: float
    matching_pages: int
    pages: list[SearchPage] = Field(description="the best matching pages")


class SearchResults(BaseModel):
    query: str
    items: list[SearchHitView] = Field(description="documents, best match first")
