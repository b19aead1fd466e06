"""A small client for the pagestream HTTP API (used by the CLI, the demo and benchmarks)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from pagestream.errors import PagestreamError

FINAL_STATUSES = ("completed", "partial", "failed")


class ApiClientError(PagestreamError):
    """The API refused or could not be reached; ``detail`` says why."""

    reason = "api"

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class ApiClient:
    """Talks to ``base_url`` with an optional API key."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        http: httpx.Client | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        headers = {"X-API-Key": api_key} if api_key else {}
        if http is not None:  # e.g. a Starlette TestClient in tests
            http.headers.update(headers)
            self._http = http
        else:
            self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            r = self._http.request(method, path, **kw)
        except httpx.ConnectError as e:
            raise ApiClientError(
                f"cannot reach the pagestream API at {self.base_url} "
                f"(is the stack up? `pagestream up --detach`)"
            ) from e
        except httpx.HTTPError as e:
            raise ApiClientError(f"request to {self.base_url}{path} failed: {type(e).__name__}") from e
        if r.status_code >= 400:
            try:
                body = r.json()
                detail = body.get("detail") or body.get("title") or r.text
            except ValueError:
                detail = r.text[:500]
            if r.status_code == 401:
                detail = f"{detail}; set PAGESTREAM_API_KEY to a key from `pagestream apikey create NAME`"
            raise ApiClientError(f"{r.status_code}: {detail}", status=r.status_code)
        return r

    def submit(
        self,
        path: Path,
        *,
        password: str | None = None,
        force_ocr: bool = False,
        idempotency_key: str | None = None,
        force: bool = False,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"force_ocr": str(force_ocr).lower()}
        if password:
            data["password"] = password
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        with path.open("rb") as f:
            r = self._request(
                "POST",
                "/v1/documents",
                files={"file": (path.name, f)},
                data=data,
                headers=headers,
                params={"force": "true"} if force else None,
            )
        return r.json()

    def submit_bytes(self, name: str, content: bytes, **kw: Any) -> dict[str, Any]:
        r = self._request("POST", "/v1/documents", files={"file": (name, content)}, **kw)
        return r.json()

    def document(self, document_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/documents/{document_id}").json()

    def documents(
        self, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> dict[str, Any]:
        params = {
            k: v for k, v in {"status": status, "limit": limit, "cursor": cursor}.items() if v is not None
        }
        return self._request("GET", "/v1/documents", params=params).json()

    def text(self, document_id: str) -> str:
        return self._request("GET", f"/v1/documents/{document_id}/text").text

    def pages(self, document_id: str) -> dict[str, Any]:
        """The document's pages: status, source, engine, confidence, title block, errors, timings."""
        return self._request("GET", f"/v1/documents/{document_id}/pages").json()

    def page_ocr(self, page_id: str) -> dict[str, Any]:
        """One page's layout: blocks, lines and words with boxes and confidences."""
        return self._request("GET", f"/v1/pages/{page_id}/ocr").json()

    def search(self, query: str, limit: int = 20) -> dict[str, Any]:
        """Full-text search: documents best first, with matching pages and highlighted snippets."""
        return self._request("GET", "/v1/search", params={"q": query, "limit": limit}).json()

    def delete(self, document_id: str) -> None:
        """Delete a document, its pages and (when no other document shares them) its stored bytes."""
        self._request("DELETE", f"/v1/documents/{document_id}")

    def reprocess(
        self,
        document_id: str,
        *,
        engine: str | None = None,
        languages: str | None = None,
        force_ocr: bool | None = None,
    ) -> dict[str, Any]:
        """OCR a document again from scratch (optionally with another engine or languages)."""
        body = {
            k: v
            for k, v in (("engine", engine), ("languages", languages), ("force_ocr", force_ocr))
            if v is not None
        }
        return self._request("POST", f"/v1/documents/{document_id}/reprocess", json=body).json()

    def wait_all(
        self,
        document_ids: Sequence[str],
        timeout: float = 600.0,
        on_final: Callable[[dict[str, Any]], None] | None = None,
        poll: float = 0.1,
    ) -> dict[str, dict[str, Any]]:
        """Wait until every document is final or ``timeout`` passed: id -> final view of those that are.

        One request at a time, whatever the number of documents: the first one not yet final is
        polled every ``poll`` seconds; once it is final the next is asked for at once. Documents
        submitted together finish in about the order they were submitted, so this sees each one
        final within ``poll`` seconds of the last, at ~1/``poll`` requests per second plus one per
        document (not one per document per round).
        """
        deadline = time.monotonic() + timeout
        final: dict[str, dict[str, Any]] = {}
        pending = list(dict.fromkeys(document_ids))
        while pending:
            doc = self.document(pending[0])
            if doc["status"] in FINAL_STATUSES:
                final[pending.pop(0)] = doc
                if on_final:
                    on_final(doc)
                continue
            if time.monotonic() > deadline:
                break
            time.sleep(poll)
        return final

    def wait(
        self,
        document_id: str,
        timeout: float = 600.0,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the document reaches a final state; raise ApiClientError on timeout."""
        deadline = time.monotonic() + timeout
        delay = 0.1
        while True:
            doc = self.document(document_id)
            if on_progress:
                on_progress(doc)
            if doc["status"] in FINAL_STATUSES:
                return doc
            if time.monotonic() > deadline:
                raise ApiClientError(f"document {document_id} still {doc['status']} after {timeout:.0f} s")
            time.sleep(delay)
            delay = min(1.0, delay * 1.5)
