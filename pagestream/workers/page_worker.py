"""PageWorker: ``page.ocr-requested.v1`` (and its retry topic) → ``page.ocr-completed.v1`` /
``page.ocr-failed.v1``.

Before the engine runs, the attempt is counted in PostgreSQL (``pagestream.db.attempts``): a
worker killed mid-page (OOM, segfault) still used up an attempt, and a page that keeps killing
its worker is failed with that reason once the attempts are spent. A page already stored as
completed (a reconciler re-drive or a redelivery) is skipped. A retry whose backoff has not
passed is put back and its partition paused until then, while other partitions keep flowing.
A result too big for the broker is claim-checked (``pagestream.workers.claimcheck``).

One worker = one process with one long-lived engine. A page is recognized in a helper
thread with a timeout shorter than ``max.poll.interval.ms`` (set from it), so a long page
never costs the worker its group membership, and librdkafka prefetches the next tasks
meanwhile (pausing partitions instead cost ~0.8 s of refetching per page on Tansu). The
task's offset is committed only after its result was acknowledged by the broker. Failures are classified by error class: retryable
ones go to the retry topic with backoff (bounded attempts), the rest — and exhausted
retries — become ``page.ocr-failed.v1`` plus a DLQ record, so no page blocks its partition.
A page that overruns its timeout ends the worker process (its engine may be wedged); the
ocr service starts a fresh one.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import timedelta
from typing import Any

from pagestream import metrics
from pagestream.db import Engine, make_engine
from pagestream.db.attempts import start_attempt
from pagestream.db.errors import DatabaseError
from pagestream.errors import ConfigurationError, PagestreamError
from pagestream.events.envelope import Envelope, child_traceparent
from pagestream.events.errors import EventEncodeError
from pagestream.events.models import PageOcrCompletedV1, PageOcrFailedV1, PageOcrRequestedV1, utcnow
from pagestream.events.topics import (
    PAGE_OCR_COMPLETED,
    PAGE_OCR_FAILED,
    PAGE_OCR_REQUESTED,
    PAGE_OCR_REQUESTED_DLQ,
    PAGE_OCR_REQUESTED_RETRY,
)
from pagestream.exitcodes import ExitCode
from pagestream.kafka.consumer import ConsumedRecord, EventConsumer
from pagestream.kafka.dlq import dead_letter
from pagestream.kafka.errors import RecordRejectedError
from pagestream.kafka.producer import EventProducer
from pagestream.layout import PageLayout
from pagestream.ocr.errors import OcrError, PageTimeoutError
from pagestream.ocr.factory import make_engine as make_ocr_engine
from pagestream.ocr.pipeline import PageProcessor
from pagestream.retry import capped_exponential
from pagestream.settings import Settings
from pagestream.storage import ObjectStore, open_store
from pagestream.workers.claimcheck import check_in
from pagestream.workers.loop import ConsumerLoop

log = logging.getLogger(__name__)


class UnexpectedPageError(OcrError):
    """An error no adapter classified; retried (bounded), then the page fails with it."""

    retryable = True
    reason = "unexpected_error"


GROUP = "pagestream-ocr-worker"


def retry_delay(attempt: int) -> float:
    """Backoff before attempt ``attempt + 1``: 2 s, 8 s, 30 s cap."""
    return capped_exponential(attempt, initial=2.0, factor=4.0, maximum=30.0)


class PageWorker:
    """Recognizes page tasks one at a time with one engine per configured engine name."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: ObjectStore | None = None,
        worker_id: int = 0,
        db: Engine | None = None,
    ):
        self._s = settings
        self._store = store or open_store(settings)
        self._db = db
        self._name = f"{os.uname().nodename}/{os.getpid()}/ocr-{worker_id}"
        self._consumer = EventConsumer(
            settings,
            GROUP,
            [PAGE_OCR_REQUESTED, PAGE_OCR_REQUESTED_RETRY],
            client_id=f"pagestream-ocr-{worker_id}",
            # roundrobin: the splitter deals page tasks over partitions in turn, and this
            # assignor hands consecutive partitions to different workers, so pages alternate
            # A page can never outlast max.poll.interval.ms: past its timeout the worker
            # process ends. So the consumer is not polled (or paused) while a page is in
            # flight, and the next records are prefetched meanwhile.
            extra={
                "max.poll.interval.ms": int(max(300.0, 2 * settings.ocr_page_timeout_seconds + 60) * 1000),
                "partition.assignment.strategy": "roundrobin",
            },
        )
        self._producer = EventProducer(settings, client_id=f"pagestream-ocr-{worker_id}")
        self._loop = ConsumerLoop(
            self._consumer,
            self._producer,
            service="ocr-worker",
            dlq_topic=PAGE_OCR_REQUESTED_DLQ,
            expected=PageOcrRequestedV1,
        )
        self._processors: dict[str, PageProcessor] = {}
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ocr")
        self._cache: tuple[str, bytes] | None = None  # (uri, bytes) of the last document read
        self._deferred: dict[tuple[str, int], float] = {}  # paused partition -> monotonic resume time
        self.wedged = False
        self._last_done = 0.0  # when the previous record's effect was committed (idle-time logging)

    @property
    def db(self) -> Engine:
        if self._db is None:
            self._db = make_engine(
                self._s.database_dsn(), pool_size=1, application_name="pagestream-ocr-worker"
            )
        return self._db

    def _processor(self, engine_name: str) -> PageProcessor:
        p = self._processors.get(engine_name)
        if p is None:
            p = PageProcessor.from_settings(make_ocr_engine(engine_name, self._s), self._s)
            p.start()
            self._processors[engine_name] = p
        return p

    def run(self, stop: threading.Event) -> None:
        self._processor(self._s.ocr_engine)  # fail fast on a misconfigured default engine
        try:
            self._loop.run(
                stop,
                lambda rec: self._handle(rec, stop),
                keep_going=lambda: not self.wedged,
                tick=self._resume_due,
            )
        finally:
            if not self.wedged:
                for p in self._processors.values():
                    p.close()
                self._pool.shutdown(wait=False)

    # -- retry backoff without blocking other partitions -------------------------------------

    def _defer(self, rec: ConsumedRecord, seconds: float) -> None:
        """Put ``rec`` back and pause its partition for ``seconds``; nothing else is held up."""
        self._consumer.seek(rec)
        self._consumer.pause(rec)
        self._deferred[(rec.topic, rec.partition)] = time.monotonic() + seconds
        log.info(
            "retry waits out its backoff; its partition is paused",
            extra={
                "topic": rec.topic,
                "partition": rec.partition,
                "offset": rec.offset,
                "seconds": round(seconds, 2),
            },
        )

    def _resume_due(self) -> None:
        if not self._deferred:
            return
        now = time.monotonic()
        for (topic, partition), at in list(self._deferred.items()):
            if at <= now:
                del self._deferred[(topic, partition)]
                self._consumer.resume_partition(topic, partition)
                log.info("backoff over; partition resumed", extra={"topic": topic, "partition": partition})

    # -- one record ------------------------------------------------------------------------

    def _handle(self, rec: ConsumedRecord, stop: threading.Event) -> None:
        env = self._loop.decode(rec)
        if env is None:
            return
        task = env.data
        assert isinstance(task, PageOcrRequestedV1)
        if task.not_before is not None:
            wait = (task.not_before - utcnow()).total_seconds()
            if wait > 0:
                self._defer(rec, min(wait, 60.0))
                return
        try:
            ledger = start_attempt(
                self.db,
                page_id=task.page_id,
                document_id=task.document_id,
                page_number=task.page_number,
                worker=self._name,
            )
        except DatabaseError as e:
            if e.retryable:
                raise
            # not this page's fault: end the process rather than fail every page
            raise ConfigurationError(
                f"the page attempt ledger is unusable ({e}); run `pagestream migrate`"
            ) from e
        if ledger.already_completed:
            log.info(
                "page already completed; skipping the task",
                extra={
                    "document_id": str(task.document_id),
                    "page": task.page_number,
                    "attempts": ledger.attempts,
                },
            )
            metrics.DUPLICATES_ABSORBED.labels("ocr-worker").inc()
            self._consumer.commit([rec])
            return
        attempt = max(task.attempt, ledger.attempts)
        if ledger.attempts > max(task.attempt, self._s.ocr_max_attempts):
            self._publish_failed(
                rec,
                env,
                attempt,
                WorkerDiedError(
                    f"an OCR worker died (killed, out of memory or crashed) while reading page {task.page_number}: "
                    f"{ledger.attempts - 1} attempts started, none finished (limits: {self._s.ocr_max_attempts} attempts, "
                    f"{self._s.ocr_page_timeout_seconds:.0f} s per page, {self._s.ocr_max_page_pixels:,} pixels per page); "
                    "the page was given up. Split or downscale it and resubmit, or raise the limits"
                ),
            )
            self._consumer.commit([rec])
            return
        started = utcnow()
        t_start = time.perf_counter()
        try:
            layout = self._recognize(task)
        except PagestreamError as e:
            self._fail_or_retry(rec, env, e, attempt)
        except Exception as e:  # an engine/library bug must not crash-loop the partition
            log.exception("unexpected error recognizing a page")
            self._fail_or_retry(rec, env, UnexpectedPageError(f"unexpected {type(e).__name__}: {e}"), attempt)
        else:
            done = PageOcrCompletedV1(
                page_id=task.page_id,
                document_id=task.document_id,
                page_number=task.page_number,
                page_count=task.page_count,
                attempt=attempt,
                layout=layout,
                started_at=started,
                completed_at=utcnow(),
            )
            t_done = time.perf_counter()
            try:
                done = check_in(done, self._store, self._s.event_max_bytes)
                self._producer.publish_sync(
                    done, traceparent=child_traceparent(env.traceparent), topic=PAGE_OCR_COMPLETED
                )
            except (EventEncodeError, RecordRejectedError) as e:
                # the result itself cannot travel (unserializable text, refused by the broker): say so
                self._fail_or_retry(rec, env, e, attempt)
            else:
                t_acked = time.perf_counter()
                metrics.OCR_PAGES.labels(layout.engine, layout.source, "completed").inc()
                metrics.RENDER_SECONDS.observe(layout.render_seconds)
                if layout.source == "ocr":
                    metrics.OCR_SECONDS.labels(layout.engine).observe(layout.ocr_seconds)
                log.info(
                    "page done",
                    extra={
                        "document_id": str(task.document_id),
                        "page": task.page_number,
                        "source": layout.source,
                        "seconds": round(layout.render_seconds + layout.ocr_seconds, 3),
                        "worker_seconds": round(t_done - t_start, 3),
                        "publish_seconds": round(t_acked - t_done, 3),
                        "idle_seconds": round(t_start - self._last_done, 3) if self._last_done else None,
                        "claim_checked": done.layout_uri is not None,
                        "traceparent": env.traceparent,
                    },
                )
        self._consumer.commit([rec])
        self._last_done = time.perf_counter()
        if self.wedged:
            log.error("a page overran its timeout; ending this worker process so a fresh one takes over")

    def _read(self, uri: str) -> bytes:
        if self._cache and self._cache[0] == uri:
            return self._cache[1]
        data = self._store.get(uri)
        self._cache = (uri, data)
        return data

    def _recognize(self, task: PageOcrRequestedV1) -> PageLayout:
        data = self._read(task.storage_uri)
        processor = self._processor(task.options.engine or self._s.ocr_engine)
        options: dict[str, Any] = {"force_ocr": task.options.force_ocr}
        if task.options.languages:
            options["languages"] = task.options.languages
        metrics.OCR_IN_FLIGHT.inc()
        fut: Future[PageLayout] = self._pool.submit(
            processor.process,
            data,
            task.media_type,
            task.page_number,
            **options,
        )
        try:
            return fut.result(timeout=self._s.ocr_page_timeout_seconds)
        except FutureTimeout:
            self.wedged = True
            raise PageTimeoutError(
                f"page {task.page_number} took longer than {self._s.ocr_page_timeout_seconds:.0f} s"
            ) from None
        finally:
            metrics.OCR_IN_FLIGHT.dec()

    def _fail_or_retry(self, rec: ConsumedRecord, env: Envelope, e: PagestreamError, attempt: int) -> None:
        task = env.data
        assert isinstance(task, PageOcrRequestedV1)
        engine = task.options.engine or self._s.ocr_engine
        if e.retryable and attempt < self._s.ocr_max_attempts:
            delay = retry_delay(attempt)
            retry = task.model_copy(
                update={
                    "attempt": attempt + 1,
                    "not_before": utcnow() + timedelta(seconds=delay),
                    "last_error": f"{e.reason}: {e}"[:500],
                }
            )
            self._producer.publish_sync(retry, traceparent=env.traceparent, topic=PAGE_OCR_REQUESTED_RETRY)
            metrics.OCR_RETRIES.labels(e.reason).inc()
            metrics.OCR_PAGES.labels(engine, "ocr", "retried").inc()
            log.warning(
                "page will be retried",
                extra={
                    "document_id": str(task.document_id),
                    "page": task.page_number,
                    "attempt": attempt,
                    "reason": e.reason,
                    "error": str(e),
                },
            )
            return
        self._publish_failed(rec, env, attempt, e)

    def _publish_failed(self, rec: ConsumedRecord, env: Envelope, attempt: int, e: PagestreamError) -> None:
        task = env.data
        assert isinstance(task, PageOcrRequestedV1)
        engine = task.options.engine or self._s.ocr_engine
        failed = PageOcrFailedV1(
            page_id=task.page_id,
            document_id=task.document_id,
            page_number=task.page_number,
            page_count=task.page_count,
            attempts=attempt,
            reason=e.reason,
            detail=_printable(str(e))[:2000],
            failed_at=utcnow(),
        )
        self._producer.publish_sync(
            failed, traceparent=child_traceparent(env.traceparent), topic=PAGE_OCR_FAILED
        )
        dead_letter(self._producer, rec, PAGE_OCR_REQUESTED_DLQ, e.reason, str(e), error=e, attempts=attempt)
        metrics.OCR_PAGES.labels(engine, "ocr", "failed").inc()
        log.error(
            "page failed",
            extra={
                "document_id": str(task.document_id),
                "page": task.page_number,
                "attempts": attempt,
                "reason": e.reason,
                "error": str(e),
            },
        )


class WorkerDiedError(OcrError):
    """The page's attempts were used up by workers that never finished it (killed mid-page)."""

    reason = "worker_died"


def _printable(text: str) -> str:
    """``text`` safe to serialize and store: no NUL, no lone surrogates."""
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def worker_process_main(settings: Settings, worker_id: int) -> None:
    """Entry point of one OCR worker process (spawned by the ocr service)."""
    import signal

    from pagestream.logging import setup_logging

    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    setup_logging(f"ocr-worker-{worker_id}", settings.log_level)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    worker = PageWorker(settings, worker_id=worker_id)
    worker.run(stop)
    if worker.wedged:
        os._exit(ExitCode.WEDGED)
