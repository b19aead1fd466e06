"""OCR throughput: the bare tesseract CLI, the raw ``PageProcessor`` and the pipeline end to end,
on the same generated scanned pages."""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PIL import Image

from bench.corpus import scanned_page
from bench.machine import TESSERACT_CLI, CpuMeter
from bench.progress import say
from bench.stack import BenchStack, in_flight_profile
from pagestream._testing.pages import png_bytes


def cli_throughput(pages: list[Path], processes: int) -> dict[str, Any]:
    """``tesseract page.png out`` per page, ``processes`` at a time, ``OMP_THREAD_LIMIT=1``."""
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as out_dir:

        def one(page: Path) -> float:
            started = time.perf_counter()
            subprocess.run(
                [TESSERACT_CLI, str(page), str(Path(out_dir) / page.stem)],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            return time.perf_counter() - started

        one(pages[0])  # warm the page cache (binary, traineddata)
        say(f"[ocr] tesseract CLI: {len(pages)} pages, {processes} parallel processes")
        cpu = CpuMeter().start()
        started = time.perf_counter()
        with ThreadPoolExecutor(processes) as pool:
            per_page = list(pool.map(one, pages))
        wall = time.perf_counter() - started
        machine_cpu = cpu.stop()
        chars = sum(len((Path(out_dir) / f"{p.stem}.txt").read_text()) for p in pages)
    result = {
        "pages": len(pages),
        "processes": processes,
        "wall_seconds": wall,
        "pages_per_second": len(pages) / wall,
        "mean_page_seconds": statistics.fmean(per_page),
        "chars_recognized": chars,
        "machine_cpu_busy": machine_cpu,
    }
    say(f"[ocr] tesseract CLI: {result['pages_per_second']:.3f} pages/s")
    return result


class _Upright:
    """Orientation detector that never turns a page (skips OSD)."""

    def detect_orientation(self, image: Image.Image) -> tuple[int, float]:
        return 0, 0.0


def processor_throughput(pages: list[Path], *, full: bool) -> dict[str, Any]:
    """One in-process ``PageProcessor`` (one core); ``full`` = as the workers run it (OSD + deskew),
    else recognition only (no OSD, no deskew) — the work the CLI does."""
    from pagestream.ocr.pipeline import PageProcessor
    from pagestream.ocr.tesseract import TesseractEngine

    kwargs: dict[str, Any] = {} if full else {"deskew": False, "orientation": _Upright()}
    label = "deskew + OCR + orientation check when a page reads badly" if full else "OCR only"
    with PageProcessor(TesseractEngine(), **kwargs) as processor:
        processor.process(pages[0].read_bytes(), "image/png", 1)  # warm-up: load models
        say(f"[ocr] PageProcessor ({label}): {len(pages)} pages, 1 process")
        render: list[float] = []
        ocr: list[float] = []
        chars = 0
        started = time.perf_counter()
        for page in pages:
            layout = processor.process(page.read_bytes(), "image/png", 1)
            render.append(layout.render_seconds)
            ocr.append(layout.ocr_seconds)
            chars += len(layout.text)
        wall = time.perf_counter() - started
    result = {
        "pages": len(pages),
        "variant": label,
        "wall_seconds": wall,
        "pages_per_second": len(pages) / wall,
        "mean_prepare_seconds": statistics.fmean(render),
        "mean_ocr_seconds": statistics.fmean(ocr),
        "mean_page_seconds": wall / len(pages),
        "chars_recognized": chars,
    }
    say(f"[ocr] PageProcessor ({label}): {result['pages_per_second']:.3f} pages/s")
    return result


def pipeline_throughput(
    stack: BenchStack, pages: list[Path], workers: int, *, label: str = "ocr", timeout: float = 1800.0
) -> dict[str, Any]:
    """Every page uploaded as its own document through the HTTP API; first submit → last ``completed``."""
    # Warm-up: one page per worker, so each worker has loaded its models (OCR and OSD) before timing.
    warm = [
        stack.client.submit_bytes(
            f"warm-{i}.png", png_bytes(scanned_page(900 + i), dpi=300), params={"force": "true"}
        )["id"]
        for i in range(workers)
    ]
    stack.wait_completed(warm, timeout=300)
    say(f"[{label}] pipeline: submitting {len(pages)} one-page documents ({workers} OCR workers)")
    cpu = CpuMeter().start()
    started = time.time()
    submit_seconds: list[float] = []
    ids = []
    for page in pages:
        t = time.perf_counter()
        ids.append(stack.client.submit(page, force=True)["id"])
        submit_seconds.append(time.perf_counter() - t)
    submitted = time.time()
    statuses = stack.wait_completed(ids, timeout=timeout)
    machine_cpu = cpu.stop()
    end = max(stack.completed_epochs(ids))
    wall = end - started
    seconds = stack.page_seconds(ids)
    busy = sum(r + o for r, o in seconds)
    n = len(pages)
    result = {
        "pages": n,
        "workers": workers,
        "wall_seconds": wall,
        "pages_per_second": n / wall,
        "submit_all_seconds": submitted - started,
        "mean_submit_seconds": statistics.fmean(submit_seconds),
        "completed": sum(1 for s in statuses.values() if s == "completed"),
        "mean_prepare_seconds": statistics.fmean(r for r, _ in seconds) if seconds else None,
        "mean_ocr_seconds": statistics.fmean(o for _, o in seconds) if seconds else None,
        "worker_busy_seconds": busy,
        # Worker-slot time not spent in PageProcessor (queueing, transport, persistence, idle
        # slots from uneven partition assignment, the tail), spread over the pages.
        "overhead_seconds_per_page": (wall * workers - busy) / n,
        "utilization": busy / (wall * workers),
        "machine_cpu_busy": machine_cpu,
        "partitions": stack.supervisor.settings().kafka_topic_partitions,
        # Seconds of the run with k pages inside workers: k < workers while pages wait = idle workers.
        "seconds_with_pages_in_flight": {
            str(k): v for k, v in in_flight_profile(stack.page_intervals(ids), started, end).items()
        },
        "rotated_pages": sum(
            1
            for r in stack.query(
                "SELECT rotation FROM pages WHERE document_id::text = ANY(%s) AND rotation <> 0", (ids,)
            )
        ),
    }
    say(
        f"[{label}] pipeline, {workers} workers: {result['pages_per_second']:.3f} pages/s "
        f"({result['completed']}/{n} completed, worker utilization {result['utilization']:.0%})"
    )
    return result


def pipeline_repeated(
    stack: BenchStack, pages: list[Path], workers: int, repeats: int, *, label: str = "ocr"
) -> dict[str, Any]:
    """``pipeline_throughput`` ``repeats`` times on one stack. Page ids are random, so how pages fall
    on partitions (and workers) varies from run to run: the pooled rate (all pages / all wall time)
    is reported, with every run's rate; the details are those of the run closest to the pooled rate."""
    runs = [pipeline_throughput(stack, pages, workers, label=label) for _ in range(repeats)]
    pooled = sum(r["pages"] for r in runs) / sum(r["wall_seconds"] for r in runs)
    closest = min(runs, key=lambda r: abs(r["pages_per_second"] - pooled))
    return {
        **closest,
        "pages_per_second": pooled,
        "runs": len(runs),
        "pages_per_second_runs": [r["pages_per_second"] for r in runs],
        "single_run_pages_per_second": closest["pages_per_second"],
    }
