"""A slot the database had is never silently recreated (it would skip committed outbox events).

Against the real private PostgreSQL (15 here: slots cannot be failover slots, the ≤16 path).
A failover that loses the slot is simulated by dropping it behind the relay's back.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from pagestream import metrics
from pagestream.cdc.errors import SlotVanishedError
from pagestream.cdc.relay import OutboxRelay
from pagestream.cdc.slot import connect, drop_slot, prepare
from pagestream.cli.admin import migrate
from pagestream.settings import Settings
from pagestream.stack.errors import StackError
from pagestream.stack.supervisor import prepare_infrastructure
from tests.waiting import wait_until


def _sql(dsn: str, statement: str, *params: object) -> list[tuple[object, ...]]:
    conn = connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def _slot_exists(dsn: str, slot: str) -> bool:
    return bool(_sql(dsn, "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", slot))


def _lose(dsn: str, slot: str) -> None:
    """What a failover without slot synchronization does: the slot is gone, the tables are not."""
    _sql(dsn, "SELECT pg_drop_replication_slot(%s)", slot)


@pytest.fixture
def slot(migrated: Settings) -> Iterator[str]:
    name = f"cdc_test_failover_{uuid.uuid4().hex[:6]}"
    yield name
    drop_slot(migrated.database_dsn(), name)


def _recreated() -> float:
    return metrics.CDC_SLOT_RECREATED._value.get()


def test_a_vanished_slot_is_refused_with_a_loud_error(
    migrated: Settings, slot: str, caplog: pytest.LogCaptureFixture
) -> None:
    dsn = migrated.database_dsn()
    with caplog.at_level(logging.WARNING, logger="pagestream.cdc.slot"):
        prepare(dsn, slot, migrated.cdc_publication)
    assert "failover safety needs PostgreSQL 17+" in caplog.text  # the ≤16 path, really
    prepare(dsn, slot, migrated.cdc_publication)  # existing slot: nothing to do, position recorded
    ((lsn,),) = _sql(dsn, "SELECT confirmed_flush_lsn::text FROM cdc_state WHERE slot_name = %s", slot)
    assert lsn

    _lose(dsn, slot)
    caplog.clear()
    with (
        caplog.at_level(logging.ERROR, logger="pagestream.cdc.slot"),
        pytest.raises(SlotVanishedError) as raised,
    ):
        prepare(dsn, slot, migrated.cdc_publication)
    message = str(raised.value)
    assert f"replication slot '{slot}' vanished (failover without slot sync?)" in message
    assert f"since its last confirmed position ({lsn}" in message
    assert "the reconciler will re-drive unfinished documents" in message
    assert "PAGESTREAM_CDC_ALLOW_SLOT_RECREATE=true" in message
    assert "vanished" in caplog.text and any(r.levelno == logging.ERROR for r in caplog.records)
    assert not _slot_exists(dsn, slot), "the slot was recreated silently"

    # `pagestream migrate` (ingest's init container) applies the same rule, with a clean message
    env = {
        "DATABASE_URL": dsn,
        "KAFKA_BOOTSTRAP_SERVERS": migrated.kafka_bootstrap_servers,
        "PAGESTREAM_CDC_SLOT": slot,
        "PAGESTREAM_CDC_PUBLICATION": migrated.cdc_publication,
    }
    result = CliRunner().invoke(migrate, [], env=env)
    assert result.exit_code == 1, result.output
    assert "vanished" in result.output and "Traceback" not in result.output
    assert not _slot_exists(dsn, slot)
    # and so does `pagestream up` (the embedded stack's prepare step)
    with pytest.raises(StackError, match="vanished"):
        prepare_infrastructure(migrated.model_copy(update={"cdc_slot": slot}))
    assert not _slot_exists(dsn, slot)


def test_recreating_a_vanished_slot_needs_the_setting_and_is_counted(
    migrated: Settings, slot: str, caplog: pytest.LogCaptureFixture
) -> None:
    dsn = migrated.database_dsn()
    prepare(dsn, slot, migrated.cdc_publication)
    _lose(dsn, slot)
    before = _recreated()
    with caplog.at_level(logging.ERROR, logger="pagestream.cdc.slot"):
        prepare(dsn, slot, migrated.cdc_publication, allow_recreate=True)
    assert _slot_exists(dsn, slot)
    assert _recreated() == before + 1
    assert "may have been skipped" in caplog.text and "recreated at the current WAL position" in caplog.text
    assert _sql(dsn, "SELECT recreated_count FROM cdc_state WHERE slot_name = %s", slot) == [(1,)]
    prepare(dsn, slot, migrated.cdc_publication)  # present again: no error, not counted
    assert _recreated() == before + 1


def test_a_dropped_slot_is_forgotten_and_created_fresh(migrated: Settings, slot: str) -> None:
    dsn = migrated.database_dsn()
    prepare(dsn, slot, migrated.cdc_publication)
    assert drop_slot(dsn, slot)  # decommissioning on purpose (`pagestream cdc --drop-slot`)
    prepare(dsn, slot, migrated.cdc_publication)
    assert _slot_exists(dsn, slot)


def test_relay_stays_unready_instead_of_recreating_a_vanished_slot(migrated: Settings, slot: str) -> None:
    dsn = migrated.database_dsn()
    prepare(dsn, slot, migrated.cdc_publication)
    _lose(dsn, slot)
    relay = OutboxRelay(migrated.model_copy(update={"cdc_slot": slot}))
    stop = threading.Event()
    t = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    t.start()
    try:
        wait_until(lambda: relay.status.last_error, 15, "relay to report the vanished slot")
        assert "vanished" in (relay.status.last_error or "")
        assert not relay.ready
        assert not _slot_exists(dsn, slot)
    finally:
        stop.set()
        t.join(15)
    assert not t.is_alive()


def test_the_running_relay_keeps_the_slot_position_on_record(migrated: Settings, relay: OutboxRelay) -> None:
    """What the "vanished" message reports is refreshed while the relay streams (every few seconds)."""
    dsn = migrated.database_dsn()
    query = "SELECT confirmed_flush_lsn::text, last_seen_at FROM cdc_state WHERE slot_name = %s"
    ((_, first_seen),) = _sql(dsn, query, migrated.cdc_slot)
    ((lsn, seen),) = wait_until(
        lambda: (rows := _sql(dsn, query, migrated.cdc_slot)) and rows[0][1] > first_seen and rows,
        15,
        "the relay to refresh its slot record",
    )
    assert lsn
