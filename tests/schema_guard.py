"""Test-only: the embedded broker's schema check, done in our producer, for brokers that do not validate.

When the integration tests run against an external broker (``KAFKA_BOOTSTRAP_SERVERS``, e.g.
Apache Kafka), nothing refuses a record that does not match its topic's schema. This guard wraps
``EventProducer.produce`` for the session and refuses such records the way Tansu does: the
delivery callback gets the error our producer reports for ``INVALID_RECORD`` and nothing is sent. Like Tansu it
checks values only (not keys), skips topics without a schema (dead letters) and does not assert
``format`` — the two must agree on what a test may produce. It is not part of pagestream: a
production producer never validates twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import jsonschema

from pagestream.events.schemas import topic_schemas
from pagestream.kafka import errors as kafka_errors
from pagestream.kafka.producer import EventProducer

_UNGUARDED_PRODUCE = EventProducer.produce


def _invalid_record(topic: str, message: str) -> kafka_errors.KafkaError:
    """The error our producer reports for a broker's INVALID_RECORD (whichever error API it has)."""
    factory = getattr(kafka_errors, "delivery_error", None)
    if factory is not None:
        return factory(topic, "INVALID_RECORD", message, retriable=False)  # type: ignore[no-any-return]
    return kafka_errors.DeliveryError(
        f"delivery to {topic} failed: {message}", code="INVALID_RECORD", retriable=False
    )  # type: ignore[call-arg]


@contextmanager
def suspended() -> Iterator[None]:
    """Produce unguarded while the block runs (tests of the broker's own validation)."""
    current = EventProducer.produce
    EventProducer.produce = _UNGUARDED_PRODUCE  # type: ignore[method-assign]
    try:
        yield
    finally:
        EventProducer.produce = current  # type: ignore[method-assign]


class ProducerSchemaGuard:
    """Refuses, in ``EventProducer.produce``, values that do not match their topic's event schema."""

    def __init__(self, unvalidated_topics: Iterable[str] = ()):
        skip = set(unvalidated_topics)
        self._validators = {
            t: jsonschema.Draft202012Validator(s) for t, s in topic_schemas().items() if t not in skip
        }
        self.refused: list[tuple[str, str]] = []  # (topic, why), for test diagnostics

    @property
    def validated_topics(self) -> list[str]:
        return sorted(self._validators)

    def refusal(self, topic: str, value: bytes | None) -> kafka_errors.KafkaError | None:
        """The error Tansu would answer for this record, or None when it would accept it."""
        validator = self._validators.get(topic)
        if validator is None:
            return None
        try:
            instance = json.loads(value) if value is not None else None
            if value is None:
                raise ValueError("no value")
        except ValueError as e:
            why = f"value is not JSON: {e}"
        else:
            error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
            if error is None:
                return None
            why = f"{'/'.join(map(str, error.absolute_path)) or '(value)'}: {error.message}"
        self.refused.append((topic, why))
        return _invalid_record(topic, f"INVALID_RECORD (test schema guard: {why})")

    @contextmanager
    def installed(self) -> Iterator[ProducerSchemaGuard]:
        """Wrap ``EventProducer.produce`` while the block runs."""
        original = EventProducer.produce
        guard = self

        def produce(
            producer: EventProducer,
            topic: str,
            key: str | bytes | None,
            value: bytes,
            headers: Any,
            on_delivery: Any = None,
            opaque: Any = None,
            partition: int | None = None,
        ) -> None:
            err = guard.refusal(topic, value)
            if err is None:
                original(producer, topic, key, value, headers, on_delivery, opaque, partition)
            elif on_delivery is not None:
                on_delivery(err, opaque)

        EventProducer.produce = produce  # type: ignore[method-assign]
        try:
            yield self
        finally:
            EventProducer.produce = original  # type: ignore[method-assign]
