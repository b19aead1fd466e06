"""The API's routers, assembled by ``create_app``, as a client sees them (no database is reached:
building the app and answering a 405 or reading the OpenAPI document connect to nothing)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from pagestream.api.app import create_app
from pagestream.settings import Settings

NIL = "00000000-0000-0000-0000-000000000000"


@pytest.fixture(scope="module")
def client() -> TestClient:
    offline = Settings(
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9",
        DATABASE_URL="postgresql://x:x@127.0.0.1:9/x",
        STORAGE_URL="file:///nonexistent",
    )
    return TestClient(create_app(offline), raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/v1/documents", "GET, POST"),
        (f"/v1/documents/{NIL}", "DELETE, GET"),
        (f"/v1/documents/{NIL}/pages", "GET"),
        (f"/v1/pages/{NIL}/ocr", "GET"),
        ("/v1/search", "GET"),
        (f"/v1/documents/{NIL}/pdf", "GET"),
        (f"/v1/documents/{NIL}/reprocess", "POST"),
        ("/v1/dlq", "GET"),
        ("/v1/dlq/pagestream.page.ocr-requested.v1.dlq/redrive", "POST"),
    ],
)
def test_a_wrong_method_is_answered_405_with_every_method_of_the_path(
    client: TestClient, path: str, allow: str
) -> None:
    """Every router's paths count, not only routes declared on the app itself (an empty ``Allow`` would
    tell a client that nothing works there)."""
    r = client.put(path)
    assert r.status_code == 405
    assert r.headers["allow"] == allow
    assert r.headers["content-type"] == "application/problem+json"


def test_every_documented_success_states_its_body(client: TestClient) -> None:
    """A JSON success names a component schema (a pydantic model); other successes state their media
    type; only a 204 has no body."""
    doc = client.get("/openapi.json").json()
    undocumented = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, response in op["responses"].items():
                if not status.startswith("2") or status == "204":
                    continue
                content = response.get("content") or {}
                json_schema = content.get("application/json", {}).get("schema", {})
                if not content or ("application/json" in content and "$ref" not in json_schema):
                    undocumented.append(f"{method.upper()} {path} {status}")
    assert not undocumented
    tags = {tag for ops in doc["paths"].values() for op in ops.values() for tag in op.get("tags", [])}
    assert tags == {"documents", "pages", "search", "outputs", "operations", "dead letters"}


def test_probes_are_typed_and_outside_the_document(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")  # the database of these settings does not answer
    assert ready.status_code == 503
    body = ready.json()
    assert body["ready"] is False and body["checks"] == {"database": False}
    assert body["error"].startswith("database: ")
    paths = client.get("/openapi.json").json()["paths"]
    assert not {"/healthz", "/readyz", "/metrics", "/ui"} & set(paths)


def test_requests_are_counted_by_route_template_and_status(client: TestClient) -> None:
    """The metrics middleware labels a request with its route's template (not the raw path, which
    would grow the metric per id) and the status actually sent; unknown paths share one label."""
    from pagestream import metrics

    def count(method: str, route: str, status: str) -> float:
        return metrics.HTTP_REQUESTS.labels(method, route, status)._value.get()

    before_405 = count("PUT", "/v1/documents/{document_id}", "405")
    before_404 = count("GET", "unmatched", "404")
    client.put(f"/v1/documents/{NIL}")
    client.get("/no/such/path")
    assert count("PUT", "/v1/documents/{document_id}", "405") == before_405 + 1
    assert count("GET", "unmatched", "404") == before_404 + 1
