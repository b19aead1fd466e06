"""Broker-side schema validation: the embedded Tansu refuses, at produce time, records whose value
does not match their topic's event schema (``--schema-registry``, see docs/schemas.md).

A dedicated broker (under a path with a space: Tansu's ``file://`` handling is fussy) with every
owned topic validated; the session broker leaves the command topic open (conftest.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pagestream.events.envelope import encode_data, encode_headers
from pagestream.events.topics import (
    ALL_TOPICS,
    CDC_HEARTBEAT,
    DOCUMENT_DELETED,
    DOCUMENT_SUBMIT,
    PAGE_OCR_COMPLETED,
    PAGE_OCR_REQUESTED,
    PAGE_OCR_REQUESTED_DLQ,
    PAGE_OCR_REQUESTED_RETRY,
    PERSIST_DLQ,
    topic_for,
)
from pagestream.kafka.admin import ensure_topics
from pagestream.kafka.errors import KafkaError
from pagestream.kafka.producer import EventProducer
from pagestream.settings import Settings
from pagestream.stack.broker import TansuBroker
from tests.event_samples import sample_events
from tests.schema_guard import suspended

SAMPLES = sample_events()


@pytest.fixture(autouse=True)
def _broker_does_the_checking() -> Iterator[None]:
    """Against an external broker the session guards our producer (conftest.py); here Tansu must answer."""
    with suspended():
        yield


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    b = TansuBroker(tmp_path_factory.mktemp("schema registry") / "my broker")
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="module")
def settings(broker: TansuBroker, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    s = Settings(
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
        DATABASE_URL="postgresql://unused@127.0.0.1/x",
        STORAGE_URL=f"file://{tmp_path_factory.mktemp('objects')}",
        PAGESTREAM_TOPIC_PARTITIONS=1,
    )
    ensure_topics(s, (*ALL_TOPICS, CDC_HEARTBEAT))
    return s


@pytest.fixture
def plain_producer(settings: Settings) -> Iterator[EventProducer]:
    """Not idempotent: after a refusal it keeps producing (see test_a_refusal_fences_an_idempotent_producer)."""
    p = EventProducer(settings, client_id="schema-test", idempotent=False, linger_ms=0)
    yield p
    p.flush(10)


def send(producer: EventProducer, topic: str, value: bytes | None, event_type: str = "x.v1") -> str | None:
    """Produce one record and wait: None when acknowledged, else the broker's error code."""
    got: list[KafkaError | None] = []
    headers = encode_headers(
        event_id=str(uuid.uuid4()), event_type=event_type, subject="k", time="2026-11-30T00:00:00Z"
    )
    producer.produce(topic, "k", value, headers, on_delivery=lambda err, _: got.append(err))  # type: ignore[arg-type]
    assert producer.wait_for(lambda: bool(got), 15), f"no delivery report from {topic}"
    return None if got[0] is None else got[0].code


def _value(event_type: str) -> dict:
    return json.loads(encode_data(SAMPLES[event_type]))


@pytest.mark.parametrize("event_type", sorted(SAMPLES))
def test_every_event_topic_accepts_its_events_and_refuses_other_values(
    plain_producer: EventProducer, event_type: str
) -> None:
    topic = topic_for(event_type)
    good = _value(event_type)
    assert send(plain_producer, topic, encode_data(SAMPLES[event_type]), event_type) is None
    assert (
        send(plain_producer, topic, json.dumps(good | {"added_later": 1}).encode()) is None
    )  # extra fields ok
    required = json.loads(Path(__file__).parents[2].joinpath("schemas", f"{event_type}.json").read_text())[
        "required"
    ]
    missing = {k: v for k, v in good.items() if k != required[0]}
    for bad in (json.dumps(missing).encode(), b"{not json", b"[]", b'"a string"', b""):
        assert send(plain_producer, topic, bad) == "INVALID_RECORD", (topic, bad)
    assert send(plain_producer, topic, encode_data(SAMPLES[event_type])) is None  # still open after refusals


def test_types_constraints_enums_and_nested_models_are_checked(plain_producer: EventProducer) -> None:
    completed = _value("page.ocr-completed.v1")
    cases = {
        "wrong type": completed | {"page_number": "1"},
        "below minimum": completed | {"page_number": 0},
        "nested model ($ref)": completed | {"layout": completed["layout"] | {"width": "wide"}},
        "deep in a list": completed | {"layout": completed["layout"] | {"blocks": [{"text": "no box"}]}},
    }
    for name, value in cases.items():
        assert send(plain_producer, PAGE_OCR_COMPLETED, json.dumps(value).encode()) == "INVALID_RECORD", name
    final = _value("document.ocr-completed.v1") | {"status": "cancelled"}
    assert (
        send(plain_producer, topic_for("document.ocr-completed.v1"), json.dumps(final).encode())
        == "INVALID_RECORD"
    )
    submit = _value("document.submit.v1") | {"client_reference": "x" * 201}
    assert send(plain_producer, DOCUMENT_SUBMIT, json.dumps(submit).encode()) == "INVALID_RECORD"


def test_retry_topics_carry_their_base_event_and_dead_letter_topics_anything(
    plain_producer: EventProducer,
) -> None:
    task = encode_data(SAMPLES["page.ocr-requested.v1"])
    assert send(plain_producer, PAGE_OCR_REQUESTED_RETRY, task) is None
    assert (
        send(plain_producer, PAGE_OCR_REQUESTED_RETRY, encode_data(SAMPLES["document.deleted.v1"]))
        == "INVALID_RECORD"
    )
    for topic in (PAGE_OCR_REQUESTED_DLQ, PERSIST_DLQ, DOCUMENT_SUBMIT + ".dlq"):
        assert send(plain_producer, topic, b"\xff\x00 poison, kept intact") is None
    assert send(plain_producer, CDC_HEARTBEAT, b"not an event") is None


def test_values_are_parsed_as_strict_json(plain_producer: EventProducer) -> None:
    """Python's json writes a lone surrogate as ``\\ud83d``; Tansu's parser refuses it (our producers never
    write one: pydantic will not serialize lone surrogates). NUL escapes are fine."""
    completed = _value("page.ocr-completed.v1")
    nul = completed | {"layout": completed["layout"] | {"text": "a\x00b"}}
    lone = completed | {"layout": completed["layout"] | {"text": "a\ud83db"}}
    assert send(plain_producer, PAGE_OCR_COMPLETED, json.dumps(nul).encode()) is None
    assert send(plain_producer, PAGE_OCR_COMPLETED, json.dumps(lone).encode()) == "INVALID_RECORD"


def test_formats_are_not_asserted_by_the_broker(plain_producer: EventProducer) -> None:
    """Tansu 0.6.0 (jsonschema-rs, draft 2020-12) treats ``format`` as an annotation: a malformed uuid or
    date-time passes the broker; consumers (pydantic) and the documented producer-side check refuse it."""
    value = _value("document.deleted.v1") | {"document_id": "not-a-uuid", "deleted_at": "yesterday"}
    assert send(plain_producer, DOCUMENT_DELETED, json.dumps(value).encode()) is None


def test_a_refused_record_does_not_fence_our_producer_for_good(settings: Settings) -> None:
    """Our EventProducer is idempotent. After INVALID_RECORD librdkafka bumps the producer epoch itself
    (KIP-360); Tansu 0.6.0 does not know the new epoch and would answer PRODUCER_FENCED to every later
    record of that producer. EventProducer replaces itself after such a refusal, so the next record goes."""
    p = EventProducer(settings, client_id="schema-test-idempotent", linger_ms=0)
    task = SAMPLES["page.ocr-requested.v1"]
    p.publish_sync(task, topic=PAGE_OCR_REQUESTED)
    with pytest.raises(KafkaError) as refused:
        p.publish_sync(SAMPLES["document.deleted.v1"], topic=PAGE_OCR_REQUESTED)  # wrong event for the topic
    assert refused.value.code == "INVALID_RECORD" and refused.value.retryable is False
    p.publish_sync(task, topic=PAGE_OCR_REQUESTED)  # a fresh producer underneath: accepted
    p.close(5)


def test_registry_survives_a_restart(broker: TansuBroker, settings: Settings) -> None:
    broker.restart()  # memory storage: topics are gone; the registry is rewritten
    ensure_topics(settings, (DOCUMENT_DELETED,))
    p = EventProducer(settings, client_id="schema-test-restart", idempotent=False, linger_ms=0)
    assert send(p, DOCUMENT_DELETED, b"{}") == "INVALID_RECORD"
    assert send(p, DOCUMENT_DELETED, encode_data(SAMPLES["document.deleted.v1"])) is None
    p.flush(5)


def test_the_session_broker_validates_all_but_the_command_topic(tansu_broker: TansuBroker | None) -> None:
    if tansu_broker is None:
        pytest.skip("KAFKA_BOOTSTRAP_SERVERS names an external broker: no broker-side validation")
    assert DOCUMENT_SUBMIT not in tansu_broker.validated_topics
    assert {PAGE_OCR_COMPLETED, PAGE_OCR_REQUESTED_RETRY} <= set(tansu_broker.validated_topics)


def test_an_inherited_schema_registry_variable_does_not_reach_tansu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tansu reads SCHEMA_REGISTRY from its environment; a Confluent-style URL there would stop it at start."""
    monkeypatch.setenv("SCHEMA_REGISTRY", "http://schema-registry.example:8081")
    for validate in (False, True):
        b = TansuBroker(tmp_path / f"broker-{validate}", validate_schemas=validate)
        b.start()
        assert b.running()
        b.stop()
