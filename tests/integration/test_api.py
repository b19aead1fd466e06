"""The HTTP API against the real PostgreSQL: auth, uploads (limits, idempotency), pagination,
pages and OCR layout, full-text search, deletion, and the client/CLI errors users see."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from pagestream.api.app import create_app
from pagestream.db.apikeys import create_key, revoke_key
from pagestream.db.progress import apply_page_outcomes
from pagestream.events.envelope import decode_record
from pagestream.events.models import DocumentDeletedV1
from pagestream.events.topics import DOCUMENT_DELETED
from pagestream.layout import TitleBlock
from pagestream.settings import Settings
from tests.integration.fabricate import completed, failed, new_document, pdf_bytes, png_bytes
from tests.integration.pipeline_fixtures import drain

PROBLEM = "application/problem+json"


def _word() -> str:
    """A token no other test's pages contain (letters only, so the parser keeps it whole)."""
    return "zq" + "".join(chr(ord("a") + int(c, 16) % 26) for c in uuid.uuid4().hex[:10])


@pytest.fixture(scope="module")
def api_key(engine: Engine) -> str:
    return create_key(engine, "test-api")[1]


@pytest.fixture(scope="module")
def client(migrated: Settings, engine: Engine, api_key: str) -> Iterator[TestClient]:
    """The API with authentication enabled, authenticated with a valid key."""
    with TestClient(create_app(migrated, engine=engine), headers={"X-API-Key": api_key}) as c:
        yield c


def _upload(c: TestClient, data: bytes, name: str = "doc.pdf", **kw: Any) -> Any:
    return c.post("/v1/documents", files={"file": (name, data)}, **kw)


def _problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["status"] == status and body["detail"]
    return body


# --- auth ---------------------------------------------------------------------------------------


def test_auth_required_and_checked(migrated: Settings, engine: Engine) -> None:
    kid, key = create_key(engine, "auth-test")
    revoked_id, revoked = create_key(engine, "auth-test-revoked")
    assert revoke_key(engine, revoked_id)
    with TestClient(create_app(migrated, engine=engine)) as c:
        assert "X-API-Key" in _problem(c.get("/v1/documents"), 401)["detail"]
        assert (
            _problem(c.get("/v1/documents", headers={"X-API-Key": "ps_wrong"}), 401)["title"]
            == "Invalid API key"
        )
        _problem(c.get("/v1/documents", headers={"X-API-Key": revoked}), 401)
        _problem(c.delete(f"/v1/documents/{uuid.uuid4()}", headers={"X-API-Key": revoked}), 401)
        assert c.get("/v1/documents", headers={"X-API-Key": key}).status_code == 200
        assert c.get("/v1/search?q=x", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        for open_path in ("/healthz", "/readyz", "/metrics"):
            assert c.get(open_path).status_code == 200, open_path
    with TestClient(create_app(migrated.model_copy(update={"auth": "disabled"}), engine=engine)) as c:
        assert c.get("/v1/documents").status_code == 200


def test_readyz_reports_extra_checks(migrated: Settings, engine: Engine) -> None:
    healthy = {"v": False}
    with TestClient(
        create_app(migrated, engine=engine, checks={"submit_consumer": lambda: healthy["v"]})
    ) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["checks"] == {"database": True, "submit_consumer": False}
        healthy["v"] = True
        assert c.get("/readyz").status_code == 200


# --- uploads: limits and idempotency ---------------------------------------------------------------


def test_upload_limits_answer_with_the_limit(migrated: Settings, engine: Engine, api_key: str) -> None:
    def app_with(**limits: int) -> TestClient:
        return TestClient(
            create_app(migrated.model_copy(update=limits), engine=engine), headers={"X-API-Key": api_key}
        )

    with app_with(max_upload_bytes=500) as c:
        body = _problem(_upload(c, pdf_bytes(_word())), 413)
        assert "500 bytes" in body["detail"]
    with app_with(max_pages=2) as c:
        body = _problem(_upload(c, pdf_bytes(_word(), "two", "three")), 413)
        assert (
            "3 pages" in body["detail"]
            and "limit is 2" in body["detail"]
            and "PAGESTREAM_MAX_PAGES" in body["detail"]
        )
    with app_with(max_image_pixels=10_000) as c:
        body = _problem(_upload(c, png_bytes(200, 150), "scan.png"), 413)
        assert "200×150" in body["detail"] and "limit is 10,000 px" in body["detail"]
    with app_with() as c:
        assert "not a PDF or image" in _problem(_upload(c, b"<html>hello</html>", "x.pdf"), 415)["detail"]
        assert "damaged" in _problem(_upload(c, b"%PDF-1.7\n garbage " * 10), 422)["detail"]
        assert "0 bytes" in _problem(_upload(c, b""), 422)["detail"]


def test_same_bytes_return_the_existing_document_unless_forced(client: TestClient) -> None:
    data = pdf_bytes(_word())
    first = _upload(client, data)
    assert first.status_code == 202 and first.json()["duplicate"] is False
    assert first.headers["location"].endswith(first.json()["id"])
    again = _upload(client, data, "other-name.pdf")
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.json()["duplicate"] is True
    forced = _upload(client, data, params={"force": "true"})
    assert forced.status_code == 202 and forced.json()["id"] != first.json()["id"]
    assert forced.json()["sha256"] == first.json()["sha256"]


def test_idempotency_key_returns_the_first_document(client: TestClient) -> None:
    key = f"idem-{uuid.uuid4()}"
    first = _upload(client, pdf_bytes(_word()), headers={"Idempotency-Key": key})
    assert first.status_code == 202
    # a retry of the same request (even with different bytes) is answered with the first document
    retry = _upload(client, pdf_bytes(_word()), headers={"Idempotency-Key": key})
    assert retry.status_code == 200 and retry.json()["id"] == first.json()["id"]


# --- listing ----------------------------------------------------------------------------------------


def test_keyset_pagination_walks_every_document_once(client: TestClient, engine: Engine) -> None:
    created = [str(new_document(engine, 1)) for _ in range(5)]
    seen: list[str] = []
    cursor = None
    for _ in range(1000):
        r = client.get("/v1/documents", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200
        body = r.json()
        assert len(body["items"]) <= 2
        seen += [d["id"] for d in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    with engine.connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM documents")).scalar()
    assert len(seen) == len(set(seen)) == total
    assert [d for d in seen if d in created] == created[::-1]  # newest first
    received = client.get("/v1/documents", params={"status": "received", "limit": 500}).json()["items"]
    assert received and all(d["status"] == "received" for d in received)
    assert "cursor" in _problem(client.get("/v1/documents", params={"cursor": "garbage!"}), 400)["detail"]
    assert "status" in _problem(client.get("/v1/documents", params={"status": "bogus"}), 422)["detail"]
    _problem(client.get("/v1/documents", params={"limit": 0}), 422)


# --- pages and OCR layout -------------------------------------------------------------------------


def test_pages_and_ocr_layout(client: TestClient, engine: Engine) -> None:
    doc = new_document(engine, 3)
    tb = TitleBlock(sheet_number="A-101", sheet_title="FLOOR PLAN", scale='1/4" = 1\'-0"')
    apply_page_outcomes(
        engine, [completed(doc, 1, 3, "ground floor plan", title_block=tb), failed(doc, 2, 3)]
    )
    body = client.get(f"/v1/documents/{doc}/pages").json()
    assert body["status"] == "processing" and body["page_count"] == 3
    p1, p2, p3 = body["pages"]
    assert (p1["page_number"], p1["status"], p1["source"], p1["engine"], p1["rotation"]) == (
        1,
        "completed",
        "ocr",
        "tesseract",
        0,
    )
    assert p1["confidence"] == pytest.approx(91.5)
    assert p1["title_block"] == {
        "sheet_number": "A-101",
        "sheet_title": "FLOOR PLAN",
        "scale": '1/4" = 1\'-0"',
    }
    assert p1["timings"]["ocr_seconds"] == pytest.approx(0.25) and p1["timings"]["completed_at"]
    assert p1["error"] is None and p1["ocr_url"] == f"/v1/pages/{p1['id']}/ocr"
    assert p2["status"] == "failed" and p2["error"] == {
        "reason": "page_timeout",
        "detail": "OCR took longer than 120 s",
    }
    assert p2["ocr_url"] is None
    assert p3["status"] == "pending" and p3["ocr_url"] is None

    ocr = client.get(p1["ocr_url"]).json()
    assert (ocr["document_id"], ocr["page_number"], ocr["width"], ocr["height"]) == (str(doc), 1, 1000, 800)
    words = [w for b in ocr["blocks"] for ln in b["lines"] for w in ln["words"]]
    assert [w["text"] for w in words] == ["ground", "floor", "plan"]
    assert all(w["confidence"] == pytest.approx(91.5) and 0 <= w["box"]["nx0"] <= 1 for w in words)
    assert "page_timeout" in _problem(client.get(f"/v1/pages/{p2['id']}/ocr"), 404)["detail"]
    _problem(client.get(f"/v1/pages/{p3['id']}/ocr"), 404)
    _problem(client.get(f"/v1/documents/{uuid.uuid4()}/pages"), 404)
    _problem(client.get("/v1/pages/not-a-uuid/ocr"), 422)


# --- search ----------------------------------------------------------------------------------------


def test_search_ranks_documents_and_highlights_pages(client: TestClient, engine: Engine) -> None:
    w = _word()
    strong, weak, other = new_document(engine, 2), new_document(engine, 3), new_document(engine, 1)
    apply_page_outcomes(
        engine,
        [
            completed(strong, 1, 2, f"{w} gearbox {w} inspection of the {w} housing"),
            completed(strong, 2, 2, f"appendix: {w} <script>alert(1)</script> & more"),
            completed(weak, 1, 3, "nothing relevant on this page"),
            completed(
                weak, 3, 3, f"a long page about many other things, mentioning {w} once, " + "filler " * 60
            ),
            completed(other, 1, 1, "unrelated text about bridges"),
        ],
    )
    body = client.get("/v1/search", params={"q": w}).json()
    ids = [h["document_id"] for h in body["items"]]
    assert ids == [str(strong), str(weak)]
    best = body["items"][0]
    assert best["matching_pages"] == 2 and best["rank"] > body["items"][1]["rank"]
    assert [p["page_number"] for p in best["pages"]] == [1, 2]
    assert f"<mark>{w}</mark>" in best["pages"][0]["snippet"]
    assert "<script>" not in best["pages"][1]["snippet"]  # page text is escaped, only <mark> is markup
    assert [p["page_number"] for p in body["items"][1]["pages"]] == [3]
    # web-search syntax: a phrase, and exclusion
    assert [
        h["document_id"] for h in client.get("/v1/search", params={"q": f'"{w} gearbox"'}).json()["items"]
    ] == [str(strong)]
    # exclusion applies per page: only the weak document's matching page says "filler"
    assert [
        h["document_id"] for h in client.get("/v1/search", params={"q": f"{w} -filler"}).json()["items"]
    ] == [str(strong)]
    assert len(client.get("/v1/search", params={"q": w, "limit": 1}).json()["items"]) == 1


@pytest.mark.parametrize(
    "hostile",
    [
        "'; DROP TABLE pages; --",
        '"unterminated',
        "back\\slash\\",
        "''''",
        "a & b | !c <-> d:*",
        "((()))",
        "ünïcödé 日本語 🙂",
        "%_%",
        "$1 $$ :q",
        "or",
        "-",
        "the",
    ],
)
def test_search_is_safe_with_hostile_queries(client: TestClient, engine: Engine, hostile: str) -> None:
    r = client.get("/v1/search", params={"q": hostile})
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["items"], list)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('pages') IS NOT NULL")).scalar()


def test_search_rejects_a_blank_query(client: TestClient) -> None:
    assert "q" in _problem(client.get("/v1/search", params={"q": ""}), 422)["detail"]
    assert "blank" in _problem(client.get("/v1/search", params={"q": "   "}), 422)["detail"]
    _problem(client.get("/v1/search"), 422)
    _problem(client.get("/v1/search", params={"q": "x" * 1001}), 422)
    _problem(client.get("/v1/search", params={"q": "a\x00b"}), 422)


# --- delete ----------------------------------------------------------------------------------------


def test_delete_keeps_shared_bytes_and_emits_the_event(
    client: TestClient, engine: Engine, relay: Any, consumer_factory: Any
) -> None:
    data = pdf_bytes(_word())
    first = _upload(client, data).json()
    second = _upload(client, data, params={"force": "true"}).json()
    with engine.connect() as conn:
        uri = conn.execute(
            text("SELECT storage_uri FROM documents WHERE id = :id"), {"id": first["id"]}
        ).scalar()
    stored = Path(uri.removeprefix("file://"))
    assert stored.is_file()
    apply_page_outcomes(engine, [completed(uuid.UUID(first["id"]), 1, 1, "to be deleted")])

    assert client.delete(f"/v1/documents/{first['id']}").status_code == 204
    _problem(client.get(f"/v1/documents/{first['id']}"), 404)
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM pages WHERE document_id = :id"), {"id": first["id"]}
            ).scalar()
            == 0
        )
    assert stored.is_file(), "bytes still referenced by the second document were removed"
    assert client.delete(f"/v1/documents/{second['id']}").status_code == 204
    assert not stored.exists()
    _problem(client.delete(f"/v1/documents/{second['id']}"), 404)

    consumer = consumer_factory(DOCUMENT_DELETED)
    wanted = {first["id"], second["id"]}

    def deleted_ids(records: list[Any]) -> set[str]:
        out = set()
        for r in records:
            ev = decode_record(r.value, r.headers).data
            assert isinstance(ev, DocumentDeletedV1)
            out.add(str(ev.document_id))
        return out

    records = drain(consumer, lambda rs: wanted <= deleted_ids(rs), 30)
    assert wanted <= deleted_ids(records)


# --- client and CLI errors -----------------------------------------------------------------------


def test_client_errors_say_what_to_do(migrated: Settings, engine: Engine) -> None:
    from pagestream.client import ApiClient, ApiClientError

    with ApiClient("http://127.0.0.1:9", timeout=2) as unreachable, pytest.raises(ApiClientError) as e:
        unreachable.documents()
    assert "cannot reach the pagestream API at http://127.0.0.1:9" in str(e.value) and "pagestream up" in str(
        e.value
    )
    with (
        TestClient(create_app(migrated, engine=engine)) as tc,
        ApiClient("http://testserver", "ps_bad", http=tc) as bad,
        pytest.raises(ApiClientError) as e,
    ):
        bad.search("anything")
    assert e.value.status == 401 and "pagestream apikey create" in str(e.value)


def test_cli_search_pages_delete(
    migrated: Settings, engine: Engine, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pagestream.cli import documents as cli_documents
    from pagestream.cli import main
    from pagestream.client import ApiClient

    w = _word()
    doc = new_document(engine, 1, filename="cli.pdf")
    apply_page_outcomes(engine, [completed(doc, 1, 1, f"the {w} survey")])
    app = create_app(migrated, engine=engine)
    from pagestream.cli import _common as cli_common

    def client() -> ApiClient:
        return ApiClient("http://testserver", api_key, http=TestClient(app))

    monkeypatch.setattr(cli_documents, "api_client", client)
    monkeypatch.setattr(cli_common, "api_client", client)  # behind api_session
    runner = CliRunner()
    r = runner.invoke(main, ["search", w])
    assert r.exit_code == 0, r.output
    assert str(doc) in r.output and "cli.pdf" in r.output and w in r.output
    r = runner.invoke(main, ["pages", str(doc)])
    assert r.exit_code == 0 and "completed" in r.output and "tesseract" in r.output, r.output
    r = runner.invoke(main, ["delete", "--yes", str(doc)])
    assert r.exit_code == 0 and "deleted" in r.output, r.output
    r = runner.invoke(main, ["pages", str(doc)])
    assert r.exit_code == 1 and "404" in r.output and str(doc) in r.output
