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


class InvalidObjectUriError(StorageError, InputError):
    """The URI or bucket name is malformed: no retry can make it readable."""

    reason = "bad_uri"


class InvalidObjectKeyError(StorageError, InputError):
    """The key is empty, absolute, or has ``..``/``.``/empty segments: it could name something outside
    the store's root (or name different objects on different backends)."""

    reason = "bad_key"


class ObjectTooLargeError(StorageError, InputError):
    """The object is larger than the caller accepts; it was not read (or read only up to the cap)."""

    reason = "too_large"

    def __init__(self, message: str, *, size: int | None, limit: int):
        super().__init__(message)
        self.size, self.limit = size, limit
