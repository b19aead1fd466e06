"""Schema governance: within a version only optional fields may be added.

Each rule is proven with a synthetic model change: the committed schema (``Old``) against the
schema generated from the changed model (``New``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from pagestream.events import schemas as schema_files
from pagestream.events.compat import check_compatible
from pagestream.events.models import PageOcrCompletedV1
from pagestream.events.topics import ALL_TOPICS, PAGE_OCR_REQUESTED, PAGE_OCR_REQUESTED_RETRY
from pagestream.stack.broker import write_schema_registry


class Options(BaseModel):
    force_ocr: bool = False
    engine: str | None = None


class Old(BaseModel):
    document_id: uuid.UUID
    status: Literal["completed", "partial", "failed"]
    page_count: int = Field(ge=1)
    filename: str | None = None
    reference: str | None = Field(None, max_length=200)
    options: Options = Field(default_factory=Options)
    tags: list[str] = Field(default_factory=list)
    at: datetime


def rules(new: type[BaseModel], old: type[BaseModel] = Old) -> list[tuple[str, str]]:
    """(path, rule) of every incompatibility from ``old`` to ``new``."""
    return [(p.path, p.rule) for p in check_compatible(old.model_json_schema(), new.model_json_schema())]


# -- changes that keep a version ----------------------------------------------------------------


def test_an_unchanged_model_is_compatible() -> None:
    assert rules(Old) == []


def test_adding_an_optional_field_is_compatible() -> None:
    class New(Old):
        layout_uri: str | None = Field(None, description="claim check")
        retries: int = 0

    assert rules(New) == []


def test_adding_an_optional_field_to_a_nested_model_is_compatible() -> None:
    class Options2(Options):
        password: str | None = None

    class New(Old):
        options: Options2 = Field(default_factory=Options2)

    assert rules(New) == []


def test_annotations_may_change() -> None:
    class New(Old):
        filename: str | None = Field(None, title="File", description="as uploaded", examples=["a.pdf"])
        options: Options = Field(default_factory=Options, description="how to process")  # $ref + sibling

    assert rules(New) == []


def test_the_leads_claim_check_fields_are_an_allowed_change() -> None:
    class New(PageOcrCompletedV1):
        layout_uri: str | None = Field(
            None, description="claim check: the full layout JSON in the object store"
        )
        layout_sha256: str | None = Field(None, description="sha256 of the object at layout_uri")

    assert rules(New, PageOcrCompletedV1) == []


# -- changes that need a new version -------------------------------------------------------------


def test_removing_a_field_fails() -> None:
    class New(BaseModel):
        document_id: uuid.UUID
        status: Literal["completed", "partial", "failed"]
        page_count: int = Field(ge=1)
        reference: str | None = Field(None, max_length=200)
        options: Options = Field(default_factory=Options)
        tags: list[str] = Field(default_factory=list)
        at: datetime

    assert rules(New) == [("filename", "field removed")]


def test_removing_a_nested_field_fails_with_its_path() -> None:
    class Options2(BaseModel):
        force_ocr: bool = False

    class New(Old):
        options: Options2 = Field(default_factory=Options2)

    assert rules(New) == [("options.engine", "field removed")]


@pytest.mark.parametrize("annotation", [str, float, uuid.UUID, list[int]])
def test_changing_a_type_fails(annotation: type) -> None:
    New = type("New", (Old,), {"__annotations__": {"page_count": annotation}})  # noqa: N806
    assert ("page_count", "type changed") in rules(New)


def test_changing_a_list_item_type_fails() -> None:
    class New(Old):
        tags: list[int] = Field(default_factory=list)

    assert rules(New) == [("tags[]", "type changed")]


def test_making_a_required_field_nullable_fails() -> None:
    class New(Old):
        at: datetime | None

    assert rules(New) == [("at", "type changed")]


def test_making_an_optional_field_required_fails() -> None:
    class New(Old):
        filename: str | None

    assert rules(New) == [("filename", "optional field made required")]


def test_making_a_required_field_optional_fails() -> None:
    class New(Old):
        page_count: int = Field(1, ge=1)

    assert rules(New) == [("page_count", "required field made optional")]


def test_adding_a_required_field_fails() -> None:
    class New(Old):
        engine: str

    assert rules(New) == [("engine", "required field added")]


def test_adding_a_required_field_to_a_nested_model_fails() -> None:
    class Options2(Options):
        password: str

    class New(Old):
        options: Options2 = Field(default_factory=Options2)

    assert rules(New) == [("options.password", "required field added")]


def test_narrowing_an_enum_fails() -> None:
    class New(Old):
        status: Literal["completed", "failed"]

    assert rules(New) == [("status", "enum narrowed")]


def test_widening_an_enum_fails_too() -> None:
    # consumers of the committed schema (pydantic Literal) reject the new value
    class New(Old):
        status: Literal["completed", "partial", "failed", "cancelled"]

    assert rules(New) == [("status", "enum widened")]


@pytest.mark.parametrize(
    "field",
    [
        Field(None, max_length=100),
        Field(None, max_length=500),
        Field(None, max_length=200, pattern="^[a-z]+$"),
    ],
)
def test_changing_a_constraint_fails(field: object) -> None:
    New = type("New", (Old,), {"__annotations__": {"reference": str | None}, "reference": field})  # noqa: N806
    assert rules(New) == [("reference", "constraint changed")]


def test_recursive_models_are_compared_without_looping() -> None:
    class Node(BaseModel):
        name: str
        children: list[Node] = Field(default_factory=list)

    class Node2(BaseModel):
        name: int
        children: list[Node2] = Field(default_factory=list)

    class Chain(BaseModel):
        name: str
        parent: Chain | None = None

    class Chain2(BaseModel):
        name: str
        parent: Chain2 | None = None
        note: str | None = None

    assert rules(Node, Node) == []
    assert ("name", "type changed") in rules(Node2, Node)
    assert rules(Chain, Chain) == [] and rules(Chain2, Chain) == []


# -- make schemas / the CI check ----------------------------------------------------------------


def _committed_copy(tmp_path: Path) -> Path:
    out = tmp_path / "schemas"
    shutil.copytree(schema_files.SCHEMA_DIR, out)
    return out


def test_make_schemas_refuses_to_overwrite_a_version_incompatibly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema_dir = _committed_copy(tmp_path)
    path = schema_dir / "document.deleted.v1.json"
    committed = json.loads(path.read_text())
    committed["properties"]["reason"] = {"type": "string"}  # the model no longer has it: a removal
    path.write_text(json.dumps(committed))

    assert schema_files.main(["--write", "--dir", str(schema_dir)]) == 1
    assert json.loads(path.read_text()) == committed  # left unchanged
    err = capsys.readouterr().err
    assert (
        "document.deleted.v1.json" in err
        and "reason: field removed" in err
        and "document.committed.v2" in err
    )
    assert schema_files.main(["--dir", str(schema_dir)]) == 1  # and the check fails


def test_make_schemas_writes_compatible_changes(tmp_path: Path) -> None:
    schema_dir = _committed_copy(tmp_path)
    path = schema_dir / "document.deleted.v1.json"
    older = json.loads(path.read_text())
    older["properties"]["deleted_at"]["description"] = "an older description"
    path.write_text(json.dumps(older))
    (schema_dir / "page.ocr-failed.v1.json").unlink()  # a version not written yet

    assert schema_files.main(["--dir", str(schema_dir)]) == 1  # stale
    assert schema_files.main(["--write", "--dir", str(schema_dir)]) == 0
    assert schema_files.main(["--dir", str(schema_dir)]) == 0


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        check=True,
        capture_output=True,
    )


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_every_committed_revision_is_a_baseline(tmp_path: Path) -> None:
    """Rewriting the file by hand does not launder a breaking change: git history still counts."""
    repo = tmp_path / "repo"
    schema_dir = repo / "schemas"
    schema_dir.mkdir(parents=True)
    _git(repo, "init", "-q")
    rendered = schema_files.render_all()
    name = "document.deleted.v1.json"
    first = json.loads(rendered[name])
    first["properties"]["reason"] = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
    (schema_dir / name).write_text(json.dumps(first))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "v1 with an optional reason")
    (schema_dir / name).write_text(rendered[name])  # someone deleted the field and overwrote the file
    _git(repo, "commit", "-qam", "drop reason")

    problems = schema_files.incompatibilities({name: rendered[name]}, schema_dir)
    assert [(str(p.path), p.rule) for _, p in problems[name]] == [("reason", "field removed")]
    assert problems[name][0][0].endswith(":" + name)  # blamed on the old revision
    assert schema_files.incompatibilities({name: rendered[name]}, schema_dir, history=False) == {}


def test_the_repositorys_schemas_are_compatible_with_their_history() -> None:
    problems = schema_files.incompatibilities(schema_files.render_all())
    assert not problems, schema_files._report(problems)


# -- the broker's schema registry ------------------------------------------------------------------


def test_tansu_registry_has_one_file_per_event_and_retry_topic_and_none_for_dead_letters(
    tmp_path: Path,
) -> None:
    (tmp_path / "stale-topic.json").write_text("{}")
    topics = write_schema_registry(tmp_path)
    files = sorted(p.name for p in tmp_path.glob("*"))
    assert files == sorted(f"{t}.json" for t in topics)
    assert not any(".dlq" in f for f in files) and "pagestream.cdc.heartbeat.json" not in files
    expected = {t for t in ALL_TOPICS if not t.endswith(".dlq")}
    assert set(topics) == expected
    retry = json.loads((tmp_path / f"{PAGE_OCR_REQUESTED_RETRY}.json").read_text())
    base = json.loads((tmp_path / f"{PAGE_OCR_REQUESTED}.json").read_text())
    assert retry["properties"] == base["properties"]  # a retry topic carries its base topic's event
    # Tansu reads properties.value (the record value) and properties.key; keys are plain ids, not JSON
    assert set(base["properties"]) == {"value"}
    assert base["properties"]["value"]["x-event-type"] == "page.ocr-requested.v1"


def test_tansu_registry_can_leave_topics_unvalidated(tmp_path: Path) -> None:
    topics = write_schema_registry(tmp_path, exclude=[PAGE_OCR_REQUESTED])
    assert PAGE_OCR_REQUESTED not in topics and not (tmp_path / f"{PAGE_OCR_REQUESTED}.json").exists()
    assert PAGE_OCR_REQUESTED_RETRY in topics


# -- the test-only producer guard (external brokers) -----------------------------------------------


class _FakeKafkaProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def produce(self, topic: str, value: bytes, key: object, headers: object, on_delivery: Any) -> None:
        self.sent.append((topic, value))

    def poll(self, timeout: float) -> int:
        return 0


@pytest.fixture
def settings_for_unit(tmp_path: Path) -> Any:
    from pagestream.settings import Settings

    return Settings(
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1",
        DATABASE_URL="postgresql://u@127.0.0.1/x",
        STORAGE_URL=f"file://{tmp_path}",
    )


def test_the_producer_guard_refuses_what_tansu_would(settings_for_unit: Any) -> None:
    from pagestream.events.envelope import encode_data
    from pagestream.events.topics import DOCUMENT_SUBMIT, PAGE_OCR_REQUESTED_DLQ
    from pagestream.kafka.producer import EventProducer
    from tests.event_samples import sample_events
    from tests.schema_guard import ProducerSchemaGuard

    producer = EventProducer(settings_for_unit)
    fake = _FakeKafkaProducer()
    producer._producer = fake  # type: ignore[assignment]
    task = encode_data(sample_events()["page.ocr-requested.v1"])
    results: list[Any] = []
    guard = ProducerSchemaGuard(unvalidated_topics=[DOCUMENT_SUBMIT])
    with guard.installed():
        for topic, value in [
            (PAGE_OCR_REQUESTED, task),
            (PAGE_OCR_REQUESTED_RETRY, b"{}"),
            (PAGE_OCR_REQUESTED, b"{not json"),
            (PAGE_OCR_REQUESTED_DLQ, b"\xff"),
            (DOCUMENT_SUBMIT, b"{not json"),
        ]:
            producer.produce(topic, "k", value, [], on_delivery=lambda err, _: results.append(err))
    assert [t for t, _ in fake.sent] == [PAGE_OCR_REQUESTED, PAGE_OCR_REQUESTED_DLQ, DOCUMENT_SUBMIT]
    assert [getattr(e, "code", None) for e in results] == ["INVALID_RECORD", "INVALID_RECORD"]
    assert "page_id" in guard.refused[0][1] and "not JSON" in guard.refused[1][1]
    assert EventProducer.produce.__name__ == "produce" and EventProducer.produce.__qualname__.startswith(
        "EventProducer"
    )


def test_broker_validation_options_from_the_environment() -> None:
    from pagestream.stack.broker import UNVALIDATED_TOPICS_ENV, validation_options

    assert validation_options({}) == {"unvalidated_topics": ()}
    assert validation_options(
        {UNVALIDATED_TOPICS_ENV: f" {PAGE_OCR_REQUESTED}, {PAGE_OCR_REQUESTED_RETRY},"}
    ) == {"unvalidated_topics": (PAGE_OCR_REQUESTED, PAGE_OCR_REQUESTED_RETRY)}
    assert validation_options({UNVALIDATED_TOPICS_ENV: "*"}) == {"validate_schemas": False}
