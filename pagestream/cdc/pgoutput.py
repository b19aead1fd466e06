"""A decoder for PostgreSQL's pgoutput logical replication protocol, version 1.

Only what the outbox needs: Relation, Begin, Insert, Commit and logical Message; other
message kinds are recognized and skipped. Reference: PostgreSQL docs, "Logical
Replication Message Formats".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
#: PG_EPOCH as Unix seconds: commit timestamps become floats comparable with ``time.time()``
PG_EPOCH_UNIX = 946_684_800

_BEGIN = struct.Struct("!qqi")  # final LSN, commit timestamp (µs since PG_EPOCH), xid
_COMMIT = struct.Struct("!Bqqq")  # flags, commit LSN, end LSN, commit timestamp
_INSERT_HEAD = struct.Struct("!Ich")  # relation id, tuple marker, column count
_I32 = struct.Struct("!i")


def pg_time(micros: int) -> datetime:
    return PG_EPOCH + timedelta(microseconds=micros)


def lsn_to_str(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def str_to_lsn(text: str) -> int:
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


@dataclass(frozen=True)
class Relation:
    relid: int
    namespace: str
    name: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    commit_time: datetime
    xid: int


@dataclass(frozen=True)
class Commit:
    commit_lsn: int
    end_lsn: int
    commit_time: datetime


@dataclass(frozen=True)
class Insert:
    relid: int
    values: tuple[str | None, ...]  # text representation; None for NULL


@dataclass(frozen=True)
class LogicalMessage:
    transactional: bool
    lsn: int
    prefix: str
    content: bytes


@dataclass(frozen=True)
class Other:
    kind: str


PgOutputMessage = Relation | Begin | Commit | Insert | LogicalMessage | Other


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes):
        self.buf = buf
        self.pos = 0

    def u8(self) -> int:
        v = self.buf[self.pos]
        self.pos += 1
        return v

    def i16(self) -> int:
        (v,) = struct.unpack_from("!h", self.buf, self.pos)
        self.pos += 2
        return v

    def i32(self) -> int:
        (v,) = struct.unpack_from("!i", self.buf, self.pos)
        self.pos += 4
        return v

    def i64(self) -> int:
        (v,) = struct.unpack_from("!q", self.buf, self.pos)
        self.pos += 8
        return v

    def cstr(self) -> str:
        end = self.buf.index(0, self.pos)
        v = self.buf[self.pos : end].decode("utf-8")
        self.pos = end + 1
        return v

    def take(self, n: int) -> bytes:
        v = self.buf[self.pos : self.pos + n]
        self.pos += n
        return bytes(v)


def begin_commit_micros(payload: bytes) -> int:
    """A Begin's commit timestamp in µs since PG_EPOCH (the relay needs no datetime per transaction)."""
    return int(_BEGIN.unpack_from(payload, 1)[1])


def commit_end_lsn(payload: bytes) -> int:
    """A Commit's end LSN: what the slot may confirm once the transaction was delivered."""
    return int(_COMMIT.unpack_from(payload, 1)[2])


def insert_raw(payload: bytes) -> tuple[int, list[bytes | None]]:
    """An Insert's relation id and column values as raw UTF-8 bytes (None for NULL).

    The relay's hot path: it forwards most values as bytes (record key, headers), so
    decoding them to str only to encode them again would be wasted. Struct offsets instead
    of a reader object: 1.4 µs for an outbox row where ``decode`` took 4.8 µs (timeit).
    """
    relid, marker, n = _INSERT_HEAD.unpack_from(payload, 1)
    if marker != b"N":
        raise ValueError(f"unexpected insert tuple marker {marker.decode('latin-1')!r}")
    pos = 8
    out: list[bytes | None] = []
    append = out.append
    unpack = _I32.unpack_from
    for _ in range(n):
        kind = payload[pos]
        if kind == 116 or kind == 98:  # 't' text, 'b' binary
            (length,) = unpack(payload, pos + 1)
            start = pos + 5
            pos = start + length
            append(payload[start:pos])
        elif kind == 110 or kind == 117:  # 'n' NULL, 'u' unchanged TOAST (never in an INSERT)
            append(None)
            pos += 1
        else:
            raise ValueError(f"unknown tuple column kind {chr(kind)!r}")
    return relid & 0xFFFFFFFF, out


def decode(payload: bytes) -> PgOutputMessage:
    """Decode one pgoutput message (the payload of an XLogData message)."""
    kind = chr(payload[0])
    if kind == "B":
        final_lsn, ts, xid = _BEGIN.unpack_from(payload, 1)
        return Begin(final_lsn, pg_time(ts), xid & 0xFFFFFFFF)
    if kind == "C":
        _flags, commit_lsn, end_lsn, ts = _COMMIT.unpack_from(payload, 1)
        return Commit(commit_lsn, end_lsn, pg_time(ts))
    if kind == "I":
        relid, raw = insert_raw(payload)
        return Insert(relid, tuple(None if v is None else v.decode("utf-8") for v in raw))
    r = _Reader(payload)
    r.u8()
    if kind == "R":
        relid = r.i32() & 0xFFFFFFFF
        ns = r.cstr()
        name = r.cstr()
        r.u8()  # replica identity
        ncols = r.i16()
        cols = []
        for _ in range(ncols):
            r.u8()  # flags
            cols.append(r.cstr())
            r.i32()  # type oid
            r.i32()  # type modifier
        return Relation(relid, ns or "pg_catalog", name, tuple(cols))
    if kind == "M":
        flags = r.u8()
        lsn = r.i64()
        prefix = r.cstr()
        length = r.i32()
        return LogicalMessage(bool(flags & 1), lsn, prefix, r.take(length))
    return Other(kind)
