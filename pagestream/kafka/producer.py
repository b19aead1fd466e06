"""The one place pagestream produces to Kafka.

Semantics: idempotent producer with ``acks=all``; ``poll(0)`` after each produce so
delivery callbacks fire; ``flush()`` before close. Callers that must know a record is
durable (the cdc relay, consumers committing offsets) use the delivery callback or
``publish_sync``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError as _RdKafkaError
from confluent_kafka import KafkaException, Message, Producer

from pagestream.events.envelope import Headers, make_record
from pagestream.events.models import Event
from pagestream.events.topics import topic_for
from pagestream.kafka.errors import BrokerUnavailableError, DeliveryError
from pagestream.settings import Settings

log = logging.getLogger(__name__)

DeliveryCallback = Callable[[DeliveryError | None, Any], None]


class EventProducer:
    """An idempotent Kafka producer for pagestream events and raw records."""

    def __init__(self, settings: Settings, *, client_id: str = "pagestream", idempotent: bool = True,
                 linger_ms: float = 2.0, extra: dict[str, Any] | None = None):
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

    def start(self) -> None:
        if self._producer is None:
            self._producer = Producer(self._conf)

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self.start()
        assert self._producer is not None
        return self._producer

    def produce(self, topic: str, key: str | bytes | None, value: bytes, headers: Headers,
                on_delivery: DeliveryCallback | None = None, opaque: Any = None, partition: int | None = None) -> None:
        """Queue one record; ``on_delivery(error_or_None, opaque)`` fires from a later poll().

        ``partition`` overrides the key's hash partition (the key still travels with the record).
        """

        def _cb(err: _RdKafkaError | None, msg: Message) -> None:
            if on_delivery is None:
                if err is not None:
                    log.error("delivery failed", extra={"topic": topic, "error": str(err)})
                return
            if err is None:
                on_delivery(None, opaque)
            else:
                on_delivery(DeliveryError(f"delivery to {topic} failed: {err.str()}", code=err.name(),
                                          retriable=err.retriable() or not err.fatal()), opaque)

        while True:
            try:
                if partition is None:
                    self.producer.produce(topic, value=value, key=key, headers=headers, on_delivery=_cb)
                else:
                    self.producer.produce(topic, value=value, key=key, headers=headers, on_delivery=_cb,
                                          partition=partition)
                break
            except BufferError:
                # local queue full: serve callbacks to make room, then try again
                self.producer.poll(0.1)
            except KafkaException as e:
                raise BrokerUnavailableError(f"produce to {topic} failed: {e}") from e
        self.producer.poll(0)

    def publish(self, event: Event, *, traceparent: str | None = None,
                on_delivery: DeliveryCallback | None = None, opaque: Any = None, topic: str | None = None,
                partition: int | None = None) -> str:
        """Queue ``event`` on its topic (or ``topic``); returns the event id."""
        key, value, headers, eid = make_record(event, traceparent=traceparent)
        self.produce(topic or topic_for(event.event_type), key, value, headers, on_delivery, opaque, partition)
        return str(eid)

    def publish_sync(self, event: Event, *, traceparent: str | None = None, topic: str | None = None,
                     timeout: float = 30.0) -> str:
        """Publish and wait for the broker's acknowledgement; raise if not acknowledged."""
        result: list[DeliveryError | None] = []
        eid = self.publish(event, traceparent=traceparent, topic=topic,
                           on_delivery=lambda err, _: result.append(err))
        self.wait_for(lambda: bool(result), timeout)
        if not result:
            raise BrokerUnavailableError(f"no acknowledgement for {event.event_type} within {timeout:.0f} s")
        if result[0] is not None:
            raise result[0]
        return eid

    def wait_for(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Serve delivery callbacks until ``condition()`` holds or ``timeout`` passes."""
        import time

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
