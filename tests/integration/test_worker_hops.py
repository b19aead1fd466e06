"""A page task's path is read in two files. ``ConsumerLoop`` owns decode → handle → route;
the page worker is a function from a task to its result events and never calls the Kafka, envelope,
dead-letter, ledger or claim-check code itself, nor climbs back into the loop that called it.

The path is traced with ``sys.setprofile`` (calls between pagestream's own modules, from
``ConsumerLoop._one`` taking a record to its commit) on a real worker, broker, PostgreSQL and
Tesseract, for a page that completes and one that fails.
"""

from __future__ import annotations

import pathlib
import threading
import uuid
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest
from sqlalchemy import Engine

from pagestream import metrics
from pagestream._testing.pages import png_bytes, text_page_image
from pagestream.events.models import PageOcrRequestedV1, page_id_for
from pagestream.events.topics import PAGE_OCR_REQUESTED
from pagestream.kafka.admin import ensure_topics
from pagestream.kafka.producer import EventProducer
from pagestream.settings import Settings
from pagestream.stack.broker import TansuBroker
from pagestream.storage import open_store
from pagestream.workers.page_worker import PageWorker
from tests.integration.test_liveness_core import _insert_document
from tests.waiting import wait_until

MODULES = {
    "workers/page_worker.py": "page_worker",
    "workers/loop.py": "loop",
    "workers/claimcheck.py": "claimcheck",
    "events/envelope.py": "envelope",
    "kafka/dlq.py": "dlq",
    "kafka/producer.py": "producer",
    "kafka/consumer.py": "consumer",
    "db/attempts.py": "attempts",
}


def _module(path: str) -> str | None:
    return next((name for suffix, name in MODULES.items() if path.endswith(suffix)), None)


class Path:
    """Cross-module calls made while the loop handles one record (per thread: the worker's)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, str]] = []  # caller module, function, callee module, function
        self.climbs: list[str] = []  # calls into a module already on the stack (back up into a caller)
        self.records = 0
        self._stack: list[tuple[str, str]] = []

    def profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if event not in ("call", "return"):
            return
        module = _module(frame.f_code.co_filename)
        if module is None:
            return
        fn = frame.f_code.co_name
        if event == "return":
            if self._stack:
                self._stack.pop()
            return
        if not self._stack:
            if (module, fn) != ("loop", "_one"):
                return
            self.records += 1
        else:
            caller = self._stack[-1]
            if caller[0] != module:
                self.calls.append((caller[0], caller[1], module, fn))
                if any(m == module for m, _ in self._stack):
                    self.climbs.append(f"{caller[0]}.{caller[1]} -> {module}.{fn}")
        self._stack.append((module, fn))


def _trace(settings: Settings, task: PageOcrRequestedV1, done: Any) -> Path:
    path = Path()
    stop = threading.Event()
    worker = PageWorker(settings, worker_id=93)
    threading.setprofile(path.profile)
    try:
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
    finally:
        threading.setprofile(None)
    producer = EventProducer(settings)
    try:
        producer.publish_sync(task, topic=PAGE_OCR_REQUESTED)
        wait_until(done, 120, "the page's outcome")
    finally:
        stop.set()
        thread.join(30)
        producer.close(5)
    return path


def _outcomes(outcome: str) -> float:
    return sum(
        s.value
        for m in metrics.OCR_PAGES.collect()
        for s in m.samples
        if s.name.endswith("_total") and s.labels.get("outcome") == outcome
    )


@pytest.fixture
def own_broker(migrated: Settings, tmp_path: pathlib.Path) -> Iterator[Settings]:
    """The settings on a broker of this test's own: the page workers' group and topics start empty,
    so no task an earlier test left on the shared broker (or its retry backoff) runs before ours."""
    broker = TansuBroker(tmp_path / "broker")
    broker.start()
    try:
        s = migrated.model_copy(update={"kafka_bootstrap_servers": broker.bootstrap_servers})
        ensure_topics(s)
        yield s
    finally:
        broker.stop()


def test_the_page_worker_only_turns_a_task_into_events(own_broker: Settings, engine: Engine) -> None:
    migrated = own_broker
    store = open_store(migrated)
    uri = store.put(
        f"test/{uuid.uuid4()}.png", png_bytes(text_page_image(["Two files"]), dpi=300), "image/png"
    )
    paths = {}
    for outcome, storage_uri in (("completed", uri), ("failed", f"{uri}.missing")):
        doc = _insert_document(engine, page_count=1, storage_uri=storage_uri)
        task = PageOcrRequestedV1(
            page_id=page_id_for(doc, 1),
            document_id=doc,
            page_number=1,
            page_count=1,
            storage_uri=storage_uri,
            media_type="image/png",
            sha256="0" * 64,
        )
        before = _outcomes(outcome)
        paths[outcome] = _trace(migrated, task, lambda o=outcome, b=before: _outcomes(o) > b)

    for outcome, path in paths.items():
        assert path.records >= 1, outcome
        from_worker = [c for c in path.calls if c[0] == "page_worker"]
        assert from_worker == [], f"{outcome}: the page worker called {from_worker}"
        into_worker = {c[3] for c in path.calls if c[2] == "page_worker"}
        assert into_worker <= {"handle", "failed", "published", "<lambda>"}, (outcome, into_worker)
        assert path.climbs == [], (outcome, path.climbs)
        modules = {c[2] for c in path.calls}
        assert {"envelope", "producer", "consumer", "attempts"} <= modules, (
            outcome,
            modules,
        )  # traced at all
    assert "claimcheck" in {c[2] for c in paths["completed"].calls}
    assert "dlq" in {c[2] for c in paths["failed"].calls} and "failed" in {
        c[3] for c in paths["failed"].calls
    }
