"""The consume loop every Kafka-consuming worker shares.

Semantics, decided by error class:

- a handler carries out a record's effect and commits its offset;
- a *retryable* error (``PagestreamError.retryable``: broker or database unavailable) rewinds the
  partition to that record, so nothing is skipped, and backs off (capped exponential);
- any other error raised for a record (a permanent ``PagestreamError``: too big, invalid,
  unserializable; or an unexpected exception) gives that record up: it is dead-lettered intact
  with the error class, message and attempts, and committed, so no record blocks its partition
  or crash-loops its consumer;
- a ``ConfigurationError`` (the process cannot work at all: a missing table, a bad setting) and
  an error of the loop itself (the broker refused the dead letter, a fatal consumer error)
  escape ``run``, so no record is dead-lettered for what is not its fault: the thread running it must end its process (``pagestream.runtime``), so the
  supervisor or Kubernetes restarts it.

Records that are not the expected event are dead-lettered the same way (``decode``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from pagestream import metrics
from pagestream.errors import ConfigurationError, PagestreamError
from pagestream.events.envelope import Envelope, decode_record, header_map
from pagestream.events.errors import EventDecodeError
from pagestream.events.models import Event
from pagestream.kafka.consumer import ConsumedRecord, EventConsumer
from pagestream.kafka.dlq import dead_letter
from pagestream.kafka.producer import EventProducer
from pagestream.retry import Backoff

log = logging.getLogger(__name__)


class ConsumerLoop:
    """Runs ``handle(record)`` for each record of ``consumer`` until stopped."""

    def __init__(
        self,
        consumer: EventConsumer,
        producer: EventProducer,
        *,
        service: str,
        dlq_topic: str,
        expected: type[Event],
        max_backoff_seconds: float = 30.0,
    ):
        self.consumer = consumer
        self.producer = producer
        self.service = service
        self.dlq_topic = dlq_topic
        self.expected = expected
        self.healthy = False
        self.running = False
        self._backoff = Backoff(initial=0.5, maximum=max_backoff_seconds)

    def decode(self, rec: ConsumedRecord) -> Envelope | None:
        """The record's envelope, or None after dead-lettering and committing a poison record."""
        try:
            ce_type = header_map(rec.headers).get("ce_type") or ""
            # compare without the version: an older version of the expected type is upcast on read
            if ce_type and ce_type.rsplit(".", 1)[0] != self.expected.event_type.rsplit(".", 1)[0]:
                raise EventDecodeError(
                    f"unexpected {ce_type} on {rec.topic}; expected {self.expected.event_type}"
                )
            env = decode_record(rec.value, rec.headers)
            if not isinstance(env.data, self.expected):
                raise EventDecodeError(
                    f"unexpected {env.type} on {rec.topic}; expected {self.expected.event_type}"
                )
        except EventDecodeError as e:
            log.error("%s: dead-lettering undecodable record: %s", self.service, e)
            self.give_up(rec, e)
            return None
        metrics.EVENTS_CONSUMED.labels(self.service, env.type).inc()
        return env

    def give_up(self, rec: ConsumedRecord, error: BaseException, *, attempts: int | None = None) -> None:
        """Dead-letter ``rec`` with why, then commit it: the partition moves on."""
        reason = error.reason if isinstance(error, PagestreamError) else "unexpected_error"
        detail = f"{type(error).__name__}: {error}"
        dead_letter(self.producer, rec, self.dlq_topic, reason, detail, error=error, attempts=attempts)
        self.consumer.commit([rec])
        metrics.ERRORS.labels(self.service, reason).inc()

    def run(
        self,
        stop: threading.Event,
        handle: Callable[[ConsumedRecord], None],
        keep_going: Callable[[], bool] = lambda: True,
        tick: Callable[[], None] | None = None,
    ) -> None:
        """Consume until ``stop`` is set or ``keep_going()`` is false; ``tick()`` runs before every poll."""
        self.consumer.start()
        self.producer.start()
        self.healthy = True
        self.running = True
        try:
            while not stop.is_set() and keep_going():
                if tick is not None:
                    tick()
                rec = self.consumer.poll(0.5)
                if rec is None:
                    self.healthy = True
                    continue
                self._one(rec, handle, stop)
        finally:
            self.running = False
            self.healthy = False
            self.producer.close(10)
            self.consumer.close()

    def _one(
        self, rec: ConsumedRecord, handle: Callable[[ConsumedRecord], None], stop: threading.Event
    ) -> None:
        try:
            handle(rec)
        except ConfigurationError:
            self.consumer.seek(rec)
            raise
        except PagestreamError as e:
            if e.retryable:
                self._retry_later(rec, e, stop)
                return
            log.error("%s: giving up on %s[%d]@%d: %s", self.service, rec.topic, rec.partition, rec.offset, e)
            self._give_up_or_retry(rec, e, stop)
        except Exception as e:  # a bug must not crash-loop the partition: the record is given up
            log.exception(
                "%s: unexpected error on %s[%d]@%d; dead-lettering the record",
                self.service,
                rec.topic,
                rec.partition,
                rec.offset,
            )
            self._give_up_or_retry(rec, e, stop)
        else:
            self.healthy = True
            self._backoff.reset()

    def _give_up_or_retry(self, rec: ConsumedRecord, error: BaseException, stop: threading.Event) -> None:
        try:
            self.give_up(rec, error)
        except PagestreamError as e:
            if not e.retryable:
                raise  # the broker refuses the dead letter itself: end the process, loudly
            self._retry_later(rec, e, stop)

    def _retry_later(self, rec: ConsumedRecord, e: PagestreamError, stop: threading.Event) -> None:
        self.consumer.seek(rec)  # deliver it again: nothing is skipped
        self.healthy = False
        metrics.ERRORS.labels(self.service, e.reason).inc()
        delay = self._backoff.next_delay()
        log.warning("%s: transient failure, the record will be retried in %.1f s: %s", self.service, delay, e)
        stop.wait(delay)
