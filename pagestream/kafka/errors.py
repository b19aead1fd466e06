"""Kafka errors, wrapping confluent_kafka's with their librdkafka code kept.

Retry meaning is on the class: a broker that cannot be reached is transient; a record the
broker refuses for what it is (too big, invalid) is permanent and must not be retried.
"""

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


class DeliveryError(KafkaError, TransientError):
    """The broker did not take a record for a reason that may pass (leader change, timeout): resend."""

    reason = "delivery_failed"


class RecordRejectedError(KafkaError):
    """The broker refused a record for what it is (invalid, unauthorized topic): resending cannot help."""

    reason = "record_rejected"


class RecordTooLargeError(RecordRejectedError):
    """A record is over the producer's or broker's size limit; the claim check exists to avoid this."""

    reason = "record_too_large"


#: librdkafka error names meaning "this record, as it is, will never be accepted"
_TOO_LARGE = frozenset({"MSG_SIZE_TOO_LARGE", "_MSG_SIZE_TOO_LARGE", "RECORD_LIST_TOO_LARGE"})
_REJECTED = frozenset(
    {
        "INVALID_RECORD",
        "CORRUPT_MESSAGE",
        "TOPIC_AUTHORIZATION_FAILED",
        "INVALID_REQUIRED_ACKS",
        "POLICY_VIOLATION",
        "_INVALID_ARG",
        "UNSUPPORTED_FOR_MESSAGE_FORMAT",
    }
)


def delivery_error(topic: str, code: str, message: str, *, retriable: bool) -> KafkaError:
    """The error class for a failed produce or delivery of one record to ``topic``."""
    text = f"delivery to {topic} failed: {message}"
    if code in _TOO_LARGE:
        return RecordTooLargeError(text, code=code)
    if code in _REJECTED or not retriable:
        return RecordRejectedError(text, code=code)
    return DeliveryError(text, code=code)
