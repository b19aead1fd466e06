"""Type name → model, and the upcasters that lift old payloads step by step on read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pagestream.events.errors import UnknownEventTypeError
from pagestream.events.models import ALL_EVENTS, Event

MODELS: dict[str, type[Event]] = {m.event_type: m for m in ALL_EVENTS}

#: (old type) → (function to the next version's payload, next type). Empty until a v2 exists;
#: e.g. ``UPCASTERS["page.ocr-completed.v1"] = (upcast_v1_v2, "page.ocr-completed.v2")``.
UPCASTERS: dict[str, tuple[Callable[[dict[str, Any]], dict[str, Any]], str]] = {}


def decode_payload(event_type: str, payload: dict[str, Any]) -> Event:
    """Validate ``payload`` as ``event_type``, upcasting to the newest known version first."""
    seen = 0
    while event_type in UPCASTERS and event_type not in MODELS and seen < 20:
        fn, event_type = UPCASTERS[event_type]
        payload = fn(payload)
        seen += 1
    model = MODELS.get(event_type)
    if model is None:
        raise UnknownEventTypeError(f"unknown event type {event_type!r}")
    return model.model_validate(payload)
