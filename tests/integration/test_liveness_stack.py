"""Liveness end to end: every accepted document reaches a final state, whatever fails.

Each test runs its own supervised embedded stack (`pagestream up`) with small reconciler
settings, injects one fault, and asserts what a user would notice: the final states, exactly
one page row per page, one finishing (``document.ocr-completed.v1``) per final state, and that
a good document submitted right after still completes. docs/reliability.md maps the faults of
issue 10 to these tests.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from datetime import UTC, datetime

import pytest

from pagestream.client import ApiClient
from pagestream.events.models import page_id_for
from tests.chaos_support import ChaosDoc, ChaosStack, make_corpus, ocr_worker_pids, wait_final
from tests.liveness_support import (
    Db,
    assert_one_finishing,
    elapsed,
    finishings,
    good_document_completes,
    scan_png,
    signal_pid,
    stack_on,
    state_dir,
    submit,
    text_then_dense_scan_pdf,
    wait_for,
    wait_gone,
)

# ---------------------------------------------------------------- 1. the embedded broker is lost


def down_then_up(corpus: list[ChaosDoc], *, workers: int, down_after: int, timeout: float) -> None:
    """Submit ``corpus``, `pagestream down` once ``down_after`` documents completed, `pagestream up`
    on the same state dir, and check that every document completes exactly once, with its pages."""
    n = len(corpus)
    t0 = time.monotonic()
    with state_dir() as state:
        with (
            stack_on(state, {}, ocr_workers=workers) as stack,
            ApiClient(stack.api_url, timeout=30) as client,
        ):
            ids = [submit(client, d.name, d.data) for d in corpus]

            def completed() -> int:
                return sum(1 for i in ids if client.document(i)["status"] == "completed")

            wait_for(lambda: completed() >= down_after, 120, f"{down_after} documents to complete", 0.2)
            # as in issue 10: a checkpoint persists the slot's confirmed position, so the outbox
            # is not replayed after the restart (PostgreSQL 17 never replays it)
            db = Db(stack)
            try:
                db.checkpoint()
            finally:
                db.close()
        up_at = datetime.now(UTC)
        with (
            stack_on(state, {}, ocr_workers=workers) as stack,
            ApiClient(stack.api_url, timeout=30) as client,
        ):
            final = wait_final(client, ids, timeout)
            docs, pages = Db.final_rows(stack, ids)
            after_up = [i for i in ids if docs[i]["completed_at"] > up_at]
            seen = finishings(stack, expect=dict.fromkeys(after_up, 1))
            good_document_completes(client)
    redriven = sum(docs[i]["reconcile_rounds"] for i in after_up)
    print(
        f"\nbroker lost: {n} documents, {len(after_up)} finished after `up`, {redriven} re-driven by the "
        f"reconciler; {elapsed(t0)} s"
    )

    assert len(docs) == n
    assert {d["status"] for d in final.values()} == {"completed"}, final
    assert len(after_up) >= min(n // 4, 10), (
        f"only {len(after_up)} documents were in flight at `down`; the test proves little"
    )
    for i, doc in zip(ids, corpus, strict=True):
        d = docs[i]
        assert (d["page_count"], d["pages_done"], d["pages_failed"]) == (doc.pages, doc.pages, 0), (
            doc.name,
            d,
        )
        assert [(p["page_number"], p["status"]) for p in pages[i]] == [
            (k, "completed") for k in range(1, doc.pages + 1)
        ], (doc.name, pages[i])
        # re-driven at most once (the epoch), and only documents the broker had lost
        assert d["reconcile_rounds"] <= 1, d
        if i in after_up:
            assert_one_finishing(d, seen.get(i, []), required=True)
        else:  # finished before `down`: its event may be replayed by cdc, never a second finishing
            assert d["reconcile_rounds"] == 0, d
            assert_one_finishing(d, seen.get(i, []), required=False)
    assert redriven >= 1, "nothing was re-driven: the documents recovered some other way"


def test_stack_down_mid_flight_then_up_finishes_every_document() -> None:
    """`pagestream down` with work in flight, then `pagestream up` on the same state dir: PostgreSQL
    keeps its rows, the in-memory broker starts empty, and the reconciler re-drives every unfinished
    document (last touched before ``PAGESTREAM_BROKER_EPOCH``): all complete, nothing resubmitted.
    16 one-page scans, `down` after the first finished (issue 10's reproduction)."""
    corpus = [ChaosDoc(f"scan-{i}.png", "image", scan_png(i), 1) for i in range(16)]
    down_then_up(corpus, workers=1, down_after=1, timeout=120)


@pytest.mark.chaos
def test_stack_down_mid_flight_then_up_mixed_corpus() -> None:
    """The same with 150 mixed documents (multi-page PDFs, drawings, scans) and two workers: documents
    half done at `down` get only their missing pages re-requested."""
    down_then_up(make_corpus(150), workers=2, down_after=20, timeout=600)


# ---------------------------------------------------------------- 2. a page that kills its worker


def test_page_that_kills_its_worker_fails_after_the_attempts() -> None:
    """A page whose worker is SIGKILLed while reading it (as an OOM kill would), every time: the
    attempt ledger counts each start, and once ``PAGESTREAM_OCR_MAX_ATTEMPTS`` are spent the page
    is ``failed`` (``worker_died``, with the limits and what to do), the document ``partial``."""
    from pagestream.events.topics import PAGE_OCR_REQUESTED_DLQ
    from tests.chaos_support import read_topic

    max_attempts = 3
    t0 = time.monotonic()
    env = {"PAGESTREAM_OCR_MAX_ATTEMPTS": str(max_attempts)}  # default stall (900 s): no re-drive here
    with (
        state_dir() as state,
        stack_on(state, env, ocr_workers=2) as stack,
        ApiClient(stack.api_url, timeout=30) as client,
    ):
        db = Db(stack)
        try:
            did = submit(client, "review.pdf", text_then_dense_scan_pdf())
            page2 = page_id_for(uuid.UUID(did), 2)
            killed: list[int] = []
            for k in range(1, max_attempts + 1):

                def started(k: int = k) -> dict | None:
                    row = db.attempts(page2)
                    return row if row is not None and row["attempts"] >= k else None

                row = wait_for(started, 90, f"attempt {k} of page 2 to start", 0.02)
                assert row["attempts"] == k, row
                pid = int(str(row["last_worker"]).split("/")[1])
                assert pid in ocr_worker_pids(stack), (pid, ocr_worker_pids(stack))
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                wait_gone(pid)
            final = client.wait(did, 90)
            page_view = {p["page_number"]: p for p in client.pages(did)["pages"]}
            rows = db.pages([did])[did]
            ledger = db.attempts(page2)
            doc_row = db.documents([did])[did]
        finally:
            db.close()
        seen = finishings(stack, expect={did: 1})
        dlq = [
            r
            for r in read_topic(stack.supervisor.settings(), PAGE_OCR_REQUESTED_DLQ, settle=1.5)
            if str(page2) in (r.value or b"").decode(errors="replace")
        ]
        ocr_restarts = stack.restarts()["ocr"]
        good_document_completes(client)
    print(f"\nworker killed {len(killed)} times on page 2: {elapsed(t0)} s")

    assert len(set(killed)) == max_attempts  # a fresh worker process each time
    assert ocr_restarts == 0  # the ocr service itself lived on; its pool replaced the workers
    assert final["status"] == "partial", final
    assert (final["pages_done"], final["pages_failed"]) == (1, 1), final
    assert [(r["page_number"], r["status"]) for r in rows] == [(1, "completed"), (2, "failed")], rows
    assert "Cover sheet" in rows[0]["text"]
    failed = rows[1]
    assert failed["error_reason"] == "worker_died", failed
    detail = failed["error_detail"]
    assert f"{max_attempts} attempts started, none finished" in detail, detail
    assert "Split or downscale it and resubmit" in detail, detail
    assert page_view[2]["error"] == {"reason": "worker_died", "detail": detail}, page_view[2]
    assert ledger is not None and ledger["attempts"] == max_attempts + 1  # the last start gave the page up
    assert len(dlq) == 1, f"{len(dlq)} dead letters for page 2"
    assert_one_finishing(doc_row, seen.get(did, []), required=True)


# ---------------------------------------------------------------- 3. the reconciler's bound

STALL_S, MAX_ROUNDS = 6, 2


def _insert_without_event(stack: ChaosStack, db: Db, data: bytes) -> str:
    """A committed document row whose ``document.committed.v1`` never existed (as after a slot
    skipped on failover, or an outbox row lost): stored bytes, a ``received`` row, no outbox row."""
    import hashlib

    from pagestream.storage import open_store
    from pagestream.storage.base import content_key

    sha = hashlib.sha256(data).hexdigest()
    uri = open_store(stack.supervisor.settings()).put(content_key(sha), data, "image/png")
    did = str(uuid.uuid4())
    db.execute(
        "INSERT INTO documents (id, sha256, media_type, size_bytes, filename, storage_uri, status, page_count, "
        "options, received_at, updated_at) VALUES (CAST(:id AS uuid), :sha, 'image/png', :size, 'orphan.png', "
        ":uri, 'received', 1, '{}', now(), now())",
        id=did,
        sha=sha,
        size=len(data),
        uri=uri,
    )
    return did


def test_reconciler_redrives_lost_events_and_bounds_documents_that_cannot_progress() -> None:
    """(a) A document whose committed event never reached the splitter is re-requested through the
    outbox and completes. (b) With every OCR worker frozen (SIGSTOP: a hung mount, a frozen node),
    a document is re-driven ``PAGESTREAM_RECONCILE_MAX_ROUNDS`` times, ``PAGESTREAM_RECONCILE_STALL_SECONDS``
    apart, then ``failed`` with the reconciler's reason, within the bound. When the workers thaw,
    the late result upgrades it to ``completed`` (a second, better finishing), pages unique."""
    t0 = time.monotonic()
    env = {
        "PAGESTREAM_RECONCILE_STALL_SECONDS": str(STALL_S),
        "PAGESTREAM_RECONCILE_MAX_ROUNDS": str(MAX_ROUNDS),
    }
    frozen: list[int] = []
    with (
        state_dir() as state,
        stack_on(state, env, ocr_workers=1) as stack,
        ApiClient(stack.api_url, timeout=30) as client,
    ):
        db = Db(stack)
        try:
            # (a) the event was lost: the reconciler re-requests the missing page
            orphan = _insert_without_event(stack, db, scan_png(301))
            a = client.wait(orphan, STALL_S * 2 + 30)
            a_row = db.documents([orphan])[orphan]
            a_pages = db.pages([orphan])[orphan]

            # (b) nothing can progress: re-driven MAX_ROUNDS times, then failed with the reason
            frozen = wait_for(lambda: ocr_worker_pids(stack), 30, "the ocr workers")
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
            submitted_at = time.monotonic()
            stuck = submit(client, "stuck.png", scan_png(302))
            bound = STALL_S * (MAX_ROUNDS + 1) + 20  # stall per round, plus interval and pipeline slack
            b = client.wait(stuck, bound)
            b_seconds = time.monotonic() - submitted_at
            b_row = db.documents([stuck])[stuck]
            b_pages = db.pages([stuck])[stuck]
            b_view = client.pages(stuck)["pages"]

            # the workers thaw: the queued page tasks run, the late result upgrades the document
            for pid in frozen:
                signal_pid(pid, signal.SIGCONT)
            frozen = []
            wait_for(
                lambda: client.document(stuck)["status"] == "completed",
                60,
                "the late result to upgrade it",
                0.5,
            )
            b_late = db.documents([stuck])[stuck]
            b_late_pages = db.pages([stuck])[stuck]
        finally:
            for pid in frozen:
                signal_pid(pid, signal.SIGCONT)
            db.close()
        seen = finishings(stack, expect={orphan: 1, stuck: 2})
        good_document_completes(client)
    print(
        f"\nreconciler: lost event re-driven; stuck document failed after {b_seconds:.1f} s; total {elapsed(t0)} s"
    )

    # (a)
    assert a["status"] == "completed", a
    assert a_row["reconcile_rounds"] >= 1, a_row
    assert [(p["page_number"], p["status"]) for p in a_pages] == [(1, "completed")], a_pages
    assert "00301" in a_pages[0]["text"].replace(" ", ""), a_pages[0]["text"]
    assert_one_finishing(a_row, seen.get(orphan, []), required=True)

    # (b) within the bound, with the reconciler's reason
    assert b["status"] == "failed", b
    assert b_seconds <= bound
    assert b_row["reconcile_rounds"] == MAX_ROUNDS, b_row
    assert b["error"] and "no progress" in b["error"], b
    assert [(p["page_number"], p["status"], p["error_reason"]) for p in b_pages] == [
        (1, "failed", "no_progress")
    ]
    detail = b_pages[0]["error_detail"]
    assert f"no result after {MAX_ROUNDS} re-drives" in detail and "reprocess the document" in detail, detail
    assert b_view[0]["error"]["reason"] == "no_progress", b_view
    # ... and the late result: one better finishing, still one row for the page
    assert (b_late["status"], b_late["pages_done"], b_late["pages_failed"]) == ("completed", 1, 0), b_late
    assert [(p["page_number"], p["status"]) for p in b_late_pages] == [(1, "completed")], b_late_pages
    assert "00302" in b_late_pages[0]["text"].replace(" ", "")
    events = {f.event_id: f for f in seen.get(stuck, [])}
    assert sorted(f.status for f in events.values()) == ["completed", "failed"], list(events.values())


def broker_killed(corpus: list[ChaosDoc], *, workers: int, kill_after: int, timeout: float) -> None:
    """Submit ``corpus``, SIGKILL the embedded broker once ``kill_after`` documents completed, and
    check that every document completes exactly once, with its pages."""
    n = len(corpus)
    t0 = time.monotonic()
    with (
        state_dir() as state,
        stack_on(state, {}, ocr_workers=workers) as stack,
        ApiClient(stack.api_url, timeout=30) as client,
    ):
        sup = stack.supervisor
        ids = [submit(client, d.name, d.data) for d in corpus]

        def completed() -> int:
            return sum(1 for i in ids if client.document(i)["status"] == "completed")

        wait_for(lambda: completed() >= kill_after, 120, f"{kill_after} documents to complete", 0.2)
        broker = sup._broker  # the embedded broker (no public handle exists)
        assert broker is not None and broker.pid is not None
        killed_at = datetime.now(UTC)
        os.kill(broker.pid, signal.SIGKILL)
        wait_for(lambda: sup.restarts("broker") >= 1 and broker.running(), 60, "the broker to be restarted")
        final = wait_final(client, ids, timeout)
        docs, pages = Db.final_rows(stack, ids)
        after = [i for i in ids if docs[i]["completed_at"] > killed_at]
        seen = finishings(stack, expect=dict.fromkeys(after, 1))
        restarts = stack.restarts()
        good_document_completes(client)
    redriven = sum(docs[i]["reconcile_rounds"] for i in after)
    print(
        f"\nbroker killed: {n} documents, {len(after)} finished after the broker died, {redriven} re-driven "
        f"by the reconciler; {elapsed(t0)} s, restarts {restarts}"
    )

    assert {d["status"] for d in final.values()} == {"completed"}, final
    assert len(after) >= min(n // 4, 10), f"only {len(after)} documents were in flight when the broker died"
    assert restarts["broker"] == 1 and restarts["ocr"] >= 1, restarts
    for i, doc in zip(ids, corpus, strict=True):
        d = docs[i]
        assert (d["page_count"], d["pages_done"], d["pages_failed"]) == (doc.pages, doc.pages, 0), (
            doc.name,
            d,
        )
        assert [(p["page_number"], p["status"]) for p in pages[i]] == [
            (k, "completed") for k in range(1, doc.pages + 1)
        ], (doc.name, pages[i])
        assert_one_finishing(d, seen.get(i, []), required=i in after)


def test_broker_killed_mid_flight_is_restarted_and_every_document_finishes() -> None:
    """Only the embedded broker dies (SIGKILL) with work in flight: the supervisor restarts it on the
    same port (empty: memory storage), recreates the topics, restarts ocr with the new
    ``PAGESTREAM_BROKER_EPOCH``, and the reconciler re-drives what the broker held."""
    corpus = [ChaosDoc(f"scan-{i}.png", "image", scan_png(i), 1) for i in range(12)]
    broker_killed(corpus, workers=1, kill_after=1, timeout=150)


@pytest.mark.chaos
def test_broker_killed_mid_flight_mixed_corpus() -> None:
    """The same with 150 mixed documents and two workers."""
    broker_killed(make_corpus(150), workers=2, kill_after=20, timeout=600)
