"""Object stores behind one interface: local files (embedded default) and S3."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from pagestream.settings import Settings
from pagestream.storage.base import ObjectStore, content_key
from pagestream.storage.errors import StorageError
from pagestream.storage.local import LocalObjectStore
from pagestream.storage.s3 import S3ObjectStore

__all__ = ["ObjectStore", "LocalObjectStore", "S3ObjectStore", "content_key", "open_store", "StorageError"]


def open_store(settings: Settings) -> ObjectStore:
    """The store named by ``STORAGE_URL`` (``file:///dir`` or ``s3://bucket/prefix``)."""
    url = settings.storage_url
    parts = urlsplit(url)
    if parts.scheme == "file":
        return LocalObjectStore(Path(unquote(parts.netloc + parts.path)))
    if parts.scheme == "s3":
        return S3ObjectStore(parts.netloc, parts.path, endpoint_url=settings.s3_endpoint_url)
    raise StorageError(f"STORAGE_URL must be file://… or s3://…, got {url!r}")
