"""PageWorker: ``page.ocr-requested.v1`` (and its retry topic) → ``page.ocr-completed.v1`` /
``page.ocr-failed.v1``.

The worker is a ``Handler``: a page task in, its completed event out (or a classified error).
``ConsumerLoop`` does the rest, the same way for every consumer: before the engine runs it counts
the attempt in PostgreSQL (``pagestream.db.attempts``: a worker killed mid-page still used up an
attempt, and a page that keeps killing its worker fails with ``worker_died`` once they are spent)
and skips a page already stored as completed (a reconciler re-drive or a redelivery); a retry
whose backoff has not passed is put back and only its partition paused until then; a result too
big for the broker is claim-checked (``pagestream.workers.claimcheck``); the task's offset is
committed only after its result was acknowledged by the broker. Retryable failures go to the
retry topic with backoff (bounded attempts); the rest — and exhausted retries — become
``page.ocr-failed.v1`` plus a DLQ record, so no page blocks its partition.

One worker = one process with one long-lived engine. A page is recognized in a helper
thread with a timeout shorter than ``max.poll.interval.ms`` (set from it), so a long page
never costs the worker its group membership, and librdkafka prefetches the next tasks
meanwhile (pausing partitions instead cost ~0.8 s of refetching per page on Tansu). A page
that overruns its timeout ends the worker process (its engine may be wedged); the ocr service
starts a fresh one.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from pagestream import metrics
from pagestream.db import Engine, make_engine
from pagestream.db.attempts import AttemptStart
from pagestream.errors import ConfigurationError, PagestreamError
from pagestream.events.models import PageOcrCompletedV1, PageOcrFailedV1, PageOcrRequestedV1, utcnow
from pagestream.events.topics import (
    PAGE_OCR_COMPLETED,
    PAGE_OCR_FAILED,
    PAGE_OCR_REQUESTED,
    PAGE_OCR_REQUESTED_DLQ,
    PAGE_OCR_REQUESTED_RETRY,
)
from pagestream.exitcodes import ExitCode
from pagestream.kafka.consumer import EventConsumer
from pagestream.kafka.producer import EventProducer
from pagestream.layout import PageLayout
from pagestream.ocr.errors import EngineConfigurationError, OcrError, PageTimeoutError
from pagestream.ocr.factory import make_engine as make_ocr_engine
from pagestream.ocr.pipeline import PageProcessor
from pagestream.retry import capped_exponential
from pagestream.settings import Settings
from pagestream.storage import ObjectStore, open_store
from pagestream.workers.claimcheck import ClaimCheck
from pagestream.workers.loop import AttemptLedger, ConsumerLoop, Delivery, Emit, Handler, RetryTopic

log = logging.getLogger(__name__)


class UnexpectedPageError(OcrError):
    """An error no adapter classified; retried (bounded), then the page fails with it."""

    retryable = True
    reason = "unexpected_error"


GROUP = "pagestream-ocr-worker"
#: longest a retry waits for its ``not_before`` (clock skew between hosts cannot hold it longer)
MAX_DEFER_SECONDS = 60.0


def retry_delay(attempt: int) -> float:
    """Backoff before attempt ``attempt + 1``: 2 s, 8 s, 30 s cap."""
    return capped_exponential(attempt, initial=2.0, factor=4.0, maximum=30.0)


class PageWorker(Handler[PageOcrRequestedV1]):
    """Recognizes page tasks one at a time with one engine per configured engine name.

    A ``Handler``: it turns a page task into its ``page.ocr-completed.v1`` (or says how the page
    failed); ``ConsumerLoop`` decodes, waits out retry backoffs, counts the attempt, claim-checks
    and publishes the result, routes failures to the retry topic or to ``page.ocr-failed.v1`` plus
    the DLQ, and commits."""

    dead_letter_failures = True  # a failed page's task is kept in the DLQ, redrivable as it was

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
            handler=self,
            retry=RetryTopic(PAGE_OCR_REQUESTED_RETRY, settings.ocr_max_attempts, retry_delay),
            ledger=AttemptLedger(
                lambda: self.db,
                worker=self._name,
                max_attempts=settings.ocr_max_attempts,
                exhausted=self._worker_died,
            ),
            claim_check=ClaimCheck(lambda: self._store, settings.event_max_bytes),
            max_defer_seconds=MAX_DEFER_SECONDS,
        )
        self._processors: dict[str, PageProcessor] = {}
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ocr")
        self._cache: tuple[str, bytes] | None = None  # (uri, bytes) of the last document read
        self.wedged = False
        self._last_done = 0.0  # when the previous page's result was acknowledged (idle-time logging)
        self._t_start = self._t_done = 0.0  # the current page: recognition started, result built

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

    def _task_processor(self, engine_name: str) -> PageProcessor:
        """The processor a task asks for. The default engine was built at start (a bad setting ends
        the process there); an engine only a task names and this deployment cannot build fails that
        page with the reason, never the process: a restart would read the same task again."""
        if engine_name == self._s.ocr_engine:
            return self._processor(engine_name)
        try:
            return self._processor(engine_name)
        except ConfigurationError as e:
            raise EngineConfigurationError(f"engine {engine_name!r} cannot run here: {e}") from e

    def run(self, stop: threading.Event) -> None:
        self._processor(self._s.ocr_engine)  # fail fast on a misconfigured default engine
        try:
            self._loop.run(stop, keep_going=lambda: not self.wedged)
        finally:
            if self.wedged:
                log.error("a page overran its timeout; ending this worker process so a fresh one takes over")
            else:
                for p in self._processors.values():
                    p.close()
                self._pool.shutdown(wait=False)

    # -- one page task (Handler) ------------------------------------------------------------

    def handle(self, d: Delivery[PageOcrRequestedV1]) -> list[Emit]:
        """Recognize the page: its completed event. Any error not classified yet is retryable."""
        task = d.task
        started = utcnow()
        self._t_start = time.perf_counter()
        try:
            layout = self._recognize(task)
        except PagestreamError:
            raise
        except Exception as e:  # an engine/library bug must not crash-loop the partition
            log.exception("unexpected error recognizing a page")
            raise UnexpectedPageError(f"unexpected {type(e).__name__}: {e}") from e
        self._t_done = time.perf_counter()
        done = PageOcrCompletedV1(
            page_id=task.page_id,
            document_id=task.document_id,
            page_number=task.page_number,
            page_count=task.page_count,
            attempt=d.attempt,
            layout=layout,
            started_at=started,
            completed_at=utcnow(),
        )
        return [Emit(done, PAGE_OCR_COMPLETED)]

    def failed(self, d: Delivery[PageOcrRequestedV1], error: PagestreamError) -> list[Emit]:
        """``page.ocr-failed.v1`` with the reason: the page counts toward its document."""
        task = d.task
        failed = PageOcrFailedV1(
            page_id=task.page_id,
            document_id=task.document_id,
            page_number=task.page_number,
            page_count=task.page_count,
            attempts=d.attempt,
            reason=error.reason,
            detail=_printable(str(error))[:2000],
            failed_at=utcnow(),
        )
        return [Emit(failed, PAGE_OCR_FAILED)]

    def retrying(self, d: Delivery[PageOcrRequestedV1], error: PagestreamError, delay: float) -> None:
        metrics.OCR_RETRIES.labels(error.reason).inc()
        metrics.OCR_PAGES.labels(d.task.options.engine or self._s.ocr_engine, "ocr", "retried").inc()

    def published(self, d: Delivery[PageOcrRequestedV1], events: Sequence[Emit]) -> None:
        """Metrics and the page's log line, once its outcome is durable."""
        task = d.task
        t_acked = time.perf_counter()
        for emit in events:
            event = emit.event
            if isinstance(event, PageOcrFailedV1):
                metrics.OCR_PAGES.labels(task.options.engine or self._s.ocr_engine, "ocr", "failed").inc()
                log.error(
                    "page failed",
                    extra={
                        "document_id": str(task.document_id),
                        "page": task.page_number,
                        "attempts": event.attempts,
                        "reason": event.reason,
                        "error": event.detail,
                    },
                )
            elif isinstance(event, PageOcrCompletedV1):
                layout = event.layout
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
                        "worker_seconds": round(self._t_done - self._t_start, 3),
                        "publish_seconds": round(t_acked - self._t_done, 3),
                        "idle_seconds": round(self._t_start - self._last_done, 3)
                        if self._last_done
                        else None,
                        "claim_checked": event.layout_uri is not None,
                        "traceparent": d.envelope.traceparent,
                    },
                )
        self._last_done = t_acked

    def _worker_died(self, task: PageOcrRequestedV1, start: AttemptStart) -> PagestreamError:
        return WorkerDiedError(
            f"an OCR worker died (killed, out of memory or crashed) while reading page {task.page_number}: "
            f"{start.attempts - 1} attempts started, none finished (limits: {self._s.ocr_max_attempts} attempts, "
            f"{self._s.ocr_page_timeout_seconds:.0f} s per page, {self._s.ocr_max_page_pixels:,} pixels per page); "
            "the page was given up. Split or downscale it and resubmit, or raise the limits"
        )

    def _read(self, uri: str) -> bytes:
        if self._cache and self._cache[0] == uri:
            return self._cache[1]
        data = self._store.get(uri)
        self._cache = (uri, data)
        return data

    def _recognize(self, task: PageOcrRequestedV1) -> PageLayout:
        data = self._read(task.storage_uri)
        processor = self._task_processor(task.options.engine or self._s.ocr_engine)
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
