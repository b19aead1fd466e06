"""Dead-letter records decoded for people, and where redrive sends them (no broker needed)."""

from __future__ import annotations

from pagestream.events.topics import ALL_TOPICS, DLQ_TOPICS, PERSIST_DLQ
from pagestream.kafka.consumer import ConsumedRecord
from pagestream.kafka.dlq import (
    PREVIEW_CHARS,
    REDRIVEN_FROM_HEADER,
    _decode,
    dead_letter_headers,
    escaped,
    redrive_target,
    redriven_headers,
)


def test_redrive_target() -> None:
    assert redrive_target("pagestream.page.ocr-requested.v1[3]@17") == "pagestream.page.ocr-requested.v1"
    assert redrive_target("pagestream.page.ocr-requested.v1.retry[0]@2") == "pagestream.page.ocr-requested.v1"
    assert redrive_target("pagestream.page.ocr-completed.v1[11]@0") == "pagestream.page.ocr-completed.v1"
    for unknown in (None, "", "garbage", "pagestream.x.v1[1]", "pagestream.x.v1.dlq[0]@1", "a b[0]@1"):
        assert redrive_target(unknown) is None, unknown


def test_dlq_topics_are_every_dead_letter_topic() -> None:
    assert PERSIST_DLQ in DLQ_TOPICS and all(t.endswith(".dlq") for t in DLQ_TOPICS)
    assert set(DLQ_TOPICS) == {t for t in ALL_TOPICS if t.endswith(".dlq")}


def test_redriven_headers_strip_dead_letter_headers() -> None:
    original = [("ce_type", b"pagestream.page.ocr-requested.v1"), ("traceparent", b"00-a-b-01")]
    dl = dead_letter_headers(
        original + [(REDRIVEN_FROM_HEADER, b"old")],
        source="t[0]@1",
        reason="r",
        detail="d",
        error_class="E",
        attempts=3,
    )
    assert redriven_headers(dl, "t.dlq[2]@5") == original + [(REDRIVEN_FROM_HEADER, b"t.dlq[2]@5")]


def _rec(value: bytes, headers: list) -> ConsumedRecord:  # type: ignore[type-arg]
    return ConsumedRecord(
        topic="t.dlq", partition=1, offset=4, key=b"k\x1b[2J", value=value, headers=headers, timestamp_ms=1
    )


def test_decode_json_and_binary_values_safely() -> None:
    h = dead_letter_headers(
        [("ce_id", b"1")],
        source="pagestream.p.v1.retry[2]@9",
        reason="ocr_timeout",
        detail="took\x1b[31m 60 s",
        error_class="OcrTimeoutError",
        attempts=3,
    )
    d = _decode(_rec(b'{"a": "\xc3\xa9\\u202e"}', h), pending=True)
    assert (d.reason, d.error_class, d.attempts, d.redrive_topic) == (
        "ocr_timeout",
        "OcrTimeoutError",
        3,
        "pagestream.p.v1",
    )
    assert d.headers == [("ce_id", "1")] and d.key == "k\\x1b[2J" and "\x1b" not in (d.detail or "")
    assert d.value_json == {"a": "é\u202e"} and d.value_preview == '{"a":"é\\u202e"}'
    b = _decode(_rec(b"\x00\xff" + b"x" * 5000, []), pending=False)
    assert b.value_json is None and b.value_bytes == 5002 and b.reason is None and b.redrive_topic is None
    assert b.value_preview.startswith("\\x00\\xff") and len(b.value_preview) <= PREVIEW_CHARS + 1
    assert escaped("ok\u2028\x7f") == "ok\\u2028\\x7f"
