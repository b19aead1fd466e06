"""Errors decoding events."""

from __future__ import annotations

from pagestream.errors import InputError


class EventDecodeError(InputError):
    """A record is not a valid event of a known type and version (poison: dead-letter it)."""

    reason = "undecodable_event"


class UnknownEventTypeError(EventDecodeError):
    """The record's ``ce_type`` names no event this build knows."""

    reason = "unknown_event_type"


class UnexpectedEventTypeError(EventDecodeError):
    """A known event, but not of the type this topic's consumer reads."""

    reason = "unexpected_event_type"


class EventEncodeError(InputError):
    """An event cannot be serialized (e.g. text with lone surrogates): permanent, never retried."""

    reason = "unencodable_event"
