"""``document.submit.v1`` with ``s3://`` URIs against S3 (moto): only the configured bucket and
prefix, size checked by HEAD before any read, malformed URIs rejected permanently on
``document.rejected.v1`` (never a retry that blocks the partition).

moto runs in-process (``mock_aws``): ``moto[server]``'s Flask is not in requirements.lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from sqlalchemy import Engine, text

from pagestream.events.envelope import decode_record
from pagestream.events.models import DocumentRejectedV1, DocumentSubmitV1
from pagestream.events.topics import DOCUMENT_REJECTED, DOCUMENT_SUBMIT
from pagestream.kafka.consumer import ConsumedRecord
from pagestream.kafka.producer import EventProducer
from pagestream.settings import Settings
from pagestream.storage import S3ObjectStore
from pagestream.storage.errors import InvalidObjectUriError, ObjectTooLargeError
from pagestream.workers.submit_consumer import SubmitCommandConsumer
from tests.integration.fabricate import pdf_bytes
from tests.integration.pipeline_fixtures import drain, running_submit_consumer, wait_until

BUCKET = "pagestream-docs"
PREFIX = "tenant-a"
LIMIT = 64 * 1024


class CountingClient:
    """The boto3 client, counting GETs (an oversized object must never be read)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.gets: list[str] = []

    def get_object(self, **kwargs: Any) -> Any:
        self.gets.append(kwargs["Key"])
        return self._client.get_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.fixture(scope="module")
def s3() -> Iterator[CountingClient]:
    with mock_aws():
        client = boto3.client(
            "s3", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        client.create_bucket(Bucket=BUCKET)
        client.create_bucket(Bucket="other-bucket")
        yield CountingClient(client)


@pytest.fixture(scope="module")
def store(s3: CountingClient) -> S3ObjectStore:
    return S3ObjectStore(BUCKET, PREFIX, client=s3)


@pytest.fixture(scope="module")
def s3_submit_consumer(
    migrated: Settings, engine: Engine, store: S3ObjectStore
) -> Iterator[SubmitCommandConsumer]:
    settings = migrated.model_copy(
        update={"max_upload_bytes": LIMIT, "storage_url": f"s3://{BUCKET}/{PREFIX}"}
    )
    with running_submit_consumer(settings, engine, store, "submit-consumer-s3") as consumer:
        yield consumer


@pytest.fixture(scope="module")
def producer(migrated: Settings) -> Iterator[EventProducer]:
    p = EventProducer(migrated, client_id="test-submit-s3-producer")
    yield p
    p.close(10)


def _rejections(records: list[ConsumedRecord]) -> list[DocumentRejectedV1]:
    out = []
    for r in records:
        e = decode_record(r.value, r.headers).data
        if isinstance(e, DocumentRejectedV1):
            out.append(e)
    return out


def test_s3_submits_are_bounded_and_confined(
    s3_submit_consumer: SubmitCommandConsumer,
    s3: CountingClient,
    producer: EventProducer,
    consumer_factory: Any,
    engine: Engine,
) -> None:
    run = uuid.uuid4().hex[:8]
    big_key = f"{PREFIX}/inbox/{run}-big.pdf"
    s3.put_object(Bucket=BUCKET, Key=big_key, Body=b"%PDF-1.7\n" + b"0" * LIMIT)
    elsewhere = f"{PREFIX}-evil/{run}.pdf"
    for bucket, key in (
        (BUCKET, elsewhere),
        (BUCKET, f"tenant-b/{run}.pdf"),
        ("other-bucket", f"{PREFIX}/{run}.pdf"),
    ):
        s3.put_object(Bucket=bucket, Key=key, Body=pdf_bytes("not yours"))
    cases = {
        f"big-{run}": (f"s3://{BUCKET}/{big_key}", 413, "too_large", f"limit is {LIMIT} bytes"),
        f"bucket-{run}": (
            f"s3://other-bucket/{PREFIX}/{run}.pdf",
            403,
            "uri_not_allowed",
            f"outside the bucket and prefix submit commands may read (s3://{BUCKET}/{PREFIX}/)",
        ),
        f"prefix-{run}": (
            f"s3://{BUCKET}/tenant-b/{run}.pdf",
            403,
            "uri_not_allowed",
            "outside the bucket and prefix",
        ),
        f"lookalike-{run}": (f"s3://{BUCKET}/{elsewhere}", 403, "uri_not_allowed", "outside"),
        f"badname-{run}": (
            f"s3://Bad_Bucket!!/{PREFIX}/{run}.pdf",
            400,
            "bad_uri",
            "bucket name 'Bad_Bucket!!'",
        ),
        f"nokey-{run}": (f"s3://{BUCKET}/", 400, "bad_uri", "not an s3://bucket/key URI"),
        f"missing-{run}": (f"s3://{BUCKET}/{PREFIX}/{run}-nope.pdf", 404, "object_not_found", "no object"),
    }
    for ref, (uri, *_) in cases.items():
        producer.publish_sync(DocumentSubmitV1(uri=uri, client_reference=ref), topic=DOCUMENT_SUBMIT)
    # a good document right after: nothing above blocked the partition
    good_key = f"{PREFIX}/inbox/{run}-good.pdf"
    s3.put_object(Bucket=BUCKET, Key=good_key, Body=pdf_bytes(f"good {run}"))
    producer.publish_sync(
        DocumentSubmitV1(uri=f"s3://{BUCKET}/{good_key}", client_reference=f"good-{run}"),
        topic=DOCUMENT_SUBMIT,
    )

    rejected = consumer_factory(DOCUMENT_REJECTED)

    def mine(rs: list[ConsumedRecord]) -> dict[str, DocumentRejectedV1]:
        return {e.client_reference: e for e in _rejections(rs) if e.client_reference in cases}

    got = mine(drain(rejected, lambda rs: len(mine(rs)) == len(cases), 30))
    assert set(got) == set(cases)
    for ref, (uri, status, reason, detail) in cases.items():
        e = got[ref]
        assert (e.uri, e.status_code, e.reason) == (uri, status, reason), (ref, e.detail)
        assert detail in e.detail, (ref, e.detail)
    assert big_key not in s3.gets, "the oversized object was read; HEAD must refuse it first"

    def good_row() -> Any:
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT status, storage_uri FROM documents WHERE client_reference = :r"),
                {"r": f"good-{run}"},
            ).first()

    row = wait_until(good_row, 30, "the good S3 document to be accepted")
    assert row[0] == "received" and row[1].startswith(f"s3://{BUCKET}/{PREFIX}/documents/")
    assert s3_submit_consumer.ready


def test_store_errors_for_malformed_uris_are_permanent(store: S3ObjectStore, s3: CountingClient) -> None:
    for uri in ("s3://Bad_Bucket!!/k", "s3://b/", "s3:///k", "s3://bucket/k?x=1"):
        with pytest.raises(InvalidObjectUriError) as raised:
            store.get(uri)
        assert not raised.value.retryable, uri
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/sized", Body=b"x" * 100)
    uri = f"s3://{BUCKET}/{PREFIX}/sized"
    assert store.get_bounded(uri, 100) == b"x" * 100
    with pytest.raises(ObjectTooLargeError) as too_big:
        store.get_bounded(uri, 99)
    assert (too_big.value.size, too_big.value.retryable) == (100, False)
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/empty", Body=b"")
    assert store.get_bounded(f"s3://{BUCKET}/{PREFIX}/empty", 10) == b""
    assert store.within(uri) and not store.within(f"s3://{BUCKET}/{PREFIX}x/sized")
