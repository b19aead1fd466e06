"""Which statement creates the replication slot: a failover slot on PostgreSQL 17+ only."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from pagestream.cdc import slot as slot_mod
from pagestream.cdc.slot import create_slot_sql, ensure_slot


def test_postgres_17_creates_a_failover_slot() -> None:
    assert create_slot_sql(170000).endswith(
        "pg_create_logical_replication_slot(%s, 'pgoutput', false, false, true)"
    )
    assert create_slot_sql(180001) == create_slot_sql(170000)


@pytest.mark.parametrize("version", [130012, 150004, 160008])
def test_postgres_16_and_older_create_a_plain_slot(version: int) -> None:
    # the 5-argument form does not exist before 17: calling it would fail
    assert create_slot_sql(version) == "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')"


class _Cursor:
    def __init__(self, conn: _Conn) -> None:
        self.conn = conn
        self.result: Any = None

    def __enter__(self) -> _Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def execute(self, sql: str, params: object = None) -> None:
        self.conn.executed.append(sql)
        if "to_regclass" in sql:
            self.result = (True,)
        elif "FROM pg_replication_slots WHERE slot_name" in sql and "plugin" in sql:
            self.result = None  # no slot yet
        elif "FROM cdc_state WHERE" in sql:
            self.result = None  # never had one
        else:
            self.result = None

    def fetchone(self) -> Any:
        return self.result


class _Conn:
    def __init__(self, server_version: int) -> None:
        self.server_version = server_version
        self.executed: list[str] = []

    def cursor(self) -> _Cursor:
        return _Cursor(self)


def test_ensure_slot_on_17_uses_the_failover_form(caplog: pytest.LogCaptureFixture) -> None:
    conn = _Conn(170002)
    with caplog.at_level(logging.INFO, logger=slot_mod.__name__):
        assert ensure_slot(conn, "s1") is True  # type: ignore[arg-type]
    assert any("'pgoutput', false, false, true)" in sql for sql in conn.executed)
    assert "as a failover slot" in caplog.text


def test_ensure_slot_on_15_says_failover_safety_needs_17(caplog: pytest.LogCaptureFixture) -> None:
    conn = _Conn(150004)
    with caplog.at_level(logging.INFO, logger=slot_mod.__name__):
        assert ensure_slot(conn, "s1") is True  # type: ignore[arg-type]
    assert not any("true)" in sql for sql in conn.executed)
    assert "failover safety needs PostgreSQL 17+" in caplog.text
    assert "PostgreSQL 15.4" in caplog.text
