"""Errors of the embedded stack."""

from __future__ import annotations

from pagestream.errors import PagestreamError


class StackError(PagestreamError):
    """A part of the embedded stack could not be started, reached or stopped."""

    reason = "stack"


class BinaryNotFoundError(StackError):
    """A required executable (Tansu broker, PostgreSQL server) is not installed."""

    reason = "binary_not_found"
