"""The pgoutput v1 decoder: the message kinds the outbox relay relies on, byte for byte."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest

from pagestream.cdc import pgoutput

TS = datetime(2026, 11, 23, 12, 0, 0, 123456, tzinfo=UTC)
TS_MICROS = int((TS - pgoutput.PG_EPOCH).total_seconds() * 1_000_000)


def _cstr(s: str) -> bytes:
    return s.encode() + b"\0"


def _text(value: str | None) -> bytes:
    if value is None:
        return b"n"
    raw = value.encode()
    return b"t" + struct.pack("!i", len(raw)) + raw


def test_lsn_text_round_trip() -> None:
    for text in ("0/0", "0/16B3748", "1A/FF000028"):
        assert pgoutput.lsn_to_str(pgoutput.str_to_lsn(text)) == text
    assert pgoutput.str_to_lsn("1/0") == 1 << 32


def test_begin_and_commit() -> None:
    begin = pgoutput.decode(b"B" + struct.pack("!qqi", 0x1_0000_0100, TS_MICROS, -2))
    assert begin == pgoutput.Begin(final_lsn=0x1_0000_0100, commit_time=TS, xid=0xFFFFFFFE)
    commit = pgoutput.decode(b"C" + struct.pack("!bqqq", 0, 0x100, 0x128, TS_MICROS))
    assert commit == pgoutput.Commit(commit_lsn=0x100, end_lsn=0x128, commit_time=TS)


def test_relation_and_insert_with_null_and_unicode() -> None:
    cols = ("id", "aggregatetype", "payload", "traceparent")
    rel = (
        b"R"
        + struct.pack("!i", 16384)
        + _cstr("public")
        + _cstr("outbox")
        + b"d"
        + struct.pack("!h", len(cols))
    )
    for c in cols:
        rel += b"\x00" + _cstr(c) + struct.pack("!ii", 25, -1)
    assert pgoutput.decode(rel) == pgoutput.Relation(16384, "public", "outbox", cols)

    payload = '{"note": "ünïcødé ✓ 文字"}'
    ins = b"I" + struct.pack("!i", 16384) + b"N" + struct.pack("!h", 4)
    ins += _text("e1") + _text("document") + _text(payload) + _text(None)
    assert pgoutput.decode(ins) == pgoutput.Insert(16384, ("e1", "document", payload, None))


def test_empty_namespace_is_pg_catalog() -> None:
    rel = b"R" + struct.pack("!i", 1) + _cstr("") + _cstr("t") + b"d" + struct.pack("!h", 0)
    assert pgoutput.decode(rel).namespace == "pg_catalog"  # type: ignore[union-attr]


def test_logical_message() -> None:
    msg = b"M" + struct.pack("!bq", 1, 0x200) + _cstr("pagestream.heartbeat") + struct.pack("!i", 3) + b"abc"
    assert pgoutput.decode(msg) == pgoutput.LogicalMessage(True, 0x200, "pagestream.heartbeat", b"abc")


def test_other_kinds_are_recognized_and_skipped() -> None:
    assert pgoutput.decode(b"U" + b"\0" * 8) == pgoutput.Other("U")
    assert pgoutput.decode(b"D" + b"\0" * 8) == pgoutput.Other("D")
    assert pgoutput.decode(b"T" + b"\0" * 8) == pgoutput.Other("T")


def test_insert_with_unexpected_tuple_marker_fails() -> None:
    with pytest.raises(ValueError, match="tuple marker"):
        pgoutput.decode(b"I" + struct.pack("!i", 1) + b"K" + struct.pack("!h", 0))


def test_insert_raw_keeps_values_as_bytes() -> None:
    ins = b"I" + struct.pack("!i", -2) + b"N" + struct.pack("!h", 3)
    ins += _text("e1") + _text(None) + _text("ünï ✓")
    relid, values = pgoutput.insert_raw(ins)
    assert relid == 0xFFFFFFFE
    assert values == [b"e1", None, "ünï ✓".encode()]
    bad = b"I" + struct.pack("!i", 1) + b"N" + struct.pack("!h", 1) + b"x"
    with pytest.raises(ValueError, match="column kind 'x'"):
        pgoutput.insert_raw(bad)


def test_begin_and_commit_fields_without_datetimes() -> None:
    begin = b"B" + struct.pack("!qqi", 0x1_0000_0100, TS_MICROS, 7)
    assert pgoutput.begin_commit_micros(begin) == TS_MICROS
    assert pytest.approx(TS.timestamp()) == pgoutput.PG_EPOCH_UNIX + TS_MICROS / 1e6
    commit = b"C" + struct.pack("!bqqq", 0, 0x100, 0x128, TS_MICROS)
    assert pgoutput.commit_end_lsn(commit) == 0x128
