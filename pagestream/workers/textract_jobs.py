"""TextractJobPoller: ``document.ocr-job-submitted.v1`` → ``page.ocr-completed.v1`` / ``page.ocr-failed.v1``.

An asynchronous Textract job never blocks a consumer: it is modelled as events. The splitter
starts the job and publishes ``document.ocr-job-submitted.v1`` (keyed by document id) with a
``not_before``; this poller waits for that time with its partitions paused (the consumer keeps
polling, so the group never times it out), then makes ONE ``GetDocumentTextDetection`` call:

- IN_PROGRESS: the same event is re-published with ``poll_attempt + 1`` and a later
  ``not_before`` (capped exponential backoff from ``AsyncPollPolicy``); the current record is
  committed only after the broker acknowledged the new one.
- SUCCEEDED / PARTIAL_SUCCESS: every result page is fetched (``NextToken`` pagination) and one
  ``page.ocr-completed.v1`` per page is published; pages missing from a partial result get
  ``page.ocr-failed.v1``.
- FAILED, the policy's total wait exceeded, or a non-retryable error (unknown or expired job,
  permissions): ``page.ocr-failed.v1`` for every page, with the reason.

Throttling and other retryable errors propagate to ``ConsumerLoop``, which rewinds the record
and retries it after a pause. Duplicate poll chains (a redelivered committed event yields the same
job id through the same ``ClientRequestToken``) are dropped by job id in memory; after a restart
they may both finish, and persist absorbs the duplicate page results.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from datetime import timedelta

from pagestream import metrics
from pagestream.events.envelope import Envelope, child_traceparent
from pagestream.events.errors import EventEncodeError
from pagestream.events.models import (
    DocumentCommittedV1,
    DocumentOcrJobSubmittedV1,
    Event,
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
from pagestream.kafka.consumer import ConsumedRecord, EventConsumer
from pagestream.kafka.producer import EventProducer
from pagestream.layout import PageLayout
from pagestream.ocr import _textract
from pagestream.ocr.errors import OcrError
from pagestream.ocr.textract_async import TextractAsyncJobs
from pagestream.settings import Settings
from pagestream.storage import ObjectStore, open_store
from pagestream.storage.s3 import parse_s3_uri
from pagestream.workers.claimcheck import check_in
from pagestream.workers.loop import ConsumerLoop

log = logging.getLogger(__name__)

GROUP = "pagestream-ocr-textract-jobs"
ENGINE = "textract"
#: how many job ids the poller remembers to drop duplicate poll chains
SEEN_JOBS_LIMIT = 10_000
#: upper bound of one backoff wait, whatever ``not_before`` says (clock skew between hosts)
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


class TextractJobPoller:
    """Polls submitted Textract jobs one non-blocking call at a time and publishes their page results."""

    def __init__(
        self, settings: Settings, *, jobs: TextractAsyncJobs | None = None, store: ObjectStore | None = None
    ):
        """Configure only; ``jobs`` may be injected (tests), else it is made on the first job."""
        self._settings = settings
        self._jobs = jobs
        self._store = store  # for claim-checked page results; opened on first use
        self._consumer = EventConsumer(
            settings, GROUP, [DOCUMENT_OCR_JOB_SUBMITTED], client_id="pagestream-ocr-textract-jobs"
        )
        self._producer = EventProducer(settings, client_id="pagestream-ocr-textract-jobs")
        self._loop = ConsumerLoop(
            self._consumer,
            self._producer,
            service="ocr-textract-jobs",
            dlq_topic=DOCUMENT_OCR_JOB_SUBMITTED_DLQ,
            expected=DocumentOcrJobSubmittedV1,
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
        self._loop.run(stop, lambda rec: self._handle(rec, stop))

    # -- one record ------------------------------------------------------------------------

    def _handle(self, rec: ConsumedRecord, stop: threading.Event) -> None:
        env = self._loop.decode(rec)
        if env is None:
            return
        job = env.data
        assert isinstance(job, DocumentOcrJobSubmittedV1)
        if self._seen.get(job.job_id, -1) >= job.poll_attempt:
            log.info(
                "duplicate poll of a Textract job dropped",
                extra={
                    "document_id": str(job.document_id),
                    "job_id": job.job_id,
                    "attempt": job.poll_attempt,
                },
            )
            self._consumer.commit([rec])
            return
        self._wait_not_before(job, stop)
        if stop.is_set():
            self._consumer.seek(rec)
            return
        self.advance(env)
        self._consumer.commit([rec])

    def advance(self, env: Envelope) -> None:
        """One poll of the job: re-enqueue it, or publish its page results; retryable errors propagate."""
        job = env.data
        assert isinstance(job, DocumentOcrJobSubmittedV1)
        try:
            jobs = self.jobs
            status = jobs.poll(job.job_id, started_at=job.submitted_at.timestamp(), now=time.time())
            if not status.finished:
                self._reenqueue(env, job, jobs)
                self._remember(job.job_id, job.poll_attempt)
                return
            if status.state == "FAILED":
                reason = "ocr_job_timeout" if status.timed_out else "ocr_job_failed"
                detail = f"Textract job {job.job_id} failed: {status.status_message or 'no reason given'}"
                self._publish_pages(env, job, {}, reason=reason, detail=detail)
            else:
                layouts = jobs.results(job.job_id)
                missing = sorted(set(range(1, job.page_count + 1)) - set(layouts))
                detail = (
                    f"Textract job {job.job_id} ({status.state}) returned no result for pages "
                    f"{missing}: {status.status_message or status.warnings or 'no reason given'}"
                )
                self._publish_pages(env, job, layouts, reason="ocr_job_page_failed", detail=detail)
        except OcrError as e:
            if e.retryable:
                raise
            # an unknown/expired job id or a permission problem: end the document visibly, never crash-loop
            self._publish_pages(
                env, job, {}, reason=e.reason, detail=f"Textract job {job.job_id}: {e}"[:2000]
            )
        self._remember(job.job_id, _FINISHED)

    def _reenqueue(self, env: Envelope, job: DocumentOcrJobSubmittedV1, jobs: TextractAsyncJobs) -> None:
        """Publish the next poll of a running job, acknowledged, with its backoff."""
        attempt = job.poll_attempt + 1
        delay = jobs.policy.next_poll_delay(attempt)
        nxt = job.model_copy(
            update={"poll_attempt": attempt, "not_before": utcnow() + timedelta(seconds=delay)}
        )
        self._producer.publish_sync(nxt, traceparent=env.traceparent, topic=DOCUMENT_OCR_JOB_SUBMITTED)
        log.info(
            "Textract job still running; polling again later",
            extra={
                "document_id": str(job.document_id),
                "job_id": job.job_id,
                "attempt": attempt,
                "delay_seconds": round(delay, 3),
                "traceparent": env.traceparent,
            },
        )

    def _publish_pages(
        self,
        env: Envelope,
        job: DocumentOcrJobSubmittedV1,
        layouts: dict[int, PageLayout],
        *,
        reason: str,
        detail: str,
    ) -> None:
        """One completed or failed event per page of the document; waits for every acknowledgement."""
        now = utcnow()
        if self._store is None:
            self._store = open_store(self._settings)
        items: list[tuple[Event, str | None, int | None]] = []
        done = 0
        for n in range(1, job.page_count + 1):
            page_id = page_id_for(job.document_id, n)
            layout = layouts.get(n)
            event: Event | None = None
            if layout is not None:
                try:
                    event = check_in(
                        PageOcrCompletedV1(
                            page_id=page_id,
                            document_id=job.document_id,
                            page_number=n,
                            page_count=job.page_count,
                            attempt=1,
                            layout=layout,
                            started_at=job.submitted_at,
                            completed_at=now,
                        ),
                        self._store,
                        self._settings.event_max_bytes,
                    )
                    items.append((event, PAGE_OCR_COMPLETED, None))
                    done += 1
                    continue
                except (
                    EventEncodeError
                ) as e:  # the page's text cannot be serialized: the page fails, saying so
                    page_reason, page_detail = e.reason, str(e)
            else:
                page_reason, page_detail = reason, detail
            items.append(
                (
                    PageOcrFailedV1(
                        page_id=page_id,
                        document_id=job.document_id,
                        page_number=n,
                        page_count=job.page_count,
                        attempts=job.poll_attempt + 1,
                        reason=page_reason,
                        detail=page_detail[:2000],
                        failed_at=now,
                    ),
                    PAGE_OCR_FAILED,
                    None,
                )
            )
        self._producer.publish_all(items, traceparent=child_traceparent(env.traceparent), timeout=120.0)
        failed = job.page_count - done
        metrics.OCR_PAGES.labels(ENGINE, "ocr", "completed").inc(done)
        if failed:
            metrics.OCR_PAGES.labels(ENGINE, "ocr", "failed").inc(failed)
        log_fn = log.info if not failed else log.error
        log_fn(
            "Textract job finished",
            extra={
                "document_id": str(job.document_id),
                "job_id": job.job_id,
                "pages_done": done,
                "pages_failed": failed,
                "reason": reason if failed else None,
                "traceparent": env.traceparent,
            },
        )

    def _remember(self, job_id: str, attempt: int) -> None:
        """Record how far a job's poll chain got, forgetting the oldest jobs past the limit."""
        self._seen[job_id] = max(attempt, self._seen.get(job_id, -1))
        self._seen.move_to_end(job_id)
        while len(self._seen) > SEEN_JOBS_LIMIT:
            self._seen.popitem(last=False)

    def _wait_not_before(self, job: DocumentOcrJobSubmittedV1, stop: threading.Event) -> None:
        """Honour the poll backoff while keeping the consumer polled (partitions paused)."""
        if job.not_before is None:
            return
        wait = (job.not_before - utcnow()).total_seconds()
        if wait <= 0:
            return
        self._consumer.pause_all()
        try:
            deadline = time.monotonic() + min(wait, MAX_WAIT_SECONDS)
            while time.monotonic() < deadline and not stop.is_set():
                early = self._consumer.poll(min(0.5, max(0.0, deadline - time.monotonic())))
                if early is not None:  # paused partitions deliver nothing; if one did, do not skip it
                    self._consumer.seek(early)
        finally:
            self._consumer.resume_all()
