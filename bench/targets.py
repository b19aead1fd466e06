"""The overhead targets: every figure next to its target and the value it had before the work on it.

Each row reads the stored records (``bench/results/*.json``) of the section that measures it, so the
table is rebuilt with the sections and a row whose section has not run says so instead of guessing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Records = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Target:
    """One figure: where it is measured, its value before (2026-11-23 code), the goal, and a reader."""

    figure: str
    section: str
    before: str
    goal: str
    read: Callable[[Records], tuple[str, bool | None]]  # (value shown, met?) — KeyError: not measured


def _data(records: Records, name: str) -> dict[str, Any]:
    return records[name]["data"]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _at_most(seconds: float | None, limit: float) -> tuple[str, bool | None]:
    if seconds is None:
        return "never arrived", False
    return _ms(seconds), seconds <= limit


def _overhead(r: Records) -> tuple[str, bool | None]:
    return _at_most(_data(r, "latency")["overhead_seconds"]["p50"], 0.150)


def _persist(r: Records) -> tuple[str, bool | None]:
    return _at_most(_data(r, "latency")["overhead_parts_p50"]["persist_to_completed"], 0.050)


def _commit_to_worker(r: Records) -> tuple[str, bool | None]:
    return _at_most(_data(r, "latency")["overhead_parts_p50"]["commit_to_worker"], 0.040)


def _born_digital_latency(r: Records) -> tuple[str, bool | None]:
    return _at_most(_data(r, "latency")["born_digital"]["client_seconds"]["p50"], 0.150)


def _first_record(r: Records) -> tuple[str, bool | None]:
    d = _data(r, "topics")
    worst = d["first_max_seconds"]
    if worst is None or d["lost"]:
        return f"{d['lost']} of {d['trials']} first records lost", False
    return f"p50 {_ms(d['first_p50_seconds'])}, max {_ms(worst)}", worst <= 1.0


def _ocr_ratio(r: Records) -> tuple[str, bool | None]:
    d = _data(r, "ocr")
    pipe, cli = d["pipeline"], d["cli"]
    ratio = pipe["pages_per_second"] / cli["pages_per_second"]
    cer_pipe, cer_cli = pipe.get("cer"), cli.get("cer")
    cer_ok = cer_pipe is None or cer_cli is None or cer_pipe <= cer_cli + 1e-9
    cer = "" if cer_pipe is None or cer_cli is None else f"; CER {cer_pipe:.3%} vs. {cer_cli:.3%}"
    return f"{ratio:.2f}×{cer}", ratio >= 1.35 and cer_ok


def _scaling(r: Records) -> tuple[str, bool | None]:
    runs = sorted(_data(r, "scaling")["runs"], key=lambda x: x["workers"])
    one = next(x for x in runs if x["workers"] == 1)
    two = next(x for x in runs if x["workers"] == 2)
    speedup = two["pages_per_second"] / one["pages_per_second"]
    return f"{speedup:.2f}×", speedup >= 1.8


def _small_documents(r: Records) -> tuple[str, bool | None]:
    d = _data(r, "born-digital")["small_documents"]
    rate = d["documents_per_second"]
    return f"{rate:.1f} docs/s", rate >= 30.0


def _uploads(r: Records) -> tuple[str, bool | None]:
    rate = _data(r, "ingest")["uploads_per_second"]
    return f"{rate:.0f}/s", rate >= 300.0


def _cdc_rate(r: Records) -> tuple[str, bool | None]:
    tp = _data(r, "cdc")["throughput"]
    rate, dbz = tp["relay"]["events_per_s"], tp["debezium"].get("events_per_s")
    if not dbz:
        return f"{rate:,.0f}/s; Debezium not run", None
    return f"{rate:,.0f}/s = {rate / dbz:.1f}× Debezium ({dbz:,.0f}/s)", rate >= 15_000 and rate >= 2 * dbz


def _cdc_ack(r: Records) -> tuple[str, bool | None]:
    d = _data(r, "cdc")
    p99 = [d[k]["ack_p99_ms"] for k in ("rate_1000", "rate_5000")]
    return f"{p99[0]} ms at 1,000/s, {p99[1]} ms at 5,000/s", max(p99) <= 10.0


TARGETS: list[Target] = [
    Target(
        "one-page scanned document, pipeline overhead p50 (submit → completed minus render + OCR)",
        "3",
        "690 ms",
        "≤ 150 ms",
        _overhead,
    ),
    Target("…of which page done → document `completed`", "3", "407 ms", "≤ 50 ms", _persist),
    Target("…of which commit → worker starts the page", "3", "228 ms", "≤ 40 ms", _commit_to_worker),
    Target(
        "one-page born-digital document, submit → `completed` p50, one at a time",
        "3",
        "≈ 600 ms",
        "≤ 150 ms",
        _born_digital_latency,
    ),
    Target(
        "first record of an event type whose topic does not exist yet, commit → consumer, fresh stack",
        "3b",
        "≈ 24 s",
        "≤ 1 s",
        _first_record,
    ),
    Target(
        "CDC sustained events/s on 2 cores (transactions of 100), and vs. real Debezium on the same rows",
        "2",
        "5,463/s",
        "≥ 15,000/s and ≥ 2× Debezium",
        _cdc_rate,
    ),
    Target(
        "CDC commit → broker ack p99 at 1,000 and 5,000 events/s",
        "2",
        "7.2 ms (1,000/s)",
        "≤ 10 ms",
        _cdc_ack,
    ),
    Target(
        "one-page born-digital documents per second, 60 submitted at once (measured from outside with the CLI)",
        "5",
        "≈ 23",
        "≥ 30 docs/s",
        _small_documents,
    ),
    Target("uploads/s of 100 KB images", "4", "120", "≥ 300", _uploads),
    Target(
        "OCR pages/s, pipeline vs. the CLI, same pages and cores",
        "1",
        "1.15×",
        "≥ 1.35×, CER no worse",
        _ocr_ratio,
    ),
    Target("OCR scaling 1 → 2 workers", "6", "1.37×", "≥ 1.8×", _scaling),
]


def table(records: Records, targets: list[Target] = TARGETS) -> list[str]:
    """Markdown rows: figure, section, before, now, target, met."""
    lines = [
        "| figure | section | before | now | target | met |",
        "|---|---|---:|---:|---:|---|",
    ]
    for t in targets:
        try:
            value, met = t.read(records)
        except (KeyError, StopIteration, TypeError, ZeroDivisionError):
            value, met = "not measured", None
        verdict = "–" if met is None else ("**yes**" if met else "**no**")
        lines.append(f"| {t.figure} | {t.section} | {t.before} | {value} | {t.goal} | {verdict} |")
    return lines
