"""Event models, envelope and the committed JSON Schemas."""

from __future__ import annotations

import json
import uuid

import pytest

from pagestream.events.envelope import decode_record, make_record
from pagestream.events.errors import EventDecodeError, UnknownEventTypeError
from pagestream.events.models import ALL_EVENTS, DocumentDeletedV1, page_id_for, utcnow
from pagestream.events.schemas import SCHEMA_DIR, render_all


def test_committed_schemas_match_the_models() -> None:
    rendered = render_all()
    stale = [n for n, t in rendered.items() if not (SCHEMA_DIR / n).exists() or (SCHEMA_DIR / n).read_text() != t]
    assert not stale, f"schemas/ is stale for {stale}: run `make schemas`"
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.json")) == sorted(rendered)


def test_every_event_type_names_its_version() -> None:
    for m in ALL_EVENTS:
        assert m.event_type.rsplit(".", 1)[-1].startswith("v"), m


def test_record_round_trip_keeps_attributes() -> None:
    ev = DocumentDeletedV1(document_id=uuid.uuid4(), deleted_at=utcnow())
    key, value, headers, eid = make_record(ev, traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    env = decode_record(value, headers)
    assert env.id == eid and env.data == ev and key == str(ev.document_id)
    assert env.traceparent and env.traceparent.startswith("00-111")


def test_unknown_fields_are_ignored_within_a_version() -> None:
    ev = DocumentDeletedV1(document_id=uuid.uuid4(), deleted_at=utcnow())
    _, value, headers, _ = make_record(ev)
    payload = json.loads(value) | {"added_later": 1}
    assert decode_record(json.dumps(payload).encode(), headers).data == ev


@pytest.mark.parametrize("value,headers,error", [
    (b"{}", [], EventDecodeError),
    (b"not json", [("ce_type", b"document.deleted.v1"), ("ce_id", str(uuid.uuid4()).encode())], EventDecodeError),
    (b"{}", [("ce_type", b"document.deleted.v1"), ("ce_id", str(uuid.uuid4()).encode())], EventDecodeError),
    (b"{}", [("ce_type", b"no.such.v9"), ("ce_id", str(uuid.uuid4()).encode())], UnknownEventTypeError),
])
def test_poison_records_raise_decode_errors(value: bytes, headers: list, error: type) -> None:
    with pytest.raises(error):
        decode_record(value, headers)


def test_page_ids_are_stable_keys() -> None:
    d = uuid.uuid4()
    assert page_id_for(d, 3) == page_id_for(d, 3) != page_id_for(d, 4)
