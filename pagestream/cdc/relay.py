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

import contextlib
import json
import logging
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg2
import psycopg2.extras

from pagestream import metrics
from pagestream.cdc import pgoutput
from pagestream.cdc.errors import BrokerDisconnectedError, CdcError, ReplicationDisconnectedError
from pagestream.cdc.slot import OUTBOX_TABLE, STATE_TABLE, connect, prepare, remember_slot, slot_stats
from pagestream.errors import PagestreamError
from pagestream.events.envelope import CONTENT_TYPE, DEFAULT_SOURCE, SPECVERSION, Headers
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

#: while records await acknowledgement, wait at most this long for one before reading the WAL again
ACK_POLL_SECONDS = 0.001
#: serve delivery callbacks at least every this many decoded messages while reading a backlog
POLL_EVERY = 256
#: confirm the flush LSN at most this often while it advances (each is a message the walsender handles)
FEEDBACK_MIN_INTERVAL = 0.01

_RD_ALL_BROKERS_DOWN = -187
_RD_TRANSPORT = -195

#: outbox columns the relay reads, in the order of ``_Txn``'s column index tuple
_COLUMNS = ("id", "aggregateid", "type", "payload", "traceparent", "occurredat")
_SOURCE = DEFAULT_SOURCE.encode()
_SPECVERSION = SPECVERSION.encode()
_CONTENT_TYPE = CONTENT_TYPE.encode()
_json_decode = json.JSONDecoder().decode
_json_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def record_headers(
    event_id: bytes, event_type: bytes, subject: bytes, time: bytes, traceparent: bytes | None
) -> Headers:
    """``encode_headers`` for values that are already bytes (the relay's hot path; a test holds them equal)."""
    headers: Headers = [
        ("id", event_id),
        ("ce_id", event_id),
        ("ce_source", _SOURCE),
        ("ce_specversion", _SPECVERSION),
        ("ce_type", event_type),
        ("ce_subject", subject),
        ("ce_time", time),
        ("content-type", _CONTENT_TYPE),
    ]
    if traceparent:
        headers.append(("traceparent", traceparent))
    return headers


def compact_json(payload: bytes | None) -> bytes:
    """The record value: jsonb's text (``{"a": 1}``) re-encoded compact, byte for byte what Debezium's
    outbox router with ``expand.json.payload`` writes; NULL is ``null``."""
    if payload is None:
        return b"null"
    return _json_encode(_json_decode(payload.decode())).encode()


@dataclass
class _Txn:
    commit_micros: int  # µs since PG_EPOCH, as pgoutput carries it
    pending: int = 0
    records: int = 0
    end_lsn: int | None = None
    #: the commit timestamp as Unix seconds, for commit → ack latencies against ``time.time()``
    commit_ts: float = 0.0
    #: the delivery callback of this transaction's records (one closure per transaction, not per record)
    on_delivery: Callable[[Any, Any], None] | None = None

    def __post_init__(self) -> None:
        self.commit_ts = pgoutput.PG_EPOCH_UNIX + self.commit_micros / 1e6

    @property
    def commit_time(self) -> datetime:
        return pgoutput.pg_time(self.commit_micros)

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
        self._done_lsn = 0  # end LSN of the newest transaction completed, with all before it, this session
        self._failure: PagestreamError | None = None
        self._relations: dict[int, pgoutput.Relation] = {}
        #: outbox relations: relid → index of each of ``_COLUMNS`` in its tuples (None if absent)
        self._outbox: dict[int, tuple[int | None, ...]] = {}
        self._known_topics: set[str] = set()
        self._topics: dict[bytes, str] = {}  # event type → topic, for topics ensured this session
        self._published: dict[str, Any] = {}  # topic → its records-published counter

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
        self._unacked = self._unacked_bytes = self._done_lsn = 0
        self._failure = None
        self._known_topics.clear()  # a broker that lost its topics gets them back
        self._topics.clear()
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
        """Read, produce, serve acknowledgements, confirm; wait on whichever side has work.

        While records await acknowledgement the loop waits in ``producer.poll`` (it returns on
        the first acknowledgement, so a record's callback runs within microseconds of its ack)
        for at most ``ACK_POLL_SECONDS`` before reading the WAL again; with nothing in flight it
        sleeps in ``select`` on the replication socket, which wakes on the next WAL message.
        """
        s = self._settings
        now = time.monotonic()
        last_heartbeat = last_stats = last_feedback = last_probe = now
        flushed = 0
        read = cur.read_message
        handle = self._handle
        while not stop.is_set():
            handled = 0
            while handled < 2000 and not self._backpressured():
                msg = read()
                if msg is None:
                    break
                handle(msg.payload, producer)
                handled += 1
                if handled % POLL_EVERY == 0:
                    producer.poll(0)
            producer.poll(0)
            if self._failure is not None:
                raise self._failure
            now = time.monotonic()
            done = self._completed_lsn()
            if done > flushed and now - last_feedback >= FEEDBACK_MIN_INTERVAL:
                # force=True: psycopg2 would otherwise only record the LSN until its status interval
                cur.send_feedback(flush_lsn=done, force=True)
                last_feedback = now
                flushed = done
                self.status.flushed_lsn = done
                metrics.CDC_FLUSHED_LSN.set(done)
            elif now - last_feedback >= FEEDBACK_INTERVAL:
                cur.send_feedback(flush_lsn=flushed, force=True)
                last_feedback = now
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
                if self._unacked:
                    producer.poll(ACK_POLL_SECONDS)  # acknowledgements to come: returns on the first
                else:
                    # an LSN still to confirm is sent after FEEDBACK_MIN_INTERVAL, or sooner with new WAL
                    select.select([repl], [], [], FEEDBACK_MIN_INTERVAL if done > flushed else 0.02)

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
                with contextlib.suppress(psycopg2.Error):
                    c.close()

    def _handle(self, payload: bytes, producer: EventProducer) -> None:
        kind = payload[0]
        if kind == 73:  # 'I': the hot path, decoded straight to bytes
            relid, values = pgoutput.insert_raw(payload)
            columns = self._outbox.get(relid)
            if columns is None:
                if relid not in self._relations:
                    raise CdcError(f"insert for unknown relation {relid}")
                return
            if self._txns:
                self._publish(values, columns, self._txns[-1], producer)
            return
        if kind == 66:  # 'B'
            txn = _Txn(commit_micros=pgoutput.begin_commit_micros(payload))
            txn.on_delivery = self._delivery_callback(txn)
            self._txns.append(txn)
            return
        if kind == 67:  # 'C'
            if self._txns:
                self._txns[-1].end_lsn = pgoutput.commit_end_lsn(payload)
            return
        m = pgoutput.decode(payload)
        if isinstance(m, pgoutput.Relation):
            self._relations[m.relid] = m
            if m.name == OUTBOX_TABLE:
                index = {c: i for i, c in enumerate(m.columns)}
                self._outbox[m.relid] = tuple(index.get(c) for c in _COLUMNS)
            else:
                self._outbox.pop(m.relid, None)

    def _ensure_topic(self, topic: str) -> None:
        if topic in self._known_topics:
            return
        if self._settings.cdc_create_topics:
            try:
                ensure_topics(self._settings, [topic], timeout=10.0)
            except KafkaError as e:
                raise BrokerDisconnectedError(f"cannot ensure topic {topic}: {e}") from e
        self._known_topics.add(topic)

    def _topic(self, event_type: bytes) -> str:
        topic = self._topics.get(event_type)
        if topic is None:
            topic = topic_for(event_type.decode())
            self._ensure_topic(topic)
            self._topics[event_type] = topic
        return topic

    def _publish(
        self, values: list[bytes | None], columns: tuple[int | None, ...], txn: _Txn, producer: EventProducer
    ) -> None:
        i_id, i_agg, i_type, i_payload, i_tp, i_time = columns
        event_id = (values[i_id] if i_id is not None else None) or b""
        subject = (values[i_agg] if i_agg is not None else None) or b""
        event_type = (values[i_type] if i_type is not None else None) or b""
        occurred = (values[i_time] if i_time is not None else None) or txn.commit_time.isoformat().encode()
        value = compact_json(values[i_payload] if i_payload is not None else None)
        headers = record_headers(
            event_id, event_type, subject, occurred, values[i_tp] if i_tp is not None else None
        )
        topic = self._topic(event_type)
        size = len(value)
        txn.pending += 1
        txn.records += 1
        self._unacked += 1
        self._unacked_bytes += size
        if self._unacked_bytes > self.status.peak_unacked_bytes:
            self.status.peak_unacked_bytes = self._unacked_bytes
        on_delivery = txn.on_delivery
        if on_delivery is None:  # set when the transaction began
            raise RuntimeError(f"transaction {txn!r} has no delivery callback")
        try:
            producer.produce_raw(topic, subject, value, headers, on_delivery)
        except KafkaError as e:
            raise BrokerDisconnectedError(f"cannot produce to {topic}: {e}") from e

    def _delivery_callback(self, txn: _Txn) -> Callable[[Any, Any], None]:
        """librdkafka's ``on_delivery(err, msg)`` for every record of ``txn``: counts it acknowledged.

        It runs once per record, so it does only what must happen per record; the slot's
        flush LSN advances in ``_completed_lsn`` once every record of a transaction, and of
        every earlier one, was counted here.
        """
        on_ack = self._on_ack
        observe = metrics.CDC_COMMIT_TO_ACK.observe
        status = self.status
        published = self._published

        def on_delivery(err: Any, msg: Any) -> None:
            self._unacked -= 1
            self._unacked_bytes -= len(msg)
            if err is not None:
                # the transaction stays pending: its LSN is never confirmed, the session restarts
                self._fail(BrokerDisconnectedError(f"broker did not accept a record: {err}"))
                return
            txn.pending -= 1
            status.broker_ok = True
            status.published += 1
            topic = msg.topic()
            counter = published.get(topic)
            if counter is None:
                counter = published[topic] = metrics.CDC_RECORDS_PUBLISHED.labels(topic)
            counter.inc()
            latency = time.time() - txn.commit_ts
            if latency < 0.0:
                latency = 0.0
            observe(latency)
            if on_ack is not None:
                on_ack(latency)

        return on_delivery

    def _completed_lsn(self) -> int:
        """End LSN of the newest transaction such that it and all before it are fully acked."""
        while self._txns and self._txns[0].done:
            t = self._txns.popleft()
            self._done_lsn = t.end_lsn or self._done_lsn
        metrics.CDC_LAG_SECONDS.set(time.time() - self._txns[0].commit_ts if self._txns else 0.0)
        return self._done_lsn

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
