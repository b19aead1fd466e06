"""The relay's record building: the same headers as ``encode_headers``, Debezium's compact JSON value."""

from __future__ import annotations

import json

from pagestream.cdc.relay import compact_json, record_headers
from pagestream.events.envelope import encode_headers


def test_record_headers_equal_encode_headers() -> None:
    for tp in (None, "00-" + "a" * 32 + "-" + "b" * 16 + "-01"):
        expected = encode_headers(
            event_id="6f1c3e2a-0000-4000-8000-000000000001",
            event_type="document.deleted.v1",
            subject="doc-ü",
            time="2026-11-23 00:00:00+00",
            traceparent=tp,
        )
        got = record_headers(
            b"6f1c3e2a-0000-4000-8000-000000000001",
            b"document.deleted.v1",
            "doc-ü".encode(),
            b"2026-11-23 00:00:00+00",
            tp.encode() if tp else None,
        )
        assert got == expected


def test_compact_json_is_what_the_outbox_router_writes() -> None:
    # jsonb's text output (spaces after ':' and ',') becomes compact, non-ASCII kept as UTF-8
    jsonb_text = '{"n": 1.5, "note": "ünïcødé ✓ 文字", "nested": {"x": [1, null]}}'.encode()
    value = compact_json(jsonb_text)
    assert value == '{"n":1.5,"note":"ünïcødé ✓ 文字","nested":{"x":[1,null]}}'.encode()
    assert json.loads(value) == json.loads(jsonb_text)
    assert compact_json(None) == b"null"
