"""DocumentSplitter: ``document.committed.v1`` → one ``page.ocr-requested.v1`` per page.

Page tasks are keyed by page id, so one big PDF spreads over partitions and workers.
The committed event's offset is committed only after the broker acknowledged every page
task; a redelivered document re-emits the same page ids, which persist absorbs.
"""

from __future__ import annotations

import logging
import threading

from pagestream import metrics
from pagestream.errors import PagestreamError
from pagestream.events.envelope import Envelope, child_traceparent, decode_record
from pagestream.events.errors import EventDecodeError
from pagestream.events.models import DocumentCommittedV1, PageOcrRequestedV1, page_id_for
from pagestream.events.topics import DOCUMENT_COMMITTED, DOCUMENT_COMMITTED_DLQ, PAGE_OCR_REQUESTED
from pagestream.kafka.consumer import ConsumedRecord, EventConsumer
from pagestream.kafka.dlq import dead_letter
from pagestream.kafka.producer import EventProducer
from pagestream.settings import Settings

log = logging.getLogger(__name__)
GROUP = "pagestream-ocr-splitter"


class DocumentSplitter:
    """Splits committed documents into page tasks."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._consumer = EventConsumer(settings, GROUP, [DOCUMENT_COMMITTED], client_id="pagestream-ocr-splitter")
        self._producer = EventProducer(settings, client_id="pagestream-ocr-splitter")
        self.healthy = False

    @property
    def ready(self) -> bool:
        return self.healthy

    def run(self, stop: threading.Event) -> None:
        self._consumer.start()
        self._producer.start()
        self.healthy = True
        try:
            while not stop.is_set():
                rec = None
                try:
                    rec = self._consumer.poll(0.5)
                    if rec is not None:
                        self._handle(rec)
                    self.healthy = True
                except PagestreamError as e:
                    if not e.retryable:
                        raise
                    if rec is not None:
                        self._consumer.seek(rec)  # deliver it again: nothing is skipped
                    self.healthy = False
                    metrics.ERRORS.labels("ocr-splitter", e.reason).inc()
                    log.warning("splitter: transient failure, retrying: %s", e)
                    stop.wait(1.0)
        finally:
            self._producer.close(10)
            self._consumer.close()

    def _handle(self, rec: ConsumedRecord) -> None:
        try:
            env = decode_record(rec.value, rec.headers)
            if not isinstance(env.data, DocumentCommittedV1):
                raise EventDecodeError(f"unexpected {env.type} on {rec.topic}")
        except EventDecodeError as e:
            log.error("dead-lettering undecodable record: %s", e)
            dead_letter(self._producer, rec, DOCUMENT_COMMITTED_DLQ, e.reason, str(e))
            self._consumer.commit([rec])
            return
        self.split(env)
        self._consumer.commit([rec])
        metrics.DOCUMENTS_SPLIT.inc()
        metrics.EVENTS_CONSUMED.labels("ocr-splitter", env.type).inc()

    def split(self, env: Envelope) -> None:
        """Publish every page task of the document and wait for all acknowledgements."""
        doc = env.data
        assert isinstance(doc, DocumentCommittedV1)
        errors: list[object] = []
        acked = [0]

        def on_delivery(err: object, _: object) -> None:
            if err is not None:
                errors.append(err)
            acked[0] += 1

        for n in range(1, doc.page_count + 1):
            task = PageOcrRequestedV1(
                page_id=page_id_for(doc.document_id, n), document_id=doc.document_id, page_number=n,
                page_count=doc.page_count, storage_uri=doc.storage_uri, media_type=doc.media_type,
                sha256=doc.sha256, options=doc.options,
            )
            self._producer.publish(task, traceparent=child_traceparent(env.traceparent), topic=PAGE_OCR_REQUESTED,
                                   on_delivery=on_delivery)
        if not self._producer.wait_for(lambda: acked[0] >= doc.page_count, 120.0) or errors:
            from pagestream.kafka.errors import BrokerUnavailableError

            raise BrokerUnavailableError(f"page tasks of {doc.document_id} not acknowledged: {errors[:1]}")
        log.info("document split", extra={"document_id": str(doc.document_id), "pages": doc.page_count,
                                          "traceparent": env.traceparent})
