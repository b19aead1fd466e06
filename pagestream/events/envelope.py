"""CloudEvents 1.0 Kafka binding, binary mode: attributes in ``ce_*`` headers, data in the value.

The same header set is produced by the cdc relay and by Debezium's outbox router as
configured in ``deploy/debezium/`` (event id also as header ``id``, the router's default).
"""

from __future__ import annotations

import builtins
import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from pagestream.events.errors import (
    EventDecodeError,
    EventEncodeError,
    UnexpectedEventTypeError,
    UnknownEventTypeError,
)
from pagestream.events.models import Event, utcnow
from pagestream.events.registry import decode_payload

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
DEFAULT_SOURCE = "/pagestream"

Headers = list[tuple[str, bytes]]


def new_traceparent() -> str:
    """A fresh W3C traceparent (version 00, sampled)."""
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"


def child_traceparent(parent: str | None) -> str:
    """Same trace, new span id; a fresh trace when ``parent`` is missing or malformed."""
    if parent:
        parts = parent.split("-")
        if len(parts) == 4 and len(parts[1]) == 32:
            return f"{parts[0]}-{parts[1]}-{os.urandom(8).hex()}-{parts[3]}"
    return new_traceparent()


E = TypeVar("E", bound=Event)


@dataclass(frozen=True)
class Envelope:
    """An event with its CloudEvents attributes, as carried on Kafka."""

    id: uuid.UUID
    type: str
    subject: str
    time: datetime
    data: Event
    source: str = DEFAULT_SOURCE
    traceparent: str | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)

    def expect(self, kind: builtins.type[E]) -> E:
        """The event, which a consumer of this topic must find to be a ``kind``.

        Another event type on the topic (a foreign producer, a misrouted record) is poison for this
        consumer: permanent, so it is dead-lettered with the reason instead of retried.
        """
        if not isinstance(self.data, kind):
            raise UnexpectedEventTypeError(
                f"event {self.id} is a {self.type}, not the {kind.__name__} this consumer reads"
            )
        return self.data


def encode_headers(
    *,
    event_id: str,
    event_type: str,
    subject: str,
    time: str,
    source: str = DEFAULT_SOURCE,
    traceparent: str | None = None,
) -> Headers:
    """The exact header list every pagestream record carries (relay and producers alike)."""
    headers: Headers = [
        ("id", event_id.encode()),
        ("ce_id", event_id.encode()),
        ("ce_source", source.encode()),
        ("ce_specversion", SPECVERSION.encode()),
        ("ce_type", event_type.encode()),
        ("ce_subject", subject.encode()),
        ("ce_time", time.encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]
    if traceparent:
        headers.append(("traceparent", traceparent.encode()))
    return headers


#: the last event serialized and its bytes: measuring an event (the claim check) and then
#: publishing that same, immutable, object serializes it once, not twice, on the OCR hot path
_last_encoded: tuple[Event, bytes] | None = None


def encode_data(event: Event) -> bytes:
    """The record value: the event's JSON data; ``EventEncodeError`` if it cannot be serialized."""
    global _last_encoded
    last = _last_encoded
    if last is not None and last[0] is event:  # events are frozen: the same object has the same bytes
        return last[1]
    try:
        value = event.model_dump_json().encode()
    except (ValueError, TypeError) as e:  # PydanticSerializationError is a ValueError
        raise EventEncodeError(f"{event.event_type} cannot be serialized: {str(e)[:300]}") from e
    _last_encoded = (event, value)
    return value


def make_record(
    event: Event,
    *,
    traceparent: str | None = None,
    source: str = DEFAULT_SOURCE,
    event_id: uuid.UUID | None = None,
) -> tuple[str, bytes, Headers, uuid.UUID]:
    """Build ``(key, value, headers, event_id)`` for producing ``event`` directly (not via outbox)."""
    eid = event_id or uuid.uuid4()
    headers = encode_headers(
        event_id=str(eid),
        event_type=event.event_type,
        subject=event.aggregate_id(),
        time=utcnow().isoformat(),
        source=source,
        traceparent=traceparent,
    )
    return event.aggregate_id(), encode_data(event), headers, eid


def header_map(headers: Headers | None) -> dict[str, str]:
    """Kafka headers as a dict of str (last value wins)."""
    out: dict[str, str] = {}
    for k, v in headers or []:
        if v is not None:
            out[k] = v.decode("utf-8", "replace") if isinstance(v, bytes | bytearray) else str(v)
    return out


def decode_record(value: bytes | None, headers: Headers | None) -> Envelope:
    """Parse a record into an Envelope, upcasting older versions; EventDecodeError if poison."""
    h = header_map(headers)
    event_type = h.get("ce_type")
    if not event_type:
        raise EventDecodeError("record has no ce_type header")
    if value is None:
        raise EventDecodeError(f"{event_type} record has no value")
    try:
        payload = json.loads(value)
    except (ValueError, UnicodeDecodeError) as e:
        raise EventDecodeError(f"{event_type} record value is not JSON: {e}") from e
    # Debezium without table.expand.json.payload sends the payload as a JSON string.
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError as e:
            raise EventDecodeError(f"{event_type} payload string is not JSON") from e
    try:
        data = decode_payload(event_type, payload)
    except UnknownEventTypeError:
        raise
    except Exception as e:  # pydantic.ValidationError and friends
        raise EventDecodeError(f"{event_type} payload is invalid: {str(e)[:500]}") from e
    try:
        eid = uuid.UUID(h.get("ce_id") or h.get("id") or "")
    except ValueError as e:
        raise EventDecodeError(f"{event_type} record has no valid ce_id") from e
    time_raw = h.get("ce_time")
    try:
        time = datetime.fromisoformat(time_raw) if time_raw else utcnow()
    except ValueError:
        time = utcnow()
    return Envelope(
        id=eid,
        type=event_type,
        subject=h.get("ce_subject", ""),
        time=time,
        data=data,
        source=h.get("ce_source", DEFAULT_SOURCE),
        traceparent=h.get("traceparent"),
    )
