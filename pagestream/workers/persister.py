"""The persist app (faust-streaming): page results → ``pages`` rows and document progress.

Batches of up to ``persist_batch_size`` events are written in ONE transaction, run in a thread
so the event loop keeps heartbeating. A batch is flushed as soon as it is full *or* nothing
more is waiting to be added (``take_until_idle``): a lone page result is written the moment it
arrives instead of waiting out a batch timer, and under load the results that arrive while one
batch is being written form the next (group commit). Redelivered events
change nothing (``processed_events`` and the (document_id, page_number) upsert).

faust acknowledges a ``take_events`` batch in a ``finally`` block — even when the agent
body raised. So the body never raises with an unpersisted batch: database and object-store
outages are retried in place (with backoff). A batch the database refuses for what it holds
is split until the one record at fault is found; that record is dead-lettered and its page
recorded as ``failed`` with the reason, so it still counts toward its document and never
crash-loops persist. An undecodable record is dead-lettered too, and when its document and page
can still be read from it, the page is recorded as failed. Only a failure of that machinery
itself ends the process, before any offset of the batch can be committed.

Claim-checked page results (``layout_uri``) are read back from the object store here.
Dedupe records older than ``processed_events_retention_days`` are pruned every hour.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.utils.futures import notify

from pagestream import metrics
from pagestream.db import make_engine, ping
from pagestream.db.errors import DatabaseError, DataRejectedError
from pagestream.db.progress import PageOutcome, apply_page_outcomes, purge_processed_events
from pagestream.errors import PagestreamError
from pagestream.events.envelope import decode_record, header_map
from pagestream.events.errors import EventDecodeError
from pagestream.events.models import PageOcrCompletedV1, PageOcrFailedV1, utcnow
from pagestream.events.topics import PAGE_OCR_COMPLETED, PAGE_OCR_FAILED, PERSIST_DLQ
from pagestream.exitcodes import ExitCode
from pagestream.kafka.dlq import dead_letter_headers
from pagestream.retry import Backoff
from pagestream.runtime import die
from pagestream.settings import Settings
from pagestream.storage import ObjectStore, open_store
from pagestream.workers.claimcheck import ClaimCheckError, check_out

log = logging.getLogger(__name__)
GROUP = "pagestream-persist"
MAX_RECORDED_ATTEMPTS = 1_000_000  # a stand-in failure must itself be storable
#: ids of the failure records persist writes itself are derived from the original event's
_FAILURE_NAMESPACE = uuid.UUID("0f5b8a3e-2c4d-4f6a-9b1e-7d3c5a9e2f10")
#: the long poll of persist's fetches. faust hard-codes aiokafka's ``fetch_max_wait_ms`` to 1,500, and
#: Tansu answers a waiting fetch on its own schedule rather than the moment a record lands (measured:
#: produce → aiokafka consumer p50 118 ms at 1,500, 8 ms at 50): persist is the last hop before a
#: document is ``completed``, so it polls briefly. The price, idle, over persist's 24 partitions: 30 ms/s
#: of broker CPU and 15 ms/s of persist's own (3 and 3 at 1,500; 18 and 8 at 100) — the one hop where
#: aiokafka's long poll costs more than librdkafka's (``pagestream/kafka/consumer.py``).
FETCH_MAX_WAIT_MS = 50


class UnstorableResultError(PagestreamError):
    """The database refused a page result for what it holds; the page is recorded as failed."""

    reason = "unstorable_result"


def failed_outcome(o: PageOutcome, reason: str, detail: str) -> PageOutcome:
    """A ``page.ocr-failed.v1`` outcome standing in for a page result that cannot be stored."""
    e = o.event
    return PageOutcome(
        uuid.uuid5(_FAILURE_NAMESPACE, f"{reason}/{o.event_id}"),
        PageOcrFailedV1(
            page_id=e.page_id,
            document_id=e.document_id,
            page_number=e.page_number,
            page_count=e.page_count,
            attempts=min(
                MAX_RECORDED_ATTEMPTS, max(1, e.attempt if isinstance(e, PageOcrCompletedV1) else e.attempts)
            ),
            reason=reason,
            detail=detail[:2000],
            failed_at=utcnow(),
        ),
        o.traceparent,
    )


def salvage_failure(
    value: bytes | None, headers: list[tuple[str, bytes]], error: EventDecodeError
) -> PageOutcome | None:
    """For an undecodable page result, a failed-page outcome when its ids can still be read."""
    try:
        data = json.loads(value or b"")
        ce_id = header_map(headers).get("ce_id") or ""
        failed = PageOcrFailedV1(
            page_id=uuid.UUID(str(data["page_id"])),
            document_id=uuid.UUID(str(data["document_id"])),
            page_number=int(data["page_number"]),
            page_count=int(data["page_count"]),
            attempts=int(data.get("attempt") or data.get("attempts") or 1),
            reason="undecodable_result",
            detail=f"the page result could not be read: {error}"[:2000],
            failed_at=utcnow(),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return PageOutcome(uuid.uuid5(_FAILURE_NAMESPACE, f"undecodable/{ce_id or value!r}"), failed, None)


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by start(), which builds the fetcher
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class PersistApp(faust.App):
    """faust's app with the aiokafka transport whose consumer long-polls ``FETCH_MAX_WAIT_MS``
    (faust offers no setting for it)."""

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)


class PersistState:
    """What the health endpoint reports."""

    def __init__(self) -> None:
        self.db_ok = False
        self.agent_running = False
        self.batches = 0
        self.duplicates = 0

    @property
    def ready(self) -> bool:
        return self.db_ok and self.agent_running


async def take_until_idle(stream: Any, max_: int, within: float) -> AsyncIterator[list[Any]]:
    """Batches of the stream's events: flushed when ``max_`` are buffered or when no further event is
    waiting in the stream's channel, whichever comes first; ``within`` seconds bounds the wait anyway.

    faust's ``take_events`` flushes only when full or on a ``within`` timer, so at light load every
    page result sat out the rest of the timer (100 ms on average at 0.2 s). This is the same
    machinery (the events are acknowledged after the body ran, as there) with one more flush
    condition: the channel queue is empty, i.e. the batch holds everything fetched so far.
    """
    buffer: list[Any] = []
    flush = asyncio.Event()
    consumed = asyncio.Event()
    consuming: asyncio.Future[None] | None = None
    queue = stream.channel.queue

    async def add_to_buffer(value: Any) -> Any:
        nonlocal consuming
        if consuming is not None:  # a batch is being handed out: wait until it is done
            try:
                await consuming
            finally:
                consuming = None
        event = stream.current_event
        if event is None:
            raise RuntimeError("take_until_idle found no current event")
        buffer.append(event)
        if len(buffer) >= max_:
            flush.set()
            consumed.clear()
            await stream.wait(consumed)  # never hand out more than max_ events
        elif queue.empty():
            flush.set()
        return value

    enable_acks = stream.enable_acks
    stream.enable_acks = False  # acknowledged below, after the body ran
    stream.add_processor(add_to_buffer)
    stream._enable_passive(aiter(stream.channel))
    try:
        while not stream.should_stop:
            await stream.wait_for_stopped(flush, timeout=within)
            flush.clear()
            if not buffer:
                continue
            consuming = asyncio.get_running_loop().create_future()
            try:
                yield list(buffer)
            finally:
                events = list(buffer)
                buffer.clear()
                for event in events:
                    await stream.ack(event)
                notify(consuming)
                consumed.set()
    finally:
        stream.enable_acks = enable_acks
        stream._processors.remove(add_to_buffer)


def _headers(message: Any) -> list[tuple[str, bytes]]:
    h = message.headers or []
    if isinstance(h, dict):
        return [(k, v) for k, v in h.items()]
    return list(h)


def broker_credentials(settings: Settings) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """faust's form of ``Settings.kafka_security()``: the same settings the confluent-kafka clients get."""
    security = settings.kafka_security()
    context = (
        ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=security.ca_location)
        if security.tls
        else None
    )
    if security.sasl_mechanism is None:
        return faust.SSLCredentials(context) if context is not None else None
    password = security.sasl_password.get_secret_value() if security.sasl_password is not None else None
    return faust.SASLCredentials(
        username=security.sasl_username,
        password=password,
        ssl_context=context,
        mechanism=security.sasl_mechanism,
    )


def create_app(settings: Settings, state: PersistState) -> faust.App:
    """The faust app with its one agent."""
    engine = make_engine(settings.database_dsn(), application_name="pagestream-persist")
    store: ObjectStore = open_store(settings)
    app = PersistApp(
        GROUP,
        broker="kafka://" + settings.kafka_bootstrap_servers,
        broker_credentials=broker_credentials(settings),
        store="memory://",
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        # as the confluent consumers (pagestream/kafka/consumer.py): faust's 60 s default kept a
        # SIGKILLed persist's partitions parked for 1-2 minutes before its restart could consume
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        producer_acks=-1,
        broker_commit_every=100,
        broker_commit_interval=1.0,
        stream_wait_empty=False,
    )
    results = app.topic(PAGE_OCR_COMPLETED, PAGE_OCR_FAILED, value_serializer="raw", key_serializer="raw")
    dlq = app.topic(PERSIST_DLQ, value_serializer="raw", key_serializer="raw")

    async def in_thread(fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def send_dead_letter(msg: Any, value: bytes | None, error: BaseException) -> None:
        reason = error.reason if isinstance(error, PagestreamError) else "unexpected_error"
        await dlq.send(
            key=msg.key,
            value=value or b"",
            headers=dead_letter_headers(
                _headers(msg),
                source=f"{msg.topic}[{msg.partition}]@{msg.offset}",
                reason=reason,
                detail=f"{type(error).__name__}: {error}",
                error_class=type(error).__name__,
            ),
        )
        metrics.DLQ_RECORDS.labels(PERSIST_DLQ, reason).inc()

    async def with_retries(what: str, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` in a thread, retrying transient failures (database, object store) in place."""
        backoff = Backoff(initial=0.5, maximum=15.0)
        while True:
            try:
                result = await in_thread(fn, *args)
            except PagestreamError as e:
                if not e.retryable:
                    raise
                state.db_ok = False
                metrics.ERRORS.labels("persist", e.reason).inc()
                log.warning("persist: %s failed, retrying: %s", what, e)
                await asyncio.sleep(backoff.next_delay())
                continue
            return result

    def checked_out(o: PageOutcome) -> PageOutcome:
        """The outcome with its claim-checked layout read back (a bad claim check fails the page)."""
        e = o.event
        if not isinstance(e, PageOcrCompletedV1) or not e.layout_uri:
            return o
        try:
            layout = check_out(e, store)
        except ClaimCheckError as err:
            return failed_outcome(o, err.reason, str(err))
        return PageOutcome(o.event_id, e.model_copy(update={"layout": layout}), o.traceparent)

    async def persist_batch(outcomes: list[PageOutcome]) -> None:
        started = time.perf_counter()
        res = await with_retries("batch", apply_page_outcomes, engine, outcomes)
        state.db_ok = True
        state.batches += 1
        state.duplicates += res.duplicates
        metrics.PERSIST_BATCH_SIZE.observe(len(outcomes))
        metrics.PERSIST_BATCH_SECONDS.observe(time.perf_counter() - started)
        metrics.PAGES_PERSISTED.labels("applied").inc(res.applied)
        if res.duplicates:
            metrics.DUPLICATES_ABSORBED.labels("persist").inc(res.duplicates)
        for doc_id, status, e2e in res.finished:
            metrics.DOCUMENTS_FINISHED.labels(status).inc()
            if e2e is not None:
                metrics.DOCUMENT_E2E_SECONDS.observe(e2e)
            log.info("document finished", extra={"document_id": str(doc_id), "status": status})
            if settings.export_pdf_on_completion and status != "failed":
                exports.add(asyncio.ensure_future(export_pdf(doc_id)))

    exports: set[asyncio.Future[None]] = set()

    async def export_pdf(doc_id: uuid.UUID) -> None:
        """Best effort: the PDF can always be built again from the API (``GET /v1/documents/{id}/pdf``)."""
        from pagestream.export import store_searchable_pdf

        try:
            uri = await in_thread(store_searchable_pdf, engine, store, doc_id)
            log.info("searchable PDF stored", extra={"document_id": str(doc_id), "uri": uri})
        except Exception as e:  # noqa: BLE001 - an export never holds up or fails persisting
            log.warning("searchable PDF not stored: %s", e, extra={"document_id": str(doc_id)})
        finally:
            exports.discard(asyncio.current_task())

    async def persist_isolating(items: list[tuple[PageOutcome, Any]]) -> None:
        """Persist ``items``; if the database refuses the batch, split it to find the record at fault,
        dead-letter that one and record its page as failed."""
        try:
            await persist_batch([o for o, _ in items])
            return
        except DatabaseError as e:
            if not isinstance(e, DataRejectedError):
                raise  # the database itself is wrong (missing table, permissions): not any record's fault
            error: BaseException = e
        except PagestreamError:
            raise
        except Exception as e:  # noqa: BLE001 - e.g. text the driver cannot encode: isolate the record
            error = e
        if len(items) > 1:
            half = len(items) // 2
            await persist_isolating(items[:half])
            await persist_isolating(items[half:])
            return
        ((o, ev),) = items
        log.error(
            "persist: page result refused; dead-lettering it and failing the page",
            extra={"document_id": str(o.event.document_id), "page": o.event.page_number, "error": str(error)},
        )
        await send_dead_letter(ev.message, ev.value, error)
        if isinstance(o.event, PageOcrFailedV1) and o.event.reason == UnstorableResultError.reason:
            return  # even the failure record cannot be stored: the reconciler will finish the document
        stand_in = failed_outcome(
            o,
            UnstorableResultError.reason,
            f"the page result could not be stored ({type(error).__name__}): {error}",
        )
        await persist_isolating([(stand_in, ev)])

    def db_answers() -> bool:
        return ping(engine) is None

    @app.timer(interval=5.0, on_leader=False)
    async def check_database() -> None:
        state.db_ok = await in_thread(db_answers)

    @app.timer(interval=3600.0, on_leader=False)
    async def prune_processed_events() -> None:
        try:
            n = await in_thread(purge_processed_events, engine, settings.processed_events_retention_days)
        except PagestreamError as e:
            log.warning("persist: pruning processed events failed; trying again in an hour: %s", e)
            return
        log.info("persist: pruned processed events", extra={"deleted": n})

    @app.task
    async def first_check() -> None:
        state.db_ok = await in_thread(db_answers)

    @app.agent(results)
    async def persist(stream: Any) -> None:
        state.agent_running = True
        async for events in take_until_idle(
            stream, settings.persist_batch_size, settings.persist_batch_seconds
        ):
            try:
                items: list[tuple[PageOutcome, Any]] = []
                for ev in events:
                    msg = ev.message
                    try:
                        env = decode_record(ev.value, _headers(msg))
                        if not isinstance(env.data, PageOcrCompletedV1 | PageOcrFailedV1):
                            raise EventDecodeError(f"unexpected {env.type} on {msg.topic}")
                    except EventDecodeError as e:
                        log.error("persist: dead-lettering undecodable record: %s", e)
                        await send_dead_letter(msg, ev.value, e)
                        salvaged = salvage_failure(ev.value, _headers(msg), e)
                        if salvaged is not None:  # the page still counts toward its document
                            items.append((salvaged, ev))
                        continue
                    metrics.EVENTS_CONSUMED.labels("persist", env.type).inc()
                    outcome = PageOutcome(env.id, env.data, env.traceparent)
                    if isinstance(env.data, PageOcrCompletedV1) and env.data.layout_uri:
                        outcome = await with_retries("claim check", checked_out, outcome)
                    items.append((outcome, ev))
                if items:
                    await persist_isolating(items)
            except BaseException:
                # Leaving the body would let faust acknowledge this unpersisted batch.
                log.exception("persist: batch not persisted; exiting without acknowledging it")
                die(ExitCode.UNPERSISTED, "persist: exiting without acknowledging an unpersisted batch")

    return app
