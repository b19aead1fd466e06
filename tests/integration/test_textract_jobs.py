"""Async Textract jobs as events, on the real broker: committed S3 PDF → job submitted → polled → page results.

Textract is a real boto3 client behind botocore's Stubber (requests and responses validated against
the service model); nothing reaches the network. The splitter and the poller have one client each,
so each Stubber sees its own calls in order.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from pagestream.events.envelope import decode_record
from pagestream.events.models import (
    DocumentCommittedV1,
    DocumentOcrJobSubmittedV1,
    DocumentOptions,
    Event,
    PageOcrCompletedV1,
    PageOcrFailedV1,
    PageOcrRequestedV1,
    page_id_for,
    utcnow,
)
from pagestream.events.topics import (
    DOCUMENT_COMMITTED,
    DOCUMENT_OCR_JOB_SUBMITTED,
    PAGE_OCR_COMPLETED,
    PAGE_OCR_FAILED,
    PAGE_OCR_REQUESTED,
)
from pagestream.kafka.consumer import ConsumedRecord, EventConsumer
from pagestream.kafka.producer import EventProducer
from pagestream.ocr.textract_async import AsyncPollPolicy, TextractAsyncJobs
from pagestream.settings import Settings
from pagestream.workers.splitter import DocumentSplitter
from pagestream.workers.textract_jobs import TextractJobPoller
from tests.integration.pipeline_fixtures import drain, wait_until

BUCKET = "pagestream-test"
#: polls every few tens of milliseconds so the test is quick; the backoff shape is the real one
FAST = AsyncPollPolicy(
    initial_delay_seconds=0.05, multiplier=2.0, max_delay_seconds=0.2, max_total_wait_seconds=60
)
PAGE_TEXT = {
    1: ["Invoice 2024-117", "Total due: 42.00"],
    2: ["Terms and conditions"],
    3: ["Signed: A. Alvarez"],
}


@dataclass
class Services:
    """The splitter and poller under test, with the Stubbers behind their Textract clients."""

    splitter_stub: Stubber
    poller_stub: Stubber
    producer: EventProducer


@pytest.fixture(scope="module")
def services(migrated: Settings) -> Iterator[Services]:
    """A splitter and a Textract job poller running in threads for this module (dummy AWS credentials)."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        }.items():
            mp.setenv(name, value)
        mp.delenv("AWS_PROFILE", raising=False)
        clients = [boto3.session.Session().client("textract", region_name="us-east-1") for _ in range(2)]
        stubs = [Stubber(c) for c in clients]
        for s in stubs:
            s.activate()
        splitter = DocumentSplitter(migrated, textract_jobs=TextractAsyncJobs(clients[0], policy=FAST))
        poller = TextractJobPoller(migrated, jobs=TextractAsyncJobs(clients[1], policy=FAST))
        producer = EventProducer(migrated, client_id="test-textract-jobs")
        producer.start()
        stop = threading.Event()
        threads = [
            threading.Thread(target=w.run, args=(stop,), daemon=True, name=n)
            for w, n in ((splitter, "splitter"), (poller, "textract-jobs"))
        ]
        for t in threads:
            t.start()
        wait_until(lambda: splitter.ready and poller.ready, 30, "splitter and poller running")
        try:
            yield Services(splitter_stub=stubs[0], poller_stub=stubs[1], producer=producer)
        finally:
            stop.set()
            for t in threads:
                t.join(15)
            producer.close(5)
            for s in stubs:
                s.deactivate()


def _line_blocks(page: int, texts: list[str]) -> list[dict[str, Any]]:
    """PAGE, LINE and WORD blocks of one page, shaped like Textract's (ids unique per call)."""
    blocks: list[dict[str, Any]] = []
    line_ids = []
    for i, text in enumerate(texts):
        top = 0.1 + 0.2 * i
        word_ids = []
        for j, word in enumerate(text.split()):
            wid = str(uuid.uuid4())
            word_ids.append(wid)
            blocks.append(
                {
                    "BlockType": "WORD",
                    "Id": wid,
                    "Page": page,
                    "Text": word,
                    "Confidence": 97.5,
                    "Geometry": {
                        "BoundingBox": {"Left": 0.1 + 0.1 * j, "Top": top, "Width": 0.08, "Height": 0.02}
                    },
                }
            )
        lid = str(uuid.uuid4())
        line_ids.append(lid)
        blocks.append(
            {
                "BlockType": "LINE",
                "Id": lid,
                "Page": page,
                "Text": text,
                "Confidence": 97.5,
                "Geometry": {"BoundingBox": {"Left": 0.1, "Top": top, "Width": 0.6, "Height": 0.02}},
                "Relationships": [{"Type": "CHILD", "Ids": word_ids}],
            }
        )
    blocks.append(
        {
            "BlockType": "PAGE",
            "Id": str(uuid.uuid4()),
            "Page": page,
            "Geometry": {"BoundingBox": {"Left": 0.0, "Top": 0.0, "Width": 1.0, "Height": 1.0}},
            "Relationships": [{"Type": "CHILD", "Ids": line_ids}],
        }
    )
    return blocks


def _result(state: str, pages: list[int], *, next_token: str | None = None) -> dict[str, Any]:
    """A GetDocumentTextDetection result page holding the blocks of ``pages``."""
    body: dict[str, Any] = {
        "JobStatus": state,
        "DocumentMetadata": {"Pages": 3},
        "DetectDocumentTextModelVersion": "1.0",
        "Blocks": [b for p in pages for b in _line_blocks(p, PAGE_TEXT[p])],
    }
    if next_token:
        body["NextToken"] = next_token
    return body


def _poll(stub: Stubber, job_id: str, body: dict[str, Any]) -> None:
    """Queue the answer to one cheap status poll."""
    stub.add_response("get_document_text_detection", body, {"JobId": job_id, "MaxResults": 1})


def _results(stub: Stubber, job_id: str, body: dict[str, Any], token: str | None = None) -> None:
    """Queue the answer to one result page request."""
    params: dict[str, Any] = {"JobId": job_id, "MaxResults": 1000}
    if token:
        params["NextToken"] = token
    stub.add_response("get_document_text_detection", body, params)


def _committed(
    doc_id: uuid.UUID, *, uri: str, pages: int = 3, engine: str | None = "textract", size_bytes: int = 120_000
) -> DocumentCommittedV1:
    """A committed PDF document event."""
    return DocumentCommittedV1(
        document_id=doc_id,
        sha256=hashlib.sha256(doc_id.bytes).hexdigest(),
        media_type="application/pdf",
        size_bytes=size_bytes,
        page_count=pages,
        storage_uri=uri,
        options=DocumentOptions(engine=engine),
        received_at=utcnow(),
    )


def _submitted(doc_id: uuid.UUID, job_id: str) -> DocumentOcrJobSubmittedV1:
    """A job-submitted event as the splitter publishes it, due now."""
    now = utcnow()
    return DocumentOcrJobSubmittedV1(
        document_id=doc_id,
        job_id=job_id,
        storage_uri=f"s3://{BUCKET}/uploads/{doc_id}.pdf",
        page_count=3,
        submitted_at=now,
        not_before=now,
    )


def _events_of(records: list[ConsumedRecord], doc_id: uuid.UUID) -> list[Event]:
    """The decoded events among ``records`` that belong to document ``doc_id``."""
    out = []
    for r in records:
        data = decode_record(r.value, r.headers).data
        if getattr(data, "document_id", None) == doc_id:
            out.append(data)
    return out


def _collect(
    consumer: EventConsumer, doc_id: uuid.UUID, until: Callable[[list[Event]], bool], timeout: float = 20.0
) -> list[Event]:
    """Read until ``until`` holds for this document's events, then a moment more to catch any surplus."""
    records = drain(consumer, lambda rs: until(_events_of(rs, doc_id)), timeout)
    events = _events_of(records, doc_id)
    assert until(events), f"timed out; got {[type(e).__name__ for e in events]}"
    records += drain(consumer, lambda _: False, 1.0)
    return _events_of(records, doc_id)


def _of(events: list[Event], kind: type[Event]) -> list[Any]:
    """Events of one type."""
    return [e for e in events if isinstance(e, kind)]


def _pages_final(n: int) -> Callable[[list[Event]], bool]:
    """True once ``n`` page outcomes (completed or failed) arrived."""
    return lambda evs: len(_of(evs, PageOcrCompletedV1)) + len(_of(evs, PageOcrFailedV1)) >= n


def test_s3_pdf_goes_through_one_async_job_polled_with_backoff(
    services: Services, consumer_factory: Callable[..., EventConsumer]
) -> None:
    doc_id = uuid.uuid4()
    job_id = f"job-{doc_id.hex}"
    key = f"uploads/{doc_id}.pdf"
    start_params = {
        "DocumentLocation": {"S3Object": {"Bucket": BUCKET, "Name": key}},
        "ClientRequestToken": doc_id.hex,
    }
    # the committed event arrives twice; the same ClientRequestToken makes Textract answer with the same job
    for _ in range(2):
        services.splitter_stub.add_response("start_document_text_detection", {"JobId": job_id}, start_params)
    _poll(services.poller_stub, job_id, {"JobStatus": "IN_PROGRESS"})
    _poll(services.poller_stub, job_id, {"JobStatus": "SUCCEEDED", "DocumentMetadata": {"Pages": 3}})
    # page 2's blocks are split across the two result pages
    first, second = _result("SUCCEEDED", [1, 2]), _result("SUCCEEDED", [3])
    page2 = [b for b in first["Blocks"] if b["Page"] == 2]
    first["Blocks"] = [b for b in first["Blocks"] if b["Page"] == 1] + page2[:2]
    second["Blocks"] = page2[2:] + second["Blocks"]
    first["NextToken"] = "token-1"
    _results(services.poller_stub, job_id, first)
    _results(services.poller_stub, job_id, second, token="token-1")
    out = consumer_factory(
        DOCUMENT_OCR_JOB_SUBMITTED, PAGE_OCR_REQUESTED, PAGE_OCR_COMPLETED, PAGE_OCR_FAILED
    )

    committed = _committed(doc_id, uri=f"s3://{BUCKET}/{key}")
    services.producer.publish_sync(committed, topic=DOCUMENT_COMMITTED)
    services.producer.publish_sync(committed, topic=DOCUMENT_COMMITTED)
    events = _collect(out, doc_id, _pages_final(3))

    completed = sorted(_of(events, PageOcrCompletedV1), key=lambda e: e.page_number)
    assert [e.page_number for e in completed] == [1, 2, 3], "exactly one result per page"
    assert not _of(events, PageOcrFailedV1) and not _of(events, PageOcrRequestedV1), (
        "no page tasks, no failures"
    )
    for e in completed:
        assert e.page_id == page_id_for(doc_id, e.page_number)
        assert e.layout.text == "\n".join(PAGE_TEXT[e.page_number])
        assert e.layout.engine == "textract" and e.layout.engine_version == "textract 1.0"
    submitted = _of(events, DocumentOcrJobSubmittedV1)
    assert {s.job_id for s in submitted} == {job_id}
    # two submissions (one per delivery), one re-enqueue after IN_PROGRESS with a later not_before
    assert sorted(s.poll_attempt for s in submitted) == [0, 0, 1]
    first_poll = next(s for s in submitted if s.poll_attempt == 0)
    second_poll = next(s for s in submitted if s.poll_attempt == 1)
    assert second_poll.not_before is not None and first_poll.not_before is not None
    assert second_poll.not_before > first_poll.not_before
    assert completed[0].started_at == first_poll.submitted_at
    # every queued Textract answer was used: two starts, two polls, two result pages, nothing more
    services.splitter_stub.assert_no_pending_responses()
    services.poller_stub.assert_no_pending_responses()


def test_an_ingested_pdf_under_its_content_address_takes_the_async_job_path(
    services: Services, consumer_factory: Callable[..., EventConsumer]
) -> None:
    """Ingest stores bytes under ``documents/<sha[:2]>/<sha>`` (no suffix): the media type ingest
    detected decides, so a multi-page PDF submitted with engine=textract really runs as one job."""
    doc_id = uuid.uuid4()
    job_id = f"job-{doc_id.hex}"
    sha = hashlib.sha256(doc_id.bytes).hexdigest()
    key = f"documents/{sha[:2]}/{sha}"
    services.splitter_stub.add_response(
        "start_document_text_detection",
        {"JobId": job_id},
        {"DocumentLocation": {"S3Object": {"Bucket": BUCKET, "Name": key}}, "ClientRequestToken": doc_id.hex},
    )
    _poll(services.poller_stub, job_id, {"JobStatus": "SUCCEEDED", "DocumentMetadata": {"Pages": 3}})
    _results(services.poller_stub, job_id, _result("SUCCEEDED", [1, 2, 3]))
    out = consumer_factory(
        DOCUMENT_OCR_JOB_SUBMITTED, PAGE_OCR_REQUESTED, PAGE_OCR_COMPLETED, PAGE_OCR_FAILED
    )

    services.producer.publish_sync(_committed(doc_id, uri=f"s3://{BUCKET}/{key}"), topic=DOCUMENT_COMMITTED)
    events = _collect(out, doc_id, _pages_final(3))

    assert sorted(e.page_number for e in _of(events, PageOcrCompletedV1)) == [1, 2, 3]
    assert not _of(events, PageOcrRequestedV1), "no page tasks: the async job did the work"
    assert {s.job_id for s in _of(events, DocumentOcrJobSubmittedV1)} == {job_id}
    services.splitter_stub.assert_no_pending_responses()
    services.poller_stub.assert_no_pending_responses()


def test_failed_job_fails_every_page_with_its_reason(
    services: Services, consumer_factory: Callable[..., EventConsumer]
) -> None:
    doc_id = uuid.uuid4()
    job_id = f"job-{doc_id.hex}"
    _poll(
        services.poller_stub,
        job_id,
        {"JobStatus": "FAILED", "StatusMessage": "Request has unsupported document format"},
    )
    out = consumer_factory(PAGE_OCR_COMPLETED, PAGE_OCR_FAILED)

    services.producer.publish_sync(_submitted(doc_id, job_id), topic=DOCUMENT_OCR_JOB_SUBMITTED)
    events = _collect(out, doc_id, _pages_final(3))

    failed = sorted(_of(events, PageOcrFailedV1), key=lambda e: e.page_number)
    assert [e.page_number for e in failed] == [1, 2, 3] and not _of(events, PageOcrCompletedV1)
    assert {e.reason for e in failed} == {"ocr_job_failed"}
    assert all("unsupported document format" in e.detail and job_id in e.detail for e in failed)
    services.poller_stub.assert_no_pending_responses()


def test_throttled_result_page_is_retried_and_partial_results_fail_missing_pages(
    services: Services, consumer_factory: Callable[..., EventConsumer]
) -> None:
    doc_id = uuid.uuid4()
    job_id = f"job-{doc_id.hex}"
    # PARTIAL_SUCCESS: page 2 failed inside Textract; the second result page is throttled once
    first = _result("PARTIAL_SUCCESS", [1], next_token="token-1")
    second = _result("PARTIAL_SUCCESS", [3])
    partial = {
        "JobStatus": "PARTIAL_SUCCESS",
        "DocumentMetadata": {"Pages": 3},
        "Warnings": [{"ErrorCode": "PAGE_PROCESSING_FAILED", "Pages": [2]}],
    }
    _poll(services.poller_stub, job_id, partial)
    _results(services.poller_stub, job_id, first)
    services.poller_stub.add_client_error(
        "get_document_text_detection",
        service_error_code="ProvisionedThroughputExceededException",
        http_status_code=400,
        expected_params={"JobId": job_id, "MaxResults": 1000, "NextToken": "token-1"},
    )
    # the consumer loop rewinds the record and handles it again from the start
    _poll(services.poller_stub, job_id, partial)
    _results(services.poller_stub, job_id, first)
    _results(services.poller_stub, job_id, second, token="token-1")
    out = consumer_factory(PAGE_OCR_COMPLETED, PAGE_OCR_FAILED)

    services.producer.publish_sync(_submitted(doc_id, job_id), topic=DOCUMENT_OCR_JOB_SUBMITTED)
    events = _collect(out, doc_id, _pages_final(3))

    assert sorted(e.page_number for e in _of(events, PageOcrCompletedV1)) == [1, 3]
    [failed] = _of(events, PageOcrFailedV1)
    assert failed.page_number == 2 and failed.reason == "ocr_job_page_failed" and "[2]" in failed.detail
    services.poller_stub.assert_no_pending_responses()


def test_other_documents_still_become_page_tasks(
    services: Services, consumer_factory: Callable[..., EventConsumer]
) -> None:
    single, local, other_engine, refused = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    out = consumer_factory(PAGE_OCR_REQUESTED, DOCUMENT_OCR_JOB_SUBMITTED)

    for ev in (
        _committed(single, uri=f"s3://{BUCKET}/uploads/{single}.pdf", pages=1),
        _committed(local, uri=f"file:///var/objects/{local}.pdf", pages=2),
        _committed(other_engine, uri=f"s3://{BUCKET}/uploads/{other_engine}.pdf", engine="tesseract"),
        # refused before any call (over Textract async's 500 MB): page tasks instead
        _committed(
            refused, uri=f"s3://{BUCKET}/documents/ab/{refused.hex}", pages=2, size_bytes=600 * 1024 * 1024
        ),
    ):
        services.producer.publish_sync(ev, topic=DOCUMENT_COMMITTED)

    def counts(rs: list[ConsumedRecord]) -> list[int]:
        return [len(_events_of(rs, d)) for d in (single, local, other_engine, refused)]

    records = drain(out, lambda rs: counts(rs) == [1, 2, 3, 2], 20)

    assert counts(records) == [1, 2, 3, 2]
    assert all(
        isinstance(e, PageOcrRequestedV1)
        for d in (single, local, other_engine, refused)
        for e in _events_of(records, d)
    )
    services.splitter_stub.assert_no_pending_responses()  # no Textract job was started
