"""CDC benchmark: commit→Kafka-ack latency at fixed rates and the max sustained events/s."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import psycopg2
import psycopg2.extras

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


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


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


def _write_at_rate(dsn: str, rate: float, seconds: float, batch: int = 1) -> dict[str, float]:
    """Commit ``rate`` events/s (in transactions of ``batch``) for ``seconds``; id → commit-returned time."""
    conn = psycopg2.connect(dsn)
    committed: dict[str, float] = {}
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        ids = [str(uuid.uuid4()) for _ in range(batch)]
        with conn, conn.cursor() as cur:
            psycopg2.extras.execute_values(
                cur,
                INSERT,
                [
                    (
                        i,
                        f"bench-{n % 64}",
                        json.dumps({"document_id": i, "deleted_at": "2026-11-23T00:00:00Z"}),
                    )
                    for i in ids
                ],
                template=TEMPLATE,
            )
            cur.execute("DELETE FROM outbox WHERE id = ANY(%s::uuid[])", (ids,))
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
    settings: Settings,
    arrivals: _Arrivals,
    rate: float,
    seconds: float,
    batch: int = 1,
    acks: list[float] | None = None,
) -> dict[str, Any]:
    if acks is not None:
        acks.clear()
    committed = _write_at_rate(settings.database_dsn(), rate, seconds, batch)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(i in arrivals.first for i in committed):
        time.sleep(0.05)
    lat = [(arrivals.first[i] - t) * 1000 for i, t in committed.items() if i in arrivals.first]
    done = [arrivals.first[i] for i in committed if i in arrivals.first]
    span = (max(done) - min(committed.values())) if done else float("nan")
    ack_ms = [a * 1000 for a in (acks or [])]
    return {
        "events": len(committed),
        "arrived": len(lat),
        # the relay's own commit (server timestamp) → broker acknowledgement
        "ack_p50_ms": round(_pct(ack_ms, 0.5), 2),
        "ack_p99_ms": round(_pct(ack_ms, 0.99), 2),
        # commit returned to the writer → first arrival at a consumer (adds fetch latency)
        "p50_ms": round(_pct(lat, 0.5), 2),
        "p99_ms": round(_pct(lat, 0.99), 2),
        "max_ms": round(max(lat), 2) if lat else None,
        "events_per_s": round(len(done) / span, 1) if done and span > 0 else None,
    }


def run(settings: Settings) -> dict[str, Any]:
    """Run the relay on a bench slot; measure latency at 100 and 1,000 events/s and max throughput."""
    slot = f"bench_cdc_{uuid.uuid4().hex[:8]}"
    s = settings.model_copy(update={"cdc_slot": slot})
    ensure_topics(s, [DOCUMENT_DELETED])
    prepare(s.database_dsn(), slot, s.cdc_publication)
    acks: list[float] = []
    relay = OutboxRelay(s, on_ack=acks.append)
    stop = threading.Event()
    t = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    t.start()
    arrivals = _Arrivals(s)
    try:
        deadline = time.monotonic() + 30
        while not relay.ready and time.monotonic() < deadline:
            time.sleep(0.05)
        _phase(s, arrivals, 50, 2.0)  # warm-up: consumer assignment, topic metadata
        return {
            "rate_100": _phase(s, arrivals, 100, 10.0, acks=acks),
            "rate_1000": _phase(s, arrivals, 1000, 10.0, acks=acks),
            "max_sustained": _phase(s, arrivals, 0, 10.0, batch=100, acks=acks),
        }
    finally:
        arrivals.close()
        stop.set()
        t.join(15)
        drop_slot(s.database_dsn(), slot)


if __name__ == "__main__":
    import tempfile
    from pathlib import Path

    from tests.integration.test_cdc_support import private_stack

    with private_stack(Path(tempfile.mkdtemp())) as stack:
        print(json.dumps(run(stack.settings), indent=2))
