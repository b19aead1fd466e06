"""DocumentSplitter: ``document.committed.v1`` → one ``page.ocr-requested.v1`` per page.

Page tasks are keyed by page id, so one big PDF spreads over partitions and workers.
The splitter is a ``Handler``: it returns the page tasks and ``ConsumerLoop`` publishes them and
commits the committed event's offset only after the broker acknowledged every one; a
redelivered document re-emits the same page ids, which persist absorbs.

A multi-page PDF in S3 whose engine is ``textract`` is not split: one asynchronous Textract job
is started for the whole document (its ``ClientRequestToken`` is the document id, so a
redelivered event gets the same job back) and ``document.ocr-job-submitted.v1`` is published
for ``TextractJobPoller``. If Textract refuses the document up front (too big, unsupported),
it is split into page tasks as usual.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import timedelta

from pagestream import metrics
from pagestream.events.envelope import Envelope
from pagestream.events.models import (
    DocumentCommittedV1,
    DocumentOcrJobSubmittedV1,
    PageOcrRequestedV1,
    page_id_for,
    utcnow,
)
from pagestream.events.topics import (
    DOCUMENT_COMMITTED,
    DOCUMENT_COMMITTED_DLQ,
    DOCUMENT_OCR_JOB_SUBMITTED,
    PAGE_OCR_REQUESTED,
)
from pagestream.kafka.consumer import EventConsumer
from pagestream.kafka.producer import EventProducer
from pagestream.ocr.errors import OcrError
from pagestream.ocr.textract_async import TextractAsyncJobs
from pagestream.settings import Settings
from pagestream.workers.loop import ConsumerLoop, Delivery, Emit, Handler
from pagestream.workers.textract_jobs import default_textract_jobs, textract_s3_location

log = logging.getLogger(__name__)
GROUP = "pagestream-ocr-splitter"


class DocumentSplitter(Handler[DocumentCommittedV1]):
    """Splits committed documents into page tasks."""

    def __init__(self, settings: Settings, *, textract_jobs: TextractAsyncJobs | None = None):
        """``textract_jobs`` may be injected (tests); else it is made, from boto3's default chain, on first use."""
        self._settings = settings
        self._textract_jobs = textract_jobs
        self._partitions: int | None = None
        self._dealt = 0
        self._producer = EventProducer(settings, client_id="pagestream-ocr-splitter")
        self._loop = ConsumerLoop(
            EventConsumer(
                settings,
                GROUP,
                [DOCUMENT_COMMITTED],
                client_id="pagestream-ocr-splitter",
                # The first hop after a commit, and one consumer per deployment: the shortest poll.
                extra={"fetch.wait.max.ms": 10},
            ),
            self._producer,
            service="ocr-splitter",
            dlq_topic=DOCUMENT_COMMITTED_DLQ,
            expected=DocumentCommittedV1,
            handler=self,
        )

    @property
    def ready(self) -> bool:
        return self._loop.healthy

    def run(self, stop: threading.Event) -> None:
        self._loop.run(stop)

    def _next_partition(self) -> int:
        """Deal page tasks round-robin over the partitions: hashing random page ids leaves some
        workers idle while others queue, which is what limits throughput on small batches."""
        if self._partitions is None:
            self._partitions = self._producer.partition_count(PAGE_OCR_REQUESTED)
        self._dealt += 1
        return self._dealt % self._partitions

    def handle(self, d: Delivery[DocumentCommittedV1]) -> list[Emit]:
        """The document's Textract job event, or its page tasks."""
        submitted = self.submit_async_job(d.envelope)
        return [submitted] if submitted is not None else self.split(d.envelope)

    def published(self, d: Delivery[DocumentCommittedV1], events: Sequence[Emit]) -> None:
        metrics.DOCUMENTS_SPLIT.inc()
        doc = d.task
        if events and isinstance(events[0].event, DocumentOcrJobSubmittedV1):
            log.info(
                "Textract job submitted",
                extra={
                    "document_id": str(doc.document_id),
                    "job_id": events[0].event.job_id,
                    "pages": doc.page_count,
                    "traceparent": d.envelope.traceparent,
                },
            )
        else:
            log.info(
                "document split",
                extra={
                    "document_id": str(doc.document_id),
                    "pages": doc.page_count,
                    "traceparent": d.envelope.traceparent,
                },
            )

    def submit_async_job(self, env: Envelope) -> Emit | None:
        """Start a Textract job for a multi-page S3 PDF: its submitted event; None when the document gets page tasks."""
        doc = env.expect(DocumentCommittedV1)
        location = textract_s3_location(doc, self._settings.ocr_engine)
        if location is None:
            return None
        try:
            if self._textract_jobs is None:
                self._textract_jobs = default_textract_jobs()  # no region/credentials: page tasks say so
            jobs = self._textract_jobs
            job_id = jobs.start(
                *location,
                client_token=doc.document_id.hex,
                size_bytes=doc.size_bytes,
                page_count=doc.page_count,
                media_type=doc.media_type,
            )
        except OcrError as e:
            if e.retryable:
                raise  # throttled or unavailable: the loop rewinds and retries this document
            log.warning(
                "Textract refused the async job; splitting into page tasks instead",
                extra={"document_id": str(doc.document_id), "reason": e.reason, "error": str(e)},
            )
            return None
        now = utcnow()
        submitted = DocumentOcrJobSubmittedV1(
            document_id=doc.document_id,
            engine="textract",
            job_id=job_id,
            storage_uri=doc.storage_uri,
            page_count=doc.page_count,
            submitted_at=now,
            poll_attempt=0,
            not_before=now + timedelta(seconds=jobs.policy.next_poll_delay(0)),
        )
        return Emit(submitted, DOCUMENT_OCR_JOB_SUBMITTED)

    def split(self, env: Envelope) -> list[Emit]:
        """Every page task of the document, dealt over the partitions."""
        doc = env.expect(DocumentCommittedV1)
        return [
            Emit(
                PageOcrRequestedV1(
                    page_id=page_id_for(doc.document_id, n),
                    document_id=doc.document_id,
                    page_number=n,
                    page_count=doc.page_count,
                    storage_uri=doc.storage_uri,
                    media_type=doc.media_type,
                    sha256=doc.sha256,
                    options=doc.options,
                ),
                PAGE_OCR_REQUESTED,
                self._next_partition(),
            )
            for n in range(1, doc.page_count + 1)
        ]
