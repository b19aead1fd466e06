"""Ingest: accepted uploads per second with concurrent HTTP clients.

The load generator shares the 2 cores with the stack it measures, so it is kept cheap: the
multipart body is built once and each client thread sends it over its own keep-alive
``http.client`` connection (no per-request client-library work beyond the request line and the
response). What it spent in CPU is reported beside the figures, with each part of the stack's.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from bench.latency import summary
from bench.progress import say
from bench.stack import BenchStack
from bench.textpdf import stack_cpu_seconds

#: Issue 15's target for uploads of ~100 KB images per second.
UPLOADS_TARGET_PER_SECOND = 300.0


def multipart_body(field: str, filename: str, content: bytes, content_type: str) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body holding one file part, and its Content-Type header."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def upload_rate(stack: BenchStack, image: bytes, clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` threads, each with its own keep-alive connection, POST ``image`` with ``?force=true``
    for ``seconds``."""
    say(f"[ingest] {clients} clients uploading {len(image) / 1000:.0f} KB JPEGs for {seconds:.0f} s")
    url = urlsplit(stack.supervisor.api_url)
    body, content_type = multipart_body("file", "scan.jpg", image, "image/jpeg")
    headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    go = threading.Event()
    deadline = [0.0]

    def client(index: int) -> None:
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=60.0)
        conn.request("GET", "/healthz")  # connect before the clock starts
        conn.getresponse().read()
        go.wait()
        try:
            while time.perf_counter() < deadline[0]:
                t = time.perf_counter()
                conn.request("POST", "/v1/documents?force=true", body=body, headers=headers)
                r = conn.getresponse()
                r.read()
                if r.status == 202:
                    latencies[index].append(time.perf_counter() - t)
                else:
                    errors[index] += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    db_before = _database_counters(stack)
    cpu_before = stack_cpu_seconds(stack)
    own_before = os.times()
    started = time.perf_counter()
    deadline[0] = started + seconds
    go.set()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    own_after = os.times()
    cpu_after = stack_cpu_seconds(stack)
    time.sleep(1.5)  # backends report their statistics at most once a second
    db_after = _database_counters(stack)
    all_latencies = [x for per in latencies for x in per]
    accepted = len(all_latencies)
    result = {
        "clients": clients,
        "seconds": wall,
        "image_bytes": len(image),
        "accepted": accepted,
        "errors": sum(errors),
        "uploads_per_second": accepted / wall,
        "target_per_second": UPLOADS_TARGET_PER_SECOND,
        "megabytes_per_second": accepted * len(image) / wall / 1e6,
        "request_seconds": summary(all_latencies) if all_latencies else None,
        # this process: the client threads (and the supervisor's 0.2 s poll, which is negligible)
        "load_generator_cpu_seconds": own_after.user + own_after.system - own_before.user - own_before.system,
        "stack_cpu_seconds": {k: cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after},
        # PostgreSQL sessions opened and transactions run, per accepted upload
        "database_per_upload": {k: (db_after[k] - db_before[k]) / max(1, accepted) for k in db_after},
    }
    say(
        f"[ingest] {result['uploads_per_second']:.1f} uploads/s (target ≥ {UPLOADS_TARGET_PER_SECOND:.0f}; "
        f"{result['errors']} errors); load generator used {result['load_generator_cpu_seconds']:.2f} s CPU"
    )
    say(f"[ingest] per upload: {json.dumps(result['database_per_upload'])}")
    return result


def _database_counters(stack: BenchStack) -> dict[str, float]:
    """Sessions opened and transactions run so far in the stack's database (pg_stat_database)."""
    sessions, xacts = stack.query(
        "SELECT sessions, xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
    )[0]
    return {"sessions": float(sessions), "transactions": float(xacts)}
