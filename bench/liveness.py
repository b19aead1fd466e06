"""What the liveness mechanisms cost a normal page: the claim-check size test and the attempt ledger.

Both run once per page in the OCR worker. Measured in process against a private, durable
PostgreSQL, on real layouts (pages of the OCR corpus read by ``PageProcessor``), and set against
the time the page's recognition itself took.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.progress import say


def _timed(fn: Any, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def liveness_costs(pages: list[Path], dense_words: int = 15_000) -> dict[str, Any]:
    from pagestream.db import make_engine, migrate
    from pagestream.db.attempts import start_attempt
    from pagestream.events.envelope import encode_data
    from pagestream.events.models import PageOcrCompletedV1, page_id_for, utcnow
    from pagestream.layout import Block, Box, Line, PageLayout, Word
    from pagestream.ocr.factory import make_engine as make_ocr_engine
    from pagestream.ocr.pipeline import PageProcessor
    from pagestream.settings import Settings
    from pagestream.stack.postgres import PrivatePostgres
    from pagestream.storage import LocalObjectStore
    from pagestream.workers.claimcheck import check_in

    settings = Settings()
    processor = PageProcessor(make_ocr_engine("tesseract", settings), dpi=300, max_pixels=60_000_000)
    processor.start()
    layouts, ocr_seconds = [], []
    for path in pages[:3]:
        t = time.perf_counter()
        layouts.append(processor.process(path.read_bytes(), "image/png", 1))
        ocr_seconds.append(time.perf_counter() - t)
    processor.close()
    say(f"[liveness] {len(layouts)} real page layouts, {statistics.mean(ocr_seconds):.2f} s each to read")

    doc = uuid.uuid4()
    now = utcnow()

    def event(layout: PageLayout) -> PageOcrCompletedV1:
        return PageOcrCompletedV1(
            page_id=page_id_for(doc, 1),
            document_id=doc,
            page_number=1,
            page_count=1,
            layout=layout,
            started_at=now,
            completed_at=now,
        )

    words = [
        Word(
            text=f"w{i:05d}",
            box=Box.from_pixels(i % 100, i // 100, i % 100 + 5, i // 100 + 5, 2400, 2400),
            confidence=100.0,
        )
        for i in range(dense_words)
    ]
    box = Box.from_pixels(0, 0, 2400, 2400, 2400, 2400)
    dense = PageLayout(
        text=" ".join(w.text for w in words),
        width=2400,
        height=2400,
        source="text-layer",
        engine="pdfium",
        engine_version="bench",
        blocks=[Block(text="", box=box, lines=[Line(text="", box=box, words=words)])],
    )
    with tempfile.TemporaryDirectory(prefix="pagestream-bench-liveness-") as tmp:
        store = LocalObjectStore(Path(tmp) / "objects")
        normal = [event(lay) for lay in layouts]

        # What the worker does per page, on a fresh event each time (encode_data remembers the last one):
        # publishing alone, vs. the claim-check size test followed by publishing.
        def publish_only(ev: PageOcrCompletedV1) -> None:
            encode_data(ev.model_copy())

        def check_then_publish(ev: PageOcrCompletedV1) -> None:
            fresh = ev.model_copy()
            encode_data(check_in(fresh, store, 256 * 1024))

        encode_only = [t for ev in normal for t in _timed(lambda ev=ev: publish_only(ev), 200)]
        checked = [t for ev in normal for t in _timed(lambda ev=ev: check_then_publish(ev), 200)]
        sizes = [len(encode_data(ev)) for ev in normal]
        dense_event = event(dense)
        dense_bytes = len(encode_data(dense_event))
        dense_checked = _timed(lambda: check_in(dense_event, store, 256 * 1024), 5)
        dense_after = len(encode_data(check_in(dense_event, store, 256 * 1024)))

        pg = PrivatePostgres(Path(tmp) / "pg", fast=False)
        pg.start()
        try:
            migrate(pg.url)
            engine = make_engine(pg.url, pool_size=1)
            ledger = _timed(
                lambda: start_attempt(
                    engine, page_id=uuid.uuid4(), document_id=doc, page_number=1, worker="bench"
                ),
                300,
            )
            engine.dispose()
        finally:
            pg.destroy()
    mean_ocr = statistics.mean(ocr_seconds)
    result: dict[str, Any] = {
        "pages": len(layouts),
        "mean_ocr_seconds": mean_ocr,
        "normal_event_bytes": sizes,
        "encode_median_seconds": statistics.median(encode_only),
        "check_in_median_seconds": statistics.median(checked),
        # publishing reuses the bytes the size test made: the difference is the claim check's own cost
        "claim_check_extra_seconds": max(0.0, statistics.median(checked) - statistics.median(encode_only)),
        "dense_words": dense_words,
        "dense_event_bytes": dense_bytes,
        "dense_event_bytes_after": dense_after,
        "dense_check_in_median_seconds": statistics.median(dense_checked),
        "ledger_median_seconds": statistics.median(ledger),
        "ledger_p99_seconds": sorted(ledger)[int(len(ledger) * 0.99) - 1],
    }
    share = (result["claim_check_extra_seconds"] + result["ledger_median_seconds"]) / mean_ocr
    result["share_of_page_time"] = share
    say(
        f"[liveness] claim check +{result['claim_check_extra_seconds'] * 1e3:.2f} ms, ledger "
        f"{result['ledger_median_seconds'] * 1e3:.2f} ms per page = {share:.2%} of a page's OCR time"
    )
    return result
