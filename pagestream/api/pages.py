"""Pages: every page of a document with its status, and a recognized page's OCR layout."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter
from fastapi.params import Depends as DependsParam

from pagestream.api.documents import NO_DOCUMENT, document_or_404, iso
from pagestream.api.models import DocumentPages, PageOcr, PageView
from pagestream.api.problems import ApiProblem, problem_responses
from pagestream.db import Engine, queries
from pagestream.events.models import page_id_for


def page_view(page: dict[str, Any], base_url: str = "") -> PageView:
    """The public shape of one page row (without its OCR layout)."""
    pid = str(page["id"])
    failed = page["status"] == "failed"
    has_ocr = page["status"] == "completed"
    return PageView.model_validate(
        {
            "id": pid,
            "page_number": page["page_number"],
            "status": page["status"],
            "source": page.get("source"),
            "engine": page.get("engine"),
            "engine_version": page.get("engine_version"),
            "rotation": page.get("rotation"),
            "confidence": page.get("mean_confidence"),
            "title_block": {
                "sheet_number": page.get("sheet_number"),
                "sheet_title": page.get("sheet_title"),
                "scale": page.get("scale"),
            },
            "error": {"reason": page.get("error_reason"), "detail": page.get("error_detail")}
            if failed
            else None,
            "attempts": page.get("attempts"),
            "timings": {
                "started_at": iso(page.get("started_at")),
                "completed_at": iso(page.get("completed_at")),
                "ocr_seconds": page.get("ocr_seconds"),
            },
            "ocr_url": f"{base_url}/v1/pages/{pid}/ocr" if has_ocr else None,
        }
    )


def pending_page(document_id: uuid.UUID, page_number: int) -> PageView:
    """A page not recorded yet (queued or being recognized)."""
    return page_view(
        {"id": page_id_for(document_id, page_number), "page_number": page_number, "status": "pending"}
    )


def pages_router(engine: Engine, auth: Sequence[DependsParam]) -> APIRouter:
    """A document's pages and a page's OCR layout, behind ``auth``."""
    router = APIRouter(tags=["pages"])

    @router.get(
        "/v1/documents/{document_id}/pages",
        dependencies=list(auth),
        response_model=DocumentPages,
        responses=problem_responses(401, 404, 422, 503, s404=NO_DOCUMENT),
        summary="Every page of a document with its status",
    )
    def document_pages(document_id: uuid.UUID) -> DocumentPages:
        doc = document_or_404(engine, document_id)
        stored = {p["page_number"]: page_view(p) for p in queries.list_pages(engine, document_id)}
        count = doc.get("page_count") or 0
        items = [stored.get(n) or pending_page(document_id, n) for n in range(1, count + 1)]
        items += [v for n, v in sorted(stored.items()) if n > count]
        return DocumentPages(
            document_id=document_id, status=doc["status"], page_count=doc.get("page_count"), pages=items
        )

    @router.get(
        "/v1/pages/{page_id}/ocr",
        dependencies=list(auth),
        response_model=PageOcr,
        responses=problem_responses(
            401, 404, 422, 503, s404="no such page, or it has no OCR result (pending or failed)"
        ),
        summary="A recognized page's OCR layout",
    )
    def page_ocr(page_id: uuid.UUID) -> PageOcr:
        page = queries.get_page(engine, page_id)
        if page is None:
            raise ApiProblem(
                404,
                "Page not found",
                f"no recognized page with id {page_id} (it may still be pending, or its document was deleted)",
            )
        if page["status"] != "completed" or page.get("layout") is None:
            raise ApiProblem(
                404,
                "No OCR result",
                f"page {page['page_number']} of document {page['document_id']} failed "
                f"({page.get('error_reason')}): {page.get('error_detail')}",
            )
        return PageOcr.model_validate(
            {
                **page["layout"],
                "text": page["text"],
                "page_id": str(page_id),
                "document_id": str(page["document_id"]),
                "page_number": page["page_number"],
            }
        )

    return router
