"""End-to-end latency of one-page documents at light load, and where the time goes.

Scanned pages measure the pipeline's overhead next to real OCR; one-page born-digital PDFs (text
layer, no OCR) measure nothing but overhead. Each figure is reported next to its target.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.corpus import born_digital_pdf
from bench.machine import CpuMeter
from bench.progress import say
from bench.stack import BenchStack

#: the overhead targets (seconds, p50; see BENCHMARKS.md)
TARGETS = {
    "overhead": 0.150,
    "persist_to_completed": 0.050,
    "commit_to_worker": 0.040,
    "born_digital_client": 0.150,
}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) — with few samples p99 is the maximum."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def summary(values: list[float]) -> dict[str, float]:
    """p50, p99, mean, min, max."""
    return {
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
    }


def _one_at_a_time(stack: BenchStack, label: str, submit: Callable[[int], str], count: int) -> dict[str, Any]:
    """Submit ``count`` one-page documents one at a time, each after the previous one completed."""
    client_s: list[float] = []
    server_s: list[float] = []
    processing_s: list[float] = []
    parts: dict[str, list[float]] = {
        "http_submit": [],
        "commit_to_worker": [],
        "worker_overhead": [],
        "persist_to_completed": [],
    }
    cpu = CpuMeter().start()
    for i in range(count):
        started = time.perf_counter()
        doc_id = submit(i)
        submitted = time.perf_counter()
        stack.wait_completed([doc_id], timeout=300, poll=0.02)
        client_s.append(time.perf_counter() - started)
        row = stack.query(
            "SELECT extract(epoch FROM d.completed_at - d.received_at), "
            "extract(epoch FROM p.started_at - d.received_at), "
            "extract(epoch FROM p.completed_at - p.started_at), "
            "extract(epoch FROM d.completed_at - p.completed_at), "
            "coalesce((p.layout->>'render_seconds')::float, 0), coalesce((p.layout->>'ocr_seconds')::float, 0) "
            "FROM documents d JOIN pages p ON p.document_id = d.id WHERE d.id = %s",
            (doc_id,),
        )[0]
        server, to_worker, in_worker, to_done, render, ocr = (float(v) for v in row)
        server_s.append(server)
        processing_s.append(render + ocr)
        parts["http_submit"].append(submitted - started)
        parts["commit_to_worker"].append(to_worker)
        parts["worker_overhead"].append(in_worker - render - ocr)
        parts["persist_to_completed"].append(to_done)
        say(f"[latency] {label} {i + 1}/{count}: {client_s[-1]:.3f} s (page processing {render + ocr:.3f} s)")
    machine_cpu = cpu.stop()
    overhead = [c - p for c, p in zip(client_s, processing_s, strict=True)]
    return {
        "documents": count,
        "client_seconds": summary(client_s),
        "server_seconds": summary(server_s),
        "page_processing_seconds": summary(processing_s),
        "overhead_seconds": summary(overhead),
        "machine_cpu_busy": machine_cpu,
        "overhead_parts_p50": {k: percentile(v, 50) for k, v in parts.items()},
    }


def one_page_latency(stack: BenchStack, pages: list[Path], count: int) -> dict[str, Any]:
    """Scanned one-page documents, then one-page born-digital PDFs, each kind one at a time."""
    say(f"[latency] {count} one-page scanned documents, one at a time")
    result = _one_at_a_time(
        stack, "scanned", lambda i: str(stack.client.submit(pages[i % len(pages)], force=True)["id"]), count
    )
    pdf = born_digital_pdf(1)
    say(f"[latency] {count} one-page born-digital PDFs ({len(pdf)} bytes), one at a time")
    result["born_digital"] = _one_at_a_time(
        stack,
        "born-digital",
        lambda i: str(stack.client.submit_bytes(f"note-{i}.pdf", pdf, params={"force": "true"})["id"]),
        count,
    )
    result["targets"] = TARGETS
    return result
