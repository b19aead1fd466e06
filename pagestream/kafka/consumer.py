"""The one place pagestream consumes from Kafka.

Semantics: ``enable.auto.commit`` is off; callers commit a record's offset only after its
effect is durable (``commit``). Records are handed out as plain ``ConsumedRecord`` objects
so services never see confluent_kafka types.

A consumer makes sure its topics exist before it subscribes (``start``): a subscription to a
topic that does not exist yet learns of it only at a metadata refresh and then rejoins its group,
so the first record of a topic the relay creates on first use waited seconds for it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from confluent_kafka import KafkaError as _RdKafkaError

from pagestream.events.envelope import Headers
from pagestream.kafka.admin import ensure_topics
from pagestream.kafka.errors import BrokerUnavailableError, KafkaError
from pagestream.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumedRecord:
    """One record as read from a partition."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int | None


def _record(msg: Message) -> ConsumedRecord:
    """A consumed (error-free) message as a record."""
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    if topic is None or partition is None or offset is None:  # only error events lack a position
        raise KafkaError(f"consumed record without a position: {topic}[{partition}]@{offset}")
    # a consumed message's headers are a list of pairs (the stub's dict form is produce-only); values are
    # bytes except for null headers, which pagestream never writes (Headers is what the codebase reads)
    headers = cast(Headers, list(msg.headers() or []))
    return ConsumedRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        key=msg.key(),
        value=msg.value(),
        headers=headers,
        timestamp_ms=msg.timestamp()[1],
    )


class EventConsumer:
    """A consumer-group member with manual, after-the-effect offset commits."""

    def __init__(
        self,
        settings: Settings,
        group_id: str,
        topics: Iterable[str],
        *,
        client_id: str = "pagestream",
        extra: dict[str, Any] | None = None,
        create_topics: bool | None = None,
    ):
        self._settings = settings
        self._topics = list(topics)
        # where the app may not create topics (``PAGESTREAM_CDC_CREATE_TOPICS=false``) the deployment does
        self._create_topics = settings.cdc_create_topics if create_topics is None else create_topics
        self._conf: dict[str, Any] = {
            **settings.kafka_client_config(),
            "group.id": group_id,
            "client.id": client_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6_000,  # Tansu holds a first join for about half of this
            "heartbeat.interval.ms": 1_000,
            "max.poll.interval.ms": 300_000,
            "topic.metadata.refresh.interval.ms": 5_000,
            # A paused/resumed partition is refetched only when the outstanding fetch returns;
            # librdkafka's default long-poll of 500 ms cost every OCR page half a second. Tansu answers
            # a waiting fetch on its own schedule, not when a record lands: produce → consume measured
            # p50 7 ms / max 67 ms at 50 ms, 4 ms / 8 ms at 10 ms, for 11 ms/s of broker CPU and
            # 1.5 ms/s of client CPU per idle consumer of two 12-partition topics (5.0 and 1.6 at
            # 50 ms). Every poll costs the broker CPU the OCR engine wants: a whole idle embedded stack
            # measured ~270 ms/s of broker CPU with 10 ms everywhere, ~120 ms/s with 50 ms. So by role:
            # the splitter (the first hop after a commit, one per deployment) asks 10 ms, page workers
            # take this 25 ms default (commit → worker p50 ~23 ms), and roles off a document's path ask
            # longer (submit commands 50 ms, Textract job polls 500 ms) through ``extra``.
            "fetch.wait.max.ms": 25,
            **(extra or {}),
        }
        self._consumer: Consumer | None = None
        self._assignment: set[tuple[str, int]] = set()

    def start(self) -> None:
        """Join the group (lazily: the first poll does the work), after making sure the topics exist."""
        if self._consumer is not None:
            return
        if self._create_topics:
            self._ensure_topics()
        self._consumer = Consumer(self._conf)
        self._consumer.subscribe(self._topics, on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _ensure_topics(self) -> None:
        """Create the subscribed topics that do not exist yet, as the relay would on their first record.

        Subscribed before it exists, a topic reaches this member only after a metadata refresh
        (``topic.metadata.refresh.interval.ms``) and the group's rejoin. Best effort: a broker that
        is down or refuses creation (ACLs) leaves the subscription to find the topic later.
        """
        names = [t for t in self._topics if not t.startswith("^")]  # a pattern names no topic to create
        try:
            ensure_topics(self._settings, names, timeout=5.0)
        except KafkaError as e:
            log.warning(
                "topics not ensured before subscribing", extra={"topics": self._topics, "error": str(e)}
            )

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # A partition this member paused before a rebalance keeps librdkafka's pause flag when it
        # comes back, and nothing would resume it: a fresh assignment starts unpaused, from the
        # committed offset (a record put back for its backoff is delivered, and put back, again).
        consumer.assign(partitions)
        if partitions:
            consumer.resume(partitions)
        self._assignment |= {(p.topic, p.partition) for p in partitions}
        log.info(
            "partitions assigned", extra={"partitions": [f"{p.topic}[{p.partition}]" for p in partitions]}
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assignment -= {(p.topic, p.partition) for p in partitions}

    @property
    def assigned(self) -> bool:
        """True once the group gave this member at least one partition."""
        return bool(self._assignment)

    @property
    def consumer(self) -> Consumer:
        if self._consumer is None:
            self.start()
        if self._consumer is None:  # start() sets it or raises
            raise RuntimeError("Consumer not started")
        return self._consumer

    def poll(self, timeout: float = 1.0) -> ConsumedRecord | None:
        """The next record, or None. Partition EOF and transient errors are logged, not raised."""
        try:
            msg = self.consumer.poll(timeout)
        except KafkaException as e:
            raise BrokerUnavailableError(f"poll failed: {e}") from e
        if msg is None:
            return None
        err = msg.error()
        if err is not None:
            if err.code() == _RdKafkaError._PARTITION_EOF:
                return None
            if err.fatal():
                raise KafkaError(f"fatal consumer error: {err.str()}", code=err.name())
            log.warning("consumer error", extra={"error": err.str()})
            return None
        return _record(msg)

    def consume(self, max_records: int, timeout: float) -> list[ConsumedRecord]:
        """Up to ``max_records`` records, waiting at most ``timeout`` for the first."""
        try:
            msgs = self.consumer.consume(max_records, timeout)
        except KafkaException as e:
            raise BrokerUnavailableError(f"consume failed: {e}") from e
        out = []
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() != _RdKafkaError._PARTITION_EOF:
                    log.warning("consumer error", extra={"error": err.str()})
                continue
            out.append(_record(msg))
        return out

    def commit(self, records: Iterable[ConsumedRecord]) -> None:
        """Synchronously commit past the highest offset of each record's partition."""
        highest: dict[tuple[str, int], int] = {}
        for r in records:
            k = (r.topic, r.partition)
            highest[k] = max(highest.get(k, -1), r.offset)
        if not highest:
            return
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in highest.items()]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as e:
            err = e.args[0] if e.args else None
            # A rebalance took the partition away: the new owner will redo the work (idempotent).
            if err is not None and getattr(err, "code", lambda: None)() in (
                _RdKafkaError._NO_OFFSET,
                _RdKafkaError.REBALANCE_IN_PROGRESS,
                _RdKafkaError.ILLEGAL_GENERATION,
                _RdKafkaError.UNKNOWN_MEMBER_ID,
            ):
                log.warning("commit lost to a rebalance", extra={"error": str(e)})
                return
            raise BrokerUnavailableError(f"commit failed: {e}") from e

    def pause(self, record: ConsumedRecord) -> None:
        """Stop fetching the record's partition until ``resume_partition`` (a backoff that holds up
        no other partition)."""
        self.consumer.pause([TopicPartition(record.topic, record.partition)])

    def resume_partition(self, topic: str, partition: int) -> None:
        """Resume one partition; a partition no longer assigned (rebalanced away) is ignored."""
        if (topic, partition) not in self._assignment:
            return
        try:
            self.consumer.resume([TopicPartition(topic, partition)])
        except KafkaException as e:
            log.warning("resume failed", extra={"topic": topic, "partition": partition, "error": str(e)})

    def pause_all(self) -> None:
        parts = self.consumer.assignment()
        if parts:
            self.consumer.pause(parts)

    def resume_all(self) -> None:
        parts = self.consumer.assignment()
        if parts:
            self.consumer.resume(parts)

    def seek(self, record: ConsumedRecord) -> None:
        """Rewind the record's partition so the record is delivered again."""
        self.consumer.seek(TopicPartition(record.topic, record.partition, record.offset))

    def close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()
            finally:
                self._consumer = None
