"""The one place pagestream produces to Kafka.

Semantics: idempotent producer with ``acks=all``; ``poll(0)`` after each produce so
delivery callbacks fire; ``flush()`` before close. Callers that must know a record is
durable (the cdc relay, consumers committing offsets) use the delivery callback or
``publish_sync``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, cast

from confluent_kafka import KafkaError as _RdKafkaError
from confluent_kafka import KafkaException, Message, Producer

from pagestream.events.envelope import Headers, make_record
from pagestream.events.models import Event
from pagestream.events.topics import topic_for
from pagestream.kafka.errors import BrokerUnavailableError, KafkaError, delivery_error
from pagestream.settings import Settings

log = logging.getLogger(__name__)

DeliveryCallback = Callable[[KafkaError | None, Any], None]


class ProducerRecord(NamedTuple):
    """One record to produce: ``partition`` None means the key's hash partition."""

    topic: str
    key: str | bytes | None
    value: bytes
    headers: Headers
    partition: int | None = None


#: errors after which an idempotent producer must be replaced to send anything again
_FENCING = frozenset(
    {
        "INVALID_RECORD",
        "PRODUCER_FENCED",
        "_FENCED",
        "INVALID_PRODUCER_EPOCH",
        "OUT_OF_ORDER_SEQUENCE_NUMBER",
        "UNKNOWN_PRODUCER_ID",
    }
)

#: how long ``produce`` keeps serving delivery callbacks to make room in a full local queue
BUFFER_FULL_TIMEOUT_SECONDS = 30.0


class EventProducer:
    """An idempotent Kafka producer for pagestream events and raw records."""

    def __init__(
        self,
        settings: Settings,
        *,
        client_id: str = "pagestream",
        idempotent: bool = True,
        linger_ms: float = 2.0,
        extra: dict[str, Any] | None = None,
    ):
        self._conf: dict[str, Any] = {
            **settings.kafka_client_config(),
            "client.id": client_id,
            "enable.idempotence": idempotent,
            "acks": "all",
            "linger.ms": linger_ms,
            "message.timeout.ms": 120_000,
            "compression.type": "none",
            **(extra or {}),
        }
        self._producer: Producer | None = None
        self._needs_reset = False

    def start(self) -> None:
        if self._needs_reset and self._producer is not None:
            # An idempotent producer is fenced after the broker refused one of its records (Tansu with
            # a schema registry does this): every later record would fail too. Start a fresh one.
            log.warning("recreating the Kafka producer after a refused record fenced it")
            self._producer.flush(0)
            self._producer = None
        self._needs_reset = False
        if self._producer is None:
            self._producer = Producer(self._conf)

    @property
    def producer(self) -> Producer:
        if self._producer is None or self._needs_reset:
            self.start()
        if self._producer is None:  # start() sets it or raises
            raise RuntimeError("Producer not started")
        return self._producer

    def produce(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes,
        headers: Headers,
        on_delivery: DeliveryCallback | None = None,
        opaque: Any = None,
        partition: int | None = None,
    ) -> None:
        """Queue one record; ``on_delivery(error_or_None, opaque)`` fires from a later poll().

        ``partition`` overrides the key's hash partition (the key still travels with the record).
        """

        def _cb(err: _RdKafkaError | None, msg: Message) -> None:
            if err is not None and err.name() in _FENCING:
                self._needs_reset = True
            if on_delivery is None:
                if err is not None:
                    log.error("delivery failed", extra={"topic": topic, "error": str(err)})
                return
            if err is None:
                on_delivery(None, opaque)
            else:
                on_delivery(
                    delivery_error(
                        topic, err.name(), err.str(), retriable=err.retriable() or not err.fatal()
                    ),
                    opaque,
                )

        # the stub's header list is list[tuple[str, str | bytes | None]]; ours (str, bytes) pairs are
        # valid values of it, only list invariance stops mypy seeing that
        rd_headers = cast("list[tuple[str, str | bytes | None]]", headers)
        deadline = time.monotonic() + BUFFER_FULL_TIMEOUT_SECONDS
        while True:
            try:
                if partition is None:
                    self.producer.produce(topic, value=value, key=key, headers=rd_headers, on_delivery=_cb)
                else:
                    self.producer.produce(
                        topic, value=value, key=key, headers=rd_headers, on_delivery=_cb, partition=partition
                    )
                break
            except BufferError:
                # local queue full: serve callbacks to make room, then try again (bounded)
                if time.monotonic() > deadline:
                    raise BrokerUnavailableError(
                        f"produce to {topic}: local queue still full after {BUFFER_FULL_TIMEOUT_SECONDS:.0f} s"
                    ) from None
                self.producer.poll(0.1)
            except KafkaException as e:
                err = e.args[0] if e.args else None
                name = err.name() if err is not None and hasattr(err, "name") else ""
                retriable = bool(err.retriable()) if err is not None and hasattr(err, "retriable") else True
                raise delivery_error(topic, name, str(e), retriable=retriable) from e
        self.producer.poll(0)

    def produce_raw(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        headers: Headers,
        on_delivery: Callable[[_RdKafkaError | None, Message], None],
    ) -> None:
        """Queue one record with librdkafka's own ``on_delivery(err, msg)`` and no poll afterwards.

        For a caller that serves delivery callbacks itself and treats any delivery error as
        the end of its session (the cdc relay, which replaces its producer then): no wrapper
        closure per record, no fencing bookkeeping, no ``poll(0)`` per record. A full local
        queue is served as in ``produce``; other refusals raise the ``KafkaError`` class.
        """
        rd_headers = cast("list[tuple[str, str | bytes | None]]", headers)
        producer = self.producer
        deadline = 0.0
        while True:
            try:
                producer.produce(topic, value, key, headers=rd_headers, on_delivery=on_delivery)
                return
            except BufferError:
                now = time.monotonic()
                deadline = deadline or now + BUFFER_FULL_TIMEOUT_SECONDS
                if now > deadline:
                    raise BrokerUnavailableError(
                        f"produce to {topic}: local queue still full after {BUFFER_FULL_TIMEOUT_SECONDS:.0f} s"
                    ) from None
                producer.poll(0.1)
            except KafkaException as e:
                err = e.args[0] if e.args else None
                name = err.name() if err is not None and hasattr(err, "name") else ""
                retriable = bool(err.retriable()) if err is not None and hasattr(err, "retriable") else True
                raise delivery_error(topic, name, str(e), retriable=retriable) from e

    def publish(
        self,
        event: Event,
        *,
        traceparent: str | None = None,
        on_delivery: DeliveryCallback | None = None,
        opaque: Any = None,
        topic: str | None = None,
        partition: int | None = None,
    ) -> str:
        """Queue ``event`` on its topic (or ``topic``); returns the event id."""
        key, value, headers, eid = make_record(event, traceparent=traceparent)
        self.produce(
            topic or topic_for(event.event_type), key, value, headers, on_delivery, opaque, partition
        )
        return str(eid)

    def publish_sync(
        self, event: Event, *, traceparent: str | None = None, topic: str | None = None, timeout: float = 30.0
    ) -> str:
        """Publish and wait for the broker's acknowledgement; raise if not acknowledged."""
        return self.publish_all([(event, topic, None)], traceparent=traceparent, timeout=timeout)[0]

    def publish_all(
        self,
        items: Sequence[tuple[Event, str | None, int | None]],
        *,
        traceparent: str | None = None,
        timeout: float = 30.0,
    ) -> list[str]:
        """Publish ``(event, topic or None, partition or None)`` items and wait until the broker
        acknowledged every one (``produce_all``); returns the event ids."""
        records, ids = [], []
        for event, topic, partition in items:
            key, value, headers, eid = make_record(event, traceparent=traceparent)
            records.append(
                ProducerRecord(topic or topic_for(event.event_type), key, value, headers, partition)
            )
            ids.append(str(eid))
        self.produce_all(records, timeout=timeout)
        return ids

    def produce_all(
        self,
        records: Sequence[ProducerRecord],
        *,
        timeout: float = 30.0,
        on_acked: Callable[[ProducerRecord], None] | None = None,
        what: str = "produce",
    ) -> None:
        """Produce ``records`` and wait until the broker acknowledged every one, calling
        ``on_acked(record)`` for each acknowledged record. Raises the first delivery error (its class
        says whether to retry), or ``BrokerUnavailableError`` when some are still unacknowledged
        after ``timeout``: only a return means every record is durable."""
        errors: list[KafkaError] = []
        acked = 0

        def on_delivery(err: KafkaError | None, record: ProducerRecord) -> None:
            nonlocal acked
            acked += 1
            if err is not None:
                errors.append(err)
            elif on_acked is not None:
                on_acked(record)

        for r in records:
            self.produce(r.topic, r.key, r.value, r.headers, on_delivery, r, r.partition)
        self.wait_for(lambda: acked >= len(records), timeout)
        if errors:
            raise errors[0]
        if acked < len(records):
            raise BrokerUnavailableError(
                f"{what}: {len(records) - acked} of {len(records)} records not "
                f"acknowledged within {timeout:.0f} s"
            )

    def wait_for(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Serve delivery callbacks until ``condition()`` holds or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.producer.poll(min(0.05, remaining))
        return True

    def partition_count(self, topic: str, timeout: float = 10.0) -> int:
        """How many partitions ``topic`` has (from broker metadata)."""
        try:
            md = self.producer.list_topics(topic, timeout=timeout)
        except KafkaException as e:
            raise BrokerUnavailableError(f"no metadata for {topic}: {e}") from e
        t = md.topics.get(topic)
        if t is None or t.error is not None or not t.partitions:
            raise BrokerUnavailableError(f"topic {topic} has no partitions yet")
        return len(t.partitions)

    def poll(self, timeout: float = 0.0) -> int:
        return self.producer.poll(timeout)

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for outstanding deliveries; returns how many are still in the queue."""
        if self._producer is None:
            return 0
        return self._producer.flush(timeout)

    def close(self, timeout: float = 30.0) -> None:
        remaining = self.flush(timeout)
        if remaining:
            log.error("producer closed with undelivered records", extra={"count": remaining})
        self._producer = None
