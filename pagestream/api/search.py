"""Full-text search over recognized pages (PostgreSQL ``websearch_to_tsquery``, ranked)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.params import Depends as DependsParam

from pagestream.api.models import SearchHitView, SearchResults
from pagestream.api.problems import ApiProblem, problem_responses
from pagestream.db import Engine, queries
from pagestream.db.queries import HIGHLIGHT_START, HIGHLIGHT_STOP, SearchHit

#: a search query must hold something other than (ASCII) whitespace, and no NUL character
SEARCH_PATTERN = "^[^\\x00]*[^\\x00 \\t\\n\\r\\f\\v][^\\x00]*$"


def _snippet_html(snippet: str) -> str:
    """``ts_headline`` output as safe HTML: page text escaped, matched terms in ``<mark>``."""
    return (
        html.escape(snippet, quote=False)
        .replace(HIGHLIGHT_START, "<mark>")
        .replace(HIGHLIGHT_STOP, "</mark>")
    )


def search_view(hit: SearchHit, base_url: str = "") -> SearchHitView:
    """The public shape of one search result."""
    did = str(hit.document_id)
    return SearchHitView.model_validate(
        {
            "document_id": did,
            "document_url": f"{base_url}/v1/documents/{did}",
            "filename": hit.filename,
            "status": hit.status,
            "page_count": hit.page_count,
            "rank": hit.rank,
            "matching_pages": hit.matching_pages,
            "pages": [
                {
                    "page_number": p["page_number"],
                    "page_id": str(p["page_id"]),
                    "rank": p["rank"],
                    "snippet": _snippet_html(p["snippet"]),
                    "ocr_url": f"{base_url}/v1/pages/{p['page_id']}/ocr",
                }
                for p in hit.pages
            ],
        }
    )


def search_router(engine: Engine, auth: Sequence[DependsParam]) -> APIRouter:
    """``GET /v1/search``, behind ``auth``."""
    router = APIRouter(tags=["search"])

    @router.get(
        "/v1/search",
        dependencies=list(auth),
        response_model=SearchResults,
        responses=problem_responses(401, 422, 503),
        summary="Full-text search over recognized pages",
    )
    def search(
        q: Annotated[
            str,
            Query(
                min_length=1,
                max_length=1000,
                json_schema_extra={"pattern": SEARCH_PATTERN},
                description='web-search syntax: words, "a phrase", or, -not; not blank, no NUL character',
            ),
        ],
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> SearchResults:
        # SEARCH_PATTERN, checked here to say which part of it the query breaks
        if "\x00" in q:
            raise ApiProblem(422, "Invalid request", "query.q: the search query contains a NUL character")
        if not q.strip(" \t\n\r\f\v"):
            raise ApiProblem(422, "Invalid request", "query.q: the search query is blank")
        hits = queries.search_pages(engine, q, limit=limit)
        return SearchResults(query=q, items=[search_view(h) for h in hits])

    return router
