"""Object store errors."""

from __future__ import annotations

from pagestream.errors import InputError, PagestreamError, TransientError


class StorageError(PagestreamError):
    reason = "storage"


class ObjectNotFoundError(StorageError, InputError):
    """No object at that URI."""

    reason = "object_not_found"


class StorageUnavailableError(StorageError, TransientError):
    """The store cannot be reached right now."""

    reason = "storage_unavailable"
