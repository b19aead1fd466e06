"""Slot and publication lifecycle: clear errors when replication cannot work; dropping the slot."""

from __future__ import annotations

import threading
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from pagestream.cdc.errors import ReplicationSetupError
from pagestream.cdc.relay import OutboxRelay
from pagestream.cdc.slot import check_prerequisites, connect, prepare
from pagestream.cli.admin import cdc
from pagestream.settings import Settings
from tests.integration.pipeline_fixtures import wait_until


def _url_as(url: str, user: str, password: str) -> str:
    p = urlsplit(url)
    return urlunsplit((p.scheme, f"{user}:{password}@{p.hostname}:{p.port}", p.path, p.query, p.fragment))


@pytest.fixture
def make_role(migrated: Settings):  # type: ignore[no-untyped-def]
    """Create login roles in the test database (dropped afterwards); returns their DSN."""
    admin = connect(migrated.database_dsn())
    admin.autocommit = True
    made: list[str] = []

    def make(*options: str) -> str:
        name = f"cdc_test_{uuid.uuid4().hex[:8]}"
        with admin.cursor() as cur:
            cur.execute(f"CREATE ROLE {name} LOGIN PASSWORD 'pw' {' '.join(options)}")
        made.append(name)
        return _url_as(migrated.database_dsn(), name, "pw")

    yield make
    with admin.cursor() as cur:
        for name in made:
            cur.execute(f"DROP OWNED BY {name}")
            cur.execute(f"DROP ROLE {name}")
    admin.close()


def test_role_without_replication_gets_a_clear_error(migrated: Settings, make_role) -> None:  # type: ignore[no-untyped-def]
    dsn = make_role("NOREPLICATION")
    with pytest.raises(ReplicationSetupError, match="lacks REPLICATION; run ALTER ROLE"):
        prepare(dsn, "cdc_test_never", migrated.cdc_publication)
    # the relay reports it and stays unready instead of crashing
    relay = OutboxRelay(
        migrated.model_copy(update={"database_url": SecretStr(dsn), "cdc_slot": "cdc_test_never"})
    )
    stop = threading.Event()
    t = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    t.start()
    try:
        wait_until(lambda: relay.status.last_error, 10, "relay to report the setup error")
        assert "REPLICATION" in (relay.status.last_error or "")
        assert not relay.ready
    finally:
        stop.set()
        t.join(10)


def test_missing_publication_that_cannot_be_created_gets_a_clear_error(migrated: Settings, make_role) -> None:  # type: ignore[no-untyped-def]
    dsn = make_role("REPLICATION")  # may replicate, but does not own the outbox table
    with pytest.raises(
        ReplicationSetupError, match="publication 'cdc_test_pub' is missing and cannot be created"
    ):
        prepare(dsn, "cdc_test_never", "cdc_test_pub")


def test_wal_level_other_than_logical_gets_a_clear_error() -> None:
    class Cursor:
        def __enter__(self) -> Cursor:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def execute(self, sql: str, *args: object) -> None:
            self.sql = sql

        def fetchone(self) -> tuple[object]:
            return ("replica",)

    class Conn:
        def cursor(self) -> Cursor:
            return Cursor()

    with pytest.raises(ReplicationSetupError, match="wal_level is 'replica'; set wal_level = logical"):
        check_prerequisites(Conn())  # type: ignore[arg-type]


def _slot_exists(dsn: str, slot: str) -> bool:
    conn = connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,))
            return cur.fetchone() is not None
    finally:
        conn.close()


def test_cli_drop_slot(migrated: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    slot = f"cdc_test_drop_{uuid.uuid4().hex[:6]}"
    prepare(migrated.database_dsn(), slot, migrated.cdc_publication)
    assert _slot_exists(migrated.database_dsn(), slot)
    env = {
        "DATABASE_URL": migrated.database_dsn(),
        "KAFKA_BOOTSTRAP_SERVERS": migrated.kafka_bootstrap_servers,
        "PAGESTREAM_CDC_SLOT": slot,
        "PAGESTREAM_STATE_DIR": str(tmp_path),
    }
    result = CliRunner().invoke(cdc, ["--drop-slot"], env=env)
    assert result.exit_code == 0, result.output
    assert f"slot {slot} dropped" in result.output
    assert not _slot_exists(migrated.database_dsn(), slot)
    again = CliRunner().invoke(cdc, ["--drop-slot"], env=env)
    assert f"slot {slot} did not exist" in again.output
