"""Kafka errors, wrapping confluent_kafka's with their librdkafka code kept."""

from __future__ import annotations

from pagestream.errors import PagestreamError, TransientError


class KafkaError(PagestreamError):
    """A Kafka operation failed."""

    reason = "kafka"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code


class BrokerUnavailableError(KafkaError, TransientError):
    """The broker cannot be reached (or did not acknowledge in time); retry with backoff."""

    reason = "broker_unavailable"


class DeliveryError(KafkaError):
    """The broker refused a record; ``retryable`` tells whether resending may help."""

    reason = "delivery_failed"

    def __init__(self, message: str, code: str | None = None, retriable: bool = True):
        super().__init__(message, code)
        self._retriable = retriable

    @property
    def is_retryable(self) -> bool:
        return self._retriable
