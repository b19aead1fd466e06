"""The transactional outbox: an event is written in the same transaction as its effect.

Rows are inserted and deleted in that same transaction (Debezium's recommended pattern):
the insert reaches the WAL, and so the cdc relay, while the table never grows. The
publication publishes inserts only, so the delete is invisible to consumers.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, delete, insert

from pagestream.db.schema import outbox
from pagestream.events.models import Event, utcnow

#: ``write_event`` as driver SQL (psycopg2 pyformat), for a caller that sends it in the same round
#: trip as its effect (``create_document``): insert the row, then delete it in the same transaction.
#: Parameters: ``event_sql_params``.
INSERT_AND_DELETE_EVENT_SQL = (
    "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, traceparent, occurredat) "
    "VALUES (%(outbox_id)s, %(outbox_aggregatetype)s, %(outbox_aggregateid)s, %(outbox_type)s, "
    "%(outbox_payload)s, %(outbox_traceparent)s, %(outbox_occurredat)s); "
    "DELETE FROM outbox WHERE id = %(outbox_id)s"
)


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


def event_sql_params(event: Event, *, traceparent: str | None) -> dict[str, Any]:
    """The parameters of ``INSERT_AND_DELETE_EVENT_SQL`` for ``event`` (a fresh event id)."""
    return {
        "outbox_id": str(uuid.uuid4()),
        "outbox_aggregatetype": event.aggregate_type,
        "outbox_aggregateid": event.aggregate_id(),
        "outbox_type": event.event_type,
        "outbox_payload": event.model_dump_json(),
        "outbox_traceparent": traceparent,
        "outbox_occurredat": utcnow().isoformat(),
    }
