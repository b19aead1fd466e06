"""AWS Textract text detection as an ``OcrEngine``, plus the async multi-page flow for PDFs in S3.

Synchronous (``TextractEngine``): one ``DetectDocumentText`` call per page image. Limits: one
page, ≤ 10 MB of bytes (we re-encode/downscale to fit), JPEG/PNG; we also cap the longest side
at 10,000 px. Textract supports Latin-script text (English, German, French, Spanish, Italian,
Portuguese); the ``languages`` argument is ignored.

Mapping: Textract returns PAGE, LINE and WORD blocks linked by ``CHILD`` relationships, with
``Geometry.BoundingBox`` normalized to the page (Left/Top/Width/Height in 0–1) and confidences
already in 0–100. Textract has no level above LINE, so we group consecutive LINEs into one
``Block`` while the vertical gap to the previous line is at most ``BLOCK_GAP_FACTOR`` × the
taller line's height and their horizontal extents overlap (a paragraph-ish heuristic; a lone
line becomes its own block). Boxes are normalized × the size of the image given to ``recognize``
(exact even if the upload was downscaled).

Asynchronous (``TextractAsyncJobs``): ``StartDocumentTextDetection`` on an S3 object, a single
non-blocking ``poll`` per call, ``results`` paged with ``NextToken`` (``MaxResults`` ≤ 1,000) and
grouped by ``Page``. Service limits: ≤ 3,000 pages, ≤ 500 MB, the document must be in S3 (same
region as the client), password-protected PDFs are rejected, results are kept 7 days after the
job finishes. We check what we can before starting (token format, key, known size/page count,
known encryption). Waits are bounded: ``AsyncPollPolicy`` gives capped exponential delays and a
maximum total wait after which the job is declared failed; nothing here sleeps except the
explicit ``wait_for`` helper meant for scripts and tests.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any, Literal

from PIL import Image

from pagestream.layout import Block, Box, Line, PageLayout, Word
from pagestream.ocr import _textract
from pagestream.ocr._cloud_image import encode_within
from pagestream.ocr.engine import OcrEngine
from pagestream.ocr.errors import (
    EngineConfigurationError,
    EngineUnavailableError,
    OcrError,
    UnreadablePageError,
)
from pagestream.retry import capped_exponential

#: DetectDocumentText accepts at most 10 MB of document bytes
SYNC_MAX_BYTES = 10 * 1024 * 1024
#: conservative cap on the longest side of an uploaded page image
SYNC_MAX_SIDE = 10_000
#: async job limits (StartDocumentTextDetection)
ASYNC_MAX_PAGES = 3_000
ASYNC_MAX_BYTES = 500 * 1024 * 1024
ASYNC_RESULTS_RETENTION_DAYS = 7
#: GetDocumentTextDetection page size upper bound
MAX_RESULTS_LIMIT = 1_000
#: consecutive lines closer than this × line height belong to the same block
BLOCK_GAP_FACTOR = 1.0
#: size used for async PDF pages when the caller does not know the rendered size
DEFAULT_ASYNC_PAGE_SIZE = (1000, 1000)

_CLIENT_TOKEN = re.compile(r"^[a-zA-Z0-9\-_]{1,64}$")
_ASYNC_SUFFIXES = (".pdf", ".tif", ".tiff", ".png", ".jpg", ".jpeg")
#: what Textract's async API reads (it looks at the bytes, not at the object's key)
_ASYNC_MEDIA_TYPES = frozenset({"application/pdf", "image/tiff", "image/png", "image/jpeg"})

JobState = Literal["IN_PROGRESS", "SUCCEEDED", "FAILED", "PARTIAL_SUCCESS"]


def _boto3_version() -> str:
    """The installed boto3 version."""
    try:
        return package_version("boto3")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


class TextractEngine(OcrEngine):
    """OCR through AWS Textract ``DetectDocumentText``; credentials and region from the boto3 chain."""

    name = "textract"
    corrects_skew = True  # the service reads tilted pages; no local deskew needed

    def __init__(
        self,
        *,
        client: Any | None = None,
        region_name: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_attempts: int = 3,
        max_image_bytes: int = SYNC_MAX_BYTES,
    ) -> None:
        """Configure only; ``client`` (a boto3 Textract client) may be injected, else made in ``start()``."""
        if read_timeout <= 0 or connect_timeout <= 0:
            raise EngineConfigurationError("Textract timeouts must be positive: every call is bounded")
        self._client = client
        self._owns_client = client is None
        self._region = region_name
        self._config = _textract.bounded_config(
            connect_timeout=connect_timeout, read_timeout=read_timeout, max_attempts=max_attempts
        )
        self._max_image_bytes = min(max_image_bytes, SYNC_MAX_BYTES)
        self._model_version: str | None = None
        self._closed = False

    @property
    def client(self) -> Any:
        """The boto3 client (created by ``start()`` unless injected)."""
        if self._client is None:
            self.start()
        return self._client

    def start(self) -> None:
        """Create the client from the default chain; it connects on the first call."""
        if self._closed:
            raise EngineConfigurationError("TextractEngine was closed; create a new one")
        if self._client is None:
            self._client = _textract.create_client(region_name=self._region, config=self._config)

    def close(self) -> None:
        """Drop the connection pool of a client we created; the engine is unusable afterwards."""
        client, self._client = self._client, None
        self._closed = True
        if self._owns_client and client is not None and hasattr(client, "close"):
            client.close()

    def version(self) -> str:
        """``textract <model version>`` once known from a response, else the boto3 version."""
        if self._model_version:
            return f"textract {self._model_version}"
        return f"textract (boto3 {_boto3_version()})"

    def recognize(
        self, image: Image.Image, *, languages: str = "eng", dpi: float | None = None
    ) -> PageLayout:
        """Send ``image`` as PNG to DetectDocumentText and map its blocks to a ``PageLayout``."""
        encoded = encode_within(image, max_bytes=self._max_image_bytes, max_side=SYNC_MAX_SIDE)
        started = time.monotonic()
        response = _textract.call(self.client.detect_document_text, Document={"Bytes": encoded.data})
        elapsed = time.monotonic() - started
        self._model_version = response.get("DetectDocumentTextModelVersion") or self._model_version
        layout = layout_from_blocks(
            response.get("Blocks", []), width=image.width, height=image.height, engine_version=self.version()
        )
        return layout.model_copy(update={"dpi": dpi, "ocr_seconds": elapsed})


def _box(geometry: Mapping[str, Any] | None, *, width: int, height: int) -> Box | None:
    """Pixel box from a normalized ``Geometry.BoundingBox`` (Polygon when the box is absent)."""
    if not geometry:
        return None
    bb = geometry.get("BoundingBox")
    if bb:
        left, top = float(bb.get("Left", 0.0)), float(bb.get("Top", 0.0))
        right, bottom = left + float(bb.get("Width", 0.0)), top + float(bb.get("Height", 0.0))
    elif geometry.get("Polygon"):
        xs = [float(p.get("X", 0.0)) for p in geometry["Polygon"]]
        ys = [float(p.get("Y", 0.0)) for p in geometry["Polygon"]]
        left, top, right, bottom = min(xs), min(ys), max(xs), max(ys)
    else:
        return None

    def clamp(v: float) -> float:
        return min(1.0, max(0.0, v))

    left, top, right, bottom = clamp(left), clamp(top), clamp(right), clamp(bottom)
    return Box.from_pixels(left * width, top * height, right * width, bottom * height, width, height)


def _union(boxes: list[Box], *, width: int, height: int) -> Box:
    """The smallest box containing ``boxes``."""
    return Box.from_pixels(
        min(b.x0 for b in boxes),
        min(b.y0 for b in boxes),
        max(b.x1 for b in boxes),
        max(b.y1 for b in boxes),
        width,
        height,
    )


def _child_ids(block: Mapping[str, Any]) -> list[str]:
    """Ids of a block's CHILD relationships, in order."""
    return [
        i
        for rel in block.get("Relationships") or []
        if rel.get("Type") == "CHILD"
        for i in rel.get("Ids", [])
    ]


def _same_block(previous: Line, line: Line) -> bool:
    """Whether ``line`` continues the block that ``previous`` ends (small gap, overlapping columns)."""
    gap = line.box.y0 - previous.box.y1
    tallest = max(previous.box.y1 - previous.box.y0, line.box.y1 - line.box.y0)
    overlaps = line.box.x0 < previous.box.x1 and previous.box.x0 < line.box.x1
    return -tallest / 2 <= gap <= BLOCK_GAP_FACTOR * tallest and overlaps


def layout_from_blocks(
    blocks: Iterable[Mapping[str, Any]], *, width: int, height: int, engine_version: str
) -> PageLayout:
    """Map one page's Textract blocks (PAGE/LINE/WORD with CHILD relationships) to a ``PageLayout``."""
    by_id = {b["Id"]: b for b in blocks if "Id" in b}
    lines: list[Line] = []
    for tblock in by_id.values():
        if tblock.get("BlockType") != "LINE":
            continue
        words: list[Word] = []
        for child_id in _child_ids(tblock):
            child = by_id.get(child_id)
            if not child or child.get("BlockType") != "WORD":
                continue
            box = _box(child.get("Geometry"), width=width, height=height)
            text = child.get("Text", "")
            if box is None or not text.strip():
                continue
            confidence = min(100.0, max(0.0, float(child.get("Confidence", 0.0))))
            words.append(Word(text=text, box=box, confidence=round(confidence, 2)))
        line_box = _box(tblock.get("Geometry"), width=width, height=height)
        if line_box is None and words:
            line_box = _union([w.box for w in words], width=width, height=height)
        text = tblock.get("Text") or " ".join(w.text for w in words)
        if line_box is not None and text.strip():
            lines.append(Line(text=text, box=line_box, words=words))

    grouped: list[list[Line]] = []
    for line in lines:
        if grouped and _same_block(grouped[-1][-1], line):
            grouped[-1].append(line)
        else:
            grouped.append([line])
    out_blocks = [
        Block(
            text="\n".join(ln.text for ln in group),
            box=_union([ln.box for ln in group], width=width, height=height),
            lines=group,
        )
        for group in grouped
    ]
    all_words = [w for ln in lines for w in ln.words]
    return PageLayout(
        text="\n".join(ln.text for ln in lines),
        width=width,
        height=height,
        rotation=0,
        source="ocr",
        engine=TextractEngine.name,
        engine_version=engine_version,
        mean_confidence=round(sum(w.confidence for w in all_words) / len(all_words), 2)
        if all_words
        else None,
        blocks=out_blocks,
    )


# --- async multi-page jobs ----------------------------------------------------------------


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
            f"textract {model_version}" if model_version else f"textract (boto3 {_boto3_version()})"
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
