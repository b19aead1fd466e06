"""Born-digital PDFs: pages per second end to end when the text layer is used (no OCR)."""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.corpus import born_digital_pdf
from bench.progress import say
from bench.stack import BenchStack


def born_digital_throughput(
    stack: BenchStack, pages: int, workers: int, documents: int = 60, concurrency: int = 8
) -> dict[str, Any]:
    """Upload one ``pages``-page born-digital PDF; submit → ``completed``. Then ``documents`` one-page
    ones at once with the CLI (``cli_documents_rate``)."""
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
    result["small_documents"] = cli_documents_rate(stack, documents, concurrency)
    return result


#: Issue 15's target for one-page born-digital documents submitted together with the CLI.
DOCUMENTS_TARGET_PER_SECOND = 30.0


def one_page_pdfs(directory: Path, count: int) -> list[Path]:
    """``count`` different one-page born-digital PDFs (reportlab text layer), written to ``directory``."""
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    from bench.corpus import page_lines
    from pagestream._testing.pages import register_pdf_fonts

    register_pdf_fonts()
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        buf = io.BytesIO()
        c = canvas.Canvas(buf, pagesize=letter, invariant=1, pageCompression=1)
        lines = page_lines(1000 + i)
        c.setFont("Vera-Bold", 16)
        c.drawString(72, 720, f"{lines[0]} ({i + 1})")
        c.setFont("Vera", 11)
        for n, line in enumerate(lines[1:]):
            c.drawString(72, 690 - 15 * n, line)
        c.showPage()
        c.save()
        path = directory / f"letter-{i + 1:03d}.pdf"
        path.write_bytes(buf.getvalue())
        paths.append(path)
    return paths


def _cli() -> list[str]:
    """The installed ``pagestream`` command of this interpreter's environment."""
    script = Path(sys.executable).with_name("pagestream")
    return (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from pagestream.cli import main; main()"]
    )


def cli_documents_rate(stack: BenchStack, documents: int, concurrency: int) -> dict[str, Any]:
    """``pagestream submit --wait -j concurrency`` of ``documents`` one-page text PDFs, run as a separate
    process (from outside, as a user would); upload → every document final, and what each part of the
    stack and the CLI itself spent in CPU."""
    with tempfile.TemporaryDirectory(prefix="pagestream-bench-pdfs-") as tmp:
        paths = one_page_pdfs(Path(tmp), documents)
        say(f"[born-digital] `pagestream submit -j {concurrency} --wait` of {documents} one-page text PDFs")
        env = {**os.environ, "PAGESTREAM_API_URL": stack.supervisor.api_url}
        cpu_before = stack_cpu_seconds(stack)
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.time()
        proc = subprocess.run(
            [*_cli(), "submit", "--wait", "--json", "--force", "-j", str(concurrency), *map(str, paths)],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
            check=False,
        )
        finished = time.time()
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_after = stack_cpu_seconds(stack)
    if proc.returncode != 0:
        raise RuntimeError(f"pagestream submit exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    ids = [line["id"] for line in lines if line.get("id")]
    statuses: dict[str, int] = {}
    for line in lines:
        statuses[line.get("status") or "rejected"] = statuses.get(line.get("status") or "rejected", 0) + 1
    first_received, last_received, last_completed = (
        float(v)
        for v in stack.query(
            "SELECT extract(epoch FROM min(received_at)), extract(epoch FROM max(received_at)), "
            "extract(epoch FROM max(completed_at)) FROM documents WHERE id::text = ANY(%s)",
            (ids,),
        )[0]
    )
    cli_cpu = (
        children_after.ru_utime
        + children_after.ru_stime
        - children_before.ru_utime
        - children_before.ru_stime
    )
    seconds = finished - first_received
    result = {
        "documents": documents,
        "concurrency": concurrency,
        "statuses": statuses,
        "target_per_second": DOCUMENTS_TARGET_PER_SECOND,
        # the headline: first upload received → the CLI has seen every document final and exited
        "seconds": seconds,
        "documents_per_second": documents / seconds,
        "cli_wall_seconds": finished - started,
        "cli_startup_seconds": first_received - started,
        "upload_seconds": last_received - first_received,
        "server_seconds": last_completed - first_received,
        "cli_cpu_seconds": cli_cpu,
        "stack_cpu_seconds": {k: cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after},
    }
    say(
        f"[born-digital] {result['documents_per_second']:.1f} documents/s (target ≥ {DOCUMENTS_TARGET_PER_SECOND:.0f}; "
        f"{statuses}; CLI used {cli_cpu:.2f} s CPU)"
    )
    return result


def stack_cpu_seconds(stack: BenchStack) -> dict[str, float]:
    """CPU seconds used so far by each part of the running stack: its services (by name), the broker,
    PostgreSQL (with its exited backends)."""
    from bench.machine import _ticks

    hz = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
            if int(raw[raw.rindex(")") + 2 :].split()[1]) != me:
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        name = next((s for s in SERVICES if f"services.{s}" in cmdline), None)
        if name is None and "tansu" in cmdline:
            name = "broker"
        if name is not None:
            out[name] = out.get(name, 0.0) + _ticks(int(entry.name), set()) / hz
    from pagestream.stack.state import StackState

    state = StackState.read(stack.supervisor.state_dir)
    postgres = state.parts.get("postgres") if state else None
    data_dir = postgres.data_dir if postgres else None
    if data_dir:
        out["postgres"] = _ticks(None, {data_dir}) / hz
    return out


SERVICES = ("ingest", "cdc", "ocr", "persist")
