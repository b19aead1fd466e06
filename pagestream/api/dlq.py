"""Operator endpoints for dead letters: list DLQ topics, read their records, redrive them."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.params import Depends
from pydantic import BaseModel, ConfigDict, Field

from pagestream.api.problems import ApiProblem, problem_responses
from pagestream.events.topics import DLQ_TOPICS
from pagestream.kafka.dlq import DeadLetterQueues
from pagestream.settings import Settings

_S = {"s404": "not a dead-letter topic", "s503": "the broker is unreachable"}

TopicParam = Annotated[
    str,
    Path(
        description="a dead-letter topic, e.g. pagestream.page.ocr-requested.v1.dlq; "
        "another name is answered 404",
        json_schema_extra={"enum": list(DLQ_TOPICS)},
    ),
]


class DeadLetterTopicView(BaseModel):
    topic: str
    depth: int = Field(description="records held in the topic")
    pending: int = Field(description="records not yet redriven (nor passed over by a filtered redrive)")


class DeadLetterTopics(BaseModel):
    topics: list[DeadLetterTopicView]


class DeadLetterView(BaseModel):
    """One dead-lettered record; text fields are escaped (no control characters)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: str | None
    reason: str | None = Field(description="why it was given up on (pagestream_dlq_reason)")
    error_class: str | None
    detail: str | None
    attempts: int | None
    source: str | None = Field(description="where it was read: topic[partition]@offset")
    failed_at: str | None
    redrive_topic: str | None = Field(description="where redrive sends it; null when its origin is unknown")
    headers: list[tuple[str, str | None]] = Field(description="the original record's headers")
    value_bytes: int
    value_json: Any = Field(None, description="the value, when it is JSON")
    value_preview: str = Field(description="the start of the value as escaped text")
    pending: bool = Field(description="false once redrive handled it")


class DeadLetters(BaseModel):
    topic: str
    records: list[DeadLetterView]


class RedriveRequest(BaseModel):
    model_config = ConfigDict(strict=True)  # JSON types as documented: `0` is not a boolean

    reason: str | None = Field(
        None,
        max_length=200,
        description="only records dead-lettered for this reason; the "
        "other pending records are passed over (no longer pending)",
    )
    dry_run: bool = Field(False, description="read and report; send and mark nothing")


class SkippedRecordView(BaseModel):
    partition: int
    offset: int
    why: str


class RedriveSummaryView(BaseModel):
    topic: str
    dry_run: bool
    reason_filter: str | None
    scanned: int = Field(description="pending records read")
    redriven: int = Field(
        description="records sent back to their original topic (or that would be, in a dry run)"
    )
    passed_over: int = Field(description="records of other reasons than the filter, now handled")
    skipped: list[SkippedRecordView] = Field(description="records whose original topic is unknown; not sent")
    targets: dict[str, int] = Field(description="redriven records per original topic")
    reasons: dict[str, int] = Field(description="read records per dead-letter reason")


def _dlq_topic(topic: str) -> str:
    if topic not in DLQ_TOPICS:
        raise ApiProblem(404, "Not a dead-letter topic", f"{topic!r} is not one of: {', '.join(DLQ_TOPICS)}")
    return topic


def dlq_router(settings: Settings, auth: Sequence[Depends]) -> APIRouter:
    router = APIRouter(tags=["dead letters"])
    redriving = threading.Lock()  # one redrive at a time from this process

    @router.get(
        "/v1/dlq",
        dependencies=list(auth),
        response_model=DeadLetterTopics,
        responses=problem_responses(401, 503, **_S),
    )
    def list_dlq() -> DeadLetterTopics:
        """Every dead-letter topic with its depth and how many records are not yet redriven."""
        with DeadLetterQueues(settings) as q:
            return DeadLetterTopics(
                topics=[
                    DeadLetterTopicView(topic=t.topic, depth=t.depth, pending=t.pending) for t in q.topics()
                ]
            )

    @router.get(
        "/v1/dlq/{topic}",
        dependencies=list(auth),
        response_model=DeadLetters,
        responses=problem_responses(401, 404, 422, 503, **_S),
    )
    def show_dlq(
        topic: TopicParam,
        limit: Annotated[int, Query(ge=1, le=10_000, description="at most this many, oldest first")] = 20,
        partition: Annotated[int | None, Query(ge=0)] = None,
        offset: Annotated[int | None, Query(ge=0, description="start each partition here")] = None,
        pending: Annotated[bool, Query(description="only records not yet redriven")] = False,
    ) -> DeadLetters:
        """Records of a dead-letter topic: why each was given up on, where from, and what it held."""
        _dlq_topic(topic)
        with DeadLetterQueues(settings) as q:
            records = q.read(
                topic, limit=limit, partition=partition, start_offset=offset, pending_only=pending
            )
        return DeadLetters(topic=topic, records=[DeadLetterView(**r.as_dict()) for r in records])

    @router.post(
        "/v1/dlq/{topic}/redrive",
        dependencies=list(auth),
        response_model=RedriveSummaryView,
        responses=problem_responses(
            400,
            401,
            404,
            409,
            422,
            503,
            s400="the body is not JSON",
            s409="a redrive is already running",
            **_S,
        ),
    )
    def redrive_dlq(topic: TopicParam, body: RedriveRequest | None = None) -> RedriveSummaryView:
        """Send the pending records back to the topics they came from (once each), and say what was done."""
        _dlq_topic(topic)
        body = body or RedriveRequest(reason=None, dry_run=False)
        if not redriving.acquire(blocking=False):
            raise ApiProblem(
                409, "Redrive already running", "another redrive is running; try again when it ends"
            )
        try:
            with DeadLetterQueues(settings) as q:
                summary = q.redrive(topic, reason=body.reason, dry_run=body.dry_run)
        finally:
            redriving.release()
        return RedriveSummaryView.model_validate(summary.as_dict())

    return router
