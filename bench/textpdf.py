"""Born-digital PDFs: pages per second end to end when the text layer is used (no OCR)."""

from __future__ import annotations

import time
from typing import Any

from bench.corpus import born_digital_pdf
from bench.progress import say
from bench.stack import BenchStack


def born_digital_throughput(stack: BenchStack, pages: int, workers: int) -> dict[str, Any]:
    """Upload one ``pages``-page born-digital PDF; submit → ``completed``."""
    data = born_digital_pdf(pages)
    say(f"[born-digital] one {pages}-page PDF ({len(data) / 1e6:.2f} MB), {workers} OCR workers")
    started = time.time()
    doc_id = stack.client.submit_bytes(f"report-{pages}p.pdf", data, params={"force": "true"})["id"]
    status = stack.wait_completed([doc_id], timeout=1800)[doc_id]
    wall = max(stack.completed_epochs([doc_id])) - started
    sources = dict(
        stack.query(
            "SELECT coalesce(source, status), count(*) FROM pages WHERE document_id = %s GROUP BY 1",
            (doc_id,),
        )
    )
    timeline = stack.query(
        "SELECT extract(epoch FROM min(p.started_at) - d.received_at), "
        "extract(epoch FROM max(p.completed_at) - min(p.started_at)), "
        "extract(epoch FROM d.completed_at - max(p.completed_at)), "
        "avg(extract(epoch FROM p.completed_at - p.started_at)), "
        "avg((p.layout->>'render_seconds')::float) "
        "FROM documents d JOIN pages p ON p.document_id = d.id WHERE d.id = %s "
        "GROUP BY d.received_at, d.completed_at",
        (doc_id,),
    )[0]
    to_first, pages_span, to_done, in_worker, extract = (float(v) for v in timeline)
    result = {
        "pages": pages,
        "pdf_bytes": len(data),
        "workers": workers,
        "status": status,
        "wall_seconds": wall,
        "pages_per_second": pages / wall,
        "page_sources": {str(k): int(v) for k, v in sources.items()},
        "received_to_first_page_seconds": to_first,
        "first_page_to_last_page_seconds": pages_span,
        "last_page_to_completed_seconds": to_done,
        "mean_page_in_worker_seconds": in_worker,
        "mean_text_layer_seconds": extract,
        # Per worker, time between finishing one page and starting the next (Kafka hand-offs).
        "worker_gap_seconds_per_page": workers * pages_span / pages - in_worker,
    }
    say(
        f"[born-digital] {result['pages_per_second']:.1f} pages/s ({status}, sources {result['page_sources']})"
    )
    return result
