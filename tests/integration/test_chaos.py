"""Chaos: documents keep flowing while every part of the stack is SIGKILLed in turn.

A private supervised stack (own broker, PostgreSQL, services) takes a mixed corpus while the
test SIGKILLs ingest, cdc, one OCR worker process, persist and the PostgreSQL postmaster (and,
in the full run, the whole ocr service), each time waiting for the supervisor to bring it back.
The client retries failed submissions with the same Idempotency-Key. Afterwards every document
must be completed with exactly its pages, each effect applied once, and the DLQs empty.

``test_chaos_short`` (30 documents) runs in ``make test``; ``test_chaos_full`` (200 documents)
is marked ``chaos`` (``make chaos``). Counts are printed (run with ``-s`` to see them) and
recorded as junit properties.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from pagestream.client import ApiClient
from tests.chaos_support import (
    ChaosStack,
    MetricWatcher,
    Submitted,
    all_ready,
    chaos_stack,
    collect_end_state,
    kill_ocr_worker,
    kill_postgres,
    kill_service,
    make_corpus,
    ocr_worker_pids,
    submit_with_retry,
    wait_final,
    wait_for,
)


def kill_ocr_service(stack: ChaosStack) -> dict[str, Any]:
    """SIGKILL the ocr service process alone (not its workers, as an OOM kill would) and wait for
    the supervisor to bring it back; its orphaned workers must end themselves."""
    sup = stack.supervisor
    pid = wait_for(lambda: sup.pid("ocr"), 60, "ocr to be running")
    workers = ocr_worker_pids(stack)
    before = sup.restarts("ocr")
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: sup.restarts("ocr") > before and all_ready(stack), 90, "ocr to be restarted and ready")

    def orphans() -> list[int]:
        return [w for w in workers if _alive(w)]

    wait_for(lambda: not orphans(), 30, f"the killed ocr service's workers {workers} to exit")
    return {
        "part": "ocr-service",
        "killed_pid": pid,
        "orphaned_workers_exited": workers,
        "new_pid": sup.pid("ocr"),
        "down_s": round(time.monotonic() - t0, 1),
    }


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def run_chaos(
    n: int, *, pace: float, kill_whole_ocr: bool, final_timeout: float, record: Callable[[str, object], None]
) -> dict[str, Any]:
    corpus = make_corpus(n)
    started = time.monotonic()
    with (
        chaos_stack() as stack,
        ApiClient(stack.api_url, timeout=30) as client,
        MetricWatcher(stack, "persist", "pagestream_duplicate_events_total") as dup_watch,
    ):
        submitted: list[Submitted] = []
        failures: list[BaseException] = []
        progress = threading.Event()

        def submitter() -> None:
            try:
                for i, doc in enumerate(corpus):
                    submitted.append(submit_with_retry(client, doc, f"chaos-{uuid.uuid4()}"))
                    if i == max(1, n // 10):
                        progress.set()
                    time.sleep(pace)
            except BaseException as e:  # surfaced below
                failures.append(e)
                progress.set()

        t = threading.Thread(target=submitter, name="submitter", daemon=True)
        t.start()
        progress.wait(120)
        kills: list[dict[str, Any]] = []
        kills.append(kill_service(stack, "ingest"))  # submissions fail now: the client retries
        kills.append(kill_service(stack, "cdc"))
        wait_for(lambda: ocr_worker_pids(stack), 30, "ocr workers")
        kills.append(kill_ocr_worker(stack))
        kills.append(kill_service(stack, "persist"))
        kills.append(kill_postgres(stack))
        if kill_whole_ocr:
            kills.append(kill_ocr_service(stack))
            kills.append(kill_service(stack, "persist"))
        t.join(600)
        assert not t.is_alive(), "the submitter did not finish"
        assert not failures, f"a submission failed for good: {failures[0]!r}"
        submit_s = time.monotonic() - started

        ids = [s.id for s in submitted]
        assert len(ids) == n and len(set(ids)) == n, "a document was lost or doubled at submission"
        final = wait_final(client, ids, final_timeout)
        # Resubmitting with the same keys answers with the same documents, creating nothing.
        for s in submitted[:3]:
            again = submit_with_retry(client, s.doc, s.key)
            assert again.id == s.id and again.duplicate_answers == 1
        end = collect_end_state(stack, ids)
        restarts = stack.restarts()
        ocr_ready = None
        try:
            import urllib.request

            with urllib.request.urlopen(stack.part("ocr")["ready_url"], timeout=2) as r:
                ocr_ready = json.loads(r.read())
        except (OSError, ValueError):
            pass
        from sqlalchemy import text

        from pagestream.db import make_engine

        eng = make_engine(stack.supervisor.settings().database_dsn())
        try:
            with eng.connect() as conn:
                doc_rows = conn.execute(text("SELECT count(*) FROM documents")).scalar_one()
        finally:
            eng.dispose()

    by_id = {s.id: s for s in submitted}
    statuses: dict[str, int] = {}
    for d in final.values():
        statuses[d["status"]] = statuses.get(d["status"], 0) + 1
    report: dict[str, Any] = {
        "documents": n,
        "pages_expected": sum(d.pages for d in corpus),
        "kinds": {k: sum(1 for d in corpus if d.kind == k) for k in sorted({d.kind for d in corpus})},
        "statuses": statuses,
        "document_rows": doc_rows,
        "submit_attempts": sum(s.attempts for s in submitted),
        "submissions_retried": sum(1 for s in submitted if s.attempts > 1),
        "retries_answered_as_duplicate": sum(s.duplicate_answers for s in submitted),
        "page_rows": sum(len(v) for v in end.page_rows.values()),
        "processed_events_persist": end.processed_events,
        "duplicate_events_absorbed_metric": dup_watch.total,
        "ocr_completed_records": end.ocr_completed_records,
        "ocr_completed_distinct_events": sum(len(v) for v in end.ocr_completed_ids_per_doc.values()),
        "dlq_records": end.dlq_records,
        "restarts": restarts,
        "kills": kills,
        "ocr_ready": ocr_ready,
        "seconds": {"submitting": round(submit_s, 1), "total": round(time.monotonic() - started, 1)},
    }
    print("\nCHAOS REPORT " + json.dumps(report, indent=1, default=str))
    for k, v in report.items():
        record(f"chaos_{k}", json.dumps(v, default=str) if isinstance(v, dict | list) else v)

    # ---- the invariants
    assert doc_rows == n, f"{doc_rows} document rows for {n} submissions (a retry doubled a document?)"
    bad = {i: (d["status"], d.get("error")) for i, d in final.items() if d["status"] != "completed"}
    assert not bad, f"good documents that did not complete: {list(bad.items())[:5]}"
    for did, d in final.items():
        expected = by_id[did].doc.pages
        assert d["page_count"] == expected, (by_id[did].doc.name, d["page_count"], expected)
        assert d["pages_done"] == expected and d["pages_failed"] == 0, (by_id[did].doc.name, d)
        assert end.page_rows[did] == list(range(1, expected + 1)), (
            f"{by_id[did].doc.name}: page rows {end.page_rows[did]} (expected 1..{expected})"
        )
    assert not end.duplicate_page_numbers
    assert end.processed_events >= report["pages_expected"], "a page result was never recorded as processed"
    missing = [i for i in ids if i not in end.ocr_completed_ids_per_doc]
    assert not missing, f"{len(missing)} documents have no document.ocr-completed.v1 event: {missing[:5]}"
    twice = {i: sorted(v) for i, v in end.ocr_completed_ids_per_doc.items() if i in by_id and len(v) != 1}
    assert not twice, f"persist wrote document.ocr-completed.v1 more than once for {twice}"
    assert not any(end.dlq_records.values()), f"dead letters for good input: {end.dlq_records}"
    for k in kills:
        part = {"ocr-worker": None, "ocr-service": "ocr"}.get(k["part"], k["part"])
        if part is not None:
            assert restarts[part] >= 1, (part, restarts)
    return report


def test_chaos_short(record_property: Callable[[str, object], None]) -> None:
    """30 documents; kills ingest, cdc, one OCR worker, persist, PostgreSQL (< 2 minutes)."""
    run_chaos(30, pace=0.3, kill_whole_ocr=False, final_timeout=150, record=record_property)


@pytest.mark.chaos
@pytest.mark.slow
def test_chaos_full(record_property: Callable[[str, object], None]) -> None:
    """200 documents; the same kills plus the whole ocr service and persist a second time."""
    run_chaos(200, pace=0.1, kill_whole_ocr=True, final_timeout=900, record=record_property)
