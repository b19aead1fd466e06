"""Publication and replication slot lifecycle, and slot statistics."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg2
from psycopg2 import sql

from pagestream.cdc.errors import ReplicationDisconnectedError, ReplicationSetupError
from pagestream.settings import redact_url

OUTBOX_TABLE = "outbox"


def connect(dsn: str, **kwargs: object) -> psycopg2.extensions.connection:
    """A psycopg2 connection whose errors never echo the password."""
    try:
        return psycopg2.connect(dsn, connect_timeout=10, application_name="pagestream-cdc", **kwargs)
    except psycopg2.OperationalError as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ReplicationDisconnectedError(f"cannot connect to {redact_url(dsn)}: {msg}") from e


def check_prerequisites(conn: psycopg2.extensions.connection) -> None:
    """Raise ReplicationSetupError with a fix when logical replication cannot work."""
    with conn.cursor() as cur:
        cur.execute("SHOW wal_level")
        level = cur.fetchone()[0]
        if level != "logical":
            raise ReplicationSetupError(
                f"wal_level is {level!r}; set wal_level = logical in postgresql.conf and restart PostgreSQL"
            )
        cur.execute("SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user")
        row = cur.fetchone()
        if not row or not row[0]:
            raise ReplicationSetupError(
                "the database role lacks REPLICATION; run ALTER ROLE <role> WITH REPLICATION (or use a replication role)"
            )


def ensure_publication(conn: psycopg2.extensions.connection, publication: str) -> bool:
    """Create the insert-only publication on the outbox if missing; True if created."""
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,))
        if cur.fetchone():
            return False
        try:
            cur.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {} WITH (publish = 'insert')").format(
                sql.Identifier(publication), sql.Identifier(OUTBOX_TABLE)))
        except psycopg2.errors.DuplicateObject:
            return False
        except psycopg2.Error as e:
            raise ReplicationSetupError(
                f"publication {publication!r} is missing and cannot be created ({e.pgcode}): "
                f"create it as the table owner: CREATE PUBLICATION {publication} FOR TABLE outbox WITH (publish = 'insert')"
            ) from e
        return True


def ensure_slot(conn: psycopg2.extensions.connection, slot: str) -> bool:
    """Create the pgoutput logical slot if missing; True if created."""
    with conn.cursor() as cur:
        cur.execute("SELECT plugin FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        row = cur.fetchone()
        if row:
            if row[0] != "pgoutput":
                raise ReplicationSetupError(f"slot {slot!r} uses plugin {row[0]!r}, not pgoutput; drop it or pick another name")
            return False
        try:
            cur.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        except psycopg2.errors.DuplicateObject:
            return False
        except psycopg2.Error as e:
            raise ReplicationSetupError(f"cannot create replication slot {slot!r} ({e.pgcode}): {e.pgerror}") from e
        return True


def prepare(dsn: str, slot: str, publication: str) -> None:
    """Check prerequisites and create publication and slot (run before any outbox write)."""
    conn = connect(dsn)
    conn.autocommit = True  # each step is one statement; slot creation must not run in a transaction
    try:
        check_prerequisites(conn)
        ensure_publication(conn, publication)
        ensure_slot(conn, slot)
    finally:
        conn.close()


def drop_slot(dsn: str, slot: str) -> bool:
    """Drop the slot (operators: when decommissioning the relay); True if it existed."""
    conn = connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", (slot,))
            return cur.rowcount > 0
    finally:
        conn.close()


@dataclass(frozen=True)
class SlotStats:
    confirmed_flush_lsn: int | None
    lag_bytes: int
    retained_wal_bytes: int
    active: bool


def slot_stats(conn: psycopg2.extensions.connection, slot: str) -> SlotStats | None:
    """Lag (current WAL − confirmed flush) and retained WAL (current − restart_lsn) of ``slot``."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT confirmed_flush_lsn::text,
                      COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint,
                      COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint, active
               FROM pg_replication_slots WHERE slot_name = %s""", (slot,))
        row = cur.fetchone()
    if row is None:
        return None
    from pagestream.cdc.pgoutput import str_to_lsn

    return SlotStats(str_to_lsn(row[0]) if row[0] else None, int(row[1]), int(row[2]), bool(row[3]))
