"""Every event type, as a pydantic model with its version in its name.

Within a version, changes are additive only (new optional fields); consumers ignore
fields they do not know. A new version gets a new model and an upcaster from the previous
one (see ``pagestream.events.registry``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from pagestream.layout import PageLayout

PAGE_NAMESPACE = uuid.UUID("6c1f6a52-3b9a-4d55-9a52-4f4a3c0e7d11")

DocumentStatus = Literal["received", "processing", "completed", "partial", "failed"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def page_id_for(document_id: uuid.UUID, page_number: int) -> uuid.UUID:
    """The stable id of a document's page: the same page is always the same key."""
    return uuid.uuid5(PAGE_NAMESPACE, f"{document_id}/{page_number}")


class Event(BaseModel):
    """Base of all event payloads (the CloudEvents ``data``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    #: the CloudEvents ``type`` and, prefixed with ``pagestream.``, the topic
    event_type: ClassVar[str]
    #: the aggregate the event belongs to, used for the outbox ``aggregatetype``
    aggregate_type: ClassVar[str]

    def aggregate_id(self) -> str:
        raise NotImplementedError


class DocumentOptions(BaseModel):
    """Per-document processing options chosen at submission."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    force_ocr: bool = False
    engine: str | None = Field(None, description="override the configured OCR engine")
    languages: str | None = Field(None, description="Tesseract language codes, e.g. 'eng+deu'")


class DocumentCommittedV1(Event):
    """A document row was committed: OCR may start. Emitted only through the outbox."""

    event_type = "document.committed.v1"
    aggregate_type = "document"

    document_id: uuid.UUID
    sha256: str
    media_type: str
    size_bytes: int
    page_count: int
    storage_uri: str
    filename: str | None = None
    client_reference: str | None = None
    options: DocumentOptions = Field(default_factory=DocumentOptions)
    received_at: datetime

    def aggregate_id(self) -> str:
        return str(self.document_id)


class PageOcrRequestedV1(Event):
    """One page of a committed document needs recognizing."""

    event_type = "page.ocr-requested.v1"
    aggregate_type = "page"

    page_id: uuid.UUID
    document_id: uuid.UUID
    page_number: int = Field(ge=1)
    page_count: int = Field(ge=1)
    storage_uri: str
    media_type: str
    sha256: str
    options: DocumentOptions = Field(default_factory=DocumentOptions)
    attempt: int = Field(1, ge=1)
    not_before: datetime | None = Field(None, description="retry backoff: do not start before this time")
    last_error: str | None = None

    def aggregate_id(self) -> str:
        return str(self.page_id)


class PageOcrCompletedV1(Event):
    """A page was recognized (by OCR or from its text layer)."""

    event_type = "page.ocr-completed.v1"
    aggregate_type = "page"

    page_id: uuid.UUID
    document_id: uuid.UUID
    page_number: int = Field(ge=1)
    page_count: int = Field(ge=1)
    attempt: int = 1
    layout: PageLayout = Field(
        description="the page layout; without words, lines and blocks when claim-checked"
    )
    started_at: datetime
    completed_at: datetime
    layout_uri: str | None = Field(None, description="claim check: the full layout JSON in the object store")
    layout_sha256: str | None = Field(None, description="sha256 of the object at layout_uri")

    def aggregate_id(self) -> str:
        return str(self.page_id)


class PageOcrFailedV1(Event):
    """A page could not be recognized; final after bounded retries."""

    event_type = "page.ocr-failed.v1"
    aggregate_type = "page"

    page_id: uuid.UUID
    document_id: uuid.UUID
    page_number: int = Field(ge=1)
    page_count: int = Field(ge=1)
    attempts: int
    reason: str = Field(description="machine-readable reason, e.g. 'unreadable_page', 'page_timeout'")
    detail: str = Field(description="what went wrong, for a person")
    failed_at: datetime

    def aggregate_id(self) -> str:
        return str(self.page_id)


class DocumentOcrJobSubmittedV1(Event):
    """A whole-document async OCR job was started; re-published with the next ``poll_attempt`` until it ends."""

    event_type = "document.ocr-job-submitted.v1"
    aggregate_type = "document"

    document_id: uuid.UUID
    engine: str = Field("textract", description="the engine running the job, e.g. 'textract'")
    job_id: str = Field(description="the engine's job id (Textract JobId)")
    storage_uri: str
    page_count: int = Field(ge=1)
    submitted_at: datetime
    poll_attempt: int = Field(0, ge=0, description="polls already made; 0 on submission")
    not_before: datetime | None = Field(None, description="poll backoff: do not poll before this time")

    def aggregate_id(self) -> str:
        return str(self.document_id)


class DocumentOcrCompletedV1(Event):
    """A document reached a final state: completed, partial or failed."""

    event_type = "document.ocr-completed.v1"
    aggregate_type = "document"

    document_id: uuid.UUID
    status: Literal["completed", "partial", "failed"]
    page_count: int
    pages_done: int
    pages_failed: int
    received_at: datetime | None = None
    completed_at: datetime
    error: str | None = None

    def aggregate_id(self) -> str:
        return str(self.document_id)


class DocumentSubmitV1(Event):
    """Command from an external producer: OCR the document stored at ``uri``."""

    event_type = "document.submit.v1"
    aggregate_type = "document"

    uri: str = Field(description="s3://bucket/key, or file:///path on the embedded stack")
    filename: str | None = None
    client_reference: str | None = Field(None, max_length=200)
    idempotency_key: str | None = Field(None, max_length=200)
    options: DocumentOptions = Field(default_factory=DocumentOptions)

    def aggregate_id(self) -> str:
        return self.client_reference or self.uri


class DocumentRejectedV1(Event):
    """A submit command was rejected; says why, with the client's reference."""

    event_type = "document.rejected.v1"
    aggregate_type = "document"

    uri: str
    client_reference: str | None = None
    status_code: int
    reason: str
    detail: str
    rejected_at: datetime

    def aggregate_id(self) -> str:
        return self.client_reference or self.uri


class DocumentDeletedV1(Event):
    """A document and its stored bytes were deleted."""

    event_type = "document.deleted.v1"
    aggregate_type = "document"

    document_id: uuid.UUID
    deleted_at: datetime

    def aggregate_id(self) -> str:
        return str(self.document_id)


ALL_EVENTS: tuple[type[Event], ...] = (
    DocumentSubmitV1,
    DocumentCommittedV1,
    DocumentRejectedV1,
    DocumentOcrJobSubmittedV1,
    DocumentOcrCompletedV1,
    DocumentDeletedV1,
    PageOcrRequestedV1,
    PageOcrCompletedV1,
    PageOcrFailedV1,
)
