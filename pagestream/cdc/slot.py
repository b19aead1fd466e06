"""Publication and replication slot lifecycle, and slot statistics."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg2
from psycopg2 import sql

from pagestream import metrics
from pagestream.cdc.errors import ReplicationDisconnectedError, ReplicationSetupError, SlotVanishedError
from pagestream.settings import redact_url

log = logging.getLogger(__name__)

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
                "the database role lacks REPLICATION; run ALTER ROLE <role> WITH REPLICATION "
                "(or use a replication role)"
            )


def ensure_publication(conn: psycopg2.extensions.connection, publication: str) -> bool:
    """Create the insert-only publication on the outbox if missing; True if created."""
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,))
        if cur.fetchone():
            return False
        try:
            cur.execute(
                sql.SQL("CREATE PUBLICATION {} FOR TABLE {} WITH (publish = 'insert')").format(
                    sql.Identifier(publication), sql.Identifier(OUTBOX_TABLE)
                )
            )
        except psycopg2.errors.DuplicateObject:
            return False
        except psycopg2.Error as e:
            raise ReplicationSetupError(
                f"publication {publication!r} is missing and cannot be created ({e.pgcode}): "
                f"create it as the table owner: CREATE PUBLICATION {publication} FOR TABLE outbox "
                "WITH (publish = 'insert')"
            ) from e
        return True


#: Marker table: one row per slot this database has had. It is an ordinary table, so it
#: survives a failover that loses the slot, and tells "never created" from "vanished".
STATE_TABLE = "cdc_state"
_STATE_DDL = f"""CREATE TABLE IF NOT EXISTS {STATE_TABLE} (
    slot_name text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    confirmed_flush_lsn pg_lsn,
    recreated_count integer NOT NULL DEFAULT 0
)"""

#: First server version whose logical slots can be failover slots (synchronized to standbys).
FAILOVER_SLOTS_VERSION = 170000


def create_slot_sql(server_version: int) -> str:
    """The statement creating a pgoutput slot: a failover slot on PostgreSQL 17+.

    ``pg_create_logical_replication_slot(name, plugin, temporary, twophase, failover)``;
    the ``failover`` argument does not exist before 17.
    """
    if server_version >= FAILOVER_SLOTS_VERSION:
        return "SELECT pg_create_logical_replication_slot(%s, 'pgoutput', false, false, true)"
    return "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')"


def ensure_state_table(conn: psycopg2.extensions.connection) -> None:
    """Create the slot marker table if missing (idempotent; not an Alembic migration on purpose)."""
    with conn.cursor() as cur:
        # look first: CREATE ... IF NOT EXISTS still needs CREATE on the schema
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (STATE_TABLE,))
        if cur.fetchone()[0]:
            return
        try:
            cur.execute(_STATE_DDL)
        except psycopg2.errors.UniqueViolation:
            pass  # two processes created it at once
        except psycopg2.Error as e:
            raise ReplicationSetupError(
                f"cannot create the cdc marker table {STATE_TABLE!r} ({e.pgcode}): grant CREATE on the schema "
                f"to the cdc role, or create it as the owner: {' '.join(_STATE_DDL.split())}"
            ) from e


def remember_slot(conn: psycopg2.extensions.connection, slot: str) -> None:
    """Record that ``slot`` exists, with its confirmed position (for the message if it ever vanishes)."""
    with conn.cursor() as cur:
        cur.execute(
            f"INSERT INTO {STATE_TABLE} (slot_name, confirmed_flush_lsn) "  # noqa: S608 - constant table name
            "SELECT %(slot)s, (SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = %(slot)s) "
            "ON CONFLICT (slot_name) DO UPDATE SET last_seen_at = now(), "
            f"confirmed_flush_lsn = COALESCE(EXCLUDED.confirmed_flush_lsn, {STATE_TABLE}.confirmed_flush_lsn)",
            {"slot": slot},
        )


def _marker(conn: psycopg2.extensions.connection, slot: str) -> tuple[str | None, str] | None:
    """(last confirmed LSN, last seen) of a slot this database had, or None if it never had it."""
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT confirmed_flush_lsn::text, last_seen_at::text FROM {STATE_TABLE} WHERE slot_name = %s",  # noqa: S608 - identifiers are module constants; values are bound parameters
            (slot,),
        )
        row = cur.fetchone()
    return (row[0], row[1]) if row else None


def vanished_message(slot: str, last_lsn: str | None, last_seen: str) -> str:
    """What an operator reads when a slot the database had is gone."""
    position = f"{last_lsn}, seen at {last_seen}" if last_lsn else f"unknown; slot last seen at {last_seen}"
    return (
        f"replication slot {slot!r} vanished (failover without slot sync?); outbox events committed since its "
        f"last confirmed position ({position}) may have been skipped; the reconciler will re-drive unfinished "
        f"documents"
    )


def ensure_slot(conn: psycopg2.extensions.connection, slot: str, *, allow_recreate: bool = False) -> bool:
    """Create the pgoutput logical slot if missing; True if created.

    A slot this database had before (see ``cdc_state``) is never silently recreated: that
    would start at the current WAL position and skip what was committed since. It raises
    ``SlotVanishedError`` unless ``allow_recreate`` (``PAGESTREAM_CDC_ALLOW_SLOT_RECREATE``).
    """
    ensure_state_table(conn)
    version = int(getattr(conn, "server_version", 0) or 0)
    with conn.cursor() as cur:
        cur.execute("SELECT plugin FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        row = cur.fetchone()
    if row:
        if row[0] != "pgoutput":
            raise ReplicationSetupError(
                f"slot {slot!r} uses plugin {row[0]!r}, not pgoutput; drop it or pick another name"
            )
        remember_slot(conn, slot)
        _check_failover(conn, slot, version)
        return False
    marker = _marker(conn, slot)
    if marker is not None:
        message = vanished_message(slot, *marker)
        log.error(message)
        if not allow_recreate:
            raise SlotVanishedError(
                f"{message}. Refusing to recreate it at the current WAL position: to accept the gap, set "
                f"PAGESTREAM_CDC_ALLOW_SLOT_RECREATE=true and restart (or run `pagestream cdc --drop-slot` to "
                f"forget the slot); to avoid it next time, run PostgreSQL 17+ with logical slot synchronization"
            )
    try:
        with conn.cursor() as cur:
            cur.execute(create_slot_sql(version), (slot,))
    except psycopg2.errors.DuplicateObject:
        remember_slot(conn, slot)
        return False
    except psycopg2.Error as e:
        raise ReplicationSetupError(
            f"cannot create replication slot {slot!r} ({e.pgcode}): {e.pgerror}"
        ) from e
    if marker is not None:
        metrics.CDC_SLOT_RECREATED.inc()
        log.error(
            "replication slot %r recreated at the current WAL position (PAGESTREAM_CDC_ALLOW_SLOT_RECREATE=true)",
            slot,
        )
        with conn.cursor() as cur:
            cur.execute(
                f"UPDATE {STATE_TABLE} SET recreated_count = recreated_count + 1, confirmed_flush_lsn = NULL "  # noqa: S608 - identifiers are module constants; values are bound parameters
                "WHERE slot_name = %s",
                (slot,),
            )
    remember_slot(conn, slot)
    if version >= FAILOVER_SLOTS_VERSION:
        log.info("created replication slot %r as a failover slot", slot)
    else:
        log.warning(
            "created replication slot %r without failover: PostgreSQL %s cannot synchronize logical slots "
            "to standbys; failover safety needs PostgreSQL 17+ with slot synchronization (CloudNativePG "
            "replicationSlots.highAvailability / sync_replication_slots)",
            slot,
            _version_text(version),
        )
    return True


def _check_failover(conn: psycopg2.extensions.connection, slot: str, version: int) -> None:
    """Warn when a PostgreSQL 17+ slot was created without failover (it will not survive one)."""
    if version < FAILOVER_SLOTS_VERSION:
        return
    with conn.cursor() as cur:
        cur.execute("SELECT failover FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        row = cur.fetchone()
    if row is not None and not row[0]:
        log.warning(
            "replication slot %r is not a failover slot and will be lost on failover; make it one over a "
            "replication connection: ALTER_REPLICATION_SLOT %s (FAILOVER true)",
            slot,
            slot,
        )


def _version_text(version: int) -> str:
    return f"{version // 10000}.{version % 10000}" if version else "(unknown version)"


def prepare(dsn: str, slot: str, publication: str, *, allow_recreate: bool = False) -> None:
    """Check prerequisites and create publication and slot (run before any outbox write).

    Raises ``SlotVanishedError`` when a slot the database had is gone, unless ``allow_recreate``.
    """
    conn = connect(dsn)
    conn.autocommit = True  # each step is one statement; slot creation must not run in a transaction
    try:
        check_prerequisites(conn)
        ensure_publication(conn, publication)
        ensure_slot(conn, slot, allow_recreate=allow_recreate)
    finally:
        conn.close()


def drop_slot(dsn: str, slot: str) -> bool:
    """Drop the slot and forget it (operators: when decommissioning the relay); True if it existed.

    Forgetting it means a later relay creates a fresh slot without the "vanished" refusal.
    """
    conn = connect(dsn)
    conn.autocommit = True
    try:
        ensure_state_table(conn)
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                (slot,),
            )
            existed = cur.rowcount > 0
            cur.execute(f"DELETE FROM {STATE_TABLE} WHERE slot_name = %s", (slot,))  # noqa: S608 - identifiers are module constants; values are bound parameters
            return existed
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
               FROM pg_replication_slots WHERE slot_name = %s""",
            (slot,),
        )
        row = cur.fetchone()
    if row is None:
        return None
    from pagestream.cdc.pgoutput import str_to_lsn

    return SlotStats(str_to_lsn(row[0]) if row[0] else None, int(row[1]), int(row[2]), bool(row[3]))
