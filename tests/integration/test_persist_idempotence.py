"""persist under redelivery: the same batch twice changes nothing, a late success replaces a
failure, and ``document.ocr-completed.v1`` leaves through the outbox exactly once."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, text

from pagestream.db.progress import apply_page_outcomes
from pagestream.events.envelope import decode_record
from pagestream.events.models import DocumentOcrCompletedV1
from pagestream.events.topics import DOCUMENT_OCR_COMPLETED
from tests.integration.fabricate import completed, failed, new_document
from tests.integration.pipeline_fixtures import drain


def _state(engine: Engine, doc: uuid.UUID) -> tuple[Any, list[Any]]:
    with engine.connect() as conn:
        d = conn.execute(
            text(
                "SELECT status, pages_done, pages_failed, completed_at, updated_at FROM documents "
                "WHERE id = :id"
            ),
            {"id": doc},
        ).one()
        p = conn.execute(
            text(
                "SELECT page_number, status, text, event_id, error_reason FROM pages "
                "WHERE document_id = :id ORDER BY page_number"
            ),
            {"id": doc},
        ).all()
    return tuple(d), [tuple(r) for r in p]


def _completions(records: list[Any]) -> list[DocumentOcrCompletedV1]:
    out = []
    for r in records:
        ev = decode_record(r.value, r.headers).data
        assert isinstance(ev, DocumentOcrCompletedV1)
        out.append(ev)
    return out


def test_redelivery_changes_nothing_and_each_final_state_is_published_once(
    engine: Engine, relay: Any, consumer_factory: Any
) -> None:
    doc = new_document(engine, 2)
    batch = [completed(doc, 1, 2, "first page"), failed(doc, 2, 2)]

    first = apply_page_outcomes(engine, batch)
    assert first.applied == 2 and [f[:2] for f in first.finished] == [(doc, "partial")]
    after_first = _state(engine, doc)
    assert after_first[0][:3] == ("partial", 1, 1)

    again = apply_page_outcomes(engine, batch)  # the same events redelivered
    assert (again.applied, again.duplicates, again.finished) == (0, 2, [])
    assert _state(engine, doc) == after_first

    # the failed page is retried later and succeeds: the success replaces the failure
    late = completed(doc, 2, 2, "second page, recognized on a later attempt")
    assert apply_page_outcomes(engine, [late]).applied == 1
    status, pages = _state(engine, doc)
    assert [p[:3] for p in pages] == [
        (1, "completed", "first page"),
        (2, "completed", "second page, recognized on a later attempt"),
    ]
    assert pages[1][4] is None
    assert status[:3] == ("completed", 2, 0), "a late success upgrades a partial document to completed"
    # a redelivered failure (or a stale success) never replaces a success
    apply_page_outcomes(engine, [failed(doc, 2, 2), completed(doc, 1, 2, "a stale duplicate result")])
    assert _state(engine, doc)[1] == pages
    assert apply_page_outcomes(engine, [late]).duplicates == 1

    # a sentinel document finished afterwards: once its event is out, every earlier outbox row is too
    sentinel = new_document(engine, 1)
    apply_page_outcomes(engine, [completed(sentinel, 1, 1, "sentinel")])
    consumer = consumer_factory(DOCUMENT_OCR_COMPLETED)
    records = drain(consumer, lambda rs: any(e.document_id == sentinel for e in _completions(rs)), 30)
    records += drain(consumer, lambda rs: False, 1.0)
    mine = [e for e in _completions(records) if e.document_id == doc]
    # one event per final state reached: partial first, then completed after the late success
    assert [(e.status, e.pages_done, e.pages_failed) for e in mine] == [
        ("partial", 1, 1),
        ("completed", 2, 0),
    ]


def test_page_of_a_deleted_document_is_ignored(engine: Engine) -> None:
    doc = new_document(engine, 1)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM documents WHERE id = :id"), {"id": doc})
    result = apply_page_outcomes(engine, [completed(doc, 1, 1, "too late")])
    assert (result.applied, result.unknown_documents) == (0, 1)
    with engine.connect() as conn:
        assert (
            conn.execute(text("SELECT count(*) FROM pages WHERE document_id = :id"), {"id": doc}).scalar()
            == 0
        )


def test_one_batch_dedupes_its_own_repeats_and_applies_its_outcomes_in_order(engine: Engine) -> None:
    """A batch holding an event twice, and a page's failure followed by its late success: the repeat
    counts as a duplicate, the success replaces the failure, the document completes once."""
    doc = new_document(engine, 2)
    first = completed(doc, 1, 2, "page one")
    batch = [first, first, failed(doc, 2, 2), completed(doc, 2, 2, "page two, retried")]
    result = apply_page_outcomes(engine, batch)
    assert (result.applied, result.duplicates) == (3, 1)
    assert [(d, s) for d, s, _ in result.finished] == [(doc, "completed")]
    (status, done, failed_pages, *_), pages = _state(engine, doc)
    assert (status, done, failed_pages) == ("completed", 2, 0)
    assert [(n, s, t) for n, s, t, _, _ in pages] == [
        (1, "completed", "page one"),
        (2, "completed", "page two, retried"),
    ]


def test_layout_with_nul_and_lone_surrogates_is_stored_cleaned(engine: Engine) -> None:
    """jsonb refuses NUL and a lone surrogate cannot be encoded: the layout's words are cleaned too."""
    doc = new_document(engine, 1)
    result = apply_page_outcomes(engine, [completed(doc, 1, 1, "Status \ud83d report\x00 ok")])
    assert result.applied == 1
    with engine.connect() as conn:
        row = conn.execute(text("SELECT text, layout FROM pages WHERE document_id = :id"), {"id": doc}).one()
    words = [w["text"] for b in row.layout["blocks"] for ln in b["lines"] for w in ln["words"]]
    assert row.text == "Status \ufffd report ok"
    assert words == ["Status", "\ufffd", "report", "ok"]
