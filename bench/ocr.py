"""OCR throughput: the bare tesseract CLI, the raw ``PageProcessor`` and the pipeline end to end,
on the same generated scanned pages, each side with its CER against the pages' known text and its
CPU seconds per page (which other load on the machine blurs far less than pages per second)."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.corpus import cer, scanned_page, text_of
from bench.machine import _OWN_MARKS, TESSERACT_CLI, CpuMeter
from bench.progress import say
from bench.stack import BenchStack, in_flight_profile
from pagestream._testing.pages import png_bytes

_HZ = os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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
        cpu_before = _children_cpu()
        started = time.perf_counter()
        with ThreadPoolExecutor(processes) as pool:
            per_page = list(pool.map(one, pages))
        wall = time.perf_counter() - started
        cpu_seconds = _children_cpu() - cpu_before
        machine_cpu = cpu.stop()
        texts = [(Path(out_dir) / f"{p.stem}.txt").read_text() for p in pages]
    result = {
        "pages": len(pages),
        "processes": processes,
        "wall_seconds": wall,
        "pages_per_second": len(pages) / wall,
        "mean_page_seconds": statistics.fmean(per_page),
        # every tesseract process's own CPU time (process start and model load included: the CLI's cost)
        "cpu_seconds_per_page": cpu_seconds / len(pages),
        "cer": statistics.fmean(cer(text_of(p), t) for p, t in zip(pages, texts, strict=True)),
        "chars_recognized": sum(len(t) for t in texts),
        "machine_cpu_busy": machine_cpu,
    }
    say(
        f"[ocr] tesseract CLI: {result['pages_per_second']:.3f} pages/s, "
        f"{result['cpu_seconds_per_page']:.3f} CPU-s/page, CER {result['cer']:.3%}"
    )
    return result


def processor_throughput(pages: list[Path], *, full: bool) -> dict[str, Any]:
    """One in-process ``PageProcessor`` (one core); ``full`` = as the workers run it (preprocessing,
    orientation check of a page that reads badly), else the CLI's work: recognition of the page as
    it is (no preprocessing, no deskew, no orientation check)."""
    from pagestream.ocr.pipeline import PageProcessor
    from pagestream.ocr.preprocess import PreprocessOptions
    from pagestream.ocr.tesseract import TesseractEngine

    kwargs: dict[str, Any] = (
        {}
        if full
        else {"deskew": False, "orientation": False, "preprocessing": PreprocessOptions(enabled=False)}
    )
    label = "as the workers run it" if full else "recognition only"
    with PageProcessor(TesseractEngine(), **kwargs) as processor:
        processor.process(pages[0].read_bytes(), "image/png", 1)  # warm-up: load models
        say(f"[ocr] PageProcessor ({label}): {len(pages)} pages, 1 process")
        render: list[float] = []
        ocr: list[float] = []
        errors: list[float] = []
        steps: dict[str, int] = {}
        chars = 0
        cpu_started = time.process_time()
        started = time.perf_counter()
        for page in pages:
            layout = processor.process(page.read_bytes(), "image/png", 1)
            render.append(layout.render_seconds)
            ocr.append(layout.ocr_seconds)
            chars += len(layout.text)
            errors.append(cer(text_of(page), layout.text))
            for step in layout.preprocessing.steps if layout.preprocessing else []:
                steps[step.name] = steps.get(step.name, 0) + 1
        wall = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
    result = {
        "pages": len(pages),
        "variant": label,
        "wall_seconds": wall,
        "pages_per_second": len(pages) / wall,
        "mean_prepare_seconds": statistics.fmean(render),
        "mean_ocr_seconds": statistics.fmean(ocr),
        "mean_page_seconds": wall / len(pages),
        "cpu_seconds_per_page": cpu_seconds / len(pages),
        "cer": statistics.fmean(errors),
        "preprocessing_steps": steps,
        "chars_recognized": chars,
    }
    say(
        f"[ocr] PageProcessor ({label}): {result['pages_per_second']:.3f} pages/s, "
        f"{result['cpu_seconds_per_page']:.3f} CPU-s/page, CER {result['cer']:.3%}"
    )
    return result


def _process_label(cmdline: str) -> str:
    for service in ("ocr", "cdc", "persist", "ingest"):
        if f"services.{service}" in cmdline:
            return f"{service} service"
    if "multiprocessing" in cmdline:
        return "OCR workers"
    if "tansu" in cmdline:
        return "broker"
    if "postgres" in cmdline:
        return "PostgreSQL"
    return "benchmark client"


def _stack_cpu_ticks() -> dict[int, tuple[str, int]]:
    """``pid -> (label, user+system ticks)`` of this process, the stack it started and its PostgreSQL."""
    procs: dict[int, tuple[int, int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        procs[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]), cmdline)
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    todo = [os.getpid()] + [pid for pid, (_, _, cmd) in procs.items() if any(m in cmd for m in _OWN_MARKS)]
    out: dict[int, tuple[str, int]] = {}
    while todo:
        pid = todo.pop()
        if pid in out or pid not in procs:
            continue
        out[pid] = (_process_label(procs[pid][2]), procs[pid][1])
        todo.extend(children.get(pid, ()))
    return out


def _cpu_by_process(
    before: dict[int, tuple[str, int]], after: dict[int, tuple[str, int]]
) -> dict[str, float]:
    """CPU seconds used between two ``_stack_cpu_ticks`` snapshots, by kind of process."""
    out: dict[str, float] = {}
    for pid, (label, ticks) in after.items():
        out[label] = out.get(label, 0.0) + (ticks - before.get(pid, (label, 0))[1]) / _HZ
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


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
    ticks_before = _stack_cpu_ticks()
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
    cpu_by_process = _cpu_by_process(ticks_before, _stack_cpu_ticks())
    end = max(stack.completed_epochs(ids))
    wall = end - started
    seconds = stack.page_seconds(ids)
    busy = sum(r + o for r, o in seconds)
    n = len(pages)
    texts = dict(
        stack.query("SELECT document_id::text, text FROM pages WHERE document_id::text = ANY(%s)", (ids,))
    )
    errors = [cer(text_of(p), texts[i]) for p, i in zip(pages, ids, strict=True) if i in texts]
    result: dict[str, Any] = {
        "pages": n,
        "workers": workers,
        "wall_seconds": wall,
        "pages_per_second": n / wall,
        "submit_all_seconds": submitted - started,
        "mean_submit_seconds": statistics.fmean(submit_seconds),
        "completed": sum(1 for s in statuses.values() if s == "completed"),
        "cer": statistics.fmean(errors) if errors else None,
        "mean_prepare_seconds": statistics.fmean(r for r, _ in seconds) if seconds else None,
        "mean_ocr_seconds": statistics.fmean(o for _, o in seconds) if seconds else None,
        "worker_busy_seconds": busy,
        # CPU seconds per page of every process of the stack (and of this client), from /proc:
        # what a page costs the machine, whatever else ran beside the benchmark.
        "cpu_seconds_per_page": {k: v / n for k, v in cpu_by_process.items()},
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
        f"({result['completed']}/{n} completed, worker utilization {result['utilization']:.0%}, "
        f"{sum(result['cpu_seconds_per_page'].values()):.3f} CPU-s/page, CER {result['cer'] or 0:.3%})"
    )
    return result


def pipeline_repeated(
    stack: BenchStack, pages: list[Path], workers: int, repeats: int, *, label: str = "ocr"
) -> dict[str, Any]:
    """``pipeline_throughput`` ``repeats`` times on one stack. The splitter deals page tasks over the
    partitions in turn, but each page costs a little differently and the machine may be shared: the
    pooled rate (all pages / all wall time) is reported, with every run's rate; the details are those
    of the run closest to the pooled rate."""
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
