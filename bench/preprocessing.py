"""Degraded pages: CER and seconds per page by kind, pagestream's ``PageProcessor`` vs. the
bare tesseract CLI on the same files in the same run, and clean scans with preprocessing on vs. off.

Pages are generated (``pagestream/_testing/degraded.py``), so the ground truth is known. Each page is
read by the three sides one after the other, taking turns at going first (clean pages twice by each
processor, A-B-B-A), so load from other processes on a shared machine hits all sides alike.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.machine import TESSERACT_CLI
from bench.progress import say
from pagestream._testing import degraded
from pagestream._testing.pages import cer

KINDS = ("clean", "photo", "fax")


def _cli(path: Path) -> tuple[str, float]:
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    started = time.perf_counter()
    out = subprocess.run([TESSERACT_CLI, str(path), "-"], env=env, check=True, capture_output=True, text=True)
    return out.stdout, time.perf_counter() - started


def run(pages_per_kind: int, clean_pages: int | None = None) -> dict[str, Any]:
    """Measure ``pages_per_kind`` generated pages of each kind (``clean_pages`` clean ones); per-kind summaries."""
    from pagestream.ocr.pipeline import PageProcessor
    from pagestream.ocr.preprocess import PreprocessOptions
    from pagestream.ocr.tesseract import TesseractEngine

    result: dict[str, Any] = {
        "pages_per_kind": pages_per_kind,
        "clean_pages": clean_pages or pages_per_kind,
        "kinds": {},
    }
    with (
        tempfile.TemporaryDirectory(prefix="bench-degraded-") as tmp,
        PageProcessor(TesseractEngine()) as on,
        PageProcessor(TesseractEngine(), preprocessing=PreprocessOptions(enabled=False)) as off,
    ):
        warm = degraded.clean_scan(99)
        on.process(warm.data, warm.media_type, 1)
        off.process(warm.data, warm.media_type, 1)
        for kind in KINDS:
            rows: list[dict[str, Any]] = []
            count = (clean_pages or pages_per_kind) if kind == "clean" else pages_per_kind
            say(f"[preprocessing] {kind}: {count} pages, CLI / pipeline / pipeline without preprocessing")
            for seed in range(count):
                page = degraded.generate(kind, seed)
                path = Path(tmp) / f"{page.name}.{'png' if page.media_type == 'image/png' else 'jpg'}"
                path.write_bytes(page.data)
                # The sides take turns going first (page by page), and clean pages are read twice
                # by each processor in A-B-B-A order: on a shared machine, load drifts.
                timed: dict[str, list[float]] = {"cli": [], "on": [], "off": []}
                texts: dict[str, Any] = {}

                def side(
                    name: str,
                    page: degraded.DegradedPage = page,
                    path: Path = path,
                    timed: dict[str, list[float]] = timed,
                    texts: dict[str, Any] = texts,
                ) -> None:
                    if name == "cli":
                        texts["cli"], seconds = _cli(path)
                    else:
                        started = time.perf_counter()
                        texts[name] = (on if name == "on" else off).process(page.data, page.media_type, 1)
                        seconds = time.perf_counter() - started
                    timed[name].append(seconds)

                order = ["cli", "on", "off"]
                order = order[seed % 3 :] + order[: seed % 3]
                if kind == "clean":
                    order += ["off", "on"] if order.index("on") < order.index("off") else ["on", "off"]
                for name in order:
                    side(name)
                layout, plain, cli_text = texts["on"], texts["off"], texts["cli"]
                cli_seconds = statistics.fmean(timed["cli"])
                on_seconds = statistics.fmean(timed["on"])
                off_seconds = statistics.fmean(timed["off"])
                pre = layout.preprocessing
                rows.append(
                    {
                        "name": page.name,
                        "cer_pipeline": cer(page.truth, layout.text),
                        "seconds_pipeline": on_seconds,
                        "cer_cli": cer(page.truth, cli_text),
                        "seconds_cli": cli_seconds,
                        "cer_no_preprocessing": cer(page.truth, plain.text),
                        "seconds_no_preprocessing": off_seconds,
                        "steps": [s.name for s in pre.steps] if pre else [],
                        "preprocessing_seconds": pre.seconds if pre else 0.0,
                        "analysis_seconds": pre.analysis_seconds if pre else 0.0,
                    }
                )
                say(
                    f"[preprocessing] {page.name}: CER {rows[-1]['cer_pipeline']:.2%} (CLI {rows[-1]['cer_cli']:.2%}, "
                    f"off {rows[-1]['cer_no_preprocessing']:.2%}); {on_seconds:.2f} s (CLI {cli_seconds:.2f} s, "
                    f"off {off_seconds:.2f} s); steps {rows[-1]['steps']}"
                )

            def mean(key: str, rows: list[dict[str, Any]] = rows) -> float:
                return statistics.fmean(r[key] for r in rows)

            def median(key: str, rows: list[dict[str, Any]] = rows) -> float:
                return statistics.median(r[key] for r in rows)

            keys = (
                "cer_pipeline",
                "cer_cli",
                "cer_no_preprocessing",
                "seconds_pipeline",
                "seconds_cli",
                "seconds_no_preprocessing",
                "preprocessing_seconds",
                "analysis_seconds",
            )
            result["kinds"][kind] = {
                "pages": len(rows),
                "rows": rows,
                **{f"mean_{k}": mean(k) for k in keys},
                **{f"median_{k}": median(k) for k in keys if k.startswith(("seconds", "analysis"))},
                "max_cer_pipeline": max(r["cer_pipeline"] for r in rows),
                "steps": dict(Counter(s for r in rows for s in r["steps"])),
            }
    return result
