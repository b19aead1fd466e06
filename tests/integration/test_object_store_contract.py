"""The ObjectStore contract against local files and against S3 (moto's server on a free port,
spoken to over HTTP by a real boto3 client, as a MinIO or AWS endpoint would be)."""

from __future__ import annotations

import uuid
from pathlib import Path

import boto3
import pytest

from pagestream.storage import LocalObjectStore, S3ObjectStore
from pagestream.storage.errors import InvalidObjectKeyError, InvalidObjectUriError
from tests.contracts.object_store_contract import PDF, ObjectStoreContract


class TestLocalObjectStoreContract(ObjectStoreContract):
    subject = LocalObjectStore

    @pytest.fixture
    def store(self, tmp_path: Path) -> LocalObjectStore:
        return LocalObjectStore(tmp_path / "objects")


def test_local_store_reads_nothing_outside_its_root(tmp_path: Path) -> None:
    secret = tmp_path / "secret.pdf"
    secret.write_bytes(PDF)
    store = LocalObjectStore(tmp_path / "objects")
    with pytest.raises(InvalidObjectUriError):
        store.get(secret.as_uri())
    with pytest.raises(InvalidObjectUriError):
        store.exists(secret.as_uri())
    store.delete(secret.as_uri())  # not this store's object: left alone
    assert secret.read_bytes() == PDF


def test_local_store_follows_no_symlink_out_of_its_root(tmp_path: Path) -> None:
    (tmp_path / "objects").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "objects" / "documents").symlink_to(tmp_path / "elsewhere")
    store = LocalObjectStore(tmp_path / "objects")
    with pytest.raises(InvalidObjectKeyError):
        store.put("documents/x", PDF, "application/pdf")
    assert not any((tmp_path / "elsewhere").iterdir())


def fresh_bucket_store(endpoint: str, prefix: str) -> S3ObjectStore:
    """A store on a new, empty bucket of the moto server."""
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    bucket = f"contract-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return S3ObjectStore(bucket, prefix, client=client)


class TestS3ObjectStoreContract(ObjectStoreContract):
    subject = S3ObjectStore

    @pytest.fixture(params=["tenant-a", ""], ids=["prefix", "bucket-root"])
    def store(self, s3_endpoint: str, request: pytest.FixtureRequest) -> S3ObjectStore:
        return fresh_bucket_store(s3_endpoint, request.param)
