"""The persist app (faust-streaming): page results → ``pages`` rows and document progress.

Batches of up to ``persist_batch_size`` events (``take_events``) are written in ONE
transaction, run in a thread so the event loop keeps heartbeating. Redelivered events
change nothing (``processed_events`` and the (document_id, page_number) upsert).

faust acknowledges a ``take_events`` batch in a ``finally`` block — even when the agent
body raised. So the body never raises with an unpersisted batch: database outages are
retried in place (with backoff), and anything else ends the process at once, before any
offset of the batch can be committed; the supervisor restarts it and the batch is
delivered again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from typing import Any

import faust

from pagestream import metrics
from pagestream.db import make_engine, ping
from pagestream.db.progress import PageOutcome, apply_page_outcomes
from pagestream.errors import PagestreamError
from pagestream.events.envelope import decode_record
from pagestream.events.errors import EventDecodeError
from pagestream.events.models import PageOcrCompletedV1, PageOcrFailedV1
from pagestream.events.topics import PAGE_OCR_COMPLETED, PAGE_OCR_FAILED, PERSIST_DLQ
from pagestream.settings import Settings

log = logging.getLogger(__name__)
GROUP = "pagestream-persist"
EXIT_UNPERSISTED = 70


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


def _headers(message: Any) -> list[tuple[str, bytes]]:
    h = message.headers or []
    if isinstance(h, dict):
        return [(k, v) for k, v in h.items()]
    return list(h)


def broker_credentials(settings: Settings) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """faust credentials for ``KAFKA_SECURITY_PROTOCOL`` / ``KAFKA_SASL_*`` / ``KAFKA_SSL_CA_LOCATION``,
    the same settings the confluent-kafka clients get from ``Settings.kafka_client_config()``."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.kafka_ssl_ca_location)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
    return faust.SASLCredentials(username=settings.kafka_sasl_username, password=password, ssl_context=context,
                                 mechanism=settings.kafka_sasl_mechanism or "PLAIN")


def create_app(settings: Settings, state: PersistState) -> faust.App:
    """The faust app with its one agent."""
    engine = make_engine(settings.database_dsn(), application_name="pagestream-persist")
    app = faust.App(
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

    async def persist_batch(outcomes: list[PageOutcome]) -> None:
        backoff = 0.5
        while True:
            started = time.perf_counter()
            try:
                res = await asyncio.get_running_loop().run_in_executor(None, apply_page_outcomes, engine, outcomes)
            except PagestreamError as e:
                if not e.retryable:
                    raise
                state.db_ok = False
                metrics.ERRORS.labels("persist", e.reason).inc()
                log.warning("persist: database unavailable, retrying batch: %s", e)
                await asyncio.sleep(backoff)
                backoff = min(15.0, backoff * 2)
                continue
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
            return

    def db_answers() -> bool:
        return ping(engine) is None

    @app.timer(interval=5.0, on_leader=False)
    async def check_database() -> None:
        state.db_ok = await asyncio.get_running_loop().run_in_executor(None, db_answers)

    @app.task
    async def first_check() -> None:
        state.db_ok = await asyncio.get_running_loop().run_in_executor(None, db_answers)

    @app.agent(results)
    async def persist(stream: Any) -> None:
        state.agent_running = True
        async for events in stream.take_events(settings.persist_batch_size, within=settings.persist_batch_seconds):
            try:
                outcomes: list[PageOutcome] = []
                for ev in events:
                    msg = ev.message
                    try:
                        env = decode_record(ev.value, _headers(msg))
                        if not isinstance(env.data, PageOcrCompletedV1 | PageOcrFailedV1):
                            raise EventDecodeError(f"unexpected {env.type} on {msg.topic}")
                    except EventDecodeError as e:
                        log.error("persist: dead-lettering undecodable record: %s", e)
                        await dlq.send(key=msg.key, value=ev.value or b"", headers=_headers(msg) + [
                            ("pagestream_dlq_reason", e.reason.encode()),
                            ("pagestream_dlq_detail", str(e)[:2000].encode()),
                            ("pagestream_dlq_source", f"{msg.topic}[{msg.partition}]@{msg.offset}".encode()),
                        ])
                        metrics.DLQ_RECORDS.labels(PERSIST_DLQ, e.reason).inc()
                        continue
                    metrics.EVENTS_CONSUMED.labels("persist", env.type).inc()
                    outcomes.append(PageOutcome(env.id, env.data, env.traceparent))
                if outcomes:
                    await persist_batch(outcomes)
            except BaseException:
                # Leaving the body would let faust acknowledge this unpersisted batch.
                log.exception("persist: batch not persisted; exiting without acknowledging it")
                logging.shutdown()
                os._exit(EXIT_UNPERSISTED)

    return app
