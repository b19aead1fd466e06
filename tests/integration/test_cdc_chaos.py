"""Chaos: the relay process is SIGKILLed at random moments and restarted; nothing committed is lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from pagestream.events.envelope import header_map
from tests.integration.test_cdc_support import (
    Collector,
    PrivateStack,
    first_occurrence_by_key,
    payload,
    private_stack,
    write_txn,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    with private_stack(tmp_path_factory.mktemp("cdc-chaos")) as s:
        yield s


def _start_relay(stack: PrivateStack, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": stack.settings.kafka_bootstrap_servers,
        "DATABASE_URL": stack.settings.database_dsn(),
        "PAGESTREAM_HTTP_PORT": "0",
        "PAGESTREAM_STATE_DIR": str(stack.settings.state_dir),
        "PAGESTREAM_TOPIC_PARTITIONS": "2",
        "PAGESTREAM_CDC_HEARTBEAT_SECONDS": "0.5",
        "PAGESTREAM_LOG_LEVEL": "WARNING",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cdc"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _chaos(stack: PrivateStack, tmp_path: Path, *, events: int, kills: int, seed: int) -> None:
    rnd = random.Random(seed)
    collector = Collector(stack.settings)
    committed: list[str] = []
    done = threading.Event()
    pace = (kills * 1.7 + 1.0) / events

    def writer() -> None:
        conn = psycopg2.connect(stack.settings.database_dsn())
        seq = 0
        while seq < events:
            size = min(events - seq, rnd.choice((1, 1, 2, 5, 10, 50, 200)))
            with conn, conn.cursor() as cur:
                ids = write_txn(
                    cur, [(f"agg-{rnd.randrange(16)}", payload("chaos", seq + i)) for i in range(size)]
                )
            committed.extend(ids)  # only after COMMIT returned
            seq += size
            time.sleep(pace * size)  # spread the writes over the kills
        conn.close()
        done.set()

    log = tmp_path / "relay.log"
    proc = _start_relay(stack, log)
    w = threading.Thread(target=writer, daemon=True)
    w.start()
    try:
        for _ in range(kills):
            time.sleep(rnd.uniform(0.8, 2.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            proc = _start_relay(stack, log)
        w.join(120)
        assert done.is_set(), "writer did not finish"
        missing = collector.wait_for(set(committed), 60)
        assert not missing, f"{len(missing)} committed events never arrived; relay log {log}"
        rank = {eid: i for i, eid in enumerate(committed)}
        # this run's records only: the module's topic still holds the records of the tests before it
        records = [r for r in collector.snapshot() if header_map(r.headers)["ce_id"] in rank]
        ids = [header_map(r.headers)["ce_id"] for r in records]
        duplicates = len(ids) - len(set(ids))
        print(f"\nchaos: {events} events, {kills} SIGKILLs, {len(ids)} records, {duplicates} duplicates")
        for key, order in first_occurrence_by_key(records).items():
            assert order == sorted(order, key=rank.__getitem__), (
                f"first deliveries of {key} out of commit order"
            )
        assert set(ids) == set(committed)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        collector.close()


def test_relay_killed_three_times_loses_nothing_short(stack: PrivateStack, tmp_path: Path) -> None:
    _chaos(stack, tmp_path, events=2_000, kills=3, seed=7)


@pytest.mark.chaos
def test_relay_killed_repeatedly_loses_nothing(stack: PrivateStack, tmp_path: Path) -> None:
    _chaos(stack, tmp_path, events=20_000, kills=8, seed=int(time.time()))
