"""Object store on S3 (or MinIO via ``S3_ENDPOINT_URL``), credentials from boto3's default chain."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from pagestream.storage.base import ObjectStore, check_key
from pagestream.storage.errors import (
    InvalidObjectUriError,
    ObjectNotFoundError,
    ObjectTooLargeError,
    StorageError,
    StorageUnavailableError,
)

_MISSING = {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}
_TRANSIENT = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500"}
_INVALID = {"InvalidBucketName", "KeyTooLongError", "InvalidURI", "InvalidArgument"}


_BUCKET_CHARS = re.compile(r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
_IPV4 = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
MAX_KEY_BYTES = 1024


def bucket_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid S3 bucket name (the general-purpose bucket rules), or None."""
    if not 3 <= len(name) <= 63:
        return f"bucket name {name[:80]!r} must be 3 to 63 characters long"
    if not _BUCKET_CHARS.match(name):
        return (
            f"bucket name {name!r} may hold only lowercase letters, digits, dots and hyphens, "
            "and must begin and end with a letter or digit"
        )
    if ".." in name or _IPV4.match(name):
        return f"bucket name {name!r} must not contain '..' or look like an IP address"
    return None


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of ``s3://bucket/key``; ``InvalidObjectUriError`` (permanent) if malformed."""
    try:
        parts = urlsplit(uri)
    except ValueError as e:
        raise InvalidObjectUriError(f"not an s3://bucket/key URI: {uri[:200]!r} ({e})") from e
    key = parts.path.lstrip("/")
    if parts.scheme != "s3" or not parts.netloc or not key:
        raise InvalidObjectUriError(f"not an s3://bucket/key URI: {uri[:200]!r}")
    if parts.query or parts.fragment or "@" in parts.netloc or ":" in parts.netloc:
        raise InvalidObjectUriError(
            f"{uri[:200]!r}: an s3:// URI has no user, port, query or fragment; "
            "percent-encode '?' and '#' in keys"
        )
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidObjectUriError(
            f"object key is {len(key.encode())} bytes; S3 keys are at most {MAX_KEY_BYTES}"
        )
    return parts.netloc, key


class S3ObjectStore(ObjectStore):
    """Objects in ``bucket`` under ``prefix``; the client is created on first use."""

    scheme = "s3"

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None, client: Any = None):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._endpoint_url = endpoint_url
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3",
                endpoint_url=self._endpoint_url,
                config=Config(
                    retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60
                ),
            )
        return self._client

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

        try:
            return fn(**kwargs)
        except ParamValidationError as e:  # a malformed bucket or key: no retry can fix it
            first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise InvalidObjectUriError(f"{what}: {first[:300]}") from e
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in _MISSING:
                raise ObjectNotFoundError(f"{what}: no such object ({code})") from e
            if code in _INVALID:
                raise InvalidObjectUriError(f"{what}: S3 {code}") from e
            if code in _TRANSIENT:
                raise StorageUnavailableError(f"{what}: S3 {code}") from e
            raise StorageError(f"{what}: S3 {code}") from e
        except BotoCoreError as e:
            raise StorageUnavailableError(f"{what}: {type(e).__name__}") from e

    def put(self, key: str, data: bytes, content_type: str) -> str:
        full = f"{self.prefix}/{check_key(key)}" if self.prefix else check_key(key)
        self._call(
            f"put s3://{self.bucket}/{full}",
            self.client.put_object,
            Bucket=self.bucket,
            Key=full,
            Body=data,
            ContentType=content_type,
        )
        return f"s3://{self.bucket}/{full}"

    def get(self, uri: str) -> bytes:
        bucket, key = parse_s3_uri(uri)
        resp = self._call(f"get {uri}", self.client.get_object, Bucket=bucket, Key=key)
        return resp["Body"].read()

    @property
    def location(self) -> str:
        """``s3://bucket/prefix/``: where this store's objects live."""
        return f"s3://{self.bucket}/{self.prefix + '/' if self.prefix else ''}"

    def within(self, uri: str) -> bool:
        """Whether ``uri`` names an object in this store's bucket, under its prefix."""
        bucket, key = parse_s3_uri(uri)
        if bucket != self.bucket:
            return False
        if not self.prefix:
            return True
        return key.startswith(self.prefix + "/") and ".." not in key.split("/")

    def size(self, uri: str) -> int:
        """The object's size in bytes, from a HEAD request (nothing is read)."""
        bucket, key = parse_s3_uri(uri)
        head = self._call(f"head {uri}", self.client.head_object, Bucket=bucket, Key=key)
        return int(head["ContentLength"])

    def get_bounded(self, uri: str, max_bytes: int) -> bytes:
        """HEAD first: an object over ``max_bytes`` is refused unread; then a ranged GET read with a cap."""
        bucket, key = parse_s3_uri(uri)
        size = self.size(uri)
        if size > max_bytes:
            raise ObjectTooLargeError(
                f"{uri} is {size} bytes; limit is {max_bytes} bytes", size=size, limit=max_bytes
            )
        if size == 0:
            return b""  # a Range on an empty object is refused (416)
        resp = self._call(
            f"get {uri}", self.client.get_object, Bucket=bucket, Key=key, Range=f"bytes=0-{max_bytes}"
        )
        body = resp["Body"]
        from botocore.exceptions import BotoCoreError

        try:
            data = body.read(max_bytes + 1)  # the object may have grown since the HEAD
        except BotoCoreError as e:
            raise StorageUnavailableError(f"get {uri}: {type(e).__name__} while reading") from e
        finally:
            body.close()
        if len(data) > max_bytes:
            raise ObjectTooLargeError(f"{uri} is over {max_bytes} bytes", size=None, limit=max_bytes)
        return data

    def exists(self, uri: str) -> bool:
        bucket, key = parse_s3_uri(uri)
        try:
            self._call(f"head {uri}", self.client.head_object, Bucket=bucket, Key=key)
            return True
        except ObjectNotFoundError:
            return False

    def delete(self, uri: str) -> None:
        bucket, key = parse_s3_uri(uri)
        self._call(f"delete {uri}", self.client.delete_object, Bucket=bucket, Key=key)
