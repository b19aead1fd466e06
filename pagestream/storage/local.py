"""Object store on the local filesystem (the embedded default)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pagestream.storage.base import ObjectStore, check_key
from pagestream.storage.errors import (
    InvalidObjectKeyError,
    InvalidObjectUriError,
    ObjectNotFoundError,
    ObjectTooLargeError,
    StorageError,
)


def _path_from_uri(uri: str) -> Path:
    parts = urlsplit(uri)
    if parts.scheme != "file":
        raise StorageError(f"not a file:// URI: {uri}")
    # file://./relative (netloc '.') and file:///absolute
    raw = unquote((parts.netloc or "") + parts.path)
    return Path(raw).resolve()


class LocalObjectStore(ObjectStore):
    """Objects as files under ``root``; writes are atomic (temp file + rename)."""

    scheme = "file"

    def __init__(self, root: Path):
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        p = (self.root / check_key(key)).resolve()  # symlinks resolved before the check
        if self.root not in p.parents:
            raise InvalidObjectKeyError(f"object key {key[:200]!r} escapes the store root {self.root}")
        return p

    def put(self, key: str, data: bytes, content_type: str) -> str:
        path = self._path(key)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return path.as_uri()

    def _resolve(self, uri: str) -> Path:
        """The file of ``uri``; a URI outside the root names no object of this store."""
        path = _path_from_uri(uri)
        if self.root not in path.parents:
            raise InvalidObjectUriError(f"{uri[:200]} is outside the store root {self.root}")
        return path

    def get(self, uri: str) -> bytes:
        path = self._resolve(uri)
        try:
            return path.read_bytes()
        except FileNotFoundError as e:
            raise ObjectNotFoundError(f"no object at {uri}") from e
        except OSError as e:
            raise StorageError(f"cannot read {uri}: {e.strerror}") from e

    def get_bounded(self, uri: str, max_bytes: int) -> bytes:
        """Size checked before reading; never reads more than ``max_bytes + 1`` bytes."""
        path = self._resolve(uri)
        try:
            with path.open("rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size > max_bytes:
                    raise ObjectTooLargeError(
                        f"{uri} is {size} bytes; limit is {max_bytes} bytes", size=size, limit=max_bytes
                    )
                data = f.read(max_bytes + 1)
        except FileNotFoundError as e:
            raise ObjectNotFoundError(f"no object at {uri}") from e
        except OSError as e:
            raise StorageError(f"cannot read {uri}: {e.strerror}") from e
        if len(data) > max_bytes:  # it grew while being read
            raise ObjectTooLargeError(f"{uri} is over {max_bytes} bytes", size=None, limit=max_bytes)
        return data

    def exists(self, uri: str) -> bool:
        return self._resolve(uri).is_file()

    def delete(self, uri: str) -> None:
        path = _path_from_uri(uri)
        if self.root in path.parents:  # a file outside the root is no object of this store
            path.unlink(missing_ok=True)
