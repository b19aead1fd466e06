"""Event models, envelope and the committed JSON Schemas."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import jsonschema
import pytest

from pagestream.errors import InputError
from pagestream.events.envelope import decode_record, encode_data, make_record
from pagestream.events.errors import EventDecodeError, UnexpectedEventTypeError, UnknownEventTypeError
from pagestream.events.models import (
    ALL_EVENTS,
    DocumentCommittedV1,
    DocumentDeletedV1,
    page_id_for,
    utcnow,
)
from pagestream.events.schemas import SCHEMA_DIR, render_all
from tests.event_samples import sample_events


def _validator(event_type: str) -> jsonschema.Draft202012Validator:
    """The committed schema, used as docs/producers.md shows outside producers (formats asserted)."""
    formats = jsonschema.FormatChecker()

    @formats.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:  # without the optional rfc3339-validator package
        return not isinstance(value, str) or datetime.fromisoformat(value) is not None

    schema = json.loads((SCHEMA_DIR / f"{event_type}.json").read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=formats)


def test_committed_schemas_match_the_models() -> None:
    rendered = render_all()
    stale = [
        n for n, t in rendered.items() if not (SCHEMA_DIR / n).exists() or (SCHEMA_DIR / n).read_text() != t
    ]
    assert not stale, f"schemas/ is stale for {stale}: run `make schemas`"
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.json")) == sorted(rendered)


@pytest.mark.parametrize("event_type", sorted(m.event_type for m in ALL_EVENTS))
def test_what_we_produce_matches_the_committed_schema(event_type: str) -> None:
    """The record value our producers write (validation-mode schema vs. serialized JSON) is valid."""
    value = json.loads(encode_data(sample_events()[event_type]))
    errors = [e.message for e in _validator(event_type).iter_errors(value)]
    assert not errors, errors


def test_the_committed_schemas_refuse_malformed_values() -> None:
    v = _validator("document.deleted.v1")
    good = json.loads(encode_data(sample_events()["document.deleted.v1"]))
    assert v.is_valid(good) and v.is_valid(good | {"added_later": 1})
    for bad in (
        {"document_id": good["document_id"]},
        good | {"document_id": "not-a-uuid"},
        good | {"deleted_at": "yesterday"},
        good | {"deleted_at": 17},
        [],
    ):
        assert not v.is_valid(bad), bad


def test_every_event_type_names_its_version() -> None:
    for m in ALL_EVENTS:
        assert m.event_type.rsplit(".", 1)[-1].startswith("v"), m


def test_record_round_trip_keeps_attributes() -> None:
    ev = DocumentDeletedV1(document_id=uuid.uuid4(), deleted_at=utcnow())
    key, value, headers, eid = make_record(ev, traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    env = decode_record(value, headers)
    assert env.id == eid and env.data == ev and key == str(ev.document_id)
    assert env.traceparent and env.traceparent.startswith("00-111")


def test_a_consumer_expecting_another_event_type_gets_a_permanent_error() -> None:
    ev = DocumentDeletedV1(document_id=uuid.uuid4(), deleted_at=utcnow())
    _, value, headers, _ = make_record(ev)
    env = decode_record(value, headers)
    assert env.expect(DocumentDeletedV1) is env.data
    with pytest.raises(UnexpectedEventTypeError, match="not the DocumentCommittedV1") as caught:
        env.expect(DocumentCommittedV1)
    assert isinstance(caught.value, InputError)  # dead-lettered, never retried


def test_unknown_fields_are_ignored_within_a_version() -> None:
    ev = DocumentDeletedV1(document_id=uuid.uuid4(), deleted_at=utcnow())
    _, value, headers, _ = make_record(ev)
    payload = json.loads(value) | {"added_later": 1}
    assert decode_record(json.dumps(payload).encode(), headers).data == ev


@pytest.mark.parametrize(
    "value,headers,error",
    [
        (b"{}", [], EventDecodeError),
        (
            b"not json",
            [("ce_type", b"document.deleted.v1"), ("ce_id", str(uuid.uuid4()).encode())],
            EventDecodeError,
        ),
        (
            b"{}",
            [("ce_type", b"document.deleted.v1"), ("ce_id", str(uuid.uuid4()).encode())],
            EventDecodeError,
        ),
        (b"{}", [("ce_type", b"no.such.v9"), ("ce_id", str(uuid.uuid4()).encode())], UnknownEventTypeError),
    ],
)
def test_poison_records_raise_decode_errors(value: bytes, headers: list, error: type) -> None:
    with pytest.raises(error):
        decode_record(value, headers)


def test_page_ids_are_stable_keys() -> None:
    d = uuid.uuid4()
    assert page_id_for(d, 3) == page_id_for(d, 3) != page_id_for(d, 4)


def test_the_producer_docs_validation_sample_works(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/producers.md "Validate before sending": the code runs and refuses what it says it refuses."""
    root = SCHEMA_DIR.parent
    text = (root / "docs" / "producers.md").read_text()
    section = text.split("## Validate before sending", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(root)
    ns: dict = {}
    exec(compile(code, "docs/producers.md", "exec"), ns)  # noqa: S102
    errors = ns["command_errors"]
    assert errors({"uri": "s3://b/k", "unknown_field": 1}) == []
    assert errors({"client_reference": "x"}) and errors({"uri": "s3://b/k", "client_reference": "x" * 201})
    assert errors({"uri": "s3://b/k", "options": {"force_ocr": "yes"}})
    deleted = json.loads((SCHEMA_DIR / "document.deleted.v1.json").read_text())
    check = ns["jsonschema"].Draft202012Validator(deleted, format_checker=ns["FORMATS"])
    assert not check.is_valid({"document_id": str(uuid.uuid4()), "deleted_at": "yesterday"})
    assert check.is_valid({"document_id": str(uuid.uuid4()), "deleted_at": "2026-11-30T10:00:00Z"})
