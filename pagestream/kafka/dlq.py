"""Dead-lettering: the original record, intact, plus why it was given up on.

A DLQ record keeps the original key, value and headers (so it can be redriven as it was) and
adds ``pagestream_dlq_*`` headers: reason, error class, detail, attempts, source position and
the time it was given up on. Earlier ``pagestream_dlq_*`` headers are replaced, not stacked.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from confluent_kafka import KafkaError as _RdKafkaError

from pagestream.events.envelope import Headers, header_map
from pagestream.events.models import utcnow
from pagestream.events.topics import DLQ_TOPICS
from pagestream.kafka.admin import WatermarkProbe
from pagestream.kafka.consumer import ConsumedRecord
from pagestream.kafka.errors import BrokerUnavailableError, KafkaError
from pagestream.kafka.producer import EventProducer, ProducerRecord
from pagestream.metrics import DLQ_RECORDS
from pagestream.settings import Settings

log = logging.getLogger(__name__)

DLQ_HEADER_PREFIX = "pagestream_dlq_"


def dead_letter_headers(
    headers: Headers,
    *,
    source: str,
    reason: str,
    detail: str,
    error_class: str | None = None,
    attempts: int | None = None,
) -> Headers:
    """``headers`` without earlier DLQ headers, plus this dead-lettering's."""
    out = [h for h in headers if not h[0].startswith(DLQ_HEADER_PREFIX)] + [
        (DLQ_HEADER_PREFIX + "reason", reason.encode()),
        (DLQ_HEADER_PREFIX + "detail", detail[:2000].encode("utf-8", "replace")),
        (DLQ_HEADER_PREFIX + "source", source.encode()),
        (DLQ_HEADER_PREFIX + "failed_at", utcnow().isoformat().encode()),
    ]
    if error_class:
        out.append((DLQ_HEADER_PREFIX + "error_class", error_class.encode()))
    if attempts is not None:
        out.append((DLQ_HEADER_PREFIX + "attempts", str(attempts).encode()))
    return out


def source_of(record: ConsumedRecord) -> str:
    """``topic[partition]@offset``: where a record was read."""
    return f"{record.topic}[{record.partition}]@{record.offset}"


def dead_letter(
    producer: EventProducer,
    record: ConsumedRecord,
    dlq_topic: str,
    reason: str,
    detail: str,
    timeout: float = 30.0,
    *,
    error: BaseException | None = None,
    attempts: int | None = None,
) -> None:
    """Copy ``record`` to ``dlq_topic`` with reason headers and wait for the broker's ack."""
    headers = dead_letter_headers(
        record.headers,
        source=source_of(record),
        reason=reason,
        detail=detail,
        error_class=type(error).__name__ if error is not None else None,
        attempts=attempts,
    )
    producer.produce_all(
        [ProducerRecord(dlq_topic, record.key, record.value or b"", headers)],
        timeout=timeout,
        what=f"dead letter to {dlq_topic}",
    )
    DLQ_RECORDS.labels(dlq_topic, reason).inc()


# --- working with dead letters: list, read, redrive ---------------------------------------------

#: the consumer group whose committed offsets, per DLQ partition, mark what redrive has handled
REDRIVE_GROUP = "pagestream-dlq-redrive"
#: added to a redriven record: the DLQ position it was redriven from (``topic[partition]@offset``)
REDRIVEN_FROM_HEADER = "pagestream_redriven_from"
#: how much of a value ``DeadLetter.value_preview`` shows
PREVIEW_CHARS = 400

_SOURCE = re.compile(r"^(?P<topic>[A-Za-z0-9._-]+)\[(?P<partition>\d+)\]@(?P<offset>\d+)$")
_RETRY_SUFFIX = ".retry"


def escaped(text: str) -> str:
    """``text`` safe for a terminal or a log line: every non-printable character as an escape."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _text(raw: bytes | str | None) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return escaped(raw)
    return escaped(raw.decode("utf-8", "backslashreplace"))


def redrive_target(source: str | None) -> str | None:
    """The topic a record dead-lettered from ``source`` (``topic[partition]@offset``) goes back to.

    A record given up on while read from a ``….retry`` topic goes back to the base topic (its
    attempts are counted by the attempt ledger, not by the retry topic). None when unknown.
    """
    m = _SOURCE.match(source or "")
    if m is None:
        return None
    topic = m["topic"]
    if topic.endswith(_RETRY_SUFFIX):
        topic = topic[: -len(_RETRY_SUFFIX)]
    if topic.endswith(".dlq"):  # never loop a record between dead-letter topics
        return None
    return topic


def redriven_headers(headers: Headers, redriven_from: str) -> Headers:
    """The original headers (dead-letter headers stripped) plus where the record was redriven from."""
    return [h for h in headers if not h[0].startswith(DLQ_HEADER_PREFIX) and h[0] != REDRIVEN_FROM_HEADER] + [
        (REDRIVEN_FROM_HEADER, redriven_from.encode())
    ]


@dataclass(frozen=True)
class DeadLetterTopic:
    """A dead-letter topic: how many records it holds, how many of them redrive has not handled yet."""

    topic: str
    depth: int
    pending: int


@dataclass(frozen=True)
class DeadLetter:
    """One DLQ record, decoded for a person: why it was given up on, where from, and what it held.

    Text fields are escaped (no control characters reach a terminal). ``headers`` are the original
    record's headers (the ``pagestream_dlq_*`` ones are the fields above). ``pending`` is False once
    redrive has handled the record (redriven it, or passed over it in a filtered redrive).
    """

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: str | None
    reason: str | None
    error_class: str | None
    detail: str | None
    attempts: int | None
    source: str | None
    failed_at: str | None
    redrive_topic: str | None
    headers: list[tuple[str, str | None]]
    value_bytes: int
    value_json: Any
    value_preview: str
    pending: bool

    @property
    def position(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["headers"] = [list(h) for h in self.headers]
        return out


@dataclass(frozen=True)
class SkippedRecord:
    """A record redrive could not send back, and why (it stays in the DLQ, handled)."""

    partition: int
    offset: int
    why: str


@dataclass
class RedriveSummary:
    """What one redrive did (or, with ``dry_run``, would do)."""

    topic: str
    dry_run: bool
    reason_filter: str | None
    scanned: int = 0
    redriven: int = 0
    #: pending records not matching ``reason_filter``: handled (no longer pending), not redriven
    passed_over: int = 0
    skipped: list[SkippedRecord] = field(default_factory=list)
    #: redriven (or would-be) records per original topic
    targets: dict[str, int] = field(default_factory=dict)
    #: scanned records per dead-letter reason
    reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _decode(rec: ConsumedRecord, pending: bool) -> DeadLetter:
    meta = {
        k[len(DLQ_HEADER_PREFIX) :]: (v or b"").decode("utf-8", "replace")
        for k, v in rec.headers
        if k.startswith(DLQ_HEADER_PREFIX)
    }
    value = rec.value or b""
    parsed: Any = None
    try:
        parsed = json.loads(value)
        preview = escaped(json.dumps(parsed, ensure_ascii=False, separators=(",", ":")))
    except ValueError:
        preview = _text(value[:PREVIEW_CHARS]) or ""
    if len(preview) > PREVIEW_CHARS:
        preview = preview[:PREVIEW_CHARS] + "…"
    attempts = meta.get("attempts")
    return DeadLetter(
        topic=rec.topic,
        partition=rec.partition,
        offset=rec.offset,
        timestamp_ms=rec.timestamp_ms,
        key=_text(rec.key),
        reason=_text(meta.get("reason")),
        error_class=_text(meta.get("error_class")),
        detail=_text(meta.get("detail")),
        attempts=int(attempts) if attempts and attempts.isdigit() else None,
        source=_text(meta.get("source")),
        failed_at=_text(meta.get("failed_at")),
        redrive_topic=redrive_target(meta.get("source")),
        headers=[(escaped(k), _text(v)) for k, v in rec.headers if not k.startswith(DLQ_HEADER_PREFIX)],
        value_bytes=len(value),
        value_json=parsed,
        value_preview=preview,
        pending=pending,
    )


def _record(msg: Message) -> ConsumedRecord:
    """A fetched (non-error) message as a plain record: topic, partition and offset are always set."""
    return ConsumedRecord(
        topic=msg.topic() or "",
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        key=msg.key(),
        value=msg.value(),
        timestamp_ms=msg.timestamp()[1],
        headers=list(msg.headers() or []),  # type: ignore[arg-type]
    )


class DeadLetterQueues:
    """Lists, reads and redrives dead-letter topics.

    Redrive bookkeeping lives in Kafka: the ``pagestream-dlq-redrive`` group's committed offset of a
    DLQ partition is where the next redrive starts. Everything before it was handled — redriven, or
    passed over by a redrive filtered by reason, or skipped because its origin is unknown — so no
    record is redriven twice. A redrive reads each partition from there to its end, sends the
    selected records back (waiting for the broker's acks) and only then commits past them. Run one
    redrive of a topic at a time: two concurrent ones may both send the same records.
    """

    def __init__(self, settings: Settings, *, group_id: str = REDRIVE_GROUP, timeout: float = 30.0):
        self._settings = settings
        self._timeout = timeout
        self._conf: dict[str, Any] = {
            **settings.kafka_client_config(),
            "group.id": group_id,
            "client.id": "pagestream-dlq",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 50,
        }
        self._consumer: Consumer | None = None
        self._producer: EventProducer | None = None
        self._probe: WatermarkProbe | None = None

    # -- plumbing --

    @property
    def _c(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer(self._conf)
        return self._consumer

    def close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()
            finally:
                self._consumer = None
        if self._producer is not None:
            self._producer.close(self._timeout)
            self._producer = None
        if self._probe is not None:
            self._probe.close()
            self._probe = None

    def __enter__(self) -> DeadLetterQueues:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _partitions(self, topic: str) -> list[int]:
        try:
            md = self._c.list_topics(topic, timeout=self._timeout)
        except KafkaException as e:
            raise BrokerUnavailableError(f"no metadata for {topic}: {e}") from e
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            return []
        return sorted(t.partitions)

    def _topic_exists(self, topic: str) -> bool:
        return bool(self._partitions(topic))

    def _watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        try:
            low, high = self._c.get_watermark_offsets(TopicPartition(topic, partition), timeout=self._timeout)
        except KafkaException as e:
            raise BrokerUnavailableError(f"cannot read watermarks of {topic}[{partition}]: {e}") from e
        return low, high

    def positions(self, topic: str) -> dict[int, int]:
        """Per partition, the offset the next redrive starts at (the group's commit, or the start)."""
        parts = self._partitions(topic)
        if not parts:
            return {}
        try:
            committed = self._c.committed([TopicPartition(topic, p) for p in parts], timeout=self._timeout)
        except KafkaException as e:
            raise BrokerUnavailableError(f"cannot read the redrive group's offsets of {topic}: {e}") from e
        out = {}
        for tp in committed:
            low, _ = self._watermarks(topic, tp.partition)
            out[tp.partition] = max(low, tp.offset) if tp.offset >= 0 else low
        return out

    def _scan(
        self,
        topic: str,
        starts: dict[int, int],
        *,
        per_partition: int | None = None,
    ) -> Iterator[ConsumedRecord]:
        """Records of ``topic`` from ``starts`` (partition → offset) to each partition's end.

        The end is the broker's end-of-partition signal, not the high watermark (the embedded
        broker reports a batch's base offset + 1 as its high watermark).
        """
        if not starts:
            return
        c = self._c
        c.assign([TopicPartition(topic, p, o) for p, o in starts.items()])
        open_parts = set(starts)
        counts = dict.fromkeys(starts, 0)
        last_progress = time.monotonic()
        try:
            while open_parts:
                try:
                    msgs = c.consume(500, 0.2)
                except KafkaException as e:
                    raise BrokerUnavailableError(f"reading {topic} failed: {e}") from e
                if not msgs and time.monotonic() - last_progress > self._timeout:
                    raise BrokerUnavailableError(
                        f"reading {topic}: partitions {sorted(open_parts)} gave nothing in {self._timeout:.0f} s"
                    )
                for msg in msgs:
                    last_progress = time.monotonic()
                    err = msg.error()
                    if err is not None:
                        if err.code() == _RdKafkaError._PARTITION_EOF:
                            open_parts.discard(msg.partition())
                            continue
                        if err.fatal():
                            raise KafkaError(f"reading {topic} failed: {err.str()}", code=err.name())
                        log.warning("dlq read error", extra={"topic": topic, "error": err.str()})
                        continue
                    p = msg.partition()
                    if p not in open_parts:
                        continue  # a partition already read to its limit: ignore the prefetched rest
                    yield _record(msg)
                    counts[p] += 1
                    if per_partition is not None and counts[p] >= per_partition:
                        open_parts.discard(p)
        finally:
            c.unassign()

    # -- the operations --

    def topics(self, topics: Iterable[str] = DLQ_TOPICS) -> list[DeadLetterTopic]:
        """Every DLQ topic with its depth (as the ``pagestream_dlq_depth`` gauge) and pending count."""
        if self._probe is None:
            self._probe = WatermarkProbe(self._settings)
        out = []
        for topic in topics:
            depth = self._probe.depth(topic, timeout=self._timeout)
            pending = sum(
                max(0, self._watermarks(topic, p)[1] - pos) for p, pos in self.positions(topic).items()
            )
            out.append(DeadLetterTopic(topic=topic, depth=depth, pending=min(pending, depth)))
        return out

    def read(
        self,
        topic: str,
        *,
        limit: int = 20,
        partition: int | None = None,
        start_offset: int | None = None,
        pending_only: bool = False,
    ) -> list[DeadLetter]:
        """Up to ``limit`` records of ``topic``, oldest first (by time, then partition and offset).

        ``partition`` reads one partition only; ``start_offset`` starts each partition read there
        (or at its start, whichever is later); ``pending_only`` starts where the next redrive would.
        """
        positions = self.positions(topic)
        parts = [p for p in positions if partition is None or p == partition]
        starts, scan_from = {}, {}
        for p in parts:
            low, high = self._watermarks(topic, p)
            start = positions[p] if pending_only else low
            starts[p] = max(start, start_offset) if start_offset is not None else start
            # never fetch past the end (a broker may answer that with silence, not "out of range")
            scan_from[p] = min(starts[p], max(high, low))
        scanned = (
            r for r in self._scan(topic, scan_from, per_partition=limit) if r.offset >= starts[r.partition]
        )
        records = sorted(scanned, key=lambda r: (r.timestamp_ms or 0, r.partition, r.offset))[:limit]
        return [_decode(r, pending=r.offset >= positions[r.partition]) for r in records]

    def redrive(
        self,
        topic: str,
        *,
        reason: str | None = None,
        dry_run: bool = False,
        batch_size: int = 500,
        progress: Callable[[int], None] | None = None,
    ) -> RedriveSummary:
        """Send the pending records of ``topic`` back to the topics they were dead-lettered from.

        Each goes back with its original key, value and headers, without the ``pagestream_dlq_*``
        headers and with ``pagestream_redriven_from``. With ``reason``, only records dead-lettered
        for that reason are sent; the others are passed over (handled, no longer pending). Records
        whose origin is unknown are skipped and reported. ``dry_run`` sends and commits nothing.
        ``progress(n)`` is called with the number of records handled since the last call.
        """
        summary = RedriveSummary(topic=topic, dry_run=dry_run, reason_filter=reason)
        exists: dict[str, bool] = {}
        batch: list[tuple[ConsumedRecord, str | None]] = []

        def flush() -> None:
            if not batch:
                return
            sends = [(rec, target) for rec, target in batch if target is not None]  # type: list[tuple[ConsumedRecord, str]]
            if not dry_run:
                self._send(sends)
                self._commit(topic, [rec for rec, _ in batch])
            for _, target in sends:
                summary.targets[target] = summary.targets.get(target, 0) + 1
            summary.redriven += len(sends)
            if progress is not None:
                progress(len(batch))
            batch.clear()

        for rec in self._scan(topic, self.positions(topic)):
            summary.scanned += 1
            meta = header_map(rec.headers)
            rec_reason = meta.get(DLQ_HEADER_PREFIX + "reason", "")
            summary.reasons[rec_reason] = summary.reasons.get(rec_reason, 0) + 1
            target: str | None = None
            if reason is not None and rec_reason != reason:
                summary.passed_over += 1
            else:
                source = meta.get(DLQ_HEADER_PREFIX + "source")
                target = redrive_target(source)
                if target is not None and target not in exists:
                    exists[target] = self._topic_exists(target)
                if target is None or not exists[target]:
                    why = (
                        f"original topic {target} does not exist"
                        if target is not None
                        else f"original topic unknown (source {escaped(source)!r})"
                        if source
                        else "no pagestream_dlq_source header"
                    )
                    summary.skipped.append(SkippedRecord(partition=rec.partition, offset=rec.offset, why=why))
                    target = None
            batch.append((rec, target))
            if len(batch) >= batch_size:
                flush()
        flush()
        log.info(
            "dlq redrive",
            extra={
                "topic": topic,
                "dry_run": dry_run,
                "reason_filter": reason,
                "scanned": summary.scanned,
                "redriven": summary.redriven,
                "passed_over": summary.passed_over,
                "skipped": len(summary.skipped),
            },
        )
        return summary

    def _send(self, sends: list[tuple[ConsumedRecord, str]]) -> None:
        """Produce each record to its target and wait until the broker acknowledged all of them."""
        if not sends:
            return
        if self._producer is None:
            self._producer = EventProducer(self._settings, client_id="pagestream-dlq-redrive")
        self._producer.produce_all(
            [
                ProducerRecord(
                    target, rec.key, rec.value or b"", redriven_headers(rec.headers, source_of(rec))
                )
                for rec, target in sends
            ],
            timeout=self._timeout,
            what="redrive (nothing was marked redriven)",
        )

    def _commit(self, topic: str, records: list[ConsumedRecord]) -> None:
        highest: dict[int, int] = {}
        for r in records:
            highest[r.partition] = max(highest.get(r.partition, -1), r.offset)
        try:
            self._c.commit(
                offsets=[TopicPartition(topic, p, o + 1) for p, o in highest.items()], asynchronous=False
            )
        except KafkaException as e:
            raise BrokerUnavailableError(
                f"redrive: records sent but the redrive group's offsets of {topic} "
                f"were not committed ({e}); a retry may send them again"
            ) from e
