"""The consume loop every Kafka-consuming worker shares.

Semantics: a handler carries out a record's effect and commits its offset; a retryable
error rewinds the partition to that record (nothing is skipped) and backs off; a
non-retryable error ends the loop (the supervisor restarts the process). Records that
are not the expected event are dead-lettered intact and committed, so poison never
blocks a partition.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from pagestream import metrics
from pagestream.errors import PagestreamError
from pagestream.events.envelope import Envelope, decode_record, header_map
from pagestream.events.errors import EventDecodeError
from pagestream.events.models import Event
from pagestream.kafka.consumer import ConsumedRecord, EventConsumer
from pagestream.kafka.dlq import dead_letter
from pagestream.kafka.producer import EventProducer

log = logging.getLogger(__name__)


class ConsumerLoop:
    """Runs ``handle(record)`` for each record of ``consumer`` until stopped."""

    def __init__(self, consumer: EventConsumer, producer: EventProducer, *, service: str, dlq_topic: str,
                 expected: type[Event]):
        self.consumer = consumer
        self.producer = producer
        self.service = service
        self.dlq_topic = dlq_topic
        self.expected = expected
        self.healthy = False

    def decode(self, rec: ConsumedRecord) -> Envelope | None:
        """The record's envelope, or None after dead-lettering and committing a poison record."""
        try:
            ce_type = header_map(rec.headers).get("ce_type") or ""
            # compare without the version: an older version of the expected type is upcast on read
            if ce_type and ce_type.rsplit(".", 1)[0] != self.expected.event_type.rsplit(".", 1)[0]:
                raise EventDecodeError(f"unexpected {ce_type} on {rec.topic}; expected {self.expected.event_type}")
            env = decode_record(rec.value, rec.headers)
            if not isinstance(env.data, self.expected):
                raise EventDecodeError(f"unexpected {env.type} on {rec.topic}; expected {self.expected.event_type}")
        except EventDecodeError as e:
            log.error("%s: dead-lettering undecodable record: %s", self.service, e)
            dead_letter(self.producer, rec, self.dlq_topic, e.reason, str(e))
            self.consumer.commit([rec])
            return None
        metrics.EVENTS_CONSUMED.labels(self.service, env.type).inc()
        return env

    def run(self, stop: threading.Event, handle: Callable[[ConsumedRecord], None],
            keep_going: Callable[[], bool] = lambda: True) -> None:
        self.consumer.start()
        self.producer.start()
        self.healthy = True
        try:
            while not stop.is_set() and keep_going():
                rec = None
                try:
                    rec = self.consumer.poll(0.5)
                    if rec is not None:
                        handle(rec)
                    self.healthy = True
                except PagestreamError as e:
                    if not e.retryable:
                        raise
                    if rec is not None:
                        self.consumer.seek(rec)  # deliver it again: nothing is skipped
                    self.healthy = False
                    metrics.ERRORS.labels(self.service, e.reason).inc()
                    log.warning("%s: transient failure, the record will be retried: %s", self.service, e)
                    stop.wait(1.0)
        finally:
            self.healthy = False
            self.producer.close(10)
            self.consumer.close()
