"""persist writes a page result as soon as nothing more is waiting, not when a batch timer fires.

persist runs as its service (``python -m services.persist``) on a broker of its own, with a batch
window of an hour: a lone page result is only written in time if persist flushes a batch when its
input is idle (``take_until_idle``), as faust's ``take_events`` did not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from pagestream.events.topics import PAGE_OCR_COMPLETED, PAGE_OCR_FAILED, PERSIST_DLQ
from pagestream.kafka.admin import ensure_topics
from pagestream.kafka.producer import EventProducer
from pagestream.settings import Settings
from pagestream.stack.broker import TansuBroker
from tests.integration.fabricate import completed, new_document
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def persist_alone(migrated: Settings, tmp_path: Path) -> Iterator[Settings]:
    """persist on its own broker (its group starts from nothing), batch window one hour."""
    broker = TansuBroker(tmp_path / "broker", unvalidated_topics=(PAGE_OCR_COMPLETED, PAGE_OCR_FAILED))
    broker.start()
    proc: subprocess.Popen[bytes] | None = None
    try:
        s = migrated.model_copy(update={"kafka_bootstrap_servers": broker.bootstrap_servers})
        ensure_topics(s, [PAGE_OCR_COMPLETED, PAGE_OCR_FAILED, PERSIST_DLQ])
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "DATABASE_URL": s.database_url.get_secret_value(),
            "STORAGE_URL": s.storage_url,
            "PAGESTREAM_STATE_DIR": str(tmp_path),
            "PAGESTREAM_HTTP_PORT": "0",
            "PAGESTREAM_PERSIST_BATCH_SECONDS": "3600",
        }
        log = (tmp_path / "persist.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.persist"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        yield s
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        broker.stop()


def _status(engine: Engine, doc: uuid.UUID) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(text("SELECT status FROM documents WHERE id = :id"), {"id": doc}).scalar_one()
        )


def test_a_lone_page_result_is_written_without_waiting_out_the_batch_window(
    persist_alone: Settings,
    engine: Engine,
    tmp_path: Path,
) -> None:
    producer = EventProducer(persist_alone)
    try:
        for n in range(2):  # the first result, and a later one arriving at an idle persist
            doc = new_document(engine, 1)
            producer.publish_sync(completed(doc, 1, 1, f"page {n}").event)
            try:
                wait_until(lambda d=doc: _status(engine, d) == "completed", 120, f"document {n} completed")
            except AssertionError:
                raise AssertionError((tmp_path / "persist.log").read_text()[-4000:]) from None
    finally:
        producer.close()
