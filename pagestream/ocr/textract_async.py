"""AWS Textract async text detection of whole documents in S3: start, poll, collect.

``StartDocumentTextDetection`` on an S3 object, a single non-blocking ``poll`` per call,
``results`` paged with ``NextToken`` (``MaxResults`` ≤ 1,000) and grouped by ``Page``. Service
limits: ≤ 3,000 pages, ≤ 500 MB, the document must be in S3 (same region as the client),
password-protected PDFs are rejected, results are kept 7 days after the job finishes. We check
what we can before starting (token format, key, known size/page count, known encryption). Waits
are bounded: ``AsyncPollPolicy`` gives capped exponential delays and a maximum total wait after
which the job is declared failed; nothing here sleeps except the explicit ``wait_for`` helper
meant for scripts and tests. The consumers that drive these jobs through Kafka events are in
``pagestream.workers.splitter`` and ``pagestream.workers.textract_jobs``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pagestream.layout import PageLayout
from pagestream.ocr import _textract
from pagestream.ocr.errors import (
    EngineConfigurationError,
    EngineUnavailableError,
    OcrError,
    UnreadablePageError,
)
from pagestream.ocr.textract_layout import layout_from_blocks
from pagestream.retry import capped_exponential

#: async job limits (StartDocumentTextDetection)
ASYNC_MAX_PAGES = 3_000
ASYNC_MAX_BYTES = 500 * 1024 * 1024
ASYNC_RESULTS_RETENTION_DAYS = 7
#: GetDocumentTextDetection page size upper bound
MAX_RESULTS_LIMIT = 1_000
#: size used for async PDF pages when the caller does not know the rendered size
DEFAULT_ASYNC_PAGE_SIZE = (1000, 1000)

_CLIENT_TOKEN = re.compile(r"^[a-zA-Z0-9\-_]{1,64}$")
_ASYNC_SUFFIXES = (".pdf", ".tif", ".tiff", ".png", ".jpg", ".jpeg")
#: what Textract's async API reads (it looks at the bytes, not at the object's key)
_ASYNC_MEDIA_TYPES = frozenset({"application/pdf", "image/tiff", "image/png", "image/jpeg"})

JobState = Literal["IN_PROGRESS", "SUCCEEDED", "FAILED", "PARTIAL_SUCCESS"]


@dataclass(frozen=True)
class JobStatus:
    """The state of an async job; ``timed_out`` when we gave up waiting (state is then FAILED)."""

    state: JobState
    status_message: str | None = None
    warnings: tuple[dict[str, Any], ...] = ()
    pages: int | None = None
    timed_out: bool = False

    @property
    def finished(self) -> bool:
        """True for SUCCEEDED, FAILED and PARTIAL_SUCCESS."""
        return self.state != "IN_PROGRESS"


@dataclass(frozen=True)
class AsyncPollPolicy:
    """Capped exponential poll delays and the total wait after which a job is declared failed."""

    initial_delay_seconds: float = 5.0
    multiplier: float = 2.0
    max_delay_seconds: float = 60.0
    max_total_wait_seconds: float = 3600.0

    def next_poll_delay(self, attempt: int) -> float:
        """Seconds to wait before poll number ``attempt`` (0-based), never above the cap."""
        if attempt < 0:
            raise ValueError("attempt must be >= 0")
        return capped_exponential(
            attempt + 1,
            initial=self.initial_delay_seconds,
            factor=self.multiplier,
            maximum=self.max_delay_seconds,
        )

    def expired(self, elapsed_seconds: float) -> bool:
        """Whether a job polled for ``elapsed_seconds`` has exceeded its total wait budget."""
        return elapsed_seconds > self.max_total_wait_seconds


DEFAULT_POLL_POLICY = AsyncPollPolicy()


def next_poll_delay(attempt: int, policy: AsyncPollPolicy = DEFAULT_POLL_POLICY) -> float:
    """Capped exponential backoff for polling an async job (see ``AsyncPollPolicy``)."""
    return policy.next_poll_delay(attempt)


def check_async_document(
    bucket: str,
    key: str,
    *,
    size_bytes: int | None = None,
    page_count: int | None = None,
    encrypted: bool | None = None,
    media_type: str | None = None,
) -> None:
    """Reject, before paying for a job, documents Textract's async API would refuse.

    The format is judged by ``media_type`` (what ingest detected from the bytes) when known;
    content-addressed keys have no suffix. Without it, the key's suffix must say.
    """
    if not bucket or not key:
        raise UnreadablePageError("Textract async jobs read from S3 only; give a bucket and a key")
    if media_type is not None:
        if media_type not in _ASYNC_MEDIA_TYPES:
            raise UnreadablePageError(f"Textract async accepts PDF, TIFF, PNG or JPEG; got {media_type}")
    elif not key.lower().endswith(_ASYNC_SUFFIXES):
        raise UnreadablePageError(f"Textract async accepts PDF, TIFF, PNG or JPEG; got {key!r}")
    if size_bytes is not None and size_bytes > ASYNC_MAX_BYTES:
        raise UnreadablePageError(
            f"document is {size_bytes} bytes; Textract async accepts at most {ASYNC_MAX_BYTES} (500 MB): "
            "split it or use per-page OCR"
        )
    if page_count is not None and page_count > ASYNC_MAX_PAGES:
        raise UnreadablePageError(
            f"document has {page_count} pages; Textract async accepts at most {ASYNC_MAX_PAGES}: "
            "split it or use per-page OCR"
        )
    if encrypted:
        raise UnreadablePageError(
            "PDF is password-protected; Textract rejects it: resubmit it decrypted or use per-page OCR"
        )


@dataclass
class TextractAsyncJobs:
    """Start, poll (one non-blocking call) and collect async text-detection jobs on S3 documents."""

    client: Any
    policy: AsyncPollPolicy = field(default_factory=AsyncPollPolicy)
    max_results: int = MAX_RESULTS_LIMIT

    def __post_init__(self) -> None:
        """Validate ``max_results`` against the service's bound."""
        if not 1 <= self.max_results <= MAX_RESULTS_LIMIT:
            raise EngineConfigurationError(f"max_results must be within 1..{MAX_RESULTS_LIMIT}")

    def start(
        self,
        bucket: str,
        key: str,
        *,
        client_token: str,
        output_config: Mapping[str, str] | None = None,
        version: str | None = None,
        size_bytes: int | None = None,
        page_count: int | None = None,
        encrypted: bool | None = None,
        media_type: str | None = None,
    ) -> str:
        """StartDocumentTextDetection; the same ``client_token`` returns the same job (idempotent)."""
        if not _CLIENT_TOKEN.match(client_token):
            raise EngineConfigurationError(
                "client_token must be 1–64 characters of letters, digits, '-' or '_' "
                "(derive it from the document id, e.g. its uuid hex)"
            )
        check_async_document(
            bucket,
            key,
            size_bytes=size_bytes,
            page_count=page_count,
            encrypted=encrypted,
            media_type=media_type,
        )
        s3_object: dict[str, str] = {"Bucket": bucket, "Name": key}
        if version:
            s3_object["Version"] = version
        params: dict[str, Any] = {
            "DocumentLocation": {"S3Object": s3_object},
            "ClientRequestToken": client_token,
        }
        if output_config:
            params["OutputConfig"] = dict(output_config)
        response = _textract.call(self.client.start_document_text_detection, **params)
        return str(response["JobId"])

    def poll(self, job_id: str, *, started_at: float | None = None, now: float | None = None) -> JobStatus:
        """One GetDocumentTextDetection check; past the policy's total wait an unfinished job is FAILED."""
        response = _textract.call(self.client.get_document_text_detection, JobId=job_id, MaxResults=1)
        status = _status_of(response)
        if not status.finished and started_at is not None:
            elapsed = (time.monotonic() if now is None else now) - started_at
            if self.policy.expired(elapsed):
                return JobStatus(
                    state="FAILED",
                    status_message=(
                        f"gave up after {elapsed:.0f} s (limit {self.policy.max_total_wait_seconds:.0f} s); "
                        "the Textract job did not finish"
                    ),
                    pages=status.pages,
                    timed_out=True,
                )
        return status

    def results(
        self, job_id: str, *, page_sizes: Mapping[int, tuple[int, int]] | None = None
    ) -> dict[int, PageLayout]:
        """All pages of a finished job (1-based page number → layout), following NextToken."""
        by_page: dict[int, list[dict[str, Any]]] = {}
        model_version: str | None = None
        params: dict[str, Any] = {"JobId": job_id, "MaxResults": self.max_results}
        seen_tokens: set[str] = set()
        while True:
            response = _textract.call(self.client.get_document_text_detection, **params)
            status = _status_of(response)
            if status.state == "IN_PROGRESS":
                raise EngineUnavailableError(f"Textract job {job_id} is still in progress; poll again later")
            if status.state == "FAILED":
                raise OcrError(f"Textract job {job_id} failed: {status.status_message or 'no reason given'}")
            model_version = response.get("DetectDocumentTextModelVersion") or model_version
            for block in response.get("Blocks", []):
                by_page.setdefault(int(block.get("Page", 1)), []).append(block)
            token = response.get("NextToken")
            if not token:
                break
            if token in seen_tokens:  # a service bug must not loop us forever
                raise OcrError(f"Textract returned a repeated NextToken for job {job_id}")
            seen_tokens.add(token)
            params["NextToken"] = token
        engine_version = (
            f"textract {model_version}"
            if model_version
            else f"textract (boto3 {_textract.library_version()})"
        )
        sizes = page_sizes or {}
        layouts: dict[int, PageLayout] = {}
        for page, blocks in sorted(by_page.items()):
            width, height = sizes.get(page, DEFAULT_ASYNC_PAGE_SIZE)
            layouts[page] = layout_from_blocks(
                blocks, width=width, height=height, engine_version=engine_version
            )
        return layouts

    def wait_for(
        self,
        job_id: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> JobStatus:
        """Block until the job finishes or the policy's total wait expires (scripts/tests, not consumers)."""
        started = clock()
        attempt = 0
        while True:
            status = self.poll(job_id, started_at=started, now=clock())
            if status.finished:
                return status
            delay = self.policy.next_poll_delay(attempt)
            remaining = self.policy.max_total_wait_seconds - (clock() - started)
            sleep(max(0.0, min(delay, remaining + 0.001)))
            attempt += 1


def _status_of(response: Mapping[str, Any]) -> JobStatus:
    """JobStatus from a GetDocumentTextDetection response."""
    state = response.get("JobStatus", "IN_PROGRESS")
    if state not in ("IN_PROGRESS", "SUCCEEDED", "FAILED", "PARTIAL_SUCCESS"):
        raise OcrError(f"Textract returned an unknown JobStatus {state!r}")
    pages = (response.get("DocumentMetadata") or {}).get("Pages")
    return JobStatus(
        state=state,
        status_message=response.get("StatusMessage"),
        warnings=tuple(response.get("Warnings") or ()),
        pages=int(pages) if pages is not None else None,
    )
