"""OutboxRelay: committed outbox inserts from the WAL to Kafka, at least once, in commit order.

The slot's flush LSN is confirmed only for whole transactions whose every record the
broker acknowledged, and only in commit order, so a crash at any moment resumes from a
point with nothing missing (at worst, records are sent again; consumers dedupe by id).
Records are produced as their inserts are decoded, so a 10,000-row transaction never
sits in memory whole. An idle outbox still advances the slot through heartbeat
messages (``pg_logical_emit_message``), so retained WAL stays bounded.
"""

from __future__ import annotations

import json
import logging
import select
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg2
import psycopg2.extras

from pagestream import metrics
from pagestream.cdc import pgoutput
from pagestream.cdc.errors import CdcError, ReplicationDisconnectedError
from pagestream.cdc.slot import OUTBOX_TABLE, connect, prepare, slot_stats
from pagestream.errors import PagestreamError
from pagestream.events.envelope import encode_headers
from pagestream.events.topics import topic_for
from pagestream.kafka.errors import DeliveryError
from pagestream.kafka.producer import EventProducer
from pagestream.settings import Settings

log = logging.getLogger(__name__)

HEARTBEAT_PREFIX = "pagestream.heartbeat"
STATS_INTERVAL = 5.0
MAX_UNACKED = 50_000  # stop reading the WAL while this many records await acknowledgement


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
    last_error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class OutboxRelay:
    """Streams the outbox publication from a pgoutput slot into Kafka."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._dsn = settings.database_dsn()
        self.status = RelayStatus()
        self._txns: deque[_Txn] = deque()
        self._unacked = 0
        self._delivery_error: DeliveryError | None = None
        self._relations: dict[int, pgoutput.Relation] = {}

    @property
    def ready(self) -> bool:
        return self.status.connected and self.status.broker_ok

    def run(self, stop: threading.Event) -> None:
        """Stream until ``stop`` is set; reconnect with backoff after any transient failure."""
        backoff = 0.5
        while not stop.is_set():
            started = time.monotonic()
            try:
                self._stream(stop)
            except PagestreamError as e:
                if not e.retryable and not isinstance(e, ReplicationDisconnectedError):
                    self.status.last_error = str(e)
                    metrics.ERRORS.labels("cdc", e.reason).inc()
                    log.error("cdc relay cannot run: %s", e)
                    if stop.wait(min(30.0, backoff)):
                        return
                    backoff = min(30.0, backoff * 2)
                    continue
                self._on_disconnect(e)
            except (psycopg2.Error, OSError) as e:
                self._on_disconnect(ReplicationDisconnectedError(f"replication stream lost: {type(e).__name__}: "
                                                                 f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}"))
            if time.monotonic() - started > 60:
                backoff = 0.5
            if stop.wait(backoff):
                return
            backoff = min(30.0, backoff * 2)

    def _on_disconnect(self, e: PagestreamError) -> None:
        self.status.connected = False
        self.status.reconnects += 1
        self.status.last_error = str(e)
        metrics.CDC_CONNECTED.set(0)
        metrics.CDC_RECONNECTS.labels("postgres" if "replication" in str(e) or "connect" in str(e) else "kafka").inc()
        metrics.ERRORS.labels("cdc", e.reason).inc()
        log.warning("cdc relay disconnected; reconnecting: %s", e)

    # -- one connected session -------------------------------------------------------------

    def _stream(self, stop: threading.Event) -> None:
        s = self._settings
        prepare(self._dsn, s.cdc_slot, s.cdc_publication)
        self._txns.clear()
        self._unacked = 0
        self._delivery_error = None

        def on_kafka_error(err: Any) -> None:
            if err.code() in (-187, -195):  # _ALL_BROKERS_DOWN, _TRANSPORT
                self.status.broker_ok = False
            log.warning("kafka client error: %s", err)

        producer = EventProducer(s, client_id="pagestream-cdc", linger_ms=1.0,
                                 extra={"error_cb": on_kafka_error, "max.in.flight.requests.per.connection": 5})
        producer.start()
        repl = connect(self._dsn, connection_factory=psycopg2.extras.LogicalReplicationConnection)
        aux = connect(self._dsn)
        aux.autocommit = True
        try:
            cur = repl.cursor()
            cur.start_replication(
                slot_name=s.cdc_slot, decode=False, status_interval=10,
                options={"proto_version": "1", "publication_names": s.cdc_publication, "messages": "true"},
            )
            self.status.connected = True
            metrics.CDC_CONNECTED.set(1)
            log.info("cdc relay streaming", extra={"slot": s.cdc_slot, "publication": s.cdc_publication})
            last_heartbeat = last_stats = time.monotonic()
            flushed = 0
            while not stop.is_set():
                handled = 0
                while handled < 2000 and self._unacked < MAX_UNACKED:
                    msg = cur.read_message()
                    if msg is None:
                        break
                    self._handle(msg, producer)
                    handled += 1
                producer.poll(0)
                if self._delivery_error is not None:
                    raise ReplicationDisconnectedError(f"broker did not accept a record: {self._delivery_error}")
                lsn = self._completed_lsn()
                if lsn > flushed:
                    cur.send_feedback(flush_lsn=lsn, force=True)
                    flushed = lsn
                    self.status.flushed_lsn = lsn
                    metrics.CDC_FLUSHED_LSN.set(lsn)
                now = time.monotonic()
                if now - last_heartbeat >= s.cdc_heartbeat_seconds:
                    with aux.cursor() as c:
                        c.execute("SELECT pg_logical_emit_message(true, %s, %s)", (HEARTBEAT_PREFIX, str(time.time())))
                    metrics.CDC_HEARTBEATS.inc()
                    last_heartbeat = now
                if now - last_stats >= STATS_INTERVAL:
                    self._refresh_stats(aux)
                    last_stats = now
                if handled == 0:
                    # nothing to read: wait for the stream, while serving delivery callbacks
                    producer.poll(0.005)
                    select.select([repl], [], [], 0.02)
        finally:
            self.status.connected = False
            metrics.CDC_CONNECTED.set(0)
            try:
                producer.close(timeout=5.0)
            except PagestreamError:
                pass
            for c in (repl, aux):
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

    def _publish(self, row: dict[str, str | None], txn: _Txn, producer: EventProducer) -> None:
        event_type = row.get("type") or ""
        payload = row.get("payload") or "null"
        value = json.dumps(json.loads(payload), separators=(",", ":"), ensure_ascii=False).encode()
        headers = encode_headers(
            event_id=row.get("id") or "", event_type=event_type, subject=row.get("aggregateid") or "",
            time=row.get("occurredat") or txn.commit_time.isoformat(), traceparent=row.get("traceparent"),
        )
        topic = topic_for(event_type)
        txn.pending += 1
        txn.records += 1
        self._unacked += 1

        def on_delivery(err: DeliveryError | None, _opaque: Any) -> None:
            self._unacked -= 1
            if err is not None:
                self._delivery_error = err
                return
            txn.pending -= 1
            self.status.broker_ok = True
            self.status.published += 1
            metrics.CDC_RECORDS_PUBLISHED.labels(topic).inc()
            metrics.CDC_COMMIT_TO_ACK.observe(max(0.0, (datetime.now(UTC) - txn.commit_time).total_seconds()))

        producer.produce(topic, (row.get("aggregateid") or "").encode(), value, headers, on_delivery)

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
        if stats is not None:
            metrics.CDC_LAG_BYTES.set(stats.lag_bytes)
            metrics.CDC_RETAINED_WAL.set(stats.retained_wal_bytes)
            self.status.details = {"lag_bytes": stats.lag_bytes, "retained_wal_bytes": stats.retained_wal_bytes}
