"""The relay's delivery guarantees on a private broker and PostgreSQL (restarting them is safe here)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import psycopg2
import pytest

from pagestream import metrics
from pagestream.cdc.relay import OutboxRelay
from pagestream.cdc.slot import connect, slot_stats
from pagestream.events.envelope import header_map
from tests.integration.test_cdc_support import (
    Collector,
    PrivateStack,
    first_occurrence_by_key,
    payload,
    private_stack,
    running_relay,
    write_txn,
)
from tests.waiting import wait_until as poll_until

UNACKED_CAP = 256 * 1024


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    with private_stack(
        tmp_path_factory.mktemp("cdc-guarantees"),
        cdc_heartbeat_seconds=0.5,
        cdc_max_unacked_bytes=UNACKED_CAP,
        cdc_delivery_timeout_seconds=10.0,
    ) as s:
        yield s


@pytest.fixture(scope="module")
def relay(stack: PrivateStack) -> Iterator[OutboxRelay]:
    with running_relay(stack.settings) as r:
        poll_until(lambda: r.ready, 30, "relay ready")
        yield r


@pytest.fixture
def collector(stack: PrivateStack) -> Iterator[Collector]:
    c = Collector(stack.settings)
    yield c
    c.close()


def _db(stack: PrivateStack) -> psycopg2.extensions.connection:
    return psycopg2.connect(stack.settings.database_dsn())


def test_big_transaction_arrives_in_order_with_bounded_memory(stack, relay, collector) -> None:  # type: ignore[no-untyped-def]
    conn = _db(stack)
    with conn, conn.cursor() as cur:
        ids = write_txn(cur, [("big-tx", payload("big-tx", i)) for i in range(10_000)])
    missing = collector.wait_for(set(ids), 60)
    assert not missing, f"{len(missing)} of 10,000 events missing"
    assert first_occurrence_by_key(collector.snapshot())["big-tx"] == ids
    values = [json.loads(r.value) for r in collector.snapshot() if r.key == b"big-tx"]
    assert [v["seq"] for v in values[:3]] == [0, 1, 2]
    # reading the WAL paused while too much awaited acknowledgement: memory stays bounded
    assert relay.status.peak_unacked_bytes <= UNACKED_CAP + 1024
    # the outbox itself never grows: rows are deleted in the transaction that inserted them
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM outbox")
        assert cur.fetchone()[0] == 0
    conn.close()


def test_large_toasted_payload_arrives_intact(stack, relay, collector) -> None:  # type: ignore[no-untyped-def]
    big = payload("big-payload", 0, note="ünïcødé ✓ 文字 " * 46_000)  # ~1 MiB of UTF-8, TOASTed
    assert len(json.dumps(big, ensure_ascii=False).encode()) > 1024 * 1024
    conn = _db(stack)
    with conn, conn.cursor() as cur:
        (eid,) = write_txn(cur, [("big-payload", big)])
    conn.close()
    assert not collector.wait_for({eid}, 30)
    (record,) = [r for r in collector.snapshot() if header_map(r.headers)["ce_id"] == eid]
    assert json.loads(record.value) == big


def test_heartbeats_keep_slot_lag_bounded_while_only_other_tables_change(stack, relay) -> None:  # type: ignore[no-untyped-def]
    conn = _db(stack)
    conn.autocommit = True
    probe = connect(stack.settings.database_dsn())
    probe.autocommit = True
    heartbeats = metrics.CDC_HEARTBEATS._value.get()
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS cdc_scratch (id bigserial PRIMARY KEY, body text)")
        cur.execute(
            "ALTER TABLE cdc_scratch ALTER body SET STORAGE EXTERNAL"
        )  # no compression: real WAL volume
        cur.execute("SELECT pg_current_wal_lsn()::text")
        start_lsn = cur.fetchone()[0]
        lags: list[int] = []
        deadline = time.monotonic() + 6.0
        while time.monotonic() < deadline:
            cur.execute(
                "INSERT INTO cdc_scratch (body) SELECT repeat('x', 2000) FROM generate_series(1, 200)"
            )
            stats = slot_stats(probe, stack.settings.cdc_slot)
            assert stats is not None
            lags.append(stats.lag_bytes)
            time.sleep(0.05)
        cur.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)::bigint", (start_lsn,))
        written = cur.fetchone()[0]
    final = poll_until(
        lambda: (s := slot_stats(probe, stack.settings.cdc_slot)) and s.lag_bytes < 1024 * 1024 and s,
        10,
        "slot lag to drop below 1 MiB",
    )
    probe.close()
    conn.close()
    print(
        f"\nWAL written {written / 1e6:.1f} MB; slot lag max {max(lags) / 1e6:.2f} MB, "
        f"final {final.lag_bytes / 1e3:.0f} kB; retained {final.retained_wal_bytes / 1e6:.1f} MB"
    )
    assert written > 20 * 1024 * 1024
    assert max(lags[len(lags) // 2 :]) < written / 4, "slot lag grew with unrelated WAL"
    assert metrics.CDC_HEARTBEATS._value.get() > heartbeats


def _writer(stack: PrivateStack, stop: threading.Event, committed: list[str], keys: int = 4) -> None:
    """Commit small outbox transactions until stopped; ids are recorded only once COMMIT returned."""
    seq = 0
    conn = None
    while not stop.is_set():
        try:
            if conn is None or conn.closed:
                conn = psycopg2.connect(stack.settings.database_dsn(), connect_timeout=2)
            with conn, conn.cursor() as cur:
                ids = write_txn(cur, [(f"key-{(seq + i) % keys}", payload("w", seq + i)) for i in range(3)])
            committed.extend(ids)
            seq += 3
        except psycopg2.Error:
            conn = None
            time.sleep(0.1)
        time.sleep(0.01)
    if conn is not None:
        conn.close()


# Pass alone and in `make chaos`; in the full suite on 2 cores they have timed out
# waiting for readiness (see the closing note of 2026-11-23), so they run under the chaos marker.
@pytest.mark.chaos
def test_postgres_restart_reconnects_without_loss(stack, relay, collector) -> None:  # type: ignore[no-untyped-def]
    committed: list[str] = []
    stop = threading.Event()
    w = threading.Thread(target=_writer, args=(stack, stop, committed), daemon=True)
    w.start()
    time.sleep(1.0)
    reconnects = relay.status.reconnects
    stack.pg.stop()
    poll_until(lambda: not relay.ready, 10, "relay to turn unready while PostgreSQL is down")
    time.sleep(1.0)
    stack.pg.start()
    poll_until(lambda: relay.ready, 30, "relay ready again after PostgreSQL restart")
    time.sleep(1.0)
    stop.set()
    w.join(10)
    assert relay.status.reconnects > reconnects
    assert not collector.wait_for(set(committed), 30), "committed events missing after PostgreSQL restart"
    _assert_key_order(collector, committed)


# Pass alone and in `make chaos`; in the full suite on 2 cores they have timed out
# waiting for readiness (see the closing note of 2026-11-23), so they run under the chaos marker.
@pytest.mark.chaos
def test_broker_restart_recreates_topics_and_resends(stack, relay) -> None:  # type: ignore[no-untyped-def]
    committed: list[str] = []
    stop = threading.Event()
    stack.broker.stop()
    w = threading.Thread(target=_writer, args=(stack, stop, committed), daemon=True)
    w.start()
    poll_until(lambda: not relay.ready, 20, "relay to turn unready while the broker is down")
    time.sleep(1.0)
    stack.broker.start()  # memory storage: every topic is gone
    poll_until(lambda: relay.ready, 30, "relay ready again after broker restart")
    time.sleep(1.0)
    stop.set()
    w.join(10)
    collector = Collector(stack.settings)
    try:
        assert not collector.wait_for(set(committed), 45), (
            "events committed while the broker was down are missing"
        )
        _assert_key_order(collector, committed)
    finally:
        collector.close()


def _assert_key_order(collector: Collector, committed: list[str]) -> None:
    wanted = set(committed)
    rank = {eid: i for i, eid in enumerate(committed)}
    for key, ids in first_occurrence_by_key(collector.snapshot()).items():
        mine = [i for i in ids if i in wanted]
        assert mine == sorted(mine, key=rank.__getitem__), f"first deliveries of {key} out of commit order"
