"""Outputs of the query API: searchable PDF, hOCR, ALTO and page images.

All are built on request from the stored layout and the stored document bytes (no OCR).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from pagestream import export
from pagestream.api.problems import ApiProblem, problem_responses
from pagestream.db.documents import get_document
from pagestream.db.errors import DocumentNotFoundError
from pagestream.db.exports import page_layout
from pagestream.storage.errors import StorageError

#: documents still being recognized: their outputs would be incomplete
UNFINISHED = ("received", "processing")


class LayoutFormat(StrEnum):
    hocr = "hocr"
    alto = "alto"


_MEDIA = {LayoutFormat.hocr: export.HOCR_MEDIA_TYPE, LayoutFormat.alto: export.ALTO_MEDIA_TYPE}
_SUFFIX = {LayoutFormat.hocr: "hocr.html", LayoutFormat.alto: "alto.xml"}


def _binary(media_type: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {media_type: {"schema": {"type": "string", "format": "binary"}}},
    }


def _xml(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            export.HOCR_MEDIA_TYPE: {"schema": {"type": "string"}},
            export.ALTO_MEDIA_TYPE: {"schema": {"type": "string"}},
        },
    }


_ERRORS = problem_responses(
    401,
    404,
    409,
    422,
    500,
    503,
    s404="no such document or page, or no OCR result for it",
    s409="the document is still being recognized; retry when it is completed",
    s500="the stored document cannot be read, or the output cannot be built",
    s503="database or object store unavailable",
)
#: the page routes answer for a page of any document, finished or not (no 409)
_PAGE_ERRORS = {status: r for status, r in _ERRORS.items() if status != 409}


def _filename(doc: dict[str, Any], suffix: str) -> str:
    stem = (doc.get("filename") or str(doc["id"])).rsplit(".", 1)[0] or str(doc["id"])
    return f"{stem}.{suffix}"


def _disposition(kind: str, name: str) -> str:
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "'").replace("?", "_")
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


def exports_router(engine: Any, store: Any, require_key: Callable[..., None]) -> APIRouter:
    """The export routes, authenticated by the app's own ``require_key`` dependency."""
    router = APIRouter(dependencies=[Depends(require_key)], tags=["outputs"])

    def finished_document(document_id: uuid.UUID) -> dict[str, Any]:
        try:
            doc = get_document(engine, document_id)
        except DocumentNotFoundError as e:
            raise ApiProblem(404, "Document not found", f"no document with id {document_id}") from e
        if doc["status"] in UNFINISHED:
            raise ApiProblem(
                409,
                "Document not finished",
                f"document {document_id} is {doc['status']}; its outputs exist once it is completed",
            )
        return doc

    def source(document_id: uuid.UUID) -> export.SourceDocument:
        try:
            return export.load_document(engine, store, document_id)
        except DocumentNotFoundError as e:
            raise ApiProblem(404, "Document not found", f"no document with id {document_id}") from e
        except StorageError as e:
            raise ApiProblem(
                500,
                "Document bytes unavailable",
                f"the stored bytes of document {document_id} cannot be read ({e}); resubmit it",
            ) from e

    def build(fn: Callable[[], bytes]) -> bytes:
        try:
            return fn()
        except export.ExportError as e:
            raise ApiProblem(500, "Export failed", f"{e}") from e

    @router.get(
        "/v1/documents/{document_id}/pdf",
        response_class=Response,
        responses={200: _binary("application/pdf", "the searchable PDF"), **_ERRORS},
        summary="Searchable PDF: the original pages with an invisible text layer",
    )
    def document_pdf(
        document_id: uuid.UUID,
        download: Annotated[bool, Query(description="ask the browser to save it")] = False,
    ) -> Response:
        doc = finished_document(document_id)
        pdf = build(lambda: export.searchable_pdf(source(document_id)))
        return Response(
            pdf,
            media_type="application/pdf",
            headers={
                "Content-Disposition": _disposition(
                    "attachment" if download else "inline", _filename(doc, "searchable.pdf")
                )
            },
        )

    @router.get(
        "/v1/documents/{document_id}/export",
        response_class=Response,
        responses={200: _xml("hOCR (application/xhtml+xml) or ALTO 4.4 (application/xml)"), **_ERRORS},
        summary="Every recognized page as hOCR or ALTO",
    )
    def document_export(
        document_id: uuid.UUID, format: Annotated[LayoutFormat, Query(description="hocr or alto")]
    ) -> Response:
        doc = finished_document(document_id)
        src = source(document_id)
        body = build(lambda: export.hocr(src) if format is LayoutFormat.hocr else export.alto(src))
        return Response(
            body,
            media_type=_MEDIA[format],
            headers={"Content-Disposition": _disposition("inline", _filename(doc, _SUFFIX[format]))},
        )

    def recognized_page(page_id: uuid.UUID) -> dict[str, Any]:
        row = page_layout(engine, page_id)
        if row is None:
            raise ApiProblem(
                404,
                "Page not found",
                f"no recognized page with id {page_id} (it may still be pending, or was deleted)",
            )
        return row

    @router.get(
        "/v1/pages/{page_id}/export",
        response_class=Response,
        responses={200: _xml("hOCR (application/xhtml+xml) or ALTO 4.4 (application/xml)"), **_PAGE_ERRORS},
        summary="One page as hOCR or ALTO",
    )
    def page_export(
        page_id: uuid.UUID, format: Annotated[LayoutFormat, Query(description="hocr or alto")]
    ) -> Response:
        row = recognized_page(page_id)
        layout = export.layout_from_row(row)
        if layout is None:
            raise ApiProblem(404, "No OCR result", f"page {row['page_number']} has no OCR result (it failed)")
        doc = finished_or_any(row["document_id"])
        page = export.SourcePage(page_number=row["page_number"], layout=layout, page_id=str(page_id))
        src = export.SourceDocument(
            document_id=str(row["document_id"]),
            data=b"",
            media_type=doc["media_type"],
            filename=doc.get("filename"),
            pages=[page],
        )
        body = build(lambda: export.hocr(src) if format is LayoutFormat.hocr else export.alto(src))
        return Response(body, media_type=_MEDIA[format])

    def finished_or_any(document_id: uuid.UUID) -> dict[str, Any]:
        try:
            return get_document(engine, document_id)
        except DocumentNotFoundError as e:
            raise ApiProblem(404, "Document not found", f"no document with id {document_id}") from e

    @router.get(
        "/v1/pages/{page_id}/image",
        response_class=Response,
        responses={
            200: _binary("image/png", "the page as the engine read it (turned upright)"),
            **_PAGE_ERRORS,
        },
        summary="Page image (PNG) on which the layout's normalized boxes fall",
    )
    def page_image(
        page_id: uuid.UUID,
        width: Annotated[int, Query(ge=200, le=4000, description="maximum width in pixels")] = 1400,
    ) -> Response:
        row = recognized_page(page_id)
        doc = finished_or_any(row["document_id"])
        try:
            data = store.get(doc["storage_uri"])
        except StorageError as e:
            raise ApiProblem(
                500, "Document bytes unavailable", f"the stored bytes cannot be read ({e})"
            ) from e
        png = build(
            lambda: export.page_image(
                data, doc["media_type"], row["page_number"], export.layout_from_row(row), max_width=width
            )
        )
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    return router
