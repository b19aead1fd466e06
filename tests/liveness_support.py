"""Helpers for the liveness fault tests: a supervised stack that can be stopped and started again
on the same state dir, small scans, direct database reads, and the end-state checks.

Builds on ``tests.chaos_support``; nothing here kills or stops a process it did not find through
the supervisor it was handed.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pagestream.client import ApiClient
from tests.chaos_support import ChaosStack, all_ready, read_topic
from tests.waiting import wait_until as wait_for

#: settings every liveness stack gets: the reconciler looks every second
BASE_ENV = {
    "PAGESTREAM_RECONCILE_INTERVAL_SECONDS": "1",
    "PAGESTREAM_CDC_HEARTBEAT_SECONDS": "1",
    "OMP_THREAD_LIMIT": "1",
}


@contextmanager
def state_dir() -> Iterator[Path]:
    """A private state dir under /var/tmp (the postgres user must reach it when tests run as root)."""
    path = Path(tempfile.mkdtemp(prefix="pagestream-liveness-", dir="/var/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        if not os.environ.get("LIVENESS_KEEP_STATE"):  # set it to read the logs of a failed run
            shutil.rmtree(path, ignore_errors=True)


@contextmanager
def stack_on(state: Path, env: dict[str, str], *, ocr_workers: int = 2) -> Iterator[ChaosStack]:
    """`pagestream up` (the supervisor, in a thread) on ``state``; leaving the block is `pagestream down`.

    The state dir is kept, so a second ``stack_on`` on it finds PostgreSQL's data and the
    objects again, while the embedded broker starts empty (memory storage).
    """
    from pagestream.stack.supervisor import RestartPolicy, StackSupervisor

    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "STORAGE_URL", "PAGESTREAM_API_URL")
        and not k.startswith("PAGESTREAM_")
    }
    environ.update(BASE_ENV)
    environ.update(PAGESTREAM_OCR_WORKERS=str(ocr_workers), **env)
    sup = StackSupervisor(
        state,
        environ,
        fast_database=False,
        restart_policy=RestartPolicy(initial=0.5, cap=4.0, reset_after=20.0),
    )
    t = threading.Thread(
        target=sup.run, kwargs={"install_signal_handlers": False}, daemon=True, name="liveness-stack"
    )
    t.start()
    stack = ChaosStack(sup, t, state)
    try:
        wait_for(lambda: sup.api_url and all_ready(stack), 180, "the stack to be ready", 0.5)
        yield stack
    finally:
        sup.request_stop()
        t.join(120)
        assert not t.is_alive(), "the stack did not stop"


# ---------------------------------------------------------------- documents


def scan_png(i: int, *, dpi: int = 150) -> bytes:
    """A small one-page scan (image only, so it must be OCR'd) with distinct text."""
    from pagestream._testing.pages import add_scan_effects, png_bytes, text_page_image

    image = text_page_image(
        [f"Delivery note {i:05d}", f"Pallets received {3 * i + 7}"],
        dpi=dpi,
        size_in=(4.0, 1.2),
        font_pt=14,
        margin_in=0.3,
    )
    return png_bytes(add_scan_effects(image, seed=i, rotate_degrees=0.4))


def text_then_dense_scan_pdf() -> bytes:
    """Two pages: a born-digital page (text layer, fast) and a dense 300 dpi scanned letter
    (OCR, several seconds: slow enough to kill its worker while it reads it)."""
    from reportlab.lib.pagesizes import letter
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    from pagestream._testing.pages import register_pdf_fonts, scanned_letter

    register_pdf_fonts()
    image, _ = scanned_letter(seed=11)
    png = io.BytesIO()
    image.save(png, "PNG")
    png.seek(0)
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=letter, invariant=1)
    c.setFont("Vera", 12)
    c.drawString(72, 720, "Cover sheet: structural review of the library extension")
    c.drawString(72, 700, "The scanned letter follows on page two.")
    c.showPage()
    c.drawImage(ImageReader(png), 0, 0, width=letter[0], height=letter[1])
    c.showPage()
    c.save()
    return buf.getvalue()


def submit(client: ApiClient, name: str, data: bytes) -> str:
    body = client.submit_bytes(name, data, headers={"Idempotency-Key": f"liveness-{uuid.uuid4()}"})
    return str(body["id"])


def good_document_completes(client: ApiClient, i: int = 999, timeout: float = 60.0) -> None:
    """The check every fault test ends with: a good document submitted now completes."""
    did = submit(client, f"after-{i}.png", scan_png(i))
    doc = client.wait(did, timeout)
    assert doc["status"] == "completed", doc
    assert f"{i:05d}" in client.text(did).replace(" ", ""), client.text(did)


# ---------------------------------------------------------------- the database's word


class Db:
    """Direct reads (and, for fault injection, writes) on the stack's PostgreSQL."""

    def __init__(self, stack: ChaosStack):
        from pagestream.db import make_engine

        self.engine = make_engine(stack.supervisor.settings().database_dsn(), pool_size=1)

    def close(self) -> None:
        self.engine.dispose()

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(text(sql), params).mappings().all()]

    def execute(self, sql: str, **params: Any) -> None:
        from sqlalchemy import text

        with self.engine.begin() as conn:
            conn.execute(text(sql), params)

    def documents(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        return {
            str(r["id"]): r
            for r in self.rows("SELECT * FROM documents WHERE id = ANY(CAST(:ids AS uuid[]))", ids=ids)
        }

    def pages(self, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Every page row of the documents, by document, in page order (duplicates kept)."""
        out: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
        for r in self.rows(
            "SELECT document_id, page_number, status, error_reason, error_detail, attempts, text "
            "FROM pages WHERE document_id = ANY(CAST(:ids AS uuid[])) ORDER BY page_number",
            ids=ids,
        ):
            out[str(r["document_id"])].append(r)
        return out

    @staticmethod
    def final_rows(
        stack: ChaosStack, ids: list[str]
    ) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        """(documents, pages) of ``ids``, read once on a connection of its own."""
        db = Db(stack)
        try:
            return db.documents(ids), db.pages(ids)
        finally:
            db.close()

    def attempts(self, page_id: uuid.UUID) -> dict[str, Any] | None:
        got = self.rows("SELECT attempts, last_worker FROM page_attempts WHERE page_id = :p", p=page_id)
        return got[0] if got else None

    def checkpoint(self) -> None:
        self.execute("CHECKPOINT")


@dataclass(frozen=True)
class Finishing:
    """One ``document.ocr-completed.v1`` record as read from the broker."""

    event_id: str
    status: str
    completed_at: datetime


def finishings(
    stack: ChaosStack, *, expect: dict[str, int] | None = None, settle: float = 3.0, timeout: float = 30.0
) -> dict[str, list[Finishing]]:
    """Every ``document.ocr-completed.v1`` record in the (current) broker, by document.

    ``expect`` maps document ids to how many distinct finishings must have arrived: the topic is
    read again until they have (cdc relays the outbox a moment after the row commits), or ``timeout``.
    """
    from pagestream.events.envelope import header_map
    from pagestream.events.topics import DOCUMENT_OCR_COMPLETED

    deadline = time.monotonic() + timeout
    while True:
        out: dict[str, list[Finishing]] = {}
        for r in read_topic(stack.supervisor.settings(), DOCUMENT_OCR_COMPLETED, settle=settle):
            h = header_map(r.headers)
            data = json.loads(r.value)
            out.setdefault(str(data["document_id"]), []).append(
                Finishing(h.get("ce_id", ""), data["status"], datetime.fromisoformat(data["completed_at"]))
            )
        short = {d: n for d, n in (expect or {}).items() if len({f.event_id for f in out.get(d, [])}) < n}
        if not short or time.monotonic() > deadline:
            return out


def assert_one_finishing(doc: dict[str, Any], seen: list[Finishing], *, required: bool = True) -> None:
    """A document was finished once: at most one distinct event (exactly one when ``required``),
    and it says what the row says (same final status, same completion time)."""
    distinct = {f.event_id: f for f in seen}
    assert len(distinct) <= 1, (
        f"document {doc['id']} finished {len(distinct)} times: {list(distinct.values())}"
    )
    if required:
        assert distinct, f"document {doc['id']} ({doc['status']}) has no document.ocr-completed.v1 event"
    for f in distinct.values():
        assert f.status == doc["status"], (f, doc["status"])
        assert abs((f.completed_at - doc["completed_at"]).total_seconds()) < 0.01, (f, doc["completed_at"])


# ---------------------------------------------------------------- processes


def signal_pid(pid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_gone(pid: int, timeout: float = 30.0) -> None:
    def gone() -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return True

    wait_for(gone, timeout, f"process {pid} to exit")


def elapsed(t0: float) -> float:
    return round(time.monotonic() - t0, 1)
