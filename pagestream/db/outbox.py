"""The transactional outbox: an event is written in the same transaction as its effect.

Rows are inserted and deleted in that same transaction (Debezium's recommended pattern):
the insert reaches the WAL, and so the cdc relay, while the table never grows. The
publication publishes inserts only, so the delete is invisible to consumers.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, delete, insert

from pagestream.db.schema import outbox
from pagestream.events.models import Event, utcnow


def write_event(conn: Connection, event: Event, *, traceparent: str | None, keep: bool = False) -> uuid.UUID:
    """Record ``event`` in the outbox inside the caller's transaction; returns the event id."""
    event_id = uuid.uuid4()
    conn.execute(
        insert(outbox).values(
            id=event_id,
            aggregatetype=event.aggregate_type,
            aggregateid=event.aggregate_id(),
            type=event.event_type,
            payload=event.model_dump(mode="json"),
            traceparent=traceparent,
            occurredat=utcnow().isoformat(),
        )
    )
    if not keep:
        conn.execute(delete(outbox).where(outbox.c.id == event_id))
    return event_id
