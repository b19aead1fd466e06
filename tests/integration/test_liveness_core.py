"""Liveness mechanisms against the real broker and PostgreSQL: error classes at the Kafka edge,
the consume loop giving up on poison, retry backoff surviving a rebalance, the attempt ledger,
the reconciler and reprocess."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, text, update

from pagestream.db.attempts import start_attempt
from pagestream.db.reconcile import LOCK_KEY, overdue_documents, reconcile_once, reprocess_document
from pagestream.db.schema import documents, page_attempts, pages
from pagestream.errors import InputError, PagestreamError, TransientError
from pagestream.events.envelope import decode_record, header_map
from pagestream.events.models import DocumentOcrCompletedV1, PageOcrRequestedV1, page_id_for, utcnow
from pagestream.events.topics import (
    DOCUMENT_COMMITTED,
    DOCUMENT_OCR_COMPLETED,
    PAGE_OCR_COMPLETED,
    PAGE_OCR_REQUESTED,
    PAGE_OCR_REQUESTED_RETRY,
)
from pagestream.kafka.admin import ensure_topics
from pagestream.kafka.consumer import EventConsumer
from pagestream.kafka.errors import RecordTooLargeError
from pagestream.kafka.producer import EventProducer
from pagestream.settings import Settings
from pagestream.storage import open_store
from pagestream.workers.loop import ConsumerLoop, Delivery, Emit, Handler, RetryTopic
from tests.integration.fabricate import completed, new_document
from tests.integration.pipeline_fixtures import drain
from tests.waiting import wait_until

LONG_AGO = timedelta(days=3650)  # older than anything another test leaves behind
STALL = float(LONG_AGO.total_seconds() / 2)


def publish_three_page_tasks(producer: EventProducer, topic: str) -> list[PageOcrRequestedV1]:
    """Pages 1–3 of a new document as page tasks on partition 0 of ``topic``; the tasks."""
    doc = uuid.uuid4()
    tasks = [
        PageOcrRequestedV1(
            page_id=page_id_for(doc, n),
            document_id=doc,
            page_number=n,
            page_count=3,
            storage_uri="file:///x",
            media_type="image/png",
            sha256="0" * 64,
        )
        for n in (1, 2, 3)
    ]
    producer.publish_all([(t, topic, 0) for t in tasks])
    return tasks


def test_a_record_over_the_size_limit_is_a_permanent_error(migrated: Settings) -> None:
    producer = EventProducer(migrated)
    try:
        with pytest.raises(RecordTooLargeError) as info:
            producer.produce(PAGE_OCR_COMPLETED, b"k", b"x" * 2_000_000, [])
        assert info.value.retryable is False
    finally:
        producer.close(5)


def test_consumer_loop_dead_letters_what_its_handler_cannot_handle_and_moves_on(migrated: Settings) -> None:
    topic = f"pagestream.test-loop-{uuid.uuid4().hex[:8]}.v1"
    dlq = topic + ".dlq"
    ensure_topics(migrated, [topic, dlq])
    producer = EventProducer(migrated)
    events = publish_three_page_tasks(producer, topic)
    handled: list[int] = []

    class Pages(Handler[PageOcrRequestedV1]):
        def handle(self, d: Delivery[PageOcrRequestedV1]) -> list[Emit]:
            if d.task.page_number == 2:
                raise ValueError("a bug in the handler")
            handled.append(d.task.page_number)
            return []

    loop = ConsumerLoop(
        EventConsumer(migrated, f"test-{uuid.uuid4()}", [topic]),
        EventProducer(migrated),
        service="test",
        dlq_topic=dlq,
        expected=PageOcrRequestedV1,
        handler=Pages(),
    )

    stop = threading.Event()
    t = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    t.start()
    try:
        wait_until(lambda: handled == [1, 3], 30, "pages 1 and 3 handled past the poison record")
    finally:
        stop.set()
        t.join(10)
    dead = EventConsumer(migrated, f"test-{uuid.uuid4()}", [dlq])
    try:
        recs = drain(dead, lambda rs: len(rs) >= 1, 20)
    finally:
        dead.close()
    assert len(recs) == 1
    h = header_map(recs[0].headers)
    assert h["pagestream_dlq_error_class"] == "ValueError"
    assert h["pagestream_dlq_reason"] == "unexpected_error"
    assert "a bug in the handler" in h["pagestream_dlq_detail"]
    assert h["pagestream_dlq_source"].startswith(f"{topic}[0]@")
    assert decode_record(recs[0].value, recs[0].headers).data == events[1]  # the record itself, intact
    producer.close(5)


def test_consumer_loop_routes_a_handlers_errors_by_class(migrated: Settings) -> None:
    """One loop, three outcomes: a result is published before the commit; a retryable error sends
    the task to its retry topic with the next attempt and a ``not_before`` the loop then waits out;
    a permanent error publishes the handler's failure event and dead-letters the task."""
    topic = f"pagestream.test-route-{uuid.uuid4().hex[:8]}.v1"
    retry_topic, dlq, out, failed_topic = topic + ".retry", topic + ".dlq", topic + ".out", topic + ".failed"
    ensure_topics(migrated, [topic, retry_topic, dlq, out, failed_topic])
    producer = EventProducer(migrated)
    events = publish_three_page_tasks(producer, topic)
    handled: dict[int, Any] = {}

    class Pages(Handler[PageOcrRequestedV1]):
        dead_letter_failures = True

        def handle(self, d: Delivery[PageOcrRequestedV1]) -> list[Emit]:
            if d.task.page_number == 2 and d.attempt == 1:
                raise TransientError("the engine is away for a moment")
            if d.task.page_number == 3:
                raise InputError("this page can never be read")
            handled[d.task.page_number] = utcnow()
            return [Emit(d.task, out)]

        def failed(self, d: Delivery[PageOcrRequestedV1], error: PagestreamError) -> list[Emit]:
            return [Emit(d.task.model_copy(update={"last_error": error.reason}), failed_topic)]

    loop = ConsumerLoop(
        EventConsumer(migrated, f"test-{uuid.uuid4()}", [topic, retry_topic]),
        EventProducer(migrated),
        service="test",
        dlq_topic=dlq,
        expected=PageOcrRequestedV1,
        handler=Pages(),
        retry=RetryTopic(retry_topic, max_attempts=3, delay=lambda attempt: 2.0),
        max_defer_seconds=30.0,
    )
    stop = threading.Event()
    t = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    t.start()
    try:
        wait_until(lambda: set(handled) == {1, 2}, 60, "page 1, and page 2 on its second attempt, handled")
    finally:
        stop.set()
        t.join(10)
        producer.close(5)

    def read(name: str, count: int) -> list[Any]:
        c = EventConsumer(migrated, f"test-{uuid.uuid4()}", [name])
        try:
            return drain(c, lambda rs: len(rs) >= count, 20)
        finally:
            c.close()

    results = [decode_record(r.value, r.headers).data for r in read(out, 2)]
    assert sorted((e.page_number, e.attempt) for e in results) == [(1, 1), (2, 2)]
    (again,) = [decode_record(r.value, r.headers).data for r in read(retry_topic, 1)]
    assert again.page_number == 2 and again.attempt == 2 and again.last_error.startswith("transient: ")
    assert handled[2] >= again.not_before  # the loop held the retry back until its not_before
    (failure,) = [decode_record(r.value, r.headers).data for r in read(failed_topic, 1)]
    assert failure.page_number == 3 and failure.last_error == "invalid_input"
    (dead,) = read(dlq, 1)
    h = header_map(dead.headers)
    assert h["pagestream_dlq_reason"] == "invalid_input" and h["pagestream_dlq_error_class"] == "InputError"
    assert decode_record(dead.value, dead.headers).data == events[2]  # the task itself, intact


def _insert_document(
    engine: Engine,
    *,
    page_count: int,
    status: str = "received",
    storage_uri: str = "file:///nope",
    media_type: str = "image/png",
    age: timedelta = timedelta(0),
) -> uuid.UUID:
    doc_id = uuid.uuid4()
    then = utcnow() - age
    with engine.begin() as conn:
        conn.execute(
            insert(documents).values(
                id=doc_id,
                sha256=uuid.uuid4().hex * 2,
                media_type=media_type,
                size_bytes=10,
                filename="t.png",
                storage_uri=storage_uri,
                status=status,
                page_count=page_count,
                received_at=then,
                updated_at=then,
            )
        )
    return doc_id


def test_a_retry_waiting_out_its_backoff_loses_nothing_when_the_group_rebalances(
    migrated: Settings, engine: Engine
) -> None:
    from pagestream._testing.pages import png_bytes, text_page_image
    from pagestream.workers.page_worker import PageWorker

    store = open_store(migrated)
    uri = store.put(
        f"test/{uuid.uuid4()}.png",
        png_bytes(text_page_image(["Backoff and rebalance"]), dpi=300),
        "image/png",
    )
    waiting = _insert_document(engine, page_count=1, storage_uri=uri)
    fresh = _insert_document(engine, page_count=1, storage_uri=uri)
    tasks = {
        doc: PageOcrRequestedV1(
            page_id=page_id_for(doc, 1),
            document_id=doc,
            page_number=1,
            page_count=1,
            storage_uri=uri,
            media_type="image/png",
            sha256="0" * 64,
        )
        for doc in (waiting, fresh)
    }
    results = EventConsumer(migrated, f"test-{uuid.uuid4()}", [PAGE_OCR_COMPLETED])
    results.start()
    producer = EventProducer(migrated)
    retry = tasks[waiting].model_copy(update={"attempt": 2, "not_before": utcnow() + timedelta(seconds=6)})
    producer.publish_sync(retry, topic=PAGE_OCR_REQUESTED_RETRY)
    stop = threading.Event()
    first = PageWorker(migrated, worker_id=91)
    threads = [threading.Thread(target=first.run, args=(stop,), daemon=True)]
    threads[0].start()
    try:
        wait_until(
            lambda: bool(first._loop.deferred), 60, "the first worker to put the retry back for its backoff"
        )
        second = PageWorker(migrated, worker_id=92)  # joins the group: partitions move while the retry waits
        threads.append(threading.Thread(target=second.run, args=(stop,), daemon=True))
        threads[1].start()
        producer.publish_sync(tasks[fresh], topic=PAGE_OCR_REQUESTED)
        wanted = {page_id_for(waiting, 1), page_id_for(fresh, 1)}
        recs = drain(
            results, lambda rs: wanted <= {decode_record(r.value, r.headers).data.page_id for r in rs}, 90
        )
        got = {
            decode_record(r.value, r.headers).data.page_id: decode_record(r.value, r.headers).data
            for r in recs
        }
        assert wanted <= set(got), (
            "a page task was lost: "
            f"waiting={page_id_for(waiting, 1) in got} fresh={page_id_for(fresh, 1) in got}"
        )
        assert got[page_id_for(waiting, 1)].completed_at >= retry.not_before  # the backoff was honoured
    finally:
        stop.set()
        for t in threads:
            t.join(20)
        results.close()
        producer.close(5)


def test_attempt_ledger_counts_starts_and_sees_completed_pages(engine: Engine) -> None:
    doc = new_document(engine, 1)
    pid = page_id_for(doc, 1)
    assert [
        start_attempt(engine, page_id=pid, document_id=doc, page_number=1, worker="w").attempts
        for _ in range(3)
    ] == [1, 2, 3]
    from pagestream.db.progress import apply_page_outcomes

    apply_page_outcomes(engine, [completed(doc, 1, 1, "done")])
    again = start_attempt(engine, page_id=pid, document_id=doc, page_number=1, worker="w")
    assert again.attempts == 4 and again.already_completed


def test_reconciler_redrives_missing_pages_through_the_outbox_then_finishes_the_document(
    engine: Engine, relay: Any, consumer_factory: Any
) -> None:
    doc = _insert_document(engine, page_count=2, status="processing", age=LONG_AGO)
    from pagestream.db.progress import apply_page_outcomes

    apply_page_outcomes(engine, [completed(doc, 1, 2, "page one")])
    with engine.begin() as conn:  # no progress for ages
        conn.execute(update(documents).where(documents.c.id == doc).values(updated_at=utcnow() - LONG_AGO))
    tasks = consumer_factory(PAGE_OCR_REQUESTED)
    finals = consumer_factory(DOCUMENT_OCR_COMPLETED)

    first = reconcile_once(engine, stall_seconds=STALL, max_rounds=1)
    assert first.ran and first.redriven == [(doc, [2])] and not first.finished
    # the re-request travels the committed-only path: outbox → WAL → relay → topic
    recs = drain(tasks, lambda rs: any(r.key == str(page_id_for(doc, 2)).encode() for r in rs), 30)
    task = next(
        decode_record(r.value, r.headers).data for r in recs if r.key == str(page_id_for(doc, 2)).encode()
    )
    assert task.document_id == doc and task.page_number == 2 and task.page_count == 2
    assert reconcile_once(engine, stall_seconds=STALL, max_rounds=1).redriven == []  # progress clock reset

    with engine.begin() as conn:
        conn.execute(update(documents).where(documents.c.id == doc).values(updated_at=utcnow() - LONG_AGO))
    second = reconcile_once(engine, stall_seconds=STALL, max_rounds=1)
    assert second.finished == [(doc, "partial")]
    with engine.connect() as conn:
        row = conn.execute(select(documents).where(documents.c.id == doc)).mappings().one()
        failed = (
            conn.execute(select(pages).where(pages.c.document_id == doc, pages.c.page_number == 2))
            .mappings()
            .one()
        )
    assert row["status"] == "partial" and row["completed_at"] is not None and "no progress" in row["error"]
    assert failed["status"] == "failed" and failed["error_reason"] == "no_progress"
    assert "reprocess" in failed["error_detail"]
    recs = drain(finals, lambda rs: any(r.key == str(doc).encode() for r in rs), 30)
    done = [decode_record(r.value, r.headers).data for r in recs if r.key == str(doc).encode()]
    assert len(done) == 1 and isinstance(done[0], DocumentOcrCompletedV1) and done[0].status == "partial"


def test_only_one_replica_reconciles_at_a_time(engine: Engine) -> None:
    with engine.connect() as other:
        other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
        try:
            assert reconcile_once(engine, stall_seconds=STALL, max_rounds=1).ran is False
        finally:
            other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
            other.commit()
    assert reconcile_once(engine, stall_seconds=STALL, max_rounds=1).ran is True


def test_documents_received_before_the_broker_started_are_redriven_at_once(engine: Engine) -> None:
    doc = _insert_document(engine, page_count=1, age=timedelta(seconds=30))
    later_doc = _insert_document(engine, page_count=1)
    epoch = utcnow() - timedelta(seconds=5)
    result = reconcile_once(engine, stall_seconds=STALL, max_rounds=3, broker_epoch=epoch)
    redriven = dict(result.redriven)
    assert redriven.get(doc) == [1]
    assert later_doc not in redriven


def test_overdue_counts_unfinished_documents_past_the_bound(engine: Engine) -> None:
    before = overdue_documents(engine, older_than_seconds=STALL)
    _insert_document(engine, page_count=1, status="processing", age=LONG_AGO)
    _insert_document(engine, page_count=1, status="completed", age=LONG_AGO)
    assert overdue_documents(engine, older_than_seconds=STALL) == before + 1


def test_reprocess_starts_afresh_through_the_outbox(
    engine: Engine, relay: Any, consumer_factory: Any
) -> None:
    doc = new_document(engine, 1)
    from pagestream.db.progress import apply_page_outcomes

    apply_page_outcomes(engine, [completed(doc, 1, 1, "old text")])
    start_attempt(engine, page_id=page_id_for(doc, 1), document_id=doc, page_number=1, worker="w")
    committed = consumer_factory(DOCUMENT_COMMITTED)
    out = reprocess_document(engine, doc, languages="eng", force_ocr=True)
    assert out["status"] == "received" and out["options"]["languages"] == "eng"
    with engine.connect() as conn:
        row = conn.execute(select(documents).where(documents.c.id == doc)).mappings().one()
        assert conn.execute(select(pages).where(pages.c.document_id == doc)).first() is None
        assert conn.execute(select(page_attempts).where(page_attempts.c.document_id == doc)).first() is None
    assert row["status"] == "received" and row["pages_done"] == 0 and row["completed_at"] is None
    recs = drain(committed, lambda rs: sum(r.key == str(doc).encode() for r in rs) >= 2, 30)
    events = [decode_record(r.value, r.headers).data for r in recs if r.key == str(doc).encode()]
    assert events[-1].options.languages == "eng" and events[-1].options.force_ocr is True


def test_reprocess_of_a_missing_document_says_so(engine: Engine) -> None:
    from pagestream.db.errors import DocumentNotFoundError

    with pytest.raises(DocumentNotFoundError):
        reprocess_document(engine, uuid.uuid4())
