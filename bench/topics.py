"""The first record of an event type whose topic does not exist yet: outbox commit → consumer.

A new event type (a release adds one, or a type nobody has emitted on this cluster yet) has no
topic until the relay creates it on its first record. A consumer subscribed to it before then used
to learn of the topic only at its next metadata refresh and then rejoin its group — seconds for one
record, after which the same path takes milliseconds. Consumers now make sure their topics exist
before subscribing (``EventConsumer.start``); this measures the first record (the consumer joined,
the topic absent until that consumer starts) and the records after it, on a fresh stack, with a
fresh event type per trial, and — once per run — the old way (``create_topics=False``) for comparison.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import psycopg2

from bench.latency import percentile
from bench.progress import say
from bench.stack import BenchStack
from pagestream.events.topics import topic_for
from pagestream.kafka.consumer import EventConsumer

#: the target for the first record, commit → consumer (seconds)
TARGET_FIRST_SECONDS = 1.0
#: records after the first, per trial
FOLLOWERS = 5
INSERT = (
    "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, traceparent, occurredat) "
    "VALUES (%s, 'bench', %s, %s, %s::jsonb, NULL, now())"
)


def _commit(conn: Any, event_type: str) -> tuple[str, float]:
    """Commit one outbox row of ``event_type``; its id and the time the commit returned."""
    event_id = str(uuid.uuid4())
    with conn, conn.cursor() as cur:
        cur.execute(INSERT, (event_id, event_id, event_type, json.dumps({"id": event_id})))
        cur.execute("DELETE FROM outbox WHERE id = %s", (event_id,))
    return event_id, time.time()


def _arrival(consumer: EventConsumer, timeout: float) -> float | None:
    """When the next record reached ``consumer`` (Unix time), or None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if consumer.poll(0.01) is not None:
            return time.time()
    return None


def _trial(stack: BenchStack, conn: Any, create_topics: bool, timeout: float) -> dict[str, Any]:
    event_type = f"bench.first-record-{uuid.uuid4().hex[:8]}.v1"
    settings = stack.supervisor.settings()
    consumer = EventConsumer(
        settings, f"bench-topics-{uuid.uuid4()}", [topic_for(event_type)], create_topics=create_topics
    )
    try:
        consumer.start()
        # the consumer is up and polling before the first record is written, as a service would be
        warm = time.monotonic() + 10
        while time.monotonic() < warm and not consumer.assigned:
            consumer.poll(0.05)
        _, committed = _commit(conn, event_type)
        arrived = _arrival(consumer, timeout)
        first = None if arrived is None else arrived - committed
        followers = []
        for _ in range(FOLLOWERS if first is not None else 0):
            _, committed = _commit(conn, event_type)
            arrived = _arrival(consumer, 30)
            if arrived is not None:
                followers.append(arrived - committed)
        return {"first_seconds": first, "followers_seconds": followers}
    finally:
        consumer.close()


def first_record_latency(stack: BenchStack, trials: int) -> dict[str, Any]:
    """``trials`` fresh event types with the fix, one without it."""
    conn = psycopg2.connect(stack.supervisor.database_url)
    try:
        say("[topics] the old way: subscribed without creating the topic")
        old = _trial(stack, conn, create_topics=False, timeout=120)
        say(f"[topics]   first record after {old['first_seconds']} s")
        runs = []
        for i in range(trials):
            runs.append(_trial(stack, conn, create_topics=True, timeout=120))
            say(f"[topics] {i + 1}/{trials}: first record after {runs[-1]['first_seconds']} s")
    finally:
        conn.close()
    firsts = [r["first_seconds"] for r in runs if r["first_seconds"] is not None]
    followers = [s for r in runs for s in r["followers_seconds"]]
    return {
        "trials": trials,
        "lost": sum(1 for r in runs if r["first_seconds"] is None),
        "first_p50_seconds": percentile(firsts, 50) if firsts else None,
        "first_max_seconds": max(firsts) if firsts else None,
        "followers_p50_seconds": percentile(followers, 50) if followers else None,
        "followers": len(followers),
        "without_creating_first_seconds": old["first_seconds"],
        "target_first_seconds": TARGET_FIRST_SECONDS,
    }
