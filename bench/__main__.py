"""``python -m bench``: run the benchmarks, store their results and rewrite BENCHMARKS.md.

Progress goes to stderr. A benchmark that fails is reported as failed in BENCHMARKS.md; the
command still exits 0 (benchmarks report, they never fail CI).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.machine import CpuMeter

REPO = Path(__file__).resolve().parent.parent
NAMES = ("ocr", "cdc", "latency", "topics", "ingest", "born-digital", "scaling", "liveness", "preprocessing")


@dataclass(frozen=True)
class Plan:
    """How big each benchmark is."""

    scanned_pages: int
    latency_documents: int
    born_digital_pages: int
    ingest_clients: int
    ingest_seconds: float
    repeats: int  # pipeline throughput runs per worker count
    quick: bool
    topic_trials: int = 5  # fresh event types in the first-record section
    degraded_pages: int = 4  # per kind (clean, photo, fax) in the preprocessing section


FULL = Plan(
    scanned_pages=20,
    latency_documents=20,
    born_digital_pages=200,
    ingest_clients=8,
    ingest_seconds=20.0,
    repeats=2,
    quick=False,
)
QUICK = Plan(
    scanned_pages=6,
    latency_documents=5,
    born_digital_pages=50,
    ingest_clients=8,
    ingest_seconds=5.0,
    repeats=1,
    quick=True,
    degraded_pages=2,
    topic_trials=2,
)


def _command(argv: Sequence[str]) -> str:
    base = ".venv/bin/python -m bench"
    cmd = " ".join([base, *map(shlex.quote, argv)])
    return f"make bench ({cmd})" if os.environ.get("MAKELEVEL") and not argv else cmd


class Runner:
    """Runs selected benchmarks, records each with machine, date and command."""

    def __init__(self, plan: Plan, command: str, machine: dict[str, str]):
        self.plan = plan
        self.command = command
        self.machine = machine
        self.records: dict[str, dict[str, Any]] = {}
        self._cpu_since: dict[str, CpuMeter] = {}

    def begin(self, name: str) -> None:
        """Start the CPU meter of ``name`` before its preparatory work."""
        self._cpu_since[name] = CpuMeter().start()

    def measure(
        self, name: str, body: Callable[[], dict[str, Any]], started: float | None = None
    ) -> dict[str, Any] | None:
        """Run ``body``; store its result (or its failure) as benchmark ``name``.

        ``started`` (monotonic) counts preparatory work done before the call in the duration.
        """
        from bench.machine import code_version
        from bench.progress import say
        from bench.report import save

        record: dict[str, Any] = {
            "name": name,
            "command": self.command,
            "machine": self.machine,
            "code": code_version(REPO),
            "quick": self.plan.quick,
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        }
        started = time.monotonic() if started is None else started
        cpu = self._cpu_since.pop(name, None) or CpuMeter().start()
        try:
            record["data"] = body()
        except Exception as e:  # noqa: BLE001 - a failed benchmark is reported, not raised
            traceback.print_exc(file=sys.stderr)
            record["error"] = f"{type(e).__name__}: {e}"
            say(f"[{name}] FAILED: {record['error']}")
        record["duration_seconds"] = round(time.monotonic() - started, 1)
        record["machine_cpu_busy"] = cpu.stop()
        record["foreign_cpu_busy"] = cpu.foreign
        record["load_average"] = os.getloadavg()[0]
        self.records[name] = record
        save(record)
        return record.get("data")


def run_cdc() -> dict[str, Any]:
    """``bench/cdc.py``'s ``run(settings)`` on a fresh stack of its own: the broker, PostgreSQL
    and ingest (the API the stack's readiness asks for), no cdc, ocr or persist service. With
    those running, the stack's own relay would stream the benchmark's synthetic outbox rows a
    second time and its consumers act on them: two relays on one outbox, which no deployment
    runs, measured as if it were one."""
    from bench import cdc
    from bench.stack import running_stack

    with running_stack("cdc", services=["ingest"]) as stack:
        result: dict[str, Any] = cdc.run(stack.supervisor.settings())
    return result


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small inputs (a few minutes); rougher numbers")
    parser.add_argument(
        "--only",
        action="append",
        choices=NAMES,
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(NAMES)}",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="OCR workers and CLI processes for section 1 (default: cores)",
    )
    args = parser.parse_args(argv)
    # The pipeline's workers run Tesseract single-threaded; so do the CLI and in-process runs here.
    os.environ["OMP_THREAD_LIMIT"] = "1"

    from bench import report
    from bench.corpus import upload_image, write_scanned_pages
    from bench.ingest import upload_rate
    from bench.latency import one_page_latency
    from bench.machine import describe
    from bench.ocr import cli_throughput, pipeline_repeated, processor_throughput
    from bench.progress import say
    from bench.stack import running_stack
    from bench.textpdf import born_digital_throughput

    plan = QUICK if args.quick else FULL
    selected = [n for n in NAMES if not args.only or n in args.only]
    runner = Runner(plan, _command(argv), describe())
    workers = args.workers
    say(f"running {', '.join(selected)} ({'quick' if plan.quick else 'full'}; {workers} workers)")

    with tempfile.TemporaryDirectory(prefix="pagestream-bench-pages-") as tmp:
        pages: list[Path] = []
        if {"ocr", "latency", "scaling", "liveness"} & set(selected):
            say(f"generating {plan.scanned_pages} scanned pages (300 dpi PNG)")
            pages = write_scanned_pages(Path(tmp), plan.scanned_pages)

        ocr_parts: dict[str, Any] = {}
        ocr_started = time.monotonic()
        ocr_failure: list[Exception] = []
        if "ocr" in selected:
            try:
                ocr_parts["cli"] = cli_throughput(pages, workers)
                ocr_parts["processor_full"] = processor_throughput(pages, full=True)
                ocr_parts["processor_ocr_only"] = processor_throughput(pages, full=False)
            except Exception as e:  # noqa: BLE001 - reported in the ocr section
                traceback.print_exc(file=sys.stderr)
                ocr_failure.append(e)

        pipeline_at_n: dict[str, Any] | None = None
        if {"ocr", "latency", "born-digital"} & set(selected) or ("scaling" in selected and workers != 1):
            try:
                with running_stack("stack", {"PAGESTREAM_OCR_WORKERS": str(workers)}) as stack:
                    if "ocr" in selected or "scaling" in selected:

                        def ocr_section() -> dict[str, Any]:
                            if ocr_failure:
                                raise ocr_failure[0]
                            return {
                                **ocr_parts,
                                "pipeline": pipeline_repeated(stack, pages, workers, plan.repeats),
                            }

                        data = (
                            runner.measure("ocr", ocr_section, ocr_started)
                            if "ocr" in selected
                            else {
                                "pipeline": pipeline_repeated(
                                    stack, pages, workers, plan.repeats, label="scaling"
                                )
                            }
                        )
                        pipeline_at_n = (data or {}).get("pipeline")
                    if "latency" in selected:
                        runner.measure(
                            "latency", lambda: one_page_latency(stack, pages, plan.latency_documents)
                        )
                    if "born-digital" in selected:
                        runner.measure(
                            "born-digital",
                            lambda: born_digital_throughput(stack, plan.born_digital_pages, workers),
                        )
            except Exception as e:  # noqa: BLE001 - stack failed to start: record it for what needed it
                traceback.print_exc(file=sys.stderr)
                for name in ("ocr", "latency", "born-digital"):
                    if name in selected and name not in runner.records:
                        runner.measure(name, _raise(e), ocr_started if name == "ocr" else None)

        if "cdc" in selected:
            runner.measure("cdc", run_cdc)

        if "scaling" in selected:

            def scaling() -> dict[str, Any]:
                runs = []
                with running_stack("scaling", {"PAGESTREAM_OCR_WORKERS": "1"}) as stack:
                    runs.append(pipeline_repeated(stack, pages, 1, plan.repeats, label="scaling"))
                if workers != 1:
                    if pipeline_at_n is None:
                        raise RuntimeError(f"the {workers}-worker run failed")
                    runs.append(pipeline_at_n)
                return {"runs": runs}

            runner.measure("scaling", scaling)

        if "liveness" in selected:
            from bench.liveness import liveness_costs

            runner.measure("liveness", lambda: liveness_costs(pages))

        if "preprocessing" in selected:
            from bench import preprocessing

            runner.measure(
                "preprocessing", lambda: preprocessing.run(plan.degraded_pages, 2 * plan.degraded_pages)
            )

        if "topics" in selected:
            from bench.topics import first_record_latency

            def topics() -> dict[str, Any]:
                with running_stack("topics", {}, services=("cdc",)) as stack:
                    return first_record_latency(stack, plan.topic_trials)

            runner.measure("topics", topics)

        if "ingest" in selected:

            def ingest() -> dict[str, Any]:
                with running_stack("ingest", {}, services=("ingest", "cdc", "persist")) as stack:
                    return upload_rate(stack, upload_image(), plan.ingest_clients, plan.ingest_seconds)

            runner.measure("ingest", ingest)

    out = REPO / "BENCHMARKS.md"
    out.write_text(report.render(report.load_all()))
    say(f"wrote {out.relative_to(REPO)}")
    for name, record in runner.records.items():
        say(
            f"  {name}: {'FAILED ' + record['error'] if 'error' in record else 'ok'} "
            f"({record['duration_seconds']:.0f} s)"
        )
    return 0


def _raise(error: Exception) -> Callable[[], dict[str, Any]]:
    def body() -> dict[str, Any]:
        raise error

    return body


if __name__ == "__main__":
    sys.exit(main())
