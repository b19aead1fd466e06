"""The consume loop every Kafka-consuming worker shares: decode → handle → route, by error class.

A worker is a ``Handler``: a function from a task to its result events (``handle``), plus what a
failed task turns into (``failed``). Everything between the broker and that function happens here,
once, for the page worker, the splitter, the submit consumer and the Textract poller alike, so a
task's path can be read in two files (this one and its handler) and the liveness mechanisms plug in
at one place:

- **decode**: a record that is not the expected event is dead-lettered intact and committed;
- **not before** (``max_defer_seconds``): a task whose ``not_before`` is still ahead is put back and
  only its partition paused until then (at most ``max_defer_seconds`` from when it was first put
  back: clock skew between hosts cannot hold a task for ever), so other partitions keep flowing
  and the consumer keeps being polled (no group timeout, nothing polled is dropped on a rebalance);
- **attempt ledger** (``ledger``): the attempt is counted in PostgreSQL before the handler runs;
  a task already completed is skipped, one whose attempts are spent fails with the ledger's error;
- **handle**: the handler returns the task's result events; the loop publishes them (each
  ``page.ocr-completed.v1`` through the **claim check**, ``claim_check``), waits for every
  acknowledgement and only then commits the offset;
- **route by error class** (``PagestreamError.retryable``):

  - a retryable error raised by the handler sends a copy of the task to its retry topic with the
    next attempt and a ``not_before`` (``retry``), until the attempts are spent; a consumer without
    a retry topic, and every retryable error of the loop's own steps (ledger, publish, commit),
    rewinds the partition to the record (nothing is skipped) and backs off (capped exponential);
  - a permanent error (raised by the handler, or a result the broker or the serializer refuses),
    and a retryable one whose attempts are spent, is the task's failure: ``handler.failed`` names
    the events that say so (``page.ocr-failed.v1``, ``document.rejected.v1``); with none, the
    record is dead-lettered (with ``dead_letter_failures``, both); then the offset is committed,
    so no record blocks its partition or crash-loops its consumer;
  - an unexpected exception (a bug) gives the record up the same way: dead-lettered with its error
    class, message and attempts, and committed;
  - a ``ConfigurationError`` (the process cannot work at all: a missing table, a bad setting) and
    an error of the loop itself (the broker refuses the dead letter, a fatal consumer error)
    escape ``run``, so no record is dead-lettered for what is not its fault: the thread running
    it must end its process (``pagestream.runtime``), so the supervisor or Kubernetes restarts it.

Persist is the one consumer that does not run here: it is a faust app whose unit of work is a
batch of page results written in one transaction (``pagestream.workers.persister``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, ClassVar, Generic, TypeVar

from pagestream import metrics
from pagestream.db import Engine
from pagestream.db.attempts import AttemptStart, start_attempt
from pagestream.errors import ConfigurationError, PagestreamError
from pagestream.events.envelope import Envelope, child_traceparent, decode_record, header_map, make_record
from pagestream.events.errors import EventDecodeError
from pagestream.events.models import Event, utcnow
from pagestream.events.topics import topic_for
from pagestream.kafka.consumer import ConsumedRecord, EventConsumer
from pagestream.kafka.dlq import dead_letter
from pagestream.kafka.producer import EventProducer, ProducerRecord
from pagestream.retry import Backoff

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)

#: how long the loop waits for the broker to acknowledge one record's results
PUBLISH_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class Emit:
    """One event to publish for the task being handled."""

    event: Event
    #: None: the event type's topic
    topic: str | None = None
    #: None: the key's hash partition
    partition: int | None = None
    #: True for the same task travelling on (its retry, the next poll of a job): it keeps the task's
    #: span; a result (False) opens a child span of it
    same_span: bool = False


@dataclass(frozen=True)
class Delivery(Generic[E]):
    """A decoded task as the handler sees it."""

    record: ConsumedRecord
    envelope: Envelope
    task: E
    #: which attempt this is: the task's own count, or the ledger's when it counted more (a worker
    #: killed mid-task leaves no trace in the record)
    attempt: int


class Handler(Generic[E]):
    """What a consumer does with one task; the loop does everything else."""

    #: dead-letter a task whose failure events were published too (page tasks: redrivable as they were)
    dead_letter_failures: ClassVar[bool] = False

    def handle(self, d: Delivery[E]) -> Sequence[Emit]:
        """The task's effect: its result events (maybe none). Raise a classified error when it fails."""
        raise NotImplementedError

    def failed(self, d: Delivery[E], error: PagestreamError) -> Sequence[Emit] | None:
        """The events that say the task failed; None: the record is dead-lettered instead."""
        return None

    def published(self, d: Delivery[E], events: Sequence[Emit]) -> None:
        """Called once the broker acknowledged the task's events (results or failure), before the commit."""

    def retrying(self, d: Delivery[E], error: PagestreamError, delay: float) -> None:
        """Called once the task's retry was acknowledged by the broker (metrics)."""


@dataclass(frozen=True)
class RetryTopic:
    """Where a task goes after a retryable failure of its handler, and for how many attempts.

    The task must have ``attempt``, ``not_before`` and ``last_error`` fields (a page task)."""

    topic: str
    max_attempts: int
    delay: Callable[[int], float]


class AttemptLedger:
    """The page attempt ledger as the loop uses it: an attempt is counted before the handler runs."""

    def __init__(
        self,
        db: Callable[[], Engine],
        *,
        worker: str,
        max_attempts: int,
        exhausted: Callable[[Any, AttemptStart], PagestreamError],
    ):
        """``db()`` is the ledger's database; ``exhausted(task, start)`` the error of a task whose
        attempts were all started and none finished (its workers were killed)."""
        self._db = db
        self.worker = worker
        self.max_attempts = max_attempts
        self.exhausted = exhausted

    def start(self, task: Any) -> AttemptStart:
        """Count one more started attempt of the page task ``task``."""
        try:
            return start_attempt(
                self._db(),
                page_id=task.page_id,
                document_id=task.document_id,
                page_number=task.page_number,
                worker=self.worker,
            )
        except PagestreamError as e:
            if e.retryable or isinstance(e, ConfigurationError):
                raise
            # not this task's fault: end the process rather than fail every task
            raise ConfigurationError(
                f"the page attempt ledger is unusable ({e}); run `pagestream migrate`"
            ) from e


class ConsumerLoop(Generic[E]):
    """Runs ``handler`` for each record of ``consumer`` until stopped."""

    def __init__(
        self,
        consumer: EventConsumer,
        producer: EventProducer,
        *,
        service: str,
        dlq_topic: str,
        expected: type[E],
        handler: Handler[E],
        retry: RetryTopic | None = None,
        ledger: AttemptLedger | None = None,
        claim_check: Callable[[Event], Event] | None = None,
        max_defer_seconds: float | None = None,
        max_backoff_seconds: float = 30.0,
    ):
        self.consumer = consumer
        self.producer = producer
        self.service = service
        self.dlq_topic = dlq_topic
        self.expected = expected
        self.handler = handler
        self.retry = retry
        self.ledger = ledger
        self.claim_check = claim_check
        self.max_defer_seconds = max_defer_seconds
        self.healthy = False
        self.running = False
        self._backoff = Backoff(initial=0.5, maximum=max_backoff_seconds)
        #: paused partition -> monotonic time it resumes
        self.deferred: dict[tuple[str, int], float] = {}
        #: (topic, partition, offset) put back for its not_before -> monotonic time it was first put back
        self._deferred_since: dict[tuple[str, int, int], float] = {}

    # -- decode ----------------------------------------------------------------------------

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

    # -- the loop --------------------------------------------------------------------------

    def run(
        self,
        stop: threading.Event,
        keep_going: Callable[[], bool] = lambda: True,
    ) -> None:
        """Consume until ``stop`` is set or ``keep_going()`` is false (checked after every record)."""
        self.consumer.start()
        self.producer.start()
        self.healthy = True
        self.running = True
        try:
            while not stop.is_set() and keep_going():
                if self.deferred:
                    self._resume_due()
                rec = self.consumer.poll(0.5)
                if rec is None:
                    self.healthy = True
                    continue
                self._one(rec, stop)
        finally:
            self.running = False
            self.healthy = False
            self.producer.close(10)
            self.consumer.close()

    def _one(self, rec: ConsumedRecord, stop: threading.Event) -> None:
        try:
            self._route(rec)
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

    # -- one record: decode → (not before) → (ledger) → handle → route ----------------------

    def _route(self, rec: ConsumedRecord) -> None:
        """Carry out one record's effect and commit it; raise what only a rewind or the process can fix."""
        env = self.decode(rec)
        if env is None:
            return
        task: E = env.data  # type: ignore[assignment]  # decode checked its type
        if self._defer_if_early(rec, task):
            return
        d = Delivery(rec, env, task, int(getattr(task, "attempt", 1)))
        if self.ledger is not None:
            start = self.ledger.start(task)
            if start.already_completed:
                log.info(
                    "%s: task already completed; skipping it",
                    self.service,
                    extra={"key": (rec.key or b"").decode(errors="replace"), "attempts": start.attempts},
                )
                metrics.DUPLICATES_ABSORBED.labels(self.service).inc()
                self.consumer.commit([rec])
                return
            exhausted = start.attempts > max(d.attempt, self.ledger.max_attempts)
            d = Delivery(rec, env, task, max(d.attempt, start.attempts))
            if exhausted:
                self._fail(d, self.ledger.exhausted(task, start))
                self.consumer.commit([rec])
                return
        try:
            results = self.handler.handle(d)
        except ConfigurationError:
            raise
        except PagestreamError as e:
            if not self._retried(d, e):
                self._fail(d, e)
            self.consumer.commit([rec])
            return
        try:
            sent = self._publish(d, results, claim_check=True)
        except PagestreamError as e:
            if e.retryable or isinstance(e, ConfigurationError):
                raise  # the broker is away: rewind, the task is handled again
            self._fail(d, e)  # the results themselves cannot travel (unserializable, refused): say so
        else:
            self.handler.published(d, sent)
        self.consumer.commit([rec])

    def _retried(self, d: Delivery[E], e: PagestreamError) -> bool:
        """Route a retryable error: its retry topic (True), or up to a rewind (raised). False: it is a failure."""
        if not e.retryable:
            return False
        if self.retry is None:
            raise e  # no retry topic: the partition is rewound to this record and waits out a backoff
        if d.attempt >= self.retry.max_attempts:
            return False
        delay = self.retry.delay(d.attempt)
        again = d.task.model_copy(
            update={
                "attempt": d.attempt + 1,
                "not_before": utcnow() + timedelta(seconds=delay),
                "last_error": f"{e.reason}: {e}"[:500],
            }
        )
        self._publish(d, [Emit(again, self.retry.topic, same_span=True)], claim_check=False)
        log.warning(
            "%s: task will be retried",
            self.service,
            extra={
                "key": (d.record.key or b"").decode(errors="replace"),
                "attempt": d.attempt,
                "seconds": round(delay, 2),
                "reason": e.reason,
                "error": str(e),
            },
        )
        self.handler.retrying(d, e, delay)
        return True

    def _fail(self, d: Delivery[E], error: PagestreamError) -> None:
        """The task failed for good: its failure events, and/or its dead letter."""
        events = self.handler.failed(d, error)
        if events is None:
            log.error("%s: dead-lettering %s: %s", self.service, d.envelope.type, error)
            dead_letter(
                self.producer,
                d.record,
                self.dlq_topic,
                error.reason,
                f"{type(error).__name__}: {error}",
                error=error,
                attempts=d.attempt if self.ledger is not None else None,
            )
            metrics.ERRORS.labels(self.service, error.reason).inc()
            return
        sent = self._publish(d, events, claim_check=False)
        if self.handler.dead_letter_failures:
            dead_letter(
                self.producer,
                d.record,
                self.dlq_topic,
                error.reason,
                str(error),
                error=error,
                attempts=d.attempt,
            )
        self.handler.published(d, sent)

    def _publish(self, d: Delivery[E], emits: Sequence[Emit], *, claim_check: bool) -> list[Emit]:
        """Publish ``emits`` (page results through the claim check) and wait for every acknowledgement;
        what was published (a claim-checked result carries its layout's URI instead of its text)."""
        if not emits:
            return []
        child = child_traceparent(d.envelope.traceparent)
        records, sent = [], []
        for emit in emits:
            event = emit.event
            if claim_check and self.claim_check is not None:
                event = self.claim_check(event)
                emit = replace(emit, event=event) if event is not emit.event else emit
            sent.append(emit)
            key, value, headers, _ = make_record(
                event, traceparent=d.envelope.traceparent if emit.same_span else child
            )
            records.append(
                ProducerRecord(emit.topic or topic_for(event.event_type), key, value, headers, emit.partition)
            )
        self.producer.produce_all(records, timeout=PUBLISH_TIMEOUT_SECONDS, what=f"{self.service} results")
        return sent

    # -- not before: backoff without blocking other partitions ------------------------------

    def _defer_if_early(self, rec: ConsumedRecord, task: Event) -> bool:
        """Put ``rec`` back and pause its partition while its ``not_before`` is ahead (bounded)."""
        if self.max_defer_seconds is None:
            return False
        not_before = getattr(task, "not_before", None)
        position = (rec.topic, rec.partition, rec.offset)
        if not_before is None:
            return False
        now = time.monotonic()
        first = self._deferred_since.setdefault(position, now)
        wait = min((not_before - utcnow()).total_seconds(), first + self.max_defer_seconds - now)
        if wait <= 0:
            self._deferred_since.pop(position, None)
            return False
        if len(self._deferred_since) > 10_000:  # positions of partitions since rebalanced away
            self._deferred_since = {position: first}
        self.consumer.seek(rec)
        self.consumer.pause(rec)
        self.deferred[(rec.topic, rec.partition)] = now + wait
        log.info(
            "%s: task waits out its backoff; its partition is paused",
            self.service,
            extra={
                "topic": rec.topic,
                "partition": rec.partition,
                "offset": rec.offset,
                "seconds": round(wait, 2),
            },
        )
        return True

    def _resume_due(self) -> None:
        now = time.monotonic()
        for (topic, partition), at in list(self.deferred.items()):
            if at <= now:
                del self.deferred[(topic, partition)]
                self.consumer.resume_partition(topic, partition)
                log.info(
                    "%s: backoff over; partition resumed",
                    self.service,
                    extra={"topic": topic, "partition": partition},
                )
