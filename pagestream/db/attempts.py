"""The page attempt ledger: an attempt is recorded *before* the engine runs.

Kafka redelivers a page task whose worker died mid-page (OOM kill, segfault) without any
trace of the attempt in the record itself; counting starts here instead means such a page
cannot be redelivered forever: after the configured attempts it is failed with its reason.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Engine, delete, text

from pagestream.db import translate_errors
from pagestream.db.schema import page_attempts

_START = text(
    """
    INSERT INTO page_attempts (page_id, document_id, page_number, attempts, last_started_at, last_worker)
    VALUES (:page_id, :document_id, :page_number, 1, now(), :worker)
    ON CONFLICT (page_id) DO UPDATE
        SET attempts = page_attempts.attempts + 1, last_started_at = now(), last_worker = EXCLUDED.last_worker
    RETURNING attempts, (SELECT status FROM pages WHERE pages.id = :page_id) AS page_status
    """
)


@dataclass(frozen=True)
class AttemptStart:
    """What the ledger says as a page attempt starts."""

    #: attempts started so far, this one included
    attempts: int
    #: the page's stored status (``completed``/``failed``), or None when no result is stored yet
    page_status: str | None

    @property
    def already_completed(self) -> bool:
        return self.page_status == "completed"


def start_attempt(
    engine: Engine, *, page_id: uuid.UUID, document_id: uuid.UUID, page_number: int, worker: str
) -> AttemptStart:
    """Count one more started attempt of the page (committed before the engine runs)."""
    with translate_errors("record page attempt"), engine.begin() as conn:
        row = conn.execute(
            _START,
            {"page_id": page_id, "document_id": document_id, "page_number": page_number, "worker": worker},
        ).one()
    return AttemptStart(attempts=int(row[0]), page_status=row[1])


def reset_attempts(engine_or_conn: Engine, document_id: uuid.UUID) -> None:
    """Forget the attempts of a document's pages (a reprocess starts afresh)."""
    with translate_errors("reset page attempts"), engine_or_conn.begin() as conn:
        conn.execute(delete(page_attempts).where(page_attempts.c.document_id == document_id))
