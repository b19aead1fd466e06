"""Helpers for the chaos tests: a private supervised stack, a mixed document corpus, a client
that retries through outages, process killers, and the end-state checks.

Nothing here kills a process it did not find through the supervisor it was handed.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pagestream.client import FINAL_STATUSES, ApiClient, ApiClientError
from tests.waiting import wait_until as wait_for

# ---------------------------------------------------------------- corpus


@dataclass(frozen=True)
class ChaosDoc:
    """One document to submit: its bytes, how many pages it must end with, and its kind."""

    name: str
    kind: str  # born-digital | image | scanned-pdf | drawing
    data: bytes
    pages: int


def _born_digital(i: int, pages: int) -> bytes:
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    from pagestream._testing.pages import register_pdf_fonts

    register_pdf_fonts()
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=letter, invariant=1, pageCompression=1)
    for n in range(1, pages + 1):
        c.setFont("Vera-Bold", 16)
        c.drawString(72, 720, f"Chaos report {i:04d}")
        c.setFont("Vera", 11)
        c.drawString(72, 690, f"Section {n} of document {i}: shipments, invoices and delivery notes.")
        c.drawString(72, 40, f"Page {n} of {pages}")
        c.showPage()
    c.save()
    return buf.getvalue()


def _small_image(i: int) -> Any:
    from PIL import Image, ImageDraw

    from pagestream._testing.pages import font

    im = Image.new("L", (720, 160), 255)
    d = ImageDraw.Draw(im)
    d.text((20, 30), f"Invoice {i:05d}", font=font(40), fill=0)
    d.text((20, 95), f"Total due {17 * i + 3} EUR", font=font(28), fill=0)
    return im


def _png(i: int) -> bytes:
    buf = io.BytesIO()
    _small_image(i).save(buf, "PNG")
    return buf.getvalue()


def _scanned_pdf(i: int) -> bytes:
    """A small image-only PDF page (no text layer): it must be OCR'd."""
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    from pagestream._testing.pages import add_scan_effects

    im = add_scan_effects(_small_image(i), seed=i, rotate_degrees=0.5)
    png = io.BytesIO()
    im.save(png, "PNG")
    png.seek(0)
    buf = io.BytesIO()
    w, h = 720 * 72 / 200, 160 * 72 / 200  # the image at 200 dpi
    c = canvas.Canvas(buf, pagesize=(w, h), invariant=1)
    c.drawImage(ImageReader(png), 0, 0, width=w, height=h)
    c.showPage()
    c.save()
    return buf.getvalue()


def _drawing(i: int) -> bytes:
    from dataclasses import replace

    from pagestream._testing.drawings import SPECS, drawing_pdf

    spec = SPECS[i % len(SPECS)]
    return drawing_pdf(replace(spec, sheet_number=f"C-{i:03d}", sheet_title=f"CHAOS SHEET {i}", seed=i))


def make_corpus(n: int) -> list[ChaosDoc]:
    """``n`` distinct small documents: ~60 % born-digital PDFs (1–3 pages), ~20 % PNGs,
    ~10 % scanned-style (image-only) PDFs, ~10 % vector drawings. Deterministic."""
    out: list[ChaosDoc] = []
    for i in range(n):
        slot = i % 10
        if slot < 6:
            pages = 1 + i % 3
            out.append(ChaosDoc(f"report-{i:04d}.pdf", "born-digital", _born_digital(i, pages), pages))
        elif slot < 8:
            out.append(ChaosDoc(f"invoice-{i:04d}.png", "image", _png(i), 1))
        elif slot == 8:
            out.append(ChaosDoc(f"scan-{i:04d}.pdf", "scanned-pdf", _scanned_pdf(i), 1))
        else:
            out.append(ChaosDoc(f"sheet-{i:04d}.pdf", "drawing", _drawing(i), 1))
    return out


# ---------------------------------------------------------------- a private stack


@dataclass
class ChaosStack:
    """A supervised, fully embedded stack that the test may damage."""

    supervisor: Any
    thread: threading.Thread
    state_dir: Path

    @property
    def api_url(self) -> str:
        return str(self.supervisor.api_url)

    def part(self, name: str) -> dict[str, Any]:
        return dict(self.supervisor.state()["parts"][name])

    def restarts(self) -> dict[str, int]:
        return {n: int(p["restarts"]) for n, p in self.supervisor.state()["parts"].items()}


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def http_text(url: str, timeout: float = 2.0) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return str(r.read().decode())
    except (urllib.error.URLError, OSError):
        return None


def all_ready(stack: ChaosStack) -> bool:
    parts = stack.supervisor.state()["parts"]
    svc = [p for p in parts.values() if p.get("kind") == "service"]
    return len(svc) == 4 and all(p["pid"] and http_ok(p["ready_url"]) for p in svc)


@contextmanager
def chaos_stack(
    *, ocr_workers: int = 2, extra_env: dict[str, str] | None = None, keep_state: bool = False
) -> Iterator[ChaosStack]:
    """Start `pagestream up`'s supervisor in a thread on a private state dir under /var/tmp."""
    from pagestream.stack.supervisor import RestartPolicy, StackSupervisor

    state = Path(tempfile.mkdtemp(prefix="pagestream-chaos-", dir="/var/tmp"))
    state.chmod(0o755)
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "STORAGE_URL", "PAGESTREAM_API_URL")
    }
    environ.update(
        PAGESTREAM_OCR_WORKERS=str(ocr_workers),
        PAGESTREAM_CDC_HEARTBEAT_SECONDS="1",
        OMP_THREAD_LIMIT="1",
        **(extra_env or {}),
    )
    # durable PostgreSQL: the test SIGKILLs the postmaster, and fast mode's synchronous_commit=off
    # loses the commits of the last few hundred ms before a crash (acknowledged uploads vanish)
    sup = StackSupervisor(
        state,
        environ,
        fast_database=False,
        restart_policy=RestartPolicy(initial=0.5, cap=4.0, reset_after=20.0),
    )
    t = threading.Thread(
        target=sup.run, kwargs={"install_signal_handlers": False}, daemon=True, name="chaos-stack"
    )
    t.start()
    stack = ChaosStack(sup, t, state)
    try:
        wait_for(lambda: sup.api_url and all_ready(stack), 180, "the chaos stack to be ready", 0.5)
        yield stack
    finally:
        sup.request_stop()
        t.join(120)
        if not keep_state:
            shutil.rmtree(state, ignore_errors=True)


# ---------------------------------------------------------------- submitting through outages


@dataclass
class Submitted:
    doc: ChaosDoc
    key: str
    id: str = ""
    attempts: int = 0
    duplicate_answers: int = 0
    errors: list[str] = field(default_factory=list)


def submit_with_retry(client: ApiClient, doc: ChaosDoc, key: str, *, deadline_s: float = 180.0) -> Submitted:
    """POST until answered; a lost connection or a 5xx is retried with the SAME Idempotency-Key."""
    sub = Submitted(doc, key)
    end = time.monotonic() + deadline_s
    delay = 0.2
    while True:
        sub.attempts += 1
        try:
            body = client.submit_bytes(doc.name, doc.data, headers={"Idempotency-Key": key})
        except ApiClientError as e:
            retryable = e.status is None or e.status >= 500
            sub.errors.append(str(e)[:200])
            if not retryable or time.monotonic() > end:
                raise
            time.sleep(delay)
            delay = min(2.0, delay * 1.5)
            continue
        sub.id = str(body["id"])
        if body.get("duplicate"):
            sub.duplicate_answers += 1
        return sub


def wait_final(client: ApiClient, ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    """Poll every document until final (tolerating API outages); fail naming the stragglers."""
    done: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for did in ids:
            if did in done:
                continue
            try:
                d = client.document(did)
            except ApiClientError as e:
                if e.status == 404:  # answered 202 earlier: an acknowledged document was lost
                    raise AssertionError(f"document {did} was accepted (202) but no longer exists") from e
                break
            if d["status"] in FINAL_STATUSES:
                done[did] = d
        if len(done) == len(ids):
            return done
        time.sleep(0.5)
    missing = [i for i in ids if i not in done]
    raise AssertionError(
        f"{len(missing)} of {len(ids)} documents not final after {timeout:.0f} s: {missing[:5]}"
    )


# ---------------------------------------------------------------- killing


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` from /proc (no psutil)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        with suppress(OSError):
            out.extend(int(x) for x in Path(f"/proc/{pid}/task/{tid}/children").read_text().split())
    return sorted(set(out))


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def ocr_worker_pids(stack: ChaosStack) -> list[int]:
    """The OCR worker processes (multiprocessing spawn children of the ocr service)."""
    ocr = stack.supervisor.pid("ocr")
    if ocr is None:
        return []
    return [
        c
        for c in children_of(ocr)
        if "multiprocessing" in cmdline(c) and "resource_tracker" not in cmdline(c)
    ]


def kill_service(stack: ChaosStack, name: str, timeout: float = 90.0) -> dict[str, Any]:
    """SIGKILL service ``name``; wait until the supervisor restarted it and it is ready again."""
    sup = stack.supervisor
    pid = wait_for(lambda: sup.pid(name), 60, f"{name} to be running")
    before = sup.restarts(name)
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    ready_url = stack.part(name)["ready_url"]
    wait_for(
        lambda: sup.restarts(name) > before and sup.pid(name) not in (None, pid) and http_ok(ready_url),
        timeout,
        f"{name} to be restarted and ready",
    )
    return {
        "part": name,
        "killed_pid": pid,
        "new_pid": sup.pid(name),
        "down_s": round(time.monotonic() - t0, 1),
    }


def kill_ocr_worker(stack: ChaosStack, timeout: float = 90.0) -> dict[str, Any]:
    """SIGKILL one OCR worker child of the ocr service; the pool replaces it."""
    workers = wait_for(lambda: ocr_worker_pids(stack), 60, "an ocr worker process")
    victim = workers[0]
    t0 = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    wait_for(
        lambda: victim not in ocr_worker_pids(stack) and len(ocr_worker_pids(stack)) >= len(workers),
        timeout,
        "the ocr pool to replace the killed worker",
    )
    return {"part": "ocr-worker", "killed_pid": victim, "down_s": round(time.monotonic() - t0, 1)}


def kill_postgres(stack: ChaosStack, timeout: float = 120.0) -> dict[str, Any]:
    """SIGKILL the embedded postmaster; the supervisor's infrastructure watch restarts it."""
    pg = stack.supervisor._postgres  # the embedded PostgreSQL (no public handle exists)
    assert pg is not None, "the chaos stack must embed PostgreSQL"
    pid = wait_for(lambda: pg.pid, 30, "postgres to be running")
    before = stack.supervisor.restarts("postgres")
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: stack.supervisor.restarts("postgres") > before and pg.pid not in (None, pid),
        timeout,
        "postgres to be restarted",
    )
    wait_for(lambda: all_ready(stack), timeout, "every service ready after the postgres restart")
    return {
        "part": "postgres",
        "killed_pid": pid,
        "new_pid": pg.pid,
        "down_s": round(time.monotonic() - t0, 1),
    }


# ---------------------------------------------------------------- metrics and topics


_METRIC_LINE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def metric_sum(text: str, name: str) -> float:
    """Sum of every sample of ``name`` in Prometheus text."""
    total = 0.0
    for line in text.splitlines():
        m = _METRIC_LINE.match(line)
        if m and m["name"] == name:
            total += float(m["value"])
    return total


class MetricWatcher:
    """Scrapes a counter of one service every ``interval`` s, keeping the last value per pid,
    so increments survive the service's restarts (a restart resets the process's counters)."""

    def __init__(self, stack: ChaosStack, service: str, metric: str, interval: float = 0.5):
        self._stack, self._service, self._metric, self._interval = stack, service, metric, interval
        self.per_pid: dict[int, float] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True, name=f"watch-{service}")

    def __enter__(self) -> MetricWatcher:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.scrape()
        self._stop.set()
        self._t.join(5)

    def scrape(self) -> None:
        pid = self._stack.supervisor.pid(self._service)
        if pid is None:
            return
        text = http_text(self._stack.part(self._service)["metrics_url"])
        if text is not None:
            self.per_pid[pid] = max(self.per_pid.get(pid, 0.0), metric_sum(text, self._metric))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.scrape()

    @property
    def total(self) -> int:
        return int(sum(self.per_pid.values()))


def read_topic(settings: Any, topic: str, *, settle: float = 3.0, timeout: float = 60.0) -> list[Any]:
    """Every record of ``topic`` from the beginning (a fresh group), until ``settle`` s pass with nothing new."""
    from pagestream.kafka.consumer import EventConsumer

    c = EventConsumer(settings, f"chaos-check-{uuid.uuid4()}", [topic])
    c.start()
    out: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            got = c.consume(500, 0.5)
            if got:
                out.extend(got)
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > settle and c.assigned:
                break
    finally:
        c.close()
    return out


@dataclass
class EndState:
    """What the database and the topics say after the storm."""

    page_rows: dict[str, list[int]]
    processed_events: int
    duplicate_page_numbers: dict[str, list[int]]
    ocr_completed_records: int
    ocr_completed_ids_per_doc: dict[str, set[str]]
    dlq_records: dict[str, int]


def collect_end_state(stack: ChaosStack, ids: list[str]) -> EndState:
    from sqlalchemy import text

    from pagestream.db import make_engine
    from pagestream.events.envelope import header_map
    from pagestream.events.topics import (
        DOCUMENT_COMMITTED_DLQ,
        DOCUMENT_OCR_COMPLETED,
        DOCUMENT_SUBMIT_DLQ,
        PAGE_OCR_REQUESTED_DLQ,
        PERSIST_DLQ,
    )

    settings = stack.supervisor.settings()
    engine = make_engine(settings.database_dsn())
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT document_id::text, page_number FROM pages "
                    "WHERE document_id = ANY(CAST(:ids AS uuid[])) ORDER BY 1, 2"
                ),
                {"ids": ids},
            ).all()
            processed = conn.execute(
                text("SELECT count(*) FROM processed_events WHERE consumer = 'persist'")
            ).scalar_one()
    finally:
        engine.dispose()
    page_rows: dict[str, list[int]] = {i: [] for i in ids}
    for did, n in rows:
        page_rows[did].append(int(n))
    dups = {d: [n for n, c in Counter(ns).items() if c > 1] for d, ns in page_rows.items()}
    dups = {d: v for d, v in dups.items() if v}

    recs = read_topic(settings, DOCUMENT_OCR_COMPLETED)
    per_doc: dict[str, set[str]] = {}
    for r in recs:
        h = header_map(r.headers)
        per_doc.setdefault(h.get("ce_subject", ""), set()).add(h.get("ce_id", ""))
    dlq = {
        t: len(read_topic(settings, t, settle=1.5))
        for t in (DOCUMENT_SUBMIT_DLQ, DOCUMENT_COMMITTED_DLQ, PAGE_OCR_REQUESTED_DLQ, PERSIST_DLQ)
    }
    return EndState(page_rows, int(processed), dups, len(recs), per_doc, dlq)


def grep_secret(root: Path, secret: str) -> list[str]:
    """Every file under ``root`` whose bytes contain ``secret``."""
    hits: list[str] = []
    needle = secret.encode()
    for p in root.rglob("*"):
        if p.is_file():
            try:
                if needle in p.read_bytes():
                    hits.append(str(p))
            except OSError:
                pass
    return hits
