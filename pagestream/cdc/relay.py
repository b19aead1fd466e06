"""OutboxRelay: committed outbox inserts from the WAL to Kafka, at least once, in commit order.

The slot's flush LSN is confirmed only for whole transactions whose every record the
broker acknowledged, and only in commit order, so a crash at any moment resumes from a
point with nothing missing (at worst, records are sent again; consumers dedupe by id).
Records are produced as their inserts are decoded, so a 10,000-row transaction never
sits in memory whole; reading the WAL pauses while too many records or bytes await
acknowledgement. An idle outbox still advances the slot through heartbeat messages
(``pg_logical_emit_message``), so retained WAL stays bounded.

Any failure ends the session: the producer is drained (what it still delivers is only
ever a duplicate), both connections are closed, and a new session resumes from the
slot's confirmed flush LSN. The idempotent producer runs with ``enable.gapless.guarantee``
so that a record is never acknowledged after an earlier one of its partition was lost:
the first delivery of every record keeps commit order.
"""

from __future__ import annotations

import json
import logging
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg2
import psycopg2.extras

from pagestream import metrics
from pagestream.cdc import pgoutput
from pagestream.cdc.errors import BrokerDisconnectedError, CdcError, ReplicationDisconnectedError
from pagestream.cdc.slot import OUTBOX_TABLE, STATE_TABLE, connect, prepare, remember_slot, slot_stats
from pagestream.errors import PagestreamError
from pagestream.events.envelope import encode_headers
from pagestream.events.topics import topic_for
from pagestream.kafka.admin import ensure_topics
from pagestream.kafka.errors import KafkaError
from pagestream.kafka.producer import EventProducer
from pagestream.retry import Backoff
from pagestream.settings import Settings

log = logging.getLogger(__name__)

#: Longest wait between reconnect attempts: short, because while disconnected nothing flows.
MAX_RECONNECT_BACKOFF = 5.0
HEARTBEAT_PREFIX = "pagestream.heartbeat"
STATS_INTERVAL = 5.0
FEEDBACK_INTERVAL = 5.0  # force a status update at least this often (the server drops silent clients)
BROKER_PROBE_INTERVAL = 1.0
MAX_UNACKED = 50_000  # stop reading the WAL while this many records await acknowledgement
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

_RD_ALL_BROKERS_DOWN = -187
_RD_TRANSPORT = -195


@dataclass
class _Txn:
    commit_time: datetime
    pending: int = 0
    records: int = 0
    end_lsn: int | None = None

    @property
    def done(self) -> bool:
        return self.end_lsn is not None and self.pending == 0


@dataclass
class RelayStatus:
    connected: bool = False
    broker_ok: bool = True
    flushed_lsn: int = 0
    published: int = 0
    reconnects: int = 0
    peak_unacked_bytes: int = 0
    last_error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class OutboxRelay:
    """Streams the outbox publication from a pgoutput slot into Kafka."""

    def __init__(self, settings: Settings, *, on_ack: Callable[[float], None] | None = None):
        """``on_ack(seconds)`` is told each record's commit→broker-ack latency (benchmarks)."""
        self._settings = settings
        self._on_ack = on_ack
        self._streamed = False
        self._dsn = settings.database_dsn()
        self.status = RelayStatus()
        self._txns: deque[_Txn] = deque()
        self._unacked = 0
        self._unacked_bytes = 0
        self._failure: PagestreamError | None = None
        self._relations: dict[int, pgoutput.Relation] = {}
        self._known_topics: set[str] = set()

    @property
    def ready(self) -> bool:
        return self.status.connected and self.status.broker_ok

    def run(self, stop: threading.Event) -> None:
        """Stream until ``stop`` is set; reconnect with backoff after any transient failure."""
        backoff = Backoff(initial=0.5, maximum=MAX_RECONNECT_BACKOFF, jitter=0.0)
        while not stop.is_set():
            self._streamed = False
            try:
                self._stream(stop)
            except PagestreamError as e:
                if not e.retryable:
                    self.status.last_error = str(e)
                    metrics.ERRORS.labels("cdc", e.reason).inc()
                    log.error("cdc relay cannot run: %s", e)
                    if stop.wait(backoff.next_delay()):
                        return
                    continue
                self._on_disconnect(e)
            except (psycopg2.Error, OSError) as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                self._on_disconnect(
                    ReplicationDisconnectedError(f"replication stream lost: {type(e).__name__}: {first}")
                )
            if self._streamed:
                backoff.reset()  # it was streaming: reconnect promptly, back off only on repeated failures
            if stop.wait(backoff.next_delay()):
                return

    def _on_disconnect(self, e: PagestreamError) -> None:
        self.status.connected = False
        self.status.reconnects += 1
        self.status.last_error = str(e)
        target = getattr(e, "target", "kafka" if isinstance(e, KafkaError) else "postgres")
        if target == "kafka":
            self.status.broker_ok = False
        metrics.CDC_CONNECTED.set(0)
        metrics.CDC_RECONNECTS.labels(target).inc()
        metrics.ERRORS.labels("cdc", e.reason).inc()
        log.warning("cdc relay disconnected; reconnecting: %s", e)

    # -- one connected session -------------------------------------------------------------

    def _new_producer(self) -> EventProducer:
        s = self._settings

        def on_kafka_error(err: Any) -> None:
            if err.fatal():
                self._fail(BrokerDisconnectedError(f"producer failed fatally: {err.str()}"))
            elif err.code() in (_RD_ALL_BROKERS_DOWN, _RD_TRANSPORT):
                self.status.broker_ok = False
            log.warning("kafka client error: %s", err)

        producer = EventProducer(
            s,
            client_id="pagestream-cdc",
            linger_ms=1.0,
            extra={
                "error_cb": on_kafka_error,
                "max.in.flight.requests.per.connection": 5,
                # never acknowledge a record after an earlier one of its partition was lost
                "enable.gapless.guarantee": True,
                "message.timeout.ms": int(s.cdc_delivery_timeout_seconds * 1000),
                "message.max.bytes": MAX_MESSAGE_BYTES,
                "queue.buffering.max.kbytes": max(
                    1024, 2 * s.cdc_max_unacked_bytes // 1024 + MAX_MESSAGE_BYTES // 1024
                ),
                "queue.buffering.max.messages": 2 * MAX_UNACKED,
            },
        )
        producer.start()
        return producer

    def _fail(self, e: PagestreamError) -> None:
        if self._failure is None:
            self._failure = e

    def _stream(self, stop: threading.Event) -> None:
        s = self._settings
        prepare(self._dsn, s.cdc_slot, s.cdc_publication, allow_recreate=s.cdc_allow_slot_recreate)
        self._txns.clear()
        self._unacked = self._unacked_bytes = 0
        self._failure = None
        self._known_topics.clear()  # a broker that lost its topics gets them back
        self.status.broker_ok = True
        producer = self._new_producer()
        repl = aux = cur = None
        try:
            repl = connect(self._dsn, connection_factory=psycopg2.extras.LogicalReplicationConnection)
            aux = connect(self._dsn)
            aux.autocommit = True
            cur = repl.cursor()
            cur.start_replication(
                slot_name=s.cdc_slot,
                decode=False,
                status_interval=FEEDBACK_INTERVAL,
                options={"proto_version": "1", "publication_names": s.cdc_publication, "messages": "true"},
            )
            self.status.connected = True
            self._streamed = True
            metrics.CDC_CONNECTED.set(1)
            log.info("cdc relay streaming", extra={"slot": s.cdc_slot, "publication": s.cdc_publication})
            self._loop(stop, cur, repl, aux, producer)
        finally:
            self.status.connected = False
            metrics.CDC_CONNECTED.set(0)
            self._close(producer, repl, cur, aux)

    def _loop(self, stop: threading.Event, cur: Any, repl: Any, aux: Any, producer: EventProducer) -> None:
        s = self._settings
        now = time.monotonic()
        last_heartbeat = last_stats = last_feedback = last_probe = now
        flushed = 0
        while not stop.is_set():
            handled = 0
            while handled < 2000 and not self._backpressured():
                msg = cur.read_message()
                if msg is None:
                    break
                self._handle(msg, producer)
                handled += 1
            producer.poll(0)
            if self._failure is not None:
                raise self._failure
            lsn = self._completed_lsn()
            now = time.monotonic()
            if lsn > flushed or now - last_feedback >= FEEDBACK_INTERVAL:
                # force=True: psycopg2 would otherwise only record the LSN until its status interval
                cur.send_feedback(flush_lsn=lsn, force=True)
                last_feedback = now
                if lsn > flushed:
                    flushed = lsn
                    self.status.flushed_lsn = lsn
                    metrics.CDC_FLUSHED_LSN.set(lsn)
            if now - last_heartbeat >= s.cdc_heartbeat_seconds:
                with aux.cursor() as c:
                    c.execute(
                        "SELECT pg_logical_emit_message(true, %s, %s)", (HEARTBEAT_PREFIX, str(time.time()))
                    )
                metrics.CDC_HEARTBEATS.inc()
                last_heartbeat = now
            if now - last_stats >= STATS_INTERVAL:
                self._refresh_stats(aux)
                last_stats = now
            if not self.status.broker_ok and now - last_probe >= BROKER_PROBE_INTERVAL:
                last_probe = now
                self._probe_broker(producer)
            if handled == 0:
                # nothing to read (or paused): serve delivery callbacks, then wait for the stream
                producer.poll(0.002 if self._unacked else 0.005)
                if not self._backpressured():
                    select.select([repl], [], [], 0.005 if self._unacked else 0.02)

    def _backpressured(self) -> bool:
        return self._unacked >= MAX_UNACKED or self._unacked_bytes >= self._settings.cdc_max_unacked_bytes

    def _probe_broker(self, producer: EventProducer) -> None:
        """After the broker was lost: once it answers again, restart the session from the flushed LSN."""
        try:
            producer.producer.list_topics(timeout=1.0)
        except Exception:  # noqa: BLE001 - still down; keep waiting
            return
        # Records queued while it was away may be refused (lost topics, a broker that forgot
        # the producer id); a fresh session re-creates topics and resends from the flushed LSN.
        raise BrokerDisconnectedError("broker connection was lost and is back; resuming from the flushed LSN")

    def _close(self, producer: EventProducer, repl: Any, cur: Any, aux: Any) -> None:
        try:
            producer.close(timeout=5.0)  # what it still delivers is at most a duplicate
        except Exception as e:  # noqa: BLE001 - closing after a fatal client error: the session restarts anyway
            log.warning("cdc: closing the producer failed; a new one is made for the next session: %s", e)
        # a graceful stop confirms what the final drain acknowledged
        if cur is not None and not repl.closed and self._failure is None:
            lsn = self._completed_lsn()
            if lsn:
                try:
                    cur.send_feedback(flush_lsn=lsn, force=True)
                    self.status.flushed_lsn = max(self.status.flushed_lsn, lsn)
                except psycopg2.Error:
                    pass
        for c in (repl, aux):
            if c is not None:
                try:
                    c.close()
                except psycopg2.Error:
                    pass

    def _handle(self, msg: Any, producer: EventProducer) -> None:
        m = pgoutput.decode(msg.payload)
        if isinstance(m, pgoutput.Begin):
            self._txns.append(_Txn(commit_time=m.commit_time))
        elif isinstance(m, pgoutput.Commit):
            if self._txns:
                self._txns[-1].end_lsn = m.end_lsn
        elif isinstance(m, pgoutput.Relation):
            self._relations[m.relid] = m
        elif isinstance(m, pgoutput.Insert):
            rel = self._relations.get(m.relid)
            if rel is None:
                raise CdcError(f"insert for unknown relation {m.relid}")
            if rel.name != OUTBOX_TABLE or not self._txns:
                return
            self._publish(dict(zip(rel.columns, m.values, strict=False)), self._txns[-1], producer)

    def _ensure_topic(self, topic: str) -> None:
        if topic in self._known_topics:
            return
        if self._settings.cdc_create_topics:
            try:
                ensure_topics(self._settings, [topic], timeout=10.0)
            except KafkaError as e:
                raise BrokerDisconnectedError(f"cannot ensure topic {topic}: {e}") from e
        self._known_topics.add(topic)

    def _publish(self, row: dict[str, str | None], txn: _Txn, producer: EventProducer) -> None:
        event_type = row.get("type") or ""
        payload = row.get("payload") or "null"
        value = json.dumps(json.loads(payload), separators=(",", ":"), ensure_ascii=False).encode()
        headers = encode_headers(
            event_id=row.get("id") or "",
            event_type=event_type,
            subject=row.get("aggregateid") or "",
            time=row.get("occurredat") or txn.commit_time.isoformat(),
            traceparent=row.get("traceparent"),
        )
        topic = topic_for(event_type)
        self._ensure_topic(topic)
        size = len(value)
        txn.pending += 1
        txn.records += 1
        self._unacked += 1
        self._unacked_bytes += size
        if self._unacked_bytes > self.status.peak_unacked_bytes:
            self.status.peak_unacked_bytes = self._unacked_bytes

        def on_delivery(err: KafkaError | None, _opaque: Any) -> None:
            self._unacked -= 1
            self._unacked_bytes -= size
            if err is not None:
                # the transaction stays pending: its LSN is never confirmed, the session restarts
                self._fail(BrokerDisconnectedError(f"broker did not accept a record: {err}"))
                return
            txn.pending -= 1
            self.status.broker_ok = True
            self.status.published += 1
            metrics.CDC_RECORDS_PUBLISHED.labels(topic).inc()
            latency = max(0.0, (datetime.now(UTC) - txn.commit_time).total_seconds())
            metrics.CDC_COMMIT_TO_ACK.observe(latency)
            if self._on_ack is not None:
                self._on_ack(latency)

        try:
            producer.produce(topic, (row.get("aggregateid") or "").encode(), value, headers, on_delivery)
        except KafkaError as e:
            raise BrokerDisconnectedError(f"cannot produce to {topic}: {e}") from e

    def _completed_lsn(self) -> int:
        """End LSN of the newest transaction such that it and all before it are fully acked."""
        lsn = 0
        while self._txns and self._txns[0].done:
            t = self._txns.popleft()
            lsn = t.end_lsn or lsn
        oldest = self._txns[0].commit_time if self._txns else None
        metrics.CDC_LAG_SECONDS.set((datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0)
        return lsn

    def _refresh_stats(self, aux: Any) -> None:
        stats = slot_stats(aux, self._settings.cdc_slot)
        try:
            remember_slot(aux, self._settings.cdc_slot)  # its last confirmed position, should it ever vanish
        except psycopg2.Error as e:
            log.warning("cannot record the slot position in %s: %s", STATE_TABLE, str(e).strip())
        if stats is not None:
            metrics.CDC_LAG_BYTES.set(stats.lag_bytes)
            metrics.CDC_RETAINED_WAL.set(stats.retained_wal_bytes)
            self.status.details = {
                "lag_bytes": stats.lag_bytes,
                "retained_wal_bytes": stats.retained_wal_bytes,
            }
