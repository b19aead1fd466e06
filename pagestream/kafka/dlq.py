"""Dead-lettering: the original record, intact, plus why it was given up on.

A DLQ record keeps the original key, value and headers (so it can be redriven as it was) and
adds ``pagestream_dlq_*`` headers: reason, error class, detail, attempts, source position and
the time it was given up on. Earlier ``pagestream_dlq_*`` headers are replaced, not stacked.
"""

from __future__ import annotations

from pagestream.events.envelope import Headers
from pagestream.events.models import utcnow
from pagestream.kafka.consumer import ConsumedRecord
from pagestream.kafka.producer import EventProducer
from pagestream.metrics import DLQ_RECORDS

DLQ_HEADER_PREFIX = "pagestream_dlq_"


def dead_letter_headers(headers: Headers, *, source: str, reason: str, detail: str,
                        error_class: str | None = None, attempts: int | None = None) -> Headers:
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


def dead_letter(producer: EventProducer, record: ConsumedRecord, dlq_topic: str, reason: str, detail: str,
                timeout: float = 30.0, *, error: BaseException | None = None, attempts: int | None = None) -> None:
    """Copy ``record`` to ``dlq_topic`` with reason headers and wait for the broker's ack."""
    from pagestream.kafka.errors import BrokerUnavailableError, KafkaError

    acked: list[KafkaError | None] = []
    headers = dead_letter_headers(record.headers, source=source_of(record), reason=reason, detail=detail,
                                  error_class=type(error).__name__ if error is not None else None,
                                  attempts=attempts)
    producer.produce(dlq_topic, record.key, record.value or b"", headers,
                     on_delivery=lambda err, _: acked.append(err))
    producer.wait_for(lambda: bool(acked), timeout)
    if not acked:
        raise BrokerUnavailableError(f"dead letter to {dlq_topic} not acknowledged in {timeout:.0f} s")
    if acked[0] is not None:
        raise acked[0]
    DLQ_RECORDS.labels(dlq_topic, reason).inc()
