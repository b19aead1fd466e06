"""Operator endpoints: reprocess a document through the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.params import Depends
from pydantic import BaseModel, ConfigDict, Field

from pagestream.api.models import LANGUAGES_MAX_LENGTH, LANGUAGES_PATTERN
from pagestream.api.problems import ApiProblem, problem_responses
from pagestream.db import Engine
from pagestream.db.errors import DocumentNotFoundError, DocumentNotReprocessableError
from pagestream.db.reconcile import reprocess_document
from pagestream.engine_names import EngineName
from pagestream.events.envelope import new_traceparent


class ReprocessRequest(BaseModel):
    """Options for the new run; omitted ones keep the document's stored options."""

    model_config = ConfigDict(strict=True)  # JSON types as documented: `0` is not a boolean

    engine: EngineName | None = None
    languages: str | None = Field(
        None,
        pattern=LANGUAGES_PATTERN,
        max_length=LANGUAGES_MAX_LENGTH,
        description="Tesseract language codes, e.g. 'eng+deu'",
    )
    force_ocr: bool | None = None


class ReprocessAccepted(BaseModel):
    id: uuid.UUID
    status: str
    status_url: str
    options: dict[str, Any]


def operations_router(engine: Engine, auth: Sequence[Depends]) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.post(
        "/v1/documents/{document_id}/reprocess",
        status_code=202,
        dependencies=list(auth),
        response_model=ReprocessAccepted,
        responses=problem_responses(
            400,
            401,
            404,
            409,
            422,
            503,
            s400="the body is not JSON",
            s404="no document with that id",
            s409="the document cannot be reprocessed (e.g. encrypted, no pages)",
        ),
    )
    def reprocess(
        request: Request, document_id: uuid.UUID, body: ReprocessRequest | None = None
    ) -> ReprocessAccepted:
        """OCR the document again from scratch (same committed-only path as a new upload)."""
        body = body or ReprocessRequest()
        try:
            out = reprocess_document(
                engine,
                document_id,
                engine_name=body.engine,
                languages=body.languages,
                force_ocr=body.force_ocr,
                traceparent=request.headers.get("traceparent") or new_traceparent(),
            )
        except DocumentNotFoundError as e:
            raise ApiProblem(404, "Document not found", f"no document with id {document_id}") from e
        except DocumentNotReprocessableError as e:
            raise ApiProblem(409, "Document cannot be reprocessed", str(e)) from e
        return ReprocessAccepted(
            id=document_id,
            status=out["status"],
            status_url=f"/v1/documents/{document_id}",
            options=out["options"],
        )

    return router
