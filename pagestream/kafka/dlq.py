"""Dead-lettering: the original record, intact, plus why it was given up on."""

from __future__ import annotations

from pagestream.kafka.consumer import ConsumedRecord
from pagestream.kafka.producer import EventProducer
from pagestream.metrics import DLQ_RECORDS


def dead_letter(producer: EventProducer, record: ConsumedRecord, dlq_topic: str, reason: str, detail: str,
                timeout: float = 30.0) -> None:
    """Copy ``record`` to ``dlq_topic`` with reason headers and wait for the broker's ack."""
    acked: list[object] = []
    headers = [h for h in record.headers if not h[0].startswith("pagestream_dlq_")] + [
        ("pagestream_dlq_reason", reason.encode()),
        ("pagestream_dlq_detail", detail[:2000].encode()),
        ("pagestream_dlq_source", f"{record.topic}[{record.partition}]@{record.offset}".encode()),
    ]
    producer.produce(dlq_topic, record.key, record.value or b"", headers,
                     on_delivery=lambda err, _: acked.append(err))
    producer.wait_for(lambda: bool(acked), timeout)
    if not acked:
        from pagestream.kafka.errors import BrokerUnavailableError

        raise BrokerUnavailableError(f"dead letter to {dlq_topic} not acknowledged in {timeout:.0f} s")
    if acked[0] is not None:
        raise acked[0]  # type: ignore[misc]
    DLQ_RECORDS.labels(dlq_topic, reason).inc()
