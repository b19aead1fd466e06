"""The root of every pagestream error.

Retry meaning lives on the class: consumer loops decide retry vs. dead-letter by
``retryable``, never by matching message strings.
"""

from __future__ import annotations

from typing import ClassVar


class PagestreamError(Exception):
    """Base class for all errors raised by pagestream."""

    retryable: ClassVar[bool] = False
    #: short machine-readable reason, used in metrics labels and failure records
    reason: ClassVar[str] = "error"


class ConfigurationError(PagestreamError):
    """The configuration is invalid or incomplete; fix the settings and restart."""

    reason = "configuration"


class TransientError(PagestreamError):
    """A dependency is temporarily unavailable; the same work may succeed later."""

    retryable = True
    reason = "transient"


class InputError(PagestreamError):
    """The input itself is unusable; retrying the same input cannot succeed."""

    reason = "invalid_input"
