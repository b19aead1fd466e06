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


def _tuple(r: _Reader) -> tuple[str | None, ...]:
    n = r.i16()
    out: list[str | None] = []
    for _ in range(n):
        kind = chr(r.u8())
        if kind == "n":
            out.append(None)
        elif kind == "u":  # unchanged TOAST: never in an INSERT
            out.append(None)
        elif kind in ("t", "b"):
            length = r.i32()
            out.append(r.take(length).decode("utf-8"))
        else:
            raise ValueError(f"unknown tuple column kind {kind!r}")
    return tuple(out)


def decode(payload: bytes) -> PgOutputMessage:
    """Decode one pgoutput message (the payload of an XLogData message)."""
    r = _Reader(payload)
    kind = chr(r.u8())
    if kind == "B":
        final_lsn = r.i64()
        ts = r.i64()
        xid = r.i32()
        return Begin(final_lsn, pg_time(ts), xid & 0xFFFFFFFF)
    if kind == "C":
        r.u8()  # flags
        commit_lsn = r.i64()
        end_lsn = r.i64()
        ts = r.i64()
        return Commit(commit_lsn, end_lsn, pg_time(ts))
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
    if kind == "I":
        relid = r.i32() & 0xFFFFFFFF
        marker = chr(r.u8())
        if marker != "N":
            raise ValueError(f"unexpected insert tuple marker {marker!r}")
        return Insert(relid, _tuple(r))
    if kind == "M":
        flags = r.u8()
        lsn = r.i64()
        prefix = r.cstr()
        length = r.i32()
        return LogicalMessage(bool(flags & 1), lsn, prefix, r.take(length))
    return Other(kind)
