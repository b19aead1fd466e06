"""Security properties: keys required by default, types decided by content, file names never
used as paths, SQL only through bound parameters, secrets never in logs or error bodies."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from pagestream.api.app import create_app
from pagestream.db import make_engine
from pagestream.db.apikeys import create_key, revoke_key
from pagestream.settings import Settings
from pagestream.storage import content_key
from tests.chaos_support import grep_secret
from tests.integration.pipeline_fixtures import RunningStack

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
import make_bad_inputs as corpus


def _png(text_: str) -> bytes:
    buf = io.BytesIO()
    corpus._text_image(text_).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def secure_settings(migrated: Settings) -> Settings:
    """The session settings as a production deployment has them: authentication on."""
    return migrated.model_copy(update={"auth": "enabled"})


@pytest.fixture(scope="module")
def sec_engine(secure_settings: Settings):  # type: ignore[no-untyped-def]
    eng = make_engine(secure_settings.database_dsn())
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def api(secure_settings: Settings, sec_engine) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(create_app(secure_settings, engine=sec_engine), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def key(sec_engine) -> dict[str, str]:  # type: ignore[no-untyped-def]
    _, k = create_key(sec_engine, f"security-test-{uuid.uuid4().hex[:6]}")
    return {"X-API-Key": k}


# ---------------------------------------------------------------- authentication


def test_api_keys_are_required_by_default(api: TestClient, sec_engine, key: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    assert Settings.model_fields["auth"].default == "enabled"
    doc = str(uuid.uuid4())
    endpoints = [
        ("GET", "/v1/documents"),
        ("GET", f"/v1/documents/{doc}"),
        ("GET", f"/v1/documents/{doc}/text"),
        ("GET", f"/v1/documents/{doc}/pages"),
        ("GET", f"/v1/pages/{doc}/ocr"),
        ("GET", "/v1/search?q=x"),
        ("DELETE", f"/v1/documents/{doc}"),
    ]
    for method, path in endpoints:
        r = api.request(method, path)
        assert r.status_code == 401, (method, path, r.status_code)
        assert "API key" in r.json()["title"]
    r = api.post("/v1/documents", files={"file": ("a.png", _png("no key"))})
    assert r.status_code == 401
    for headers in (
        {"X-API-Key": "ps_not-a-key"},
        {"Authorization": "Bearer ps_not-a-key"},
        {"Authorization": "Basic " + base64.b64encode(b"admin:admin").decode()},
        {"X-API-Key": ""},
    ):
        assert api.get("/v1/documents", headers=headers).status_code == 401, headers
    assert api.get("/v1/documents", headers=key).status_code == 200
    assert (
        api.get("/v1/documents", headers={"Authorization": f"Bearer {key['X-API-Key']}"}).status_code == 200
    )
    # a revoked key stops working at once
    kid, other = create_key(sec_engine, "to-revoke")
    assert api.get("/v1/documents", headers={"X-API-Key": other}).status_code == 200
    assert revoke_key(sec_engine, kid)
    assert api.get("/v1/documents", headers={"X-API-Key": other}).status_code == 401
    # probes stay open (they reveal nothing)
    assert api.get("/healthz").status_code == 200


def test_keys_are_stored_only_as_hashes(sec_engine, key: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    with sec_engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(text("SELECT * FROM api_keys")).mappings()]
    dump = json.dumps(rows, default=str)
    assert key["X-API-Key"] not in dump
    assert hashlib.sha256(key["X-API-Key"].encode()).hexdigest() in dump


# ---------------------------------------------------------------- content, not names


def test_type_is_decided_by_content_not_name_or_content_type(api: TestClient, key: dict[str, str]) -> None:
    png = _png(f"disguised {uuid.uuid4().hex[:8]}")
    r = api.post(
        "/v1/documents",
        headers=key,
        params={"force": "true"},
        files={"file": ("invoice.pdf", png, "application/pdf")},
    )
    assert r.status_code == 202, r.text
    assert r.json()["media_type"] == "image/png" and r.json()["page_count"] == 1
    html = b"<!DOCTYPE html><html><body><form action=/login>password</form></body></html>"
    r = api.post("/v1/documents", headers=key, files={"file": ("statement.pdf", html, "application/pdf")})
    assert r.status_code == 415 and "is HTML, not a PDF or image" in r.json()["detail"]
    script = b"#!/bin/sh\nrm -rf /\n"
    r = api.post("/v1/documents", headers=key, files={"file": ("scan.png", script, "image/png")})
    assert r.status_code == 415, r.text


def test_file_names_are_never_paths(
    api: TestClient, key: dict[str, str], secure_settings: Settings, sec_engine, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    root = Path(secure_settings.storage_url.removeprefix("file://"))
    watch = root.parent.parent  # the store, the session state dir, and their neighbours
    before = {p for p in watch.rglob("*")}
    etc_passwd = Path("/etc/passwd").stat().st_mtime_ns
    cwd_before = set(os.listdir("."))
    for name, shown in (
        ("../../etc/passwd", "passwd"),
        ("..\\..\\x", "x"),
        ("/" + "a" * 5 + "/../../../tmp/evil.png", "evil.png"),
        ("..", ".."),
    ):
        data = _png(f"name {uuid.uuid4().hex}")
        sha = hashlib.sha256(data).hexdigest()
        r = api.post("/v1/documents", headers=key, files={"file": (name, data, "image/png")})
        assert r.status_code == 202, (name, r.text)
        body = r.json()
        assert body["filename"] == shown, (name, body["filename"])
        with sec_engine.connect() as conn:
            uri = conn.execute(
                text("SELECT storage_uri FROM documents WHERE id = :i"), {"i": body["id"]}
            ).scalar_one()
        assert uri == f"file://{root.resolve()}/{content_key(sha)}", uri
        assert (root / content_key(sha)).read_bytes() == data
    new = {p for p in watch.rglob("*")} - before
    outside = [p for p in new if root.resolve() not in p.resolve().parents]
    assert not outside, f"files written outside the object store: {outside}"
    assert all(p.is_dir() or p.name == p.parent.name + p.name[2:] or len(p.name) == 64 for p in new), new
    assert Path("/etc/passwd").stat().st_mtime_ns == etc_passwd
    assert set(os.listdir(".")) == cwd_before
    assert not Path("/tmp/evil.png").exists()


# ---------------------------------------------------------------- SQL injection

HOSTILE = [
    "'; DROP TABLE documents; --",
    '" OR 1=1 --',
    "') OR ('1'='1",
    "1; SELECT pg_sleep(5)",
    "%' OR '%'='",
    "\\'; TRUNCATE pages; --",
    ":status",
    "$1",
    "%(q)s",
    "' UNION SELECT hash FROM api_keys --",
    "completed' OR 'x'='x",
    "a:* & !b | c",
    '"unclosed',
    "<script>alert(1)</script>",
]


def test_sql_only_through_bound_parameters(api: TestClient, key: dict[str, str], sec_engine) -> None:  # type: ignore[no-untyped-def]
    def counts() -> tuple[int, int, int]:
        with sec_engine.connect() as conn:
            return tuple(
                conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()  # type: ignore[return-value]
                for t in ("documents", "pages", "api_keys")
            )

    before = counts()
    for s in HOSTILE:
        r = api.get("/v1/documents", headers=key, params={"status": s})
        assert r.status_code == 422, (s, r.status_code)
        r = api.get("/v1/documents", headers=key, params={"cursor": s})
        assert r.status_code == 400 and r.json()["title"] == "Bad cursor", (s, r.text)
        forged = base64.urlsafe_b64encode(json.dumps([s, s]).encode()).decode()
        assert api.get("/v1/documents", headers=key, params={"cursor": forged}).status_code == 400
        r = api.get("/v1/search", headers=key, params={"q": s})
        assert r.status_code == 200, (s, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/json") and r.json()["query"] == s
        r = api.get(f"/v1/documents/{s}", headers=key)
        assert r.status_code in (404, 422), (s, r.status_code)
    # a cursor built from a valid timestamp and id is accepted; text there cannot reach SQL
    ok = base64.urlsafe_b64encode(
        json.dumps(["2026-01-01T00:00:00+00:00", str(uuid.uuid4())]).encode()
    ).decode()
    assert api.get("/v1/documents", headers=key, params={"cursor": ok.rstrip("=")}).status_code == 200
    assert counts() == before


# ---------------------------------------------------------------- secrets


def test_database_password_never_in_responses_or_logs_of_a_failing_api(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An API whose database is unreachable answers 503 without echoing its DATABASE_URL."""
    secret = "Hunter2-" + uuid.uuid4().hex
    s = Settings(
        DATABASE_URL=f"postgresql://app:{secret}@127.0.0.1:1/pagestream",
        PAGESTREAM_AUTH="disabled",
        STORAGE_URL="file:///nonexistent-pagestream-store",
    )
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(s), raise_server_exceptions=False) as c:
        bodies = [
            c.get("/v1/documents"),
            c.get(f"/v1/documents/{uuid.uuid4()}"),
            c.get("/readyz"),
            c.post("/v1/documents", files={"file": ("a.png", _png("x"))}),
            c.get("/v1/search?q=x"),
        ]
    for r in bodies:
        assert secret not in r.text, r.text
        assert r.status_code in (503, 500) and "Traceback" not in r.text, (r.status_code, r.text)
    assert secret not in caplog.text


@pytest.fixture(scope="module")
def stack_password(running_stack: RunningStack) -> str:
    pw = (running_stack.supervisor.state_dir / "postgres" / "password").read_text().strip()
    assert len(pw) >= 16 and pw in running_stack.supervisor.database_url
    return pw


CLI = (sys.executable, "-c", "from pagestream.cli import main; main()")


def test_secrets_never_in_error_bodies_logs_or_status(
    running_stack: RunningStack, stack_password: str, tmp_path: Path
) -> None:
    import httpx

    files = corpus.generate(tmp_path / "bad")
    with httpx.Client(base_url=running_stack.api_url, timeout=60) as c:
        responses = [
            c.get("/v1/documents", params={"cursor": "not-a-cursor"}),  # 400
            c.get(f"/v1/documents/{uuid.uuid4()}"),  # 404
            c.get(f"/v1/pages/{uuid.uuid4()}/ocr"),  # 404
            c.get("/v1/documents/not-a-uuid"),  # 422
            c.get("/v1/nowhere"),  # 404 route
            c.post("/v1/documents", files={"file": ("bomb.png", files["bomb_png"].read_bytes())}),  # 413
            c.post(
                "/v1/documents", files={"file": ("html.pdf", files["html_named_pdf"].read_bytes())}
            ),  # 415
            c.post("/v1/documents", files={"file": ("empty.pdf", b"")}),  # 422
            c.post(
                "/v1/documents",
                files={"file": ("e.pdf", files["encrypted_pdf"].read_bytes())},
                data={"password": "wrong"},
            ),  # accepted, failed
            c.get("/v1/search", params={"q": "\x00"}),  # 422
            c.get("/metrics"),
            c.get("/readyz"),
        ]
    codes = [r.status_code for r in responses]
    assert codes[:8] == [400, 404, 404, 422, 404, 413, 415, 422], codes
    for r in responses:
        assert stack_password not in r.text, (r.request.url, r.status_code)
    for svc in ("cdc", "ocr", "persist"):
        r = httpx.get(running_stack.metrics_urls[svc], timeout=5)
        assert stack_password not in r.text, svc
        for probe in (
            running_stack.ready_urls[svc],
            running_stack.ready_urls[svc].replace("readyz", "healthz"),
        ):
            assert stack_password not in httpx.get(probe, timeout=5).text, probe

    state_dir = running_stack.supervisor.state_dir
    logs = list((state_dir / "logs").glob("*"))
    assert {p.stem for p in logs} >= {"ingest", "cdc", "ocr", "persist"}
    assert not grep_secret(state_dir / "logs", stack_password), "the database password is in a service log"
    pg = running_stack.supervisor.state()["parts"]["postgres"]
    assert stack_password.encode() not in Path(pg["log"]).read_bytes(), (
        "the password is in the PostgreSQL log"
    )
    stack_json = (state_dir / "stack.json").read_text()
    assert stack_password not in stack_json and ":***@" in json.loads(stack_json)["database_url"]

    status = subprocess.run(
        [*CLI, "status", "--json", "--state-dir", str(state_dir)], capture_output=True, text=True, timeout=60
    )
    assert status.returncode in (0, 1), status.stderr
    assert json.loads(status.stdout)["running"] is True
    assert stack_password not in status.stdout + status.stderr
    plain = subprocess.run(
        [*CLI, "status", "--state-dir", str(state_dir)], capture_output=True, text=True, timeout=60
    )
    assert stack_password not in plain.stdout + plain.stderr
