"""The object store contract."""

from __future__ import annotations

from abc import ABC, abstractmethod

from pagestream.storage.errors import InvalidObjectKeyError, ObjectTooLargeError


class ObjectStore(ABC):
    """Stores document bytes under keys and addresses them by URI.

    Contract: keys are relative ``/``-separated paths (``check_key``); a key that could escape
    the store's root raises ``InvalidObjectKeyError`` and nothing is written. ``put`` is
    idempotent for the same key and bytes (content-addressed keys make re-uploads free); ``get``
    of a URI this store returned gives the same bytes back; ``get`` of a missing object raises
    ``ObjectNotFoundError``; ``delete`` of a missing object is not an error. URIs are
    ``file://…`` or ``s3://bucket/key``.
    """

    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str) -> str:
        """Store ``data`` at ``key``; return its URI."""

    @abstractmethod
    def get(self, uri: str) -> bytes:
        """The bytes at ``uri``."""

    @abstractmethod
    def exists(self, uri: str) -> bool:
        """Whether an object exists at ``uri``."""

    @abstractmethod
    def delete(self, uri: str) -> None:
        """Remove the object at ``uri`` if present."""

    def get_bounded(self, uri: str, max_bytes: int) -> bytes:
        """The bytes at ``uri`` if there are at most ``max_bytes``, else ``ObjectTooLargeError``.

        Stores override it to check the size before reading (S3: HEAD first) and to read
        at most ``max_bytes + 1`` bytes whatever the size claimed.
        """
        data = self.get(uri)
        if len(data) > max_bytes:
            raise ObjectTooLargeError(
                f"{uri} is {len(data)} bytes; limit is {max_bytes} bytes", size=len(data), limit=max_bytes
            )
        return data

    def handles(self, uri: str) -> bool:
        """Whether ``uri`` belongs to this kind of store."""
        return uri.startswith(self.scheme + "://")

    scheme: str = ""


def check_key(key: str) -> str:
    """``key`` if it names an object under the store's root; ``InvalidObjectKeyError`` otherwise."""
    segments = key.split("/")
    if not key or key.startswith("/") or any(s in ("", ".", "..") for s in segments) or "\\" in key:
        raise InvalidObjectKeyError(
            f"object key {key[:200]!r} must be a relative path without empty, "
            "'.' or '..' segments (it would name something outside the store)"
        )
    return key


def content_key(sha256: str) -> str:
    """The content-addressed key of a document's bytes."""
    return f"documents/{sha256[:2]}/{sha256}"
