"""TextractJobPoller: ``document.ocr-job-submitted.v1`` → ``page.ocr-completed.v1`` / ``page.ocr-failed.v1``.

An asynchronous Textract job never blocks a consumer: it is modelled as events. The splitter
starts the job and publishes ``document.ocr-job-submitted.v1`` (keyed by document id) with a
``not_before``; ``ConsumerLoop`` holds the record back until that time with only its partition
paused (the consumer keeps polling, so the group never times it out), then this poller (a
``Handler``) makes ONE ``GetDocumentTextDetection`` call and returns the events it leads to:

- IN_PROGRESS: the same event again with ``poll_attempt + 1`` and a later ``not_before``
  (capped exponential backoff from ``AsyncPollPolicy``); the loop commits the current record
  only after the broker acknowledged the new one.
- SUCCEEDED / PARTIAL_SUCCESS: every result page is fetched (``NextToken`` pagination) and one
  ``page.ocr-completed.v1`` per page is published; pages missing from a partial result get
  ``page.ocr-failed.v1``.
- FAILED, the policy's total wait exceeded, or a non-retryable error (unknown or expired job,
  permissions): ``page.ocr-failed.v1`` for every page, with the reason.

Throttling and other retryable errors propagate to ``ConsumerLoop``, which rewinds the record
and retries it after a pause; a non-retryable ``OcrError`` is the job's failure (``failed``).
Page results go through the loop's claim check. Duplicate poll chains (a redelivered committed event yields the same
job id through the same ``ClientRequestToken``) are dropped by job id in memory; after a restart
they may both finish, and persist absorbs the duplicate page results.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import timedelta

from pagestream import metrics
from pagestream.errors import PagestreamError
from pagestream.events.envelope import Envelope, encode_data
from pagestream.events.errors import EventEncodeError
from pagestream.events.models import (
    DocumentCommittedV1,
    DocumentOcrJobSubmittedV1,
    PageOcrCompletedV1,
    PageOcrFailedV1,
    page_id_for,
    utcnow,
)
from pagestream.events.topics import (
    DOCUMENT_OCR_JOB_SUBMITTED,
    DOCUMENT_OCR_JOB_SUBMITTED_DLQ,
    PAGE_OCR_COMPLETED,
    PAGE_OCR_FAILED,
)
from pagestream.kafka.consumer import EventConsumer
from pagestream.kafka.producer import EventProducer
from pagestream.layout import PageLayout
from pagestream.ocr import _textract
from pagestream.ocr.errors import OcrError
from pagestream.ocr.textract_async import TextractAsyncJobs
from pagestream.settings import Settings
from pagestream.storage import ObjectStore, open_store
from pagestream.storage.s3 import parse_s3_uri
from pagestream.workers.claimcheck import ClaimCheck
from pagestream.workers.loop import ConsumerLoop, Delivery, Emit, Handler

log = logging.getLogger(__name__)

GROUP = "pagestream-ocr-textract-jobs"
ENGINE = "textract"
#: how many job ids the poller remembers to drop duplicate poll chains
SEEN_JOBS_LIMIT = 10_000
#: upper bound of a poll's backoff wait, whatever ``not_before`` says (clock skew between hosts)
MAX_WAIT_SECONDS = 300.0
_FINISHED = 1 << 62


def textract_s3_location(doc: DocumentCommittedV1, default_engine: str) -> tuple[str, str] | None:
    """``(bucket, key)`` when ``doc`` goes to an async Textract job: a multi-page PDF in S3 for textract."""
    engine = doc.options.engine or default_engine
    if engine != ENGINE or doc.media_type != "application/pdf" or doc.page_count <= 1:
        return None
    if not doc.storage_uri.startswith("s3://"):
        return None
    bucket, key = parse_s3_uri(doc.storage_uri)
    return (bucket, key) if key else None


def default_textract_jobs() -> TextractAsyncJobs:
    """``TextractAsyncJobs`` on a bounded client from boto3's default chain (nothing is sent until a call)."""
    return TextractAsyncJobs(_textract.create_client(config=_textract.bounded_config()))


class TextractJobPoller(Handler[DocumentOcrJobSubmittedV1]):
    """Polls submitted Textract jobs one non-blocking call at a time and publishes their page results."""

    def __init__(
        self, settings: Settings, *, jobs: TextractAsyncJobs | None = None, store: ObjectStore | None = None
    ):
        """Configure only; ``jobs`` may be injected (tests), else it is made on the first job."""
        self._settings = settings
        self._jobs = jobs
        self._store = store  # for claim-checked page results; opened on first use
        # A job is polled seconds apart (its record waits out ``not_before``): librdkafka's default
        # long poll adds nothing a user sees, and an idle poller then costs the broker a tenth of the
        # CPU the short poll of the consumers on a document's path does.
        self._consumer = EventConsumer(
            settings,
            GROUP,
            [DOCUMENT_OCR_JOB_SUBMITTED],
            client_id="pagestream-ocr-textract-jobs",
            extra={"fetch.wait.max.ms": 500},
        )
        self._producer = EventProducer(settings, client_id="pagestream-ocr-textract-jobs")
        self._loop = ConsumerLoop(
            self._consumer,
            self._producer,
            service="ocr-textract-jobs",
            dlq_topic=DOCUMENT_OCR_JOB_SUBMITTED_DLQ,
            expected=DocumentOcrJobSubmittedV1,
            handler=self,
            claim_check=ClaimCheck(self._open_store, settings.event_max_bytes),
            max_defer_seconds=MAX_WAIT_SECONDS,
        )
        # job id -> highest poll_attempt already acted on (_FINISHED once its pages were published)
        self._seen: OrderedDict[str, int] = OrderedDict()

    @property
    def ready(self) -> bool:
        """True while the consume loop is healthy."""
        return self._loop.healthy

    @property
    def jobs(self) -> TextractAsyncJobs:
        """The Textract jobs client (created on first use unless injected)."""
        if self._jobs is None:
            self._jobs = default_textract_jobs()
        return self._jobs

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set."""
        self._loop.run(stop)

    def _open_store(self) -> ObjectStore:
        if self._store is None:
            self._store = open_store(self._settings)
        return self._store

    # -- one record ------------------------------------------------------------------------

    def handle(self, d: Delivery[DocumentOcrJobSubmittedV1]) -> list[Emit]:
        """The events one poll of the job leads to; none for a duplicate poll chain."""
        job = d.task
        if self._seen.get(job.job_id, -1) >= job.poll_attempt:
            log.info(
                "duplicate poll of a Textract job dropped",
                extra={
                    "document_id": str(job.document_id),
                    "job_id": job.job_id,
                    "attempt": job.poll_attempt,
                },
            )
            return []
        return self.advance(d.envelope)

    def advance(self, env: Envelope) -> list[Emit]:
        """One poll of the job: its next poll, or its page results; errors propagate (classified)."""
        job = env.expect(DocumentOcrJobSubmittedV1)
        jobs = self.jobs
        status = jobs.poll(job.job_id, started_at=job.submitted_at.timestamp(), now=time.time())
        if not status.finished:
            return [self._next_poll(env, job, jobs)]
        if status.state == "FAILED":
            reason = "ocr_job_timeout" if status.timed_out else "ocr_job_failed"
            detail = f"Textract job {job.job_id} failed: {status.status_message or 'no reason given'}"
            return self._pages(job, {}, reason=reason, detail=detail)
        layouts = jobs.results(job.job_id)
        missing = sorted(set(range(1, job.page_count + 1)) - set(layouts))
        detail = (
            f"Textract job {job.job_id} ({status.state}) returned no result for pages "
            f"{missing}: {status.status_message or status.warnings or 'no reason given'}"
        )
        return self._pages(job, layouts, reason="ocr_job_page_failed", detail=detail)

    def failed(self, d: Delivery[DocumentOcrJobSubmittedV1], error: PagestreamError) -> list[Emit] | None:
        """An unknown/expired job id or a permission problem ends the document visibly (every page
        failed with the reason); any other permanent error dead-letters the record."""
        if not isinstance(error, OcrError):
            return None
        job = d.task
        return self._pages(job, {}, reason=error.reason, detail=f"Textract job {job.job_id}: {error}"[:2000])

    def published(self, d: Delivery[DocumentOcrJobSubmittedV1], events: Sequence[Emit]) -> None:
        """Remember how far the job's poll chain got once its events are durable; log the outcome."""
        job = d.task
        if not events:
            return
        nxt = events[0].event
        if isinstance(nxt, DocumentOcrJobSubmittedV1):
            self._remember(job.job_id, job.poll_attempt)
            log.info(
                "Textract job still running; polling again later",
                extra={
                    "document_id": str(job.document_id),
                    "job_id": job.job_id,
                    "attempt": nxt.poll_attempt,
                    "not_before": nxt.not_before.isoformat() if nxt.not_before else None,
                    "traceparent": d.envelope.traceparent,
                },
            )
            return
        self._remember(job.job_id, _FINISHED)
        done = sum(isinstance(e.event, PageOcrCompletedV1) for e in events)
        failed = [e.event for e in events if isinstance(e.event, PageOcrFailedV1)]
        metrics.OCR_PAGES.labels(ENGINE, "ocr", "completed").inc(done)
        if failed:
            metrics.OCR_PAGES.labels(ENGINE, "ocr", "failed").inc(len(failed))
        log_fn = log.info if not failed else log.error
        log_fn(
            "Textract job finished",
            extra={
                "document_id": str(job.document_id),
                "job_id": job.job_id,
                "pages_done": done,
                "pages_failed": len(failed),
                "reason": failed[0].reason if failed else None,
                "traceparent": d.envelope.traceparent,
            },
        )

    def _next_poll(self, env: Envelope, job: DocumentOcrJobSubmittedV1, jobs: TextractAsyncJobs) -> Emit:
        """The next poll of a running job, with its backoff (the same task travelling on)."""
        attempt = job.poll_attempt + 1
        delay = jobs.policy.next_poll_delay(attempt)
        nxt = job.model_copy(
            update={"poll_attempt": attempt, "not_before": utcnow() + timedelta(seconds=delay)}
        )
        return Emit(nxt, DOCUMENT_OCR_JOB_SUBMITTED, same_span=True)

    def _pages(
        self,
        job: DocumentOcrJobSubmittedV1,
        layouts: dict[int, PageLayout],
        *,
        reason: str,
        detail: str,
    ) -> list[Emit]:
        """One completed or failed event per page of the document."""
        now = utcnow()
        out: list[Emit] = []
        for n in range(1, job.page_count + 1):
            page_id = page_id_for(job.document_id, n)
            layout = layouts.get(n)
            page_reason, page_detail = reason, detail
            if layout is not None:
                done = PageOcrCompletedV1(
                    page_id=page_id,
                    document_id=job.document_id,
                    page_number=n,
                    page_count=job.page_count,
                    attempt=1,
                    layout=layout,
                    started_at=job.submitted_at,
                    completed_at=now,
                )
                try:
                    encode_data(done)  # the page's text cannot be serialized: that page fails, saying so
                except EventEncodeError as e:
                    page_reason, page_detail = e.reason, str(e)
                else:
                    out.append(Emit(done, PAGE_OCR_COMPLETED))
                    continue
            failed = PageOcrFailedV1(
                page_id=page_id,
                document_id=job.document_id,
                page_number=n,
                page_count=job.page_count,
                attempts=job.poll_attempt + 1,
                reason=page_reason,
                detail=page_detail[:2000],
                failed_at=now,
            )
            out.append(Emit(failed, PAGE_OCR_FAILED))
        return out

    def _remember(self, job_id: str, attempt: int) -> None:
        """Record how far a job's poll chain got, forgetting the oldest jobs past the limit."""
        self._seen[job_id] = max(attempt, self._seen.get(job_id, -1))
        self._seen.move_to_end(job_id)
        while len(self._seen) > SEEN_JOBS_LIMIT:
            self._seen.popitem(last=False)
