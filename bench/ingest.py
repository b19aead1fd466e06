"""Ingest: accepted uploads per second with concurrent HTTP clients."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from bench.latency import summary
from bench.progress import say
from bench.stack import BenchStack


def upload_rate(stack: BenchStack, image: bytes, clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` threads, each with its own httpx client, POST ``image`` with ``?force=true`` for ``seconds``."""
    say(f"[ingest] {clients} clients uploading {len(image) / 1000:.0f} KB JPEGs for {seconds:.0f} s")
    url = stack.supervisor.api_url
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    go = threading.Event()
    deadline = [0.0]

    def client(index: int) -> None:
        with httpx.Client(base_url=url, timeout=60.0) as http:
            http.get("/healthz")  # connect before the clock starts
            go.wait()
            n = 0
            while time.perf_counter() < deadline[0]:
                t = time.perf_counter()
                r = http.post(
                    "/v1/documents",
                    params={"force": "true"},
                    files={"file": (f"scan-{index}-{n}.jpg", image, "image/jpeg")},
                )
                if r.status_code == 202:
                    latencies[index].append(time.perf_counter() - t)
                else:
                    errors[index] += 1
                n += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    started = time.perf_counter()
    deadline[0] = started + seconds
    go.set()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    all_latencies = [x for per in latencies for x in per]
    accepted = len(all_latencies)
    result = {
        "clients": clients,
        "seconds": wall,
        "image_bytes": len(image),
        "accepted": accepted,
        "errors": sum(errors),
        "uploads_per_second": accepted / wall,
        "megabytes_per_second": accepted * len(image) / wall / 1e6,
        "request_seconds": summary(all_latencies) if all_latencies else None,
    }
    say(f"[ingest] {result['uploads_per_second']:.1f} uploads/s ({result['errors']} errors)")
    return result
