"""Object store on S3 (or MinIO via ``S3_ENDPOINT_URL``), credentials from boto3's default chain."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pagestream.storage.base import ObjectStore
from pagestream.storage.errors import ObjectNotFoundError, StorageError, StorageUnavailableError

_MISSING = {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}
_TRANSIENT = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500"}


def parse_s3_uri(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise StorageError(f"not an s3://bucket/key URI: {uri}")
    return parts.netloc, parts.path.lstrip("/")


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
                "s3", endpoint_url=self._endpoint_url,
                config=Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60),
            )
        return self._client

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in _MISSING:
                raise ObjectNotFoundError(f"{what}: no such object ({code})") from e
            if code in _TRANSIENT:
                raise StorageUnavailableError(f"{what}: S3 {code}") from e
            raise StorageError(f"{what}: S3 {code}") from e
        except BotoCoreError as e:
            raise StorageUnavailableError(f"{what}: {type(e).__name__}") from e

    def put(self, key: str, data: bytes, content_type: str) -> str:
        full = f"{self.prefix}/{key}" if self.prefix else key
        self._call(f"put s3://{self.bucket}/{full}", self.client.put_object,
                   Bucket=self.bucket, Key=full, Body=data, ContentType=content_type)
        return f"s3://{self.bucket}/{full}"

    def get(self, uri: str) -> bytes:
        bucket, key = parse_s3_uri(uri)
        resp = self._call(f"get {uri}", self.client.get_object, Bucket=bucket, Key=key)
        return resp["Body"].read()

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
