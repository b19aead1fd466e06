"""The embedded infrastructure works as the services need it: Kafka round-trip, logical decoding."""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path

import psycopg2
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from pagestream.settings import Settings
from pagestream.stack.broker import TansuBroker
from pagestream.stack.postgres import PrivatePostgres


def _query(url: str, sql: str) -> list[tuple]:
    conn = psycopg2.connect(url, connect_timeout=10)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def test_broker_round_trip(kafka_bootstrap: str) -> None:
    topic = f"test-roundtrip-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)

    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(topic, key=b"doc-1", value=b"hello", headers=[("ce_type", b"test.v1")])
    assert producer.flush(30) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"g-{topic}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            # Tansu holds a join for about half the session timeout (default 45 s)
            "session.timeout.ms": 6000,
        }
    )
    try:
        consumer.subscribe([topic])
        msg = None
        for _ in range(60):
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                break
        assert msg is not None and msg.error() is None
        assert (msg.key(), msg.value()) == (b"doc-1", b"hello")
        assert dict(msg.headers() or [])["ce_type"] == b"test.v1"
        consumer.commit(message=msg, asynchronous=False)
    finally:
        consumer.close()


def test_postgres_supports_logical_decoding(database_url: str) -> None:
    assert _query(database_url, "SHOW wal_level") == [("logical",)]
    assert int(_query(database_url, "SHOW max_replication_slots")[0][0]) >= 10
    assert int(_query(database_url, "SHOW max_wal_senders")[0][0]) >= 10
    slot = f"test_slot_{uuid.uuid4().hex[:8]}"
    _query(database_url, f"SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')")
    try:
        rows = _query(
            database_url, f"SELECT plugin, slot_type FROM pg_replication_slots WHERE slot_name = '{slot}'"
        )
        assert rows == [("pgoutput", "logical")]
    finally:
        _query(database_url, f"SELECT pg_drop_replication_slot('{slot}')")


def test_settings_fixture_points_at_the_session_infrastructure(
    settings: Settings, kafka_bootstrap: str, database_url: str
) -> None:
    assert settings.kafka_bootstrap_servers == kafka_bootstrap
    assert settings.database_dsn() == database_url
    assert settings.storage_url.startswith("file://")
    assert Path(settings.storage_url.removeprefix("file://")).is_dir()


def test_private_postgres_restart_keeps_data_and_password(tmp_path: Path) -> None:
    state = tmp_path / "pg"
    pg = PrivatePostgres(state, fast=True)
    try:
        pg.start()
        url = pg.url
        assert url.startswith("postgresql://pagestream:") and url.endswith(f"@127.0.0.1:{pg.port}/pagestream")
        _query(url, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('survives')")

        password_file = state / "password"
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        assert password_file.read_text().strip() == pg.password

        first_pid = pg.pid
        pg.restart()
        assert pg.pid is not None and pg.pid != first_pid
        assert pg.url == url
        assert _query(url, "SELECT v FROM kept") == [("survives",)]

        pg.stop()
        assert pg.pid is None
        again = PrivatePostgres(state, fast=True)  # a new object over the same state: `pagestream up` again
        again.start()
        assert again.password == pg.password
        assert _query(again.url, "SELECT v FROM kept") == [("survives",)]
        again.stop()
    finally:
        pg.destroy()


def test_private_postgres_rejects_wrong_password(
    database_url: str, private_postgres: PrivatePostgres | None
) -> None:
    if private_postgres is None:
        pytest.skip("external DATABASE_URL")
    bad = database_url.replace(private_postgres.password, "wrong")
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        _query(bad, "SELECT 1")


def test_private_postgres_listens_on_loopback_only(
    database_url: str, private_postgres: PrivatePostgres | None
) -> None:
    if private_postgres is None:
        pytest.skip("external DATABASE_URL")
    assert _query(database_url, "SHOW listen_addresses") == [("127.0.0.1",)]


def test_tansu_broker_stop_frees_the_port(tmp_path: Path) -> None:
    broker = TansuBroker(tmp_path / "broker")
    try:
        broker.start()
        pid = broker.pid
        assert pid is not None and broker.bootstrap_servers.startswith("127.0.0.1:")
        assert (tmp_path / "broker" / "tansu.log").is_file()
    finally:
        broker.stop()
    assert broker.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
